"""Where a run's models miss: for each test question whose passage is not ranked first, what was ranked first.

Reads a finished run's folder (``results.json`` and ``eval/{baseline,finetuned}/per_query.csv``, as
:func:`ft_helpers.pipeline.run_pipeline` and the notebook write them), rebuilds its split and test corpus from
the same dataset, and counts, for each model:

- the questions whose relevant passage is not first, and those where it is not in the top 10;
- of the first-ranked wrong passages, how many come from the same group (``--group-column``, e.g. the
  company whose filing the row came from) as the relevant one, and how many from another;
- how many of them are near-copies of the relevant passage (at least :data:`NEAR_COPY` of their words shared).

It writes ``benchmarks/results/misses/<name>.json`` and prints a table. Example:

    python benchmarks/analyze_misses.py --run-dir /tmp/ft-bench-reference_cpu_improved_seed42 \
        --dataset ../shared/data/financial-qa-10k.csv --group-column ticker --name reference_cpu_improved_seed42
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ft_helpers import IRInputs, QADataError, RunConfig, normalize_text
from ft_helpers.pipeline import load_run_pairs, split_and_check

MISSES_DIR = Path(__file__).parent / "results" / "misses"
MODELS = ("baseline", "finetuned")
#: Share of words two passages must have in common to count as near-copies.
NEAR_COPY = 0.7


def word_overlap(first: str, second: str) -> float:
    """Return the share of distinct lower-cased words the two texts have in common (Jaccard index)."""
    a, b = set(re.findall(r"[a-z0-9]+", first.lower())), set(re.findall(r"[a-z0-9]+", second.lower()))
    return len(a & b) / len(a | b) if a | b else 1.0


def group_documents(pairs: pd.DataFrame, groups: pd.Series, inputs: IRInputs) -> dict[str, set[str]]:
    """Map each corpus document id to the groups of the rows whose context it is.

    Args:
        pairs: The rows whose contexts form the corpus (as :func:`~ft_helpers.evaluation.build_ir_inputs` got them).
        groups: Each row's group (same index as ``pairs``), e.g. its company.
        inputs: The evaluator inputs built from ``pairs``.

    Returns:
        Document id -> groups (a merged duplicate-aware document can belong to several).
    """
    if inputs.deduplicated:
        id_of_key = {normalize_text(text): doc for doc, text in inputs.corpus.items()}
        ids = [id_of_key[normalize_text(text)] for text in pairs["context"]]
    else:
        ids = [str(row) for row in pairs.index]
    documents: dict[str, set[str]] = {}
    for doc, group in zip(ids, groups.loc[pairs.index], strict=True):
        documents.setdefault(doc, set()).add(str(group))
    return documents


def describe_misses(
    per_query: pd.DataFrame, inputs: IRInputs, doc_groups: dict[str, set[str]], near_copy: float = NEAR_COPY
) -> dict[str, Any]:
    """Count one model's misses at rank 1 by what it ranked first.

    Args:
        per_query: One row per test query (index: query id) with ``ndcg@10``, ``rank`` and
            ``top_ids`` (a list, best first), as :func:`~ft_helpers.evaluation.score_rankings` returns it.
        inputs: The test evaluator inputs the rankings were made with.
        doc_groups: From :func:`group_documents`.
        near_copy: See :data:`NEAR_COPY`.

    Returns:
        The mean ``ndcg@10`` and the counts ``queries``, ``missed_at_1``, ``not_in_top_10``,
        ``first_from_same_group``, ``first_from_other_group`` and ``first_is_near_copy``; and
        ``ndcg@10_near_copies_as_hits``, the mean NDCG@10 if those near-copies ranked first counted as hits: how
        much of the gap to 1 passages that barely differ from the relevant one account for.
    """
    missed = per_query[per_query["rank"] != 1]
    same = other = 0
    near_copies = []
    for query, row in missed.iterrows():
        relevant = inputs.relevant_docs[str(query)]
        first = row["top_ids"][0]
        if doc_groups[first] & set().union(*(doc_groups[doc] for doc in relevant)):
            same += 1
        else:
            other += 1
        if any(word_overlap(inputs.corpus[first], inputs.corpus[doc]) >= near_copy for doc in relevant):
            near_copies.append(query)
    as_hits = per_query["ndcg@10"].copy()
    as_hits[near_copies] = 1.0
    return {
        "queries": len(per_query),
        "ndcg@10": round(float(per_query["ndcg@10"].mean()), 4),
        "missed_at_1": len(missed),
        "not_in_top_10": int((per_query["rank"].isna() | (per_query["rank"] > 10)).sum()),
        "first_from_same_group": same,
        "first_from_other_group": other,
        "first_is_near_copy": len(near_copies),
        "ndcg@10_near_copies_as_hits": round(float(as_hits.mean()), 4),
    }


def per_query_path(run_dir: Path, model: str) -> Path:
    """Return where a run keeps one model's per-query scores."""
    return run_dir / "eval" / model / "per_query.csv"


