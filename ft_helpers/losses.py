"""Cached in-batch-negative losses that embed each batch in mini-batches of passages of similar length.

A cached loss (GradCache) cuts the batch into mini-batches and pads each one only to its own longest text. In a
random batch nearly every mini-batch holds one long passage, so nearly every one is padded to that length. Sorting
the batch's pairs by length first puts the long passages together: the same loss and gradients (the pairs, and so
each question's negatives, do not change; in training only which dropout mask each text draws), with far fewer
padding tokens to embed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss
from torch import Tensor


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

    def reorder(value: Any) -> Any:
        if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == size:
            return value.index_select(0, order.to(value.device))
        if isinstance(value, list) and len(value) == size:
            return [value[i] for i in order.tolist()]
        return value

    columns = [{key: reorder(value) for key, value in column.items()} for column in sentence_features]
    return columns, reorder(labels)


class SortedCachedMultipleNegativesRankingLoss(CachedMultipleNegativesRankingLoss):
    """``CachedMultipleNegativesRankingLoss`` on each batch sorted by length (:func:`sort_pairs_by_length`)."""

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        """Sort the batch's rows by length, then compute the cached loss on them."""
        return super().forward(*sort_pairs_by_length(list(sentence_features), labels))
