"""How a result was made: the command, the code's commit, the data's checksum, package versions and hardware."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: Packages whose versions are printed and stored with each run.
REPORTED_PACKAGES = (
    "torch",
    "sentence-transformers",
    "transformers",
    "datasets",
    "accelerate",
    "huggingface-hub",
    "pandas",
    "numpy",
    "scipy",
    "faiss-cpu",
    "onnx",
    "onnxruntime",
)


def collect_environment() -> dict[str, str]:
    """Return Python and package versions (``"not installed"`` where missing).

    Returns:
        Package name -> version, with ``"python"`` first.
    """
    versions = {"python": platform.python_version()}
    for package in REPORTED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def describe_machine() -> dict[str, Any]:
    """Return the processor, its core count and the operating system (the GPU is in the hardware settings)."""
    processor = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        processor = names[0] if names else processor
    return {"processor": processor, "cores": os.cpu_count(), "system": f"{platform.system()} {platform.machine()}"}


def hash_file(path: str | Path) -> str:
    """Return the sha256 of a file's bytes, as a hex string."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_data(source: str) -> dict[str, Any]:
    """Say exactly which data a run read: a local file by name and sha256, a Hub dataset by id and revision.

    Args:
        source: A local file, or a Hugging Face Hub dataset id (as ``DATASET`` takes them).

    Returns:
        ``{"file": name, "sha256": ...}``, or ``{"hub_id": id, "revision": commit}`` where the revision is
        ``None`` if the Hub cannot be asked (offline), with ``"note"`` saying so.
    """
    path = Path(source).expanduser()
    if path.is_file():
        return {"file": path.name, "sha256": hash_file(path)}
    try:
        from huggingface_hub import HfApi

        return {"hub_id": source, "revision": HfApi().dataset_info(source).sha}
    except Exception as err:  # offline, or the Hub unreachable: the run went on from the local cache
        return {"hub_id": source, "revision": None, "note": f"revision not found: {type(err).__name__}"}


def describe_code(folder: str | Path | None = None) -> dict[str, Any]:
    """Return the git commit of the code that ran, and whether it had uncommitted changes.

    Args:
        folder: A folder inside the work tree (default: this package's).

    Returns:
        ``{"commit": sha, "dirty": bool}``, or ``{"commit": None}`` outside a git work tree (an installed copy).
    """
    where = Path(folder) if folder is not None else Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=where, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "."))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}
    return {"commit": commit, "dirty": dirty}


def collect_provenance(
    command: str, dataset: str, test_dataset: str | None, hardware: dict[str, Any]
) -> dict[str, Any]:
    """Gather how a result was made, for the ``provenance`` section of ``results.json``.

    Args:
        command: The command line that started the run, or ``"notebook"``.
        dataset: ``DATASET``.
        test_dataset: ``TEST_DATASET`` (None: none).
        hardware: The device settings used (``HardwareSettings.as_dict()``).

    Returns:
        ``command``, ``code`` (:func:`describe_code`), ``data`` (:func:`describe_data` per data source),
        ``packages`` (:func:`collect_environment`) and ``hardware`` (the device settings and the machine).
    """
    data = {"dataset": describe_data(dataset)}
    if test_dataset is not None:
        data["test_dataset"] = describe_data(test_dataset)
    return {
        "command": command,
        "code": describe_code(),
        "data": data,
        "packages": collect_environment(),
        "hardware": hardware | describe_machine(),
    }
