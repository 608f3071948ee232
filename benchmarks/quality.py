"""Routing quality on real data: router-ml beside learned baselines and random routing.

    .venv/bin/python -m benchmarks.quality [--workdir build/benchmarks] [--out benchmarks/results] [--skip-onnx]

For each real set (benchmarks/datasets.py) this trains router-ml with the default
pipeline on the train side and evaluates it on the test side with the evaluation
module (training/evaluate/evaluation.py): a sweep of `quality_target`, and on the same prompts
and the router's own embeddings, a kNN router (k=25, cosine), an MLP per model and, for
two models, RouteLLM's similarity-weighted ranking, all fitted on the same training
prompts, plus random mixing (RouterBench's zero router). It writes:

- results/quality.md: the comparison table and a per-target sweep of the router,
- results/quality.json: every number,
- results/<data set>/: the evaluation report folder (summary.md, report.json, plots).

Then the embedders, on the same split and with the same head selection: MiniLM (torch,
the router above), the static embedder distilled from it seeing the whole prompt and
seeing its last 254 tokens (the MiniLM window's rule), and MiniLM and static concatenated.
Each is compared with MiniLM on the same test prompts by a paired bootstrap
(router_ml.training.evaluate.comparison): the improvement in AIQ and in the set's headline metric (APGR for
two models, gap closed otherwise), with 90 % intervals. That table chooses the default
embedder (README).

Then it converts each router to the ONNX backend at both precisions (`router-ml convert
--precision int8|fp32 --force`, same head) and evaluates the converted routers on the
same test prompts: the "ONNX parity" table gives every metric's change, the cosine of
the test prompts' vectors to torch's and the share of identical routes at the default
target.

Targets (issue 2): MMLU APGR >= 0.66; on LLMRouter the router reaches the best single
model's quality at <= 50 % of its cost; router-ml beats kNN on both. (Issue 4): the
ONNX router's vectors have cosine >= 0.98 to torch's, its routes agree on >= 97 % at the
default target, and no metric is worse by more than 0.005. (Issue 23): on every set the router
is not shown worse than any baseline the project ships (kNN, MLP, SW ranking for two models,
per-model logistic, the blend): each 90 % paired interval of router minus baseline, on AIQ and
the set's headline metric, reaches 0 or above. `--skip-embedders` and `--skip-onnx` leave
those sections out. Embeddings are cached
(router_ml.training.embed.cache), so a rerun only refits heads.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from benchmarks.datasets import prepare, test_data
from benchmarks.harness import Target, benchmark_parser, write_results

SWEEP_ROWS = (0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


def run(bench, workdir: Path, cache_dir: str | None) -> dict:
    from router_ml.training.fit.pipeline import TrainConfig, train

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
        "strategy": f"{strategy['name']}({strategy['params']})",
        "seconds": round(time.perf_counter() - started, 1),
        "report": result.report,
        "router": str(out),
    }


LOWER_IS_BETTER = {"cost_to_match_best", "cpt50", "cpt80", "ece"}
RESAMPLES = 1000


class Concatenated:
    """Two embedders side by side: each part's unit vector, concatenated, scaled back to unit length."""

    kind = "concat"

    def __init__(self, parts) -> None:
        self.parts = parts
        self.dim = sum(p.dim for p in parts)
        self.model_id = self.id = "concat(" + ",".join(p.id for p in parts) + ")"

    def encode(self, texts, progress=False):
        import numpy as np

        return np.hstack([p.encode(list(texts)) for p in self.parts]) / np.sqrt(len(self.parts))

    encode_prepared = encode

    def truncate(self, texts):
        return list(texts)

    def spec(self):
        return {"kind": self.kind, "dim": self.dim, "parts": [p.spec() for p in self.parts]}

    def files(self):
        return {}


