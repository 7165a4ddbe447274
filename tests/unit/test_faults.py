"""Faults leave nothing wrong behind: real signals to a real run, two runs on one folder, full disks, resume checks.

Each case ends refused in one line (exit 2), or finished with a results.json that describes the model beside it.
The subprocesses run ``python -m ft_helpers`` on the tiny model and the fixture data; each takes seconds.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import FIXTURE_DATA, ROOT

from ft_helpers.cli import main
from ft_helpers.outputs import LOCK_NAME, RECORD_NAME, is_complete_checkpoint, list_checkpoints

#: The fixture's training split holds 40 rows: 5 steps of 8 an epoch.
STEPS_PER_EPOCH = 5


def run_args(output: Path, model: str, *extra: str) -> list[str]:
    """Arguments of a one-epoch run of the reference recipe on the fixture (extra options replace these)."""
    return [
        "run", "--dataset", str(FIXTURE_DATA), "--base-model", model, "--output-dir", str(output),
        "--recipe", "reference", "--epochs", "1", "--train-batch-size", "8", "--bootstrap-resamples", "500", *extra,
    ]  # fmt: skip


def start_cli(argv: list[str], **options: object) -> subprocess.Popen:
    """Start ``python -m ft_helpers`` (or a script given with -c) in a subprocess, from the project's root."""
    command = argv if argv[0] == "-c" else ["-m", "ft_helpers", *argv]
    return subprocess.Popen(
        [sys.executable, *command], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options
    )


def wait_for(condition, process: subprocess.Popen, timeout: float = 240) -> None:
    """Poll until ``condition()`` holds; fail if the process ends or time runs out first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the run ended first (status {process.returncode}): {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("timed out")
        time.sleep(0.02)


def one_error_line(err: str) -> str:
    """The error line of a refused command: its last line on standard error (after any progress bars), the only one
    that says error, under 300 characters, with no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert [line for line in lines if "error" in line.lower()] == lines[-1:] and "Traceback" not in err, err
    assert lines[-1].startswith("error: ") and len(lines[-1]) < 300, lines[-1]
    return lines[-1]


def saved_results(output: Path) -> dict:
    return json.loads((output / "results.json").read_text())


