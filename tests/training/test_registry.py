"""Registry workflows against a real MLflow store (SQLite in a temporary directory)."""

import json

import pytest

from router_ml import load_router
from router_ml.errors import ArtifactError, ConfigError, PromotionRefused
from router_ml.training.data.outcomes import read_outcomes
from router_ml.training.fit.pipeline import TrainConfig, train
from router_ml.training.registry.versions import log_evaluation_run, promote

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry(tmp_path_factory, demo_files):
    """Two registered versions of one router (different heads), in a fresh MLflow store."""
    import os

    root = tmp_path_factory.mktemp("registry")
    old_cwd, old_uri = os.getcwd(), os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.chdir(root)
    try:
        for i, strategy in enumerate(("per_model", "knn"), start=1):
            train(TrainConfig(outcomes=str(demo_files["outcomes"]), catalog=str(demo_files["catalog"]),
                              out=str(root / f"r{i}"), embedder_kind="hashing", folds=2, strategy=strategy,
                              register="demo", baselines=(), cache_dir=str(root / "cache"), router_version=f"v{i}"),
                  log=lambda _: None, progress=False)
        yield root
    finally:
        os.chdir(old_cwd)
        if old_uri:
            os.environ["MLFLOW_TRACKING_URI"] = old_uri


@pytest.fixture()
def in_registry(registry, monkeypatch):
    monkeypatch.chdir(registry)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return registry


def test_alias_lifecycle(in_registry, demo_files):
    from router_ml.core.mlflow_registry import import_mlflow

    client = import_mlflow().MlflowClient()
    with pytest.raises(ArtifactError, match="alias 'champion' is not set on model 'demo'"):
        load_router("models:/demo@champion")
    assert promote("demo", "1", log=lambda _: None)["previous"] is None
    assert load_router("models:/demo@champion").version == "v1"

    # Earlier evaluations on the same data (tags) say version 2 is worse: refused, then forced.
    client.set_model_version_tag("demo", "1", "eval.0123456789ab.aiq", "0.80")
    client.set_model_version_tag("demo", "2", "eval.0123456789ab.aiq", "0.70")
    with pytest.raises(PromotionRefused, match="worse than @champion"):
        promote("demo", "2", log=lambda _: None)
    assert load_router("models:/demo@champion").version == "v1"
    forced = promote("demo", "2", force=True, log=lambda _: None)
    assert forced["forced"] is True and forced["evidence"]["candidate"] == 0.70
    assert client.get_model_version("demo", "2").tags["promotion.champion"].startswith("FORCED over version 1")
    assert any(k.startswith("forced_promotion.champion") for k in client.get_registered_model("demo").tags)
    assert load_router("models:/demo@champion").version == "v2"

    # With outcomes, both are evaluated now on the same prompts and compared by a paired bootstrap:
    # too few prompts is refused outright; otherwise version 1 returns only with a lower bound >= 0.
    holdout = read_outcomes(demo_files["holdout"])
    few = holdout[holdout["prompt_id"].isin(holdout["prompt_id"].unique()[:60])]
    with pytest.raises(PromotionRefused, match="too thin: 60 held-out prompts"):
        promote("demo", "1", frame=few, source="few", log=lambda _: None)
    assert load_router("models:/demo@champion").version == "v2"
    try:
        result = promote("demo", "1", frame=holdout, source="holdout", resamples=300, min_prompts=50,
                         log=lambda _: None)
        evidence = result["evidence"]
        assert evidence["lower"] >= 0 and evidence["prompts"] >= 50 and evidence["resamples"] == 300
        assert load_router("models:/demo@champion").version == "v1"
    except PromotionRefused as refused:
        assert "95% confidence" in str(refused) and "lower bound" in str(refused)
        assert load_router("models:/demo@champion").version == "v2"


def test_unknown_names_and_metrics(in_registry):
    with pytest.raises(ArtifactError, match="no registered model named 'nope'"):
        promote("nope", "1", log=lambda _: None)
    with pytest.raises(ArtifactError, match="has no version '9'"):
        promote("demo", "9", log=lambda _: None)
    with pytest.raises(ConfigError, match="--metric"):
        promote("demo", "1", metric="accuracy", log=lambda _: None)


def test_evaluation_run_tags_the_version(in_registry, demo_files):
    from router_ml.core.catalog import load_catalog
    from router_ml.core.mlflow_registry import import_mlflow
    from router_ml.training.data.outcomes import data_hash, to_routing_data
    from router_ml.training.evaluate.evaluation import evaluate_router

    frame = read_outcomes(demo_files["holdout"])
    router = load_router("models:/demo/1")
    report = evaluate_router(router, to_routing_data(frame, load_catalog(demo_files["catalog"])), baselines=())
    run_id = log_evaluation_run(report, "models:/demo/1", data_hash(frame))
    client = import_mlflow().MlflowClient()
    run = client.get_run(run_id)
    assert run.data.metrics["eval.metrics.aiq"] == pytest.approx(report["metrics"]["aiq"])
    artifacts = {a.path for a in client.list_artifacts(run_id, "evaluation/eval")}
    assert {"evaluation/eval/curves.png", "evaluation/eval/summary.md", "evaluation/eval/report.json"} <= artifacts
    tags = client.get_model_version("demo", "1").tags
    assert float(tags[f"eval.{data_hash(frame)[:12]}.aiq"]) == pytest.approx(report["metrics"]["aiq"], rel=1e-5)


def test_compare_cli_on_registered_versions(in_registry, demo_files, capsys):
    from router_ml.cli import main

    code = main(["compare", "--name", "demo", "--outcomes", str(demo_files["holdout"]), "--catalog",
                 str(demo_files["catalog"]), "--report", "cmp", "--json", "cmp.json"])
    out = capsys.readouterr().out
    assert code == 0 and "| aiq |" in out
    summary = json.loads((in_registry / "cmp.json").read_text())
    assert list(summary["routers"]) == ["v1", "v2"]
    assert (in_registry / "cmp" / "compare_curves.png").stat().st_size > 5000
