"""The loop on live traffic, through the service and its audit database (issue #21).

    .venv/bin/python -m benchmarks.live_loop [--workdir build/benchmarks] [--out benchmarks/results]
                                             [--splits 4] [--logs 5] [--requests 3000] [--quick]

LLMRouter's nine models (every prompt with every model's outcome: benchmarks/datasets.py), so
the truth the log never shows is known. For each seeded split of the prompts, a champion is
trained on CHAMPION_PROMPTS, a router of another kind "elsewhere" on others, and the rest is
live traffic. Each log is the real serving path: a `RoutingService` (router_ml.serve.service)
with an `AuditStore` (SQLite, prompts kept as text) and 10 % exploration (the default design)
routes `--requests` traffic prompts, and each served model's score and cost (from the complete
data: the outcome a client would report) is recorded with `record_outcomes`; nothing else of
the complete data reaches the log. Then, from the audit database alone:

(a) **Estimates against the truth.** `router-ml evaluate --audit`'s code
    (router_ml.training.evaluate.off_policy) estimates each router's quality and AIQ with the
    doubly robust estimator, and the same with inverse propensity weighting (its reward model
    set to zero); the truth is the same figure from the complete outcomes of the same logged
    prompts. Coverage of the 90 % intervals, mean absolute error and mean width, over
    splits x logs (>= 20 logs).
(b) **Retraining from the log alone.** Retraining's judgement (`compare_on_traffic`, what
    `retrain` runs on its live holdout) of a truly better router (trained on more prompts) and a
    truly worse one (kNN on few) against the champion, on growing logs, served with the default
    exploration and with the shadow design aimed at the challenger (`serve --shadow`): how often
    each is promoted. And `retrain` itself, from the audit log and the champion's own data only
    (no offline log), with three caps on the inverse-propensity weights: the challengers' true AIQ
    on held-out complete prompts, and whether retrain's decision was right.
(c) **Onboarding.** One model held back from the champion, put in the serving catalog with a
    price prior; served with `--onboarding-rate` ONBOARD_RATE until it has K outcomes; `retrain`
    with the catalog folds it in. The retrained router's AIQ on held-out complete prompts against
    a router trained with the model from the start (the champion's prompts plus the same log), by K.

Writes results/live_loop.md and .json. Runs for tens of minutes on two cores (the routers' MiniLM
embeddings are cached on disk after the first run); `--quick` is a smoke run (one split, two logs).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.datasets import prepare
from benchmarks.harness import Target, benchmark_parser, write_results

CHAMPION_PROMPTS = 1000
ELSEWHERE_PROMPTS = 1000
WORSE_PROMPTS = 200
HELD_OUT = 800  # complete prompts no router trains on: the truth for (b) and (c)
RATE = 0.1
ONBOARD_RATE = 0.25
ONBOARD_PRIOR = {"success": 0.8}  # an operator who expects much of the new model: it is tried on more traffic
ONBOARD_MODEL = "llama-3.1-nemotron-51b-instruct"  # the best and dearest of the nine: the hardest to onboard (ope_study)
ONBOARD_COUNTS = (100, 200, 400, 800, 1000)
WEIGHT_CAPS = (1.0, 5.0, 20.0)
SIZES = (1000, 2000, 4000)
STRATEGY = "per_model"


@dataclass
class Pool:
    frame: object  # the long outcomes table (pandas)
    prompts: list[str]
    models: list[str]
    scores: np.ndarray  # (N, m)
    costs: np.ndarray  # (N, m)
    catalog: Path


def load_pool(workdir: Path) -> Pool:
    import pandas as pd

    from router_ml.core.catalog import load_catalog
    from router_ml.training.data.outcomes import read_outcomes, to_routing_data

    bench = next(b for b in prepare(workdir) if b.name == "llmrouter")
    train, test = read_outcomes(bench.train), read_outcomes(bench.test)
    frame = pd.concat([train, test[~test["prompt_id"].isin(set(train["prompt_id"]))]], ignore_index=True)
    data = to_routing_data(frame, load_catalog(bench.catalog))
    order = {p: i for i, p in enumerate(data.prompts)}
    frame = frame.assign(row=frame["prompt"].map(order))
    return Pool(frame, data.prompts, data.models, data.scores, data.costs, bench.catalog)


def split(pool: Pool, seed: int) -> dict[str, np.ndarray]:
    order = np.random.default_rng(1000 + seed).permutation(len(pool.prompts))
    cut = np.cumsum([CHAMPION_PROMPTS, ELSEWHERE_PROMPTS, HELD_OUT])
    return {"champion": order[:cut[0]], "elsewhere": order[cut[0]:cut[1]], "held_out": order[cut[1]:cut[2]],
            "traffic": order[cut[2]:]}


def write_outcomes(pool: Pool, rows: np.ndarray, path: Path, models: list[str] | None = None) -> Path:
    frame = pool.frame[pool.frame["row"].isin(set(rows.tolist()))]
    if models is not None:
        frame = frame[frame["model"].isin(models)]
    path.parent.mkdir(parents=True, exist_ok=True)
    frame[["prompt_id", "prompt", "model", "score", "task"]].to_parquet(path, index=False)
    return path


def catalog_without(pool: Pool, path: Path, left_out: str | None, prior: dict | None = None) -> Path:
    import yaml

    data = yaml.safe_load(Path(pool.catalog).read_text())
    if left_out is not None and prior is None:
        data["models"].pop(left_out)
    elif prior is not None:
        data["models"][left_out]["prior"] = prior
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def train_router(outcomes: Path, catalog: Path, out: Path, strategy: str = STRATEGY, version: str = ""):
    from router_ml import load_router
    from router_ml.training.fit.pipeline import TrainConfig, train

    if not (out / "manifest.json").exists():
        train(TrainConfig(outcomes=str(outcomes), catalog=str(catalog), out=str(out), test_size=0.0,
                          strategy=strategy, mlflow=False, baselines=(), verifier=False, neighbours=False,
                          router_version=version or out.name), log=lambda _: None, progress=False)
    return load_router(out, decision_cache_size=0, embedding_cache_size=20_000)


def serve_log(pool: Pool, champion, rows: np.ndarray, audit: Path, seed: int, shadow=None, focus=None,
              onboarding=None) -> list:
    """The real serving path: route `rows` through a RoutingService and report each served outcome."""
    from router_ml.core.audit_format import Outcome
    from router_ml.policy.exploration import Exploration
    from router_ml.serve.audit import AuditStore
    from router_ml.serve.service import RoutingService

    if audit.exists():
        audit.unlink()
    exploration = Exploration(rate=RATE, focus=focus)
    service = RoutingService(str(champion.path), router=champion, audit=AuditStore(audit, prompt_storage="text"),
                             exploration=exploration, shadow=shadow, onboarding=onboarding, seed=seed,
                             max_batch=1000)
    index = {m: j for j, m in enumerate(pool.models)}
    served = []
    for start in range(0, len(rows), 500):
        chunk = rows[start:start + 500]
        decisions = service.route([pool.prompts[i] for i in chunk])
        service.record_outcomes([Outcome(s.request_id, s.model, score=float(pool.scores[i, index[s.model]]),
                                         cost=float(pool.costs[i, index[s.model]])) for s, i in zip(decisions, chunk)])
        served += decisions
    service.close()
    return served


def true_figures(router, pool: Pool, rows: np.ndarray, sweep) -> tuple[float, float]:
    """(quality at the default target, AIQ over the sweep and the single models) from the complete outcomes."""
    from router_ml.training.evaluate import metrics

    prompts = [pool.prompts[i] for i in rows]
    index = np.array([pool.models.index(m) for m in router.models])
    scores, costs = pool.scores[rows][:, index], pool.costs[rows][:, index]
    s = router.predict_scores(prompts)
    r = np.arange(len(rows))
    default = router.choose_indices(s, None)
    points = np.array([(costs[r, c].mean(), scores[r, c].mean()) for c in
                       (router.choose_indices(s, t) for t in [None, *sweep])])
    singles = np.column_stack([costs.mean(axis=0), scores.mean(axis=0)])
    return float(scores[r, default].mean()), float(metrics.aiq(points, singles))


def estimates(traffic, judged, estimator: str, seed: int) -> list[dict]:
    """DR (the product's) or IPS (its reward model set to zero) estimates of each router on `traffic`."""
    from router_ml.core.off_policy.estimators import resample_counts
    from router_ml.training.evaluate import off_policy

    predicted = off_policy.reward_predictions(traffic, seed=seed)
    if estimator == "ips":
        predicted = np.zeros_like(predicted)
    counts = resample_counts(len(traffic), off_policy.RESAMPLES, np.random.default_rng(seed + 1))
    return [off_policy.judge_router(j, traffic, counts, predicted, log=lambda _: None) for j in judged]


def part_a(pool: Pool, routers: dict, parts: dict, s: int, logs: int, requests: int, work: Path, log) -> list[dict]:
    from router_ml.training.evaluate.off_policy import SWEEP, Judged, read_traffic

    records = []
    truth_cache = {}
    for k in range(logs):
        rng = np.random.default_rng(10_000 * s + k)
        rows = rng.choice(parts["traffic"], size=min(requests, len(parts["traffic"])), replace=False)
        audit = work / f"a-{s}-{k}.sqlite"
        serve_log(pool, routers["champion"], rows, audit, seed=k)
        traffic = read_traffic(audit, log=lambda _: None)
        by_prompt = {p: i for i, p in zip(rows, [pool.prompts[i] for i in rows])}
        judged = [Judged(name, routers[name]) for name in ("champion", "elsewhere")]
        for estimator in ("dr", "ips"):
            for j, est in zip(judged, estimates(traffic, judged, estimator, seed=k)):
                used = np.array([by_prompt[p] for p in traffic.prompts])
                key = (j.label, k)
                if key not in truth_cache:
                    truth_cache[key] = true_figures(j.router, pool, used, [*SWEEP])
                quality, aiq = truth_cache[key]
                records.append({"split": s, "log": k, "router": j.label, "estimator": estimator,
                                "requests": est["requests"], "quality_truth": quality, "aiq_truth": aiq,
                                **{f"{f}_{p}": est[f][p] for f in ("quality", "aiq") for p in ("estimate", "low", "high")},
                                "thin": est["overlap"]["thin"], "widened": est["overlap"]["widened"]})
        log(f"  split {s} log {k}: champion quality truth {records[-4]['quality_truth']:.4f}, DR "
            f"[{records[-4]['quality_low']:.4f}, {records[-4]['quality_high']:.4f}]")
    return records


def part_b(pool: Pool, routers: dict, parts: dict, s: int, logs: int, work: Path, log) -> list[dict]:
    from router_ml.training.evaluate.off_policy import Judged, compare_on_traffic, read_traffic

    records = []
    from router_ml.training.evaluate.off_policy import SWEEP

    truths = {name: true_figures(routers[name], pool, parts["held_out"], SWEEP) for name in ("better", "worse", "champion")}
    for size in SIZES:
        for design in ("utility", "shadow"):
            for name in ("better", "worse"):
                for k in range(min(logs, 3)):
                    rng = np.random.default_rng(20_000 * s + 100 * size + k)
                    rows = rng.choice(parts["traffic"], size=min(size, len(parts["traffic"])), replace=False)
                    audit = work / f"b-{s}.sqlite"
                    shadow = routers[name] if design == "shadow" else None
                    serve_log(pool, routers["champion"], rows, audit, seed=k, shadow=shadow,
                              focus=0.02 if shadow is not None else None)
                    traffic = read_traffic(audit, log=lambda _: None)
                    c = compare_on_traffic(traffic, Judged(name, routers[name]), Judged("champion", routers["champion"]),
                                           seed=k, log=lambda _: None)
                    records.append({"split": s, "size": size, "design": design, "challenger": name, "log": k,
                                    "promoted": c.passed(), "quality_difference": c.quality["difference"]["estimate"],
                                    "truth_quality_difference": truths[name][0] - truths["champion"][0]})
        done = [x for x in records if x["size"] == size]
        log(f"  split {s}, {size} requests: promoted " + ", ".join(
            f"{name}/{design} {np.mean([x['promoted'] for x in done if (x['challenger'], x['design']) == (name, design)]):.0%}"
            for name in ("better", "worse") for design in ("utility", "shadow")))
    return records


def part_b_retrain(pool: Pool, routers: dict, parts: dict, s: int, requests: int, work: Path, log) -> list[dict]:
    """`retrain` itself from the audit log and the champion's data, one challenger per weight cap."""
    from router_ml import load_router
    from router_ml.training.loop.retrain import RetrainConfig, retrain

    rows = np.random.default_rng(30_000 + s).choice(parts["traffic"], size=min(requests, len(parts["traffic"])),
                                                    replace=False)
    audit = work / f"r-{s}.sqlite"
    serve_log(pool, routers["champion"], rows, audit, seed=s)
    from router_ml.training.evaluate.off_policy import SWEEP

    champion_truth = true_figures(routers["champion"], pool, parts["held_out"], SWEEP)
    out = []
    for cap in WEIGHT_CAPS:
        target = work / f"retrained-{s}-{cap:g}"
        import shutil

        shutil.rmtree(target, ignore_errors=True)
        result = retrain(RetrainConfig(audit=str(audit), base=str(routers["champion"].path), out=str(target),
                                       max_weight=cap, seed=s, promote=False), log=lambda _: None)
        challenger = load_router(target, decision_cache_size=0)
        truth = true_figures(challenger, pool, parts["held_out"], SWEEP)
        live = result.decision.get("live") or {}
        allowed = "refused" not in result.decision
        out.append({"split": s, "max_weight": cap, "requests": int(len(rows)), "truth_aiq": truth[1],
                    "truth_quality": truth[0], "champion_truth_aiq": champion_truth[1],
                    "champion_truth_quality": champion_truth[0], "would_promote": allowed,
                    "live_quality_difference": (live.get("quality") or {}).get("difference", {}).get("estimate"),
                    "right": (truth[1] >= champion_truth[1] and truth[0] >= champion_truth[0]) or not allowed})
        log(f"  split {s}, retrain with weights capped at {cap:g}: true AIQ {truth[1]:.4f} vs champion "
            f"{champion_truth[1]:.4f}; would promote: {allowed}")
    return out


def part_c(pool: Pool, parts: dict, s: int, work: Path, log) -> list[dict]:
    """Onboarding one held-back model: retrained router's AIQ by the number of its logged outcomes."""
    import shutil

    from router_ml import load_router
    from router_ml.core.catalog import load_catalog
    from router_ml.policy.onboarding import Onboarding
    from router_ml.training.loop.retrain import RetrainConfig, retrain

    others = [m for m in pool.models if m != ONBOARD_MODEL]
    base = work / f"c-{s}"
    champ_catalog = catalog_without(pool, base / "champion.yaml", ONBOARD_MODEL)
    champion = train_router(write_outcomes(pool, parts["champion"], base / "champion.parquet", others), champ_catalog,
                            base / "champion", version=f"c{s}-champion")
    serving = load_catalog(catalog_without(pool, base / "serving.yaml", ONBOARD_MODEL, prior=ONBOARD_PRIOR))
    onboarding = Onboarding.from_catalog(serving, champion.models, rate=ONBOARD_RATE)
    rows = np.concatenate([parts["traffic"], parts["elsewhere"]])  # every prompt no router here trains on
    from router_ml.training.evaluate.off_policy import SWEEP

    # The reference: the champion's prompts with the held-back model's outcomes, from the start.
    reference = train_router(write_outcomes(pool, parts["champion"], base / "reference.parquet"), pool.catalog,
                             base / "reference", version=f"c{s}-reference")
    ref = true_figures(reference, pool, parts["held_out"], SWEEP)[1]
    served = serve_log(pool, champion, rows, base / "audit.sqlite", seed=s, onboarding=onboarding)
    got = np.cumsum([x.model == ONBOARD_MODEL for x in served])
    out = []
    for count in ONBOARD_COUNTS:
        if got[-1] < count / 0.7:  # retrain keeps 70 % of the log to train on
            continue
        prefix = int(np.searchsorted(got, int(np.ceil(count / 0.7)))) + 1
        sub = base / f"audit-{count}.sqlite"
        served_sub = serve_log(pool, champion, rows[:prefix], sub, seed=s, onboarding=onboarding)
        target = base / f"retrained-{count}"
        shutil.rmtree(target, ignore_errors=True)
        result = retrain(RetrainConfig(audit=str(sub), base=str(champion.path), out=str(target),
                                       catalog=str(base / "serving.yaml"), min_new_outcomes=1, seed=s, promote=False),
                         log=lambda _: None)
        retrained = load_router(target, decision_cache_size=0)
        aiq = true_figures(retrained, pool, parts["held_out"], SWEEP)[1]
        outcomes = result.stats.get("onboarded", {}).get(ONBOARD_MODEL, 0)
        out.append({"split": s, "target_outcomes": count, "outcomes": int(outcomes), "requests": prefix,
                    "served_to_new": int(sum(x.model == ONBOARD_MODEL for x in served_sub)),
                    "aiq": aiq, "reference_aiq": ref, "gap": ref - aiq,
                    "in_router": ONBOARD_MODEL in retrained.models})
        log(f"  split {s}: {outcomes} outcomes of {ONBOARD_MODEL}: AIQ {aiq:.4f} vs from the start {ref:.4f}")
    return out


def summarise(a: list[dict], b: list[dict], retrained: list[dict], c: list[dict]) -> tuple[str, dict, list[Target]]:
    import pandas as pd

    lines = ["# The loop on live traffic (benchmarks/live_loop.py)", ""]
    targets: list[Target] = []
    figures: dict = {}
    if a:  # --parts leaves any part out
        targets, figures = _summarise_a(a, lines)
    if b:
        fb = pd.DataFrame(b)
        promo = fb.groupby(["challenger", "design", "size"])["promoted"].mean().reset_index()
        lines += ["", "## (b) Retraining's judgement from the log alone", "",
                  "Share of logs on which the challenger is promoted (both 95 % lower bounds, quality and AIQ, >= 0); "
                  f"true quality difference against the champion on held-out prompts: better "
                  f"{fb[fb.challenger == 'better']['truth_quality_difference'].mean():+.4f}, worse "
                  f"{fb[fb.challenger == 'worse']['truth_quality_difference'].mean():+.4f}.", "",
                  "| challenger | exploration | requests | promoted |", "|---|---|---|---|"]
        lines += [f"| {r.challenger} | {r.design} | {r.size} | {r.promoted:.0%} |" for r in promo.itertuples()]
        worse = float(fb[fb.challenger == "worse"]["promoted"].mean())
        targets.append(Target(f"a worse challenger promoted in no log: {worse:.0%}", worse, worse == 0.0))
        figures["b"] = promo.to_dict(orient="records")
    if retrained:
        fr = pd.DataFrame(retrained)
        lines += ["", "## (b) `retrain` from the audit log alone, by weight cap", "",
                  "| split | cap | requests | challenger true AIQ | champion true AIQ | would promote | decision right |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r.split} | {r.max_weight:g} | {r.requests} | {r.truth_aiq:.4f} | {r.champion_truth_aiq:.4f} | "
                  f"{'yes' if r.would_promote else 'no'} | {'yes' if r.right else 'NO'} |" for r in fr.itertuples()]
        figures["retrain"] = retrained
        targets.append(Target(f"retrain's decisions right: {int(fr['right'].sum())} of {len(fr)}",
                              float(fr["right"].mean()), bool(fr["right"].all())))
    if c:
        fc = pd.DataFrame(c)
        lines += ["", f"## (c) Onboarding {ONBOARD_MODEL}", "",
                  "| split | its outcomes | requests served | AIQ (retrained) | AIQ (from the start) | gap |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r.split} | {r.outcomes} | {r.requests} | {r.aiq:.4f} | {r.reference_aiq:.4f} | {r.gap:+.4f} |"
                  for r in fc.itertuples()]
        within = fc[(fc["outcomes"] <= 1000)].groupby("target_outcomes")["gap"].mean()
        best = float(within.min()) if len(within) else float("nan")
        targets.append(Target(f"onboarding within 0.01 AIQ with <= 1,000 outcomes: best mean gap {best:+.4f}", best,
                              bool(best <= 0.01)))
        figures["c"] = c
    return "\n".join(lines) + "\n", figures, targets


def _summarise_a(a: list[dict], lines: list[str]) -> tuple[list[Target], dict]:
    """Part (a)'s table (appended to `lines`), targets and figures."""
    import pandas as pd

    frame = pd.DataFrame(a)
    rows = []
    for (router, estimator), g in frame.groupby(["router", "estimator"]):
        for figure in ("quality", "aiq"):
            cover = ((g[f"{figure}_low"] <= g[f"{figure}_truth"]) & (g[f"{figure}_truth"] <= g[f"{figure}_high"])).mean()
            rows.append({"router": router, "estimator": estimator, "figure": figure, "logs": len(g),
                         "coverage": cover, "mae": (g[f"{figure}_estimate"] - g[f"{figure}_truth"]).abs().mean(),
                         "width": (g[f"{figure}_high"] - g[f"{figure}_low"]).mean(),
                         "width_p90": (g[f"{figure}_high"] - g[f"{figure}_low"]).quantile(0.9)})
    table = pd.DataFrame(rows)
    lines += ["## (a) Estimates against the truth", "",
              f"{int(frame['requests'].mean())} logged requests per log on average (of the served traffic, those a "
              "router was not trained on), 10 % exploration (utility design); 90 % intervals.", "",
              "| router | estimator | figure | logs | coverage | mean abs. error | mean width | width p90 |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.router} | {r.estimator.upper()} | {r.figure} | {r.logs} | {r.coverage:.0%} | {r.mae:.4f} | "
              f"{r.width:.4f} | {r.width_p90:.4f} |" for r in table.itertuples()]
    targets = [Target(f"DR quality coverage >= 0.85 ({router}): {cov:.2f}", cov, cov >= 0.85)
               for router, cov in table[(table.estimator == "dr") & (table.figure == "quality")]
               .set_index("router")["coverage"].items()]
    champ_width = table[(table.estimator == "dr") & (table.figure == "quality") & (table.router == "champion")]["width"]
    targets.append(Target(f"champion's DR quality interval <= 0.08 wide: {float(champ_width.iloc[0]):.3f}",
                          float(champ_width.iloc[0]), float(champ_width.iloc[0]) <= 0.08))
    figures = {"a": table.to_dict(orient="records")}
    return targets, figures


def main(argv=None) -> int:
    parser = benchmark_parser("live_loop", __doc__)
    parser.add_argument("--splits", type=int, default=4, help="seeded splits of the prompts")
    parser.add_argument("--logs", type=int, default=5, help="logs per split for (a) and (b)")
    parser.add_argument("--requests", type=int, default=3000, help="logged requests per log for (a)")
    parser.add_argument("--parts", default="a,b,c", help="which parts to run (a, b, c)")
    parser.add_argument("--quick", action="store_true", help="one split, two logs: a smoke run")
    args = parser.parse_args(argv)
    splits, logs = (1, 2) if args.quick else (args.splits, args.logs)
    parts_wanted = set(args.parts.split(","))
    started = time.perf_counter()
    pool = load_pool(args.workdir)
    if "c" in parts_wanted and ONBOARD_MODEL not in pool.models:  # before tens of minutes of parts (a) and (b)
        raise SystemExit(f"live_loop: part (c) onboards {ONBOARD_MODEL!r}, which is not among the set's models "
                         f"{pool.models}")
    work = args.workdir / "live_loop"
    a, b, retrained, c = [], [], [], []
    for s in range(splits):
        parts = split(pool, s)
        base = work / f"split-{s}"
        routers = {
            "champion": train_router(write_outcomes(pool, parts["champion"], base / "champion.parquet"), pool.catalog,
                                     base / "champion", version=f"s{s}-champion"),
            "elsewhere": train_router(write_outcomes(pool, parts["elsewhere"], base / "elsewhere.parquet"),
                                      pool.catalog, base / "elsewhere", "cheapest_successful", f"s{s}-elsewhere"),
        }
        print(f"split {s}: routers trained ({time.perf_counter() - started:.0f} s)")
        if "a" in parts_wanted:
            a += part_a(pool, routers, parts, s, logs, args.requests, base, print)
        if "b" in parts_wanted:
            both = np.concatenate([parts["champion"], parts["elsewhere"]])
            routers["better"] = train_router(write_outcomes(pool, both, base / "better.parquet"), pool.catalog,
                                             base / "better", "auto", f"s{s}-better")
            routers["worse"] = train_router(write_outcomes(pool, parts["elsewhere"][:WORSE_PROMPTS],
                                                           base / "worse.parquet"), pool.catalog, base / "worse",
                                            "knn", f"s{s}-worse")
            b += part_b(pool, routers, parts, s, logs, base, print)
            if s < 2:
                retrained += part_b_retrain(pool, routers, parts, s, 4000, base, print)
        if "c" in parts_wanted and s < 2:
            c += part_c(pool, parts, s, base, print)
    markdown, figures, targets = summarise(a, b, retrained, c)
    figures["settings"] = {"splits": splits, "logs": logs, "requests": args.requests, "rate": RATE,
                           "minutes": round((time.perf_counter() - started) / 60, 1)}
    markdown += f"\n{figures['settings']['minutes']} minutes; raw records in the JSON.\n"
    (work / "records.json").write_text(json.dumps({"a": a, "b": b, "retrain": retrained, "c": c}, default=float))
    return write_results(args.out, "live_loop", markdown, figures, targets)


if __name__ == "__main__":
    sys.exit(main())