# --------------------------------------------------------------------------------------------------
# Ctrl-C, then resume: what shapes training must not change; what cannot change the result may
# --------------------------------------------------------------------------------------------------
def test_ctrl_c_stops_a_real_run_and_resume_checks_what_it_resumes(tmp_path: Path, tiny_model_dir: str, capsys):
    output = tmp_path / "out"
    argv = run_args(output, tiny_model_dir, "--epochs", "3")
    process = start_cli(argv)
    wait_for(
        lambda: (output / "checkpoints" / f"checkpoint-{STEPS_PER_EPOCH}" / "trainer_state.json").is_file(), process
    )
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert time.monotonic() - sent < 5, "Ctrl-C stops the run within seconds"
    assert err.strip().endswith("Interrupted. To go on, run the same command with --resume.")
    assert not (output / "results.json").exists() and not (output / "model").exists()
    assert not (output / LOCK_NAME).exists(), "the lock is released"
    checkpoints = list_checkpoints(output / "checkpoints")
    assert checkpoints and all(is_complete_checkpoint(folder) for folder in checkpoints), "no partial checkpoint left"

    other = tmp_path / "other.csv"
    frame = pd.read_csv(FIXTURE_DATA)
    frame.loc[0, "question"] = "Another question?"
    frame.to_csv(other, index=False)
    refusals = {
        ("--learning-rate", "5e-4"): "--learning-rate was 2e-05 in the run being resumed, now 0.0005; it shapes",
        ("--train-batch-size", "16"): "--train-batch-size was 8 in the run being resumed, now 16",
        ("--seed", "7"): "--seed was 42 in the run being resumed, now 7",
        ("--dataset", str(other)): f"the run trained on other data (--dataset (was '{FIXTURE_DATA}', now '{other}'",
        ("--recipe", "quick"): "--recipe was 'reference' in the run being resumed, now 'quick'",
    }
    before = sorted(path.relative_to(output) for path in output.rglob("*"))
    for change, message in refusals.items():
        assert main([*argv, "--resume", *change]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert line.startswith("error: Cannot resume: ") and message in line, line
    assert sorted(path.relative_to(output) for path in output.rglob("*")) == before, "a refusal changes nothing"

    assert main([*argv, "--resume", "--eval-batch-size", "16", "--bootstrap-resamples", "600"]) == 0
    resume = saved_results(output)["training"]["resume"]
    assert resume["from_step"] == int(checkpoints[-1].name.split("-")[1])
    assert resume["changed"] == {
        "eval_batch_size": {"was": 64, "now": 16},
        "bootstrap_resamples": {"was": 500, "now": 600},
    }
    assert saved_results(output)["settings"]["bootstrap_resamples"] == 600
    assert saved_results(output)["training"]["steps"] == 3 * STEPS_PER_EPOCH
    assert not (output / "checkpoints").exists() and not (output / LOCK_NAME).exists()
    assert json.loads((output / RECORD_NAME).read_text())["settings"]["learning_rate"] == 2e-05


# --------------------------------------------------------------------------------------------------
# A run stopped while writing a checkpoint holds its folder; killed, it leaves a state --resume finishes
# --------------------------------------------------------------------------------------------------
#: Runs the command line with torch.save stopped (SIGSTOP) after writing a few bytes of checkpoint-10's optimizer.pt.
STOP_IN_SECOND_CHECKPOINT = f"""
import os, signal, sys, torch
real_save = torch.save
def save(obj, f, *args, **kwargs):
    if str(f).endswith("checkpoint-{2 * STEPS_PER_EPOCH}/optimizer.pt"):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        os.kill(os.getpid(), signal.SIGSTOP)
    return real_save(obj, f, *args, **kwargs)
torch.save = save
from ft_helpers.cli import main
sys.exit(main(sys.argv[1:]))
"""


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads a process's state from /proc (Linux)")
def test_a_second_run_is_refused_and_a_run_killed_in_a_checkpoint_write_resumes(
    tmp_path: Path, tiny_model_dir: str, capsys
):
    output = tmp_path / "out"
    argv = run_args(output, tiny_model_dir, "--epochs", "3")
    first = start_cli(["-c", STOP_IN_SECOND_CHECKPOINT, *argv])
    try:
        wait_for(lambda: process_state(first.pid) == "T", first)  # stopped inside the write, holding the lock
        for control in ([], ["--resume"], ["--overwrite"]):
            assert main([*argv, *control]) == 2
            line = one_error_line(capsys.readouterr().err)
            assert f"error: --output-dir '{output}' is in use by another run (process {first.pid}, started " in line
            assert line.endswith("wait for it to end, or choose another folder.")
        assert (output / RECORD_NAME).is_file() and (output / "eval" / "baseline").is_dir(), "--overwrite left them"
    finally:
        first.kill()  # SIGKILL: no clean-up at all
        first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL
    partial = output / "checkpoints" / f"checkpoint-{2 * STEPS_PER_EPOCH}"
    assert (output / "checkpoints" / f"checkpoint-{STEPS_PER_EPOCH}").is_dir() and partial.is_dir()
    assert not is_complete_checkpoint(partial)
    assert json.loads((output / LOCK_NAME).read_text())["pid"] == first.pid, "the killed run's lock file is left"
    assert not (output / "results.json").exists()

    assert main(argv) == 2  # a plain rerun would mix two runs
    refused = capsys.readouterr()
    assert f"note: the lock of process {first.pid}, which ended without releasing it, is taken over." in refused.out
    assert "is not empty" in one_error_line(refused.err)
    assert main([*argv, "--resume"]) == 0
    assert f"note: skipped and removed checkpoint-{2 * STEPS_PER_EPOCH}: incomplete" in capsys.readouterr().out
    results = saved_results(output)
    assert results["training"]["resume"] == {"from_step": STEPS_PER_EPOCH, "changed": {}}
    assert results["training"]["resumed_from"] == f"checkpoint-{STEPS_PER_EPOCH}"
    assert results["training"]["steps"] == 3 * STEPS_PER_EPOCH
    assert not (output / "checkpoints").exists() and not (output / LOCK_NAME).exists()
    assert (output / "model" / "model.safetensors").is_file()


def test_a_stale_lock_file_and_a_missing_folder_leave_nothing_behind(tmp_path: Path, tiny_model_dir: str, capsys):
    output = tmp_path / "new"
    assert main([*run_args(output, tiny_model_dir), "--resume"]) == 2
    assert "Nothing to resume" in one_error_line(capsys.readouterr().err)
    assert not output.exists(), "the folder made for the lock is removed again"


# --------------------------------------------------------------------------------------------------
# Disk and write errors: one line, exit 2, nothing half-written left
# --------------------------------------------------------------------------------------------------
def limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))  # the tiny model's weights are 4 MB


def test_a_file_size_limit_ends_in_one_line_and_resume_finishes(tmp_path: Path, tiny_model_dir: str, capsys):
    output = tmp_path / "out"
    argv = run_args(output, tiny_model_dir)
    limited = start_cli(argv, preexec_fn=limit_file_size)
    _, err = limited.communicate(timeout=300)
    assert limited.returncode == 2, err
    line = one_error_line(err)
    assert line.startswith(f"error: Cannot write to --output-dir '{output}' (writing checkpoint-5, removed): ")
    assert "File too large. The run needs about 16 MB (model 4.0 MB + checkpoint 12 MB); " in line
    assert line.endswith(" MB free. Make room, then run it again with --resume.")
    assert not list_checkpoints(output / "checkpoints"), "the partial checkpoint is removed"
    assert not (output / "model").exists() and not (output / "results.json").exists()
    assert not (output / LOCK_NAME).exists()

    assert main([*argv, "--resume"]) == 0  # without the limit
    assert "note: no complete checkpoint to go on from: training starts from the beginning." in capsys.readouterr().out
    assert saved_results(output)["training"]["resume"] == {"from_step": 0, "changed": {}}


