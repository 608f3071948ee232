"""Off-policy estimates of a router's mean score, mean cost and AIQ from a routing log.

A live router shows, for each request, only the outcome of the model it served. The
log holds, per request i: the served model a_i, its outcome y_i (score or cost), the
logging policy's full distribution pi_0(. | x_i) over the models (the propensity of
a_i is one entry of it) and the logging router's per-model estimates. A *target* router
is deterministic: at a quality target it picks b(x_i). Its value V = mean_i y(x_i, b(x_i))
is estimated from the log by per-request terms (numerator u_i, denominator d_i),
V_hat = sum u_i / sum d_i, with w_i = 1[a_i = b_i] / pi_0(b_i | x_i):

- IPS (inverse propensity):           u_i = w_i y_i,                          d_i = 1
- SNIPS (self-normalised IPS):        u_i = w_i y_i,                          d_i = w_i
- DM (direct method):                 u_i = yhat(x_i, b_i),                   d_i = 1
- DR (doubly robust):                 u_i = yhat(x_i, b_i) + w_i (y_i - yhat(x_i, a_i)), d_i = 1
- clipped DR:                         as DR with w_i capped at `max_weight` (biased, lower variance)

DR is unbiased when the propensities are right, whatever the reward model yhat; a good
yhat only shrinks its variance. yhat must not have seen request i's outcome (cross-fit
it: benchmarks/ope/reward_models.py).

Intervals: percentile bootstrap over requests of the terms (the reward model is fitted
once, cross-fitted, and held fixed). Several policies (every point of a target sweep,
the single models) are estimated on the same resamples, so AIQ, a function of all the
points, gets its interval from the same draws, and a paired difference of two routers
from the same draws too.

Deliberately left out: stochastic target policies (a router is deterministic), and any
fitting (the reward models live in reward_models.py, the logging designs in
exploration.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ESTIMATORS = ("ips", "snips", "dm", "dr", "clipped_dr")


@dataclass(frozen=True)
class LoggedTraffic:
    """What the audit log holds for n requests routed among m models."""

    served: np.ndarray  # (n,) index of the model each request went to
    score: np.ndarray  # (n,) its reported score, 0..1
    cost: np.ndarray  # (n,) its cost, USD
    policy: np.ndarray  # (n, m) the logging policy's distribution over the models (rows sum to 1)

    def __post_init__(self) -> None:
        n, m = self.policy.shape
        if not (self.served.shape == self.score.shape == self.cost.shape == (n,)):
            raise ValueError(f"expected served, score and cost of shape ({n},), found "
                             f"{self.served.shape}, {self.score.shape}, {self.cost.shape}")
        if not np.allclose(self.policy.sum(axis=1), 1.0):
            raise ValueError("policy: every row must be a distribution over the models (sum to 1)")
        if (self.propensity <= 0).any():
            raise ValueError("policy: the served model's propensity must be > 0 on every row")

    def __len__(self) -> int:
        return len(self.served)

    @property
    def propensity(self) -> np.ndarray:
        """(n,) the logging policy's probability of the model it served."""
        return self.policy[np.arange(len(self.served)), self.served]

    def subset(self, rows) -> LoggedTraffic:
        return LoggedTraffic(self.served[rows], self.score[rows], self.cost[rows], self.policy[rows])


def importance_weights(log: LoggedTraffic, choice: np.ndarray) -> np.ndarray:
    """w = 1[served == choice] / pi_0(choice | x), for one policy (n,) or several (n, P)."""
    choice = np.asarray(choice)
    column = choice if choice.ndim == 2 else choice[:, None]
    rows = np.arange(len(log))[:, None]
    w = (log.served[:, None] == column) / log.policy[rows, column]
    return w if choice.ndim == 2 else w[:, 0]


