"""A run's output folder: one run at a time (a lock), what the run was started with, whole checkpoints, write errors.

A run holds ``OUTPUT_DIR/.lock`` (a ``filelock`` lock holding the run's process id) from before it writes anything
until it ends, so a second run on the folder is refused at once. It writes ``OUTPUT_DIR/run.json`` first: the settings
that shape training and a fingerprint of the data's rows, which ``--resume`` compares with its own. ``--resume`` goes
on from the newest checkpoint the trainer finished writing, and removes the ones it did not. A full disk, a file size
limit or a folder that cannot be written becomes one line that says where, and how much space the run needs.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import pandas as pd

from .config import RunConfig
from .report import write_text_atomically

#: The lock file a run holds in its output folder (it holds the run's process id and start time).
LOCK_NAME = ".lock"
#: What a run was started with: the settings that shape training and the data's fingerprint (``--resume`` checks it).
RECORD_NAME = "run.json"
#: Settings that cannot change what a run trains, so ``--resume`` may change them (the data is compared by content).
RESUMABLE_CHANGES = ("output_dir", "eval_batch_size", "bootstrap_resamples", "dataset", "test_dataset")
#: What an error's text says when a write failed for lack of room or rights (safetensors and torch wrap the OSError).
WRITE_FAILURES = re.compile(
    r"No space left on device|No space left|File too large|Read-only file system|Permission denied"
    r"|Disk quota exceeded|file write failed|failed writing",
    re.IGNORECASE,
)
#: The errno values of a write that failed for lack of room or rights.
WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


class OutputDirBusyError(ValueError):
    """Raised when another live run holds the output folder's lock."""


def read_lock_owner(path: Path) -> tuple[dict[str, Any], int | None]:
    """Return what a lock file says of its holder (``{}`` if nothing) and its inode (None if there is no file)."""
    try:
        inode = path.stat().st_ino
        owner = json.loads(path.read_text(encoding="utf-8") or "{}")
        return (owner if isinstance(owner, dict) else {}), inode
    except FileNotFoundError:
        return {}, None
    except (OSError, ValueError):
        return {}, inode


def describe_busy(folder: Path, owner: dict[str, Any]) -> str:
    """Say that another run holds ``folder``, naming its process id and start time (from its lock file)."""
    since = f", started {owner['started']}" if "started" in owner else ""
    return (
        f"OUTPUT_DIR {str(folder)!r} is in use by another run (process {owner.get('pid', 'unknown')}{since}): wait for "
        "it to end, or choose another folder."
    )


