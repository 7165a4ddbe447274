"""The README's measured numbers: each table row that names a record must show that record's numbers."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
RESULTS = ROOT / "benchmarks" / "results"
TABLE_ROWS = [line for line in README.splitlines() if line.startswith("|")]
RECORD_LINK = re.compile(r"benchmarks/results/[\w.-]+\.json")
SOURCED_ROWS = [line for line in TABLE_ROWS if RECORD_LINK.search(line) and "results/misses/" not in line]
MISSES_ROWS = [line for line in TABLE_ROWS if "benchmarks/results/misses/" in line]
SUMMARY_ROWS = [line for line in TABLE_ROWS if "benchmarks/results/summary.md" in line]
PAIR = re.compile(r"(\d\.\d{4}) -> (\d\.\d{4})(?: \(([+-]\d\.\d{3})(?:, \[([+-]\d\.\d{3}), ([+-]\d\.\d{3})\])?\))?")


def record_of(row: str) -> dict:
    (name,) = set(re.findall(r"benchmarks/results/([\w.-]+)\.json", row))
    return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))


def comparisons(record: dict) -> list[dict]:
    return [row for mode in record["corpus_modes"].values() if mode for row in mode["comparison"]]


def test_the_readme_cites_records():
    assert len(SOURCED_ROWS) >= 8
    for row in SOURCED_ROWS:
        for name in re.findall(r"benchmarks/results/([\w.-]+)\.json", row):
            assert (RESULTS / f"{name}.json").is_file(), name


@pytest.mark.parametrize("row", SOURCED_ROWS, ids=range(len(SOURCED_ROWS)))
def test_every_score_in_a_sourced_row_is_in_its_record(row: str):
    rows = comparisons(record_of(row))
    for match in PAIR.finditer(row):
        before, after, delta, low, high = match.groups()
        found = [
            r
            for r in rows
            if f"{r['baseline']:.4f}" == before
            and f"{r['finetuned']:.4f}" == after
            and (delta is None or f"{r['delta']:+.3f}" == delta)
            and (low is None or (f"{r['ci_low']:+.3f}", f"{r['ci_high']:+.3f}") == (low, high))
        ]
        assert found, f"{match.group()} is not in the record cited by: {row[:80]}"


def test_a_row_citing_the_summary_shows_a_mean_over_seeds_from_it():
    """A mean over seeds: the base model's score from the seeds' records, the fine-tuned mean from summary.json."""
    assert SUMMARY_ROWS, "the published-results table cites the 3-seed mean"
    summary = json.loads((RESULTS / "summary.json").read_text(encoding="utf-8"))
    for row in SUMMARY_ROWS:
        (match,) = PAIR.finditer(row)
        before, after = match.group(1), match.group(2)
        n_seeds = int(re.search(r"mean of (\d+) seeds", row).group(1))
        found = [
            entry
            for entry in summary
            if entry["n_seeds"] == n_seeds
            and f"{entry['test_ndcg@10_mean']:.4f}" == after
            and {
                f"{comparison['baseline']:.4f}"
                for name in entry["records"]
                for comparison in comparisons(json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8")))
                if comparison["metric"] == "ndcg@10"
            }
            & {before}
        ]
        assert found, f"{match.group()} is no {n_seeds}-seed mean in summary.json: {row[:80]}"


def test_the_misses_table_shows_its_records_counts():
    assert len(MISSES_ROWS) >= 4
    keys = ("ndcg@10", "missed_at_1", "first_from_same_group", "first_from_other_group", "first_is_near_copy")
    keys += ("not_in_top_10", "ndcg@10_near_copies_as_hits")
    for row in MISSES_ROWS:
        (name,) = re.findall(r"benchmarks/results/misses/([\w.-]+)\.json", row)
        record = json.loads((RESULTS / "misses" / f"{name}.json").read_text(encoding="utf-8"))
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        counts = record[{"base": "baseline", "fine-tuned": "finetuned"}[cells[1]]]
        expected = [f"{counts[key]:.4f}" if "ndcg" in key else str(counts[key]) for key in keys]
        expected[1] += f" of {counts['queries']}"
        assert cells[2:] == expected, row[:80]


def notebook_record() -> dict:
    """The record in the first row of the README's table of the default notebook run: the saved notebook's."""
    table = README.split("**The default notebook run**")[1].split("\n\n")[1]
    return record_of(table.splitlines()[2])


def test_the_notebook_run_is_described_by_its_record():
    record = notebook_record()
    evaluation = record["corpus_modes"]["deduplicated"]["evaluation"]
    sentence = re.search(
        r"Its ([\d,]+)\s+test\s+rows\s+give\s+([\d,]+)\s+queries\s.*?against\s+([\d,]+)\s+documents", README, re.S
    )
    assert sentence, "the README describes the notebook run's test set"
    numbers = [int(group.replace(",", "")) for group in sentence.groups()]
    assert numbers == [record["split"]["sizes"]["test"], evaluation["queries"], evaluation["documents"]]
    assert all(row["p_value"] < 0.001 for row in record["corpus_modes"]["deduplicated"]["comparison"])
    assert record["benchmark"]["wall_seconds"]["notebook"], "the record is of a notebook run"


def test_the_saved_notebook_shows_the_numbers_of_the_record_the_readme_names():
    record = notebook_record()
    notebook = json.loads((ROOT / "embedding_finetuning_rag_demo.ipynb").read_text(encoding="utf-8"))
    printed = "".join(
        "".join(output.get("text") or output.get("data", {}).get("text/plain", ""))
        for cell in notebook["cells"]
        for output in cell.get("outputs", [])
    )
    ndcg = record["corpus_modes"]["deduplicated"]["comparison"][0]
    assert ndcg["metric"] == "ndcg@10"
    assert re.search(rf"ndcg@10 +{ndcg['baseline']:.4f} +{ndcg['finetuned']:.4f} ", printed), "section 9's table"
    assert f"best validation NDCG@10: {record['run']['best_checkpoint_metric']:.4f}" in printed
    assert f"Recipe {record['run']['parameters']['recipe']!r}:" in printed
    assert f"Training took {record['run']['training_seconds'] / 60:.1f} min" in printed


def test_times_are_stated_once():
    """The run-time table is the one place for measured times: no minutes or seconds elsewhere."""
    times_section = README.split("## Run times (measured)")[1].split("\n## ")[0]
    elsewhere = README.replace(times_section, "")
    assert not re.findall(r"\b\d+(?:\.\d+)? ?(?:min|minutes|s|seconds|hours?)\b", elsewhere)
