"""On real data with the real MiniLM (slow): the workflow's default on a CPU, the quick recipe, measurably helps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import minilm_path

from ft_helpers import RunConfig, detect_hardware
from ft_helpers.workflow import run

pytestmark = pytest.mark.slow

ROWS = 2000


def test_quick_recipe_on_real_pairs_gains_with_an_interval_above_zero(shared_pairs: pd.DataFrame, tmp_path: Path):
    data = tmp_path / "pairs.csv"
    shared_pairs.head(ROWS)[["question", "context"]].to_csv(data, index=False)
    config = RunConfig(
        dataset=str(data), base_model=minilm_path(), output_dir=str(tmp_path / "run"), bootstrap_resamples=1000
    )
    results = run(config, command="test", log=lambda line: None)
    expected = "improved" if detect_hardware().device == "cuda" else "quick"
    assert results["settings"]["recipe"] == expected, "RECIPE 'auto' picks by the device"
    ndcg = next(row for row in results["comparison"].to_dict("records") if row["metric"] == "ndcg@10")
    assert ndcg["ci_low"] > 0, ndcg
    for size, scores in results["dimensions"]["fine-tuned"].items():  # better at every embedding size too
        assert scores["ndcg@10"] > results["dimensions"]["baseline"][size]["ndcg@10"], size
