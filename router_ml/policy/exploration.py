"""Exploration: the serving policy's distribution over the models for each request, so that
every served decision has a known propensity and a live log can judge any router.

A routed request shows only the outcome of the model it went to. To learn (retraining) and
to judge other routers from that log (router_ml.core.off_policy), the service sometimes
sends a request elsewhere, and logs for every request the probability it gave each model.
With a share `rate` of explored requests and the router's choice a:

    pi(j | x) = (1 - rate) 1[j = a] + rate q(j | x)

where q spreads the exploration over the other models the rules allow:

- "utility" (the default): q = floor * uniform + (1 - floor) * softmax(u_j / temperature),
  u_j = p_j - lam c_j / cost_scale being model j's utility at the request's trade-off rate.
  The budget goes mostly to models close to the best, where a router trained tomorrow is
  likely to differ from today's (informative), and costs less quality than uniform; the
  floor keeps every allowed model's propensity >= rate * floor / (others).
- "uniform": q = 1 / (others), the design before this one.
- a cost cap (`max_extra_cost`, a fraction of the chosen model's estimated cost): the
  targeted part is tilted toward cheaper models, softmax(u_j / temperature - beta c_j /
  cost_scale) with the smallest beta >= 0 that holds the exploration's expected extra cost
  under the cap (bisection per request); the floor is never tilted. Where even that mix
  costs more than the cap allows (every other model is dearer than the choice by more than
  the cap), the request is explored at a lower rate, so the cap always holds.
- a shadow router (a challenger to be judged, `shadow_choice`): the targeted part goes to
  its choice where it disagrees with the router, so its estimate gets the observations it
  needs; with `focus` (a base rate) the budget also moves, requests where the shadow agrees
  being explored at the base rate and the others more (at most MAX_FOCUSED_RATE each), the
  mean staying `rate` (the disagreement share is a running estimate, `disagreement`).

benchmarks/ope_study.py chose the defaults: at a 10 % rate on LLMRouter's nine models,
utility with temperature 0.05 and floor 0.3 lost 0.009 of mean quality against 0.021 for
uniform, and narrowed the interval of a better challenger's estimate from 0.130 to 0.092
(docs/benchmarks.md).

Everything here is a function of what the router computed for the request, so the whole
distribution is logged with it and the propensities are exact. Drawing the served model
(`draw`) takes a uniform number from the caller, so a service can be seeded.

Deliberately left out: which requests may be explored at all (a rule's force, the novelty
guard, a cascade and a fallback are deterministic: the service gives them propensity 1),
and onboarding a model the router does not know (router_ml.policy.onboarding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from router_ml.errors import ConfigError

DESIGNS = ("utility", "uniform")
MAX_FOCUSED_RATE = 0.5


@dataclass(frozen=True)
class Exploration:
    """How a share `rate` of requests is spread over the other allowed models (module docstring)."""

    rate: float = 0.0
    design: str = "utility"
    temperature: float = 0.05  # of the utility softmax, in P(success) units
    floor: float = 0.3  # share of the exploration spread uniformly over the others, never tilted by the cap
    max_extra_cost: float | None = None  # expected extra cost per request, as a fraction of the chosen model's
    focus: float | None = None  # with a shadow router: the base rate where it agrees (None: `rate` everywhere)

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise ConfigError(f"exploration design: expected one of {DESIGNS}, found {self.design!r}")
        if not 0.0 <= self.rate < 1.0:
            raise ConfigError(f"exploration rate: expected a share in [0, 1), found {self.rate!r}")
        if not 0.0 <= self.floor <= 1.0:
            raise ConfigError(f"exploration floor: expected a share in [0, 1], found {self.floor!r}")
        if not self.temperature > 0:
            raise ConfigError(f"exploration temperature: expected a number > 0, found {self.temperature!r}")
        if self.max_extra_cost is not None and not self.max_extra_cost >= 0:
            raise ConfigError(f"exploration cost cap: expected a fraction >= 0, found {self.max_extra_cost!r}")
        if self.focus is not None and not 0.0 < self.focus <= self.rate:
            raise ConfigError(f"exploration focus: expected a base rate in (0, rate={self.rate:g}], "
                              f"found {self.focus!r}")

    @property
    def on(self) -> bool:
        return self.rate > 0


def _softmax(logits: np.ndarray, others: np.ndarray) -> np.ndarray:
    logits = np.where(others, logits, -np.inf)
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _uniform(others: np.ndarray) -> np.ndarray:
    return others / others.sum(axis=1, keepdims=True)


def distribution(settings: Exploration, proba: np.ndarray, costs: np.ndarray, choice: np.ndarray,
                 lam: np.ndarray | float, cost_scale: float, allowed: np.ndarray | None = None,
                 shadow_choice: np.ndarray | None = None, disagreement: float | None = None,
                 iterations: int = 40) -> np.ndarray:
    """(n, m) the serving policy's distribution over the models for each request.

    proba, costs: (n, m) the router's P(success) and estimated cost per model; choice: (n,)
    its choice; lam: the trade-off rate (one, or one per request); allowed: (n, m) the models
    the rules allow (None: all); shadow_choice: (n,) a shadow router's choice (-1 where it has
    none); disagreement: the share of recent requests where the shadow disagrees (for
    `focus`; default: this batch's). A request with no other allowed model stays on its
    choice with probability 1.
    """
    proba, costs = np.asarray(proba, dtype=float), np.asarray(costs, dtype=float)
    n, m = proba.shape
    rows = np.arange(n)
    choice = np.asarray(choice, dtype=int)
    others = np.ones((n, m), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool).copy()
    others[rows, choice] = False
    policy = np.zeros((n, m))
    policy[rows, choice] = 1.0
    can = others.any(axis=1)
    if not settings.on or not can.any():
        return policy
    rate = np.where(can, settings.rate, 0.0)
    lam = np.broadcast_to(np.asarray(lam, dtype=float), (n,))
    lam = np.where(np.isfinite(lam), lam, 1e6)  # lam = inf (target 0): utility is minus the cost
    scaled = costs[can] / cost_scale
    utility = proba[can] - lam[can, None] * scaled
    logits = np.zeros_like(utility) if settings.design == "uniform" else utility / settings.temperature
    q = np.zeros((n, m))
    if shadow_choice is not None:
        shadow_choice = np.asarray(shadow_choice, dtype=int)
        q[can], rate = _shadow(settings, logits, others[can], shadow_choice[can], rate, can, choice, shadow_choice,
                               disagreement)
    else:
        q[can] = _targeted(settings, logits, others[can], scaled, costs[can], choice[can], iterations)
        if settings.max_extra_cost is not None:
            extra = (q * (costs - costs[rows, choice][:, None])).sum(axis=1)  # per unit of exploration rate
            budget = settings.max_extra_cost * costs[rows, choice]
            rate = np.where(rate * extra > budget, budget / np.where(extra > 0, extra, 1.0), rate)
    policy = rate[:, None] * q
    policy[rows, choice] += 1.0 - rate
    return policy


def _targeted(settings: Exploration, logits, others, scaled, costs, choice, iterations) -> np.ndarray:
    """q of the utility (or uniform) design, tilted toward cheaper models under a cost cap."""
    rows = np.arange(len(choice))
    uniform = _uniform(others)

    def q(beta: np.ndarray) -> np.ndarray:
        return settings.floor * uniform + (1.0 - settings.floor) * _softmax(logits - beta[:, None] * scaled, others)

    beta = np.zeros(len(choice))
    if settings.max_extra_cost is not None and settings.floor < 1.0:
        def extra(b):
            return settings.rate * (q(b) * (costs - costs[rows, choice][:, None])).sum(axis=1)

        budget = settings.max_extra_cost * costs[rows, choice]
        over = extra(beta) > budget
        if over.any():  # bisection on log10(beta) for the requests over budget
            lo, hi = np.full(len(choice), -6.0), np.full(len(choice), 8.0)
            for _ in range(iterations):
                mid = (lo + hi) / 2
                fits = extra(np.where(over, 10.0 ** mid, 0.0)) <= budget
                hi, lo = np.where(fits, mid, hi), np.where(fits, lo, mid)
            beta = np.where(over, 10.0 ** hi, 0.0)
    return q(beta)


def _shadow(settings: Exploration, logits, others, shadow, rate, can, choice, shadow_all, disagreement):
    """q of the shadow design and the per-request rates (module docstring)."""
    n_can = len(shadow)
    shaped = np.zeros_like(logits)
    valid = (shadow >= 0) & others[np.arange(n_can), np.clip(shadow, 0, None)]
    shaped[np.flatnonzero(valid), shadow[valid]] = 1.0
    shaped = np.where(valid[:, None], shaped, _softmax(logits, others))
    q = settings.floor * _uniform(others) + (1.0 - settings.floor) * shaped
    if settings.focus is not None:
        disagree_all = (shadow_all >= 0) & (shadow_all != choice)
        share = disagree_all[can].mean() if disagreement is None else disagreement
        if share > 0:
            focused = min(MAX_FOCUSED_RATE, (settings.rate - settings.focus * (1.0 - share)) / share)
            rate = np.where(can, np.where(disagree_all, focused, settings.focus), 0.0)
    return q, rate


def draw(policy_row: np.ndarray, uniform: float) -> int:
    """The model index a request goes to under its distribution, from a uniform number in [0, 1)."""
    cumulative = np.cumsum(policy_row)
    return int(min(np.searchsorted(cumulative, uniform * cumulative[-1], side="right"), len(policy_row) - 1))


def extra_cost(policy: np.ndarray, costs: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """(n,) the expected extra cost of exploration per request: sum_j pi_j c_j - c_choice."""
    costs = np.asarray(costs, dtype=float)
    return (policy * costs).sum(axis=1) - costs[np.arange(len(choice)), choice]
