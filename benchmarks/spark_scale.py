"""Spark at scale on this machine: embedding and routing in `local[2]` against one process, per embedder kind.

    .venv/bin/python -m benchmarks.spark_scale [--workdir build/benchmarks] [--out benchmarks/results]
        [--prompts 100000] [--onnx-prompts 10000] [--torch-prompts 4000] [--part all|throughput|training]

Prompts: 100,000 distinct ones, drawn from the shared sets (RouteLLM MMLU and GSM8K,
LLMRouter train and test) and, beyond their ~20,000 distinct texts, lightly perturbed (a
different question prefix, a request id suffix) so that no two are equal and no cache
could help. Routers: trained on LLMRouter's training set with the latency benchmark's
recipe (static embedder; MiniLM on torch; MiniLM as ONNX fp32), one per embedder kind.

For each kind, in this one run and on the same prompts:

- **one process**: `embedder.encode(prompts)` (the embedding step of training) and
  `router.route_batch(prompts)` (batch routing, caches off), in the driver process,
  which may use both cores (torch's and onnxruntime's thread pools);
- **Spark `local[2]`**: the embedding step of `train --spark-master`
  (`SparkCachedEmbedder.encode` into a fresh Parquet cache and the vectors back on the
  driver) and `route_dataframe` written to Parquet, two Python workers with one thread
  each (Spark sets OMP_NUM_THREADS to the task's cores). A 200-prompt warm-up job first
  starts the workers and loads the router in each (paid once per job on a cluster,
  reported separately);
- whether Spark's decisions equal `route_batch`'s, prompt for prompt, and the vectors
  the cache returns equal the embedder's.

Per-core throughput = prompts / s / 2 for both (two cores each). MiniLM on torch and
ONNX run on subsets (`--torch-prompts`, `--onnx-prompts`): 100,000 prompts would take
minutes per phase at their speed without telling more. The README's capacity table is
computed from these per-core figures. Writes results/spark_scale.md and .json.

Then the driver's memory (`--part training`): LLMRouter's training log grown to 6,000
and 24,000 prompts (copies of its prompts with a prefix and request id, keeping their
outcomes), trained in one process and through Spark, each in a fresh process; the peak
resident memory of the Python driver, where the heads are fitted: the README's memory
rule. Writes results/spark_training.md and .json.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.datasets import SHARED, prepare
from benchmarks.harness import REPO, benchmark_parser, write_results
from router_ml import load_router

PREFIXES = ("", "Question: ", "Please answer the following. ", "Q: ", "I need help with this: ", "Task: ",
            "Can you answer this? ", "Quick one: ")
KINDS = ("static", "onnx-fp32", "torch")


def distinct_prompts(workdir: Path, n: int, seed: int = 0) -> tuple[list[str], int]:
    """`n` distinct prompts from the shared sets, lightly perturbed beyond their distinct texts (module
    docstring), and how many distinct texts the sets have."""
    from router_ml.training.data.outcomes import read_outcomes

    pool: list[str] = []
    for bench in prepare(workdir):
        for path in (bench.train, bench.test):
            if path is not None:
                pool += read_outcomes(path)["prompt"].tolist()
    pool = list(dict.fromkeys(pool))
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    for i in range(n):
        base = pool[int(rng.integers(len(pool)))] if i >= len(pool) else pool[i]
        prompt = base if i < len(pool) else f"{PREFIXES[i % len(PREFIXES)]}{base} (request {i})"
        if prompt not in seen:
            seen.add(prompt)
            out.append(prompt)
    rng.shuffle(out)
    return out, len(pool)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def one_process(router_dir: Path, prompts: list[str]) -> dict:
    router = load_router(router_dir, decision_cache_size=0, embedding_cache_size=0)
    embedder = router.embedder.embedder
    embedder.encode(prompts[:64])  # warm: thread pools, first-call allocations
    vectors, embed_s = timed(lambda: embedder.encode(prompts))
    decisions, route_s = timed(lambda: router.route_batch(prompts))
    return {"embed_s": embed_s, "route_s": route_s, "vectors": vectors, "models": [d.model for d in decisions]}


def on_spark(spark, router_dir: Path, prompts: list[str], scratch: Path) -> dict:
    import pandas as pd

    from router_ml.core.spark import parallelism, route_dataframe
    from router_ml.training.embed.spark import SparkCachedEmbedder, router_embedder_factory

    router = load_router(router_dir, decision_cache_size=0, embedding_cache_size=0)
    frame = spark.createDataFrame(pd.DataFrame({"prompt": prompts})).repartition(
        parallelism(spark) * 4).cache()
    frame.count()
    warm = spark.createDataFrame(pd.DataFrame({"prompt": prompts[:200]})).repartition(parallelism(spark))
    _, warm_s = timed(lambda: route_dataframe(warm, str(router_dir)).write.parquet(str(scratch / "warm")))
    cached = SparkCachedEmbedder(router.embedder.embedder, spark, router_embedder_factory(str(router_dir)),
                                 scratch / "cache", log=lambda m: print(f"    {m}", flush=True))
    cached.encode([f"warm-up prompt {i}" for i in range(200)])  # start the workers' embedders (not timed)
    vectors, embed_s = timed(lambda: cached.encode(prompts))
    _, route_s = timed(lambda: route_dataframe(frame, str(router_dir)).write.parquet(str(scratch / "decisions")))
    routed = spark.read.parquet(str(scratch / "decisions")).toPandas().set_index("prompt")["model"]
    frame.unpersist()
    return {"embed_s": embed_s, "route_s": route_s, "warmup_s": warm_s, "vectors": vectors,
            "models": routed.loc[prompts].tolist()}


# Run as `python -c TRAIN_PROBE CONFIG` with the repository root as the working directory, so the child imports
# router_ml exactly as this process does (`python -m benchmarks.spark_scale` from the root).
TRAIN_PROBE = """
import json, sys, time
from router_ml.training.fit.pipeline import TrainConfig, train
config = TrainConfig(**json.loads(sys.argv[1]))
start = time.perf_counter()
result = train(config, log=lambda m: print("   ", m, file=sys.stderr, flush=True), progress=False)
peak_kb = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])  # this process image's own peak
print(json.dumps({"wall_s": time.perf_counter() - start, "peak_rss_mb": peak_kb / 1024,
                  "prompts": result.manifest["training_data"]["prompts"], "dim": result.manifest["embedder"]["dim"],
                  "strategy": result.manifest["strategy"]["name"]}))
