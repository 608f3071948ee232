"""Eval-driven routing on real answers: the learned cascade against single-shot routing.

    .venv/bin/python -m benchmarks.cascades [--workdir build/benchmarks] [--out benchmarks/results]

RouteLLM GSM8K (Mixtral 8x7B and GPT-4 with both models' full answers): router-ml is
trained with the default pipeline on a prompt-disjoint half (the verifier and its
cascades are learned there, from the training folds only) and evaluated on the other
half by `replay`, which judges each logged answer exactly as the gateway would live.
Curves, with x the share of requests that called GPT-4 and every call's cost counted:

- single-shot routing (the router alone),
- the learned cascade (Mixtral first, escalate when the verifier doubts its answer),
- the perfect-check bound: escalate exactly the prompts Mixtral got wrong and GPT-4 right
  first (no real check does better).

Then the demo's five models with templated answers (`router-ml demo-data`): AIQ and the cost
to match the best model for both policies, beside the perfect-check cascade (every model,
cheapest first, until one succeeds). For both sets with answers, the plan chosen at each
quality target.

Figures: APGR and CPT over the share calling GPT-4 (docs: metrics.md), the cost to match
GPT-4's accuracy (the cheapest point of the curve's hull at GPT-4's accuracy, over
GPT-4's cost), AIQ; paired bootstrap intervals (prompts resampled, 1,000 times) on the
learned cascade minus single-shot. Then RouteLLM MMLU and LLMRouter, which have no
answers: the router is trained the same way, must carry no verifier, and the learned
cascade must equal single-shot routing exactly.

Targets (issue 14): GSM8K learned-cascade APGR >= 0.72; GSM8K cost to match GPT-4's
accuracy <= 0.6 of GPT-4's cost; MMLU and LLMRouter unchanged (no verifier, the learned
cascade refused; the recorded quality benchmark's AIQ is printed beside, for reference); on the demo, the learned
cascade's AIQ not below single-shot's (90 % interval). Writes results/cascades.md,
results/cascades.json and results/cascades.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from benchmarks.datasets import prepare
from benchmarks.harness import DEFAULT_OUT, Target, benchmark_parser, write_results
from router_ml import load_router
from router_ml.policy.file import load_policy

TARGETS = [round(t, 3) for t in np.linspace(0.0, 1.0, 51)]
RESAMPLES = 1000


def trained(bench, workdir: Path, cache_dir) -> Path:
    from router_ml.training.fit.pipeline import TrainConfig, train

    out = workdir / "routers" / f"{bench.name}-cascades"
    if not (out / "manifest.json").exists():
        train(TrainConfig(outcomes=str(bench.train), test_outcomes=str(bench.test) if bench.test else None,
                          catalog=str(bench.catalog) if bench.catalog else None, test_size=bench.test_size,
                          seed=bench.seed, out=str(out), overwrite=True, mlflow=False, baselines=(),
                          cache_dir=cache_dir, router_version=f"{bench.name}-cascades"),
              log=lambda m: print(f"  [{bench.name}] {m}", flush=True), progress=False)
    return out


def cached(router, cache_dir):
    """The router's embedder behind the disk cache training filled: replays embed nothing twice."""
    from router_ml.training.embed.cache import DiskCachedEmbedder

    return DiskCachedEmbedder(router.embedder.embedder, cache_dir)


def test_side(bench, router):
    from router_ml.training.data.outcomes import read_outcomes, split_prompts, to_routing_data

    data = to_routing_data(read_outcomes(bench.train), None, str(bench.train), cost_model=router.cost_model) \
        if bench.test is None else None
    if data is not None:
        train_side, test = split_prompts(data, bench.test_size, bench.seed)
        return train_side, test
    from router_ml.core.catalog import load_catalog

    catalog = load_catalog(bench.catalog) if bench.catalog else None
    return (to_routing_data(read_outcomes(bench.train), catalog, str(bench.train)),
            to_routing_data(read_outcomes(bench.test), catalog, str(bench.test)))


def replayed(records: list[dict], data):
    """The prompts the replay decided (it leaves out those without every answer), in the data's order."""
    from router_ml.core.prompts import prompt_sha256

    seen = {r["prompt_sha256"] for r in records}
    return data.subset([i for i, p in enumerate(data.prompts) if prompt_sha256(p) in seen])


