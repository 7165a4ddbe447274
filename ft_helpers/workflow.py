"""The notebook's steps as functions, for ``python -m ft_helpers run`` and the benchmarks.

Each step function makes the same library calls as the notebook cell of the same name, with the
notebook's ``EVAL_BATCH_SIZE`` written ``config.eval_batch_size``: ``tests/notebook/test_parity.py``
runs both on the same input and compares their results, and ``tests/notebook/test_same_calls.py``
compares the constructor calls word for word. Change a step here and in the notebook together.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .config import Recipe, RunConfig
from .data import QADataError, load_qa_pairs
from .evaluation import (
    PER_QUERY_METRICS,
    IRInputs,
    RetrievalResult,
    build_ir_inputs,
    check_evaluation_sizes,
    evaluate_retrieval,
    score_dimensions,
)
from .outputs import (
    LOCK_NAME,
    RECORD_NAME,
    check_free_space,
    check_output_dir_free,
    check_resume,
    checkpoint_step,
    describe_run_inputs,
    describe_write_failure,
    is_write_failure,
    lock_output_dir,
    measure_model_bytes,
    remove_incomplete_checkpoints,
    start_run,
)
from .provenance import collect_provenance
from .report import (
    HEADLINE_METRICS,
    add_results_to_model_card,
    build_comparison_table,
    collect_results,
    describe_run,
    plot_comparison,
    plot_dimensions,
    plot_training_curve,
    save_results,
)
from .search import pick_calibration_passages, score_compressed
from .serve import load_encoder, read_manifest
from .split import add_test_set, split_qa_pairs, warn_generated
from .stats import compare_per_query
from .training import (
    EMBEDDING_SIZES,
    HardwareSettings,
    build_pair_dataset,
    check_batch_size,
    check_model_reference,
    count_truncated,
    detect_hardware,
    pick_embedding_sizes,
    show_compact_progress,
)

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    from torch import Tensor

#: The validation score that picks the checkpoint (``metric_for_best_model``), as the trainer logs it.
VALIDATION_METRIC = "eval_validation_cosine_ndcg@10"


def load_and_split(config: RunConfig, skip_bad_rows: bool = False) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Load the pairs (``DATASET``, plus ``TEST_DATASET``'s rows marked as test) and split them.

    Args:
        config: The run's parameters.
        skip_bad_rows: Drop (with a warning) rather than refuse a CSV's malformed records.

    Returns:
        The pairs, whose passages form the search corpus, and ``{"train", "validation", "test"}`` splits of them.
    """
    name = f"DATASET {config.dataset!r}"  # messages name the file, and which of the two it is
    pairs = load_qa_pairs(
        config.dataset,
        config.question_column,
        config.context_column,
        drop_empty=True,
        skip_bad_rows=skip_bad_rows,
        name=name,
    )
    check_group_column(pairs, config.group_column, name)
    if config.test_dataset is not None:  # your held-out file: its rows become the test split
        name = f"TEST_DATASET {config.test_dataset!r}"
        test_pairs = load_qa_pairs(
            config.test_dataset,
            config.question_column,
            config.context_column,
            drop_empty=True,
            skip_bad_rows=skip_bad_rows,
            name=name,
            column_advice=TEST_COLUMN_ADVICE,
        )
        check_group_column(test_pairs, config.group_column, name)
        pairs = add_test_set(pairs, test_pairs)
    splits = split_qa_pairs(pairs, strategy=config.split, seed=config.seed, group_column=config.group_column)
    return pairs, splits


#: What a missing column's message tells for TEST_DATASET: the column options name the columns of both files.
TEST_COLUMN_ADVICE = (
    "QUESTION_COLUMN / CONTEXT_COLUMN name the columns of DATASET and TEST_DATASET alike: rename TEST_DATASET's "
    "columns to DATASET's."
)


