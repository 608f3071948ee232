"""Who gets each planned request, and with what probability: the serving policy's last step.

After rules, router and cascade have planned a request (router_ml.policy.plans), the
serving policy decides where it really goes, and logs the distribution it drew from:

- a plain router decision (one model, no rule forcing it, not guarded): explored with the
  service's `Exploration` (router_ml.policy.exploration), and, when the serving catalog
  has models the router was not trained on, onboarded (router_ml.policy.onboarding); the
  request goes to a model drawn from the resulting distribution;
- anything else (a rule's force, a model the client named, the novelty guard, a cascade,
  the fallback after a router error) is deterministic: its planned model has propensity 1.

Every `Served` leaves with `propensities` (the whole distribution, models with probability
> 0), `propensity` (its own model's) and `planned_model` (the choice before exploration),
so that any router can later be judged from the log (router_ml.core.off_policy). With a
shadow router (a challenger being judged), each request also records the shadow's choice,
and exploration is aimed at it where it disagrees (`Exploration.focus`).

Deliberately left out: calling models (the gateway) and writing the audit log (the service).
"""

from __future__ import annotations

import random
import threading

import numpy as np

from router_ml.core.router import Router
from router_ml.policy.cascade import Plan
from router_ml.policy.exploration import Exploration, distribution, draw
from router_ml.policy.onboarding import Onboarding
from router_ml.serve.record import Served

DISAGREEMENT_WINDOW = 2000  # requests over which a shadow's disagreement share is followed


