"""Reward models for doubly robust estimates: every model's expected score on each logged request.

A reward model sees, for the requests of a log, only the served model's score. Two kinds:

- `embedding_rewards`: one logistic regression per model on the prompt embedding,
  fitted on the requests that model served (a model served rarely falls back to its
  smoothed mean score). Needs nothing but the log and the embedder.
- `logged_score_rewards`: starts from what the logging router already believed, which
  the audit log keeps for every request (its P(success) for every model): a pooled
  logistic regression of the served score on logit P(success) of the served model and a
  per-model intercept, i.e. a recalibration of the logging router's scores to the score
  scale, learned from the log. `with_embedding=True` adds the embedding as a shared
  (model-independent) prompt-difficulty term.

Scores are in [0, 1] (mostly 0/1 on LLMRouter): the logistic regressions maximise the
Bernoulli likelihood of the fractional score directly (Newton's method, small and fast:
pass a reduced embedding, e.g. its first principal components).

`cross_fit` fits any of them on K-1 folds of the log and predicts the remaining fold, so
no request's own outcome enters its prediction (DR's unbiasedness relies on this when
the reward model is flexible).

Deliberately left out: the estimators themselves (estimators.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

FoldPredictor = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (train rows, test rows) -> (len(test), m)
MIN_ROWS = 10  # below this many served requests a model's regression falls back to its smoothed mean
PRIOR_ROWS = 5.0  # strength of the pooled mean in a rarely served model's smoothed mean
_EPS = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class Logistic:
    """A fitted logistic regression: P = sigmoid(X @ coef + intercept)."""

    coef: np.ndarray
    intercept: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(X @ self.coef + self.intercept, -30, 30)))


def fractional_logistic(X: np.ndarray, y: np.ndarray, C: float, fit_intercept: bool = True,
                        iterations: int = 50) -> Logistic | None:
    """L2-penalised logistic regression on labels in [0, 1], by Newton's method; None if y is constant.

    Maximises sum_i [y_i log p_i + (1 - y_i) log(1 - p_i)] - |coef|^2 / (2 C), the intercept
    unpenalised (scikit-learn's C). A fractional y is a valid Bernoulli likelihood: the
    gradient X'(p - y) and Hessian X' diag(p(1 - p)) X are the same as for 0/1 labels.
    """
    y = np.asarray(y, dtype=float)
    if len(y) == 0 or np.all(y == y[0]):
        return None
    A = np.column_stack([X, np.ones(len(X))]) if fit_intercept else np.asarray(X, dtype=float)
    penalty = np.full(A.shape[1], 1.0 / C)
    if fit_intercept:
        penalty[-1] = 0.0
    beta = np.zeros(A.shape[1])
    if fit_intercept:
        mean = np.clip(y.mean(), _EPS, 1 - _EPS)
        beta[-1] = np.log(mean / (1 - mean))
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(A @ beta, -30, 30)))
        gradient = A.T @ (p - y) + penalty * beta
        hessian = (A * (p * (1 - p))[:, None]).T @ A + np.diag(penalty + 1e-8)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-6:
            break
    return Logistic(beta[:-1], float(beta[-1])) if fit_intercept else Logistic(beta, 0.0)


def smoothed_mean(y: np.ndarray, prior: float, strength: float = PRIOR_ROWS) -> float:
    """Mean of y shrunk toward `prior` as if `strength` more rows had scored `prior`."""
    return float((np.sum(y) + strength * prior) / (len(y) + strength))


def embedding_rewards(X: np.ndarray, served: np.ndarray, score: np.ndarray, n_models: int,
                      C: float = 0.3) -> FoldPredictor:
    """Per-model logistic regression on the embedding (see the module docstring)."""

    def predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        out = np.empty((len(test), n_models))
        pooled = float(np.mean(score[train]))
        for j in range(n_models):
            rows = train[served[train] == j]
            fallback = smoothed_mean(score[rows], pooled)
            model = fractional_logistic(X[rows], score[rows], C) if len(rows) >= MIN_ROWS else None
            out[:, j] = fallback if model is None else model.predict(X[test])
        return out

    return predict


def logged_score_rewards(logged_proba: np.ndarray, served: np.ndarray, score: np.ndarray,
                         X: np.ndarray | None = None, C: float = 1.0) -> FoldPredictor:
    """Recalibrate the logging router's logged P(success) to the score scale (module docstring)."""
    n, m = logged_proba.shape
    z = _logit(logged_proba)

    def features(rows: np.ndarray, model: np.ndarray) -> np.ndarray:
        parts = [z[rows, model][:, None], np.eye(m)[model]]
        if X is not None:
            parts.append(X[rows])
        return np.hstack(parts)

    def predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        model = fractional_logistic(features(train, served[train]), score[train], C, fit_intercept=False)
        if model is None:
            return np.full((len(test), m), float(score[train][0]))
        rows = np.repeat(test, m)
        models = np.tile(np.arange(m), len(test))
        return model.predict(features(rows, models)).reshape(len(test), m)

    return predict


def fold_ids(n: int, folds: int, rng: np.random.Generator) -> np.ndarray:
    """A random fold (0..folds-1) for each of n requests, folds as equal as possible."""
    return rng.permutation(np.arange(n) % folds)


def cross_fit(predict: FoldPredictor, n: int, folds: int, rng: np.random.Generator) -> np.ndarray:
    """(n, m) predictions, each request's from a model fitted on the other folds."""
    fold = fold_ids(n, folds, rng)
    parts = {}
    for k in range(folds):
        test, train = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
        parts[k] = (test, predict(train, test))
    m = parts[0][1].shape[1]
    out = np.empty((n, m))
    for test, values in parts.values():
        out[test] = values
    return out
