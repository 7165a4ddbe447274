"""ONNX export and encoders: the graph gives the model's embeddings, failures leave nothing, refusals are one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_DATA

from ft_helpers import serve
from ft_helpers.cli import main
from ft_helpers.serve import (
    EXPORT_FOLDER,
    ExportError,
    OnnxEncoder,
    check_model_folder,
    export_encoder,
    fingerprint_model,
    load_encoder,
    read_manifest,
)

TEXTS = [
    "What drove the increase in operating income?",
    "Revenue",
    "  The Company recorded an impairment charge of $12 million in the fourth quarter.  ",
    "Cash and cash equivalents were held mainly in money market funds. " * 40,  # longer than the window
]


@pytest.fixture(scope="module")
def exported_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: str) -> Path:
    """A copy of the tiny model, exported in fp32 and int8."""
    folder = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(tiny_model_dir, folder)
    export_encoder(folder, quantize="int8")
    return folder


@pytest.fixture()
def model_copy(tmp_path: Path, tiny_model_dir: str) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    return folder


def test_the_onnx_encoder_gives_the_models_embeddings_in_the_order_given(exported_dir: Path):
    model = load_encoder(exported_dir, "torch", device="cpu")
    expected = model.encode(TEXTS)
    assert expected.dtype == np.float32 and expected.shape == (len(TEXTS), model.dimension)
    encoder = load_encoder(exported_dir, "onnx")
    got = encoder.encode(TEXTS, batch_size=3)  # length-sorted inside, two batches
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), encoder.dimension)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(encoder.encode(TEXTS[2]), got[2], atol=1e-6)  # one text: one row
    assert encoder.encode([]).shape == (0, encoder.dimension)


def test_the_int8_encoder_is_close_but_not_equal_and_recorded(exported_dir: Path):
    fp32 = load_encoder(exported_dir, "onnx").encode(TEXTS)
    int8 = load_encoder(exported_dir, "onnx-int8").encode(TEXTS)
    cosine = (fp32 * int8).sum(axis=1)
    assert cosine.min() > 0.9 and not np.allclose(fp32, int8, atol=1e-6)
    manifest = json.loads((exported_dir / EXPORT_FOLDER / "export.json").read_text())
    assert manifest["model_fingerprint"] == fingerprint_model(exported_dir)
    assert manifest["agreement_with_model"]["onnx"]["max_abs_difference"] < serve.EXPORT_TOLERANCE
    int8_agreement = manifest["agreement_with_model"]["onnx-int8"]
    assert int8_agreement["mean_cosine"] > 0.9 and int8_agreement["max_abs_difference"] > 1e-6
    assert manifest["int8"] == serve.INT8_SETTINGS and manifest["dimension"] == 32
    for backend, item in manifest["files"].items():
        assert (exported_dir / EXPORT_FOLDER / item["file"]).stat().st_size == item["bytes"], backend
    assert manifest["files"]["onnx-int8"]["bytes"] < manifest["files"]["onnx"]["bytes"]


def test_the_encoder_answers_the_evaluators_calls(exported_dir: Path):
    import torch

    encoder = load_encoder(exported_dir, "onnx")
    tensor = encoder.encode_query(TEXTS, batch_size=2, convert_to_tensor=True, truncate_dim=8, prompt=None)
    assert isinstance(tensor, torch.Tensor) and tuple(tensor.shape) == (len(TEXTS), 8)
    scores = encoder.similarity(tensor, tensor)
    np.testing.assert_allclose(torch.diagonal(scores).numpy(), 1, atol=1e-5)  # cosine: cut rows are rescaled
    assert isinstance(encoder.encode_document(TEXTS), np.ndarray)


def test_a_second_export_is_refused_unless_overwrite(exported_dir: Path, tmp_path: Path):
    before = (exported_dir / EXPORT_FOLDER / "export.json").read_text()
    with pytest.raises(FileExistsError, match="exists already: pass --overwrite"):
        export_encoder(exported_dir)
    assert (exported_dir / EXPORT_FOLDER / "export.json").read_text() == before


def test_overwrite_replaces_an_export_with_what_was_asked(model_copy: Path):
    export_encoder(model_copy, quantize="int8")
    manifest = export_encoder(model_copy, overwrite=True)
    assert list(manifest["files"]) == ["onnx"] and manifest["int8"] is None
    assert not (model_copy / EXPORT_FOLDER / serve.BACKEND_FILES["onnx-int8"]).exists()
    with pytest.raises(FileNotFoundError, match="no onnx-int8 file: run `python -m ft_helpers export"):
        load_encoder(model_copy, "onnx-int8")


def test_a_failed_export_leaves_nothing_behind(model_copy: Path, monkeypatch: pytest.MonkeyPatch):
    def fail(source: Path, target: Path) -> None:
        target.write_bytes(b"half")
        raise RuntimeError("disk full")

    before = sorted(p.name for p in model_copy.iterdir())
    monkeypatch.setattr(serve, "_quantize_int8", fail)
    with pytest.raises(ExportError, match=r"The ONNX export of .* failed, and nothing was written: RuntimeError: disk"):
        export_encoder(model_copy, quantize="int8")
    assert sorted(p.name for p in model_copy.iterdir()) == before


def test_an_export_that_disagrees_with_the_model_is_refused(model_copy: Path, monkeypatch: pytest.MonkeyPatch):
    before = sorted(p.name for p in model_copy.iterdir())
    monkeypatch.setattr(serve, "EXPORT_TOLERANCE", -1.0)
    with pytest.raises(ExportError, match=r"does not reproduce .* nothing was written"):
        export_encoder(model_copy)
    assert sorted(p.name for p in model_copy.iterdir()) == before


def test_an_int8_copy_too_far_from_the_model_is_refused(model_copy: Path, monkeypatch: pytest.MonkeyPatch):
    before = sorted(p.name for p in model_copy.iterdir())
    monkeypatch.setattr(serve, "INT8_MIN_COSINE", 1.01)
    with pytest.raises(ExportError, match=r"int8 copy of .* strays too far .* export without --quantize"):
        export_encoder(model_copy, quantize="int8")
    assert sorted(p.name for p in model_copy.iterdir()) == before


def test_a_model_without_token_type_ids_exports_and_encodes(tmp_path: Path, tiny_model_dir: str):
    """DistilBERT (and MPNet) ignore token_type_ids: the traced graph drops that input, and encoding must too."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)  # a BERT tokenizer: it does give token_type_ids
    config = DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=32, n_layers=1, n_heads=2, hidden_dim=64)
    DistilBertModel(config).save_pretrained(tmp_path / "backbone")
    tokenizer.save_pretrained(tmp_path / "backbone")
    transformer = Transformer(str(tmp_path / "backbone"), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, Pooling(32, "mean"), Normalize()], device="cpu")
    model.save(str(tmp_path / "model"))
    export_encoder(tmp_path / "model")
    encoder = load_encoder(tmp_path / "model", "onnx")
    np.testing.assert_allclose(encoder.encode(TEXTS), model.encode(TEXTS), atol=1e-5)


