import json
from pathlib import Path

import pytest

from router_ml import load_router
from router_ml.core.catalog import load_catalog
from router_ml.errors import ArtifactExistsError, ConfigError
from router_ml.training.data.outcomes import read_outcomes, to_routing_data
from router_ml.training.evaluate.evaluation import evaluate_router
from router_ml.training.fit.pipeline import TrainConfig, train


def config_for(demo_files, out, cache, **overrides):
    settings = dict(outcomes=str(demo_files["outcomes"]), catalog=str(demo_files["catalog"]), out=str(out),
                    embedder_kind="hashing", folds=3, mlflow=False, cache_dir=str(cache))
    settings.update(overrides)
    return TrainConfig(**settings)


def test_manifest_test_metrics_match_a_fresh_evaluation(demo_files, tmp_path):
    out = tmp_path / "r"
    config = config_for(demo_files, out, tmp_path / "cache", test_outcomes=str(demo_files["holdout"]))
    result = train(config, log=lambda _: None, progress=False)
    router = load_router(out)
    data = to_routing_data(read_outcomes(demo_files["holdout"]), load_catalog(demo_files["catalog"]))
    again = evaluate_router(router, data)
    # Served from head.npz, trained as scikit-learn estimators: equal up to float rounding.
    assert again["metrics"] == pytest.approx(result.manifest["metrics"]["test"]["metrics"], abs=1e-7, nan_ok=True)
    assert again["default"]["quality"] == result.report["default"]["quality"]
    labels = result.manifest["training_data"]["labels"]
    assert sum(labels.values()) == result.manifest["training_data"]["train_prompts"]


def test_existing_output_is_refused_before_any_work(demo_files, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactExistsError):
        train(config_for(demo_files, out, tmp_path / "cache", outcomes="does-not-exist.csv"), log=lambda _: None)
    assert (out / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_a_router_and_nothing_else(demo_files, trained_router_dir, tmp_path):
    """`train --overwrite` once replaced a web app's folder because it held a manifest.json."""
    import shutil
    import time

    from router_ml.core.artifact import read_manifest

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html>my app</html>")
    (site / "manifest.json").write_text(json.dumps({"name": "my app", "display": "standalone"}))
    started = time.perf_counter()
    with pytest.raises(ArtifactExistsError, match=r"site: holds a manifest.json that is not a router-ml manifest"):
        train(config_for(demo_files, site, tmp_path / "cache", overwrite=True), log=lambda _: None, progress=False)
    assert time.perf_counter() - started < 2  # refused before reading or embedding anything
    assert (site / "index.html").read_text() == "<html>my app</html>"
    assert json.loads((site / "manifest.json").read_text())["name"] == "my app"

    router = shutil.copytree(trained_router_dir, tmp_path / "router")
    train(config_for(demo_files, router, tmp_path / "cache", overwrite=True, router_version="replaced", test_size=0.0,
                     neighbours=False, verifier=False, strategy="per_model"), log=lambda _: None, progress=False)
    assert read_manifest(router)["router_version"] == "replaced"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "router", "site"]


