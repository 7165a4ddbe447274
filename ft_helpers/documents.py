"""Read your own documents (.txt, .md, .pdf, .html) and cut them into passages that fit the model's window.

The first step from documents to training pairs (``python -m ft_helpers pairs``): each document keeps an id (its
path inside the folder) and each passage an id (``<doc_id>#<n>``), so the grouped split can keep the passages of
one document together and test on documents never trained on. ``.pdf`` needs ``pypdf`` (the ``[pairs]`` extra).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

from .data import QADataError

#: Tokens per passage unless told otherwise (or the model's window, if smaller): passages this size make focused
#: questions, and all-MiniLM-L6-v2 was trained on inputs of up to 128 tokens.
PASSAGE_TOKENS = 128
#: File types that :func:`read_documents` reads, by suffix.
DOCUMENT_SUFFIXES = (".txt", ".md", ".pdf", ".html", ".htm")


@dataclass(frozen=True)
class Passage:
    """A piece of a document, small enough for the model's window."""

    doc_id: str
    passage_id: str
    text: str


def _read_pdf(path: Path) -> str:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise ImportError(
            f"Reading {str(path)!r} needs pypdf: pip install pypdf (or the pairs extra: pip install -e '.[pairs]')."
        ) from None
    import logging

    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.ERROR)  # a broken file gets our one line below, not pypdf's warnings before it
    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise QADataError(f"Cannot read {str(path)!r}: the PDF is encrypted. Save a copy without a password.")
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except QADataError:
        raise
    except Exception as err:  # pypdf raises many types for broken files; the user needs the file and the reason
        reason = " ".join(str(err).split())[:120] or type(err).__name__
        raise QADataError(
            f"Cannot read {str(path)!r} as PDF ({reason}). Repair or re-export it, or move it out of the folder."
        ) from None
    finally:
        pypdf_log.setLevel(level)


