"""Retraining on real data: can the retrain loop replace a good champion with a worse router?

    .venv/bin/python -m benchmarks.retrain [--workdir build/benchmarks] [--out benchmarks/results]

Scenario, on LLMRouter's nine models (benchmarks/datasets.py), its prompts shuffled once:

1. The champion is trained on CHAMPION_PROMPTS of train.json as `router-ml train` does
   (a fifth held out).
2. It serves TRAFFIC_PROMPTS other prompts of train.json: each request goes to the
   champion's choice at its default target or, with probability EXPLORATION, to another
   model chosen uniformly; the logged score of the model it went to is reported as the
   outcome, and the audit log records each decision's propensity. Only that one model's
   outcome is known for these prompts.
3. An offline evaluation log (every model on the same prompts): the rest of train.json
   and test.json (the questions shared with train.json dropped).
4. Challengers, each judged against the champion on the same held-out prompts (complete
   prompts neither router trained on), by the paired bootstrap of router_ml.training.evaluate.comparison:
   - "new logs only": trained on the audit log and the offline log alone, which is what
     `retrain` did before it learned from the champion's data (the failure seen in the
     field: a worse router promoted on 95 prompts);
   - `retrain` as it is now, with the inverse-propensity cap at 1 (no weighting), 5 (the
     default) and 20.

Writes results/retrain.md and results/retrain.json. Embeddings come from the shared
cache (router_ml.training.embed.cache), so a rerun mostly refits heads.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.datasets import prepare
from benchmarks.harness import benchmark_parser, write_results

EXPLORATION = 0.1
SEED = 0
RESAMPLES = 1000
CHAMPION_PROMPTS = 1500
TRAFFIC_PROMPTS = 2500


def split_logs(workdir: Path, bench) -> dict[str, Path]:
    """The champion's log, the traffic prompts and the offline evaluation log (see the docstring)."""
    import pandas as pd

    from router_ml.training.data.outcomes import read_outcomes

    train, test = read_outcomes(bench.train), read_outcomes(bench.test)
    test = test[~test["prompt"].isin(set(train["prompt"]))]
    ids = np.random.default_rng(SEED).permutation(train["prompt_id"].unique())
    parts = {"champion": ids[:CHAMPION_PROMPTS], "traffic": ids[CHAMPION_PROMPTS:CHAMPION_PROMPTS + TRAFFIC_PROMPTS],
             "offline": ids[CHAMPION_PROMPTS + TRAFFIC_PROMPTS:]}
    paths = {}
    for name, chosen in parts.items():
        frame = train[train["prompt_id"].isin(set(chosen))]
        if name == "offline":
            frame = pd.concat([frame, test], ignore_index=True)
        paths[name] = workdir / f"retrain-{name}.parquet"
        frame[["prompt_id", "prompt", "model", "score", "task"]].to_parquet(paths[name], index=False)
    return paths


def champion(workdir: Path, bench, logs: dict, cache_dir) -> Path:
    from router_ml.training.fit.pipeline import TrainConfig, train

    out = workdir / "routers" / "retrain-champion"
    if not (out / "manifest.json").exists():
        train(TrainConfig(outcomes=str(logs["champion"]), catalog=str(bench.catalog), out=str(out), overwrite=True,
                          mlflow=False, baselines=(), cache_dir=cache_dir, router_version="llmrouter-champion"),
              log=lambda m: print(f"  [champion] {m}", flush=True), progress=False)
    return out


def serve_log(router_path: Path, traffic: Path, audit: Path) -> dict:
    """Route the traffic prompts through the champion with exploration; report the logged outcome of each call."""
    from router_ml.core.router import load_router
    from router_ml.serve.audit import AuditStore
    from router_ml.serve.record import Served
    from router_ml.training.data.outcomes import read_outcomes

    router = load_router(router_path, decision_cache_size=0)
    scores = read_outcomes(traffic).pivot_table(index="prompt", columns="model", values="score", aggfunc="first")
    prompts = list(scores.index)
    rng = np.random.default_rng(SEED)
    if audit.exists():
        audit.unlink()
    store = AuditStore(audit, prompt_storage="text")
    explored = 0
    for i, (prompt, d) in enumerate(zip(prompts, router.route_batch(prompts))):
        model, propensity = d.model, 1.0 - EXPLORATION
        if rng.random() < EXPLORATION:
            model = rng.choice([m for m in router.models if m != d.model])
            propensity, explored = EXPLORATION / (len(router.models) - 1), explored + 1
        served = Served(request_id=f"req-{i}", router_version=d.router_version, model=str(model),
                        confidence=d.scores[model], scores=d.scores, costs=d.costs, estimated_cost=d.costs[model],
                        reason=d.reason, quality_target=d.quality_target, exploration=model != d.model,
                        propensity=propensity)
        store.record(prompt, served, {})
        store.record_outcome(served.request_id, str(model), score=float(scores.loc[prompt, model]))
    store.close()
    return {"requests": len(prompts), "explored": explored}


