"""Serve a fine-tuned model: export it to ONNX (fp32 or int8) and load it as an encoder.

sentence-transformers' own ONNX path (``backend="onnx"``, ``export_dynamic_quantized_onnx_model``) needs optimum,
whose releases pin older transformers and sentence-transformers than this project's. This module stays on the
core stack plus ``onnx`` and ``onnxruntime`` (``pip install ".[serve]"``): ``torch.onnx.export`` traces the model's
own forward pass (transformer, pooling, normalisation) into one graph, and onnxruntime's ``quantize_dynamic`` makes
the int8 copy.

Files, inside the model folder: ``onnx-encoder/encoder.onnx`` (fp32), ``onnx-encoder/encoder-int8.onnx``, the
tokenizer, and ``onnx-encoder/export.json`` (what was exported from which weights, and how well each file agrees
with the model on a few sample texts).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .provenance import collect_environment, hash_file

#: The folder, inside a model folder, that holds the exported encoder.
EXPORT_FOLDER = "onnx-encoder"
#: The file of each exported backend.
BACKEND_FILES = {"onnx": "encoder.onnx", "onnx-int8": "encoder-int8.onnx"}
#: What load_encoder can load.
BACKENDS = ("torch", *BACKEND_FILES)
#: What ``export --quantize`` accepts.
QUANTIZATIONS = ("int8",)
MANIFEST = "export.json"
#: The graph's possible inputs, in this order: those the model's tokenizer gives (BERT: all three; MPNet and
#: DistilBERT: no token_type_ids), less any the exporter drops because the model ignores it.
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
#: An exported fp32 graph must give the model's embeddings to within this (max absolute difference).
EXPORT_TOLERANCE = 1e-4
#: An int8 copy whose embedding of any sample text has a cosine below this to the model's is refused.
INT8_MIN_COSINE = 0.95
#: Files of a model folder that do not change what it computes: its model card, and an export inside it.
NOT_THE_MODEL = ("README.md", EXPORT_FOLDER)
#: How the int8 copy is made: int8 weights, one scale per output column ("per channel"), on the matrix products
#: only. One scale per whole matrix (onnxruntime's default) lost too much: mean cosine 0.96 to the fp32 embeddings
#: of MiniLM, against 0.993 per channel (256 real passages).
INT8_SETTINGS = {"op_types_to_quantize": ["MatMul"], "per_channel": True, "weight_type": "QInt8"}

#: Texts that every export is checked on: short and long, a number, punctuation, spaces around, and one longer than
#: any model's window (to check truncation).
SAMPLE_TEXTS = (
    "What was the company's total revenue in fiscal 2023?",
    "  Net income rose 12% to $4.2 billion, driven by higher services margins.  ",
    "Risk factors",
    "The Company's operations are subject to extensive regulation; see Item 1A. " * 60,
    "Goodwill is tested for impairment annually, or more often if events indicate that it may be impaired.",
)


class ExportError(RuntimeError):
    """An export that could not be made or that does not agree with the model (nothing was written)."""


def _require(module: str) -> Any:
    """Import an optional dependency of this module, or say in one line how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{module} is missing: pip install '.[serve]' (or: pip install onnx onnxruntime)") from error