def check_group_column(pairs: pd.DataFrame, group_column: str | None, name: str) -> None:
    """Refuse a file without the group column, naming the file (the split would only name the merged columns).

    Args:
        pairs: One file's loaded pairs.
        group_column: ``GROUP_COLUMN`` (None: nothing to check).
        name: What to call the file, e.g. ``"TEST_DATASET 'test.csv'"``.

    Raises:
        QADataError: The column is missing.
    """
    if group_column is None or group_column in pairs.columns:
        return
    shown = ", ".join(map(str, pairs.columns[:8])) + (", ..." if len(pairs.columns) > 8 else "")
    raise QADataError(
        f"{name}: group column {group_column!r} not found. Available columns: {shown}. Set GROUP_COLUMN to one of "
        "them, or None."
    )


def build_evaluator(inputs: IRInputs, name: str, config: RunConfig) -> InformationRetrievalEvaluator:
    """Build sentence-transformers' ``InformationRetrievalEvaluator`` over ``inputs``, as the notebook does.

    Args:
        inputs: From :func:`~ft_helpers.evaluation.build_ir_inputs`.
        name: Prefix of its metric keys: ``"test"`` gives ``test_cosine_ndcg@10``.
        config: The run's parameters (``eval_batch_size``).

    Returns:
        The evaluator, writing each query's ranking to its output folder.
    """
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    from sentence_transformers.util import cos_sim

    return InformationRetrievalEvaluator(
        queries=inputs.queries,
        corpus=inputs.corpus,
        relevant_docs=inputs.relevant_docs,
        name=name,
        score_functions={"cosine": cos_sim},
        batch_size=config.eval_batch_size,
        write_predictions=True,
    )


def score_model(
    model: SentenceTransformer, evaluator: InformationRetrievalEvaluator, output_dir: str | Path, config: RunConfig
) -> tuple[RetrievalResult, Tensor]:
    """Embed the evaluator's corpus once and score the model with it, as the notebook does.

    Args:
        model: The model to score.
        evaluator: From :func:`build_evaluator`.
        output_dir: Folder for the evaluator's files.
        config: The run's parameters (``eval_batch_size``).

    Returns:
        The scores, and the corpus embeddings (to score smaller embedding sizes without embedding it again).
    """
    corpus_embeddings = model.encode_document(
        evaluator.corpus, batch_size=config.eval_batch_size, convert_to_tensor=True, show_progress_bar=True
    )
    result = evaluate_retrieval(model, evaluator, output_dir, corpus_embeddings=corpus_embeddings)
    return result, corpus_embeddings


def score_compression(
    model: SentenceTransformer,
    inputs: IRInputs,
    corpus_embeddings: Tensor,
    calibration: list[str],
    sizes: list[int],
    config: RunConfig,
) -> pd.DataFrame:
    """Score retrieval at each embedding size in float32, int8 and binary FAISS indexes, as the notebook does.

    Args:
        model: The model that embedded ``corpus_embeddings``.
        inputs: The test split's evaluator inputs.
        corpus_embeddings: Its corpus, as :func:`score_model` embedded it.
        calibration: Training passages whose embeddings set int8's ranges.
        sizes: Embedding sizes.
        config: The run's parameters (``eval_batch_size``).

    Returns:
        :func:`~ft_helpers.search.score_compressed`'s table: bytes per passage and NDCG@10.
    """
    queries = model.encode_query(list(inputs.queries.values()), batch_size=config.eval_batch_size)
    calibration_embeddings = model.encode_document(calibration, batch_size=config.eval_batch_size)
    return score_compressed(
        queries,
        corpus_embeddings.cpu().numpy(),
        list(inputs.queries),
        list(inputs.corpus),
        inputs.relevant_docs,
        calibration_embeddings,
        dimensions=tuple(sizes),
    )