class _TextOfHtml(HTMLParser):
    """Collect the visible text of an HTML page: no scripts, styles or tags; block elements end a paragraph."""

    SKIPPED: ClassVar[set[str]] = {"script", "style", "noscript", "template", "head"}
    BLOCKS: ClassVar[set[str]] = {"p", "div", "br", "li", "tr", "table", "section", "article", "h1", "h2", "h3", "h4"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIPPED:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):  # cells of a row stay apart
            self.parts.append(" ")
        if tag in self.SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def read_document(path: str | Path) -> str:
    """Return the text of one .txt, .md, .pdf or .html file (HTML: the visible text only).

    Args:
        path: The file.

    Returns:
        Its text, with paragraphs separated by blank lines where the format marks them.

    Raises:
        QADataError: The type is not supported, or the file cannot be read (not UTF-8, a broken PDF).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in DOCUMENT_SUFFIXES:
        raise QADataError(f"Cannot read {str(path)!r}: use one of {', '.join(DOCUMENT_SUFFIXES)}.")
    if suffix == ".pdf":
        return _read_pdf(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise QADataError(
            f"Cannot read {str(path)!r}: it is not UTF-8 text (byte {err.start}). Save it as UTF-8, or convert it "
            "with iconv."
        ) from None
    if suffix == ".md":  # a heading's marks are not words: "## Results" reads "Results"
        text = re.sub(r"^\s{0,3}#{1,6}\s+", "", text, flags=re.MULTILINE)
    if suffix in (".html", ".htm"):
        parser = _TextOfHtml()
        parser.feed(text)
        parser.close()
        text = "".join(parser.parts)
    return text


def read_documents(source: str | Path) -> dict[str, str]:
    """Read a folder of documents (searched recursively, in name order) or a single document file.

    Files of other types in a folder are left out, and hidden files and folders (``.git``) are skipped.

    Args:
        source: A folder, or one .txt/.md/.pdf/.html file.

    Returns:
        ``{doc_id: text}``, where ``doc_id`` is the file's path inside the folder (its name for a single file),
        with ``/`` separators. Documents with no text (an image-only PDF, say) are kept with empty text, so
        their count can be reported; :func:`split_documents` leaves them out.

    Raises:
        QADataError: The path does not exist, the folder holds no document, or a document cannot be read.
    """
    path = Path(source).expanduser()
    if path.is_file():
        return {path.name: read_document(path)}
    if not path.is_dir():
        raise QADataError(
            f"Documents not found: {str(path)!r} is neither a folder nor a file (working directory: {Path.cwd()})."
        )
    files = sorted(
        item
        for item in path.rglob("*")
        if item.is_file()
        and item.suffix.lower() in DOCUMENT_SUFFIXES
        and not any(part.startswith(".") for part in item.relative_to(path).parts)
    )
    if not files:
        raise QADataError(
            f"No documents in {str(path)!r}: it holds no {', '.join(DOCUMENT_SUFFIXES)} file. Point --documents at "
            "the folder that holds them."
        )
    return {item.relative_to(path).as_posix(): read_document(item) for item in files}


#: A sentence ends at ., ! or ? followed by space; paragraphs end at a blank line.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PARAGRAPH_END = re.compile(r"\n\s*\n")


def _split_paragraphs(text: str) -> list[tuple[str, bool]]:
    """The sentences of a text, each with whether it opens a paragraph."""
    sentences = []
    for paragraph in _PARAGRAPH_END.split(text):
        first = True
        for sentence in _SENTENCE_END.split(paragraph):
            sentence = " ".join(sentence.split())
            if sentence:
                sentences.append((sentence, first))
                first = False
    return sentences


def split_sentences(text: str) -> list[str]:
    """Split a text into sentences (at ., ! or ? before a space, and at blank lines), with spacing collapsed."""
    return [sentence for sentence, _ in _split_paragraphs(text)]


def _join(pieces: list[tuple[str, int, bool]]) -> str:
    """Join sentences into a passage: a space within a paragraph, a line break where a paragraph (or heading) ends."""
    return "".join(
        ("\n" if opens and index else " " if index else "") + text for index, (text, _, opens) in enumerate(pieces)
    )


def split_document(text: str, tokenizer: Any, max_tokens: int, overlap: int = 0) -> list[str]:
    """Cut a document into passages of whole sentences, each at most ``max_tokens`` tokens.

    Sentences are packed in order until the next one would not fit; a new paragraph (or a heading) starts on a new
    line. Each passage after the first repeats the last sentences of the one before, up to ``overlap`` tokens, so a
    fact split across a boundary is whole in one of them. A sentence longer than ``max_tokens`` is the one thing cut
    inside, at token boundaries (:func:`~ft_helpers.training.chunk_passage`).

    Args:
        text: The document's text.
        tokenizer: The embedding model's fast tokenizer (``model.tokenizer``), which counts the tokens.
        max_tokens: Tokens per passage, without special tokens.
        overlap: Tokens of whole sentences a passage may repeat from the one before (0: none).

    Returns:
        The passages in document order (none for a text without words).

    Raises:
        ValueError: ``max_tokens`` is below 1 or ``overlap`` not below ``max_tokens``.
    """
    from .training import chunk_passage

    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError(f"Need max_tokens >= 1 and 0 <= overlap < max_tokens, got {max_tokens} and {overlap}.")
    pieces: list[tuple[str, int, bool]] = []  # (text, tokens, opens a paragraph)
    sentences = _split_paragraphs(text)
    if not sentences:
        return []
    encoded = tokenizer([sentence for sentence, _ in sentences], add_special_tokens=False, verbose=False)
    for (sentence, opens), ids in zip(sentences, encoded["input_ids"], strict=True):
        if len(ids) <= max_tokens:
            pieces.append((sentence, len(ids), opens))
            continue
        for index, part in enumerate(chunk_passage(sentence, tokenizer, max_tokens, overlap=0)):
            count = len(tokenizer(part, add_special_tokens=False, verbose=False)["input_ids"])
            pieces.append((part, count, opens and index == 0))
    passages: list[str] = []
    current: list[tuple[str, int, bool]] = []
    for piece in pieces:
        if current and sum(count for _, count, _ in current) + piece[1] > max_tokens:
            passages.append(_join(current))
            kept: list[tuple[str, int, bool]] = []
            for earlier in reversed(current):  # the overlap: whole sentences from the end, while they fit
                size = sum(count for _, count, _ in kept) + earlier[1]
                if size > overlap or size + piece[1] > max_tokens:
                    break
                kept.insert(0, earlier)
            current = kept
        current.append(piece)
    if current:
        passages.append(_join(current))
    return passages


def load_tokenizer(model: str | Path) -> tuple[Any, int]:
    """Load a sentence-transformer's tokenizer, and the tokens a passage may have in its window.

    The window is the model's ``max_seq_length`` (from ``sentence_bert_config.json``; for another model, the
    tokenizer's limit, at most 512) less its special tokens ([CLS] and [SEP] for BERT-like models).

    Args:
        model: A Hub id or a local model folder.

    Returns:
        The tokenizer, and the passage window in tokens (254 for all-MiniLM-L6-v2).
    """
    from huggingface_hub import hf_hub_download
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    folder = Path(model).expanduser()
    try:
        config = (
            folder / "sentence_bert_config.json"
            if folder.is_dir()
            else Path(hf_hub_download(str(model), "sentence_bert_config.json"))
        )
        length = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
    except Exception:  # not a sentence-transformer (no such file): the tokenizer's own limit
        length = None
    length = int(length or min(tokenizer.model_max_length, 512))
    return tokenizer, length - tokenizer.num_special_tokens_to_add()


def split_documents(
    documents: dict[str, str], tokenizer: Any, max_tokens: int, overlap: int = 0, min_tokens: int = 0
) -> list[Passage]:
    """Cut every document into passages (:func:`split_document`) and give each its document's id and its own.

    Args:
        documents: ``{doc_id: text}`` from :func:`read_documents`.
        tokenizer: The embedding model's fast tokenizer.
        max_tokens: Tokens per passage, without special tokens (the model's window less its special tokens).
        overlap: Tokens of whole sentences a passage may repeat from the one before.
        min_tokens: Leave out passages with fewer tokens (a lone heading makes a poor question).

    Returns:
        The passages, document by document, with ids ``<doc_id>#<n>`` (n from 1).
    """
    passages = []
    for doc_id, text in documents.items():
        pieces = split_document(text, tokenizer, max_tokens, overlap)
        if min_tokens > 0 and pieces:
            counts = [len(ids) for ids in tokenizer(pieces, add_special_tokens=False, verbose=False)["input_ids"]]
            pieces = [piece for piece, count in zip(pieces, counts, strict=True) if count >= min_tokens]
        passages.extend(Passage(doc_id, f"{doc_id}#{n}", piece) for n, piece in enumerate(pieces, start=1))
    return passages
