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

`paired_bootstrap` measures every metric of two or more routers on the same draws (what
`router-ml compare` prints as intervals); `paired_comparison` is its one-metric, one-sided
form for a promotion decision.

Deliberately not here: the decision of what margin is acceptable (the caller's) and the
registry (router_ml.training.registry.versions).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from router_ml.errors import ConfigError
from router_ml.training.data.outcomes import RoutingData
from router_ml.training.evaluate.evaluation import _Context, align_to_router, evaluation_set, sweep_targets

HIGHER_IS_BETTER = {"aiq": True, "gap_closed": True, "quality_at_best_cost": True, "apgr": True,
                    "cost_to_match_best": False, "cpt50": False, "cpt80": False, "ece": False}
METRICS = tuple(HIGHER_IS_BETTER)
MIN_PROMPTS = 200  # below this a figure is noisy (docs/metrics.md): too thin to promote on
MIN_FINITE_SHARE = 0.9  # an interval needs the metric defined on at least this share of the draws


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
    eval_set: dict | None = None  # the prompts both were measured on (evaluation.evaluation_set)
    values: dict = field(default_factory=dict)  # {"candidate": {metric: value}, "incumbent": {...}}: every metric

    def at_least_as_good(self, margin: float = 0.0) -> bool:
        """True when, with `confidence`, the candidate is worse by no more than `margin`."""
        return math.isfinite(self.lower) and self.lower >= -margin

    def describe(self) -> str:
        return (f"{self.metric} {self.candidate:.4f} vs {self.incumbent:.4f}: improvement {self.improvement:+.4f}, "
                f"{self.confidence:.0%} lower bound {self.lower:+.4f} (upper {self.upper:+.4f}) on "
                f"{self.prompts:,} held-out prompts, {self.resamples} paired resamples")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Difference:
    """One metric of router `b` minus router `a` on the same prompts, with a two-sided interval."""

    metric: str
    a: str
    b: str
    value_a: float
    value_b: float
    difference: float  # value_b - value_a, as measured (not signed by which direction is better)
    low: float  # the two-sided `confidence` interval of the difference (NaN: no interval to trust)
    high: float
    confidence: float

    @property
    def verdict(self) -> str:
        """'b better', 'a better' (by the metric's direction), 'no clear difference' or 'no interval'."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return "no interval"
        if self.low <= 0.0 <= self.high:
            return "no clear difference"
        b_higher = self.low > 0.0
        return f"{self.b if b_higher == HIGHER_IS_BETTER[self.metric] else self.a} better"

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


@dataclass
class PairedBootstrap:
    """Every metric of several routers on the same prompts, and on the same resampled draws."""

    labels: list[str]
    prompts: int
    eval_set: dict
    values: dict[str, dict[str, float | None]]  # label -> metric -> value on the prompts (None: undefined here)
    draws: np.ndarray  # (resamples, routers, metrics), NaN where a metric is undefined on a draw
    resamples: int
    seed: int

    def difference(self, a: str, b: str, metric: str, confidence: float = 0.95) -> Difference:
        """`b` minus `a` on `metric`, with the two-sided `confidence` interval of the paired draws."""
        if not 0.5 < confidence < 1.0:
            raise ConfigError(f"confidence: expected a number in (0.5, 1), found {confidence!r}")
        ia, ib, k = self.labels.index(a), self.labels.index(b), METRICS.index(metric)
        diffs = self.draws[:, ib, k] - self.draws[:, ia, k]
        low, high = _quantiles(diffs, (1.0 - confidence) / 2, (1.0 + confidence) / 2, self.resamples)
        va, vb = (math.nan if v is None else v for v in (self.values[a][metric], self.values[b][metric]))
        return Difference(metric, a, b, va, vb, vb - va, low, high, confidence)

    def comparison(self, candidate: str, incumbent: str, metric: str, confidence: float = 0.95) -> PairedComparison:
        """The one-sided form a promotion decides on: the improvement in the candidate's favour and
        its lower `confidence` bound."""
        if not 0.5 < confidence < 1.0:
            raise ConfigError(f"confidence: expected a number in (0.5, 1), found {confidence!r}")
        cand, inc = self.values[candidate][metric], self.values[incumbent][metric]
        if cand is None or inc is None:
            raise ConfigError(f"{metric} is undefined on this data (APGR and CPT need exactly two models); "
                              "choose another --metric")
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        k = METRICS.index(metric)
        improvement = sign * (self.draws[:, self.labels.index(candidate), k] - self.draws[:, self.labels.index(incumbent), k])
        lower, upper = _quantiles(improvement, 1.0 - confidence, confidence, self.resamples)
        return PairedComparison(metric, self.prompts, cand, inc, sign * (cand - inc), lower, upper, confidence,
                                self.resamples, self.eval_set,
                                {"candidate": self.values[candidate], "incumbent": self.values[incumbent]})


def _quantiles(draws: np.ndarray, lo: float, hi: float, resamples: int) -> tuple[float, float]:
    finite = draws[np.isfinite(draws)]
    if len(finite) < MIN_FINITE_SHARE * resamples:
        return math.nan, math.nan  # the metric is undefined on many draws: no interval to trust
    return float(np.quantile(finite, lo)), float(np.quantile(finite, hi))


def _routes(router, data: RoutingData, embedder=None):
    """Each target's choices (targets x prompts), the default target's choice and the probabilities."""
    X = (embedder or router.embedder).encode(data.prompts)
    predicted = router.predict_scores(data.prompts, embeddings=X)
    choices = np.stack([router.choose_indices(predicted, t) for t in sweep_targets(router)])
    return choices, router.choose_indices(predicted, router.default_quality_target), predicted.proba


def _all_metrics(ctx: _Context, choices, default_choice, proba) -> list[float | None]:
    """Every metric of METRICS for one router's routes (None where the data does not define it:
    APGR and CPT need exactly two models)."""
    values = ctx.curve_metrics(choices)[0]
    values["ece"] = ctx.ece(proba, default_choice)[0]
    return [float(values[k]) if values.get(k) is not None else None for k in METRICS]


def paired_bootstrap(routers: dict, data: RoutingData, *, resamples: int = 1000, seed: int = 0,
                     embedders: dict | None = None, source: str = "comparison outcomes") -> PairedBootstrap:
    """Measure every router of `routers` (label -> router, all routing the same models) on the
    prompts of `data` with every model's outcome, and on `resamples` paired draws of them."""
    if len(routers) < 2:
        raise ConfigError(f"a paired comparison needs at least two routers, found {len(routers)}")
    first = next(iter(routers.values()))
    for label, router in routers.items():
        if sorted(router.models) != sorted(first.models):
            raise ConfigError(f"{label} routes {sorted(router.models)}, not {sorted(first.models)}: routers that "
                              "choose between different models cannot be compared on the same prompts")
    data = align_to_router(data, first.models, source)
    data = data.subset(np.flatnonzero(data.complete))
    if len(data) < 2:
        raise ConfigError("comparison: fewer than 2 prompts with every model's outcome")
    runs = []
    for label, router in routers.items():
        choices, default, proba = _routes(router, data, (embedders or {}).get(label))
        if router.models != first.models:
            # This router's model indices refer to its own column order: map them to the data's.
            mapping = np.array([first.models.index(m) for m in router.models])
            choices, default = mapping[choices], mapping[default]
            proba = proba[:, np.argsort(mapping)]
        runs.append((choices, default, proba))

    def measure(rows=None) -> list[list[float]]:
        ctx = _Context(data if rows is None else data.subset(rows))
        if rows is None:
            return [_all_metrics(ctx, *run) for run in runs]
        return [_all_metrics(ctx, choices[:, rows], default[rows], proba[rows]) for choices, default, proba in runs]

    labels = list(routers)
    point = measure()
    rng = np.random.default_rng(seed)
    n = len(data)
    draws = np.array([[[math.nan if v is None else v for v in row] for row in measure(rng.integers(0, n, n))]
                      for _ in range(resamples)], dtype=float).reshape(resamples, len(labels), len(METRICS))
    values = {label: dict(zip(METRICS, row)) for label, row in zip(labels, point)}
    return PairedBootstrap(labels, n, evaluation_set(data, source), values, draws, resamples, seed)


def paired_comparison(candidate, incumbent, data: RoutingData, metric: str = "aiq", *, resamples: int = 1000,
                      confidence: float = 0.95, seed: int = 0, embedders: tuple = (None, None),
                      source: str = "comparison outcomes") -> PairedComparison:
    """Compare two routers on the same prompts of `data` (every model's outcome known on each)."""
    if metric not in HIGHER_IS_BETTER:
        raise ConfigError(f"metric: expected one of {sorted(HIGHER_IS_BETTER)}, found {metric!r}")
    if not 0.5 < confidence < 1.0:
        raise ConfigError(f"confidence: expected a number in (0.5, 1), found {confidence!r}")
    boot = paired_bootstrap({"candidate": candidate, "incumbent": incumbent}, data, resamples=resamples, seed=seed,
                            embedders=dict(zip(("candidate", "incumbent"), embedders)), source=source)
    return boot.comparison("candidate", "incumbent", metric, confidence)
