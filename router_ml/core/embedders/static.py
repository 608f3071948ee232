"""The `static` backend: a table of token vectors distilled from a sentence-transformers model.

A static model (model2vec's distillation of, by default, the packaged all-MiniLM-L6-v2)
is a tokenizer and one vector per token: a prompt's vector is the mean of its tokens'
vectors, normalised to unit length. No transformer runs, so encoding is numpy and the
`tokenizers` library only (no torch, no onnxruntime): microseconds per prompt.

The files come from `router_ml.training.embed.static_distill` (the distillation needs torch, once, at
training time) and travel inside the router artifact (`embedder/`):

    vectors.npz     the token vectors (float16), read without pickle
    tokenizer.json  the distilled model's tokenizer
    embedder.json   dimension, normalisation, the unknown-token id, the source model's
                    fingerprint and the distillation settings

Long prompts: a static model has no window. `max_tokens` 0 embeds the whole prompt;
otherwise the shared rule (router_ml.core.embedders.truncation) cuts it to that many tokens.
The default was chosen by measurement (benchmarks/quality.py).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from router_ml.core.embedders import truncation as cut
from router_ml.errors import EmbedderError, EmbedderMismatchError

VECTORS_FILE = "vectors.npz"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "embedder.json"
FILES = (VECTORS_FILE, TOKENIZER_FILE, CONFIG_FILE)
DEFAULT_MAX_TOKENS = 0  # the whole prompt (benchmarks/quality.py)


class StaticEmbedder:
    """Mean of distilled token vectors (see module docstring)."""

    kind = "static"

    def __init__(self, files_dir: str | Path, truncation: str = cut.DEFAULT_TRUNCATION,
                 max_tokens: int = DEFAULT_MAX_TOKENS, vectors_sha256: str | None = None) -> None:
        self.files_dir = Path(files_dir)
        missing = [name for name in FILES if not (self.files_dir / name).is_file()]
        if missing:
            raise EmbedderError(f"{self.files_dir}: missing {missing}; distill with `router-ml train --embedder-kind "
                                "static`")
        self.config = json.loads((self.files_dir / CONFIG_FILE).read_text())
        self.vectors_sha256 = self.config["vectors_sha256"]
        if vectors_sha256 is not None and vectors_sha256 != self.vectors_sha256:
            raise EmbedderMismatchError(f"{self.files_dir}: static vectors {self.vectors_sha256[:16]} are not the "
                                        f"router's {vectors_sha256[:16]}")
        self.truncation = cut.check_truncation(truncation)
        if not isinstance(max_tokens, int) or max_tokens < 0:
            raise EmbedderError(f"max_tokens: expected a whole number >= 0 (0: the whole prompt), found {max_tokens!r}")
        self.max_tokens = max_tokens
        self.dim = int(self.config["dim"])
        self.unk_id = self.config.get("unk_token_id")
        window = f"{max_tokens}/{truncation}" if max_tokens else "whole"
        self.model_id = f"{self.kind}@{self.vectors_sha256[:16]}"
        self.id = f"{self.model_id}/{window}"
        self._vectors = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self):
        if self._vectors is None:
            with self._lock:
                if self._vectors is None:
                    from tokenizers import Tokenizer

                    tokenizer = Tokenizer.from_file(str(self.files_dir / TOKENIZER_FILE))
                    tokenizer.no_truncation()
                    tokenizer.no_padding()
                    with np.load(self.files_dir / VECTORS_FILE, allow_pickle=False) as data:
                        vectors = np.asarray(data["vectors"], dtype=np.float32)
                    if vectors.shape[1] != self.dim:
                        raise EmbedderError(f"{self.files_dir}: vectors have {vectors.shape[1]} dimensions, "
                                            f"the config says {self.dim}")
                    self._tokenizer, self._vectors = tokenizer, vectors
        return self._vectors

    def _ids(self, texts: list[str]) -> list[list[int]]:
        encode = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)
        ids = [e.ids for e in encode(texts, add_special_tokens=False)]
        if self.unk_id is not None:  # unknown tokens carry no meaning: model2vec leaves them out of the mean
            ids = [[i for i in row if i != self.unk_id] for row in ids]
        return ids

    def truncate(self, texts: list[str]) -> list[str]:
        if not self.max_tokens:
            return list(texts)
        self._load()
        return cut.truncate(texts, self.max_tokens, self.truncation,
                            lambda text: self._tokenizer.encode(text, add_special_tokens=False).offsets)

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self.encode_prepared(self.truncate(list(texts)), progress=progress)

    def encode_prepared(self, texts: list[str], progress: bool = False) -> np.ndarray:
        vectors = self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self._ids(list(texts))
        if len(ids) == 1:  # the serving path
            if ids[0]:
                out[0] = vectors[ids[0]].mean(axis=0)
        else:
            lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
            filled = np.flatnonzero(lengths)
            if len(filled):
                flat = np.fromiter((i for row in ids for i in row), dtype=np.int64, count=int(lengths.sum()))
                out[filled] = _segment_sums(vectors, flat, lengths[filled]) / lengths[filled, None]
        if self.config.get("normalize", True):
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def files(self) -> dict[str, Path]:
        return {name: self.files_dir / name for name in FILES}

    def spec(self) -> dict:
        return {
            "kind": self.kind,
            "source_model": self.config["source_model"],
            "source_fingerprint": self.config["source_fingerprint"],
            "recipe": self.config["recipe"],
            "vectors_sha256": self.vectors_sha256,
            "truncation": self.truncation,
            "max_tokens": self.max_tokens,
            "dim": self.dim,
        }

    @classmethod
    def from_spec(cls, spec: dict, *, artifact_dir: Path | None = None, model: str | None = None,
                  device: str | None = None, threads: int | None = None) -> StaticEmbedder:
        from router_ml.core.artifact import EMBEDDER_DIR

        if artifact_dir is None:
            raise EmbedderError("a static embedder is rebuilt from its router's embedder/ files; load the router "
                                "directory")
        return cls(Path(artifact_dir) / EMBEDDER_DIR, truncation=spec["truncation"], max_tokens=int(spec["max_tokens"]),
                   vectors_sha256=spec["vectors_sha256"])


POOL_TOKENS = 1024  # token vectors gathered at a time: a block that stays in cache


def _segment_sums(vectors: np.ndarray, flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Row i: the sum of the token vectors of segment i (`lengths[i]` > 0 consecutive ids in `flat`).

    Gathered and summed a block of about POOL_TOKENS tokens at a time: one gather of every
    token vector of a big batch is memory-bound (20,000 short prompts: ten times slower).
    """
    out = np.empty((len(lengths), vectors.shape[1]), dtype=np.float32)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    start = 0
    while start < len(lengths):
        end = min(len(lengths), max(start + 1, int(np.searchsorted(bounds, bounds[start] + POOL_TOKENS, "right")) - 1))
        block = vectors[flat[bounds[start]:bounds[end]]]
        out[start:end] = np.add.reduceat(block, bounds[start:end] - bounds[start], axis=0)
        start = end
    return out
