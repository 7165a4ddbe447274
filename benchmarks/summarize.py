"""Summarise the benchmark records into ``benchmarks/results/summary.md`` (tables) and ``summary.json``.

Everything comes from what each record stores (its settings, scores, times, commands and provenance), never
from today's recipes, so editing a recipe relabels no earlier record.

* **Runs**: one row per record: what it trained, where, the test NDCG@10 of the base and the fine-tuned model with
  the paired 95% bootstrap interval of the gain, the best validation NDCG@10, times and the commit.
* **Comparisons on validation**: records that differ in one training setting only (epochs, say), on the same data,
  split and seeds, each against the one of them with the best validation NDCG@10: the paired 95% interval of the
  difference over the validation questions, and over the test questions. *Level* means the validation interval
  includes zero.

    python benchmarks/summarize.py            # writes summary.json and summary.md, prints the markdown
    python benchmarks/summarize.py --check    # exits 1 if either is not what the records give
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ft_helpers.stats import paired_bootstrap_ci

RESULTS_DIR = Path(__file__).parent / "results"
SUMMARY = RESULTS_DIR / "summary.json"
SUMMARY_MARKDOWN = RESULTS_DIR / "summary.md"
#: Settings that may differ between the records of one comparison group (one at a time).
TRAINING_SETTINGS = ("epochs", "train_batch_size", "learning_rate", "max_train_samples", "sort_by_length")
#: Settings that say what was trained on and how it was scored: equal within a comparison group.
FIXED_SETTINGS = (
    "dataset",
    "test_dataset",
    "base_model",
    "recipe",
    "seed",
    "training_seed",
    "split",
    "group_column",
    "deduplicate_corpus",
)
RESAMPLES = 10_000


def load_records(folder: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """Read every record (``*.json`` but the summary), sorted by name."""
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*.json"))
        if path.name != SUMMARY.name
    ]


def describe_hardware(hardware: dict[str, Any]) -> str:
    """Name the machine a record ran on, e.g. ``"2-core Intel Xeon ..., fp32"`` or ``"NVIDIA T4, fp16"``."""
    if hardware["device"] == "cuda":
        return f"{hardware['device_name']}, {hardware['precision']}"
    return f"{hardware['cores']}-core {hardware['processor']}, {hardware['precision']}"


def paired_difference(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean of ``after - before`` over the questions both score, with its paired 95% bootstrap interval."""
    if set(before) != set(after):
        raise ValueError("The two records scored different questions: they are not comparable.")
    ids = sorted(before)
    low, high = paired_bootstrap_ci([before[i] for i in ids], [after[i] for i in ids], n_resamples=RESAMPLES)
    delta = sum(after[i] - before[i] for i in ids) / len(ids)
    return {"delta": round(delta, 4), "ci_low": round(low, 4), "ci_high": round(high, 4)}


def summarize_run(record: dict[str, Any]) -> dict[str, Any]:
    """One row of the runs table, from one record."""
    results = record["results"]
    settings, training = results["settings"], results["training"]
    ndcg = next(row for row in results["comparison"] if row["metric"] == "ndcg@10")
    return {
        "name": record["record"]["name"],
        "recipe": settings["recipe"],
        "training": f"{settings['loss']}, batch {settings['train_batch_size']}, lr {settings['learning_rate']:g}, "
        f"{settings['epochs']} epoch(s)" + (", length-sorted" if settings["sort_by_length"] else ""),
        "split": settings["split"],
        "hardware": describe_hardware(results["provenance"]["hardware"]),
        "baseline": round(results["baseline"]["test_cosine_ndcg@10"], 4),
        "finetuned": round(results["finetuned"]["test_cosine_ndcg@10"], 4),
        # the run's own interval (its seed and resamples), so the summary shows what the run reported
        "gain": {name: round(ndcg[name], 4) for name in ("delta", "ci_low", "ci_high")},
        "best_validation": round(training["best_validation_ndcg@10"], 4),
        "training_seconds": training["seconds"],
        "wall_seconds": record["record"]["wall_seconds"],
        # the run itself (the command line's or the notebook's), not the scoring on validation that follows it
        "run_seconds": record["record"]["wall_seconds"].get("run", record["record"]["wall_seconds"].get("notebook")),
        "commit": record["record"]["repository"]["commit"][:7],
        "command": record["record"]["commands"][0],
    }


