"""Load question/context pairs from the Hugging Face Hub or a local file, and check them."""

from __future__ import annotations

import json
import unicodedata
import warnings
from pathlib import Path

import pandas as pd

#: File types that :func:`load_qa_pairs` reads, by suffix.
SUPPORTED_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet")
#: Suffixes that mark a local file we cannot read (so it is not mistaken for a Hub id).
OTHER_FILE_SUFFIXES = (".txt", ".tsv", ".xls", ".xlsx", ".zip", ".gz", ".arrow", ".pkl")


class QADataError(ValueError):
    """Raised when question/context data is missing, unreadable or malformed."""


def normalize_text(text: str) -> str:
    """Reduce a text to the key under which texts that differ only in case, punctuation or spacing are equal.

    The key keeps the letters and digits of the text, case-folded, in order (after Unicode NFKC
    normalisation, so e.g. full-width and ligature forms match their plain forms). ``"Item 6. [Reserved]"``,
    ``"ITEM 6 - RESERVED"`` and ``"Item 6—Reserved"`` share one key. The split, the leakage report and the
    duplicate-aware corpus all compare texts with it.

    Args:
        text: Any string.

    Returns:
        The comparison key (not meant for display).
    """
    return "".join(char for char in unicodedata.normalize("NFKC", str(text)).casefold() if char.isalnum())


def read_table(source: str | Path) -> pd.DataFrame:
    """Read a local .csv, .json, .jsonl or .parquet file into a DataFrame.

    A ``.json`` file may also be a LlamaIndex ``EmbeddingQAFinetuneDataset`` (see :func:`read_llamaindex`).

    Args:
        source: Path to the file.

    Returns:
        The file's rows, with its own column names.

    Raises:
        QADataError: The file does not exist, has an unsupported suffix or cannot be parsed.
    """
    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if path.is_dir():
        raise QADataError(
            f"{str(path)!r} is a folder, not a file: give the data file inside it ({', '.join(SUPPORTED_SUFFIXES)})."
        )
    if suffix not in SUPPORTED_SUFFIXES:
        raise QADataError(
            f"Cannot read {str(path)!r}: unsupported file type {suffix or '(none)'!r}. "
            f"Use one of {', '.join(SUPPORTED_SUFFIXES)}, or a Hugging Face Hub dataset id."
        )
    if not path.is_file():
        raise QADataError(f"Data file not found: {str(path)!r} (working directory: {Path.cwd()}).")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str)  # a CSV holds text: "2023" stays a question, not a number
            _check_delimiter(path, frame)
            return frame
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True)
        try:  # .json: a LlamaIndex dataset, a list of records, or JSON Lines saved with a .json suffix
            content = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return pd.read_json(path, lines=True)
        if isinstance(content, dict) and set(content) >= LLAMAINDEX_KEYS:
            return read_llamaindex(content, str(path))
        try:
            return pd.read_json(path)
        except ValueError:  # a lone JSON Lines record
            return pd.read_json(path, lines=True)
    except QADataError:
        raise
    except UnicodeDecodeError as err:
        raise QADataError(
            f"Could not read {str(path)!r}: it is not UTF-8 text (byte {err.start}: {err.reason}). "
            "Save it as UTF-8 (e.g. from a spreadsheet: CSV UTF-8), or convert it with iconv."
        ) from None
    except Exception as err:  # pandas raises many types; the user needs the file name and the reason
        raise QADataError(f"Could not read {str(path)!r} as {suffix[1:]}: {type(err).__name__}: {err}") from None


#: The keys of a LlamaIndex ``EmbeddingQAFinetuneDataset`` saved with ``save_json``.
LLAMAINDEX_KEYS = {"queries", "corpus", "relevant_docs"}


