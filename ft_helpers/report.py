"""Present the results: comparison table, plots, rank changes, the model card section, and ``results.json``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .evaluation import PER_QUERY_METRICS
from .provenance import collect_provenance
from .split import count_generated, report_leakage
from .training import read_validation_curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from sentence_transformers import SentenceTransformerTrainer

    from .config import Recipe, RunConfig
    from .evaluation import IRInputs, RetrievalResult
    from .training import HardwareSettings

#: Metrics shown in the comparison table and plot, in this order.
HEADLINE_METRICS = ("ndcg@10", "mrr@10", "map@100", "accuracy@1", "accuracy@3", "accuracy@5", "accuracy@10")


def build_comparison_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """Format a :func:`~ft_helpers.stats.compare_per_query` result for reading.

    Args:
        comparison: Columns ``metric, baseline, finetuned, delta, ci_low, ci_high, p_value``.

    Returns:
        Indexed by metric, with columns ``baseline``, ``fine-tuned``, ``delta``, ``95% CI``,
        ``improvement %`` and ``p-value``; numbers rounded to 4 places.
    """
    table = pd.DataFrame(
        {
            "baseline": comparison["baseline"].round(4).to_numpy(),
            "fine-tuned": comparison["finetuned"].round(4).to_numpy(),
            "delta": comparison["delta"].round(4).to_numpy(),
            "95% CI": [
                f"[{lo:+.4f}, {hi:+.4f}]" for lo, hi in zip(comparison["ci_low"], comparison["ci_high"], strict=True)
            ],
            "improvement %": (100 * comparison["delta"] / comparison["baseline"]).round(2).to_numpy(),
            "p-value": comparison["p_value"].map(lambda p: f"{p:.4f}" if p >= 1e-4 else "<0.0001").to_numpy(),
        },
        index=pd.Index(comparison["metric"], name="metric"),
    )
    return table


def plot_comparison(comparison: pd.DataFrame, path: str | Path | None = None, title: str = "") -> Figure:
    """Plot baseline vs fine-tuned per metric, and the difference with its confidence interval.

    Args:
        comparison: Output of :func:`~ft_helpers.stats.compare_per_query`.
        path: Where to save the figure as PNG (None: do not save).
        title: Figure title.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    labels = comparison["metric"].tolist()
    y = np.arange(len(labels))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.55 * len(labels) + 1.6), sharey=True)
    left.barh(y - 0.2, comparison["baseline"], height=0.4, label="baseline", color="#9aa5b1")
    left.barh(y + 0.2, comparison["finetuned"], height=0.4, label="fine-tuned", color="#2b6cb0")
    left.set_yticks(y, labels)
    left.invert_yaxis()
    left.set_xlim(0, 1)
    left.set_xlabel("score on the test set")
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    for row, (delta, low, high) in enumerate(comparison[["delta", "ci_low", "ci_high"]].to_numpy()):
        # green: the whole interval is above zero; red: below zero; grey: it straddles zero
        color = "#2f855a" if low > 0 else "#c53030" if high < 0 else "#718096"
        xerr = [[max(delta - low, 0.0)], [max(high - delta, 0.0)]]  # clamp float round-off
        right.errorbar(delta, row, xerr=xerr, fmt="o", color=color, capsize=4)
    right.axvline(0, color="black", linewidth=0.8)
    right.set_xlabel("fine-tuned − baseline (95% bootstrap CI)")
    for axis in (left, right):
        axis.grid(axis="x", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def plot_dimensions(
    dimensions: dict[str, pd.DataFrame], path: str | Path | None = None, metric: str = "ndcg@10"
) -> Figure:
    """Plot a test metric against the embedding size, one line per model (Matryoshka sizes).

    Args:
        dimensions: Model label -> :func:`~ft_helpers.evaluation.score_dimensions` of that model.
        path: Where to save the figure as PNG (None: do not save).
        metric: The column to plot.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: ``dimensions`` is empty or a table lacks ``metric``.
    """
    import matplotlib.pyplot as plt

    if not dimensions:
        raise ValueError("No models to plot: pass {label: score_dimensions(...)}.")
    missing = [label for label, table in dimensions.items() if metric not in table.columns]
    if missing:
        raise ValueError(f"No {metric!r} column in the table(s) of {', '.join(missing)}.")
    fig, axis = plt.subplots(figsize=(6.5, 3.8))
    colors = iter(["#9aa5b1", "#2b6cb0", "#2f855a", "#c05621"])
    for label, table in dimensions.items():
        sizes = table.index.to_numpy()
        axis.plot(sizes, table[metric], marker="o", label=label, color=next(colors, None))
        for size, value in zip(sizes, table[metric], strict=True):
            axis.annotate(f"{value:.3f}", (size, value), textcoords="offset points", xytext=(0, 6), ha="center")
    axis.set_xscale("log", base=2)
    axis.set_xticks(sizes, [str(size) for size in sizes])
    axis.set_xlabel("embedding size (first d numbers of each embedding)")
    axis.set_ylabel(f"test {metric}")
    axis.grid(alpha=0.3)
    axis.legend(frameon=False)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def plot_training_curve(log_history: list[dict[str, Any]], metric: str, path: str | Path | None = None) -> Figure:
    """Plot the training (and validation) loss by step and a validation metric by epoch.

    Args:
        log_history: The trainer's log history (``trainer.state.log_history``).
        metric: The validation key to plot, e.g. ``"eval_validation_cosine_ndcg@10"``.
        path: Where to save the figure as PNG (None: do not save).

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: No entry holds the training loss or ``metric`` (the message lists the keys logged).
    """
    import matplotlib.pyplot as plt

    losses = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry]
    eval_losses = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    evals = [(entry["epoch"], entry[metric]) for entry in log_history if metric in entry]
    for key, found in (("loss", losses), (metric, evals)):
        if not found:
            logged = sorted({name for entry in log_history for name in entry})
            raise ValueError(
                f"No {key!r} in the log history ({len(log_history)} entries; keys logged: "
                f"{', '.join(logged) or 'none'}). Pass trainer.state.log_history after training, with the "
                "evaluator's metric name."
            )
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5))
    left.plot(*zip(*losses, strict=True), color="#2b6cb0", label="training")
    if eval_losses:
        left.plot(*zip(*eval_losses, strict=True), marker="o", color="#dd6b20", label="validation")
        left.legend(frameon=False)
    left.set(xlabel="step", ylabel="loss", title="loss")
    right.plot(*zip(*evals, strict=True), marker="o", color="#2f855a")
    right.set(xlabel="epoch", ylabel=metric.removeprefix("eval_"), title="validation retrieval")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


