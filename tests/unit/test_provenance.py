"""ft_helpers.provenance: the data's checksum or revision, the code's commit, package versions, the machine."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

import pytest
from conftest import FIXTURE_DATA, ROOT

from ft_helpers import provenance
from ft_helpers.provenance import (
    REPORTED_PACKAGES,
    collect_environment,
    collect_provenance,
    describe_code,
    describe_data,
    describe_machine,
    hash_file,
)


# --------------------------------------------------------------------------------------------------
# hash_file and describe_data
# --------------------------------------------------------------------------------------------------
def test_hash_file_is_the_sha256_of_the_files_bytes():
    assert hash_file(FIXTURE_DATA) == hashlib.sha256(FIXTURE_DATA.read_bytes()).hexdigest()
    assert hash_file(str(FIXTURE_DATA)) == hash_file(FIXTURE_DATA)


def test_hash_file_reads_a_file_larger_than_its_block_whole(tmp_path: Path):
    data = os.urandom((1 << 20) * 2 + 12345)  # two 1 MiB blocks and a short one
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert hash_file(path) == hashlib.sha256(data).hexdigest()
    path.write_bytes(data[:-1])
    assert hash_file(path) != hashlib.sha256(data).hexdigest()


def test_describe_data_names_a_local_file_and_its_checksum():
    assert describe_data(str(FIXTURE_DATA)) == {
        "file": "financial_qa_fixture.csv",
        "sha256": hashlib.sha256(FIXTURE_DATA.read_bytes()).hexdigest(),
    }


def test_describe_data_of_a_hub_id_offline_has_no_revision_and_says_why():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # conftest
    described = describe_data("philschmid/finanical-rag-embedding-dataset")
    assert described["hub_id"] == "philschmid/finanical-rag-embedding-dataset"
    assert described["revision"] is None
    assert described["note"].startswith("revision not found: ")
    assert set(described) == {"hub_id", "revision", "note"}


def test_describe_data_of_a_hub_id_online_gives_its_commit(monkeypatch: pytest.MonkeyPatch):
    class FakeApi:
        def dataset_info(self, repo_id: str):
            assert repo_id == "org/data"
            return type("Info", (), {"sha": "0123abcd" * 5})()

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    assert describe_data("org/data") == {"hub_id": "org/data", "revision": "0123abcd" * 5}


# --------------------------------------------------------------------------------------------------
# describe_code
# --------------------------------------------------------------------------------------------------
def git(folder: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, check=True).stdout.strip()


def test_describe_code_in_this_repository_gives_the_commit_of_head():
    head = git(ROOT, "rev-parse", "HEAD")
    described = describe_code(ROOT)
    assert re.fullmatch(r"[0-9a-f]{40}", described["commit"])
    assert described["commit"] == head
    assert isinstance(described["dirty"], bool)
    assert describe_code()["commit"] == head, "by default: the package's own folder"


def test_describe_code_outside_a_git_tree_has_no_commit(tmp_path: Path):
    assert describe_code(tmp_path) == {"commit": None}


def test_describe_code_sees_uncommitted_changes(tmp_path: Path):
    git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", "code.py")
    git(tmp_path, "commit", "-q", "-m", "first")
    assert describe_code(tmp_path) == {"commit": git(tmp_path, "rev-parse", "HEAD"), "dirty": False}
    (tmp_path / "untracked.txt").write_text("notes")
    assert describe_code(tmp_path)["dirty"] is False, "untracked files are not the code that ran"
    (tmp_path / "code.py").write_text("x = 2\n")
    assert describe_code(tmp_path)["dirty"] is True


# --------------------------------------------------------------------------------------------------
# collect_environment, describe_machine, collect_provenance
# --------------------------------------------------------------------------------------------------
def test_collect_environment_lists_python_and_the_reported_packages():
    versions = collect_environment()
    assert list(versions) == ["python", *REPORTED_PACKAGES]
    assert versions["python"] == platform.python_version()
    for package in REPORTED_PACKAGES:
        assert versions[package] == metadata.version(package), package
    assert {"torch", "sentence-transformers", "transformers", "datasets"} <= set(REPORTED_PACKAGES)


def test_collect_environment_reports_missing_packages(monkeypatch: pytest.MonkeyPatch):
    real_version = metadata.version

    def fake_version(package: str) -> str:
        if package == "scipy":
            raise metadata.PackageNotFoundError(package)
        return real_version(package)

    monkeypatch.setattr(provenance.metadata, "version", fake_version)
    versions = collect_environment()
    assert versions["scipy"] == "not installed"
    assert versions["numpy"] == real_version("numpy")


def test_describe_machine_gives_cores_and_system():
    machine = describe_machine()
    assert set(machine) == {"processor", "cores", "system"}
    assert machine["cores"] == os.cpu_count()
    assert machine["system"] == f"{platform.system()} {platform.machine()}"
    assert isinstance(machine["processor"], str) and machine["processor"]


def test_collect_provenance_gathers_command_code_data_packages_and_hardware(tmp_path: Path):
    hardware = {"device": "cpu", "precision": "fp32"}
    gathered = collect_provenance("python -m ft_helpers run --epochs 1", str(FIXTURE_DATA), None, hardware)
    assert set(gathered) == {"command", "code", "data", "packages", "hardware"}
    assert gathered["command"] == "python -m ft_helpers run --epochs 1"
    assert gathered["code"] == describe_code()
    assert gathered["data"] == {"dataset": describe_data(str(FIXTURE_DATA))}
    assert gathered["packages"] == collect_environment()
    assert gathered["hardware"] == hardware | describe_machine()
    assert hardware == {"device": "cpu", "precision": "fp32"}, "the caller's dict is left as it was"

    held_out = tmp_path / "test.csv"
    held_out.write_text("question,context\nWhy?,Because.\n")
    both = collect_provenance("notebook", str(FIXTURE_DATA), str(held_out), hardware)["data"]
    assert both["test_dataset"] == {"file": "test.csv", "sha256": hashlib.sha256(held_out.read_bytes()).hexdigest()}
    assert both["dataset"]["sha256"] == hash_file(FIXTURE_DATA)