def read_llamaindex(content: dict, name: str = "the data") -> pd.DataFrame:
    """Turn a LlamaIndex ``EmbeddingQAFinetuneDataset`` (queries, corpus, relevant_docs) into question/context rows.

    Each (query, relevant passage) becomes one row, so a question with several relevant passages gives
    several rows and a passage shared by questions appears in each of their rows; the split keeps them
    together and the duplicate-aware corpus merges them back. Passages that no query points to are left
    out, with a warning that counts them.

    Args:
        content: The parsed JSON.
        name: What to call the source in messages.

    Returns:
        Columns ``question``, ``context``, ``query_id`` and ``doc_id``, in the file's query order.

    Raises:
        QADataError: A section is not a mapping, or a relevant id is not in the corpus or the queries.
    """
    queries, corpus, relevant = (content[key] for key in ("queries", "corpus", "relevant_docs"))
    for key, section in (("queries", queries), ("corpus", corpus), ("relevant_docs", relevant)):
        if not isinstance(section, dict):
            raise QADataError(f"{name}: '{key}' must map ids to values, got {type(section).__name__}.")
    rows = []
    for query_id, doc_ids in relevant.items():
        if query_id not in queries:
            raise QADataError(f"{name}: relevant_docs names query {query_id!r}, which is not in 'queries'.")
        for doc_id in [doc_ids] if isinstance(doc_ids, str) else doc_ids:
            if doc_id not in corpus:
                raise QADataError(f"{name}: query {query_id!r} names passage {doc_id!r}, which is not in 'corpus'.")
            rows.append(
                {"question": queries[query_id], "context": corpus[doc_id], "query_id": query_id, "doc_id": doc_id}
            )
    unused = len(set(corpus) - {row["doc_id"] for row in rows})
    if unused:
        warnings.warn(
            f"{name}: {unused} of {len(corpus)} passage(s) are relevant to no query and are left out.", stacklevel=4
        )
    return pd.DataFrame(rows, columns=["question", "context", "query_id", "doc_id"])


def _check_delimiter(path: Path, frame: pd.DataFrame) -> None:
    """Refuse a CSV that parsed into one column whose name holds another common delimiter."""
    if len(frame.columns) != 1:
        return
    header = str(frame.columns[0])
    for delimiter, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
        if delimiter in header:
            raise QADataError(
                f"{str(path)!r} read as one column {header[:60]!r}: it looks {name}-separated, not comma-separated. "
                "Save it with commas, or convert it, e.g. pd.read_csv(path, sep=...).to_csv('qa.csv', index=False)."
            )


def load_hub_dataset(dataset_id: str, split: str = "train") -> pd.DataFrame:
    """Download one split of a Hugging Face Hub dataset into a DataFrame.

    Args:
        dataset_id: Hub id such as ``"philschmid/finanical-rag-embedding-dataset"``.
        split: Which split of the Hub dataset to load.

    Returns:
        The split's rows.

    Raises:
        QADataError: The Hub cannot be reached or has no such dataset; the message says how to use a local file.
    """
    from datasets import load_dataset

    try:
        return load_dataset(dataset_id, split=split).to_pandas()
    except Exception as err:  # connection errors, missing repos and offline mode all land here
        raise QADataError(
            f"Could not load {dataset_id!r} (split {split!r}) from the Hugging Face Hub: "
            f"{type(err).__name__}: {err}\n"
            "If you are offline or the Hub is blocked, download the data once and point DATASET at the local "
            f"file instead ({', '.join(SUPPORTED_SUFFIXES)}), e.g. DATASET = 'data/qa.csv'."
        ) from None


