"""Offline replay: evaluate any policy (rules + router + cascade) on a historical outcomes log.

    router-ml replay --router models/v1 --outcomes held_out.csv --policy cascade.yaml --policy learned-cascade

Each policy runs through the same code as the live gateway (router_ml.policy.cascade): rules
see the prompt and the request metadata (the log's `task` column, as `task`), the
router decides among what the rules leave, and a cascade step "calls" a model by reading
its logged outcome and paying its logged (or catalog-priced) cost.

**Checks on real answers.** When the log has responses, each called model's logged
answer is judged by the policy's checks and the router's learned verifier, exactly as
the gateway would judge it live (prompts missing any model's answer are left out). When
it has none, a policy's check is simulated: a step whose logged outcome is a success
passes with probability 1 - false_fail, a failure passes with probability false_pass;
the draws are fixed per (prompt, model), so every point of a sweep sees the same check.
A learned cascade or a verifier check needs the answers, and refuses a log without them.
Without a check in the policy only its `confidence_below` skips apply.

`decisions` (the CLI's `--decisions FILE`) receives one record per (policy, quality
target, prompt): the models called in order and the one whose answer was returned, so
quality and cost can be recomputed from the log by anyone.

Every policy is swept over the same quality targets, giving a cost-quality curve per
policy, measured with the evaluation's metrics (AIQ, gap closed, cost to match the best
single model, quality at its cost) beside single-shot routing; the table also gives
each policy at the router's default target, with its escalation rate and calls per
request. Prompts without every model's outcome, and prompts the router was trained on
(`training`), are skipped, as in `evaluate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from router_ml.core.prompts import prompt_sha256
from router_ml.core.validation import check_share
from router_ml.errors import ConfigError
from router_ml.policy.cascade import make_judge, run_cascade
from router_ml.policy.file import Policy
from router_ml.policy.plans import make_plans
from router_ml.policy.verifier import verifier_of
from router_ml.training.data.outcomes import RoutingData, prompt_hash
from router_ml.training.evaluate.evaluation import _Context, align_to_router, sweep_targets


@dataclass
class Logged:
    """A simulated call: what the log says this model did on this prompt."""

    model: str
    score: float
    success: bool
    cost: float
    passes_check: bool
    text: str = ""  # the logged answer ("" when the log has none)
    attempts: list = field(default_factory=list)  # a logged call has no retries to show


def replay(router, data: RoutingData, policies: dict[str, Policy | None], *, false_pass: float = 0.0,
           false_fail: float = 0.0, seed: int = 0, targets=None, source: str = "outcomes", embedder=None,
           training: RoutingData | None = None, verifier=None, decisions: Callable[[dict], None] | None = None,
           log: Callable[[str], None] = lambda _: None) -> dict:
    """Replay each named policy (None: single-shot routing) on `data`; a JSON-able report.

    `verifier` overrides the router's own (router_ml.policy.verifier.verifier_of);
    `decisions(record)` receives every (policy, target, prompt) decision.
    """
    for name, rate in (("false_pass", false_pass), ("false_fail", false_fail)):
        check_share(rate, name)
    data = align_to_router(data, router.models, source)
    answers = data.responses is not None
    verifier = verifier if verifier is not None else verifier_of(router)
    verifier = None if verifier is None else _ScoresKept(verifier)
    for name, policy in policies.items():
        if policy is not None and policy.needs_verifier:
            if verifier is None:
                raise ConfigError(f"policy {name}: it reads the learned verifier, and router {router.version} has none "
                                  "(train it on outcomes with a response column)")
            if not answers:
                raise ConfigError(f"policy {name}: it judges the answers, and {source} has no response column")
    if answers and (false_pass or false_fail):
        raise ConfigError(f"{source} has the answers, so checks run on them for real: --false-pass and --false-fail "
                          "simulate a check only for logs without responses")
    keep = data.complete.copy()
    if answers:
        answered = np.array([all(bool(r) for r in row) for row in data.responses])
        if (keep & ~answered).any():
            log(f"leaving out {int((keep & ~answered).sum())} prompts without every model's answer")
        keep &= answered
    if training is not None:
        seen = set(training.prompt_ids)
        overlap = np.array([pid in seen for pid in data.prompt_ids], dtype=bool)
        if (overlap & keep).any():
            log(f"dropping {int((overlap & keep).sum())} prompts the router was trained on")
        keep &= ~overlap
    data = data.subset(np.flatnonzero(keep))
    if len(data) == 0:
        raise ConfigError(f"{source}: no prompt left: replay needs prompts with every model's outcome that the "
                          "router was not trained on")
    targets = sorted(set(sweep_targets(router) if targets is None else targets) | {router.default_quality_target})
    ctx = _Context(data)
    col = {m: j for j, m in enumerate(data.models)}
    rng = np.random.default_rng(seed)
    draws = rng.random(data.scores.shape)  # one check draw per (prompt, model)
    passes = np.where(data.success >= 0.5, draws >= false_fail, draws < false_pass)
    metadata = [{"task": t} if t is not None else {} for t in data.tasks]
    log(f"embedding {len(data)} prompts once for every policy and target")
    scores = router.predict_scores(data.prompts, embeddings=(embedder or router.embedder).encode(data.prompts))

    report = {"source": source, "prompts": len(data), "router_version": router.version, "models": data.models,
              "checks": "on the logged answers" if answers else "simulated", "false_pass": false_pass,
              "false_fail": false_fail, "seed": seed, "targets": targets,
              "default_quality_target": router.default_quality_target, "policies": {}}
    logged_ids = [None if pid == prompt_hash(p) else pid for pid, p in zip(data.prompt_ids, data.prompts)]
    digests = [prompt_sha256(p) for p in data.prompts] if decisions is not None else None
    for name, policy in policies.items():
        points, default, runs = [], None, []
        for target in targets:
            record = None
            if decisions is not None:
                def record(i, called, answered_by, name=name, target=target):
                    decisions({"policy": name, "quality_target": target, "prompt_id": logged_ids[i],
                               "prompt_sha256": digests[i], "called": called, "answered_by": answered_by})
            run = _run_policy(router, policy, data, metadata, target, scores, col, passes, verifier if answers else None,
                              record)
            points.append([run["mean_cost"], run["quality"]])
            runs.append(run)
            if target == router.default_quality_target:
                default = run
        points = np.array(points)
        metrics = ctx.point_metrics(points)
        report["policies"][name] = {
            "source": None if policy is None else policy.source,
            "metrics": metrics,
            "default": default,
            "summary": {"aiq": metrics["aiq"], "gap_closed": metrics["gap_closed"],
                        "cost_to_match_best": metrics["cost_to_match_best"],
                        "quality_at_best_cost": metrics["quality_at_best_cost"],
                        "calls_per_request": default["calls_per_request"], "share_escalated": default["escalation_rate"]},
            "curve": [{"quality_target": t, "mean_cost": float(c), "quality": float(q),
                       "share_calling": run["share_calling"], "escalation_rate": run["escalation_rate"]}
                      for t, (c, q), run in zip(targets, points, runs)],
        }
        log(f"{name}: AIQ {metrics['aiq']:.4g}, at the default target cost {default['mean_cost']:.4g}, "
            f"quality {default['quality']:.4g}")
    report["single_models"] = {m: {"mean_cost": float(c), "quality": float(q)} for m, (c, q) in zip(data.models, ctx.singles)}
    report["oracle"] = {"mean_cost": float(ctx.oracle_point[0]), "quality": float(ctx.oracle_point[1])}
    report["random_mixing_aiq"] = float(ctx.aiq_zero)
    return report


class _ScoresKept:
    """A verifier that keeps each answer's score: a replay judges the same logged answer again at
    every target and under every policy, and the score depends only on the answer and its context."""

    def __init__(self, verifier) -> None:
        self._verifier = verifier
        self._scores: dict[tuple, float | None] = {}

    def score(self, model, prompt, text, estimate, earlier=()):
        key = (model, prompt, text, estimate, tuple(earlier))
        if key not in self._scores:
            self._scores[key] = self._verifier.score(model, prompt, text, estimate, earlier)
        return self._scores[key]

    def __getattr__(self, name):
        return getattr(self._verifier, name)


def _run_policy(router, policy, data, metadata, target, scores, col, passes, verifier=None, record=None) -> dict:
    """One policy at one target. With `verifier` (or answers and a plain check) the answers are judged for
    real; without answers a policy's check is simulated (module docstring)."""
    plans = make_plans(router, policy, data.prompts, metadata, target, scores=scores, verifier=verifier)
    cascade = policy.cascade if policy else None
    answers = data.responses is not None
    simulate_check = not answers and cascade is not None and cascade.check is not None
    cost = np.empty(len(plans))
    quality = np.empty(len(plans))
    calls = np.empty(len(plans))
    escalated = np.zeros(len(plans), dtype=bool)
    called_by = np.zeros((len(plans), len(data.models)), dtype=bool)
    fired: dict[str, int] = {}
    for i, plan in enumerate(plans):
        def call(model, i=i):
            j = col[model]
            return Logged(model, float(data.scores[i, j]), bool(data.success[i, j] >= 0.5), float(data.costs[i, j]),
                          bool(passes[i, j]), data.responses[i, j] if answers else "")

        if simulate_check:
            judge = lambda r, *_: r.passes_check  # noqa: E731
        else:
            judge = make_judge(plan, cascade, data.prompts[i], verifier) if answers else None
        result, steps, spent = run_cascade(plan, cascade, call, judge)
        cost[i], quality[i] = spent, result.score
        called = [s for s in steps if s.outcome in ("accepted", "check_failed")]
        calls[i] = len(called)
        escalated[i] = len(called) > 1
        called_by[i, [col[s.model] for s in called]] = True
        if record is not None:
            record(i, [s.model for s in called], result.model)
        for rule in plan.rules.fired:
            fired[rule] = fired.get(rule, 0) + 1
    return {"quality_target": target, "mean_cost": float(cost.mean()), "quality": float(quality.mean()),
            "calls_per_request": float(calls.mean()), "escalation_rate": float(escalated.mean()),
            "share_calling": {m: float(called_by[:, j].mean()) for j, m in enumerate(data.models)}, "rules_fired": fired}


