"""Policy files: parsing, validation with line numbers, rule semantics, checks, `rules check`."""

import pytest

from router_ml.cli import main
from router_ml.errors import PolicyError
from router_ml.policy.checks import make_check
from router_ml.policy.file import load_policy

MODELS = ["nano", "coder", "mini", "pro", "legacy-xl"]


def policy(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_policy(path, MODELS)


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error(tmp_path, text, fragment):
    with pytest.raises(PolicyError) as err:
        policy(tmp_path, text)
    assert fragment in str(err.value), str(err.value)
    return str(err.value)


def test_rules_apply_in_order(tmp_path):
    p = policy(tmp_path, """
rules:
  - name: free
    when: {metadata: {tier: [free, trial]}}
    restrict: [nano, mini, pro]
  - name: no-pro-for-chat
    when: {metadata: {kind: chat}}
    restrict: [nano, coder]
    quality_target: 0.3
  - name: code
    when: {regex: '(?m)^def '}
    quality_target: 0.9
  - name: huge
    when: {min_tokens: 1000}
    force: pro
""")
    r = p.apply_rules("hello", {"tier": "free", "kind": "chat"})
    assert r.fired == ["free", "no-pro-for-chat"] and r.allowed == ("nano",) and r.quality_target == 0.3
    r = p.apply_rules("def f():\n  pass", {"tier": "trial"})
    assert r.fired == ["free", "code"] and r.quality_target == 0.9 and r.force is None
    r = p.apply_rules("x" * 4000, {})
    assert r.force == "pro" and r.rule == "huge"
    assert p.apply_rules("hello", {"tier": "paid"}).fired == []


def test_force_outside_an_earlier_restriction_is_skipped(tmp_path):
    p = policy(tmp_path, """
rules:
  - {name: free, when: {metadata: {tier: free}}, restrict: [nano, mini]}
  - {name: long, when: {min_tokens: 100}, force: pro}
""")
    r = p.apply_rules("x" * 1000, {"tier": "free"})
    assert r.force is None and r.allowed == ("nano", "mini") and "long: skipped" in r.notes[0]
    assert p.apply_rules("x" * 1000, {"tier": "paid"}).force == "pro"
    assert p.models() == {"nano", "mini", "pro"}


def test_restriction_that_would_leave_nothing_is_skipped_and_noted(tmp_path):
    p = policy(tmp_path, """
rules:
  - {name: a, when: {metadata: {x: 1}}, restrict: [nano]}
  - {name: b, when: {metadata: {y: 1}}, restrict: [pro]}
""")
    r = p.apply_rules("q", {"x": 1, "y": 1})
    assert r.allowed == ("nano",) and r.fired == ["a"] and "b: skipped" in r.notes[0]


@pytest.mark.parametrize("text, fragment", [
    ("rules:\n  - name: a\n    force: gpt-9\n", "p.yaml:2: model 'gpt-9' is not in the catalog"),
    ("rules:\n  - name: a\n    when: {regex: '(unclosed'}\n    force: pro\n", "p.yaml:2: when.regex: bad regular expression"),
    ("rules:\n  - name: a\n    when: {min_tokens: 50, max_tokens: 10}\n    force: pro\n", "can never match"),
    ("rules:\n  - name: a\n    when: {colour: red}\n    force: pro\n", "unknown conditions ['colour']"),
    ("rules:\n  - name: a\n    when: {}\n", "has no action"),
    ("rules:\n  - {name: a, force: pro, restrict: [nano]}\n", "force picks the model"),
    ("rules:\n  - {name: a, force: pro}\n  - {name: a, force: nano}\n", "p.yaml:3: rule name 'a' is already used on line 2"),
    ("rules:\n  - {name: a, restrict: [nano]}\n  - {name: b, when: {metadata: {t: x}}, restrict: [pro]}\n",
     "p.yaml:3: rule 'b' contradicts rule 'a' (line 2)"),
    ("rules:\n  - {name: a, quality_target: 1.5}\n", "expected a number in [0, 1]"),
    ("rules:\n  - {name: a, quality_target: .nan}\n", "expected a number in [0, 1]"),
    ("rules:\n  - {name: a, restrict: [nano, mini]}\n  - {name: b, when: {min_tokens: 10}, force: pro}\n",
     "p.yaml:3: rule 'b' contradicts rule 'a' (line 2): both apply to the same requests, and forcing pro"),
    ("rules:\n  - {name: a, when: {min_tokens: .inf}, force: pro}\n", "expected a whole number"),
    ("cascade:\n  steps: [nano, router]\n  escalate_if: {confidence_below: 0.5}\n  max_cost: .nan\n", "max_cost"),
    ("routes: []\n", "unknown keys ['routes']"),
    ("rules: [\n", "not valid YAML"),
    ("cascade:\n  steps: [nano]\n  escalate_if: {check: {json: true}}\n", "at least two steps"),
    ("cascade:\n  steps: [nano, router]\n", "give confidence_below and/or check"),
    ("cascade:\n  steps: [nano, router]\n  escalate_if: {check: {json: true, regex: x}}\n", "exactly one of"),
    ("cascade:\n  steps: [nano, router]\n  escalate_if: {check: {function: 'nope.mod:fn'}}\n", "cannot import"),
    ("fallbacks:\n  chains: {pro: [gpt-9]}\n", "model 'gpt-9' is not in the catalog"),
    ("fallbacks:\n  timeout_s: 0\n", "fallbacks.timeout_s: expected a number > 0"),
])
def test_invalid_policies_name_the_line(tmp_path, text, fragment):
    error(tmp_path, text, fragment)


def test_shadowed_rule_is_a_warning(tmp_path):
    p = policy(tmp_path, """
rules:
  - {name: all-free-to-nano, when: {metadata: {tier: free}}, force: nano}
  - {name: free-code, when: {metadata: {tier: free}, regex: 'def '}, quality_target: 0.9}
  - {name: paid, when: {metadata: {tier: paid}}, force: pro}
""")
    assert len(p.warnings) == 1 and "p.yaml:4: rule 'free-code' never fires" in p.warnings[0]


def test_checks():
    assert make_check({"json": True}, "x")('{"a": 1}') and not make_check({"json": True}, "x")("nope")
    assert make_check({"regex": r"^\d+$"}, "x")("42") and not make_check({"regex": r"^\d+$"}, "x")("4a")
    assert make_check({"max_chars": 3}, "x")("abc") and not make_check({"min_chars": 4}, "x")("abc")
    assert make_check({"function": "json:loads"}, "x")("1") == 1


def test_fallback_chains(tmp_path):
    p = policy(tmp_path, "fallbacks:\n  default: [mini, pro]\n  chains: {pro: [legacy-xl]}\n  retries: 2\n")
    assert p.fallbacks.chain_for("nano") == ["nano", "mini", "pro"]
    assert p.fallbacks.chain_for("mini") == ["mini", "pro"]
    assert p.fallbacks.chain_for("pro") == ["pro", "legacy-xl"] and p.fallbacks.retries == 2


def test_rules_check_reports_never_fired_and_shadowed(tmp_path, trained_router_dir, demo_files, capsys):
    path = tmp_path / "p.yaml"
    path.write_text("""
rules:
  - {name: code, when: {metadata: {task: code}}, quality_target: 0.9}
  - {name: klingon, when: {metadata: {task: klingon}}, force: pro}
  - {name: code-again, when: {metadata: {task: code}, min_tokens: 5}, force: nano}
""")
    code = main(["rules", "check", "--policy", str(path), "--router", str(trained_router_dir),
                 "--outcomes", str(demo_files["holdout"])])
    out = capsys.readouterr().out
    assert code == 1
    assert "rule 'klingon' never fired" in out and "code " in out
    fired = {line.split()[2]: int(line.split()[4]) for line in out.splitlines() if line.startswith("line")}
    assert fired["code"] > 0 and fired["klingon"] == 0
    good = tmp_path / "good.yaml"
    good.write_text("rules:\n  - {name: code, when: {metadata: {task: code}}, quality_target: 0.9}\n")
    assert main(["rules", "check", "--policy", str(good), "--router", str(trained_router_dir),
                 "--outcomes", str(demo_files["holdout"])]) == 0


def test_the_example_policy_loads_against_the_demo_models():
    from pathlib import Path

    p = load_policy(Path(__file__).resolve().parents[2] / "data" / "policy.example.yaml", MODELS)
    assert [r.name for r in p.rules][:2] == ["long-prompts", "code-to-code-models"] and not p.warnings
    assert p.cascade.steps == ("nano", "router") and p.fallbacks.chain_for("pro") == ["pro", "legacy-xl"]


def test_the_novelty_guard_sends_unusual_prompts_to_its_model(tmp_path, trained_router_dir):
    from router_ml import load_router
    from router_ml.policy.plans import make_plans

    router = load_router(trained_router_dir)
    safe = router.models[-1]
    policy = load_policy(write(tmp_path, f"novelty: {{above: 0.9, route_to: {safe}}}\n"), router.models)
    strange = "qwxz vbnm plokij uhygt rfed wsaq zxcv"
    [plan] = make_plans(router, policy, [strange])
    assert plan.guarded and plan.model == safe and "novelty-guard" in plan.rules.fired and "novelty" in plan.reason()
    [usual] = make_plans(router, policy, [router.neighbours.prompt(0)])  # a training prompt
    assert not usual.guarded
    restricted = load_policy(write(tmp_path, f"rules:\n  - {{name: cheap, when: {{min_tokens: 1}}, restrict: "
                                             f"[{router.models[0]}]}}\nnovelty: {{above: 0.9, route_to: {safe}}}\n",
                                   "r.yaml"), router.models)
    [bound] = make_plans(router, restricted, [strange])
    assert not bound.guarded and bound.model == router.models[0] and "outside the rules' restriction" in bound.reason()


@pytest.mark.parametrize("text, fragment", [
    ("novelty: {above: 1.5, route_to: pro}\n", r"novelty.above: expected a number in \[0, 1\]"),
    ("novelty: {above: 0.9, route_to: ghost}\n", "model 'ghost' is not in"),
    ("novelty: {above: 0.9}\n", r"give above \(0..1\) and route_to"),
    ("rules:\n  - {name: novelty-guard, when: {min_tokens: 1}, force: pro}\n", "reserved"),
])
def test_bad_novelty_guards_name_the_line(tmp_path, text, fragment):
    with pytest.raises(PolicyError, match=fragment):
        load_policy(write(tmp_path, text), MODELS)
