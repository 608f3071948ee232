"""Load test of `router-ml serve` on localhost: throughput, latency, errors, and one audit row per answer.

    .venv/bin/python -m benchmarks.service_load [--clients 32] [--seconds 20] [--baseline b2b7991]

The routers of benchmarks/latency.py (LLMRouter's 9 models when ../shared/data is
present): the static embedder, and MiniLM converted to ONNX fp32. Each variant is a
fresh `router-ml serve` in a child process with the decision and embedding caches off
(prompts repeat, and a cache hit would measure the cache), loaded for `--seconds` by
`wrk` (C, epoll; 2 threads, `--clients` keep-alive connections) posting single prompts
of mixed lengths to /v1/route. The load generator shares the machine's cores with the
service. wrk's Lua script keeps the request id of every 200 answer; then the service gets
SIGTERM (drain, flush, exit 0) and the audit database must hold exactly one row for each
answered id. Rows for requests wrk had sent but stopped waiting for at the end of its
run (at most one per connection) are counted separately.

Variants: the static router and ONNX fp32 with 1 and 2 worker processes, and the ONNX
router served by the code at `--baseline` (a commit before the batching service; its
files are exported with `git archive`, nothing in the checkout changes), in the same run.

Then a crash: the static service on a fresh audit log, loaded by Python clients that also
report outcomes, is killed with SIGKILL after KILL_SECONDS; every request answered more
than two flush intervals before the kill must be in the log (the documented bound).

Targets (issue 13, 32 clients): static >= 800 req/s with p99 <= 100 ms; ONNX >= 3x the
baseline's throughput; 0 errors; after SIGTERM one audit row per 200 answer.
Writes results/service_load.md and results/service_load.json.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import REPO, Target, benchmark_parser, write_results
from benchmarks.latency import router_sources

KILL_SECONDS = 10.0
FLUSH_INTERVAL = 0.2

WRK_SCRIPT = r"""
local requests, n, ids = {}, 0, nil
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  for line in io.lines(args[1]) do
    requests[#requests + 1] = wrk.format("POST", "/v1/route", {["Content-Type"] = "application/json"}, line)
  end
  n = (tid * 7919) % #requests
  ids = io.open(args[2] .. "." .. tid, "w")
  ids:setvbuf("line")
end

function request()
  n = n % #requests + 1
  return requests[n]
end

function response(status, headers, body)
  if status == 200 then
    ids:write(body:match('"request_id":%s*"([^"]+)"') or "UNPARSED", "\n")
  else
    ids:write("ERROR ", status, "\n")
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"duration_us": %d, "requests": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(router_dir: Path, port: int, audit: Path, log_path: Path, *extra: str, code: Path | None = None,
                 timeout: float = 120.0) -> subprocess.Popen:
    """`router-ml serve` in a child process (from the checkout at `code` when given); returns once /readyz is 200."""
    import httpx

    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    if code is not None:
        env["PYTHONPATH"] = str(code)  # ahead of the editable install of this checkout
    server = subprocess.Popen(
        [sys.executable, "-m", "router_ml.cli", "serve", "--router", str(router_dir), "--port", str(port),
         "--audit", str(audit), "--decision-cache", "0", "--embedding-cache", "0",
         "--flush-interval", str(FLUSH_INTERVAL), *extra],
        cwd=code or REPO, stdout=open(log_path, "a"), stderr=subprocess.STDOUT, env=env,
    )
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            raise SystemExit(f"the service exited with {server.returncode}; see {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"the service was not ready after {timeout:g} s; see {log_path}")


def fresh_audit(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm", ".key"):  # ours, in the build folder
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def audit_ids(audit: Path) -> list[str]:
    db = sqlite3.connect(f"file:{audit}?mode=ro", uri=True)
    try:
        return [row[0] for row in db.execute("SELECT request_id FROM decisions")]
    finally:
        db.close()


def wrk_phase(name: str, router_dir: Path, bodies: Path, workdir: Path, clients: int, seconds: float,
              *extra: str, code: Path | None = None) -> dict:
    """One variant: start, load with wrk, SIGTERM, and reconcile wrk's 200 answers with the audit rows."""
    audit = fresh_audit(workdir / f"service-load-{name}.sqlite")
    log_path = workdir / f"service-load-{name}.log"
    log_path.write_text("")
    port = free_port()
    started = time.monotonic()
    server = start_server(router_dir, port, audit, log_path, *extra, code=code)
    ready_s = time.monotonic() - started
    script = workdir / "service-load.lua"
    script.write_text(WRK_SCRIPT)
    ids_prefix = workdir / f"wrk-ids-{name}"
    for old in workdir.glob(f"{ids_prefix.name}.*"):
        old.unlink()
    print(f"  {name}: ready in {ready_s:.1f} s; wrk, {clients} connections, {seconds:g} s", flush=True)
    out = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script),
                          f"http://127.0.0.1:{port}", "--", str(bodies), str(ids_prefix)],
                         capture_output=True, text=True, check=True)
    stats = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("WRK "))[4:])
    import httpx

    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    server.send_signal(signal.SIGTERM)
    exit_code = server.wait(timeout=120)
    lines = [line for f in sorted(workdir.glob(f"{ids_prefix.name}.*")) for line in f.read_text().splitlines()]
    answered = [line for line in lines if not line.startswith("ERROR")]
    errors = [line for line in lines if line.startswith("ERROR")]
    logged = audit_ids(audit)
    logged_set, answered_set = set(logged), set(answered)
    socket_errors = sum(stats[k] for k in ("connect", "read", "write", "timeout"))
    return {
        "variant": name, "router": str(router_dir), "serve_args": list(extra), "code": str(code) if code else "this checkout",
        "clients": clients, "seconds": stats["duration_us"] / 1e6, "ready_s": round(ready_s, 2),
        "requests_ok": len(answered), "throughput_per_s": len(answered) / (stats["duration_us"] / 1e6),
        "latency_ms": {k: stats[f"{k}_us"] / 1000 for k in ("p50", "p90", "p99", "max")},
        "errors": len(errors) + socket_errors, "http_errors": sorted(set(errors)), "socket_errors": socket_errors,
        "exit_code_after_sigterm": exit_code, "audit_rows": len(logged),
        "duplicate_rows": len(logged) - len(logged_set), "answered_not_logged": len(answered_set - logged_set),
        "logged_not_answered": len(logged_set - answered_set), "unparsed_answers": answered.count("UNPARSED"),
        "requests_metric": [line for line in metrics.splitlines() if line.startswith("router_requests_total")],
    }


