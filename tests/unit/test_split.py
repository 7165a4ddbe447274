"""Tests for ft_helpers.split: the reference split, the leakage-free grouped split and the leakage report."""

from __future__ import annotations

import math
import re
import unicodedata

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, skip_without_shared_data

from ft_helpers import (
    QADataError,
    add_test_set,
    find_linked_groups,
    load_qa_pairs,
    normalize_text,
    report_leakage,
    split_grouped,
    split_qa_pairs,
    split_reference,
)
from ft_helpers.split import SPLIT_NAMES

PAIR_NAMES = ["train & validation", "train & test", "validation & test"]


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def make_pairs(questions: list[str], contexts: list[str], **extra: list[object]) -> pd.DataFrame:
    """Build validated pairs (index 0..n-1) from lists."""
    return load_qa_pairs(pd.DataFrame({"question": questions, "context": contexts, **extra}))


def distinct_pairs(n: int, **extra: list[object]) -> pd.DataFrame:
    return make_pairs([f"Question {i}?" for i in range(n)], [f"Context passage {i}." for i in range(n)], **extra)


def reference_ids(n_source: int, test_size: float = 0.1, validation_size: float = 0.1, seed: int = 42) -> dict:
    """Source row ids per split, made exactly as the reference notebook made its split."""
    from datasets import Dataset

    dataset = Dataset.from_pandas(pd.DataFrame({"id": range(n_source)}))
    first = dataset.train_test_split(test_size=test_size, seed=seed)
    second = first["train"].train_test_split(test_size=validation_size, seed=seed)
    return {"train": second["train"]["id"], "validation": second["test"]["id"], "test": first["test"]["id"]}


def split_of_each_row(splits: dict[str, pd.DataFrame]) -> pd.Series:
    return pd.concat([pd.Series(name, index=frame.index) for name, frame in splits.items()])


def assert_partition(splits: dict[str, pd.DataFrame], pairs: pd.DataFrame) -> None:
    """Every input row is in exactly one split, with its data unchanged."""
    assert list(splits) == list(SPLIT_NAMES)
    combined = pd.concat(splits.values())
    assert not combined.index.duplicated().any()
    assert sorted(combined.index) == sorted(pairs.index)
    pd.testing.assert_frame_equal(combined.sort_index(), pairs.sort_index())


def assert_no_leakage(splits: dict[str, pd.DataFrame], group_column: str | None = None) -> None:
    report = report_leakage(splits, group_column)
    assert list(report.index) == PAIR_NAMES
    assert (report.to_numpy() == 0).all(), report.to_string()
    # independent check, without report_leakage
    for column in ["question", "context"] + ([group_column] if group_column else []):
        seen: dict[str, str] = {}
        for name, frame in splits.items():
            for value in frame[column].map(normalize_text):
                assert seen.setdefault(value, name) == name, f"{column} {value!r} in {seen[value]} and {name}"


# --------------------------------------------------------------------------------------------------
# Real data (skipped where ../shared/data is absent; a failure under REQUIRE_SHARED_DATA=1)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def notebook_ids() -> dict:
    skip_without_shared_data()  # module-scoped: the function-scoped shared_data fixture cannot serve it
    n_source = len(pd.read_csv(SHARED_DATA))
    assert n_source == 7000
    return reference_ids(n_source)


