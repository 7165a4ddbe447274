"""Tests for ft_helpers.data: reading files, mapping columns, validating and normalising texts."""

from __future__ import annotations

import csv
import json
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURE_DATA

from ft_helpers import QADataError, load_qa_pairs, normalize_text, read_table, validate_qa_pairs
from ft_helpers.data import SUPPORTED_SUFFIXES

SAMPLE = pd.DataFrame(
    {
        "question": [
            "What was Acme's revenue in 2023?",
            "How many employees did Acme have?",
            "What is Acme's dividend per share?",
        ],
        "context": [
            "Revenue was $4.8 billion in 2023, up 6%.",
            "Acme employed 18,400 people at year-end.",
            "Acme paid dividends of $0.84 per share.",
        ],
        "ticker": ["ACME", "ACME", "ACME"],
    }
)


def _expected_sample() -> pd.DataFrame:
    return SAMPLE.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Reading each supported file type
# --------------------------------------------------------------------------------------------------


def _write(frame: pd.DataFrame, path: Path, kind: str) -> None:
    if kind == "csv":
        frame.to_csv(path, index=False)
    elif kind == "json-records":
        frame.to_json(path, orient="records")
    elif kind in ("json-lines", "jsonl"):  # "json-lines" is JSON Lines saved with a .json suffix
        frame.to_json(path, orient="records", lines=True)
    elif kind == "parquet":
        frame.to_parquet(path, index=False)
    else:  # pragma: no cover - test helper misuse
        raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("csv", "qa.csv"),
        ("json-records", "qa.json"),
        ("json-lines", "qa.json"),
        ("jsonl", "qa.jsonl"),
        ("parquet", "qa.parquet"),
        ("csv", "QA.CSV"),  # suffixes are case-insensitive
    ],
)
def test_load_each_supported_file_type(tmp_path: Path, kind: str, name: str) -> None:
    path = tmp_path / name
    _write(SAMPLE, path, kind)
    for source in (path, str(path)):
        pairs = load_qa_pairs(source)
        assert list(pairs.columns) == ["question", "context", "ticker"]
        pd.testing.assert_frame_equal(pairs, _expected_sample(), check_dtype=False)
        assert list(pairs.index) == [0, 1, 2]


def test_json_lines_with_json_suffix_is_not_read_as_records(tmp_path: Path) -> None:
    path = tmp_path / "lines.json"
    path.write_text("\n".join(json.dumps(r) for r in SAMPLE.to_dict("records")) + "\n")
    assert read_table(path).shape == (3, 3)
    # a single JSON Lines record (a lone object) also works
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"question": "Q?", "context": "C."}) + "\n")
    assert load_qa_pairs(one).to_dict("records") == [{"question": "Q?", "context": "C."}]


def test_read_table_keeps_own_column_names(tmp_path: Path) -> None:
    path = tmp_path / "raw.csv"
    pd.DataFrame({"query": ["q"], "passage": ["p"], "extra": [1]}).to_csv(path, index=False)
    assert list(read_table(path).columns) == ["query", "passage", "extra"]


def test_tilde_path_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    SAMPLE.to_csv(tmp_path / "home.csv", index=False)
    assert len(load_qa_pairs("~/home.csv")) == 3


def test_csv_quoting_round_trips_commas_quotes_and_newlines(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    rows = [
        ('What is "adjusted EBITDA"?', 'Adjusted EBITDA, a non-GAAP measure, was $1.2 billion.\nSee "Item 7".'),
        ("Q2?", "C2"),
    ]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["question", "context"])
        writer.writerows(rows)
    pairs = load_qa_pairs(path)
    assert list(pairs.itertuples(index=False, name=None)) == rows


# --------------------------------------------------------------------------------------------------
# Column mapping and the returned frame
# --------------------------------------------------------------------------------------------------


