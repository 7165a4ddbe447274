r"""How FAISS search costs grow with the corpus: exact (flat), HNSW and IVF-PQ at 10k, 100k and 1M vectors.

The vectors are real: the fine-tuned model's embeddings of every passage in the data, topped up to each size with
distractors drawn from a Gaussian with the real embeddings' mean and covariance (then normalised), so they sit in
the same region of the space. The questions are the test questions, embedded by the same model. For each size,
embedding size (``--dimensions``) and index kind it measures the build time, the index's size in memory (its
serialised bytes), the p50 and p95 latency of one question at a time, and recall@10 against exact search, and
writes ``benchmarks/results/scale/NAME.json`` (with a plot, ``NAME.png``).

    python benchmarks/index_scale.py cpu --model runs/cpu_quick/model \
        --dataset ../shared/data/financial-qa-10k.csv --sizes 10000 100000 1000000 --dimensions 384 128
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import record
from measurement import describe_measurement, describe_provenance, parse_measurement_arguments, write_measurement

from ft_helpers import RunConfig, build_ir_inputs
from ft_helpers.search import truncate_embeddings

SCALE_DIR = record.RESULTS_DIR / "scale"
KINDS = ("flat", "hnsw", "ivf-pq")
#: HNSW: links per vector, and candidate lists while building and searching.
HNSW = {"M": 32, "efConstruction": 80, "efSearch": 64}
#: IVF-PQ: lists probed per question; lists = sqrt(vectors); 8 numbers per byte-sized code.
IVF_PROBES = 16


def add_distractors(real: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Return ``size`` normalised vectors: the real ones first, then Gaussian draws with their mean and covariance.

    Args:
        real: Normalised real embeddings.
        size: Vectors wanted (at least the real ones).
        seed: Seed of the draws.

    Returns:
        A float32 array of ``size`` rows.
    """
    if size <= len(real):
        return np.ascontiguousarray(real[:size], dtype=np.float32)
    generator = np.random.default_rng(seed)
    mean, covariance = real.mean(axis=0), np.cov(real, rowvar=False)
    drawn = generator.multivariate_normal(mean, covariance, size=size - len(real), method="cholesky")
    drawn = drawn.astype(np.float32) / np.linalg.norm(drawn, axis=1, keepdims=True).astype(np.float32)
    return np.ascontiguousarray(np.vstack([real.astype(np.float32), drawn]))