def read_per_query(path: Path) -> pd.DataFrame:
    """Read a run's ``per_query.csv`` with its ``top_ids`` as lists."""
    frame = pd.read_csv(path, index_col=0)
    frame.index = frame.index.astype(str)
    frame["top_ids"] = frame["top_ids"].map(ast.literal_eval)
    return frame


def analyze_run(run_dir: Path, dataset: str, group_column: str) -> dict[str, Any]:
    """Rebuild a finished run's test corpus and describe both models' misses.

    Args:
        run_dir: The run's output folder.
        dataset: The dataset the run used (its recorded path may be another machine's).
        group_column: The dataset column that groups rows, e.g. the company.

    Returns:
        The run's split settings, the test corpus sizes, and :func:`describe_misses` for each model.
    """
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    # the run's own settings (its split's group_column included), only the dataset's place may differ
    config = RunConfig(**{**results["run"]["parameters"], "dataset": dataset})
    _, test_inputs, _ = split_and_check(config, log=lambda message: None)
    pairs = load_run_pairs(config)  # the corpus rows, as split_and_check built the test corpus from them
    if group_column not in pairs.columns:
        raise QADataError(f"{dataset} has no column {group_column!r}; name the column that groups rows.")
    doc_groups = group_documents(pairs, pairs[group_column], test_inputs)
    described = {}
    for model in MODELS:
        per_query = read_per_query(per_query_path(run_dir, model))
        unknown = per_query.index.difference(list(test_inputs.queries))
        if len(unknown):
            raise QADataError(
                f"{len(unknown)} of {model}'s test questions (e.g. {unknown[0]}) are not in the rebuilt test split: "
                "the dataset differs from the run's; pass the dataset the run used."
            )
        described[model] = describe_misses(per_query, test_inputs, doc_groups)
        expected = results[model]["test_cosine_ndcg@10"]
        if abs(described[model]["ndcg@10"] - expected) > 1e-4:
            raise QADataError(
                f"{model}'s per-query NDCG@10 ({described[model]['ndcg@10']}) is not the run's ({expected:.4f}): "
                "the dataset or split differs from the run's; pass the dataset the run used."
            )
    return {
        "split": config.split,
        "seed": config.seed,
        "group_column": group_column,
        "evaluation": test_inputs.summary(),
        "recipe": results["run"].get("recipe"),
        "near_copy": NEAR_COPY,
        **described,
    }


def format_table(analysis: dict[str, Any]) -> str:
    """Return the analysis as a markdown table, one column per model."""
    rows = [
        ("test questions", "queries"),
        ("NDCG@10", "ndcg@10"),
        ("relevant passage not first", "missed_at_1"),
        ("... first passage from the same group", "first_from_same_group"),
        ("... first passage from another group", "first_from_other_group"),
        ("... first passage a near-copy of the relevant one", "first_is_near_copy"),
        ("relevant passage not in the top 10", "not_in_top_10"),
        ("NDCG@10 with near-copies first counted as hits", "ndcg@10_near_copies_as_hits"),
    ]
    lines = ["| | " + " | ".join(MODELS) + " |", "|---|" + "---|" * len(MODELS)]
    lines += [f"| {label} | " + " | ".join(str(analysis[m][key]) for m in MODELS) + " |" for label, key in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Analyze one run and write its record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, help="a finished run's output folder")
    parser.add_argument("--dataset", required=True, help="the dataset the run used")
    parser.add_argument("--group-column", required=True, help="the column that groups rows, e.g. ticker")
    parser.add_argument("--name", required=True, help="the record's file name, e.g. the benchmark record's")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    out = MISSES_DIR / f"{args.name}.json"
    if out.exists():
        parser.error(f"{out} exists: choose another --name (records are kept)")
    needed = (run_dir / "results.json", *(per_query_path(run_dir, model) for model in MODELS))
    missing = [path for path in needed if not path.is_file()]
    if missing:
        parser.error(f"{run_dir} is not a finished run's folder: {missing[0]} is missing.")
    try:
        analysis = analyze_run(run_dir, args.dataset, args.group_column)
    except QADataError as error:
        parser.error(str(error))
    MISSES_DIR.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"name": args.name, **analysis}, indent=2) + "\n", encoding="utf-8")
    print(format_table(analysis))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
