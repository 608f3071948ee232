"""Routing latency on this CPU: the static, ONNX and torch backends against a bare torch encode, in one run.

    .venv/bin/python -m benchmarks.latency [--workdir build/benchmarks] [--out benchmarks/results]

Routers trained on LLMRouter's training set when ../shared/data is present (else on the
synthetic demo data), one per backend, same head selection: the static embedder
(`--embedder-kind static`), MiniLM on torch, and MiniLM converted to ONNX fp32 (what
`router-ml convert --precision auto` picks; int8 fails the parity proof). Measured in
this one process run, one phase per variant (torch's and onnxruntime's thread pools
would slow each other if interleaved):

The static embedder is measured twice: with the head that training selected (on LLMRouter
a blend of logistic and kNN: the kNN part compares every prompt with all 5,608 training
prompts) and with the per-model logistic head alone, to separate the embedder's cost
from the head's.

- single-prompt `route()` latency, p50 and p99, over 1,000 prompts of mixed lengths
  (real prompts from RouteLLM MMLU and LLMRouter, or the demo's), decision and embedding
  caches off, and the ratio of each prompt's route() time to a bare
  `SentenceTransformer.encode([prompt])` of the same prompt;
- `route_batch` throughput on distinct short prompts and on the 1,000 mixed prompts;
- a decision-cache hit (the same prompt routed again);
- in fresh processes (median of 5): the wall time and resident memory of loading each
  router and routing one prompt (and which heavy modules got imported), and the wall
  time of `router-ml route "..."` from the shell against `python -c pass`.

Targets (issue 13): static route() p50 <= 0.05x the bare torch encode of the same
prompt; route_batch >= 20,000 short and >= 3,000 mixed prompts/s; a fresh process loads
and routes in <= 0.4 s and <= 150 MB; `router-ml route` end to end < 1 s. Writes
results/latency.md and results/latency.json.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.datasets import SHARED
from benchmarks.harness import Target, benchmark_parser, write_results
from router_ml import load_router

N_PROMPTS = 1000
N_SHORT = 20_000
BACKENDS = ("static", "static-linear", "onnx-fp32", "torch")


def _train(out: Path, files: dict, embedder_kind: str, cache_dir, strategy: str = "auto") -> Path:
    from router_ml.training.fit.pipeline import TrainConfig, train

    if not (out / "manifest.json").exists():
        train(TrainConfig(outcomes=str(files["train"]), test_outcomes=files.get("test"), catalog=str(files["catalog"]),
                          out=str(out), overwrite=True, mlflow=False, baselines=(), cache_dir=cache_dir,
                          embedder_kind=embedder_kind, strategy=strategy, router_version=f"latency-{embedder_kind}"),
              log=lambda m: print(f"  [train {embedder_kind}] {m}", flush=True), progress=False)
    return out


def router_sources(workdir: Path, cache_dir) -> tuple[dict[str, Path], list[str]]:
    """A trained router per backend (static, torch, ONNX fp32) and prompts of mixed lengths to route."""
    from router_ml.training.data.outcomes import read_outcomes

    rng = np.random.default_rng(0)
    if SHARED.is_dir():
        from benchmarks.datasets import prepare

        benches = {b.name: b for b in prepare(workdir)}
        llm = benches["llmrouter"]
        files, name = {"train": llm.train, "test": str(llm.test), "catalog": llm.catalog}, "latency-llmrouter"
        mmlu = read_outcomes(benches["routellm-mmlu"].train)["prompt"].drop_duplicates().tolist()
        llm_test = read_outcomes(llm.test)["prompt"].drop_duplicates().tolist()
        half = N_PROMPTS // 2  # half MMLU questions, half LLMRouter's (maths, code, QA, few-shot)
        prompts = [mmlu[i] for i in rng.choice(len(mmlu), half, replace=False)]
        prompts += [llm_test[i] for i in rng.choice(len(llm_test), N_PROMPTS - half, replace=len(llm_test) < half)]
        rng.shuffle(prompts)
    else:
        from router_ml.training.data.demo import write_demo

        demo = write_demo(workdir / "demo")
        files, name = {"train": demo["outcomes"], "catalog": demo["catalog"]}, "latency-demo"
        held_out = read_outcomes(demo["holdout"])["prompt"].drop_duplicates().tolist()
        prompts = [held_out[i % len(held_out)] for i in range(N_PROMPTS)]
    routers = {"static": _train(workdir / "routers" / f"{name}-static", files, "static", cache_dir),
               "static-linear": _train(workdir / "routers" / f"{name}-static-linear", files, "static", cache_dir,
                                       strategy="per_model"),
               "torch": _train(workdir / "routers" / name, files, "sentence-transformers", cache_dir)}
    onnx = workdir / "routers" / f"{name}-onnx-fp32"
    if not (onnx / "manifest.json").exists():
        from router_ml.training.embed.onnx_convert import convert_router

        convert_router(str(routers["torch"]), onnx, precision="fp32", overwrite=True, force=True, cache_dir=cache_dir,
                       log=lambda m: print(f"  [convert] {m}", flush=True))
    routers["onnx-fp32"] = onnx
    return routers, prompts


def percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values), q))


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


PROBE = """
import json, sys, time
t = time.perf_counter()
import router_ml
router = router_ml.load_router(sys.argv[1])
router.route('What is the capital of France?')
elapsed = time.perf_counter() - t
status = open('/proc/self/status').read()
kb = lambda key: int(status.split(key + ':')[1].split()[0])
heavy = ('torch', 'onnxruntime', 'sklearn', 'scipy', 'mlflow', 'transformers', 'sentence_transformers', 'pandas')
print(json.dumps({'load_and_route_s': elapsed, 'rss_mb': kb('VmRSS') / 1024, 'peak_rss_mb': kb('VmHWM') / 1024,
                  'imported': [m for m in heavy if m in sys.modules]}))