def test_failure_while_writing_leaves_no_artifact(demo_files, tmp_path, monkeypatch):
    import joblib

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(joblib, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        train(config_for(demo_files, tmp_path / "r", tmp_path / "cache"), log=lambda _: None, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_one_model_only_is_refused(demo_files, tmp_path):
    with pytest.raises(ConfigError, match="routing needs at least 2"):
        train(config_for(demo_files, tmp_path / "r", tmp_path / "c", models=["pro"]), log=lambda _: None)


def test_bad_settings_fail_on_creation(demo_files, tmp_path):
    for bad in ({"test_size": 1.0}, {"strategy": "magic"}, {"success_threshold": 2}, {"folds": 1}):
        with pytest.raises(ConfigError):
            config_for(demo_files, tmp_path / "r", tmp_path / "c", **bad)


@pytest.mark.slow
def test_mlflow_run_registry_and_models_uri(demo_files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = config_for(demo_files, tmp_path / "r", tmp_path / "cache", mlflow=True, register="demo-router",
                        experiment="tests")
    result = train(config, log=lambda _: None, progress=False)
    assert (tmp_path / "mlflow.db").exists() and (tmp_path / "mlartifacts").is_dir()
    assert not (tmp_path / "mlruns").exists()  # the deprecated file store is never the default
    assert result.model_version == "1"

    from router_ml.core.mlflow_registry import import_mlflow
    from router_ml.training.registry.evaluations import read_evaluations

    mlflow = import_mlflow()
    run = mlflow.get_run(result.run_id)
    assert run.data.tags["data_sha256"] == result.manifest["training_data"]["sha256"]
    assert run.data.params["strategy"] == result.manifest["strategy"]["name"]
    # Held-out figures are keyed by their test set: runs tested on other prompts never share the column.
    test_set = result.report["eval_set"]
    assert run.data.params["test_set.sha256"] == test_set["sha256"]
    assert run.data.params["test_set.prompts"] == str(result.report["prompts"]) == str(test_set["prompts"])
    assert run.data.metrics[f"test.{test_set['id']}.metrics.aiq"] == pytest.approx(result.report["metrics"]["aiq"])
    assert "val.aiq" in run.data.metrics and not [k for k in run.data.metrics if k.startswith("test.metrics.")]
    assert {"seconds.reading", "seconds.embedding", "seconds.head_selection", "seconds.evaluation"} <= set(run.data.metrics)
    assert set(result.timings) >= {"reading", "embedder", "embedding", "head selection", "evaluation", "writing", "MLflow"}
    version = mlflow.MlflowClient().get_model_version("demo-router", "1")
    assert version.tags["data_sha256"] == result.manifest["training_data"]["sha256"]
    group = read_evaluations(version.tags)[test_set["id"]]
    assert group["run"] == result.run_id and group["kind"] == "training" and group["prompts"] == test_set["prompts"]
    assert group["metrics"]["aiq"] == pytest.approx(result.report["metrics"]["aiq"], rel=1e-5)

    local = load_router(tmp_path / "r")
    registered = load_router("models:/demo-router/1")
    prompts = ["What is 2 + 2?", "Implement a B-tree with deletion and rebalancing in Rust."]
    assert [d.to_dict() for d in local.route_batch(prompts)] == [d.to_dict() for d in registered.route_batch(prompts)]

    pyfunc = mlflow.pyfunc.load_model("models:/demo-router/1")
    import pandas as pd

    frame = pyfunc.predict(pd.DataFrame({"prompt": prompts, "quality_target": [0.0, 1.0]}))
    expected = [local.route(prompts[0], 0.0), local.route(prompts[1], 1.0)]
    assert list(frame.columns) == ["model", "confidence", "scores", "estimated_cost", "quality_target", "novelty",
                                   "reason", "router_version"]
    assert frame["model"].tolist() == [d.model for d in expected]
    assert frame["scores"].tolist() == [d.scores for d in expected]  # a map per row, not a JSON string
    assert frame["estimated_cost"].tolist() == pytest.approx([d.estimated_cost for d in expected])
    assert frame["quality_target"].tolist() == [0.0, 1.0]
    assert frame["novelty"].tolist() == pytest.approx([d.novelty for d in expected])
    assert frame["confidence"].dtype == "float64" and frame["novelty"].dtype == "float64"
    assert frame["router_version"].tolist() == [local.version] * 2 and all(frame["reason"])
    from mlflow.types.schema import DataType, Map

    outputs = {c.name: c.type for c in pyfunc.metadata.get_output_schema().inputs}
    assert outputs["scores"] == Map(DataType.double) and outputs["novelty"] == DataType.double


@pytest.mark.slow
def test_a_router_logged_before_typed_columns_still_answers_as_it_did(trained_router_dir, tmp_path, monkeypatch):
    """Models logged by earlier router-ml: the entry point file, no model_config, a signature with
    `scores` as a string. They load and answer in their own shape (scores a JSON string)."""
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    import router_ml
    from router_ml.core.mlflow_registry import import_mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow = import_mlflow()
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", "prompt"), ColSpec("double", "quality_target", required=False)]),
        outputs=Schema([ColSpec("string", "model"), ColSpec("double", "confidence"), ColSpec("string", "scores"),
                        ColSpec("string", "reason"), ColSpec("string", "router_version")]))
    with mlflow.start_run():
        mlflow.pyfunc.log_model(name="router", signature=signature, registered_model_name="old-router",
                                python_model=str(Path(router_ml.__file__).parent / "serve" / "pyfunc_entrypoint.py"),
                                artifacts={"router": str(trained_router_dir)})
    frame = mlflow.pyfunc.load_model("models:/old-router/1").predict(pd.DataFrame({"prompt": ["What is 2 + 2?"]}))
    assert list(frame.columns) == ["model", "confidence", "scores", "reason", "router_version"]
    assert json.loads(frame["scores"].iloc[0]).keys() == set(load_router(trained_router_dir).models)


def test_training_says_where_the_time_went(demo_files, tmp_path):
    lines = []
    result = train(config_for(demo_files, tmp_path / "r", tmp_path / "cache", folds=2, strategy="per_model",
                              baselines=()), log=lines.append, progress=False)
    stamped = [line for line in lines if line.startswith("[")]
    for what in ("reading and checking", "preparing the embedder: hashing", "embedding 240 training prompts",
                 "choosing the head by 2-fold validation AIQ: 3 candidates", "learning a verifier from the logged "
                 "answers", "planning cascades", "evaluating the router as it will be loaded on 60 held-out prompts",
                 "writing"):
        assert any(what in line for line in stamped), (what, stamped)
    assert any(line.startswith("  [3/3] per_model(") for line in lines)
    assert lines[-1].startswith("time: ") and "head selection" in lines[-1] and "evaluation" in lines[-1]
    assert set(result.timings) == {"reading", "embedder", "embedding", "head selection", "verifier", "cascades",
                                   "evaluation", "writing"}
    assert all(seconds >= 0 for seconds in result.timings.values())


def test_models_uri_that_does_not_exist(tmp_path, monkeypatch):
    from router_ml.errors import ArtifactError

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ArtifactError, match="models:/nope/1"):
        load_router("models:/nope/1")
