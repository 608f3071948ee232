"""Load test of `router-ml serve` on localhost: throughput, latency, errors, and zero lost audit rows.

    .venv/bin/python benchmarks/service_load.py [--clients 8] [--seconds 30] [--backend onnx-fp32]

Starts the service in a child process (the router of benchmarks/latency.py, LLMRouter's
9 models when ../shared/data is present, converted to the chosen ONNX precision, or
served with torch), waits for /readyz, then runs `--clients` concurrent HTTP clients
(threads with keep-alive connections) posting single prompts of mixed lengths for a fixed
time, with the decision and embedding caches off (prompts repeat across phases, and a
cache hit would measure the cache). Every 200 answer's request id is kept. Then the service gets SIGTERM (drain, flush,
exit 0) and every kept request id is looked up in the audit database: lost = answered
but not logged. Also sends one in ten requests with an outcome report (POST /v1/outcomes),
so the audit store's synchronous path is under load too.

Then a crash: the service is started again on the same audit log, loaded by 8 clients for
KILL_SECONDS, and killed with SIGKILL; every request answered more than two flush
intervals before the kill must be in the log (the documented bound), and the few answered
within that window may be lost.

Writes results/service_load.md and results/service_load.json.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.latency import percentile, router_source  # noqa: E402
from router_ml.core.files import atomic_write_text  # noqa: E402
from training.report import to_json_text  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_router(workdir: Path, backend: str, cache_dir) -> tuple[Path, list[str]]:
    torch_dir, prompts = router_source(workdir, cache_dir)
    if backend == "torch":
        return torch_dir, prompts
    precision = backend.split("-", 1)[1]
    out = workdir / "routers" / f"{torch_dir.name}-onnx-{precision}"
    if not (out / "manifest.json").exists():
        from training.onnx_convert import convert_router

        convert_router(str(torch_dir), out, precision=precision, overwrite=True, force=True, cache_dir=cache_dir,
                       log=lambda m: print(f"  [convert] {m}", flush=True))
    return out, prompts


def client(url: str, prompts: list[str], seed: int, stop: threading.Event, out: dict) -> None:
    import httpx

    rng = random.Random(seed)
    with httpx.Client(timeout=30) as http:
        while not stop.is_set():
            prompt = prompts[rng.randrange(len(prompts))]
            started = time.perf_counter()
            try:
                r = http.post(url + "/v1/route", json={"prompt": prompt})
            except httpx.HTTPError as exc:
                out["errors"].append(type(exc).__name__)
                continue
            out["latency"].append(time.perf_counter() - started)
            if r.status_code != 200:
                out["errors"].append(str(r.status_code))
                continue
            decision = r.json()["decisions"][0]
            out["ids"].append(decision["request_id"])
            out.setdefault("answered_at", []).append(time.monotonic())
            if rng.random() < 0.1:
                try:
                    o = http.post(url + "/v1/outcomes", json={"request_id": decision["request_id"],
                                                              "model": decision["model"], "success": rng.random() < 0.7})
                except httpx.HTTPError as exc:  # the server killed on purpose (the kill -9 phase)
                    out["errors"].append(type(exc).__name__)
                    continue
                out["outcomes"].append(o.status_code)


KILL_SECONDS = 10.0
FLUSH_INTERVAL = 0.2


def start_server(router_dir: Path, port: int, audit: Path, log_path: Path) -> subprocess.Popen:
    import httpx

    server = subprocess.Popen(
        [sys.executable, "-m", "router_ml.cli", "serve", "--router", str(router_dir), "--port", str(port),
         "--audit", str(audit), "--decision-cache", "0", "--embedding-cache", "0",
         "--flush-interval", str(FLUSH_INTERVAL)],
        stdout=open(log_path, "a"), stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the service exited with {server.returncode}; see {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)


def kill9_phase(router_dir: Path, audit: Path, log_path: Path, prompts: list[str]) -> dict:
    """Load, SIGKILL, and check every answer older than two flush intervals is logged."""
    import sqlite3

    port = free_port()
    server = start_server(router_dir, port, audit, log_path)
    results = [{"latency": [], "ids": [], "errors": [], "outcomes": []} for _ in range(8)]
    stop = threading.Event()
    threads = [threading.Thread(target=client, args=(f"http://127.0.0.1:{port}", prompts, 900 + i, stop, results[i]))
               for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(KILL_SECONDS)
    killed_at = time.monotonic()
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)
    stop.set()
    for t in threads:
        t.join()
    answered = [(at, rid) for r in results for at, rid in zip(r.get("answered_at", []), r["ids"]) if at <= killed_at]
    db = sqlite3.connect(f"file:{audit}?mode=ro", uri=True)
    logged = {row[0] for row in db.execute("SELECT request_id FROM decisions")}
    db.close()
    settled = [rid for at, rid in answered if at < killed_at - 2 * FLUSH_INTERVAL]
    return {"answered": len(answered), "lost": sum(rid not in logged for _, rid in answered),
            "settled": len(settled), "settled_lost": sum(rid not in logged for rid in settled),
            "flush_interval_s": FLUSH_INTERVAL}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("build/benchmarks"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--backend", default="onnx-fp32", choices=["onnx-int8", "onnx-fp32", "torch"],
                        help="fp32 is what `router-ml convert --precision auto` picks (int8 fails the parity proof)")
    parser.add_argument("--clients", default="1,8", help="comma-separated client counts, one timed phase each")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    args = parser.parse_args(argv)

    router_dir, prompts = served_router(args.workdir, args.backend, args.cache_dir)
    prompts = list(dict.fromkeys(prompts))
    audit = args.workdir / "service-load-audit.sqlite"
    for suffix in ("", "-wal", "-shm"):  # a fresh log per run (ours, in the build folder)
        Path(f"{audit}{suffix}").unlink(missing_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = args.workdir / "service-load.log"
    log_path.write_text("")
    import httpx

    started = time.monotonic()
    server = start_server(router_dir, port, audit, log_path)
    ready_s = time.monotonic() - started
    print(f"service ready in {ready_s:.2f} s ({router_dir.name})", flush=True)

    phases = []
    for n_clients in [int(c) for c in args.clients.split(",")]:
        print(f"  {n_clients} clients for {args.seconds:g} s", flush=True)
        results = [{"latency": [], "ids": [], "errors": [], "outcomes": []} for _ in range(n_clients)]
        stop = threading.Event()
        threads = [threading.Thread(target=client, args=(url, prompts, 100 * len(phases) + i, stop, results[i]))
                   for i in range(n_clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        phases.append((n_clients, time.perf_counter() - t0, results))
    metrics_text = httpx.get(url + "/metrics", timeout=10).text

    server.send_signal(signal.SIGTERM)
    exit_code = server.wait(timeout=60)

    import sqlite3

    db = sqlite3.connect(f"file:{audit}?mode=ro", uri=True)
    logged = {row[0] for row in db.execute("SELECT request_id FROM decisions")}
    outcome_rows = db.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0]
    db.close()
    print(f"  kill -9 after {KILL_SECONDS:g} s of load", flush=True)
    crash = kill9_phase(router_dir, audit, log_path, prompts)
    rows, all_ids, all_errors, all_outcomes = [], [], [], []
    for n_clients, elapsed, results in phases:
        ids = [i for r in results for i in r["ids"]]
        latency = np.array([x for r in results for x in r["latency"]]) * 1000
        errors = [e for r in results for e in r["errors"]]
        all_ids += ids
        all_errors += errors
        all_outcomes += [c for r in results for c in r["outcomes"]]
        rows.append({"clients": n_clients, "seconds": round(elapsed, 2), "requests_ok": len(ids),
                     "throughput_per_s": len(ids) / elapsed,
                     "latency_ms": {"p50": percentile(latency, 50), "p90": percentile(latency, 90),
                                    "p99": percentile(latency, 99), "max": float(latency.max()) if len(latency) else None},
                     "errors": len(errors), "error_kinds": sorted(set(errors))})
    lost = [i for i in all_ids if i not in logged]
    figures = {
        "router": str(router_dir), "backend": args.backend, "phases": rows, "ready_seconds": round(ready_s, 2),
        "outcomes_posted": len(all_outcomes), "outcomes_ok": all_outcomes.count(200), "outcome_rows": outcome_rows,
        "requests_ok": len(all_ids), "audit_rows": len(logged), "answered_but_not_logged": len(lost),
        "exit_code_after_sigterm": exit_code, "errors": len(all_errors), "kill9": crash,
        "prompt_chars_median": float(np.median([len(p) for p in prompts])), "cpus": os.cpu_count(),
    }
    lines = [
        "# Service load (benchmarks/service_load.py)", "",
        f"`router-ml serve` on localhost, router `{router_dir.name}` ({args.backend}); clients post single prompts "
        f"(median {figures['prompt_chars_median']:.0f} characters) for {args.seconds:g} s per phase, with keep-alive, "
        "decision and embedding caches off; "
        f"one in ten answers is also reported as an outcome; {figures['cpus']} CPUs shared by clients and server.", "",
        "| clients | requests ok | throughput (req/s) | p50 (ms) | p90 (ms) | p99 (ms) | errors |",
        "|---|---|---|---|---|---|---|",
        *[f"| {r['clients']} | {r['requests_ok']} | {r['throughput_per_s']:.1f} | {r['latency_ms']['p50']:.1f} | "
          f"{r['latency_ms']['p90']:.1f} | {r['latency_ms']['p99']:.1f} | {r['errors']} |" for r in rows], "",
        f"Audit log after SIGTERM (exit code {exit_code}): {len(logged)} decisions logged for {len(all_ids)} answered "
        f"requests; answered but not logged: **{len(lost)}**. Outcomes posted {len(all_outcomes)}, accepted "
        f"{all_outcomes.count(200)}, rows {outcome_rows}. Service ready {ready_s:.2f} s after start.", "",
        f"kill -9 after {KILL_SECONDS:g} s of load by 8 clients: {crash['answered']} requests answered, "
        f"{crash['lost']} not in the log afterwards; of the {crash['settled']} answered more than two flush intervals "
        f"({2 * FLUSH_INTERVAL:g} s) before the kill, {crash['settled_lost']} missing.", "",
        "## Targets",
        f"- {'PASS' if not lost and exit_code == 0 else 'FAIL'}: zero answered requests missing from the audit log, "
        f"clean exit on SIGTERM: {len(lost)} lost, exit {exit_code}",
        f"- {'PASS' if not all_errors else 'FAIL'}: no errors under load: {len(all_errors)}",
        f"- {'PASS' if not crash['settled_lost'] else 'FAIL'}: kill -9 loses nothing answered more than two flush "
        f"intervals before it: {crash['settled_lost']} of {crash['settled']}",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "service_load.md", "\n".join(lines) + "\n")
    atomic_write_text(args.out / "service_load.json", to_json_text(figures))
    print("\n".join(lines))
    print(metrics_text.count("\n"), "lines of /metrics scraped at the end")
    return 0 if not lost and exit_code == 0 and not all_errors and not crash["settled_lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
