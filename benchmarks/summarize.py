"""Summarise the benchmark records: ``benchmarks/results/summary.json`` and a markdown table on standard output.

One summary row per recipe, split, text key, corpus mode and hardware; the mean and standard deviation of the
test NDCG@10 run over the training seeds recorded for it (one record per seed: repeated runs of one seed, which
have given identical scores on one machine, count once).

    python benchmarks/summarize.py            # writes summary.json, prints the table
    python benchmarks/summarize.py --check    # exits 1 if summary.json is not what the records give
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"
SUMMARY = RESULTS_DIR / "summary.json"
#: The reference notebook's hyperparameters: a record with all of these used the reference recipe.
REFERENCE_RECIPE = {"epochs": 6, "train_batch_size": 32, "learning_rate": 2e-5, "max_train_samples": None}
CORPUS_NAMES = {"deduplicated": "dedup", "rowwise": "rowwise"}


def recipe_of(parameters: dict[str, Any]) -> str:
    """Name the recipe of a record's parameters: ``"reference"``, or what differs from it."""
    changed = {name: parameters[name] for name, value in REFERENCE_RECIPE.items() if parameters[name] != value}
    if not changed:
        return "reference"
    return "reference with " + ", ".join(f"{name}={value}" for name, value in changed.items())


def hardware_of(record: dict[str, Any]) -> str:
    """Describe the hardware a record trained on, e.g. ``"NVIDIA H100 80GB HBM3, bf16"``."""
    hardware = record["run"]["hardware"]
    name = hardware["device_name"] if hardware["device"] == "cuda" else record["benchmark"]["host"]
    return f"{name}, {hardware['precision']}"


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group the records and summarise each group's test NDCG@10 and training time.

    Args:
        records: Benchmark records (the schema of ``run_full.py``).

    Returns:
        Rows with ``recipe``, ``split``, ``corpus``, ``n_seeds``, ``test_ndcg@10_mean``, ``test_ndcg@10_sd``
        (None for one seed), ``training_seconds_mean`` (None where only resumed runs were timed), ``hardware``,
        plus ``text_key`` and ``records``.
    """
    groups: dict[tuple, dict[int, tuple[float, float, str]]] = {}
    for record in sorted(records, key=lambda r: r["benchmark"]["name"]):
        parameters = record["run"]["parameters"]
        for mode, scores in record["corpus_modes"].items():
            if scores is None:
                continue
            key = (
                recipe_of(parameters),
                parameters["split"],
                record["benchmark"]["text_key"],
                CORPUS_NAMES[mode],
                hardware_of(record),
            )
            ndcg = scores["finetuned"]["test_cosine_ndcg@10"]
            # a resumed run's training time covers only the part after its checkpoint: not comparable
            seconds = None if record["run"]["resumed_from"] else record["run"]["training_seconds"]
            groups.setdefault(key, {})[parameters["seed"]] = (ndcg, seconds, record["benchmark"]["name"])
    rows = []
    for (recipe, split, text_key, corpus, hardware), by_seed in sorted(groups.items()):
        scores = [ndcg for ndcg, _, _ in by_seed.values()]
        times = [seconds for _, seconds, _ in by_seed.values() if seconds is not None]
        rows.append(
            {
                "recipe": recipe,
                "split": split,
                "corpus": corpus,
                "n_seeds": len(by_seed),
                "test_ndcg@10_mean": round(statistics.fmean(scores), 4),
                "test_ndcg@10_sd": round(statistics.stdev(scores), 4) if len(scores) > 1 else None,
                "training_seconds_mean": round(statistics.fmean(times), 1) if times else None,
                "hardware": hardware,
                "text_key": text_key,
                "records": sorted(name for _, _, name in by_seed.values()),
            }
        )
    return rows


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """Render the summary rows as a markdown table."""
    lines = [
        "| recipe | split | text key | corpus | hardware | seeds | test NDCG@10 (mean +- sd) | training s (mean) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        sd = "" if row["test_ndcg@10_sd"] is None else f" +- {row['test_ndcg@10_sd']:.4f}"
        seconds = "n/a" if row["training_seconds_mean"] is None else f"{row['training_seconds_mean']:.0f}"
        lines.append(
            f"| {row['recipe']} | {row['split']} | {row['text_key']} | {row['corpus']} | {row['hardware']} | "
            f"{row['n_seeds']} | {row['test_ndcg@10_mean']:.4f}{sd} | {seconds} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) summary.json and print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that summary.json is up to date")
    args = parser.parse_args(argv)
    records = [
        json.loads(path.read_text(encoding="utf-8")) for path in sorted(RESULTS_DIR.glob("*.json")) if path != SUMMARY
    ]
    rows = summarize(records)
    text = json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    if args.check:
        if not SUMMARY.is_file() or SUMMARY.read_text(encoding="utf-8") != text:
            print(f"{SUMMARY} is out of date: run python benchmarks/summarize.py", file=sys.stderr)
            return 1
        return 0
    SUMMARY.write_text(text, encoding="utf-8")
    print(to_markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
