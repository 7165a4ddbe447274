"""Safe runs: bad input fails before any model is loaded, output folders are never mixed, runs resume."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import FIXTURE_DATA, fixture_config

from ft_helpers import QADataError, build_ir_inputs
from ft_helpers.workflow import load_and_split, prepare_output_dir, run


def quiet(line: str) -> None:
    """A log that drops every line."""


# --------------------------------------------------------------------------------------------------
# prepare_output_dir
# --------------------------------------------------------------------------------------------------
def test_output_dir_is_created_when_missing(tmp_path: Path):
    assert prepare_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and not any((tmp_path / "a" / "b").iterdir())


def test_non_empty_output_dir_is_refused_and_left_alone(tmp_path: Path):
    (tmp_path / "results.json").write_text('{"run": 1}')
    with pytest.raises(ValueError, match="is not empty: choose a new folder, or pass overwrite=True") as info:
        prepare_output_dir(tmp_path)
    assert "or resume=True to go on from its last checkpoint" in str(info.value)
    assert (tmp_path / "results.json").read_text() == '{"run": 1}'
    with pytest.raises(ValueError) as info:  # evaluate cannot resume: it does not offer to
        prepare_output_dir(tmp_path, resumable=False)
    assert str(info.value).endswith("or pass overwrite=True to delete its files first.")
    assert "resume" not in str(info.value)


def test_overwrite_clears_the_folder_first(tmp_path: Path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.json").write_text("{}")
    prepare_output_dir(tmp_path, overwrite=True)
    assert list(tmp_path.iterdir()) == []


def test_resume_needs_a_checkpoint_and_keeps_the_folder(tmp_path: Path):
    (tmp_path / "eval").mkdir()
    with pytest.raises(
        ValueError, match=r"Nothing to resume in .* no checkpoints/checkpoint-\* folder, nor the run\.json"
    ):
        prepare_output_dir(tmp_path, resume=True)
    (tmp_path / "run.json").write_text("{}")  # a run that started, and was stopped before its first checkpoint
    prepare_output_dir(tmp_path, resume=True)
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(ValueError, match=r"Nothing to resume in .*: its run finished \(results\.json\)"):
        prepare_output_dir(tmp_path, resume=True)
    (tmp_path / "checkpoints" / "checkpoint-6").mkdir(parents=True)
    prepare_output_dir(tmp_path, resume=True)
    assert (tmp_path / "results.json").is_file()


def test_output_dir_that_is_a_file_or_both_options_are_refused(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="is a file, not a folder"):
        prepare_output_dir(tmp_path / "file")
    with pytest.raises(ValueError, match="not both"):
        prepare_output_dir(tmp_path / "new", overwrite=True, resume=True)
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------------------------------
# run fails fast: before any model is loaded or anything is written
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"epochs": 0}, ValueError, "EPOCHS must be a whole number >= 1"),
        ({"learning_rate": -1.0}, ValueError, "LEARNING_RATE must be a number between 0 and 1"),
        ({"bootstrap_resamples": 0}, ValueError, "BOOTSTRAP_RESAMPLES must be a whole number >= 100"),
        ({"sort_by_length": "no"}, ValueError, "SORT_BY_LENGTH must be True or False, got 'no'"),
        ({"recipe": "large"}, ValueError, "RECIPE must be one of 'auto', 'reference', 'improved', 'quick'"),
        ({"train_batch_size": 500}, ValueError, "TRAIN_BATCH_SIZE to at most"),
        ({"context_column": "passage"}, QADataError, "Available columns: question, context, company"),
        ({"group_column": "sector"}, QADataError, r"fixture\.csv': group column 'sector' not found\. Available col"),
        ({"max_train_samples": 3}, ValueError, "fewer than one batch of 8"),
        ({"base_model": "./models/missing"}, OSError, r"BASE_MODEL: model folder not found: '\./models/missing'"),
        ({"base_model": "models/minilm"}, OSError, r"Hugging Face Hub is switched off \(HF_HUB_OFFLINE\)"),
        ({"dataset": "missing.csv"}, QADataError, r"Data file not found: 'missing\.csv' \(working directory: "),
    ],
)
def test_bad_input_fails_before_any_model_is_loaded_and_writes_nothing(
    tmp_path: Path, tiny_model_dir: str, no_model_loading: None, changes: dict, error: type, message: str
):
    with pytest.raises(error, match=message):  # no_model_loading: an AssertionError had a model been loaded first
        run(fixture_config(tmp_path, tiny_model_dir, **changes), log=quiet)
    assert not (tmp_path / "run").exists()


def test_overwrite_and_resume_together_are_refused_before_any_model_is_loaded(
    tmp_path: Path, tiny_model_dir: str, no_model_loading: None
):
    with pytest.raises(ValueError, match="Choose one of overwrite"):
        run(fixture_config(tmp_path, tiny_model_dir), log=quiet, overwrite=True, resume=True)
    assert not (tmp_path / "run").exists()


def test_a_used_output_dir_is_refused_before_any_model_is_loaded(
    tmp_path: Path, tiny_model_dir: str, no_model_loading: None
):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text('{"from": "run 1"}')
    with pytest.raises(ValueError, match="is not empty"):
        run(fixture_config(tmp_path, tiny_model_dir), log=quiet)
    with pytest.raises(ValueError, match="Nothing to resume"):
        run(fixture_config(tmp_path, tiny_model_dir), log=quiet, resume=True)
    assert [path.name for path in (tmp_path / "run").iterdir()] == ["results.json"]
    assert (tmp_path / "run" / "results.json").read_text() == '{"from": "run 1"}'


def write_rows(path: Path, questions: list[str], contexts: list[str]) -> Path:
    pd.DataFrame({"question": questions, "context": contexts}).to_csv(path, index=False)
    return path


def test_a_corpus_of_too_few_passages_is_refused(tmp_path: Path, tiny_model_dir: str, no_model_loading: None):
    data = write_rows(tmp_path / "few.csv", [f"Question {i}?" for i in range(60)], ["One passage."] * 60)
    with pytest.raises(QADataError, match=r"The corpus holds 1 distinct passage\(s\); retrieval metrics need at least"):
        run(fixture_config(tmp_path, tiny_model_dir, dataset=str(data), split="reference"), log=quiet)
    assert not (tmp_path / "run").exists()


def test_a_test_split_of_one_question_is_refused(tmp_path: Path, tiny_model_dir: str, no_model_loading: None):
    # 25 rows: the reference split tests 3 of them, all asking the same question, so one query
    data = write_rows(tmp_path / "same.csv", ["The same question?"] * 25, [f"Passage {i}." for i in range(25)])
    config = fixture_config(tmp_path, tiny_model_dir, dataset=str(data), split="reference", train_batch_size=2)
    with pytest.raises(
        QADataError, match=r"The test split holds 1 question\(s\); comparing two models needs at least 2"
    ):
        run(config, log=quiet)
    assert not (tmp_path / "run").exists()


def test_a_small_test_split_gives_a_counted_warning(tmp_path: Path, tiny_model_dir: str, no_model_loading: None):
    config = fixture_config(tmp_path, tiny_model_dir)
    pairs, splits = load_and_split(config)
    questions = len(build_ir_inputs(splits["test"], pairs).queries)
    assert 2 <= questions < 100
    lines: list[str] = []
    with pytest.raises(AssertionError, match="a model was loaded"):  # the checks passed; the model comes next
        run(config, log=lines.append)
    assert [line for line in lines if line.startswith("warning:")] == [
        f"warning: The test split holds only {questions} question(s): expect wide confidence intervals "
        "(they shrink with the square root of the number of questions)."
    ]
    # what the run says before it loads the model: the split, the device, the recipe
    assert lines[-3:] == [
        f"split sizes: { {name: len(frame) for name, frame in splits.items()} }",
        lines[-2],
        f"recipe 'reference': {config.training_recipe('cpu').describe()}; each batch embedded in length-sorted pieces",
    ]
    assert lines[-2].startswith("device: ")


def test_passages_longer_than_the_model_window_are_counted(tmp_path: Path, tiny_model_dir: str, monkeypatch):
    frame = pd.read_csv(FIXTURE_DATA)
    rows = frame["context"].drop_duplicates(keep=False).index[:3]  # three passages used once each
    frame.loc[rows, "context"] = frame.loc[rows, "context"] + " and more words" * 100
    data = tmp_path / "long.csv"
    frame.to_csv(data, index=False)

    class StopError(Exception):
        pass

    def stop(*args: object, **kwargs: object) -> None:
        raise StopError

    monkeypatch.setattr("ft_helpers.workflow.evaluate_retrieval", stop)
    lines: list[str] = []
    with pytest.raises(StopError):
        run(fixture_config(tmp_path, tiny_model_dir, dataset=str(data)), log=lines.append)
    documents = frame["context"].nunique()
    assert documents == 48
    assert [line for line in lines if "token window" in line] == [
        f"warning: 3 of {documents} passages are longer than the model's 128-token window, so their ends are cut "
        "off; split long passages into chunks before fine-tuning."
    ]


# --------------------------------------------------------------------------------------------------
# An interrupted run leaves no results.json, refuses a plain rerun, and resumes to the same end
# --------------------------------------------------------------------------------------------------
def model_weights(folder: str | Path) -> dict:
    from safetensors.torch import load_file

    return load_file(Path(folder) / "model.safetensors")


def test_an_interrupted_run_resumes_to_the_same_end(tmp_path: Path, tiny_model_dir: str, monkeypatch):
    from sentence_transformers import SentenceTransformerTrainer
    from transformers import TrainerCallback

    whole = run(fixture_config(tmp_path / "whole", tiny_model_dir, epochs=2), log=quiet)
    assert not (tmp_path / "whole" / "run" / "checkpoints").exists(), "removed at the end unless kept"

    class StopAfterFirstCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise KeyboardInterrupt  # as Ctrl-C right after epoch 1's checkpoint

    original_init = SentenceTransformerTrainer.__init__

    def init_with_interrupt(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.add_callback(StopAfterFirstCheckpoint())

    config = fixture_config(tmp_path / "parts", tiny_model_dir, epochs=2)
    with monkeypatch.context() as patch:
        patch.setattr(SentenceTransformerTrainer, "__init__", init_with_interrupt)
        with pytest.raises(KeyboardInterrupt):
            run(config, log=quiet)
    output = tmp_path / "parts" / "run"
    per_epoch = whole["training"]["steps"] // 2
    assert [path.name for path in (output / "checkpoints").glob("checkpoint-*")] == [f"checkpoint-{per_epoch}"]
    assert not (output / "results.json").exists(), "no results from an unfinished run"
    assert not (output / "model").exists()

    with pytest.raises(ValueError, match="is not empty"):  # a plain rerun would mix two runs
        run(config, log=quiet)
    lines: list[str] = []
    resumed = run(config, log=lines.append, resume=True)
    assert resumed["training"]["resumed_from"] == f"checkpoint-{per_epoch}"
    assert whole["training"]["resumed_from"] is None
    assert resumed["training"]["steps"] == whole["training"]["steps"]
    assert resumed["training"]["best_step"] == whole["training"]["best_step"]
    curves = [run["training"]["validation_by_epoch"] for run in (whole, resumed)]
    assert [epoch for epoch, _ in curves[1]] == [epoch for epoch, _ in curves[0]] == [1.0, 2.0]
    assert [score for _, score in curves[1]] == pytest.approx([score for _, score in curves[0]], abs=1e-6)
    assert resumed["finetuned"] == pytest.approx(whole["finetuned"], abs=1e-6)
    assert json.loads((output / "results.json").read_text())["training"]["resumed_from"] == f"checkpoint-{per_epoch}"
    assert not (output / "checkpoints").exists(), "removed once results.json is written"
    ends = [model_weights(folder / "run" / "model") for folder in (tmp_path / "whole", tmp_path / "parts")]
    assert ends[0].keys() == ends[1].keys()
    assert all((ends[0][name] - ends[1][name]).abs().max() < 1e-6 for name in ends[0])


def test_overwrite_replaces_an_earlier_runs_files(tmp_path: Path, tiny_model_dir: str):
    output = tmp_path / "run"
    (output / "eval" / "old").mkdir(parents=True)
    (output / "results.json").write_text('{"from": "run 1"}')
    results = run(fixture_config(tmp_path, tiny_model_dir), log=quiet, overwrite=True)
    assert not (output / "eval" / "old").exists(), "nothing of the earlier run is left to mix with this one"
    assert json.loads((output / "results.json").read_text())["training"] == results["training"]
    assert sorted(path.name for path in (output / "eval").iterdir()) == ["baseline", "finetuned"]
