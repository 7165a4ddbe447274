"""Vector search with FAISS: smaller embeddings (fewer numbers, int8, binary), an index saved beside its passages.

Three precisions, each a FAISS index that stores what its name says:

- ``float32``: ``IndexFlatIP``, 4 bytes a number; exact cosine search on normalised embeddings.
- ``int8``: ``IndexScalarQuantizer`` with 8 bits a number, its per-number ranges learned from calibration
  embeddings (keep them apart from the corpus you score); the float question is scored against the decoded passages.
- ``binary``: sentence-transformers' ``quantize_embeddings(..., "ubinary")`` (1 bit a number) in
  ``IndexBinaryFlat``; Hamming distance picks ``rescore_multiplier`` times ``top_k`` candidates, which the float
  question then scores again (as sentence-transformers' ``semantic_search_faiss`` does), here as the cosine
  between the question and the passage's signs (+1 or -1 a number), so scores read like the other precisions'.

Embeddings cut to their first ``d`` numbers are normalised again, so cosine stays the score.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .evaluation import score_rankings
from .provenance import collect_environment

PRECISIONS = ("float32", "int8", "binary")
#: Candidates per result that binary search rescores with the float question.
RESCORE_MULTIPLIER = 4
#: The files of a saved index.
INDEX_FILE = "index.faiss"
PASSAGES_FILE = "passages.jsonl"
MANIFEST_FILE = "index.json"


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as error:
        raise ImportError("faiss is missing: pip install faiss-cpu") from error
    return faiss


def check_precision(precision: str) -> None:
    """Raise ValueError with the choices if ``precision`` is not one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")


