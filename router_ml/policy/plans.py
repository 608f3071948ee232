"""From requests to plans: the rules, the router and the cascade resolved for each prompt, before
any model is called (router_ml.policy.cascade runs a plan's steps).

    plans = make_plans(router, policy, prompts, metadata, quality_target)

`make_plans` applies the rules (force, restrict, quality_target), asks the router for
the rest (one batched embedding per group of requests that share a target and a
restriction), then the novelty guard, and resolves the cascade: the `router` step becomes
the router's choice, steps outside a rule's restriction are dropped, repeats are merged,
and a step (other than the last) whose model the router gives less than
`confidence_below` is skipped. A learned cascade takes its steps and thresholds from the
router's verifier at the decision's target.
"""

from __future__ import annotations

from router_ml.core.decision import Decision
from router_ml.policy.cascade import NOVELTY_GUARD, ROUTER_STEP, Cascade, NoveltyGuard, Plan
from router_ml.policy.file import Policy
from router_ml.policy.rules import RuleResult


def make_plans(router, policy: Policy | None, prompts: list[str], metadata: list[dict] | None = None,
               quality_target=None, scores=None, verifier=None, restrict=None, sizes=None) -> list[Plan]:
    """One plan per prompt. `quality_target` is one target for all, or one per prompt (the
    service batches requests that asked for different ones); `scores` (router.predict_scores
    of these prompts) skips embedding. The prompts the router decides are embedded once,
    whatever their targets and restrictions. `verifier` (the router's, for learned cascades).
    `restrict` (per prompt: None or (label, models)) narrows the candidates after the rules,
    as a catalog alias does ("no dearer than X"); a rule's force still wins. `sizes` (per prompt:
    None or the characters of the whole request a prompt was taken from, a conversation's last
    turn) are what the rules' token conditions count."""
    metadata = metadata or [{} for _ in prompts]
    targets = quality_target if isinstance(quality_target, list) else [quality_target] * len(prompts)
    sizes = sizes or [None] * len(prompts)
    results = [policy.apply_rules(p, m, size=n) if policy else RuleResult() for p, m, n in zip(prompts, metadata, sizes)]
    for r, extra in zip(results, restrict or [None] * len(prompts)):
        if extra is not None:
            _narrow(r, *extra)
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
    cascade = policy.cascade if policy else None
    for i, d in decisions.items():
        plans[i] = _guarded(d, results[i], policy.novelty if policy else None) or (
            _learned_plan(d, results[i], verifier) if cascade is not None and cascade.learned
            else _cascade_plan(d, results[i], cascade))
    return plans


def _learned_plan(decision: Decision, rules: RuleResult, verifier) -> Plan:
    """The router's planned cascade at the decision's target (router_ml.policy.verifier)."""
    plan = Plan([decision.model], rules, decision, decision.quality_target)
    learned = verifier.plan_for(decision.quality_target) if verifier is not None else None
    if learned is None or learned.first is None:
        plan.notes.append("learned cascade: single-shot pays best at this target" if learned is not None
                          else "learned cascade: the router has no verifier; single-shot")
        return plan
    then = decision.model if learned.then == "router" else max(decision.scores, key=lambda m: (
        decision.scores[m], -decision.costs.get(m, 0.0)))
    steps, thresholds = [], []
    for model, threshold in zip((learned.first, learned.second, then), (*learned.thresholds, None, None)):
        if model is None or model in steps:
            continue
        if rules.allowed is not None and model not in rules.allowed:
            plan.notes.append(f"learned cascade step {model} dropped: outside the rules' restriction")
            continue
        steps.append(model)
        thresholds.append(threshold)
    if not steps:
        return plan
    plan.steps = steps
    plan.thresholds = tuple(t for t in thresholds[:-1])  # the last step is not checked
    return plan


def _narrow(rules: RuleResult, label: str, models: tuple[str, ...]) -> None:
    """Apply a request-level restriction on top of the rules' decision."""
    if rules.force:
        rules.notes.append(f"{label}: not applied, a rule forces {rules.force}")
        return
    narrowed = models if rules.allowed is None else tuple(m for m in rules.allowed if m in models)
    if not narrowed:
        rules.notes.append(f"{label}: not applied, it leaves no model within the rules' restriction")
        return
    rules.allowed = narrowed
    rules.notes.append(f"{label}: among {', '.join(narrowed)}")


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
