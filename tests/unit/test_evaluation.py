"""Tests for ft_helpers.evaluation: evaluator inputs, the evaluator the workflow builds, per-query scores."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import minilm_path

from ft_helpers import RunConfig
from ft_helpers.data import QADataError, normalize_text
from ft_helpers.evaluation import (
    PER_QUERY_METRICS,
    IRInputs,
    build_ir_inputs,
    evaluate_retrieval,
    headline_metrics,
    read_rankings,
    score_dimensions,
    score_rankings,
)
from ft_helpers.workflow import build_evaluator, score_model

# --------------------------------------------------------------------------------------------------
# Data: made-up finance sentences. Rows 36-39 add the hard cases:
#   row 36 repeats the context of row 3 exactly, row 37 is a whitespace variant of the context of row 8,
#   row 38 asks the question of row 12 (with extra whitespace) but has another context,
#   row 39 repeats the context of row 20 exactly.
# --------------------------------------------------------------------------------------------------
_BASE_ROWS = [
    (
        "What was Acme Corp's total revenue in fiscal 2023?",
        "Acme Corp reported total revenue of $4.2 billion in fiscal 2023, up 8% from the prior year.",
    ),
    (
        "How much did Borealis Bank set aside for credit losses?",
        "Borealis Bank increased its allowance for credit losses to $310 million due to weaker commercial real estate.",
    ),
    (
        "What dividend did Cedar Utilities declare?",
        "Cedar Utilities declared a quarterly dividend of $0.62 per share, payable in March.",
    ),
    (
        "How many employees does Delta Logistics have?",
        "As of December 31, Delta Logistics employed approximately 18,500 people worldwide.",
    ),
    (
        "What is Evergreen Pharma's largest product?",
        "Evergreen Pharma's oncology drug Zentrix accounted for 41% of net product sales.",
    ),
    (
        "How much debt did Falcon Airlines repay?",
        "Falcon Airlines repaid $750 million of senior notes that matured during the year.",
    ),
    (
        "What was Granite Mining's gross margin?",
        "Granite Mining's gross margin declined to 23.5% as ore grades fell and energy costs rose.",
    ),
    ("Where is Harbor Retail headquartered?", "Harbor Retail's corporate headquarters are located in Columbus, Ohio."),
    (
        "How much did Ionic Semiconductors spend on research?",
        "Ionic Semiconductors spent $1.1 billion on research and development, 19% of revenue.",
    ),
    (
        "What share repurchases did Juniper Foods make?",
        "Juniper Foods repurchased 3.2 million shares for $215 million under its buyback program.",
    ),
    (
        "What are Kestrel Energy's proved reserves?",
        "Kestrel Energy's proved reserves totaled 1.4 billion barrels of oil equivalent at year end.",
    ),
    (
        "How did foreign exchange affect Lumen Software?",
        "A stronger dollar reduced Lumen Software's reported revenue by about 2 percentage points.",
    ),
    (
        "What was Meridian Insurance's combined ratio?",
        "Meridian Insurance's property and casualty combined ratio improved to 94.1%.",
    ),
    (
        "How much goodwill impairment did Nova Media record?",
        "Nova Media recorded a goodwill impairment charge of $480 million in its print segment.",
    ),
    (
        "What is Orchid Hotels' occupancy rate?",
        "Orchid Hotels reported average occupancy of 72% and revenue per available room of $128.",
    ),
    (
        "How much cash does Pinnacle Tech hold?",
        "Pinnacle Tech ended the year with $6.8 billion in cash, cash equivalents and marketable securities.",
    ),
    (
        "What was Quarry Cement's capital expenditure?",
        "Capital expenditures at Quarry Cement were $390 million, mainly for kiln upgrades.",
    ),
    (
        "Who audits Redwood Financial?",
        "Redwood Financial's independent registered public accounting firm is Smith & Jones LLP.",
    ),
    ("What is Summit Telecom's churn rate?", "Summit Telecom's monthly postpaid phone churn was 0.83% for the year."),
    (
        "What pension obligations does Titan Steel have?",
        "Titan Steel's defined benefit pension plans were underfunded by $1.2 billion.",
    ),
    (
        "What was Union Rail's operating ratio?",
        "Union Rail's operating ratio was 61.2%, an improvement of 90 basis points.",
    ),
    (
        "How much inventory does Vertex Apparel carry?",
        "Vertex Apparel's inventories rose to $2.3 billion as it stocked up ahead of the holiday season.",
    ),
    (
        "What litigation does Willow Chemicals face?",
        "Willow Chemicals is a defendant in lawsuits alleging groundwater contamination near its plants.",
    ),
    (
        "What was Xenon Biotech's net loss?",
        "Xenon Biotech reported a net loss of $212 million as clinical trial spending increased.",
    ),
    (
        "How many stores does Yardley Grocers operate?",
        "Yardley Grocers operated 1,240 supermarkets across 22 states at the end of the fiscal year.",
    ),
    (
        "What is Zephyr Wind's backlog?",
        "Zephyr Wind's order backlog reached $14 billion, covering about two years of production.",
    ),
    (
        "What tax rate did Apex Devices pay?",
        "Apex Devices' effective tax rate was 16.4%, lower due to research credits.",
    ),
    (
        "How much did Beacon Health spend on acquisitions?",
        "Beacon Health completed acquisitions of three clinics for a combined $640 million.",
    ),
    (
        "What interest rate hedges does Crest Lending use?",
        "Crest Lending uses interest rate swaps to convert $2 billion of floating-rate debt to fixed rates.",
    ),
    (
        "What was Dune Motors' vehicle delivery total?",
        "Dune Motors delivered 412,000 vehicles, a record, driven by its new compact SUV.",
    ),
    (
        "How large is Ember Games' user base?",
        "Ember Games had 96 million monthly active users across its mobile and console titles.",
    ),
    ("What is Fjord Shipping's fleet size?", "Fjord Shipping owns 58 container vessels and charters another 21."),
    (
        "How much stock-based compensation did Glide Cloud record?",
        "Stock-based compensation expense at Glide Cloud was $930 million for the year.",
    ),
    (
        "What are Halcyon REIT's funds from operations?",
        "Halcyon REIT generated funds from operations of $3.05 per diluted share.",
    ),
    (
        "What supply chain risks does Iris Electronics cite?",
        "Iris Electronics depends on a single supplier in Taiwan for its advanced display panels.",
    ),
    (
        "What was Jasper Bank's net interest margin?",
        "Jasper Bank's net interest margin narrowed to 2.91% as deposit costs rose.",
    ),
]
_EXTRA_ROWS = [
    ("How many people work at Delta Logistics?", _BASE_ROWS[3][1]),
    (
        "What did Ionic Semiconductors invest in R&D?",
        "Ionic  Semiconductors spent $1.1 billion on research and\ndevelopment, 19% of revenue.  ",
    ),
    (
        "  What was Meridian Insurance's   combined ratio?\n",
        "Meridian Insurance's loss ratio rose to 68.0% due to severe storms.",
    ),
    ("Is Union Rail becoming more efficient?", _BASE_ROWS[20][1]),
]
FINANCE = pd.DataFrame(_BASE_ROWS + _EXTRA_ROWS, columns=["question", "context"])


def _approx_equal(a: float, b: float, tol: float = 1e-9) -> bool:
    return abs(float(a) - float(b)) <= tol


# --------------------------------------------------------------------------------------------------
# build_ir_inputs
# --------------------------------------------------------------------------------------------------
SMALL = pd.DataFrame(
    {
        "question": [
            "What was revenue in 2023?",
            "How much did revenue grow?",
            "What were sales in 2023?",
            "Who is the CEO?",
            " Who is  the CEO?\n",
            "What is the dividend?",
        ],
        "context": [
            "Revenue was $10M in 2023.",
            "Revenue was $10M in 2023.",
            "  Revenue was\n$10M in  2023. ",
            "Jane Doe is the CEO.",
            "The chief executive is Jane Doe.",
            "The dividend is $1 per share.",
        ],
    }
)


def test_build_ir_inputs_deduplicates_contexts_and_questions():
    inputs = build_ir_inputs(SMALL, SMALL, deduplicate=True)
    assert isinstance(inputs, IRInputs)
    assert inputs.deduplicated is True
    # identical and whitespace-variant contexts collapse to one document, which keeps the first text
    assert inputs.corpus == {
        "doc0": "Revenue was $10M in 2023.",
        "doc1": "Jane Doe is the CEO.",
        "doc2": "The chief executive is Jane Doe.",
        "doc3": "The dividend is $1 per share.",
    }
    # the whitespace variant of "Who is the CEO?" (row 4) joins the query of row 3
    assert inputs.queries == {
        "q0": "What was revenue in 2023?",
        "q1": "How much did revenue grow?",
        "q2": "What were sales in 2023?",
        "q3": "Who is the CEO?",
        "q5": "What is the dividend?",
    }
    assert inputs.relevant_docs == {
        "q0": {"doc0"},
        "q1": {"doc0"},
        "q2": {"doc0"},
        "q3": {"doc1", "doc2"},
        "q5": {"doc3"},
    }
    assert inputs.summary() == {"queries": 5, "documents": 4, "relevant_pairs": 6, "deduplicated": True}


def test_build_ir_inputs_corpus_covers_all_corpus_contexts():
    corpus_pairs = SMALL.set_axis(range(100, 106))  # non-default index: the query ids follow it
    query_pairs = corpus_pairs.loc[[103, 105]]
    inputs = build_ir_inputs(query_pairs, corpus_pairs)
    # every context of corpus_pairs is retrievable, not only those of the queried rows
    assert {normalize_text(c) for c in corpus_pairs["context"]} == {normalize_text(c) for c in inputs.corpus.values()}
    assert len(inputs.corpus) == 4
    assert inputs.queries == {"q103": "Who is the CEO?", "q105": "What is the dividend?"}
    assert inputs.relevant_docs == {"q103": {"doc1"}, "q105": {"doc3"}}
    assert inputs.summary() == {"queries": 2, "documents": 4, "relevant_pairs": 2, "deduplicated": True}


def test_build_ir_inputs_finance_data_has_a_two_document_query():
    inputs = build_ir_inputs(FINANCE, FINANCE)
    assert len(inputs.corpus) == 37  # 36 base contexts + 1 new context from row 38
    assert len(inputs.queries) == 39  # rows 12 and 38 ask the same question
    assert len(inputs.relevant_docs["q12"]) == 2
    assert inputs.relevant_docs["q36"] == inputs.relevant_docs["q3"]
    assert inputs.relevant_docs["q37"] == inputs.relevant_docs["q8"]
    assert inputs.relevant_docs["q39"] == inputs.relevant_docs["q20"]
    assert "q38" not in inputs.queries
    for qid, docs in inputs.relevant_docs.items():
        assert docs <= set(inputs.corpus), qid


def test_build_ir_inputs_rowwise():
    query_pairs = SMALL.loc[[1, 3, 4]]
    inputs = build_ir_inputs(query_pairs, SMALL, deduplicate=False)
    assert inputs.deduplicated is False
    assert inputs.corpus == {str(i): SMALL.loc[i, "context"] for i in range(6)}
    assert inputs.queries == {
        "1": SMALL.loc[1, "question"],
        "3": SMALL.loc[3, "question"],
        "4": SMALL.loc[4, "question"],
    }
    assert inputs.relevant_docs == {"1": {"1"}, "3": {"3"}, "4": {"4"}}
    assert inputs.summary() == {"queries": 3, "documents": 6, "relevant_pairs": 3, "deduplicated": False}


@pytest.mark.parametrize("deduplicate", [True, False])
def test_build_ir_inputs_rejects_query_rows_missing_from_corpus(deduplicate):
    corpus_pairs = SMALL.loc[[0, 1, 2]]
    with pytest.raises(QADataError, match=r"1 query rows are not in the corpus rows \(e\.g\. index 4\)"):
        build_ir_inputs(SMALL.loc[[1, 4]], corpus_pairs, deduplicate=deduplicate)


# --------------------------------------------------------------------------------------------------
# score_rankings / read_rankings / headline_metrics (no model)
# --------------------------------------------------------------------------------------------------
def _ranking(n: int = 120) -> list[str]:
    return [f"d{i}" for i in range(n)]


def test_score_rankings_single_relevant_at_rank_3():
    ranked = _ranking()
    table = score_rankings({"q": ranked}, {"q": {"d2"}})
    row = table.loc["q"]
    assert row["accuracy@1"] == 0.0
    assert row["accuracy@3"] == 1.0
    assert row["accuracy@5"] == 1.0
    assert row["accuracy@10"] == 1.0
    assert row["recall@10"] == 1.0
    assert row["mrr@10"] == pytest.approx(1 / 3, abs=1e-12)
    assert row["ndcg@10"] == pytest.approx(1 / math.log2(4), abs=1e-12)
    assert row["map@100"] == pytest.approx(1 / 3, abs=1e-12)
    assert row["rank"] == 3
    assert row["top_ids"] == ranked[:10]
    assert list(table.columns) == [*PER_QUERY_METRICS, "rank", "top_ids"]


def test_score_rankings_relevant_at_rank_10_and_11():
    ranked = _ranking()
    table = score_rankings({"a": ranked, "b": ranked}, {"a": {"d9"}, "b": {"d10"}})
    a, b = table.loc["a"], table.loc["b"]
    assert (a["accuracy@5"], a["accuracy@10"], a["rank"]) == (0.0, 1.0, 10)
    assert a["mrr@10"] == pytest.approx(0.1, abs=1e-12)
    assert a["ndcg@10"] == pytest.approx(1 / math.log2(11), abs=1e-12)
    # rank 11: outside every @10 cut-off, but still counted by MAP@100
    assert [b[m] for m in PER_QUERY_METRICS[:-1]] == [0.0] * (len(PER_QUERY_METRICS) - 1)
    assert b["map@100"] == pytest.approx(1 / 11, abs=1e-12)
    assert b["rank"] == 11


def test_score_rankings_relevant_missing():
    table = score_rankings({"q": _ranking(100)}, {"q": {"elsewhere"}})
    row = table.loc["q"]
    assert math.isnan(row["rank"])
    for metric in PER_QUERY_METRICS:
        assert row[metric] == 0.0, metric


def test_score_rankings_beyond_map_cutoff_is_ignored():
    table = score_rankings({"q": _ranking(120)}, {"q": {"d105"}})
    row = table.loc["q"]
    assert row["rank"] == 106  # the rank is reported ...
    assert row["map@100"] == 0.0  # ... but MAP@100 does not count it


def test_score_rankings_two_relevant_docs():
    ranked = _ranking()
    table = score_rankings({"x": ranked, "y": ranked}, {"x": {"d0", "d3"}, "y": {"d1", "d11"}})
    x, y = table.loc["x"], table.loc["y"]
    ideal = 1 + 1 / math.log2(3)
    # x: relevant at ranks 1 and 4
    assert [x[f"accuracy@{k}"] for k in (1, 3, 5, 10)] == [1.0, 1.0, 1.0, 1.0]
    assert x["recall@10"] == 1.0
    assert x["mrr@10"] == 1.0
    assert x["ndcg@10"] == pytest.approx((1 + 1 / math.log2(5)) / ideal, abs=1e-12)
    assert x["map@100"] == pytest.approx((1 / 1 + 2 / 4) / 2, abs=1e-12)
    assert x["rank"] == 1
    # y: relevant at ranks 2 and 12
    assert [y[f"accuracy@{k}"] for k in (1, 3, 5, 10)] == [0.0, 1.0, 1.0, 1.0]
    assert y["recall@10"] == 0.5
    assert y["mrr@10"] == 0.5
    assert y["ndcg@10"] == pytest.approx((1 / math.log2(3)) / ideal, abs=1e-12)
    assert y["map@100"] == pytest.approx((1 / 2 + 2 / 12) / 2, abs=1e-12)
    assert y["rank"] == 2


def test_score_rankings_matches_evaluator_formulas_on_random_rankings():
    """Cross-check against InformationRetrievalEvaluator.compute_metrics on synthetic rankings."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    rng = np.random.default_rng(7)
    docs = [f"d{i:03d}" for i in range(150)]
    rankings, relevant = {}, {}
    for q in range(60):
        order = rng.permutation(len(docs))
        rankings[f"q{q}"] = [docs[i] for i in order[:100]]
        # 1 to 14 relevant documents (some queries have more than 10), drawn from all 150 (some not ranked)
        relevant[f"q{q}"] = {docs[i] for i in rng.choice(len(docs), size=int(rng.integers(1, 15)), replace=False)}
    evaluator = InformationRetrievalEvaluator(
        queries={q: q for q in rankings}, corpus={d: d for d in docs}, relevant_docs=relevant, name="syn"
    )
    results = [
        [{"corpus_id": doc, "score": 1.0 - pos / 1000} for pos, doc in enumerate(rankings[q])]
        for q in evaluator.queries_ids
    ]
    expected = evaluator.compute_metrics(results)
    table = score_rankings(rankings, relevant)
    for metric in PER_QUERY_METRICS:
        name, k = metric.split("@")
        assert _approx_equal(table[metric].mean(), expected[f"{name}@k"][int(k)]), metric


