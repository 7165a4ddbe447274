"""Load question/context pairs from the Hugging Face Hub or a local file, and check them."""

from __future__ import annotations

import csv
import io
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


#: What a missing column's message tells to do (a test file's says that the options name both files' columns).
COLUMN_ADVICE = "Set QUESTION_COLUMN / CONTEXT_COLUMN to the right names."


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


def read_table(source: str | Path, skip_bad_rows: bool = False) -> pd.DataFrame:
    """Read a local .csv, .json, .jsonl or .parquet file into a DataFrame.

    A ``.json`` file may also be a LlamaIndex ``EmbeddingQAFinetuneDataset`` (see :func:`read_llamaindex`). A CSV's
    records are checked first (:func:`find_bad_csv_records`): a stray quote would otherwise merge fields silently.

    Args:
        source: Path to the file.
        skip_bad_rows: Drop a CSV's malformed records (with a warning that counts them) instead of refusing the file.

    Returns:
        The file's rows, with its own column names.

    Raises:
        QADataError: The file does not exist, has an unsupported suffix, cannot be parsed, is a CSV with a malformed
            record (unless ``skip_bad_rows``), or is JSON of another shape than records.
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
            frame = read_csv_checked(path, skip_bad_rows)
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
        _check_json_shape(path, content)
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


def find_bad_csv_records(text: str) -> list[tuple[int, int, str]]:
    """Find the records of a CSV text that do not parse cleanly: an unclosed or stray quote, or a wrong field count.

    Python's ``csv`` reader in strict mode reads the records as pandas does (comma, double quotes, quoted newlines),
    and says where a quote is not closed; a record with another number of fields than the header is bad too (pandas
    would fill the missing fields with NaN, or shift them, without a word). Blank lines are skipped, as pandas does.

    Args:
        text: The whole CSV file's text, header first.

    Returns:
        ``(first line, last line, reason)`` of each bad record, lines numbered from 1 as an editor shows them.
    """
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text) + 1))  # a 100,000-character question is one field, not an error
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        bad: list[tuple[int, int, str]] = []
        width = None
        while True:
            start = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                return bad
            except csv.Error as err:
                unclosed = "unexpected end of data" in str(err)
                reason = "a quote opened here is never closed" if unclosed else f"a quote does not end a field ({err})"
                bad.append((start, reader.line_num, reason))
                continue
            if not any(field.strip() for field in record):
                continue  # a blank line
            if width is None:
                width = len(record)
            elif len(record) != width:
                bad.append((start, reader.line_num, f"{len(record)} field(s) where the header has {width}"))
    finally:
        csv.field_size_limit(limit)


def read_csv_checked(path: Path, skip_bad_rows: bool = False) -> pd.DataFrame:
    """Read a CSV file as text columns, after checking that every record parses cleanly.

    Args:
        path: The CSV file.
        skip_bad_rows: Drop the lines of malformed records (warning how many) instead of refusing the file.

    Returns:
        The rows, every cell a string (``"2023"`` stays a question, not a number) or NaN where empty.

    Raises:
        QADataError: A record is malformed (the message names its first line) and ``skip_bad_rows`` is False.
    """
    text = path.read_bytes().decode("utf-8-sig")
    bad = find_bad_csv_records(text)
    if not bad:
        return pd.read_csv(io.StringIO(text), dtype=str)  # the text already read, not the file again
    first, _, reason = bad[0]
    if first == 1:
        raise QADataError(f"{str(path)!r} line 1, the header: {reason}. Fix the header.")
    if not skip_bad_rows:
        raise QADataError(
            f"{str(path)!r} line {first}: {reason}; a stray quote or comma would merge or shift this row's fields. "
            f"Fix the line, or pass skip_bad_rows=True to drop the {len(bad)} bad record(s)."
        )
    lines = text.splitlines(keepends=True)
    dropped = {number for start, end, _ in bad for number in range(start, end + 1)}
    kept = "".join(line for number, line in enumerate(lines, start=1) if number not in dropped)
    shown = ", ".join(str(start) if start == end else f"{start}-{end}" for start, end, _ in bad[:10])
    warnings.warn(
        f"{path.name}: dropped {len(bad)} malformed record(s), {len(dropped)} line(s): {shown}"
        f"{', ...' if len(bad) > 10 else ''}.",
        stacklevel=5,
    )
    return pd.read_csv(io.StringIO(kept), dtype=str)


def _check_json_shape(path: Path, content: object) -> None:
    """Refuse JSON that is not a list of records (nor columns), saying what shape it has and what to give instead."""
    name = str(path)
    if isinstance(content, list):
        odd = next((item for item in content if not isinstance(item, dict)), None)
        if odd is not None:
            raise QADataError(
                f"{name!r} is a JSON list of {type(odd).__name__} values, not of records: give one object per row, "
                'e.g. [{"question": "...", "context": "..."}].'
            )
        return
    if not isinstance(content, dict) or not content:
        return  # pandas says what is wrong with these
    values = list(content.values())
    if "data" in content and isinstance(content["data"], list):
        first = content["data"][0] if content["data"] else {}
        if isinstance(first, dict) and "paragraphs" in first:
            raise QADataError(
                f"{name!r} is SQuAD-style (data -> paragraphs -> context and qas), not a list of records: flatten "
                'it to one {"question": ..., "context": ...} record per question first.'
            )
        raise QADataError(
            f"{name!r} wraps its records in an object (under 'data'): save the list content['data'] alone, as a "
            ".json list of records or a .jsonl file."
        )
    if set(content) & LLAMAINDEX_KEYS:
        missing = ", ".join(sorted(LLAMAINDEX_KEYS - set(content)))
        raise QADataError(f"{name!r} looks like a LlamaIndex dataset without {missing}: save it whole (save_json).")
    fields = {key for value in values if isinstance(value, dict) for key in value}
    if all(isinstance(value, dict) for value in values) and len(content) > len(fields):  # not pandas' columns orient
        shown = ", ".join(repr(key) for key in list(content)[:3])
        raise QADataError(
            f"{name!r} is an object keyed by id ({shown}, ...), not a list of records: save its values as a list, "
            "e.g. json.dump(list(data.values()), file)."
        )


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
    name: str = "The data",
    column_advice: str = COLUMN_ADVICE,
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
        name: What the column messages call the data, e.g. ``"TEST_DATASET 'test.csv'"``.
        column_advice: What a missing column's message tells to do.

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
        shown = ", ".join(available[:8]) + (f", ... ({len(available) - 8} more)" if len(available) > 8 else "")
        raise QADataError(
            f"{name}: column(s) {', '.join(repr(c) for c in missing)} not found. Available columns: {shown}. "
            f"{column_advice}"
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
    skip_bad_rows: bool = False,
    name: str | None = None,
    column_advice: str = COLUMN_ADVICE,
) -> pd.DataFrame:
    """Load question/context pairs from a Hub id, a local file or a DataFrame, and validate them.

    Args:
        source: A Hugging Face Hub dataset id, a path to a .csv/.json/.jsonl/.parquet file, or a DataFrame.
        question_column: Column holding the questions.
        context_column: Column holding the passages that answer them.
        hub_split: Split to load when ``source`` is a Hub id.
        drop_empty: Drop (with a warning) rather than reject rows with an empty question or context.
        skip_bad_rows: Drop (with a warning) rather than refuse a CSV's malformed records.
        name: What column messages call the data (default: the file or Hub id, or "The data" for a DataFrame).
        column_advice: What a missing column's message tells to do.

    Returns:
        One row per pair, indexed by source row number, with columns ``question`` and ``context`` plus any
        others the data had.

    Raises:
        QADataError: See :func:`read_table`, :func:`load_hub_dataset` and :func:`validate_qa_pairs`.
    """
    frame = source if isinstance(source, pd.DataFrame) else read_source(source, hub_split, skip_bad_rows)
    if name is None:
        name = "The data" if isinstance(source, pd.DataFrame) else repr(str(source))
    return validate_qa_pairs(
        frame, question_column, context_column, drop_empty=drop_empty, name=name, column_advice=column_advice
    )


def read_source(source: str | Path, hub_split: str = "train", skip_bad_rows: bool = False) -> pd.DataFrame:
    """Read a local file (:func:`read_table`) or, for anything that does not look like a path, a Hub dataset."""
    path = Path(source).expanduser()
    looks_local = (
        path.exists()
        or path.suffix.lower() in (*SUPPORTED_SUFFIXES, *OTHER_FILE_SUFFIXES)
        or str(source).startswith((".", "/", "~"))
    )
    return read_table(path, skip_bad_rows) if looks_local else load_hub_dataset(str(source), split=hub_split)


def load_passages(
    source: str | Path, column: str = "context", hub_split: str = "train", skip_bad_rows: bool = False
) -> list[str]:
    """Load the distinct, non-empty passages of one column of a Hub dataset or a local file, in file order.

    Args:
        source: A Hub dataset id or a local .csv/.json/.jsonl/.parquet file.
        column: The column holding the passages.
        hub_split: Split to load when ``source`` is a Hub id.
        skip_bad_rows: Drop (with a warning) rather than refuse a CSV's malformed records.

    Returns:
        Each passage once, first occurrence first.

    Raises:
        QADataError: The data cannot be read, has no such column, or no passage in it.
    """
    frame = read_source(source, hub_split, skip_bad_rows)
    if column not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:10])) + (", ..." if len(frame.columns) > 10 else "")
        raise QADataError(f"{source} has no column {column!r} (its columns: {shown}): name it with --context-column.")
    texts = [str(text) for text in frame[column] if isinstance(text, str) and text.strip()]
    if not texts:
        raise QADataError(f"{source}'s column {column!r} holds no passage.")
    return list(dict.fromkeys(texts))
