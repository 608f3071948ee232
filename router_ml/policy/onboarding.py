"""Onboarding a model the router was not trained on: a small, capped share of traffic, with
known propensities, until its own outcomes are in and `retrain` folds it in.

The serving catalog names the new model with its prices (and its endpoint, for the gateway);
the router scores only the models it was trained on. Until the new model has outcomes, the
service believes a *prior* about its P(success) on each prompt (the catalog's `prior`):

    prior: {success: 0.72}              a constant
    prior: {like: mini}                 what the router believes of a model it knows
    prior: {evaluations: evals.csv}     a handful of offline evaluations (prompt, score): near
                                        each request, the similarity-weighted mean score of the
                                        nearest evaluated prompts, shrunk toward their mean
    (none)                              like the router's model nearest in price

and sends it a share of requests that depends on how likely it is to pay there: with the
request's trade-off rate lam, the new model's utility u_new = prior - lam cost / cost_scale
against the utility of the model the router chose, u_a,

    share(x) = rate * (floor + (1 - floor) * 2 sigmoid((u_new - u_a) / temperature))

so it is tried first where it would be worth choosing if the prior is right, and never more
than rate * (2 - floor) of any request (the cap) nor less than rate * floor (every kind of
prompt gets observed). Several new models share the rate equally. The propensities are exact
and logged; `retrain` with the catalog then trains the router on the new model's outcomes,
weighted by them (router_ml.training.loop.retrain).

benchmarks/ope_study.py measured how many outcomes a new model needs: a cheap model was worth
routing to from 25-100 outcomes with a price prior, the best (and dearest) model of LLMRouter's
nine needed about 800 before a retrained router came within 0.01 AIQ of one trained with it
from the start (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router_ml.core.catalog import Catalog, ModelPrice, estimate_tokens
from router_ml.errors import CatalogError, ConfigError

NEAREST = 10  # evaluated prompts a prior averages over
SHRINK = 3.0  # the evaluations' mean counts as this many more neighbours


@dataclass(frozen=True)
class NewModel:
    name: str
    price: ModelPrice
    output_tokens: int
    prior: dict  # {"success": p} | {"like": model} | {"evaluations": path}, resolved by Onboarding.prepare


def read_evaluations(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(prompts, scores) of an offline evaluation file: CSV, JSONL or Parquet with `prompt` and `score`
    (or `success`) columns; a named error for anything else."""
    from router_ml.core.tables import read_table

    frame = read_table(Path(path))
    column = "score" if "score" in frame.columns else "success" if "success" in frame.columns else None
    if "prompt" not in frame.columns or column is None:
        raise CatalogError(f"{path}: expected columns prompt and score (or success), found {list(frame.columns)}")
    scores = []
    for i, value in enumerate(frame[column].tolist()):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not 0.0 <= number <= 1.0:
            raise CatalogError(f"{path}: row {i + 1}: field {column!r}: expected a number in [0, 1], found {value!r}")
        scores.append(number)
    prompts = [str(p) for p in frame["prompt"].tolist()]
    if not prompts:
        raise CatalogError(f"{path}: no evaluations")
    return prompts, np.asarray(scores, dtype=float)


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


