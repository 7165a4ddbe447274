"""Command line: ``python -m ft_helpers run ...`` fine-tunes and compares; ``python -m ft_helpers evaluate ...`` scores.

Bad input ends the command with one line on standard error naming the option and what to do, and exit
status 2; Ctrl-C ends it with one line saying how to resume, and status 130.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import traceback
from dataclasses import fields
from typing import Any

from .config import PARAMETER_HELP, RECIPES, RunConfig
from .data import SUPPORTED_SUFFIXES
from .split import SPLIT_STRATEGIES
from .training import PRECISIONS

#: Exit status for bad input and for an interrupted run.
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

RUN_EPILOG = f"""\
data: a Hub dataset id or a local {", ".join(SUPPORTED_SUFFIXES)} file, one question and the passage that
  answers it per row; name the columns with --question-column and --context-column. Rows with an empty question
  or passage are dropped with a warning.
recipes: --recipe improved (the default: cached loss, batch 256, Matryoshka), reference (the reference
  notebook's settings) or quick (a CPU try-out); --epochs, --train-batch-size, --learning-rate and
  --max-train-samples replace its settings one by one.
splits: 81% train, 9% validation (picks the best epoch), 10% test (scored once at the end). 'grouped' keeps every
  passage and question in one split; 'reference' repeats the reference notebook's random split. With
  --test-dataset the test split is that file, and --dataset is split into train and validation only.
writes to --output-dir: model/ (the fine-tuned model), eval/ (per-query scores of both models), comparison.png,
  training.png, dimensions.png (test NDCG@10 by embedding size) and results.json (both models' metrics, the
  comparison with 95% intervals, the scores by embedding size, the split and its leakage report, the recipe,
  parameters, versions, hardware, timings), written last. A non-empty folder is refused unless
  --overwrite (delete its files first) or --resume (go on from its last checkpoint). Checkpoints are deleted once
  the best model is saved, unless --keep-checkpoints.
example: python -m ft_helpers run --dataset data/qa.csv --base-model models/minilm --output-dir out
"""

EVALUATE_EPILOG = """\
One --model: its test metrics. Two: both, and the second compared with the first query by query (paired
bootstrap 95% intervals and a permutation test). The test split is the one 'run' makes with the same --dataset,
--split and --seed, so a model fine-tuned by 'run' is scored on questions it never saw.
writes to --output-dir: eval/model_<n>/ (per-query scores), comparison.png (two models) and results.json.
example: python -m ft_helpers evaluate --dataset data/qa.csv --model models/minilm --model out/model \\
  --output-dir out-eval
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the option and the problem) and exit status 2."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


def _none_or(kind: type) -> Any:
    def parse(text: str) -> object:
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__
    return parse


#: How to read each option's text, where it is not a plain string.
_KINDS = {
    "epochs": _none_or(int),
    "train_batch_size": _none_or(int),
    "learning_rate": _none_or(float),
    "seed": int,
    "training_seed": _none_or(int),
    "eval_batch_size": int,
    "bootstrap_resamples": int,
    "max_train_samples": _none_or(int),
    "group_column": _none_or(str),
    "test_dataset": _none_or(str),
}


def flag(name: str) -> str:
    """Return the option of a :class:`~ft_helpers.config.RunConfig` field, e.g. ``--max-train-samples``."""
    return "--" + name.replace("_", "-")


def _add_parameters(
    parser: argparse.ArgumentParser, names: list[str], defaults: dict[str, Any], texts: dict[str, str]
) -> None:
    config = RunConfig()
    for name in names:
        default = defaults.get(name, getattr(config, name))
        text = texts.get(name, PARAMETER_HELP[name]).replace("%", "%%")
        if isinstance(default, bool):
            parser.add_argument(flag(name), action=argparse.BooleanOptionalAction, default=default, help=text)
            continue
        choices = {"split": list(SPLIT_STRATEGIES), "recipe": list(RECIPES)}.get(name)
        parser.add_argument(
            flag(name),
            type=_KINDS.get(name, str),
            default=default,
            choices=choices,
            metavar=name.upper(),
            help=f"{text} Default: {default}.",
        )


