"""benchmarks/pack_offline.py: the folder it writes, what it refuses, and its run.sh on a stand-in repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import FIXTURE_DATA, ROOT
from safetensors import safe_open

sys.path.insert(0, str(ROOT / "benchmarks"))
import pack_offline


def weight_dtypes(model_dir: Path) -> set[str]:
    """The dtypes of every tensor in a saved sentence-transformers model's safetensors files."""
    dtypes = set()
    for path in model_dir.rglob("*.safetensors"):
        with safe_open(str(path), framework="pt") as weights:
            dtypes |= {str(weights.get_tensor(key).dtype) for key in weights.keys()}  # noqa: SIM118 (safe_open is not iterable)
    return dtypes


@pytest.fixture(scope="module")
def kit(tiny_model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An offline folder packed outside the repository, with no wheels."""
    dest = tmp_path_factory.mktemp("offline") / "kit"
    pack_offline.pack(FIXTURE_DATA, tiny_model_dir, dest, "3.12", requirements=[])
    return dest


def test_pack_writes_data_fp16_model_and_a_valid_run_script(kit: Path, tiny_model_dir: str):
    assert (kit / "data" / FIXTURE_DATA.name).read_bytes() == FIXTURE_DATA.read_bytes()
    assert weight_dtypes(Path(tiny_model_dir)) == {"torch.float32"}
    assert weight_dtypes(kit / "model") == {"torch.float16"}
    assert list((kit / "wheels").iterdir()) == []
    assert subprocess.run(["bash", "-n", str(kit / "run.sh")]).returncode == 0
    assert not kit.with_name("kit.partial").exists()


def test_pack_refuses_an_existing_folder_and_a_missing_dataset(kit: Path, tiny_model_dir: str, tmp_path: Path, capsys):
    before = sorted(path.relative_to(kit) for path in kit.rglob("*"))
    with pytest.raises(SystemExit) as stopped:
        pack_offline.pack(FIXTURE_DATA, tiny_model_dir, kit, "3.12", requirements=[])
    assert stopped.value.code == 2
    assert "exists" in capsys.readouterr().err
    assert sorted(path.relative_to(kit) for path in kit.rglob("*")) == before

    with pytest.raises(SystemExit):
        pack_offline.pack(tmp_path / "missing.csv", tiny_model_dir, tmp_path / "new", "3.12", requirements=[])
    error = capsys.readouterr().err
    assert "missing.csv not found" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_pack_reports_a_model_it_cannot_load_in_one_line(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as stopped:
        pack_offline.pack(FIXTURE_DATA, str(tmp_path / "no-model"), tmp_path / "kit", "3.12", requirements=[])
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "could not load the base model" in error and "no-model" in error and len(error.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_pack_refuses_a_folder_git_would_commit(tiny_model_dir: str, capsys):
    with pytest.raises(SystemExit):
        pack_offline.pack(FIXTURE_DATA, tiny_model_dir, ROOT / "benchmarks" / "kit", "3.12", requirements=[])
    assert "git does not ignore" in capsys.readouterr().err
    assert not (ROOT / "benchmarks" / "kit").exists()


def test_a_failed_download_leaves_nothing_behind(tiny_model_dir: str, tmp_path: Path, monkeypatch):
    def refuse(requirements, folder, python_version):
        pack_offline.fail("pip could not download it")

    monkeypatch.setattr(pack_offline, "download_wheels", refuse)
    with pytest.raises(SystemExit):
        pack_offline.pack(FIXTURE_DATA, tiny_model_dir, tmp_path / "kit", "3.12", requirements=["datasets==5.2.0"])
    assert list(tmp_path.iterdir()) == []


def test_default_requirements_pin_the_versions_installed_here():
    pins = dict(requirement.split("==") for requirement in pack_offline.default_requirements())
    assert set(pins) == set(pack_offline.DEFAULT_PACKAGES)
    import sentence_transformers

    assert pins["sentence-transformers"] == sentence_transformers.__version__


def test_run_script_restores_fp32_runs_the_benchmarks_and_packs_only_new_records(kit: Path, tmp_path: Path):
    # A stand-in repository root: run_recipes.sh that logs its arguments and writes one record, beside an old one.
    repo = tmp_path / "repo"
    (repo / "benchmarks" / "results").mkdir(parents=True)
    (repo / "benchmarks" / "results" / "old.json").write_text("{}")
    (repo / "benchmarks" / "run_recipes.sh").write_text(
        'echo "$@" > "$OUTPUT_ROOT/args.log"\n'
        'echo "{\\"precision\\": \\"$PRECISION\\"}" > benchmarks/results/new_seed42.json\n'
        "exit 3\n"
    )
    out, logs, work = tmp_path / "out", tmp_path / "logs", tmp_path / "work"
    logs.mkdir()
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # python3 is the one running the tests
    env = os.environ | {
        "OUT": str(out),
        "OUTPUT_ROOT": str(logs),
        "WORK": str(work),
        "PRECISION": "fp16",
        "BUDGET": "60",
        "PATH": path,
    }
    done = subprocess.run(
        ["bash", str(kit / "run.sh"), "h100_bf16", "variants"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert done.returncode == 3, done.stderr  # the benchmarks' exit status comes through
    assert "records: 1" in done.stdout
    model = work / "base-model"
    assert weight_dtypes(model) == {"torch.float32"}
    with tarfile.open(out / "records.tar.gz") as records:
        assert records.getnames() == ["benchmarks/results/new_seed42.json"]
        assert json.load(records.extractfile(records.getmember("benchmarks/results/new_seed42.json"))) == {
            "precision": "fp16"
        }
    with tarfile.open(out / "logs.tar.gz") as packed:
        args = packed.extractfile("./args.log").read().decode().split()
    assert args == [str(kit / "data" / FIXTURE_DATA.name), str(model), "h100_bf16", "variants"]
