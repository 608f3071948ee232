"""Routing latency on this CPU: the torch and ONNX backends against a bare encode, in one run.

    .venv/bin/python benchmarks/latency.py [--workdir build/benchmarks] [--out benchmarks/results]

One router (trained on LLMRouter's training set when ../shared/data is present, else on
the synthetic demo data), served twice: as trained (torch backend) and converted to the
ONNX int8 backend (`router-ml convert`, same head). Measured, all in this one process
run, interleaved prompt by prompt so machine noise hits every variant alike:

- single-prompt `route()` latency, p50 and p99, over 1,000 prompts of mixed lengths
  (real prompts from RouteLLM MMLU and LLMRouter, or the demo's), with the decision and
  embedding caches off, and the ratio of each prompt's ONNX route() time to a bare
  `SentenceTransformer.encode([prompt])` of the same prompt;
- `route_batch` throughput on 2,000 distinct short prompts (caches off);
- a decision-cache hit (the same prompt routed again);
- in fresh processes: the resident memory of a loaded ONNX router after one route
  (and whether torch, scikit-learn or SciPy were imported), and the wall time of
  `router-ml route` on one prompt against `python -c pass` (median of 5).

Targets (issue 4): ONNX route() p50 <= 0.3x the bare torch encode of the same prompt;
batch >= 1,000 short prompts/s; RSS <= 300 MB; cold start <= 1.5 s. Writes
results/latency.md and results/latency.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.datasets import REPO, SHARED  # noqa: E402
from router_ml import load_router  # noqa: E402
from router_ml.core.files import atomic_write_text  # noqa: E402
from training.report import to_json_text  # noqa: E402

N_PROMPTS = 1000
N_SHORT = 2000


def router_source(workdir: Path, cache_dir) -> tuple[Path, list[str]]:
    """A trained torch router and prompts of mixed lengths to route."""
    from benchmarks.datasets import prepare
    from training.outcomes import read_outcomes
    from training.pipeline import TrainConfig, train

    rng = np.random.default_rng(0)
    if SHARED.is_dir():
        benches = {b.name: b for b in prepare(workdir)}
        llm = benches["llmrouter"]
        out = workdir / "routers" / "latency-llmrouter"
        if not (out / "manifest.json").exists():
            train(TrainConfig(outcomes=str(llm.train), test_outcomes=str(llm.test), catalog=str(llm.catalog), out=str(out),
                              overwrite=True, mlflow=False, baselines=(), cache_dir=cache_dir, router_version="latency"),
                  log=lambda m: print(f"  [train] {m}", flush=True), progress=False)
        mmlu = read_outcomes(benches["routellm-mmlu"].train)["prompt"].drop_duplicates().tolist()
        llm_test = read_outcomes(llm.test)["prompt"].drop_duplicates().tolist()
        half = N_PROMPTS // 2  # half MMLU questions, half LLMRouter's (maths, code, QA, few-shot)
        prompts = [mmlu[i] for i in rng.choice(len(mmlu), half, replace=False)]
        prompts += [llm_test[i] for i in rng.choice(len(llm_test), N_PROMPTS - half, replace=len(llm_test) < half)]
        rng.shuffle(prompts)
        return out, prompts
    from training.demo_data import write_demo

    files = write_demo(workdir / "demo")
    out = workdir / "routers" / "latency-demo"
    if not (out / "manifest.json").exists():
        train(TrainConfig(outcomes=str(files["outcomes"]), catalog=str(files["catalog"]), out=str(out), overwrite=True,
                          mlflow=False, baselines=(), cache_dir=cache_dir, router_version="latency"),
              log=lambda m: print(f"  [train] {m}", flush=True), progress=False)
    frame = read_outcomes(files["holdout"])
    prompts = frame["prompt"].drop_duplicates().tolist()
    return out, [prompts[i % len(prompts)] for i in range(N_PROMPTS)]


def percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values), q))


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def fresh_process_figures(onnx_dir: Path) -> dict:
    """Memory and start-up of a fresh process that loads the router and routes one prompt."""
    probe = (
        "import sys, time; t = time.perf_counter(); import router_ml; "
        f"r = router_ml.load_router({str(onnx_dir)!r}); r.route('What is the capital of France?'); "
        "status = open('/proc/self/status').read(); "
        "kb = lambda key: int(status.split(key + ':')[1].split()[0]); "
        "import json; print(json.dumps({'rss_mb': kb('VmRSS') / 1024, 'peak_rss_mb': kb('VmHWM') / 1024, "
        "'load_and_route_s': time.perf_counter() - t, "
        "'imported': [m for m in ('torch', 'sklearn', 'scipy', 'mlflow', 'transformers') if m in sys.modules]}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    memory = json.loads(out.stdout.strip().splitlines()[-1])
    cli = [str(Path(sys.executable).parent / "router-ml"), "route", "--router", str(onnx_dir), "What is 12 + 7?"]
    cold, empty = [], []
    for _ in range(5):
        empty.append(timed(subprocess.run, [sys.executable, "-c", "pass"]))
        cold.append(timed(lambda: subprocess.run(cli, capture_output=True, check=True)))
    return {**memory, "cold_start_s": statistics.median(cold), "python_pass_s": statistics.median(empty),
            "cold_start_ratio_to_python": statistics.median(cold) / statistics.median(empty)}


def phase(fn, prompts) -> list[float]:
    """Time fn(prompt) for every prompt, after a warm-up and a pause for other threads to settle."""
    for p in prompts[:20]:
        fn(p)
    time.sleep(0.5)
    return [timed(fn, p) for p in prompts]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "build" / "benchmarks")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)

    from training.onnx_convert import convert_router

    torch_dir, prompts = router_source(args.workdir, args.cache_dir)
    dirs, proofs = {}, {}
    for precision in ("int8", "fp32"):
        dirs[precision] = args.workdir / "routers" / f"{torch_dir.name}-onnx-{precision}"
        result = convert_router(str(torch_dir), dirs[precision], precision=precision, overwrite=True, force=True,
                                cache_dir=args.cache_dir, log=lambda m: print(f"  [convert] {m}", flush=True))
        proofs[precision] = {k: result[k] for k in ("prompts", "mean_cosine", "p1_cosine", "route_agreement", "passed")}
    torch_router = load_router(torch_dir, embedding_cache_size=0, decision_cache_size=0)
    onnx = {p: load_router(d, embedding_cache_size=0, decision_cache_size=0) for p, d in dirs.items()}
    bare = torch_router.embedder.embedder._load()  # the SentenceTransformer itself
    lengths = [len(bare.tokenizer(p, add_special_tokens=False, verbose=False)["input_ids"]) for p in prompts]

    # Phases, not interleaving: torch's and onnxruntime's thread pools would slow each other down.
    t_bare = phase(lambda p: bare.encode([p]), prompts)
    t_torch = phase(torch_router.route, prompts)
    t_onnx = {p: phase(r.route, prompts) for p, r in onnx.items()}
    ratio = {p: np.array(t) / np.array(t_bare) for p, t in t_onnx.items()}

    shorts = [f"What is {i} + {i % 97 + 3}?" for i in range(N_SHORT)]
    short_tokens = float(np.median([len(bare.tokenizer(p)["input_ids"]) for p in shorts]))
    throughput = {}
    for name, router in (("onnx-int8", onnx["int8"]), ("onnx-fp32", onnx["fp32"]), ("torch", torch_router)):
        router.route_batch(shorts[:64])
        time.sleep(0.5)
        throughput[name] = N_SHORT / timed(router.route_batch, shorts)
    mixed = {name: len(prompts) / timed(router.route_batch, prompts)
             for name, router in (("onnx-int8", onnx["int8"]), ("onnx-fp32", onnx["fp32"]), ("torch", torch_router))}

    cached = load_router(dirs["int8"])
    cached.route(prompts[0])
    hit = min(timed(cached.route, prompts[0]) for _ in range(200))
    fresh = {p: fresh_process_figures(d) for p, d in dirs.items()}

    ms = lambda s: 1000 * s  # noqa: E731
    q = lambda t: {"p50": ms(percentile(t, 50)), "p99": ms(percentile(t, 99))}  # noqa: E731
    results = {
        "prompts": len(prompts),
        "tokens": {"p50": percentile(lengths, 50), "p90": percentile(lengths, 90), "max": int(max(lengths))},
        "bare_torch_encode_ms": q(t_bare),
        "route_ms": {"torch": q(t_torch), **{f"onnx-{p}": q(t) for p, t in t_onnx.items()}},
        "onnx_route_over_bare_encode": {f"onnx-{p}": {"p50": percentile(r, 50), "p90": percentile(r, 90)}
                                        for p, r in ratio.items()},
        "short_prompt_tokens": short_tokens,
        "batch_short_prompts_per_s": throughput,
        "batch_mixed_prompts_per_s": mixed,
        "decision_cache_hit_us": 1e6 * hit,
        "fresh_process": fresh,
        "equivalence": proofs,
        "router": {"torch": str(torch_dir), **{f"onnx-{p}": str(d) for p, d in dirs.items()},
                   "head": torch_router.manifest["strategy"]["name"], "models": len(torch_router.models)},
    }
    r8, f8 = results["onnx_route_over_bare_encode"]["onnx-int8"]["p50"], fresh["int8"]
    checks = [
        (f"ONNX int8 route() p50 / bare torch encode of the same prompt <= 0.3: {r8:.2f}", r8 <= 0.3),
        (f"route_batch >= 1,000 short prompts/s (ONNX int8, {short_tokens:.0f} tokens each): {throughput['onnx-int8']:.0f}/s",
         throughput["onnx-int8"] >= 1000),
        (f"RSS of a loaded ONNX router <= 300 MB: int8 {f8['peak_rss_mb']:.0f} MB peak, fp32 {fresh['fp32']['peak_rss_mb']:.0f} MB "
         f"(imported: {f8['imported'] or 'none of torch, sklearn, scipy'})",
         f8["peak_rss_mb"] <= 300 and fresh["fp32"]["peak_rss_mb"] <= 300 and not f8["imported"]),
        (f"cold start of `router-ml route` <= 1.5 s: int8 {f8['cold_start_s']:.2f} s, fp32 {fresh['fp32']['cold_start_s']:.2f} s",
         f8["cold_start_s"] <= 1.5 and fresh["fp32"]["cold_start_s"] <= 1.5),
    ]
    results["targets"] = [{"target": label, "pass": ok} for label, ok in checks]
    rows = [("bare `SentenceTransformer.encode([prompt])` (torch)", results["bare_torch_encode_ms"], None),
            ("`route()`, torch backend", results["route_ms"]["torch"], None)]
    rows += [(f"`route()`, ONNX {p}", results["route_ms"][f"onnx-{p}"], results["onnx_route_over_bare_encode"][f"onnx-{p}"])
             for p in ("int8", "fp32")]
    lines = [
        "# Routing latency (benchmarks/latency.py)", "",
        f"{len(prompts)} prompts of mixed lengths (tokens: median {results['tokens']['p50']:.0f}, p90 "
        f"{results['tokens']['p90']:.0f}, max {results['tokens']['max']}), one process, one phase per variant; router: "
        f"{results['router']['head']} head over {results['router']['models']} models; caches off unless stated.", "",
        "| | p50 (ms) | p99 (ms) | / bare encode, median | / bare encode, p90 |", "|---|---|---|---|---|",
        *[f"| {label} | {t['p50']:.2f} | {t['p99']:.2f} | {r['p50'] if r else 1:.2f} | {r['p90'] if r else 1:.2f} |"
          for label, t, r in rows], "",
        f"`route_batch` throughput on {N_SHORT} short prompts ({short_tokens:.0f} tokens): "
        + ", ".join(f"{k} {v:.0f}/s" for k, v in throughput.items())
        + f"; on the {len(prompts)} mixed prompts: " + ", ".join(f"{k} {v:.0f}/s" for k, v in mixed.items()) + ".",
        f"Decision-cache hit: {results['decision_cache_hit_us']:.1f} µs.",
        *[f"Fresh process, ONNX {p} router loaded and one prompt routed: {f['rss_mb']:.0f} MB resident "
          f"({f['peak_rss_mb']:.0f} MB peak), {f['load_and_route_s']:.2f} s; `router-ml route` end to end "
          f"{f['cold_start_s']:.2f} s (`python -c pass`: {f['python_pass_s']:.3f} s); imported: "
          f"{', '.join(f['imported']) or 'no torch, scikit-learn or SciPy'}." for p, f in fresh.items()],
        "", "Equivalence to the torch router (what `router-ml convert` measures, on the router's training prompts):", "",
        "| precision | cosine mean | cosine 1st pct | routes agree at default target | passes (0.98 / 97 %) |", "|---|---|---|---|---|",
        *[f"| {p} | {v['mean_cosine']:.4f} | {v['p1_cosine']:.4f} | {v['route_agreement']:.1%} | {'yes' if v['passed'] else 'no'} |"
          for p, v in proofs.items()],
        "", "## Targets", *[f"- {'PASS' if ok else 'FAIL'}: {label}" for label, ok in checks],
    ]
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "latency.md", text)
    atomic_write_text(args.out / "latency.json", to_json_text(results))
    print(text)
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
