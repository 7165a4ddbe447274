"""Tests for ft_helpers.training: hardware detection, batch checks, training data, model loading."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
import torch

from ft_helpers import training
from ft_helpers.training import (
    REPORTED_PACKAGES,
    HardwareSettings,
    add_hard_negatives,
    build_loss,
    build_pair_dataset,
    check_batch_size,
    check_model_reference,
    chunk_passage,
    collect_environment,
    count_truncated,
    detect_hardware,
    load_base_model,
    name_loss,
    pick_embedding_sizes,
)


# --------------------------------------------------------------------------------------------------
# detect_hardware
# --------------------------------------------------------------------------------------------------
def _check_cpu_settings(settings: HardwareSettings) -> None:
    assert isinstance(settings, HardwareSettings)
    assert settings.device == "cpu"
    assert settings.precision == "fp32"
    assert settings.fp16 is False
    assert settings.bf16 is False
    assert settings.pin_memory is False
    assert settings.optim == "adamw_torch"
    assert settings.device_name == (platform.processor() or platform.machine() or "CPU")
    assert settings.device_name
    assert settings.as_dict() == {
        "device": "cpu",
        "device_name": settings.device_name,
        "precision": "fp32",
        "fp16": False,
        "bf16": False,
        "pin_memory": False,
        "optim": "adamw_torch",
    }


def test_detect_hardware_on_this_cpu_machine():
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator")
    _check_cpu_settings(detect_hardware())


def test_detect_hardware_cpu_when_no_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    _check_cpu_settings(detect_hardware())


def _fake_cuda(monkeypatch, name: str, native_bf16: bool) -> dict[str, list]:
    """Pretend a CUDA GPU is present. Emulated bf16 exists on every CUDA GPU, native bf16 only on some."""
    calls: dict[str, list] = {"get_device_name": [], "is_bf16_supported": []}

    def get_device_name(device=None):
        calls["get_device_name"].append(device)
        return name

    def is_bf16_supported(including_emulation: bool = True):
        calls["is_bf16_supported"].append(including_emulation)
        return native_bf16 or including_emulation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", get_device_name)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    return calls


def test_detect_hardware_t4_uses_fp16(monkeypatch):
    calls = _fake_cuda(monkeypatch, "Tesla T4", native_bf16=False)
    settings = detect_hardware()
    assert settings == HardwareSettings(
        device="cuda",
        device_name="Tesla T4",
        precision="fp16",
        fp16=True,
        bf16=False,
        pin_memory=True,
        optim="adamw_torch_fused",
    )
    # emulated bf16 must not count: the T4 would then train in slow emulated bf16
    assert calls["is_bf16_supported"] == [False]
    assert calls["get_device_name"] == [0]


def test_detect_hardware_a100_uses_bf16(monkeypatch):
    calls = _fake_cuda(monkeypatch, "NVIDIA A100-SXM4-40GB", native_bf16=True)
    settings = detect_hardware()
    assert settings == HardwareSettings(
        device="cuda",
        device_name="NVIDIA A100-SXM4-40GB",
        precision="bf16",
        fp16=False,
        bf16=True,
        pin_memory=True,
        optim="adamw_torch_fused",
    )
    assert calls["is_bf16_supported"] == [False]


def test_detect_hardware_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    settings = detect_hardware()
    assert settings == HardwareSettings(
        device="mps",
        device_name="Apple MPS",
        precision="fp32",
        fp16=False,
        bf16=False,
        pin_memory=False,
        optim="adamw_torch",
    )


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_detect_hardware_refuses_half_precision_without_cuda(monkeypatch, precision):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match=f"^{precision} training needs a CUDA GPU; on cpu use 'fp32'"):
        detect_hardware(precision)
    _check_cpu_settings(detect_hardware("fp32"))


def test_detect_hardware_refuses_an_unknown_precision():
    with pytest.raises(ValueError, match=r"precision must be one of bf16, fp16, fp32 or None .*got 'fp8'"):
        detect_hardware("fp8")


def test_detect_hardware_t4_refuses_bf16_and_can_train_fp32(monkeypatch):
    _fake_cuda(monkeypatch, "Tesla T4", native_bf16=False)
    with pytest.raises(ValueError, match=r"^Tesla T4 has no native bf16: use precision 'fp16'"):
        detect_hardware("bf16")
    settings = detect_hardware("fp32")
    assert (settings.device, settings.precision, settings.fp16, settings.bf16) == ("cuda", "fp32", False, False)
    assert detect_hardware("fp16") == detect_hardware()


def test_detect_hardware_h100_can_take_the_t4_fp16_path(monkeypatch):
    _fake_cuda(monkeypatch, "NVIDIA H100 80GB HBM3", native_bf16=True)
    assert detect_hardware("fp16") == HardwareSettings(
        device="cuda",
        device_name="NVIDIA H100 80GB HBM3",
        precision="fp16",
        fp16=True,
        bf16=False,
        pin_memory=True,
        optim="adamw_torch_fused",
    )
    assert detect_hardware("bf16") == detect_hardware()
    assert detect_hardware().precision == "bf16"


# --------------------------------------------------------------------------------------------------
# check_batch_size
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 0, -4])
def test_check_batch_size_rejects_batches_below_two(batch_size):
    with pytest.raises(ValueError, match=rf"at least 2 \(in-batch negatives\), got {batch_size}\.$"):
        check_batch_size(100, batch_size)


def test_check_batch_size_rejects_batch_larger_than_split():
    with pytest.raises(ValueError) as info:
        check_batch_size(5, 8)
    message = str(info.value)
    assert "The training split has 5 rows, fewer than one batch of 8." in message
    assert "set TRAIN_BATCH_SIZE to at most 5" in message


@pytest.mark.parametrize(("rows", "batch_size"), [(2, 2), (32, 32), (1000, 64)])
def test_check_batch_size_accepts_valid_sizes(rows, batch_size):
    assert check_batch_size(rows, batch_size) is None


# --------------------------------------------------------------------------------------------------
# build_pair_dataset
# --------------------------------------------------------------------------------------------------
TRAIN = pd.DataFrame(
    {
        "question": [f"Question {i}?" for i in range(20)],
        "context": [f"Context {i}." for i in range(20)],
        "company": [f"C{i % 3}" for i in range(20)],
    },
    index=range(100, 120),
)


def test_build_pair_dataset_columns_and_order():
    dataset = build_pair_dataset(TRAIN)
    assert dataset.column_names == ["anchor", "positive"]
    assert len(dataset) == 20
    assert dataset["anchor"] == TRAIN["question"].tolist()
    assert dataset["positive"] == TRAIN["context"].tolist()


def test_build_pair_dataset_subset_is_seeded():
    first = build_pair_dataset(TRAIN, max_samples=5, seed=42)
    again = build_pair_dataset(TRAIN, max_samples=5, seed=42)
    other = build_pair_dataset(TRAIN, max_samples=5, seed=7)
    assert len(first) == 5
    assert first["anchor"] == again["anchor"]
    assert first["positive"] == again["positive"]
    assert first["anchor"] != other["anchor"]
    expected = TRAIN.sample(n=5, random_state=42)
    assert first["anchor"] == expected["question"].tolist()
    # questions stay with their own contexts
    for anchor, positive in zip(first["anchor"], first["positive"], strict=True):
        assert anchor.replace("Question", "Context").replace("?", ".") == positive
    assert len(set(first["anchor"])) == 5  # sampled without replacement


@pytest.mark.parametrize("max_samples", [20, 21, 1000])
def test_build_pair_dataset_large_max_samples_keeps_all(max_samples):
    dataset = build_pair_dataset(TRAIN, max_samples=max_samples)
    assert dataset["anchor"] == TRAIN["question"].tolist()
    assert dataset["positive"] == TRAIN["context"].tolist()


@pytest.mark.parametrize("max_samples", [0, -1])
def test_build_pair_dataset_rejects_non_positive_max_samples(max_samples):
    with pytest.raises(ValueError, match=rf"MAX_TRAIN_SAMPLES must be positive or None, got {max_samples}"):
        build_pair_dataset(TRAIN, max_samples=max_samples)


# --------------------------------------------------------------------------------------------------
# check_model_reference: no loading, no network
# --------------------------------------------------------------------------------------------------
def test_check_model_reference_accepts_a_saved_folder(tiny_model_dir):
    check_model_reference(tiny_model_dir)
    check_model_reference(Path(tiny_model_dir))


@pytest.mark.parametrize(
    ("make", "reference", "message"),
    [
        (None, "./models/base", r"^BASE_MODEL: model folder not found: '\./models/base'"),
        ("file", "weights.bin", "^BASE_MODEL: model folder not found: 'weights.bin'"),
        ("empty", "empty", "^BASE_MODEL: the folder 'empty' holds no saved model"),
        (None, "models/minilm/v2", "is neither a folder here .* nor a Hugging Face Hub id"),
        (None, "models/minilm", r"not a folder here .* switched off \(HF_HUB_OFFLINE\) with no copy of it"),
    ],
)
def test_check_model_reference_says_what_is_wrong(tmp_path, monkeypatch, make, reference, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if make == "file":
        Path(reference).write_bytes(b"\0")
    if make == "empty":
        Path(reference).mkdir()
    with pytest.raises(OSError, match=message) as info:
        check_model_reference(reference)
    assert str(tmp_path) in str(info.value) or make == "empty"


def test_check_model_reference_offline_accepts_a_cached_hub_model(tmp_path, monkeypatch):
    import huggingface_hub.constants

    snapshot = tmp_path / "models--org--model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--org--model" / "refs").mkdir()
    (tmp_path / "models--org--model" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check_model_reference("org/model")
    with pytest.raises(OSError, match="no copy of it in the cache"):
        check_model_reference("org/other")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    check_model_reference("org/other")  # online: left to the Hub


# --------------------------------------------------------------------------------------------------
# load_base_model
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("as_path", [False, True])
def test_load_base_model_from_folder(tiny_model_dir, as_path):
    from sentence_transformers import SentenceTransformer

    model = load_base_model(Path(tiny_model_dir) if as_path else tiny_model_dir, device="cpu")
    assert isinstance(model, SentenceTransformer)
    assert model.device.type == "cpu"
    embeddings = model.encode(["What was revenue?", "Revenue was $4.2 billion."])
    assert embeddings.shape == (2, 32)


def test_load_base_model_missing_folder(tmp_path):
    missing = tmp_path / "models" / "base"
    with pytest.raises(OSError, match="Model folder not found") as info:
        load_base_model(missing)
    assert str(missing) in str(info.value)


def test_load_base_model_missing_relative_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OSError, match=r"Model folder not found: '\./models/base'") as info:
        load_base_model("./models/base")
    assert str(tmp_path) in str(info.value)  # the working directory is named


def test_load_base_model_file_is_not_a_folder(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\0")
    with pytest.raises(OSError, match="Model folder not found"):
        load_base_model(path)


def test_load_base_model_broken_folder(tmp_path):
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(OSError, match="Check that the folder holds a saved sentence-transformers model") as info:
        load_base_model(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_load_base_model_hub_id_offline_fails_fast():
    assert os.environ.get("HF_HUB_OFFLINE")  # set by conftest before any Hugging Face import
    name = "ft-helpers-tests/no-such-model"
    start = time.monotonic()
    with pytest.raises(OSError) as info:
        load_base_model(name)
    assert time.monotonic() - start < 30
    message = str(info.value)
    assert f"Could not load model {name!r}" in message
    assert "set BASE_MODEL to that local folder" in message
    assert info.value.__cause__ is None  # raised "from None": the message alone explains it


# --------------------------------------------------------------------------------------------------
# collect_environment
# --------------------------------------------------------------------------------------------------
def test_collect_environment():
    versions = collect_environment()
    assert list(versions) == ["python", *REPORTED_PACKAGES]
    assert versions["python"] == platform.python_version()
    assert versions["torch"] == metadata.version("torch")
    assert versions["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert versions["sentence-transformers"] == metadata.version("sentence-transformers")


def test_collect_environment_reports_missing_packages(monkeypatch):
    real_version = metadata.version

    def fake_version(package):
        if package == "scipy":
            raise metadata.PackageNotFoundError(package)
        return real_version(package)

    monkeypatch.setattr(training.metadata, "version", fake_version)
    versions = collect_environment()
    assert versions["scipy"] == "not installed"
    assert versions["numpy"] == real_version("numpy")


def test_check_batch_size_rejects_a_single_training_row():
    with pytest.raises(ValueError, match="at least 2"):
        check_batch_size(1, 4)


# --------------------------------------------------------------------------------------------------
# count_truncated
# --------------------------------------------------------------------------------------------------
def test_count_truncated_counts_texts_over_the_window(tiny_model):
    limit = tiny_model.max_seq_length  # 128 tokens, [CLS] and [SEP] included
    texts = ["short", "word " * (limit - 2), "word " * (limit - 1), "word " * 500, ""]
    assert count_truncated(tiny_model, texts) == 2
    assert count_truncated(tiny_model, texts, batch_size=2) == 2
    assert count_truncated(tiny_model, []) == 0


# --------------------------------------------------------------------------------------------------
# chunk_passage
# --------------------------------------------------------------------------------------------------
def test_chunk_passage_cuts_long_text_into_overlapping_slices(tiny_model):
    tokenizer = tiny_model.tokenizer
    text = " ".join(f"Revenue item {i} rose." for i in range(60))  # 5 tokens a sentence: 300 tokens
    pieces = chunk_passage(text, tokenizer, max_tokens=50, overlap=10)

    def tokens(piece: str) -> list[int]:
        return tokenizer(piece, add_special_tokens=False)["input_ids"]

    assert all(piece in text for piece in pieces), "pieces are slices of the original text"
    assert all(len(tokens(piece)) <= 50 for piece in pieces)
    assert text.startswith(pieces[0]) and text.endswith(pieces[-1])
    assert len(pieces) == 1 + -(-(len(tokens(text)) - 50) // 40)  # windows of 50 moving by 40
    for before, after in itertools.pairwise(pieces):
        assert tokens(before)[-10:] == tokens(after)[:10], "each piece repeats the last 10 tokens of the one before"


def test_chunk_passage_keeps_short_text_whole_and_checks_its_arguments(tiny_model):
    assert chunk_passage("Revenue rose.", tiny_model.tokenizer, max_tokens=50) == ["Revenue rose."]
    for max_tokens, overlap in ((0, 0), (10, 10), (10, -1)):
        with pytest.raises(ValueError, match="Need max_tokens >= 1 and 0 <= overlap < max_tokens"):
            chunk_passage("Revenue rose.", tiny_model.tokenizer, max_tokens=max_tokens, overlap=overlap)


def test_recipes_fill_in_what_the_run_leaves_at_none():
    from ft_helpers import RECIPES, RunConfig

    default = RunConfig().resolved()
    assert (default.recipe, default.epochs, default.train_batch_size, default.learning_rate) == (
        "improved",
        10,
        256,
        1e-4,
    )
    reference = RunConfig(recipe="reference").resolved()
    assert (reference.epochs, reference.train_batch_size, reference.learning_rate) == (6, 32, 2e-5)
    assert reference.max_train_samples is None and default.max_train_samples is None
    improved = RunConfig(recipe="improved", epochs=2)
    assert improved.training_recipe() == dataclasses.replace(RECIPES["improved"], epochs=2)
    assert improved.resolved().train_batch_size == 256 and improved.resolved().epochs == 2
    assert RunConfig(recipe="quick").resolved().max_train_samples is None
    assert RunConfig(recipe="quick").training_recipe().mini_batch_size == 8
    assert RunConfig(recipe="quick", max_train_samples=500).training_recipe().max_train_samples == 500
    assert RunConfig(recipe="improved").as_dict()["epochs"] is None  # what was asked, before filling in


@pytest.mark.parametrize(
    ("full", "recipe_sizes", "expected"),
    [
        (384, (384, 256, 128, 64), [384, 256, 128, 64]),
        (768, (384, 256, 128, 64), [768, 384, 256, 128, 64]),
        (32, None, [32]),
        (300, None, [300, 256, 128, 64]),
    ],
)
def test_pick_embedding_sizes_starts_with_the_full_size(full, recipe_sizes, expected):
    assert pick_embedding_sizes(full, recipe_sizes) == expected


def test_build_loss_follows_the_recipe(tiny_model):
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )

    from ft_helpers import RECIPES, Recipe
    from ft_helpers.losses import SortedMultipleNegativesRankingLoss

    plain = build_loss(tiny_model, RECIPES["reference"])
    assert type(plain) is MultipleNegativesRankingLoss and plain.model is tiny_model
    improved = build_loss(tiny_model, dataclasses.replace(RECIPES["improved"], matryoshka_dims=(16, 8)))
    assert isinstance(improved, MatryoshkaLoss) and list(improved.matryoshka_dims) == [32, 16, 8]
    assert isinstance(improved.loss, CachedMultipleNegativesRankingLoss) and improved.loss.mini_batch_size == 32
    assert name_loss(improved) == "MatryoshkaLoss(SortedCachedMultipleNegativesRankingLoss)"
    assert name_loss(plain) == "MultipleNegativesRankingLoss"
    chunked = build_loss(tiny_model, dataclasses.replace(RECIPES["reference"], mini_batch_size=8))
    assert type(chunked) is SortedMultipleNegativesRankingLoss and chunked.mini_batch_size == 8
    assert chunked.model is tiny_model and name_loss(chunked) == "SortedMultipleNegativesRankingLoss"
    with pytest.raises(ValueError, match="unknown loss 'TripletLoss'; choose one of MultipleNegativesRankingLoss, "):
        build_loss(tiny_model, Recipe("mine", "TripletLoss", epochs=1, train_batch_size=8, learning_rate=1e-5))


def test_build_loss_symmetric_forms(tiny_model):
    import warnings

    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )

    from ft_helpers import RECIPES

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # built without sentence-transformers' deprecated classes
        cached = build_loss(
            tiny_model,
            dataclasses.replace(
                RECIPES["improved"], loss="CachedMultipleNegativesSymmetricRankingLoss", mini_batch_size=4
            ),
        )
        plain = build_loss(
            tiny_model, dataclasses.replace(RECIPES["reference"], loss="MultipleNegativesSymmetricRankingLoss")
        )
        chunked = build_loss(
            tiny_model,
            dataclasses.replace(RECIPES["reference"], loss="MultipleNegativesSymmetricRankingLoss", mini_batch_size=4),
        )
    assert isinstance(cached, MatryoshkaLoss) and isinstance(cached.loss, CachedMultipleNegativesRankingLoss)
    assert name_loss(cached) == "MatryoshkaLoss(SortedCachedMultipleNegativesRankingLoss (per-direction softmax))"
    assert cached.loss.mini_batch_size == 4
    assert type(plain) is MultipleNegativesRankingLoss and plain.model is tiny_model
    assert name_loss(plain) == "MultipleNegativesRankingLoss (per-direction softmax)"
    assert name_loss(chunked) == "SortedMultipleNegativesRankingLoss (per-direction softmax)"
    for loss in (cached.loss, plain, chunked):
        assert tuple(loss.directions) == ("query_to_doc", "doc_to_query") and loss.partition_mode == "per_direction"
    with pytest.raises(ValueError, match="ranks both ways already; leave directions at query_to_doc"):
        build_loss(
            tiny_model,
            dataclasses.replace(
                RECIPES["reference"],
                loss="MultipleNegativesSymmetricRankingLoss",
                directions=("query_to_doc", "doc_to_query"),
            ),
        )


def test_symmetric_form_scores_as_the_deprecated_symmetric_loss(tiny_model):
    """The per-direction MNRL gives the very loss of the class it replaces, while that class still exists."""
    import warnings

    from sentence_transformers.sentence_transformer import losses

    from ft_helpers import RECIPES

    if not hasattr(losses, "MultipleNegativesSymmetricRankingLoss"):
        pytest.skip("this sentence-transformers no longer has the deprecated symmetric loss to compare with")
    tiny_model.eval()  # no dropout: both losses must see the same network
    questions = [f"What did segment {i} report?" for i in range(6)]
    passages = [f"Segment {i} reported revenue of {i + 1}0 million dollars" for i in range(6)]
    features = [tiny_model.preprocess(questions), tiny_model.preprocess(passages)]
    symmetric = dataclasses.replace(RECIPES["reference"], loss="MultipleNegativesSymmetricRankingLoss")
    ours = build_loss(tiny_model, symmetric)
    # what the check would catch: both directions in one softmax instead of one each
    both_ways = ("query_to_doc", "doc_to_query")
    joint = build_loss(tiny_model, dataclasses.replace(RECIPES["reference"], directions=both_ways))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs = losses.MultipleNegativesSymmetricRankingLoss(tiny_model)
    with torch.no_grad():
        expected = theirs(features, None).item()
        assert ours(features, None).item() == pytest.approx(expected, rel=1e-5)
        assert joint(features, None).item() != pytest.approx(expected, rel=1e-3)


def test_recipe_round_trips_through_its_dict():
    from ft_helpers import RECIPES, Recipe

    for recipe in RECIPES.values():
        assert Recipe.from_dict(recipe.as_dict()) == recipe
    variant = dataclasses.replace(RECIPES["improved"], directions=("query_to_doc", "doc_to_query"), hard_negatives=1)
    assert Recipe.from_dict(json.loads(json.dumps(variant.as_dict()))) == variant


def test_build_loss_passes_the_directions(tiny_model):
    from ft_helpers import RECIPES

    both = ("query_to_doc", "doc_to_query")
    plain = build_loss(tiny_model, dataclasses.replace(RECIPES["reference"], directions=both))
    assert tuple(plain.directions) == both
    cached = build_loss(tiny_model, dataclasses.replace(RECIPES["improved"], directions=both))
    assert tuple(cached.loss.directions) == both


def test_add_hard_negatives_mines_one_per_pair_from_the_other_passages(tiny_model):
    frame = pd.DataFrame(
        {
            "question": [f"How much did segment {i} earn in 2023?" for i in range(12)],
            "context": [
                f"Segment {i} earned {i + 1}0 million dollars in fiscal 2023, up from 2022." for i in range(12)
            ],
        }
    )
    mined, twins = add_hard_negatives(build_pair_dataset(frame), tiny_model, 1, relative_margin=0.0)
    assert mined.column_names == ["anchor", "positive", "negative_1"] and twins == 0
    assert 0 < len(mined) <= 12
    for row in mined:
        assert row["negative_1"] != row["positive"] and row["negative_1"] in set(frame["context"])


def test_add_hard_negatives_drops_a_pair_whose_negative_is_its_positive_in_other_case(tiny_model, monkeypatch):
    from datasets import Dataset
    from sentence_transformers import util

    def fake_mining(pairs, model, **options):
        assert options["relative_margin"] == 0.05 and options["num_negatives"] == 1
        return Dataset.from_dict(
            {"anchor": ["q1", "q2"], "positive": ["Revenue rose.", "Costs fell."], "negative_1": ["REVENUE ROSE", "x"]}
        )

    monkeypatch.setattr(util, "mine_hard_negatives", fake_mining)
    mined, twins = add_hard_negatives(build_pair_dataset(pd.DataFrame({"question": ["a"], "context": ["b"]})), None, 1)
    assert twins == 1 and mined["anchor"] == ["q2"]
    with pytest.raises(ValueError, match="at least 1"):
        add_hard_negatives(mined, None, 0)