def test_column_mapping_renames_and_keeps_extra_columns() -> None:
    frame = pd.DataFrame(
        {
            "ticker": ["A", "B"],
            "passage": ["Passage one.", "Passage two."],
            "query": ["Question one?", "Question two?"],
            "filing": ["10-K 2023", "10-K 2022"],
        }
    )
    pairs = load_qa_pairs(frame, question_column="query", context_column="passage")
    assert list(pairs.columns) == ["question", "context", "ticker", "filing"]
    assert pairs["question"].tolist() == ["Question one?", "Question two?"]
    assert pairs["context"].tolist() == ["Passage one.", "Passage two."]
    assert pairs["ticker"].tolist() == ["A", "B"]
    assert pairs["filing"].tolist() == ["10-K 2023", "10-K 2022"]
    # the caller's frame is not modified
    assert list(frame.columns) == ["ticker", "passage", "query", "filing"]


def test_column_mapping_from_file(tmp_path: Path) -> None:
    path = tmp_path / "mapped.jsonl"
    path.write_text(json.dumps({"q": "Why?", "ctx": "Because.", "n": 3}) + "\n")
    pairs = load_qa_pairs(path, question_column="q", context_column="ctx")
    assert pairs.to_dict("records") == [{"question": "Why?", "context": "Because.", "n": 3}]


def test_swapped_column_names_are_honoured() -> None:
    frame = pd.DataFrame({"question": ["a passage"], "context": ["a question?"]})
    pairs = validate_qa_pairs(frame, question_column="context", context_column="question")
    assert pairs.to_dict("records") == [{"question": "a question?", "context": "a passage"}]


@pytest.mark.parametrize("role", ["question", "context"])
def test_extra_column_with_a_reserved_name_is_rejected(role: str) -> None:
    frame = pd.DataFrame({"q": ["Why?"], "ctx": ["Because."], role: ["would be replaced"]})
    with pytest.raises(QADataError, match=rf"column named '{role}' besides") as info:
        load_qa_pairs(frame, question_column="q", context_column="ctx")
    assert "Rename or drop the column" in str(info.value)
    assert list(frame.columns) == ["q", "ctx", role]  # the caller's frame is untouched


def test_reserved_name_used_as_the_other_column_is_fine() -> None:
    frame = pd.DataFrame({"q": ["Why?"], "context": ["Because."]})
    pairs = load_qa_pairs(frame, question_column="q", context_column="context")
    assert pairs.to_dict("records") == [{"question": "Why?", "context": "Because."}]


def test_index_is_source_row_number_even_for_a_custom_index() -> None:
    frame = SAMPLE.set_index(pd.Index([10, 20, 30]))
    pairs = load_qa_pairs(frame)
    assert list(pairs.index) == [0, 1, 2]
    assert pairs["question"].tolist() == SAMPLE["question"].tolist()


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("q", 2023, "int '2023'"),
        ("ctx", 1.5, "float '1.5'"),
        ("ctx", {"text": "Revenue rose."}, "dict \"{'text': 'Revenue rose.'}\""),
        ("q", ["Why?", "How?"], "list \"['Why?', 'How?']\""),
    ],
)
def test_non_text_cells_are_rejected_naming_column_and_row(column: str, value: object, shown: str) -> None:
    frame = pd.DataFrame({"q": ["Why?", "How?", "What?"], "ctx": ["A.", "B.", "C."]}, dtype=object)
    frame.at[1, column] = value
    with pytest.raises(QADataError) as info:
        load_qa_pairs(frame, question_column="q", context_column="ctx")
    assert f"Column '{column}' holds 1 value(s) that are not text, e.g. row 1: {shown}." in str(info.value)