def new_logs_only(workdir: Path, bench, offline_path: Path, audit: Path, holdout_csv: Path, cache_dir,
                  champion_router) -> dict:
    """A challenger trained on the audit log and the offline log alone, as `retrain` used to."""
    from router_ml.core.catalog import load_catalog
    from router_ml.core.router import load_router
    from router_ml.training.data.outcomes import read_outcomes, to_routing_data
    from router_ml.training.evaluate.comparison import paired_comparison
    from router_ml.training.fit.pipeline import TrainConfig, train
    from router_ml.training.loop.retrain import audit_outcomes, combined_table

    catalog = load_catalog(bench.catalog)
    rows, _ = audit_outcomes(audit, models=champion_router.models, max_weight=1.0, log=lambda _: None)
    offline = read_outcomes(offline_path)
    table = combined_table(rows.assign(weight=1.0), [offline.assign(source="offline")], catalog, 0.5)
    held = set(read_outcomes(holdout_csv)["prompt"])
    table = table[~table["prompt"].isin(held)]
    path = workdir / "retrain-new-logs-only.csv"
    table[["prompt_id", "prompt", "model", "score", "success", "cost", "task"]].to_csv(path, index=False)
    out = workdir / "routers" / "retrain-new-logs-only"
    train(TrainConfig(outcomes=str(path), catalog=str(bench.catalog), out=str(out), overwrite=True, mlflow=False,
                      baselines=(), cache_dir=cache_dir, test_size=0.0, router_version="new-logs-only"),
          log=lambda m: print(f"  [new logs only] {m}", flush=True), progress=False)
    data = to_routing_data(read_outcomes(holdout_csv), catalog, str(holdout_csv))
    comparison = paired_comparison(load_router(out), champion_router, data, "aiq", resamples=RESAMPLES, seed=SEED)
    return {"train_prompts": int(table["prompt_id"].nunique()), **comparison.to_dict()}


def main(argv=None) -> int:
    args = benchmark_parser("retrain", __doc__).parse_args(argv)
    from router_ml.core.router import load_router
    from router_ml.training.loop.retrain import RetrainConfig, retrain

    started = time.perf_counter()
    bench = {b.name: b for b in prepare(args.workdir)}["llmrouter"]
    logs = split_logs(args.workdir, bench)
    base = champion(args.workdir, bench, logs, args.cache_dir)
    champion_router = load_router(base)
    audit = args.workdir / "retrain-audit.sqlite"
    served = serve_log(base, logs["traffic"], audit)
    print(f"served {served['requests']} requests, {served['explored']} explored", flush=True)

    results = {"served": served, "exploration": EXPLORATION, "champion": champion_router.version, "variants": {}}
    holdout_csv = None
    for cap in (5.0, 1.0, 20.0):  # the default first: its holdout is the one every variant is judged on
        out = args.workdir / "routers" / f"retrain-cap{cap:g}"
        config = RetrainConfig(audit=str(audit), base=str(base), out=str(out), outcomes=[str(logs["offline"])],
                               max_weight=cap, resamples=RESAMPLES, seed=SEED, cache_dir=args.cache_dir,
                               overwrite=True, workdir=str(args.workdir / f"retrain-cap{cap:g}.work"))
        result = retrain(config, log=lambda m, cap=cap: print(f"  [retrain cap {cap:g}] {m}", flush=True))
        decision = result.decision
        results["variants"][f"retrain, weights capped at {cap:g}"] = {
            "train_prompts": result.stats["train_prompts"], "holdout_prompts": result.stats["holdout_prompts"],
            "weighted_rows": result.stats["weighted_rows"], **{k: decision[k] for k in (
                "candidate", "incumbent", "improvement", "lower", "upper", "prompts")},
            "would_promote": bool(decision["lower"] >= 0)}
        holdout_csv = holdout_csv or Path(config.workdir) / "holdout-outcomes.csv"
    old = new_logs_only(args.workdir, bench, logs["offline"], audit, holdout_csv, args.cache_dir, champion_router)
    results["variants"] = {"new logs only (before)": {**old, "holdout_prompts": old["prompts"],
                                                       "would_promote": bool(old["lower"] >= 0)},
                           **results["variants"]}
    results["seconds"] = round(time.perf_counter() - started, 1)

    lines = ["# Retraining on real data (benchmarks/retrain.py)", "",
             f"LLMRouter, nine models. Champion `{results['champion']}` trained on {CHAMPION_PROMPTS:,} prompts of "
             f"train.json (a fifth held out); it served {served['requests']:,} other prompts with exploration "
             f"{EXPLORATION:g} ({served['explored']} explored), each call's logged score reported as its outcome; the "
             "rest of train.json and test.json form the offline evaluation log. Every challenger "
             "is judged against the champion on the same held-out prompts (complete prompts neither router trained "
             f"on), AIQ with a paired bootstrap ({RESAMPLES} resamples); `retrain` promotes when the 95 % lower "
             "bound of the improvement is >= 0.", "",
             "| challenger | trained on prompts | held-out prompts | AIQ challenger | AIQ champion | improvement | "
             "90 % interval | promoted by `retrain` |", "|---|---|---|---|---|---|---|---|"]
    for name, v in results["variants"].items():
        lines.append(f"| {name} | {v['train_prompts']:,} | {v['holdout_prompts']} | {v['candidate']:.4f} | "
                     f"{v['incumbent']:.4f} | {v['improvement']:+.4f} | [{v['lower']:+.4f}, {v['upper']:+.4f}] | "
                     f"{'yes' if v['would_promote'] else 'no'} |")
    lines += ["", f"One run, {results['seconds']} s on this machine."]
    return write_results(args.out, "retrain", "\n".join(lines), results)


if __name__ == "__main__":
    sys.exit(main())
