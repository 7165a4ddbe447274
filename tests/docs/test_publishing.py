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


def test_the_documents_notebook_badge_and_install_cell_point_to_the_repository():
    import nbformat

    notebook = nbformat.read(ROOT / "documents_to_pairs.ipynb", as_version=4)
    github = repository().removeprefix("https://github.com/")
    assert badge_targets(notebook.cells[0].source) == [(github, "documents_to_pairs.ipynb")]
    install = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert re.findall(r'^REPOSITORY = "([^"]*)"', install.source, re.MULTILINE) == [repository()]


def test_sync_repository_rewrites_badges_and_install_cells(tmp_path, monkeypatch):
    names = ("embedding_finetuning_rag_demo.ipynb", "documents_to_pairs.ipynb")
    notebooks, readme = [tmp_path / name for name in names], tmp_path / "README.md"
    for notebook in notebooks:
        notebook.write_text((ROOT / notebook.name).read_text())
    readme.write_text((ROOT / "README.md").read_text())
    (tmp_path / "pyproject.toml").write_text('[project.urls]\nRepository = "https://github.com/someone/fork"\n')
    monkeypatch.setattr(sync_repository, "ROOT", tmp_path)
    monkeypatch.setattr(sync_repository, "NOTEBOOKS", tuple(notebooks))
    monkeypatch.setattr(sync_repository, "README", readme)
    assert sync_repository.main() == 0
    assert badge_targets(readme.read_text()) == [("someone/fork", "embedding_finetuning_rag_demo.ipynb")]
    for notebook in notebooks:
        text = notebook.read_text()
        assert f"github/someone/fork/blob/main/{notebook.name}" in text
        assert 'REPOSITORY = \\"https://github.com/someone/fork\\"' in text
