"""Command line: ``python -m ft_helpers --dataset data.csv --base-model models/minilm --epochs 1``."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

from .config import RunConfig


def _none_or(kind: type) -> object:
    def parse(text: str) -> object:
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser: one ``--option`` per :class:`~ft_helpers.config.RunConfig` field."""
    parser = argparse.ArgumentParser(
        prog="python -m ft_helpers",
        description="Fine-tune a sentence-transformers model on question/context pairs and compare it with the base "
        "model on a held-out test split.",
    )
    defaults = RunConfig()
    kinds = {
        "epochs": int,
        "train_batch_size": int,
        "learning_rate": float,
        "seed": int,
        "eval_batch_size": int,
        "bootstrap_resamples": int,
        "max_train_samples": _none_or(int),
        "group_column": _none_or(str),
    }
    for field in fields(RunConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, type=kinds.get(field.name, str), default=default, help=f"default: {default}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the pipeline from command-line arguments and print the comparison."""
    from .pipeline import run_pipeline

    config = RunConfig(**vars(build_parser().parse_args(argv)))
    results = run_pipeline(config)
    print(
        json.dumps(
            {"results": f"{config.output_dir}/results.json", "training_seconds": results["run"]["training_seconds"]}
        )
    )
    return 0
