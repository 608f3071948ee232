"""Registry workflows against a real MLflow store (SQLite in a temporary directory): evaluations
indexed per evaluation set, compare / promote as runs, `router-ml versions`."""

import json

import pandas as pd
import pytest

from router_ml import load_router
from router_ml.errors import ArtifactError, ConfigError, PromotionRefused
from router_ml.training.data.outcomes import read_outcomes
from router_ml.training.fit.pipeline import TrainConfig, train
from router_ml.training.registry.evaluations import (
    comparable_sets,
    read_evaluations,
    record_evaluation,
)
from router_ml.training.registry.tracking import log_evaluation_run
from router_ml.training.registry.versions import promote

pytestmark = pytest.mark.slow
QUIET = {"log": lambda _: None}


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
                              register="demo", baselines=(), cache_dir=str(root / "cache"), router_version=f"router-{i}"),
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


def client():
    from router_ml.core.mlflow_registry import import_mlflow

    return import_mlflow().MlflowClient()


def decisions(name="demo", kind=None):
    from router_ml.training.registry.decisions import decision_runs

    return [d for d in decision_runs(client(), name) if kind is None or d["kind"] == kind]


def fake_set(set_id: str, prompts: int) -> dict:
    return {"id": set_id, "sha256": set_id * 5, "prompts": prompts, "source": "earlier.csv"}


def test_alias_lifecycle(in_registry, demo_files):
    c = client()
    with pytest.raises(ArtifactError, match="alias 'champion' is not set on model 'demo'"):
        load_router("models:/demo@champion")
    first = promote("demo", "1", **QUIET)
    assert first["previous"] is None and first["run_id"]
    assert load_router("models:/demo@champion").version == "router-1"
    assert [d["decision"] for d in decisions(kind="promotion")] == ["first holder"]

    # Earlier evaluations of both on one set of 400 prompts say version 2 is worse: refused (and
    # the refusal is a run), then forced.
    record_evaluation(c, "demo", "1", fake_set("0123456789ab", 400), {"aiq": 0.80}, "run-a", "evaluation")
    record_evaluation(c, "demo", "2", fake_set("0123456789ab", 400), {"aiq": 0.70}, "run-b", "evaluation")
    with pytest.raises(PromotionRefused, match="worse than @champion") as refused:
        promote("demo", "2", **QUIET)
    assert refused.value.evidence["prompts"] == 400 and refused.value.evidence["run_id"]
    assert load_router("models:/demo@champion").version == "router-1"
    forced = promote("demo", "2", force=True, **QUIET)
    assert forced["forced"] is True and forced["evidence"]["candidate"] == 0.70
    assert c.get_model_version("demo", "2").tags["promotion.champion"].startswith("FORCED over version 1")
    assert any(k.startswith("forced_promotion.champion") for k in c.get_registered_model("demo").tags)
    assert load_router("models:/demo@champion").version == "router-2"
    runs = decisions(kind="promotion")
    assert [d["decision"] for d in runs] == ["first holder", "refused", "forced"]
    assert runs[-1]["versions"] == ["2", "1"] and "v2 FORCED to @champion over v1" in runs[-1]["summary"]
    run = c.get_run(runs[1]["run_id"])
    assert run.data.params["metric"] == "aiq" and run.data.params["eval_set.prompts"] == "400"
    assert run.data.metrics["v2.aiq"] == pytest.approx(0.70) and run.data.metrics["v1.aiq"] == pytest.approx(0.80)

    # A set measured on too few prompts is not evidence; tags from before the per-set index (no
    # run tag, named by a file's hash) are never used.
    record_evaluation(c, "demo", "1", fake_set("aaaaaaaaaaaa", 150), {"aiq": 0.60}, "run-c", "comparison")
    record_evaluation(c, "demo", "2", fake_set("aaaaaaaaaaaa", 150), {"aiq": 0.90}, "run-d", "comparison")
    for v in ("1", "2"):
        c.delete_model_version_tag("demo", v, "eval.0123456789ab.run")  # now a legacy group on both
    with pytest.raises(PromotionRefused, match="too thin: the earlier evaluations of both on the same prompts have 150"):
        promote("demo", "1", **QUIET)
    assert read_evaluations(c.get_model_version("demo", "1").tags)["0123456789ab"]["legacy"] is True
    assert [s["set"] for s in comparable_sets(c.get_model_version("demo", "1").tags,
                                              c.get_model_version("demo", "2").tags, "aiq")][0] == "aaaaaaaaaaaa"
    for v in ("1", "2"):  # the hand-written groups go; later tests see only measured ones
        for key in list(c.get_model_version("demo", v).tags):
            if key.startswith(("eval.aaaaaaaaaaaa.", "eval.0123456789ab.")):
                c.delete_model_version_tag("demo", v, key)

    # With outcomes, both are evaluated now on the same prompts and compared by a paired bootstrap:
    # too few prompts is refused outright; otherwise version 1 returns only with a lower bound >= 0.
    holdout = read_outcomes(demo_files["holdout"])
    few = holdout[holdout["prompt_id"].isin(holdout["prompt_id"].unique()[:60])]
    with pytest.raises(PromotionRefused, match="too thin: 60 held-out prompts"):
        promote("demo", "1", frame=few, source="few", **QUIET)
    assert load_router("models:/demo@champion").version == "router-2"
    try:
        result = promote("demo", "1", frame=holdout, source="holdout", resamples=300, min_prompts=50, **QUIET)
        evidence = result["evidence"]
        assert evidence["lower"] >= 0 and evidence["prompts"] >= 50 and evidence["resamples"] == 300
        assert load_router("models:/demo@champion").version == "router-1"
    except PromotionRefused as refusal:
        assert "95% confidence" in str(refusal) and "lower bound" in str(refusal)
        assert load_router("models:/demo@champion").version == "router-2"
        evidence = refusal.evidence
    # Both versions now carry that evaluation, from the promotion run, with every metric.
    for v in ("1", "2"):
        group = read_evaluations(c.get_model_version("demo", v).tags)[evidence["eval_set"]["id"]]
        assert group["run"] == evidence["run_id"] and group["kind"] == "promotion"
        assert group["prompts"] == evidence["prompts"] and {"aiq", "gap_closed", "ece"} <= set(group["metrics"])


