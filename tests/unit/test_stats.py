"""Tests for ft_helpers.stats: paired bootstrap intervals, the sign-flip permutation test, compare_per_query."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ft_helpers.stats import compare_per_query, paired_bootstrap_ci, paired_permutation_pvalue


def _paired(n: int, delta: float, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    baseline = rng.random(n)
    return baseline, baseline + delta + rng.normal(0.0, noise, n)


# --------------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------------
def test_bootstrap_is_deterministic_under_a_seed():
    baseline, finetuned = _paired(50, 0.03, 0.2, seed=1)
    first = paired_bootstrap_ci(baseline, finetuned, n_resamples=2000, seed=3)
    assert paired_bootstrap_ci(baseline, finetuned, n_resamples=2000, seed=3) == first
    assert paired_bootstrap_ci(list(baseline), list(finetuned), n_resamples=2000, seed=3) == first
    others = {paired_bootstrap_ci(baseline, finetuned, n_resamples=2000, seed=s) for s in (4, 5, 6)}
    assert first not in others  # another seed gives another interval (on continuous data)
    low, high = first
    assert low < float(np.mean(finetuned - baseline)) < high


def test_permutation_is_deterministic_under_a_seed():
    baseline, finetuned = _paired(40, 0.03, 0.2, seed=2)  # 2**40 sign patterns: random sign flips
    first = paired_permutation_pvalue(baseline, finetuned, n_resamples=2000, seed=3)
    assert paired_permutation_pvalue(baseline, finetuned, n_resamples=2000, seed=3) == first
    others = {paired_permutation_pvalue(baseline, finetuned, n_resamples=2000, seed=s) for s in (4, 5, 6)}
    assert first not in others
    assert 0.0 < first <= 1.0


def test_permutation_is_exact_for_small_samples():
    # 8 queries: all 2**8 = 256 sign patterns are enumerated, so the seed does not matter and the
    # p-value of an all-positive difference is 2 / 256 (the observed pattern and its mirror image).
    baseline = np.zeros(8)
    finetuned = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    p = paired_permutation_pvalue(baseline, finetuned, seed=0)
    assert p == pytest.approx(2 / 256, abs=1e-12)
    assert paired_permutation_pvalue(baseline, finetuned, seed=123) == p
    assert paired_permutation_pvalue(finetuned, baseline, seed=0) == pytest.approx(p, abs=1e-12)  # two-sided


# --------------------------------------------------------------------------------------------------
# Degenerate and known cases
# --------------------------------------------------------------------------------------------------
def test_identical_scores_give_zero_interval_and_p_one():
    scores = [0.2, 0.5, 1.0, 0.0, 0.7]
    assert paired_bootstrap_ci(scores, scores) == (0.0, 0.0)
    assert paired_permutation_pvalue(scores, scores) == 1.0


def test_constant_shift_gives_point_interval():
    baseline = np.array([0.125, 0.5, 0.25])  # exact in binary: every difference is exactly 0.25
    assert paired_bootstrap_ci(baseline, baseline + 0.25) == (0.25, 0.25)


def test_large_effect_gives_small_p_and_interval_excluding_zero():
    baseline, finetuned = _paired(100, 0.2, 0.1, seed=11)
    low, high = paired_bootstrap_ci(baseline, finetuned, n_resamples=2000, seed=0)
    p = paired_permutation_pvalue(baseline, finetuned, n_resamples=2000, seed=0)
    assert 0 < low < 0.2 < high
    assert p < 0.01
    # with random sign flips the smallest possible p-value is 2 / (n_resamples + 1)
    assert p == pytest.approx(2 / 2001, abs=1e-12)


def test_interval_coverage_of_known_mean_difference():
    """About 95% of the 95% intervals cover the true mean difference of 0.05."""
    delta, replicates = 0.05, 300
    covered = 0
    for r in range(replicates):
        baseline, finetuned = _paired(200, delta, 0.2, seed=1000 + r)
        low, high = paired_bootstrap_ci(baseline, finetuned, n_resamples=1000, seed=r)
        covered += low <= delta <= high
    assert 0.90 <= covered / replicates <= 0.99


def test_interval_confidence_changes_width():
    baseline, finetuned = _paired(80, 0.05, 0.2, seed=5)
    low90, high90 = paired_bootstrap_ci(baseline, finetuned, confidence=0.90, n_resamples=2000, seed=0)
    low99, high99 = paired_bootstrap_ci(baseline, finetuned, confidence=0.99, n_resamples=2000, seed=0)
    assert low99 < low90 < high90 < high99


def test_no_effect_rarely_rejected():
    """Symmetric noise around zero: the 5% test rejects in about 5% of the replicates."""
    replicates = 200
    rejections = 0
    for r in range(replicates):
        baseline, finetuned = _paired(50, 0.0, 0.2, seed=5000 + r)
        rejections += paired_permutation_pvalue(baseline, finetuned, n_resamples=1000, seed=r) < 0.05
    assert rejections / replicates < 0.1


@pytest.mark.parametrize(
    ("baseline", "finetuned", "message"),
    [
        ([0.1, 0.2, 0.3], [0.1, 0.2], "equal length"),
        ([[0.1, 0.2]], [[0.1, 0.2]], "1-D"),
        ([0.1, float("nan"), 0.3], [0.1, 0.2, 0.3], "NaN"),
        ([0.1, 0.2, 0.3], [0.1, 0.2, float("nan")], "NaN"),
        ([0.5], [0.6], "at least two"),
        ([], [], "at least two"),
    ],
)
def test_input_validation(baseline, finetuned, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap_ci(baseline, finetuned)
    with pytest.raises(ValueError, match=message):
        paired_permutation_pvalue(baseline, finetuned)


# --------------------------------------------------------------------------------------------------
# compare_per_query
# --------------------------------------------------------------------------------------------------
def _tables(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    index = [f"q{i}" for i in range(30)]
    baseline = pd.DataFrame({"ndcg@10": rng.random(30), "accuracy@1": rng.integers(0, 2, 30).astype(float)}, index)
    finetuned = pd.DataFrame(
        {
            "ndcg@10": np.clip(baseline["ndcg@10"] + 0.1 + rng.normal(0, 0.1, 30), 0, 1),
            "accuracy@1": rng.integers(0, 2, 30).astype(float),
        },
        index,
    )
    return baseline, finetuned


def test_compare_per_query_columns_and_values():
    baseline, finetuned = _tables()
    out = compare_per_query(baseline, finetuned, ["ndcg@10", "accuracy@1"], n_resamples=500, seed=1)
    assert list(out.columns) == ["metric", "baseline", "finetuned", "delta", "ci_low", "ci_high", "p_value"]
    assert out["metric"].tolist() == ["ndcg@10", "accuracy@1"]
    for _, row in out.iterrows():
        before, after = baseline[row["metric"]], finetuned[row["metric"]]
        assert row["baseline"] == pytest.approx(before.mean(), abs=1e-12)
        assert row["finetuned"] == pytest.approx(after.mean(), abs=1e-12)
        assert row["delta"] == pytest.approx((after - before).mean(), abs=1e-12)
        ci = paired_bootstrap_ci(before, after, 0.95, 500, 1)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(ci, abs=1e-12)
        assert row["p_value"] == pytest.approx(paired_permutation_pvalue(before, after, 500, 1), abs=1e-12)
        assert row["ci_low"] <= row["delta"] <= row["ci_high"]


def test_compare_per_query_aligns_by_query_id():
    baseline, finetuned = _tables()
    metrics = ["ndcg@10", "accuracy@1"]
    expected = compare_per_query(baseline, finetuned, metrics, n_resamples=500, seed=1)
    shuffled = finetuned.sample(frac=1.0, random_state=3)
    assert list(shuffled.index) != list(finetuned.index)
    pd.testing.assert_frame_equal(compare_per_query(baseline, shuffled, metrics, n_resamples=500, seed=1), expected)


def test_compare_per_query_identical_moves():
    # every query moves from rank 2 to rank 1: the difference has no spread, so the interval is a point
    index = ["a", "b", "c", "d"]
    baseline = pd.DataFrame({"mrr@10": [0.5] * 4, "accuracy@1": [0.0] * 4}, index)
    finetuned = pd.DataFrame({"mrr@10": [1.0] * 4, "accuracy@1": [1.0] * 4}, index)
    out = compare_per_query(baseline, finetuned, ["mrr@10", "accuracy@1"]).set_index("metric")
    assert out.loc["mrr@10", ["delta", "ci_low", "ci_high"]].tolist() == [0.5, 0.5, 0.5]
    assert out.loc["accuracy@1", ["delta", "ci_low", "ci_high"]].tolist() == [1.0, 1.0, 1.0]
    # all 2**4 sign patterns enumerated: only the observed one and its mirror are as extreme
    assert out.loc["mrr@10", "p_value"] == pytest.approx(2 / 16, abs=1e-12)


def test_compare_per_query_point_interval_contains_delta():
    # three queries, each moves from rank 3 to rank 1: MRR 1/3 -> 1 on every query
    index = ["a", "b", "c"]
    baseline = pd.DataFrame({"mrr@10": [1 / 3] * 3}, index)
    finetuned = pd.DataFrame({"mrr@10": [1.0] * 3}, index)
    row = compare_per_query(baseline, finetuned, ["mrr@10"]).iloc[0]
    assert row["delta"] == pytest.approx(2 / 3, abs=1e-12)
    assert row["ci_low"] <= row["delta"] <= row["ci_high"]


def test_compare_per_query_rejects_different_queries():
    baseline, finetuned = _tables()
    with pytest.raises(ValueError, match="same queries"):
        compare_per_query(baseline, finetuned.drop(index="q3"), ["ndcg@10"])
    with pytest.raises(ValueError, match="same queries"):
        compare_per_query(baseline, finetuned.rename(index={"q3": "q999"}), ["ndcg@10"])