def load_client(url: str, prompts: list[str], seed: int, stop: threading.Event, out: dict) -> None:
    """A Python client for the crash phase: routes, and reports one in ten outcomes."""
    import httpx

    rng = random.Random(seed)
    with httpx.Client(timeout=30) as http:
        while not stop.is_set():
            try:
                r = http.post(url + "/v1/route", json={"prompt": prompts[rng.randrange(len(prompts))]})
            except httpx.HTTPError:
                continue  # the server killed on purpose
            if r.status_code != 200:
                out["errors"].append(str(r.status_code))
                continue
            decision = r.json()["decisions"][0]
            out["answers"].append((time.monotonic(), decision["request_id"]))
            if rng.random() < 0.1:
                try:
                    http.post(url + "/v1/outcomes", json={"request_id": decision["request_id"], "model": decision["model"],
                                                          "success": rng.random() < 0.7})
                except httpx.HTTPError:
                    continue


def kill9_phase(router_dir: Path, workdir: Path, prompts: list[str]) -> dict:
    """Load, SIGKILL, and check every answer older than two flush intervals is logged."""
    audit = fresh_audit(workdir / "service-load-kill9.sqlite")
    port = free_port()
    server = start_server(router_dir, port, audit, workdir / "service-load-kill9.log")
    results = [{"answers": [], "errors": []} for _ in range(8)]
    stop = threading.Event()
    threads = [threading.Thread(target=load_client, args=(f"http://127.0.0.1:{port}", prompts, 900 + i, stop, results[i]))
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
    answered = [(at, rid) for r in results for at, rid in r["answers"] if at <= killed_at]
    logged = set(audit_ids(audit))
    settled = [rid for at, rid in answered if at < killed_at - 2 * FLUSH_INTERVAL]
    return {"answered": len(answered), "lost": sum(rid not in logged for _, rid in answered),
            "settled": len(settled), "settled_lost": sum(rid not in logged for rid in settled),
            "errors": sum(len(r["errors"]) for r in results), "flush_interval_s": FLUSH_INTERVAL}


def baseline_checkout(commit: str, workdir: Path) -> Path:
    """The files of `commit`, exported (no worktree, nothing in this checkout changes)."""
    out = workdir / f"baseline-{commit}"
    if not (out / "router_ml").is_dir():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def main(argv=None) -> int:
    parser = benchmark_parser("service_load", __doc__)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--baseline", default="b2b7991", help="commit whose service is the ONNX baseline ('' to skip)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: install it (Debian: apt-get install wrk)")

    dirs, prompts = router_sources(args.workdir, args.cache_dir)
    prompts = list(dict.fromkeys(prompts))
    bodies = args.workdir / "service-load-bodies.jsonl"
    bodies.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    phase = lambda name, router, *extra, code=None: wrk_phase(  # noqa: E731
        name, router, bodies, args.workdir, args.clients, args.seconds, *extra, code=code)
    phases = []
    if args.baseline:
        phases.append(phase(f"onnx-fp32, baseline {args.baseline}", dirs["onnx-fp32"],
                            code=baseline_checkout(args.baseline, args.workdir)))
    for workers in (1, 2):
        phases.append(phase(f"onnx-fp32, {workers} worker{'s' * (workers > 1)}", dirs["onnx-fp32"],
                            "--workers", str(workers)))
        phases.append(phase(f"static, {workers} worker{'s' * (workers > 1)}", dirs["static"], "--workers", str(workers)))
    print(f"  kill -9 after {KILL_SECONDS:g} s of load", flush=True)
    crash = kill9_phase(dirs["static"], args.workdir, prompts)

    by_name = {p["variant"]: p for p in phases}
    static = max((p for p in phases if p["variant"].startswith("static")), key=lambda p: p["throughput_per_s"])
    onnx = max((p for p in phases if p["variant"].startswith("onnx-fp32, ") and "baseline" not in p["variant"]),
               key=lambda p: p["throughput_per_s"])
    base = by_name.get(f"onnx-fp32, baseline {args.baseline}")
    speedup = onnx["throughput_per_s"] / base["throughput_per_s"] if base else None
    exact = all(p["answered_not_logged"] == 0 and p["duplicate_rows"] == 0 and p["exit_code_after_sigterm"] == 0
                and p["logged_not_answered"] <= p["clients"] and p["unparsed_answers"] == 0 for p in phases)
    errors = sum(p["errors"] for p in phases)
    sigterm = {"answered_not_logged": sum(p["answered_not_logged"] for p in phases),
               "duplicate_rows": sum(p["duplicate_rows"] for p in phases),
               "logged_not_answered": sum(p["logged_not_answered"] for p in phases)}
    checks = [
        Target(f"static >= 800 req/s with p99 <= 100 ms ({static['variant']}): {static['throughput_per_s']:.0f} req/s, "
               f"p99 {static['latency_ms']['p99']:.1f} ms",
               {"throughput_per_s": static["throughput_per_s"], "p99_ms": static["latency_ms"]["p99"]},
               static["throughput_per_s"] >= 800 and static["latency_ms"]["p99"] <= 100),
        Target(f"MiniLM ONNX >= 3x the baseline's throughput ({onnx['variant']}): "
               + (f"{speedup:.2f}x ({onnx['throughput_per_s']:.0f} vs {base['throughput_per_s']:.0f} req/s)" if base
                  else "no baseline"),
               speedup, speedup is not None and speedup >= 3),
        Target(f"0 errors under load: {errors}", errors, errors == 0),
        Target("after SIGTERM, exactly one audit row per 200 answer (exit 0; rows beyond the answers only for requests "
               "wrk stopped waiting for, at most one per connection): " + ", ".join(
                   f"{p['variant']}: {p['answered_not_logged']} missing, {p['duplicate_rows']} duplicated, "
                   f"{p['logged_not_answered']} unanswered" for p in phases), sigterm, exact),
        Target(f"kill -9 loses nothing answered more than two flush intervals before it: {crash['settled_lost']} of "
               f"{crash['settled']}", crash["settled_lost"], crash["settled_lost"] == 0),
    ]
    figures = {"phases": phases, "kill9": crash,
               "prompt_chars_median": float(np.median([len(p) for p in prompts])), "cpus": os.cpu_count(),
               "load_generator": f"wrk -t2 -c{args.clients} -d{args.seconds:g}s, on the same {os.cpu_count()} CPUs"}
    lines = [
        "# Service load (benchmarks/service_load.py)", "",
        f"`router-ml serve` on localhost, LLMRouter routers (9 models); wrk posts single prompts (median "
        f"{figures['prompt_chars_median']:.0f} characters) over {args.clients} keep-alive connections for {args.seconds:g} s "
        f"per variant, decision and embedding caches off; the load generator shares the {figures['cpus']} CPUs with the "
        "service.", "",
        "| variant | requests ok | req/s | p50 (ms) | p90 (ms) | p99 (ms) | errors | audit rows | answered, not logged |",
        "|---|---|---|---|---|---|---|---|---|",
        *[f"| {p['variant']} | {p['requests_ok']} | {p['throughput_per_s']:.0f} | {p['latency_ms']['p50']:.1f} | "
          f"{p['latency_ms']['p90']:.1f} | {p['latency_ms']['p99']:.1f} | {p['errors']} | {p['audit_rows']} | "
          f"{p['answered_not_logged']} |" for p in phases], "",
        f"kill -9 after {KILL_SECONDS:g} s of load by 8 Python clients (one in ten answers also reported as an outcome), "
        f"static router: {crash['answered']} requests answered, {crash['lost']} not in the log afterwards; of the "
        f"{crash['settled']} answered more than two flush intervals ({2 * FLUSH_INTERVAL:g} s) before the kill, "
        f"{crash['settled_lost']} missing.", "",
    ]
    return write_results(args.out, "service_load", "\n".join(lines), figures, checks)


if __name__ == "__main__":
    sys.exit(main())