"""


def fresh_process_figures(router_dir: Path, runs: int = 5) -> dict:
    """Start-up of fresh processes: load the router and route one prompt; and the CLI end to end."""
    probes = [json.loads(subprocess.run([sys.executable, "-c", PROBE, str(router_dir)], capture_output=True, text=True,
                                        check=True).stdout.strip().splitlines()[-1]) for _ in range(runs)]
    cli = [str(Path(sys.executable).parent / "router-ml"), "route", "--router", str(router_dir), "What is 12 + 7?"]
    cold, empty = [], []
    for _ in range(runs):
        empty.append(timed(subprocess.run, [sys.executable, "-c", "pass"]))
        cold.append(timed(lambda: subprocess.run(cli, capture_output=True, check=True)))
    return {"load_and_route_s": statistics.median(p["load_and_route_s"] for p in probes),
            "rss_mb": statistics.median(p["rss_mb"] for p in probes),
            "peak_rss_mb": statistics.median(p["peak_rss_mb"] for p in probes), "imported": probes[-1]["imported"],
            "cli_s": statistics.median(cold), "python_pass_s": statistics.median(empty)}


def phase(fn, prompts) -> list[float]:
    """Time fn(prompt) for every prompt, after a warm-up and a pause for other threads to settle."""
    for p in prompts[:20]:
        fn(p)
    time.sleep(0.5)
    return [timed(fn, p) for p in prompts]


def throughput(router, prompts: list[str], repeats: int = 3) -> float:
    """Prompts per second of route_batch (best of `repeats`, after a warm-up)."""
    router.route_batch(prompts[:64])
    time.sleep(0.3)
    return max(len(prompts) / timed(router.route_batch, prompts) for _ in range(repeats))


def main(argv=None) -> int:
    args = benchmark_parser("latency", __doc__).parse_args(argv)

    dirs, prompts = router_sources(args.workdir, args.cache_dir)
    routers = {b: load_router(dirs[b], embedding_cache_size=0, decision_cache_size=0) for b in BACKENDS}
    bare = routers["torch"].embedder.embedder._load()  # the SentenceTransformer itself
    lengths = [len(bare.tokenizer(p, add_special_tokens=False, verbose=False)["input_ids"]) for p in prompts]

    t_bare = phase(lambda p: bare.encode([p]), prompts)
    t_route = {b: phase(routers[b].route, prompts) for b in BACKENDS}
    ratio = {b: np.array(t) / np.array(t_bare) for b, t in t_route.items()}

    shorts = [f"What is {i} + {i % 97 + 3}?" for i in range(N_SHORT)]
    short_tokens = float(np.median([len(bare.tokenizer(p)["input_ids"]) for p in shorts[:1000]]))
    fast = lambda b: b.startswith("static")  # noqa: E731
    batch_short = {b: throughput(routers[b], shorts if fast(b) else shorts[:2000], 3 if fast(b) else 1)
                   for b in BACKENDS}
    batch_mixed = {b: throughput(routers[b], prompts, 3 if fast(b) else 1) for b in BACKENDS}

    cached = load_router(dirs["static"])
    cached.route(prompts[0])
    hit = min(timed(cached.route, prompts[0]) for _ in range(200))
    fresh = {b: fresh_process_figures(dirs[b]) for b in ("static", "onnx-fp32")}

    ms = lambda s: 1000 * s  # noqa: E731
    q = lambda t: {"p50": ms(percentile(t, 50)), "p99": ms(percentile(t, 99))}  # noqa: E731
    static = routers["static"]
    results = {
        "prompts": len(prompts),
        "tokens": {"p50": percentile(lengths, 50), "p90": percentile(lengths, 90), "max": int(max(lengths))},
        "bare_torch_encode_ms": q(t_bare),
        "route_ms": {b: q(t) for b, t in t_route.items()},
        "route_over_bare_encode": {b: {"p50": percentile(r, 50), "p90": percentile(r, 90)} for b, r in ratio.items()},
        "short_prompt_tokens": short_tokens,
        "batch_short_prompts_per_s": batch_short,
        "batch_mixed_prompts_per_s": batch_mixed,
        "decision_cache_hit_us": 1e6 * hit,
        "fresh_process": fresh,
        "router": {**{b: str(d) for b, d in dirs.items()}, "head": static.manifest["strategy"]["name"],
                   "linear_head": routers["static-linear"].manifest["strategy"]["name"],
                   "models": len(static.models), "training_prompts_carried": None if static.neighbours is None
                   else len(static.neighbours.X)},
    }
    r50, fs = results["route_over_bare_encode"]["static"]["p50"], fresh["static"]
    l50 = results["route_over_bare_encode"]["static-linear"]["p50"]
    checks = [
        Target(f"static route() p50 / bare torch encode of the same prompt <= 0.05: {r50:.3f} (selected head); "
               f"{l50:.3f} (logistic head)", {"selected_head": r50, "logistic_head": l50}, r50 <= 0.05),
        Target(f"static route_batch >= 20,000 short prompts/s ({short_tokens:.0f} tokens): {batch_short['static']:,.0f}/s "
               f"(selected head); {batch_short['static-linear']:,.0f}/s (logistic head)",
               {"selected_head": batch_short["static"], "logistic_head": batch_short["static-linear"]},
               batch_short["static"] >= 20_000),
        Target(f"static route_batch >= 3,000 mixed prompts/s: {batch_mixed['static']:,.0f}/s (selected head); "
               f"{batch_mixed['static-linear']:,.0f}/s (logistic head)",
               {"selected_head": batch_mixed["static"], "logistic_head": batch_mixed["static-linear"]},
               batch_mixed["static"] >= 3_000),
        Target(f"fresh process loads the static router and routes one prompt in <= 0.4 s and <= 150 MB: "
               f"{fs['load_and_route_s']:.2f} s, {fs['peak_rss_mb']:.0f} MB peak",
               {"load_and_route_s": fs["load_and_route_s"], "peak_rss_mb": fs["peak_rss_mb"]},
               fs["load_and_route_s"] <= 0.4 and fs["peak_rss_mb"] <= 150),
        Target(f"`router-ml route` end to end < 1 s (static router): {fs['cli_s']:.2f} s", fs["cli_s"], fs["cli_s"] < 1.0),
    ]
    labels = {"static": "`route()`, static embedder, selected head", "static-linear":
              "`route()`, static embedder, logistic head", "onnx-fp32": "`route()`, MiniLM ONNX fp32",
              "torch": "`route()`, MiniLM torch"}
    rows = [("bare `SentenceTransformer.encode([prompt])` (torch)", results["bare_torch_encode_ms"], None)]
    rows += [(labels[b], results["route_ms"][b], results["route_over_bare_encode"][b]) for b in BACKENDS]
    lines = [
        "# Routing latency (benchmarks/latency.py)", "",
        f"{len(prompts)} prompts of mixed lengths (MiniLM tokens: median {results['tokens']['p50']:.0f}, p90 "
        f"{results['tokens']['p90']:.0f}, max {results['tokens']['max']}), one process, one phase per variant; routers: "
        f"{results['router']['head']} head (selected by training) over {results['router']['models']} models, and a "
        f"{results['router']['linear_head']} head on the same static embedder (static router carrying "
        f"{results['router']['training_prompts_carried']} training prompts for novelty); caches off unless stated.", "",
        "| | p50 (ms) | p99 (ms) | / bare encode, median | / bare encode, p90 |", "|---|---|---|---|---|",
        *[f"| {label} | {t['p50']:.3f} | {t['p99']:.3f} | {r['p50'] if r else 1:.3f} | {r['p90'] if r else 1:.3f} |"
          for label, t, r in rows], "",
        "| `route_batch` (prompts/s) | " + " | ".join(BACKENDS) + " |", "|---|" + "---|" * len(BACKENDS),
        f"| {N_SHORT:,} short prompts ({short_tokens:.0f} tokens; 2,000 for MiniLM) | "
        + " | ".join(f"{batch_short[b]:,.0f}" for b in BACKENDS) + " |",
        f"| the {len(prompts)} mixed prompts | " + " | ".join(f"{batch_mixed[b]:,.0f}" for b in BACKENDS) + " |", "",
        f"Decision-cache hit: {results['decision_cache_hit_us']:.1f} µs.", "",
        "| fresh process (median of 5) | load + route one prompt (s) | resident MB (peak) | `router-ml route` (s) | "
        "`python -c pass` (s) | heavy modules imported |", "|---|---|---|---|---|---|",
        *[f"| {b} | {f['load_and_route_s']:.2f} | {f['rss_mb']:.0f} ({f['peak_rss_mb']:.0f}) | {f['cli_s']:.2f} | "
          f"{f['python_pass_s']:.3f} | {', '.join(f['imported']) or 'none'} |" for b, f in fresh.items()],
    ]
    return write_results(args.out, "latency", "\n".join(lines), results, checks)


if __name__ == "__main__":
    sys.exit(main())
