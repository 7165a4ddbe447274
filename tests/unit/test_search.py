"""FAISS search: each precision finds what exact search finds, sizes cost what they say, saved indexes refuse misuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ft_helpers.search import (
    build_faiss_index,
    build_passage_index,
    bytes_per_vector,
    load_passage_index,
    score_compressed,
    search_faiss_index,
    search_passages,
    truncate_embeddings,
)

PASSAGES = [
    "Revenue grew 8% to $52 billion, led by cloud services.",
    "Operating expenses rose because of higher research and development spending.",
    "The company repurchased $3 billion of its common stock during the year.",
    "Goodwill is tested for impairment at least annually.",
    "Inventories are stated at the lower of cost and net realizable value.",
    "Revenue grew 8% to $52 billion, led by cloud services.",  # a duplicate: indexed once
]


def normalised(rows: int, dimensions: int, seed: int) -> np.ndarray:
    values = np.random.default_rng(seed).normal(size=(rows, dimensions)).astype(np.float32)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def clustered() -> tuple[np.ndarray, np.ndarray]:
    """300 passages and 50 questions, each question near its own passage."""
    corpus = normalised(300, 64, 0)
    queries = truncate_embeddings(corpus[:50] + 0.3 * normalised(50, 64, 1))
    return queries, corpus


def test_bytes_per_vector():
    assert bytes_per_vector(384, "float32") == 1536
    assert bytes_per_vector(128, "int8") == 128
    assert bytes_per_vector(384, "binary") == 48 and bytes_per_vector(60, "binary") == 8
    with pytest.raises(ValueError, match="precision must be one of float32, int8, binary"):
        bytes_per_vector(8, "fp16")


def test_truncate_keeps_the_first_numbers_and_normalises():
    full = normalised(4, 16, 2)
    cut = truncate_embeddings(full, 4)
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(cut * np.linalg.norm(full[:, :4], axis=1, keepdims=True), full[:, :4], atol=1e-6)
    with pytest.raises(ValueError, match="between 1 and 16"):
        truncate_embeddings(full, 17)


def test_float32_search_is_exact(clustered):
    queries, corpus = clustered
    scores, ids = search_faiss_index(build_faiss_index(corpus, "float32"), queries, top_k=5)
    exact = queries @ corpus.T
    np.testing.assert_array_equal(ids, np.argsort(-exact, axis=1)[:, :5])
    np.testing.assert_allclose(scores, np.sort(exact, axis=1)[:, ::-1][:, :5], atol=1e-5)


@pytest.mark.parametrize("precision", ["int8", "binary"])
def test_compressed_search_finds_the_near_passage_and_scores_in_float(clustered, precision: str):
    queries, corpus = clustered
    index = build_faiss_index(corpus, precision, calibration=normalised(500, 64, 3))
    scores, ids = search_faiss_index(index, queries, top_k=3)
    assert (ids[:, 0] == np.arange(50)).mean() >= 0.9
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    if precision == "int8":  # decoded passages: scores close to the exact cosine
        np.testing.assert_allclose(scores[:, 0], np.sum(queries * corpus[ids[:, 0]], axis=1), atol=0.05)
    else:  # rescored: the cosine between the float question and the passage's signs
        signs = np.where(corpus[ids[:, 0]] > 0, 1.0, -1.0) / np.sqrt(64)
        np.testing.assert_allclose(scores[:, 0], np.sum(queries * signs, axis=1), atol=1e-5)
        assert (np.abs(scores) <= 1 + 1e-6).all()


def test_binary_search_at_a_size_that_is_not_whole_bytes():
    corpus = normalised(40, 60, 5)  # 60 bits: 8 bytes, the last 4 bits padding
    scores, ids = search_faiss_index(build_faiss_index(corpus, "binary"), corpus, top_k=1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(40))
    expected = np.sum(corpus * np.where(corpus > 0, 1.0, -1.0), axis=1) / np.sqrt(60)
    np.testing.assert_allclose(scores[:, 0], expected, atol=1e-5)


def test_binary_search_on_a_small_corpus_pads_with_minus_one():
    corpus = normalised(3, 16, 4)
    scores, ids = search_faiss_index(build_faiss_index(corpus, "binary"), corpus, top_k=5)
    assert ids.shape == (3, 5) and (ids[:, 3:] == -1).all() and np.isinf(scores[:, 3:]).all()


def test_score_compressed_table(clustered):
    queries, corpus = clustered
    query_ids = [f"q{i}" for i in range(50)]
    corpus_ids = [f"c{i}" for i in range(300)]
    relevant = {f"q{i}": {f"c{i}"} for i in range(50)}
    table = score_compressed(
        queries, corpus, query_ids, corpus_ids, relevant, normalised(500, 64, 3), dimensions=(64, 16)
    )
    assert list(table.index) == [(d, p) for d in (64, 16) for p in ("float32", "int8", "binary")]
    assert (
        table.loc[(64, "float32"), "bytes_per_passage"] == 256 and table.loc[(16, "binary"), "bytes_per_passage"] == 2
    )
    exact = queries @ corpus.T
    ranks = (exact > exact[np.arange(50), np.arange(50)][:, None]).sum(axis=1)  # 0 = first
    expected = np.where(ranks < 10, 1 / np.log2(ranks + 2), 0).mean()
    assert table.loc[(64, "float32"), "ndcg@10"] == pytest.approx(expected, abs=1e-9)
    assert table.loc[(16, "binary"), "ndcg@10"] < table.loc[(64, "float32"), "ndcg@10"]


# --------------------------------------------------------------------------------------------------
# Saved indexes
# --------------------------------------------------------------------------------------------------
@pytest.fixture()
def model_copy(tmp_path: Path, tiny_model_dir: str) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    return folder


@pytest.mark.parametrize("precision", ["float32", "int8", "binary"])
def test_an_index_answers_like_the_model_and_refuses_misuse(model_copy: Path, tmp_path: Path, precision: str):
    from sentence_transformers import SentenceTransformer

    built = build_passage_index(model_copy, PASSAGES, tmp_path / "index", dimensions=16, precision=precision)
    manifest = json.loads((tmp_path / "index" / "index.json").read_text())
    assert manifest["passages"] == 5 and manifest["dimensions"] == 16 and manifest["precision"] == precision
    assert manifest["bytes_per_passage"] == bytes_per_vector(16, precision) and built.index.ntotal == 5
    saved = load_passage_index(tmp_path / "index")
    assert saved.passages == PASSAGES[:5]

    results = search_passages(tmp_path / "index", [PASSAGES[2], "stock buybacks"], top_k=3)
    assert [len(hits) for hits in results] == [3, 3]
    assert [hit["rank"] for hit in results[0]] == [1, 2, 3]
    assert all(set(hit) == {"rank", "score", "passage"} for hit in results[0])
    if precision == "float32":  # exact: the model's own cosine ranking
        model = SentenceTransformer(str(model_copy), device="cpu")
        passages = truncate_embeddings(model.encode(PASSAGES[:5]), 16)
        question = truncate_embeddings(model.encode([PASSAGES[2]]), 16)
        order = np.argsort(-(question @ passages.T)[0])[:3]
        assert [hit["passage"] for hit in results[0]] == [PASSAGES[i] for i in order]
        assert results[0][0]["passage"] == PASSAGES[2] and results[0][0]["score"] == pytest.approx(1, abs=1e-5)

    moved = tmp_path / "moved"
    model_copy.rename(moved)
    with pytest.raises(FileNotFoundError, match=r"is no longer at .*: give its folder \(--model in the shell\)"):
        search_passages(tmp_path / "index", ["q"])
    assert search_passages(tmp_path / "index", ["q"], model_dir=moved, top_k=1)[0][0]["rank"] == 1
    moved.rename(model_copy)
    with pytest.raises(ValueError, match="holds 16-number embeddings; searching it at 32"):
        search_passages(tmp_path / "index", ["q"], dimensions=32)
    other = tmp_path / "other"
    model = SentenceTransformer(str(model_copy), device="cpu")
    next(model.parameters()).data += 0.01
    model.save(str(other))
    with pytest.raises(ValueError, match="is not the model that built"):
        search_passages(tmp_path / "index", ["q"], model_dir=other)


@pytest.mark.parametrize("questions", [[""], ["   "], ["What was revenue?", "\n"], []])
def test_an_empty_question_is_refused_before_anything_loads(tmp_path: Path, no_model_loading: None, questions: list):
    with pytest.raises(ValueError, match="A question is empty: give the text to search for"):
        search_passages(tmp_path / "no-index", questions)


def test_cli_search_refuses_an_empty_question_in_one_line(tmp_path: Path, capsys):
    from ft_helpers.cli import main

    assert main(["search", "--index", str(tmp_path / "no-index"), "  "]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: A question is empty") and err.count("\n") == 1


def test_index_refusals_before_the_model_loads(model_copy: Path, tmp_path: Path, no_model_loading: None):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x.txt").write_text("x")
    with pytest.raises(FileExistsError, match="is not empty: choose another --output-dir, or pass --overwrite"):
        build_passage_index(model_copy, PASSAGES, tmp_path / "used")
    with pytest.raises(ValueError, match="precision must be one of"):
        build_passage_index(model_copy, PASSAGES, tmp_path / "new", precision="fp16")
    with pytest.raises(FileNotFoundError, match="holds no saved sentence-transformers model"):
        build_passage_index(tmp_path / "used", PASSAGES, tmp_path / "new")
    with pytest.raises(FileNotFoundError, match=r"is not an index folder .* make one with"):
        load_passage_index(tmp_path / "used")
    assert not (tmp_path / "new").exists()


def test_an_index_folder_may_not_hold_the_model_and_overwrite_keeps_other_files(model_copy: Path, tmp_path: Path):
    for folder in (model_copy, tmp_path):
        with pytest.raises(ValueError, match="give --output-dir a folder of its own"):
            build_passage_index(model_copy, PASSAGES, folder, overwrite=True)
    index = tmp_path / "index"
    build_passage_index(model_copy, PASSAGES, index)
    (index / "notes.txt").write_text("mine")
    build_passage_index(model_copy, PASSAGES[:2], index, overwrite=True)
    assert (index / "notes.txt").read_text() == "mine" and load_passage_index(index).passages == PASSAGES[:2]
    assert sorted(p.name for p in index.iterdir()) == ["index.faiss", "index.json", "notes.txt", "passages.jsonl"]


def test_given_embeddings_are_used_once_per_passage(model_copy: Path, tmp_path: Path):
    from ft_helpers.serve import load_encoder

    embeddings = load_encoder(model_copy, "torch", device="cpu").encode_document(PASSAGES)
    built = build_passage_index(model_copy, PASSAGES, tmp_path / "index", embeddings=embeddings)
    assert built.passages == PASSAGES[:5] and built.index.ntotal == 5
    np.testing.assert_allclose(built.index.reconstruct_n(0, 5), embeddings[:5], atol=1e-6)
    with pytest.raises(ValueError, match="3 embeddings for 6 passages"):
        build_passage_index(model_copy, PASSAGES, tmp_path / "other", embeddings=embeddings[:3])


def test_calibration_passages_answer_no_validation_or_test_question():
    from ft_helpers.search import pick_calibration_passages

    splits = {
        "train": pd.DataFrame({"context": ["a", "b", "B.", "c", "a"]}),
        "validation": pd.DataFrame({"context": ["c"]}),
        "test": pd.DataFrame({"context": ["b"]}),
    }
    assert sorted(pick_calibration_passages(splits, size=10, seed=0)) == ["a"]  # "B." is "b" in other case
    assert len(pick_calibration_passages({**splits, "test": pd.DataFrame({"context": ["z"]})}, size=1)) == 1


def test_too_many_dimensions_are_refused_before_embedding(model_copy: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="at most 32, the model's embedding size; got 64"):
        build_passage_index(model_copy, PASSAGES, tmp_path / "index", dimensions=64)
    assert not (tmp_path / "index").exists()


# --------------------------------------------------------------------------------------------------
# Command line, and reading passages
# --------------------------------------------------------------------------------------------------
def test_load_passages_keeps_each_passage_once_and_names_a_missing_column(tmp_path: Path):
    from ft_helpers.data import QADataError, load_passages

    path = tmp_path / "docs.csv"
    pd.DataFrame({"text": [*PASSAGES, " ", None]}).to_csv(path, index=False)
    assert load_passages(path, "text") == PASSAGES[:5]
    with pytest.raises(QADataError, match=r"has no column 'context' .*text.*: name it with --context-column"):
        load_passages(path)
    pd.DataFrame({"text": [" "]}).to_csv(path, index=False)
    with pytest.raises(QADataError, match="holds no passage"):
        load_passages(path, "text")


def test_cli_index_then_search(model_copy: Path, tmp_path: Path, capsys):
    from ft_helpers.cli import main

    data = tmp_path / "docs.csv"
    pd.DataFrame({"passage": PASSAGES}).to_csv(data, index=False)
    index = tmp_path / "index"
    argv = ["index", "--model", str(model_copy), "--dataset", str(data), "--context-column", "passage"]
    assert main([*argv, "--output-dir", str(index), "--dimensions", "16", "--precision", "int8"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"index": str(index), "passages": 5}

    assert main(["search", "--index", str(index), PASSAGES[3], "--top-k", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [hit["rank"] for hit in hits] == [1, 2] and hits[0]["passage"] == PASSAGES[3]
    assert hits[0]["score"] >= hits[1]["score"]
    assert main(["search", "--index", str(index), PASSAGES[3], "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("  1. ") and lines[0].endswith(PASSAGES[3])

    assert main([*argv, "--output-dir", str(index)]) == 2
    assert "is not empty: choose another --output-dir, or pass --overwrite" in capsys.readouterr().err
    assert main(["search", "--index", str(tmp_path), "q"]) == 2
    err = capsys.readouterr().err
    assert "is not an index folder" in err and err.count("\n") == 1
    assert main(["search", "--index", str(index), "q", "--top-k", "0"]) == 2
    assert "--top-k must be at least 1" in capsys.readouterr().err
