"""Cascade plans (router_ml.training.fit.verifier): a plan must pay for its extra call."""

import math

import numpy as np

from router_ml.core.catalog import CostModel
from router_ml.core.decision import QualitySchedule
from router_ml.training.data.outcomes import RoutingData
from router_ml.training.fit.verifier import _Planner


def planner(n=400, seed=0):
    """A cheap model right on half the prompts, a dear one on 90 %; the router and the verifier know nothing."""
    rng = np.random.default_rng(seed)
    scores = np.column_stack([rng.random(n) < 0.5, rng.random(n) < 0.9]).astype(float)
    costs = np.tile([1.0, 10.0], (n, 1))
    prompts = [f"p{i}" for i in range(n)]
    cost_model = CostModel(["cheap", "dear"], [1.0, 10.0], [1.0, 10.0], [100, 100], [None, None])
    data = RoutingData([str(i) for i in range(n)], prompts, [None] * n, ["cheap", "dear"], scores.copy(), scores,
                       costs, cost_model)
    proba = np.tile([0.5, 0.9], (n, 1))
    verifier = {(0, None): rng.random(n)}  # uninformative about the cheap model's answer
    # Below 0.95 the router sends everything to the cheap model; at 1 to the dear one.
    schedule = QualitySchedule(targets=(0.0, 0.95, 1.0), lams=(math.inf, 100.0, 0.0))
    return _Planner(data, proba, verifier, [0], np.arange(n), schedule, 10.0, costs), scores


def test_a_plan_that_always_escalates_or_that_single_shot_matches_for_less_is_never_chosen():
    p, scores = planner()
    idx = np.arange(len(scores))
    bottom, top = p.top(idx)
    assert top == scores[:, 1].mean()  # escalating everything only reaches the dear model's quality
    # No plan reaches the bar (+ a large margin): the old rule kept the best plan, cheap then dear for every
    # prompt, two calls for the dear model's quality.
    (quality, cost, escalated), plan, _, single = p.choose(idx, 0.9, bottom, top, margin=0.05)
    assert plan is not None and escalated < 1.0
    assert cost < 10.0  # sending every prompt to the dear model would be at least as good for no more
    assert not p.dominated((quality, cost, escalated), idx, 0.05)
    assert quality > single[0] + 0.05
    # A margin no plan can beat single-shot by: single-shot.
    result, plan, _, single = p.choose(idx, 0.9, bottom, top, margin=0.5)
    assert plan is None and result == single


def test_single_shot_at_the_top_target_is_kept_over_any_cascade():
    p, scores = planner(seed=1)
    idx = np.arange(len(scores))
    bottom, top = p.top(idx)
    (quality, cost, escalated), plan, _, _ = p.choose(idx, 1.0, bottom, top)
    assert plan is None and quality == scores[:, 1].mean() and cost == 10.0 and escalated == 0.0


def test_plans_evaluated_at_once_equal_each_plan_run_alone():
    """`evaluated` (every threshold of a first step, and each pair's grid, as arrays) gives exactly
    what `run` gives plan by plan, in the order `plans` lists them: three models, an agreement
    verifier for the second, both escalation targets, on a subset of the prompts."""
    n, rng = 300, np.random.default_rng(4)
    scores = (rng.random((n, 3)) < [0.4, 0.6, 0.9]).astype(float)
    costs = np.tile([1.0, 3.0, 10.0], (n, 1)) * rng.uniform(0.5, 1.5, (n, 1))
    cost_model = CostModel(["a", "b", "c"], [1.0, 3.0, 10.0], [1.0, 3.0, 10.0], [100] * 3, [None] * 3)
    data = RoutingData([str(i) for i in range(n)], [f"p{i}" for i in range(n)], [None] * n, ["a", "b", "c"],
                       scores.copy(), scores, costs, cost_model)
    proba = np.clip(scores * 0.3 + rng.random((n, 3)) * 0.7, 0, 1)
    verifier = {(0, None): rng.random(n), (1, None): rng.random(n), (1, 0): rng.random(n)}
    schedule = QualitySchedule(targets=(0.0, 0.5, 1.0), lams=(math.inf, 5.0, 0.0))
    p = _Planner(data, proba, verifier, [0, 1], np.arange(n), schedule, 10.0, costs[:, :3].mean(axis=0) * np.ones((n, 1)))
    idx = np.sort(rng.choice(n, 200, replace=False))
    routed = p.routed(0.5)
    batched = list(p.evaluated(idx, routed))
    one_by_one = [(plan, p.run(plan, idx, routed)) for plan in p.plans(idx, routed)]
    assert len(batched) == len(one_by_one) > 100
    assert {plan["second"] for plan, _ in batched} == {None, 1} and {plan["then"] for plan, _ in batched} == {"router", "best"}
    for (plan_a, result_a), (plan_b, result_b) in zip(batched, one_by_one):
        assert plan_a == plan_b
        assert np.allclose(result_a, result_b, rtol=0, atol=1e-12), (plan_a, result_a, result_b)


def test_a_cascade_is_not_kept_where_single_shot_at_a_higher_target_reaches_the_bar_for_less():
    """At a low target single-shot may miss the bar by a hair; the cheapest cascade that clears it
    can still cost three times as much (the demo's plan at target 0.025 did): single-shot then."""
    p, scores = planner()
    idx = np.arange(len(scores))
    cascade = {"first": 0, "second": None, "then": "best", "thresholds": (0.1,)}
    p.evaluated = lambda idx, routed: iter([(cascade, (0.845, 0.14, 0.4))])
    p.run = lambda plan, idx, routed: (0.6801, 0.05, 0.0)
    p._single[idx.tobytes()] = np.array([[0.6801, 0.05], [0.70, 0.06], [0.84, 0.14]])  # single-shot's curve
    result, plan, bar, single = p.choose(idx, 0.025, 0.674, 0.94)
    assert bar > single[0]  # single-shot at this target misses the bar ...
    assert plan is None and result == single  # ... but at a higher one reaches it for 0.06, not 0.14
    p._single[idx.tobytes()] = np.array([[0.6801, 0.05], [0.84, 0.14]])  # no single-shot point between
    result, plan, _, _ = p.choose(idx, 0.025, 0.674, 0.94)
    assert plan == cascade and result == (0.845, 0.14, 0.4)