def comparison_groups(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group the records with validation scores that share data, split, seeds and recipe, and differ in one setting.

    Returns:
        Groups of two or more records, each group's records differing in the same single training setting.
    """
    scored = [record for record in records if "validation" in record["per_query_ndcg@10"]]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in scored:
        settings = record["results"]["settings"]
        groups.setdefault(tuple(str(settings[name]) for name in FIXED_SETTINGS), []).append(record)
    kept = []
    for members in groups.values():
        varied = {
            name
            for name in TRAINING_SETTINGS
            if len({str(member["results"]["settings"][name]) for member in members}) > 1
        }
        if len(members) > 1 and len(varied) == 1:
            kept.append(members)
    return kept


def compare_group(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set each record of a group against the one with the best validation NDCG@10, on validation and on test."""
    varied = next(
        name for name in TRAINING_SETTINGS if len({str(member["results"]["settings"][name]) for member in members}) > 1
    )

    def validation_mean(record: dict[str, Any]) -> float:
        scores = record["per_query_ndcg@10"]["validation"]["finetuned"]
        return sum(scores.values()) / len(scores)

    best = max(members, key=validation_mean)
    rows = []
    for record in sorted(members, key=lambda member: member["results"]["settings"][varied]):
        validation = paired_difference(
            best["per_query_ndcg@10"]["validation"]["finetuned"], record["per_query_ndcg@10"]["validation"]["finetuned"]
        )
        test = paired_difference(
            best["per_query_ndcg@10"]["test"]["finetuned"], record["per_query_ndcg@10"]["test"]["finetuned"]
        )
        rows.append(
            {
                "name": record["record"]["name"],
                "setting": varied,
                "value": record["results"]["settings"][varied],
                "against": best["record"]["name"],
                "validation": round(validation_mean(record), 4),
                "validation_difference": validation,
                "level_on_validation": validation["ci_low"] <= 0 <= validation["ci_high"],
                "test": round(record["results"]["finetuned"]["test_cosine_ndcg@10"], 4),
                "test_difference": test,
                "training_seconds": record["results"]["training"]["seconds"],
            }
        )
    return rows


def interval(difference: dict[str, float]) -> str:
    """Format a paired difference as ``+0.0123 [+0.0045, +0.0201]``."""
    return f"{difference['delta']:+.4f} [{difference['ci_low']:+.4f}, {difference['ci_high']:+.4f}]"


def to_markdown(runs: list[dict[str, Any]], comparisons: list[list[dict[str, Any]]]) -> str:
    """Render the summary as markdown tables."""
    lines = [
        "# Benchmark summary",
        "",
        "Written by `python benchmarks/summarize.py` from the records in this folder; do not edit. Test NDCG@10 on",
        "the duplicate-aware corpus; intervals are paired 95% bootstrap intervals over the questions, one training",
        "seed per record. Each record holds the command that made it, the commit, versions, hardware and the data's",
        "sha256.",
        "",
        "## Runs",
        "",
        "| record | recipe | training | split | hardware | test NDCG@10, base -> fine-tuned | gain (95% CI) "
        "| best validation NDCG@10 | training | the run | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in runs:
        lines.append(
            f"| `{row['name']}` | {row['recipe']} | {row['training']} | {row['split']} | {row['hardware']} "
            f"| {row['baseline']:.4f} -> {row['finetuned']:.4f} | {interval(row['gain'])} "
            f"| {row['best_validation']:.4f} | {row['training_seconds']:.0f} s "
            f"| {row['run_seconds']:.0f} s | `{row['commit']}` |"
        )
    for rows in comparisons:
        setting = rows[0]["setting"]
        lines += [
            "",
            f"## {setting} compared on validation (against `{rows[0]['against']}`, the best on validation)",
            "",
            f"| record | {setting} | validation NDCG@10 | difference on validation (95% CI) | level | test NDCG@10 "
            "| difference on test (95% CI) | training |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            level = "yes" if row["level_on_validation"] else "no"
            lines.append(
                f"| `{row['name']}` | {row['value']} | {row['validation']:.4f} "
                f"| {interval(row['validation_difference'])} | {level} | {row['test']:.4f} "
                f"| {interval(row['test_difference'])} | {row['training_seconds']:.0f} s |"
            )
    return "\n".join(lines) + "\n"


def summarize(folder: Path = RESULTS_DIR) -> tuple[dict[str, Any], str]:
    """Build the summary (as JSON and as markdown) from the records in ``folder``."""
    records = load_records(folder)
    runs = [summarize_run(record) for record in records]
    comparisons = [compare_group(members) for members in comparison_groups(records)]
    return {"runs": runs, "comparisons": comparisons}, to_markdown(runs, comparisons)


def main(argv: list[str] | None = None) -> int:
    """Write (or, with --check, verify) summary.json and summary.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the summary files are out of date")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    summary, markdown = summarize(args.results_dir)
    text = json.dumps(summary, indent=1) + "\n"
    paths = {args.results_dir / SUMMARY.name: text, args.results_dir / SUMMARY_MARKDOWN.name: markdown}
    if args.check:
        stale = [path.name for path, content in paths.items() if not path.is_file() or path.read_text() != content]
        if stale:
            print(f"out of date: {', '.join(stale)} (run python benchmarks/summarize.py)", file=sys.stderr)
            return 1
        return 0
    for path, content in paths.items():
        path.write_text(content, encoding="utf-8")
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