def train(
    config: RunConfig,
    recipe: Recipe,
    hardware: HardwareSettings,
    train_dataset: Dataset,
    validation_dataset: Dataset,
    validation_evaluator: InformationRetrievalEvaluator,
    resume_from_checkpoint: str | None = None,
) -> SentenceTransformerTrainer:
    """Load a fresh copy of the base model, build the loss, the arguments and the trainer, and train.

    The notebook's training cell, with ``SORT_BY_LENGTH`` written ``config.sort_by_length``.

    Args:
        config: The run's parameters.
        recipe: From :meth:`~ft_helpers.config.RunConfig.training_recipe`.
        hardware: From :func:`~ft_helpers.training.detect_hardware`.
        train_dataset: (anchor, positive) pairs to train on.
        validation_dataset: Pairs for the validation loss.
        validation_evaluator: Scores retrieval after each epoch; the best epoch is kept.
        resume_from_checkpoint: A checkpoint folder to go on from (None: start afresh).

    Returns:
        The trainer after training, its model the best epoch's.
    """
    from sentence_transformers import SentenceTransformer, SentenceTransformerModelCardData, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    from .losses import SortedCachedMultipleNegativesRankingLoss, SortedMultipleNegativesRankingLoss

    card = SentenceTransformerModelCardData(
        language="en",
        model_name=f"{Path(config.base_model).name} fine-tuned for retrieval on {Path(config.dataset).name}",
        train_datasets=[{"name": Path(config.dataset).name}],
        generate_widget_examples=False,
    )
    model = SentenceTransformer(config.base_model, device=hardware.device, model_card_data=card)

    if recipe.mini_batch_size and config.sort_by_length:
        loss = SortedCachedMultipleNegativesRankingLoss(model, mini_batch_size=recipe.mini_batch_size)
    elif recipe.mini_batch_size:
        loss = CachedMultipleNegativesRankingLoss(model, mini_batch_size=recipe.mini_batch_size)
    elif config.sort_by_length:
        loss = SortedMultipleNegativesRankingLoss(model)
    else:
        loss = MultipleNegativesRankingLoss(model)
    if recipe.matryoshka_dims:
        sizes = pick_embedding_sizes(model.get_embedding_dimension(), recipe.matryoshka_dims)
        loss = MatryoshkaLoss(model, loss, matryoshka_dims=sizes)

    training_seed = config.seed if config.training_seed is None else config.training_seed
    args = SentenceTransformerTrainingArguments(
        output_dir=f"{config.output_dir}/checkpoints",
        num_train_epochs=recipe.epochs,
        per_device_train_batch_size=recipe.train_batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        learning_rate=recipe.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="eval_validation_cosine_ndcg@10",
        greater_is_better=True,
        fp16=hardware.fp16,
        bf16=hardware.bf16,
        optim=hardware.optim,
        dataloader_pin_memory=hardware.pin_memory,
        use_cpu=hardware.device == "cpu",
        logging_steps=0.02,
        seed=training_seed,
        report_to="none",
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=validation_dataset,
        loss=loss,
        evaluator=validation_evaluator,
    )
    show_compact_progress(trainer)
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer


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
    files = [path for path in folder.iterdir() if path.name != LOCK_NAME] if folder.is_dir() else []  # the run's lock
    checkpoints = list((folder / "checkpoints").glob("checkpoint-*"))
    if resume and not checkpoints and (folder / "results.json").is_file():
        raise ValueError(
            f"Nothing to resume in {str(folder)!r}: its run finished (results.json). Choose a new folder, or pass "
            "overwrite=True to run again."
        )
    if resume and not checkpoints and not (folder / RECORD_NAME).is_file():
        raise ValueError(
            f"Nothing to resume in {str(folder)!r}: it holds no checkpoints/checkpoint-* folder, nor the {RECORD_NAME} "
            "of a run that started."
        )
    if files and not (overwrite or resume):
        go_on = ", or resume=True to go on from its last checkpoint" if resumable else ""
        raise ValueError(
            f"OUTPUT_DIR {str(folder)!r} is not empty: choose a new folder, or pass overwrite=True to delete its "
            f"files first{go_on}."
        )
    if files and overwrite:
        for path in files:  # all but the lock, which the run holds
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / ".write-test"
    try:
        probe.write_text("", encoding="utf-8")
    except OSError as err:
        raise OSError(f"Cannot write to OUTPUT_DIR {str(folder)!r}: {err.strerror or err}.") from None
    probe.unlink()
    return folder