def validate_qa_pairs(
    frame: pd.DataFrame,
    question_column: str = "question",
    context_column: str = "context",
    drop_empty: bool = False,
) -> pd.DataFrame:
    """Check the question and context columns and return them renamed to ``question`` and ``context``.

    Other columns (a ``ticker`` to group by, say) are kept. Questions and contexts must be strings. The index
    is the row number in the source (0..n-1), kept when empty rows are dropped, so a row keeps its id.

    Args:
        frame: Raw rows, one question/context pair each.
        question_column: Name of the column holding the questions.
        context_column: Name of the column holding the passages that answer them.
        drop_empty: Drop rows whose question or context is empty or missing (with a warning naming
            them) instead of raising.

    Returns:
        A copy with columns ``question``, ``context`` first, indexed by source row number.

    Raises:
        QADataError: A column is missing (the message lists the columns that exist), no rows are left,
            a question or context is not a string (a number, list or dict: the message names column and row),
            or (unless ``drop_empty``) a question or context is empty or missing (the message names the rows).
    """
    available = [str(c) for c in frame.columns]
    missing = [c for c in (question_column, context_column) if c not in frame.columns]
    if missing:
        raise QADataError(
            f"Column(s) {', '.join(repr(c) for c in missing)} not found. Available columns: {', '.join(available)}. "
            "Set QUESTION_COLUMN / CONTEXT_COLUMN to the right names."
        )
    if question_column == context_column:
        raise QADataError(f"The question and context columns must differ (both are {question_column!r}).")
    if len(frame) == 0:
        raise QADataError("The data has no rows.")

    for role, source in (("question", question_column), ("context", context_column)):
        if role in frame.columns and role not in (question_column, context_column):
            raise QADataError(
                f"The data has a column named {role!r} besides the {role} column {source!r}, and renaming {source!r} "
                f"to {role!r} would replace it. Rename or drop the column {role!r} first, or use it as the {role} "
                "column (QUESTION_COLUMN / CONTEXT_COLUMN)."
            )

    out = frame.reset_index(drop=True)
    others = [c for c in out.columns if c not in (question_column, context_column)]
    out = pd.DataFrame(
        {"question": out[question_column], "context": out[context_column], **{c: out[c] for c in others}}
    )
    dropped: list[int] = []
    for role, source in (("question", question_column), ("context", context_column)):
        values = out[role]
        empty = values.isna() | values.astype(str).str.strip().eq("")
        if empty.any():
            rows = empty[empty].index.tolist()
            shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
            message = f"{len(rows)} row(s) have an empty or missing {role} (column {source!r}; rows {shown})"
            if not drop_empty:
                raise QADataError(f"{message}. Drop them with drop_empty=True, or fill them first.")
            warnings.warn(f"{message}: dropped.", stacklevel=3)
            dropped.extend(rows)
    out = out.drop(index=sorted(set(dropped)))
    if len(out) == 0:
        raise QADataError("No rows left after dropping rows with an empty question or context.")
    for role, source in (("question", question_column), ("context", context_column)):
        not_text = out[role].map(lambda value: not isinstance(value, str))
        if not_text.any():
            row = not_text.idxmax()
            value = out.at[row, role]
            raise QADataError(
                f"Column {source!r} holds {not_text.sum()} value(s) that are not text, e.g. row {row}: "
                f"{type(value).__name__} {str(value)[:60]!r}. Questions and contexts must be strings: "
                "convert or flatten them first, or check that the right column is named."
            )
    out.attrs["source_rows"] = len(frame)  # lets split_reference shuffle exactly as over the source
    return out


def load_qa_pairs(
    source: str | Path | pd.DataFrame,
    question_column: str = "question",
    context_column: str = "context",
    hub_split: str = "train",
    drop_empty: bool = False,
) -> pd.DataFrame:
    """Load question/context pairs from a Hub id, a local file or a DataFrame, and validate them.

    Args:
        source: A Hugging Face Hub dataset id, a path to a .csv/.json/.jsonl/.parquet file, or a DataFrame.
        question_column: Column holding the questions.
        context_column: Column holding the passages that answer them.
        hub_split: Split to load when ``source`` is a Hub id.
        drop_empty: Drop (with a warning) rather than reject rows with an empty question or context.

    Returns:
        One row per pair, indexed by source row number, with columns ``question`` and ``context`` plus any
        others the data had.

    Raises:
        QADataError: See :func:`read_table`, :func:`load_hub_dataset` and :func:`validate_qa_pairs`.
    """
    frame = source if isinstance(source, pd.DataFrame) else read_source(source, hub_split)
    return validate_qa_pairs(frame, question_column, context_column, drop_empty=drop_empty)


def read_source(source: str | Path, hub_split: str = "train") -> pd.DataFrame:
    """Read a local file (:func:`read_table`) or, for anything that does not look like a path, a Hub dataset."""
    path = Path(source).expanduser()
    looks_local = (
        path.exists()
        or path.suffix.lower() in (*SUPPORTED_SUFFIXES, *OTHER_FILE_SUFFIXES)
        or str(source).startswith((".", "/", "~"))
    )
    return read_table(path) if looks_local else load_hub_dataset(str(source), split=hub_split)


def load_passages(source: str | Path, column: str = "context", hub_split: str = "train") -> list[str]:
    """Load the distinct, non-empty passages of one column of a Hub dataset or a local file, in file order.

    Args:
        source: A Hub dataset id or a local .csv/.json/.jsonl/.parquet file.
        column: The column holding the passages.
        hub_split: Split to load when ``source`` is a Hub id.

    Returns:
        Each passage once, first occurrence first.

    Raises:
        QADataError: The data cannot be read, has no such column, or no passage in it.
    """
    frame = read_source(source, hub_split)
    if column not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:10])) + (", ..." if len(frame.columns) > 10 else "")
        raise QADataError(f"{source} has no column {column!r} (its columns: {shown}): name it with --context-column.")
    texts = [str(text) for text in frame[column] if isinstance(text, str) and text.strip()]
    if not texts:
        raise QADataError(f"{source}'s column {column!r} holds no passage.")
    return list(dict.fromkeys(texts))
