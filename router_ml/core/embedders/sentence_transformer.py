"""The `sentence-transformers` backend: any sentence-transformers model, run with torch.

The model loads on first use (importing sentence-transformers takes seconds); the
window length and output dimension are read from its config files without torch, so a
router's manifest can be checked before anything heavy loads. Long prompts are cut by
the shared rule (`router_ml.core.embedders.truncation`) using the model's own tokenizer.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

from router_ml.core.embedders import truncation as cut
from router_ml.core.embedders.base import similar_length_groups
from router_ml.core.embedders.files import DEFAULT_MODEL, model_fingerprint, resolve_model_path
from router_ml.errors import EmbedderError, EmbedderMismatchError


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use."""

    kind = "sentence-transformers"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        truncation: str = cut.DEFAULT_TRUNCATION,
        device: str | None = None,
        batch_size: int = 64,
        fingerprint: str | None = None,
    ) -> None:
        self.model = model
        self.truncation = cut.check_truncation(truncation)
        self.device = device
        self.batch_size = batch_size
        self.path = resolve_model_path(model)
        self.fingerprint = model_fingerprint(self.path)
        if fingerprint is not None and fingerprint != self.fingerprint:
            raise EmbedderMismatchError(
                f"embedder {model!r} at {self.path} has fingerprint {self.fingerprint[:16]}, "
                f"but the router was trained with {fingerprint[:16]}: these are different model files"
            )
        self._model = None
        self._lock = threading.Lock()
        self.max_tokens, self.dim = self._read_config()
        # The id names the files and settings, not the path or name used to find them.
        self.model_id = f"{self.kind}@{self.fingerprint[:16]}/{self.max_tokens}"
        self.id = f"{self.model_id}/{truncation}"

    def _read_config(self) -> tuple[int, int]:
        """Window length and output dimension from the model's config files, without torch."""
        try:
            st_config = json.loads((self.path / "sentence_bert_config.json").read_text())
            max_tokens = int(st_config["max_seq_length"])
            pooling = next(self.path.glob("*_Pooling/config.json"))
            dim = int(json.loads(pooling.read_text())["word_embedding_dimension"])
            return max_tokens, dim
        except (OSError, KeyError, ValueError, StopIteration):
            model = self._load()
            return int(model.max_seq_length), int(model.get_sentence_embedding_dimension())

    def _load(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                    try:
                        import transformers.utils.logging as hf_logging
                        from sentence_transformers import SentenceTransformer

                        hf_logging.disable_progress_bar()  # "Loading weights" bars on every load

                        self._model = SentenceTransformer(str(self.path), device=self.device)
                    except Exception as exc:
                        raise EmbedderError(f"{self.path}: cannot load sentence-transformers model: {exc}") from exc
        return self._model

    @property
    def tokenizer(self):
        return self._load().tokenizer

    def _offsets(self, text: str):
        return self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                              verbose=False)["offset_mapping"]

    def truncate(self, texts: list[str]) -> list[str]:
        """Cut texts longer than the window according to `self.truncation`."""
        return cut.truncate(texts, self.max_tokens - 2, self.truncation, self._offsets)

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self.encode_prepared(self.truncate(list(texts)), progress=progress)

    def encode_prepared(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        texts = list(texts)
        if progress:  # a big set: sentence-transformers sorts it by length itself, with one progress bar
            vectors = model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=True)
            return np.asarray(vectors, dtype=np.float32)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for rows in similar_length_groups([len(t) for t in texts], self.batch_size):
            out[rows] = model.encode([texts[i] for i in rows], batch_size=len(rows), normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return out

    def files(self) -> dict[str, Path]:
        return {}  # found again by name or path at load time, and checked by fingerprint

    @classmethod
    def from_spec(cls, spec: dict, *, artifact_dir: Path | None = None, model: str | None = None,
                  device: str | None = None, threads: int | None = None) -> SentenceTransformerEmbedder:
        return cls(model=model or spec["model"], truncation=spec["truncation"], fingerprint=spec["fingerprint"],
                   device=device)

    def spec(self) -> dict:
        return {
            "kind": self.kind,
            "model": self.model,
            "truncation": self.truncation,
            "fingerprint": self.fingerprint,
            "dim": self.dim,
            "max_tokens": self.max_tokens,
        }
