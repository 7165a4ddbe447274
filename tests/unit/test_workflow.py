"""The pipeline on the hand-written fixture with a tiny model, RunConfig, and packaging metadata."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT, fixture_config, minilm_path

from ft_helpers import QADataError, RunConfig
from ft_helpers.pipeline import read_validation_curve, run_pipeline


def test_run_config_from_notebook_parameters():
    names = RunConfig.notebook_names()
    namespace = {upper: getattr(RunConfig(), field) for field, upper in names.items()} | {"EPOCHS": 2, "other": 1}
    assert RunConfig.from_parameters(namespace) == RunConfig(epochs=2)
    del namespace["SEED"]
    with pytest.raises(ValueError, match="Parameter\\(s\\) SEED not set: run the parameters cell first"):
        RunConfig.from_parameters(namespace)


def test_requirements_match_the_package_dependencies():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    listed = [
        line.strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(listed) == sorted(declared)
    assert not any(line.split(">")[0].split("=")[0].strip() == "torch" for line in listed), "never pin torch"


def test_license_file_matches_the_declared_license():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    head = " ".join((ROOT / "LICENSE").read_text(encoding="utf-8").split()[:4])
    assert head == "Apache License Version 2.0,"


def test_pipeline_on_the_fixture_with_a_tiny_model(tmp_path: Path, tiny_model_dir: str):
    from safetensors.torch import load_file

    messages: list[str] = []
    results = run_pipeline(fixture_config(tmp_path, tiny_model_dir, group_column="company"), log=messages.append)

    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["baseline"] == pytest.approx(results["baseline"])
    config = fixture_config(tmp_path, tiny_model_dir, group_column="company")
    assert saved["run"]["parameters"] == config.resolved().as_dict()
    assert saved["run"]["recipe"] == config.training_recipe().as_dict()
    assert set(saved) == {"baseline", "finetuned", "comparison", "dimensions", "split", "evaluation", "run"}
    # the tiny model embeds in 32 numbers: scored at its full size only, and that score is the test score
    assert list(saved["dimensions"]) == ["baseline", "fine-tuned"]
    assert saved["dimensions"]["fine-tuned"]["32"]["ndcg@10"] == pytest.approx(
        saved["finetuned"]["test_cosine_ndcg@10"]
    )
    sizes = saved["split"]["sizes"]
    assert sum(sizes.values()) == 50 and min(sizes.values()) > 0
    assert all(value == 0 for pair in saved["split"]["leakage"].values() for value in pair.values())
    assert "shared_company" in saved["split"]["leakage"]["train & test"]
    # two fixture contexts are shared by two questions each, so the corpus has 48 documents
    assert saved["evaluation"]["test"]["documents"] == 48
    assert saved["run"]["training_rows"] == sizes["train"]
    assert saved["run"]["training_steps"] == -(-sizes["train"] // 8)
    # one validation per epoch, and the best of them is the checkpoint kept
    curve = saved["run"]["validation_by_epoch"]
    assert [epoch for epoch, _ in curve] == pytest.approx([1.0])
    assert max(score for _, score in curve) == pytest.approx(saved["run"]["best_checkpoint_metric"])
    assert any(message.startswith("baseline test NDCG@10") for message in messages)
    assert (tmp_path / "run" / "model" / "modules.json").is_file()
    assert (tmp_path / "run" / "eval" / "finetuned" / "per_query.csv").is_file()
    assert saved["run"]["resumed_from"] is None
    assert saved["run"]["loss"] == "MultipleNegativesRankingLoss"
    # the saved model is trained: its weights moved away from the base model's
    base, tuned = (
        load_file(Path(folder) / "model.safetensors") for folder in (tiny_model_dir, tmp_path / "run" / "model")
    )
    assert max(float((base[name] - tuned[name]).abs().max()) for name in base) > 1e-6  # untrained: exactly 0


def test_pipeline_trains_the_improved_recipe_with_the_cached_matryoshka_loss(tmp_path: Path, tiny_model_dir: str):
    from safetensors.torch import load_file

    # the recipe's own batch (256) is larger than the fixture: the batch given here replaces it, the rest stays
    config = fixture_config(tmp_path, tiny_model_dir, recipe="improved", train_batch_size=16)
    results = run_pipeline(config, log=lambda message: None)
    recipe = results["run"]["recipe"]
    assert recipe["loss"] == "CachedMultipleNegativesRankingLoss" and recipe["mini_batch_size"] == 32
    assert results["run"]["loss"] == "MatryoshkaLoss(SortedCachedMultipleNegativesRankingLoss)"
    assert recipe["matryoshka_dims"] == [384, 256, 128, 64]  # the recipe's sizes; the 32-number model trains at 32
    parameters = results["run"]["parameters"]
    assert (parameters["recipe"], parameters["learning_rate"], parameters["train_batch_size"]) == ("improved", 1e-4, 16)
    assert results["run"]["training_steps"] == -(-results["run"]["training_rows"] // 16)
    base, tuned = (
        load_file(Path(folder) / "model.safetensors") for folder in (tiny_model_dir, tmp_path / "run" / "model")
    )
    assert max(float((base[name] - tuned[name]).abs().max()) for name in base) > 1e-6
    card = (tmp_path / "run" / "model" / "README.md").read_text(encoding="utf-8")
    assert "MatryoshkaLoss (384, 256, 128, 64 dimensions) over CachedMultipleNegativesRankingLoss" in card


def test_pipeline_trains_the_symmetric_cached_loss_under_matryoshka(tmp_path: Path, tiny_model_dir: str):
    import dataclasses

    from ft_helpers import RECIPES

    variant = dataclasses.replace(
        RECIPES["improved"],
        loss="CachedMultipleNegativesSymmetricRankingLoss",
        epochs=1,
        train_batch_size=8,
        mini_batch_size=4,
    )
    results = run_pipeline(fixture_config(tmp_path, tiny_model_dir), log=lambda message: None, recipe=variant)
    assert results["run"]["recipe"] == variant.as_dict()
    assert results["run"]["training_steps"] == -(-results["run"]["training_rows"] // 8)
    card = (tmp_path / "run" / "model" / "README.md").read_text(encoding="utf-8")
    assert "over CachedMultipleNegativesSymmetricRankingLoss" in card


def test_pipeline_trains_a_benchmark_variant_with_hard_negatives_and_records_it(tmp_path: Path):
    import dataclasses

    from ft_helpers import RECIPES

    variant = dataclasses.replace(
        RECIPES["reference"],
        epochs=1,
        train_batch_size=8,
        directions=("query_to_doc", "doc_to_query"),
        hard_negatives=1,
    )
    messages: list[str] = []
    # MiniLM, not the tiny random model, ranks the passages: mining needs candidates that score below the positive
    config = fixture_config(tmp_path, minilm_path(), epochs=3)
    results = run_pipeline(config, log=messages.append, recipe=variant)
    assert results["run"]["recipe"] == variant.as_dict()
    assert results["run"]["parameters"]["epochs"] == 1, "the variant's settings replace the config's"
    (line,) = [message for message in messages if message.startswith("hard negatives: 1 per pair")]
    assert f"for {results['run']['training_rows']:,} of" in line
    card = (tmp_path / "run" / "model" / "README.md").read_text(encoding="utf-8")
    assert "(directions query_to_doc, doc_to_query) with 1 mined hard negative(s) per pair" in card


def test_pipeline_fails_early_on_a_batch_larger_than_the_training_split(tmp_path: Path, tiny_model_dir: str):
    with pytest.raises(ValueError, match="TRAIN_BATCH_SIZE to at most"):
        run_pipeline(fixture_config(tmp_path, tiny_model_dir, train_batch_size=500), log=lambda message: None)
    assert not (tmp_path / "run" / "checkpoints").exists(), "no training started"


def test_pipeline_names_the_missing_column(tmp_path: Path, tiny_model_dir: str):
    with pytest.raises(QADataError, match="Available columns: question, context, company"):
        run_pipeline(fixture_config(tmp_path, tiny_model_dir, context_column="passage"), log=lambda message: None)


def test_pipeline_resumes_from_a_checkpoint_instead_of_training_again(tmp_path: Path, tiny_model_dir: str):
    from safetensors.torch import load_file

    first = run_pipeline(fixture_config(tmp_path / "first", tiny_model_dir), log=lambda message: None)
    checkpoint = tmp_path / "first" / "run" / "checkpoints" / f"checkpoint-{first['run']['training_steps']}"
    assert checkpoint.is_dir()

    # Another seed (another split, other batches) would train other weights from scratch; resuming a
    # finished run trains nothing and ends with the checkpoint's (best) weights.
    resumed = run_pipeline(
        fixture_config(tmp_path / "resumed", tiny_model_dir, seed=7),
        log=lambda message: None,
        resume_from_checkpoint=str(checkpoint),
    )
    assert resumed["run"]["resumed_from"] == str(checkpoint)
    assert resumed["run"]["training_steps"] == first["run"]["training_steps"]
    weights = [load_file(Path(run["run"]["model_dir"]) / "model.safetensors") for run in (first, resumed)]
    assert weights[0].keys() == weights[1].keys()
    assert all((weights[0][name] == weights[1][name]).all() for name in weights[0])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "EPOCHS must be a whole number >= 1 or None, got 0."),
        ({"epochs": -1}, "EPOCHS must be a whole number >= 1 or None, got -1."),
        ({"epochs": 1.5}, "EPOCHS must be a whole number >= 1 or None, got 1.5."),
        ({"train_batch_size": 1}, "TRAIN_BATCH_SIZE must be a whole number >= 2 or None, got 1."),
        ({"learning_rate": -1.0}, "LEARNING_RATE must be a number between 0 and 1 (e.g. 2e-5) or None, got -1.0."),
        ({"learning_rate": 0}, "LEARNING_RATE must be a number between 0 and 1 (e.g. 2e-5) or None, got 0."),
        ({"max_train_samples": 0}, "MAX_TRAIN_SAMPLES must be a whole number >= 2 or None, got 0."),
        ({"seed": -3}, "SEED must be a whole number >= 0, got -3."),
        ({"eval_batch_size": 0}, "EVAL_BATCH_SIZE must be a whole number >= 1, got 0."),
        ({"bootstrap_resamples": 0}, "BOOTSTRAP_RESAMPLES must be a whole number >= 100, got 0."),
        ({"split": "random"}, "SPLIT must be one of 'grouped', 'reference', got 'random'."),
        ({"group_column": "ticker", "split": "reference"}, "GROUP_COLUMN only applies to SPLIT = 'grouped'"),
        ({"group_column": ""}, "GROUP_COLUMN must be a column name or None, got ''."),
        ({"dataset": " "}, "DATASET must be a non-empty text, got ' '."),
        ({"context_column": "question"}, "QUESTION_COLUMN and CONTEXT_COLUMN must differ (both are 'question')."),
        ({"deduplicate_corpus": "yes"}, "DEDUPLICATE_CORPUS must be True or False, got 'yes'."),
        ({"recipe": "large"}, "RECIPE must be one of 'reference', 'improved', 'quick', got 'large'."),
    ],
)
def test_run_config_validate_names_the_parameter_and_its_range(changes: dict, message: str):
    with pytest.raises(ValueError) as info:
        RunConfig(**changes).validate()
    assert str(info.value).startswith(message)


def test_run_config_defaults_and_edges_are_valid():
    RunConfig().validate()
    RunConfig(epochs=1, train_batch_size=2, max_train_samples=2, seed=0, bootstrap_resamples=100).validate()
    RunConfig(learning_rate=0.5, group_column="ticker").validate()


def test_the_validation_curve_lists_each_evaluation_in_order():
    history = [
        {"loss": 1.2, "epoch": 0.5, "step": 5},
        {"eval_validation_cosine_ndcg@10": 0.61, "eval_loss": 0.9, "epoch": 1.0, "step": 10},
        {"loss": 0.8, "epoch": 1.5, "step": 15},
        {"eval_validation_cosine_ndcg@10": 0.58, "epoch": 2.0, "step": 20},
        {"train_runtime": 3.0, "epoch": 2.0, "step": 20},
    ]
    assert read_validation_curve(history) == [[1.0, 0.61], [2.0, 0.58]]
    assert read_validation_curve(history[:1]) == []
