"""The benchmark records (one schema, no machine paths) and the scripts that make them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import FIXTURE_DATA, ROOT

from ft_helpers import HEADLINE_METRICS, RunConfig
from ft_helpers.config import RECIPE_SETTINGS

sys.path.insert(0, str(ROOT / "benchmarks"))
import run_full
import run_notebook
import summarize

RECORDS = sorted(path for path in (ROOT / "benchmarks" / "results").glob("*.json") if path.name != "summary.json")
RUN_KEYS = {
    "parameters",
    "packages",
    "hardware",
    "training_rows",
    "training_steps",
    "training_seconds",
    "best_checkpoint_metric",
    "model_dir",
    "resumed_from",
    "recipe",
}


def test_there_are_records():
    assert len(RECORDS) >= 5


@pytest.mark.parametrize("path", RECORDS, ids=[path.stem for path in RECORDS])
def test_every_record_has_the_one_schema(path: Path):
    record = json.loads(path.read_text(encoding="utf-8"))
    assert tuple(record) == run_full.RECORD_KEYS
    benchmark = record["benchmark"]
    assert tuple(benchmark) == run_full.BENCHMARK_KEYS
    assert benchmark["name"] == path.stem
    assert tuple(benchmark["wall_seconds"]) == run_full.WALL_SECONDS_KEYS
    assert benchmark["text_key"] in (run_full.TEXT_KEY, "whitespace")
    assert tuple(record["corpus_modes"]) == run_full.CORPUS_MODES
    measured = [mode for mode in record["corpus_modes"].values() if mode is not None]
    assert measured, "at least one corpus mode"
    for mode in measured:
        assert set(mode) == set(run_full.MODE_KEYS)
        if mode["per_query"] is not None:  # kept since recipes came in: each query's NDCG@10, averaging to the score
            for label in ("baseline", "finetuned"):
                scores = mode["per_query"][label]
                assert len(scores) == mode["evaluation"]["queries"]
                assert sum(scores.values()) / len(scores) == pytest.approx(mode[label]["test_cosine_ndcg@10"], abs=1e-5)
        assert [row["metric"] for row in mode["comparison"]] == list(HEADLINE_METRICS)
        for row in mode["comparison"]:
            assert row["ci_low"] <= row["delta"] <= row["ci_high"]
            assert row["baseline"] == pytest.approx(mode["baseline"][f"test_cosine_{row['metric']}"], abs=1e-6)
    # "loss" (the loss classes) is kept since the cached losses sort each batch by length, and
    # "validation_by_epoch" since the variants sweep
    assert RUN_KEYS <= set(record["run"]) <= RUN_KEYS | {"loss", "validation_by_epoch"}
    curve = record["run"].get("validation_by_epoch")
    if curve:
        assert max(score for _, score in curve) == pytest.approx(record["run"]["best_checkpoint_metric"])
    parameters = record["run"]["parameters"]
    assert set(parameters) == set(RunConfig().as_dict())
    # the settings are filled in, and the recipe section says the same; a variant (run_full.py --loss,
    # --no-matryoshka, ...) changes only the settings that are not parameters
    recipe = RunConfig(**parameters).training_recipe().as_dict()
    changed = {key for key, value in record["run"]["recipe"].items() if value != recipe[key]}
    assert set(record["run"]["recipe"]) == set(recipe) and not changed & {"name", *RECIPE_SETTINGS}
    assert all(parameters[name] is not None for name in ("epochs", "train_batch_size", "learning_rate"))
    if record["dimensions"] is not None:
        for label, by_size in record["dimensions"].items():
            model = {"baseline": "baseline", "fine-tuned": "finetuned"}[label]
            full = record["corpus_modes"]["deduplicated" if parameters["deduplicate_corpus"] else "rowwise"][model]
            full_size = str(max(map(int, by_size)))  # the model's own size: 384 for MiniLM
            assert by_size[full_size]["ndcg@10"] == pytest.approx(full["test_cosine_ndcg@10"], abs=1e-6)
    assert set(record["split"]) == {"strategy", "group_column", "sizes", "leakage"}


@pytest.mark.parametrize("path", RECORDS, ids=[path.stem for path in RECORDS])
def test_records_hold_no_machine_paths(path: Path):
    text = path.read_text(encoding="utf-8")
    assert not run_notebook.MACHINE_PATH.search(text), run_notebook.MACHINE_PATH.search(text)
    parameters = json.loads(text)["run"]["parameters"]
    assert parameters["dataset"] == "financial-qa-10k.csv"
    assert parameters["output_dir"] == "<output_dir>"


def test_name_local_paths_keeps_names_and_relative_parts(tmp_path: Path):
    model = tmp_path / "venv" / "model"
    model.mkdir(parents=True)
    run = {
        "parameters": {
            "dataset": str(tmp_path / "data" / "qa.csv"),
            "base_model": str(model),
            "output_dir": str(tmp_path / "out"),
        },
        "model_dir": str(tmp_path / "out" / "model"),
        "resumed_from": str(tmp_path / "elsewhere" / "checkpoint-7"),
    }
    named = run_full.name_local_paths(run, "MiniLM (local copy)")
    assert named == {
        "parameters": {"dataset": "qa.csv", "base_model": "MiniLM (local copy)", "output_dir": "<output_dir>"},
        "model_dir": "<output_dir>/model",
        "resumed_from": "checkpoint-7",
    }
    assert run["parameters"]["dataset"].endswith("qa.csv") and str(tmp_path) in run["model_dir"], "input untouched"
    hub = {"parameters": {"dataset": "org/data", "base_model": "org/model", "output_dir": "out"}, "model_dir": None}
    assert run_full.name_local_paths(hub, "x")["parameters"] == {
        "dataset": "org/data",
        "base_model": "org/model",
        "output_dir": "<output_dir>",
    }


# --------------------------------------------------------------------------------------------------
# run_notebook.py: what it changes in the notebook, and what it refuses
# --------------------------------------------------------------------------------------------------
def small_notebook() -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell('DATASET = "org/data"  # Hub id or file\nEPOCHS = 6\nSEED = 42')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell("# Title"), parameters, nbformat.v4.new_code_cell("print(1)")]
    return notebook


def test_set_parameters_replaces_values_only():
    notebook = small_notebook()
    run_notebook.set_parameters(notebook, {"DATASET": "/data/qa.csv", "EPOCHS": 1})
    assert notebook.cells[1].source == "DATASET = '/data/qa.csv'  # Hub id or file\nEPOCHS = 1\nSEED = 42"
    assert len(notebook.cells) == 3, "no cell added"
    with pytest.raises(ValueError, match="Not parameters of the notebook: EPOCH"):
        run_notebook.set_parameters(small_notebook(), {"EPOCH": 1})


def test_set_parameters_needs_exactly_one_parameters_cell():
    notebook = small_notebook()
    notebook.cells[2].metadata["tags"] = ["parameters"]
    with pytest.raises(ValueError, match="exactly one cell tagged 'parameters', found 2"):
        run_notebook.set_parameters(notebook, {"EPOCHS": 1})


@pytest.mark.parametrize(
    "text",
    [
        "/work/venv/lib/python3.11/site-packages/x.py:3: UserWarning",
        "Wrote /tmp/run/output/results.json",
        "/home/user/data.csv",
        "C:\\Users\\me\\data.csv",
        "see ~/models/minilm",
        "/usr/lib/python3/dist-packages/tqdm",
        "DATASET = '../shared/data/financial-qa-10k.csv'",
        "/content/output",
    ],
)
def test_find_machine_paths_finds_paths_in_outputs(text: str):
    notebook = small_notebook()
    notebook.cells[2].outputs = [nbformat.v4.new_output("stream", name="stderr", text=text)]
    found = run_notebook.find_machine_paths(notebook)
    assert found and all(place.startswith("cells[2].outputs[0].text: ") for place in found)


@pytest.mark.parametrize(
    "text",
    [
        "Wrote output/all-MiniLM-L6-v2-financial/results.json",
        "https://colab.research.google.com/github/OWNER/x/blob/main/nb.ipynb",
        "huggingface.co/datasets/org/data",
        "10/20 done; 2/3 of the rows; 1,068 steps",
        "Q: What was revenue?",
    ],
)
def test_find_machine_paths_leaves_relative_paths_urls_and_prose_alone(text: str):
    notebook = small_notebook()
    notebook.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    notebook.cells[0].source = text
    assert run_notebook.find_machine_paths(notebook) == []


def test_find_machine_paths_looks_at_metadata_but_not_pictures():
    notebook = small_notebook()
    notebook.metadata["papermill"] = {"output_path": "/work/bench/out.ipynb"}
    notebook.cells[2].outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": "iVBOR/tmp/xyz", "text/plain": "<Figure>"})
    ]
    (found,) = run_notebook.find_machine_paths(notebook)
    assert found.startswith("metadata.papermill.output_path")


def test_clean_for_commit_restores_parameters_and_drops_run_leftovers():
    notebook = small_notebook()
    original = notebook.cells[1].source
    run_notebook.set_parameters(notebook, {"DATASET": "/data/qa.csv"})
    notebook.metadata["papermill"] = {"duration": 1.0}
    notebook.cells[2].metadata["execution"] = {"iopub.status.busy": "2026-11-27T10:00:00Z"}
    warning = "/tmp/ipykernel_6003/945500041.py:3: UserWarning: 2 row(s) ... dropped.\n"
    notebook.cells[2].outputs = [nbformat.v4.new_output("stream", name="stderr", text=warning)]
    run_notebook.clean_for_commit(notebook, original)
    assert notebook.cells[1].source == original
    assert "papermill" not in notebook.metadata and "execution" not in notebook.cells[2].metadata
    assert notebook.cells[2].outputs[0]["text"] == "<cell>:3: UserWarning: 2 row(s) ... dropped.\n"
    assert run_notebook.find_machine_paths(notebook) == []


def test_run_notebook_refuses_save_with_other_parameters_and_a_used_folder(tmp_path: Path, capsys):
    data = tmp_path / "qa.csv"
    data.write_text("question,context\n")
    common = ["--dataset", str(data), "--base-model", str(tmp_path)]
    with pytest.raises(SystemExit):
        run_notebook.main([*common, "--work-dir", str(tmp_path / "new"), "--save", "--set", "EPOCHS=1"])
    assert "--save takes the defaults only" in capsys.readouterr().err
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    with pytest.raises(SystemExit):
        run_notebook.main([*common, "--work-dir", str(tmp_path / "used")])
    assert "is not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_notebook.main(
            ["--dataset", str(tmp_path / "missing.csv"), "--base-model", str(tmp_path), "--work-dir", "w"]
        )
    assert "--dataset" in capsys.readouterr().err and not Path("w").exists()


# --------------------------------------------------------------------------------------------------
# summarize.py: summary.json is what the records give
# --------------------------------------------------------------------------------------------------
def test_summary_json_is_up_to_date():
    assert summarize.main(["--check"]) == 0, "run python benchmarks/summarize.py and commit summary.json and summary.md"


def fake_record(
    name: str, seed: int, ndcg: float, seconds: float, per_query: dict | None = None, **parameters: object
) -> dict:
    values = {"recipe": "reference", "epochs": 6, "train_batch_size": 32, "learning_rate": 2e-5}
    values |= {"max_train_samples": None, "seed": 42, "training_seed": seed}
    return {
        "benchmark": {
            "name": name,
            "host": "x86_64, 2 CPU cores",
            "text_key": "folded",
            "wall_seconds": {"notebook": None, "pipeline": seconds + 50, "rescore": 9},
        },
        "corpus_modes": {
            "deduplicated": {
                "finetuned": {"test_cosine_ndcg@10": ndcg},
                "per_query": None if per_query is None else {"baseline": {}, "finetuned": per_query},
            },
            "rowwise": None,
        },
        "run": {
            "parameters": values | {"split": "reference"} | parameters,
            "hardware": {"device": "cuda", "device_name": "GPU", "precision": "bf16"},
            "training_seconds": seconds,
            "resumed_from": None,
            "best_checkpoint_metric": ndcg - 0.01,
        },
    }


def test_summarize_takes_mean_and_sd_over_seeds_and_names_recipes():
    records = [
        fake_record("a", 1, 0.84, 100),
        fake_record("b", 2, 0.86, 120),
        fake_record("c", 2, 0.86, 130),  # the same seed again: counted once (the later name)
        fake_record("d", 1, 0.80, 10, epochs=1, learning_rate=1e-4),
    ]
    rows = summarize.summarize(records)
    assert [row["recipe"] for row in rows] == ["reference", "reference with epochs=1, learning_rate=0.0001"]
    reference = rows[0]
    assert reference["n_seeds"] == 2 and reference["records"] == ["a", "c"]
    assert reference["test_ndcg@10_mean"] == 0.85 and reference["test_ndcg@10_sd"] == pytest.approx(0.0141, abs=1e-4)
    assert reference["training_seconds_mean"] == 115.0 and reference["run_seconds_mean"] == 165.0
    assert reference["best_validation_ndcg@10_mean"] == 0.84, "chosen on validation: its mean is kept beside test"
    assert rows[1]["test_ndcg@10_sd"] is None and rows[1]["corpus"] == "dedup" and rows[1]["hardware"] == "GPU, bf16"
    assert all(row["vs_reference"] is None for row in rows), "no per-query scores kept: no paired interval"


def flat_and_better_scores() -> tuple[dict[str, float], dict[str, float]]:
    """Per-query NDCG@10 of 200 questions: 0.5 each, and 0.2 higher on every other one (+0.1 on average)."""
    queries = [f"q{i}" for i in range(200)]
    return {q: 0.5 for q in queries}, {q: 0.5 + (0.2 if i % 2 else 0.0) for i, q in enumerate(queries)}


def test_summarize_compares_a_recipe_with_the_reference_query_by_query():
    reference, better = flat_and_better_scores()
    records = [
        fake_record("ref", 42, 0.5, 100, per_query=reference),
        fake_record("imp_seed42", 42, 0.6, 90, per_query=better, **improved_settings()),
        fake_record("imp_seed43", 43, 0.6, 110, per_query=better, **improved_settings()),
        fake_record("other_split", 42, 0.9, 90, per_query=better, split="grouped", **improved_settings()),
    ]
    rows = {(row["recipe"], row["split"]): row for row in summarize.summarize(records)}
    improved = rows[("improved", "reference")]
    assert improved["n_seeds"] == 2 and improved["test_ndcg@10_sd"] == 0.0
    versus = improved["vs_reference"]
    assert versus["delta"] == pytest.approx(0.1) and versus["reference_records"] == ["ref"]
    assert 0.05 < versus["ci_low"] < 0.1 < versus["ci_high"] < 0.15
    assert rows[("improved", "grouped")]["vs_reference"] is None, "no reference run on that split"
    assert "+0.1000 [" in summarize.to_markdown(list(rows.values()))


def test_summarize_keeps_runs_on_length_sorted_batches_apart():
    """Same loss, faster: pooled with the earlier runs, their times would hide the change."""
    earlier = fake_record("imp_seed42", 42, 0.84, 6000, **improved_settings())
    sorted_run = fake_record("imp_sorted_seed42", 42, 0.85, 3000, **improved_settings())
    sorted_run["run"]["loss"] = "MatryoshkaLoss(SortedCachedMultipleNegativesRankingLoss)"
    variant = fake_record("imp_sorted_lr", 42, 0.85, 3000, **improved_settings() | {"learning_rate": 2e-4})
    variant["run"]["loss"] = sorted_run["run"]["loss"]
    rows = summarize.summarize([earlier, sorted_run, variant])
    assert sorted(row["recipe"] for row in rows) == [
        "improved",
        "improved, length-sorted batches",
        "improved, length-sorted batches with learning_rate=0.0002",
    ]
    by_name = {row["recipe"]: row for row in rows}
    assert by_name["improved"]["training_seconds_mean"] == 6000
    assert by_name["improved, length-sorted batches"]["training_seconds_mean"] == 3000


def improved_settings() -> dict:
    return {"recipe": "improved", "epochs": 10, "train_batch_size": 256, "learning_rate": 1e-4}


def quick_settings() -> dict:
    quick = summarize.RECIPES["quick"].as_dict()
    return {"recipe": "quick"} | {key: quick[key] for key in summarize.RECIPE_SETTINGS}


def test_summarize_compares_a_variant_with_the_closest_run_of_its_recipe():
    queries = [f"q{i}" for i in range(200)]
    anchor_scores = {q: 0.6 for q in queries}
    variant_scores = {q: 0.6 + (0.1 if i % 2 else 0.0) for i, q in enumerate(queries)}  # +0.05 on average
    anchor = fake_record("imp_seed42", 42, 0.6, 100, per_query=anchor_scores, **improved_settings())
    variant = fake_record("imp_nomat", 42, 0.65, 90, per_query=variant_scores, **improved_settings())
    variant["run"]["recipe"] = summarize.RECIPES["improved"].as_dict() | {"matryoshka_dims": None}
    two_changes = fake_record("imp_nomat_lr", 42, 0.6, 90, per_query=anchor_scores, **improved_settings())
    two_changes["run"]["recipe"] = variant["run"]["recipe"] | {"learning_rate": 2e-4}
    reference = fake_record("ref", 42, 0.5, 100, per_query=anchor_scores)
    reference_variant = fake_record("ref_e1", 42, 0.5, 10, per_query=anchor_scores, epochs=1)
    no_per_query = fake_record("imp_lr5e-5", 42, 0.6, 90, **improved_settings() | {"learning_rate": 5e-5})
    rows = summarize.summarize([anchor, variant, two_changes, reference, reference_variant, no_per_query])
    by_name = {row["recipe"]: row for row in rows}

    versus = by_name["improved with matryoshka_dims=None"]["vs_anchor"]
    assert versus["anchor"] == "improved" and versus["anchor_records"] == ["imp_seed42"]
    assert versus["delta"] == pytest.approx(0.05) and 0.02 < versus["ci_low"] < 0.05 < versus["ci_high"] < 0.08
    assert versus["validation_delta"] == pytest.approx(0.05)
    closest = by_name["improved with learning_rate=0.0002, matryoshka_dims=None"]["vs_anchor"]
    assert closest["anchor"] == "improved with matryoshka_dims=None", "one setting apart, not two"
    assert closest["delta"] == pytest.approx(-0.05)
    assert by_name["improved"]["vs_anchor"] is None, "a recipe as named is an anchor, not a variant"
    assert by_name["reference with epochs=1"]["vs_anchor"] is None, "against the reference: the vs_reference column"
    assert by_name["improved with learning_rate=5e-05"]["vs_anchor"] is None, "no per-query scores: no interval"
    table = summarize.variants_to_markdown(rows)
    assert table.count("\n| improved with") == 2 and "| +0.0500 [" in table and "0.6400 (+0.0500)" in table


def test_summarize_prefers_an_anchor_on_the_same_kind_of_batches():
    queries = [f"q{i}" for i in range(50)]
    scores = {q: 0.6 for q in queries}
    unsorted_anchor = fake_record("imp", 42, 0.6, 100, per_query=scores, **improved_settings())
    sorted_anchor = fake_record("imp_sorted", 42, 0.6, 50, per_query=scores, **improved_settings())
    variant = fake_record("imp_sorted_e2", 42, 0.6, 10, per_query=scores, **improved_settings() | {"epochs": 2})
    for record in (sorted_anchor, variant):
        record["run"]["loss"] = "MatryoshkaLoss(SortedCachedMultipleNegativesRankingLoss)"
    rows = summarize.summarize([unsorted_anchor, sorted_anchor, variant])
    (versus,) = [row["vs_anchor"] for row in rows if row["vs_anchor"] is not None]
    assert versus["anchor"] == "improved, length-sorted batches" and versus["anchor_records"] == ["imp_sorted"]


def test_summarize_sets_each_cost_run_against_the_reference_run_of_its_group():
    reference_scores, improved_scores = flat_and_better_scores()
    records = [
        fake_record("grouped_cpu_cost_reference_seed42", 42, 0.5, 2000, per_query=reference_scores),
        fake_record("grouped_cpu_cost_improved_seed42", 42, 0.6, 500, per_query=improved_scores, **improved_settings()),
        fake_record("grouped_cpu_cost_quick_seed42", 42, 0.55, 300, **quick_settings()),  # no per-query scores
        fake_record("other_cost_improved_seed42", 42, 0.6, 400, **improved_settings()),  # a group with no reference
        fake_record("grouped_cpu_improved_seed42", 42, 0.6, 100, **improved_settings()),  # not a cost run
    ]
    rows = {(row["group"], row["label"]): row for row in summarize.compare_costs(records)}
    assert sorted(rows) == [
        ("grouped_cpu", "improved"),
        ("grouped_cpu", "quick"),
        ("grouped_cpu", "reference"),
        ("other", "improved"),
    ]
    reference, improved = rows[("grouped_cpu", "reference")], rows[("grouped_cpu", "improved")]
    assert reference["training_share"] == 1.0 and reference["vs_reference"] is None
    assert improved["training_share"] == 0.25 and improved["run_seconds"] == 550 and improved["recipe"] == "improved"
    assert improved["vs_reference"]["delta"] == pytest.approx(0.1)
    assert 0.05 < improved["vs_reference"]["ci_low"] < 0.1 < improved["vs_reference"]["ci_high"] < 0.15
    quick = rows[("grouped_cpu", "quick")]
    assert quick["training_share"] == 0.15 and quick["vs_reference"] is None, "no per-query scores: no interval"
    assert rows[("other", "improved")]["training_share"] is None, "nothing to compare with in its group"
    table = summarize.costs_to_markdown(list(rows.values()))
    assert "| grouped_cpu | improved | improved | dedup | GPU, bf16 | 500 | 0.25 | 550 | 0.6000 | +0.1000 [" in table

    twice = [*records, fake_record("grouped_cpu_cost_reference2_seed42", 42, 0.5, 1900)]
    with pytest.raises(ValueError, match="'grouped_cpu' has 2 reference-recipe runs"):
        summarize.compare_costs(twice)


def test_run_full_seeds_write_one_record_each_and_skip_the_ones_done(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(run_full, "RESULTS_DIR", tmp_path)
    (tmp_path / "bench_seed43.json").write_text("{}")
    done = []

    def fake_benchmark(args, name, training_seed, notes):
        done.append((name, training_seed, args.recipe))
        return tmp_path / f"{name}.json"

    monkeypatch.setattr(run_full, "benchmark_one", fake_benchmark)
    common = ["--split", "reference", "--dataset", "d.csv", "--base-model", "m", "--name", "bench"]
    assert run_full.main([*common, "--recipe", "improved", "--seeds", "3"]) == 0
    assert done == [("bench_seed42", 42, "improved"), ("bench_seed44", 44, "improved")]
    assert "skipping seeds with a record already: bench_seed43" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        run_full.main([*common, "--seeds", "2", "--from-results", "r.json"])
    with pytest.raises(SystemExit):
        run_full.main([*common, "--precision", "fp16", "--from-results", "r.json"])
    assert "not with --from-results" in capsys.readouterr().err


def test_run_full_reports_bad_input_in_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch, capsys, tiny_model_dir: str
):
    monkeypatch.setattr(run_full, "RESULTS_DIR", tmp_path / "results")
    argv = ["--split", "reference", "--dataset", str(FIXTURE_DATA), "--base-model", tiny_model_dir, "--name", "too-big"]
    argv += ["--train-batch-size", "1024", "--output-dir", str(tmp_path / "out"), "--seeds", "1"]
    assert run_full.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: too-big_seed42: The training split has ") and err.count("\n") == 1
    assert "fewer than one batch of 1024" in err and "Traceback" not in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "out").exists()


def test_run_full_variant_options_change_the_recipe_and_only_those(tmp_path: Path):
    parser_args = [
        "--split", "grouped", "--dataset", "d.csv", "--base-model", "m", "--name", "x", "--recipe", "improved",
    ]  # fmt: skip

    def variant(*extra: str):
        import argparse

        captured = {}

        def fake(args: argparse.Namespace, name, seed, notes):
            captured["recipe"] = run_full.variant_of(args, RunConfig(recipe=args.recipe))
            return tmp_path / "x.json"

        original, run_full.benchmark_one = run_full.benchmark_one, fake
        try:
            run_full.main([*parser_args, *extra])
        finally:
            run_full.benchmark_one = original
        return captured["recipe"]

    assert variant() is None, "no variant options: the named recipe as it is"
    symmetric = variant("--directions", "query_to_doc,doc_to_query", "--no-matryoshka")
    assert symmetric.directions == ("query_to_doc", "doc_to_query") and symmetric.matryoshka_dims is None
    assert (symmetric.loss, symmetric.train_batch_size, symmetric.mini_batch_size) == (
        "CachedMultipleNegativesRankingLoss",
        256,
        32,
    )
    plain = variant("--loss", "MultipleNegativesRankingLoss", "--hard-negatives", "1")
    assert plain.mini_batch_size is None and plain.hard_negatives == 1
    chunked = variant("--loss", "MultipleNegativesRankingLoss", "--mini-batch-size", "8")
    assert (chunked.loss, chunked.mini_batch_size) == ("MultipleNegativesRankingLoss", 8)
    symmetric_cached = variant("--loss", "CachedMultipleNegativesSymmetricRankingLoss")
    assert symmetric_cached.mini_batch_size == 32 and symmetric_cached.directions == ("query_to_doc",)
    assert symmetric_cached.train_batch_size == 256 and symmetric_cached.matryoshka_dims == (384, 256, 128, 64)


def run_recipes_script(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run benchmarks/run_recipes.sh with ``echo`` as its Python: it prints the run_full.py commands it would run."""
    return subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "run_recipes.sh"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": "echo", **env},
        check=False,
    )