def test_the_models_prompts_are_applied_as_sentence_transformers_does(tmp_path: Path, tiny_model_dir: str):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(tiny_model_dir, device="cpu", prompts={"query": "query: ", "document": "passage: "})
    model.save(str(tmp_path / "model"))
    export_encoder(tmp_path / "model")
    for backend in ("torch", "onnx"):
        encoder = load_encoder(tmp_path / "model", backend, device="cpu")
        np.testing.assert_allclose(encoder.encode_query(TEXTS), model.encode_query(TEXTS), atol=1e-5)
        np.testing.assert_allclose(encoder.encode_document(TEXTS), model.encode_document(TEXTS), atol=1e-5)
        assert not np.allclose(encoder.encode_query(TEXTS), encoder.encode(TEXTS), atol=1e-3)


def test_changed_weights_make_the_export_stale(model_copy: Path):
    from sentence_transformers import SentenceTransformer

    export_encoder(model_copy)
    model = SentenceTransformer(str(model_copy), device="cpu")
    first = next(model.parameters())
    first.data += 0.01
    model.save(str(model_copy))
    with pytest.raises(ValueError, match=r"weights changed after its ONNX export: run .*--overwrite"):
        load_encoder(model_copy, "onnx")


def test_folders_without_a_model_are_refused_before_loading(tmp_path: Path, no_model_loading: None):
    with pytest.raises(FileNotFoundError, match="No model folder"):
        check_model_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no saved sentence-transformers model"):
        export_encoder(tmp_path / "empty")
    with pytest.raises(ValueError, match="backend must be one of torch, onnx, onnx-int8"):
        load_encoder(tmp_path / "empty", "tensorrt")
    with pytest.raises(ValueError, match="quantize must be one of int8"):
        export_encoder(tmp_path / "empty", quantize="int4")


def test_a_model_without_export_says_which_command_makes_it(model_copy: Path):
    with pytest.raises(FileNotFoundError, match=r"has no ONNX export: run `python -m ft_helpers export --model"):
        read_manifest(model_copy, "onnx")
    with pytest.raises(FileNotFoundError, match="--quantize int8"):
        load_encoder(model_copy, "onnx-int8")


def test_a_changed_pooling_makes_the_export_stale_but_a_new_model_card_does_not(model_copy: Path):
    export_encoder(model_copy)
    (model_copy / "README.md").write_text("a new model card")
    load_encoder(model_copy, "onnx")
    config = model_copy / "1_Pooling" / "config.json"
    config.write_text(json.dumps(json.loads(config.read_text()) | {"pooling_mode": "cls"}))
    with pytest.raises(ValueError, match="weights changed after its ONNX export"):
        load_encoder(model_copy, "onnx")


