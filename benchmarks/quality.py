"""Routing quality on real data: router-ml beside learned baselines and random routing.

    .venv/bin/python benchmarks/quality.py [--workdir build/benchmarks] [--out benchmarks/results]

For each real set (benchmarks/datasets.py) this trains router-ml with the default
pipeline on the train side and evaluates it on the test side with the evaluation
module (training/evaluation.py): a sweep of `quality_target`, and on the same prompts
and the router's own embeddings, a kNN router (k=25, cosine), an MLP per model and, for
two models, RouteLLM's similarity-weighted ranking, all fitted on the same training
prompts, plus random mixing (RouterBench's zero router). It writes:

- results/quality.md: the comparison table and a per-target sweep of the router,
- results/quality.json: every number,
- results/<data set>/: the evaluation report folder (summary.md, report.json, plots).

Targets (issue 2): MMLU APGR >= 0.66; on LLMRouter the router reaches the best single
model's quality at <= 50 % of its cost; router-ml beats kNN on both. Embeddings are
cached (training.embed_cache), so a rerun only refits heads.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.datasets import REPO, prepare  # noqa: E402
from router_ml.artifact import atomic_write_text  # noqa: E402
from training.evaluation import comparison_rows, fmt, metrics_table  # noqa: E402
from training.pipeline import TrainConfig, train  # noqa: E402
from training.report import to_json_text, write_report  # noqa: E402

SWEEP_ROWS = (0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


def run(bench, workdir: Path, cache_dir: str | None) -> dict:
    out = workdir / "routers" / f"{bench.name}-auto"
    config = TrainConfig(
        outcomes=str(bench.train), test_outcomes=str(bench.test) if bench.test else None,
        catalog=str(bench.catalog) if bench.catalog else None, out=str(out), overwrite=True,
        test_size=bench.test_size, seed=bench.seed, mlflow=False, cache_dir=cache_dir,
        router_version=f"bench-{bench.name}",
    )
    started = time.perf_counter()
    result = train(config, log=lambda m: print(f"  [{bench.name}] {m}", flush=True), progress=False)
    strategy = result.manifest["strategy"]
    return {
        "strategy": f"{strategy['name']}({strategy['params']})" + (" calibrated routing" if strategy["route_on_calibrated"] else ""),
        "seconds": round(time.perf_counter() - started, 1),
        "report": result.report,
    }


def sweep_table(name: str, res: dict) -> str:
    report = res["report"]
    best = report["baselines"]["always_best"]
    by_target = {round(p["quality_target"], 4): p for p in report["curve"]}
    lines = [
        f"**{name}** ({report['prompts']} test prompts; router: {res['strategy']}; best single model {best['model']}: "
        f"quality {best['quality']:.4f} at ${best['mean_cost']:.3g} per prompt)",
        "",
        "| quality_target | quality | cost per prompt | cost vs best model |",
        "|---|---|---|---|",
    ]
    for t in SWEEP_ROWS:
        p = by_target[t]
        lines.append(f"| {t:g} | {p['quality']:.4f} | {p['mean_cost']:.3g} | {p['mean_cost'] / best['mean_cost']:.2f} |")
    d = report["default"]
    lines.append(f"\nDefault target {d['quality_target']:g} (chosen on validation data): quality {d['quality']:.4f} "
                 f"at ${d['mean_cost']:.3g} per prompt ({d['mean_cost'] / best['mean_cost']:.2f} of the best model's cost).")
    return "\n".join(lines)


def targets(results: dict) -> list[tuple[str, bool]]:
    mmlu, llm = results["routellm-mmlu"]["report"], results["llmrouter"]["report"]
    r_m, k_m = mmlu["metrics"], mmlu["baselines"]["learned"]["knn"]["metrics"]
    r_l, k_l = llm["metrics"], llm["baselines"]["learned"]["knn"]["metrics"]
    ctm, k_ctm = r_l["cost_to_match_best"], k_l["cost_to_match_best"]
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
        results[bench.name] = run(bench, args.workdir, args.cache_dir)
        write_report(results[bench.name]["report"], args.out / bench.name)

    sections = ["# Routing quality on real data (benchmarks/quality.py)", ""]
    for name, res in results.items():
        report = res["report"]
        rows = [("router-ml" if i == 0 else label, m) for i, (label, m) in enumerate(comparison_rows(report))]
        sections += [f"## {name}: {report['prompts']} test prompts", "",
                     metrics_table(rows, report["strong_model"] is not None), "", sweep_table(name, res),
                     "", f"Plots and per-task figures: [{name}/summary.md]({name}/summary.md).", ""]
    checks = targets(results)
    sections += ["## Targets", *[f"- {'PASS' if ok else 'FAIL'}: {label}" for label, ok in checks]]
    text = "\n".join(sections) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "quality.md", text)
    atomic_write_text(args.out / "quality.json", to_json_text(
        {"results": {k: {"strategy": v["strategy"], "seconds": v["seconds"], "metrics": v["report"]["metrics"],
                         "baselines": {n: b["metrics"] for n, b in v["report"]["baselines"]["learned"].items()},
                         "random_mixing": v["report"]["baselines"]["random_mixing"], "default": v["report"]["default"]}
                     for k, v in results.items()},
         "targets": [{"target": label, "pass": ok} for label, ok in checks]}))
    print(text)
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
