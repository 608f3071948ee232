"""The `onnx` backend: a sentence-transformers model exported to ONNX, run with
onnxruntime and the `tokenizers` library only, so a serving process never imports torch.

The files come from `router_ml.training.embed.onnx_export` (the export and int8 quantization need
torch, once, at training time) and travel inside the router artifact (`embedder/`):

    model.onnx       the transformer, BERT attention fused; MatMul and attention weights int8
                     per channel (precision "int8"), or left in float32 ("fp32")
    tokenizer.json   the model's own fast tokenizer
    embedder.json    pooling, normalisation, window, inputs, the source model's fingerprint

Tokenization, truncation (the shared `router_ml.core.embedders.truncation` rule, on this
tokenizer's offsets), mean pooling over the attention mask and L2 normalisation follow
sentence-transformers, so vectors match the torch backend's up to quantization error
(`benchmarks/latency.py` and `router-ml convert` measure it).

A property of int8 worth knowing: onnxruntime's dynamic quantization picks one
activation scale per tensor, i.e. per batch, so an int8 vector depends slightly on the
prompts batched with it (cosine >= 0.98 between a prompt embedded alone and in a batch).
fp32 vectors do not. That noise is part of why int8 routers fail `router-ml convert`'s
route-agreement proof on many-model sets, where fp32 passes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from router_ml.core.embedders import truncation as cut
from router_ml.core.embedders.base import similar_length_groups
from router_ml.errors import EmbedderError, EmbedderMismatchError

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "embedder.json"
FILES = (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE)
BATCH_SIZE = 32


class OnnxEmbedder:
    """Embeds with an exported model directory (see module docstring)."""

    kind = "onnx"

    def __init__(self, files_dir: str | Path, truncation: str = "tail", threads: int | None = None,
                 onnx_sha256: str | None = None) -> None:
        cut.check_truncation(truncation)
        self.files_dir = Path(files_dir)
        missing = [name for name in FILES if not (self.files_dir / name).is_file()]
        if missing:
            raise EmbedderError(f"{self.files_dir}: missing {missing}; export with `router-ml train --backend onnx` "
                                "or `router-ml convert`")
        self.config = json.loads((self.files_dir / CONFIG_FILE).read_text())
        self.onnx_sha256 = self.config["onnx_sha256"]
        if onnx_sha256 is not None and onnx_sha256 != self.onnx_sha256:
            raise EmbedderMismatchError(f"{self.files_dir}: ONNX model {self.onnx_sha256[:16]} is not the router's "
                                        f"{onnx_sha256[:16]}")
        self.truncation = truncation
        self.max_tokens = int(self.config["max_tokens"])
        self.dim = int(self.config["dim"])
        self.model_id = f"{self.kind}@{self.onnx_sha256[:16]}/{self.max_tokens}"
        self.id = f"{self.model_id}/{truncation}"
        self.threads = threads if threads is not None else int(os.environ.get("ROUTER_ML_ORT_THREADS", "0"))
        self._session = None
        self._tokenizer = None
        self._cutter = None

    def _load(self):
        if self._session is None:
            import onnxruntime as ort
            from tokenizers import Tokenizer

            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Spinning worker threads fight the Python thread (tokenizing, the head, the
            # service) for this machine's two cores: measured p50 route() 12 ms without
            # spinning against 20 ms with it on LLMRouter prompts.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            if self.threads:
                options.intra_op_num_threads = self.threads
            self._cutter = Tokenizer.from_file(str(self.files_dir / TOKENIZER_FILE))
            self._cutter.no_truncation()
            self._cutter.no_padding()
            tokenizer = Tokenizer.from_file(str(self.files_dir / TOKENIZER_FILE))
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.no_padding()
            self._tokenizer = tokenizer
            self._session = ort.InferenceSession(str(self.files_dir / MODEL_FILE), options,
                                                 providers=["CPUExecutionProvider"])
            self._inputs = [i.name for i in self._session.get_inputs()]
            self._pad_id = int(self.config.get("pad_id", 0))
        return self._session

    def truncate(self, texts: list[str]) -> list[str]:
        """The shared cut, on this tokenizer's offsets of the original text."""
        self._load()
        return cut.truncate(texts, self.max_tokens - 2, self.truncation,
                            lambda text: self._cutter.encode(text, add_special_tokens=False).offsets)

    def _run(self, encodings) -> np.ndarray:
        length = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), length), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), length), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        pooling = self.config.get("pooling", "mean")
        if pooling == "cls":
            vectors = hidden[:, 0]
        elif pooling == "max":
            vectors = np.where(mask[..., None] > 0, hidden, -np.inf).max(axis=1)
        else:
            weights = mask[..., None].astype(np.float32)
            vectors = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if self.config.get("normalize", True):
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors.astype(np.float32)

    def encode_prepared(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._load()
        if len(texts) == 1:  # the serving path: no sorting, no padding
            return self._run([self._tokenizer.encode(texts[0])])
        encodings = self._tokenizer.encode_batch(list(texts))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for rows in similar_length_groups([len(e.ids) for e in encodings], BATCH_SIZE):
            out[rows] = self._run([encodings[i] for i in rows])
        return out

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self.encode_prepared(self.truncate(list(texts)), progress=progress)

    def files(self) -> dict[str, Path]:
        """Files a router artifact must carry to rebuild this embedder."""
        return {name: self.files_dir / name for name in FILES}

    def spec(self) -> dict:
        return {
            "kind": self.kind,
            "source_model": self.config["source_model"],
            "source_fingerprint": self.config["source_fingerprint"],
            "recipe": self.config["recipe"],
            "precision": self.config.get("precision", "int8"),
            "onnx_sha256": self.onnx_sha256,
            "truncation": self.truncation,
            "dim": self.dim,
            "max_tokens": self.max_tokens,
        }

    @classmethod
    def from_spec(cls, spec: dict, *, artifact_dir: Path | None = None, model: str | None = None,
                  device: str | None = None, threads: int | None = None) -> OnnxEmbedder:
        from router_ml.core.artifact import EMBEDDER_DIR

        if artifact_dir is None:
            raise EmbedderError("an ONNX embedder is rebuilt from its router's embedder/ files; load the router directory")
        return cls(Path(artifact_dir) / EMBEDDER_DIR, truncation=spec["truncation"], threads=threads,
                   onnx_sha256=spec["onnx_sha256"])
