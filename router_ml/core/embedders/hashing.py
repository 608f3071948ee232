"""The `hashing` backend: a deterministic bag of hashed words and character trigrams.

No model and no quality to speak of: it exists so unit tests and smoke runs are fast,
exact and free of downloads. It sees the whole prompt (nothing to truncate).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from router_ml.errors import ConfigError


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
            h = zlib.crc32(feature.encode("utf-8", "surrogatepass"))
            vec[h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else vec

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def truncate(self, texts: list[str]) -> list[str]:
        return list(texts)

    encode_prepared = encode

    def files(self) -> dict[str, Path]:
        return {}

    @classmethod
    def from_spec(cls, spec: dict, **overrides) -> HashingEmbedder:
        return cls(dim=int(spec["dim"]))

    def spec(self) -> dict:
        return {"kind": self.kind, "dim": self.dim}
