"""Tests for ft_helpers.training: hardware detection, batch checks, training data, the compact progress display."""

from __future__ import annotations

import itertools
import platform
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from ft_helpers.training import (
    HardwareSettings,
    build_pair_dataset,
    check_batch_size,
    check_model_reference,
    chunk_passage,
    count_truncated,
    detect_hardware,
    pick_embedding_sizes,
    read_validation_curve,
    show_compact_progress,
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


def test_check_batch_size_rejects_a_single_training_row():
    with pytest.raises(ValueError, match=r"has 1 row\(s\); training needs at least 2"):
        check_batch_size(1, 4)


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


def test_check_model_reference_names_the_model_it_checks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OSError, match=r"^model 2: model folder not found: '\./missing'"):
        check_model_reference("./missing", label="model 2")


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


# --------------------------------------------------------------------------------------------------
# read_validation_curve
# --------------------------------------------------------------------------------------------------
HISTORY = [
    {"loss": 1.2, "epoch": 0.5, "step": 5},
    {"eval_validation_cosine_ndcg@10": 0.61, "eval_validation_cosine_mrr@10": 0.5, "epoch": 1.0, "step": 10},
    {"loss": 0.8, "epoch": 1.5, "step": 15},
    {"eval_validation_cosine_ndcg@10": 0.58, "eval_validation_cosine_mrr@10": 0.55, "epoch": 2.0, "step": 20},
    {"train_runtime": 3.0, "epoch": 2.0, "step": 20},
]


def test_the_validation_curve_lists_each_evaluation_in_order():
    assert read_validation_curve(HISTORY, "eval_validation_cosine_ndcg@10") == [[1.0, 0.61], [2.0, 0.58]]
    assert read_validation_curve(HISTORY, "eval_validation_cosine_mrr@10") == [[1.0, 0.5], [2.0, 0.55]]


def test_the_validation_curve_is_empty_without_evaluations():
    assert read_validation_curve(HISTORY[:1], "eval_validation_cosine_ndcg@10") == []
    assert read_validation_curve(HISTORY, "eval_test_cosine_ndcg@10") == []
    assert read_validation_curve([], "eval_validation_cosine_ndcg@10") == []


# --------------------------------------------------------------------------------------------------
# show_compact_progress: one bar, one row per epoch, in place of transformers' progress callbacks
# --------------------------------------------------------------------------------------------------
METRIC = "eval_validation_cosine_ndcg@10"


def tiny_trainer(model, pairs: pd.DataFrame, output_dir: Path, disable_tqdm: bool = False):
    """A SentenceTransformerTrainer of the tiny model: 16 pairs in batches of 8 (2 steps an epoch), 2 epochs."""
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    from ft_helpers import RunConfig, build_ir_inputs
    from ft_helpers.workflow import build_evaluator

    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=2,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        eval_strategy="epoch",
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        seed=0,
        report_to="none",
        disable_tqdm=disable_tqdm,
    )
    evaluator = build_evaluator(build_ir_inputs(pairs.iloc[16:26], pairs), "validation", RunConfig(eval_batch_size=16))
    return SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=build_pair_dataset(pairs.iloc[:16]),
        eval_dataset=build_pair_dataset(pairs.iloc[16:26]),
        loss=MultipleNegativesRankingLoss(model),
        evaluator=evaluator,
    )


def callback_types(trainer) -> list[str]:
    return [type(callback).__name__ for callback in trainer.callback_handler.callbacks]


@pytest.mark.parametrize("disable_tqdm", [False, True], ids=["progress bar", "printer"])
def test_compact_progress_replaces_transformers_progress_callbacks(tiny_model, fixture_pairs, tmp_path, disable_tqdm):
    from transformers.utils.notebook import NotebookProgressCallback

    trainer = tiny_trainer(tiny_model, fixture_pairs, tmp_path, disable_tqdm=disable_tqdm)
    trainer.add_callback(NotebookProgressCallback)  # as in a notebook
    before = callback_types(trainer)
    assert "NotebookProgressCallback" in before
    assert ("PrinterCallback" if disable_tqdm else "ProgressCallback") in before

    show_compact_progress(trainer)
    after = callback_types(trainer)
    assert not {"ProgressCallback", "NotebookProgressCallback", "PrinterCallback"} & set(after)
    assert after.count("CompactProgress") == 1
    (compact,) = [
        callback for callback in trainer.callback_handler.callbacks if type(callback).__name__ == "CompactProgress"
    ]
    assert compact.metric == METRIC
    # the other callbacks (the ones that make the trainer evaluate, log and save) stay
    assert [name for name in before if "Progress" not in name and name != "PrinterCallback"] == after[:-1]


def test_compact_progress_prints_a_header_and_one_row_per_epoch(tiny_model, fixture_pairs, tmp_path, capsys):
    trainer = tiny_trainer(tiny_model, fixture_pairs, tmp_path)
    show_compact_progress(trainer)
    capsys.readouterr()
    trainer.train()
    out = capsys.readouterr().out
    lines = [line.strip() for line in re.split(r"[\r\n]", out) if line.strip()]

    headers = [line for line in lines if line.startswith("epoch")]
    assert len(headers) == 1
    assert headers[0].split() == ["epoch", "training", "loss", "validation", "loss", "validation", "ndcg@10"]
    number = r"(-?\d+\.\d{4}|nan)"
    rows = [
        match.groups() for line in lines if (match := re.fullmatch(rf"(\d+)\s+{number}\s+{number}\s+{number}", line))
    ]

    history = trainer.state.log_history
    evaluations = [entry for entry in history if METRIC in entry]
    assert len(evaluations) == 2 and len(rows) == 2, out
    previous_step = 0
    for row, entry in zip(rows, evaluations, strict=True):
        losses = [log["loss"] for log in history if "loss" in log and previous_step < log["step"] <= entry["step"]]
        assert len(losses) == 2  # two steps an epoch, each logged
        assert row == (
            f"{entry['epoch']:.0f}",
            f"{sum(losses) / len(losses):.4f}",
            f"{entry['eval_loss']:.4f}",
            f"{entry[METRIC]:.4f}",
        )
        previous_step = entry["step"]
    assert [row[0] for row in rows] == ["1", "2"]
    # one progress bar over all 4 steps, and none of transformers' dict lines
    assert "training steps" in out and "4/4" in out
    assert "{'loss'" not in out and "'eval_loss'" not in out
