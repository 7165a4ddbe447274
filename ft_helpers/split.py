"""Split question/context pairs into train/validation/test, and count what the splits share."""

from __future__ import annotations

import math
import warnings
from itertools import combinations

import numpy as np
import pandas as pd

from .data import QADataError, normalize_text

#: The three split names, in the order they are built and reported.
SPLIT_NAMES = ("train", "validation", "test")
#: Strategies accepted by :func:`split_qa_pairs`.
SPLIT_STRATEGIES = ("grouped", "reference")
#: Fewest rows that can still give every split at least one row.
MIN_ROWS = 10


def _check_sizes(n_rows: int, test_size: float, validation_size: float) -> None:
    for name, value in (("test_size", test_size), ("validation_size", validation_size)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be a fraction between 0 and 1, got {value!r}.")
    if n_rows < MIN_ROWS:
        raise QADataError(
            f"Too few rows to split: got {n_rows}, need at least {MIN_ROWS} "
            "so that train, validation and test each get some."
        )


def split_reference(
    pairs: pd.DataFrame,
    test_size: float = 0.1,
    validation_size: float = 0.1,
    seed: int = 42,
    n_source_rows: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Reproduce the reference notebook's split: two seeded ``Dataset.train_test_split`` calls.

    The first call holds out ``test_size`` of all rows as test; the second holds out ``validation_size``
    of the rest as validation (0.1 and 0.1 give 81/9/10). The shuffles run over the source's row numbers
    (the index that :func:`~ft_helpers.data.load_qa_pairs` keeps), so rows dropped as empty are simply
    missing and every other row lands where the reference put it. Identical contexts or questions may
    land in several splits.

    Args:
        pairs: Rows from :func:`~ft_helpers.data.load_qa_pairs`, indexed by source row number.
        test_size: Fraction of all rows for test.
        validation_size: Fraction of the remaining rows for validation.
        seed: Seed of both shuffles (the reference used 42).
        n_source_rows: Rows in the source before any were dropped (default: the count that
            :func:`~ft_helpers.data.load_qa_pairs` recorded in ``pairs.attrs["source_rows"]``).

    Returns:
        ``{"train": ..., "validation": ..., "test": ...}``, each in the reference's shuffled order.

    Raises:
        QADataError: ``n_source_rows`` is not given and ``pairs`` does not carry it.
    """
    _check_sizes(len(pairs), test_size, validation_size)
    if not pd.api.types.is_integer_dtype(pairs.index) or pairs.index.min() < 0:
        raise ValueError("split_reference needs the source row numbers as index (as load_qa_pairs returns).")
    if n_source_rows is None:
        if "source_rows" not in pairs.attrs:
            raise QADataError(
                "The reference split needs the number of rows in the source, and these pairs do not carry it "
                "(pairs.attrs['source_rows'], set by load_qa_pairs, is lost by e.g. pd.concat or a new DataFrame). "
                "Split the frame that load_qa_pairs returned, or pass n_source_rows."
            )
        n_source_rows = int(pairs.attrs["source_rows"])
    if n_source_rows <= pairs.index.max():
        raise ValueError(f"n_source_rows={n_source_rows} is not above the highest row number {pairs.index.max()}.")

    def train_test(rows: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
        # Same arithmetic as datasets.Dataset.train_test_split(test_size=size, seed=seed).
        n_test = math.ceil(size * len(rows))
        order = np.random.default_rng(seed).permutation(len(rows))
        return rows[order[n_test:]], rows[order[:n_test]]

    rest, test = train_test(np.arange(n_source_rows), test_size)
    train, validation = train_test(rest, validation_size)
    present = pairs.index
    return {
        name: pairs.loc[rows[np.isin(rows, present)]]
        for name, rows in (("train", train), ("validation", validation), ("test", test))
    }


def find_linked_groups(pairs: pd.DataFrame, group_column: str | None = None) -> np.ndarray:
    """Label rows that must stay together: same context, same question, or same ``group_column`` value.

    Texts are compared by :func:`~ft_helpers.data.normalize_text`, so texts that differ only in case,
    punctuation or spacing count as the same. Links are transitive (a connected component).

    Args:
        pairs: Rows with ``question`` and ``context`` columns.
        group_column: Optional extra column whose equal values must also stay together (e.g. ``"ticker"``).

    Returns:
        One integer label per row; rows with the same label must share a split.
    """
    parent = np.arange(len(pairs))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    keys = [pairs["context"].map(normalize_text), pairs["question"].map(normalize_text)]
    if group_column is not None:
        if group_column not in pairs.columns:
            raise QADataError(
                f"Group column {group_column!r} not found. Available columns: {', '.join(map(str, pairs.columns))}."
            )
        if pairs[group_column].isna().any():
            raise QADataError(f"Group column {group_column!r} has missing values; fill or drop them first.")
        keys.append(pairs[group_column].astype(str).map(normalize_text))
    for key in keys:
        first_row: dict[str, int] = {}
        for row, value in enumerate(key):
            if value in first_row:
                a, b = find(row), find(first_row[value])
                if a != b:
                    parent[a] = b
            else:
                first_row[value] = row
    return np.array([find(i) for i in range(len(pairs))])


def split_grouped(
    pairs: pd.DataFrame,
    test_size: float = 0.1,
    validation_size: float = 0.1,
    seed: int = 42,
    group_column: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Split so that no context and no question appears in more than one split.

    "The same" includes texts that differ only in case, punctuation or spacing (see
    :func:`~ft_helpers.data.normalize_text`).

    Rows linked by a shared context or question (see :func:`find_linked_groups`) move as one group.
    Groups are shuffled with ``seed`` and poured into test, then validation, until each is full; a group
    that would overflow them goes to train. Sizes stay close to the requested fractions.

    Args:
        pairs: Rows from :func:`~ft_helpers.data.load_qa_pairs`.
        test_size: Target fraction of all rows for test.
        validation_size: Target fraction of the non-test rows for validation.
        seed: Seed of the group shuffle.
        group_column: Optional column to hold out whole, e.g. ``"ticker"`` for unseen companies in test.

    Returns:
        ``{"train": ..., "validation": ..., "test": ...}``, each in the original row order.

    Raises:
        QADataError: The rows form too few independent groups to fill all three splits.
    """
    _check_sizes(len(pairs), test_size, validation_size)
    labels = find_linked_groups(pairs, group_column)
    targets = {"test": math.ceil(test_size * len(pairs))}
    targets["validation"] = math.ceil(validation_size * (len(pairs) - targets["test"]))
    which = _pour_groups(labels, targets, seed)
    return _checked_splits(pairs, which, labels, group_column)


def _pour_groups(labels: np.ndarray, targets: dict[str, int], seed: int) -> np.ndarray:
    """Shuffle the groups and pour each into the first split of ``targets`` it still fits in, else train."""
    group_ids, sizes = np.unique(labels, return_counts=True)
    filled = dict.fromkeys(targets, 0)
    assignment: dict[int, str] = {}
    for i in np.random.default_rng(seed).permutation(len(group_ids)):
        split = "train"
        for candidate in targets:
            if filled[candidate] + sizes[i] <= targets[candidate]:
                split = candidate
                filled[candidate] += sizes[i]
                break
        assignment[int(group_ids[i])] = split
    return np.array([assignment[int(label)] for label in labels])


def _checked_splits(
    pairs: pd.DataFrame, which: np.ndarray, labels: np.ndarray, group_column: str | None
) -> dict[str, pd.DataFrame]:
    splits = {name: pairs[which == name] for name in SPLIT_NAMES}
    empty = [name for name, frame in splits.items() if len(frame) == 0]
    if empty:
        group_ids, sizes = np.unique(labels, return_counts=True)
        by = "shared contexts/questions" + (f" and {group_column!r}" if group_column else "")
        raise QADataError(
            f"Cannot make a grouped split: {', '.join(empty)} would be empty. The {len(pairs)} rows form "
            f"{len(group_ids)} groups linked by {by}; the largest holds {sizes.max()} rows. "
            "Use more distinct data, a coarser group column, or SPLIT='reference'."
        )
    return splits


#: The column :func:`add_test_set` adds: True on the rows of a separate test file.
TEST_SET_COLUMN = "test_set"


def add_test_set(pairs: pd.DataFrame, test_pairs: pd.DataFrame) -> pd.DataFrame:
    """Append the pairs of a separate test file, marked, so that :func:`split_qa_pairs` tests on exactly them.

    Their contexts also join the search corpus, like every other context in the data.

    Args:
        pairs: Rows from :func:`~ft_helpers.data.load_qa_pairs` (to train and validate on).
        test_pairs: Rows of the test file, loaded the same way.

    Returns:
        Both, with a column ``test_set`` (True on the test file's rows, which are numbered after the others).

    Raises:
        QADataError: Either already has a ``test_set`` column.
    """
    for name, frame in (("DATASET", pairs), ("TEST_DATASET", test_pairs)):
        if TEST_SET_COLUMN in frame.columns:
            raise QADataError(
                f"{name} has a column named {TEST_SET_COLUMN!r}, which marks the test file's rows here: rename it."
            )
    start = int(pairs.index.max()) + 1
    test = test_pairs.set_axis(pd.RangeIndex(start, start + len(test_pairs)))
    combined = pd.concat([pairs.assign(**{TEST_SET_COLUMN: False}), test.assign(**{TEST_SET_COLUMN: True})])
    combined.attrs = dict(pairs.attrs)
    return combined


def split_with_test_set(
    pairs: pd.DataFrame, validation_size: float = 0.1, seed: int = 42, group_column: str | None = None
) -> dict[str, pd.DataFrame]:
    """Test on the rows marked by :func:`add_test_set`; split the others into train and validation, grouped.

    Rows that share a context or a question (or a ``group_column`` value) with a test row, directly or
    through other rows, are left out of train and validation, with a warning that counts them.

    Args:
        pairs: Output of :func:`add_test_set`.
        validation_size: Fraction of the remaining rows for validation.
        seed: Seed of the group shuffle.
        group_column: Optional column whose values must also stay in one split.

    Returns:
        ``{"train": ..., "validation": ..., "test": ...}``.
    """
    marked = pairs[TEST_SET_COLUMN].to_numpy(dtype=bool)
    labels = find_linked_groups(pairs, group_column)
    linked = np.isin(labels, labels[marked]) & ~marked
    if linked.any():
        warnings.warn(
            f"{linked.sum()} row(s) of DATASET share a question or passage"
            + (f" (or {group_column!r})" if group_column else "")
            + " with TEST_DATASET and are left out of training and validation.",
            stacklevel=3,
        )
    kept = ~linked
    rest = int((kept & ~marked).sum())
    if rest < MIN_ROWS:
        raise QADataError(f"Too few rows left to train and validate on: {rest}, need at least {MIN_ROWS}.")
    which = np.where(marked, "test", "train").astype(object)
    which[kept & ~marked] = _pour_groups(
        labels[kept & ~marked], {"validation": math.ceil(validation_size * rest)}, seed
    )
    return _checked_splits(pairs[kept], which[kept], labels[kept], group_column)


def split_qa_pairs(
    pairs: pd.DataFrame,
    strategy: str = "grouped",
    test_size: float = 0.1,
    validation_size: float = 0.1,
    seed: int = 42,
    group_column: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Split pairs with the named strategy: ``"grouped"`` (leakage-free) or ``"reference"``.

    Args:
        pairs: Rows from :func:`~ft_helpers.data.load_qa_pairs`.
        strategy: ``"grouped"`` (:func:`split_grouped`) or ``"reference"`` (:func:`split_reference`).
        test_size: Fraction of all rows for test.
        validation_size: Fraction of the non-test rows for validation.
        seed: Shuffle seed.
        group_column: Only for ``"grouped"``: a column to hold out whole.

    Returns:
        ``{"train": ..., "validation": ..., "test": ...}``. With a separate test file (see
        :func:`add_test_set`) the grouped split tests on its rows and splits the others into train and
        validation; the reference split leaves the test file's rows out and splits the others as usual.
    """
    if TEST_SET_COLUMN in pairs.columns and pairs[TEST_SET_COLUMN].any():
        if strategy == "grouped":
            return split_with_test_set(pairs, validation_size, seed, group_column)
        pairs = pairs[~pairs[TEST_SET_COLUMN]]  # the reference split splits DATASET alone, as the reference did
    if strategy == "grouped":
        return split_grouped(pairs, test_size, validation_size, seed, group_column)
    if strategy == "reference":
        if group_column is not None:
            raise ValueError("group_column only applies to the 'grouped' split.")
        return split_reference(pairs, test_size, validation_size, seed)
    raise ValueError(f"Unknown split strategy {strategy!r}; choose one of {', '.join(SPLIT_STRATEGIES)}.")


def report_leakage(splits: dict[str, pd.DataFrame], group_column: str | None = None) -> pd.DataFrame:
    """Count what each pair of splits shares: distinct contexts, questions (and groups), and affected rows.

    Texts are compared by :func:`~ft_helpers.data.normalize_text` (case, punctuation and spacing folded),
    as :func:`split_grouped` groups them.

    Args:
        splits: Output of a split function, e.g. ``{"train": ..., "validation": ..., "test": ...}``.
        group_column: Also count shared values of this column, when given.

    Returns:
        One row per pair of splits (``"train & test"``, ...) with columns ``shared_contexts`` and
        ``shared_questions`` (distinct texts found in both), ``shared_<group_column>`` when given, and
        ``affected_rows``: rows of the second split that share any of these with the first.
        All zeros means no leakage.
    """
    columns = {"shared_contexts": "context", "shared_questions": "question"}
    if group_column is not None:
        columns[f"shared_{group_column}"] = group_column
    keys = {
        name: {label: frame[col].map(normalize_text) for label, col in columns.items()}
        for name, frame in splits.items()
    }
    rows = {}
    for a, b in combinations(list(splits), 2):
        row, affected = {}, np.zeros(len(splits[b]), dtype=bool)
        for label in columns:
            seen = set(keys[a][label])
            row[label] = len(seen & set(keys[b][label]))
            affected |= keys[b][label].isin(seen).to_numpy()
        row["affected_rows"] = int(affected.sum())
        rows[f"{a} & {b}"] = row
    return pd.DataFrame.from_dict(rows, orient="index")