def test_unknown_names_and_metrics(in_registry):
    with pytest.raises(ArtifactError, match="no registered model named 'nope'"):
        promote("nope", "1", **QUIET)
    with pytest.raises(ArtifactError, match="has no version '9'"):
        promote("demo", "9", **QUIET)
    with pytest.raises(ConfigError, match="--metric"):
        promote("demo", "1", metric="accuracy", **QUIET)


def test_evaluation_run_indexes_the_version_by_its_set(in_registry, demo_files):
    from router_ml.core.catalog import load_catalog
    from router_ml.training.data.outcomes import to_routing_data
    from router_ml.training.evaluate.evaluation import evaluate_router

    frame = read_outcomes(demo_files["holdout"])
    router = load_router("models:/demo/1")
    report = evaluate_router(router, to_routing_data(frame, load_catalog(demo_files["catalog"])), baselines=())
    run_id = log_evaluation_run(report, "models:/demo/1")
    c = client()
    run = c.get_run(run_id)
    set_id = report["eval_set"]["id"]
    assert run.data.metrics[f"eval.{set_id}.metrics.aiq"] == pytest.approx(report["metrics"]["aiq"])
    assert not [k for k in run.data.metrics if k.startswith("eval.metrics.")]  # never a key shared by two sets
    assert run.data.params["eval_set.sha256"] == report["eval_set"]["sha256"]
    assert run.data.params["eval_set.prompts"] == str(report["prompts"])
    assert run.data.tags["registered_versions"] == "demo/1"
    artifacts = {a.path for a in c.list_artifacts(run_id, "evaluation/eval")}
    assert {"evaluation/eval/curves.png", "evaluation/eval/summary.md", "evaluation/eval/report.json"} <= artifacts
    group = read_evaluations(c.get_model_version("demo", "1").tags)[set_id]
    assert group["run"] == run_id and group["prompts"] == report["prompts"] and group["kind"] == "evaluation"
    assert group["metrics"]["aiq"] == pytest.approx(report["metrics"]["aiq"], rel=1e-5)


