"""Cascades: try a cheap model first and escalate when its answer is not good enough.

    cascade:
      steps: [nano, router]                 # "router": the learned router's choice
      escalate_if:
        confidence_below: 0.6               # skip a step the router doubts
        check: {json: true}                 # a response check (router_ml.policy.checks)
      max_escalations: 1
      max_cost: 0.05                        # USD per request, estimated before each call

From a request to a plan (rules, router, cascade steps), and running a plan's steps;
one mechanism serves the live gateway and the offline replay:

    plans = make_plans(router, policy, prompts, metadata, quality_target)   # no model called yet
    result, steps, spent = run_cascade(plan, policy.cascade, call, check)   # call: a model -> result

`make_plans` applies the rules (force, restrict, quality_target), asks the router for
the rest (one batched embedding per group of requests that share a target and a
restriction), and resolves the cascade: the `router` step becomes the router's choice,
steps outside a rule's restriction are dropped, repeats are merged, and a step (other
than the last) whose model the router gives less than `confidence_below` is skipped
before anything is called. `run_cascade` then calls the steps in order: a step whose
response fails the check escalates to the next, within `max_escalations` and
`max_cost` (the cost spent so far plus the next step's estimate); a step whose call
fails outright (the fallback chain exhausted, see router_ml.serve.gateway) moves on to the
next step; when the last step's response fails the check, or a cap is reached, the
last response is returned and the steps say so. The gateway's `call` makes HTTP calls
with fallbacks; the replay's `call` reads the logged outcome and pays the logged cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

from router_ml.core.decision import Decision
from router_ml.errors import UpstreamError
from router_ml.policy.checks import Check
from router_ml.policy.rules import RuleResult

if TYPE_CHECKING:
    from router_ml.policy.file import Policy

ROUTER_STEP = "router"


@dataclass(frozen=True)
class Cascade:
    steps: tuple[str, ...]  # model names, or ROUTER_STEP for the router's choice
    confidence_below: float | None = None
    check: Check | None = None
    max_escalations: int = 1
    max_cost: float | None = None


NOVELTY_GUARD = "novelty-guard"  # the name a novelty guard fires under, among the rules


@dataclass(frozen=True)
class NoveltyGuard:
    """Send prompts unlike anything the router was trained on to a model that is safe for them.

        novelty: {above: 0.99, route_to: pro}

    `above`: a calibrated novelty (router_ml.core.neighbours; 0.99 = more unusual than 99 %
    of held-out prompts). Rules still bind: a restriction that excludes `route_to` wins.
    """

    above: float
    route_to: str


@dataclass
class Plan:
    """What will be tried for one request, in order, and why."""

    steps: list[str]
    rules: RuleResult
    decision: Decision | None  # the router's (None when a rule forced the model)
    quality_target: float | None
    notes: list[str] = field(default_factory=list)
    fallback: str | None = None  # "router_error" when the router failed and the fallback model was planned

    @property
    def model(self) -> str:
        return self.steps[0]

    @property
    def guarded(self) -> bool:
        """The novelty guard sent this request to its safe model."""
        return NOVELTY_GUARD in self.rules.fired

    @property
    def confidence(self) -> float | None:
        return None if self.decision is None else self.decision.scores.get(self.model)

    def reason(self) -> str:
        parts = []
        if self.rules.force:
            parts.append(f"rule {self.rules.fired[-1]} forces {self.rules.force}")
        elif self.rules.fired:
            parts.append(f"rules {', '.join(self.rules.fired)}")
        if self.decision is not None:
            parts.append(f"router: {self.decision.model} ({self.decision.reason})")
        if len(self.steps) > 1:
            parts.append(f"cascade {' -> '.join(self.steps)}")
        parts += self.rules.notes + self.notes
        return "; ".join(parts)


@dataclass
class StepRecord:
    model: str  # the model this cascade step asked for
    outcome: str  # accepted | check_failed | failed | skipped | cost_cap | escalation_cap
    cost: float = 0.0
    detail: str = ""
    served_by: str | None = None  # the model that answered (differs after a fallback)
    attempts: list | None = None  # the calls behind this step (gateway: retries and fallbacks)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}


def make_plans(router, policy: Policy | None, prompts: list[str], metadata: list[dict] | None = None,
               quality_target=None, scores=None) -> list[Plan]:
    """One plan per prompt. `quality_target` is one target for all, or one per prompt (the
    service batches requests that asked for different ones); `scores` (router.predict_scores
    of these prompts) skips embedding. The prompts the router decides are embedded once,
    whatever their targets and restrictions."""
    metadata = metadata or [{} for _ in prompts]
    targets = quality_target if isinstance(quality_target, list) else [quality_target] * len(prompts)
    results = [policy.apply_rules(p, m) if policy else RuleResult() for p, m in zip(prompts, metadata)]
    plans: list[Plan | None] = [None] * len(prompts)
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(results):
        target = r.quality_target if r.quality_target is not None else targets[i]
        if r.force:
            plans[i] = Plan([r.force], r, None, target)
        else:
            groups.setdefault((target, r.allowed), []).append(i)
    routed = [i for rows in groups.values() for i in rows]
    if scores is None and len(routed) == 1:
        [(target, allowed)] = groups
        decisions = {routed[0]: router.route(prompts[routed[0]], target, allowed)}  # the decision cache's path
    else:
        if scores is None:
            scores, position = router.predict_scores([prompts[i] for i in routed]), {i: k for k, i in enumerate(routed)}
        else:
            position = {i: i for i in routed}
        decisions = {}
        for (target, allowed), rows in groups.items():
            decisions.update(zip(rows, router.decisions_from(scores, target, allowed, rows=[position[i] for i in rows])))
    for i, d in decisions.items():
        plans[i] = _guarded(d, results[i], policy.novelty if policy else None) or \
            _cascade_plan(d, results[i], policy.cascade if policy else None)
    return plans


def _guarded(decision: Decision, rules: RuleResult, guard: NoveltyGuard | None) -> Plan | None:
    """The novelty guard's plan for a prompt it catches (None: it does not apply)."""
    if guard is None or decision.novelty is None or decision.novelty <= guard.above:
        return None
    if rules.allowed is not None and guard.route_to not in rules.allowed:
        return Plan([decision.model], rules, decision, decision.quality_target,
                    notes=[f"novelty {decision.novelty:.3f} > {guard.above:g}, but {guard.route_to} is outside the "
                           "rules' restriction: routed as usual"])
    rules.fired.append(NOVELTY_GUARD)
    return Plan([guard.route_to], rules, decision, decision.quality_target,
                notes=[f"novelty {decision.novelty:.3f} > {guard.above:g}: unlike the training prompts, sent to "
                       f"{guard.route_to}"])