def test_run_recipes_runs_the_reference_recipe_first_then_improved_seeds_then_grouped(tmp_path: Path):
    done = run_recipes_script(str(FIXTURE_DATA), str(tmp_path), "h100_bf16")
    assert done.returncode == 0, done.stderr
    commands = [line.split() for line in done.stdout.splitlines() if line.startswith("benchmarks/run_full.py")]
    summary = [(c[c.index("--split") + 1], c[c.index("--recipe") + 1], c[c.index("--seeds") + 1]) for c in commands]
    assert summary == [
        ("reference", "reference", "1"),
        ("reference", "improved", "3"),
        ("grouped", "improved", "1"),
        ("grouped", "reference", "1"),
    ]
    assert commands[1][commands[1].index("--name") + 1] == "reference_h100_bf16_improved"
    assert all("--precision" not in c for c in commands), "the machine's precision unless PRECISION is set"


def test_run_recipes_variants_change_one_setting_each_and_pass_the_precision(tmp_path: Path):
    done = run_recipes_script(str(FIXTURE_DATA), str(tmp_path), "h100_fp16", "variants", PRECISION="fp16")
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stdout.splitlines() if line.startswith("benchmarks/run_full.py")]
    assert len(commands) == len(VARIANT_ENDINGS)
    for command, ending in zip(commands, VARIANT_ENDINGS, strict=True):
        assert "--split reference --recipe improved --seeds 1" in command
        assert command.endswith(f"--precision fp16 {ending}")


