"""Paired uncertainty for before/after retrieval scores: bootstrap intervals and a permutation test."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def _paired_differences(baseline: Sequence[float], finetuned: Sequence[float]) -> np.ndarray:
    before = np.asarray(baseline, dtype=float)
    after = np.asarray(finetuned, dtype=float)
    if before.shape != after.shape or before.ndim != 1:
        raise ValueError(f"Paired scores need two 1-D arrays of equal length, got {before.shape} and {after.shape}.")
    if len(before) < 2:
        raise ValueError("Need at least two queries to estimate uncertainty.")
    if np.isnan(before).any() or np.isnan(after).any():
        raise ValueError("Per-query scores contain NaN.")
    return after - before


def paired_bootstrap_ci(
    baseline: Sequence[float],
    finetuned: Sequence[float],
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Return a percentile bootstrap interval for the mean of ``finetuned - baseline``.

    Queries are resampled with replacement and both models keep their scores on the same query,
    so the interval reflects the paired design.

    Args:
        baseline: Per-query scores of the base model.
        finetuned: Per-query scores of the fine-tuned model, same query order.
        confidence: Coverage of the interval.
        n_resamples: Bootstrap resamples.
        seed: Seed; the same seed gives the same interval.

    Returns:
        ``(low, high)``.
    """
    diff = _paired_differences(baseline, finetuned)
    if np.all(diff == diff[0]):  # no spread: every resample has the same mean
        return float(diff.mean()), float(diff.mean())
    result = stats.bootstrap(
        (diff,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_permutation_pvalue(
    baseline: Sequence[float], finetuned: Sequence[float], n_resamples: int = 10_000, seed: int = 0
) -> float:
    """Return the two-sided p-value of a paired sign-flip permutation test on the mean difference.

    Under the null hypothesis that fine-tuning changes nothing, each query's difference is as likely
    to be positive as negative; the test flips signs at random and asks how often the mean is as far
    from zero as the observed one.

    Args:
        baseline: Per-query scores of the base model.
        finetuned: Per-query scores of the fine-tuned model, same query order.
        n_resamples: Random sign flips (exact enumeration is used when it is smaller).
        seed: Seed; the same seed gives the same p-value.

    Returns:
        The p-value, in (0, 1].
    """
    diff = _paired_differences(baseline, finetuned)
    if not diff.any():
        return 1.0
    result = stats.permutation_test(
        (diff,),
        np.mean,
        permutation_type="samples",
        n_resamples=n_resamples,
        vectorized=True,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)


def compare_per_query(
    baseline: pd.DataFrame,
    finetuned: pd.DataFrame,
    metrics: Sequence[str],
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Compare two models' per-query scores metric by metric.

    Args:
        baseline: Per-query scores of the base model (index: query id).
        finetuned: Per-query scores of the fine-tuned model on the same queries.
        metrics: Columns to compare, e.g. ``["ndcg@10", "accuracy@1"]``.
        confidence: Coverage of the bootstrap interval.
        n_resamples: Resamples for the bootstrap and the permutation test.
        seed: Seed for both.

    Returns:
        One row per metric with columns ``metric, baseline, finetuned, delta, ci_low, ci_high, p_value``.
    """
    if set(baseline.index) != set(finetuned.index):
        raise ValueError("The two per-query tables must cover the same queries.")
    finetuned = finetuned.loc[baseline.index]
    rows = []
    for metric in metrics:
        before, after = baseline[metric].to_numpy(float), finetuned[metric].to_numpy(float)
        low, high = paired_bootstrap_ci(before, after, confidence, n_resamples, seed)
        rows.append(
            {
                "metric": metric,
                "baseline": before.mean(),
                "finetuned": after.mean(),
                "delta": (after - before).mean(),
                "ci_low": low,
                "ci_high": high,
                "p_value": paired_permutation_pvalue(before, after, n_resamples, seed),
            }
        )
    return pd.DataFrame(rows)
