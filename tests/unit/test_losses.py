"""The length-sorted losses: same loss and gradients as sentence-transformers' own, less padding."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    MatryoshkaLoss,
    MultipleNegativesRankingLoss,
)

from ft_helpers.losses import (
    SortedCachedMultipleNegativesRankingLoss,
    SortedMultipleNegativesRankingLoss,
    embed_sorted,
    sort_pairs_by_length,
)

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


#: Each sorted loss beside the sentence-transformers loss it must equal, built on a model with extra options.
LOSS_PAIRS = [
    pytest.param(
        lambda model, options: CachedMultipleNegativesRankingLoss(model, mini_batch_size=4, **options),
        lambda model, options: SortedCachedMultipleNegativesRankingLoss(model, mini_batch_size=4, **options),
        id="cached",
    ),
    pytest.param(
        lambda model, options: MultipleNegativesRankingLoss(model, **options),
        lambda model, options: SortedMultipleNegativesRankingLoss(model, mini_batch_size=5, **options),
        id="plain",
    ),
]


def loss_and_grads(model, loss, features) -> tuple[float, dict[str, torch.Tensor]]:
    """The loss on one batch and the gradient it leaves on each parameter."""
    model.zero_grad()
    value = loss(features, None)
    value.backward()
    return value.item(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("three_columns", [False, True], ids=["pairs", "with a hard negative"])
@pytest.mark.parametrize(
    "options",
    [{}, {"directions": ("query_to_doc", "doc_to_query"), "partition_mode": "per_direction"}],
    ids=["one way", "symmetric"],
)
@pytest.mark.parametrize(("unsorted", "sorted_"), LOSS_PAIRS)
def test_sorted_loss_gives_its_unsorted_loss_and_gradients(tiny_model, unsorted, sorted_, options, three_columns):
    tiny_model.eval()  # no dropout: both losses must see the same network
    texts = [QUESTIONS, PASSAGES, NEGATIVES] if three_columns else [QUESTIONS, PASSAGES]
    features = [tiny_model.preprocess(column) for column in texts]

    plain_loss, plain_grads = loss_and_grads(tiny_model, unsorted(tiny_model, options), features)
    sorted_loss, sorted_grads = loss_and_grads(tiny_model, sorted_(tiny_model, options), features)
    assert sorted_loss == pytest.approx(plain_loss, rel=1e-5)
    assert plain_grads.keys() == sorted_grads.keys() and plain_grads
    for name, grad in plain_grads.items():  # equal up to the order in which floats were summed
        torch.testing.assert_close(sorted_grads[name], grad, rtol=1e-3, atol=1e-5)

    # what the comparison would catch: a batch whose passages no longer match their questions
    mispaired = [features[0], sort_pairs_by_length(features[1:])[0][0], *features[2:]]
    mispaired_loss = sorted_(tiny_model, options)(mispaired, None)
    assert mispaired_loss.item() != pytest.approx(plain_loss, rel=1e-3)


def test_embed_sorted_gives_each_text_its_own_embedding_with_less_padding(tiny_model, monkeypatch):
    tiny_model.eval()
    column = tiny_model.preprocess(PASSAGES)
    column["row_ids"] = list(range(12))
    width = column["input_ids"].shape[1]
    whole = tiny_model(dict(column))["sentence_embedding"]

    widths = []
    forward = tiny_model.forward
    monkeypatch.setattr(tiny_model, "forward", lambda f: widths.append(f["input_ids"].shape) or forward(f))
    pieces = embed_sorted(tiny_model, column, mini_batch_size=5)

    torch.testing.assert_close(pieces, whole, rtol=1e-4, atol=1e-5)  # same rows, same order
    assert [shape[0] for shape in widths] == [5, 5, 2]
    embedded = sum(rows * width for rows, width in widths)
    assert embedded < column["input_ids"].numel()  # padding trimmed per mini-batch
    assert embedded == padded_tokens(sort_pairs_by_length([column])[0][0], 5)
    assert column["row_ids"] == list(range(12)) and column["input_ids"].shape == (12, width)  # input left as is


def test_embed_sorted_handles_left_padding(tiny_model):
    tiny_model.eval()
    column = tiny_model.preprocess(PASSAGES)
    lengths = column["attention_mask"].sum(dim=1)
    left = {
        key: torch.stack([row.roll(int(row.numel() - n)) for row, n in zip(value, lengths, strict=True)])
        for key, value in column.items()
        if isinstance(value, torch.Tensor) and value.ndim == 2
    }
    trimmed = embed_sorted(lambda f: {"sentence_embedding": f["attention_mask"].sum(dim=1, keepdim=True)}, left, 4)
    assert trimmed.squeeze(1).tolist() == lengths.tolist()  # every real token kept, in the input's row order


def test_sorted_plain_loss_under_matryoshka_gives_the_plain_one(tiny_model):
    tiny_model.eval()
    features = [tiny_model.preprocess(QUESTIONS), tiny_model.preprocess(PASSAGES)]
    results = [
        loss_and_grads(tiny_model, MatryoshkaLoss(tiny_model, inner, matryoshka_dims=[32, 16, 8]), features)
        for inner in (MultipleNegativesRankingLoss(tiny_model), SortedMultipleNegativesRankingLoss(tiny_model, 4))
    ]
    (plain_loss, plain_grads), (sorted_loss, sorted_grads) = results
    assert sorted_loss == pytest.approx(plain_loss, rel=1e-5)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(sorted_grads[name], grad, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("size", [0, -2, 2.5, True, "8"])
def test_sorted_plain_loss_rejects_a_bad_mini_batch_size(tiny_model, size):
    with pytest.raises(ValueError, match="mini_batch_size must be a whole number of at least 1"):
        SortedMultipleNegativesRankingLoss(tiny_model, mini_batch_size=size)


def test_sorted_plain_loss_reports_its_mini_batch_size(tiny_model):
    config = SortedMultipleNegativesRankingLoss(tiny_model, mini_batch_size=6).get_config_dict()
    assert config["mini_batch_size"] == 6 and config["scale"] == 20.0
