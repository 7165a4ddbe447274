"""Pieces around training: hardware settings, model references, the training pairs, a compact progress display."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer


@dataclass(frozen=True)
class HardwareSettings:
    """Device and numeric settings chosen for the machine at hand.

    Attributes:
        device: ``"cuda"``, ``"mps"`` or ``"cpu"``.
        device_name: Human-readable name (the GPU's name on CUDA).
        precision: ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        fp16: Pass to ``fp16=`` of the training arguments.
        bf16: Pass to ``bf16=`` of the training arguments.
        pin_memory: Pass to ``dataloader_pin_memory=`` (only helps, and only works, with CUDA).
        optim: Optimizer name for the training arguments.
    """

    device: str
    device_name: str
    precision: str
    fp16: bool
    bf16: bool
    pin_memory: bool
    optim: str

    def as_dict(self) -> dict[str, str | bool]:
        """Return the settings as a plain dict (for ``results.json``)."""
        return asdict(self)


#: Precisions :func:`detect_hardware` can be asked for; ``None`` picks one for the machine.
PRECISIONS = ("bf16", "fp16", "fp32")


def detect_hardware(precision: str | None = None) -> HardwareSettings:
    """Pick device, mixed precision and optimizer for this machine.

    * CUDA with native bf16 (Ampere or newer: A100, L4, H100): bf16, fused AdamW.
    * Older CUDA (T4, V100): fp16, fused AdamW. bf16 would be emulated, slowly.
    * Apple MPS or CPU: fp32 (fp16 is ignored on CPU and bf16 raises), plain AdamW, no pinned memory.

    Args:
        precision: ``None`` for the choice above; ``"fp16"`` or ``"fp32"`` to override it on a CUDA GPU (e.g.
            to time on an H100 the fp16 path a T4 takes), ``"bf16"`` only where the GPU has it natively.

    Returns:
        A :class:`HardwareSettings`.

    Raises:
        ValueError: ``precision`` is unknown, or this machine cannot train in it.
    """
    import torch

    if precision is not None and precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {', '.join(PRECISIONS)} or None (pick for this machine), got {precision!r}."
        )
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        if precision == "bf16" and not native_bf16:
            raise ValueError(f"{name} has no native bf16: use precision 'fp16' (or leave it to be picked).")
        chosen = precision or ("bf16" if native_bf16 else "fp16")
        return HardwareSettings("cuda", name, chosen, chosen == "fp16", chosen == "bf16", True, "adamw_torch_fused")
    if torch.backends.mps.is_available():
        device, name = "mps", "Apple MPS"
    else:
        device, name = "cpu", platform.processor() or platform.machine() or "CPU"
    if precision in ("bf16", "fp16"):
        raise ValueError(f"{precision} training needs a CUDA GPU; on {device} use 'fp32' (or leave it to be picked).")
    return HardwareSettings(device, name, "fp32", False, False, False, "adamw_torch")


def check_model_reference(name_or_path: str | Path, label: str = "BASE_MODEL") -> None:
    """Check, without loading anything, that a model reference can work: a saved model folder or a Hub id.

    Args:
        name_or_path: What would be passed to :func:`load_base_model`.
        label: What the messages call the reference (they start with it).

    Raises:
        OSError: A local path that is not a folder holding a saved model; a reference that is neither a
            folder here nor shaped like a Hub id (``name`` or ``org/name``); or a Hub id that is not in the
            local cache while the Hub is switched off (``HF_HUB_OFFLINE``). The message says what to give instead.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists() or text.startswith((".", "/", "~")):
        if not path.is_dir():
            raise OSError(f"{label}: model folder not found: {text!r} (working directory: {Path.cwd()}).")
        if not any((path / name).is_file() for name in ("modules.json", "config.json")):
            raise OSError(
                f"{label}: the folder {text!r} holds no saved model (no modules.json or config.json): give the "
                "folder that SentenceTransformer.save() wrote, or a Hugging Face Hub id."
            )
        return
    if text.count("/") > 1 or "\\" in text or not text.strip("/"):
        raise OSError(
            f"{label}: {text!r} is neither a folder here (working directory: {Path.cwd()}) nor a Hugging Face Hub id "
            "('name' or 'org/name'). Give an existing folder, e.g. ./models/minilm, or a Hub id."
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if offline and not _in_hub_cache(text):
        raise OSError(
            f"{label}: {text!r} is not a folder here (working directory: {Path.cwd()}), and the Hugging Face Hub is "
            "switched off (HF_HUB_OFFLINE) with no copy of it in the cache: give a local folder holding the model."
        )


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def count_truncated(model: SentenceTransformer, texts: list[str], batch_size: int = 1024) -> int:
    """Count the texts longer than the model's input window (``max_seq_length`` tokens), whose ends it cuts off.

    Args:
        model: The model (its tokenizer and ``max_seq_length`` are used).
        texts: Passages or questions.
        batch_size: Texts tokenized at a time.

    Returns:
        How many texts have more tokens, special tokens included, than ``model.max_seq_length``.
    """
    limit = model.max_seq_length
    over = 0
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        encoded = model.tokenizer(batch, add_special_tokens=True, truncation=False, verbose=False)
        over += sum(len(ids) > limit for ids in encoded["input_ids"])
    return over


def chunk_passage(text: str, tokenizer: Any, max_tokens: int, overlap: int = 0) -> list[str]:
    """Cut a long passage into pieces of at most ``max_tokens`` tokens, overlapping by ``overlap`` tokens.

    Each piece is a slice of the original text (no detokenizing), so it reads as written. Split long
    documents this way before writing questions for them: the model ignores what lies past its window.

    Args:
        text: The passage.
        tokenizer: A fast Hugging Face tokenizer (``model.tokenizer``).
        max_tokens: Tokens per piece, without special tokens (``model.max_seq_length - 2`` for BERT-like models).
        overlap: Tokens each piece repeats from the end of the one before, so no sentence is only cut apart.

    Returns:
        The pieces in order (one piece, the whole text, when it fits).

    Raises:
        ValueError: ``max_tokens`` is below 1 or ``overlap`` not below ``max_tokens``.
    """
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError(f"Need max_tokens >= 1 and 0 <= overlap < max_tokens, got {max_tokens} and {overlap}.")
    spans = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    if len(spans) <= max_tokens:
        return [text]
    pieces = []
    for start in range(0, len(spans), max_tokens - overlap):
        window = spans[start : start + max_tokens]
        pieces.append(text[window[0][0] : window[-1][1]])
        if start + max_tokens >= len(spans):
            break
    return pieces


def check_batch_size(n_train_rows: int, batch_size: int) -> None:
    """Fail early when the training split cannot fill one batch.

    MultipleNegativesRankingLoss uses the other rows of a batch as negatives, so a batch needs at least
    two rows and the training split needs at least one full batch.

    Args:
        n_train_rows: Rows in the training split.
        batch_size: Per-device training batch size.

    Raises:
        ValueError: The batch size is below 2 or larger than the training split.
    """
    if n_train_rows < 2:
        raise ValueError(f"The training split has {n_train_rows} row(s); training needs at least 2. Use more data.")
    if batch_size < 2:
        raise ValueError(f"TRAIN_BATCH_SIZE must be at least 2 (in-batch negatives), got {batch_size}.")
    if n_train_rows < batch_size:
        raise ValueError(
            f"The training split has {n_train_rows} rows, fewer than one batch of {batch_size}. "
            f"Use more data or set TRAIN_BATCH_SIZE to at most {max(n_train_rows, 2)}."
        )


def build_pair_dataset(pairs: pd.DataFrame, max_samples: int | None = None, seed: int = 42) -> Dataset:
    """Make the (anchor, positive) dataset that MultipleNegativesRankingLoss trains (or is validated) on.

    Args:
        pairs: A split's rows (``question`` and ``context`` columns).
        max_samples: Keep a seeded random subset of this many rows (None: all), for quick runs.
        seed: Seed of the subset.

    Returns:
        A ``datasets.Dataset`` with columns ``anchor`` (question) and ``positive`` (context).
    """
    from datasets import Dataset

    if max_samples is not None:
        if max_samples < 1:
            raise ValueError(f"MAX_TRAIN_SAMPLES must be positive or None, got {max_samples}.")
        if max_samples < len(pairs):
            pairs = pairs.sample(n=max_samples, random_state=seed)
    frame = pd.DataFrame({"anchor": pairs["question"].to_list(), "positive": pairs["context"].to_list()})
    return Dataset.from_pandas(frame, preserve_index=False)


#: Smaller embedding sizes scored (and trained by Matryoshka recipes without sizes of their own) besides the full one.
EMBEDDING_SIZES = (256, 128, 64)


def pick_embedding_sizes(full: int, matryoshka_dims: Sequence[int] | None = None) -> list[int]:
    """Return the embedding sizes to train or score: the full size, then the smaller Matryoshka (or default) ones.

    Args:
        full: The model's embedding size (384 for all-MiniLM-L6-v2).
        matryoshka_dims: The recipe's Matryoshka sizes, if any (else :data:`EMBEDDING_SIZES`).

    Returns:
        Sizes, largest first, none above ``full``.
    """
    return [full, *sorted({size for size in (matryoshka_dims or EMBEDDING_SIZES) if size < full}, reverse=True)]


def read_validation_curve(log_history: list[dict[str, Any]], metric: str) -> list[list[float]]:
    """List each validation of a run as ``[epoch, score]``, in the order they were logged.

    Args:
        log_history: The trainer's log history (``trainer.state.log_history``).
        metric: The validation key, e.g. ``"eval_validation_cosine_ndcg@10"``.

    Returns:
        One ``[epoch, score]`` pair per evaluation; empty if training never evaluated.
    """
    return [[entry["epoch"], entry[metric]] for entry in log_history if metric in entry]


def show_compact_progress(trainer: SentenceTransformerTrainer, metric: str = "eval_validation_cosine_ndcg@10") -> None:
    """Replace the trainer's progress display with one progress bar and one table row per epoch.

    transformers shows every logged value (17 columns in a notebook, a dict per log line in a terminal); this
    shows the epoch, its mean training loss, the validation loss and the validation ``metric``.

    Args:
        trainer: The trainer, before ``train()``.
        metric: The validation score to show.
    """
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils.notebook import NotebookProgressCallback

    for callback in (ProgressCallback, NotebookProgressCallback, PrinterCallback):
        trainer.remove_callback(callback)
    trainer.add_callback(_compact_progress_class()(metric))


def _compact_progress_class() -> type:
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class CompactProgress(TrainerCallback):
        """One progress bar over the training steps and one row per validation: epoch, losses, score."""

        def __init__(self, metric: str) -> None:
            self.metric = metric
            self.bar: Any = None
            self.losses: list[float] = []

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            # on standard output, with the rows below, so that a saved notebook shows them as one text
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training steps", file=sys.stdout)
            label = self.metric.removeprefix("eval_").replace("_cosine_", " ")
            self.bar.write(
                f"{'epoch':>5}  {'training loss':>13}  {'validation loss':>15}  {label:>22}", file=sys.stdout
            )

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict | None = None, **kwargs: Any) -> None:
            if self.bar is None or not metrics or self.metric not in metrics:
                return
            loss = sum(self.losses) / len(self.losses) if self.losses else float("nan")
            validation_loss = metrics.get("eval_loss", float("nan"))
            self.bar.write(
                f"{state.epoch:>5.0f}  {loss:>13.4f}  {validation_loss:>15.4f}  {metrics[self.metric]:>22.4f}"
            )
            self.losses = []

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return CompactProgress