def check_output_dir_free(output_dir: str | Path) -> None:
    """Refuse at once a folder whose lock a live run holds: before the slow checks, as the run locks it only after.

    Args:
        output_dir: The run's output folder (nothing is created).

    Raises:
        OutputDirBusyError: Another run holds the lock.
    """
    from filelock import FileLock, Timeout

    folder = Path(output_dir).expanduser()
    if not (folder / LOCK_NAME).is_file():
        return
    owner = read_lock_owner(folder / LOCK_NAME)[0]
    lock = FileLock(folder / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputDirBusyError(describe_busy(folder, owner)) from None
    except OSError:
        return  # :func:`lock_output_dir` says what is wrong
    lock.release()  # a lock file left by a run that was killed: the run takes it over later, with a note


@contextmanager
def lock_output_dir(output_dir: str | Path, log: Callable[[str], Any] = print) -> Iterator[Path]:
    """Hold ``OUTPUT_DIR/.lock`` while the block runs, so that no other run writes into the folder meanwhile.

    The folder is created if missing (and removed again if the block leaves it empty). A lock file left by a run
    that was killed is taken over, with a note; at the end the lock file is removed, then the lock released.

    Args:
        output_dir: The run's output folder.
        log: Called with the note on a lock taken over.

    Yields:
        The folder.

    Raises:
        OutputDirBusyError: Another run holds the lock (the message names its process id).
        OSError: The path is a file, or the folder or its lock file cannot be created.
    """
    from filelock import FileLock, Timeout

    folder = Path(output_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OSError(f"OUTPUT_DIR {str(folder)!r} is a file, not a folder: choose a folder name.")
    created = not folder.exists()
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        before, inode = read_lock_owner(path)
        lock = FileLock(path, timeout=0)
        lock.acquire()
    except Timeout:
        raise OutputDirBusyError(describe_busy(folder, read_lock_owner(path)[0] or before)) from None
    except OSError as err:
        raise OSError(f"Cannot write to OUTPUT_DIR {str(folder)!r}: {err.strerror or err}.") from None
    try:
        if before.get("pid") not in (None, os.getpid()) and read_lock_owner(path)[1] == inode:
            log(f"note: the lock of process {before['pid']}, which ended without releasing it, is taken over.")
        owner = {"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            path.write_text(json.dumps(owner), encoding="utf-8")
        except OSError as err:
            raise OSError(f"Cannot write to OUTPUT_DIR {str(folder)!r}: {err.strerror or err}.") from None
        yield folder
    finally:
        path.unlink(missing_ok=True)  # while held: a run that opened the old file sees it unlinked and retries
        lock.release()
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def fingerprint_rows(frame: pd.DataFrame) -> str:
    """Return a sha256 of a table's columns, row numbers and cells: equal for the same rows wherever they came from."""
    digest = hashlib.sha256(json.dumps([str(column) for column in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def describe_run_inputs(settings: dict[str, Any], pairs: pd.DataFrame) -> dict[str, Any]:
    """Say what a run trains with, for ``run.json``: its settings (as trained) and the fingerprint of its data.

    Args:
        settings: :meth:`~ft_helpers.config.RunConfig.settings` (the recipe's values in place of None).
        pairs: The rows loaded from ``DATASET`` (and ``TEST_DATASET``), as the run splits them.

    Returns:
        ``{"settings": ..., "data": {"rows": n, "sha256": ...}}``.
    """
    return {"settings": settings, "data": {"rows": len(pairs), "sha256": fingerprint_rows(pairs)}}


def check_resume(folder: Path, inputs: dict[str, Any], log: Callable[[str], Any] = print) -> dict[str, dict[str, Any]]:
    """Compare what a resumed run is given with what the run in ``folder`` was started with (its ``run.json``).

    Args:
        folder: The output folder.
        inputs: :func:`describe_run_inputs` of the new command.
        log: Called with a warning where the folder holds no ``run.json`` (a run of an older version).

    Returns:
        The settings that changed but cannot change what is trained: name -> ``{"was": ..., "now": ...}``.

    Raises:
        ValueError: A setting that shapes training changed, or the data's rows did: the message names it and gives
            the old and the new value.
    """
    if not (folder / RECORD_NAME).is_file():
        log(f"warning: {str(folder)!r} holds no {RECORD_NAME} (an older version's run): its settings are not checked.")
        return {}
    recorded = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
    was, now = recorded["settings"], inputs["settings"]
    if recorded["data"]["sha256"] != inputs["data"]["sha256"]:
        moved = [name for name in ("dataset", "test_dataset") if was.get(name) != now.get(name)]
        which = " and ".join(f"{name.upper()} (was {was.get(name)!r}, now {now.get(name)!r})" for name in moved)
        rows = f"{recorded['data']['rows']} rows, now {inputs['data']['rows']}"
        raise ValueError(
            f"Cannot resume: the run trained on other data ({which or 'the rows of DATASET / TEST_DATASET changed'}; "
            f"{rows}). Resume with the same data, or start a new run in another folder."
        )
    changed = {}
    for name in dict.fromkeys([*was, *now]):
        if was.get(name) == now.get(name):
            continue
        if name not in RESUMABLE_CHANGES:
            shown = name.upper() if name in {item.name for item in fields(RunConfig)} else name  # a parameter's name
            raise ValueError(
                f"Cannot resume: {shown} was {was.get(name)!r} in the run being resumed, now {now.get(name)!r}; it "
                "shapes training. Resume with the same value, or start a new run in another folder."
            )
        changed[name] = {"was": was.get(name), "now": now.get(name)}
    return changed


def start_run(folder: Path, inputs: dict[str, Any], resume: bool, log: Callable[[str], Any] = print) -> str | None:
    """Write ``run.json`` for a new run; for a resumed one, remove incomplete checkpoints and pick the newest whole one.

    Args:
        folder: The output folder (checked by :func:`check_resume` first, when resuming).
        inputs: :func:`describe_run_inputs` of this run.
        resume: Whether the run goes on from an earlier one in ``folder``.
        log: Called with notes on the checkpoints removed, or on training starting again from the beginning.

    Returns:
        The checkpoint folder to go on from (None: train from the beginning).
    """
    record = folder / RECORD_NAME
    if not resume or not record.is_file():  # a resumed run keeps the record it was started with
        write_text_atomically(record, json.dumps(inputs, indent=2, ensure_ascii=False) + "\n")
    if not resume:
        return None
    remove_incomplete_checkpoints(folder / "checkpoints", log)
    complete = list_checkpoints(folder / "checkpoints")
    if not complete:
        log("note: no complete checkpoint to go on from: training starts from the beginning.")
        return None
    return str(complete[-1])


def checkpoint_step(checkpoint: str | Path) -> int | None:
    """Return the training step in a ``checkpoint-<step>`` folder's name (None: not such a name)."""
    step = Path(checkpoint).name.removeprefix("checkpoint-")
    return int(step) if step.isdigit() and Path(checkpoint).name.startswith("checkpoint-") else None


def is_complete_checkpoint(folder: Path) -> bool:
    """Whether the trainer finished writing a checkpoint: its ``trainer_state.json`` (written last) and its weights."""
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    weights = [path for path in (*folder.glob("*.safetensors"), folder / "pytorch_model.bin") if path.is_file()]
    needed = all((folder / name).is_file() for name in ("optimizer.pt", "scheduler.pt"))
    whole = any(path.stat().st_size for path in weights) and needed
    return whole and state.get("global_step") == checkpoint_step(folder)


def list_checkpoints(folder: Path) -> list[Path]:
    """Return the ``checkpoint-<step>`` folders in ``folder``, by step."""
    found = [path for path in folder.glob("checkpoint-*") if path.is_dir() and checkpoint_step(path) is not None]
    return sorted(found, key=checkpoint_step)


def remove_incomplete_checkpoints(folder: Path, log: Callable[[str], Any] = print) -> list[str]:
    """Remove the checkpoints in ``folder`` that the trainer did not finish writing, saying which.

    Args:
        folder: ``OUTPUT_DIR/checkpoints``.
        log: Called with a note naming each checkpoint removed.

    Returns:
        The names of the checkpoints removed.
    """
    removed = []
    for checkpoint in list_checkpoints(folder):
        if not is_complete_checkpoint(checkpoint):
            shutil.rmtree(checkpoint, ignore_errors=True)
            removed.append(checkpoint.name)
    if removed:
        log(f"note: skipped and removed {', '.join(removed)}: incomplete (the run stopped while writing it).")
    return removed


def measure_model_bytes(reference: str) -> int | None:
    """Return the size of a model's weight files: a local folder's, or a Hub id's in the local cache (None: unknown)."""
    path = Path(reference).expanduser()
    if path.is_dir():
        files = list(path.rglob("*.safetensors")) or list(path.rglob("*.bin"))
        return sum(file.stat().st_size for file in files) or None
    from huggingface_hub import try_to_load_from_cache

    for name in ("model.safetensors", "pytorch_model.bin"):
        cached = try_to_load_from_cache(reference, name)
        if isinstance(cached, str):
            return Path(cached).stat().st_size
    return None


def estimate_space(model_bytes: int) -> tuple[int, int]:
    """Return the bytes of the saved model and of one checkpoint (its weights and AdamW's two moments of each)."""
    return model_bytes, 3 * model_bytes


def describe_space(model_bytes: int | None) -> str:
    """Say how much room a run needs in its output folder: the model plus one checkpoint."""
    if not model_bytes:
        return "room for the model and one checkpoint (about 4 times the base model's weights)"
    model, checkpoint = estimate_space(model_bytes)
    return f"about {megabytes(model + checkpoint)} (model {megabytes(model)} + checkpoint {megabytes(checkpoint)})"


def megabytes(size: int) -> str:
    """Write a size in bytes as megabytes, e.g. ``"363 MB"``."""
    return f"{size / 1e6:,.0f} MB" if size >= 1e7 else f"{size / 1e6:.1f} MB"


def check_free_space(folder: Path, model_bytes: int | None) -> None:
    """Refuse a run whose output folder has less free space than the model plus one checkpoint need.

    Args:
        folder: The output folder.
        model_bytes: :func:`measure_model_bytes` of the base model (None: not checked).

    Raises:
        OSError: Too little free space; the message says how much there is and how much the run needs.
    """
    if not model_bytes:
        return
    free = shutil.disk_usage(folder).free
    if free < sum(estimate_space(model_bytes)):
        raise OSError(
            f"Not enough space for OUTPUT_DIR {str(folder)!r}: {megabytes(free)} free, and the run needs "
            f"{describe_space(model_bytes)}. Free some space, or choose a folder on another disk."
        )


def is_write_failure(err: BaseException, folder: Path) -> bool:
    """Whether an error is a write into ``folder`` that failed for lack of room or rights (an OSError, or a wrapping).

    Args:
        err: The error.
        folder: The output folder: an OSError that names a file elsewhere (the model cache, say) is not its fault.

    Returns:
        Whether :func:`describe_write_failure` should describe it.
    """
    if isinstance(err, OSError):
        inside = not err.filename or Path(os.path.abspath(err.filename)).is_relative_to(os.path.abspath(folder))
        return err.errno in WRITE_ERRNOS and inside
    return bool(WRITE_FAILURES.search(str(err)))


def describe_write_failure(err: BaseException, folder: Path, model_bytes: int | None, removed: list[str]) -> str:
    """Turn a failed write into one line: what happened, where, how much space the run needs, and what to do.

    Args:
        err: The error (an OSError, safetensors' ``SafetensorError``, torch's ``RuntimeError``).
        folder: The output folder.
        model_bytes: :func:`measure_model_bytes` of the base model.
        removed: The incomplete checkpoints removed after the error (the message names the first).

    Returns:
        The message.
    """
    match = None if isinstance(err, OSError) else WRITE_FAILURES.search(str(err))
    reason = match.group(0) if match else getattr(err, "strerror", None) or str(err)
    where = f" (writing {removed[0]}, removed)" if removed else ""
    if isinstance(err, OSError) and err.filename:
        where = f" (writing {os.path.relpath(err.filename, folder)})"
    free = f"; {megabytes(shutil.disk_usage(folder).free)} free" if folder.is_dir() else ""
    return (
        f"Cannot write to OUTPUT_DIR {str(folder)!r}{where}: {reason}. The run needs {describe_space(model_bytes)}"
        f"{free}. Make room, then run it again with resume=True."
    )