def build_index(kind: str, vectors: np.ndarray, seed: int) -> Any:
    """Build one index kind over normalised vectors (inner product)."""
    import faiss

    size, dimensions = vectors.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(dimensions)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dimensions, HNSW["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW["efConstruction"]
        index.hnsw.efSearch = HNSW["efSearch"]
    else:
        lists = max(1, int(math.sqrt(size)))
        quantizer = faiss.IndexFlatIP(dimensions)
        index = faiss.IndexIVFPQ(quantizer, dimensions, lists, dimensions // 8, 8, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = min(IVF_PROBES, lists)
        sample = np.random.default_rng(seed).choice(size, size=min(size, 256 * max(lists, 256)), replace=False)
        index.train(vectors[np.sort(sample)])
    index.add(vectors)
    return index


def time_queries(index: Any, queries: np.ndarray, top_k: int = 10) -> tuple[np.ndarray, list[float]]:
    """Search one question at a time; return the ids and each search's milliseconds."""
    ids, times = [], []
    for query in queries:
        started = time.perf_counter()
        _, found = index.search(query[None, :], top_k)
        times.append(1000 * (time.perf_counter() - started))
        ids.append(found[0])
    return np.array(ids), times


def recall_at(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact top-k that a search found."""
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact, strict=True)]))


def measure_sizes(
    passages: np.ndarray, queries: np.ndarray, sizes: list[int], dimensions: list[int], seed: int
) -> list[dict[str, Any]]:
    """Measure every index kind at every size and embedding size; return one row each."""
    import faiss

    rows = []
    for size in sizes:
        full = add_distractors(passages, size, seed)
        for dimension in dimensions:
            vectors = truncate_embeddings(full, dimension)
            questions = truncate_embeddings(queries, dimension)
            exact = None
            for kind in KINDS:
                started = time.perf_counter()
                index = build_index(kind, vectors, seed)
                build_seconds = time.perf_counter() - started
                found, times = time_queries(index, questions)
                exact = found if kind == "flat" else exact
                rows.append(
                    {
                        "vectors": size,
                        "real_vectors": min(size, len(passages)),
                        "dimensions": dimension,
                        "kind": kind,
                        "build_seconds": round(build_seconds, 2),
                        "index_bytes": int(faiss.serialize_index(index).nbytes),
                        "p50_ms": round(float(np.percentile(times, 50)), 3),
                        "p95_ms": round(float(np.percentile(times, 95)), 3),
                        "recall@10": round(recall_at(found, exact), 4),
                    }
                )
                print(rows[-1], flush=True)
                del index
    return rows


def plot_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """Plot p95 latency and recall@10 against corpus size, one line per index kind and embedding size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, recall) = plt.subplots(1, 2, figsize=(11, 4))
    for kind in KINDS:
        for dimension in sorted({row["dimensions"] for row in rows}, reverse=True):
            chosen = [row for row in rows if row["kind"] == kind and row["dimensions"] == dimension]
            label = f"{kind}, {dimension} numbers"
            latency.plot([r["vectors"] for r in chosen], [r["p95_ms"] for r in chosen], marker="o", label=label)
            recall.plot([r["vectors"] for r in chosen], [r["recall@10"] for r in chosen], marker="o", label=label)
    latency.set(xscale="log", yscale="log", xlabel="vectors in the index", ylabel="p95 ms per question")
    recall.set(xscale="log", xlabel="vectors in the index", ylabel="recall@10 against exact search")
    latency.set_title("Latency, one question at a time")
    recall.set_title("What approximate search keeps")
    recall.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def embed_data(
    model_dir: str, dataset: str, batch_size: int, split: str = "grouped", seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Embed every distinct passage of the data and the test questions with the model."""
    from sentence_transformers import SentenceTransformer

    from ft_helpers.workflow import load_and_split

    config = RunConfig(dataset=dataset, base_model=model_dir, split=split, seed=seed)
    pairs, splits = load_and_split(config)
    test = build_ir_inputs(splits["test"], pairs, deduplicate=True)
    model = SentenceTransformer(model_dir, device="cpu")
    passages = list(dict.fromkeys(pairs["context"]))
    encode = {"batch_size": batch_size, "normalize_embeddings": True, "show_progress_bar": True}
    return model.encode_document(passages, **encode), model.encode_query(list(test.queries.values()), **encode)


def main(argv: list[str] | None = None) -> int:
    """Measure and write the record and its plot; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="the record's name: benchmarks/results/scale/NAME.json")
    parser.add_argument("--model", required=True, help="a fine-tuned model folder (model/ of a run)")
    parser.add_argument("--dataset", required=True, help="the data the model was fine-tuned on")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dimensions", type=int, nargs="+", default=[384, 128])
    parser.add_argument("--queries", type=int, default=200, help="test questions timed (default: 200)")
    parser.add_argument("--threads", type=int, default=None, help="FAISS threads (default: all cores)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42, help="seed of the distractors and IVF-PQ's training sample")
    parser.add_argument("--split", choices=("grouped", "reference"), default="grouped", help="as the model's run")
    parser.add_argument("--split-seed", type=int, default=42, help="the split's seed, as the model's run")
    args, path = parse_measurement_arguments(parser, argv, SCALE_DIR)
    if not (Path(args.model) / "modules.json").is_file():
        parser.error(f"{args.model} holds no saved model (no modules.json).")
    import faiss

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    repository = record.describe_repository()
    started = time.perf_counter()
    passages, queries = embed_data(args.model, args.dataset, args.batch_size, args.split, args.split_seed)
    queries = queries[: args.queries]
    rows = measure_sizes(passages, queries, sorted(args.sizes), args.dimensions, args.seed)
    saved = {
        "record": describe_measurement(
            args.name,
            "benchmarks/index_scale.py",
            argv,
            repository,
            started,
            args.note,
        ),
        "settings": {
            "hnsw": HNSW,
            "ivf_pq": {"lists": "sqrt(vectors)", "probes": IVF_PROBES, "bytes_per_vector": "dimensions / 8"},
            "queries": len(queries),
            "real_passages": len(passages),
            "faiss_threads": faiss.omp_get_max_threads(),
            "seed": args.seed,
        },
        "rows": rows,
        "provenance": describe_provenance(args.dataset, {"faiss-cpu": faiss.__version__}),
    }
    write_measurement(path, saved)
    plot_rows(rows, path.with_suffix(".png"))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