def test_json_records_with_nested_values_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "nested.jsonl"
    rows = [{"question": "Why?", "context": {"text": "Because.", "page": 3}}, {"question": "How?", "context": "So."}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(QADataError, match=r"Column 'context' holds 1 value\(s\) that are not text, e.g. row 0: dict"):
        load_qa_pairs(path)


def test_csv_numbers_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "numbers.csv"
    path.write_text("question,context,year\n2023,007,2023\nWhy?,Because.,2024\n")
    pairs = load_qa_pairs(path)
    assert pairs.to_dict("records")[0] == {"question": "2023", "context": "007", "year": "2023"}


def test_same_question_and_context_column_rejected() -> None:
    with pytest.raises(QADataError, match="must differ"):
        validate_qa_pairs(SAMPLE, question_column="question", context_column="question")


# --------------------------------------------------------------------------------------------------
# Empty values
# --------------------------------------------------------------------------------------------------


def _frame_with_empties() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "question": ["q0", "", "q2", "q3", "   \n\t", "q5"],
            "context": ["c0", "c1", "c2", np.nan, "c4", "c5"],
            "ticker": list("ABCDEF"),
        }
    )


def test_drop_empty_keeps_source_row_numbers_and_warns_naming_rows() -> None:
    with pytest.warns(UserWarning) as record:
        pairs = load_qa_pairs(_frame_with_empties(), drop_empty=True)
    assert list(pairs.index) == [0, 2, 5]
    assert pairs["question"].tolist() == ["q0", "q2", "q5"]
    assert pairs["ticker"].tolist() == ["A", "C", "F"]
    messages = [str(w.message) for w in record if issubclass(w.category, UserWarning)]
    assert len(messages) == 2
    assert "2 row(s) have an empty or missing question" in messages[0]
    assert "rows 1, 4" in messages[0]
    assert "dropped" in messages[0]
    assert "1 row(s) have an empty or missing context" in messages[1]
    assert "rows 3" in messages[1]