"""


def training_memory(workdir: Path, n_prompts: int, cache_dir) -> dict:
    """Train on LLMRouter's log grown to `n_prompts` (each prompt copied with a prefix and request id, keeping its
    nine models' outcomes), in one process and through Spark, each in a fresh process: wall time and the peak
    resident memory of the Python driver, where the heads are fitted (the JVM is a separate process)."""
    import json
    import subprocess

    import pandas as pd

    workdir = workdir.resolve()  # the child runs in the repository root
    bench = {b.name: b for b in prepare(workdir)}["llmrouter"]
    base = pd.read_parquet(bench.train)  # as imported: the training run validates it
    prompts = base["prompt"].drop_duplicates().tolist()
    copies = []
    for k in range(-(-n_prompts // len(prompts))):
        keep = prompts[: n_prompts - k * len(prompts)]
        rows = base[base["prompt"].isin(set(keep))]
        if k:
            rows = rows.assign(prompt=[f"{PREFIXES[k % len(PREFIXES)]}{p} (request {k})" for p in rows["prompt"]],
                               prompt_id=[f"{pid}-{k}" for pid in rows["prompt_id"]])
        copies.append(rows)
    grown = workdir / f"llmrouter-grown-{n_prompts}.parquet"
    pd.concat(copies, ignore_index=True).to_parquet(grown)
    out = {}
    for side, extra in (("one_process", {}), ("spark", {"spark_master": "local[2]"})):
        config = {"outcomes": str(grown), "catalog": str(bench.catalog), "embedder_kind": "static", "mlflow": False,
                  "baselines": [], "overwrite": True, "out": str(workdir / "routers" / f"grown-{side}"),
                  "cache_dir": cache_dir, "verifier": False, **extra}
        print(f"  training on {n_prompts:,} prompts, {side}", flush=True)
        run = subprocess.run([sys.executable, "-c", TRAIN_PROBE, json.dumps(config)], cwd=REPO, capture_output=True,
                             text=True)
        if run.returncode:
            raise SystemExit(f"training ({side}) failed:\n{run.stderr[-3000:]}")
        out[side] = json.loads(run.stdout.strip().splitlines()[-1])
    models = base["model"].nunique()
    chars = float(np.mean([len(p) for p in prompts]))
    dim = out["one_process"]["dim"]
    out.update(prompts=n_prompts, models=models, dim=dim, mean_chars=chars, rows=sum(len(c) for c in copies))
    return out


def main(argv=None) -> int:
    parser = benchmark_parser("spark_scale", __doc__)
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--onnx-prompts", type=int, default=10_000)
    parser.add_argument("--torch-prompts", type=int, default=4_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--train-prompts", default="6000,24000",
                        help="Log sizes for the driver-memory measurement, comma-separated")
    parser.add_argument("--part", choices=("all", "throughput", "training"), default="all",
                        help="throughput: embedding and routing (results/spark_scale.*); training: the driver's "
                             "memory (results/spark_training.*)")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        raise SystemExit(f"real data not found at {SHARED}")
    args.out.mkdir(parents=True, exist_ok=True)
    codes = []
    if args.part in ("all", "throughput"):
        codes.append(throughput(args))
    if args.part in ("all", "training"):
        runs = [training_memory(args.workdir, int(n), args.cache_dir) for n in args.train_prompts.split(",")]
        text, growth = training_report(runs)
        codes.append(write_results(args.out, "spark_training", text, {"runs": runs, "growth_bytes": growth}))
    return max(codes)


def throughput(args) -> int:

    from benchmarks.latency import router_sources
    from router_ml.core.spark import parallelism, spark_session

    routers, _ = router_sources(args.workdir, args.cache_dir)
    prompts, pool = distinct_prompts(args.workdir, args.prompts)
    sizes = {"static": len(prompts), "onnx-fp32": min(args.onnx_prompts, len(prompts)),
             "torch": min(args.torch_prompts, len(prompts))}
    print(f"{len(prompts):,} distinct prompts ({pool:,} distinct in the shared sets, the rest perturbed)", flush=True)
    spark = spark_session(args.master, app_name="router-ml-spark-scale",
                          config={"spark.ui.enabled": "false", "spark.driver.memory": "8g",
                                  "spark.sql.shuffle.partitions": "8", "spark.ui.showConsoleProgress": "false"})
    cores = parallelism(spark)
    results = {"master": args.master, "spark_cores": cores, "prompts": sizes, "distinct_in_shared_sets": pool,
               "chars": {"median": float(np.median([len(p) for p in prompts])),
                         "p90": float(np.percentile([len(p) for p in prompts], 90))},
               "kinds": {}}
    for kind in KINDS:
        subset = prompts[: sizes[kind]]
        print(f"{kind}: {len(subset):,} prompts", flush=True)
        local = one_process(routers[kind], subset)
        print(f"  one process: embed {local['embed_s']:.1f} s, route {local['route_s']:.1f} s", flush=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"spark-scale-{kind}-", dir=args.workdir))
        try:
            remote = on_spark(spark, routers[kind], subset, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        print(f"  spark {args.master}: embed {remote['embed_s']:.1f} s, route {remote['route_s']:.1f} s "
              f"(warm-up {remote['warmup_s']:.1f} s)", flush=True)
        n = len(subset)
        figures = {"prompts": n, "warmup_s": remote["warmup_s"],
                   "same_decisions": int(sum(a == b for a, b in zip(local["models"], remote["models"]))),
                   "max_vector_difference": float(np.abs(local["vectors"] - remote["vectors"]).max())}
        for side, run in (("one_process", local), ("spark", remote)):
            for step in ("embed", "route"):
                rate = n / run[f"{step}_s"]
                figures[f"{side}_{step}_s"] = run[f"{step}_s"]
                figures[f"{side}_{step}_per_s"] = rate
                figures[f"{side}_{step}_per_core_per_s"] = rate / cores
        figures["speedup_embed"] = figures["spark_embed_per_s"] / figures["one_process_embed_per_s"]
        figures["speedup_route"] = figures["spark_route_per_s"] / figures["one_process_route_per_s"]
        results["kinds"][kind] = figures
    spark.stop()

    results["capacity"] = capacity(results["kinds"])
    return write_results(args.out, "spark_scale", report(results, args.master), results)


def capacity(kinds: dict) -> dict:
    """Core-hours to embed and route 10M and 100M prompts from the measured Spark per-core rates
    (embedding for training plus one routing pass), assuming linear scaling across executors."""
    out = {}
    for kind, f in kinds.items():
        per_core_s = 1 / f["spark_embed_per_core_per_s"] + 1 / f["spark_route_per_core_per_s"]  # s per prompt per core
        out[kind] = {str(n): {"core_hours": n * per_core_s / 3600,
                              "wall_h_on": {str(c): n * per_core_s / 3600 / c for c in (64, 512)}}
                     for n in (10_000_000, 100_000_000)}
    return out


def report(results: dict, master: str) -> str:
    kinds = results["kinds"]
    lines = [
        "# Spark at scale: local[2] against one process", "",
        f"Distinct prompts: {results['prompts']['static']:,} (static), {results['prompts']['onnx-fp32']:,} (ONNX fp32), "
        f"{results['prompts']['torch']:,} (MiniLM torch), first ones of the same shuffled list; "
        f"{results['distinct_in_shared_sets']:,} distinct texts in the shared sets, the rest perturbed; median "
        f"{results['chars']['median']:.0f} characters (p90 {results['chars']['p90']:.0f}). Spark `{master}`, "
        f"{results['spark_cores']} cores; routers trained on LLMRouter (the selected heads). One run.", "",
        "| embedder | step | one process (prompts/s) | Spark (prompts/s) | Spark per core | Spark / one process |",
        "|---|---|---|---|---|---|",
    ]
    for kind, f in kinds.items():
        for step, label in (("embed", "embed (training)"), ("route", "route a DataFrame")):
            lines.append(f"| {kind} | {label} | {f[f'one_process_{step}_per_s']:,.0f} | {f[f'spark_{step}_per_s']:,.0f} | "
                         f"{f[f'spark_{step}_per_core_per_s']:,.0f} | {f[f'speedup_{step}']:.2f}× |")
    lines += ["", "| embedder | same decisions as route_batch | max vector difference | warm-up job (s) |",
              "|---|---|---|---|"]
    lines += [f"| {k} | {f['same_decisions']:,} of {f['prompts']:,} | {f['max_vector_difference']:.2g} | "
              f"{f['warmup_s']:.1f} |" for k, f in kinds.items()]
    lines += ["", "Capacity at the measured Spark per-core rates (embed once for training + route once; linear "
              "scaling assumed; executors as fast per core as this machine):", "",
              "| embedder | prompts | core-hours | wall on 64 cores | wall on 512 cores |", "|---|---|---|---|---|"]
    for kind, by_n in results["capacity"].items():
        for n, c in by_n.items():
            lines.append(f"| {kind} | {int(n) // 1_000_000}M | {c['core_hours']:,.1f} | "
                         f"{_hours(c['wall_h_on']['64'])} | {_hours(c['wall_h_on']['512'])} |")
    return "\n".join(lines) + "\n"


def training_report(runs: list[dict]) -> tuple[str, dict]:
    """The driver-memory table, and the growth of the peak per added prompt."""
    lines = ["# Training on Spark: the driver's memory", "",
             f"LLMRouter's log grown to N prompts ({runs[0]['models']} models, mean {runs[0]['mean_chars']:.0f} "
             f"characters; static embedder, {runs[0]['dim']} dimensions, head chosen by training), trained in one "
             "process and through Spark `local[2]`, each in a fresh process: wall time and the Python driver's peak "
             "resident memory (VmHWM; Spark's JVM is another process). One run.", "",
             "| prompts | one process: wall (s) | peak MB | Spark: wall (s) | driver peak MB | head selected |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['prompts']:,} | {r['one_process']['wall_s']:.0f} | {r['one_process']['peak_rss_mb']:,.0f} | "
              f"{r['spark']['wall_s']:.0f} | {r['spark']['peak_rss_mb']:,.0f} | {r['spark']['strategy']} |"
              for r in runs]
    growth = {}
    if len(runs) > 1:
        a, b = runs[0], runs[-1]
        growth = {side: (b[side]["peak_rss_mb"] - a[side]["peak_rss_mb"]) * 2**20 / (b["prompts"] - a["prompts"])
                  for side in ("one_process", "spark")}
        lines += ["", f"Growth of the peak per added prompt: {growth['one_process']:,.0f} bytes in one process, "
                  f"{growth['spark']:,.0f} on the Spark driver (the README's memory rule)."]
    return "\n".join(lines) + "\n", growth


def _hours(h: float) -> str:
    if h < 1 / 60:
        return f"{h * 3600:.0f} s"
    return f"{h * 60:.0f} min" if h < 1 else f"{h:.1f} h"


if __name__ == "__main__":
    sys.exit(main())
