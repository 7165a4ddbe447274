"""ft_helpers.workflow on the hand-written fixture with a tiny model: run, results.json, train, evaluate_models."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURE_DATA, ROOT, fixture_config

from ft_helpers import RECIPES, RunConfig, build_ir_inputs, collect_environment, read_validation_curve, workflow
from ft_helpers.report import CARD_END, CARD_START, describe_run, save_results
from ft_helpers.training import detect_hardware
from ft_helpers.workflow import VALIDATION_METRIC, build_evaluator, evaluate_models, load_and_split, run

#: The sections of a run's results.json.
SECTIONS = {
    "settings",
    "baseline",
    "finetuned",
    "comparison",
    "dimensions",
    "compression",
    "split",
    "evaluation",
    "training",
    "provenance",
}


def quiet(line: str) -> None:
    """A log that drops every line."""


def model_weights(folder: str | Path) -> dict:
    from safetensors.torch import load_file

    return load_file(Path(folder) / "model.safetensors")


def largest_change(before: dict, after: dict) -> float:
    assert before.keys() == after.keys()
    return max(float((before[name] - after[name]).abs().max()) for name in before)


# --------------------------------------------------------------------------------------------------
# Packaging metadata
# --------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------
# One finished run (2 epochs of the reference recipe, grouped by company), watched as it goes
# --------------------------------------------------------------------------------------------------
@dataclass
class Finished:
    config: RunConfig
    output: Path
    results: dict[str, Any]
    saved: dict[str, Any]
    trainer: Any
    messages: list[str]
    events: list[tuple]
    head_before: str


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: str) -> Finished:
    folder = tmp_path_factory.mktemp("finished")
    # the learning rate and training seed are left to the recipe and the seed: settings fills them in
    config = fixture_config(folder, tiny_model_dir, epochs=2, group_column="company")
    output = Path(config.output_dir)
    events: list[tuple] = []
    trainers: list[Any] = []
    messages: list[str] = []
    original_train, original_save, original_rmtree = workflow.train, workflow.save_results, shutil.rmtree

    def watched_train(*args: Any, **kwargs: Any) -> Any:
        trainers.append(original_train(*args, **kwargs))
        return trainers[-1]

    def watched_save(path: Path, **sections: Any) -> Path:
        events.append(("save_results", Path(path).name, (output / "checkpoints").is_dir()))
        return original_save(path, **sections)

    def watched_rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path) == output / "checkpoints":
            results = output / "results.json"
            whole = json.loads(results.read_text()) if results.is_file() else None
            events.append(("rmtree", Path(path).is_dir(), whole))
        return original_rmtree(path, *args, **kwargs)

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(workflow, "train", watched_train)
        patch.setattr(workflow, "save_results", watched_save)
        patch.setattr(workflow.shutil, "rmtree", watched_rmtree)
        results = run(config, command="pytest finished run", log=messages.append)
    saved = json.loads((output / "results.json").read_text())
    return Finished(config, output, results, saved, trainers[0], messages, events, head)


def test_results_json_is_what_run_returns_with_every_section(finished: Finished, tmp_path: Path):
    assert set(finished.saved) == SECTIONS
    again = save_results(tmp_path / "again.json", **finished.results)
    assert finished.saved == json.loads(again.read_text())
    assert finished.saved["baseline"]["test_cosine_ndcg@10"] == pytest.approx(
        finished.results["baseline"]["test_cosine_ndcg@10"]
    )


def test_results_json_holds_each_setting_once_with_the_recipes_values_filled_in(finished: Finished):
    settings = finished.saved["settings"]
    config = finished.config
    recipe = config.training_recipe(detect_hardware().device)
    assert settings == json.loads(json.dumps(config.settings(recipe)))
    assert set(settings) == {item.name for item in fields(RunConfig)} | {"mini_batch_size", "matryoshka_dims", "loss"}
    assert settings["recipe"] == "reference" and settings["loss"] == "MultipleNegativesRankingLoss"
    assert (settings["epochs"], settings["train_batch_size"]) == (2, 8), "the run's own values"
    assert config.learning_rate is None and settings["learning_rate"] == RECIPES["reference"].learning_rate
    assert config.training_seed is None and settings["training_seed"] == config.seed
    assert settings["sort_by_length"] is True and settings["group_column"] == "company"
    assert settings["dataset"] == str(FIXTURE_DATA)

    # no other section repeats a setting (no "parameters" beside a "recipe" as before)
    def keys(value: Any) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {key for item in value.values() for key in keys(item)}
        if isinstance(value, list):
            return {key for item in value for key in keys(item)}
        return set()

    elsewhere = set().union(*(keys(value) for name, value in finished.saved.items() if name != "settings"))
    assert not elsewhere & {"parameters", "recipe", "learning_rate", "train_batch_size", "epochs", "base_model"}


def test_results_json_records_how_the_run_was_made(finished: Finished):
    provenance = finished.saved["provenance"]
    assert set(provenance) == {"command", "code", "data", "packages", "hardware"}
    assert provenance["command"] == "pytest finished run"
    assert provenance["data"] == {
        "dataset": {"file": FIXTURE_DATA.name, "sha256": hashlib.sha256(FIXTURE_DATA.read_bytes()).hexdigest()}
    }
    assert provenance["packages"] == collect_environment()
    assert provenance["hardware"].items() >= detect_hardware().as_dict().items()
    assert {"processor", "cores", "system"} <= set(provenance["hardware"])
    commit = provenance["code"]["commit"]
    assert re.fullmatch(r"[0-9a-f]{40}", commit) and isinstance(provenance["code"]["dirty"], bool)
    # others may commit while the tests run: the recorded commit is the HEAD of then, or an ancestor of HEAD now
    is_ancestor = subprocess.run(["git", "merge-base", "--is-ancestor", commit, "HEAD"], cwd=ROOT, check=False)
    assert commit == finished.head_before or is_ancestor.returncode == 0


def test_training_records_the_best_epochs_step(finished: Finished):
    training = finished.saved["training"]
    state = finished.trainer.state
    rows = finished.saved["split"]["sizes"]["train"]
    per_epoch = math.ceil(rows / 8)
    assert training["rows"] == rows == len(finished.trainer.train_dataset)
    assert training["steps"] == state.global_step == 2 * per_epoch
    curve = training["validation_by_epoch"]
    assert curve == read_validation_curve(state.log_history, VALIDATION_METRIC)
    assert [epoch for epoch, _ in curve] == [1.0, 2.0]
    scores = [score for _, score in curve]
    best_epoch = scores.index(max(scores)) + 1  # the first of equal scores: a later one must do better to count
    assert training["best_step"] == state.best_global_step == best_epoch * per_epoch
    assert training["best_validation_ndcg@10"] == pytest.approx(max(scores)) == state.best_metric
    (logged,) = [
        entry for entry in state.log_history if VALIDATION_METRIC in entry and entry["step"] == best_epoch * per_epoch
    ]
    assert logged[VALIDATION_METRIC] == pytest.approx(training["best_validation_ndcg@10"])
    assert training["seconds"] > 0 and training["resumed_from"] is None
    assert any(line.startswith("training took ") and f"{state.best_metric:.4f}" in line for line in finished.messages)


def test_checkpoints_are_deleted_only_once_results_json_is_whole(finished: Finished):
    assert [event[0] for event in finished.events] == ["save_results", "rmtree"]
    assert finished.events[0][1:] == ("results.json", True), "results.json is written while the checkpoints exist"
    _, existed, whole = finished.events[1]
    assert existed and whole == finished.saved, "when the checkpoints go, results.json is already whole"
    assert not (finished.output / "checkpoints").exists()
    newest = max(path.stat().st_mtime_ns for path in finished.output.rglob("*") if path.is_file())
    assert (finished.output / "results.json").stat().st_mtime_ns == newest, "results.json is the last file written"


def test_the_run_writes_its_model_scores_and_plots(finished: Finished, tiny_model_dir: str):
    output = finished.output
    for name in ("model/modules.json", "model/README.md", "comparison.png", "training.png", "dimensions.png"):
        assert (output / name).is_file(), name
    for model in ("baseline", "finetuned"):
        assert (output / "eval" / model / "per_query.csv").is_file()
        assert (output / "eval" / model / "Information-Retrieval_evaluation_test_predictions_cosine.jsonl").is_file()
    # the saved model is trained: its weights moved away from the base model's (untrained: exactly 0)
    assert largest_change(model_weights(tiny_model_dir), model_weights(output / "model")) > 1e-6
    baseline = finished.saved["baseline"]["test_cosine_ndcg@10"]
    assert f"baseline test NDCG@10: {baseline:.4f}" in finished.messages


def test_split_evaluation_and_dimensions_sections(finished: Finished):
    saved = finished.saved
    pairs, splits = load_and_split(finished.config)
    sizes = saved["split"]["sizes"]
    assert sizes == {name: len(frame) for name, frame in splits.items()}
    assert sum(sizes.values()) == len(pairs) == 50 and min(sizes.values()) > 0
    assert saved["split"]["rows"] == {name: sorted(frame.index) for name, frame in splits.items()}
    assert all(value == 0 for pair in saved["split"]["leakage"].values() for value in pair.values())
    assert "shared_company" in saved["split"]["leakage"]["train & test"]
    test_inputs = build_ir_inputs(splits["test"], pairs)
    assert saved["evaluation"]["test"] == test_inputs.summary()
    assert saved["evaluation"]["validation"] == build_ir_inputs(splits["validation"], pairs).summary()
    # two fixture contexts are shared by two questions each, so the corpus has 48 documents
    assert saved["evaluation"]["test"]["documents"] == 48
    # the tiny model embeds in 32 numbers: scored at its full size only, and that score is the test score
    assert list(saved["dimensions"]) == ["baseline", "fine-tuned"]
    assert all(list(table) == ["32"] for table in saved["dimensions"].values())
    for label, key in (("baseline", "baseline"), ("fine-tuned", "finetuned")):
        assert saved["dimensions"][label]["32"]["ndcg@10"] == pytest.approx(saved[key]["test_cosine_ndcg@10"])
    # the same sizes in FAISS indexes: exact float32 search gives the evaluator's score; int8 and binary take less
    for label, key in (("baseline", "baseline"), ("fine-tuned", "finetuned")):
        rows = {(row["dimensions"], row["precision"]): row for row in saved["compression"][label]}
        assert list(rows) == [(32, "float32"), (32, "int8"), (32, "binary")]
        assert rows[32, "float32"]["ndcg@10"] == pytest.approx(saved[key]["test_cosine_ndcg@10"], abs=1e-6)
        assert [row["bytes_per_passage"] for row in rows.values()] == [128, 32, 4]
    assert [row["metric"] for row in saved["comparison"]][:2] == ["ndcg@10", "mrr@10"]
    ndcg = saved["comparison"][0]
    assert ndcg["baseline"] == pytest.approx(saved["baseline"]["test_cosine_ndcg@10"])
    assert ndcg["finetuned"] == pytest.approx(saved["finetuned"]["test_cosine_ndcg@10"])


def test_the_model_card_holds_the_test_scores_and_our_section_once(finished: Finished):
    card = (finished.output / "model" / "README.md").read_text(encoding="utf-8")
    test_ndcg = finished.saved["finetuned"]["test_cosine_ndcg@10"]
    # sentence-transformers' own part: the model was saved after its test evaluation, which it recorded
    assert "test_cosine_ndcg@10" in card
    assert f"value: {test_ndcg}" in card.split("---")[1], "the test score in the card's metadata"
    # our part: once, with how the model was made and the comparison, and no local paths
    assert card.count(CARD_START) == card.count(CARD_END) == 1
    section = card.split(CARD_START)[1].split(CARD_END)[0]
    assert "## Retrieval on held-out test questions" in section
    pairs, splits = load_and_split(finished.config)
    recipe = finished.config.training_recipe(detect_hardware().device)
    for label, line in describe_run(finished.config, recipe, splits, build_ir_inputs(splits["test"], pairs)).items():
        assert f"- **{label}:** {line}" in section
    baseline = finished.saved["baseline"]["test_cosine_ndcg@10"]
    assert f"| ndcg@10 | {baseline:.4f} | {test_ndcg:.4f} | {test_ndcg - baseline:+.4f} |" in section
    assert str(finished.output.parent) not in section


# --------------------------------------------------------------------------------------------------
# evaluate_models: the same split as a run with the same config; one or two models; test or validation
# --------------------------------------------------------------------------------------------------
def test_evaluate_models_scores_the_base_and_the_fine_tuned_model_as_the_run_did(
    finished: Finished, tiny_model_dir: str, tmp_path: Path
):
    config = fixture_config(tmp_path, tiny_model_dir, group_column="company")
    lines: list[str] = []
    two = evaluate_models(
        [tiny_model_dir, str(finished.output / "model")], config, command="pytest", log=lines.append, compression=True
    )
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(saved) == {
        "settings",
        "models",
        "backends",
        "metrics",
        "comparison",
        "compression",
        "split",
        "evaluation",
        "provenance",
    }
    assert saved["backends"] == ["torch", "torch"]
    assert saved["models"] == [tiny_model_dir, str(finished.output / "model")]
    # the same test questions and corpus as the run: the same scores, before and after fine-tuning
    assert two["metrics"][0] == pytest.approx(finished.saved["baseline"], abs=1e-6)
    assert two["metrics"][1] == pytest.approx(finished.saved["finetuned"], abs=1e-6)
    assert [row["delta"] for row in saved["comparison"]] == pytest.approx(
        [row["delta"] for row in finished.saved["comparison"]], abs=1e-6
    )
    # the compressed-embedding tables too, with the same int8 calibration passages
    for ours, runs in zip(saved["compression"], ("baseline", "fine-tuned"), strict=True):
        expected = finished.saved["compression"][runs]
        assert [(row["dimensions"], row["precision"], row["bytes_per_passage"]) for row in ours] == [
            (row["dimensions"], row["precision"], row["bytes_per_passage"]) for row in expected
        ]
        assert [row["ndcg@10"] for row in ours] == pytest.approx([row["ndcg@10"] for row in expected], abs=1e-6)
    assert saved["settings"] == {name: getattr(config, name) for name in workflow.EVALUATE_PARAMETERS} | {
        "subset": "test"
    }
    assert saved["provenance"]["command"] == "pytest"
    assert saved["split"]["sizes"] == finished.saved["split"]["sizes"]
    assert (tmp_path / "run" / "comparison.png").is_file()
    for index in (1, 2):
        assert (tmp_path / "run" / "eval" / f"model_{index}" / "per_query.csv").is_file()
    assert f"model 1 ({tiny_model_dir}): test NDCG@10 {two['metrics'][0]['test_cosine_ndcg@10']:.4f}" in lines


def test_evaluate_models_one_model_on_the_validation_split(tiny_model: Any, tiny_model_dir: str, tmp_path: Path):
    from ft_helpers import evaluate_retrieval

    config = fixture_config(tmp_path, tiny_model_dir)
    one = evaluate_models([tiny_model_dir], config, subset="validation", log=quiet)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "comparison" not in saved and "compression" not in saved and len(saved["metrics"]) == 1
    assert saved["settings"]["subset"] == "validation"
    assert all(key.startswith("validation_cosine_") for key in saved["metrics"][0])
    pairs, splits = load_and_split(config)
    inputs = build_ir_inputs(splits["validation"], pairs)
    assert saved["evaluation"]["validation"] == inputs.summary() and "test" not in saved["evaluation"]
    assert inputs.queries.keys().isdisjoint(build_ir_inputs(splits["test"], pairs).queries)
    # the same scores as sentence-transformers' evaluator on the validation questions
    expected = evaluate_retrieval(tiny_model, build_evaluator(inputs, "validation", config), tmp_path / "check")
    assert one["metrics"][0] == pytest.approx(expected.metrics, abs=1e-6)
    per_query = (tmp_path / "run" / "eval" / "model_1" / "per_query.csv").read_text().splitlines()
    assert len(per_query) == 1 + len(inputs.queries)


@pytest.mark.parametrize(
    ("models", "subset", "message"),
    [
        (3, "test", "Give one model to score or two to compare, got 3."),
        (0, "test", "Give one model to score or two to compare, got 0."),
        (1, "train", "subset must be one of test, validation, got 'train'."),
    ],
)
def test_evaluate_models_refuses_before_loading_or_writing(
    tmp_path: Path, tiny_model_dir: str, no_model_loading: None, models: int, subset: str, message: str
):
    with pytest.raises(ValueError) as info:
        evaluate_models([tiny_model_dir] * models, fixture_config(tmp_path, tiny_model_dir), subset=subset, log=quiet)
    assert str(info.value) == message
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------------------------
# Checkpoints kept: the best epoch's, which is the saved model; resuming from it ends with the same model
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: str) -> tuple[RunConfig, dict[str, Any]]:
    config = fixture_config(tmp_path_factory.mktemp("kept"), tiny_model_dir, epochs=2)
    return config, run(config, log=quiet, keep_checkpoints=True)


def test_the_kept_checkpoint_is_the_best_epochs_and_the_saved_model(kept: tuple[RunConfig, dict[str, Any]]):
    config, results = kept
    output = Path(config.output_dir)
    best = f"checkpoint-{results['training']['best_step']}"
    # save_total_limit=1 with load_best_model_at_end: at the end of training the trainer keeps the best one only
    assert [path.name for path in (output / "checkpoints").glob("checkpoint-*")] == [best]
    assert largest_change(model_weights(output / "checkpoints" / best), model_weights(output / "model")) == 0.0
    assert (output / "results.json").is_file()


def test_resuming_from_the_kept_checkpoint_ends_with_the_same_model(
    kept: tuple[RunConfig, dict[str, Any]], tmp_path: Path
):
    config, first = kept
    copy = tmp_path / "copy"
    shutil.copytree(config.output_dir, copy)
    resumed = run(RunConfig(**{**config.__dict__, "output_dir": str(copy)}), log=quiet, resume=True)
    checkpoint = f"checkpoint-{first['training']['best_step']}"
    assert resumed["training"]["resumed_from"] == checkpoint
    assert json.loads((copy / "results.json").read_text())["training"]["resumed_from"] == checkpoint
    for key in ("steps", "best_step", "best_validation_ndcg@10"):
        assert resumed["training"][key] == pytest.approx(first["training"][key], abs=1e-6), key
    assert resumed["finetuned"] == pytest.approx(first["finetuned"], abs=1e-6)
    assert largest_change(model_weights(Path(config.output_dir) / "model"), model_weights(copy / "model")) < 1e-6
    assert not (copy / "checkpoints").exists()


# --------------------------------------------------------------------------------------------------
# train(): the loss follows the recipe and SORT_BY_LENGTH; the arguments follow the recipe and config
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe_name", ["reference", "improved"])
@pytest.mark.parametrize("sort_by_length", [True, False])
def test_train_builds_the_loss_and_arguments_from_the_recipe(
    tmp_path: Path,
    tiny_model_dir: str,
    fixture_pairs: Any,
    monkeypatch: pytest.MonkeyPatch,
    recipe_name,
    sort_by_length,
):
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )

    from ft_helpers.losses import SortedCachedMultipleNegativesRankingLoss, SortedMultipleNegativesRankingLoss
    from ft_helpers.training import build_pair_dataset

    monkeypatch.setattr(SentenceTransformerTrainer, "train", lambda self, **options: None)  # build only
    config = fixture_config(
        tmp_path,
        tiny_model_dir,
        recipe=recipe_name,
        sort_by_length=sort_by_length,
        train_batch_size=16,
        training_seed=5,
    )
    recipe = config.training_recipe("cpu")
    hardware = detect_hardware()
    evaluator = build_evaluator(build_ir_inputs(fixture_pairs.iloc[40:], fixture_pairs), "validation", config)
    trainer = workflow.train(
        config,
        recipe,
        hardware,
        build_pair_dataset(fixture_pairs.iloc[:40]),
        build_pair_dataset(fixture_pairs.iloc[40:]),
        evaluator,
    )
    loss = trainer.loss
    if recipe_name == "improved":  # cached, in Matryoshka at the sizes the 32-number model has
        assert type(loss) is MatryoshkaLoss and list(loss.matryoshka_dims) == [32]
        inner = loss.loss
        assert type(inner) is (
            SortedCachedMultipleNegativesRankingLoss if sort_by_length else CachedMultipleNegativesRankingLoss
        )
        assert inner.mini_batch_size == recipe.mini_batch_size == 32
    else:
        assert type(loss) is (SortedMultipleNegativesRankingLoss if sort_by_length else MultipleNegativesRankingLoss)
    args = trainer.args
    assert (args.num_train_epochs, args.per_device_train_batch_size, args.learning_rate) == (
        recipe.epochs,
        16,
        recipe.learning_rate,
    )
    assert args.per_device_eval_batch_size == config.eval_batch_size and args.seed == 5
    assert args.output_dir == f"{config.output_dir}/checkpoints"
    assert args.metric_for_best_model == VALIDATION_METRIC and args.load_best_model_at_end
    assert (args.eval_strategy, args.save_strategy, args.save_total_limit) == ("epoch", "epoch", 1)
    assert args.lr_scheduler_type == "cosine" and args.warmup_steps == 0.1
    assert trainer.evaluator is evaluator
    names = [type(callback).__name__ for callback in trainer.callback_handler.callbacks]
    assert "CompactProgress" in names and "ProgressCallback" not in names and "PrinterCallback" not in names


def test_run_trains_the_improved_recipe_with_the_cached_matryoshka_loss(tmp_path: Path, tiny_model_dir: str):
    # the recipe's own batch (256) is larger than the fixture: the batch given here replaces it, the rest stays
    config = fixture_config(tmp_path, tiny_model_dir, recipe="improved", train_batch_size=16)
    results = run(config, log=quiet)
    settings = results["settings"]
    assert settings["loss"] == "MatryoshkaLoss(CachedMultipleNegativesRankingLoss)"
    assert (settings["mini_batch_size"], settings["matryoshka_dims"]) == (32, [384, 256, 128, 64])
    assert (settings["recipe"], settings["learning_rate"], settings["train_batch_size"]) == ("improved", 1e-4, 16)
    assert results["training"]["steps"] == math.ceil(results["training"]["rows"] / 16)
    assert largest_change(model_weights(tiny_model_dir), model_weights(tmp_path / "run" / "model")) > 1e-6
    card = (tmp_path / "run" / "model" / "README.md").read_text(encoding="utf-8")
    assert "MatryoshkaLoss" in card and "CachedMultipleNegativesRankingLoss" in card
    assert RECIPES["improved"].describe().split(", batch")[0] in card.split(CARD_START)[1]
