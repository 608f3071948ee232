"""The learned verifier and learned cascades: training, the artifact, planning, replay on real
answers, and the gateway live (router_ml.policy.verifier, training/fit/verifier.py)."""

import json
from dataclasses import replace

import numpy as np
import pytest

from router_ml import load_router
from router_ml.core.decision import Decision
from router_ml.errors import ArtifactIntegrityError, ConfigError, PolicyError
from router_ml.policy.cascade import LEARNED, Plan, make_judge, run_cascade
from router_ml.policy.file import load_policy, policy_from_dict
from router_ml.policy.plans import make_plans
from router_ml.policy.rules import RuleResult
from router_ml.policy.verifier import CascadePlan, Verifier, load_verifier, verifier_of
from router_ml.training.data.outcomes import read_outcomes, to_routing_data
from router_ml.training.evaluate.replay import replay


@pytest.fixture(scope="module")
def router(answered_router_dir):
    return load_router(answered_router_dir)


@pytest.fixture(scope="module")
def holdout(router, answered_router_dir):
    path = answered_router_dir.parent / "demo" / "holdout.csv"
    return to_routing_data(read_outcomes(path), None, "holdout", cost_model=router.cost_model)


def test_too_few_answered_prompts_give_verifiers_but_no_plans(trained_router_dir):
    small = load_router(trained_router_dir)  # 240 training prompts
    assert small.manifest["verifier"]["entries"] and not small.manifest["verifier"]["plans"]
    plans = make_plans(small, load_policy("learned-cascade", small.models), ["What is 2 + 2?"],
                       verifier=verifier_of(small))
    assert plans[0].steps == [small.route("What is 2 + 2?").model]


def test_training_on_answers_stores_a_verifier_that_reads_them_better_than_the_prompt(router):
    spec = router.manifest["verifier"]
    verifier = load_verifier(router)
    assert verifier is verifier_of(router) or verifier_of(router) is not None
    own = [e for e in spec["entries"] if e["after"] is None]
    assert {e["model"] for e in own} <= set(router.models) and len(own) >= 3
    for e in own:
        v = e["validation"]
        assert {"auc", "ece", "prompt_only_auc", "prompt_only_ece", "candidates"} <= set(v)
        assert v["auc"] > v["prompt_only_auc"]  # the demo's answers carry signal the prompt does not
    assert [p["quality_target"] for p in spec["plans"]] == sorted(p["quality_target"] for p in spec["plans"])
    assert router.default_quality_target in [p["quality_target"] for p in spec["plans"]]
    nano = verifier.score("nano", "What is 2 + 2?", "2 + 2 = 4\n#### 4", 0.9)
    refused = verifier.score("nano", "What is 2 + 2?", "I'm sorry, but I can't help with that request.", 0.9)
    assert 0 <= refused < 0.5 < nano


