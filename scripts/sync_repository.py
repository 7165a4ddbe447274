"""Write the repository address from pyproject.toml's [project.urls] into the notebooks and the README.

The address is set in one place, ``Repository`` under ``[project.urls]`` in pyproject.toml; this puts it into each
notebook's Colab badge and install cell (``REPOSITORY = ...``), and the README's badge. Run it after
changing that line: ``python scripts/sync_repository.py``. ``tests/docs/test_publishing.py`` checks all agree.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = (ROOT / "embedding_finetuning_rag_demo.ipynb", ROOT / "documents_to_pairs.ipynb")
README = ROOT / "README.md"
#: A Colab badge's link to a notebook on GitHub: colab.research.google.com/github/<owner>/<name>/blob/...
BADGE = re.compile(r"(colab\.research\.google\.com/github/)[^/\s\"]+/[^/\s\"]+(/blob/)")
#: The install cell's assignment of the repository address.
INSTALL = re.compile(r'^REPOSITORY = "[^"]*"', re.MULTILINE)


def read_repository() -> str:
    """Return ``https://github.com/<owner>/<name>`` from pyproject.toml."""
    url = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]["Repository"]
    if not re.fullmatch(r"https://github\.com/[^/\s]+/[^/\s]+", url):
        raise SystemExit(f"pyproject.toml: Repository must look like https://github.com/owner/name, got {url!r}.")
    return url


def main() -> int:
    """Rewrite the badges and the install cell; return the exit status."""
    url = read_repository()
    github = url.removeprefix("https://github.com/")
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        notebook.cells[0].source = BADGE.sub(rf"\g<1>{github}\g<2>", notebook.cells[0].source)
        install = next(cell for cell in notebook.cells if cell.cell_type == "code")
        install.source = INSTALL.sub(f'REPOSITORY = "{url}"', install.source)
        nbformat.write(notebook, path)
    README.write_text(BADGE.sub(rf"\g<1>{github}\g<2>", README.read_text(encoding="utf-8")), encoding="utf-8")
    names = ", ".join(path.name for path in NOTEBOOKS)
    print(f"set {url} in {names} (badges, install cells) and {README.name} (badge)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