def test_drop_empty_from_csv_file(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    _frame_with_empties().to_csv(path, index=False)  # "" is written as an empty field -> NaN on read
    with pytest.warns(UserWarning) as record:
        pairs = load_qa_pairs(path, drop_empty=True)
    assert list(pairs.index) == [0, 2, 5]
    messages = [str(w.message) for w in record]
    assert any("question" in m and "rows 1, 4" in m for m in messages)
    assert any("context" in m and "rows 3" in m for m in messages)


def test_no_warning_when_nothing_is_dropped() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pairs = load_qa_pairs(SAMPLE, drop_empty=True)
    assert len(pairs) == 3


@pytest.mark.parametrize(
    ("role", "bad_value"),
    [
        ("question", ""),
        ("question", "   "),
        ("question", " \n\t "),
        ("question", None),
        ("question", np.nan),
        ("context", ""),
        ("context", "  \t"),
        ("context", np.nan),
    ],
)
def test_empty_or_missing_values_raise_naming_rows(role: str, bad_value: object) -> None:
    frame = pd.DataFrame({"question": ["q0", "q1", "q2"], "context": ["c0", "c1", "c2"]}, dtype=object)
    frame.loc[2, role] = bad_value
    with pytest.raises(QADataError) as info:
        load_qa_pairs(frame)
    message = str(info.value)
    assert f"1 row(s) have an empty or missing {role}" in message
    assert f"column {role!r}" in message
    assert "rows 2" in message
    assert "drop_empty=True" in message


def test_empty_message_names_source_column_after_mapping() -> None:
    frame = pd.DataFrame({"query": ["a", " "], "passage": ["p", "q"]})
    with pytest.raises(QADataError, match=r"empty or missing question \(column 'query'; rows 1\)"):
        load_qa_pairs(frame, question_column="query", context_column="passage")


def test_many_empty_rows_are_listed_with_ellipsis() -> None:
    frame = pd.DataFrame({"question": [""] * 12 + ["ok"], "context": ["c"] * 13})
    with pytest.raises(QADataError) as info:
        validate_qa_pairs(frame)
    message = str(info.value)
    assert "12 row(s)" in message
    assert "rows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ..." in message
    assert "10, 11" not in message


def test_all_rows_empty_with_drop_empty_raises() -> None:
    frame = pd.DataFrame({"question": ["", None], "context": ["c", "d"]})
    with pytest.warns(UserWarning), pytest.raises(QADataError, match="No rows left"):
        load_qa_pairs(frame, drop_empty=True)


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


def test_missing_column_lists_available_columns() -> None:
    frame = pd.DataFrame({"query": ["q"], "passage": ["p"], "ticker": ["T"]})
    with pytest.raises(QADataError) as info:
        load_qa_pairs(frame)
    message = str(info.value)
    assert "'question', 'context' not found" in message
    assert "Available columns: query, passage, ticker" in message
    assert "QUESTION_COLUMN" in message


def test_only_the_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "half.csv"
    pd.DataFrame({"question": ["q"], "passage": ["p"]}).to_csv(path, index=False)
    with pytest.raises(
        QADataError, match=r"half\.csv': column\(s\) 'context' not found\. Available columns: question, pass"
    ):
        load_qa_pairs(path)


def test_no_rows_raises(tmp_path: Path) -> None:
    path = tmp_path / "header_only.csv"
    path.write_text("question,context\n")
    with pytest.raises(QADataError, match="no rows"):
        load_qa_pairs(path)
    with pytest.raises(QADataError, match="no rows"):
        load_qa_pairs(pd.DataFrame({"question": [], "context": []}))


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("bad.parquet", b"this is not a parquet file at all", "parquet"),
        ("bad.json", b"{not valid json", "json"),
        ("bad.jsonl", b'{"question": "q", "context": \n', "jsonl"),
        ("empty.csv", b"", "csv"),
        ("empty.parquet", b"", "parquet"),
    ],
)
def test_unreadable_file_raises_with_name_and_reason(tmp_path: Path, name: str, content: bytes, kind: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(QADataError) as info:
        load_qa_pairs(path)
    message = str(info.value)
    assert message.startswith(f"Could not read {str(path)!r} as {kind}: ")
    assert info.value.__cause__ is None


@pytest.mark.parametrize("name", ["qa.txt", "qa.xlsx", "qa.tsv"])
def test_unknown_suffix_raises(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("question,context\nq,c\n")
    suffix = Path(name).suffix
    with pytest.raises(QADataError) as info:
        load_qa_pairs(path)
    message = str(info.value)
    assert f"unsupported file type {suffix!r}" in message
    for supported in SUPPORTED_SUFFIXES:
        assert supported in message


def test_read_table_without_suffix() -> None:
    with pytest.raises(QADataError, match=r"unsupported file type '\(none\)'"):
        read_table("some/folder/data")


def test_missing_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "does_not_exist.csv"
    with pytest.raises(QADataError, match=r"Data file not found: .*does_not_exist\.csv"):
        load_qa_pairs(path)
    with pytest.raises(QADataError, match="Data file not found"):
        load_qa_pairs("./does_not_exist.parquet")


@pytest.mark.parametrize("name", ["looks_like.csv", "data"])
def test_a_folder_given_as_the_data_file_is_named_as_a_folder(tmp_path: Path, name: str) -> None:
    folder = tmp_path / name
    folder.mkdir()
    with pytest.raises(QADataError, match=r"is a folder, not a file: give the data file inside it"):
        load_qa_pairs(folder)


@pytest.mark.parametrize(("separator", "name"), [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_other_delimiters_get_a_hint(tmp_path: Path, separator: str, name: str) -> None:
    path = tmp_path / "qa.csv"
    path.write_text(f"question{separator}context\nWhy?{separator}Because.\n", encoding="utf-8")
    with pytest.raises(QADataError, match=rf"read as one column .*: it looks {name}-separated, not comma-separated"):
        load_qa_pairs(path)


def test_non_utf8_files_get_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("question,context\nCaf\u00e9?,R\u00e9sum\u00e9.\n".encode("latin-1"))
    with pytest.raises(QADataError, match=r"it is not UTF-8 text \(byte \d+: .*\)\. Save it as UTF-8"):
        load_qa_pairs(path)


def test_unknown_hub_id_fails_fast_and_suggests_a_local_file() -> None:
    start = time.perf_counter()
    with pytest.raises(QADataError) as info:
        load_qa_pairs("nobody-at-all/no-such-financial-qa-dataset-xyz")
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert "'nobody-at-all/no-such-financial-qa-dataset-xyz'" in message
    assert "Hugging Face Hub" in message
    assert "local file" in message
    assert ".csv" in message and ".parquet" in message
    assert info.value.__cause__ is None
    assert elapsed < 30, f"Hub lookup took {elapsed:.1f} s"


def test_qadataerror_is_a_value_error() -> None:
    assert issubclass(QADataError, ValueError)


# --------------------------------------------------------------------------------------------------
# normalize_text
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a b", "ab"),
        ("  Revenue\twas\r\n$4.8  billion.  ", "revenuewas48billion"),
        ("Item 6. [Reserved]", "item6reserved"),
        ("ITEM 6 - RESERVED", "item6reserved"),
        ("Item 6\u2014Reserved", "item6reserved"),  # em dash
        ("IBM\u2019s report", "ibmsreport"),  # curly apostrophe
        ("\uff29\uff22\uff2d", "ibm"),  # full-width letters (NFKC)
        ("Stra\u00dfe", "strasse"),  # casefold, not just lower
        ("Caf\u00e9 \u00e0 la carte", "caf\u00e9\u00e0lacarte"),  # accented letters are letters
        ("", ""),
        ("   \n\t.,;", ""),
        (2023, "2023"),
    ],
)
def test_normalize_text(text: object, expected: str) -> None:
    assert normalize_text(text) == expected


def test_normalize_text_is_idempotent_and_keeps_words_and_numbers_apart() -> None:
    text = "  Net   income\nrose 12%. "
    assert normalize_text(normalize_text(text)) == normalize_text(text)
    assert normalize_text("Revenue rose") != normalize_text("Revenue fell")
    assert normalize_text("$4.8 billion") != normalize_text("$4.9 billion")
    assert normalize_text("net income") != normalize_text("net incomes")


# --------------------------------------------------------------------------------------------------
# The hand-written fixture file
# --------------------------------------------------------------------------------------------------


def test_fixture_file_loads() -> None:
    pairs = load_qa_pairs(FIXTURE_DATA)
    assert len(pairs) >= 48
    assert list(pairs.columns) == ["question", "context", "company"]
    assert list(pairs.index) == list(range(len(pairs)))
    for column in pairs.columns:
        assert pairs[column].map(lambda v: isinstance(v, str) and v.strip() != "").all(), column


def test_fixture_file_shape() -> None:
    with FIXTURE_DATA.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["question", "context", "company"]
    assert all(len(row) == 3 for row in rows)
    frame = pd.DataFrame(rows[1:], columns=rows[0])
    counts = frame["company"].value_counts()
    assert 6 <= len(counts) <= 10
    assert counts.min() >= 3
    # no duplicate questions; exactly two contexts used twice, each by two different questions
    assert not frame["question"].map(normalize_text).duplicated().any()
    context_counts = frame["context"].value_counts()
    assert sorted(context_counts[context_counts > 1].tolist()) == [2, 2]
    assert frame["context"].map(normalize_text).nunique() == len(frame) - 2


def test_fixture_is_not_copied_from_the_shared_data(shared_data: Path) -> None:
    first_line = {path: path.read_text(encoding="utf-8").splitlines()[0] for path in (FIXTURE_DATA, shared_data)}
    assert first_line[FIXTURE_DATA] != first_line[shared_data]
    shared = pd.read_csv(shared_data)
    fixture = pd.read_csv(FIXTURE_DATA)
    shared_texts = set(shared["question"].dropna().map(normalize_text)) | set(
        shared["context"].dropna().map(normalize_text)
    )
    fixture_texts = set(fixture["question"].map(normalize_text)) | set(fixture["context"].map(normalize_text))
    assert not fixture_texts & shared_texts


# --------------------------------------------------------------------------------------------------
# LlamaIndex EmbeddingQAFinetuneDataset JSON
# --------------------------------------------------------------------------------------------------
LLAMAINDEX = {
    "queries": {"q1": "What was revenue in 2023?", "q2": "Who audits the company?", "q3": "What drove margins?"},
    "corpus": {
        "n1": "Revenue was $4.2 billion in 2023.",
        "n2": "Our auditor is an independent registered firm.",
        "n3": "Margins rose on lower input costs.",
        "n4": "A passage no question points to.",
    },
    "relevant_docs": {"q1": ["n1"], "q2": ["n2"], "q3": ["n3", "n1"]},
    "mode": "text",
}


def test_llamaindex_json_gives_one_row_per_relevant_passage(tmp_path: Path) -> None:
    path = tmp_path / "train_dataset.json"
    path.write_text(json.dumps(LLAMAINDEX), encoding="utf-8")
    with pytest.warns(UserWarning, match=r"1 of 4 passage\(s\) are relevant to no query and are left out"):
        pairs = load_qa_pairs(path)
    assert pairs[["query_id", "doc_id"]].to_records(index=False).tolist() == [
        ("q1", "n1"),
        ("q2", "n2"),
        ("q3", "n3"),
        ("q3", "n1"),
    ]
    assert pairs.loc[3, "question"] == "What drove margins?" and pairs.loc[3, "context"] == LLAMAINDEX["corpus"]["n1"]
    # the duplicate-aware evaluation merges them back: q3 is one query with two relevant passages
    from ft_helpers import build_ir_inputs

    inputs = build_ir_inputs(pairs, pairs)
    assert inputs.summary() == {"queries": 3, "documents": 3, "relevant_pairs": 4, "deduplicated": True}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"relevant_docs": {"q1": ["n9"]}}, "query 'q1' names passage 'n9', which is not in 'corpus'"),
        ({"relevant_docs": {"q9": ["n1"]}}, "relevant_docs names query 'q9', which is not in 'queries'"),
        ({"corpus": ["a", "b"]}, "'corpus' must map ids to values, got list"),
    ],
)
def test_llamaindex_json_with_broken_references_is_refused(tmp_path: Path, change: dict, message: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(LLAMAINDEX | change), encoding="utf-8")
    with pytest.raises(QADataError, match=re.escape(message)):
        load_qa_pairs(path)