def build_parser() -> argparse.ArgumentParser:
    """Build the parser: ``run`` with one option per :class:`~ft_helpers.config.RunConfig` field, and ``evaluate``."""
    from .pipeline import EVALUATE_PARAMETERS

    parser = _Parser(
        prog="python -m ft_helpers",
        description="Fine-tune a sentence-transformers embedding model on question/passage pairs for retrieval, "
        "and measure it against the base model on held-out questions.",
    )
    parser.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,evaluate}", parser_class=_Parser)
    formatter = argparse.RawDescriptionHelpFormatter

    run = commands.add_parser(
        "run",
        help="split, score the base model, fine-tune, score again and compare",
        description="Split the data, score the base model, fine-tune it, score it again and compare the two\n"
        "on the test split: the notebook's steps, with the same parameters.",
        epilog=RUN_EPILOG,
        formatter_class=formatter,
    )
    _add_parameters(run, [field.name for field in fields(RunConfig)], {}, {})
    resume = run.add_mutually_exclusive_group()
    resume.add_argument("--overwrite", action="store_true", help="delete the files in --output-dir first")
    resume.add_argument(
        "--resume", action="store_true", help="go on from the last checkpoint in --output-dir (same options)"
    )
    run.add_argument("--keep-checkpoints", action="store_true", help="keep --output-dir/checkpoints at the end")
    run.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="train in this precision instead of the one picked for the machine (bf16 on recent GPUs, fp16 on a "
        "T4, fp32 on CPU); e.g. fp16 on an H100 to time what a T4 runs",
    )
    run.add_argument(
        "--push-to-hub",
        metavar="REPO",
        default=None,
        help="upload the fine-tuned model and its model card to this Hugging Face Hub repository (user/name, "
        "created private if new); the token is read from the environment variable HF_TOKEN and never printed",
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="score one model on the test split, or compare two",
        description="Score one model on the test split, or compare two on it query by query.",
        epilog=EVALUATE_EPILOG,
        formatter_class=formatter,
    )
    evaluate.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="MODEL",
        help="a Hub id or a model folder; give it twice to compare (the first is the baseline)",
    )
    _add_parameters(
        evaluate,
        list(EVALUATE_PARAMETERS),
        {"output_dir": "output/evaluation"},
        {
            "output_dir": "Folder for the per-query scores (eval/), comparison.png (two models) and results.json.",
            "seed": "Seed of the split: the one the model was fine-tuned with, so that its test questions are unseen.",
        },
    )
    evaluate.add_argument("--overwrite", action="store_true", help="delete the files in --output-dir first")
    return parser


def to_command_line(message: str) -> str:
    """Rewrite a message for the command line: parameter names become options, and it fits on one line.

    Args:
        message: An error or warning from ``ft_helpers`` (which names the notebook's parameters, e.g. ``EPOCHS``).

    Returns:
        The message with ``EPOCHS`` as ``--epochs``, ``overwrite=True`` as ``--overwrite`` (and so on), on one line.
    """
    for name in (field.name for field in fields(RunConfig)):
        message = re.sub(rf"\b{name.upper()}\b", flag(name), message)
    for python, option in (
        ("overwrite=True", "--overwrite"),
        ("resume_from_checkpoint=True", "--resume"),
    ):
        message = message.replace(python, option)
    return " ".join(message.split())


def main(argv: list[str] | None = None) -> int:
    """Run a command; return the exit status (0 done, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    options = vars(args)
    debug = options.pop("debug")
    command = options.pop("command")
    try:
        if command == "run":
            from .pipeline import push_model, read_hub_token, run_pipeline

            control = {
                name: options.pop(name)
                for name in ("overwrite", "resume", "keep_checkpoints", "push_to_hub", "precision")
            }
            config = RunConfig(**options)
            token = read_hub_token() if control["push_to_hub"] else None  # before any work, not after it
            results = run_pipeline(
                config,
                log=lambda line: print(to_command_line(line) if line.startswith("warning:") else line),
                resume_from_checkpoint=True if control["resume"] else None,
                overwrite=control["overwrite"],
                keep_checkpoints=control["keep_checkpoints"],
                precision=control["precision"],
            )
            if not results:  # another process than the first under torchrun or accelerate: it only trained
                return 0
            summary = {"results": f"{config.output_dir}/results.json", "model": results["run"]["model_dir"]}
            if token is not None:
                summary["hub"] = push_model(results["run"]["model_dir"], control["push_to_hub"], token)
        else:
            from .pipeline import evaluate_models

            models, overwrite = options.pop("model"), options.pop("overwrite")
            config = RunConfig(**options)
            evaluate_models(models, config, log=lambda line: print(to_command_line(line)), overwrite=overwrite)
            summary = {"results": f"{config.output_dir}/results.json"}
    except KeyboardInterrupt:
        how = "run the same command with --resume" if command == "run" else "run the same command with --overwrite"
        print(f"\nInterrupted. To go on, {how}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, OSError) as err:  # QADataError is a ValueError: everything we check raises these
        if debug:
            traceback.print_exc()
        print(f"error: {to_command_line(str(err))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(summary))
    return 0