class ServingPolicy:
    """Exploration, onboarding and a shadow router around a service's plans (module docstring)."""

    def __init__(self, exploration: Exploration | None = None, onboarding: Onboarding | None = None,
                 shadow: Router | None = None, seed: int | None = None) -> None:
        self.exploration = exploration or Exploration()
        self._catalog_onboarding = onboarding  # every new model of the serving catalog
        self.onboarding = onboarding  # those the serving router does not route yet (use())
        self.shadow = shadow
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._disagree = np.zeros(DISAGREEMENT_WINDOW, dtype=bool)
        self._seen = 0

    @property
    def models(self) -> set[str]:
        """Models this policy may send requests to besides the router's (the catalog's new ones)."""
        return set(self._catalog_onboarding.names) if self._catalog_onboarding is not None else set()

    def use(self, router: Router) -> None:
        """Serve `router` from now on: onboard only the catalog's models it does not route (a retrained
        router that folded a new model in routes it like any other)."""
        if self._catalog_onboarding is not None:
            self.onboarding = self._catalog_onboarding.for_router(router.models)
            if self.onboarding is not None:
                self.onboarding.prepare(router)

    def check(self, router: Router) -> list[str]:
        """Why `router` cannot be served with this policy (empty: it can); run before a reload."""
        problems = []
        onboarding = None if self._catalog_onboarding is None else self._catalog_onboarding.for_router(router.models)
        if onboarding is not None:
            try:
                onboarding.prepare(router)
            except Exception as exc:  # noqa: BLE001 - a prior that cannot be resolved is a reason to refuse
                problems.append(f"the onboarding priors do not resolve against it: {exc}")
        if self.shadow is not None and not set(self.shadow.models) <= set(router.models) | self.models:
            problems.append(f"the shadow router {self.shadow.version} routes models it does not serve: "
                            f"{sorted(set(self.shadow.models) - set(router.models))}")
        return problems

    def shadow_plans(self, prompts: list[str], plans: list[Plan], targets: list[float | None]) -> None:
        """Record the shadow router's choice in each plan (at the request's explicit target, or a rule's,
        else at its own default); nothing without a shadow router. It embeds: call it where planning runs."""
        if self.shadow is None or not plans:
            return
        scores = self.shadow.predict_scores(prompts)
        for i, (plan, target) in enumerate(zip(plans, targets)):
            target = plan.rules.quality_target if plan.rules.quality_target is not None else target
            [decision] = self.shadow.decisions_from(scores, target, rows=[i])
            plan.shadow = {"version": self.shadow.version, "model": decision.model}

    def assign(self, router: Router, prompts: list[str], plans: list[Plan]) -> list[Served]:
        """One `Served` per plan, with where it goes and the distribution it was drawn from. An
        explored plan's steps become the drawn model (so the gateway calls that one)."""
        served = [Served.from_plan(plan, router.version) for plan in plans]
        for item, plan in zip(served, plans):
            item.planned_model = item.model
            item.propensities, item.propensity = {item.model: 1.0}, 1.0
            item.shadow = plan.shadow
        free = [i for i, plan in enumerate(plans) if _explorable(plan)]
        shadow = None if self.shadow is None else np.array(
            [plan.shadow["model"] if plan.shadow else None for plan in plans], dtype=object)
        onboarding = None if self.onboarding is None else self.onboarding.for_router(router.models)
        if not free or not (self.exploration.on or onboarding is not None):
            return served
        models, policy, beliefs = self._distributions(router, [plans[i] for i in free], [prompts[i] for i in free],
                                                      None if shadow is None else shadow[free], onboarding)
        with self._lock:
            uniforms = [self._random.random() for _ in free]
        for row, (i, u) in enumerate(zip(free, uniforms)):
            if beliefs is not None:  # what the policy believed of the new models, logged beside the router's
                served[i].scores = {**served[i].scores, **beliefs[0][row]}
                served[i].costs = {**served[i].costs, **beliefs[1][row]}
            self._draw(served[i], plans[i], models, policy[row], u)
        return served

    def _draw(self, item: Served, plan: Plan, models: list[str], row: np.ndarray, uniform: float) -> None:
        chosen = models[draw(row, uniform)]
        item.propensities = {m: round(float(p), 9) for m, p in zip(models, row) if p > 0}
        item.propensity = item.propensities[chosen]
        if chosen == item.model:
            return
        kind = "exploration" if chosen in plan.decision.scores else "onboarding"
        item.model, item.exploration, item.cascade = chosen, True, [chosen]
        item.confidence, item.estimated_cost = item.scores.get(chosen), item.costs.get(chosen)
        item.reason = f"{kind}: sent to {chosen} instead of {plan.decision.model} (p={item.propensity:.3g}); {item.reason}"
        plan.steps = [chosen]

    def _distributions(self, router: Router, plans: list[Plan], prompts: list[str], shadow: np.ndarray | None,
                       onboarding: Onboarding | None):
        """(the models, (n, len(models)) the distribution per plan, and for onboarded models what the
        policy believed per plan: ([{model: prior}], [{model: cost}]), or None without onboarding)."""
        decisions = [plan.decision for plan in plans]
        proba = np.array([[d.scores[m] for m in router.models] for d in decisions])
        costs = np.array([[d.costs[m] for m in router.models] for d in decisions])
        choice = np.array([router.models.index(d.model) for d in decisions])
        lam = np.array([router.trade_off(d.quality_target) for d in decisions])
        allowed = np.array([[plan.rules.allowed is None or m in plan.rules.allowed for m in router.models]
                            for plan in plans])
        policy = distribution(self.exploration, proba, costs, choice, lam, router.cost_scale, allowed,
                              shadow_choice=None if shadow is None else self._shadow_index(router, shadow),
                              disagreement=self._disagreement())
        if onboarding is None:
            return list(router.models), policy, None
        return self._onboard(onboarding, router, plans, prompts, proba, costs, choice, lam, policy)

    @staticmethod
    def _onboard(onboarding, router, plans, prompts, proba, costs, choice, lam, policy):
        """Mix the new models' shares into the distributions (module docstring of onboarding)."""
        onboarding.prepare(router)
        needs_embeddings = any("evaluations" in m.prior for m in onboarding.models)
        embeddings = router.embedder.encode(prompts) if needs_embeddings else None
        priors = onboarding.priors(proba, embeddings)
        new_costs = onboarding.costs(np.array([len(p) for p in prompts]), router.cost_model.chars_per_token)
        rows = np.arange(len(choice))
        chosen_utility = proba[rows, choice] - np.where(np.isfinite(lam), lam, 1e6) * costs[rows, choice] / \
            router.cost_scale
        shares = onboarding.shares(priors, new_costs, chosen_utility, lam, router.cost_scale)
        for row, plan in enumerate(plans):  # the rules' restriction binds new models too
            if plan.rules.allowed is not None:
                shares[row] *= [name in plan.rules.allowed for name in onboarding.names]
        policy = np.hstack([policy * (1.0 - shares.sum(axis=1, keepdims=True)), shares])
        beliefs = ([dict(zip(onboarding.names, map(float, p))) for p in priors],
                   [dict(zip(onboarding.names, map(float, c))) for c in new_costs])
        return list(router.models) + onboarding.names, policy, beliefs

    def _shadow_index(self, router: Router, shadow: np.ndarray) -> np.ndarray:
        index = {m: j for j, m in enumerate(router.models)}
        return np.array([index.get(m, -1) for m in shadow])

    def _disagreement(self) -> float | None:
        with self._lock:
            seen = min(self._seen, DISAGREEMENT_WINDOW)
            return float(self._disagree[:seen].mean()) if seen >= 50 else None

    def observe(self, served: list[Served]) -> None:
        """Follow how often the shadow disagrees with what the policy chose (for `focus`)."""
        if self.shadow is None:
            return
        with self._lock:
            for item in served:
                if item.shadow is not None:
                    self._disagree[self._seen % DISAGREEMENT_WINDOW] = item.shadow["model"] != item.planned_model
                    self._seen += 1


def _explorable(plan: Plan) -> bool:
    """A plain router decision: one model, chosen by the router, not forced, guarded or fallen back."""
    return (plan.decision is not None and not plan.rules.force and not plan.guarded and len(plan.steps) == 1
            and plan.fallback is None and plan.steps[0] == plan.decision.model)
