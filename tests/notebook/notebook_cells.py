"""Read the notebook's cells, their parameters and the names each one needs; run them outside Jupyter."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "embedding_finetuning_rag_demo.ipynb"
#: The comment that opens a copyable cell's list of the names it takes from earlier cells.
NEEDS = re.compile(r"^# Needs: (.*)$")
#: What a Needs line may say instead of listing every parameter.
PARAMETERS_CELL = "the parameters cell"


def read_notebook() -> nbformat.NotebookNode:
    """The committed notebook."""
    return nbformat.read(NOTEBOOK, as_version=4)


def code_cells(notebook: nbformat.NotebookNode | None = None) -> list[nbformat.NotebookNode]:
    """The notebook's code cells, in order."""
    return [cell for cell in (notebook or read_notebook()).cells if cell.cell_type == "code"]


def parameters_cell(notebook: nbformat.NotebookNode | None = None) -> nbformat.NotebookNode:
    """The one cell tagged ``parameters``."""
    (cell,) = [cell for cell in code_cells(notebook) if "parameters" in cell.metadata.get("tags", [])]
    return cell


def parameter_values(notebook: nbformat.NotebookNode | None = None) -> dict[str, Any]:
    """The parameters cell's assignments, name -> value, in order."""
    values = {}
    for node in ast.parse(parameters_cell(notebook).source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.unparse(node)
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def needed_names(source: str) -> list[str] | None:
    """The names a cell says it needs (its ``# Needs:`` comment, continued on indented comment lines), or None."""
    lines = source.splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("#"):
            return None
        found = NEEDS.match(line)
        if found:
            text = found.group(1)
            for more in lines[index + 1 :]:
                if not re.match(r"^#\s{2,}\S", more):
                    break
                text += " " + more.lstrip("#").strip()
            names = [name.strip() for name in text.split(",") if name.strip()]
            expanded = []
            for name in names:
                expanded += list(parameter_values()) if name == PARAMETERS_CELL else [name]
            return expanded
    return None


def run_source(source: str, namespace: dict[str, Any], folder: Path) -> None:
    """Execute a cell's code in ``namespace`` with ``folder`` as working directory, as Jupyter would."""
    code = compile(source, "<cell>", "exec")
    here = Path.cwd()
    os.chdir(folder)
    try:
        exec(code, namespace)  # the notebook's own code, run as a reader's kernel runs it
    finally:
        os.chdir(here)


def run_notebook_cells(parameters: dict[str, Any], folder: Path) -> list[dict[str, Any]]:
    """Run every code cell after the install cell in one namespace, the parameters replaced by ``parameters``.

    Returns:
        For each code cell (install cell first, not run), a shallow copy of the namespace before it ran.
    """
    cells = code_cells()
    namespace: dict[str, Any] = {"__name__": "__main__"}
    before = [dict(namespace)]
    for cell in cells[1:]:
        before.append(dict(namespace))
        run_source(cell.source, namespace, folder)
        if "parameters" in cell.metadata.get("tags", []):
            namespace.update(parameters)
    return before


def small_run_parameters(dataset: Path, model: str, output_dir: Path, **changes: Any) -> dict[str, Any]:
    """Parameters for a run in seconds: the fixture or a slice of data, a tiny model, one or two epochs."""
    return {
        "DATASET": str(dataset),
        "BASE_MODEL": model,
        "OUTPUT_DIR": str(output_dir),
        "EPOCHS": 2,
        "TRAIN_BATCH_SIZE": 8,
        "BOOTSTRAP_RESAMPLES": 200,
    } | changes
