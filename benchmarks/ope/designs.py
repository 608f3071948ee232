"""Exploration designs studied by benchmarks/ope_study.py (the product keeps the one it chose, with a
few more guards, in router_ml.policy.exploration).

With probability `rate` a request goes to another model than the router's choice a;
which one is drawn from an exploration distribution q over the other models:

    pi_0(j | x) = (1 - rate) 1[j = a] + rate q(j | x)

- uniform (today's service): q = 1 / (m - 1) on every other model;
- targeted: q = floor * uniform + (1 - floor) * softmax(s_j / temperature) over the others,
  where s_j is the model's utility p_j - lam c_j / cost_scale at the router's trade-off
  rate(s) (a mixture over several rates when `lams` has several: informative for the
  whole target sweep, not just the default), or its closeness in P(success) to the
  choice, -|p_j - p_a|. The floor keeps every model's propensity >= rate * floor / (m - 1).
- shadow: when the routers to be judged next (a challenger, a router trained elsewhere)
  are known, the service can compute their choices too; the non-floor part goes to the
  choices of those that disagree with the router (equal shares), and, where they all
  agree with it, to the utility softmax. This spends the budget exactly where their
  estimates need it. With `focus` (a base rate), the budget moves too: requests where
  every shadow router agrees are explored at the base rate only, the rest of the
  budget goes to the requests where one disagrees (at most MAX_FOCUSED_RATE each), so
  the mean rate stays `rate`. The disagreement share it divides by is the batch's (a
  service would use the share over recent traffic); it depends on decisions only.
- a cost cap (either design): the exploration's expected extra cost on a request,
  rate * sum_j q_j (c_j - c_a), is held to at most `max_extra_cost` times the chosen
  model's cost c_a by tilting the non-floor part toward cheaper models,
  softmax(s_j / temperature - beta c_j / cost_scale), with the smallest beta >= 0 that
  meets the cap (bisection per request). The floor is never tilted: overlap comes first,
  so a cap the floor alone exceeds is not met (the study reports the realised cost).

Every number here is a function of what the router computed for the request, so the
whole distribution can be logged and the propensities are exact.

Deliberately left out: drawing the served model (the simulation does it) and the
choice of the router's own model (the policy's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCORES = ("uniform", "utility", "closeness", "shadow")
MAX_FOCUSED_RATE = 0.5


@dataclass(frozen=True)
class ExplorationDesign:
    """How a share `rate` of requests is spread over the other models (module docstring)."""

    name: str
    rate: float = 0.1
    score: str = "uniform"  # "uniform", "utility", "closeness" or "shadow"
    temperature: float = 0.05  # of the softmax (utility and closeness are in P(success) units)
    floor: float = 1.0  # share of the exploration spread uniformly over the others, never tilted by the cap
    sweep: bool = False  # utility at several trade-off rates (the caller's `lams`), not just the default
    max_extra_cost: float | None = None  # cap, as a fraction of the chosen model's cost (None: no cap)
    focus: float | None = None  # shadow designs: the base rate where no shadow router disagrees (None: `rate` everywhere)

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"score: expected one of {SCORES}, found {self.score!r}")
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"rate: expected a share in [0, 1), found {self.rate!r}")
        if not 0.0 <= self.floor <= 1.0:
            raise ValueError(f"floor: expected a share in [0, 1], found {self.floor!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature: expected > 0, found {self.temperature!r}")
        if self.score == "shadow" and self.max_extra_cost is not None:
            raise ValueError("a shadow design follows the shadow routers' choices: it takes no cost cap")
        if self.focus is not None and (self.score != "shadow" or not 0.0 < self.focus <= self.rate):
            raise ValueError(f"focus: a shadow design's base rate in (0, rate], found {self.focus!r}")


def _softmax_others(logits: np.ndarray, others: np.ndarray) -> np.ndarray:
    logits = np.where(others, logits, -np.inf)
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _shape_logits(design: ExplorationDesign, proba: np.ndarray, costs: np.ndarray, choice: np.ndarray,
                  lams: np.ndarray, cost_scale: float) -> list[np.ndarray]:
    """Softmax logits of the targeted part, one array per trade-off rate in the mixture."""
    rows = np.arange(len(choice))
    if design.score == "uniform":
        return [np.zeros_like(proba)]
    if design.score == "closeness":
        return [-np.abs(proba - proba[rows, choice][:, None]) / design.temperature]
    rates = lams if design.sweep else lams[:1]
    return [(proba - lam * costs / cost_scale) / design.temperature for lam in rates]


def _exploration(design, logits, others, costs, beta) -> np.ndarray:
    """q for a cost tilt beta (n,) on the non-floor part."""
    uniform = others / others.sum(axis=1, keepdims=True)
    shaped = np.mean([_softmax_others(z - beta[:, None] * costs, others) for z in logits], axis=0)
    return design.floor * uniform + (1.0 - design.floor) * shaped


def _shadow_exploration(design, logits, others, shadow: np.ndarray) -> np.ndarray:
    """q of a shadow design: the disagreeing shadow routers' choices, else the utility softmax."""
    n, m = others.shape
    shaped = np.zeros((n, m))
    for k in range(shadow.shape[1]):
        shaped[np.arange(n), shadow[:, k]] += 1.0
    shaped *= others
    mass = shaped.sum(axis=1, keepdims=True)
    shaped = np.where(mass > 0, shaped / np.maximum(mass, 1e-12), _softmax_others(logits[0], others))
    uniform = others / others.sum(axis=1, keepdims=True)
    return design.floor * uniform + (1.0 - design.floor) * shaped


