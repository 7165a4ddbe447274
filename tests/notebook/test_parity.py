"""One workflow: the committed notebook, run top to bottom in a Colab-like kernel, and ``python -m ft_helpers run``
with the same settings give the same split and the same results.json numbers.

The kernel is Colab-like: ``google.colab`` is imported at its start and ``ft_helpers`` is installed, so the
install cell must leave it alone. Nothing of the notebook is edited but its parameters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURE_DATA, ROOT
from notebook_cells import NOTEBOOK, code_cells, small_run_parameters

sys.path.insert(0, str(ROOT / "benchmarks"))
import run_notebook

#: Settings both runs share: the reference recipe on sentence-transformers' own loss class.
SETTINGS = {"RECIPE": "reference", "SORT_BY_LENGTH": False}
TOLERANCE = 1e-6


def make_colab_like_site(folder: Path) -> Path:
    """A folder for PYTHONPATH whose sitecustomize imports a stand-in ``google.colab``, which leaves a mark."""
    (folder / "google" / "colab").mkdir(parents=True)
    (folder / "google" / "__init__.py").write_text("")
    (folder / "google" / "colab" / "__init__.py").write_text(
        "import os, pathlib\npathlib.Path(os.environ['COLAB_MARK']).write_text('imported')\n"
    )
    (folder / "sitecustomize.py").write_text("import google.colab  # as Colab's kernel does at start\n")
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: str) -> dict[str, Path]:
    """The notebook in a Colab-like kernel, and the command line, on the same settings; their output folders."""
    import nbformat

    folder = tmp_path_factory.mktemp("parity")
    site = make_colab_like_site(folder / "site")
    parameters = small_run_parameters(FIXTURE_DATA, tiny_model_dir, Path("notebook-output"), **SETTINGS)
    parameters["OUTPUT_DIR"] = "notebook-output"  # relative to the kernel's folder, as a reader's would be
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    run_notebook.set_parameters(notebook, parameters)
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "COLAB_MARK")}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), saved["PYTHONPATH"]]))
    os.environ["COLAB_MARK"] = str(folder / "colab-imported")
    try:
        run_notebook.kernel_environment()
        run_notebook.execute(notebook, folder, log=lambda line: None)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    nbformat.write(notebook, folder / "executed.ipynb")

    options = []
    for name, value in parameters.items():
        if name == "OUTPUT_DIR":
            continue
        flag = "--" + name.lower().replace("_", "-")
        if isinstance(value, bool):
            options.append(flag if value else "--no-" + flag[2:])
        else:
            options += [flag, str(value)]
    command = [sys.executable, "-m", "ft_helpers", "run", *options, "--output-dir", str(folder / "cli-output")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        "folder": folder,
        "notebook": folder / "notebook-output",
        "cli": folder / "cli-output",
        "stdout": done.stdout,
    }


def read_results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def test_the_notebook_ran_top_to_bottom_in_a_colab_like_kernel_without_installing(runs: dict):
    import nbformat

    assert (runs["folder"] / "colab-imported").read_text() == "imported", "google.colab was imported at start"
    executed = nbformat.read(runs["folder"] / "executed.ipynb", as_version=4)
    cells = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert len(cells) == len(code_cells())
    assert all(cell.execution_count for cell in cells), "every cell ran"
    assert cells[0].outputs == [], "the install cell found ft_helpers and did nothing"
    assert not [output for cell in cells for output in cell.outputs if output.output_type == "error"]


def test_notebook_and_command_line_split_the_same_rows(runs: dict):
    notebook, cli = read_results(runs["notebook"]), read_results(runs["cli"])
    assert notebook["split"]["rows"] == cli["split"]["rows"]
    assert notebook["split"]["leakage"] == cli["split"]["leakage"]


def test_notebook_and_command_line_train_with_the_same_settings(runs: dict):
    notebook, cli = read_results(runs["notebook"]), read_results(runs["cli"])
    differing = {name for name in notebook["settings"] if notebook["settings"][name] != cli["settings"][name]}
    assert differing == {"output_dir"}
    assert notebook["settings"]["loss"] == "MultipleNegativesRankingLoss"
    assert notebook["provenance"]["command"] == "notebook"
    assert cli["provenance"]["command"].startswith("python -m ft_helpers run --dataset ")


def close(left: object, right: object) -> bool:
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(close(left[key], right[key]) for key in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(close(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, float) and isinstance(right, float):
        return abs(left - right) <= TOLERANCE
    return left == right


@pytest.mark.parametrize("section", ["baseline", "finetuned", "comparison", "dimensions", "compression"])
def test_notebook_and_command_line_give_the_same_numbers(runs: dict, section: str):
    notebook, cli = read_results(runs["notebook"]), read_results(runs["cli"])
    assert notebook[section], f"no {section} in results.json"
    assert close(notebook[section], cli[section]), (notebook[section], cli[section])


def test_notebook_and_command_line_train_the_same_way(runs: dict):
    notebook, cli = read_results(runs["notebook"])["training"], read_results(runs["cli"])["training"]
    assert close(notebook["validation_by_epoch"], cli["validation_by_epoch"])
    assert (notebook["steps"], notebook["best_step"]) == (cli["steps"], cli["best_step"])


def test_the_command_line_prints_the_notebooks_test_ndcg(runs: dict):
    score = read_results(runs["notebook"])["finetuned"]["test_cosine_ndcg@10"]
    table_row = next(line for line in runs["stdout"].splitlines() if line.startswith("ndcg@10"))
    assert f"{score:.4f}" in table_row.split()