def check_model_folder(model_dir: str | Path) -> Path:
    """Check that a folder holds a saved sentence-transformers model, before anything is loaded.

    Args:
        model_dir: The folder (``model/`` of a run, or any ``SentenceTransformer.save()`` output).

    Returns:
        The folder as a Path.

    Raises:
        FileNotFoundError: It does not exist, or holds no ``modules.json`` (not a saved model).
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"No model folder {folder}: give the model/ folder of a run (--model).")
    if not (folder / "modules.json").is_file():
        raise FileNotFoundError(
            f"{folder} holds no saved sentence-transformers model (no modules.json): give the model/ folder of a "
            "run, or a folder written by SentenceTransformer.save()."
        )
    return folder


def fingerprint_model(model_dir: str | Path) -> str:
    """Return a sha256 over what a model folder computes with, so an export or index can tell if it changed since.

    Args:
        model_dir: A saved model's folder.

    Returns:
        Hex digest over the relative paths and contents of its weights (``*.safetensors``, ``*.bin``) and
        configuration (``*.json``, ``*.txt``) in every module folder; the model card and ``onnx-encoder/`` are left
        out.

    Raises:
        FileNotFoundError: It does not exist, or holds no weight file.
    """
    import hashlib

    folder = Path(model_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"No model folder {folder}: is the model still where it was saved?")
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix in (".safetensors", ".bin", ".json", ".txt")
        and path.relative_to(folder).parts[0] not in NOT_THE_MODEL
        and not path.relative_to(folder).parts[0].startswith(".")
    )
    if not any(path.suffix in (".safetensors", ".bin") for path in files):
        raise FileNotFoundError(f"{folder} holds no weights (*.safetensors or *.bin): is it a saved model?")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(hash_file(path).encode())
    return digest.hexdigest()


def _graph_module(model: Any, names: tuple[str, ...]) -> Any:
    """Wrap a SentenceTransformer as a module from its token inputs (``names``, in order) to normalised embeddings."""
    import torch

    class SentenceEncoder(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            embeddings = self.model(dict(zip(names, tensors, strict=True)))["sentence_embedding"]
            return torch.nn.functional.normalize(embeddings, p=2, dim=1)

    return SentenceEncoder(model).eval()


def _tokenize(tokenizer: Any, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
    """Tokenize texts for the graph: padded to the longest, cut at the model's window, int64."""
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    return {name: np.asarray(encoded[name], dtype=np.int64) for name in INPUT_NAMES if name in encoded}