def test_read_rankings_sorts_by_score_then_id(tmp_path):
    path = tmp_path / "predictions.jsonl"
    records = [
        {
            "query_id": "q1",
            "query": "a question",
            "results": [
                {"corpus_id": "b", "score": 0.5},
                {"corpus_id": "a", "score": 0.5},
                {"corpus_id": "c", "score": 0.9},
                {"corpus_id": "10", "score": 0.5},
                {"corpus_id": "z", "score": -0.1},
            ],
        },
        {"query_id": "q2", "query": "another", "results": [{"corpus_id": "x", "score": 0.1}]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert read_rankings(path) == {"q1": ["c", "10", "a", "b", "z"], "q2": ["x"]}
    assert read_rankings(str(path)) == read_rankings(path)


def test_headline_metrics_strips_prefix():
    metrics = {f"test_cosine_{m}": i / 10 for i, m in enumerate(PER_QUERY_METRICS)}
    metrics |= {"test_cosine_precision@1": 0.99, "validation_cosine_ndcg@10": 0.42, "test_dot_ndcg@10": 0.1}
    out = headline_metrics(metrics, "test")
    assert list(out) == list(PER_QUERY_METRICS)
    assert out == {m: i / 10 for i, m in enumerate(PER_QUERY_METRICS)}
    assert headline_metrics(metrics, "validation", names=["ndcg@10"]) == {"ndcg@10": 0.42}


def test_headline_metrics_unknown_metric_raises_listing_available():
    metrics = {"test_cosine_ndcg@10": 0.8, "test_cosine_accuracy@1": 0.7}
    with pytest.raises(ValueError, match=r"Metric\(s\) 'ndcg@5' not found .* Available: accuracy@1, ndcg@10\."):
        headline_metrics(metrics, "test", names=["ndcg@10", "ndcg@5"])
    with pytest.raises(ValueError, match=r"'recall@10'"):  # the default list asks for more than these two
        headline_metrics(metrics, "test")
    with pytest.raises(ValueError, match=r"No key starts with 'train_cosine_'"):
        headline_metrics(metrics, "train", names=["ndcg@10"])


# --------------------------------------------------------------------------------------------------
# With models: parity with a hand-built evaluator, and per-query means equal the aggregates
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(minilm_path(), device="cpu")


@pytest.fixture(params=["tiny", "minilm"])
def model(request):
    return request.getfixturevalue("tiny_model" if request.param == "tiny" else "minilm")


def evaluator_of(inputs: IRInputs, name: str = "test", batch_size: int = 64):
    """The evaluator the workflow (and the notebook) builds."""
    return build_evaluator(inputs, name, RunConfig(eval_batch_size=batch_size))


def test_build_evaluator_takes_the_inputs_name_and_batch_size():
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    inputs = build_ir_inputs(FINANCE.iloc[::2], FINANCE)
    evaluator = evaluator_of(inputs, "validation", batch_size=16)
    assert type(evaluator) is InformationRetrievalEvaluator, "sentence-transformers' own class"
    assert (evaluator.name, evaluator.batch_size) == ("validation", 16)
    assert evaluator.queries_ids == list(inputs.queries) and evaluator.queries == list(inputs.queries.values())
    assert evaluator.corpus_ids == list(inputs.corpus) and evaluator.corpus == list(inputs.corpus.values())
    assert evaluator.relevant_docs == inputs.relevant_docs
    assert list(evaluator.score_functions) == ["cosine"] and evaluator.write_predictions


@pytest.mark.parametrize("deduplicate", [True, False])
def test_build_evaluator_scores_as_a_hand_built_evaluator(model, deduplicate):
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    inputs = build_ir_inputs(FINANCE.iloc[::2], FINANCE, deduplicate=deduplicate)
    reference = InformationRetrievalEvaluator(inputs.queries, inputs.corpus, inputs.relevant_docs, name="test")
    # batch_size=32 is the reference's default, so both encode the texts in the same batches
    ours = evaluator_of(inputs, batch_size=32)
    expected = reference(model)
    got = ours(model)
    assert "test_cosine_ndcg@10" in got
    assert "test_cosine_map@100" in got
    assert set(got) == set(expected)
    assert {key: float(value) for key, value in got.items()} == {key: float(value) for key, value in expected.items()}
    assert ours.primary_metric == reference.primary_metric == "test_cosine_ndcg@10"


@pytest.mark.parametrize("deduplicate", [True, False])
def test_evaluate_retrieval_per_query_means_equal_aggregates(model, deduplicate, tmp_path):
    inputs = build_ir_inputs(FINANCE, FINANCE, deduplicate=deduplicate)
    evaluator = evaluator_of(inputs)
    result = evaluate_retrieval(model, evaluator, tmp_path / "eval")

    assert all(isinstance(value, float) for value in result.metrics.values())
    per_query = result.per_query
    assert set(per_query.index) == set(inputs.queries)
    for metric in PER_QUERY_METRICS:
        assert _approx_equal(per_query[metric].mean(), result.metrics[f"test_cosine_{metric}"]), metric

    rankings = read_rankings(tmp_path / "eval" / "Information-Retrieval_evaluation_test_predictions_cosine.jsonl")
    for qid, row in per_query.iterrows():
        relevant = inputs.relevant_docs[qid]
        assert row["top_ids"] == rankings[qid][:10]
        assert len(row["top_ids"]) == 10
        positions = [i for i, doc in enumerate(rankings[qid], start=1) if doc in relevant]
        assert row["rank"] == positions[0]  # the whole corpus (< 100 docs) is ranked
        assert row["accuracy@1"] == float(row["rank"] == 1)
        assert row["mrr@10"] == pytest.approx(1 / row["rank"] if row["rank"] <= 10 else 0.0, abs=1e-12)

    if deduplicate:  # the merged question has two relevant documents
        assert len(inputs.relevant_docs["q12"]) == 2
        assert "q12" in per_query.index
    else:  # duplicate contexts: the rows-as-documents corpus really has tied scores
        predictions = tmp_path / "eval" / "Information-Retrieval_evaluation_test_predictions_cosine.jsonl"
        with open(predictions, encoding="utf-8") as handle:
            record = next(r for r in map(json.loads, handle) if r["query_id"] == "36")
        scores = {hit["corpus_id"]: hit["score"] for hit in record["results"]}
        assert scores["3"] == scores["36"]
        # the tie is broken by id: "3" < "36", so row 36's own context ranks right below its twin
        order = rankings["36"]
        assert order.index("3") + 1 == order.index("36")
        assert per_query.loc["36", "rank"] == order.index("36") + 1


def test_score_model_embeds_the_corpus_once_and_scores_as_the_evaluator_alone(minilm, tmp_path):
    inputs = build_ir_inputs(FINANCE, FINANCE)
    evaluator = evaluator_of(inputs)
    itself = evaluate_retrieval(minilm, evaluator, tmp_path / "itself")
    calls = []
    encode = minilm.encode_document
    minilm.encode_document = lambda texts, **options: calls.append(len(texts)) or encode(texts, **options)
    try:
        scored, embeddings = score_model(minilm, evaluator, tmp_path / "scored", RunConfig(eval_batch_size=16))
    finally:
        del minilm.encode_document
    assert calls == [len(inputs.corpus)], "the corpus embedded once, by score_model, not again by the evaluator"
    assert tuple(embeddings.shape) == (len(inputs.corpus), 384)
    assert scored.metrics == pytest.approx(itself.metrics, abs=1e-6)
    assert scored.per_query["rank"].tolist() == itself.per_query["rank"].tolist()
    assert (tmp_path / "scored" / "Information-Retrieval_evaluation_test_predictions_cosine.jsonl").is_file()


def test_score_dimensions_full_size_is_the_test_score_and_cut_sizes_match_truncate_dim(minilm, tmp_path):
    inputs = build_ir_inputs(FINANCE, FINANCE)
    evaluator = evaluator_of(inputs)
    embeddings = minilm.encode_document(evaluator.corpus, convert_to_tensor=True)
    table = score_dimensions(minilm, evaluator, embeddings, [384, 64, 8])
    assert table.index.tolist() == [384, 64, 8] and table.columns.tolist() == ["ndcg@10", "accuracy@1"]
    full = evaluate_retrieval(minilm, evaluator, tmp_path / "full").metrics
    assert table.loc[384, "ndcg@10"] == pytest.approx(full["test_cosine_ndcg@10"], abs=1e-6)
    # the evaluator embedding everything itself at 64 numbers gives the same scores
    truncated = evaluator_of(inputs)
    truncated.truncate_dim = 64
    assert table.loc[64, "ndcg@10"] == pytest.approx(truncated(minilm)["test_cosine_ndcg@10"], abs=1e-6)
    # 8 numbers lose information: the score drops well below the full one
    assert table.loc[8, "ndcg@10"] < table.loc[384, "ndcg@10"] - 0.1
    assert evaluator.truncate_dim is None and evaluator.write_predictions  # the evaluator itself is unchanged


@pytest.mark.parametrize("sizes", [[0], [385], [384, 512]])
def test_score_dimensions_rejects_sizes_outside_the_embedding(minilm, sizes):
    inputs = build_ir_inputs(FINANCE.iloc[:10], FINANCE.iloc[:10])
    evaluator = evaluator_of(inputs)
    with pytest.raises(ValueError, match="between 1 and 384"):
        score_dimensions(minilm, evaluator, minilm.encode_document(evaluator.corpus, convert_to_tensor=True), sizes)