class Onboarding:
    """The new models of a serving catalog and their share of traffic (module docstring)."""

    def __init__(self, models: list[NewModel], rate: float = 0.05, temperature: float = 0.05,
                 floor: float = 0.3) -> None:
        if not models:
            raise ConfigError("onboarding: no new model to onboard")
        if not 0.0 < rate <= 0.25:
            raise ConfigError(f"onboarding rate: expected a share in (0, 0.25], found {rate!r}")
        self.models = models
        self.names = [m.name for m in models]
        self.rate = rate
        self.temperature = temperature
        self.floor = floor
        self._like: dict[str, int] = {}
        self._evaluations: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._router_version: str | None = None

    @classmethod
    def from_catalog(cls, catalog: Catalog, router_models: list[str], rate: float = 0.05) -> Onboarding | None:
        """The catalog's models the router does not route to (None when there are none)."""
        new = [NewModel(name, price, catalog.output_tokens(name), price.prior or {})
               for name, price in catalog.models.items() if name not in router_models]
        return cls(new, rate=rate) if new else None

    def for_router(self, router_models: list[str]) -> Onboarding | None:
        """These settings for the models a (reloaded) router still does not route; None once it routes them all."""
        left = [m for m in self.models if m.name not in router_models]
        if len(left) == len(self.models):
            return self
        return Onboarding(left, self.rate, self.temperature, self.floor) if left else None

    def prepare(self, router) -> None:
        """Resolve each prior against `router` (its models, prices and embedder); run again after a reload."""
        if self._router_version == router.version:
            return
        like, evaluations = {}, {}
        for model in self.models:
            if "evaluations" in model.prior:
                prompts, scores = read_evaluations(model.prior["evaluations"])
                vectors = np.asarray(router.embedder.encode(router.check_prompts(prompts)), dtype=np.float32)
                evaluations[model.name] = (vectors, scores)
            elif "success" not in model.prior:
                target = model.prior.get("like") or self._nearest_in_price(router, model)
                if target not in router.models:
                    raise ConfigError(f"onboarding {model.name}: its prior is like {target!r}, which router "
                                      f"{router.version} does not route ({router.models})")
                like[model.name] = router.models.index(target)
        self._like, self._evaluations, self._router_version = like, evaluations, router.version

    @staticmethod
    def _nearest_in_price(router, model: NewModel) -> str:
        cm = router.cost_model
        mine = np.log(model.price.output_price * model.output_tokens + 1e-9)
        gaps = [abs(np.log((cm.output_price[i] or 0.0) * cm.output_tokens[i] + 1e-9) - mine)
                if cm.output_price[i] is not None else np.inf for i in range(len(cm.models))]
        return cm.models[int(np.argmin(gaps))]

    def priors(self, proba: np.ndarray, embeddings: np.ndarray | None = None) -> np.ndarray:
        """(n, k) each new model's prior P(success) on each request (proba: the router's, (n, m))."""
        n = len(proba)
        out = np.empty((n, len(self.models)))
        for k, model in enumerate(self.models):
            if "success" in model.prior:
                out[:, k] = model.prior["success"]
            elif model.name in self._like:
                out[:, k] = proba[:, self._like[model.name]]
            else:
                if embeddings is None:
                    raise ConfigError(f"onboarding {model.name}: a prior from evaluations needs the prompts' embeddings")
                out[:, k] = self._near(embeddings, *self._evaluations[model.name])
        return out

    @staticmethod
    def _near(X: np.ndarray, vectors: np.ndarray, scores: np.ndarray) -> np.ndarray:
        X, vectors = _unit(X), _unit(vectors)
        sims = np.clip(X @ vectors.T, 0.0, None)
        k = min(NEAREST, len(scores))
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        weights = np.take_along_axis(sims, top, axis=1)
        mean = float(scores.mean())
        return (weights * scores[top]).sum(axis=1) / (weights.sum(axis=1) + SHRINK) + \
            SHRINK * mean / (weights.sum(axis=1) + SHRINK)

    def costs(self, prompt_chars: np.ndarray, chars_per_token: float) -> np.ndarray:
        """(n, k) each new model's estimated cost per request, from its catalog prices."""
        tokens = estimate_tokens(np.asarray(prompt_chars), chars_per_token)
        return np.column_stack([(tokens * m.price.input_price + m.output_tokens * m.price.output_price) / 1e6
                                for m in self.models])

    def shares(self, priors: np.ndarray, costs: np.ndarray, chosen_utility: np.ndarray, lam: np.ndarray,
               cost_scale: float) -> np.ndarray:
        """(n, k) the share of each request each new model is sent (module docstring)."""
        lam = np.where(np.isfinite(lam), lam, 1e6)
        utility = priors - lam[:, None] * costs / cost_scale
        lead = np.clip((utility - chosen_utility[:, None]) / self.temperature, -50, 50)
        each = self.rate / len(self.models)
        return each * (self.floor + (1.0 - self.floor) * 2.0 / (1.0 + np.exp(-lead)))
