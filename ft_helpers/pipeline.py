"""The notebook's steps as one function, for the command line and the benchmarks.

Keep this in step with ``embedding_finetuning_rag_demo.ipynb``: the same calls in the same order, so
that both give the same results on the same input (``tests/test_notebook.py`` checks this).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from .config import RECIPE_SETTINGS, Recipe, RunConfig
from .data import load_qa_pairs
from .evaluation import (
    PER_QUERY_METRICS,
    IRInputs,
    RetrievalResult,
    build_ir_evaluator,
    build_ir_inputs,
    check_evaluation_sizes,
    encode_corpus,
    evaluate_retrieval,
    score_dimensions,
)
from .report import (
    HEADLINE_METRICS,
    add_results_to_model_card,
    build_comparison_table,
    plot_comparison,
    plot_dimensions,
    plot_training_curve,
    save_results,
)
from .split import add_test_set, report_leakage, split_qa_pairs
from .stats import compare_per_query
from .training import (
    HardwareSettings,
    add_hard_negatives,
    build_loss,
    build_pair_dataset,
    check_batch_size,
    check_model_reference,
    collect_environment,
    count_truncated,
    detect_hardware,
    load_base_model,
    name_loss,
    pick_embedding_sizes,
)

#: The validation score that picks the checkpoint (``metric_for_best_model``), as the trainer logs it.
VALIDATION_METRIC = "eval_validation_cosine_ndcg@10"


def read_validation_curve(log_history: list[dict[str, Any]]) -> list[list[float]]:
    """List each validation of a run as ``[epoch, NDCG@10]``, in the order they were logged.

    Args:
        log_history: The trainer's log history (``trainer.state.log_history``).

    Returns:
        One ``[epoch, score]`` pair per evaluation; empty if training never evaluated.
    """
    return [[entry["epoch"], entry[VALIDATION_METRIC]] for entry in log_history if VALIDATION_METRIC in entry]


def collect_results(
    config: RunConfig,
    *,
    splits: dict[str, pd.DataFrame],
    leakage: pd.DataFrame,
    test_inputs: IRInputs,
    validation_inputs: IRInputs,
    baseline: RetrievalResult,
    finetuned: RetrievalResult,
    comparison: pd.DataFrame,
    hardware: HardwareSettings,
    trainer: Any,
    training_seconds: float,
    model_dir: str | Path,
    resumed_from: str | None = None,
    world_size: int = 1,
    dimensions: Mapping[str, pd.DataFrame] | None = None,
    recipe: Recipe | None = None,
) -> dict[str, Any]:
    """Gather what a run measured into the sections of ``results.json``.

    Args:
        config: The run's parameters (``RunConfig.from_parameters(globals())`` in the notebook).
        splits: The train/validation/test splits.
        leakage: :func:`~ft_helpers.split.report_leakage` of the splits.
        test_inputs: Evaluator inputs of the test split.
        validation_inputs: Evaluator inputs of the validation split.
        baseline: The base model's test evaluation.
        finetuned: The fine-tuned model's test evaluation.
        comparison: :func:`~ft_helpers.stats.compare_per_query` of the two.
        hardware: The settings training used.
        trainer: The ``SentenceTransformerTrainer`` after training (its state gives steps and best metric).
        training_seconds: Wall time of ``trainer.train()``.
        model_dir: Where the fine-tuned model was saved.
        resumed_from: The checkpoint training resumed from, if any (then ``training_seconds`` covers
            only the part after it).
        world_size: How many processes trained (torchrun, accelerate); recorded in ``run.hardware``.
        dimensions: Model label (``"baseline"``, ``"fine-tuned"``) -> :func:`~ft_helpers.evaluation.score_dimensions`
            of that model, if scored.
        recipe: The recipe trained with, where it is not ``config``'s own (a benchmark's variant).

    Returns:
        ``baseline``, ``finetuned``, ``comparison``, ``dimensions`` (label -> size -> metrics; empty if not
        scored), ``split``, ``evaluation`` and ``run`` (its ``parameters`` with the recipe's settings filled in,
        and ``recipe``); pass them to :func:`~ft_helpers.report.save_results`.
    """
    run = {
        "parameters": config.resolved().as_dict(),
        "recipe": (recipe or config.training_recipe()).as_dict(),
        "loss": name_loss(trainer.loss),
        "packages": collect_environment(),
        "hardware": hardware.as_dict() | {"world_size": world_size},
        "training_rows": len(trainer.train_dataset),
        "training_steps": trainer.state.global_step,
        "training_seconds": round(training_seconds, 1),
        "best_checkpoint_metric": trainer.state.best_metric,
        "validation_by_epoch": read_validation_curve(trainer.state.log_history),
        "model_dir": str(model_dir),
        "resumed_from": resumed_from,
    }
    return {
        "baseline": baseline.metrics,
        "finetuned": finetuned.metrics,
        "comparison": comparison,
        "dimensions": {
            label: {str(size): row for size, row in frame.to_dict(orient="index").items()}
            for label, frame in (dimensions or {}).items()
        },
        "split": {
            "strategy": config.split,
            "group_column": config.group_column,
            "sizes": {name: len(frame) for name, frame in splits.items()},
            "leakage": leakage.to_dict(orient="index"),
        },
        "evaluation": {
            "test": test_inputs.summary(),
            "validation": validation_inputs.summary(),
            "per_query_metrics": list(PER_QUERY_METRICS),
        },
        "run": run,
    }


def load_run_pairs(config: RunConfig) -> pd.DataFrame:
    """Load the run's pairs as the notebook does: ``DATASET``, plus the rows of ``TEST_DATASET`` marked as test.

    Args:
        config: The run's parameters.

    Returns:
        The pairs to split (see :func:`~ft_helpers.split.add_test_set`); their contexts form the corpus.
    """
    pairs = load_qa_pairs(config.dataset, config.question_column, config.context_column, drop_empty=True)
    if config.test_dataset is not None:
        test = load_qa_pairs(config.test_dataset, config.question_column, config.context_column, drop_empty=True)
        pairs = add_test_set(pairs, test)
    return pairs


def split_and_check(config: RunConfig, log: Any = print) -> tuple[dict[str, pd.DataFrame], IRInputs, IRInputs]:
    """Load and split the run's pairs and build the evaluator inputs, refusing sizes too small to mean anything.

    Args:
        config: The run's parameters.
        log: Called with a warning for each size that is merely small.

    Returns:
        The splits, and the evaluator inputs of the test and validation splits (the corpus: every context).
    """
    pairs = load_run_pairs(config)
    splits = split_qa_pairs(pairs, config.split, seed=config.seed, group_column=config.group_column)
    test_inputs = build_ir_inputs(splits["test"], pairs, deduplicate=config.deduplicate_corpus)
    validation_inputs = build_ir_inputs(splits["validation"], pairs, deduplicate=config.deduplicate_corpus)
    for warning in check_evaluation_sizes(test_inputs, validation_inputs):
        log(f"warning: {warning}")
    return splits, test_inputs, validation_inputs


def read_process_layout(environ: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """Return ``(rank, world_size)`` as torchrun and accelerate set them (``(0, 1)`` for a plain run).

    Args:
        environ: The environment (``os.environ`` by default).

    Returns:
        This process's rank and the number of processes.
    """
    return int(environ.get("RANK", "0")), int(environ.get("WORLD_SIZE", "1"))


def _quiet(*args: object) -> None:
    """Swallow the log lines of processes other than the first."""


def describe_run(
    config: RunConfig, splits: dict[str, pd.DataFrame], test_inputs: IRInputs, recipe: Recipe | None = None
) -> dict[str, str]:
    """Say in a few lines how a model was fine-tuned and tested, for its model card (no local paths).

    Args:
        config: The run's parameters.
        splits: The train/validation/test splits.
        test_inputs: Evaluator inputs of the test split.
        recipe: The recipe trained with, where it is not ``config``'s own.

    Returns:
        Label -> one line.
    """

    def name(reference: str) -> str:  # a Hub id as it is; a local file or folder by its name only
        return f"`{Path(reference).name}` (local)" if Path(reference).expanduser().exists() else f"`{reference}`"

    sizes = "/".join(str(len(splits[part])) for part in ("train", "validation", "test"))
    recipe = recipe or config.training_recipe()
    loss = recipe.loss + (f" (mini-batches of {recipe.mini_batch_size})" if recipe.mini_batch_size else "")
    if tuple(recipe.directions) != ("query_to_doc",):
        loss += f" (directions {', '.join(recipe.directions)})"
    if recipe.hard_negatives:
        loss += f" with {recipe.hard_negatives} mined hard negative(s) per pair"
    if recipe.matryoshka_dims:
        loss = f"MatryoshkaLoss ({', '.join(map(str, recipe.matryoshka_dims))} dimensions) over {loss}"
    rows = f", {recipe.max_train_samples:,} training rows" if recipe.max_train_samples else ""
    return {
        "Base model": name(config.base_model),
        "Training data": f"{name(config.dataset)}: `{config.question_column}` (questions), "
        f"`{config.context_column}` (passages)",
        "Recipe": f"'{recipe.name}': {loss}, {recipe.epochs} epoch(s), batch {recipe.train_batch_size}, "
        f"learning rate {recipe.learning_rate:g}{rows}, cosine schedule with 10% warm-up; the epoch with the best "
        "validation NDCG@10 is kept",
        "Split": f"{config.split}, seed {config.seed}: {sizes} rows (train/validation/test)",
        "Test set": f"{len(test_inputs.queries)} questions against {len(test_inputs.corpus)} passages, "
        f"{'duplicates merged' if test_inputs.deduplicated else 'one document per row'}",
    }


def prepare_output_dir(
    output_dir: str | Path, overwrite: bool = False, resume: bool = False, resumable: bool = True
) -> Path:
    """Make sure a run can write to ``output_dir`` without mixing its files with another run's.

    Args:
        output_dir: The run's output folder.
        overwrite: Clear a non-empty folder first.
        resume: Keep a non-empty folder, to go on from its last checkpoint.
        resumable: Whether the caller can resume (only then does the message offer it).

    Returns:
        The folder, created if it did not exist.

    Raises:
        ValueError: Both options are given, or the folder is not empty and neither is, or there is
            nothing to resume.
        OSError: The path is a file, or the folder cannot be written to.
    """
    folder = Path(output_dir).expanduser()
    if overwrite and resume:
        raise ValueError("Choose one of overwrite (start again) and resume (go on), not both.")
    if folder.exists() and not folder.is_dir():
        raise OSError(f"OUTPUT_DIR {str(folder)!r} is a file, not a folder: choose a folder name.")
    used = folder.is_dir() and any(folder.iterdir())
    if resume and not list((folder / "checkpoints").glob("checkpoint-*")):
        raise ValueError(f"Nothing to resume in {str(folder)!r}: it holds no checkpoints/checkpoint-* folder.")
    if used and not (overwrite or resume):
        go_on = ", or resume_from_checkpoint=True to go on from its last checkpoint" if resumable else ""
        raise ValueError(
            f"OUTPUT_DIR {str(folder)!r} is not empty: choose a new folder, or pass overwrite=True to delete its "
            f"files first{go_on}."
        )
    if used and overwrite:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / ".write-test"
    try:
        probe.write_text("", encoding="utf-8")
    except OSError as err:
        raise OSError(f"Cannot write to OUTPUT_DIR {str(folder)!r}: {err.strerror or err}.") from None
    probe.unlink()
    return folder


def run_pipeline(
    config: RunConfig,
    log: Any = print,
    resume_from_checkpoint: str | bool | None = None,
    overwrite: bool = False,
    keep_checkpoints: bool = True,
    recipe: Recipe | None = None,
    precision: str | None = None,
) -> dict[str, Any]:
    """Check, load, split, evaluate the base model, fine-tune, evaluate again, and write ``results.json``.

    Everything that can be checked without a model is checked first (parameters, output folder, data,
    split and evaluation sizes), so bad input fails within seconds. ``results.json`` is written last.

    With several processes (``torchrun --nproc_per_node=N``, which sets ``RANK`` and ``WORLD_SIZE``) every
    process trains, with ``TRAIN_BATCH_SIZE`` shared among them (``TRAIN_BATCH_SIZE / N`` pairs each) and the
    loss gathering all processes' embeddings, so each question meets ``TRAIN_BATCH_SIZE - 1`` negatives as on
    one device; only the first process checks the output folder, evaluates, writes and logs.

    Args:
        config: The run's parameters.
        log: Called with progress messages and warnings (``print`` by default).
        resume_from_checkpoint: Go on from a checkpoint of an interrupted run with the same config (its
            trainer, optimizer and random states are restored): a checkpoint folder, or ``True`` for the
            last one in ``OUTPUT_DIR/checkpoints``; ``None`` trains from the start.
        overwrite: Clear a non-empty ``OUTPUT_DIR`` first (otherwise a non-empty one is refused, unless
            resuming from its own checkpoints).
        keep_checkpoints: Keep ``OUTPUT_DIR/checkpoints`` after the best model is saved.
        recipe: Train with this recipe instead of ``config``'s (benchmarks try variants this way); its epochs,
            batch size, learning rate and training rows replace ``config``'s, and ``results.json`` keeps it.
        precision: Train in ``"bf16"``, ``"fp16"`` or ``"fp32"`` instead of the precision picked for the machine
            (see :func:`~ft_helpers.training.detect_hardware`); ``results.json`` keeps the one used.

    Returns:
        The content of ``results.json`` (see :func:`collect_results`); ``{}`` in the other processes.
    """
    import matplotlib.pyplot as plt
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    # 0. Launched by torchrun? Every process trains; only the first evaluates and writes.
    rank, world_size = read_process_layout()
    main = rank == 0
    if not main:
        log = _quiet

    # 1. Everything that needs no model: parameters, output folder, data, split, sizes
    if recipe is not None:
        config = replace(config, **{name: getattr(recipe, name) for name in RECIPE_SETTINGS})
    config.validate()
    recipe = recipe or config.training_recipe()
    check_model_reference(config.base_model)
    hardware = detect_hardware(precision)  # an impossible precision fails here, before any folder is made
    if recipe.train_batch_size % world_size:
        raise ValueError(
            f"TRAIN_BATCH_SIZE ({recipe.train_batch_size}) is the batch over all {world_size} processes and must "
            f"divide evenly among them: use a multiple of {world_size}."
        )
    resume = resume_from_checkpoint is True
    splits, test_inputs, validation_inputs = split_and_check(config, log)
    leakage = report_leakage(splits, config.group_column)
    training_seed = config.resolved().training_seed
    train_dataset = build_pair_dataset(splits["train"], recipe.max_train_samples, seed=training_seed)
    validation_dataset = build_pair_dataset(splits["validation"])
    check_batch_size(len(train_dataset), recipe.train_batch_size)
    output_dir = (
        prepare_output_dir(config.output_dir, overwrite=overwrite, resume=resume) if main else Path(config.output_dir)
    )
    if resume:
        from transformers.trainer_utils import get_last_checkpoint

        resume_from_checkpoint = get_last_checkpoint(str(output_dir / "checkpoints"))
    log(f"split sizes: { {name: len(frame) for name, frame in splits.items()} }")

    # 2. Evaluators: retrieve from every context in the data
    test_evaluator = build_ir_evaluator(test_inputs, name="test", batch_size=config.eval_batch_size)
    validation_evaluator = build_ir_evaluator(validation_inputs, name="validation", batch_size=config.eval_batch_size)

    # 3. Base model and its baseline
    log(f"device: {hardware.device} ({hardware.device_name}), precision {hardware.precision}")
    if main:
        base_model = load_base_model(config.base_model, device=hardware.device)
        truncated = count_truncated(base_model, list(test_inputs.corpus.values()))
        if truncated:
            log(
                f"warning: {truncated:,} of {len(test_inputs.corpus):,} passages are longer than the model's "
                f"{base_model.max_seq_length}-token window, so their ends are cut off; split long passages into "
                "chunks before fine-tuning."
            )
        base_embeddings = encode_corpus(base_model, test_evaluator)  # once, for every scoring of this model
        baseline = evaluate_retrieval(
            base_model, test_evaluator, output_dir / "eval" / "baseline", corpus_embeddings=base_embeddings
        )
        log(f"baseline test NDCG@10: {baseline.metrics['test_cosine_ndcg@10']:.4f}")
        sizes = pick_embedding_sizes(base_embeddings.shape[1], recipe.matryoshka_dims)
        dimensions = {"baseline": score_dimensions(base_model, test_evaluator, base_embeddings, sizes)}
        del base_model, base_embeddings

    # 4. Training arguments (the same settings as the notebook)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir / "checkpoints"),
        num_train_epochs=recipe.epochs,
        per_device_train_batch_size=recipe.train_batch_size // world_size,  # the batch is shared by the processes
        per_device_eval_batch_size=config.eval_batch_size,
        learning_rate=recipe.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model=VALIDATION_METRIC,
        greater_is_better=True,
        fp16=hardware.fp16,
        bf16=hardware.bf16,
        optim=hardware.optim,
        dataloader_pin_memory=hardware.pin_memory,
        use_cpu=hardware.device == "cpu",  # also lets torchrun train with DDP (gloo) on machines without a GPU
        logging_steps=0.02,
        seed=training_seed,
        report_to="none",
    )

    # 4b. Hard negatives, mined with the base model (every process mines the same ones)
    if recipe.hard_negatives:
        miner = load_base_model(config.base_model, device=hardware.device)
        pairs = len(train_dataset)
        train_dataset, twins = add_hard_negatives(
            train_dataset, miner, recipe.hard_negatives, batch_size=config.eval_batch_size
        )
        del miner
        if len(train_dataset) < recipe.train_batch_size:
            raise ValueError(
                f"Hard-negative mining kept {len(train_dataset)} of {pairs} training pairs (a pair needs passages "
                "scoring at least 5% below its own), fewer than one batch: mine fewer negatives or use a smaller batch."
            )
        log(
            f"hard negatives: {recipe.hard_negatives} per pair for {len(train_dataset):,} of {pairs:,} pairs "
            f"({twins} dropped as near-copies of their positive, the rest without enough candidates)"
        )

    # 5. Train a fresh copy of the base model, with the loss built on that copy
    model = load_base_model(config.base_model, device=hardware.device)
    # with several processes, each question also meets the other processes' passages: TRAIN_BATCH_SIZE - 1 negatives
    loss = build_loss(model, recipe, gather_across_devices=world_size > 1)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=validation_dataset,
        loss=loss,
        evaluator=validation_evaluator,
    )
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    training_seconds = time.perf_counter() - started
    log(f"training took {training_seconds:.0f} s")
    if not main:
        return {}

    # 6. Save, evaluate the fine-tuned model, compare
    model_dir = output_dir / "model"
    trainer.model.save(str(model_dir))
    if not keep_checkpoints:
        shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
    # the last validation's corpus embeddings, if they came from these same weights (a 1-epoch run, or the last
    # epoch the best)
    finetuned_embeddings = encode_corpus(trainer.model, test_evaluator, reuse_from=validation_evaluator)
    finetuned = evaluate_retrieval(
        trainer.model, test_evaluator, output_dir / "eval" / "finetuned", corpus_embeddings=finetuned_embeddings
    )
    dimensions["fine-tuned"] = score_dimensions(trainer.model, test_evaluator, finetuned_embeddings, sizes)
    log(pd.concat(dimensions, axis=1).round(4).to_string())
    comparison = compare_per_query(
        baseline.per_query,
        finetuned.per_query,
        HEADLINE_METRICS,
        n_resamples=config.bootstrap_resamples,
        seed=config.seed,
    )
    log(build_comparison_table(comparison).to_string())
    add_results_to_model_card(model_dir, comparison, describe_run(config, splits, test_inputs, recipe))
    baseline.per_query.to_csv(output_dir / "eval" / "baseline" / "per_query.csv")
    finetuned.per_query.to_csv(output_dir / "eval" / "finetuned" / "per_query.csv")
    for figure in (
        plot_comparison(comparison, output_dir / "comparison.png", title="Test set, fine-tuned vs baseline"),
        plot_training_curve(trainer.state.log_history, VALIDATION_METRIC, output_dir / "training.png"),
        plot_dimensions(dimensions, output_dir / "dimensions.png"),
    ):
        plt.close(figure)

    results = collect_results(
        config,
        splits=splits,
        leakage=leakage,
        test_inputs=test_inputs,
        validation_inputs=validation_inputs,
        baseline=baseline,
        finetuned=finetuned,
        comparison=comparison,
        hardware=hardware,
        trainer=trainer,
        training_seconds=training_seconds,
        model_dir=model_dir,
        resumed_from=resume_from_checkpoint,
        world_size=world_size,
        dimensions=dimensions,
        recipe=recipe,
    )
    save_results(output_dir / "results.json", **results)
    return results


#: The parameters that :func:`evaluate_models` uses (the rest of a :class:`RunConfig` is about training).
EVALUATE_PARAMETERS = (
    "dataset",
    "test_dataset",
    "question_column",
    "context_column",
    "output_dir",
    "seed",
    "split",
    "group_column",
    "deduplicate_corpus",
    "eval_batch_size",
    "bootstrap_resamples",
)


def evaluate_models(
    models: Sequence[str],
    config: RunConfig,
    log: Any = print,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Score one model on the test split, or compare two on it query by query, and write ``results.json``.

    The data, split and evaluation settings come from ``config`` (the same split as a run with that
    config, so a fine-tuned model is scored on questions it never saw); its training fields are unused.

    Args:
        models: One or two Hub ids or model folders; with two, the first is the baseline.
        config: Dataset, columns, split, seed, group column, corpus mode, batch size and resamples.
        log: Called with progress messages and warnings.
        overwrite: Clear a non-empty ``config.output_dir`` first (otherwise it is refused).

    Returns:
        The content of ``results.json``: ``models``, ``metrics`` (one dict per model), ``comparison``
        (two models only), ``split``, ``evaluation`` and ``run``.
    """
    if not 1 <= len(models) <= 2:
        raise ValueError(f"Give one model to score or two to compare, got {len(models)}.")
    config.validate()
    for index, model in enumerate(models, start=1):
        check_model_reference(model, label=f"model {index}")
    splits, test_inputs, _ = split_and_check(config, log)
    output_dir = prepare_output_dir(config.output_dir, overwrite=overwrite, resumable=False)

    hardware = detect_hardware()
    evaluator = build_ir_evaluator(test_inputs, name="test", batch_size=config.eval_batch_size)
    scored = []
    for index, model in enumerate(models, start=1):
        result = evaluate_retrieval(
            load_base_model(model, device=hardware.device), evaluator, output_dir / "eval" / f"model_{index}"
        )
        result.per_query.to_csv(output_dir / "eval" / f"model_{index}" / "per_query.csv")
        log(f"model {index} ({model}): test NDCG@10 {result.metrics['test_cosine_ndcg@10']:.4f}")
        scored.append(result)
    results: dict[str, Any] = {
        "models": list(models),
        "metrics": [result.metrics for result in scored],
        "split": {
            "strategy": config.split,
            "group_column": config.group_column,
            "sizes": {name: len(frame) for name, frame in splits.items()},
        },
        "evaluation": {"test": test_inputs.summary(), "per_query_metrics": list(PER_QUERY_METRICS)},
        "run": {
            "parameters": {name: getattr(config, name) for name in EVALUATE_PARAMETERS},
            "packages": collect_environment(),
            "hardware": hardware.as_dict(),
        },
    }
    if len(scored) == 2:
        comparison = compare_per_query(
            scored[0].per_query,
            scored[1].per_query,
            HEADLINE_METRICS,
            n_resamples=config.bootstrap_resamples,
            seed=config.seed,
        )
        log(build_comparison_table(comparison).to_string())
        import matplotlib.pyplot as plt

        plt.close(plot_comparison(comparison, output_dir / "comparison.png", title="Test set, model 2 vs model 1"))
        results["comparison"] = comparison
    save_results(output_dir / "results.json", **results)
    return results