def _cascade_plan(decision: Decision, rules: RuleResult, cascade: Cascade | None) -> Plan:
    plan = Plan([decision.model], rules, decision, decision.quality_target)
    if cascade is None:
        return plan
    steps = []
    for step in cascade.steps:
        model = decision.model if step == ROUTER_STEP else step
        if rules.allowed is not None and model not in rules.allowed:
            plan.notes.append(f"cascade step {model} dropped: outside the rules' restriction")
            continue
        if model not in steps:
            steps.append(model)
    if not steps:
        return plan
    kept = []
    for i, model in enumerate(steps):
        p = decision.scores.get(model)
        if i < len(steps) - 1 and cascade.confidence_below is not None and p is not None and p < cascade.confidence_below:
            plan.notes.append(f"cascade step {model} skipped: confidence {p:.2f} < {cascade.confidence_below:g}")
            continue
        kept.append(model)
    plan.steps = kept
    return plan


class Called(Protocol):
    """What a step's `call(model)` returns: who answered, what it cost, the calls behind it."""

    model: str
    cost: float
    attempts: list


def run_cascade(plan: Plan, cascade: Cascade | None, call: Callable[[str], Called],
                check: Callable[[Called], bool] | None = None, estimated_costs: dict | None = None):
    """Call the plan's steps in order; returns (result, step records, total cost).

    `call(model)` returns a `Called` (the model that answered, its cost) or raises
    UpstreamError; `check(result)` says whether a response is good enough
    (None: every response is). Raises UpstreamError when every step failed.
    """
    estimated_costs = estimated_costs if estimated_costs is not None else \
        (plan.decision.costs if plan.decision is not None else {})
    records: list[StepRecord] = []
    spent, escalations, last = 0.0, 0, None
    for i, model in enumerate(plan.steps):
        if last is not None:  # escalating from a response that failed the check
            if cascade is not None and escalations >= cascade.max_escalations:
                records.append(StepRecord(model, "escalation_cap", detail=f"max_escalations {cascade.max_escalations}"))
                break
            estimate = estimated_costs.get(model, 0.0)
            if cascade is not None and cascade.max_cost is not None and spent + estimate > cascade.max_cost:
                records.append(StepRecord(model, "cost_cap", detail=f"spent ${spent:.4g} + ~${estimate:.4g} "
                                                                     f"> max_cost ${cascade.max_cost:g}"))
                break
            escalations += 1
        try:
            result = call(model)
        except UpstreamError as exc:
            records.append(StepRecord(model, "failed", detail=str(exc), attempts=exc.attempts or None))
            continue
        cost = float(result.cost or 0.0)
        spent += cost
        served_by = result.model
        attempts = result.attempts or None
        detail = ""
        try:
            passed = check is None or bool(check(result))
        except Exception as exc:  # noqa: BLE001 - a broken check fails the response, not the request
            passed, detail = False, f"the check raised {type(exc).__name__}: {exc}"
        if passed or i == len(plan.steps) - 1:
            if not passed:
                detail = "; ".join(x for x in (detail, "last step: returned anyway") if x)
            records.append(StepRecord(model, "accepted" if passed else "check_failed", cost, detail, served_by, attempts))
            return result, records, spent
        records.append(StepRecord(model, "check_failed", cost, detail, served_by=served_by, attempts=attempts))
        last = result
    if last is not None:
        return last, records, spent
    raise UpstreamError("; ".join(f"{r.model}: {r.detail}" for r in records if r.detail) or "no step to call",
                        steps=records)