#: Where the right passage can rank, as a RAG user sees it: first, among the top 10, or further down.
RANK_BANDS = ("1", "2-10", ">10")


def _rank_bands(baseline: pd.DataFrame, finetuned: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    def band(rank: float) -> str:
        if rank == 1:
            return RANK_BANDS[0]
        return RANK_BANDS[1] if rank <= 10 else RANK_BANDS[2]  # NaN (not in the top 100) compares False

    return baseline["rank"].map(band), finetuned.loc[baseline.index, "rank"].map(band)


def tabulate_rank_bands(baseline: pd.DataFrame, finetuned: pd.DataFrame) -> pd.DataFrame:
    """Count test questions by where their right passage ranked before and after fine-tuning.

    Args:
        baseline: Per-query table of the base model (``rank`` column; NaN: not in the top 100).
        finetuned: Per-query table of the fine-tuned model, same queries.

    Returns:
        A 3 x 3 table of counts: rows are the base model's band (``"1"``, ``"2-10"``, ``">10"``),
        columns the fine-tuned model's. The diagonal stayed put; above it got worse, below it better.
    """
    before, after = _rank_bands(baseline, finetuned)
    table = pd.crosstab(
        pd.Categorical(before, categories=RANK_BANDS), pd.Categorical(after, categories=RANK_BANDS), dropna=False
    )
    table.index.name, table.columns.name = "base model", "fine-tuned"
    return table


#: The band moves :func:`find_rank_changes` picks examples of, gains first, and what each means.
RANK_EVENTS = {
    (">10", "1"): "entered the top 1 from outside the top 10",
    (">10", "2-10"): "entered the top 10",
    ("2-10", "1"): "entered the top 1",
    ("1", ">10"): "left the top 10 from the top 1",
    ("1", "2-10"): "left the top 1",
    ("2-10", ">10"): "left the top 10",
}


def find_rank_changes(baseline: pd.DataFrame, finetuned: pd.DataFrame, n: int = 1) -> pd.DataFrame:
    """Pick questions whose right passage entered or left the top 1 or the top 10 after fine-tuning.

    Moves inside a band (rank 51 -> 79, or 3 -> 7) do not change what a RAG system retrieves at those
    cut-offs, so they are never picked. For each band move in :data:`RANK_EVENTS` the ``n`` questions
    with the largest rank change are picked (a passage missing from the top 100 counts as rank 101).

    Args:
        baseline: Per-query table of the base model (``rank`` and ``top_ids`` columns).
        finetuned: Per-query table of the fine-tuned model, same queries.
        n: How many questions to pick per band move.

    Returns:
        Up to ``6 * n`` rows (index: query id), gains first, with ``rank_before``, ``rank_after``,
        ``change`` (positive: moved up), ``direction`` (``"improved"`` or ``"worsened"``) and ``event``.
    """
    before = baseline["rank"].fillna(101).astype(int)
    after = finetuned.loc[baseline.index, "rank"].fillna(101).astype(int)
    moves = pd.DataFrame({"rank_before": before, "rank_after": after, "change": before - after})
    moves["event"] = [RANK_EVENTS.get(bands) for bands in zip(*_rank_bands(baseline, finetuned), strict=True)]
    picked = [
        moves[moves["event"] == event].sort_values("change", key=abs, ascending=False, kind="stable").head(n)
        for event in RANK_EVENTS.values()
    ]
    out = pd.concat(picked)
    out.insert(3, "direction", np.where(out["change"] > 0, "improved", "worsened"))
    return out


def format_rank_change(
    query_id: str,
    moves: pd.DataFrame,
    baseline: pd.DataFrame,
    finetuned: pd.DataFrame,
    queries: dict[str, str],
    corpus: dict[str, str],
    relevant_docs: dict[str, set[str]],
    top_k: int = 3,
    width: int = 110,
) -> str:
    """Describe one question's top passages before and after fine-tuning, marking the right ones.

    Args:
        query_id: A query id from ``moves``.
        moves: Output of :func:`find_rank_changes`.
        baseline: Per-query table of the base model.
        finetuned: Per-query table of the fine-tuned model.
        queries: Query id -> question.
        corpus: Document id -> context.
        relevant_docs: Query id -> relevant document ids.
        top_k: Passages to show per model.
        width: Characters of each passage to show.

    Returns:
        A few lines of text; ``✔`` marks a relevant passage.
    """

    def shorten(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= width else text[: width - 1] + "…"

    def show_rank(rank: int) -> str:
        return str(rank) if rank <= 100 else ">100"

    move = moves.loc[query_id]
    lines = [
        f"Q: {queries[query_id]}",
        f"   rank of the right passage: {show_rank(move['rank_before'])} -> {show_rank(move['rank_after'])} "
        f"({move['event']})",
    ]
    for label, table in (("before", baseline), ("after ", finetuned)):
        for position, doc in enumerate(table.loc[query_id, "top_ids"][:top_k], start=1):
            mark = "✔" if doc in relevant_docs[query_id] else " "
            lines.append(f"   {label} {position}. {mark} {shorten(corpus[doc])}")
    return "\n".join(lines)


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return _to_jsonable(value.to_dict(orient="records"))
    if isinstance(value, pd.Series):
        return _to_jsonable(value.to_dict())
    if isinstance(value, np.ndarray):
        return _to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_text_atomically(path: Path, text: str) -> None:
    """Write a text file whole or not at all: into ``.<name>.partial`` beside it, then renamed over it.

    Args:
        path: The file to write (its folder must exist).
        text: Its content.
    """
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def save_results(path: str | Path, **sections: Any) -> Path:
    """Write the run's results as JSON (DataFrames become lists of records, NaN and infinity become null).

    The file is written whole or not at all: into a temporary file beside it, then renamed over it, so an
    interrupted run never leaves a half-written ``results.json``.

    Args:
        path: Output file, e.g. ``OUTPUT_DIR / "results.json"``; parent folders are created.
        **sections: Top-level keys, e.g. ``baseline=..., finetuned=..., comparison=..., split=..., run=...``.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_to_jsonable(sections), indent=2, ensure_ascii=False) + "\n"  # fails before anything is written
    write_text_atomically(path, text)
    return path


#: Marks the section that :func:`add_results_to_model_card` writes into a model card (replaced on a rerun).
CARD_START, CARD_END = "<!-- ft_helpers:results -->", "<!-- /ft_helpers:results -->"


def add_results_to_model_card(model_dir: str | Path, comparison: pd.DataFrame, facts: dict[str, Any]) -> Path:
    """Add the test comparison (base vs fine-tuned, with intervals) and how the model was made to its model card.

    sentence-transformers writes ``README.md`` (the model card: loss, hyperparameters, validation scores)
    when the model is saved; this adds a section after it, or replaces the one an earlier call added.

    Args:
        model_dir: The saved model's folder.
        comparison: Output of :func:`~ft_helpers.stats.compare_per_query` on the test split.
        facts: Lines to list above the table, e.g. ``{"Base model": ..., "Dataset": ..., "Split": ...}``.

    Returns:
        The model card's path.
    """
    card = Path(model_dir) / "README.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    if CARD_START in text:
        text = text[: text.index(CARD_START)] + text[text.index(CARD_END) + len(CARD_END) :]
    table = build_comparison_table(comparison)
    lines = [
        CARD_START,
        "## Retrieval on held-out test questions",
        "",
        *(f"- **{name}:** {value}" for name, value in facts.items()),
        "",
        "| metric | base model | fine-tuned | difference | 95% CI (paired bootstrap) | p-value (permutation) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {metric} | {row['baseline']:.4f} | {row['fine-tuned']:.4f} | {row['delta']:+.4f} | {row['95% CI']} "
            f"| {row['p-value']} |"
            for metric, row in table.iterrows()
        ),
        CARD_END,
    ]
    card.write_text(text.rstrip() + "\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return card


def describe_run(
    config: RunConfig, recipe: Recipe, splits: dict[str, pd.DataFrame], inputs: IRInputs
) -> dict[str, str]:
    """Say in a few lines how a model was fine-tuned and tested, for its model card (no local paths).

    Args:
        config: The run's parameters.
        recipe: The recipe trained with.
        splits: The train/validation/test splits.
        inputs: Evaluator inputs of the test split.

    Returns:
        Label -> one line.
    """

    def name(reference: str) -> str:  # a Hub id as it is; a local file or folder by its name only
        return f"`{Path(reference).name}` (local)" if Path(reference).expanduser().exists() else f"`{reference}`"

    sizes = "/".join(str(len(splits[part])) for part in ("train", "validation", "test"))
    return {
        "Base model": name(config.base_model),
        "Training data": f"{name(config.dataset)}: `{config.question_column}` (questions), "
        f"`{config.context_column}` (passages)",
        "Recipe": f"'{recipe.name}': {recipe.describe()}; cosine schedule with 10% warm-up; the epoch with the "
        "best validation NDCG@10 is kept",
        "Split": f"{config.split}, seed {config.seed}: {sizes} rows (train/validation/test)",
        "Test set": f"{len(inputs.queries)} questions against {len(inputs.corpus)} passages, "
        f"{'duplicates merged' if inputs.deduplicated else 'one document per row'}"
        + (
            f"; {generated} of the questions generated by a language model, so these scores measure agreement with "
            "it, not with real users"
            if (generated := count_generated(splits["test"]))
            else ""
        ),
    }


def collect_results(
    config: RunConfig,
    recipe: Recipe,
    *,
    splits: dict[str, pd.DataFrame],
    test_inputs: IRInputs,
    validation_inputs: IRInputs,
    baseline: RetrievalResult,
    finetuned: RetrievalResult,
    comparison: pd.DataFrame,
    dimensions: dict[str, pd.DataFrame],
    hardware: HardwareSettings,
    trainer: SentenceTransformerTrainer,
    training_seconds: float,
    command: str,
    resumed_from: str | None = None,
    compression: dict[str, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """Gather what a run measured, and how it was made, into the sections of ``results.json``.

    Args:
        config: The run's parameters.
        recipe: The recipe trained with.
        splits: The train/validation/test splits.
        test_inputs: Evaluator inputs of the test split.
        validation_inputs: Evaluator inputs of the validation split.
        baseline: The base model's test scores.
        finetuned: The fine-tuned model's test scores.
        comparison: :func:`~ft_helpers.stats.compare_per_query` of the two.
        dimensions: ``"baseline"``/``"fine-tuned"`` -> :func:`~ft_helpers.evaluation.score_dimensions`.
        hardware: The settings training used.
        trainer: The ``SentenceTransformerTrainer`` after training.
        training_seconds: Wall time of ``trainer.train()``.
        command: How the run was started: the command line, or ``"notebook"``.
        resumed_from: The checkpoint training resumed from, if any.
        compression: ``"baseline"``/``"fine-tuned"`` -> :func:`~ft_helpers.search.score_compressed` (None: none).

    Returns:
        ``settings`` (every setting once, as trained), ``baseline``, ``finetuned``, ``comparison``, ``dimensions``,
        ``compression`` (size x precision: bytes per passage and NDCG@10, per model),
        ``split`` (sizes, row numbers, leakage), ``evaluation``, ``training`` and ``provenance`` (command, code
        commit, data checksums, package versions, hardware); pass them to :func:`save_results`.
    """
    return {
        "settings": config.settings(recipe),
        "baseline": baseline.metrics,
        "finetuned": finetuned.metrics,
        "comparison": comparison,
        "dimensions": {
            label: {str(size): row for size, row in frame.to_dict(orient="index").items()}
            for label, frame in dimensions.items()
        },
        "compression": {
            label: frame.reset_index().to_dict(orient="records") for label, frame in (compression or {}).items()
        },
        "split": {
            "sizes": {name: len(frame) for name, frame in splits.items()},
            # each split's rows by their row number in the data: the same split gives the same numbers
            "rows": {name: sorted(int(row) for row in frame.index) for name, frame in splits.items()},
            "leakage": report_leakage(splits, config.group_column).to_dict(orient="index"),
        },
        "evaluation": {
            "test": test_inputs.summary(),
            "validation": validation_inputs.summary(),
            "per_query_metrics": list(PER_QUERY_METRICS),
            # questions written by a language model (`pairs`): the scores measure agreement with it, not real users
            "generated_test_questions": count_generated(splits["test"]),
        },
        "training": {
            "rows": len(trainer.train_dataset),
            "steps": trainer.state.global_step,
            "seconds": round(training_seconds, 1),
            "best_step": trainer.state.best_global_step,
            "best_validation_ndcg@10": trainer.state.best_metric,
            "validation_by_epoch": read_validation_curve(trainer.state.log_history, "eval_validation_cosine_ndcg@10"),
            "resumed_from": Path(resumed_from).name if resumed_from else None,
        },
        "provenance": collect_provenance(command, config.dataset, config.test_dataset, hardware.as_dict()),
    }
