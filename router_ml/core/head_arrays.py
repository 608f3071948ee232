"""Heads as plain arrays: what serving needs, loaded without scikit-learn and without pickle.

Training saves every fitted head twice: `head.joblib` (the scikit-learn estimators, for
inspection and refitting) and `head.npz` (their parameters as arrays, written by each
head's `to_arrays`). A router loads only the `.npz`, with `allow_pickle=False`, and
predicts with the numpy below, so a serving process imports neither scikit-learn nor
SciPy (faster start, smaller memory) and never unpickles anything.

`tests/test_head_arrays.py` checks that every head predicts the same from its arrays as
from its estimators.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FORMAT = 1


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _linear(a: dict, p: str, X: np.ndarray) -> np.ndarray:
    return _sigmoid(X @ a[p + "coef"].T + a[p + "intercept"])


def _cheapest(a: dict, p: str, X: np.ndarray) -> np.ndarray:
    coef = a[p + "label_coef"]
    if coef.shape[0] == 0:  # one label class only
        label_proba = np.ones((len(X), 1))
    else:
        z = X @ coef.T + a[p + "label_intercept"]
        if coef.shape[0] == 1:  # two classes: scikit-learn's binary form
            q = _sigmoid(z[:, 0])
            label_proba = np.column_stack([1.0 - q, q])
        else:
            label_proba = _softmax(z)
    return label_proba @ a[p + "success_given_label"]


KNN_CHUNK = 512  # query rows per block: a block's similarities stay in cache while the top k are found


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity is then a dot product)."""
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def knn_rates(neighbours: np.ndarray, tried: np.ndarray, wins: np.ndarray, prior: np.ndarray,
              prior_weight: float) -> np.ndarray:
    """Each model's success rate among the training prompts `neighbours` (n, k), shrunk toward `prior`."""
    return (wins[neighbours].sum(axis=1) + prior_weight * prior) / (tried[neighbours].sum(axis=1) + prior_weight)


def knn_proba(a: dict, p: str, X: np.ndarray) -> np.ndarray:
    """Each model's success rate among the k most similar training prompts, block by block (KNN_CHUNK rows)."""
    X = unit_rows(X)
    train = a[p + "train_X"]
    k = int(min(int(a[p + "k"]), len(train)))
    neighbours = np.empty((len(X), k), dtype=np.intp)
    for start in range(0, len(X), KNN_CHUNK):
        similarity = X[start:start + KNN_CHUNK] @ train.T
        neighbours[start:start + KNN_CHUNK] = np.argpartition(similarity, len(train) - k, axis=1)[:, len(train) - k:]
    return knn_rates(neighbours, a[p + "tried"], a[p + "wins"], a[p + "prior"], float(a[p + "prior_weight"]))


def similarity_weights(similarity: np.ndarray) -> np.ndarray:
    """RouteLLM's weight of each training prompt: 10 * 10^(sim / the query's highest sim)."""
    top = np.maximum(similarity.max(axis=1, keepdims=True), 1e-6)
    return 10.0 * np.power(10.0, similarity / top)


def sw_rates(similarity: np.ndarray, tried: np.ndarray, wins: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Each model's similarity-weighted success rate over every training prompt ((n, n_train) similarities);
    the prior where no weighted prompt tried the model."""
    weights = similarity_weights(similarity)
    total = weights @ tried
    return np.where(total > 0, (weights @ wins) / np.maximum(total, 1e-300), prior)


def sw_proba(a: dict, p: str, X: np.ndarray) -> np.ndarray:
    """Similarity-weighted success rates (RouteLLM's weighting), block by block (KNN_CHUNK rows)."""
    X = unit_rows(X)
    train = a[p + "train_X"]
    out = np.empty((len(X), a[p + "tried"].shape[1]))
    for start in range(0, len(X), KNN_CHUNK):
        similarity = (X[start:start + KNN_CHUNK] @ train.T).astype(np.float64)
        out[start:start + KNN_CHUNK] = sw_rates(similarity, a[p + "tried"], a[p + "wins"], a[p + "prior"])
    return out


def _mlp(a: dict, p: str, X: np.ndarray) -> np.ndarray:
    columns = []
    for j in range(int(a[p + "n_models"])):
        q = f"{p}m{j}_"
        if q + "const" in a:
            columns.append(np.full(len(X), float(a[q + "const"])))
            continue
        h = X
        layers = int(a[q + "layers"])
        for i in range(layers):
            h = h @ a[f"{q}W{i}"] + a[f"{q}b{i}"]
            if i < layers - 1:
                h = np.maximum(h, 0.0)
        columns.append(_sigmoid(h[:, 0]))
    return np.column_stack(columns)


def _blend(a: dict, p: str, X: np.ndarray) -> np.ndarray:
    return 0.5 * (_linear(a, p + "linear_", X) + knn_proba(a, p + "knn_", X))


def _extended(a: dict, p: str, X: np.ndarray) -> np.ndarray:
    """A head extended with per-model logistic regressions for onboarded models (heads.ExtendedHead)."""
    base = PREDICT[str(a[p + "base_kind"])](a, p + "base_", X)
    return np.hstack([base, _linear(a, p + "extra_", X)])[:, a[p + "order"]]


def platt(raw: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Per-model Platt scaling: sigmoid(coef_j * logit(p_j) + intercept_j)."""
    p = np.clip(raw, 1e-6, 1 - 1e-6)
    return _sigmoid(np.log(p / (1 - p)) * coef + intercept)


def _ensemble(a: dict, p: str, X: np.ndarray) -> np.ndarray:
    """The mean of the members' calibrated probabilities."""
    members = int(a[p + "n_members"])
    total = 0.0
    for i in range(members):
        q = f"{p}m{i}_"
        kind = str(a[q + "kind"])
        if kind not in PREDICT or kind == "ensemble":
            raise ValueError(f"ensemble member {i}: head kind {kind!r} is not one of {sorted(set(PREDICT) - {'ensemble'})}")
        total = total + platt(PREDICT[kind](a, q, X), a[q + "calibration_coef"], a[q + "calibration_intercept"])
    return total / members


PREDICT = {"per_model": _linear, "cheapest_successful": _cheapest, "knn": knn_proba, "mlp": _mlp, "blend": _blend,
           "sw": sw_proba, "ensemble": _ensemble, "extended": _extended}


class ArrayHead:
    """A RoutingHead from its arrays: `predict(X)` -> the probabilities a router routes on and reports."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        if int(arrays["format"]) != FORMAT:
            raise ValueError(f"head arrays format {int(arrays['format'])}, expected {FORMAT}")
        self.arrays = arrays
        self.kind = str(arrays["kind"])
        if self.kind not in PREDICT:
            raise ValueError(f"head kind {self.kind!r} is not one of {sorted(PREDICT)}")
        self._predict = PREDICT[self.kind]
        self._a = arrays["calibration_coef"]
        self._b = arrays["calibration_intercept"]
        self.route_on_calibrated = bool(arrays["route_on_calibrated"])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n, n_models) P(success): calibrated (every router trained since one probability space
        was introduced), or the head's own for older routers that chose to route on those."""
        raw = self._predict(self.arrays, "head_", np.asarray(X, dtype=np.float32))
        if not self.route_on_calibrated:
            return raw
        return platt(raw, self._a, self._b)

    predict_proba = predict


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def load_head_arrays(path: str | Path) -> ArrayHead:
    with np.load(path, allow_pickle=False) as data:
        return ArrayHead({key: data[key] for key in data.files})
