"""Routing quality on real data: router-ml against a kNN router and random routing.

    .venv/bin/python benchmarks/quality.py [--workdir build/benchmarks] [--out benchmarks/results]

For each real set (benchmarks/datasets.py) this trains router-ml with the default
pipeline on the train side, trains a kNN router (k=25, cosine, same embeddings, same
policy trading estimated success against cost) the same way, routes the test side over
a sweep of `quality_target` (0 to 1 in steps of 0.01), and writes:

- results/quality.md: the comparison table and a per-target sweep table,
- results/quality.json: every number.

Random routing is the zero router of RouterBench (random mixing of single models): its
curve is the hull of the single models, so its cost to match the best model is 1 and,
for two models, its APGR is 0.5. Targets (issue 2): MMLU APGR >= 0.66; LLMRouter
reaches the best single model's quality at <= 50 % of its cost; router-ml beats kNN on
both. Embeddings are cached (training.embed_cache), so a rerun only retrains heads.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.datasets import REPO, prepare  # noqa: E402
from router_ml.artifact import atomic_write_text  # noqa: E402
from training import metrics  # noqa: E402
from training.pipeline import TrainConfig, train  # noqa: E402

SWEEP_ROWS = (0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


def fmt(value, spec=".4f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def run_router(bench, strategy: str, workdir: Path, cache_dir: str | None) -> dict:
    out = workdir / "routers" / f"{bench.name}-{strategy}"
    config = TrainConfig(
        outcomes=str(bench.train), test_outcomes=str(bench.test) if bench.test else None,
        catalog=str(bench.catalog) if bench.catalog else None, out=str(out), overwrite=True,
        test_size=bench.test_size, seed=bench.seed, strategy=strategy, mlflow=False, cache_dir=cache_dir,
        router_version=f"bench-{bench.name}-{strategy}",
    )
    started = time.perf_counter()
    result = train(config, log=lambda m: print(f"  [{bench.name}/{strategy}] {m}", flush=True), progress=False)
    report = result.report
    return {
        "strategy": f"{result.manifest['strategy']['name']}({result.manifest['strategy']['params']})"
        + (" calibrated routing" if result.manifest["strategy"]["route_on_calibrated"] else ""),
        "train_seconds": round(time.perf_counter() - started, 1),
        "report": report,
    }


def random_row(report: dict) -> dict:
    """The zero router's figures from the single-model points of the same test prompts."""
    singles = np.array([[v["mean_cost"], v["quality"]] for v in report["baselines"]["single_models"].values()])
    row = {
        "aiq": report["metrics"]["aiq_zero_router"],
        "gap_closed": 0.0,
        "cost_to_match_best": metrics.cost_to_match(singles, singles),
        "quality_at_best_cost": metrics.quality_at_best_cost(singles, singles),
        "ece": None,
    }
    if "apgr" in report["metrics"]:
        row.update(apgr=0.5, cpt50=0.5, cpt80=0.8)
    return row