def _export_fp32(model: Any, path: Path, opset: int) -> None:
    """Trace the model into an ONNX graph at ``path`` (batch and sequence length dynamic)."""
    import torch

    inputs = _tokenize(model.tokenizer, list(SAMPLE_TEXTS[:2]), model.max_seq_length)
    names = tuple(inputs)
    arguments = tuple(torch.from_numpy(inputs[name]) for name in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"sentence_embedding": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about each Python condition it records as a constant (BERT's hold for every shape) and
        # the exporter about operators it maps by an older opset's rules; the agreement check below is the test.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _graph_module(model, names),
            arguments,
            str(path),
            input_names=list(names),
            output_names=["sentence_embedding"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, and it traces BERT-like models cleanly
        )


def _quantize_int8(source: Path, target: Path) -> None:
    """Write an int8 copy of an fp32 graph (see :data:`INT8_SETTINGS`)."""
    onnx = _require("onnx")
    quantization = _require("onnxruntime.quantization")
    settings = dict(INT8_SETTINGS)
    weight_type = getattr(quantization.QuantType, settings.pop("weight_type"))
    quantization.quantize_dynamic(
        str(source),
        str(target),
        weight_type=weight_type,
        # The traced graph's shapes are not all inferable; its tensors are float32.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        **settings,
    )


def _agreement(reference: np.ndarray, embeddings: np.ndarray) -> dict[str, float]:
    """Max absolute difference and mean / min cosine between two sets of normalised embeddings."""
    cosine = (reference * embeddings).sum(axis=1)
    return {
        "max_abs_difference": float(np.abs(reference - embeddings).max()),
        "mean_cosine": float(cosine.mean()),
        "min_cosine": float(cosine.min()),
    }


def export_encoder(
    model_dir: str | Path, quantize: str | None = None, overwrite: bool = False, opset: int = 17
) -> dict[str, Any]:
    """Export a saved model to ONNX inside its folder (``onnx-encoder/``), with an int8 copy if asked.

    The files are written to a temporary folder beside it, checked against the model on :data:`SAMPLE_TEXTS`, and
    moved into place only when all are made, so a failed export leaves nothing behind.

    Args:
        model_dir: A saved model's folder (``model/`` of a run).
        quantize: ``None`` (fp32 only) or ``"int8"`` (fp32 and int8).
        overwrite: Replace an earlier export (otherwise it is refused).
        opset: The ONNX opset to export to.

    Returns:
        The manifest written to ``onnx-encoder/export.json``: the model's fingerprint, the files with their sizes,
        each backend's agreement with the model, the settings and the package versions.

    Raises:
        FileNotFoundError: The folder holds no saved model.
        FileExistsError: An export is there already and ``overwrite`` is False.
        ValueError: An unknown ``quantize``.
        ExportError: The export failed, or its embeddings differ from the model's.
    """
    if quantize not in (None, *QUANTIZATIONS):
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZATIONS)} or None, got {quantize!r}.")
    folder = check_model_folder(model_dir)
    target = folder / EXPORT_FOLDER
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists already: pass --overwrite to export again.")
    _require("onnx")
    _require("onnxruntime")
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    model = SentenceTransformer(str(folder), device="cpu")
    reference = model.encode(list(SAMPLE_TEXTS), convert_to_numpy=True, normalize_embeddings=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{EXPORT_FOLDER}-", dir=folder))
    try:
        backends = ["onnx"] + (["onnx-int8"] if quantize == "int8" else [])
        manifest = {
            "model_fingerprint": fingerprint_model(folder),
            "max_seq_length": int(model.max_seq_length),
            "dimension": int(model.get_embedding_dimension()),
            "prompts": dict(model.prompts),
            "opset": opset,
            "int8": INT8_SETTINGS if quantize == "int8" else None,
            "files": {},
            "agreement_with_model": {},
            "environment": collect_environment(),
        }
        try:
            _export_fp32(model, staging / BACKEND_FILES["onnx"], opset)
            if quantize == "int8":
                _quantize_int8(staging / BACKEND_FILES["onnx"], staging / BACKEND_FILES["onnx-int8"])
            model.tokenizer.save_pretrained(str(staging))
            agreements = {}
            for backend in backends:
                encoder = OnnxEncoder(staging / BACKEND_FILES[backend], staging, manifest["max_seq_length"], backend)
                agreements[backend] = _agreement(reference, encoder.encode(list(SAMPLE_TEXTS)))
        except Exception as error:
            raise ExportError(
                f"The ONNX export of {folder} failed, and nothing was written: {type(error).__name__}: "
                f"{' '.join(str(error).split())}"
            ) from error
        if agreements["onnx"]["max_abs_difference"] > EXPORT_TOLERANCE:
            raise ExportError(
                f"The exported graph does not reproduce {folder}'s embeddings (max difference "
                f"{agreements['onnx']['max_abs_difference']:.2g} > {EXPORT_TOLERANCE:g}); nothing was written."
            )
        if quantize == "int8" and agreements["onnx-int8"]["min_cosine"] < INT8_MIN_COSINE:
            raise ExportError(
                f"The int8 copy of {folder} strays too far from the model (cosine "
                f"{agreements['onnx-int8']['min_cosine']:.3f} < {INT8_MIN_COSINE} on a sample text); nothing was "
                "written: export without --quantize and use the fp32 file."
            )
        for backend in backends:
            path = staging / BACKEND_FILES[backend]
            manifest["files"][backend] = {"file": path.name, "bytes": path.stat().st_size}
            manifest["agreement_with_model"][backend] = agreements[backend]
        manifest["seconds"] = round(time.perf_counter() - started, 1)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return manifest


def read_manifest(model_dir: str | Path, backend: str) -> dict[str, Any]:
    """Read an export's manifest and check it holds ``backend`` and was made from the folder's current weights.

    Args:
        model_dir: The model folder that was exported.
        backend: ``"onnx"`` or ``"onnx-int8"``.

    Returns:
        The manifest (``onnx-encoder/export.json``).

    Raises:
        FileNotFoundError: No export, or none for this backend (the message gives the command that makes it).
        ValueError: The model's weights changed since the export.
    """
    folder = check_model_folder(model_dir)
    quantize = " --quantize int8" if backend == "onnx-int8" else ""
    command = f"python -m ft_helpers export --model {folder}{quantize}"
    path = folder / EXPORT_FOLDER / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no ONNX export: run `{command}` first.")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if backend not in manifest["files"]:
        raise FileNotFoundError(f"{folder}'s export has no {backend} file: run `{command} --overwrite`.")
    if manifest["model_fingerprint"] != fingerprint_model(folder):
        raise ValueError(
            f"{folder}'s weights changed after its ONNX export: run `{command} --overwrite` to export them again."
        )
    return manifest


class _EvaluatorCalls:
    """What sentence-transformers' evaluators call on a model, for an encoder that is not a SentenceTransformer.

    ``encode_query`` / ``encode_document`` prepend the model's ``"query"`` / ``"document"`` prompt (if it has one,
    as sentence-transformers does), or the ``prompt`` given; ``similarity`` is cosine.
    """

    similarity_fn_name = "cosine"
    prompts: dict[str, str]

    def encode(self, texts: list[str] | str, batch_size: int = 32, show_progress_bar: bool = False) -> np.ndarray:
        raise NotImplementedError

    def _encode_for_evaluator(
        self,
        sentences: list[str] | str,
        prompt_name: str | None,
        prompt: str | None,
        batch_size: int = 32,
        show_progress_bar: bool = False,
        convert_to_tensor: bool = False,
        truncate_dim: int | None = None,
        **_: Any,
    ) -> Any:
        import torch

        prefix = prompt if prompt is not None else self.prompts.get(prompt_name or "", "")
        single = isinstance(sentences, str)
        texts = [prefix + text for text in ([sentences] if single else sentences)]
        embeddings = self.encode(texts, batch_size=batch_size, show_progress_bar=show_progress_bar)
        embeddings = embeddings[0] if single else embeddings
        if truncate_dim is not None:
            embeddings = embeddings[..., :truncate_dim]
        return torch.from_numpy(np.ascontiguousarray(embeddings)) if convert_to_tensor else embeddings

    def encode_query(
        self, sentences: list[str] | str, prompt_name: str | None = "query", prompt: str | None = None, **options: Any
    ) -> Any:
        """``SentenceTransformer.encode_query``: the query prompt, then :meth:`encode` (numpy, or a tensor)."""
        return self._encode_for_evaluator(sentences, prompt_name, prompt, **options)

    def encode_document(
        self,
        sentences: list[str] | str,
        prompt_name: str | None = "document",
        prompt: str | None = None,
        **options: Any,
    ) -> Any:
        """``SentenceTransformer.encode_document``: the document prompt, then :meth:`encode`."""
        return self._encode_for_evaluator(sentences, prompt_name, prompt, **options)

    def similarity(self, a: Any, b: Any) -> Any:
        """Cosine similarity between two sets of embeddings, as ``SentenceTransformer.similarity``."""
        from sentence_transformers.util import cos_sim

        return cos_sim(a, b)


class _NoModelCard:
    """Stands in for a model card: an exported encoder has none to store evaluation metrics in."""

    def set_evaluation_metrics(self, *args: Any, **kwargs: Any) -> None:
        """Do nothing."""


@dataclass
class OnnxEncoder(_EvaluatorCalls):
    """An exported encoder: texts in, L2-normalised float32 embeddings out, through onnxruntime.

    It also answers sentence-transformers' ``encode_query`` / ``encode_document`` / ``similarity`` calls, so that
    ``InformationRetrievalEvaluator`` scores it exactly as it scores a ``SentenceTransformer``.

    Attributes:
        path: The ``.onnx`` file.
        tokenizer_dir: The folder of its tokenizer.
        max_seq_length: Tokens kept per text (the model's window).
        backend: ``"onnx"`` or ``"onnx-int8"``.
        threads: onnxruntime's intra-op threads (None: its default, one per core).
        prompts: The model's prompts (``"query"``, ``"document"``, ...), from the export's manifest.
    """

    path: Path
    tokenizer_dir: Path
    max_seq_length: int
    backend: str = "onnx"
    threads: int | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    session: Any = field(init=False, repr=False)
    tokenizer: Any = field(init=False, repr=False)
    model_card_data: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        runtime = _require("onnxruntime")
        from transformers import AutoTokenizer

        options = runtime.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        try:
            self.session = runtime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime's own error classes derive from Exception only
            raise ExportError(
                f"onnxruntime cannot load {self.path}: {' '.join(str(error).split())[:300]} (export it again with "
                "--overwrite)"
            ) from error
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.tokenizer_dir))
        self.model_card_data = _NoModelCard()
        self._inputs = {item.name for item in self.session.get_inputs()}

    @property
    def dimension(self) -> int:
        """The embedding size."""
        return int(self.session.get_outputs()[0].shape[1])

    def encode(self, texts: list[str] | str, batch_size: int = 32, show_progress_bar: bool = False) -> np.ndarray:
        """Embed texts, longest first in batches (little padding), returned in the order given.

        Args:
            texts: The texts (or one text).
            batch_size: Texts per run of the graph.
            show_progress_bar: Show a tqdm bar over the batches.

        Returns:
            A float32 array, one L2-normalised row per text (one row for a single text).
        """
        from tqdm.auto import tqdm

        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = np.argsort([-len(text) for text in texts], kind="stable")
        stacked = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in tqdm(range(0, len(texts), batch_size), desc="Batches", disable=not show_progress_bar):
            chosen = order[start : start + batch_size]
            inputs = _tokenize(self.tokenizer, [texts[i] for i in chosen], self.max_seq_length)
            (stacked[chosen],) = self.session.run(None, {k: v for k, v in inputs.items() if k in self._inputs})
        return stacked[0] if single else stacked