def test_compare_cli_names_registry_versions_prints_intervals_and_logs_a_run(in_registry, demo_files, capsys):
    from router_ml.cli import main

    code = main(["compare", "--name", "demo", "--versions", "1,2", "--outcomes", str(demo_files["holdout"]),
                 "--catalog", str(demo_files["catalog"]), "--report", "cmp", "--json", "cmp.json", "--resamples", "200"])
    captured = capsys.readouterr()
    assert code == 0 and "| aiq |" in captured.out
    assert "v1: models:/demo/1 (router router-1)" in captured.out
    assert "95% paired bootstrap intervals" in captured.out and "| aiq | v2 - v1: " in captured.out
    summary = json.loads((in_registry / "cmp.json").read_text())
    assert list(summary["routers"]) == ["v1", "v2"]  # registry numbers, not the router version strings
    assert summary["sources"]["v2"] == {"source": "models:/demo/2", "router_version": "router-2",
                                        "registered_model": "demo", "version": "2"}
    aiq = next(d for d in summary["differences"] if d["metric"] == "aiq")
    assert aiq["low"] <= aiq["difference"] <= aiq["high"] and aiq["a"] == "v1" and aiq["b"] == "v2"
    assert aiq["difference"] == pytest.approx(summary["routers"]["v2"]["aiq"] - summary["routers"]["v1"]["aiq"])
    prompts = summary["prompts"]
    assert prompts < 200 and "warning: only" in captured.err and "noisy" in captured.err
    assert "**Warning:** only" in (in_registry / "cmp" / "compare.md").read_text()
    assert (in_registry / "cmp" / "compare_curves.png").stat().st_size > 5000

    run = next(d for d in decisions(kind="comparison") if d["eval_set"] == summary["eval_set"]["id"])
    logged = client().get_run(run["run_id"])
    assert sorted(run["versions"]) == ["1", "2"]
    assert logged.data.params["eval_set.sha256"] == summary["eval_set"]["sha256"]
    assert logged.data.params["eval_set.prompts"] == str(prompts) and logged.data.params["metric"] == "aiq"
    assert logged.data.metrics["v2_minus_v1.aiq.low"] == pytest.approx(aiq["low"])
    assert logged.data.tags["warning"].startswith("only") and logged.data.tags["decision"] == aiq["verdict"]
    assert "comparison/compare.md" in {a.path for a in client().list_artifacts(run["run_id"], "comparison")}
    for v in ("1", "2"):
        group = read_evaluations(client().get_model_version("demo", v).tags)[summary["eval_set"]["id"]]
        assert group["run"] == run["run_id"] and group["prompts"] == prompts


def test_a_set_evaluated_again_on_fewer_prompts_gets_its_own_fingerprint(in_registry, demo_files, capsys):
    """Issue #22: `compare` overwrote a version's `eval.<file hash>.aiq` with a figure on 152 prompts
    while its `.prompts` tag still said 600. A router trained on part of the holdout makes compare
    drop those prompts: that smaller set is indexed apart, and the full set's figures stay."""
    from router_ml.cli import main

    c = client()
    holdout = pd.read_csv(demo_files["holdout"])
    for v in ("1", "2"):
        assert main(["evaluate", "--router", f"models:/demo/{v}", "--outcomes", str(demo_files["holdout"]),
                     "--catalog", str(demo_files["catalog"]), "--no-baselines"]) == 0
    full = {v: read_evaluations(c.get_model_version("demo", v).tags) for v in ("1", "2")}
    seen = pd.concat([pd.read_csv(demo_files["outcomes"]),
                      holdout[holdout["prompt_id"].isin(holdout["prompt_id"].unique()[:30])]])
    seen.to_csv(in_registry / "seen.csv", index=False)
    train(TrainConfig(outcomes=str(in_registry / "seen.csv"), catalog=str(demo_files["catalog"]),
                      out=str(in_registry / "r3"), embedder_kind="hashing", folds=2, strategy="per_model", test_size=0.0,
                      register="demo", baselines=(), verifier=False, cache_dir=str(in_registry / "cache"),
                      router_version="router-3"), log=lambda _: None, progress=False)
    capsys.readouterr()
    assert main(["compare", "--name", "demo", "--versions", "1,3", "--outcomes", str(demo_files["holdout"]),
                 "--catalog", str(demo_files["catalog"]), "--json", "cmp13.json", "--report", "cmp13",
                 "--resamples", "200"]) == 0
    assert "dropping 30 prompts that a compared router was trained on" in capsys.readouterr().err
    smaller = json.loads((in_registry / "cmp13.json").read_text())["eval_set"]
    whole = holdout["prompt_id"].nunique()
    assert smaller["prompts"] == whole - 30

    after = read_evaluations(c.get_model_version("demo", "1").tags)
    full_id = next(s for s, g in full["1"].items() if g["kind"] == "evaluation" and g["prompts"] == whole)
    assert smaller["id"] != full_id
    assert after[full_id] == full["1"][full_id]  # the 75-prompt evaluation is untouched
    assert after[smaller["id"]]["prompts"] == whole - 30 and after[smaller["id"]]["kind"] == "comparison"
    # No group mixes two sets: every group's run measured exactly that set, that many prompts.
    for v in ("1", "2", "3"):
        for set_id, group in read_evaluations(c.get_model_version("demo", v).tags).items():
            assert not group["legacy"], (v, set_id, group)
            params = c.get_run(group["run"]).data.params
            prefix = "test_set" if group["kind"] == "training" else "eval_set"
            assert params[f"{prefix}.sha256"].startswith(set_id), (v, set_id, group)
            assert params[f"{prefix}.prompts"] == str(group["prompts"]), (v, set_id, group)

    # promote from earlier evaluations uses the largest set both were measured on (the full holdout).
    try:
        result = promote("demo", "2", min_prompts=50, **QUIET)
        evidence = result.get("evidence", {})
    except PromotionRefused as refused:
        evidence = refused.evidence
    if evidence:  # version 2 may already hold the alias after test_alias_lifecycle
        assert evidence["eval_set"] == full_id and evidence["prompts"] == whole


