"""Summarise the benchmark records: ``benchmarks/results/summary.json`` and the same as a table in ``summary.md``.

One summary row per recipe, split, text key, corpus mode and hardware; the mean and standard deviation of the
test NDCG@10 run over the training seeds recorded for it (one record per seed: repeated runs of one seed, which
have given identical scores on one machine, count once), the mean wall time of training and of the whole run,
and, where the records keep per-query scores, a paired 95% bootstrap interval of the difference from the
reference recipe on the same split and corpus (each query's NDCG@10 averaged over seeds first). A variant (a
recipe with settings changed) is also compared, the same way, with its anchor: the row of the same recipe, split and
corpus that differs from it in the fewest settings (for example the improved recipe without Matryoshka against the
improved recipe). Last, each cost comparison: the runs that ``run_recipes.sh ... costs`` made one after another on
one machine (records named ``<group>_cost_<label>_seed<S>``), each against the reference recipe's run among them.

    python benchmarks/summarize.py            # writes summary.json and summary.md, prints the table
    python benchmarks/summarize.py --check    # exits 1 if either is not what the records give
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ft_helpers.config import RECIPE_SETTINGS, RECIPES
from ft_helpers.stats import paired_bootstrap_ci

RESULTS_DIR = Path(__file__).parent / "results"
SUMMARY = RESULTS_DIR / "summary.json"
SUMMARY_MARKDOWN = RESULTS_DIR / "summary.md"
#: The first lines of summary.md, above the table.
MARKDOWN_HEADER = (
    "# Benchmark summary\n\n"
    "Written by `python benchmarks/summarize.py` from the records in this folder; do not edit. One row per recipe,\n"
    "split, text key, corpus and hardware: test NDCG@10 as mean +- sd over training seeds, the best validation\n"
    "NDCG@10 (what recipes are chosen on), a paired 95% bootstrap interval against the reference recipe on the same\n"
    "split and corpus, and wall times in seconds. Below it, each variant against its anchor.\n\n"
)
#: The heading and first lines of the second table of summary.md.
VARIANTS_HEADER = (
    "\n## Variants against their anchor\n\n"
    "A variant is a recipe with settings changed; its anchor is the row of the same recipe, split, text key and\n"
    "corpus that differs from it in the fewest settings (where two do, the one on the same kind of batches and\n"
    "hardware, then the one with more seeds). The paired 95% bootstrap interval is over the test questions, each\n"
    "question's NDCG@10 averaged over seeds first: it says how much the 700 questions could move the difference,\n"
    "not how much another training seed could (for that, see the sd of the rows with several seeds). Choose on\n"
    "validation. Variants of the reference recipe itself are left to the table above.\n\n"
)
#: The heading and first lines of the third table of summary.md.
COSTS_HEADER = (
    "\n## Costs on one machine\n\n"
    "Runs made one after another on one machine by `benchmarks/run_recipes.sh DATASET MODEL TAG costs` (records named\n"
    "`<group>_cost_<label>_seed<S>`), so their times compare on equal terms. Each is set against the reference\n"
    "recipe's run of its group: training time as a share of the reference's, and the paired 95% bootstrap interval\n"
    "of test NDCG@10 minus the reference's, over the test questions (one training seed each).\n\n"
)
#: A cost comparison's record name: its group (split and machine tag) and its label.
COST_NAME = re.compile(r"^(?P<group>.+?)_cost_(?P<label>.+?)(?:_seed\d+)?$")
CORPUS_NAMES = {"deduplicated": "dedup", "rowwise": "rowwise"}
#: Resamples (and seed) of the paired bootstrap against the reference recipe.
BOOTSTRAP_RESAMPLES = 10_000


def read_recipe(
    parameters: dict[str, Any], recipe: dict[str, Any] | None = None, loss: str | None = None
) -> tuple[str, dict[str, Any], bool]:
    """Take a record's recipe apart: the named recipe, the settings changed from it, and whether batches were sorted.

    Args:
        parameters: The record's ``run.parameters``.
        recipe: The record's ``run.recipe`` (the settings trained with), where it has one.
        loss: The record's ``run.loss`` (the loss classes), where it has one.

    Returns:
        The recipe's name (``"reference"``, ``"improved"`` or ``"quick"``), the settings that differ from it, and
        True where the cached loss ran on length-sorted batches.
    """
    name = parameters.get("recipe", "reference")  # records made before recipes used the reference's
    named = RECIPES[name].as_dict()
    if recipe is None:
        recipe = named | {key: parameters[key] for key in RECIPE_SETTINGS}
    changed = {key: value for key, value in recipe.items() if key != "name" and value != named.get(key)}
    return name, changed, bool(loss and "Sorted" in loss)


def recipe_of(parameters: dict[str, Any], recipe: dict[str, Any] | None = None, loss: str | None = None) -> str:
    """Name a record's recipe: ``"reference"``, ``"improved"``, or the named one and what differs from it.

    Args:
        parameters: The record's ``run.parameters``.
        recipe: The record's ``run.recipe`` (the settings trained with), where it has one.
        loss: The record's ``run.loss`` (the loss classes), where it has one: a cached loss on length-sorted
            batches computes the same loss faster, so its times are kept apart from the earlier runs'.
    """
    name, changed, length_sorted = read_recipe(parameters, recipe, loss)
    if length_sorted:
        name += ", length-sorted batches"
    if not changed:
        return name

    def show(value: Any) -> str:
        return "+".join(map(str, value)) if isinstance(value, list) else str(value)

    return f"{name} with " + ", ".join(f"{key}={show(value)}" for key, value in changed.items())


def hardware_of(record: dict[str, Any]) -> str:
    """Describe the hardware a record trained on, e.g. ``"NVIDIA H100 80GB HBM3, bf16"``."""
    hardware = record["run"]["hardware"]
    name = hardware["device_name"] if hardware["device"] == "cuda" else record["benchmark"]["host"]
    return f"{name}, {hardware['precision']}"


def _mean(values: list[float | None], digits: int = 1) -> float | None:
    values = [value for value in values if value is not None]
    return round(statistics.fmean(values), digits) if values else None


def _per_query_mean(runs: list[dict[str, Any]]) -> dict[str, float] | None:
    """Each query's fine-tuned NDCG@10 averaged over the runs; None unless every run kept it for the same queries."""
    tables = [run["per_query"] for run in runs]
    if any(table is None for table in tables) or len({frozenset(table) for table in tables}) != 1:
        return None
    return {qid: statistics.fmean(table[qid] for table in tables) for qid in tables[0]}


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group the records and summarise each group's test NDCG@10, wall times, and difference from the reference.

    Args:
        records: Benchmark records (the schema of ``run_full.py``).

    Returns:
        Rows with ``recipe``, ``split``, ``corpus``, ``n_seeds``, ``test_ndcg@10_mean``, ``test_ndcg@10_sd``
        (None for one seed), ``best_validation_ndcg@10_mean`` (the validation score the kept checkpoint was
        chosen by, the one score to choose recipes on), ``training_seconds_mean`` (None where only resumed runs
        were timed), ``hardware``, plus ``text_key``, ``run_seconds_mean`` (the notebook's or the pipeline's
        whole run), ``vs_reference`` (``delta``, ``ci_low``, ``ci_high``, ``reference_records``; None without
        per-query scores on both sides), ``vs_anchor`` (the same against the variant's anchor, plus ``anchor``,
        ``anchor_records`` and ``validation_delta``: :func:`compare_with_anchor`) and ``records``.
    """
    groups: dict[tuple, dict[int, dict[str, Any]]] = {}
    recipes: dict[tuple, tuple[str, dict[str, Any], bool]] = {}  # each group's read_recipe()
    for record in sorted(records, key=lambda r: r["benchmark"]["name"]):
        parameters = record["run"]["parameters"]
        seed = parameters.get("training_seed")
        seed = parameters["seed"] if seed is None else seed
        wall = record["benchmark"]["wall_seconds"]
        for mode, scores in record["corpus_modes"].items():
            if scores is None:
                continue
            recipe = _recipe_parts(record)
            key = (
                recipe_of(*recipe),
                parameters["split"],
                parameters["seed"],
                record["benchmark"]["text_key"],
                CORPUS_NAMES[mode],
                hardware_of(record),
            )
            recipes[key] = read_recipe(*recipe)
            per_query = scores.get("per_query")
            groups.setdefault(key, {})[seed] = {
                "ndcg": scores["finetuned"]["test_cosine_ndcg@10"],
                "validation": record["run"].get("best_checkpoint_metric"),
                # a resumed run's times cover only the part after its checkpoint: not comparable
                "training": None if record["run"]["resumed_from"] else record["run"]["training_seconds"],
                "run": None if record["run"]["resumed_from"] else wall["notebook"] or wall["pipeline"],
                "per_query": per_query["finetuned"] if per_query else None,
                "name": record["benchmark"]["name"],
            }
    rows = []
    for (recipe, split, split_seed, text_key, corpus, hardware), by_seed in sorted(groups.items()):
        runs = list(by_seed.values())
        scores = [run["ndcg"] for run in runs]
        rows.append(
            {
                "recipe": recipe,
                "split": split,
                "corpus": corpus,
                "n_seeds": len(runs),
                "test_ndcg@10_mean": round(statistics.fmean(scores), 4),
                "test_ndcg@10_sd": round(statistics.stdev(scores), 4) if len(scores) > 1 else None,
                "best_validation_ndcg@10_mean": _mean([run["validation"] for run in runs], digits=4),
                "training_seconds_mean": _mean([run["training"] for run in runs]),
                "hardware": hardware,
                "text_key": text_key,
                "run_seconds_mean": _mean([run["run"] for run in runs]),
                "vs_reference": None,
                "vs_anchor": None,
                "records": sorted(run["name"] for run in runs),
                "_key": (split, split_seed, text_key, corpus),
                "_per_query": _per_query_mean(runs),
                "_recipe": recipes[(recipe, split, split_seed, text_key, corpus, hardware)],
            }
        )
    for row in rows:
        row["vs_reference"] = compare_with_reference(row, rows)
        row["vs_anchor"] = compare_with_anchor(row, rows)
    for row in rows:
        del row["_key"], row["_per_query"], row["_recipe"]
    return rows


def _paired_difference(scores: dict[str, float], other: dict[str, float]) -> dict[str, float]:
    """Mean per-query difference ``scores`` minus ``other`` and its paired 95% bootstrap interval, to 4 decimals."""
    queries = sorted(scores)
    before = [other[qid] for qid in queries]
    after = [scores[qid] for qid in queries]
    low, high = paired_bootstrap_ci(before, after, n_resamples=BOOTSTRAP_RESAMPLES, seed=0)
    return {
        "delta": round(statistics.fmean(after) - statistics.fmean(before), 4),
        "ci_low": round(low, 4),
        "ci_high": round(high, 4),
    }


def compare_with_anchor(row: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Paired bootstrap interval of a variant minus its anchor: the closest row of the same recipe, split and corpus.

    The anchor's changed settings are a strict subset of the variant's, as many as can be (so it differs in the
    fewest settings); ties go to the same kind of batches (length-sorted or not), then the same hardware, then more
    seeds. Variants whose anchor would be the reference recipe itself are left to ``vs_reference``.

    Returns:
        ``delta``, ``ci_low``, ``ci_high`` (rounded to 4 decimals), ``anchor`` (its recipe's name),
        ``anchor_records`` and ``validation_delta`` (the best validation NDCG@10's difference, where both have
        it); None for a recipe as named, or where no anchor with the same per-query scores exists.
    """
    name, changed, length_sorted = row["_recipe"]
    if not changed or row["_per_query"] is None:
        return None

    def is_anchor(other: dict[str, Any]) -> bool:
        other_name, other_changed, _ = other["_recipe"]
        return (
            other_name == name
            and other["_key"] == row["_key"]
            and other["_per_query"] is not None
            and set(other["_per_query"]) == set(row["_per_query"])
            and len(other_changed) < len(changed)
            and all(key in changed and changed[key] == value for key, value in other_changed.items())
        )

    candidates = sorted(
        filter(is_anchor, rows),
        key=lambda other: (
            -len(other["_recipe"][1]),
            other["_recipe"][2] != length_sorted,
            other["hardware"] != row["hardware"],
            -other["n_seeds"],
        ),
    )
    if not candidates or candidates[0]["recipe"] == "reference":
        return None
    anchor = candidates[0]
    validation = (row["best_validation_ndcg@10_mean"], anchor["best_validation_ndcg@10_mean"])
    return _paired_difference(row["_per_query"], anchor["_per_query"]) | {
        "anchor": anchor["recipe"],
        "anchor_records": anchor["records"],
        "validation_delta": None if None in validation else round(validation[0] - validation[1], 4),
    }