def estimator_terms(estimator: str, log: LoggedTraffic, outcome: np.ndarray, choice: np.ndarray,
                    predicted: np.ndarray | None = None, max_weight: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-request numerator and denominator terms of an estimator (see the module docstring).

    outcome: (n,) the logged outcome of the served model (score or cost); choice: (n,) or
    (n, P) the target policies' choices; predicted: (n, m) the reward model's estimate of
    every model's outcome on each request (DM and the DR family). Returns (u, d) shaped
    like `choice`; the estimate is u.sum(0) / d.sum(0).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: expected one of {ESTIMATORS}, found {estimator!r}")
    choice = np.asarray(choice)
    w = importance_weights(log, choice)
    y = outcome if choice.ndim == 1 else outcome[:, None]
    if estimator in ("ips", "snips"):
        return w * y, (w if estimator == "snips" else np.ones_like(w))
    if predicted is None:
        raise ValueError(f"estimator {estimator!r} needs the reward model's predictions")
    rows = np.arange(len(log)) if choice.ndim == 1 else np.arange(len(log))[:, None]
    direct = predicted[rows, choice]
    if estimator == "dm":
        return direct, np.ones_like(w)
    residual = outcome - predicted[np.arange(len(log)), log.served]
    residual = residual if choice.ndim == 1 else residual[:, None]
    weight = np.minimum(w, max_weight) if estimator == "clipped_dr" else w
    return direct + weight * residual, np.ones_like(w)


def resample_counts(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, n) how many times each request is drawn in each bootstrap resample (float32)."""
    draws = rng.integers(0, n, size=(resamples, n)) + (np.arange(resamples) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n).astype(np.float32)


def ratio(u: np.ndarray, d: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """The estimate sum(u) / sum(d): (P,) or, with bootstrap counts (B, n), (B, P).

    A denominator of ones (every estimator but SNIPS) is the resample's size, n: one
    product of the counts is saved.
    """
    if counts is None:
        return u.sum(axis=0) / d.sum(axis=0)
    numerator = counts @ u
    if np.all(d == 1.0):
        return numerator / counts.sum(axis=1, keepdims=True).reshape((-1,) + (1,) * (u.ndim - 1))
    with np.errstate(invalid="ignore", divide="ignore"):  # SNIPS with no match in a resample: NaN
        return numerator / (counts @ d)


def percentile_interval(draws: np.ndarray, level: float = 0.9) -> tuple[float, float]:
    """Two-sided percentile interval of bootstrap draws (NaN draws dropped)."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(draws, [tail, 1.0 - tail])
    return float(lo), float(hi)


def basic_interval(point: float, draws: np.ndarray, level: float = 0.9) -> tuple[float, float]:
    """The basic (reverse percentile) bootstrap interval [2 est - q_hi, 2 est - q_lo].

    For a figure with a bias that the resamples repeat, like AIQ (the upper hull of noisy
    points is optimistic: a lucky point lifts it, an unlucky one is dropped), the
    percentile interval sits on the wrong side of the truth; reflecting it around the
    estimate moves it back by the bootstrap's own estimate of the bias.
    """
    lo, hi = percentile_interval(draws, level)
    return 2.0 * point - hi, 2.0 * point - lo


def bias_corrected(point: float, draws: np.ndarray) -> float:
    """The bootstrap bias-corrected estimate 2 est - mean(draws)."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    return float(2.0 * point - draws.mean()) if len(draws) else float("nan")


def predicted_width(predicted_choice: np.ndarray, propensity_choice: np.ndarray, level: float = 0.9) -> float:
    """The width a DR mean estimate's interval will have, before any outcome is read.

    Each DR term is yhat_b + w (y - yhat); if yhat is E[y | x], its variance is
    Var(yhat_b) + E[Var(y | x, b) / pi_0(b | x)]. With a 0..1 score's variance bounded by
    yhat (1 - yhat), the normal interval's width follows from the logging policy's
    propensity of the target's choice and the reward model's prediction for it alone:
    the figure to plan a log's size with (width falls as 1 / sqrt(n)).
    """
    from statistics import NormalDist

    yhat = np.asarray(predicted_choice, dtype=float)
    variance = yhat.var() + np.mean(yhat * (1.0 - yhat) / np.asarray(propensity_choice, dtype=float))
    return float(2.0 * NormalDist().inv_cdf(0.5 + level / 2.0) * np.sqrt(variance / len(yhat)))


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 of importance weights (0 if none match)."""
    weights = np.asarray(weights, dtype=float)
    total = float(np.sum(weights ** 2))
    return float(np.sum(weights) ** 2 / total) if total > 0 else 0.0


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its percentile bootstrap interval."""

    value: float
    lower: float
    upper: float

    @property
    def width(self) -> float:
        return self.upper - self.lower

    def covers(self, truth: float) -> bool:
        return bool(self.lower <= truth <= self.upper)


def estimate_with_interval(u: np.ndarray, d: np.ndarray, counts: np.ndarray, level: float = 0.9) -> Estimate:
    """One policy's estimate and percentile interval from its terms (n,) and bootstrap counts (B, n)."""
    value = float(u.sum() / d.sum()) if d.sum() > 0 else float("nan")
    return Estimate(value, *percentile_interval(ratio(u[:, None], d[:, None], counts)[:, 0], level))


def aiq_batch(cost: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """AIQ of many curves at once, exactly as router_ml.training.evaluate.metrics.aiq.

    cost, quality: (B, P) points; columns 0 and 1 are the cheapest and the dearest single
    models (the ends of the cost range), the rest the router's points. The upper hull is
    built by the same monotone chain, one step for every curve at a time, then made
    non-decreasing and integrated over [cost of column 0, cost of column 1]. A bootstrap's
    thousand AIQs cost milliseconds instead of seconds. Rows with a non-finite point give NaN.
    """
    cost, quality = np.atleast_2d(np.asarray(cost, dtype=float)), np.atleast_2d(np.asarray(quality, dtype=float))
    B, P = cost.shape
    lo, hi = cost[:, 0].copy(), cost[:, 1].copy()
    bad = ~(np.isfinite(cost).all(axis=1) & np.isfinite(quality).all(axis=1)) | (hi <= lo)
    cost, quality = np.where(bad[:, None], 0.0, cost), np.where(bad[:, None], 0.0, quality)
    order = np.lexsort((quality, cost), axis=-1)
    x, y = np.take_along_axis(cost, order, axis=1), np.take_along_axis(quality, order, axis=1)
    rows = np.arange(B)
    stack, top = np.zeros((B, P), dtype=int), np.zeros(B, dtype=int)
    for p in range(P):
        xp, yp = x[:, p], y[:, p]
        while True:
            i1, i2 = stack[rows, np.maximum(top - 2, 0)], stack[rows, np.maximum(top - 1, 0)]
            x1, y1, x2, y2 = x[rows, i1], y[rows, i1], x[rows, i2], y[rows, i2]
            pop = (top >= 2) & ((x2 - x1) * (yp - y1) - (y2 - y1) * (xp - x1) >= 0)
            if not pop.any():
                break
            top = top - pop
        last = stack[rows, np.maximum(top - 1, 0)]
        top = top - ((top >= 1) & (x[rows, last] == xp))  # same cost: keep the higher quality (sorted last)
        stack[rows, top] = p
        top = top + 1
    hull_x, hull_y = x[rows[:, None], stack], y[rows[:, None], stack]
    valid = np.arange(P)[None, :] < top[:, None]
    peak = np.argmax(np.where(valid, hull_y, -np.inf), axis=1)  # non-decreasing: flat after the highest vertex
    keep = np.arange(P)[None, :] <= peak[:, None]
    end_x, end_y = hull_x[rows, peak], hull_y[rows, peak]
    vx = np.where(keep, hull_x, np.maximum(end_x, hi)[:, None])
    vy = np.where(keep, hull_y, end_y[:, None])
    vx = np.column_stack([vx, np.maximum(end_x, hi)])
    vy = np.column_stack([vy, end_y])
    x0, x1, y0, y1 = vx[:, :-1], vx[:, 1:], vy[:, :-1], vy[:, 1:]
    a, b = np.clip(x0, lo[:, None], hi[:, None]), np.clip(x1, lo[:, None], hi[:, None])
    span = np.where(x1 > x0, x1 - x0, 1.0)
    ya, yb = y0 + (y1 - y0) * (a - x0) / span, y0 + (y1 - y0) * (b - x0) / span
    area = np.where(b > a, (b - a) * (ya + yb) / 2, 0.0).sum(axis=1)
    out = area / np.where(bad, 1.0, hi - lo)
    out[bad] = np.nan
    return out
