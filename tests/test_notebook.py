"""The notebook itself: its parameters, its cells, and a real top-to-bottom run on a small sample."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import FIXTURE_DATA, ROOT, SHARED_DATA, minilm_path

import ft_helpers
from ft_helpers import RunConfig

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


def test_reference_defaults():
    values = parameters_cell_values()
    assert values["DATASET"] == "philschmid/finanical-rag-embedding-dataset"
    assert values["BASE_MODEL"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert (values["EPOCHS"], values["TRAIN_BATCH_SIZE"], values["LEARNING_RATE"]) == (6, 32, 2e-5)
    assert values["MAX_TRAIN_SAMPLES"] is None and values["SPLIT"] == "grouped"


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


def test_setup_cell_installs_only_on_colab():
    setup = next(c for c in read_notebook().cells if c.cell_type == "code" and "%pip" in c.source)
    lines = [line for line in setup.source.splitlines() if line.strip() and not line.strip().startswith("#")]
    condition = lines.index('if "google.colab" in sys.modules:')
    assert all(line.startswith("    ") for line in lines[condition + 1 :]), "installs belong inside the Colab check"
    assert "torch" not in setup.source.replace("# Colab already ships a CUDA build of torch", "")


def test_saved_notebook_has_no_error_outputs():
    for cell in read_notebook().cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error"


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


@pytest.fixture(scope="module")
def executed_notebook(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import papermill

    folder = tmp_path_factory.mktemp("notebook-run")
    output_dir = folder / "output"
    executed = folder / "executed.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(executed),
        parameters=small_run_parameters(small_dataset, output_dir),
        cwd=str(folder),
        kernel_name="python3",
        progress_bar=False,
    )
    return executed, output_dir


@pytest.mark.slow
def test_notebook_runs_and_writes_results(executed_notebook: tuple[Path, Path]):
    executed, output_dir = executed_notebook
    results = json.loads((output_dir / "results.json").read_text())

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

    executed_cells = nbformat.read(executed, as_version=4).cells
    assert not [o for c in executed_cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    printed = "".join(o.get("text", "") for c in executed_cells for o in c.get("outputs", []))
    assert "✔" in printed, "the qualitative examples mark the right context"


@pytest.mark.slow
def test_saved_model_loads_and_retrieves(executed_notebook: tuple[Path, Path]):
    from sentence_transformers import SentenceTransformer

    _, output_dir = executed_notebook
    model = SentenceTransformer(str(output_dir / "model"), device="cpu")
    question = "What was the company's revenue?"
    passages = ["Revenue was $10 billion in 2023.", "The cafeteria serves lunch at noon."]
    scores = model.similarity(model.encode_query([question]), model.encode_document(passages))[0]
    assert scores[0] > scores[1]


@pytest.mark.slow
def test_pipeline_matches_notebook(small_dataset: Path, executed_notebook: tuple[Path, Path], tmp_path: Path):
    """pipeline.py mirrors the notebook: same inputs, same numbers."""
    from ft_helpers.pipeline import run_pipeline

    _, notebook_dir = executed_notebook
    from_notebook = json.loads((notebook_dir / "results.json").read_text())
    parameters = small_run_parameters(small_dataset, tmp_path / "pipeline")
    names = {upper: lower for lower, upper in RunConfig.notebook_names().items()}
    config = RunConfig(**{names[key]: value for key, value in parameters.items()})
    from_pipeline = run_pipeline(config, log=lambda message: None)

    assert from_pipeline["baseline"] == pytest.approx(from_notebook["baseline"], abs=1e-9)
    assert from_pipeline["finetuned"] == pytest.approx(from_notebook["finetuned"], abs=1e-4)
    assert from_pipeline["split"]["sizes"] == from_notebook["split"]["sizes"]
    assert from_pipeline["run"]["training_steps"] == from_notebook["run"]["training_steps"]
    saved = json.loads((tmp_path / "pipeline" / "results.json").read_text())
    assert set(saved) == set(from_notebook)
