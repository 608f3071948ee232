"""An in-process LRU cache of prompt vectors in front of any embedder.

Sweeping `quality_target` over the same prompts, or a service seeing repeated prompts,
then embeds each text once. The on-disk cache that training uses is
`router_ml.training.embed.cache`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from router_ml.core.embedders.base import Embedder


class CachedEmbedder:
    """An embedder with a bounded in-process LRU cache of vectors, keyed by text.

    `maxsize=0` turns the cache off.
    """

    def __init__(self, embedder: Embedder, maxsize: int = 4096) -> None:
        self.embedder = embedder
        self.maxsize = maxsize
        self.kind = embedder.kind
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

    def truncate(self, texts: list[str]) -> list[str]:
        return self.embedder.truncate(texts)

    def files(self):
        return self.embedder.files()

    def spec(self) -> dict:
        return self.embedder.spec()
