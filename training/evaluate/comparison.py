"""Is router A at least as good as router B? A paired bootstrap over the same held-out prompts.

    result = paired_comparison(challenger, champion, data, metric="aiq")
    result.at_least_as_good(margin=0.0)    # the lower confidence bound of the improvement >= -margin
    result.describe()                       # "aiq 0.6112 vs 0.5901: +0.0211, 95% lower bound +0.0084 on 1,097 prompts"

Both routers route the same prompts at every target of their own sweep. Each bootstrap
resample draws the prompts with replacement, and both curves, the single models, the
oracle and random mixing are measured again on that draw, so the spread reflects which
prompts happened to be held out, paired: a prompt that is hard for both is hard for both
in every draw. The improvement is candidate minus incumbent for metrics where higher is
better (AIQ, gap closed, quality at the best model's cost, APGR) and incumbent minus
candidate where lower is better (cost to match the best model, CPT, ECE), so a positive
improvement always favours the candidate.

Deliberately not here: the decision of what margin is acceptable (the caller's) and the
registry (router_ml.training.registry.versions).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from router_ml.errors import ConfigError
from router_ml.training.data.outcomes import RoutingData
from router_ml.training.evaluate.evaluation import _Context, align_to_router, sweep_targets

HIGHER_IS_BETTER = {"aiq": True, "gap_closed": True, "quality_at_best_cost": True, "apgr": True,
                    "cost_to_match_best": False, "cpt50": False, "cpt80": False, "ece": False}
MIN_PROMPTS = 200  # below this a figure is noisy (docs/metrics.md): too thin to promote on


@dataclass
class PairedComparison:
    metric: str
    prompts: int
    candidate: float
    incumbent: float
    improvement: float  # in the candidate's favour (see module docstring)
    lower: float  # one-sided lower confidence bound of the improvement
    upper: float  # and the matching upper bound (the two form a two-sided interval of 2 * confidence - 1)
    confidence: float
    resamples: int

    def at_least_as_good(self, margin: float = 0.0) -> bool:
        """True when, with `confidence`, the candidate is worse by no more than `margin`."""
        return math.isfinite(self.lower) and self.lower >= -margin

    def describe(self) -> str:
        return (f"{self.metric} {self.candidate:.4f} vs {self.incumbent:.4f}: improvement {self.improvement:+.4f}, "
                f"{self.confidence:.0%} lower bound {self.lower:+.4f} (upper {self.upper:+.4f}) on "
                f"{self.prompts:,} held-out prompts, {self.resamples} paired resamples")

    def to_dict(self) -> dict:
        return asdict(self)


def _routes(router, data: RoutingData, embedder=None):
    """Each target's choices (targets x prompts), the default target's choice and the probabilities."""
    X = (embedder or router.embedder).encode(data.prompts)
    predicted = router.predict_scores(data.prompts, embeddings=X)
    choices = np.stack([router.choose_indices(predicted, t) for t in sweep_targets(router)])
    return choices, router.choose_indices(predicted, router.default_quality_target), predicted.proba


def _metric(data: RoutingData, choices, default_choice, proba, metric: str) -> float:
    ctx = _Context(data)
    if metric == "ece":
        return float(ctx.ece(proba, default_choice)[0])
    value = ctx.curve_metrics(choices)[0].get(metric)
    if value is None:
        raise ConfigError(f"{metric} is undefined on this data (APGR and CPT need exactly two models); "
                          "choose another --metric")
    return float(value)


def paired_comparison(candidate, incumbent, data: RoutingData, metric: str = "aiq", *, resamples: int = 1000,
                      confidence: float = 0.95, seed: int = 0, embedders: tuple = (None, None)) -> PairedComparison:
    """Compare two routers on the same prompts of `data` (every model's outcome known on each)."""
    if metric not in HIGHER_IS_BETTER:
        raise ConfigError(f"metric: expected one of {sorted(HIGHER_IS_BETTER)}, found {metric!r}")
    if not 0.5 < confidence < 1.0:
        raise ConfigError(f"confidence: expected a number in (0.5, 1), found {confidence!r}")
    data = align_to_router(data, candidate.models, "comparison outcomes")
    data = data.subset(np.flatnonzero(data.complete))
    if len(data) < 2:
        raise ConfigError("comparison: fewer than 2 prompts with every model's outcome")
    if incumbent.models != candidate.models:
        order = [candidate.models.index(m) for m in incumbent.models]
    else:
        order = None
    runs = []
    for router, embedder in zip((candidate, incumbent), embedders):
        choices, default, proba = _routes(router, data, embedder)
        if order is not None and router is incumbent:
            # The incumbent's model indices refer to its own column order: map them to the data's.
            mapping = np.array(order)
            choices, default = mapping[choices], mapping[default]
            proba = proba[:, np.argsort(order)]
        runs.append((choices, default, proba))
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0

    def measure(rows=None) -> tuple[float, float]:
        subset = data if rows is None else data.subset(rows)
        values = []
        for choices, default, proba in runs:
            if rows is not None:
                choices, default, proba = choices[:, rows], default[rows], proba[rows]
            values.append(_metric(subset, choices, default, proba, metric))
        return values[0], values[1]

    cand, inc = measure()
    rng = np.random.default_rng(seed)
    n = len(data)
    draws = []
    for _ in range(resamples):
        a, b = measure(rng.integers(0, n, n))
        draws.append(sign * (a - b))
    draws = np.asarray(draws)
    finite = draws[np.isfinite(draws)]
    if len(finite) < 0.9 * resamples:
        lower = upper = math.nan  # the metric is undefined on many draws: no interval to trust
    else:
        lower, upper = (float(np.quantile(finite, q)) for q in (1.0 - confidence, confidence))
    return PairedComparison(metric, n, cand, inc, sign * (cand - inc), lower, upper, confidence, resamples)
