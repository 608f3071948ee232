"""`router-ml serve` as a real process: the full loop, SIGTERM, kill -9, and MLflow serving."""

import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import pandas as pd
import pytest

from router_ml.serve.audit import AuditStore, read_joined
from tests.support.serverproc import Server, free_port
from tests.support.waiting import closed_by_peer, wait_until

pytestmark = pytest.mark.slow


def cli(cwd, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "router_ml.cli", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"router-ml {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


class Load:
    """Clients posting single-prompt routes as fast as they can; every answer is kept."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url, self.answers, self.errors = url, [], []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.client, args=(i,)) for i in range(clients)]

    def client(self, i: int) -> None:
        with httpx.Client(timeout=10) as http:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    r = http.post(self.url + "/v1/route", json={"prompt": f"client {i} question {n}: what is {n} + {i}?"})
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    return  # the server went away
                if r.status_code == 200:
                    self.answers.append((time.time(), r.json()["decisions"][0]["request_id"]))
                else:
                    self.errors.append(r.status_code)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()

    def wait_for_answers(self, n: int, older_than: float = 0.0) -> None:
        """Until `n` requests were answered (at least `older_than` seconds ago), however slow the machine."""
        wait_until(lambda: sum(t < time.time() - older_than for t, _ in self.answers) >= n, f"{n} answers",
                   timeout=300)


@pytest.fixture()
def audit_path(tmp_path):
    return tmp_path / "audit.sqlite"


def test_sigterm_under_load_drains_flushes_and_exits_0(trained_router_dir, tmp_path, audit_path):
    with Server(str(trained_router_dir), tmp_path, "--audit", str(audit_path), "--flush-interval", "0.5") as server:
        server.wait_ready()
        with Load(server.url) as load:
            load.wait_for_answers(40)
            code = server.stop(signal.SIGTERM)
        assert code == 0, server.output()
    assert len(load.answers) > 20
    logged = {r["request_id"] for r in read_joined(audit_path)}
    assert {rid for _, rid in load.answers} <= logged  # every answered request is in the audit log


def test_sigterm_while_loading_exits_0(trained_router_dir, tmp_path, audit_path):
    with Server(str(trained_router_dir), tmp_path, "--audit", str(audit_path)) as server:
        server.wait_for_output("loading router")  # printed once SIGTERM is handled: the router loads now
        assert server.stop(signal.SIGTERM) == 0, server.output()


def test_kill_9_loses_at_most_the_last_flush_interval(trained_router_dir, tmp_path, audit_path):
    flush = 0.2
    with Server(str(trained_router_dir), tmp_path, "--audit", str(audit_path), "--flush-interval", str(flush)) as server:
        server.wait_ready()
        with Load(server.url) as load:
            load.wait_for_answers(40, older_than=2 * flush)
            killed_at = time.time()
            server.stop(signal.SIGKILL)
    store = AuditStore(audit_path)  # opens (and recovers the WAL) after the crash
    logged = {r["request_id"] for r in store.decisions()}
    store.close()
    settled = [rid for t, rid in load.answers if t < killed_at - 2 * flush]
    assert len(settled) > 20
    missing = [rid for rid in settled if rid not in logged]
    assert not missing, f"{len(missing)} of {len(settled)} acknowledged decisions lost"


def test_serve_route_outcomes_retrain_promote_hot_reload(tmp_path):
    """The loop: serve the champion, route traffic, report outcomes, retrain from the audit
    log, promote the challenger, and see the service switch to it without a restart."""
    from router_ml.training.data.demo import write_demo

    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    import os

    os.environ.update(env)
    try:
        files = write_demo(tmp_path / "demo", n_prompts=1200, seed=5)
        outcomes = pd.read_csv(files["outcomes"])
        ids = outcomes["prompt_id"].unique()
        small = tmp_path / "small.csv"
        outcomes[outcomes["prompt_id"].isin(ids[:80])].to_csv(small, index=False)  # a weak champion
        common = ["--catalog", str(files["catalog"]), "--embedder-kind", "hashing", "--folds", "2", "--no-baselines",
                  "--cache-dir", str(tmp_path / "cache")]
        cli(tmp_path, "train", "--outcomes", str(small), "--out", str(tmp_path / "v1"), "--register", "loop",
            "--router-version", "loop-v1", *common)
        cli(tmp_path, "promote", "loop", "1", "--alias", "champion")

        audit = tmp_path / "audit.sqlite"
        with Server("models:/loop@champion", tmp_path, "--audit", str(audit), "--prompt-storage", "text",
                    "--exploration-rate", "0.2", "--reload-interval", "1", env=env) as server:
            server.wait_ready()
            traffic = outcomes[outcomes["prompt_id"].isin(ids[80:480])]
            truth = {(r.prompt, r.model): r for r in traffic.itertuples()}
            prompts = list(dict.fromkeys(traffic["prompt"]))
            decisions = []
            for start in range(0, len(prompts), 100):
                r = httpx.post(server.url + "/v1/route", json={"prompts": prompts[start:start + 100]}, timeout=60)
                assert r.status_code == 200, r.text
                decisions += r.json()["decisions"]
            assert {d["router_version"] for d in decisions} == {"loop-v1"}
            assert any(d["exploration"] for d in decisions)
            reports = [{"request_id": d["request_id"], "model": d["model"],
                        "score": float(truth[(p, d["model"])].score)}
                       for p, d in zip(prompts, decisions)]
            r = httpx.post(server.url + "/v1/outcomes", json=reports, timeout=60)
            assert r.status_code == 200 and r.json() == {"recorded": len(reports)}

            # A champion trained on 64 prompts against a challenger on ~580: better, but 200 held-out
            # prompts cannot prove it with margin 0; accept one no worse than 0.02 with 95 % confidence.
            # This test is about the loop's mechanics, judged on the complete held-out log: the live
            # judgement (120 held-out requests here, too few to bound a difference by 0.02) is turned
            # off; tests/training/test_live_loop.py covers it.
            done = cli(tmp_path, "retrain", "--audit", str(audit), "--outcomes", str(files["holdout"]),
                       "--base", "models:/loop@champion", "--out", str(tmp_path / "v2"), "--margin", "0.02",
                       "--min-live-requests", "100000", "--cache-dir", str(tmp_path / "cache"))
            summary = json.loads(done.stdout)
            assert summary["data"]["outcome_rows"] == len(reports) and summary["data"]["exploration_rows"] > 0
            assert summary["promoted"], done.stderr
            complete = summary["decision"]["complete"]
            assert complete["lower"] >= -0.02 and complete["prompts"] >= 200
            new_version = json.loads((tmp_path / "v2" / "manifest.json").read_text())["router_version"]

            deadline = time.monotonic() + 180
            seen = None
            while time.monotonic() < deadline:  # the watcher polls the registry every second
                r = httpx.post(server.url + "/v1/route", json={"prompt": prompts[0]}, timeout=10)
                assert r.status_code == 200  # no request dropped while reloading
                seen = r.json()["decisions"][0]["router_version"]
                if seen == new_version:
                    break
                time.sleep(0.5)
            assert seen == new_version, server.output()
            assert f"reloaded: now serving router {new_version} (was loop-v1)" in server.output()
            assert server.stop() == 0
        rows = read_joined(audit)
        assert {r["router_version"] for r in rows} == {"loop-v1", new_version}
    finally:
        for key in env:
            os.environ.pop(key, None)


def test_mlflow_models_serve_answers_a_scoring_request(trained_router_dir, tmp_path):
    """The registered pyfunc behind `mlflow models serve` (no conda: --env-manager local)."""
    import os

    from router_ml.core.mlflow_registry import import_mlflow
    from router_ml.training.registry.tracking import log_router_model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # mlflow starts the scoring server as `uvicorn` through a shell: the venv's bin must be on PATH
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true",
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    mlflow = import_mlflow()
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.create_experiment("serve", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            log_router_model(mlflow, trained_router_dir, "served")
    finally:
        mlflow.set_tracking_uri(None)
    model_uri = "models:/served/1"
    port = free_port()

    log = open(tmp_path / "mlflow-serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
                             "--host", "127.0.0.1", "--port", str(port)], cwd=tmp_path, env={**os.environ, **env},
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, response = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/invocations", timeout=30,
                                      json={"dataframe_records": [{"prompt": "What is 2 + 2?"}, {"prompt": "Prove it."}]})
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert response is not None, (tmp_path / "mlflow-serve.log").read_text()[-3000:]
        assert response.status_code == 200, response.text
        rows = response.json()["predictions"]
        models = json.loads((trained_router_dir / "manifest.json").read_text())["models"]
        assert len(rows) == 2 and set(rows[0]) == {"model", "confidence", "scores", "estimated_cost", "quality_target",
                                                   "novelty", "reason", "router_version"}
        assert rows[0]["model"] in models and set(rows[0]["scores"]) == set(models)  # a map, not a JSON string
        assert all(isinstance(rows[0][k], float) for k in ("confidence", "estimated_cost", "quality_target", "novelty"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_serve_with_policy_and_catalog_runs_the_gateway(trained_router_dir, tmp_path):
    """`router-ml serve --policy --catalog` wires the gateway: real HTTP on both sides."""
    from tests.support.fake_upstream import FakeUpstream

    upstream = FakeUpstream()
    try:
        prices = {"nano": (0.1, 0.4), "coder": (0.2, 0.8), "mini": (0.4, 1.6), "pro": (2.5, 10.0), "legacy-xl": (3.0, 12.0)}
        kinds = {"pro": "err500"}
        catalog = {"models": {m: {"input_price": a, "output_price": b, "base_url": "${UPSTREAM}/" + kinds.get(m, "ok")}
                              for m, (a, b) in prices.items()}}
        (tmp_path / "catalog.yaml").write_text(json.dumps(catalog))
        (tmp_path / "policy.yaml").write_text("fallbacks:\n  chains: {pro: [mini]}\n  retries: 0\n")
        audit = tmp_path / "audit.sqlite"
        with Server(str(trained_router_dir), tmp_path, "--audit", str(audit), "--policy", str(tmp_path / "policy.yaml"),
                    "--catalog", str(tmp_path / "catalog.yaml"), env={"UPSTREAM": upstream.url}) as server:
            server.wait_ready()
            ask = {"model": "pro", "messages": [{"role": "user", "content": "hello"}]}
            r = httpx.post(server.url + "/v1/chat/completions", json=ask, timeout=30)
            assert r.status_code == 200 and r.headers["x-router-model"] == "mini", r.text
            with httpx.stream("POST", server.url + "/v1/chat/completions", json={**ask, "stream": True}, timeout=30) as s:
                body = s.read().decode()
            assert s.headers["x-router-model"] == "mini" and body.rstrip().endswith("data: [DONE]")
            assert server.stop() == 0
        rows = read_joined(audit)
        assert len(rows) == 2 and "pro: HTTP 500" in rows[0]["fallback"]
        assert "pro: cooling down" in rows[1]["fallback"]  # the second request skips the failing model
    finally:
        upstream.close()


def test_slow_and_silent_clients_are_dropped_and_counted(trained_router_dir, tmp_path, audit_path):
    """A connection must deliver a whole request within --request-timeout: clients that send headers a
    byte at a time, or nothing, cannot hold the service's connections."""
    import socket

    with Server(str(trained_router_dir), tmp_path, "--audit", str(audit_path), "--request-timeout", "1") as server:
        server.wait_ready()
        sockets = []
        for i in range(60):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            if i % 2:
                s.sendall(b"POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")  # never ends
            sockets.append(s)
        closed = sum(closed_by_peer(s) for s in sockets)  # each within --request-timeout, or a minute at most
        for s in sockets:
            s.close()
        assert closed == 60
        assert httpx.post(server.url + "/v1/route", json={"prompt": "still serving"}, timeout=10).status_code == 200
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
        line = next(x for x in metrics.splitlines() if x.startswith('router_limited_total{reason="slow_client"}'))
        assert float(line.split()[-1]) >= 60
        assert server.stop() == 0


def test_workers_share_one_port_one_audit_log_and_one_metrics_view(trained_router_dir, tmp_path, audit_path):
    """`--workers 2`: both processes answer, /metrics adds them up, and SIGTERM loses no answered decision."""
    import socket

    with Server(str(trained_router_dir), tmp_path, "--audit", str(audit_path), "--workers", "2",
                "--request-timeout", "1") as server:
        server.wait_ready()
        with Load(server.url, clients=6) as load:
            load.wait_for_answers(40)
            silent = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(6)]
            assert all(closed_by_peer(s) for s in silent)  # each closed (and counted) after --request-timeout
            metrics = httpx.get(server.url + "/metrics", timeout=10).text
            code = server.stop(signal.SIGTERM)
        for s in silent:
            s.close()
        assert code == 0, server.output()
    assert not [e for e in load.errors if not isinstance(e, str)], load.errors  # no HTTP error while serving
    info = [line for line in metrics.splitlines() if line.startswith("router_info{")]
    assert len({line.split('pid="')[1].split('"')[0] for line in info}) == 2, info
    line = next(x for x in metrics.splitlines() if x.startswith('router_limited_total{reason="slow_client"}'))
    assert float(line.split()[-1]) == 6
    served = next(x for x in metrics.splitlines() if x.startswith('router_requests_total{endpoint="route",status="ok"}'))
    assert float(served.split()[-1]) >= 20
    logged = {r["request_id"] for r in read_joined(audit_path)}
    assert len(load.answers) > 20
    assert {rid for _, rid in load.answers} <= logged
