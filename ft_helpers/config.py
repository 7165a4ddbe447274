"""The run's parameters and their defaults, in one place (the notebook's parameters cell mirrors them)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .split import SPLIT_STRATEGIES

#: Fewest bootstrap resamples that give a usable 95% interval (and a p-value resolution of 0.01).
MIN_BOOTSTRAP_RESAMPLES = 100


@dataclass(frozen=True)
class Recipe:
    """A training recipe: the loss and the settings that go with it.

    Attributes:
        name: Its key in :data:`RECIPES`.
        loss: One of :data:`~ft_helpers.training.LOSSES`, e.g. ``"MultipleNegativesRankingLoss"`` or
            ``"CachedMultipleNegativesRankingLoss"``.
        epochs: Training epochs (the best one on validation is kept).
        train_batch_size: Question/passage pairs per batch: each question meets ``train_batch_size - 1`` negatives.
        learning_rate: Peak learning rate (10% warm-up, cosine decay).
        max_train_samples: Train on a seeded subset of this many rows (None: all).
        mini_batch_size: Pairs embedded at a time by a cached loss, whose memory follows this, not the batch
            size. With a plain loss, None embeds the whole batch at once and a number embeds it in mini-batches
            of texts of similar length, each padded only to its own longest: the same loss, less padding to embed.
        matryoshka_dims: Train with ``MatryoshkaLoss`` at these embedding sizes, largest first (None: off), so
            the first 256, 128 or 64 numbers of an embedding work as a smaller embedding.
        directions: What the loss ranks: ``"query_to_doc"`` (each question against the batch's passages) plus,
            optionally, ``"doc_to_query"``, ``"query_to_query"``, ``"doc_to_doc"`` (see
            ``MultipleNegativesRankingLoss``); one softmax over all of them.
        hard_negatives: Passages mined per training pair with the base model as extra negatives (0: none); see
            :func:`~ft_helpers.training.add_hard_negatives`.
    """

    name: str
    loss: str
    epochs: int
    train_batch_size: int
    learning_rate: float
    max_train_samples: int | None = None
    mini_batch_size: int | None = None
    matryoshka_dims: tuple[int, ...] | None = None
    directions: tuple[str, ...] = ("query_to_doc",)
    hard_negatives: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Return the recipe as a plain dict (for ``results.json``)."""
        sizes = list(self.matryoshka_dims) if self.matryoshka_dims else None
        return asdict(self) | {"matryoshka_dims": sizes, "directions": list(self.directions)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Recipe:
        """Rebuild a recipe from :meth:`as_dict` (as ``results.json`` keeps it)."""
        sizes = values.get("matryoshka_dims")
        directions = tuple(values.get("directions", ("query_to_doc",)))
        return cls(**{**values, "matryoshka_dims": tuple(sizes) if sizes else None, "directions": directions})


#: The recipes RECIPE / --recipe can name.
RECIPES = {
    # the reference notebook's settings: 31 in-batch negatives per question
    "reference": Recipe("reference", "MultipleNegativesRankingLoss", epochs=6, train_batch_size=32, learning_rate=2e-5),
    # 255 in-batch negatives per question, embedded 32 at a time; a higher rate for the larger batch; Matryoshka
    "improved": Recipe(
        "improved",
        "CachedMultipleNegativesRankingLoss",
        epochs=10,
        train_batch_size=256,
        learning_rate=1e-4,
        mini_batch_size=32,
        matryoshka_dims=(384, 256, 128, 64),
    ),
    # a try-out on a CPU: one epoch, at a rate that makes the most of so few steps, each batch embedded in
    # length-sorted mini-batches of 8 (the same loss, far less padding: on a CPU, time follows the tokens embedded)
    "quick": Recipe(
        "quick",
        "MultipleNegativesRankingLoss",
        epochs=1,
        train_batch_size=128,
        learning_rate=2e-4,
        mini_batch_size=8,
    ),
}

#: The settings a run may take from its recipe (a parameter left at None) or set itself.
RECIPE_SETTINGS = ("epochs", "train_batch_size", "learning_rate", "max_train_samples")

#: What each parameter means, for ``--help`` (the command line) and readers of ``results.json``.
PARAMETER_HELP = {
    "dataset": "Hugging Face Hub dataset id, or a local .csv, .json (records), .jsonl or .parquet file with one "
    "question and the passage that answers it per row.",
    "test_dataset": "A separate file of held-out question/passage pairs to test on (same columns); DATASET is then "
    "split into train and validation only, and its rows that share a question or passage with this file are left "
    "out (None: test on a split of DATASET).",
    "question_column": "Column that holds the questions.",
    "context_column": "Column that holds the passages (contexts) that answer them.",
    "base_model": "The model to fine-tune: a Hugging Face Hub id, or a local folder written by "
    "SentenceTransformer.save().",
    "output_dir": "Folder for the fine-tuned model (model/), the evaluation files (eval/), comparison.png, "
    "training.png, dimensions.png and results.json (written last).",
    "recipe": "'improved' (the default): 255 negatives per question with the cached loss (batch 256, mini-batches "
    "of 32, learning rate 1e-4, 10 epochs) and Matryoshka embedding sizes 384/256/128/64; 'reference': the "
    "reference notebook's settings (MultipleNegativesRankingLoss, batch 32, learning rate 2e-5, 6 epochs); "
    "'quick': a CPU try-out (1 epoch, batch 128 embedded in length-sorted mini-batches of 8, learning rate 2e-4).",
    "epochs": "Training epochs; the epoch with the best validation NDCG@10 is kept (None: the recipe's).",
    "train_batch_size": "Question/passage pairs per batch; each question's other passages in the batch are its "
    "negatives, so bigger batches give more (None: the recipe's).",
    "learning_rate": "Peak learning rate, reached after 10% warm-up and decayed along a cosine (None: the recipe's).",
    "max_train_samples": "Train on a seeded subset of this many rows, for a shorter run; validation and test are "
    "never reduced (None: the recipe's, all rows).",
    "seed": "Seed of the split (and of training, unless TRAINING_SEED is set).",
    "training_seed": "Seed of the training subset and of training alone (None: SEED); change it to see how much "
    "scores vary from one training run to the next on the same split.",
    "split": "'grouped': no passage or question (nor a variant differing only in case, punctuation or spacing) in "
    "two of train/validation/test; 'reference': the reference notebook's random split, which leaks.",
    "group_column": "With the grouped split, also keep equal values of this column (e.g. ticker) in one split, to "
    "test on unseen groups (None: off).",
    "deduplicate_corpus": "Score against one document per distinct passage, so duplicate passages cannot tie "
    "(--no-deduplicate-corpus: one per row, as the reference).",
    "eval_batch_size": "Encoding batch size of the evaluation.",
    "bootstrap_resamples": "Resamples of the paired bootstrap interval and the permutation test (at least 100).",
}


@dataclass
class RunConfig:
    """Everything a fine-tuning run can be told; the defaults train the improved recipe on the grouped split.

    One field per parameter of the notebook's parameters cell (``epochs`` is ``EPOCHS`` there) and per
    option of ``python -m ft_helpers run`` (``--epochs``); :data:`PARAMETER_HELP` says what each means.
    The settings of :data:`RECIPE_SETTINGS` left at None come from the recipe: see :meth:`resolved`.
    """

    dataset: str = "philschmid/finanical-rag-embedding-dataset"
    test_dataset: str | None = None
    question_column: str = "question"
    context_column: str = "context"
    base_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    output_dir: str = "output/all-MiniLM-L6-v2-financial"
    recipe: str = "improved"
    epochs: int | None = None
    train_batch_size: int | None = None
    learning_rate: float | None = None
    max_train_samples: int | None = None
    seed: int = 42
    training_seed: int | None = None
    split: str = "grouped"
    group_column: str | None = None
    deduplicate_corpus: bool = True
    eval_batch_size: int = 64
    bootstrap_resamples: int = 10_000

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
        if not isinstance(self.recipe, str) or self.recipe not in RECIPES:
            raise ValueError(f"RECIPE must be one of {', '.join(map(repr, RECIPES))}, got {self.recipe!r}.")
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
        if self.split not in SPLIT_STRATEGIES:
            raise ValueError(f"SPLIT must be one of {', '.join(map(repr, SPLIT_STRATEGIES))}, got {self.split!r}.")
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
        if not isinstance(self.deduplicate_corpus, bool):
            raise ValueError(f"DEDUPLICATE_CORPUS must be True or False, got {self.deduplicate_corpus!r}.")

    def as_dict(self) -> dict[str, Any]:
        """Return the parameters as a plain dict."""
        return asdict(self)

    def training_recipe(self) -> Recipe:
        """Return the recipe named by ``recipe``, with the settings this config gives itself (not None) in place.

        Returns:
            The :class:`Recipe` to train with.

        Raises:
            ValueError: ``recipe`` names no recipe.
        """
        if self.recipe not in RECIPES:
            raise ValueError(f"RECIPE must be one of {', '.join(map(repr, RECIPES))}, got {self.recipe!r}.")
        given = {name: getattr(self, name) for name in RECIPE_SETTINGS if getattr(self, name) is not None}
        return replace(RECIPES[self.recipe], **given)

    def resolved(self) -> RunConfig:
        """Return a copy with every setting of :data:`RECIPE_SETTINGS` filled in from the recipe where None.

        ``max_train_samples`` stays None where the recipe trains on all rows; ``training_seed`` becomes ``seed``
        where None.
        """
        recipe = self.training_recipe()
        seed = self.seed if self.training_seed is None else self.training_seed
        return replace(self, training_seed=seed, **{name: getattr(recipe, name) for name in RECIPE_SETTINGS})

    @classmethod
    def notebook_names(cls) -> dict[str, str]:
        """Map each field to the notebook's UPPER_CASE parameter name (``epochs`` -> ``EPOCHS``)."""
        return {field.name: field.name.upper() for field in fields(cls)}

    @classmethod
    def from_parameters(cls, namespace: Mapping[str, Any]) -> RunConfig:
        """Build a config from the notebook's UPPER_CASE parameters, e.g. ``RunConfig.from_parameters(globals())``.

        Args:
            namespace: Names to values; every parameter of the notebook's parameters cell must be in it.

        Returns:
            The config.

        Raises:
            ValueError: A parameter is missing (run the parameters cell first).
        """
        names = cls.notebook_names()
        missing = [upper for upper in names.values() if upper not in namespace]
        if missing:
            raise ValueError(f"Parameter(s) {', '.join(missing)} not set: run the parameters cell first.")
        return cls(**{field: namespace[upper] for field, upper in names.items()})
