r"""Encode the test corpus with a model in PyTorch fp32, ONNX fp32 and ONNX int8: speed, size and test NDCG@10.

One process, one machine, one backend after another, each on the same passages in the same batches:

1. copies the model folder to ``--work-dir`` and exports it there (``ft_helpers.export_encoder(..., "int8")``);
2. for each backend: loads it (load time), embeds one batch to warm up, then the whole test corpus of the grouped
   split (passages per second), and scores retrieval on the test questions with sentence-transformers'
   ``InformationRetrievalEvaluator`` (test NDCG@10), and how close its passage embeddings are to PyTorch's;
3. writes ``benchmarks/results/serve/NAME.json``: the rows, the command, commit, versions, hardware, the data's
   sha256, and ``--note`` lines.

    python benchmarks/serve_speed.py cpu --model runs/cpu_quick/model \
        --dataset ../shared/data/financial-qa-10k.csv --threads 2
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import record
from measurement import describe_measurement, describe_provenance, parse_measurement_arguments, write_measurement

from ft_helpers import RunConfig, build_ir_inputs

SERVE_DIR = record.RESULTS_DIR / "serve"
BACKENDS = ("torch", "onnx", "onnx-int8")


def file_bytes(model_dir: Path, backend: str, manifest: dict[str, Any]) -> int:
    """Bytes of the weights a backend loads (the model's safetensors, or the .onnx file)."""
    if backend == "torch":
        return sum(path.stat().st_size for path in model_dir.glob("*.safetensors"))
    return int(manifest["files"][backend]["bytes"])


def measure(
    model_dir: Path,
    dataset: str,
    threads: int,
    batch_size: int,
    work_dir: Path,
    max_passages: int | None,
    split: str = "grouped",
    seed: int = 42,
) -> dict[str, Any]:
    """Export a copy of the model, then time and score each backend; return the export facts and one row each."""
    import torch

    from ft_helpers import export_encoder, load_encoder
    from ft_helpers.workflow import build_evaluator, evaluate_retrieval, load_and_split

    config = RunConfig(dataset=dataset, base_model=str(model_dir), eval_batch_size=batch_size, split=split, seed=seed)
    pairs, splits = load_and_split(config)
    inputs = build_ir_inputs(splits["test"], pairs, deduplicate=config.deduplicate_corpus)
    if max_passages:  # a quick try: the first passages, and only the questions they answer
        kept = dict(list(inputs.corpus.items())[:max_passages])
        relevant = {q: docs & kept.keys() for q, docs in inputs.relevant_docs.items() if docs & kept.keys()}
        inputs = type(inputs)(kept, {q: inputs.queries[q] for q in relevant}, relevant, inputs.deduplicated)
    passages = list(inputs.corpus.values())

    copy = work_dir / "model"
    shutil.copytree(model_dir, copy)
    started = time.perf_counter()
    manifest = export_encoder(copy, quantize="int8")
    export_seconds = time.perf_counter() - started

    torch.set_num_threads(threads)
    rows, reference = [], None
    for backend in BACKENDS:
        started = time.perf_counter()
        encoder = load_encoder(copy, backend, threads=threads, device="cpu")
        load_seconds = time.perf_counter() - started
        encoder.encode_document(passages[:batch_size], batch_size=batch_size)  # warm-up
        started = time.perf_counter()
        embeddings = encoder.encode_document(passages, batch_size=batch_size)
        seconds = time.perf_counter() - started
        reference = embeddings if reference is None else reference
        cosine = (embeddings * reference).sum(axis=1)
        evaluator = build_evaluator(inputs, "test", config)
        result = evaluate_retrieval(
            encoder, evaluator, work_dir / "eval" / backend, corpus_embeddings=torch.from_numpy(embeddings)
        )
        rows.append(
            {
                "backend": backend,
                "passages": len(passages),
                "passages_per_second": round(len(passages) / seconds, 1),
                "encode_seconds": round(seconds, 4),
                "load_seconds": round(load_seconds, 2),
                "file_bytes": file_bytes(copy, backend, manifest),
                "test_ndcg@10": result.metrics["test_cosine_ndcg@10"],
                "mean_cosine_to_torch": float(cosine.mean()),
                "min_cosine_to_torch": float(cosine.min()),
            }
        )
        print(rows[-1], flush=True)
    for row in rows:
        row["speed_vs_torch"] = round(row["passages_per_second"] / rows[0]["passages_per_second"], 2)
        row["ndcg_vs_torch"] = round(row["test_ndcg@10"] - rows[0]["test_ndcg@10"], 4)
    return {
        "export": {"seconds": round(export_seconds, 1), "int8": manifest["int8"], "opset": manifest["opset"]},
        "questions": len(inputs.queries),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure and write the record; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="the record's name: benchmarks/results/serve/NAME.json")
    parser.add_argument("--model", required=True, help="a fine-tuned model folder (model/ of a run)")
    parser.add_argument("--dataset", required=True, help="the data the model was fine-tuned on (its test split)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every backend (default: 2)")
    parser.add_argument("--batch-size", type=int, default=64, help="passages per batch (default: 64)")
    parser.add_argument("--split", choices=("grouped", "reference"), default="grouped", help="as the model's run")
    parser.add_argument("--seed", type=int, default=42, help="the split's seed, as the model's run (default: 42)")
    parser.add_argument("--max-passages", type=int, default=None, help="only the first N test passages (a try)")
    parser.add_argument("--work-dir", default=None, help="folder for the exported copy (default: runs/NAME-serve)")
    args, path = parse_measurement_arguments(parser, argv, SERVE_DIR)
    work_dir = Path(args.work_dir or f"runs/{args.name}-serve")
    if work_dir.exists():
        parser.error(f"{work_dir} exists: remove it or give another --work-dir.")
    model_dir = Path(args.model)
    if not (model_dir / "modules.json").is_file():
        parser.error(f"{model_dir} holds no saved model (no modules.json).")
    repository = record.describe_repository()
    started = time.perf_counter()
    measured = measure(
        model_dir, args.dataset, args.threads, args.batch_size, work_dir, args.max_passages, args.split, args.seed
    )
    saved = {
        "record": describe_measurement(
            args.name,
            "benchmarks/serve_speed.py",
            argv,
            repository,
            started,
            args.note,
        ),
        "settings": {
            "threads": args.threads,
            "batch_size": args.batch_size,
            "max_passages": args.max_passages,
            "split": args.split,
            "seed": args.seed,
        },
        **measured,
        "provenance": describe_provenance(args.dataset),
    }
    write_measurement(path, saved)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
