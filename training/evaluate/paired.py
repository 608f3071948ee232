"""Paired bootstrap intervals for routing curves measured on the same prompts.

    boot = PairedBootstrap(scores, costs, resamples=1000, seed=0)   # (n, n_models) logged outcomes
    a, b = Curve.of_choices(choices_a, scores, costs), Curve.of_choices(choices_b, scores, costs)
    boot.compare(a, b, "aiq").describe()     # "aiq 0.6300 vs 0.6201: +0.0099 [90 %: +0.0021, +0.0178]"

A `Curve` is what one router (or one cascade policy) did on each prompt at each point of
its sweep: the score it got and what it paid (every call counted), and optionally
whether it called the strong model (for APGR on two-model sets). Each resample draws the
prompts with replacement once for every curve compared, so the spread reflects which
prompts happened to be there, paired: a prompt hard for both routers is hard for both in
every draw. The single models, the oracle and random mixing are measured again on each
draw, as are the metrics (definitions: docs/metrics.md, router_ml.training.evaluate.metrics).

This is the fast path of `router_ml.training.evaluate.comparison` (which routes two
artifacts itself): the routes are given, draws are count vectors and every curve's
points on all draws come from one matrix product, so training can afford intervals on
its cross-validation folds. A difference is always first minus second; `lower` and
`upper` bound a two-sided interval of `confidence` (0.90: the 5th and 95th percentiles).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from router_ml.training.evaluate import metrics

CURVE_METRICS = ("aiq", "gap_closed", "apgr", "cost_to_match_best", "quality_at_best_cost")
LOWER_IS_BETTER = {"cost_to_match_best"}


@dataclass
class Curve:
    """Per prompt and sweep point: the score got, the cost paid, and (optionally) whether the strong model was called."""

    score: np.ndarray  # (points, n)
    cost: np.ndarray  # (points, n)
    strong: np.ndarray | None = None  # (points, n) 1.0 where the strong model was called

    @classmethod
    def of_choices(cls, choices: np.ndarray, scores: np.ndarray, costs: np.ndarray,
                   strong: int | None = None) -> Curve:
        """The curve of a router that picked model `choices[p, i]` for prompt i at sweep point p."""
        choices = np.unique(np.asarray(choices), axis=0)  # identical sweep points add nothing
        rows = np.arange(scores.shape[0])
        return cls(scores[rows, choices], costs[rows, choices],
                   None if strong is None else (choices == strong).astype(float))

    def subset(self, rows: np.ndarray) -> Curve:
        return Curve(self.score[:, rows], self.cost[:, rows], None if self.strong is None else self.strong[:, rows])

    @staticmethod
    def joined(parts: list[tuple[np.ndarray, Curve]], n: int) -> Curve:
        """One curve from curves measured on disjoint sets of prompts (rows, curve), each with the same points."""
        points = parts[0][1].score.shape[0]
        score, cost = np.empty((points, n)), np.empty((points, n))
        strong = None if parts[0][1].strong is None else np.empty((points, n))
        for rows, curve in parts:
            score[:, rows], cost[:, rows] = curve.score, curve.cost
            if strong is not None:
                strong[:, rows] = curve.strong
        return Curve(score, cost, strong)


@dataclass
class PairedInterval:
    metric: str
    prompts: int
    first: float
    second: float
    difference: float  # first - second
    lower: float
    upper: float
    confidence: float
    resamples: int

    @property
    def favours_first(self) -> bool:
        """The interval lies above zero (for a metric where lower is better: below)."""
        return self.lower > 0 if self.metric not in LOWER_IS_BETTER else self.upper < 0

    @property
    def not_worse(self) -> bool:
        """The first is not measurably worse: the interval does not lie wholly on the losing side of zero."""
        return self.upper >= 0 if self.metric not in LOWER_IS_BETTER else self.lower <= 0

    def describe(self, digits: int = 4) -> str:
        f = f"{{:.{digits}f}}"
        s = f"{{:+.{digits}f}}"
        return (f"{self.metric} {f.format(self.first)} vs {f.format(self.second)}: {s.format(self.difference)} "
                f"[{self.confidence:.0%}: {s.format(self.lower)}, {s.format(self.upper)}]")

    def to_dict(self) -> dict:
        return asdict(self)


class PairedBootstrap:
    """Resamples of one set of prompts, shared by every curve measured on it (module docstring)."""

    def __init__(self, scores: np.ndarray, costs: np.ndarray, resamples: int = 1000, seed: int = 0,
                 strong: int | None = None) -> None:
        self.scores, self.costs = np.asarray(scores, dtype=float), np.asarray(costs, dtype=float)
        n = len(self.scores)
        if n < 2:
            raise ValueError(f"a paired bootstrap needs at least 2 prompts, found {n}")
        self.n, self.resamples = n, int(resamples)
        self.strong = strong
        rng = np.random.default_rng(seed)
        # One row of counts per draw; row 0 is the data itself.
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=self.resamples).astype(float)
        self.weights = np.vstack([np.ones(n), counts]) / n  # (1 + resamples, n), rows sum to 1
        oracle = metrics.oracle_choice(self.scores, self.costs)
        rows = np.arange(n)
        self.singles = np.stack([self.weights @ self.costs, self.weights @ self.scores], axis=-1)  # (draws, m, 2)
        self.oracle = np.column_stack([self.weights @ self.costs[rows, oracle], self.weights @ self.scores[rows, oracle]])
        self._zero = np.array([self._safe(metrics.zero_router_aiq, s) for s in self.singles])
        self._oracle_aiq = np.array([self._safe(metrics.oracle_aiq, s, o) for s, o in zip(self.singles, self.oracle)])

    @staticmethod
    def _safe(fn, *args) -> float:
        try:
            return fn(*args)
        except ValueError:  # a draw where every single model costs the same
            return math.nan

    def values(self, curve: Curve, metric: str) -> np.ndarray:
        """The metric on the data (index 0) and on every draw (1..resamples)."""
        if metric not in CURVE_METRICS:
            raise ValueError(f"metric: expected one of {CURVE_METRICS}, found {metric!r}")
        quality = curve.score @ self.weights.T  # (points, draws)
        cost = curve.cost @ self.weights.T
        out = np.empty(self.weights.shape[0])
        if metric == "apgr":
            if curve.strong is None or self.strong is None or self.scores.shape[1] != 2:
                raise ValueError("APGR needs two models and the curve's strong-model calls")
            share = curve.strong @ self.weights.T
            weak = 1 - self.strong
            for d in range(len(out)):
                w, s = self.singles[d, weak, 1], self.singles[d, self.strong, 1]
                out[d] = metrics.apgr(share[:, d], quality[:, d], w, s) if s != w else math.nan
            return out
        for d in range(len(out)):
            points = np.column_stack([cost[:, d], quality[:, d]])
            singles = self.singles[d]
            if metric == "aiq" or metric == "gap_closed":
                value = self._safe(metrics.aiq, points, singles)
                if metric == "gap_closed":
                    value = metrics.gap_closed(value, self._zero[d], self._oracle_aiq[d]) \
                        if math.isfinite(value) else math.nan
            elif metric == "cost_to_match_best":
                value = metrics.cost_to_match(points, singles)
            else:
                value = metrics.quality_at_best_cost(points, singles)
            out[d] = value
        return out

    def compare(self, first: Curve, second: Curve, metric: str = "aiq", confidence: float = 0.90) -> PairedInterval:
        """`first` minus `second` on the data, and its paired interval."""
        return self.interval(self.values(first, metric), self.values(second, metric), metric, confidence)

    def interval(self, first: np.ndarray, second: np.ndarray, metric: str, confidence: float = 0.90) -> PairedInterval:
        """The interval of first - second from values on the data and the draws (as `values` returns them)."""
        if not 0.5 < confidence < 1.0:
            raise ValueError(f"confidence: expected a number in (0.5, 1), found {confidence!r}")
        diff = first[1:] - second[1:]
        finite = diff[np.isfinite(diff)]
        tail = (1.0 - confidence) / 2.0
        if len(finite) < 0.9 * len(diff):
            lower = upper = math.nan  # undefined on many draws: no interval to trust
        else:
            lower, upper = (float(np.quantile(finite, q)) for q in (tail, 1.0 - tail))
        return PairedInterval(metric, self.n, float(first[0]), float(second[0]), float(first[0] - second[0]), lower,
                              upper, confidence, self.resamples)


def mean_interval(per_prompt: np.ndarray, resamples: int = 1000, seed: int = 0,
                  confidence: float = 0.90) -> tuple[float, float, float]:
    """The mean of per-prompt values (a paired difference, say) and its bootstrap interval."""
    x = np.asarray(per_prompt, dtype=float)
    rng = np.random.default_rng(seed)
    draws = x[rng.integers(0, len(x), (resamples, len(x)))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    return float(x.mean()), float(np.quantile(draws, tail)), float(np.quantile(draws, 1.0 - tail))
