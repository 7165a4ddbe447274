"""ft_helpers.config: the recipes, RunConfig's fields, their help and choices, the recipe a run trains with."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import fields

import pytest

from ft_helpers import RECIPES, Recipe, RunConfig
from ft_helpers.config import AUTO_RECIPES, RECIPE_SETTINGS
from ft_helpers.split import SPLIT_STRATEGIES


# --------------------------------------------------------------------------------------------------
# Recipe: the loss follows from mini_batch_size and matryoshka_dims; describe() says it in one line
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "loss", "text"),
    [
        (
            "reference",
            "MultipleNegativesRankingLoss",
            "MultipleNegativesRankingLoss, batch 32, learning rate 2e-05, 6 epochs",
        ),
        (
            "improved",
            "MatryoshkaLoss(CachedMultipleNegativesRankingLoss)",
            "CachedMultipleNegativesRankingLoss (mini-batches of 32) in MatryoshkaLoss (384/256/128/64), batch 256, "
            "learning rate 0.0001, 10 epochs",
        ),
        (
            "quick",
            "MultipleNegativesRankingLoss",
            "MultipleNegativesRankingLoss, batch 128, learning rate 0.0002, 1 epoch",
        ),
    ],
)
def test_each_recipe_names_its_loss_and_describes_itself(name: str, loss: str, text: str):
    recipe = RECIPES[name]
    assert recipe.name == name
    assert recipe.loss_name == loss
    assert recipe.describe() == text


def test_the_recipes_are_reference_improved_quick_and_auto_picks_two_of_them():
    assert list(RECIPES) == ["reference", "improved", "quick"]
    assert set(AUTO_RECIPES.values()) <= set(RECIPES)
    assert not any(hasattr(RECIPES["reference"], name) for name in ("loss", "directions", "hard_negatives"))


@pytest.mark.parametrize(
    ("changes", "loss", "text"),
    [
        (
            {"matryoshka_dims": (64, 32)},
            "MatryoshkaLoss(MultipleNegativesRankingLoss)",
            "MultipleNegativesRankingLoss in MatryoshkaLoss (64/32), batch 8, learning rate 3e-05, 2 epochs",
        ),
        (
            {"mini_batch_size": 4},
            "CachedMultipleNegativesRankingLoss",
            "CachedMultipleNegativesRankingLoss (mini-batches of 4), batch 8, learning rate 3e-05, 2 epochs",
        ),
        (
            {"epochs": 1, "max_train_samples": 12500},
            "MultipleNegativesRankingLoss",
            "MultipleNegativesRankingLoss, batch 8, learning rate 3e-05, 1 epoch, 12,500 training rows",
        ),
    ],
)
def test_a_recipe_of_other_settings_is_named_and_described_from_its_fields(changes: dict, loss: str, text: str):
    recipe = dataclasses.replace(Recipe("mine", epochs=2, train_batch_size=8, learning_rate=3e-5), **changes)
    assert recipe.loss_name == loss
    assert recipe.describe() == text
    assert recipe.describe(sort_by_length=True) == f"{text}; each batch embedded in length-sorted pieces"


def test_recipes_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RECIPES["quick"].epochs = 3  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------
# training_recipe(device): "auto" by device, the run's own settings in place of the recipe's
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("device", "expected"), [("cuda", "improved"), ("cpu", "quick"), ("mps", "quick")])
def test_auto_picks_the_recipe_by_device(device: str, expected: str):
    assert RunConfig().recipe == "auto"
    assert RunConfig().training_recipe(device) == RECIPES[expected]
    assert AUTO_RECIPES["cuda" if device == "cuda" else "other"] == expected


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_a_named_recipe_is_the_same_on_every_device(device: str):
    assert RunConfig(recipe="reference").training_recipe(device) == RECIPES["reference"]


def test_the_runs_own_settings_replace_the_recipes_and_the_rest_stays():
    config = RunConfig(recipe="improved", epochs=2, train_batch_size=16, learning_rate=3e-5, max_train_samples=100)
    recipe = config.training_recipe("cpu")
    assert (recipe.epochs, recipe.train_batch_size, recipe.learning_rate, recipe.max_train_samples) == (
        2,
        16,
        3e-5,
        100,
    )
    improved = RECIPES["improved"]
    assert (recipe.name, recipe.mini_batch_size, recipe.matryoshka_dims) == (
        "improved",
        improved.mini_batch_size,
        improved.matryoshka_dims,
    )
    assert recipe.loss_name == improved.loss_name
    # one setting given: only that one changes
    only_epochs = RunConfig(recipe="improved", epochs=2).training_recipe("cuda")
    assert only_epochs == dataclasses.replace(improved, epochs=2)
    assert RECIPES["improved"].epochs == 10, "the recipe itself is left alone"
    assert set(RECIPE_SETTINGS) <= {item.name for item in fields(RunConfig)} & {item.name for item in fields(Recipe)}


def test_an_unknown_recipe_is_refused_with_the_choices():
    with pytest.raises(ValueError) as info:
        RunConfig(recipe="big").training_recipe("cpu")
    assert str(info.value) == "RECIPE must be one of 'auto', 'reference', 'improved', 'quick', got 'big'."


# --------------------------------------------------------------------------------------------------
# settings(recipe): every setting once, as trained
# --------------------------------------------------------------------------------------------------
def test_settings_hold_every_setting_once_with_the_recipes_values_filled_in():
    config = RunConfig(train_batch_size=16, seed=7)  # recipe "auto"
    settings = config.settings(config.training_recipe("cpu"))
    quick = RECIPES["quick"]
    assert set(settings) == {item.name for item in fields(RunConfig)} | {"mini_batch_size", "matryoshka_dims", "loss"}
    assert "name" not in settings and "parameters" not in settings
    assert settings["recipe"] == "quick", "the recipe trained with, not 'auto'"
    assert settings["train_batch_size"] == 16, "the run's own value"
    assert (settings["epochs"], settings["learning_rate"]) == (quick.epochs, quick.learning_rate)
    assert settings["max_train_samples"] is None
    assert settings["training_seed"] == 7, "None means the split's seed"
    assert (settings["mini_batch_size"], settings["matryoshka_dims"]) == (None, None)
    assert settings["loss"] == quick.loss_name
    assert settings["sort_by_length"] is True and settings["split"] == "grouped"
    assert json.loads(json.dumps(settings)) == settings, "plain JSON values"
    for name in ("dataset", "base_model", "output_dir", "eval_batch_size", "bootstrap_resamples", "seed"):
        assert settings[name] == getattr(config, name)


def test_settings_of_the_improved_recipe_list_its_matryoshka_sizes():
    config = RunConfig(recipe="improved", training_seed=3)
    settings = config.settings(config.training_recipe("cuda"))
    assert settings["matryoshka_dims"] == [384, 256, 128, 64]
    assert (settings["mini_batch_size"], settings["epochs"], settings["training_seed"]) == (32, 10, 3)
    assert settings["loss"] == "MatryoshkaLoss(CachedMultipleNegativesRankingLoss)"


# --------------------------------------------------------------------------------------------------
# RunConfig: frozen, each field with its help and choices
# --------------------------------------------------------------------------------------------------
def test_run_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().epochs = 2  # type: ignore[misc]


def test_every_field_carries_its_help_and_choices():
    for item in fields(RunConfig):
        text = item.metadata["help"]
        assert RunConfig.help(item.name) == text
        assert text.endswith(".") and len(text) > 20, item.name
        assert RunConfig.choices(item.name) == item.metadata["choices"]
    assert RunConfig.choices("split") == SPLIT_STRATEGIES
    assert RunConfig.choices("recipe") == ("auto", "reference", "improved", "quick")
    assert RunConfig.choices("epochs") is None


def test_the_recipe_help_lists_every_recipe_and_what_auto_picks():
    text = RunConfig.help("recipe")
    for name, recipe in RECIPES.items():
        assert f"'{name}': {recipe.describe()}" in text
    assert "'auto' picks 'improved' on a CUDA GPU and 'quick' elsewhere" in text


# --------------------------------------------------------------------------------------------------
# validate(): each parameter's type and range, named as in the notebook
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "EPOCHS must be a whole number >= 1 or None, got 0."),
        ({"epochs": -1}, "EPOCHS must be a whole number >= 1 or None, got -1."),
        ({"epochs": 1.5}, "EPOCHS must be a whole number >= 1 or None, got 1.5."),
        ({"epochs": True}, "EPOCHS must be a whole number >= 1 or None, got True."),
        ({"train_batch_size": 1}, "TRAIN_BATCH_SIZE must be a whole number >= 2 or None, got 1."),
        ({"learning_rate": -1.0}, "LEARNING_RATE must be a number between 0 and 1 (e.g. 2e-5) or None, got -1.0."),
        ({"learning_rate": 0}, "LEARNING_RATE must be a number between 0 and 1 (e.g. 2e-5) or None, got 0."),
        ({"learning_rate": "1e-4"}, "LEARNING_RATE must be a number between 0 and 1 (e.g. 2e-5) or None, got '1e-4'."),
        ({"max_train_samples": 0}, "MAX_TRAIN_SAMPLES must be a whole number >= 2 or None, got 0."),
        ({"seed": -3}, "SEED must be a whole number >= 0, got -3."),
        ({"training_seed": -1}, "TRAINING_SEED must be a whole number >= 0 or None, got -1."),
        ({"eval_batch_size": 0}, "EVAL_BATCH_SIZE must be a whole number >= 1, got 0."),
        ({"bootstrap_resamples": 99}, "BOOTSTRAP_RESAMPLES must be a whole number >= 100, got 99."),
        ({"split": "random"}, "SPLIT must be one of 'grouped', 'reference', got 'random'."),
        ({"recipe": "large"}, "RECIPE must be one of 'auto', 'reference', 'improved', 'quick', got 'large'."),
        ({"group_column": "ticker", "split": "reference"}, "GROUP_COLUMN only applies to SPLIT = 'grouped'"),
        ({"group_column": ""}, "GROUP_COLUMN must be a column name or None, got ''."),
        ({"test_dataset": "test.csv", "split": "reference"}, "TEST_DATASET needs SPLIT 'grouped'"),
        ({"test_dataset": " "}, "TEST_DATASET must be a file, a Hub id or None, got ' '."),
        ({"dataset": " "}, "DATASET must be a non-empty text, got ' '."),
        ({"base_model": None}, "BASE_MODEL must be a non-empty text, got None."),
        ({"context_column": "question"}, "QUESTION_COLUMN and CONTEXT_COLUMN must differ (both are 'question')."),
        ({"deduplicate_corpus": "yes"}, "DEDUPLICATE_CORPUS must be True or False, got 'yes'."),
        ({"sort_by_length": "no"}, "SORT_BY_LENGTH must be True or False, got 'no'."),
        ({"sort_by_length": 1}, "SORT_BY_LENGTH must be True or False, got 1."),
    ],
)
def test_validate_names_the_parameter_and_its_range(changes: dict, message: str):
    with pytest.raises(ValueError) as info:
        RunConfig(**changes).validate()
    assert str(info.value).startswith(message)


def test_defaults_and_edges_are_valid():
    RunConfig().validate()
    RunConfig(
        epochs=1, train_batch_size=2, max_train_samples=2, seed=0, training_seed=0, bootstrap_resamples=100
    ).validate()
    RunConfig(learning_rate=0.5, group_column="ticker", sort_by_length=False, deduplicate_corpus=False).validate()
    RunConfig(test_dataset="held_out.csv", recipe="reference").validate()