def test_a_failed_write_of_results_json_keeps_the_checkpoints(tmp_path: Path, tiny_model_dir: str, monkeypatch, capsys):
    output = tmp_path / "out"

    def no_room(path: Path, **sections: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with monkeypatch.context() as patch:
        patch.setattr("ft_helpers.workflow.save_results", no_room)
        assert main(run_args(output, tiny_model_dir)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"error: Cannot write to --output-dir '{output}' (writing results.json): No space left on device." in line
    assert [path.name for path in list_checkpoints(output / "checkpoints")] == ["checkpoint-5"], "kept for --resume"
    assert not (output / "model").exists(), "no model without the results.json that describes it"
    assert main([*run_args(output, tiny_model_dir), "--resume"]) == 0
    assert saved_results(output)["training"]["resume"]["from_step"] == 5


def mount_tmpfs(folder: Path, options: str) -> None:
    """Mount a tmpfs (root only), or skip saying why."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a small tmpfs")
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def unmount(folder: Path) -> None:
    """Unmount a test's tmpfs; lazily where the failed run's weights are still mapped from it (freed with the run)."""
    gc.collect()
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_small_disk_is_refused_before_training_or_stops_in_one_line(tmp_path: Path, tiny_model_dir: str, capsys):
    small = tmp_path / "small"
    mount_tmpfs(small, "size=2m")
    try:
        assert main(run_args(small / "out", tiny_model_dir)) == 2
        line = one_error_line(capsys.readouterr().err)
        assert line.startswith(f"error: Not enough space for --output-dir '{small / 'out'}': 2.1 MB free, and the run ")
        assert "needs about 16 MB (model 4.0 MB + checkpoint 12 MB)." in line
        assert not (small / "out").exists()

        subprocess.run(["mount", "-o", "remount,size=16500000", str(small)], check=True)  # room by the estimate only
        assert main(run_args(small / "out", tiny_model_dir)) == 2
        line = one_error_line(capsys.readouterr().err)
        assert line.startswith(f"error: Cannot write to --output-dir '{small / 'out'}'") and "No space left" in line
        assert all(is_complete_checkpoint(path) for path in list_checkpoints(small / "out" / "checkpoints"))
        assert not (small / "out" / "results.json").exists() and not (small / "out" / LOCK_NAME).exists()
    finally:
        unmount(small)


def test_a_read_only_folder_is_refused_in_one_line(tmp_path: Path, tiny_model_dir: str, capsys):
    folder = tmp_path / "read-only"
    if os.geteuid() == 0:  # root writes through chmod: mount a read-only file system instead
        mount_tmpfs(folder, "ro,size=1m")
    else:
        folder.mkdir()
        folder.chmod(0o555)
    try:
        assert main(run_args(folder / "out", tiny_model_dir)) == 2
        line = one_error_line(capsys.readouterr().err)
        reason = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
        assert line == f"error: Cannot write to --output-dir '{folder / 'out'}': {reason}."
    finally:
        if os.geteuid() == 0:
            unmount(folder)
        else:
            folder.chmod(0o755)


# --------------------------------------------------------------------------------------------------
# What counts as a whole checkpoint
# --------------------------------------------------------------------------------------------------
def write_checkpoint(folder: Path, step: int) -> Path:
    checkpoint = folder / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "config.json").write_text("{}")
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    for name in ("optimizer.pt", "scheduler.pt"):
        (checkpoint / name).write_bytes(b"state")
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))  # the trainer writes it last
    return checkpoint


def test_a_checkpoint_is_whole_once_its_trainer_state_and_weights_are_written(tmp_path: Path, capsys):
    whole = write_checkpoint(tmp_path, 76)
    assert is_complete_checkpoint(whole)
    half = tmp_path / "checkpoint-152"  # as a kill while writing it left it: an empty config.json, no weights
    half.mkdir()
    (half / "config.json").write_text("")
    assert not is_complete_checkpoint(half)
    truncated = write_checkpoint(tmp_path, 228)
    (truncated / "trainer_state.json").write_text('{"global_st')
    renamed = write_checkpoint(tmp_path, 304)
    (renamed / "model.safetensors").unlink()  # as a rotation stopped halfway through deleting it
    assert [is_complete_checkpoint(folder) for folder in (truncated, renamed)] == [False, False]

    from ft_helpers.outputs import remove_incomplete_checkpoints

    assert remove_incomplete_checkpoints(tmp_path, log=print) == ["checkpoint-152", "checkpoint-228", "checkpoint-304"]
    assert capsys.readouterr().out == (
        "note: skipped and removed checkpoint-152, checkpoint-228, checkpoint-304: incomplete (the run stopped while "
        "writing it).\n"
    )
    assert list_checkpoints(tmp_path) == [whole]
