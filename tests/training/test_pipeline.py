import json

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

    mlflow = import_mlflow()
    run = mlflow.get_run(result.run_id)
    assert run.data.tags["data_sha256"] == result.manifest["training_data"]["sha256"]
    assert run.data.params["strategy"] == result.manifest["strategy"]["name"]
    assert "test.metrics.aiq" in run.data.metrics and "val.aiq" in run.data.metrics
    version = mlflow.MlflowClient().get_model_version("demo-router", "1")
    assert version.tags["data_sha256"] == result.manifest["training_data"]["sha256"]
    assert "test.aiq" in version.tags

    local = load_router(tmp_path / "r")
    registered = load_router("models:/demo-router/1")
    prompts = ["What is 2 + 2?", "Implement a B-tree with deletion and rebalancing in Rust."]
    assert [d.to_dict() for d in local.route_batch(prompts)] == [d.to_dict() for d in registered.route_batch(prompts)]

    pyfunc = mlflow.pyfunc.load_model("models:/demo-router/1")
    import pandas as pd

    frame = pyfunc.predict(pd.DataFrame({"prompt": prompts, "quality_target": [0.0, 1.0]}))
    assert frame["model"].tolist() == [local.route(prompts[0], 0.0).model, local.route(prompts[1], 1.0).model]
    assert json.loads(frame["scores"].iloc[0]).keys() == set(local.models)


def test_models_uri_that_does_not_exist(tmp_path, monkeypatch):
    from router_ml.errors import ArtifactError

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ArtifactError, match="models:/nope/1"):
        load_router("models:/nope/1")
