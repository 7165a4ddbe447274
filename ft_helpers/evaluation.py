"""Build the inputs of sentence-transformers' ``InformationRetrievalEvaluator``, run it, and score each query."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .data import QADataError, normalize_text

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    from torch import Tensor

#: The evaluator's default cut-offs, which :func:`score_rankings` repeats per query.
ACCURACY_AT_K = (1, 3, 5, 10)
NDCG_AT_K = 10
MRR_AT_K = 10
MAP_AT_K = 100
#: Per-query metric names, as they appear in the evaluator's keys after ``<name>_cosine_``.
PER_QUERY_METRICS = (
    *(f"accuracy@{k}" for k in ACCURACY_AT_K),
    f"recall@{NDCG_AT_K}",
    f"mrr@{MRR_AT_K}",
    f"ndcg@{NDCG_AT_K}",
    f"map@{MAP_AT_K}",
)


@dataclass(frozen=True)
class IRInputs:
    """The three mappings ``InformationRetrievalEvaluator`` takes, plus how they were built.

    Attributes:
        corpus: Document id -> context text.
        queries: Query id -> question text.
        relevant_docs: Query id -> ids of the documents that answer it.
        deduplicated: Whether identical contexts (and questions) were merged into one id.
    """

    corpus: dict[str, str]
    queries: dict[str, str]
    relevant_docs: dict[str, set[str]]
    deduplicated: bool

    def summary(self) -> dict[str, int | bool]:
        """Return the sizes, for printing and for ``results.json``."""
        return {
            "queries": len(self.queries),
            "documents": len(self.corpus),
            "relevant_pairs": sum(len(ids) for ids in self.relevant_docs.values()),
            "deduplicated": self.deduplicated,
        }


def build_ir_inputs(query_pairs: pd.DataFrame, corpus_pairs: pd.DataFrame, deduplicate: bool = True) -> IRInputs:
    """Turn the pairs of one split into evaluator inputs, retrieving from the contexts of ``corpus_pairs``.

    With ``deduplicate=True`` (recommended) contexts that differ at most in case, punctuation or spacing
    (equal :func:`~ft_helpers.data.normalize_text` keys) become one document, the first one's text, and
    every question that they answer points to it, so equal or near-equal embeddings cannot tie and let
    the tie-break decide the score; such questions likewise become one query whose relevant set is the
    union of their contexts. With ``deduplicate=False`` each row is its own document and query (ids are
    the row index), as in the reference notebook.

    Args:
        query_pairs: The rows whose questions are asked (e.g. the test split).
        corpus_pairs: The rows whose contexts form the search corpus (e.g. all rows); must contain every
            row of ``query_pairs`` (same index) so each question's context is retrievable.
        deduplicate: Merge identical contexts and questions.

    Returns:
        An :class:`IRInputs`.
    """
    missing = query_pairs.index.difference(corpus_pairs.index)
    if len(missing):
        raise QADataError(
            f"{len(missing)} query rows are not in the corpus rows (e.g. index {missing[0]}); "
            "build the corpus from all rows, e.g. build_ir_inputs(splits['test'], pairs)."
        )
    if not deduplicate:
        corpus = {str(i): text for i, text in corpus_pairs["context"].items()}
        queries = {str(i): text for i, text in query_pairs["question"].items()}
        relevant = {str(i): {str(i)} for i in query_pairs.index}
        return IRInputs(corpus, queries, relevant, deduplicated=False)

    doc_of_text: dict[str, str] = {}
    corpus = {}
    for text in corpus_pairs["context"]:
        key = normalize_text(text)
        if key not in doc_of_text:
            doc_of_text[key] = f"doc{len(doc_of_text)}"
            corpus[doc_of_text[key]] = text
    query_of_text: dict[str, str] = {}
    queries, relevant = {}, {}
    for row, question, context in zip(query_pairs.index, query_pairs["question"], query_pairs["context"], strict=True):
        key = normalize_text(question)
        if key not in query_of_text:
            query_of_text[key] = f"q{row}"
            queries[query_of_text[key]] = question
            relevant[query_of_text[key]] = set()
        relevant[query_of_text[key]].add(doc_of_text[normalize_text(context)])
    return IRInputs(corpus, queries, relevant, deduplicated=True)


#: Fewest distinct passages a corpus must hold: with 10 or so, every top-10 metric is close to 1 by chance.
MIN_CORPUS_DOCUMENTS = 20
#: Below this many test queries the confidence intervals get wide (they shrink with the square root of the count).
FEW_TEST_QUERIES = 100


def check_evaluation_sizes(test: IRInputs, validation: IRInputs) -> list[str]:
    """Refuse evaluation inputs too small to mean anything, and describe those that are merely small.

    Args:
        test: Evaluator inputs of the test split.
        validation: Evaluator inputs of the validation split.

    Returns:
        Warnings to show (empty when the sizes are fine).

    Raises:
        QADataError: The corpus holds fewer than :data:`MIN_CORPUS_DOCUMENTS` passages, or the test split
            fewer than 2 queries (no interval can be computed), or the validation split none.
    """
    if len(test.corpus) < MIN_CORPUS_DOCUMENTS:
        raise QADataError(
            f"The corpus holds {len(test.corpus)} distinct passage(s); retrieval metrics need at least "
            f"{MIN_CORPUS_DOCUMENTS} (with 10 or fewer, every top-10 metric is 1). Use more data."
        )
    if len(test.queries) < 2:
        raise QADataError(
            f"The test split holds {len(test.queries)} question(s); comparing two models needs at least 2, "
            f"and {FEW_TEST_QUERIES} or more for useful confidence intervals. Use more data."
        )
    if not validation.queries:
        raise QADataError("The validation split holds no questions. Use more data.")
    if len(test.queries) < FEW_TEST_QUERIES:
        return [
            f"The test split holds only {len(test.queries)} question(s): expect wide confidence intervals "
            "(they shrink with the square root of the number of questions)."
        ]
    return []


def score_rankings(rankings: dict[str, list[str]], relevant_docs: dict[str, set[str]]) -> pd.DataFrame:
    """Score each query's ranked document ids with the evaluator's formulas.

    Args:
        rankings: Query id -> document ids, best first (at least the top ``MAP_AT_K`` where available).
        relevant_docs: Query id -> ids of its relevant documents.

    Returns:
        One row per query (index: query id) with the columns of :data:`PER_QUERY_METRICS`, plus
        ``rank`` (1-based rank of the first relevant document, NaN if not in the ranking) and
        ``top_ids`` (the first 10 ids).
    """
    rows = {}
    for qid, ranked in rankings.items():
        relevant = relevant_docs[qid]
        hits = np.array([doc in relevant for doc in ranked], dtype=float)
        first = int(np.argmax(hits)) + 1 if hits.any() else math.nan
        discounts = 1.0 / np.log2(np.arange(2, NDCG_AT_K + 2))
        ideal = discounts[: min(len(relevant), NDCG_AT_K)].sum()
        top_map = hits[:MAP_AT_K]
        precision_at_hits = np.cumsum(top_map) / np.arange(1, len(top_map) + 1)
        row = {f"accuracy@{k}": float(hits[:k].any()) for k in ACCURACY_AT_K}
        row[f"recall@{NDCG_AT_K}"] = hits[:NDCG_AT_K].sum() / len(relevant)
        row[f"mrr@{MRR_AT_K}"] = 1.0 / first if first <= MRR_AT_K else 0.0
        row[f"ndcg@{NDCG_AT_K}"] = float((hits[:NDCG_AT_K] * discounts[: len(hits[:NDCG_AT_K])]).sum() / ideal)
        row[f"map@{MAP_AT_K}"] = float((precision_at_hits * top_map).sum() / min(MAP_AT_K, len(relevant)))
        row["rank"] = first
        row["top_ids"] = list(ranked[:10])
        rows[qid] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def read_rankings(path: str | Path) -> dict[str, list[str]]:
    """Read the evaluator's predictions JSONL into query id -> ranked document ids.

    Args:
        path: A ``*_predictions_*.jsonl`` file written by ``InformationRetrievalEvaluator``.

    Returns:
        Query id -> document ids, best first (ties broken by id, as the evaluator does).
    """
    rankings = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            hits = sorted(record["results"], key=lambda hit: (-hit["score"], hit["corpus_id"]))
            rankings[record["query_id"]] = [hit["corpus_id"] for hit in hits]
    return rankings


@dataclass(frozen=True)
class RetrievalResult:
    """What :func:`evaluate_retrieval` returns.

    Attributes:
        metrics: The evaluator's aggregate metrics, e.g. ``{"test_cosine_ndcg@10": 0.81, ...}``.
        per_query: One row per query, from :func:`score_rankings`.
    """

    metrics: dict[str, float]
    per_query: pd.DataFrame


def evaluate_retrieval(
    model: SentenceTransformer,
    evaluator: InformationRetrievalEvaluator,
    output_dir: str | Path,
    corpus_embeddings: Tensor | None = None,
) -> RetrievalResult:
    """Run the evaluator on a model and also score each query from the rankings it wrote.

    Args:
        model: The model to evaluate.
        evaluator: An ``InformationRetrievalEvaluator`` with ``write_predictions=True``.
        output_dir: Folder for the evaluator's CSV and predictions files.
        corpus_embeddings: The corpus as ``model.encode_document`` embedded it (None: the
            evaluator embeds it).

    Returns:
        A :class:`RetrievalResult`; the per-query means equal the aggregate metrics.
    """
    output_dir = Path(output_dir)
    raw = evaluator(model, output_path=str(output_dir), corpus_embeddings=corpus_embeddings)
    metrics = {key: float(value) for key, value in raw.items()}
    predictions = output_dir / evaluator.predictions_file.replace(".jsonl", "_cosine.jsonl")
    rankings = read_rankings(predictions)
    return RetrievalResult(metrics, score_rankings(rankings, evaluator.relevant_docs))


def score_dimensions(
    model: SentenceTransformer,
    evaluator: InformationRetrievalEvaluator,
    corpus_embeddings: Tensor,
    dimensions: Sequence[int],
    metrics: Sequence[str] = ("ndcg@10", "accuracy@1"),
) -> pd.DataFrame:
    """Score retrieval with embeddings cut to their first ``d`` numbers, for each ``d`` (Matryoshka sizes).

    The corpus is not embedded again: each size uses the first ``d`` columns of ``corpus_embeddings``, which
    is what ``truncate_dim=d`` gives; the questions are embedded with ``truncate_dim=d``.

    Args:
        model: The model that embedded ``corpus_embeddings``.
        evaluator: An ``InformationRetrievalEvaluator``; it is copied, not changed.
        corpus_embeddings: The corpus as ``model.encode_document`` embedded it, at full size.
        dimensions: Embedding sizes, each at most the model's.
        metrics: Metrics to report, named as in :data:`PER_QUERY_METRICS`.

    Returns:
        One row per size (index ``dimensions``), one column per metric.

    Raises:
        ValueError: A size is not between 1 and the embeddings' size.
    """
    full = corpus_embeddings.shape[1]
    bad = [d for d in dimensions if not 1 <= d <= full]
    if bad:
        raise ValueError(f"Embedding sizes must be between 1 and {full} (the model's), got {bad}.")
    rows = {}
    for dimension in dimensions:
        truncated = copy.copy(evaluator)
        truncated.truncate_dim = dimension
        truncated.write_csv = truncated.write_predictions = False
        scores = truncated(model, corpus_embeddings=corpus_embeddings[:, :dimension])
        rows[dimension] = headline_metrics(scores, evaluator.name, metrics)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("dimensions")


def headline_metrics(
    metrics: dict[str, float], name: str, names: Sequence[str] = PER_QUERY_METRICS
) -> dict[str, float]:
    """Pick metrics out of the evaluator's output and strip their ``<name>_cosine_`` prefix.

    Args:
        metrics: The evaluator's output.
        name: The evaluator's name (``"test"``).
        names: Metrics to pick, in this order (default: :data:`PER_QUERY_METRICS`).

    Returns:
        E.g. ``{"accuracy@1": 0.70, ..., "ndcg@10": 0.81, ...}``.

    Raises:
        ValueError: A requested metric is not in ``metrics`` (the message lists the ones that are).
    """
    prefix = f"{name}_cosine_"
    missing = [metric for metric in names if prefix + metric not in metrics]
    if missing:
        available = sorted(key.removeprefix(prefix) for key in metrics if key.startswith(prefix))
        raise ValueError(
            f"Metric(s) {', '.join(map(repr, missing))} not found under the prefix {prefix!r}. "
            + (f"Available: {', '.join(available)}." if available else f"No key starts with {prefix!r}: check name.")
        )
    return {metric: metrics[prefix + metric] for metric in names}