def run(
    config: RunConfig,
    *,
    command: str = "ft_helpers.workflow.run",
    log: Any = print,
    resume: bool = False,
    overwrite: bool = False,
    keep_checkpoints: bool = False,
    skip_bad_rows: bool = False,
) -> dict[str, Any]:
    """Check, load, split, score the base model, fine-tune, score again, compare, and write ``results.json``.

    Everything that can be checked without a model is checked first (parameters, model reference, data, split,
    evaluation sizes, output folder), so bad input fails within seconds. ``results.json`` is written last.

    Args:
        config: The run's parameters.
        command: How the run was started, for ``results.json`` (the command line does this).
        log: Called with progress messages and warnings.
        resume: Go on from the last checkpoint in ``OUTPUT_DIR/checkpoints`` of an interrupted run with the same
            parameters (its optimizer, scheduler and random states are restored).
        overwrite: Clear a non-empty ``OUTPUT_DIR`` first (otherwise a non-empty one is refused, unless resuming).
        keep_checkpoints: Keep ``OUTPUT_DIR/checkpoints`` after the best model is saved.
        skip_bad_rows: Drop a CSV's malformed records (with a warning that counts them) instead of refusing it.

    Returns:
        The content of ``results.json`` (see :func:`collect_results`).
    """
    # 0. Everything that needs no model: parameters, model reference, data, split, sizes, output folder
    config.validate()
    check_output_dir_free(config.output_dir)  # another run's folder is refused at once (locked below)
    hardware = detect_hardware()
    recipe = config.training_recipe(hardware.device)
    check_model_reference(config.base_model)
    pairs, splits = load_and_split(config, skip_bad_rows)
    test_inputs = build_ir_inputs(splits["test"], pairs, deduplicate=config.deduplicate_corpus)
    validation_inputs = build_ir_inputs(splits["validation"], pairs, deduplicate=config.deduplicate_corpus)
    for warning in check_evaluation_sizes(test_inputs, validation_inputs):
        log(f"warning: {warning}")
    training_seed = config.seed if config.training_seed is None else config.training_seed
    train_dataset = build_pair_dataset(splits["train"], recipe.max_train_samples, seed=training_seed)
    validation_dataset = build_pair_dataset(splits["validation"])
    check_batch_size(len(train_dataset), recipe.train_batch_size)
    with lock_output_dir(config.output_dir, log=log):  # no other run writes here until this one ends
        output_dir = prepare_output_dir(config.output_dir, overwrite=overwrite, resume=resume)
        inputs = describe_run_inputs(config.settings(recipe), pairs)
        changes = check_resume(output_dir, inputs, log=log) if resume else {}
        model_bytes = measure_model_bytes(config.base_model)
        check_free_space(output_dir, model_bytes)
        try:
            resume_from_checkpoint = start_run(output_dir, inputs, resume, log=log)
            resumed = {"from_step": step_of(resume_from_checkpoint), "changed": changes} if resume else None
            data = RunData(splits, test_inputs, validation_inputs, train_dataset, validation_dataset)
            return train_and_report(
                config,
                recipe,
                hardware,
                data,
                output_dir,
                resume_from_checkpoint,
                resumed,
                command,
                log,
                keep_checkpoints,
            )
        except BaseException as err:
            removed = remove_incomplete_checkpoints(output_dir / "checkpoints", log=log)
            if not (output_dir / "results.json").is_file():  # a model that no results.json describes: maybe partial
                shutil.rmtree(output_dir / "model", ignore_errors=True)
            if is_write_failure(err, output_dir):
                raise OSError(describe_write_failure(err, output_dir, model_bytes, removed)) from None
            raise


def step_of(checkpoint: str | None) -> int | None:
    """Return the training step of a ``checkpoint-<step>`` folder (0: none, training starts from the beginning)."""
    return checkpoint_step(checkpoint) if checkpoint else 0


