"""Plans and their execution (router_ml.policy.cascade), with scripted calls: the caps on
escalations and cost, failed steps, and steps skipped for low confidence."""

from dataclasses import dataclass, field

import pytest

from router_ml.core.decision import Decision
from router_ml.errors import UpstreamError
from router_ml.policy.cascade import Cascade, Plan, run_cascade
from router_ml.policy.checks import make_check
from router_ml.policy.rules import RuleResult

COSTS = {"nano": 0.001, "mini": 0.01, "pro": 0.1}


@dataclass
class Answer:
    model: str
    cost: float
    text: str
    attempts: list = field(default_factory=list)


def plan(steps):
    decision = Decision(model=steps[-1], confidence=0.9, scores={m: 0.5 for m in COSTS}, reason="r",
                        router_version="v", quality_target=0.5, estimated_cost=COSTS[steps[-1]], costs=COSTS)
    return Plan(list(steps), RuleResult(), decision, 0.5)


def scripted(texts: dict, fail=()):
    calls = []

    def call(model):
        calls.append(model)
        if model in fail:
            raise UpstreamError(f"{model}: HTTP 500", attempts=[{"model": model, "error": "HTTP 500"}])
        return Answer(model, COSTS[model], texts[model])

    return call, calls


CHECK = make_check({"min_chars": 3}, "test")


def test_escalates_until_a_response_passes():
    call, calls = scripted({"nano": "", "mini": "good", "pro": "best"})
    result, steps, spent = run_cascade(plan(["nano", "mini", "pro"]), Cascade(("nano", "mini", "pro"), check=CHECK,
                                                                               max_escalations=2), call, lambda a, *_: CHECK(a.text))
    assert result.model == "mini" and calls == ["nano", "mini"]
    assert [s.outcome for s in steps] == ["check_failed", "accepted"]
    assert spent == pytest.approx(0.011)


def test_max_escalations_stops_and_returns_the_last_answer():
    call, calls = scripted({"nano": "", "mini": "", "pro": "best"})
    cascade = Cascade(("nano", "mini", "pro"), check=CHECK, max_escalations=1)
    result, steps, spent = run_cascade(plan(["nano", "mini", "pro"]), cascade, call, lambda a, *_: CHECK(a.text))
    assert calls == ["nano", "mini"] and result.model == "mini"
    assert [s.outcome for s in steps] == ["check_failed", "check_failed", "escalation_cap"]
    assert steps[-1].model == "pro" and "max_escalations 1" in steps[-1].detail


def test_max_cost_counts_what_was_spent_plus_the_next_estimate():
    call, calls = scripted({"nano": "", "mini": "", "pro": "best"})
    cascade = Cascade(("nano", "mini", "pro"), check=CHECK, max_escalations=5, max_cost=0.05)
    result, steps, spent = run_cascade(plan(["nano", "mini", "pro"]), cascade, call, lambda a, *_: CHECK(a.text))
    # nano (0.001) + mini (0.01) spent; pro's estimate 0.1 would pass 0.05: stop before calling it.
    assert calls == ["nano", "mini"] and result.model == "mini" and spent == pytest.approx(0.011)
    assert steps[-1].outcome == "cost_cap" and steps[-1].model == "pro"
    generous = Cascade(("nano", "mini", "pro"), check=CHECK, max_escalations=5, max_cost=0.2)
    call, calls = scripted({"nano": "", "mini": "", "pro": "best"})
    result, _, _ = run_cascade(plan(["nano", "mini", "pro"]), generous, call, lambda a, *_: CHECK(a.text))
    assert calls == ["nano", "mini", "pro"] and result.model == "pro"


def test_a_failed_step_moves_on_and_all_failing_raises_with_the_steps():
    call, calls = scripted({"nano": "x", "mini": "good", "pro": "best"}, fail=("nano",))
    result, steps, _ = run_cascade(plan(["nano", "mini"]), Cascade(("nano", "mini"), check=CHECK), call,
                                   lambda a, *_: CHECK(a.text))
    assert result.model == "mini" and [s.outcome for s in steps] == ["failed", "accepted"]
    assert steps[0].attempts == [{"model": "nano", "error": "HTTP 500"}]
    call, _ = scripted({}, fail=("nano", "mini"))
    with pytest.raises(UpstreamError) as raised:
        run_cascade(plan(["nano", "mini"]), Cascade(("nano", "mini"), check=CHECK), call)
    assert [s.outcome for s in raised.value.steps] == ["failed", "failed"]


def test_a_last_step_that_fails_the_check_is_returned_and_says_so():
    call, _ = scripted({"nano": "", "mini": ""})
    result, steps, _ = run_cascade(plan(["nano", "mini"]), Cascade(("nano", "mini"), check=CHECK), call,
                                   lambda a, *_: CHECK(a.text))
    assert result.model == "mini" and steps[-1].outcome == "check_failed" and "returned anyway" in steps[-1].detail
