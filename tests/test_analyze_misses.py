"""benchmarks/analyze_misses.py: what a model ranked first where it missed, counted on hand-built and real runs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import FIXTURE_DATA, ROOT, fixture_config

from ft_helpers import IRInputs, build_ir_inputs, run_pipeline

sys.path.insert(0, str(ROOT / "benchmarks"))
import analyze_misses


def hand_built_inputs() -> IRInputs:
    corpus = {
        "d0": "Revenue was $4.8 billion in fiscal 2023, up 6%.",
        "d1": "Revenue was $4.8 billion in fiscal 2023, up 6 percent.",  # near-copy of d0
        "d2": "Gross margin rose to 34% on lower freight costs.",
        "d3": "We repurchased 17.9 million shares for $2.3 billion.",
        "d4": "The board raised the quarterly dividend to $0.24.",
    }
    queries = {
        "q0": "What was Acme's revenue in fiscal 2023?",
        "q1": "What was the company's gross margin?",
        "q2": "How many shares did we repurchase?",
        "q3": "What dividend did Beta declare?",
    }
    relevant = {"q0": {"d0"}, "q1": {"d2"}, "q2": {"d3"}, "q3": {"d4"}}
    return IRInputs(corpus, queries, relevant, deduplicated=True)


def per_query_rows(rows: dict[str, tuple[float, list[str]]]) -> pd.DataFrame:
    """Per-query rows as score_rankings gives them, from each query's rank and top ids."""
    frame = {}
    for query, (rank, top) in rows.items():
        ndcg = 0.0 if math.isnan(rank) or rank > 10 else 1 / math.log2(rank + 1)
        frame[query] = {"ndcg@10": ndcg, "accuracy@1": float(rank == 1), "rank": rank, "top_ids": top}
    return pd.DataFrame.from_dict(frame, orient="index")


def test_describe_misses_counts_what_came_first_by_group_and_copy():
    inputs = hand_built_inputs()
    groups = {"d0": {"ACME"}, "d1": {"ACME"}, "d2": {"ACME"}, "d3": {"BETA"}, "d4": {"BETA", "ACME"}}
    per_query = per_query_rows(
        {
            "q0": (2.0, ["d1", "d0", "d2"]),  # missed: first is a near-copy, same company
            "q1": (1.0, ["d2", "d0", "d1"]),  # hit
            "q2": (3.0, ["d0", "d2", "d3"]),  # missed: first from another company
            "q3": (float("nan"), ["d0", "d1", "d2"]),  # not in the ranking; d4 is also ACME's: same company
        },
    )
    described = analyze_misses.describe_misses(per_query, inputs, groups)
    assert described["queries"] == 4
    assert described["missed_at_1"] == 3
    assert described["not_in_top_10"] == 1
    assert (described["first_from_same_group"], described["first_from_other_group"]) == (2, 1)
    assert described["first_is_near_copy"] == 1
    # q0's near-copy counted as a hit: NDCG@10 1, 1, 0.5 (rank 3), 0
    assert described["ndcg@10_near_copies_as_hits"] == pytest.approx(0.625)
    assert described["ndcg@10"] == pytest.approx(round(per_query["ndcg@10"].mean(), 4))


def test_word_overlap_is_the_share_of_words_in_common():
    assert analyze_misses.word_overlap("Revenue rose 6%.", "revenue ROSE 6") == 1.0
    assert analyze_misses.word_overlap("a b c d", "a b x y") == pytest.approx(2 / 6)
    assert analyze_misses.word_overlap("", "") == 1.0


def test_group_documents_follows_the_corpus_ids_of_both_modes():
    pairs = pd.DataFrame(
        {
            "question": ["q a", "q b", "q c"],
            "context": ["Same passage.", "same  passage", "Other passage."],
            "company": ["A", "B", "A"],
        },
        index=[10, 11, 12],
    )
    merged = build_ir_inputs(pairs.loc[[10]], pairs, deduplicate=True)
    assert analyze_misses.group_documents(pairs, pairs["company"], merged) == {"doc0": {"A", "B"}, "doc1": {"A"}}
    rowwise = build_ir_inputs(pairs.loc[[10]], pairs, deduplicate=False)
    assert analyze_misses.group_documents(pairs, pairs["company"], rowwise) == {"10": {"A"}, "11": {"B"}, "12": {"A"}}


def test_analyze_misses_on_a_real_run_matches_its_scores_and_refuses_bad_input(
    tmp_path: Path, tiny_model_dir: str, monkeypatch, capsys
):
    run_pipeline(fixture_config(tmp_path, tiny_model_dir), log=lambda message: None)
    run_dir = tmp_path / "run"
    monkeypatch.setattr(analyze_misses, "MISSES_DIR", tmp_path / "misses")
    args = ["--run-dir", str(run_dir), "--dataset", str(FIXTURE_DATA), "--group-column", "company", "--name", "r"]
    assert analyze_misses.main(args) == 0
    record = json.loads((tmp_path / "misses" / "r.json").read_text())
    results = json.loads((run_dir / "results.json").read_text())
    for model in ("baseline", "finetuned"):
        per_query = pd.read_csv(run_dir / "eval" / model / "per_query.csv", index_col=0)
        described = record[model]
        assert described["queries"] == len(per_query) == results["evaluation"]["test"]["queries"]
        assert described["ndcg@10"] == pytest.approx(results[model]["test_cosine_ndcg@10"], abs=1e-4)
        assert described["missed_at_1"] == int((per_query["rank"] != 1).sum())
        assert described["first_from_same_group"] + described["first_from_other_group"] == described["missed_at_1"]
    assert record["split"] == "grouped" and record["group_column"] == "company"
    assert "| relevant passage not first |" in capsys.readouterr().out

    with pytest.raises(SystemExit):  # a record is never overwritten
        analyze_misses.main(args)
    assert "exists" in capsys.readouterr().err
    shuffled = tmp_path / "shuffled.csv"
    pd.read_csv(FIXTURE_DATA).iloc[::-1].to_csv(shuffled, index=False)
    with pytest.raises(SystemExit):  # another dataset gives another split: refused, not miscounted
        analyze_misses.main([*args[:2], "--dataset", str(shuffled), *args[4:6], "--name", "s"])
    assert "pass the dataset the run used" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        analyze_misses.main([*args[:4], "--group-column", "sector", "--name", "t"])
    assert "no column 'sector'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        analyze_misses.main(["--run-dir", str(tmp_path), *args[2:6], "--name", "u"])
    assert "not a finished run's folder" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "misses").iterdir()) == ["r.json"]