@dataclass(frozen=True)
class RunData:
    """A run's data, loaded, split and checked: what :func:`train_and_report` trains and scores with."""

    splits: dict[str, pd.DataFrame]
    test_inputs: IRInputs
    validation_inputs: IRInputs
    train_dataset: Dataset
    validation_dataset: Dataset


def train_and_report(
    config: RunConfig,
    recipe: Recipe,
    hardware: HardwareSettings,
    data: RunData,
    output_dir: Path,
    resume_from_checkpoint: str | None,
    resumed: dict[str, Any] | None,
    command: str,
    log: Any,
    keep_checkpoints: bool,
) -> dict[str, Any]:
    """Score the base model, fine-tune, score again, compare and write ``results.json``: :func:`run`'s steps 1-5.

    Args:
        config: The run's parameters.
        recipe: The recipe to train with.
        hardware: The device settings.
        data: The checked data and its splits.
        output_dir: The output folder, locked and prepared.
        resume_from_checkpoint: The checkpoint to go on from (None: train from the beginning).
        resumed: For a resumed run, the step it goes on from and the settings it changed (None: not resumed).
        command: How the run was started, for ``results.json``.
        log: Called with progress messages and warnings.
        keep_checkpoints: Keep ``OUTPUT_DIR/checkpoints`` after the best model is saved.

    Returns:
        The content of ``results.json``.
    """
    import matplotlib.pyplot as plt
    from sentence_transformers import SentenceTransformer

    splits, test_inputs, validation_inputs = data.splits, data.test_inputs, data.validation_inputs
    train_dataset, validation_dataset = data.train_dataset, data.validation_dataset
    log(f"split sizes: { {name: len(frame) for name, frame in splits.items()} }")
    if generated := warn_generated(splits["test"]):
        log(f"warning: {generated}")
    log(f"device: {hardware.device} ({hardware.device_name}), precision {hardware.precision}")
    log(f"recipe '{recipe.name}': {recipe.describe(config.sort_by_length)}")

    # 1. Evaluators: each split's questions against every passage in the data
    test_evaluator = build_evaluator(test_inputs, "test", config)
    validation_evaluator = build_evaluator(validation_inputs, "validation", config)

    # 2. The base model's scores, at full size and cut to the smaller embedding sizes
    base_model = SentenceTransformer(config.base_model, device=hardware.device)
    truncated = count_truncated(base_model, list(test_inputs.corpus.values()))
    if truncated:
        log(
            f"warning: {truncated:,} of {len(test_inputs.corpus):,} passages are longer than the model's "
            f"{base_model.max_seq_length}-token window, so their ends are cut off; split long passages into "
            "chunks before fine-tuning."
        )
    baseline, base_embeddings = score_model(base_model, test_evaluator, output_dir / "eval" / "baseline", config)
    log(f"baseline test NDCG@10: {baseline.metrics['test_cosine_ndcg@10']:.4f}")
    sizes = pick_embedding_sizes(base_embeddings.shape[1], recipe.matryoshka_dims)
    dimensions = {"baseline": score_dimensions(base_model, test_evaluator, base_embeddings, sizes)}
    calibration = pick_calibration_passages(splits, seed=config.seed)
    compression = {"baseline": score_compression(base_model, test_inputs, base_embeddings, calibration, sizes, config)}
    del base_model, base_embeddings

    # 3. Fine-tune
    started = time.perf_counter()
    trainer = train(
        config, recipe, hardware, train_dataset, validation_dataset, validation_evaluator, resume_from_checkpoint
    )
    training_seconds = time.perf_counter() - started
    log(f"training took {training_seconds:.0f} s; best validation NDCG@10 {trainer.state.best_metric:.4f}")

    # 4. Score the fine-tuned model on the test split, compare, then save it (its model card gets the test scores)
    model = trainer.model
    finetuned, finetuned_embeddings = score_model(model, test_evaluator, output_dir / "eval" / "finetuned", config)
    comparison = compare_per_query(
        baseline.per_query,
        finetuned.per_query,
        HEADLINE_METRICS,
        n_resamples=config.bootstrap_resamples,
        seed=config.seed,
    )
    log(build_comparison_table(comparison).to_string())
    model_dir = output_dir / "model"
    model.save(str(model_dir))
    add_results_to_model_card(model_dir, comparison, describe_run(config, recipe, splits, test_inputs))
    dimensions["fine-tuned"] = score_dimensions(model, test_evaluator, finetuned_embeddings, sizes)
    log(pd.concat(dimensions, axis=1).round(4).to_string())
    compression["fine-tuned"] = score_compression(model, test_inputs, finetuned_embeddings, calibration, sizes, config)
    log(pd.concat(compression, axis=1).round(4).to_string())

    # 5. Plots, per-query scores and results.json (last)
    for figure in (
        plot_comparison(comparison, output_dir / "comparison.png", title="Test set, fine-tuned vs baseline"),
        plot_training_curve(trainer.state.log_history, VALIDATION_METRIC, output_dir / "training.png"),
        plot_dimensions(dimensions, output_dir / "dimensions.png"),
    ):
        plt.close(figure)
    baseline.per_query.to_csv(output_dir / "eval" / "baseline" / "per_query.csv")
    finetuned.per_query.to_csv(output_dir / "eval" / "finetuned" / "per_query.csv")
    results = collect_results(
        config,
        recipe,
        splits=splits,
        test_inputs=test_inputs,
        validation_inputs=validation_inputs,
        baseline=baseline,
        finetuned=finetuned,
        comparison=comparison,
        dimensions=dimensions,
        hardware=hardware,
        trainer=trainer,
        training_seconds=training_seconds,
        command=command,
        resumed_from=resume_from_checkpoint,
        compression=compression,
    )
    results["training"]["resume"] = resumed
    save_results(output_dir / "results.json", **results)
    if not keep_checkpoints:  # only now: until results.json is whole, --resume can still finish the run
        shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
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
#: The splits :func:`evaluate_models` can score on.
EVALUATION_SUBSETS = ("test", "validation")


