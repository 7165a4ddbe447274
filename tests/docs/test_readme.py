"""Checks of the prose: the README is a short guide whose first screen starts a reader, and whose numbers and
commands are those of the records and the code; benchmarks/README.md shows each record's exact command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import ROOT

from ft_helpers import RECIPES
from ft_helpers.cli import build_parser

README = (ROOT / "README.md").read_text(encoding="utf-8")
BENCHMARKS_README = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
RESULTS = ROOT / "benchmarks" / "results"
FIRST_SCREEN = "\n".join(README.splitlines()[:45])
RECORD = re.compile(r"benchmarks/results/([a-z0-9_.-]+)\.json|results/([a-z0-9_.-]+)\.json")  # NAME.json: a placeholder
PAIR = re.compile(r"(\d\.\d{4}) -> (\d\.\d{4})")
GAIN = re.compile(r"([+-]\d\.\d{3}) \[([+-]\d\.\d{3}), ([+-]\d\.\d{3})\]")


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```(?:bash|toml)?\n(.*?)```", text, re.DOTALL)


def test_readme_is_a_guide_of_at_most_200_lines():
    assert len(README.splitlines()) <= 200


def test_first_screen_holds_the_badge_install_run_and_test_commands():
    assert "colab.research.google.com/assets/colab-badge.svg" in FIRST_SCREEN
    commands = [line for block in code_blocks(FIRST_SCREEN) for line in block.splitlines()]
    assert "pip install -e . && python -m ft_helpers run" in commands
    assert any(line.startswith("pip install -r requirements-dev.txt && python -m pytest") for line in commands)


def test_readme_test_command_is_the_one_ci_runs():
    (line,) = [line for block in code_blocks(README) for line in block.splitlines() if "python -m pytest" in line]
    test_command = line.split("&&")[-1].strip()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci, f"{test_command!r} is not a line of .ci/run"
    install = line.split("&&")[0].strip().removeprefix("pip install ")
    assert any(re.search(rf"pip install .*{re.escape(install)}$", ci_line) for ci_line in ci), "CI installs it too"


def test_readme_states_no_internal_goals():
    assert not re.search(r"\bgoals?\b|not reached|we aimed", README, re.IGNORECASE)


def cited_records(text: str) -> list[str]:
    return sorted({first or second for first, second in RECORD.findall(text)} - {"summary"})


def load_record(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))


def results_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|") and RECORD.search(line)]


@pytest.mark.parametrize("text", [README, BENCHMARKS_README], ids=["README", "benchmarks-README"])
def test_every_cited_record_exists(text: str):
    assert cited_records(text)
    for name in cited_records(text):
        assert (RESULTS / f"{name}.json").is_file(), name


@pytest.mark.parametrize(
    "row", results_rows(README) + results_rows(BENCHMARKS_README), ids=lambda row: row.split("|")[1].strip()[:40]
)
def test_each_number_in_a_row_is_its_records(row: str):
    (name,) = set(cited_records(row))
    saved = load_record(name)
    results = saved["results"]
    comparison = {entry["metric"]: entry for entry in results["comparison"]}
    for before, after in PAIR.findall(row):
        assert (before, after) == (
            f"{results['baseline']['test_cosine_ndcg@10']:.4f}",
            f"{results['finetuned']['test_cosine_ndcg@10']:.4f}",
        ), row
    for delta, low, high in GAIN.findall(row):
        ndcg = comparison["ndcg@10"]
        assert (delta, low, high) == (f"{ndcg['delta']:+.3f}", f"{ndcg['ci_low']:+.3f}", f"{ndcg['ci_high']:+.3f}")


def test_benchmarks_readme_shows_the_exact_command_of_every_record_it_cites():
    for name in cited_records(BENCHMARKS_README):
        for command in load_record(name)["record"]["commands"]:
            assert command in BENCHMARKS_README, f"{name}: {command}"


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*/*.json")), ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_benchmarks_readme_shows_the_command_of_every_measurement_record(path: Path):
    """Records of the measurement scripts (speed/, serve/, compression/, scale/), each linked with its command."""
    assert f"results/{path.parent.name}/{path.name}" in BENCHMARKS_README
    for command in json.loads(path.read_text(encoding="utf-8"))["record"]["commands"]:
        assert command in BENCHMARKS_README, command


def test_recipes_table_is_the_recipes_in_the_code():
    rows = {
        cells[0].strip("` "): cells
        for cells in (line.strip("|").split("|") for line in README.splitlines() if line.startswith("| `"))
        if cells[0].strip("` ") in RECIPES
    }
    assert set(rows) == set(RECIPES)
    for name, recipe in RECIPES.items():
        cells = [cell.strip() for cell in rows[name]]
        assert cells[2] == str(recipe.train_batch_size)
        assert float(cells[3]) == recipe.learning_rate
        assert cells[4] == str(recipe.epochs)
        assert ("Cached" in cells[1]) == bool(recipe.mini_batch_size)
        assert ("Matryoshka" in cells[1]) == bool(recipe.matryoshka_dims)


def test_every_option_the_readme_names_exists():
    parser = build_parser()
    options = set()
    for action in parser._subparsers._group_actions[0].choices.values():
        options |= {flag for sub in action._actions for flag in sub.option_strings}
    ours = re.sub(r"pip install[^`]*", "", README)  # pip's own options are pip's
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", ours)) - {"--help"}
    assert named <= options, named - options


def test_readme_says_how_to_get_the_data_file_it_names():
    assert "financial-qa-10k.csv" in README
    assert "load_dataset('virattt/financial-qa-10K'" in README
    sha = re.search(r"sha256 `([0-9a-f]{8})\.\.\.([0-9a-f]{6})`", README)
    for name in cited_records(README):
        full = load_record(name)["results"]["provenance"]["data"]["dataset"]["sha256"]
        assert full.startswith(sha.group(1)) and full.endswith(sha.group(2))


@pytest.mark.parametrize("path", [ROOT / "README.md", ROOT / "benchmarks" / "README.md"])
def test_relative_links_resolve(path: Path):
    for target in re.findall(r"\]\((?!https?://|#)([^)]+)\)", path.read_text(encoding="utf-8")):
        assert (path.parent / target.split("#")[0]).exists(), target


def section(text: str, heading: str) -> str:
    """The text under a ``## `` heading, up to the next one."""
    return text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the markdown tables in ``text``, as lists of cells."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if not line.startswith("|---")]


