"""How every measurement script (loss_speed, serve_speed, compression, index_scale) records its numbers."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from run_notebook import portable_command

from ft_helpers import collect_environment, describe_data, detect_hardware
from ft_helpers.provenance import describe_machine


def describe_measurement(
    name: str, script: str, argv: list[str] | None, repository: dict[str, Any], started: float, notes: list[str]
) -> dict[str, Any]:
    """Return a record's ``record`` section: its name, the command (portable), the commit, the time, the notes.

    Args:
        name: The record's name.
        script: The script's path from the repository root, e.g. ``benchmarks/loss_speed.py``.
        argv: The script's arguments, as given to its ``main`` (None: the command line's).
        repository: ``record.describe_repository()``, taken before the measurement started.
        started: ``time.perf_counter()`` when it started.
        notes: Lines a reader of the numbers must know.
    """
    return {
        "name": name,
        "commands": [portable_command(["python", script, *(sys.argv[1:] if argv is None else argv)])],
        "repository": repository,
        "wall_seconds": {"measure": round(time.perf_counter() - started, 1)},
        "notes": notes,
    }


def describe_provenance(dataset: str, packages: dict[str, str] | None = None) -> dict[str, Any]:
    """Return a record's ``provenance`` section: the data's checksum, package versions (plus ``packages``), hardware."""
    return {
        "data": {"dataset": describe_data(dataset)},
        "packages": collect_environment() | (packages or {}),
        "hardware": detect_hardware().as_dict() | describe_machine(),
    }


def parse_measurement_arguments(
    parser: argparse.ArgumentParser, argv: list[str] | None, results_dir: Path
) -> tuple[argparse.Namespace, Path]:
    """Add ``--note`` (and a hidden ``--results-dir``), parse, and refuse a record name that is taken.

    Returns:
        The parsed arguments and the record's path.
    """
    parser.add_argument("--results-dir", default=str(results_dir), help=argparse.SUPPRESS)
    parser.add_argument("--note", action="append", default=[], help="a line a reader of the numbers must know")
    args = parser.parse_args(argv)
    path = Path(args.results_dir) / f"{args.name}.json"
    if path.exists():
        parser.error(f"{path} exists: choose another name.")
    return args, path


def write_measurement(path: Path, saved: dict[str, Any]) -> None:
    """Write a record as indented JSON, making its folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved, indent=1) + "\n", encoding="utf-8")