def per_prompt(records: list[dict], data, policy: str) -> dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per target: each prompt's score, cost (every call) and whether it called the dearest model."""
    from router_ml.core.prompts import prompt_sha256

    col = {m: j for j, m in enumerate(data.models)}
    row = {prompt_sha256(p): i for i, p in enumerate(data.prompts)}
    strong = data.models[-1]
    out = {}
    for target in TARGETS:
        mine = [r for r in records if r["policy"] == policy and r["quality_target"] == target]
        assert len(mine) == len(data), "one decision per prompt and target"
        rows = np.array([row[r["prompt_sha256"]] for r in mine])
        score = np.array([data.scores[i, col[r["answered_by"]]] for i, r in zip(rows, mine)])
        cost = np.array([sum(data.costs[i, col[m]] for m in r["called"]) for i, r in zip(rows, mine)])
        calls_strong = np.array([strong in r["called"] for r in mine], dtype=float)
        order = np.argsort(rows)
        out[target] = (score[order], cost[order], calls_strong[order])
    return out


def both_policies(router, test, train_side, cache_dir, source: str, label: str):
    """Single-shot routing and the learned cascade replayed on `test` at every target of TARGETS:
    (policies, the replay's report, the prompts it decided, each policy's per-prompt curves)."""
    from router_ml.training.evaluate.replay import replay

    records = []
    policies = {"single-shot": None, "learned-cascade": load_policy("learned-cascade", router.models)}
    report = replay(router, test, policies, targets=TARGETS, training=train_side, decisions=records.append,
                    embedder=cached(router, cache_dir), source=source,
                    log=lambda m: print(f"  [{label} replay] {m}", flush=True))
    data = replayed(records, test)
    return policies, report, data, {name: per_prompt(records, data, name) for name in policies}


def figures(curves: dict, rows: np.ndarray, data) -> dict:
    """APGR, CPT, cost to match the strong model and AIQ of one policy on prompts `rows`."""
    from router_ml.training.evaluate import metrics

    share = np.array([curves[t][2][rows].mean() for t in TARGETS])
    quality = np.array([curves[t][0][rows].mean() for t in TARGETS])
    cost = np.array([curves[t][1][rows].mean() for t in TARGETS])
    w, s = float(data.scores[rows, 0].mean()), float(data.scores[rows, -1].mean())
    singles = np.array([[float(data.costs[rows, 0].mean()), w], [float(data.costs[rows, -1].mean()), s]])
    points = np.column_stack([cost, quality])
    return {"apgr": metrics.apgr(share, quality, w, s), "cpt50": metrics.cpt(share, quality, w, s, 0.5),
            "cpt80": metrics.cpt(share, quality, w, s, 0.8),
            "cost_to_match_strong": metrics.cost_to_match(points, singles), "aiq": metrics.aiq(points, singles),
            "max_quality": float(quality.max())}


def perfect_bound(data) -> tuple[np.ndarray, np.ndarray]:
    """The perfect-check cascade swept from no escalation to all: escalate the prompts where the strong model
    gains most first (Mixtral wrong, GPT-4 right; then the rest)."""
    weak, strong = data.scores[:, 0], data.scores[:, -1]
    order = np.argsort(-(strong - weak), kind="stable")
    n = len(weak)
    quality = [weak.mean()]
    current = weak.copy()
    for i in order:
        current[i] = strong[i]
        quality.append(current.mean())
    return np.arange(n + 1) / n, np.array(quality)


