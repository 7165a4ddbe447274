"""The length-sorted cached losses: same loss and gradients as sentence-transformers' own, less padding."""

from __future__ import annotations

import pytest
import torch

from ft_helpers.losses import SortedCachedMultipleNegativesRankingLoss, sort_pairs_by_length

QUESTIONS = [f"What did segment {i} report{' in the fiscal year' * (i % 3)}?" for i in range(12)]
PASSAGES = [
    f"Segment {i} reported revenue of {i + 1}0 million dollars" + ", up from the prior year" * (7 * (i % 4))
    for i in range(12)
]
NEGATIVES = [f"Segment {11 - i} had costs" + " and other charges" * (i % 5) for i in range(12)]


def padded_tokens(column: dict, mini_batch: int) -> int:
    """Tokens a cached loss embeds: each mini-batch padded to its own longest row."""
    lengths = column["attention_mask"].sum(dim=1)
    return sum(len(chunk) * int(chunk.max()) for chunk in lengths.split(mini_batch))


def test_sort_keeps_each_row_whole_and_puts_the_shortest_first(tiny_model):
    columns = [tiny_model.preprocess(QUESTIONS), tiny_model.preprocess(PASSAGES)]
    columns[1]["row_ids"] = list(range(12))
    labels = torch.arange(12) * 10
    sorted_columns, sorted_labels = sort_pairs_by_length(columns, labels)

    order = sorted_columns[1]["row_ids"]
    assert sorted(order) == list(range(12)) and order != list(range(12))
    totals = [int(sum(column["attention_mask"][i].sum() for column in columns)) for i in order]
    assert totals == sorted(totals)
    for column, sorted_column in zip(columns, sorted_columns, strict=True):
        for position, row in enumerate(order):
            assert torch.equal(sorted_column["input_ids"][position], column["input_ids"][row])
    assert sorted_labels.tolist() == [row * 10 for row in order]
    # batch-wide values stay as they are, and the input columns are not changed in place
    assert sorted_columns[0].get("modality") == columns[0].get("modality")
    assert columns[1]["row_ids"] == list(range(12))
    assert padded_tokens(sorted_columns[1], 4) < padded_tokens(columns[1], 4)


def test_sort_leaves_flattened_unmasked_and_empty_batches_alone():
    flattened = [{"input_ids": torch.arange(10), "cu_seq_lens_q": torch.tensor([0, 4, 10])}]
    assert sort_pairs_by_length(flattened) == (flattened, None)
    static = [{"input_ids": torch.arange(10), "offsets": torch.tensor([0, 4])}]  # a static-embedding model's input
    assert sort_pairs_by_length(static) == (static, None)
    assert sort_pairs_by_length([]) == ([], None)


@pytest.mark.parametrize("three_columns", [False, True], ids=["pairs", "with a hard negative"])
@pytest.mark.parametrize(
    "options",
    [{}, {"directions": ("query_to_doc", "doc_to_query"), "partition_mode": "per_direction"}],
    ids=["one way", "symmetric"],
)
def test_sorted_loss_gives_the_cached_loss_and_its_gradients(tiny_model, options, three_columns):
    tiny_model.eval()  # no dropout: both losses must see the same network
    texts = [QUESTIONS, PASSAGES, NEGATIVES] if three_columns else [QUESTIONS, PASSAGES]
    features = [tiny_model.preprocess(column) for column in texts]

    results = []
    for loss_class in (SortedCachedMultipleNegativesRankingLoss.__mro__[1], SortedCachedMultipleNegativesRankingLoss):
        tiny_model.zero_grad()
        loss = loss_class(tiny_model, mini_batch_size=4, **options)(features, None)
        loss.backward()
        grads = {name: p.grad.clone() for name, p in tiny_model.named_parameters() if p.grad is not None}
        results.append((loss.item(), grads))

    (plain_loss, plain_grads), (sorted_loss, sorted_grads) = results
    assert sorted_loss == pytest.approx(plain_loss, rel=1e-5)
    assert plain_grads.keys() == sorted_grads.keys() and plain_grads
    for name, grad in plain_grads.items():  # equal up to the order in which floats were summed
        torch.testing.assert_close(sorted_grads[name], grad, rtol=1e-3, atol=1e-5)

    # what the comparison would catch: a batch whose passages no longer match their questions
    mispaired = [features[0], sort_pairs_by_length(features[1:])[0][0], *features[2:]]
    mispaired_loss = SortedCachedMultipleNegativesRankingLoss(tiny_model, mini_batch_size=4, **options)(mispaired, None)
    assert mispaired_loss.item() != pytest.approx(plain_loss, rel=1e-3)