def test_versions_lists_versions_aliases_evaluations_and_decisions(in_registry, capsys):
    from router_ml.cli import main

    assert main(["versions", "demo", "--json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert [v["label"] for v in history["versions"]][:2] == ["v1", "v2"]
    holder = history["aliases"]["champion"]
    one = history["versions"][0]
    assert one["router_version"] == "router-1" and one["run_id"] and one["created"]
    assert ("champion" in one["aliases"]) == (holder == "1")
    kinds = {e["kind"] for e in one["evaluations"] if not e["legacy"]}
    assert {"training", "evaluation", "comparison"} <= kinds
    assert {d["kind"] for d in one["decisions"]} == {"comparison", "promotion"}
    assert all("1" in d["versions"] for d in one["decisions"])

    assert main(["versions", "demo"]) == 0
    text = capsys.readouterr().out
    assert f"aliases: @champion -> v{holder}" in text and "\nv1" in text and "\nv2" in text
    assert "evaluations (set: prompts, metrics, measured by):" in text and "promotion: v2 FORCED" in text
    assert main(["versions", "nope"]) == 2
    assert "no registered model named 'nope'" in capsys.readouterr().err


def test_evaluation_groups_are_written_whole_and_legacy_groups_are_never_compared():
    """Unit level (no store): a group replaces the earlier group of its set; groups without a run
    tag (written before the per-set index) are legacy; one fingerprint with two sizes is never
    trusted."""
    from router_ml.training.registry.evaluations import evaluation_tags

    tags = evaluation_tags(fake_set("0123456789ab", 600), {"aiq": 0.8, "apgr": None, "ece": float("nan")}, "r1", "evaluation")
    assert tags == {"eval.0123456789ab.prompts": "600", "eval.0123456789ab.run": "r1",
                    "eval.0123456789ab.kind": "evaluation", "eval.0123456789ab.source": "earlier.csv",
                    "eval.0123456789ab.aiq": "0.8"}
    legacy = {"eval.fedcba987654.aiq": "0.9", "eval.fedcba987654.prompts": "600"}
    other = {**tags, "eval.fedcba987654.aiq": "0.7", "eval.fedcba987654.prompts": "600"}
    groups = read_evaluations({**tags, **legacy})
    assert groups["fedcba987654"]["legacy"] and not groups["0123456789ab"]["legacy"]
    assert [s["set"] for s in comparable_sets({**tags, **legacy}, other, "aiq")] == ["0123456789ab"]
    mixed = {**evaluation_tags(fake_set("0123456789ab", 152), {"aiq": 0.7}, "r2", "comparison")}
    assert comparable_sets(tags, mixed, "aiq") == []