VARIANT_ENDINGS = (  # the most telling first: a session that runs out of time has those
    "--no-matryoshka",
    "--train-batch-size 512",
    "--train-batch-size 1024",
    "--train-batch-size 128",
    "--hard-negatives 1",
    "--loss CachedMultipleNegativesSymmetricRankingLoss",
    "--learning-rate 2e-4",
    "--learning-rate 5e-5",
    "--directions query_to_doc,doc_to_query,query_to_query,doc_to_doc",
    "--directions query_to_doc,doc_to_query",
    "--epochs 6",
    "--loss MultipleNegativesRankingLoss",
)


def test_run_recipes_costs_times_the_recipes_on_the_grouped_split_on_length_sorted_batches(tmp_path: Path):
    done = run_recipes_script(str(FIXTURE_DATA), str(tmp_path), "cpu", "costs", OUTPUT_ROOT=str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stdout.splitlines() if line.startswith("benchmarks/run_full.py")]
    expected = [
        ("reference", "cost_reference_sorted8", "--mini-batch-size 8"),
        ("improved", "cost_improved_epochs2", "--epochs 2"),
        ("quick", "cost_quick", ""),
        ("improved", "cost_improved_epochs1", "--epochs 1"),
    ]
    assert len(commands) == len(expected)
    for command, (recipe, label, ending) in zip(commands, expected, strict=True):
        assert f"--split grouped --recipe {recipe} --seeds 1 --name grouped_cpu_{label} " in command
        assert command.endswith(f"--output-dir {tmp_path}/runs/grouped_cpu_{label} {ending}".rstrip())