@dataclass
class TorchEncoder(_EvaluatorCalls):
    """A SentenceTransformer behind the same ``encode`` as :class:`OnnxEncoder`: normalised float32 numpy rows.

    Attributes:
        model: The loaded model.
    """

    model: Any
    model_card_data: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.prompts = dict(self.model.prompts)
        self.model_card_data = _NoModelCard()

    @property
    def dimension(self) -> int:
        """The embedding size."""
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: list[str] | str, batch_size: int = 32, show_progress_bar: bool = False) -> np.ndarray:
        """Embed texts with the model (``normalize_embeddings=True``); one row for a single text."""
        return self.model.encode(
            texts,
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            convert_to_numpy=True,
            normalize_embeddings=True,
        ).astype(np.float32, copy=False)


def load_encoder(
    model_dir: str | Path, backend: str = "torch", threads: int | None = None, device: str | None = None
) -> TorchEncoder | OnnxEncoder:
    """Load a model folder as an encoder with ``encode(texts, batch_size=...)``: normalised float32 numpy rows.

    Args:
        model_dir: A saved model's folder; for the ONNX backends, exported first with :func:`export_encoder`.
        backend: ``"torch"`` (the ``SentenceTransformer``), ``"onnx"`` or ``"onnx-int8"`` (onnxruntime on the CPU).
        threads: CPU threads (None: the library's default).
        device: For ``"torch"``: ``"cpu"``, ``"cuda"``, ... (None: sentence-transformers picks).

    Returns:
        A :class:`TorchEncoder` or an :class:`OnnxEncoder`. Both also answer ``encode_query``, ``encode_document``
        and ``similarity`` as a ``SentenceTransformer`` does, for sentence-transformers' evaluators.

    Raises:
        ValueError: An unknown backend, or weights changed since the export.
        FileNotFoundError: No model, or no export for the backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    folder = check_model_folder(model_dir)
    if backend == "torch":
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        return TorchEncoder(SentenceTransformer(str(folder), device=device))
    manifest = read_manifest(folder, backend)
    export = folder / EXPORT_FOLDER
    return OnnxEncoder(
        export / manifest["files"][backend]["file"],
        export,
        manifest["max_seq_length"],
        backend,
        threads,
        manifest.get("prompts", {}),
    )
