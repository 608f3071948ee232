"""The MLflow UI server shows router-ml's runs: start it on localhost and read them over REST."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from router_ml.training.fit.pipeline import TrainConfig, train

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, data: dict | None = None):
    request = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
        return response.status, body


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_files):
    root = tmp_path_factory.mktemp("mlflow-ui")
    old = os.getcwd()
    uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.chdir(root)
    try:
        result = train(TrainConfig(outcomes=str(demo_files["outcomes"]), catalog=str(demo_files["catalog"]),
                                   out=str(root / "router"), embedder_kind="hashing", folds=2, strategy="per_model",
                                   cache_dir=str(root / "cache"), router_version="ui-test"),
                       log=lambda _: None, progress=False)
    finally:
        os.chdir(old)
        if uri:
            os.environ["MLFLOW_TRACKING_URI"] = uri
    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            if get(f"{base}/health")[0] == 200:
                break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail("mlflow server did not start")
            time.sleep(1)
    yield base, result
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_ui_serves_the_runs_with_metrics_and_plots(server):
    base, result = server
    status, page = get(f"{base}/")
    assert status == 200 and b"<html" in page.lower()
    _, body = get(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=router-ml")
    experiment_id = json.loads(body)["experiment"]["experiment_id"]
    _, body = get(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id]})
    runs = json.loads(body)["runs"]
    run = next(r for r in runs if r["info"]["run_id"] == result.run_id)
    logged = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    test_set = result.report["eval_set"]
    # held-out figures are keyed by the test set's fingerprint, so runs tested on other prompts never share a column
    assert logged[f"test.{test_set['id']}.metrics.aiq"] == pytest.approx(result.report["metrics"]["aiq"])
    assert "val.aiq" in logged and f"test.{test_set['id']}.baseline_knn.aiq" in logged
    assert "seconds.head_selection" in logged
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["test_set.sha256"] == test_set["sha256"] and params["test_set.prompts"] == str(test_set["prompts"])
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["data_sha256"] == result.manifest["training_data"]["sha256"] and tags["test_set"] == test_set["id"]
    _, body = get(f"{base}/api/2.0/mlflow/artifacts/list?run_id={result.run_id}&path=evaluation/test")
    files = {f["path"] for f in json.loads(body)["files"]}
    assert {"evaluation/test/curves.png", "evaluation/test/reliability.png", "evaluation/test/summary.md"} <= files