def embedder_variants(bench, minilm: dict, workdir: Path, cache_dir) -> dict:
    """Static (whole, tail 254) and MiniLM+static routers, each compared with MiniLM, paired."""
    import json as jsonlib

    from router_ml import load_router
    from router_ml.core.embedders.sentence_transformer import SentenceTransformerEmbedder
    from router_ml.core.embedders.static import StaticEmbedder
    from router_ml.core.router import Router
    from router_ml.training.embed.cache import DiskCachedEmbedder
    from router_ml.training.embed.static_distill import distill_static
    from router_ml.training.evaluate.comparison import paired_comparison
    from router_ml.training.fit.pipeline import TrainConfig, train

    data = test_data(bench)
    headline = "apgr" if len(data.models) == 2 else "gap_closed"
    reference = load_router(minilm["router"], decision_cache_size=0)
    static_files = distill_static("minilm", cache_dir, log=lambda m: print(f"  [{bench.name}] {m}", flush=True))
    variants = {
        "static, whole prompt": {"embedder_kind": "static", "static_max_tokens": 0},
        "static, last 254 tokens": {"embedder_kind": "static", "static_max_tokens": 254},
        "MiniLM + static": {"embedder": Concatenated([SentenceTransformerEmbedder(), StaticEmbedder(static_files)])},
    }
    out = {}
    for label, settings in variants.items():
        embedder = settings.pop("embedder", None)
        slug = label.replace(",", "").replace(" + ", "-").replace(" ", "-")
        target = workdir / "routers" / f"{bench.name}-{slug}"
        config = TrainConfig(
            outcomes=str(bench.train), test_outcomes=str(bench.test) if bench.test else None,
            catalog=str(bench.catalog) if bench.catalog else None, out=str(target), overwrite=True,
            test_size=bench.test_size, seed=bench.seed, mlflow=False, cache_dir=cache_dir, baselines=(),
            router_version=f"bench-{bench.name}-{slug}", **settings)
        started = time.perf_counter()
        result = train(config, log=lambda m, label=label: print(f"  [{bench.name} {label}] {m}", flush=True),
                       progress=False, embedder=embedder)
        if embedder is None:
            router = load_router(target, decision_cache_size=0)
        else:  # not a registered kind: built from what training wrote, with the same embedder
            manifest = jsonlib.loads((target / "manifest.json").read_text())
            router = Router(manifest, result.head, embedder, embedding_cache_size=0)
        cached = (DiskCachedEmbedder(router.embedder.embedder, cache_dir),
                  DiskCachedEmbedder(reference.embedder.embedder, cache_dir))  # vectors from training's cache
        comparisons = {metric: paired_comparison(router, reference, data, metric, resamples=RESAMPLES,
                                                 embedders=cached).to_dict()
                       for metric in ("aiq", headline)}
        strategy = result.manifest["strategy"]
        out[label] = {"strategy": f"{strategy['name']}({strategy['params']})", "metrics": result.report["metrics"],
                      "seconds": round(time.perf_counter() - started, 1), "versus_minilm": comparisons,
                      "router": str(target)}
        print(f"  [{bench.name} {label}] vs MiniLM: " + "; ".join(
            f"{m} {c['improvement']:+.4f} [{c['lower']:+.4f}, {c['upper']:+.4f}]" for m, c in comparisons.items()),
            flush=True)
    return {"headline": headline, "variants": out}