def test_a_tampered_verifier_is_refused(answered_router_dir, tmp_path):
    import shutil

    copy = tmp_path / "router"
    shutil.copytree(answered_router_dir, copy)
    with np.load(copy / "verifier.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["0.coef"] = arrays["0.coef"] * 2
    with open(copy / "verifier.npz", "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(ArtifactIntegrityError, match="verifier.npz"):
        load_router(copy)


def test_learned_plans_follow_the_router_and_the_rules():
    scores = {"nano": 0.6, "mini": 0.7, "pro": 0.95}
    decision = Decision(model="mini", confidence=0.7, scores=scores, reason="r", router_version="v",
                        quality_target=0.8, estimated_cost=0.01, costs={"nano": 0.001, "mini": 0.01, "pro": 0.1})

    class Plans:
        def __init__(self, plan):
            self.plan = plan

        def plan_for(self, target):
            return self.plan

    from router_ml.policy.plans import _learned_plan

    plan = _learned_plan(decision, RuleResult(), Plans(CascadePlan(0.8, "nano", None, "best", (-0.1,))))
    assert plan.steps == ["nano", "pro"] and plan.thresholds == (-0.1,)
    plan = _learned_plan(decision, RuleResult(), Plans(CascadePlan(0.8, "nano", None, "router", (-0.1,))))
    assert plan.steps == ["nano", "mini"]
    restricted = _learned_plan(decision, RuleResult(allowed=("nano", "mini")),
                               Plans(CascadePlan(0.8, "nano", None, "best", (-0.1,))))
    assert restricted.steps == ["nano"] and "outside the rules" in " ".join(restricted.notes)
    single = _learned_plan(decision, RuleResult(), Plans(CascadePlan(0.8, None)))
    assert single.steps == ["mini"] and "single-shot" in single.notes[0]


def test_the_judge_escalates_when_the_answer_falls_short_of_the_next_model():
    decision = Decision(model="pro", confidence=0.9, scores={"nano": 0.6, "pro": 0.9}, reason="r", router_version="v",
                        quality_target=0.8, estimated_cost=0.1, costs={"nano": 0.001, "pro": 0.1})
    plan = Plan(["nano", "pro"], RuleResult(), decision, 0.8, thresholds=(-0.2,))

    class Scores:
        def score(self, model, prompt, text, estimate, earlier):
            return {"good": 0.8, "bad": 0.3}[text]

    class Answer:
        def __init__(self, model, text):
            self.model, self.text, self.cost, self.attempts = model, text, 0.001, []

    judge = make_judge(plan, LEARNED, "q", Scores())
    for text, calls in (("good", ["nano"]), ("bad", ["nano", "pro"])):  # 0.8 - 0.9 >= -0.2; 0.3 - 0.9 < -0.2
        called = []

        def call(model, text=text, called=called):
            called.append(model)
            return Answer(model, text if model == "nano" else "good")

        _, steps, _ = run_cascade(plan, LEARNED, call, judge)
        assert called == calls
        assert steps[0].verifier == pytest.approx(0.8 if text == "good" else 0.3)
        if text == "bad":
            assert steps[0].check == "verifier" and "-0.600 < -0.200" in steps[0].detail


def test_replay_judges_the_logged_answers_and_its_decisions_recompute_its_figures(router, holdout, tmp_path):
    records = []
    learned = load_policy("learned-cascade", router.models)
    report = replay(router, holdout, {"single-shot": None, "learned-cascade": learned}, targets=[0.0, 0.5, 1.0],
                    decisions=records.append)
    assert report["checks"] == "on the logged answers"
    policy = report["policies"]["learned-cascade"]
    assert max(p["escalation_rate"] for p in policy["curve"]) > 0
    assert set(policy["summary"]) == {"aiq", "gap_closed", "cost_to_match_best", "quality_at_best_cost",
                                      "calls_per_request", "share_escalated"}
    # Anyone can recompute quality and cost from the log and the decisions.
    col = {m: j for j, m in enumerate(holdout.models)}
    row = {pid: i for i, pid in enumerate(holdout.prompt_ids)}
    for point in policy["curve"]:
        mine = [r for r in records if r["policy"] == "learned-cascade" and r["quality_target"] == point["quality_target"]]
        assert len(mine) == report["prompts"]
        rows = [row[r["prompt_id"]] for r in mine]
        quality = np.mean([holdout.scores[i, col[r["answered_by"]]] for i, r in zip(rows, mine)])
        cost = np.mean([sum(holdout.costs[i, col[m]] for m in r["called"]) for i, r in zip(rows, mine)])
        assert quality == pytest.approx(point["quality"]) and cost == pytest.approx(point["mean_cost"])
    assert all(len(r["prompt_sha256"]) == 64 for r in records)


def test_replay_refuses_what_it_cannot_do_honestly(router, holdout):
    learned = load_policy("learned-cascade", router.models)
    with pytest.raises(ConfigError, match="no response column"):
        replay(router, replace(holdout, responses=None), {"learned": learned})
    with pytest.raises(ConfigError, match="checks run on them for real"):
        replay(router, holdout, {"single": None}, false_pass=0.1)
    checked = policy_from_dict({"cascade": {"steps": ["nano", "router"], "escalate_if": {"check": {"verifier": 0.5}}}},
                               router.models)
    assert checked.needs_verifier and replay(router, holdout, {"v": checked}, targets=[0.5])["prompts"] > 0


def test_a_log_without_answers_trains_no_verifier_and_the_learned_cascade_is_single_shot(demo_files, tmp_path, holdout):
    import pandas as pd

    from router_ml.training.fit.pipeline import TrainConfig, train

    frame = pd.read_csv(demo_files["outcomes"]).drop(columns=["response"])
    frame.to_csv(tmp_path / "no-answers.csv", index=False)
    out = tmp_path / "router"
    train(TrainConfig(outcomes=str(tmp_path / "no-answers.csv"), catalog=str(demo_files["catalog"]), out=str(out),
                      embedder_kind="hashing", folds=3, mlflow=False, test_size=0.0), log=lambda _: None, progress=False)
    plain = load_router(out)
    assert "verifier" not in plain.manifest and "verifier.npz" not in plain.manifest["files"]
    assert load_verifier(plain) is None
    with pytest.raises(ConfigError, match="has none"):
        replay(plain, holdout, {"learned": load_policy("learned-cascade", plain.models)})
    plans = make_plans(plain, load_policy("learned-cascade", plain.models), ["What is 2 + 2?"], verifier=None)
    assert len(plans[0].steps) == 1 and "no verifier" in plans[0].notes[0]


def test_a_verifier_with_a_plan_for_an_unknown_model_is_refused(router):
    spec = json.loads(json.dumps(router.manifest["verifier"]))
    spec["plans"][-1]["first"] = "not-a-model"
    with np.load(f"{router.path}/verifier.npz") as data:
        arrays = {k: data[k] for k in data.files}
    with pytest.raises(ValueError, match="no verifier for 'not-a-model'"):
        Verifier(spec, arrays, router.models)


def test_the_service_refuses_a_learned_cascade_on_a_router_without_a_verifier(tmp_path, demo_files):
    import pandas as pd

    from router_ml.serve.assembly import ServiceSettings, build_service
    from router_ml.training.fit.pipeline import TrainConfig, train

    frame = pd.read_csv(demo_files["outcomes"]).drop(columns=["response"])
    frame.to_csv(tmp_path / "no-answers.csv", index=False)
    out = tmp_path / "router"
    train(TrainConfig(outcomes=str(tmp_path / "no-answers.csv"), catalog=str(demo_files["catalog"]), out=str(out),
                      embedder_kind="hashing", folds=3, mlflow=False, test_size=0.0), log=lambda _: None, progress=False)
    with pytest.raises(PolicyError, match="has none"):
        build_service(ServiceSettings(router=str(out), policy="learned-cascade", audit=None))


def test_a_second_cheap_step_is_judged_against_the_model_escalated_to_as_planned():
    """The planner (training/fit/verifier.py) sets both thresholds on verifier - estimate of the cascade's
    last step; the judge must use the same estimate for the first step's answer, not the second step's
    (a weak second model's low estimate would keep wrong first answers that planning escalated)."""
    decision = Decision(model="pro", confidence=0.9, scores={"nano": 0.5, "coder": 0.2, "pro": 0.9}, reason="r",
                        router_version="v", quality_target=0.8, estimated_cost=0.1,
                        costs={"nano": 0.001, "coder": 0.002, "pro": 0.1})
    plan = Plan(["nano", "coder", "pro"], RuleResult(), decision, 0.8, thresholds=(-0.2, -0.2))

    class Scores:
        def score(self, model, prompt, text, estimate, earlier):
            return {"doubtful": 0.4, "good": 0.95}[text]

    class Answer:
        def __init__(self, model, text):
            self.model, self.text, self.cost, self.attempts = model, text, 0.001, []

    called = []

    def call(model):
        called.append(model)
        return Answer(model, "doubtful" if model == "nano" else "good")

    _, steps, _ = run_cascade(plan, LEARNED, call, make_judge(plan, LEARNED, "q", Scores()))
    # 0.4 - 0.9 (pro) = -0.5 < -0.2: escalated (against coder's 0.2 it would have been kept: +0.2)
    assert called == ["nano", "coder"]
    assert "estimate of pro 0.900" in steps[0].detail and "-0.500 < -0.200" in steps[0].detail
    assert "estimate of pro" in steps[1].detail  # 0.95 - 0.9 >= -0.2: coder's answer kept