def test_the_compression_table_is_its_records():
    text = section(BENCHMARKS_README, "Smaller embeddings: size and precision")
    saved = json.loads((RESULTS / "compression" / "cpu_improved_10ep.json").read_text(encoding="utf-8"))
    expected = [
        [
            str(base["dimensions"]),
            base["precision"],
            f"{base['bytes_per_passage']:,}",
            f"{base['ndcg@10']:.4f}",
            f"{tuned['ndcg@10']:.4f}",
        ]
        for base, tuned in zip(saved["compression"]["baseline"], saved["compression"]["fine-tuned"], strict=True)
    ]
    assert table_rows(text)[1:] == expected
    goal = saved["goal"]
    assert f"{goal['fine-tuned']['ndcg@10']:.4f}" in text and f"{goal['baseline']['ndcg@10']:.4f}" in text
    assert f"our fine-tuned model scored test NDCG@10 {goal['fine-tuned']['ndcg@10']:.4f}" in README


def test_the_serving_table_is_its_record():
    text = section(BENCHMARKS_README, "Serving: ONNX and int8")
    saved = json.loads((RESULTS / "serve" / "cpu_improved_10ep_perchannel.json").read_text(encoding="utf-8"))
    for cells, row in zip(table_rows(text)[1:], saved["rows"], strict=True):
        assert cells[1:6] == [
            f"{row['passages_per_second']:.1f}",
            f"{row['speed_vs_torch']:.2f}x",
            f"{row['load_seconds']:.2f} s",
            f"{row['file_bytes'] / 1e6:.1f} MB",
            f"{row['test_ndcg@10']:.4f}",
        ], cells[0]
    int8 = saved["rows"][-1]
    assert f"passages of the corpus {int8['speed_vs_torch']:.2f}x as fast as PyTorch" in README


def test_the_scale_table_is_its_record():
    text = section(BENCHMARKS_README, "Search at scale: flat, HNSW and IVF-PQ")
    saved = json.loads((RESULTS / "scale" / "cpu.json").read_text(encoding="utf-8"))
    expected = [
        [
            f"{row['vectors']:,}",
            str(row["dimensions"]),
            row["kind"],
            f"{row['build_seconds']:.1f} s",
            f"{row['index_bytes'] / 1e6:,.1f} MB",
            f"{row['p50_ms']:.2f} ms",
            f"{row['p95_ms']:.2f} ms",
            f"{row['recall@10']:.3f}",
        ]
        for row in saved["rows"]
    ]
    assert table_rows(text)[1:] == expected