def logging_policy(design: ExplorationDesign, choice: np.ndarray, proba: np.ndarray, costs: np.ndarray,
                   lams: np.ndarray, cost_scale: float, shadow: np.ndarray | None = None,
                   iterations: int = 40) -> np.ndarray:
    """(n, m) the logging policy's distribution over the models for each request.

    choice: (n,) the router's choice; proba, costs: (n, m) its P(success) and estimated
    cost per model; lams: the trade-off rates the utility is taken at, the default
    target's first (finite; only the first is used unless `design.sweep`); cost_scale:
    the router's cost scale; shadow: (n, k) the shadow routers' choices (shadow designs).
    """
    n, m = proba.shape
    rows = np.arange(n)
    others = np.ones((n, m), dtype=bool)
    others[rows, choice] = False
    logits = _shape_logits(design, proba, costs, choice, np.asarray(lams, dtype=float), cost_scale)
    if design.score == "shadow":
        if shadow is None:
            raise ValueError(f"design {design.name!r}: a shadow design needs the shadow routers' choices")
        shadow = np.asarray(shadow).reshape(n, -1)
        rate = np.full(n, design.rate)
        if design.focus is not None:
            disagree = (shadow != choice[:, None]).any(axis=1)
            if disagree.any():
                share = disagree.mean()
                focused = min(MAX_FOCUSED_RATE, (design.rate - design.focus * (1.0 - share)) / share)
                rate = np.where(disagree, focused, design.focus)
        policy = rate[:, None] * _shadow_exploration(design, logits, others, shadow)
        policy[rows, choice] += 1.0 - rate
        return policy
    scaled_costs = costs / cost_scale
    beta = np.zeros(n)
    if design.max_extra_cost is not None and design.floor < 1.0:
        extra = lambda b: design.rate * (_exploration(design, logits, others, scaled_costs, b)  # noqa: E731
                                         * (costs - costs[rows, choice][:, None])).sum(axis=1)
        budget = design.max_extra_cost * costs[rows, choice]
        over = extra(beta) > budget
        if over.any():  # bisection on log beta for the rows over budget
            lo, hi = np.full(n, -6.0), np.full(n, 8.0)
            for _ in range(iterations):
                mid = (lo + hi) / 2
                fits = extra(np.where(over, 10.0 ** mid, 0.0)) <= budget
                hi, lo = np.where(fits, mid, hi), np.where(fits, lo, mid)
            beta = np.where(over, 10.0 ** hi, 0.0)
    policy = design.rate * _exploration(design, logits, others, scaled_costs, beta)
    policy[rows, choice] += 1.0 - design.rate
    return policy
