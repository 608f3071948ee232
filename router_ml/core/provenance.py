"""What a router was trained on, as it carries it: a fingerprint of every training prompt.

A router must never be judged on prompts it learned from: a live log's estimate of a router
(`router-ml evaluate --audit`) and retraining's judgement leave such requests out. A router
trained by this version keeps, in `trained_on.npz`, the first 64 bits of the sha256 of each
training prompt (as the router sees it: router_ml.core.prompts), sorted: 8 bytes a prompt,
no text, so it can travel wherever the router goes. (Two prompts sharing 64 bits of a sha256
is a one-in-ten-billion-billion event per pair: no log is that big.)

Routers trained before it carry no such file; their training prompts can still be found from
the outcomes file their manifest names (router_ml.training.evaluate.off_policy does).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from router_ml.core.prompts import replace_unencodable

TRAINED_ON_FILE = "trained_on.npz"
FORMAT = 1


def fingerprints(prompts) -> np.ndarray:
    """(n,) uint64: the first 8 bytes of each prompt's sha256 (prompts as the router sees them)."""
    out = np.empty(len(prompts), dtype=np.uint64)
    for i, prompt in enumerate(prompts):
        digest = hashlib.sha256(replace_unencodable(prompt)[0].encode("utf-8")).digest()
        out[i] = int.from_bytes(digest[:8], "big")
    return out


def trained_on_arrays(prompts) -> dict[str, np.ndarray]:
    """The arrays a router stores for its training prompts."""
    return {"format": np.array(FORMAT), "sha256_64": np.unique(fingerprints(prompts))}


class TrainedOn:
    """The fingerprints of a router's training prompts: `contains(prompts)` says which it saw."""

    def __init__(self, fingerprints_: np.ndarray) -> None:
        self.fingerprints = np.unique(np.asarray(fingerprints_, dtype=np.uint64))

    def __len__(self) -> int:
        return len(self.fingerprints)

    @classmethod
    def of_prompts(cls, prompts) -> TrainedOn:
        return cls(fingerprints(prompts))

    @classmethod
    def load(cls, path: str | Path) -> TrainedOn:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != FORMAT:
                raise ValueError(f"{path}: trained_on format {int(data['format'])}, expected {FORMAT}")
            return cls(data["sha256_64"])

    def contains(self, prompts) -> np.ndarray:
        """(n,) bool: which of `prompts` the router was trained on."""
        found = fingerprints(prompts)
        index = np.searchsorted(self.fingerprints, found)
        index = np.minimum(index, max(len(self.fingerprints) - 1, 0))
        return (self.fingerprints[index] == found) if len(self.fingerprints) else np.zeros(len(found), dtype=bool)


def trained_on(router) -> TrainedOn | None:
    """The router's record of its training prompts (None when it carries none: trained before it)."""
    if router.path is None or TRAINED_ON_FILE not in router.manifest.get("files", {}):
        return None
    return TrainedOn.load(Path(router.path) / TRAINED_ON_FILE)  # hash-checked with the artifact at load