def bytes_per_vector(dimensions: int, precision: str) -> int:
    """Bytes one embedding takes in the index: 4 per number (float32), 1 (int8) or 1/8 rounded up (binary)."""
    check_precision(precision)
    return {"float32": 4 * dimensions, "int8": dimensions, "binary": (dimensions + 7) // 8}[precision]


def truncate_embeddings(embeddings: np.ndarray, dimensions: int | None = None) -> np.ndarray:
    """Keep the first ``dimensions`` numbers of each embedding and normalise again (float32, C order).

    Args:
        embeddings: One embedding per row.
        dimensions: Numbers to keep (None: all).

    Returns:
        The cut, L2-normalised embeddings.

    Raises:
        ValueError: ``dimensions`` is not between 1 and the embeddings' size.
    """
    full = embeddings.shape[1]
    dimensions = full if dimensions is None else dimensions
    if not 1 <= dimensions <= full:
        raise ValueError(f"dimensions must be between 1 and {full} (the embeddings' size), got {dimensions}.")
    cut = np.ascontiguousarray(embeddings[:, :dimensions], dtype=np.float32)
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return cut / np.maximum(norms, 1e-12)


def build_faiss_index(embeddings: np.ndarray, precision: str = "float32", calibration: np.ndarray | None = None) -> Any:
    """Build a FAISS index over normalised embeddings at a precision.

    Args:
        embeddings: The corpus, one normalised float embedding per row.
        precision: ``"float32"``, ``"int8"`` or ``"binary"``.
        calibration: For int8: embeddings whose per-number ranges the index learns (None: the corpus itself).

    Returns:
        A ``faiss.IndexFlatIP``, ``faiss.IndexScalarQuantizer`` or ``faiss.IndexBinaryFlat`` holding the corpus.
    """
    check_precision(precision)
    faiss = _faiss()
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    dimensions = embeddings.shape[1]
    if precision == "float32":
        index = faiss.IndexFlatIP(dimensions)
    elif precision == "int8":
        index = faiss.IndexScalarQuantizer(dimensions, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(embeddings if calibration is None else calibration, dtype=np.float32))
    else:
        from sentence_transformers.util.quantization import quantize_embeddings

        index = faiss.IndexBinaryFlat(8 * ((dimensions + 7) // 8))  # whole bytes; padding bits are 0 everywhere
        index.add(quantize_embeddings(embeddings, precision="ubinary"))
        return index
    index.add(embeddings)
    return index


def search_faiss_index(
    index: Any, queries: np.ndarray, top_k: int = 10, rescore_multiplier: int = RESCORE_MULTIPLIER
) -> tuple[np.ndarray, np.ndarray]:
    """Search an index from :func:`build_faiss_index` with float question embeddings.

    Args:
        index: The index.
        queries: Normalised float question embeddings, cut like the corpus.
        top_k: Results per question.
        rescore_multiplier: Binary only: candidates per result rescored with the float question.

    Returns:
        ``(scores, ids)``, each of shape (questions, top_k), best first; ids of -1 where the corpus is smaller.
    """
    faiss = _faiss()
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if not isinstance(index, faiss.IndexBinary):
        return index.search(queries, top_k)
    from sentence_transformers.util.quantization import quantize_embeddings

    candidates = top_k * rescore_multiplier  # FAISS pads with id -1 past the corpus size
    _, ids = index.search(quantize_embeddings(queries, precision="ubinary"), candidates)
    codes = faiss.vector_to_array(index.xb).reshape(index.ntotal, index.code_size)  # the packed bits, 1/8 byte each
    dimensions = queries.shape[1]
    scores = np.empty(ids.shape, dtype=np.float32)
    for start in range(0, len(queries), 64):  # 64 questions at a time bound the unpacked candidates' memory
        chunk = slice(start, start + 64)
        bits = np.unpackbits(codes[np.maximum(ids[chunk], 0)], axis=2)[..., :dimensions].astype(np.float32)
        signs = (2 * bits - 1) / np.sqrt(dimensions)  # unit vectors: the score is a cosine
        scores[chunk] = np.einsum("qd,qkd->qk", queries[chunk], signs)
    scores[ids < 0] = -np.inf
    best = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    rows = np.arange(len(queries))[:, None]
    return scores[rows, best], ids[rows, best]


def score_compressed(
    query_embeddings: np.ndarray,
    corpus_embeddings: np.ndarray,
    query_ids: list[str],
    corpus_ids: list[str],
    relevant_docs: dict[str, set[str]],
    calibration: np.ndarray,
    dimensions: tuple[int, ...] = (384, 256, 128, 64),
    precisions: tuple[str, ...] = PRECISIONS,
    metric: str = "ndcg@10",
) -> pd.DataFrame:
    """Score retrieval at each embedding size and precision: bytes per passage and a metric.

    Args:
        query_embeddings: The questions, full size, normalised.
        corpus_embeddings: The passages, full size, normalised.
        query_ids: Id of each question row.
        corpus_ids: Id of each passage row.
        relevant_docs: The relevant passage ids of each question id.
        calibration: Passage embeddings, full size, kept apart from the corpus: int8's ranges come from them.
        dimensions: Sizes to cut to (each at most the embeddings' size).
        precisions: Precisions to try.
        metric: A column of :func:`~ft_helpers.evaluation.score_rankings`.

    Returns:
        One row per (dimensions, precision): ``bytes_per_passage`` and the metric's mean over the questions.
    """
    rows = []
    for size in dimensions:
        queries, corpus = truncate_embeddings(query_embeddings, size), truncate_embeddings(corpus_embeddings, size)
        for precision in precisions:
            index = build_faiss_index(corpus, precision, truncate_embeddings(calibration, size))
            _, ids = search_faiss_index(index, queries, top_k=min(100, len(corpus_ids)))
            rankings = {
                query: [corpus_ids[i] for i in row if i >= 0] for query, row in zip(query_ids, ids, strict=True)
            }
            scores = score_rankings(rankings, relevant_docs)
            rows.append(
                {
                    "dimensions": size,
                    "precision": precision,
                    "bytes_per_passage": bytes_per_vector(size, precision),
                    metric: float(scores[metric].mean()),
                }
            )
    return pd.DataFrame(rows).set_index(["dimensions", "precision"])


def pick_calibration_passages(splits: dict[str, pd.DataFrame], size: int = 1000, seed: int = 42) -> list[str]:
    """Pick training passages whose embeddings set int8's ranges: none answers a validation or test question.

    They are still in the search corpus, which holds every passage as a RAG index does; what stays apart is the
    passages the scored questions need. (The grouped split already keeps those out of training; with the reference
    split a training passage can answer a test question too, and is left out here.)

    Args:
        splits: The train/validation/test splits (``context`` columns).
        size: Passages to pick (all eligible ones if fewer).
        seed: Seed of the pick.

    Returns:
        Distinct passages, in a seeded random order.
    """
    from .data import normalize_text

    held = {normalize_text(text) for name in ("validation", "test") for text in splits[name]["context"]}
    passages = pd.Series([text for text in splits["train"]["context"].unique() if normalize_text(text) not in held])
    return passages.sample(n=min(size, len(passages)), random_state=seed).tolist()


@dataclass
class PassageIndex:
    """A saved FAISS index with its passages and what made it.

    Attributes:
        folder: Where it is saved.
        index: The FAISS index.
        passages: The passages, in index order.
        manifest: ``index.json``: model folder and fingerprint, backend, dimensions, precision, passages, versions.
    """

    folder: Path
    index: Any
    passages: list[str]
    manifest: dict[str, Any]


def save_passage_index(
    folder: str | Path, index: Any, passages: list[str], manifest: dict[str, Any], overwrite: bool = False
) -> Path:
    """Write an index, its passages and its manifest to a folder; a failure leaves no file of them behind.

    With ``overwrite``, only the three files of an index are replaced; anything else in the folder stays.

    Raises:
        FileExistsError: The folder holds files and ``overwrite`` is False.
    """
    faiss = _faiss()
    folder = Path(folder)
    check_output_folder(folder, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".index-", dir=folder))
    try:
        write = faiss.write_index_binary if isinstance(index, faiss.IndexBinary) else faiss.write_index
        write(index, str(staging / INDEX_FILE))
        with (staging / PASSAGES_FILE).open("w", encoding="utf-8") as handle:
            for number, passage in enumerate(passages):
                handle.write(json.dumps({"id": number, "passage": passage}, ensure_ascii=False) + "\n")
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (folder / MANIFEST_FILE).unlink(missing_ok=True)  # first out, last in: a folder without it is no index
        for name in (INDEX_FILE, PASSAGES_FILE, MANIFEST_FILE):
            (staging / name).replace(folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def check_output_folder(folder: Path, overwrite: bool, model_dir: Path | None = None) -> None:
    """Refuse an index folder that holds other files (unless ``overwrite``), or that is or holds the model's folder.

    Raises:
        FileExistsError: The folder is not empty and ``overwrite`` is False.
        ValueError: It is the model's folder, or a folder above it, or the current folder.
    """
    resolved = folder.resolve()
    if resolved == Path.cwd().resolve() or (model_dir is not None and resolved in model_dir.resolve().parents):
        raise ValueError(f"{folder} holds the model or is the current folder: give --output-dir a folder of its own.")
    if model_dir is not None and resolved == model_dir.resolve():
        raise ValueError(f"{folder} is the model's folder: give --output-dir a folder of its own.")
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} is not empty: choose another --output-dir, or pass --overwrite.")


def load_passage_index(folder: str | Path) -> PassageIndex:
    """Read a folder written by :func:`save_passage_index`.

    Raises:
        FileNotFoundError: It is not such a folder (the message says which command makes one).
    """
    faiss = _faiss()
    folder = Path(folder)
    missing = [name for name in (INDEX_FILE, PASSAGES_FILE, MANIFEST_FILE) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} is not an index folder (no {', '.join(missing)}): make one with "
            "`python -m ft_helpers index --model DIR --dataset FILE --output-dir DIR`."
        )
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    read = faiss.read_index_binary if manifest["precision"] == "binary" else faiss.read_index
    with (folder / PASSAGES_FILE).open(encoding="utf-8") as handle:
        passages = [json.loads(line)["passage"] for line in handle]
    return PassageIndex(folder, read(str(folder / INDEX_FILE)), passages, manifest)


def build_passage_index(
    model_dir: str | Path,
    passages: list[str],
    output_dir: str | Path,
    dimensions: int | None = None,
    precision: str = "float32",
    backend: str = "torch",
    calibration_passages: list[str] | None = None,
    batch_size: int = 64,
    overwrite: bool = False,
    embeddings: np.ndarray | None = None,
) -> PassageIndex:
    """Embed passages with a model folder and save a FAISS index of them, with the passages and what made it.

    Args:
        model_dir: A saved model's folder (its fingerprint is stored, so searches with another model are refused).
        passages: The passages to index (duplicates are kept once).
        output_dir: Folder to write (refused if not empty, unless ``overwrite``).
        dimensions: Numbers kept per embedding (None: all); a Matryoshka model keeps its quality when cut.
        precision: ``"float32"``, ``"int8"`` or ``"binary"``.
        backend: How to embed: ``"torch"``, ``"onnx"`` or ``"onnx-int8"`` (see :func:`ft_helpers.serve.load_encoder`).
        calibration_passages: For int8: passages whose embeddings set the ranges (None: the indexed passages).
        batch_size: Passages embedded at a time.
        overwrite: Replace the folder's files.
        embeddings: The passages already embedded by this model, full size, one row per passage (None: embed them).

    Returns:
        The saved :class:`PassageIndex`.
    """
    from .serve import check_model_folder, fingerprint_model, load_encoder

    check_precision(precision)
    if dimensions is not None and dimensions < 1:
        raise ValueError(f"dimensions must be at least 1, got {dimensions}.")
    folder = check_model_folder(model_dir)
    output = Path(output_dir)
    check_output_folder(output, overwrite, folder)
    _faiss()
    if embeddings is not None and len(embeddings) != len(passages):
        raise ValueError(f"{len(embeddings)} embeddings for {len(passages)} passages: give one row per passage.")
    first = list(dict.fromkeys(passages).keys())
    if not first:
        raise ValueError("No passages to index.")
    if embeddings is not None:  # each passage once: the row of its first occurrence
        rows = {passage: row for row, passage in reversed(list(enumerate(passages)))}
        embeddings = np.asarray(embeddings)[[rows[passage] for passage in first]]
    unique = first
    encoder = load_encoder(folder, backend)
    full = encoder.dimension
    size = full if dimensions is None else dimensions
    if size > full:
        raise ValueError(f"dimensions must be at most {full}, the model's embedding size; got {size}.")
    if embeddings is None:
        embeddings = encoder.encode_document(unique, batch_size=batch_size, show_progress_bar=True)
    corpus = truncate_embeddings(np.asarray(embeddings), size)
    calibration = None
    if precision == "int8" and calibration_passages:
        calibration = truncate_embeddings(encoder.encode_document(calibration_passages, batch_size=batch_size), size)
    manifest = {
        "model": str(folder.resolve()),
        "model_fingerprint": fingerprint_model(folder),
        "backend": backend,
        "dimensions": size,
        "precision": precision,
        "passages": len(unique),
        "calibration_passages": len(calibration_passages) if calibration is not None else None,
        "bytes_per_passage": bytes_per_vector(size, precision),
        "environment": collect_environment(),
    }
    index = build_faiss_index(corpus, precision, calibration)
    save_passage_index(output, index, unique, manifest, overwrite=overwrite)
    return PassageIndex(output, index, unique, manifest)


def search_passages(
    folder: str | Path,
    questions: list[str],
    top_k: int = 5,
    model_dir: str | Path | None = None,
    dimensions: int | None = None,
    encoder: Any = None,
) -> list[list[dict[str, Any]]]:
    """Answer questions from a saved index: the top passages of each, with their cosine scores.

    Args:
        folder: A folder from :func:`build_passage_index`.
        questions: The questions.
        top_k: Passages per question.
        model_dir: The model to embed the questions with (None: the one that built the index). Another model than
            that one is refused.
        dimensions: The embedding size to search at (None: the index's); another size is refused.
        encoder: An already loaded encoder of the index's model (skips loading it again).

    Returns:
        For each question, a list of ``{"rank", "score", "passage"}``, best first.

    Raises:
        ValueError: An empty question, or another model or another size than the index's.
    """
    from .serve import fingerprint_model, load_encoder

    if not questions or any(not isinstance(question, str) or not question.strip() for question in questions):
        raise ValueError('A question is empty: give the text to search for, e.g. "What was the revenue in 2023?".')
    saved = load_passage_index(folder)
    manifest = saved.manifest
    if dimensions is not None and dimensions != manifest["dimensions"]:
        raise ValueError(
            f"{folder} holds {manifest['dimensions']}-number embeddings; searching it at {dimensions} would "
            "compare unlike vectors: search at its size, or build another index."
        )
    if model_dir is None:
        model_dir = manifest["model"]
        if not Path(model_dir).is_dir():
            raise FileNotFoundError(
                f"The model that built {folder} is no longer at {model_dir}: give its folder (--model in the shell)."
            )
    if fingerprint_model(model_dir) != manifest["model_fingerprint"]:
        raise ValueError(
            f"{model_dir} is not the model that built {folder} (its weights differ): search with that model, or "
            "build the index again with this one."
        )
    if encoder is None:
        encoder = load_encoder(model_dir, manifest["backend"])
    queries = truncate_embeddings(
        encoder.encode_query(list(questions)).reshape(len(questions), -1), manifest["dimensions"]
    )
    scores, ids = search_faiss_index(saved.index, queries, top_k=min(top_k, len(saved.passages)))
    return [
        [
            {"rank": rank, "score": float(score), "passage": saved.passages[i]}
            for rank, (score, i) in enumerate(zip(row_scores, row_ids, strict=True), start=1)
            if i >= 0
        ]
        for row_scores, row_ids in zip(scores, ids, strict=True)
    ]
