"""The decision rule: turn per-model success probabilities and costs into a `Decision`.

For one prompt the router picks the model with the best trade-off

    utility_j = p_j - lam * cost_j / cost_scale

where p_j is the head's probability that model j succeeds, cost_j its estimated cost
on this prompt, and `cost_scale` the mean cost of the dearest model on the training
data (so `lam` is unit-free). lam = inf picks the cheapest model; lam = 0 picks the
most likely to succeed (ties to the cheaper). Between them, a model costing more is
chosen only when its gain in success probability pays for the extra cost at rate lam.

`quality_target` is the knob users turn, in [0, 1]: the share of the quality gain,
from always-cheapest (0) to the router's highest-quality choice (1), that the router
aims to keep. A `QualitySchedule` maps it to lam; it is measured on validation
predictions at training time and stored in the artifact, so 0.5 means "half the gain
seen on held-out prompts", not a raw threshold whose meaning changes with every
model set.

Rules, cascades and fallbacks sit above this rule, in the policy layer
(`router_ml.policy`); the only thing they pass down is a restriction of the candidate
models (`allowed`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from router_ml.errors import ConfigError


@dataclass(frozen=True)
class Decision:
    """The router's answer for one prompt."""

    model: str
    confidence: float  # P(the chosen model succeeds), from the head
    scores: dict[str, float]  # P(success) for every candidate model
    reason: str
    router_version: str
    quality_target: float
    estimated_cost: float  # USD, for the chosen model on this prompt
    costs: dict[str, float] = field(default_factory=dict)  # USD estimate for every candidate
    novelty: float | None = None  # how unusual the prompt is next to the training prompts, 0..1 (None: unknown)

    def to_dict(self) -> dict:
        return asdict(self)


def choose(proba: np.ndarray, costs: np.ndarray, lam: float, cost_scale: float,
           allowed: np.ndarray | None = None) -> np.ndarray:
    """Index of the chosen model per row (see module docstring); ties go to the cheaper model.

    `allowed` (boolean, one per model or one row per prompt) restricts the candidates,
    as rules do; every row must allow at least one model.
    """
    if math.isinf(lam):
        return np.argmin(costs if allowed is None else np.where(allowed, costs, np.inf), axis=1)
    # The tie-break term is far below any real probability difference.
    utility = proba - (lam / cost_scale) * costs - 1e-9 * costs / cost_scale
    if allowed is not None:
        utility = np.where(allowed, utility, -np.inf)
    return np.argmax(utility, axis=1)


