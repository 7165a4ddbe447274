"""The second notebook, documents_to_pairs.ipynb: it runs top to bottom without a language model (generation skipped,
the hand-written pairs used) and with one (a fake OpenAI-compatible server), and its saved outputs are one clean run.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, minilm_path
from fake_llm import FakeLLM

sys.path.insert(0, str(ROOT / "benchmarks"))
import run_notebook

NOTEBOOK = ROOT / "documents_to_pairs.ipynb"


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    """Every stream and text output of the notebook, joined; errors raise."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"{output['ename']}: {output['evalue']}"
            if output["output_type"] == "stream":
                parts.append(output["text"])
            elif "text/plain" in output.get("data", {}):
                parts.append(output["data"]["text/plain"])
    return "\n".join(parts)


def execute(folder: Path, **parameters: object) -> str:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    run_notebook.set_parameters(notebook, {"BASE_MODEL": minilm_path(), **parameters})
    shutil.copytree(ROOT / "examples", folder / "examples")
    run_notebook.kernel_environment()
    run_notebook.execute(notebook, folder, log=lambda line: None)
    return outputs_text(notebook)


def test_without_a_language_model_it_skips_generation_and_splits_the_hand_written_pairs(tmp_path: Path):
    text = execute(tmp_path)
    assert "16 documents; the first five:" in text
    assert "24 passages of at most 128 tokens from 16 documents" in text
    assert "No language model set (LLM_BASE_URL, LLM_MODEL): the next cell skips generation." in text
    assert "Generation skipped. Going on with examples/pairs.jsonl" in text
    assert "train:  40 pairs from 12 documents" in text
    assert "shared_documents" in text
    assert not (tmp_path / "output").exists()


def test_with_a_language_model_it_writes_pairs_and_splits_them_by_document(tmp_path: Path):
    fake = FakeLLM().start()
    try:
        text = execute(tmp_path, LLM_BASE_URL=fake.base_url, LLM_MODEL="fake", MAX_PASSAGES=None)
    finally:
        fake.stop()
    assert "24 requests to fake, about" in text
    assert "48 questions for 24 passages of 16 documents" in text
    pairs = [json.loads(line) for line in (tmp_path / "output/pairs/pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 48 and len(fake.requests) == 24
    assert {"question", "context", "doc_id", "passage_id"} == set(pairs[0])


def test_the_saved_notebook_is_one_clean_run_without_machine_paths():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1))
    text = outputs_text(notebook)
    assert "Generation skipped" in text and "shared_documents" in text
    assert run_notebook.find_machine_paths(notebook) == []


@pytest.mark.parametrize("cell", [c for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"][3:])
def test_each_step_cell_says_what_it_needs(cell: nbformat.NotebookNode):
    assert cell.source.startswith("# Needs: "), cell.source[:80]