def evaluate_models(
    models: list[str],
    config: RunConfig,
    *,
    subset: str = "test",
    command: str = "ft_helpers.workflow.evaluate_models",
    log: Any = print,
    overwrite: bool = False,
    backends: list[str] | None = None,
    compression: bool = False,
    skip_bad_rows: bool = False,
) -> dict[str, Any]:
    """Score one model on the test (or validation) split, or compare two on it query by query; write ``results.json``.

    The data, split and evaluation settings come from ``config`` (the same split as a run with that config, so a
    fine-tuned model is scored on questions it never saw); its training fields are unused.

    Args:
        models: One or two Hub ids or model folders; with two, the first is the baseline.
        config: Dataset, columns, split, seed, group column, corpus mode, batch size and resamples.
        subset: ``"test"`` or ``"validation"``.
        command: How the evaluation was started, for ``results.json``.
        log: Called with progress messages and warnings.
        overwrite: Clear a non-empty ``config.output_dir`` first (otherwise it is refused).
        backends: How to run each model: ``"torch"`` (default), or ``"onnx"`` / ``"onnx-int8"`` for a model folder
            exported by :func:`ft_helpers.serve.export_encoder`; one for all models, or one per model.
        compression: Also score each model at smaller embedding sizes in float32, int8 and binary FAISS indexes,
            as a run does (int8 ranges from training passages that answer no validation or test question).
        skip_bad_rows: Drop a CSV's malformed records (with a warning), as the run that made the split did.

    Returns:
        The content of ``results.json``: ``settings``, ``models``, ``metrics`` (one dict per model), ``comparison``
        (two models only), ``compression`` (with ``compression``: one table per model, as records), ``split``,
        ``evaluation`` and ``provenance``.
    """
    import matplotlib.pyplot as plt
    from sentence_transformers import SentenceTransformer

    if not 1 <= len(models) <= 2:
        raise ValueError(f"Give one model to score or two to compare, got {len(models)}.")
    if subset not in EVALUATION_SUBSETS:
        raise ValueError(f"subset must be one of {', '.join(EVALUATION_SUBSETS)}, got {subset!r}.")
    backends = list(backends or ["torch"])
    if len(backends) == 1:
        backends *= len(models)
    if len(backends) != len(models):
        raise ValueError(f"Give one backend for all models or one per model: {len(backends)} for {len(models)}.")
    config.validate()
    for index, (model, backend) in enumerate(zip(models, backends, strict=True), start=1):
        check_model_reference(model, label=f"model {index}")
        if backend != "torch":
            read_manifest(model, backend)  # an export of the model as it is now
    pairs, splits = load_and_split(config, skip_bad_rows)
    inputs = build_ir_inputs(splits[subset], pairs, deduplicate=config.deduplicate_corpus)
    if generated := warn_generated(splits[subset]):
        log(f"warning: {generated.replace('test questions', f'{subset} questions')}")
    validation_inputs = build_ir_inputs(splits["validation"], pairs, deduplicate=config.deduplicate_corpus)
    for warning in check_evaluation_sizes(inputs, validation_inputs):
        log(f"warning: {warning}")
    output_dir = prepare_output_dir(config.output_dir, overwrite=overwrite, resumable=False)

    hardware = detect_hardware()
    evaluator = build_evaluator(inputs, subset, config)
    calibration = pick_calibration_passages(splits, seed=config.seed) if compression else []
    scored, compressed = [], []
    for index, (model, backend) in enumerate(zip(models, backends, strict=True), start=1):
        folder = output_dir / "eval" / f"model_{index}"
        if backend == "torch":
            encoder = SentenceTransformer(model, device=hardware.device)
        else:
            encoder = load_encoder(model, backend)
        result, embeddings = score_model(encoder, evaluator, folder, config)
        result.per_query.to_csv(folder / "per_query.csv")
        name = model if backend == "torch" else f"{model}, {backend}"
        log(f"model {index} ({name}): {subset} NDCG@10 {result.metrics[f'{subset}_cosine_ndcg@10']:.4f}")
        scored.append(result)
        if compression:
            sizes = pick_embedding_sizes(embeddings.shape[1], EMBEDDING_SIZES)  # no recipe here: the usual sizes
            compressed.append(score_compression(encoder, inputs, embeddings, calibration, sizes, config))
            log(compressed[-1].round(4).to_string())
    results: dict[str, Any] = {
        "settings": {name: getattr(config, name) for name in EVALUATE_PARAMETERS} | {"subset": subset},
        "models": list(models),
        "backends": backends,
        "metrics": [result.metrics for result in scored],
        "split": {"sizes": {name: len(frame) for name, frame in splits.items()}},
        "evaluation": {subset: inputs.summary(), "per_query_metrics": list(PER_QUERY_METRICS)},
        "provenance": collect_provenance(command, config.dataset, config.test_dataset, hardware.as_dict()),
    }
    if compression:
        results["compression"] = [frame.reset_index().to_dict(orient="records") for frame in compressed]
    if len(scored) == 2:
        comparison = compare_per_query(
            scored[0].per_query,
            scored[1].per_query,
            HEADLINE_METRICS,
            n_resamples=config.bootstrap_resamples,
            seed=config.seed,
        )
        log(build_comparison_table(comparison).to_string())
        title = f"{subset.capitalize()} set, model 2 vs model 1"
        plt.close(plot_comparison(comparison, output_dir / "comparison.png", title=title))
        results["comparison"] = comparison
    save_results(output_dir / "results.json", **results)
    return results


def push_model(model_dir: str | Path, repo_id: str, token: str, api: Any = None, private: bool = True) -> str:
    """Upload a saved model folder (with its model card) to a Hugging Face Hub model repository.

    Args:
        model_dir: The saved model's folder.
        repo_id: ``"user/name"`` of the repository, created if it does not exist.
        token: A token with write access (``huggingface_hub.get_token()``); it is never printed.
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
