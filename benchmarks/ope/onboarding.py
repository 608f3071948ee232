"""Onboarding a new model: how many of its logged outcomes until the router is as good as one
that knew the model from the start.

The router knows eight models from its training prompts (every outcome); a ninth is new.
It has a handful of offline evaluations (`OFFLINE_EVALS` prompts) and then a capped share
of live traffic, sent to it uniformly at random (so its logged outcomes are a random
sample of the traffic and need no weights). After K logged outcomes the router's head
for the new model is refitted; the router is judged by AIQ over a sweep of trade-off
rates on held-out prompts with every outcome, against the same kind of router trained
with the new model from the start. The new model's head, three ways:

- `per-model`: a logistic regression on the embedding over its offline and logged
  outcomes (what the per-model head does; a constant at its success rate when too few);
- `price prior`: a prior from its price, corrected by its outcomes: the mean logit
  P(success) of the known models nearest in price, recalibrated by a two-parameter
  logistic regression (intercept, slope) on its outcomes;
- `price prior + embedding`: the same prior as a feature beside the embedding.

Deliberately left out: OPE (held-out prompts have every outcome here), and onboarding
that targets the new model's traffic (it would need weights).
"""

from __future__ import annotations

import numpy as np

from router_ml.core.decision import choose, lam_grid
from router_ml.core.heads import PerModelSuccessHead
from router_ml.core.off_policy.reward_models import fractional_logistic, smoothed_mean
from router_ml.training.evaluate.metrics import aiq

OFFLINE_EVALS = 20
LOGGED = (0, 25, 50, 100, 200, 400, 800, 1600)
HEADS = ("per-model", "price prior", "price prior + embedding")
C = 0.3
MIN_ROWS = 10
_EPS = 1e-4


def sweep_aiq(proba: np.ndarray, costs: np.ndarray, cost_scale: float, scores: np.ndarray) -> float:
    """AIQ of routing by `proba` over the project's grid of trade-off rates, on prompts with
    every model's score and cost (the single models from the same prompts)."""
    rows = np.arange(len(proba))
    points = []
    for lam in lam_grid():
        c = choose(proba, costs, lam, cost_scale)
        points.append((costs[rows, c].mean(), scores[rows, c].mean()))
    singles = np.column_stack([costs.mean(axis=0), scores.mean(axis=0)])
    return aiq(np.array(points), singles)


def price_prior(proba_known: np.ndarray, prices_known: np.ndarray, price_new: float) -> np.ndarray:
    """(n,) logit of the mean P(success) of the known models priced nearest the new one."""
    gap = np.abs(prices_known - price_new)
    nearest = gap <= gap.min() + 1e-12
    p = np.clip(proba_known[:, nearest].mean(axis=1), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def new_model_proba(kind: str, X: np.ndarray, z: np.ndarray, rows: np.ndarray, success: np.ndarray) -> np.ndarray:
    """(n,) the new model's P(success) on every prompt, learned from its outcomes `success` on `rows`."""
    y = success[rows]
    if len(rows) == 0:  # no outcome yet: the price prior as it stands
        return 1.0 / (1.0 + np.exp(-z))
    features = {"per-model": X, "price prior": z[:, None], "price prior + embedding": np.column_stack([z, X])}[kind]
    model = fractional_logistic(features[rows], y, C=C if kind != "price prior" else 10.0) \
        if len(rows) >= (MIN_ROWS if kind == "per-model" else 2) else None
    if model is None:
        return np.full(len(X), smoothed_mean(y, 0.5))
    return model.predict(features)


def onboarding_runs(X: np.ndarray, scores: np.ndarray, costs: np.ndarray, prices: np.ndarray, new: int,
                    train: np.ndarray, traffic: np.ndarray, test: np.ndarray, rng: np.random.Generator) -> list[dict]:
    """AIQ gap to the from-the-start router for each head kind and number of logged outcomes."""
    success = (scores >= 0.5).astype(float)
    known = np.array([j for j in range(scores.shape[1]) if j != new])
    cost_scale = float(costs[train].mean(axis=0).max())
    Y = success[train].copy()
    reference_head = PerModelSuccessHead(C=C).fit(X[train], Y)
    reference = sweep_aiq(reference_head.predict_proba(X[test]), costs[test], cost_scale, scores[test])
    Y[:, new] = np.nan
    base_head = PerModelSuccessHead(C=C).fit(X[train], Y)
    proba_all = base_head.predict_proba(X)  # the new model's column is a constant prior; replaced below
    z = price_prior(proba_all[:, known], prices[known], prices[new])
    without = sweep_aiq(proba_all[test][:, known], costs[test][:, known], cost_scale, scores[test][:, known])
    order = rng.permutation(traffic)
    offline, logged = order[:OFFLINE_EVALS], order[OFFLINE_EVALS:]
    out = [{"head": "eight models only", "logged": 0, "aiq": without, "reference": reference}]
    for kind in HEADS:
        for k in LOGGED:
            rows = np.concatenate([offline, logged[:k]])
            proba = proba_all.copy()
            proba[:, new] = new_model_proba(kind, X, z, rows, success[:, new])
            out.append({"head": kind, "logged": k, "reference": reference,
                        "aiq": sweep_aiq(proba[test], costs[test], cost_scale, scores[test])})
    return out
