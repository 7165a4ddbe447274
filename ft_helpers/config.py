"""The run's parameters, their help and their defaults, in one place.

:class:`RunConfig` has one field per parameter of the notebook's parameters cell (``epochs`` is ``EPOCHS``
there) and per option of ``python -m ft_helpers run`` (``--epochs``); each field carries its own help text
and choices, from which the command line is built. :data:`RECIPES` holds the training recipes as data.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .split import SPLIT_STRATEGIES

#: Fewest bootstrap resamples that give a usable 95% interval (and a p-value resolution of 0.01).
MIN_BOOTSTRAP_RESAMPLES = 100


@dataclass(frozen=True)
class Recipe:
    """A training recipe: the loss and the settings that go with it.

    Attributes:
        name: Its key in :data:`RECIPES`.
        epochs: Training epochs (the best one on validation is kept).
        train_batch_size: Question/passage pairs per batch: each question meets ``train_batch_size - 1`` negatives.
        learning_rate: Peak learning rate (10% warm-up, cosine decay).
        mini_batch_size: Train with ``CachedMultipleNegativesRankingLoss`` embedding this many pairs at a time, so
            memory follows it rather than the batch (None: ``MultipleNegativesRankingLoss``, the whole batch at once).
        matryoshka_dims: Wrap the loss in ``MatryoshkaLoss`` at these embedding sizes, largest first (None: off), so
            the first 256, 128 or 64 numbers of an embedding work as a smaller embedding.
        max_train_samples: Train on a seeded subset of this many rows (None: all).
    """

    name: str
    epochs: int
    train_batch_size: int
    learning_rate: float
    mini_batch_size: int | None = None
    matryoshka_dims: tuple[int, ...] | None = None
    max_train_samples: int | None = None

    @property
    def loss_name(self) -> str:
        """Name the loss this recipe trains with, e.g. ``"MatryoshkaLoss(CachedMultipleNegativesRankingLoss)"``."""
        inner = "CachedMultipleNegativesRankingLoss" if self.mini_batch_size else "MultipleNegativesRankingLoss"
        return f"MatryoshkaLoss({inner})" if self.matryoshka_dims else inner

    def describe(self, sort_by_length: bool = False) -> str:
        """Say in one line what the recipe trains, generated from its fields (and whether batches are length-sorted)."""
        loss = "CachedMultipleNegativesRankingLoss" if self.mini_batch_size else "MultipleNegativesRankingLoss"
        if self.mini_batch_size:
            loss += f" (mini-batches of {self.mini_batch_size})"
        if self.matryoshka_dims:
            loss += f" in MatryoshkaLoss ({'/'.join(map(str, self.matryoshka_dims))})"
        rows = f", {self.max_train_samples:,} training rows" if self.max_train_samples else ""
        epochs = "1 epoch" if self.epochs == 1 else f"{self.epochs} epochs"
        sorting = "; each batch embedded in length-sorted pieces" if sort_by_length else ""
        return f"{loss}, batch {self.train_batch_size}, learning rate {self.learning_rate:g}, {epochs}{rows}{sorting}"


#: The recipes RECIPE / --recipe can name.
RECIPES = {
    # The reference notebook's settings: 31 in-batch negatives per question.
    "reference": Recipe("reference", epochs=6, train_batch_size=32, learning_rate=2e-5),
    # 255 in-batch negatives per question, embedded 32 at a time so a T4 holds them; a higher rate for the larger
    # batch; Matryoshka, so that cut-down embeddings keep working; 10 epochs, as 3 and 6 scored lower on validation
    # (benchmarks/README.md, "The improved recipe").
    "improved": Recipe(
        "improved",
        epochs=10,
        train_batch_size=256,
        learning_rate=1e-4,
        mini_batch_size=32,
        matryoshka_dims=(384, 256, 128, 64),
    ),
    # A try-out on a CPU: one epoch over all rows, at a rate that makes the most of so few steps.
    "quick": Recipe("quick", epochs=1, train_batch_size=128, learning_rate=2e-4),
}

#: What RECIPE = "auto" picks: the improved recipe on a CUDA GPU, the quick one elsewhere.
AUTO_RECIPES = {"cuda": "improved", "other": "quick"}

#: The recipe settings a run may set itself (None: the recipe's).
RECIPE_SETTINGS = ("epochs", "train_batch_size", "learning_rate", "max_train_samples")


def _recipe_help() -> str:
    listed = "; ".join(f"'{name}': {recipe.describe()}" for name, recipe in RECIPES.items())
    return (
        f"Training settings: 'auto' picks '{AUTO_RECIPES['cuda']}' on a CUDA GPU and '{AUTO_RECIPES['other']}' "
        f"elsewhere; {listed}."
    )


def _parameter(default: Any, text: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": text, "choices": choices})


@dataclass(frozen=True)
class RunConfig:
    """Everything a fine-tuning run can be told; each field's ``metadata["help"]`` says what it means.

    The settings of :data:`RECIPE_SETTINGS` left at None come from the recipe: see :meth:`training_recipe`.
    """

    dataset: str = _parameter(
        "philschmid/finanical-rag-embedding-dataset",
        "Hugging Face Hub dataset id, or a local .csv, .json (records), .jsonl or .parquet file with one question "
        "and the passage that answers it per row.",
    )
    test_dataset: str | None = _parameter(
        None,
        "A separate file of held-out question/passage pairs to test on (same columns); DATASET is then split into "
        "train and validation only, and its rows that share a question or passage with this file are left out "
        "(None: test on a split of DATASET).",
    )
    question_column: str = _parameter("question", "Column that holds the questions.")
    context_column: str = _parameter("context", "Column that holds the passages (contexts) that answer them.")
    base_model: str = _parameter(
        "sentence-transformers/all-MiniLM-L6-v2",
        "The model to fine-tune: a Hugging Face Hub id, or a local folder written by SentenceTransformer.save().",
    )
    output_dir: str = _parameter(
        "output/all-MiniLM-L6-v2-financial",
        "Folder for the fine-tuned model (model/), the evaluation files (eval/), the plots and results.json "
        "(written last).",
    )
    recipe: str = _parameter("auto", _recipe_help(), choices=("auto", *RECIPES))
    epochs: int | None = _parameter(
        None, "Training epochs; the epoch with the best validation NDCG@10 is kept (None: the recipe's)."
    )
    train_batch_size: int | None = _parameter(
        None,
        "Question/passage pairs per batch; each question's other passages in the batch are its negatives, so "
        "bigger batches give more (None: the recipe's).",
    )
    learning_rate: float | None = _parameter(
        None, "Peak learning rate, reached after 10% warm-up and decayed along a cosine (None: the recipe's)."
    )
    max_train_samples: int | None = _parameter(
        None,
        "Train on a seeded subset of this many rows, for a shorter run; validation and test are never reduced "
        "(None: all rows).",
    )
    sort_by_length: bool = _parameter(
        True,
        "Embed each batch in pieces of texts of similar length (ft_helpers.losses), so each piece carries little "
        "padding: the same loss, faster on a CPU (measured: 5.7x for the quick recipe's loss, 1.8x for the improved "
        "recipe's cached one); --no-sort-by-length trains with sentence-transformers' own loss classes.",
    )
    seed: int = _parameter(42, "Seed of the split (and of training, unless TRAINING_SEED is set).")
    training_seed: int | None = _parameter(
        None,
        "Seed of the training subset and of training alone (None: SEED); change it to see how much scores vary "
        "from one training run to the next on the same split.",
    )
    split: str = _parameter(
        "grouped",
        "'grouped': no passage or question (nor a variant differing only in case, punctuation or spacing) in two "
        "of train/validation/test; 'reference': the reference notebook's random split, which leaks.",
        choices=SPLIT_STRATEGIES,
    )
    group_column: str | None = _parameter(
        None,
        "With the grouped split, also keep equal values of this column (e.g. ticker) in one split, to test on "
        "unseen groups (None: off).",
    )
    deduplicate_corpus: bool = _parameter(
        True,
        "Score against one document per distinct passage, so duplicate passages cannot tie "
        "(--no-deduplicate-corpus: one per row, as the reference).",
    )
    eval_batch_size: int = _parameter(64, "Encoding batch size of the evaluation.")
    bootstrap_resamples: int = _parameter(
        10_000, "Resamples of the paired bootstrap interval and the permutation test (at least 100)."
    )

    def validate(self) -> None:
        """Check every parameter's type and range, before anything is loaded or trained.

        Messages name the notebook's parameters (``EPOCHS``); the command line shows its flags instead.

        Raises:
            ValueError: The first parameter out of range, with what to set instead.
        """

        def whole(name: str, value: Any, low: int, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                none = " or None" if allow_none else ""
                raise ValueError(f"{name.upper()} must be a whole number >= {low}{none}, got {value!r}.")

        for name in ("dataset", "question_column", "context_column", "base_model", "output_dir"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name.upper()} must be a non-empty text, got {value!r}.")
        if self.question_column == self.context_column:
            raise ValueError(f"QUESTION_COLUMN and CONTEXT_COLUMN must differ (both are {self.question_column!r}).")
        for name in ("recipe", "split"):
            choices = self.choices(name)
            if getattr(self, name) not in choices:
                raise ValueError(f"{name.upper()} must be one of {', '.join(map(repr, choices))}, got "
                                 f"{getattr(self, name)!r}.")  # fmt: skip
        whole("epochs", self.epochs, 1, allow_none=True)
        whole("train_batch_size", self.train_batch_size, 2, allow_none=True)  # in-batch negatives need a second pair
        whole("max_train_samples", self.max_train_samples, 2, allow_none=True)
        whole("seed", self.seed, 0)
        whole("training_seed", self.training_seed, 0, allow_none=True)
        whole("eval_batch_size", self.eval_batch_size, 1)
        whole("bootstrap_resamples", self.bootstrap_resamples, MIN_BOOTSTRAP_RESAMPLES)
        rate = self.learning_rate
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 < rate < 1):
            raise ValueError(f"LEARNING_RATE must be a number between 0 and 1 (e.g. 2e-5) or None, got {rate!r}.")
        if self.test_dataset is not None:
            if not isinstance(self.test_dataset, str) or not self.test_dataset.strip():
                raise ValueError(f"TEST_DATASET must be a file, a Hub id or None, got {self.test_dataset!r}.")
            if self.split != "grouped":
                raise ValueError("TEST_DATASET needs SPLIT 'grouped' (the reference split makes its own test split).")
        if self.group_column is not None:
            if not isinstance(self.group_column, str) or not self.group_column.strip():
                raise ValueError(f"GROUP_COLUMN must be a column name or None, got {self.group_column!r}.")
            if self.split != "grouped":
                raise ValueError("GROUP_COLUMN only applies to SPLIT = 'grouped'; set it to None.")
        for name in ("deduplicate_corpus", "sort_by_length"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name.upper()} must be True or False, got {getattr(self, name)!r}.")

    @classmethod
    def choices(cls, name: str) -> tuple[str, ...] | None:
        """Return the values a field may take (None: any of its type)."""
        return next(item.metadata["choices"] for item in fields(cls) if item.name == name)

    @classmethod
    def help(cls, name: str) -> str:
        """Return what a field means."""
        return next(item.metadata["help"] for item in fields(cls) if item.name == name)

    def training_recipe(self, device: str) -> Recipe:
        """Return the recipe this config trains with on ``device``, with the settings it gives itself in place.

        Args:
            device: ``"cuda"``, ``"mps"`` or ``"cpu"`` (``RECIPE = "auto"`` picks by it).

        Returns:
            The :class:`Recipe`: ``RECIPE``'s, with each of :data:`RECIPE_SETTINGS` that is not None put in.
        """
        name = self.recipe
        if name == "auto":
            name = AUTO_RECIPES["cuda" if device == "cuda" else "other"]
        if name not in RECIPES:
            raise ValueError(f"RECIPE must be one of {', '.join(map(repr, self.choices('recipe')))}, got {name!r}.")
        given = {setting: getattr(self, setting) for setting in RECIPE_SETTINGS if getattr(self, setting) is not None}
        return replace(RECIPES[name], **given)

    def settings(self, recipe: Recipe) -> dict[str, Any]:
        """Return every setting of a run once, as trained: the recipe's values in place of None (for results.json).

        Args:
            recipe: From :meth:`training_recipe`.

        Returns:
            The fields of this config, ``recipe`` as the recipe's name, the recipe's own settings, and
            ``training_seed`` filled in from ``seed`` where None.
        """
        values = asdict(self) | asdict(recipe) | {"recipe": recipe.name, "loss": recipe.loss_name}
        values.pop("name")
        values["matryoshka_dims"] = list(recipe.matryoshka_dims) if recipe.matryoshka_dims else None
        values["training_seed"] = self.seed if self.training_seed is None else self.training_seed
        return values
