"""Safe runs: bad input fails before any model is loaded, output folders are never mixed, runs resume."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import FIXTURE_DATA, fixture_config

from ft_helpers import QADataError
from ft_helpers.pipeline import prepare_output_dir, run_pipeline


@pytest.fixture()
def no_model_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything tries to load a model."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr("ft_helpers.pipeline.load_base_model", refuse)


# --------------------------------------------------------------------------------------------------
# prepare_output_dir
# --------------------------------------------------------------------------------------------------
def test_output_dir_is_created_when_missing(tmp_path: Path):
    assert prepare_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and not any((tmp_path / "a" / "b").iterdir())


def test_non_empty_output_dir_is_refused_and_left_alone(tmp_path: Path):
    (tmp_path / "results.json").write_text('{"run": 1}')
    with pytest.raises(ValueError, match="is not empty: choose a new folder, or pass overwrite=True"):
        prepare_output_dir(tmp_path)
    assert (tmp_path / "results.json").read_text() == '{"run": 1}'


def test_overwrite_clears_the_folder_first(tmp_path: Path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.json").write_text("{}")
    prepare_output_dir(tmp_path, overwrite=True)
    assert list(tmp_path.iterdir()) == []


def test_resume_needs_a_checkpoint_and_keeps_the_folder(tmp_path: Path):
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(ValueError, match=r"Nothing to resume in .* no checkpoints/checkpoint-\* folder"):
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
# run_pipeline fails fast: before any model is loaded or anything is written
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"epochs": 0}, ValueError, "EPOCHS must be a whole number >= 1"),
        ({"learning_rate": -1.0}, ValueError, "LEARNING_RATE must be a number between 0 and 1"),
        ({"bootstrap_resamples": 0}, ValueError, "BOOTSTRAP_RESAMPLES must be a whole number >= 100"),
        ({"train_batch_size": 500}, ValueError, "TRAIN_BATCH_SIZE to at most"),
        ({"context_column": "passage"}, QADataError, "Available columns: question, context, company"),
        ({"max_train_samples": 3}, ValueError, "fewer than one batch of 8"),
        ({"base_model": "./models/missing"}, OSError, r"BASE_MODEL: model folder not found: '\./models/missing'"),
        ({"base_model": "models/minilm"}, OSError, r"Hugging Face Hub is switched off \(HF_HUB_OFFLINE\)"),
    ],
)
def test_bad_input_fails_before_any_model_is_loaded_and_writes_nothing(
    tmp_path: Path, tiny_model_dir: str, no_model_loading: None, changes: dict, error: type, message: str
):
    with pytest.raises(error, match=message):
        run_pipeline(fixture_config(tmp_path, tiny_model_dir, **changes), log=lambda line: None)
    assert not (tmp_path / "run").exists()


def write_rows(path: Path, questions: list[str], contexts: list[str]) -> Path:
    pd.DataFrame({"question": questions, "context": contexts}).to_csv(path, index=False)
    return path


def test_a_corpus_of_too_few_passages_is_refused(tmp_path: Path, tiny_model_dir: str, no_model_loading: None):
    data = write_rows(tmp_path / "few.csv", [f"Question {i}?" for i in range(60)], ["One passage."] * 60)
    with pytest.raises(QADataError, match=r"The corpus holds 1 distinct passage\(s\); retrieval metrics need at least"):
        run_pipeline(
            fixture_config(tmp_path, tiny_model_dir, dataset=str(data), split="reference"), log=lambda line: None
        )
    assert not (tmp_path / "run").exists()


def test_a_test_split_of_one_question_is_refused(tmp_path: Path, tiny_model_dir: str, no_model_loading: None):
    # 25 rows: the reference split tests 3 of them, all asking the same question, so one query
    data = write_rows(tmp_path / "same.csv", ["The same question?"] * 25, [f"Passage {i}." for i in range(25)])
    config = fixture_config(tmp_path, tiny_model_dir, dataset=str(data), split="reference", train_batch_size=2)
    with pytest.raises(
        QADataError, match=r"The test split holds 1 question\(s\); comparing two models needs at least 2"
    ):
        run_pipeline(config, log=lambda line: None)
    assert not (tmp_path / "run").exists()


def test_a_small_test_split_gives_a_counted_warning(tmp_path: Path, tiny_model_dir: str, no_model_loading: None):
    lines: list[str] = []
    with pytest.raises(AssertionError, match="a model was loaded"):  # the checks passed; the model comes next
        run_pipeline(fixture_config(tmp_path, tiny_model_dir), log=lines.append)
    assert [line for line in lines if line.startswith("warning:")] == [
        "warning: The test split holds only 5 question(s): expect wide confidence intervals "
        "(they shrink with the square root of the number of questions)."
    ]


# --------------------------------------------------------------------------------------------------
# Checkpoints: removed after the best model is saved unless kept; an interrupted run resumes to the same end
# --------------------------------------------------------------------------------------------------
def model_weights(folder: str | Path) -> dict:
    from safetensors.torch import load_file

    return load_file(Path(folder) / "model.safetensors")


def test_checkpoints_are_removed_unless_kept(tmp_path: Path, tiny_model_dir: str):
    run_pipeline(fixture_config(tmp_path, tiny_model_dir), log=lambda line: None, keep_checkpoints=False)
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "run" / "results.json").read_text())["run"]["training_steps"] > 0


def test_an_interrupted_run_resumes_to_the_same_end(tmp_path: Path, tiny_model_dir: str, monkeypatch):
    from sentence_transformers import SentenceTransformerTrainer
    from transformers import TrainerCallback

    whole = run_pipeline(fixture_config(tmp_path / "whole", tiny_model_dir, epochs=2), log=lambda line: None)

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
            run_pipeline(config, log=lambda line: None)
    output = tmp_path / "parts" / "run"
    per_epoch = whole["run"]["training_steps"] // 2
    assert [path.name for path in (output / "checkpoints").glob("checkpoint-*")] == [f"checkpoint-{per_epoch}"]
    assert not (output / "results.json").exists(), "no results from an unfinished run"

    with pytest.raises(ValueError, match="is not empty"):  # a plain rerun would mix two runs
        run_pipeline(config, log=lambda line: None)
    resumed = run_pipeline(config, log=lambda line: None, resume_from_checkpoint=True)
    assert resumed["run"]["resumed_from"] == str(output / "checkpoints" / f"checkpoint-{per_epoch}")
    assert resumed["run"]["training_steps"] == whole["run"]["training_steps"]
    assert resumed["finetuned"] == pytest.approx(whole["finetuned"], abs=1e-6)
    ends = [model_weights(run["run"]["model_dir"]) for run in (whole, resumed)]
    assert all((ends[0][name] - ends[1][name]).abs().max() < 1e-6 for name in ends[0])


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

    monkeypatch.setattr("ft_helpers.pipeline.evaluate_retrieval", stop)
    lines: list[str] = []
    with pytest.raises(StopError):
        run_pipeline(fixture_config(tmp_path, tiny_model_dir, dataset=str(data)), log=lines.append)
    assert [line for line in lines if "token window" in line] == [
        "warning: 3 of 48 passages are longer than the model's 128-token window, so their ends are cut off; "
        "split long passages into chunks before fine-tuning."
    ]
