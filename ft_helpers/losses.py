"""In-batch-negative losses that embed each batch in mini-batches of texts of similar length.

A tokenized batch is padded to its longest text. In this dataset a passage's median is 38 tokens, but the longest
of a random batch of 32 has a median of 125, so most of what the model embeds is padding. Both losses
here embed the batch in mini-batches of texts of similar length, each padded only to its own longest text: the
same loss and gradients (the pairs, and so each question's negatives, do not change; in training only which
dropout mask each text draws), with far fewer padding tokens to embed.

* :class:`SortedMultipleNegativesRankingLoss`: the plain loss, each column embedded (with gradients) in
  length-sorted mini-batches. Memory still grows with the batch; it saves time on a CPU.
* :class:`SortedCachedMultipleNegativesRankingLoss`: the cached loss (GradCache), which cuts the batch into
  mini-batches anyway, on the batch's pairs sorted by length first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    MultipleNegativesRankingLoss,
)
from torch import Tensor, nn


def sort_pairs_by_length(
    sentence_features: list[dict[str, Any]], labels: Tensor | None = None
) -> tuple[list[dict[str, Any]], Tensor | None]:
    """Reorder a batch's rows, shortest first by their total token count over all columns.

    Every column (question, passage, any negatives) and the labels get the same order, so each row stays whole.

    Args:
        sentence_features: One tokenized column each, as the trainer passes them to a loss: padded tensors whose
            first dimension is the batch, plus any per-row lists and batch-wide values.
        labels: The batch's labels, if any (in-batch-negative losses take none).

    Returns:
        The reordered columns and labels. Inputs without an attention mask to count tokens by (flattened inputs,
        static-embedding models) are returned as they are.
    """
    if not sentence_features or any(
        "cu_seq_lens_q" in column or "attention_mask" not in column for column in sentence_features
    ):
        return sentence_features, labels
    lengths = sum(column["attention_mask"].sum(dim=1) for column in sentence_features)
    order = torch.argsort(lengths, stable=True)
    size = len(order)
    columns = [{key: take_rows(value, order, size) for key, value in column.items()} for column in sentence_features]
    return columns, take_rows(labels, order, size)


def take_rows(value: Any, rows: Tensor, size: int) -> Any:
    """Pick ``rows`` of a per-row value of a batch of ``size``: a tensor with that first dimension, or a list that long.

    Args:
        value: One entry of a tokenized column (or the labels).
        rows: Row indices, in the order wanted.
        size: The batch size, by which per-row values are told from batch-wide ones.

    Returns:
        The chosen rows; a batch-wide value (anything else) as it is.
    """
    if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == size:
        return value.index_select(0, rows.to(value.device))
    if isinstance(value, list) and len(value) == size:
        return [value[i] for i in rows.tolist()]
    return value


class SortedCachedMultipleNegativesRankingLoss(CachedMultipleNegativesRankingLoss):
    """``CachedMultipleNegativesRankingLoss`` on each batch sorted by length (:func:`sort_pairs_by_length`)."""

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        """Sort the batch's rows by length, then compute the cached loss on them."""
        return super().forward(*sort_pairs_by_length(list(sentence_features), labels))


def embed_sorted(model: nn.Module, features: dict[str, Any], mini_batch_size: int) -> Tensor:
    """Embed one tokenized column in mini-batches of texts of similar length, each padded only to its own longest.

    Args:
        model: The SentenceTransformer (or anything called like one on tokenized features).
        features: One tokenized column: padded tensors whose first dimension is the batch, plus any per-row lists
            and batch-wide values.
        mini_batch_size: Texts embedded at a time.

    Returns:
        The column's embeddings, one row per text in the input's order, with gradients if the model has them.
        Inputs without an attention mask (flattened inputs, static-embedding models) are embedded in one call.
    """
    mask = features.get("attention_mask")
    if "cu_seq_lens_q" in features or not isinstance(mask, Tensor) or mask.ndim != 2:
        return model(features)["sentence_embedding"]
    size, width = mask.shape
    order = torch.argsort(mask.sum(dim=1), stable=True)
    chunks = []
    for start in range(0, size, mini_batch_size):
        rows = order[start : start + mini_batch_size]
        # the token positions any text of this mini-batch uses: with right or left padding, the rest is padding
        positions = mask.index_select(0, rows).any(dim=0).nonzero().squeeze(1)

        def take(value: Any, rows: Tensor = rows, positions: Tensor = positions) -> Any:
            per_token = isinstance(value, Tensor) and value.ndim == 2 and tuple(value.shape) == (size, width)
            value = take_rows(value, rows, size)
            return value.index_select(1, positions.to(value.device)) if per_token else value

        chunks.append(model({key: take(value) for key, value in features.items()})["sentence_embedding"])
    embeddings = torch.cat(chunks)
    restore = torch.empty_like(order)
    restore[order] = torch.arange(size, device=order.device)
    return embeddings.index_select(0, restore.to(embeddings.device))


class SortedMultipleNegativesRankingLoss(MultipleNegativesRankingLoss):
    """``MultipleNegativesRankingLoss`` with each column embedded in length-sorted mini-batches (:func:`embed_sorted`).

    Args:
        model: The model to train.
        mini_batch_size: Texts embedded at a time (8 by default: small enough that most mini-batches carry little
            padding).
        **kwargs: Passed on to ``MultipleNegativesRankingLoss`` (``scale``, ``directions``, ``partition_mode``...).
    """

    def __init__(self, model: nn.Module, mini_batch_size: int = 8, **kwargs: Any) -> None:
        if not isinstance(mini_batch_size, int) or isinstance(mini_batch_size, bool) or mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be a whole number of at least 1, got {mini_batch_size!r}.")
        super().__init__(model, **kwargs)
        self.mini_batch_size = mini_batch_size

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        """Embed each column in length-sorted mini-batches, then compute the loss on the embeddings."""
        embeddings = [embed_sorted(self.model, column, self.mini_batch_size) for column in sentence_features]
        return self.compute_loss_from_embeddings(embeddings, labels)

    def get_config_dict(self) -> dict[str, Any]:
        """Return the loss's settings (for the model card), the mini-batch size among them."""
        return super().get_config_dict() | {"mini_batch_size": self.mini_batch_size}
