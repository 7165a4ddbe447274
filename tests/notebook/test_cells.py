"""The notebook's cells: one parameter list, cells that say what they need and run with only that, the install cell."""

from __future__ import annotations

import ast
import builtins
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from conftest import FIXTURE_DATA
from notebook_cells import (
    code_cells,
    needed_names,
    parameter_values,
    parameters_cell,
    read_notebook,
    run_notebook_cells,
    run_source,
    small_run_parameters,
)

from ft_helpers import RunConfig

SETUP_CELLS = 2  # the install cell and the versions-and-device cell come before the parameters


def test_parameters_cell_is_run_config_field_by_field_with_its_defaults():
    values = parameter_values()
    assert list(values) == [item.name.upper() for item in fields(RunConfig)]
    assert values == {item.name.upper(): item.default for item in fields(RunConfig)}


def test_config_cell_passes_every_parameter_by_its_name():
    (cell,) = [cell for cell in code_cells() if "config = RunConfig(" in cell.source]
    call = next(node for node in ast.walk(ast.parse(cell.source)) if isinstance(node, ast.Call))
    passed = {keyword.arg: ast.unparse(keyword.value) for keyword in call.keywords}
    assert passed == {item.name: item.name.upper() for item in fields(RunConfig)}


def test_every_cell_after_the_parameters_says_which_earlier_names_it_needs():
    cells = code_cells()
    assert cells.index(parameters_cell()) == SETUP_CELLS
    missing = [cell.source.splitlines()[0] for cell in cells[SETUP_CELLS + 1 :] if needed_names(cell.source) is None]
    assert not missing


def names_used_but_not_bound(source: str) -> set[str]:
    """The names a cell reads that it neither assigns nor imports (nor are builtins): what it takes from before."""
    tree = ast.parse(source)
    bound, loaded = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return loaded - bound - set(dir(builtins))


@pytest.mark.parametrize("index", range(SETUP_CELLS + 1, len(code_cells())))
def test_each_cell_needs_exactly_the_names_it_reads(index: int):
    source = code_cells()[index].source
    assert set(needed_names(source)) == names_used_but_not_bound(source), source.splitlines()[0]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: str) -> tuple[list[dict], Path]:
    """Every cell run once in order (the improved recipe: the cached loss in MatryoshkaLoss), on the fixture."""
    folder = tmp_path_factory.mktemp("notebook")
    parameters = small_run_parameters(FIXTURE_DATA, tiny_model_dir, folder / "output", RECIPE="improved")
    return run_notebook_cells(parameters, folder), folder


def test_the_notebook_runs_through_and_writes_its_results(executed: tuple[list[dict], Path]):
    import json

    folder = executed[1]
    results = json.loads((folder / "output" / "results.json").read_text())
    assert results["settings"]["loss"] == "MatryoshkaLoss(CachedMultipleNegativesRankingLoss)"
    assert results["provenance"]["command"] == "notebook"
    for name in ("model", "training.png", "comparison.png", "dimensions.png", "eval/baseline/per_query.csv"):
        assert (folder / "output" / name).exists(), name


@pytest.mark.parametrize("index", range(SETUP_CELLS + 1, len(code_cells())))
def test_each_cell_runs_in_a_fresh_namespace_with_only_the_names_it_needs(
    executed: tuple[list[dict], Path], index: int
):
    namespaces, folder = executed
    source = code_cells()[index].source
    before = namespaces[index]
    needs = needed_names(source)
    assert set(needs) <= set(before), f"names no earlier cell defines: {set(needs) - set(before)}"
    run_source(source, {"__name__": "__main__"} | {name: before[name] for name in needs}, folder)


# --------------------------------------------------------------------------------------------------
# The install cell: imports ft_helpers first, installs only where it is missing and only on Colab
# --------------------------------------------------------------------------------------------------
class FakeIPython:
    """Records the line magics a cell runs (``%pip``)."""

    def __init__(self) -> None:
        self.magics: list[tuple[str, str]] = []

    def run_line_magic(self, name: str, line: str) -> None:
        self.magics.append((name, line))


def run_install_cell(monkeypatch: pytest.MonkeyPatch, installed: bool, colab: bool) -> tuple[FakeIPython, dict]:
    """Run the install cell as IPython would (its %pip as a line magic); return the magics run and its names."""
    import importlib.util

    from IPython.core.inputtransformer2 import TransformerManager

    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "ft_helpers" and not installed else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    shell = FakeIPython()
    python = TransformerManager().transform_cell(code_cells()[0].source)
    namespace = {"get_ipython": lambda: shell}
    exec(compile(python, "<install cell>", "exec"), namespace)
    return shell, namespace


def test_install_cell_does_nothing_where_ft_helpers_is_installed(monkeypatch: pytest.MonkeyPatch):
    assert run_install_cell(monkeypatch, installed=True, colab=True)[0].magics == []
    assert run_install_cell(monkeypatch, installed=True, colab=False)[0].magics == []


def test_install_cell_on_colab_installs_ft_helpers_from_the_repository(monkeypatch: pytest.MonkeyPatch):
    import tomllib

    from conftest import ROOT

    repository = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    shell, namespace = run_install_cell(monkeypatch, installed=False, colab=True)
    ((name, line),) = shell.magics
    assert name == "pip"
    # IPython fills in {REPOSITORY} from the cell's names before pip runs
    assert line.format(**namespace) == f'install -q "ft-helpers @ git+{repository}"'


def test_install_cell_elsewhere_says_how_to_install(monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(ModuleNotFoundError, match=r"pip install -e \."):
        run_install_cell(monkeypatch, installed=False, colab=False)


# --------------------------------------------------------------------------------------------------
# The committed outputs: one real run, stated plainly, nothing of the machine that made them
# --------------------------------------------------------------------------------------------------
def test_saved_notebook_holds_one_run_in_order_without_errors():
    cells = code_cells()
    counts = [cell.execution_count for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), "every cell run once, top to bottom"
    assert not [output for cell in cells for output in cell.outputs if output.output_type == "error"]
    assert "papermill" not in read_notebook().metadata


def test_saved_notebook_holds_no_path_of_any_machine():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import run_notebook

    assert run_notebook.find_machine_paths(read_notebook()) == []


def test_saved_training_output_is_one_table_and_one_progress_bar():
    (cell,) = [cell for cell in code_cells() if "trainer.train()" in cell.source]
    streams = [output for output in cell.outputs if output.output_type == "stream"]
    assert [output.name for output in streams] == ["stdout"], "no stderr fragments"
    lines = streams[0].text.splitlines()
    assert lines[0].split() == ["epoch", "training", "loss", "validation", "loss", "validation", "ndcg@10"]
    assert sum(line.startswith("training steps:") for line in lines) == 1
    assert lines[-1].startswith("Training took ")


def test_top_of_the_notebook_states_the_hardware_and_time_of_the_saved_run():
    intro = read_notebook().cells[0].source
    assert "RUN_HARDWARE" not in intro and "RUN_TIME" not in intro
    assert "not timed" in intro or "not measured" in intro, "what a T4 user should expect, marked as not measured"