@pytest.fixture(scope="module")
def real_reference(shared_pairs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return split_qa_pairs(shared_pairs, "reference")


@pytest.fixture(scope="module")
def real_grouped(shared_pairs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return split_qa_pairs(shared_pairs, "grouped")


def test_real_data_drops_two_empty_rows(shared_pairs: pd.DataFrame) -> None:
    assert len(shared_pairs) == 6998
    assert sorted(set(range(7000)) - set(shared_pairs.index)) == [1733, 2731]


def test_reference_split_matches_notebook(
    shared_pairs: pd.DataFrame, real_reference: dict[str, pd.DataFrame], notebook_ids: dict
) -> None:
    assert [len(notebook_ids[name]) for name in SPLIT_NAMES] == [5670, 630, 700]
    kept = set(shared_pairs.index)
    for name in SPLIT_NAMES:
        expected = [i for i in notebook_ids[name] if i in kept]
        assert list(real_reference[name].index) == expected, name  # same rows, same shuffled order
    assert [len(real_reference[name]) for name in SPLIT_NAMES] == [5668, 630, 700]
    assert_partition(real_reference, shared_pairs)


def test_reference_split_leaks_on_real_data(real_reference: dict[str, pd.DataFrame]) -> None:
    train, test = real_reference["train"], real_reference["test"]
    train_contexts = set(train["context"].map(normalize_text))
    train_questions = set(train["question"].map(normalize_text))
    test_contexts = test["context"].map(normalize_text)
    test_questions = test["question"].map(normalize_text)
    # texts compared with case, punctuation and spacing folded (whitespace alone: 33, 10 and [27, 9, 40])
    assert test_contexts.isin(train_contexts).sum() == 37
    assert test_questions.isin(train_questions).sum() == 11
    both = (test_contexts.isin(train_contexts) | test_questions.isin(train_questions)).sum()

    report = report_leakage(real_reference)
    assert list(report.columns) == ["shared_contexts", "shared_questions", "affected_rows"]
    assert report.loc["train & test"].tolist() == [31, 10, 44]
    # affected_rows counts rows of the SECOND split sharing a context OR a question with the first
    assert report.loc["train & test", "affected_rows"] == both
    assert report.loc["train & validation"].tolist() == [31, 10, 45]
    assert report.loc["validation & test"].tolist() == [5, 2, 12]


def test_grouped_split_on_real_data_has_no_leakage(
    shared_pairs: pd.DataFrame, real_grouped: dict[str, pd.DataFrame]
) -> None:
    assert_no_leakage(real_grouped)
    assert_partition(real_grouped, shared_pairs)
    for frame in real_grouped.values():
        assert frame.index.is_monotonic_increasing  # original row order kept


def independent_fold(text: str) -> str:
    """Case, punctuation and spacing folded by other means than normalize_text (ASCII letters and digits)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", ascii_text.lower())


def test_grouped_split_on_real_data_has_no_folded_leakage(real_grouped: dict[str, pd.DataFrame]) -> None:
    # Whitespace-only grouping left 7 test contexts and 3 test questions whose folded text was in train.
    for column in ("context", "question"):
        keys = {name: set(frame[column].map(independent_fold)) for name, frame in real_grouped.items()}
        for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
            assert not keys[a] & keys[b], (column, a, b)


def test_grouped_split_on_real_data_sizes(shared_pairs: pd.DataFrame, real_grouped: dict[str, pd.DataFrame]) -> None:
    n = len(shared_pairs)
    for name, target in zip(SPLIT_NAMES, (0.81, 0.09, 0.10), strict=True):
        assert abs(len(real_grouped[name]) / n - target) <= 0.02, (name, len(real_grouped[name]))
    # test and validation never overshoot their targets
    assert len(real_grouped["test"]) <= math.ceil(0.1 * n)
    assert len(real_grouped["validation"]) <= math.ceil(0.1 * (n - math.ceil(0.1 * n)))


def test_grouped_split_on_real_data_by_ticker(shared_pairs: pd.DataFrame) -> None:
    splits = split_qa_pairs(shared_pairs, "grouped", group_column="ticker")
    assert_no_leakage(splits, "ticker")
    assert_partition(splits, shared_pairs)
    tickers = [set(splits[name]["ticker"]) for name in SPLIT_NAMES]
    assert all(tickers)
    assert not (tickers[0] & tickers[1] or tickers[0] & tickers[2] or tickers[1] & tickers[2])
    assert set.union(*tickers) == set(shared_pairs["ticker"])
    assert report_leakage(splits, "ticker")["shared_ticker"].tolist() == [0, 0, 0]


def test_grouped_split_on_real_data_is_seeded(
    shared_pairs: pd.DataFrame, real_grouped: dict[str, pd.DataFrame]
) -> None:
    again = split_qa_pairs(shared_pairs, "grouped", seed=42)
    other = split_qa_pairs(shared_pairs, "grouped", seed=7)
    for name in SPLIT_NAMES:
        assert list(again[name].index) == list(real_grouped[name].index)
    assert set(other["test"].index) != set(real_grouped["test"].index)
    assert_no_leakage(other)


# --------------------------------------------------------------------------------------------------
# The reference split on synthetic data
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "test_size", "validation_size", "seed"),
    [(10, 0.1, 0.1, 42), (50, 0.1, 0.1, 42), (37, 0.2, 0.15, 7), (123, 0.25, 0.3, 0)],
)
def test_reference_split_matches_datasets(n: int, test_size: float, validation_size: float, seed: int) -> None:
    pairs = distinct_pairs(n)
    splits = split_qa_pairs(pairs, "reference", test_size=test_size, validation_size=validation_size, seed=seed)
    expected = reference_ids(n, test_size, validation_size, seed)
    for name in SPLIT_NAMES:
        assert list(splits[name].index) == expected[name], name
    assert_partition(splits, pairs)


def test_reference_split_skips_rows_dropped_in_the_middle() -> None:
    questions = [f"Q{i}?" for i in range(50)]
    questions[3] = ""
    questions[17] = "  "
    with pytest.warns(UserWarning, match="rows 3, 17"):
        pairs = load_qa_pairs(
            pd.DataFrame({"question": questions, "context": [f"C{i}" for i in range(50)]}), drop_empty=True
        )
    splits = split_qa_pairs(pairs, "reference")
    expected = reference_ids(50)
    for name in SPLIT_NAMES:
        assert list(splits[name].index) == [i for i in expected[name] if i not in (3, 17)]


def test_reference_split_with_explicit_source_size_after_trailing_drop() -> None:
    pairs = distinct_pairs(50).drop(index=[48, 49])
    splits = split_reference(pairs, n_source_rows=50)
    expected = reference_ids(50)
    for name in SPLIT_NAMES:
        assert list(splits[name].index) == [i for i in expected[name] if i < 48]


def test_reference_split_via_split_qa_pairs_when_last_row_is_empty() -> None:
    contexts = [f"C{i}" for i in range(50)]
    contexts[49] = ""
    with pytest.warns(UserWarning, match="rows 49"):
        pairs = load_qa_pairs(
            pd.DataFrame({"question": [f"Q{i}?" for i in range(50)], "context": contexts}), drop_empty=True
        )
    splits = split_qa_pairs(pairs, "reference")
    expected = reference_ids(50)
    for name in SPLIT_NAMES:
        assert list(splits[name].index) == [i for i in expected[name] if i != 49], name


def test_reference_split_keeps_duplicates_apart() -> None:
    # the reference split does not look at the texts: identical contexts end up in several splits
    pairs = make_pairs([f"Q{i}?" for i in range(100)], ["The same passage."] * 100)
    splits = split_qa_pairs(pairs, "reference")
    assert [len(splits[name]) for name in SPLIT_NAMES] == [81, 9, 10]
    assert report_leakage(splits)["shared_contexts"].tolist() == [1, 1, 1]


def test_reference_split_needs_row_numbers_as_index() -> None:
    pairs = distinct_pairs(20)
    with pytest.raises(ValueError, match="source row numbers as index"):
        split_reference(pairs.set_index(pd.Index([f"r{i}" for i in range(20)])))
    with pytest.raises(ValueError, match="source row numbers as index"):
        split_reference(pairs.set_index(pd.Index(range(-1, 19))))


# --------------------------------------------------------------------------------------------------
# Grouped split: adversarial synthetic data
# --------------------------------------------------------------------------------------------------


def test_every_context_repeated() -> None:
    counts = [2 if i % 2 else 3 for i in range(30)]  # each context 2 or 3 times, 75 rows
    contexts = [f"Passage number {i}." for i, k in enumerate(counts) for _ in range(k)]
    pairs = make_pairs([f"Question {j}?" for j in range(len(contexts))], contexts)
    assert len(pairs) == 75
    labels = find_linked_groups(pairs)
    assert len(np.unique(labels)) == 30
    for seed in range(10):
        splits = split_grouped(pairs, seed=seed)
        assert_no_leakage(splits)
        assert_partition(splits, pairs)
        assert 8 - 2 <= len(splits["test"]) <= 8  # target ceil(7.5); groups of 2-3 rows
        assert 7 - 2 <= len(splits["validation"]) <= 7  # target ceil(0.1 * 67)
        where = split_of_each_row(splits)
        assert (pairs.assign(split=where).groupby("context")["split"].nunique() == 1).all()


def test_transitive_chain_is_kept_together() -> None:
    questions = ["qa?", "qb?", "qb?", "qd?"] + [f"q{i}?" for i in range(20)]
    contexts = ["c1", "c1", "c3", "c3 "] + [f"c-other-{i}" for i in range(20)]
    # A-B share a context, B-C a question, C-D a context (after whitespace normalisation)
    pairs = make_pairs(questions, contexts)
    labels = find_linked_groups(pairs)
    assert len(set(labels[:4])) == 1
    assert len(set(labels[4:])) == 20
    assert labels[0] not in set(labels[4:])
    seen_splits = set()
    for seed in range(20):
        where = split_of_each_row(split_grouped(pairs, test_size=0.2, validation_size=0.2, seed=seed))
        assert where.loc[[0, 1, 2, 3]].nunique() == 1
        seen_splits.add(where.loc[0])
    assert len(seen_splits) > 1  # the chain is a group like any other, not always put in train


def test_long_chain_too_big_for_test_lands_in_train() -> None:
    # rows 0..11 linked alternately by context and by question: 0-1 context, 1-2 question, 2-3 context, ...
    questions, contexts = [], []
    for i in range(12):
        questions.append(f"chain question {(i + 1) // 2}?")
        contexts.append(f"chain context {i // 2}.")
    questions += [f"single question {i}?" for i in range(38)]
    contexts += [f"single context {i}." for i in range(38)]
    pairs = make_pairs(questions, contexts)
    labels = find_linked_groups(pairs)
    assert len(set(labels[:12])) == 1
    assert len(np.unique(labels)) == 39
    for seed in range(5):
        splits = split_grouped(pairs, seed=seed)
        assert set(range(12)) <= set(splits["train"].index)
        assert [len(splits[name]) for name in SPLIT_NAMES] == [40, 5, 5]
        assert_no_leakage(splits)


def test_whitespace_variants_are_treated_as_equal() -> None:
    questions = ["What was revenue?", "What was  revenue?\n", "What was net income?"] + [f"Q{i}?" for i in range(17)]
    contexts = ["a  b", "unrelated", "a b\n"] + [f"C{i}" for i in range(17)]
    pairs = make_pairs(questions, contexts)
    labels = find_linked_groups(pairs)
    assert labels[0] == labels[1] == labels[2]  # 0-1 by question, 0-2 by context
    assert len(np.unique(labels)) == 18
    for seed in range(10):
        splits = split_grouped(pairs, seed=seed)
        assert split_of_each_row(splits).loc[[0, 1, 2]].nunique() == 1
        assert_no_leakage(splits)
    # the leakage report also compares normalised texts
    report = report_leakage({"train": pairs.loc[[0]], "test": pairs.loc[[1, 2]]})
    assert report.loc["train & test"].tolist() == [1, 1, 2]


def test_case_punctuation_and_spacing_variants_are_kept_together() -> None:
    questions = ["What is Item 6?", "WHAT IS ITEM 6", "Anything else?", "What is item 7?"] + [
        f"Q{i}?" for i in range(16)
    ]
    contexts = ["Item 6. [Reserved]", "unrelated one", "Item 6\u2014Reserved", "Item 7. [Reserved]"] + [
        f"C{i}" for i in range(16)
    ]
    pairs = make_pairs(questions, contexts)
    labels = find_linked_groups(pairs)
    assert labels[0] == labels[1] == labels[2]  # 0-1 by question (case, "?"), 0-2 by context (". [ ]" vs "—")
    assert labels[3] != labels[0]  # another item number is another text
    assert len(np.unique(labels)) == 18
    for seed in range(10):
        splits = split_grouped(pairs, seed=seed)
        assert split_of_each_row(splits).loc[[0, 1, 2]].nunique() == 1
        assert_no_leakage(splits)
    # the leakage report folds the same way
    report = report_leakage({"train": pairs.loc[[0]], "test": pairs.loc[[1, 2, 3]]})
    assert report.loc["train & test"].tolist() == [1, 1, 2]


def test_reference_split_refuses_pairs_without_their_source_size() -> None:
    pairs = distinct_pairs(20)
    bare = pd.DataFrame({"question": pairs["question"], "context": pairs["context"]})  # attrs not carried over
    assert "source_rows" not in bare.attrs
    with pytest.raises(QADataError, match=r"pass n_source_rows"):
        split_qa_pairs(bare, "reference")
    assert [len(part) for part in split_reference(bare, n_source_rows=20).values()] == [16, 2, 2]


def test_one_huge_group_goes_to_train() -> None:
    questions = [f"Question {i}?" for i in range(100)]
    contexts = ["The one passage everybody shares."] * 70 + [f"Passage {i}." for i in range(30)]
    pairs = make_pairs(questions, contexts)
    for seed in (0, 1, 42):
        splits = split_grouped(pairs, seed=seed)
        assert set(range(70)) <= set(splits["train"].index)
        assert [len(splits[name]) for name in SPLIT_NAMES] == [81, 9, 10]
        assert_no_leakage(splits)
        assert_partition(splits, pairs)


def test_all_rows_one_group_raises() -> None:
    pairs = make_pairs([f"Question {i}?" for i in range(20)], ["Shared passage."] * 20)
    with pytest.raises(QADataError) as info:
        split_qa_pairs(pairs)
    message = str(info.value)
    assert "validation, test would be empty" in message
    assert "20 rows form 1 groups" in message
    assert "largest holds 20 rows" in message
    assert "SPLIT='reference'" in message


def test_one_group_column_value_raises_naming_the_column() -> None:
    pairs = distinct_pairs(20, ticker=["ACME"] * 20)
    with pytest.raises(QADataError, match=r"would be empty.*1 groups linked by shared contexts/questions and 'ticker'"):
        split_qa_pairs(pairs, group_column="ticker")


def test_two_groups_cannot_fill_three_splits() -> None:
    pairs = make_pairs([f"Q{i}?" for i in range(20)], ["first"] * 2 + ["second"] * 18)
    with pytest.raises(QADataError, match="would be empty"):
        split_grouped(pairs)


@pytest.mark.parametrize("strategy", ["grouped", "reference"])
def test_too_few_rows(strategy: str) -> None:
    with pytest.raises(QADataError, match="Too few rows to split: got 9, need at least 10"):
        split_qa_pairs(distinct_pairs(9), strategy)


@pytest.mark.parametrize("strategy", ["grouped", "reference"])
def test_ten_rows_is_enough(strategy: str) -> None:
    splits = split_qa_pairs(distinct_pairs(10), strategy)
    assert [len(splits[name]) for name in SPLIT_NAMES] == [8, 1, 1]


@pytest.mark.parametrize("strategy", ["grouped", "reference"])
@pytest.mark.parametrize("which", ["test_size", "validation_size"])
@pytest.mark.parametrize("value", [0, 0.0, 1, 1.0, -0.1, 1.5, 70, float("nan")])
def test_bad_fractions(strategy: str, which: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{which} must be a fraction between 0 and 1"):
        split_qa_pairs(distinct_pairs(20), strategy, **{which: value})


def test_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="Unknown split strategy 'random'; choose one of grouped, reference"):
        split_qa_pairs(distinct_pairs(20), "random")


def test_missing_group_column_lists_columns() -> None:
    pairs = distinct_pairs(20, ticker=["T"] * 20)
    with pytest.raises(
        QADataError, match=r"Group column 'sector' not found\. Available columns: question, context, ticker"
    ):
        split_qa_pairs(pairs, group_column="sector")


def test_group_column_with_missing_values() -> None:
    pairs = distinct_pairs(20, ticker=["A", None] * 10)
    with pytest.raises(QADataError, match="Group column 'ticker' has missing values"):
        split_grouped(pairs, group_column="ticker")


def test_group_column_with_reference_strategy() -> None:
    pairs = distinct_pairs(20, ticker=[f"T{i % 5}" for i in range(20)])
    with pytest.raises(ValueError, match="group_column only applies to the 'grouped' split"):
        split_qa_pairs(pairs, "reference", group_column="ticker")


def test_group_column_links_rows_and_holds_groups_out() -> None:
    tickers = [f"T{i % 10}" for i in range(60)]
    pairs = distinct_pairs(60, ticker=tickers)
    labels = find_linked_groups(pairs, "ticker")
    assert len(np.unique(labels)) == 10
    assert len(np.unique(find_linked_groups(pairs))) == 60
    for seed in range(5):
        splits = split_grouped(pairs, seed=seed, group_column="ticker")
        assert [len(splits[name]) for name in SPLIT_NAMES] == [48, 6, 6]
        assert_no_leakage(splits, "ticker")


def test_group_column_values_are_whitespace_normalised_like_the_report() -> None:
    tickers = ["ACME"] * 3 + ["ACME "] * 3 + [f"T{i}" for i in range(34)]
    pairs = distinct_pairs(40, ticker=tickers)
    for seed in range(30):
        splits = split_grouped(pairs, seed=seed, group_column="ticker")
        assert report_leakage(splits, "ticker")["shared_ticker"].tolist() == [0, 0, 0], seed


def test_grouped_split_is_seeded() -> None:
    pairs = distinct_pairs(200)
    first = split_grouped(pairs, seed=3)
    second = split_grouped(pairs, seed=3)
    other = split_grouped(pairs, seed=4)
    for name in SPLIT_NAMES:
        assert list(first[name].index) == list(second[name].index)
    assert set(first["test"].index) != set(other["test"].index)
    assert [len(first[name]) for name in SPLIT_NAMES] == [162, 18, 20]


def test_grouped_split_keeps_other_columns_and_order() -> None:
    pairs = distinct_pairs(30, ticker=[f"T{i}" for i in range(30)])
    splits = split_qa_pairs(pairs)
    for frame in splits.values():
        assert list(frame.columns) == ["question", "context", "ticker"]
        assert frame.index.is_monotonic_increasing
    assert_partition(splits, pairs)


def test_grouped_split_does_not_mutate_input() -> None:
    pairs = make_pairs([f"Q{i}?" for i in range(30)], [f"C{i % 15}" for i in range(30)])
    copy = pairs.copy()
    split_grouped(pairs)
    pd.testing.assert_frame_equal(pairs, copy)


# --------------------------------------------------------------------------------------------------
# report_leakage on a hand-made example
# --------------------------------------------------------------------------------------------------


def _frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["question", "context", "ticker"])


def test_report_leakage_exact_counts() -> None:
    splits = {
        "train": _frame([("q1", "c1", "A"), ("q2", "c2", "A"), ("q3", "c1", "B"), ("q4", "c4", "C")]),
        "validation": _frame([("q5", "c1", "D"), ("q6", "c6", "D")]),
        "test": _frame(
            [
                ("q2", "c7", "E"),  # question shared with train
                ("q8", "c1", "E"),  # context shared with train and validation
                ("q9", "c1", "F"),  # the same context again: still one distinct shared context
                ("q10", " c2\n", "A"),  # whitespace variant of a train context; ticker shared with train
                ("q6", "c6", "G"),  # question and context shared with validation
                ("q12", "c12", "G"),  # nothing shared
            ]
        ),
    }
    report = report_leakage(splits)
    assert list(report.index) == PAIR_NAMES
    assert list(report.columns) == ["shared_contexts", "shared_questions", "affected_rows"]
    assert report.loc["train & validation"].tolist() == [1, 0, 1]
    assert report.loc["train & test"].tolist() == [2, 1, 4]
    assert report.loc["validation & test"].tolist() == [2, 1, 3]

    with_ticker = report_leakage(splits, "ticker")
    assert list(with_ticker.columns) == ["shared_contexts", "shared_questions", "shared_ticker", "affected_rows"]
    assert with_ticker["shared_ticker"].tolist() == [0, 1, 0]
    # q12/c12/G shares ticker G with nothing earlier; q10's row already counted
    assert with_ticker.loc["train & test", "affected_rows"] == 4
    assert with_ticker.loc["validation & test", "affected_rows"] == 3


def test_report_leakage_affected_rows_counts_the_second_split() -> None:
    first = _frame([("q1", "same", "A"), ("q2", "same", "A"), ("q3", "same", "A")])
    second = _frame([("q4", "same", "B"), ("q5", "other", "B")])
    assert report_leakage({"first": first, "second": second}).loc["first & second"].tolist() == [1, 0, 1]
    assert report_leakage({"second": second, "first": first}).loc["second & first"].tolist() == [1, 0, 3]


def test_report_leakage_all_zero_and_integer() -> None:
    splits = {"train": _frame([("q1", "c1", "A")]), "validation": _frame([("q2", "c2", "B")]), "test": _frame([])}
    report = report_leakage(splits)
    assert report.to_numpy().tolist() == [[0, 0, 0]] * 3
    assert all(pd.api.types.is_integer_dtype(report[c]) for c in report.columns)


# --------------------------------------------------------------------------------------------------
# The hand-written fixture
# --------------------------------------------------------------------------------------------------


def test_grouped_split_on_fixture(fixture_pairs: pd.DataFrame) -> None:
    n = len(fixture_pairs)
    assert n == 50
    duplicated = fixture_pairs[fixture_pairs["context"].duplicated(keep=False)]
    assert len(duplicated) == 4
    for seed in range(5):
        splits = split_qa_pairs(fixture_pairs, seed=seed)
        assert [len(splits[name]) for name in SPLIT_NAMES] == [40, 5, 5]
        assert_no_leakage(splits)
        assert_partition(splits, fixture_pairs)
        where = split_of_each_row(splits)
        for _, rows in duplicated.groupby("context"):
            assert where.loc[rows.index].nunique() == 1
    reference = split_qa_pairs(fixture_pairs, "reference")
    assert [len(reference[name]) for name in SPLIT_NAMES] == [40, 5, 5]


def test_company_held_out_split_on_fixture(fixture_pairs: pd.DataFrame) -> None:
    for seed in range(5):
        splits = split_qa_pairs(fixture_pairs, seed=seed, group_column="company")
        assert_no_leakage(splits, "company")
        assert_partition(splits, fixture_pairs)
        companies = [set(splits[name]["company"]) for name in SPLIT_NAMES]
        assert all(companies)
        assert sum(len(c) for c in companies) == fixture_pairs["company"].nunique()
        assert 4 <= len(splits["test"]) <= 5 and 4 <= len(splits["validation"]) <= 5


# --------------------------------------------------------------------------------------------------
# A separate test file: add_test_set + split_qa_pairs
# --------------------------------------------------------------------------------------------------
def test_add_test_set_marks_and_numbers_the_test_rows_after_the_others() -> None:
    pairs = distinct_pairs(30)
    test = make_pairs(["Held-out question A?", "Held-out question B?"], ["Held-out passage A.", "Held-out passage B."])
    combined = add_test_set(pairs, test)
    assert combined.index.tolist() == [*range(30), 30, 31]
    assert combined["test_set"].tolist() == [False] * 30 + [True] * 2
    assert combined.attrs == pairs.attrs
    with pytest.raises(QADataError, match="TEST_DATASET has a column named 'test_set'"):
        add_test_set(pairs, test.assign(test_set=1))


def test_a_test_file_is_the_test_split_and_rows_sharing_its_texts_leave_training() -> None:
    pairs = distinct_pairs(40)
    pairs.loc[5, "context"] = "HELD-OUT passage A"  # a variant of a test passage: case and punctuation differ
    pairs.loc[6, "question"] = "held-out question b"  # a variant of a test question
    test = make_pairs(
        ["Held-out question A?", "Held-out question B?", "Held-out question C?"],
        ["Held-out passage A.", "Held-out passage B.", "Held-out passage C."],
    )
    combined = add_test_set(pairs, test)
    with pytest.warns(UserWarning, match=r"2 row\(s\) of DATASET share a question or passage with TEST_DATASET"):
        splits = split_qa_pairs(combined, "grouped", seed=3)
    assert splits["test"].index.tolist() == [40, 41, 42]
    assert {5, 6}.isdisjoint(set(splits["train"].index) | set(splits["validation"].index))
    assert len(splits["train"]) + len(splits["validation"]) == 38
    assert len(splits["validation"]) == math.ceil(0.1 * 38)
    assert_no_leakage(splits)


def test_the_reference_split_of_pairs_with_a_test_file_splits_the_dataset_rows_alone() -> None:
    pairs = distinct_pairs(30)
    combined = add_test_set(pairs, make_pairs(["Q test?"], ["C test."]))
    with_file, without = split_qa_pairs(combined, "reference"), split_qa_pairs(pairs, "reference")
    assert {name: list(frame.index) for name, frame in with_file.items()} == {
        name: list(frame.index) for name, frame in without.items()
    }


def test_rows_of_one_document_stay_in_one_split_and_empty_doc_ids_link_nothing() -> None:
    documents = [f"doc-{n // 4}.md" for n in range(80)]  # 20 documents of 4 passages, every text distinct
    pairs = pd.DataFrame(
        {
            "question": [f"Question number {n}?" for n in range(80)],
            "context": [f"Passage number {n}." for n in range(80)],
            "doc_id": documents,
            "passage_id": [f"{doc}#{n % 4 + 1}" for n, doc in enumerate(documents)],
        }
    )
    labels = find_linked_groups(pairs)
    assert len(set(labels)) == 20
    splits = split_grouped(pairs, seed=3)
    by_split = {name: set(frame["doc_id"]) for name, frame in splits.items()}
    assert all(by_split[name] for name in SPLIT_NAMES)
    assert not by_split["train"] & by_split["test"] and not by_split["train"] & by_split["validation"]
    leakage = report_leakage(splits)
    assert "shared_documents" in leakage.columns and leakage.to_numpy().sum() == 0
    mixed = pairs.assign(doc_id=[None if n % 2 else doc for n, doc in enumerate(documents)])  # a test file's rows
    assert len(set(find_linked_groups(mixed))) == 20 + 40  # the 40 rows without a document are each alone
    count = report_leakage({"train": mixed.iloc[:40], "test": mixed.iloc[40:]}).loc["train & test", "shared_documents"]
    assert count == 0