# --------------------------------------------------------------------------------------------------
# Malformed CSV records are flagged, never merged silently
# --------------------------------------------------------------------------------------------------
def fixture_lines() -> list[str]:
    return FIXTURE_DATA.read_text(encoding="utf-8").splitlines(keepends=True)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda line: '"' + line, "a quote does not end a field (',' expected after '\"')"),  # opened, never closed
        (lambda line: line.rsplit(",", 1)[0] + "\n", "2 field(s) where the header has 3"),
        (lambda line: line.rstrip("\n") + ",extra\n", "4 field(s) where the header has 3"),
    ],
)
def test_a_malformed_csv_record_is_refused_naming_its_line(tmp_path: Path, damage, reason: str) -> None:
    lines = fixture_lines()
    lines[7] = damage(lines[7])  # line 8 of the file
    path = tmp_path / "qa.csv"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(QADataError) as info:
        load_qa_pairs(path)
    message = str(info.value)
    assert message.startswith(f"{str(path)!r} line 8: {reason}; a stray quote or comma would merge or shift")
    assert message.endswith("Fix the line, or pass skip_bad_rows=True to drop the 1 bad record(s).")
    assert len(message) < 300


def test_skip_bad_rows_drops_the_malformed_records_and_counts_them(tmp_path: Path) -> None:
    lines = fixture_lines()
    lines[7] = '"' + lines[7]  # the quote runs on into line 9, which closes it: one bad record over two lines
    lines[20] = lines[20].rstrip("\n") + ",extra\n"
    path = tmp_path / "qa.csv"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.warns(UserWarning, match=r"^qa\.csv: dropped 2 malformed record\(s\), 3 line\(s\): 8-9, 21\.$"):
        pairs = load_qa_pairs(path, skip_bad_rows=True)
    whole = load_qa_pairs(FIXTURE_DATA)
    kept = whole.drop(index=[6, 7, 19]).reset_index(drop=True)
    pd.testing.assert_frame_equal(pairs[["question", "context"]], kept[["question", "context"]], check_index_type=False)


