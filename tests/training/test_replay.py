"""Offline replay of policies on an outcomes log, checked against evaluate and hand cases."""

import pytest

from router_ml import load_router
from router_ml.errors import ConfigError
from router_ml.policy.file import policy_from_dict
from router_ml.training.data.outcomes import read_outcomes, to_routing_data
from router_ml.training.evaluate.evaluation import evaluate_router
from router_ml.training.evaluate.replay import format_replay, replay

TARGETS = [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.fixture(scope="module")
def setup(trained_router_dir, demo_files):
    router = load_router(trained_router_dir)
    data = to_routing_data(read_outcomes(demo_files["holdout"]), None, "holdout", cost_model=router.cost_model)
    return router, data


def cascade(router, **escalate):
    return policy_from_dict({"cascade": {"steps": [router.models[0], "router"], "escalate_if": escalate or
                                         {"check": {"json": True}}}}, router.models)


def test_single_shot_replay_equals_evaluate(setup):
    router, data = setup
    report = replay(router, data, {"single": None}, targets=TARGETS)
    evaluated = evaluate_router(router, data, baselines=(), targets=sorted({*TARGETS, router.default_quality_target}))
    assert report["policies"]["single"]["metrics"]["aiq"] == pytest.approx(evaluated["metrics"]["aiq"])
    assert report["prompts"] == evaluated["prompts"]
    default = report["policies"]["single"]["default"]
    assert default["mean_cost"] == pytest.approx(evaluated["default"]["mean_cost"])
    assert default["quality"] == pytest.approx(evaluated["default"]["quality"])


def binarised(data):
    """Scores 0/1, and no answers: the policy's check is simulated (a perfect one unless told otherwise)."""
    from dataclasses import replace

    return replace(data, scores=data.success.copy(), responses=None)


def test_cascade_with_a_perfect_check_and_with_a_check_that_passes_everything(setup):
    router, data = setup
    data = binarised(data)  # scores 0/1: a cheap success is as good as any answer
    report = replay(router, data, {"single": None, "cascade": cascade(router)}, targets=TARGETS)
    single, casc = report["policies"]["single"]["curve"], report["policies"]["cascade"]["curve"]
    for s, c in zip(single, casc):  # a failure escalates to the router's choice: never worse
        assert c["quality"] >= s["quality"] - 1e-12
    assert any(c["quality"] > s["quality"] for s, c in zip(single, casc))
    assert report["policies"]["cascade"]["default"]["escalation_rate"] > 0
    # A check that lets every response through never escalates: always the cheapest model.
    lax = replay(router, data, {"cascade": cascade(router)}, false_pass=1.0, targets=TARGETS)
    cheapest = report["single_models"][router.models[0]]
    for point in lax["policies"]["cascade"]["curve"]:
        assert point["mean_cost"] == pytest.approx(cheapest["mean_cost"])
        assert point["quality"] == pytest.approx(cheapest["quality"])
    text = format_replay(report)
    assert "| cascade |" in text and "| single |" in text


def test_confidence_only_cascade_and_rules(setup):
    router, data = setup
    never = cascade(router, confidence_below=1.0)  # the cheap step is always skipped: the router alone
    always = cascade(router, confidence_below=0.0)  # never skipped, no check: the cheap step always answers
    rules = policy_from_dict({"rules": [{"name": "code", "when": {"metadata": {"task": "code"}},
                                         "restrict": ["coder", "pro"]}]}, router.models)
    report = replay(router, data, {"single": None, "never": never, "always": always, "rules": rules}, targets=TARGETS)
    assert report["policies"]["never"]["curve"] == report["policies"]["single"]["curve"]
    cheapest = report["single_models"][router.models[0]]
    for point in report["policies"]["always"]["curve"]:
        assert point["mean_cost"] == pytest.approx(cheapest["mean_cost"])
    fired = report["policies"]["rules"]["default"]["rules_fired"]
    assert fired["code"] == sum(1 for t in data.tasks if t == "code")


def test_bad_rates_and_empty_data(setup):
    router, data = setup
    with pytest.raises(ConfigError, match="false_pass"):
        replay(router, data, {"s": None}, false_pass=1.5)
    with pytest.raises(ConfigError, match="no prompt left"):
        replay(router, data, {"s": None}, training=data)
