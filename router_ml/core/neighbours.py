"""The training prompts a router carries: to explain a decision, and to tell how unusual a prompt is.

A router trained by this version stores, in `neighbours.npz` (plain arrays, no pickle):

    X            the training prompts' unit vectors (float16; at most MAX_STORED prompts)
    outcomes     each model's logged score on each of them (NaN where not tried)
    text, text_offsets   the first PREVIEW_CHARS characters of each prompt, UTF-8
    reference    sorted novelty of held-out prompts (calibration, see below)
    k            how many neighbours novelty averages over
    novelty_rows the rows novelty is measured against (at most NOVELTY_ROWS; absent: all)

**Novelty.** A prompt's raw novelty is 1 minus its mean cosine similarity to its `k`
nearest training prompts. Raw values mean little on their own (they depend on the
embedder and the data), so the router reports where the prompt falls among held-out
prompts that were not trained on: novelty 0.5 is a typical prompt, 0.99 is more unusual
than 99 % of them, 1.0 beyond all of them. Novelty is measured against a fixed random
sample of at most NOVELTY_ROWS training prompts (calibrated against the same sample), so
its cost per prompt does not grow with the training set: it is one product with a
2,048 x dim matrix, about a third of what a static-embedder decision costs. A policy can send prompts above a threshold to
a safe model (`novelty:` in the policy file); `Router.explain` shows the nearest training
prompts and what each model did on them, so a decision that looks backwards can be traced
to the data it came from.

Privacy: the previews are training prompts; `router-ml train --no-neighbours` leaves them
(and novelty) out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

NEIGHBOURS_FILE = "neighbours.npz"
FORMAT = 1
MAX_STORED = 20_000  # beyond this a random subset is kept: novelty and explanations need a sample, not all
PREVIEW_CHARS = 240
DEFAULT_K = 10
NOVELTY_ROWS = 2048


def raw_novelty(X: np.ndarray, train_X: np.ndarray, k: int, exclude_self: bool = False) -> np.ndarray:
    """1 - mean cosine similarity to the k nearest rows of `train_X` (rows of unit length)."""
    X = np.asarray(X, dtype=np.float32)
    out = np.empty(len(X))
    for start in range(0, len(X), 1024):  # bounded memory for big batches
        sims = X[start:start + 1024] @ train_X.T
        take = min(k + int(exclude_self), sims.shape[1])
        top = np.partition(sims, sims.shape[1] - take, axis=1)[:, -take:]
        if exclude_self:  # leave-one-out: drop each row's best match (itself)
            top = np.sort(top, axis=1)[:, :-1]
        out[start:start + 1024] = 1.0 - top.mean(axis=1)
    return out


@dataclass
class Neighbour:
    prompt: str  # the first PREVIEW_CHARS characters
    similarity: float
    outcomes: dict[str, float | None]  # each model's logged score (None: not tried)


class TrainingNeighbours:
    """A router's stored training prompts (see module docstring)."""

    def __init__(self, arrays: dict[str, np.ndarray], models: list[str]) -> None:
        if int(arrays["format"]) != FORMAT:
            raise ValueError(f"neighbours format {int(arrays['format'])}, expected {FORMAT}")
        self.X = np.asarray(arrays["X"], dtype=np.float32)
        self.outcomes = np.asarray(arrays["outcomes"], dtype=np.float32)
        self.text = bytes(np.asarray(arrays["text"], dtype=np.uint8))
        self.offsets = np.asarray(arrays["text_offsets"], dtype=np.int64)
        self.reference = np.asarray(arrays["reference"], dtype=np.float64)
        self.k = int(arrays["k"])
        self.models = list(models)
        if self.outcomes.shape != (len(self.X), len(self.models)) or len(self.offsets) != len(self.X) + 1:
            raise ValueError("neighbours arrays do not match each other or the router's models")
        rows = arrays.get("novelty_rows")
        if rows is not None and (len(rows) == 0 or np.max(rows) >= len(self.X) or np.min(rows) < 0):
            raise ValueError("novelty_rows do not index the stored prompts")
        self.novelty_X = self.X if rows is None else np.ascontiguousarray(self.X[np.asarray(rows, dtype=np.int64)])

    @staticmethod
    def arrays(X: np.ndarray, outcomes: np.ndarray, prompts: list[str], fold_of: np.ndarray,
               k: int = DEFAULT_K, seed: int = 0) -> dict[str, np.ndarray]:
        """The arrays to store for training prompts `X` (unit rows), their outcomes and texts.

        Novelty is calibrated across the training folds `fold_of`: each fold's prompts are
        measured against the other folds, as unseen prompts would be against the training
        set. No held-out test prompt is involved.
        """
        X = np.asarray(X, dtype=np.float32)
        fold_of = np.asarray(fold_of)
        rng = np.random.default_rng(seed)
        if len(X) > MAX_STORED:
            keep = np.sort(rng.choice(len(X), MAX_STORED, replace=False))
        else:
            keep = np.arange(len(X))
        rows = np.sort(rng.choice(len(keep), min(len(keep), NOVELTY_ROWS), replace=False))  # among the stored
        sample = keep[rows]
        reference = np.concatenate([raw_novelty(X[fold_of == f], X[sample[fold_of[sample] != f]], k)
                                    for f in np.unique(fold_of)])
        X, outcomes, prompts = X[keep], np.asarray(outcomes)[keep], [prompts[i] for i in keep]
        encoded = [p[:PREVIEW_CHARS].encode("utf-8", "replace") for p in prompts]
        offsets = np.concatenate([[0], np.cumsum([len(b) for b in encoded])]).astype(np.int64)
        return {"format": np.array(FORMAT), "X": X.astype(np.float16), "outcomes": np.asarray(outcomes, np.float16),
                "text": np.frombuffer(b"".join(encoded), dtype=np.uint8), "text_offsets": offsets,
                "reference": np.sort(reference), "k": np.array(k), "novelty_rows": rows.astype(np.int64)}

    @classmethod
    def load(cls, path: str | Path, models: list[str]) -> TrainingNeighbours:
        with np.load(path, allow_pickle=False) as data:
            return cls({key: data[key] for key in data.files}, models)

    def novelty(self, X: np.ndarray) -> np.ndarray:
        """Calibrated novelty in [0, 1] per row of `X` (see module docstring)."""
        raw = raw_novelty(X, self.novelty_X, self.k)
        return np.searchsorted(self.reference, raw, side="right") / len(self.reference)

    def prompt(self, i: int) -> str:
        return self.text[self.offsets[i]:self.offsets[i + 1]].decode("utf-8", "replace")

    def nearest(self, x: np.ndarray, k: int = 5) -> list[Neighbour]:
        sims = self.X @ np.asarray(x, dtype=np.float32)
        order = np.argsort(-sims)[:k]
        return [Neighbour(self.prompt(int(i)), float(sims[i]),
                          {m: None if np.isnan(v) else float(v) for m, v in zip(self.models, self.outcomes[i])})
                for i in order]