def summary_table(results: dict) -> str:
    lines = [
        "| data set | test prompts | router | AIQ | gap closed | cost to match best | quality at best's cost | APGR | CPT(50%) | CPT(80%) | ECE |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        n = res["router"]["report"]["prompts"]
        rows = [("router-ml", res["router"]["report"]["metrics"]), ("kNN k=25", res["knn"]["report"]["metrics"]),
                ("random mixing", res["random"])]
        for label, m in rows:
            lines.append(
                f"| {name} | {n} | {label} | {fmt(m['aiq'])} | {fmt(m['gap_closed'], '.3f')} | "
                f"{fmt(m['cost_to_match_best'], '.3f')} | {fmt(m['quality_at_best_cost'])} | {fmt(m.get('apgr'), '.3f')} | "
                f"{fmt(m.get('cpt50'), '.3f')} | {fmt(m.get('cpt80'), '.3f')} | {fmt(m.get('ece'), '.3f')} |"
            )
    return "\n".join(lines)


def sweep_table(name: str, res: dict) -> str:
    report = res["router"]["report"]
    best = report["baselines"]["always_best"]
    by_target = {round(p["quality_target"], 4): p for p in report["curve"]}
    knn = {round(p["quality_target"], 4): p for p in res["knn"]["report"]["curve"]}
    lines = [
        f"**{name}** (router: {res['router']['strategy']}; best single model {best['model']}: quality "
        f"{best['quality']:.4f} at ${best['mean_cost']:.3g} per prompt)",
        "",
        "| quality_target | router quality | router cost/prompt | cost vs best | kNN quality | kNN cost/prompt |",
        "|---|---|---|---|---|---|",
    ]
    for t in SWEEP_ROWS:
        p, k = by_target[t], knn[t]
        lines.append(f"| {t:g} | {p['quality']:.4f} | {p['mean_cost']:.3g} | {p['mean_cost'] / best['mean_cost']:.2f} | "
                     f"{k['quality']:.4f} | {k['mean_cost']:.3g} |")
    d = report["default"]
    lines.append(f"\nDefault target {d['quality_target']:g} (chosen on validation data): quality {d['quality']:.4f} "
                 f"at ${d['mean_cost']:.3g} per prompt ({d['mean_cost'] / best['mean_cost']:.2f} of the best model's cost).")
    return "\n".join(lines)


def targets(results: dict) -> list[tuple[str, bool]]:
    mmlu, llm = results["routellm-mmlu"], results["llmrouter"]
    r_m, k_m = mmlu["router"]["report"]["metrics"], mmlu["knn"]["report"]["metrics"]
    r_l, k_l = llm["router"]["report"]["metrics"], llm["knn"]["report"]["metrics"]
    ctm = r_l["cost_to_match_best"]
    k_ctm = k_l["cost_to_match_best"]
    return [
        (f"RouteLLM MMLU APGR >= 0.66: {r_m['apgr']:.3f}", r_m["apgr"] >= 0.66),
        (f"LLMRouter cost to match the best model <= 0.50: {fmt(ctm, '.3f')}", not math.isnan(ctm) and ctm <= 0.5),
        (f"beats kNN on MMLU (APGR {r_m['apgr']:.3f} vs {k_m['apgr']:.3f}, AIQ {r_m['aiq']:.4f} vs {k_m['aiq']:.4f})",
         r_m["apgr"] > k_m["apgr"] and r_m["aiq"] > k_m["aiq"]),
        (f"beats kNN on LLMRouter (AIQ {r_l['aiq']:.4f} vs {k_l['aiq']:.4f}, cost to match {fmt(ctm, '.3f')} vs {fmt(k_ctm, '.3f')})",
         r_l["aiq"] > k_l["aiq"] and (math.isnan(k_ctm) or (not math.isnan(ctm) and ctm < k_ctm))),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "build" / "benchmarks")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: ~/.cache/router-ml)")
    args = parser.parse_args(argv)

    results = {}
    for bench in prepare(args.workdir):
        print(f"== {bench.name}", flush=True)
        router = run_router(bench, "auto", args.workdir, args.cache_dir)
        knn = run_router(bench, "knn", args.workdir, args.cache_dir)
        results[bench.name] = {"router": router, "knn": knn, "random": random_row(router["report"])}

    checks = targets(results)
    text = "\n\n".join(
        ["# Routing quality on real data (benchmarks/quality.py)", summary_table(results)]
        + [sweep_table(name, res) for name, res in results.items()]
        + ["## Targets\n" + "\n".join(f"- {'PASS' if ok else 'FAIL'}: {label}" for label, ok in checks)]
    ) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "quality.md", text)
    atomic_write_text(args.out / "quality.json", json.dumps(
        {"results": results, "targets": [{"target": label, "pass": ok} for label, ok in checks]}, indent=1, default=str))
    print(text)
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