@dataclass(frozen=True)
class QualitySchedule:
    """Monotone map from quality_target in [0, 1] to the trade-off rate lam.

    `targets` rise from 0 to 1 and `lams` fall from inf to 0; between stored points the
    rate is interpolated on a log scale.
    """

    targets: tuple[float, ...]
    lams: tuple[float, ...]

    def __post_init__(self) -> None:
        t, lam = np.asarray(self.targets), np.asarray(self.lams)
        if len(t) < 2 or len(t) != len(lam) or t[0] != 0.0 or t[-1] != 1.0:
            raise ConfigError("quality schedule: expected matching target and lam lists from 0 to 1")
        if np.any(np.diff(t) < 0) or np.any(np.diff(lam) > 0) or lam[0] != math.inf or lam[-1] != 0.0:
            raise ConfigError("quality schedule: targets must rise from 0 to 1 while lam falls from inf to 0")

    def lam_for(self, quality_target: float) -> float:
        t = np.asarray(self.targets)
        if quality_target <= 0.0:
            return math.inf
        if quality_target >= 1.0:
            return 0.0
        hi = int(np.searchsorted(t, quality_target, side="left"))  # first point with t >= target
        lo = hi - 1
        lam_hi, lam_lo = self.lams[hi], self.lams[lo]
        if lam_hi == 0.0 or math.isinf(lam_lo) or t[hi] == t[lo]:
            return lam_hi
        frac = (quality_target - t[lo]) / (t[hi] - t[lo])
        return float(math.exp(math.log(lam_lo) + frac * (math.log(lam_hi) - math.log(lam_lo))))

    @classmethod
    def from_curve(cls, lams: np.ndarray, qualities: np.ndarray) -> QualitySchedule:
        """Build from a sweep: `lams` (any order, inf and 0 included) and the quality each gave.

        Quality is made non-decreasing as lam falls (a lower rate never has to be taken
        for less quality), then scaled so always-cheapest is 0 and the best is 1.
        """
        order = np.argsort(-np.asarray(lams, dtype=float))
        lams = np.asarray(lams, dtype=float)[order]
        quality = np.maximum.accumulate(np.asarray(qualities, dtype=float)[order])
        if not (math.isinf(lams[0]) and lams[-1] == 0.0):
            raise ConfigError("quality schedule: the sweep must include lam = inf and lam = 0")
        span = quality[-1] - quality[0]
        if span <= 1e-12:
            # No gain to trade: spread the knob evenly so it still moves toward lam = 0.
            targets = np.linspace(0.0, 1.0, len(lams))
        else:
            targets = (quality - quality[0]) / span
        targets[0], targets[-1] = 0.0, 1.0
        # Keep, for each target level, the largest (cheapest) lam that reaches it.
        keep = np.concatenate([[True], np.diff(targets) > 1e-12])
        keep[-1] = True
        return cls(targets=tuple(float(x) for x in targets[keep]), lams=tuple(float(x) for x in lams[keep]))

    def to_dict(self) -> dict:
        return {"targets": list(self.targets), "lams": [None if math.isinf(x) else x for x in self.lams]}

    @classmethod
    def from_dict(cls, data: dict) -> QualitySchedule:
        return cls(
            targets=tuple(float(x) for x in data["targets"]),
            lams=tuple(math.inf if x is None else float(x) for x in data["lams"]),
        )


def lam_grid(n: int = 121) -> np.ndarray:
    """The rates a sweep tries: inf, a geometric range and 0 (descending)."""
    return np.concatenate([[math.inf], np.geomspace(1e3, 1e-4, n), [0.0]])


_TIE = 1e-9  # below this, probabilities tie (the rule's cost tie-break is of this order)


def explain_choice(models: list[str], proba: np.ndarray, costs: np.ndarray, chosen: int, target: float, lam: float,
                   cost_scale: float, allowed: np.ndarray | None = None) -> str:
    """The reason for a choice made by `choose`, in the same numbers it used.

    A model likelier than the chosen one was passed over only because it costs more than
    its extra chance of success is worth at this target: a gain of dp is worth at most
    dp * cost_scale / lam dollars. The reason names the likeliest such model and both sides
    of that trade.
    """
    candidates = np.flatnonzero(allowed).tolist() if allowed is not None else range(len(models))
    among = "" if allowed is None or allowed.all() else f" (among {', '.join(models[j] for j in candidates)})"
    p, c = float(proba[chosen]), float(costs[chosen])
    head = f"quality_target {target:g}"
    if math.isinf(lam):
        return f"{head}: the cheapest model{among} (p={p:.2f}, ~${c:.2g})"
    likelier = [j for j in candidates if proba[j] > p + _TIE]
    if not likelier:
        return f"{head}: the likeliest to succeed{among} (p={p:.2f}, ~${c:.2g})"
    best = max(likelier, key=lambda j: (proba[j], -costs[j]))
    gain, extra = float(proba[best] - p), float(costs[best] - c)
    worth = gain * cost_scale / lam if lam > 0 else math.inf
    return (f"{head}: p={p:.2f} at ~${c:.2g}{among}; {models[best]} is likelier (p={proba[best]:.2f}) but costs "
            f"~${extra:.2g} more, and +{gain:.2f} success is worth at most ~${worth:.2g} at this target")