def embedder_table(results: dict) -> str:
    from router_ml.training.evaluate.evaluation import fmt

    lines = ["| data set | embedder | head | AIQ | headline metric | AIQ vs MiniLM (90 % interval) | "
             "headline vs MiniLM (90 % interval) |", "|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        head = res["embedders"]["headline"]
        lines.append(f"| {name} | MiniLM (torch) | {res['strategy']} | {res['report']['metrics']['aiq']:.4f} | "
                     f"{head} {fmt(res['report']['metrics'].get(head))} | - | - |")
        for label, v in res["embedders"]["variants"].items():
            a, h = v["versus_minilm"]["aiq"], v["versus_minilm"][head]
            lines.append(f"| {name} | {label} | {v['strategy']} | {v['metrics']['aiq']:.4f} | "
                         f"{head} {fmt(v['metrics'].get(head))} | {a['improvement']:+.4f} [{a['lower']:+.4f}, "
                         f"{a['upper']:+.4f}] | {h['improvement']:+.4f} [{h['lower']:+.4f}, {h['upper']:+.4f}] |")
    return "\n".join(lines)


def onnx_parity(bench, res: dict, workdir: Path, cache_dir) -> dict:
    """Convert the router to ONNX at each precision and evaluate it on the same test prompts."""
    import numpy as np

    from router_ml import load_router
    from router_ml.training.embed.onnx_convert import convert_router, embedding_agreement
    from router_ml.training.evaluate.evaluation import evaluate_router

    test = test_data(bench)
    torch_router = load_router(res["router"], decision_cache_size=0)
    base = res["report"]["metrics"]
    out = {}
    for precision in ("int8", "fp32"):
        target = workdir / "routers" / f"{bench.name}-onnx-{precision}"
        convert_router(res["router"], target, precision=precision, force=True, overwrite=True, cache_dir=cache_dir,
                       log=lambda m: print(f"  [{bench.name} convert] {m}", flush=True))
        onnx_router = load_router(target, decision_cache_size=0)
        report = evaluate_router(onnx_router, test, baselines=(), source=str(bench.test or bench.train))
        proof = embedding_agreement(torch_router, onnx_router.embedder, test.prompts)
        worse = {}
        for key, value in report["metrics"].items():
            if key in base and value is not None and base[key] is not None and np.isfinite(value) and np.isfinite(base[key]):
                worse[key] = (value - base[key]) if key in LOWER_IS_BETTER else (base[key] - value)
        out[precision] = {"metrics": report["metrics"], "worse_by": worse, **proof,
                          "max_worse": max(worse.values()) if worse else 0.0}
    return out


def parity_table(results: dict) -> str:
    lines = ["| data set | precision | cosine mean | cosine 1st pct | routes agree (default target) | AIQ | largest metric loss (which) |",
             "|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        for precision, p in res.get("onnx", {}).items():
            which = max(p["worse_by"], key=p["worse_by"].get) if p["worse_by"] else "-"
            lines.append(f"| {name} | {precision} | {p['mean_cosine']:.4f} | {p['p1_cosine']:.4f} | {p['route_agreement']:.1%} | "
                         f"{p['metrics']['aiq']:.4f} (torch {res['report']['metrics']['aiq']:.4f}) | {p['max_worse']:+.4f} ({which}) |")
    return "\n".join(lines)


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


def targets(results: dict) -> list[Target]:
    from router_ml.training.evaluate.evaluation import fmt

    mmlu, llm = results["routellm-mmlu"]["report"], results["llmrouter"]["report"]
    r_m, k_m = mmlu["metrics"], mmlu["baselines"]["learned"]["knn"]["metrics"]
    r_l, k_l = llm["metrics"], llm["baselines"]["learned"]["knn"]["metrics"]
    ctm, k_ctm = r_l["cost_to_match_best"], k_l["cost_to_match_best"]
    return [
        Target(f"RouteLLM MMLU APGR >= 0.66: {r_m['apgr']:.3f}", r_m["apgr"], r_m["apgr"] >= 0.66),
        Target(f"LLMRouter cost to match the best model <= 0.50: {fmt(ctm, '.3f')}", ctm,
               not math.isnan(ctm) and ctm <= 0.5),
        Target(f"beats kNN on MMLU (APGR {r_m['apgr']:.3f} vs {k_m['apgr']:.3f}, AIQ {r_m['aiq']:.4f} vs {k_m['aiq']:.4f})",
               {"apgr": r_m["apgr"], "knn_apgr": k_m["apgr"], "aiq": r_m["aiq"], "knn_aiq": k_m["aiq"]},
               r_m["apgr"] > k_m["apgr"] and r_m["aiq"] > k_m["aiq"]),
        Target(f"beats kNN on LLMRouter (AIQ {r_l['aiq']:.4f} vs {k_l['aiq']:.4f}, cost to match {fmt(ctm, '.3f')} vs {fmt(k_ctm, '.3f')})",
               {"aiq": r_l["aiq"], "knn_aiq": k_l["aiq"], "cost_to_match_best": ctm, "knn_cost_to_match_best": k_ctm},
               r_l["aiq"] > k_l["aiq"] and (math.isnan(k_ctm) or (not math.isnan(ctm) and ctm < k_ctm))),
    ]


def main(argv=None) -> int:
    parser = benchmark_parser("quality", __doc__)
    parser.add_argument("--skip-onnx", action="store_true", help="leave out the ONNX parity section")
    parser.add_argument("--skip-embedders", action="store_true", help="leave out the embedders section")
    args = parser.parse_args(argv)
    from router_ml.training.evaluate.evaluation import comparison_rows, metrics_table, versus_lines
    from router_ml.training.evaluate.report import write_report

    results = {}
    for bench in prepare(args.workdir):
        print(f"== {bench.name}", flush=True)
        results[bench.name] = run(bench, args.workdir, args.cache_dir)
        write_report(results[bench.name]["report"], args.out / bench.name)
        if not args.skip_embedders:
            results[bench.name]["embedders"] = embedder_variants(bench, results[bench.name], args.workdir,
                                                                 args.cache_dir)
        if not args.skip_onnx:
            results[bench.name]["onnx"] = onnx_parity(bench, results[bench.name], args.workdir, args.cache_dir)

    sections = ["# Routing quality on real data (benchmarks/quality.py)", ""]
    for name, res in results.items():
        report = res["report"]
        rows = [("router-ml" if i == 0 else label, m) for i, (label, m) in enumerate(comparison_rows(report))]
        sections += [f"## {name}: {report['prompts']} test prompts", "",
                     f"The head chosen by training: `{res['strategy']}` (trained in {res['seconds']:.0f} s).", "",
                     metrics_table(rows, report["strong_model"] is not None), *versus_lines(report.get("versus_baselines")
                                                                                            or {}), "",
                     sweep_table(name, res),
                     "", f"Plots and per-task figures: [{name}/summary.md]({name}/summary.md).", ""]
    if not args.skip_embedders:
        sections += ["## Embedders", "",
                     "Each embedder with the project's own head selection on the same training prompts, evaluated on "
                     "the same test prompts, and compared with MiniLM by a paired bootstrap over those prompts "
                     f"({RESAMPLES} resamples): an improvement is the embedder's metric minus MiniLM's.", "",
                     embedder_table(results), ""]
    if not args.skip_onnx:
        sections += ["## ONNX parity", "",
                     "The same routers converted to the ONNX backend (same head), on the same test prompts. "
                     "A loss is how much worse the converted router is on a metric (negative: better).", "",
                     parity_table(results), ""]
    checks = targets(results)
    for name, res in results.items():  # issue 23: never shown worse than a baseline we ship
        versus = res["report"].get("versus_baselines") or {}
        worst = {f"{b} {m}": v["upper"] for b, by_metric in versus.items() for m, v in by_metric.items()}
        checks.append(Target(
            f"{name}: the chosen router is not shown worse than any shipped baseline (every 90 % paired interval "
            f"of router minus baseline reaches 0 or above; lowest upper bound {min(worst.values(), default=math.nan):+.4f})",
            worst, bool(worst) and all(u >= 0 for u in worst.values())))
    for name, res in results.items():
        for precision, p in res.get("onnx", {}).items():
            checks.append(Target(
                f"{name} ONNX {precision}: cosine {p['mean_cosine']:.4f} (1st pct {p['p1_cosine']:.4f}) >= 0.98, "
                f"routes agree {p['route_agreement']:.1%} >= 97 %, largest metric loss {p['max_worse']:+.4f} <= 0.005",
                {k: p[k] for k in ("mean_cosine", "p1_cosine", "route_agreement", "max_worse")},
                p["p1_cosine"] >= 0.98 and p["route_agreement"] >= 0.97 and p["max_worse"] <= 0.005))
    figures = {"results": {k: {"strategy": v["strategy"], "seconds": v["seconds"], "metrics": v["report"]["metrics"],
                               "baselines": {n: b["metrics"] for n, b in v["report"]["baselines"]["learned"].items()},
                               "random_mixing": v["report"]["baselines"]["random_mixing"],
                               "default": v["report"]["default"]}
                           for k, v in results.items()},
               "onnx_parity": {k: v.get("onnx") for k, v in results.items()},
               "versus_baselines": {k: v["report"].get("versus_baselines") for k, v in results.items()},
               "embedders": {k: v.get("embedders") for k, v in results.items()}}
    return write_results(args.out, "quality", "\n".join(sections), figures, checks)


if __name__ == "__main__":
    sys.exit(main())