def test_an_unclosed_quote_at_the_end_and_a_bad_header_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text('question,context\nWhy?,Because.\nWhen?,Now.\n"How?,Like this.\n', encoding="utf-8")
    with pytest.raises(QADataError, match=r"line 4: a quote opened here is never closed;"):
        load_qa_pairs(path)
    with pytest.warns(UserWarning, match=r"dropped 1 malformed record\(s\), 1 line\(s\): 4\."):
        assert load_qa_pairs(path, skip_bad_rows=True)["question"].tolist() == ["Why?", "When?"]
    path.write_text('question,"context\nWhy?,Because.\n', encoding="utf-8")
    with pytest.raises(QADataError, match=r"qa\.csv' line 1, the header: a quote opened here is never closed\. Fix"):
        load_qa_pairs(path, skip_bad_rows=True)


def test_csv_with_bom_crlf_nul_emoji_newlines_and_long_questions_still_reads(tmp_path: Path) -> None:
    long_question = "Why " + "very " * 20_000 + "long?"  # 100,009 characters: one field, not an error
    frame = pd.DataFrame(
        {
            "question": ["Revenue \U0001f4c8 in 2023?", "Two\nlines?", long_question, "A NUL\x00here?"],
            "context": ['It said "up 6%", then more.', "One, two\r\nthree.", "Because.", "Fine."],
        }
    )
    path = tmp_path / "qa.csv"
    text = frame.to_csv(index=False, lineterminator="\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    pairs = load_qa_pairs(path)
    assert pairs["question"].tolist() == frame["question"].tolist()
    assert pairs["context"].tolist() == frame["context"].tolist()


# --------------------------------------------------------------------------------------------------
# JSON of another shape than records says what shape it has
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {f"q{i}": {"question": f"Question {i}?", "context": f"Passage {i}."} for i in range(200)},
            "is an object keyed by id ('q0', 'q1', 'q2', ...), not a list of records: save its values as a list",
        ),
        (
            {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [{"question": "q"}]}]}]},
            "is SQuAD-style (data -> paragraphs -> context and qas), not a list of records: flatten it",
        ),
        (
            {"data": [{"question": "q", "context": "c"}]},
            "wraps its records in an object (under 'data'): save the list content['data'] alone",
        ),
        ({"queries": {"q": "Why?"}, "corpus": {"d": "Because."}}, "looks like a LlamaIndex dataset without relevant"),
        (["Why?", "How?"], "is a JSON list of str values, not of records: give one object per row"),
    ],
)
def test_json_of_another_shape_says_what_it_is(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(QADataError) as info:
        load_qa_pairs(path)
    assert str(info.value).startswith(f"{str(path)!r} {message}")
    assert len(str(info.value)) < 300


def test_json_columns_as_pandas_writes_them_still_read(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    SAMPLE.to_json(path)  # pandas' default orient: {"question": {"0": ...}, ...}
    assert load_qa_pairs(path)["question"].tolist() == SAMPLE["question"].tolist()


def test_a_missing_column_names_the_file_and_lists_at_most_eight_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame({f"column_{i}": ["x"] for i in range(200)})
    with pytest.raises(QADataError) as info:
        load_qa_pairs(frame, name="TEST_DATASET 'test.csv'", column_advice="Rename them.")
    assert str(info.value) == (
        "TEST_DATASET 'test.csv': column(s) 'question', 'context' not found. Available columns: column_0, column_1, "
        "column_2, column_3, column_4, column_5, column_6, column_7, ... (192 more). Rename them."
    )