def format_replay(report: dict) -> str:
    best = max(report["single_models"].items(), key=lambda kv: (kv[1]["quality"], -kv[1]["mean_cost"]))
    lines = [
        f"Replay of {report['router_version']} on {report['prompts']} prompts of {report['source']} "
        + ("(checks on the logged answers); " if report.get("checks") == "on the logged answers" else
           f"(simulated check: false pass {report['false_pass']:g}, false fail {report['false_fail']:g}); ") +
        f"best single model {best[0]}: quality {best[1]['quality']:.4f} at ${best[1]['mean_cost']:.4g} per prompt.",
        "",
        f"| policy | AIQ | gap closed | cost to match best | quality at best's cost | at default target "
        f"{report['default_quality_target']:g}: cost | quality | escalated | calls/request |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in report["policies"].items():
        m, d = p["metrics"], p["default"]
        ctm = m["cost_to_match_best"]
        lines.append(
            f"| {name} | {m['aiq']:.4f} | {m['gap_closed']:.4f} | {'n/a' if ctm is None or not np.isfinite(ctm) else f'{ctm:.4f}'} | "
            f"{m['quality_at_best_cost']:.4f} | ${d['mean_cost']:.4g} | {d['quality']:.4f} | {d['escalation_rate']:.1%} | "
            f"{d['calls_per_request']:.2f} |")
    return "\n".join(lines)