def test_run_recipes_runs_jobs_at_a_time_with_the_note_and_options_in_every_run(tmp_path: Path):
    root = tmp_path / "runs"
    env = {"JOBS": "3", "NOTE": "3 at a time", "RUN_OPTIONS": "--mini-batch-size 128", "OUTPUT_ROOT": str(root)}
    done = run_recipes_script(str(FIXTURE_DATA), str(tmp_path), "h100_bf16", "anchor", "variants", **env)
    assert done.returncode == 0, done.stderr
    names = [line.split()[1].rstrip(":") for line in done.stdout.splitlines() if line.startswith("== ")]
    assert names[0] == "reference_h100_bf16_improved" and len(names) == 1 + len(VARIANT_ENDINGS)
    for name, ending in zip(names, ("", *VARIANT_ENDINGS), strict=True):
        command = (root / f"{name}.log").read_text().strip()  # each run printed into its own log
        assert f"--name {name} " in command
        assert command.endswith(f"--note 3 at a time --mini-batch-size 128 {ending}".strip())
        assert (root / f"{name}.status").read_text() == "0\n"  # and its exit status beside it


def test_run_recipes_names_the_runs_that_failed(tmp_path: Path):
    done = run_recipes_script(str(FIXTURE_DATA), str(tmp_path), "cpu", "anchor", JOBS="2", PYTHON="false",
                              OUTPUT_ROOT=str(tmp_path / "runs"))  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("failed: reference_cpu_improved (their logs: ")
    assert run_recipes_script(str(FIXTURE_DATA), str(tmp_path), "cpu", JOBS="two").returncode == 2


def test_run_recipes_checks_every_stage_before_running_any(tmp_path: Path):
    done = run_recipes_script(str(FIXTURE_DATA), str(tmp_path), "cpu", "recipes", "sweep")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "unknown stage 'sweep': use recipes, anchor, variants, seeds or costs\n"
    assert run_recipes_script(str(FIXTURE_DATA)).returncode == 2