def test_onnx_encoder_keeps_a_thread_setting(exported_dir: Path):
    encoder = load_encoder(exported_dir, "onnx", threads=1)
    assert isinstance(encoder, OnnxEncoder) and encoder.threads == 1 and encoder.backend == "onnx"


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def test_cli_export_then_evaluate_each_backend(model_copy: Path, tmp_path: Path, capsys):
    assert main(["export", "--model", str(model_copy), "--quantize", "int8"]) == 0
    out = capsys.readouterr().out
    assert "onnx-int8: mean cosine to the model's embeddings" in out
    assert json.loads(out.strip().splitlines()[-1]) == {
        "onnx": f"{model_copy}/onnx-encoder/encoder.onnx",
        "onnx-int8": f"{model_copy}/onnx-encoder/encoder-int8.onnx",
    }
    common = ["evaluate", "--dataset", str(FIXTURE_DATA), "--bootstrap-resamples", "200"]
    scores = {}
    for backend in ("torch", "onnx", "onnx-int8"):
        folder = tmp_path / backend
        assert main([*common, "--model", str(model_copy), "--backend", backend, "--output-dir", str(folder)]) == 0
        results = json.loads((folder / "results.json").read_text())
        assert results["backends"] == [backend]
        scores[backend] = results["metrics"][0]["test_cosine_ndcg@10"]
    assert scores["onnx"] == pytest.approx(scores["torch"], abs=1e-6)
    assert scores["onnx-int8"] == pytest.approx(scores["torch"], abs=0.2)

    both = [*common, "--model", str(model_copy), "--model", str(model_copy), "--output-dir", str(tmp_path / "two")]
    assert main([*both, "--backend", "torch", "--backend", "onnx"]) == 0
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["backends"] == ["torch", "onnx"]
    assert all(abs(row["delta"]) < 1e-6 for row in two["comparison"])


def test_cli_export_and_backend_refusals_are_one_line(model_copy: Path, tmp_path: Path, capsys):
    assert main(["export", "--model", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: No model folder") and err.count("\n") == 1
    common = ["evaluate", "--dataset", str(FIXTURE_DATA), "--model", str(model_copy)]
    assert main([*common, "--backend", "onnx", "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "has no ONNX export: run `python -m ft_helpers export --model" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    both = [*common, "--backend", "torch", "--backend", "onnx", "--backend", "torch"]
    assert main([*both, "--output-dir", str(tmp_path / "out")]) == 2
    assert "one backend for all models or one per model: 3 for 1" in capsys.readouterr().err
    assert main(["export", "--model", str(model_copy)]) == 0
    capsys.readouterr()
    assert main(["export", "--model", str(model_copy)]) == 2
    assert "exists already: pass --overwrite" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# The [serve] extra leaves the core stack alone
# --------------------------------------------------------------------------------------------------
CORE = {"torch", "transformers", "sentence-transformers", "huggingface-hub", "datasets", "accelerate"}


def requirement_names(package: str) -> set[str]:
    """The distributions a package requires, transitively (markers for extras left out)."""
    import re
    from importlib.metadata import PackageNotFoundError, requires

    seen, todo = set(), [package]
    while todo:
        name = todo.pop()
        try:
            listed = requires(name) or []
        except PackageNotFoundError:
            continue
        for line in listed:
            if "extra ==" in line:
                continue
            required = re.split(r"[ ;<>=!~\[(]", line, maxsplit=1)[0].lower().replace("_", "-")
            if required not in seen:
                seen.add(required)
                todo.append(required)
    return seen


def test_the_serve_extra_requires_nothing_of_the_core_stack():
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    extra = pyproject["project"]["optional-dependencies"]["serve"]
    names = [line.split(">")[0].split("=")[0].strip() for line in extra]
    assert names == ["onnx", "onnxruntime"]
    for name in [*names, "faiss-cpu"]:  # faiss-cpu is a core dependency, and must leave the rest alone too
        assert not requirement_names(name) & CORE, name


def test_the_pairs_extra_requires_nothing_of_the_core_stack():
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    names = [line.split(">")[0].strip() for line in pyproject["project"]["optional-dependencies"]["pairs"]]
    assert names == ["openai", "pypdf"]
    for name in names:
        assert not requirement_names(name) & CORE, name


def test_pip_check_passes_with_the_serve_extra_installed():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_cli_a_failed_export_is_one_line_and_leaves_nothing(model_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    def fail(source: Path, target: Path) -> None:
        raise OSError("No space left on device\n(errno 28)")

    before = sorted(p.name for p in model_copy.iterdir())
    monkeypatch.setattr(serve, "_quantize_int8", fail)
    assert main(["export", "--model", str(model_copy), "--quantize", "int8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The ONNX export of") and "No space left on device (errno 28)" in err
    assert err.count("\n") == 1
    assert sorted(p.name for p in model_copy.iterdir()) == before