def compare_with_reference(row: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Paired bootstrap interval of ``row`` minus the reference recipe on the same split, text key and corpus.

    The reference row on the same hardware is preferred; per-query scores are each query's mean over seeds.

    Returns:
        ``delta``, ``ci_low``, ``ci_high`` (rounded to 4 decimals) and ``reference_records``; None for the
        reference itself, or where either side kept no per-query scores.
    """
    if row["recipe"] == "reference" or row["_per_query"] is None:
        return None
    candidates = [
        other
        for other in rows
        if other["recipe"] == "reference" and other["_key"] == row["_key"] and other["_per_query"] is not None
    ]
    candidates.sort(key=lambda other: other["hardware"] != row["hardware"])
    if not candidates or set(candidates[0]["_per_query"]) != set(row["_per_query"]):
        return None
    reference = candidates[0]
    return _paired_difference(row["_per_query"], reference["_per_query"]) | {"reference_records": reference["records"]}


def compare_costs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set each cost comparison's runs against its reference-recipe run: time share and paired test difference.

    Args:
        records: Benchmark records; those named ``<group>_cost_<label>[_seed<S>]`` are compared within their group.

    Returns:
        One row per cost record and corpus mode, in name order: ``group``, ``label``, ``recipe``, ``corpus``,
        ``hardware``, ``training_seconds``, ``run_seconds`` (None for a resumed run), ``training_share`` (of the
        reference run's training time), ``test_ndcg@10`` and ``vs_reference`` (``delta``, ``ci_low``,
        ``ci_high``; None for the reference run itself or without per-query scores on both sides). Share and
        interval are None in a group with no reference-recipe run.

    Raises:
        ValueError: If a group holds more than one reference-recipe run (which one to compare with is unclear).
    """
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for record in sorted(records, key=lambda r: r["benchmark"]["name"]):
        match = COST_NAME.match(record["benchmark"]["name"])
        if match:
            groups.setdefault(match["group"], []).append((match["label"], record))
    rows = []
    for group, members in groups.items():
        references = [record for _, record in members if read_recipe(*_recipe_parts(record))[0] == "reference"]
        if len(references) > 1:
            names = ", ".join(record["benchmark"]["name"] for record in references)
            raise ValueError(f"cost comparison '{group}' has {len(references)} reference-recipe runs ({names})")
        reference = references[0] if references else None
        for label, record in members:
            for mode, scores in record["corpus_modes"].items():
                if scores is not None:
                    row = _cost_row(record, mode, reference)
                    rows.append({"group": group, "label": label} | row)
    return rows


def _cost_row(record: dict[str, Any], mode: str, reference: dict[str, Any] | None) -> dict[str, Any]:
    """One record's row of :func:`compare_costs` in one corpus mode, against its group's reference run if any."""
    scores = record["corpus_modes"][mode]
    wall = record["benchmark"]["wall_seconds"]
    # a resumed run's times cover only the part after its checkpoint: not comparable
    training = None if record["run"]["resumed_from"] else record["run"]["training_seconds"]
    row = {
        "recipe": recipe_of(*_recipe_parts(record)),
        "corpus": CORPUS_NAMES[mode],
        "hardware": hardware_of(record),
        "training_seconds": training,
        "run_seconds": None if training is None else wall["notebook"] or wall["pipeline"],
        "training_share": None,
        "test_ndcg@10": scores["finetuned"]["test_cosine_ndcg@10"],
        "vs_reference": None,
    }
    other = None if reference is None else reference["corpus_modes"].get(mode)
    if other is None:
        return row
    if training is not None and not reference["run"]["resumed_from"]:
        row["training_share"] = round(training / reference["run"]["training_seconds"], 2)
    mine, theirs = scores.get("per_query"), other.get("per_query")
    if record is not reference and mine and theirs and set(mine["finetuned"]) == set(theirs["finetuned"]):
        row["vs_reference"] = _paired_difference(mine["finetuned"], theirs["finetuned"])
    return row


def _recipe_parts(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    """A record's ``run.parameters``, ``run.recipe`` and ``run.loss``: what :func:`read_recipe` takes."""
    return record["run"]["parameters"], record["run"].get("recipe"), record["run"].get("loss")


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _interval(versus: dict[str, float]) -> str:
    return f"{versus['delta']:+.4f} [{versus['ci_low']:+.4f}, {versus['ci_high']:+.4f}]"


def _validation(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _table(columns: list[str], cells: list[list[str]]) -> str:
    """A markdown table of ``columns`` over the rows of ``cells``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """Render the summary rows as a markdown table."""
    columns = ["recipe", "split", "text key", "corpus", "hardware", "seeds", "best validation NDCG@10"]
    columns += ["test NDCG@10 (mean +- sd)", "vs reference recipe (paired 95% CI)", "training s", "whole run s"]
    cells = []
    for row in rows:
        sd = "" if row["test_ndcg@10_sd"] is None else f" +- {row['test_ndcg@10_sd']:.4f}"
        versus = row["vs_reference"]
        cells.append(
            [
                row["recipe"],
                row["split"],
                row["text_key"],
                row["corpus"],
                row["hardware"],
                str(row["n_seeds"]),
                _validation(row["best_validation_ndcg@10_mean"]),
                f"{row['test_ndcg@10_mean']:.4f}{sd}",
                "" if versus is None else _interval(versus),
                _seconds(row["training_seconds_mean"]),
                _seconds(row["run_seconds_mean"]),
            ]
        )
    return _table(columns, cells)


def variants_to_markdown(rows: list[dict[str, Any]]) -> str:
    """Render the rows that have an anchor as a markdown table of each variant against it."""
    columns = ["variant", "anchor", "split", "corpus", "hardware", "seeds", "best validation NDCG@10 (vs anchor)"]
    columns += ["test NDCG@10", "vs anchor (paired 95% CI)", "training s"]
    cells = []
    for row in rows:
        versus = row["vs_anchor"]
        if versus is None:
            continue
        validation = _validation(row["best_validation_ndcg@10_mean"])
        if versus["validation_delta"] is not None:
            validation += f" ({versus['validation_delta']:+.4f})"
        cells.append(
            [
                row["recipe"],
                versus["anchor"],
                row["split"],
                row["corpus"],
                row["hardware"],
                str(row["n_seeds"]),
                validation,
                f"{row['test_ndcg@10_mean']:.4f}",
                _interval(versus),
                _seconds(row["training_seconds_mean"]),
            ]
        )
    return _table(columns, cells)


def costs_to_markdown(rows: list[dict[str, Any]]) -> str:
    """Render :func:`compare_costs`'s rows as a markdown table."""
    columns = ["group", "run", "recipe", "corpus", "hardware", "training s", "share of the reference's"]
    columns += ["whole run s", "test NDCG@10", "vs reference run (paired 95% CI)"]
    cells = []
    for row in rows:
        share = "" if row["training_share"] is None else f"{row['training_share']:.2f}"
        versus = row["vs_reference"]
        cells.append(
            [
                row["group"],
                row["label"],
                row["recipe"],
                row["corpus"],
                row["hardware"],
                _seconds(row["training_seconds"]),
                share,
                _seconds(row["run_seconds"]),
                f"{row['test_ndcg@10']:.4f}",
                "" if versus is None else _interval(versus),
            ]
        )
    return _table(columns, cells)


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) summary.json and print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that summary.json is up to date")
    args = parser.parse_args(argv)
    records = [
        json.loads(path.read_text(encoding="utf-8")) for path in sorted(RESULTS_DIR.glob("*.json")) if path != SUMMARY
    ]
    rows = summarize(records)
    table = to_markdown(rows)
    try:
        costs = compare_costs(records)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    texts = {
        SUMMARY: json.dumps(rows, indent=2, ensure_ascii=False) + "\n",
        SUMMARY_MARKDOWN: MARKDOWN_HEADER
        + table
        + "\n"
        + VARIANTS_HEADER
        + variants_to_markdown(rows)
        + "\n"
        + COSTS_HEADER
        + costs_to_markdown(costs)
        + "\n",
    }
    if args.check:
        stale = [path.name for path, text in texts.items() if not path.is_file() or path.read_text("utf-8") != text]
        if stale:
            print(f"{' and '.join(stale)} out of date: run python benchmarks/summarize.py", file=sys.stderr)
            return 1
        return 0
    for path, text in texts.items():
        path.write_text(text, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
