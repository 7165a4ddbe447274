"""Tests for ft_helpers.report: comparison table, plots, rank changes and results.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from ft_helpers.report import (
    build_comparison_table,
    find_rank_changes,
    format_rank_change,
    plot_comparison,
    plot_dimensions,
    plot_training_curve,
    save_results,
    tabulate_rank_bands,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

COMPARISON = pd.DataFrame(
    {
        "metric": ["ndcg@10", "mrr@10", "accuracy@1"],
        "baseline": [0.5, 0.123456, 0.8],
        "finetuned": [0.6, 0.11, 0.80008],
        "delta": [0.1, -0.013456, 0.00008],
        "ci_low": [0.05, -0.03125, -0.0625],
        "ci_high": [0.15, -0.0009765625, 0.0625],
        "p_value": [0.00002, 0.0001, 1.0],
    }
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------------------------------
# build_comparison_table
# --------------------------------------------------------------------------------------------------
def test_build_comparison_table():
    table = build_comparison_table(COMPARISON)
    assert table.index.name == "metric"
    assert table.index.tolist() == ["ndcg@10", "mrr@10", "accuracy@1"]
    assert table.columns.tolist() == ["baseline", "fine-tuned", "delta", "95% CI", "improvement %", "p-value"]
    assert table["baseline"].tolist() == [0.5, 0.1235, 0.8]
    assert table["fine-tuned"].tolist() == [0.6, 0.11, 0.8001]
    assert table["delta"].tolist() == [0.1, -0.0135, 0.0001]
    assert table["95% CI"].tolist() == ["[+0.0500, +0.1500]", "[-0.0312, -0.0010]", "[-0.0625, +0.0625]"]
    assert table["improvement %"].tolist() == [20.0, -10.9, 0.01]  # -1.3456 / 0.123456 = -10.8994...
    assert table["p-value"].tolist() == ["<0.0001", "0.0001", "1.0000"]


# --------------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------------
def test_plot_comparison_returns_figure_and_writes_png(tmp_path):
    path = tmp_path / "comparison.png"
    fig = plot_comparison(COMPARISON, path=path, title="Before and after")
    assert isinstance(fig, Figure)
    assert path.is_file()
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert fig._suptitle is not None
    assert fig._suptitle.get_text() == "Before and after"

    left, right = fig.axes
    assert [label.get_text() for label in left.get_yticklabels()] == COMPARISON["metric"].tolist()
    # bars: baseline then fine-tuned, one per metric
    widths = [patch.get_width() for patch in left.patches]
    assert widths == pytest.approx([*COMPARISON["baseline"], *COMPARISON["finetuned"]])
    # one error bar per metric, centred on the delta, coloured by the interval's sign
    markers = [container.lines[0] for container in right.containers]
    assert [float(line.get_xdata()[0]) for line in markers] == pytest.approx(COMPARISON["delta"].tolist())
    assert [line.get_color() for line in markers] == ["#2f855a", "#c53030", "#718096"]


def test_plot_comparison_without_path_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig = plot_comparison(COMPARISON)
    assert isinstance(fig, Figure)
    assert fig._suptitle is None
    assert list(tmp_path.iterdir()) == []


def test_plot_comparison_point_interval():
    from ft_helpers.stats import compare_per_query

    # three queries, each moves from rank 3 to rank 1: MRR 1/3 -> 1 on every query
    baseline = pd.DataFrame({"mrr@10": [1 / 3] * 3}, index=["a", "b", "c"])
    finetuned = pd.DataFrame({"mrr@10": [1.0] * 3}, index=["a", "b", "c"])
    fig = plot_comparison(compare_per_query(baseline, finetuned, ["mrr@10"]))
    assert isinstance(fig, Figure)


LOG_HISTORY = [
    {"loss": 2.0, "learning_rate": 1e-5, "epoch": 0.5, "step": 10},
    {"loss": 1.5, "learning_rate": 2e-5, "epoch": 1.0, "step": 20},
    {"eval_validation_cosine_ndcg@10": 0.6, "eval_loss": 0.9, "epoch": 1.0, "step": 20},
    {"loss": 1.2, "learning_rate": 1e-5, "epoch": 1.5, "step": 30},
    {"eval_validation_cosine_ndcg@10": 0.7, "eval_loss": 0.8, "epoch": 2.0, "step": 40},
    {"train_runtime": 12.3, "train_loss": 1.6, "epoch": 2.0, "step": 40},
]


def test_plot_training_curve(tmp_path):
    path = tmp_path / "sub" / "curve.png"
    path.parent.mkdir()
    fig = plot_training_curve(LOG_HISTORY, "eval_validation_cosine_ndcg@10", path=path)
    assert isinstance(fig, Figure)
    assert path.is_file()
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC
    left, right = fig.axes
    loss_line, eval_loss_line = left.get_lines()
    assert list(loss_line.get_xdata()) == [10, 20, 30]
    assert list(loss_line.get_ydata()) == [2.0, 1.5, 1.2]
    assert list(eval_loss_line.get_xdata()) == [20, 40]  # the validation loss, at the steps it was taken
    assert list(eval_loss_line.get_ydata()) == [0.9, 0.8]
    (eval_line,) = right.get_lines()
    assert list(eval_line.get_xdata()) == [1.0, 2.0]
    assert list(eval_line.get_ydata()) == [0.6, 0.7]
    assert right.get_ylabel() == "validation_cosine_ndcg@10"
    assert left.get_ylabel() == "loss"


def test_plot_training_curve_without_validation_loss_draws_the_training_loss_only():
    history = [entry for entry in LOG_HISTORY if "eval_loss" not in entry]
    history.append({"eval_validation_cosine_ndcg@10": 0.7, "epoch": 2.0, "step": 40})
    left, _ = plot_training_curve(history, "eval_validation_cosine_ndcg@10").axes
    assert len(left.get_lines()) == 1


@pytest.mark.parametrize(
    ("history", "metric", "missing"),
    [
        ([], "eval_validation_cosine_ndcg@10", "'loss'"),
        (LOG_HISTORY, "eval_test_cosine_ndcg@10", "'eval_test_cosine_ndcg@10'"),
        ([entry for entry in LOG_HISTORY if "loss" not in entry], "eval_validation_cosine_ndcg@10", "'loss'"),
    ],
)
def test_plot_training_curve_missing_key_raises_listing_the_logged_keys(history, metric, missing, tmp_path):
    path = tmp_path / "curve.png"
    with pytest.raises(ValueError, match=f"No {missing} in the log history") as info:
        plot_training_curve(history, metric, path=path)
    if history:
        assert "eval_validation_cosine_ndcg@10" in str(info.value)  # the keys that were logged
    assert not path.exists()


# --------------------------------------------------------------------------------------------------
# Rank changes
# --------------------------------------------------------------------------------------------------
def _per_query(ranks: dict[str, float], top_ids: dict[str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame({"rank": pd.Series(ranks, dtype=float), "top_ids": pd.Series(top_ids)})


NAN = float("nan")
BEFORE = _per_query(
    {"q0": 1, "q1": 5, "q2": NAN, "q3": 2, "q4": 50, "q5": 3},
    {
        "q0": ["d0", "d7", "d8"],
        "q1": ["d7", "d8", "d9"],
        "q2": ["d1", "d3", "d4"],
        "q3": ["d0", "d3", "d4"],
        "q4": ["d9", "d8", "d7"],
        "q5": ["d1", "d2", "d5"],
    },
)
AFTER = _per_query(
    {"q5": 2, "q4": NAN, "q3": 40, "q2": 2, "q1": 1, "q0": 1},  # another order: aligned by query id
    {
        "q0": ["d0", "d1", "d2"],
        "q1": ["d1", "d0", "d2"],
        "q2": ["d9", "d2", "d5"],
        "q3": ["d1", "d2", "d4"],
        "q4": ["d5", "d6", "d7"],
        "q5": ["d5", "d6", "d7"],
    },
)


def test_tabulate_rank_bands_counts_every_query_once():
    table = tabulate_rank_bands(BEFORE, AFTER)
    # bands before -> after: q0 1->1, q1 2-10->1, q2 >10->2-10, q3 2-10->>10, q4 >10->>10, q5 2-10->2-10
    assert table.index.tolist() == ["1", "2-10", ">10"] == table.columns.tolist()
    assert (table.index.name, table.columns.name) == ("base model", "fine-tuned")
    assert table.to_numpy().tolist() == [[1, 0, 0], [1, 1, 1], [0, 1, 1]]
    assert table.to_numpy().sum() == len(BEFORE)


def test_find_rank_changes_picks_only_top_1_and_top_10_crossings():
    moves = find_rank_changes(BEFORE, AFTER, n=3)
    # q4 fell furthest (50 -> >100) but stayed outside the top 10; q5 moved 3 -> 2 inside it; q0 stayed first
    expected = pd.DataFrame(
        {
            "rank_before": [101, 5, 2],
            "rank_after": [2, 1, 40],
            "change": [99, 4, -38],
            "direction": ["improved", "improved", "worsened"],
            "event": ["entered the top 10", "entered the top 1", "left the top 10"],
        },
        index=["q2", "q1", "q3"],
    )
    pd.testing.assert_frame_equal(moves, expected, check_dtype=False, check_index_type=False)
    assert moves["rank_before"].dtype.kind == "i"
    assert find_rank_changes(BEFORE, BEFORE).empty


def test_find_rank_changes_takes_the_largest_moves_of_each_kind_up_to_n():
    ranks_before = {"a": 12, "b": 90, "c": NAN, "d": 1, "e": 1, "f": 4}
    ranks_after = {"a": 1, "b": 1, "c": 1, "d": 2, "e": NAN, "f": 30}
    top = {query: ["x"] for query in ranks_before}
    before, after = _per_query(ranks_before, top), _per_query(ranks_after, top)
    one = find_rank_changes(before, after, n=1)
    assert one.index.tolist() == ["c", "e", "d", "f"]  # c: 101 -> 1, the largest of a, b, c; gains first
    assert one["event"].tolist() == [
        "entered the top 1 from outside the top 10",
        "left the top 10 from the top 1",
        "left the top 1",
        "left the top 10",
    ]
    assert one["direction"].tolist() == ["improved", "worsened", "worsened", "worsened"]
    two = find_rank_changes(before, after, n=2)
    assert two.index.tolist() == ["c", "b", "e", "d", "f"]


def test_format_rank_change():
    moves = find_rank_changes(BEFORE, AFTER, n=3)
    queries = {f"q{i}": f"Question {i}?" for i in range(6)}
    corpus = {f"d{i}": f"Context   number {i}\n about revenue." for i in range(10)}
    corpus["d2"] = "The right context, " + "with a very long tail " * 10
    relevant = {"q2": {"d2"}, "q3": {"d3"}}
    text = format_rank_change("q2", moves, BEFORE, AFTER, queries, corpus, relevant, top_k=2, width=40)
    assert text.splitlines() == [
        "Q: Question 2?",
        "   rank of the right passage: >100 -> 2 (entered the top 10)",
        "   before 1.   Context number 1 about revenue.",
        "   before 2.   Context number 3 about revenue.",
        "   after  1.   Context number 9 about revenue.",
        "   after  2. ✔ The right context, with a very long tai…",
    ]
    assert len(text.splitlines()[-1].split("✔ ")[1]) == 40  # width, including the ellipsis

    worse = format_rank_change("q3", moves, BEFORE, AFTER, queries, corpus, relevant).splitlines()
    assert worse[1] == "   rank of the right passage: 2 -> 40 (left the top 10)"
    assert len(worse) == 2 + 3 + 3
    assert [("✔" in line) for line in worse[2:]] == [False, True, False, False, False, False]


# --------------------------------------------------------------------------------------------------
# save_results
# --------------------------------------------------------------------------------------------------
def _strict_json(text: str):
    def reject(constant: str):
        raise ValueError(f"not valid JSON: {constant}")

    return json.loads(text, parse_constant=reject)


def test_save_results_writes_valid_json(tmp_path):
    per_query = pd.DataFrame(
        {"ndcg@10": [1.0, 0.5], "rank": [1.0, NAN], "top_ids": [["d1", "d2"], ["d3"]]}, index=["q1", "q2"]
    )
    target = tmp_path / "new" / "dir" / "results.json"
    written = save_results(
        target,
        per_query=per_query,
        comparison=COMPARISON.iloc[:1],
        run={
            "seed": np.int64(42),
            "learning_rate": np.float64(2e-5),
            "score": np.float32(0.5),
            "flag": np.bool_(True),
            "missing": NAN,
            "missing_np": np.float64("nan"),
            "output_dir": Path("outputs") / "run1",
            "sizes": (1, 2),
            "tags": {"only"},
            3: "int key",
        },
        note="✔ kept as is",
    )
    assert written == target
    assert isinstance(written, Path)
    raw = target.read_text(encoding="utf-8")
    assert raw.endswith("\n")
    assert "✔ kept as is" in raw  # not escaped
    data = _strict_json(raw)
    assert list(data) == ["per_query", "comparison", "run", "note"]
    assert data["per_query"] == [
        {"ndcg@10": 1.0, "rank": 1.0, "top_ids": ["d1", "d2"]},
        {"ndcg@10": 0.5, "rank": None, "top_ids": ["d3"]},
    ]
    assert data["comparison"] == [
        {
            "metric": "ndcg@10",
            "baseline": 0.5,
            "finetuned": 0.6,
            "delta": 0.1,
            "ci_low": 0.05,
            "ci_high": 0.15,
            "p_value": 0.00002,
        }
    ]
    assert data["run"] == {
        "seed": 42,
        "learning_rate": 2e-5,
        "score": 0.5,
        "flag": True,
        "missing": None,
        "missing_np": None,
        "output_dir": str(Path("outputs") / "run1"),
        "sizes": [1, 2],
        "tags": ["only"],
        "3": "int key",
    }
    assert isinstance(data["run"]["seed"], int)
    assert math.isclose(data["run"]["learning_rate"], 2e-5)
    assert data["note"] == "✔ kept as is"


def test_save_results_accepts_str_path_and_overwrites(tmp_path):
    target = tmp_path / "results.json"
    save_results(str(target), a=1)
    save_results(str(target), b=[np.int32(3), np.float64(0.25)])
    assert _strict_json(target.read_text(encoding="utf-8")) == {"b": [3, 0.25]}


def test_save_results_never_leaves_a_half_written_file(tmp_path):
    target = tmp_path / "results.json"
    save_results(target, a=1)
    with pytest.raises(TypeError):  # not JSON-serialisable: nothing may be written
        save_results(target, a=object())
    assert _strict_json(target.read_text(encoding="utf-8")) == {"a": 1}, "the earlier file is intact"
    assert [path.name for path in tmp_path.iterdir()] == ["results.json"], "no temporary file left behind"


def test_save_results_interrupted_while_writing_keeps_the_earlier_file(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    save_results(target, a=1)

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("ft_helpers.report.os.replace", fail)
    with pytest.raises(KeyboardInterrupt):
        save_results(target, a=2)
    assert _strict_json(target.read_text(encoding="utf-8")) == {"a": 1}
    assert [path.name for path in tmp_path.iterdir()] == ["results.json"]


def test_model_card_section_is_added_once_and_replaced_on_a_rerun(tmp_path):
    from ft_helpers.report import add_results_to_model_card

    (tmp_path / "README.md").write_text("# Model card\n\nWritten by sentence-transformers.\n", encoding="utf-8")
    add_results_to_model_card(tmp_path, COMPARISON, {"Base model": "`org/base`"})
    first = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert first.startswith("# Model card\n\nWritten by sentence-transformers.\n\n<!-- ft_helpers:results -->")
    assert "| ndcg@10 | 0.5000 | 0.6000 | +0.1000 | [+0.0500, +0.1500] | <0.0001 |" in first
    assert "- **Base model:** `org/base`" in first
    add_results_to_model_card(tmp_path, COMPARISON.iloc[:1], {"Base model": "`org/other`"})
    second = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert second.count("<!-- ft_helpers:results -->") == 1 and "`org/other`" in second and "mrr@10" not in second
    assert second.startswith("# Model card\n\nWritten by sentence-transformers.\n")


def _by_size(scores: list[float]) -> pd.DataFrame:
    sizes = pd.Index([384, 256, 128, 64], name="dimensions")
    return pd.DataFrame({"ndcg@10": scores, "accuracy@1": scores}, index=sizes)


def test_plot_dimensions_draws_one_line_per_model_and_writes_png(tmp_path):
    figure = plot_dimensions(
        {"baseline": _by_size([0.76, 0.75, 0.73, 0.69]), "fine-tuned": _by_size([0.84, 0.83, 0.81, 0.77])},
        tmp_path / "dimensions.png",
    )
    assert isinstance(figure, Figure)
    (axis,) = figure.axes
    assert [line.get_label() for line in axis.get_lines()] == ["baseline", "fine-tuned"]
    assert list(axis.get_lines()[1].get_ydata()) == [0.84, 0.83, 0.81, 0.77]
    assert [tick.get_text() for tick in axis.get_xticklabels()] == ["384", "256", "128", "64"]
    assert (tmp_path / "dimensions.png").stat().st_size > 0
    plt.close(figure)


def test_plot_dimensions_says_what_is_missing():
    with pytest.raises(ValueError, match="No models to plot"):
        plot_dimensions({})
    with pytest.raises(ValueError, match="No 'mrr@10' column in the table\\(s\\) of baseline"):
        plot_dimensions({"baseline": _by_size([0.7, 0.6, 0.5, 0.4])}, metric="mrr@10")


@pytest.mark.parametrize("deduplicate", [True, False])
def test_describe_run_says_how_the_model_was_made_without_local_paths(tmp_path, deduplicate):
    from ft_helpers import RECIPES, RunConfig, build_ir_inputs, split_qa_pairs
    from ft_helpers.report import describe_run

    rows = pd.DataFrame(
        {"question": [f"Question {i}?" for i in range(40)], "context": [f"Passage {i}." for i in range(40)]}
    )
    data = tmp_path / "my_data.csv"
    rows.to_csv(data, index=False)
    config = RunConfig(dataset=str(data), base_model="org/base-model", recipe="quick", seed=3)
    splits = split_qa_pairs(rows, strategy="grouped", seed=3)
    inputs = build_ir_inputs(splits["test"], rows, deduplicate=deduplicate)
    facts = describe_run(config, config.training_recipe("cpu"), splits, inputs)
    sizes = "/".join(str(len(splits[name])) for name in ("train", "validation", "test"))
    assert facts == {
        "Base model": "`org/base-model`",
        "Training data": "`my_data.csv` (local): `question` (questions), `context` (passages)",
        "Recipe": f"'quick': {RECIPES['quick'].describe()}; cosine schedule with 10% warm-up; the epoch with the "
        "best validation NDCG@10 is kept",
        "Split": f"grouped, seed 3: {sizes} rows (train/validation/test)",
        "Test set": f"{len(splits['test'])} questions against 40 passages, "
        + ("duplicates merged" if deduplicate else "one document per row"),
    }
    assert not any(str(tmp_path) in line for line in facts.values())
