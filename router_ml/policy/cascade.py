"""Cascades: try a cheap model first and escalate when its answer is not good enough.

    cascade:
      steps: [nano, router]                 # "router": the learned router's choice
      escalate_if:
        confidence_below: 0.6               # skip a step the router doubts
        check: {json: true}                 # a response check (router_ml.policy.checks)
      max_escalations: 1
      max_cost: 0.05                        # USD per request, estimated before each call

A router trained on answers also offers *learned* cascades (`cascade: learned` in a
policy file, or the built-in policy `learned-cascade`): per quality target, the first
model, an optional second checked by agreement, where to escalate and the verifier
thresholds all come from the router (router_ml.policy.verifier), fitted on its training
folds; a step's answer is escalated when the verifier's P(success) falls short of the
next model's estimate by more than the planned threshold.

From a request to a plan (rules, router, cascade steps: router_ml.policy.plans), and running
a plan's steps here; one mechanism serves the live gateway and the offline replay:

    plans = make_plans(router, policy, prompts, metadata, quality_target)   # no model called yet
    judge = make_judge(plan, policy.cascade, prompt, verifier)              # reads each answer
    result, steps, spent = run_cascade(plan, policy.cascade, call, judge)   # call: a model -> result

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
from typing import Protocol

from router_ml.core.decision import Decision
from router_ml.errors import UpstreamError
from router_ml.policy.checks import AnswerContext, Check, Verdict, structure_verdict
from router_ml.policy.rules import RuleResult

ROUTER_STEP = "router"


@dataclass(frozen=True)
class Cascade:
    steps: tuple[str, ...]  # model names, or ROUTER_STEP for the router's choice
    confidence_below: float | None = None
    check: Check | None = None
    max_escalations: int = 1
    max_cost: float | None = None
    learned: bool = False  # steps and thresholds come from the router's verifier, per target


LEARNED = Cascade((), max_escalations=2, learned=True)  # the built-in `learned-cascade`


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
    thresholds: tuple[float, ...] = ()  # a learned cascade: the verifier margin each checked step must reach
    shadow: dict | None = None  # a shadow router's choice for this request, {"version", "model"} (router_ml.serve)

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
    verifier: float | None = None  # the learned verifier's P(success) of this step's answer, when it ran
    check: str | None = None  # the check that failed (escalation reason)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}


class Called(Protocol):
    """What a step's `call(model)` returns: who answered, what it cost, the calls behind it."""

    model: str
    cost: float
    attempts: list


def make_judge(plan: Plan, cascade: Cascade | None, prompt: str, verifier=None, request: dict | None = None):
    """How the steps of `plan` are judged: `judge(result, step, earlier) -> Verdict`, or None
    when nothing is checked. `result.text` is the answer (and `result.tool_calls`,
    `result.refusal` when the API sent them); `earlier` the (model, text) of the steps
    called before it; `request` what the client asked for that shapes a valid answer
    (`tool_schemas`, `response_schema`: router_ml.policy.checks.AnswerContext)."""
    if cascade is None:
        return None
    estimates = plan.decision.scores if plan.decision is not None else {}
    request = request or {}

    def context(result, earlier) -> AnswerContext:
        return AnswerContext(result.text, prompt, result.model, estimates.get(result.model), tuple(earlier), verifier,
                             tuple(getattr(result, "tool_calls", ()) or ()), getattr(result, "refusal", None),
                             request.get("tool_schemas"), request.get("response_schema"))
    if cascade.learned:
        if not plan.thresholds:
            return None

        def learned(result, step: int, earlier=()) -> Verdict:
            if step >= len(plan.thresholds):
                return Verdict(True)
            structural = structure_verdict(context(result, earlier))
            if structural is not None and (not structural.passed or getattr(result, "tool_calls", None)):
                return structural  # a tool call, a refusal or broken structured output: judged as such
            estimate = estimates.get(result.model)
            if estimate is None or verifier is None:
                return Verdict(True, detail=f"no estimate or verifier for {result.model}")
            score = verifier.score(result.model, prompt, result.text, estimate, tuple(earlier))
            if score is None:
                return Verdict(True, detail=f"no verifier for {result.model}")
            # Against the model the cascade escalates to (its last step), for every step: what the
            # thresholds were planned on (training/fit/verifier.py), a second cheap step included.
            target = plan.steps[-1]
            margin = score - estimates.get(target, 0.0)
            passed = margin >= plan.thresholds[step]
            return Verdict(passed, score, None if passed else "verifier",
                           f"verifier {score:.3f} - estimate of {target} {estimates.get(target, 0.0):.3f} = "
                           f"{margin:+.3f} {'>=' if passed else '<'} {plan.thresholds[step]:+.3f}")

        return learned
    if cascade.check is None:
        return None

    def check(result, step: int, earlier=()) -> Verdict:
        return cascade.check.verdict(context(result, earlier))

    return check


def run_cascade(plan: Plan, cascade: Cascade | None, call: Callable[[str], Called],
                check: Callable | None = None, estimated_costs: dict | None = None):
    """Call the plan's steps in order; returns (result, step records, total cost).

    `call(model)` returns a `Called` (the model that answered, its cost) or raises
    UpstreamError; `check(result, step, earlier)` (see make_judge) says whether a response
    is good enough, as a Verdict or a bool (None: every response is).
    Raises UpstreamError when every step failed.
    """
    estimated_costs = estimated_costs if estimated_costs is not None else \
        (plan.decision.costs if plan.decision is not None else {})
    records: list[StepRecord] = []
    spent, escalations, last = 0.0, 0, None
    earlier: list[tuple[str, str]] = []
    max_escalations = len(plan.steps) - 1 if cascade is not None and cascade.learned else \
        (cascade.max_escalations if cascade is not None else 0)
    for i, model in enumerate(plan.steps):
        if last is not None:  # escalating from a response that failed the check
            if cascade is not None and escalations >= max_escalations:
                records.append(StepRecord(model, "escalation_cap", detail=f"max_escalations {max_escalations}"))
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
        verdict = _judged(check, result, i, earlier)
        record = StepRecord(model, "accepted" if verdict.passed else "check_failed", cost, verdict.detail, served_by,
                            attempts, verdict.score, verdict.failed)
        earlier.append((result.model, getattr(result, "text", "") or ""))
        if verdict.passed or i == len(plan.steps) - 1:
            if not verdict.passed:
                record.detail = "; ".join(x for x in (record.detail, "last step: returned anyway") if x)
            records.append(record)
            return result, records, spent
        records.append(record)
        last = result
    if last is not None:
        return last, records, spent
    # A failed step's detail already names each model it tried ("mini: HTTP 500; pro: timeout").
    raise UpstreamError("; ".join(r.detail for r in records if r.detail) or "no step to call", steps=records)


def _judged(check, result, step: int, earlier: list) -> Verdict:
    """The verdict on one answer; a check that raises fails the response, not the request."""
    if check is None:
        return Verdict(True)
    try:
        verdict = check(result, step, tuple(earlier))
    except Exception as exc:  # noqa: BLE001
        return Verdict(False, failed="error", detail=f"the check raised {type(exc).__name__}: {exc}")
    return verdict if isinstance(verdict, Verdict) else Verdict(bool(verdict), failed=None if verdict else "check")
