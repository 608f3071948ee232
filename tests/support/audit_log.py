"""A seeded audit log that looks like served traffic: two router versions (a reload), a shadow,
exploration, cascades with failed checks, gateway costs, fallbacks and reported outcomes, written
through the service's own AuditStore; and the explorer's figures computed from it in plain
Python (read_joined, the cost model's numpy estimate), independently of the explorer's SQL."""

from __future__ import annotations

import math

import numpy as np

from router_ml.core.audit_format import Outcome, read_joined
from router_ml.serve.audit import AuditStore
from router_ml.serve.record import Served

PROMPTS = ("Summarise this contract clause in plain English.", "What is 17 * 23?",
           "Write a haiku about autumn rain.", "Translate 'good morning' into French.",
           "Explain the difference between TCP and UDP.", "Return a JSON object with the keys name and age.",
           "Fix the off-by-one error in this loop: for i in range(1, len(xs)): print(xs[i])",
           "Who wrote The Brothers Karamazov?")


def seed_audit_log(path, models: list[str], n: int = 400, seed: int = 0, t0: float = 1_764_000_000.0,
                   versions: tuple[str, str] = ("router-a", "router-b"), novel_share: float = 0.03) -> list[str]:
    """Write `n` decisions (one every 30 s from `t0`) and outcomes for about 40 % of them; their request ids.
    About `novel_share` of them have a novelty above 0.99."""
    rng = np.random.default_rng(seed)
    store = AuditStore(path, prompt_storage="text", flush_interval=0.01, key_file=False)
    ids, outcomes = [], []
    try:
        for i in range(n):
            version = versions[0] if i < n * 0.6 else versions[1]
            p = rng.uniform(0.3, 0.95, len(models))
            scores = {m: float(v) for m, v in zip(models, p)}
            planned = models[int(rng.integers(len(models)))]
            explored = rng.random() < 0.05
            model = models[int(rng.integers(len(models)))] if explored else planned
            steps = None
            if rng.random() < 0.15:  # a cascade: the first step's answer failed a check
                first, second = models[0], model
                steps = [{"model": first, "outcome": "check_failed", "check": ["json", "verifier"][i % 2], "cost": 0.0001},
                         {"model": second, "outcome": "accepted", "cost": 0.001}]
            fallback = "upstream: HTTP 500" if rng.random() < 0.04 else None
            prompt = PROMPTS[i % len(PROMPTS)] + f" #{i}"
            served = Served(
                request_id=f"req{i:06d}", router_version=version, model=model, confidence=scores[model],
                scores=scores, costs={}, estimated_cost=None, reason=f"cheapest model with p >= 0.7 ({model})",
                quality_target=0.7, rule="long-prompts" if i % 11 == 0 else None, fallback=fallback,
                exploration=bool(explored), propensity=0.05 if explored else 0.95,
                propensities={m: (0.95 if m == planned else 0.05 / (len(models) - 1)) for m in models},
                planned_model=planned, latency_ms=float(rng.gamma(2.0, 3.0)), steps=steps,
                cost=float(rng.uniform(1e-4, 3e-3)) if rng.random() < 0.3 else None,
                novelty=0.995 if rng.random() < novel_share else float(rng.beta(2, 5)),
                shadow={"version": "router-c", "model": models[i % len(models)]} if version == versions[1] else None,
                ts=t0 + 30.0 * i,
            )
            store.record(prompt, served, {"tenant": "acme"})
            ids.append(served.request_id)
            if rng.random() < 0.4:
                if rng.random() < 0.5:
                    outcomes.append(Outcome(served.request_id, model, success=bool(rng.random() < scores[model])))
                else:
                    outcomes.append(Outcome(served.request_id, model, score=round(float(rng.random()), 3)))
        assert store.flush(timeout=30)
        store.record_outcomes(outcomes)
    finally:
        store.close()
    return ids


def figures_from_rows(path, cost_model, since: float = -math.inf, until: float = math.inf) -> dict:
    """The overview's headline figures recomputed from the decisions themselves (the test's oracle)."""
    rows = [r for r in read_joined(path) if since <= r["ts"] <= until]
    per_model: dict[str, dict] = {}
    estimate = cost_model.estimate(np.array([r["prompt_chars"] for r in rows]))
    index = {m: i for i, m in enumerate(cost_model.models)}
    served_cost, observed = 0.0, []
    for r, costs in zip(rows, estimate):
        m = per_model.setdefault(r["model"], {"requests": 0, "outcomes": []})
        m["requests"] += 1
        served_cost += r["cost"] if r["cost"] is not None else float(costs[index[r["model"]]])
        for o in r["outcomes"]:
            if o["model"] == r["model"]:
                value = o["score"] if o["score"] is not None else float(o["success"])
                m["outcomes"].append(value)
                observed.append(value)
    always = {m: float(estimate[:, i].sum()) for m, i in index.items()}
    mean_p = {m: np.mean([r["scores"][m] for r in rows]) for m in index}
    best = max(mean_p, key=lambda m: (mean_p[m], m))
    return {"requests": len(rows), "served_cost": served_cost, "always": always, "best_model": best,
            "cheapest_model": min(always, key=lambda m: (always[m], m)),
            "observed": float(np.mean(observed)) if observed else None, "outcomes": len(observed),
            "models": {m: {"requests": v["requests"], "share": v["requests"] / len(rows), "outcomes": len(v["outcomes"]),
                           "observed": float(np.mean(v["outcomes"])) if v["outcomes"] else None}
                       for m, v in per_model.items()},
            "latency_p50": _nearest_rank([r["latency_ms"] for r in rows], 0.5)}


def _nearest_rank(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[max(1, math.ceil(q * len(values))) - 1]
