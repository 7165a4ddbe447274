"""The command line: options from RunConfig, one-line errors with exit status 2, Ctrl-C, run and evaluate."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
import torch
from conftest import FIXTURE_DATA, ROOT

from ft_helpers import RunConfig
from ft_helpers.cli import build_parser, main, to_command_line
from ft_helpers.config import PARAMETER_HELP


def run_options(argv: list[str]) -> dict:
    options = vars(build_parser().parse_args(["run", *argv]))
    for name in ("command", "debug", "overwrite", "resume", "keep_checkpoints", "push_to_hub", "precision"):
        options.pop(name)
    return options


def test_run_defaults_are_the_run_config_defaults():
    assert RunConfig(**run_options([])) == RunConfig()


def test_every_parameter_is_explained_once():
    assert set(PARAMETER_HELP) == {field.name for field in fields(RunConfig)}
    assert all(text.endswith(".") and len(text) > 20 for text in PARAMETER_HELP.values())


def test_run_parses_every_kind_of_option():
    options = run_options(
        [
            "--dataset",
            "qa.parquet",
            "--epochs",
            "2",
            "--learning-rate",
            "3e-5",
            "--max-train-samples",
            "1500",
            "--group-column",
            "ticker",
            "--no-deduplicate-corpus",
            "--split",
            "reference",
        ]
    )
    config = RunConfig(**options)
    assert (config.dataset, config.epochs, config.learning_rate) == ("qa.parquet", 2, 3e-5)
    assert (config.max_train_samples, config.group_column, config.deduplicate_corpus) == (1500, "ticker", False)
    assert config.split == "reference"
    assert run_options(["--max-train-samples", "None"])["max_train_samples"] is None


def test_help_explains_options_formats_splits_and_outputs(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in PARAMETER_HELP:
        assert " ".join(PARAMETER_HELP[name].split())[:40] in text, name
    for phrase in (".csv, .json, .jsonl, .parquet", "'grouped' keeps", "results.json", "--overwrite", "--resume"):
        assert phrase in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["run", "--epochs", "two"],
            "error: argument --epochs: invalid int value: 'two' (see python -m ft_helpers run --help)",
        ),
        (["run", "--split", "random"], "error: argument --split: invalid choice: 'random'"),
        (["run", "--precision", "fp8"], "error: argument --precision: invalid choice: 'fp8'"),
        (["run", "--overwrite", "--resume"], "error: argument --resume: not allowed with argument --overwrite"),
        (["evaluate"], "error: the following arguments are required: --model"),
        (["train"], "error: argument {run,evaluate}: invalid choice: 'train'"),
    ],
)
def test_unparsable_options_give_one_line_and_status_2(argv: list[str], message: str, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_to_command_line_names_options_and_fits_one_line():
    message = (
        "EPOCHS must be ...\nSet QUESTION_COLUMN / CONTEXT_COLUMN, or overwrite=True or resume_from_checkpoint=True."
    )
    assert to_command_line(message) == (
        "--epochs must be ... Set --question-column / --context-column, or --overwrite or --resume."
    )


# --------------------------------------------------------------------------------------------------
# main(): bad input ends in one line and status 2, before any model is loaded; nothing is written
# --------------------------------------------------------------------------------------------------
@pytest.fixture()
def no_model_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr("ft_helpers.pipeline.load_base_model", refuse)


def run_args(tmp_path: Path, model: str, *extra: str) -> list[str]:
    """A run of the reference recipe (its batch of 32 fits the fixture) on the fixture, to tmp_path / "out"."""
    output = str(tmp_path / "out")
    return [
        "run",
        "--dataset",
        str(FIXTURE_DATA),
        "--base-model",
        model,
        "--output-dir",
        output,
        "--recipe",
        "reference",
        *extra,
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--epochs", "0"], "error: --epochs must be a whole number >= 1 or None, got 0."),
        (["--epochs", "-1"], "error: --epochs must be a whole number >= 1 or None, got -1."),
        (
            ["--learning-rate", "-1"],
            "error: --learning-rate must be a number between 0 and 1 (e.g. 2e-5) or None, got -1.0.",
        ),
        (["--bootstrap-resamples", "0"], "error: --bootstrap-resamples must be a whole number >= 100, got 0."),
        (["--max-train-samples", "0"], "error: --max-train-samples must be a whole number >= 2 or None, got 0."),
        (["--train-batch-size", "500"], "Use more data or set --train-batch-size to at most"),
        (["--context-column", "passage"], "Set --question-column / --context-column to the right names."),
        (["--group-column", "sector"], "error: Group column 'sector' not found."),
    ],
)
def test_bad_input_is_one_line_with_the_option_and_status_2(
    tmp_path: Path, tiny_model_dir: str, no_model_loading: None, extra: list[str], message: str, capsys
):
    assert main(run_args(tmp_path, tiny_model_dir, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_half_precision_on_cpu_is_refused_before_any_work(
    tmp_path: Path, tiny_model_dir: str, no_model_loading: None, capsys
):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert main(run_args(tmp_path, tiny_model_dir, "--precision", "bf16")) == 2
    err = capsys.readouterr().err
    assert "error: bf16 training needs a CUDA GPU; on " in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_bad_data_files_are_one_line(tmp_path: Path, tiny_model_dir: str, no_model_loading: None, capsys):
    nested = tmp_path / "nested.jsonl"
    nested.write_text(json.dumps({"question": "Why?", "context": ["a", "list"]}) + "\n")
    assert main([*run_args(tmp_path, tiny_model_dir), "--dataset", str(nested)]) == 2
    assert "Column 'context' holds 1 value(s) that are not text, e.g. row 0: list" in capsys.readouterr().err
    assert main([*run_args(tmp_path, tiny_model_dir), "--dataset", str(tmp_path)]) == 2
    assert "is a folder, not a file: give the data file inside it" in capsys.readouterr().err
    one_passage = tmp_path / "one.csv"
    pd.DataFrame({"question": [f"Q{i}?" for i in range(50)], "context": ["The same passage."] * 50}).to_csv(
        one_passage, index=False
    )
    assert main([*run_args(tmp_path, tiny_model_dir, "--split", "reference"), "--dataset", str(one_passage)]) == 2
    assert "The corpus holds 1 distinct passage(s)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_used_output_folder_is_refused_and_left_alone(tmp_path: Path, tiny_model_dir: str, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").write_text('{"from": "run 1"}')
    assert main(run_args(tmp_path, tiny_model_dir)) == 2
    err = capsys.readouterr().err
    assert "is not empty: choose a new folder, or pass --overwrite to delete its files first, or --resume" in err
    assert (tmp_path / "out" / "results.json").read_text() == '{"from": "run 1"}'


def test_ctrl_c_says_how_to_resume(tmp_path: Path, tiny_model_dir: str, monkeypatch, capsys):
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("ft_helpers.pipeline.run_pipeline", interrupted)
    assert main(run_args(tmp_path, tiny_model_dir)) == 130
    err = capsys.readouterr().err
    assert err.strip() == "Interrupted. To go on, run the same command with --resume."


def test_the_module_exits_2_without_a_traceback(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "ft_helpers", "run", "--epochs", "0", "--output-dir", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr == "error: --epochs must be a whole number >= 1 or None, got 0.\n"


# --------------------------------------------------------------------------------------------------
# run and evaluate end to end with a tiny model
# --------------------------------------------------------------------------------------------------
def test_run_writes_results_and_deletes_checkpoints(tmp_path: Path, tiny_model_dir: str, capsys):
    assert main(run_args(tmp_path, tiny_model_dir, "--epochs", "1", "--train-batch-size", "8")) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary == {"results": f"{tmp_path / 'out'}/results.json", "model": str(tmp_path / "out" / "model")}
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["run"]["parameters"]["epochs"] == 1
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_evaluate_scores_one_model_and_compares_two(tmp_path: Path, tiny_model_dir: str, capsys):
    common = ["evaluate", "--dataset", str(FIXTURE_DATA), "--bootstrap-resamples", "200"]
    assert main([*common, "--model", tiny_model_dir, "--output-dir", str(tmp_path / "one")]) == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    assert one["models"] == [tiny_model_dir] and len(one["metrics"]) == 1 and "comparison" not in one
    assert 0 <= one["metrics"][0]["test_cosine_ndcg@10"] <= 1
    assert set(one["run"]["parameters"]) >= {"dataset", "split", "seed"} and "epochs" not in one["run"]["parameters"]

    args = [*common, "--model", tiny_model_dir, "--model", tiny_model_dir, "--output-dir", str(tmp_path / "two")]
    assert main(args) == 0
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["metrics"][0] == two["metrics"][1] == one["metrics"][0]  # the same split and questions
    assert all(row["delta"] == 0 and row["p_value"] == 1 for row in two["comparison"])
    assert (tmp_path / "two" / "comparison.png").is_file()
    assert "warning: The test split holds only" in capsys.readouterr().out


def test_evaluate_refuses_three_models_and_a_bad_model(tmp_path: Path, tiny_model_dir: str, capsys):
    args = ["evaluate", "--dataset", str(FIXTURE_DATA), "--output-dir", str(tmp_path / "out")]
    assert main([*args, "--model", tiny_model_dir, "--model", tiny_model_dir, "--model", tiny_model_dir]) == 2
    assert "Give one model to score or two to compare, got 3." in capsys.readouterr().err
    assert main([*args, "--model", tiny_model_dir, "--model", str(tmp_path / "missing")]) == 2
    assert "error: model 2: model folder not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------------
# The model card and --push-to-hub (a fake Hub client; the token never shows)
# --------------------------------------------------------------------------------------------------
class FakeHub:
    """Records what a HfApi would have been asked to do."""

    calls: ClassVar[list[tuple[str, dict]]] = []

    def create_repo(self, **kwargs: object) -> None:
        FakeHub.calls.append(("create_repo", kwargs))

    def upload_folder(self, **kwargs: object) -> None:
        FakeHub.calls.append(("upload_folder", kwargs))
        assert (Path(str(kwargs["folder_path"])) / "README.md").is_file(), "the model card goes up with the model"


SECRET = "hf_secretTOKEN1234567890"


def test_push_to_hub_without_a_token_fails_before_any_work(tmp_path: Path, tiny_model_dir: str, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    assert main(run_args(tmp_path, tiny_model_dir, "--push-to-hub", "me/model")) == 2
    assert "needs a token with write access in the environment variable HF_TOKEN" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_run_pushes_the_model_and_its_card_and_never_shows_the_token(
    tmp_path: Path, tiny_model_dir: str, monkeypatch, capsys
):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr("huggingface_hub.HfApi", FakeHub)
    FakeHub.calls = []
    argv = run_args(tmp_path, tiny_model_dir, "--epochs", "1", "--train-batch-size", "8", "--push-to-hub", "me/model")
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out.strip().splitlines()[-1])["hub"] == "https://huggingface.co/me/model"
    assert [name for name, _ in FakeHub.calls] == ["create_repo", "upload_folder"]
    assert FakeHub.calls[0][1] == {"repo_id": "me/model", "token": SECRET, "private": True, "exist_ok": True}
    assert FakeHub.calls[1][1]["folder_path"] == str(tmp_path / "out" / "model")
    written = "".join(path.read_text(errors="ignore") for path in (tmp_path / "out").rglob("*") if path.is_file())
    assert SECRET not in printed.out + printed.err + written

    card = (tmp_path / "out" / "model" / "README.md").read_text(encoding="utf-8")
    section = card.split("<!-- ft_helpers:results -->")[1]
    assert "## Retrieval on held-out test questions" in section
    assert "| ndcg@10 |" in section and "95% CI (paired bootstrap)" in section
    assert "MultipleNegativesRankingLoss, 1 epoch(s), batch 8" in section
    assert str(tmp_path) not in section, "no local paths in a card that may go public"


def test_push_failure_masks_the_token(tmp_path: Path):
    from ft_helpers.pipeline import push_model

    class Refusing:
        def create_repo(self, **kwargs: object) -> None:
            raise PermissionError(f"401 for token {kwargs['token']}")

    with pytest.raises(OSError) as info:
        push_model(tmp_path, "me/model", SECRET, api=Refusing())
    assert str(info.value) == "Could not push to the Hub repository 'me/model': PermissionError: 401 for token ***"


def test_run_and_evaluate_test_on_a_separate_file(tmp_path: Path, tiny_model_dir: str, capsys):
    rows = pd.read_csv(FIXTURE_DATA)
    rows.iloc[:42].to_csv(tmp_path / "train.csv", index=False)
    held_out = rows.iloc[42:]
    held_out.to_csv(tmp_path / "test.csv", index=False)
    data = ["--dataset", str(tmp_path / "train.csv"), "--test-dataset", str(tmp_path / "test.csv")]
    run = ["run", *data, "--base-model", tiny_model_dir, "--output-dir", str(tmp_path / "out"), "--epochs", "1"]
    assert main([*run, "--train-batch-size", "8", "--bootstrap-resamples", "200"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["split"]["sizes"]["test"] == len(held_out)
    assert results["evaluation"]["test"]["queries"] == held_out["question"].nunique()
    assert results["run"]["parameters"]["test_dataset"] == str(tmp_path / "test.csv")
    assert all(value == 0 for pair in results["split"]["leakage"].values() for value in pair.values())

    evaluate = ["evaluate", *data, "--model", str(tmp_path / "out" / "model"), "--output-dir", str(tmp_path / "ev")]
    assert main([*evaluate, "--bootstrap-resamples", "200"]) == 0
    scored = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert scored["metrics"][0] == pytest.approx(results["finetuned"])  # the same test questions and corpus