def gsm8k(bench, workdir: Path, cache_dir) -> dict:
    from router_ml.training.evaluate import metrics

    router = load_router(trained(bench, workdir, cache_dir))
    spec = router.manifest.get("verifier")
    if not spec:
        raise SystemExit("the GSM8K router has no verifier: were the answers imported?")
    train_side, test = test_side(bench, router)
    policies, report, data, curves = both_policies(router, test, train_side, cache_dir, "GSM8K test half", "gsm8k")
    weak, strong, strong_cost = data.scores[:, 0], data.scores[:, -1], data.costs[:, -1]
    every = np.arange(len(data))
    result = {name: figures(curves[name], every, data) for name in policies}
    rng = np.random.default_rng(0)
    diffs = {k: [] for k in ("apgr", "cost_to_match_strong", "aiq")}
    for _ in range(RESAMPLES):
        rows = rng.integers(0, len(data), len(data))
        a = figures(curves["learned-cascade"], rows, data)
        b = figures(curves["single-shot"], rows, data)
        for k in diffs:
            diffs[k].append(a[k] - b[k])
    intervals = {k: [float(np.nanpercentile(v, 5)), float(np.nanpercentile(v, 95))] for k, v in diffs.items()}
    share, quality = perfect_bound(data)
    bound = {"apgr": metrics.apgr(share, quality, float(weak.mean()), float(strong.mean())),
             "max_quality": float(quality.max()), "share_at_max": float(share[int(np.argmax(quality))])}
    entries = [e for e in spec["entries"] if e["after"] is None]
    return {"prompts": len(data), "router": router.version, "embedder": router.manifest["embedder"]["id"],
            "weak": {"model": data.models[0], "quality": float(weak.mean())},
            "strong": {"model": data.models[-1], "quality": float(strong.mean()), "cost": float(strong_cost.mean())},
            "figures": result, "learned_minus_single_90": intervals, "perfect_check": bound,
            "verifier": [{"model": e["model"], "features": e["features"], **{k: e["validation"][k] for k in (
                "auc", "ece", "prompt_only_auc", "prompt_only_ece")}} for e in entries],
            "curves": {name: [{"quality_target": t, "share_strong": float(curves[name][t][2].mean()),
                               "quality": float(curves[name][t][0].mean()),
                               "cost_share": float(curves[name][t][1].mean() / strong_cost.mean())} for t in TARGETS]
                       for name in policies},
            "perfect_curve": {"share_strong": share[:: max(1, len(share) // 200)].tolist(),
                              "quality": quality[:: max(1, len(share) // 200)].tolist()},
            "default_target": router.default_quality_target,
            "at_default": {name: report["policies"][name]["default"] for name in policies},
            "plans": plans_of(router)}


def plans_of(router) -> list[dict]:
    """The cascade planned at each quality target (the verifier's plans), as the report lists them."""
    rows = []
    for p in (router.manifest.get("verifier") or {}).get("plans", []):
        e = p.get("expected") or {}
        steps = "single-shot" if p["first"] is None else " -> ".join(
            x for x in (p["first"], p.get("second"), "router's choice" if p["then"] == "router" else "best rated") if x)
        rows.append({"quality_target": p["quality_target"], "steps": steps, "thresholds": p.get("thresholds", []),
                     "quality": e.get("quality"), "cost": e.get("cost"), "escalated": e.get("escalated"),
                     "single_shot_quality": e.get("single_shot_quality"), "single_shot_cost": e.get("single_shot_cost")})
    return rows


def perfect_cascade(data) -> tuple[float, float]:
    """The perfect-check cascade over every model, cheapest first: call the next model until one
    succeeds (a check that is never wrong). Its mean quality and mean cost (every call paid)."""
    order = np.argsort(data.costs.mean(axis=0))
    scores, costs = data.scores[:, order], data.costs[:, order]
    success = scores >= 0.5
    first = np.where(success.any(axis=1), success.argmax(axis=1), len(order) - 1)
    quality = scores[np.arange(len(data)), first].mean()
    cost = np.array([costs[i, :first[i] + 1].sum() for i in range(len(data))]).mean()
    return float(quality), float(cost)


def demo(workdir: Path, cache_dir) -> dict:
    """The synthetic demo (five models, templated answers): learned cascade against single-shot
    routing over the whole target sweep, and the perfect-check cascade."""
    from router_ml.core.catalog import load_catalog
    from router_ml.training.data.demo import write_demo
    from router_ml.training.data.outcomes import read_outcomes, to_routing_data
    from router_ml.training.evaluate import metrics
    from router_ml.training.fit.pipeline import TrainConfig, train

    files = write_demo(workdir / "demo-cascades", seed=7)
    out = workdir / "routers" / "demo-cascades"
    if not (out / "manifest.json").exists():
        train(TrainConfig(outcomes=str(files["outcomes"]), test_outcomes=str(files["holdout"]),
                          catalog=str(files["catalog"]), out=str(out), overwrite=True, mlflow=False, baselines=(),
                          cache_dir=cache_dir, router_version="demo-cascades"),
              log=lambda m: print(f"  [demo] {m}", flush=True), progress=False)
    router = load_router(out)
    catalog = load_catalog(files["catalog"])
    train_side = to_routing_data(read_outcomes(files["outcomes"]), catalog, str(files["outcomes"]))
    test = to_routing_data(read_outcomes(files["holdout"]), catalog, str(files["holdout"]))
    policies, report, data, curves = both_policies(router, test, train_side, cache_dir, "demo holdout", "demo")
    singles = np.column_stack([data.costs.mean(axis=0), data.scores.mean(axis=0)])
    best = int(np.lexsort((singles[:, 0], -singles[:, 1]))[0])

    def curve_figures(curve, rows) -> dict:
        points = np.array([[curve[t][1][rows].mean(), curve[t][0][rows].mean()] for t in TARGETS])
        sub = np.column_stack([data.costs[rows].mean(axis=0), data.scores[rows].mean(axis=0)])
        return {"aiq": metrics.aiq(points, sub), "cost_to_match_best": metrics.cost_to_match(points, sub),
                "max_quality": float(points[:, 1].max())}

    every = np.arange(len(data))
    figures_ = {name: curve_figures(curves[name], every) for name in policies}
    rng = np.random.default_rng(0)
    diffs = {k: [] for k in ("aiq", "cost_to_match_best")}
    for _ in range(RESAMPLES):
        rows = rng.integers(0, len(data), len(data))
        a, b = curve_figures(curves["learned-cascade"], rows), curve_figures(curves["single-shot"], rows)
        for k in diffs:
            diffs[k].append(a[k] - b[k])
    intervals = {k: [float(np.nanpercentile(v, 5)), float(np.nanpercentile(v, 95))] for k, v in diffs.items()}
    quality, cost = perfect_cascade(data)
    return {"prompts": len(data), "router": router.version, "embedder": router.manifest["embedder"]["id"],
            "models": {m: {"quality": float(singles[j, 1]), "cost": float(singles[j, 0])} for j, m in enumerate(data.models)},
            "best": data.models[best], "figures": figures_, "learned_minus_single_90": intervals,
            "perfect_check": {"quality": quality, "cost_share_of_best": cost / float(singles[best, 0])},
            "default_target": router.default_quality_target,
            "at_default": {name: report["policies"][name]["default"] for name in policies},
            "plans": plans_of(router)}


def plan_lines(plans: list[dict], cost_of: float, label: str) -> list[str]:
    """The plan table: one row per target where the plan changes (and the default's)."""
    if not plans:
        return ["No cascade was planned (the router has no verifier plans)."]
    lines = [f"The plan chosen at each quality target (training folds only; expected figures out-of-fold on the "
             f"training side; cost as a share of {label}'s):", "",
             "| quality target | plan | thresholds | expected quality | expected cost | escalated | single-shot quality "
             "| single-shot cost |", "|---|---|---|---|---|---|---|---|"]
    previous = None
    for p in plans:
        key = (p["steps"], tuple(round(t, 3) for t in p["thresholds"]))
        if key == previous and p is not plans[-1]:
            continue
        previous = key
        share = (lambda c: "" if c is None else f"{c / cost_of:.2f}")
        lines.append(f"| {p['quality_target']:g} | {p['steps']} | {', '.join(f'{t:+.3f}' for t in p['thresholds'])} | "
                     f"{p['quality']:.4f} | {share(p['cost'])} | {p['escalated']:.0%} | {p['single_shot_quality']:.4f} | "
                     f"{share(p['single_shot_cost'])} |")
    return lines


def unchanged(bench, workdir: Path, cache_dir) -> dict:
    """A set without answers: no verifier, and the learned cascade is single-shot routing."""
    from router_ml.training.evaluate.replay import replay

    router = load_router(trained(bench, workdir, cache_dir))
    train_side, test = test_side(bench, router)
    policies = {"single-shot": None, "learned-cascade": load_policy("learned-cascade", router.models)}
    try:
        report = replay(router, test, policies, training=train_side, embedder=cached(router, cache_dir))
        learned_refused = None
    except Exception as exc:  # the learned cascade needs answers and a verifier: it must say so
        learned_refused = str(exc)
        report = replay(router, test, {"single-shot": None}, training=train_side, embedder=cached(router, cache_dir))
    return {"router": router.version, "has_verifier": "verifier" in router.manifest,
            "aiq": report["policies"]["single-shot"]["metrics"]["aiq"], "learned_cascade_refused": learned_refused,
            "prompts": report["prompts"]}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, style in (("single-shot", "o-"), ("learned-cascade", "s-")):
        points = sorted((p["share_strong"], p["quality"]) for p in result["curves"][name])
        ax.plot(*zip(*points), style, markersize=3, label=f"{name} (APGR {result['figures'][name]['apgr']:.3f})")
    ax.plot(result["perfect_curve"]["share_strong"], result["perfect_curve"]["quality"], "k:",
            label=f"perfect check (APGR {result['perfect_check']['apgr']:.3f})")
    ax.scatter([0, 1], [result["weak"]["quality"], result["strong"]["quality"]], color="red", zorder=5)
    ax.annotate("Mixtral", (0, result["weak"]["quality"]), textcoords="offset points", xytext=(5, -12))
    ax.annotate("GPT-4", (1, result["strong"]["quality"]), textcoords="offset points", xytext=(-40, 8))
    ax.axhline(result["strong"]["quality"], color="grey", lw=0.5)
    ax.set_xlabel("share of requests that called GPT-4 (every call paid)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"GSM8K, {result['prompts']} held-out prompts")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    args = benchmark_parser("cascades", __doc__).parse_args(argv)
    benches = {b.name: b for b in prepare(args.workdir)}
    g = gsm8k(benches["routellm-gsm8k"], args.workdir, args.cache_dir)
    d = demo(args.workdir, args.cache_dir)
    others = {name: unchanged(benches[name], args.workdir, args.cache_dir) for name in ("routellm-mmlu", "llmrouter")}
    quality = DEFAULT_OUT / "quality.json"  # the recorded quality benchmark, whatever --out is
    if quality.exists():
        import json

        recorded = json.loads(quality.read_text())
        for name, figures_ in others.items():
            figures_["quality_benchmark_aiq"] = recorded["results"].get(name, {}).get("metrics", {}).get("aiq")
    learned, single = g["figures"]["learned-cascade"], g["figures"]["single-shot"]
    ci = g["learned_minus_single_90"]
    checks = [
        Target(f"GSM8K learned-cascade APGR >= 0.72: {learned['apgr']:.3f} (single-shot {single['apgr']:.3f}; difference "
               f"90 % interval [{ci['apgr'][0]:+.3f}, {ci['apgr'][1]:+.3f}])", learned["apgr"], learned["apgr"] >= 0.72),
        Target(f"GSM8K cost to match GPT-4's accuracy <= 0.6 of GPT-4's cost: {learned['cost_to_match_strong']:.3f} "
               f"(single-shot {single['cost_to_match_strong']:.3f}; difference 90 % interval "
               f"[{ci['cost_to_match_strong'][0]:+.3f}, {ci['cost_to_match_strong'][1]:+.3f}])",
               learned["cost_to_match_strong"], learned["cost_to_match_strong"] <= 0.6),
        *[Target(f"{name} unchanged: no verifier ({not o['has_verifier']}), the learned cascade refused for want of "
                 f"answers ({o['learned_cascade_refused'] is not None}), AIQ {o['aiq']:.4f} (quality benchmark: "
                 f"{o.get('quality_benchmark_aiq')})",
                 {"aiq": o["aiq"], "quality_benchmark_aiq": o.get("quality_benchmark_aiq"),
                  "has_verifier": o["has_verifier"], "learned_cascade_refused": o["learned_cascade_refused"] is not None},
                 not o["has_verifier"] and o["learned_cascade_refused"] is not None)
          for name, o in others.items()],
    ]
    dl, ds, dci = d["figures"]["learned-cascade"], d["figures"]["single-shot"], d["learned_minus_single_90"]
    checks.append(Target(
        f"demo (5 models, templated answers): the learned cascade is not worse than single-shot on AIQ: "
        f"{dl['aiq']:.4f} against {ds['aiq']:.4f} (difference 90 % interval [{dci['aiq'][0]:+.4f}, {dci['aiq'][1]:+.4f}])",
        {"learned": dl["aiq"], "single_shot": ds["aiq"], "low": dci["aiq"][0]}, dci["aiq"][0] >= 0.0))
    result = {"gsm8k": g, "demo": d, "unchanged": others}
    args.out.mkdir(parents=True, exist_ok=True)
    plot(g, args.out / "cascades.png")
    rows = [("single-shot", single), ("learned cascade", learned)]
    lines = [
        "# Eval-driven routing on real answers (benchmarks/cascades.py)", "",
        f"RouteLLM GSM8K, {g['prompts']} held-out prompts (the other half trained the router, its verifier and its "
        f"cascades); embedder {g['embedder']}; x axis: share of requests that called GPT-4, every call paid. "
        f"Mixtral alone {g['weak']['quality']:.4f}, GPT-4 alone {g['strong']['quality']:.4f}.", "",
        "| policy | APGR | CPT(50%) | CPT(80%) | cost to match GPT-4 | AIQ | best accuracy |", "|---|---|---|---|---|---|---|",
        *[f"| {name} | {f['apgr']:.3f} | {f['cpt50']:.3f} | {f['cpt80']:.3f} | {f['cost_to_match_strong']:.3f} | "
          f"{f['aiq']:.4f} | {f['max_quality']:.4f} |" for name, f in rows],
        f"| perfect check (bound) | {g['perfect_check']['apgr']:.3f} | | | | | {g['perfect_check']['max_quality']:.4f} "
        f"at {g['perfect_check']['share_at_max']:.0%} GPT-4 |", "",
        f"Learned minus single-shot, 90 % paired bootstrap intervals ({RESAMPLES} resamples of the prompts): APGR "
        f"[{ci['apgr'][0]:+.3f}, {ci['apgr'][1]:+.3f}], cost to match GPT-4 [{ci['cost_to_match_strong'][0]:+.3f}, "
        f"{ci['cost_to_match_strong'][1]:+.3f}], AIQ [{ci['aiq'][0]:+.4f}, {ci['aiq'][1]:+.4f}].", "",
        "The verifier (out-of-fold on the training half, beside the router's prompt-only estimate on the same rows):", "",
        "| model | features | AUC | calibration error | prompt-only AUC | prompt-only calibration error |",
        "|---|---|---|---|---|---|",
        *[f"| {v['model']} | {v['features']} | {v['auc']:.3f} | {v['ece']:.3f} | {v['prompt_only_auc']:.3f} | "
          f"{v['prompt_only_ece']:.3f} |" for v in g["verifier"]], "",
        f"At the router's default target ({g['default_target']:g}): " + "; ".join(
            f"{name} quality {d['quality']:.4f}, cost {d['mean_cost'] / g['strong']['cost']:.2f} of GPT-4's, "
            f"{d['escalation_rate']:.0%} escalated" for name, d in g["at_default"].items()) + ".", "",
        "![cost-quality curves](cascades.png)", "",
        *plan_lines(g["plans"], g["strong"]["cost"], "GPT-4"), "",
        "## The demo: five models, templated answers", "",
        f"`router-ml demo-data` (seed 7): {d['prompts']} held-out prompts, the router, verifier and cascades trained on "
        f"the 2,400 training prompts (embedder {d['embedder']}). Curves over {len(TARGETS)} quality targets, every call "
        f"paid; the best single model is {d['best']}. The perfect check calls the models cheapest first until one "
        "succeeds: the bound on quality, not on cost (it calls every cheaper model first; a router can skip them).", "",
        "| model | quality | mean cost (USD) |", "|---|---|---|",
        *[f"| {m} | {v['quality']:.4f} | {v['cost']:.3g} |" for m, v in d["models"].items()], "",
        "| policy | AIQ | cost to match the best model | best quality |", "|---|---|---|---|",
        *[f"| {name} | {f['aiq']:.4f} | {f['cost_to_match_best']:.3f} | {f['max_quality']:.4f} |"
          for name, f in d["figures"].items()],
        f"| perfect check, every model cheapest first | | {d['perfect_check']['cost_share_of_best']:.3f} | "
        f"{d['perfect_check']['quality']:.4f} |", "",
        f"Learned minus single-shot, 90 % paired bootstrap intervals: AIQ [{dci['aiq'][0]:+.4f}, {dci['aiq'][1]:+.4f}], "
        f"cost to match the best model [{dci['cost_to_match_best'][0]:+.3f}, {dci['cost_to_match_best'][1]:+.3f}].", "",
        f"At the router's default target ({d['default_target']:g}): " + "; ".join(
            f"{name} quality {v['quality']:.4f}, mean cost {v['mean_cost']:.3g} USD, {v['escalation_rate']:.0%} escalated"
            for name, v in d["at_default"].items()) + ".", "",
        *plan_lines(d["plans"], d["models"][d["best"]]["cost"], d["best"]),
    ]
    return write_results(args.out, "cascades", "\n".join(lines), result, checks)


if __name__ == "__main__":
    sys.exit(main())
