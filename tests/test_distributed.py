"""torchrun: two CPU processes (gloo) train one model together; only the first evaluates and writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURE_DATA, ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(tmp_path: Path, model_dir: str, *options: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        "-m",
        "ft_helpers",
        "run",
        "--dataset",
        str(FIXTURE_DATA),
        "--base-model",
        model_dir,
        "--output-dir",
        str(tmp_path / "out"),
        "--epochs",
        "1",
        "--bootstrap-resamples",
        "200",
        *options,
    ]
    environment = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=environment, timeout=600)


@pytest.mark.slow
def test_two_processes_train_one_model_and_write_one_consistent_result(tmp_path: Path, tiny_model_dir: str):
    done = torchrun(tmp_path, tiny_model_dir, "--train-batch-size", "8")
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [line for line in done.stdout.splitlines() if line.startswith('{"results"')]
    assert summaries == [
        json.dumps({"results": f"{tmp_path / 'out'}/results.json", "model": str(tmp_path / "out" / "model")})
    ]
    assert done.stdout.count("baseline test NDCG@10") == 1, "only the first process evaluates and logs"

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    run = results["run"]
    assert run["hardware"]["world_size"] == 2
    # the batch of 8 is shared: 4 pairs per process, so an epoch takes as many steps as on one device
    assert run["training_steps"] == run["training_rows"] // 8
    assert [row["metric"] for row in results["comparison"]][:1] == ["ndcg@10"]
    assert (tmp_path / "out" / "model" / "model.safetensors").is_file()
    assert not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.slow
def test_a_batch_that_does_not_divide_among_the_processes_is_refused(tmp_path: Path, tiny_model_dir: str):
    done = torchrun(tmp_path, tiny_model_dir, "--train-batch-size", "7")
    assert done.returncode != 0
    message = "error: --train-batch-size (7) is the batch over all 2 processes and must divide evenly"
    assert done.stderr.count(message) == 2, "each process says it in one line"
    assert str(ROOT / "ft_helpers") not in done.stderr, "no traceback of ours (torchrun prints its own)"
    assert not (tmp_path / "out").exists()