#: Environment variables that may hold a Hugging Face token, in the order they are looked at.
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def read_hub_token(environ: Mapping[str, str] = os.environ) -> str:
    """Return the Hugging Face token from the environment.

    Args:
        environ: The environment (``os.environ`` by default).

    Returns:
        The token.

    Raises:
        ValueError: No token is set; the message says which variable to set (and never shows a token).
    """
    for variable in TOKEN_VARIABLES:
        if environ.get(variable, "").strip():
            return environ[variable].strip()
    raise ValueError(
        f"Pushing to the Hugging Face Hub needs a token with write access in the environment variable "
        f"{TOKEN_VARIABLES[0]} (e.g. export {TOKEN_VARIABLES[0]}=... from https://huggingface.co/settings/tokens)."
    )


def push_model(model_dir: str | Path, repo_id: str, token: str, api: Any = None, private: bool = True) -> str:
    """Upload a saved model folder (with its model card) to a Hugging Face Hub model repository.

    Args:
        model_dir: The saved model's folder.
        repo_id: ``"user/name"`` of the repository, created if it does not exist.
        token: A token with write access (see :func:`read_hub_token`); it is never printed.
        api: A ``huggingface_hub.HfApi`` (default: a new one); tests pass a fake.
        private: Create the repository as private.

    Returns:
        The repository's address.

    Raises:
        OSError: The upload failed; the message names the repository (the token is masked).
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    try:
        api.create_repo(repo_id=repo_id, token=token, private=private, exist_ok=True)
        api.upload_folder(
            folder_path=str(model_dir), repo_id=repo_id, token=token, commit_message="Upload fine-tuned model"
        )
    except Exception as err:  # network, permission and name errors of the Hub client
        reason = str(err).replace(token, "***")
        raise OSError(f"Could not push to the Hub repository {repo_id!r}: {type(err).__name__}: {reason}") from None
    return f"https://huggingface.co/{repo_id}"
