"""Pieces around training: hardware settings, loading the base model, the training dataset."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from torch import nn

    from .config import Recipe

#: Packages whose versions are printed and stored with each run.
REPORTED_PACKAGES = (
    "torch",
    "sentence-transformers",
    "transformers",
    "datasets",
    "accelerate",
    "pandas",
    "numpy",
    "scipy",
)


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


#: The losses a recipe can name: MNRL ranks each question against the batch's passages (and the recipe's other
#: directions, in one softmax); the symmetric form adds passage -> question as a second softmax and averages the
#: two (built as MNRL with both directions and ``partition_mode="per_direction"``, sentence-transformers' own
#: replacement for its deprecated symmetric classes). The cached forms (GradCache) give the same gradients in
#: mini-batches, so large batches fit in memory.
LOSSES = (
    "MultipleNegativesRankingLoss",
    "CachedMultipleNegativesRankingLoss",
    "MultipleNegativesSymmetricRankingLoss",
    "CachedMultipleNegativesSymmetricRankingLoss",
)

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


def load_base_model(name_or_path: str | Path, device: str | None = None) -> SentenceTransformer:
    """Load a sentence-transformers model from a Hub id or a local folder, with a clear error if that fails.

    Args:
        name_or_path: Hub id (``"sentence-transformers/all-MiniLM-L6-v2"``) or a folder saved with
            ``model.save(...)`` / downloaded from the Hub.
        device: ``"cuda"``, ``"cpu"``, ... or None to let sentence-transformers choose.

    Returns:
        The model.

    Raises:
        OSError: The model could not be loaded; the message says how to use a local folder instead.
    """
    from sentence_transformers import SentenceTransformer

    looks_local = Path(name_or_path).expanduser().exists() or str(name_or_path).startswith((".", "/", "~"))
    if looks_local and not Path(name_or_path).expanduser().is_dir():
        raise OSError(f"Model folder not found: {str(name_or_path)!r} (working directory: {Path.cwd()}).")
    try:
        return SentenceTransformer(
            str(Path(name_or_path).expanduser()) if looks_local else str(name_or_path), device=device
        )
    except Exception as err:  # network errors, missing repos, broken folders
        hint = (
            "Check that the folder holds a saved sentence-transformers model (modules.json, config.json, weights)."
            if looks_local
            else "If the Hugging Face Hub is unreachable, download the model once elsewhere "
            "(SentenceTransformer(name).save('models/base')) and set BASE_MODEL to that local folder."
        )
        raise OSError(f"Could not load model {str(name_or_path)!r}: {type(err).__name__}: {err}\n{hint}") from None


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


def build_loss(model: SentenceTransformer, recipe: Recipe, gather_across_devices: bool = False) -> nn.Module:
    """Build the recipe's loss on ``model`` (the notebook's training cell writes the same out in full).

    Args:
        model: The model to train; the loss holds it, so build the loss on the very model the trainer gets.
        recipe: From :meth:`~ft_helpers.config.RunConfig.training_recipe`.
        gather_across_devices: With several processes, also use the other processes' passages as negatives.

    Returns:
        The recipe's loss (one of :data:`LOSSES`; a cached one embeds ``mini_batch_size`` pairs at a time, the
        batch sorted by length first, and a plain one with ``mini_batch_size`` embeds each column in length-sorted
        mini-batches of that many: :mod:`ft_helpers.losses`); wrapped in
        ``MatryoshkaLoss`` when the recipe has ``matryoshka_dims``, at the model's full size and the recipe's
        smaller sizes (:func:`pick_embedding_sizes`), so a model of another size trains its own full size too.

    Raises:
        ValueError: The recipe names another loss, or directions for a symmetric one.
    """
    from sentence_transformers.sentence_transformer import losses

    if recipe.loss not in LOSSES:
        raise ValueError(f"Recipe {recipe.name!r}: unknown loss {recipe.loss!r}; choose one of {', '.join(LOSSES)}.")
    options: dict[str, Any] = {"gather_across_devices": gather_across_devices, "directions": tuple(recipe.directions)}
    loss_class = recipe.loss
    if "Symmetric" in recipe.loss:
        if tuple(recipe.directions) != ("query_to_doc",):
            raise ValueError(
                f"Recipe {recipe.name!r}: {recipe.loss} ranks both ways already; leave directions at query_to_doc."
            )
        # question -> passage and passage -> question, each its own softmax, averaged: the symmetric loss
        loss_class = recipe.loss.replace("Symmetric", "")
        options |= {"directions": ("query_to_doc", "doc_to_query"), "partition_mode": "per_direction"}
    if loss_class.startswith("Cached") or recipe.mini_batch_size:
        from . import losses as sorted_losses

        options["mini_batch_size"] = recipe.mini_batch_size or 32
        # the same loss, embedded in mini-batches of texts of similar length, so they carry little padding
        loss = getattr(sorted_losses, f"Sorted{loss_class}")(model, **options)
    else:
        loss = getattr(losses, loss_class)(model, **options)
    if not recipe.matryoshka_dims:
        return loss
    sizes = pick_embedding_sizes(model.get_embedding_dimension(), recipe.matryoshka_dims)
    return losses.MatryoshkaLoss(model, loss, matryoshka_dims=sizes)


def name_loss(loss: nn.Module) -> str:
    """Name a loss by its class, and a ``MatryoshkaLoss`` by the loss it wraps too, for ``results.json``.

    Args:
        loss: A loss from :func:`build_loss` (or any sentence-transformers loss).

    Returns:
        E.g. ``"MatryoshkaLoss(SortedCachedMultipleNegativesRankingLoss)"``; a loss with one softmax per direction
        (the symmetric form) says so: ``"MultipleNegativesRankingLoss (per-direction softmax)"``.
    """
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss

    if isinstance(loss, MatryoshkaLoss):
        return f"{type(loss).__name__}({name_loss(loss.loss)})"
    per_direction = getattr(loss, "partition_mode", "joint") == "per_direction"
    return type(loss).__name__ + (" (per-direction softmax)" if per_direction else "")


def add_hard_negatives(
    pairs: Dataset,
    model: SentenceTransformer,
    count: int,
    batch_size: int = 64,
    relative_margin: float = 0.05,
    range_max: int = 30,
) -> tuple[Dataset, int]:
    """Add ``count`` hard negatives to each (anchor, positive) pair: passages the model ranks high for the question.

    Mined with sentence-transformers' ``mine_hard_negatives`` over the pairs' own passages, taking the top
    candidates among the ``range_max`` nearest. Two filters keep out false negatives, passages that also
    answer the question: a candidate must score at least ``relative_margin`` (5%) below the positive, and a
    pair whose candidate is its own positive with other case, punctuation or spacing is dropped.

    Args:
        pairs: From :func:`build_pair_dataset`.
        model: The model that ranks the candidates (the base model, before training).
        count: Negatives per pair (at least 1).
        batch_size: Encoding batch size.
        relative_margin: How far below the positive's score a candidate must stay, as a fraction of it.
        range_max: How many nearest passages to consider per question.

    Returns:
        The dataset with columns ``anchor``, ``positive``, ``negative_1``, ... (pairs without enough candidates
        left out), and how many pairs were dropped as near-copies of their positive.

    Raises:
        ValueError: ``count`` is below 1.
    """
    from sentence_transformers.util import mine_hard_negatives

    from .data import normalize_text

    if count < 1:
        raise ValueError(f"Hard negatives per pair must be at least 1, got {count}.")
    mined = mine_hard_negatives(
        pairs,
        model,
        anchor_column_name="anchor",
        positive_column_name="positive",
        range_max=range_max,
        relative_margin=relative_margin,
        num_negatives=count,
        sampling_strategy="top",
        output_format="n-tuple",
        batch_size=batch_size,
        verbose=False,
    )
    negatives = [name for name in mined.column_names if name.startswith("negative")]
    twins = [any(normalize_text(row[name]) == normalize_text(row["positive"]) for name in negatives) for row in mined]
    kept = mined.select([index for index, twin in enumerate(twins) if not twin])
    return kept, sum(twins)
