"""The command line: options from RunConfig, one-line errors with exit status 2, Ctrl-C, run and evaluate."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
from conftest import FIXTURE_DATA, ROOT

from ft_helpers import RECIPES, RunConfig
from ft_helpers.cli import build_parser, flag, main, to_command_line
from ft_helpers.workflow import EVALUATE_PARAMETERS, push_model

#: What `run` takes besides the RunConfig fields.
RUN_CONTROLS = ("overwrite", "resume", "keep_checkpoints", "push_to_hub", "skip_bad_rows")


def run_options(argv: list[str]) -> dict:
    options = vars(build_parser().parse_args(["run", *argv]))
    for name in ("command", "debug", *RUN_CONTROLS):
        options.pop(name)
    return options


def options_of(command: str) -> dict[str, argparse.Action]:
    """The options of a subcommand, by destination."""
    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    return {action.dest: action for action in commands.choices[command]._actions}


def squeeze(text: str) -> str:
    """Text without whitespace, so that help wrapped at any width (and at hyphens) can be searched."""
    return re.sub(r"\s+", "", text)


def help_text(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# Options built from RunConfig's fields
# --------------------------------------------------------------------------------------------------
def test_run_defaults_are_the_run_config_defaults():
    assert RunConfig(**run_options([])) == RunConfig()


def test_every_field_has_an_option_with_its_help_and_choices():
    options = options_of("run")
    assert set(options) == {item.name for item in fields(RunConfig)} | {"help", *RUN_CONTROLS}
    for item in fields(RunConfig):
        action = options[item.name]
        assert action.option_strings[0] == flag(item.name) == "--" + item.name.replace("_", "-")
        assert action.default == item.default, item.name
        shown = action.help.replace("%%", "%")  # argparse's escape of %
        choices = item.metadata["choices"]
        listed = f" Choices: {', '.join(choices)}." if choices else ""
        assert shown == f"{item.metadata['help']}{listed} Default: {item.default}.", item.name
        if item.type != "bool":
            assert action.choices == choices, item.name
            assert action.metavar == item.name.upper()


def test_help_shows_every_field_help_the_recipes_formats_splits_and_outputs(capsys):
    text = help_text(["run"], capsys)
    assert "10% warm-up" in text, "a % in a help text is shown once"
    for item in fields(RunConfig):
        assert squeeze(item.metadata["help"]) in squeeze(text), item.name
    recipe_help = options_of("run")["recipe"].help
    for name, recipe in RECIPES.items():
        assert squeeze(f"'{name}': {recipe.describe()}") in squeeze(text), name
        assert f"'{name}': {recipe.describe()}" in recipe_help, name
    words = " ".join(text.split())
    for phrase in (".csv, .json, .jsonl, .parquet", "'grouped' keeps", "results.json", "--overwrite", "--resume"):
        assert phrase in words


@pytest.mark.parametrize("name", [item.name for item in fields(RunConfig) if item.type == "bool"])
def test_a_bool_field_has_a_flag_and_its_no_flag(name: str):
    option = flag(name)
    assert isinstance(options_of("run")[name], argparse.BooleanOptionalAction)
    assert options_of("run")[name].option_strings == [option, "--no-" + option.removeprefix("--")]
    assert run_options([option])[name] is True
    assert run_options(["--no-" + option.removeprefix("--")])[name] is False
    assert run_options([])[name] is getattr(RunConfig(), name)


@pytest.mark.parametrize("name", [item.name for item in fields(RunConfig) if "None" in item.type])
def test_none_parses_to_none_for_an_optional_field(name: str):
    for text in ("none", "None", "NONE"):
        assert run_options([flag(name), text])[name] is None


def test_none_is_refused_for_a_field_that_needs_a_value(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--seed", "none"])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error: argument --seed: invalid int value: 'none'")


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
            "--no-sort-by-length",
            "--split",
            "reference",
            "--recipe",
            "improved",
            "--training-seed",
            "7",
        ]
    )
    config = RunConfig(**options)
    assert (config.dataset, config.epochs, config.learning_rate) == ("qa.parquet", 2, 3e-5)
    assert (config.max_train_samples, config.group_column, config.deduplicate_corpus) == (1500, "ticker", False)
    assert (config.split, config.recipe, config.sort_by_length, config.training_seed) == (
        "reference",
        "improved",
        False,
        7,
    )


def test_evaluate_takes_the_evaluation_fields_a_model_and_a_subset(capsys):
    options = options_of("evaluate")
    controls = {"help", "model", "subset", "overwrite", "backend", "compression", "skip_bad_rows"}
    assert set(options) == {*EVALUATE_PARAMETERS, *controls}
    for name in EVALUATE_PARAMETERS:
        if name not in ("output_dir", "seed"):  # evaluate explains these two its own way
            assert options[name].help.replace("%%", "%").startswith(RunConfig.help(name)), name
    assert options["output_dir"].default == "output/evaluation"
    parsed = build_parser().parse_args(["evaluate", "--model", "m", "--subset", "validation"])
    assert (parsed.model, parsed.subset) == (["m"], "validation")
    defaults = build_parser().parse_args(["evaluate", "--model", "m"])
    assert (defaults.subset, defaults.backend, defaults.compression) == ("test", None, False)
    assert build_parser().parse_args(["evaluate", "--model", "m", "--compression"]).compression is True
    assert "The split to score on" in help_text(["evaluate"], capsys)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["run", "--epochs", "two"],
            "error: argument --epochs: invalid int value: 'two' (see python -m ft_helpers run --help)",
        ),
        (["run", "--split", "random"], "error: argument --split: invalid choice: 'random'"),
        (["run", "--recipe", "large"], "error: argument --recipe: invalid choice: 'large'"),
        (["run", "--precision", "fp16"], "error: unrecognized arguments: --precision fp16"),
        (["run", "--overwrite", "--resume"], "error: argument --resume: not allowed with argument --overwrite"),
        (["evaluate"], "error: the following arguments are required: --model"),
        (["evaluate", "--model", "m", "--subset", "train"], "error: argument --subset: invalid choice: 'train'"),
        (["evaluate", "--model", "m", "--epochs", "2"], "error: unrecognized arguments: --epochs 2"),
        (["train"], "error: argument {run,evaluate,export,index,search,pairs}: invalid choice: 'train'"),
    ],
)
def test_unparsable_options_give_one_line_and_status_2(argv: list[str], message: str, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_to_command_line_names_options_and_fits_one_line():
    message = "EPOCHS must be ...\nSet QUESTION_COLUMN / CONTEXT_COLUMN, or overwrite=True or resume=True."
    assert to_command_line(message) == (
        "--epochs must be ... Set --question-column / --context-column, or --overwrite or --resume."
    )
    assert to_command_line("SORT_BY_LENGTH must be True or False") == "--sort-by-length must be True or False"


# --------------------------------------------------------------------------------------------------
# main(): bad input ends in one line and status 2, before any model is loaded; nothing is written
# --------------------------------------------------------------------------------------------------
def run_args(tmp_path: Path, model: str, *extra: str) -> list[str]:
    """A run of the reference recipe on the fixture, to tmp_path / "out"."""
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
        (["--group-column", "sector"], "fixture.csv': group column 'sector' not found."),
        (["--group-column", "company", "--split", "reference"], "error: --group-column only applies to --split"),
    ],
)
def test_bad_input_is_one_line_with_the_option_and_status_2(
    tmp_path: Path, tiny_model_dir: str, no_model_loading: None, extra: list[str], message: str, capsys
):
    assert main(run_args(tmp_path, tiny_model_dir, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
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


def test_malformed_and_misshapen_data_is_one_line_naming_the_file(
    tmp_path: Path, tiny_model_dir: str, no_model_loading: None, capsys
):
    lines = FIXTURE_DATA.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[30] = '"' + lines[30]  # a question that opens a quote and never closes it
    stray = tmp_path / "stray.csv"
    stray.write_text("".join(lines), encoding="utf-8")
    assert main([*run_args(tmp_path, tiny_model_dir), "--dataset", str(stray)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {str(stray)!r} line 31: a quote does not end a field") and err.count("\n") == 1
    assert err.endswith("Fix the line, or pass --skip-bad-rows to drop the 1 bad record(s).\n")

    keyed = tmp_path / "keyed.json"
    keyed.write_text(json.dumps({f"q{i}": {"question": f"Q{i}?", "context": f"C{i}."} for i in range(200)}))
    assert main([*run_args(tmp_path, tiny_model_dir), "--dataset", str(keyed)]) == 2
    err = capsys.readouterr().err
    assert "is an object keyed by id ('q0', 'q1', 'q2', ...), not a list of records" in err and len(err) < 300

    renamed = tmp_path / "test.csv"
    pd.read_csv(FIXTURE_DATA).rename(columns={"question": "query"}).to_csv(renamed, index=False)
    assert main([*run_args(tmp_path, tiny_model_dir), "--test-dataset", str(renamed)]) == 2
    assert capsys.readouterr().err == (
        f"error: --test-dataset {str(renamed)!r}: column(s) 'question' not found. Available columns: query, context, "
        "company. --question-column / --context-column name the columns of --dataset and --test-dataset alike: "
        "rename --test-dataset's columns to --dataset's.\n"
    )
    assert not (tmp_path / "out").exists()
    with pytest.raises(AssertionError, match="a model was loaded"):
        main([*run_args(tmp_path, tiny_model_dir), "--dataset", str(stray), "--skip-bad-rows"])  # the checks pass
    warning = capsys.readouterr().err  # a Python warning, printed as the command line's one-line warnings
    assert warning.startswith("warning: stray.csv: dropped 1 malformed record(s)") and warning.count("\n") == 1
    assert ".py:" not in warning and "UserWarning" not in warning


def test_a_used_output_folder_is_refused_and_left_alone(
    tmp_path: Path, tiny_model_dir: str, no_model_loading: None, capsys
):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").write_text('{"from": "run 1"}')
    assert main(run_args(tmp_path, tiny_model_dir)) == 2
    err = capsys.readouterr().err
    assert "is not empty: choose a new folder, or pass --overwrite to delete its files first, or --resume" in err
    assert (tmp_path / "out" / "results.json").read_text() == '{"from": "run 1"}'


@pytest.mark.parametrize(
    ("command", "target", "advice"),
    [("run", "run", "--resume"), ("evaluate", "evaluate_models", "--overwrite")],
)
def test_ctrl_c_says_how_to_go_on(tmp_path: Path, tiny_model_dir: str, monkeypatch, capsys, command, target, advice):
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(f"ft_helpers.workflow.{target}", interrupted)
    argv = run_args(tmp_path, tiny_model_dir) if command == "run" else ["evaluate", "--model", tiny_model_dir]
    assert main(argv) == 130
    assert capsys.readouterr().err.strip() == f"Interrupted. To go on, run the same command with {advice}."


def test_the_module_exits_2_without_a_traceback(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "ft_helpers", "run", "--epochs", "0", "--output-dir", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr == "error: --epochs must be a whole number >= 1 or None, got 0.\n"


# --------------------------------------------------------------------------------------------------
# --push-to-hub (a fake Hub client; the token never shows), the model card
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


def test_push_to_hub_without_a_token_fails_before_any_work(
    tmp_path: Path, tiny_model_dir: str, no_model_loading: None, monkeypatch, capsys
):
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    # even the parameters are checked after the token: a run that cannot be pushed does not start
    assert main(run_args(tmp_path, tiny_model_dir, "--push-to-hub", "me/model", "--epochs", "0")) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: --push-to-hub needs a Hugging Face token with write access: set HF_TOKEN (from "
        "https://huggingface.co/settings/tokens) or run `hf auth login`.\n"
    )
    assert not (tmp_path / "out").exists()


def test_run_writes_results_deletes_checkpoints_and_pushes_the_model_and_its_card(
    tmp_path: Path, tiny_model_dir: str, monkeypatch, capsys
):
    monkeypatch.setattr("huggingface_hub.get_token", lambda: SECRET)
    monkeypatch.setattr("huggingface_hub.HfApi", FakeHub)
    FakeHub.calls = []
    argv = run_args(tmp_path, tiny_model_dir, "--epochs", "1", "--train-batch-size", "8", "--push-to-hub", "me/model")
    assert main(argv) == 0
    printed = capsys.readouterr()
    summary = json.loads(printed.out.strip().splitlines()[-1])
    assert summary == {
        "results": f"{tmp_path / 'out'}/results.json",
        "model": str(tmp_path / "out" / "model"),
        "hub": "https://huggingface.co/me/model",
    }
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (results["settings"]["epochs"], results["settings"]["train_batch_size"]) == (1, 8)
    assert results["provenance"]["command"] == "python -m ft_helpers " + " ".join(argv[:-2]) + " --push-to-hub me/model"
    assert not (tmp_path / "out" / "checkpoints").exists()

    assert [name for name, _ in FakeHub.calls] == ["create_repo", "upload_folder"]
    assert FakeHub.calls[0][1] == {"repo_id": "me/model", "token": SECRET, "private": True, "exist_ok": True}
    assert FakeHub.calls[1][1]["folder_path"] == str(tmp_path / "out" / "model")
    written = "".join(path.read_text(errors="ignore") for path in (tmp_path / "out").rglob("*") if path.is_file())
    assert SECRET not in printed.out + printed.err + written

    card = (tmp_path / "out" / "model" / "README.md").read_text(encoding="utf-8")
    section = card.split("<!-- ft_helpers:results -->")[1]
    assert "## Retrieval on held-out test questions" in section
    assert "| ndcg@10 |" in section and "95% CI (paired bootstrap)" in section
    assert "'reference': MultipleNegativesRankingLoss, batch 8, learning rate 2e-05, 1 epoch" in section
    assert str(tmp_path) not in section, "no local paths in a card that may go public"


def test_push_failure_masks_the_token(tmp_path: Path):
    class Refusing:
        def create_repo(self, **kwargs: object) -> None:
            raise PermissionError(f"401 for token {kwargs['token']}")

    with pytest.raises(OSError) as info:
        push_model(tmp_path, "me/model", SECRET, api=Refusing())
    assert str(info.value) == "Could not push to the Hub repository 'me/model': PermissionError: 401 for token ***"


# --------------------------------------------------------------------------------------------------
# evaluate end to end with a tiny model
# --------------------------------------------------------------------------------------------------
def test_evaluate_scores_one_model_compares_two_and_takes_the_validation_split(
    tmp_path: Path, tiny_model_dir: str, capsys
):
    common = ["evaluate", "--dataset", str(FIXTURE_DATA), "--bootstrap-resamples", "200"]
    assert main([*common, "--model", tiny_model_dir, "--output-dir", str(tmp_path / "one")]) == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    assert one["models"] == [tiny_model_dir] and len(one["metrics"]) == 1 and "comparison" not in one
    assert 0 <= one["metrics"][0]["test_cosine_ndcg@10"] <= 1
    assert set(one["settings"]) == {*EVALUATE_PARAMETERS, "subset"} and one["settings"]["subset"] == "test"
    assert one["settings"]["bootstrap_resamples"] == 200
    assert one["provenance"]["data"]["dataset"]["sha256"] == hashlib.sha256(FIXTURE_DATA.read_bytes()).hexdigest()

    args = [*common, "--model", tiny_model_dir, "--model", tiny_model_dir, "--output-dir", str(tmp_path / "two")]
    assert main(args) == 0
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["metrics"][0] == two["metrics"][1] == one["metrics"][0]  # the same split and questions
    assert all(row["delta"] == 0 and row["p_value"] == 1 for row in two["comparison"])
    assert (tmp_path / "two" / "comparison.png").is_file()
    assert "warning: The test split holds only" in capsys.readouterr().out

    validation = [*common, "--model", tiny_model_dir, "--subset", "validation", "--output-dir", str(tmp_path / "v")]
    assert main(validation) == 0
    scored = json.loads((tmp_path / "v" / "results.json").read_text())
    assert scored["settings"]["subset"] == "validation" and list(scored["evaluation"]) == [
        "validation",
        "per_query_metrics",
    ]
    assert all(key.startswith("validation_cosine_") for key in scored["metrics"][0])
    assert scored["split"] == one["split"]


def test_evaluate_refuses_three_models_and_a_bad_model(tmp_path: Path, tiny_model_dir: str, capsys):
    args = ["evaluate", "--dataset", str(FIXTURE_DATA), "--output-dir", str(tmp_path / "out")]
    assert main([*args, "--model", tiny_model_dir, "--model", tiny_model_dir, "--model", tiny_model_dir]) == 2
    assert "Give one model to score or two to compare, got 3." in capsys.readouterr().err
    assert main([*args, "--model", tiny_model_dir, "--model", str(tmp_path / "missing")]) == 2
    assert "error: model 2: model folder not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_run_and_evaluate_test_on_a_separate_file(tmp_path: Path, tiny_model_dir: str):
    rows = pd.read_csv(FIXTURE_DATA)
    rows.iloc[:42].to_csv(tmp_path / "train.csv", index=False)
    held_out = rows.iloc[42:]
    held_out.to_csv(tmp_path / "test.csv", index=False)
    data = ["--dataset", str(tmp_path / "train.csv"), "--test-dataset", str(tmp_path / "test.csv")]
    run = ["run", *data, "--base-model", tiny_model_dir, "--output-dir", str(tmp_path / "out"), "--epochs", "1"]
    assert main([*run, "--recipe", "reference", "--train-batch-size", "8", "--bootstrap-resamples", "200"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["split"]["sizes"]["test"] == len(held_out)
    assert results["evaluation"]["test"]["queries"] == held_out["question"].nunique()
    assert results["settings"]["test_dataset"] == str(tmp_path / "test.csv")
    assert results["provenance"]["data"]["test_dataset"] == {
        "file": "test.csv",
        "sha256": hashlib.sha256((tmp_path / "test.csv").read_bytes()).hexdigest(),
    }
    assert all(value == 0 for pair in results["split"]["leakage"].values() for value in pair.values())

    evaluate = ["evaluate", *data, "--model", str(tmp_path / "out" / "model"), "--output-dir", str(tmp_path / "ev")]
    assert main([*evaluate, "--bootstrap-resamples", "200"]) == 0
    scored = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert scored["metrics"][0] == pytest.approx(results["finetuned"])  # the same test questions and corpus
