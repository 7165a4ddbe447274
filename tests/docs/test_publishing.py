"""The repository is named in one place (pyproject.toml); the badges and the notebook's install cell follow it."""

from __future__ import annotations

import re
import sys
import tomllib

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "notebook"))
import sync_repository
from notebook_cells import code_cells, read_notebook


def repository() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def badge_targets(text: str) -> list[str]:
    return re.findall(r"colab\.research\.google\.com/github/([^/\s\"]+/[^/\s\"]+)/blob/main/(\S+?\.ipynb)", text)


def test_notebook_badge_points_to_the_repository_and_the_notebook():
    github = repository().removeprefix("https://github.com/")
    assert badge_targets(read_notebook().cells[0].source) == [(github, "embedding_finetuning_rag_demo.ipynb")]


def test_readme_badge_points_to_the_repository_and_the_notebook():
    github = repository().removeprefix("https://github.com/")
    assert badge_targets((ROOT / "README.md").read_text()) == [(github, "embedding_finetuning_rag_demo.ipynb")]


def test_install_cell_installs_from_the_repository():
    (assigned,) = re.findall(r'^REPOSITORY = "([^"]*)"', code_cells()[0].source, re.MULTILINE)
    assert assigned == repository()


def test_sync_repository_rewrites_badges_and_install_cell(tmp_path, monkeypatch):
    notebook, readme = tmp_path / "nb.ipynb", tmp_path / "README.md"
    notebook.write_text((ROOT / "embedding_finetuning_rag_demo.ipynb").read_text())
    readme.write_text((ROOT / "README.md").read_text())
    (tmp_path / "pyproject.toml").write_text('[project.urls]\nRepository = "https://github.com/someone/fork"\n')
    monkeypatch.setattr(sync_repository, "ROOT", tmp_path)
    monkeypatch.setattr(sync_repository, "NOTEBOOK", notebook)
    monkeypatch.setattr(sync_repository, "README", readme)
    assert sync_repository.main() == 0
    assert badge_targets(readme.read_text()) == [("someone/fork", "embedding_finetuning_rag_demo.ipynb")]
    text = notebook.read_text()
    assert "github/someone/fork/blob/main/embedding_finetuning_rag_demo.ipynb" in text
    assert 'REPOSITORY = \\"https://github.com/someone/fork\\"' in text
