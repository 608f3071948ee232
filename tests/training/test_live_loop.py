"""The loop on live traffic: judging routers from the audit log alone (evaluate --audit), retraining judged on
live traffic, onboarding a new model, drift watch (router-ml monitor). A champion serves demo traffic through
the real RoutingService and AuditStore with exploration; each served model's true outcome is reported."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from router_ml import load_router
from router_ml.cli import main
from router_ml.core.audit_format import Outcome
from router_ml.errors import ConfigError
from router_ml.policy.exploration import Exploration
from router_ml.serve.audit import AuditStore
from router_ml.serve.service import RoutingService
from router_ml.training.evaluate.off_policy import Judged, evaluate_audit, read_traffic

pytestmark = pytest.mark.slow


def _train(outcomes, catalog, out, cache, strategy="per_model", **extra):
    from router_ml.training.fit.pipeline import TrainConfig, train

    train(TrainConfig(outcomes=str(outcomes), catalog=str(catalog), out=str(out), embedder_kind="hashing", folds=3,
                      mlflow=False, baselines=(), verifier=False, test_size=0.0, strategy=strategy,
                      cache_dir=str(cache), router_version=out.name, **extra), log=lambda _: None, progress=False)
    return load_router(out)


def serve(champion_dir, frame, audit_path, *, rate=0.2, seed=1, onboarding=None, report=True, repeat=1):
    """Route every prompt of `frame` (`repeat` times) through the service and report the served model's true score."""
    service = RoutingService(str(champion_dir), audit=AuditStore(audit_path, prompt_storage="text"),
                             exploration=Exploration(rate=rate), onboarding=onboarding, seed=seed)
    truth = frame.set_index(["prompt", "model"])["score"]
    prompts = frame.drop_duplicates("prompt_id")["prompt"].tolist() * repeat
    served = []
    for start in range(0, len(prompts), 400):
        chunk = service.route(prompts[start:start + 400])
        if report:
            service.record_outcomes([Outcome(s.request_id, s.model, score=float(truth.loc[(p, s.model)]))
                                     for s, p in zip(chunk, prompts[start:start + 400])])
        served += chunk
    service.close()
    return served, prompts


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    from router_ml.training.data.demo import write_demo

    base = tmp_path_factory.mktemp("loop")
    files = write_demo(base / "demo", n_prompts=1000, seed=21)
    frame = pd.concat([pd.read_csv(files["outcomes"]), pd.read_csv(files["holdout"])], ignore_index=True)
    ids = frame["prompt_id"].drop_duplicates().sample(frac=1.0, random_state=0).tolist()
    parts = {"champion": ids[:400], "elsewhere": ids[400:600], "traffic": ids[600:]}
    for name in ("champion", "elsewhere"):
        frame[frame["prompt_id"].isin(parts[name])].to_csv(base / f"{name}.csv", index=False)
    cache = base / "cache"
    champion = _train(base / "champion.csv", files["catalog"], base / "champion", cache)
    elsewhere = _train(base / "elsewhere.csv", files["catalog"], base / "elsewhere", cache, "cheapest_successful")
    traffic = frame[frame["prompt_id"].isin(parts["traffic"])]
    served, prompts = serve(base / "champion", traffic, base / "audit.sqlite")
    return {"base": base, "files": files, "frame": frame, "traffic": traffic, "champion": champion,
            "elsewhere": elsewhere, "served": served, "prompts": prompts, "cache": cache}


def truth_quality(router, traffic):
    truth = traffic.set_index(["prompt", "model"])["score"]
    prompts = traffic.drop_duplicates("prompt_id")["prompt"].tolist()
    return float(np.mean([truth.loc[(p, d.model)] for p, d in zip(prompts, router.route_batch(prompts))]))


def test_every_served_decision_logs_its_distribution(loop):
    traffic = read_traffic(loop["base"] / "audit.sqlite", log=lambda _: None)
    assert len(traffic) == len(loop["served"]) == 650 and traffic.skipped == {}
    assert np.allclose(traffic.policy.sum(axis=1), 1.0)
    explored = [s for s in loop["served"] if s.exploration]
    assert 90 < len(explored) < 170  # 20 % of 650
    assert all(s.propensity < 0.8 and s.planned_model != s.model for s in explored)


def test_evaluate_audit_holds_the_truth_and_says_how_sure_it_is(loop):
    traffic = read_traffic(loop["base"] / "audit.sqlite", log=lambda _: None)
    report = evaluate_audit(traffic, [Judged("champion", loop["champion"]), Judged("elsewhere", loop["elsewhere"])],
                            resamples=400, log=lambda _: None)
    assert list(report) == ["estimator", "logged_requests", "decisions", "left_out", "level", "resamples", "routers"]
    assert "doubly robust" in report["estimator"] and report["logged_requests"] == 650
    for entry, router in zip(report["routers"], (loop["champion"], loop["elsewhere"])):
        assert entry["quality_target"] == pytest.approx(router.default_quality_target)
        for figure in ("quality", "cost", "aiq"):
            assert entry[figure]["low"] <= entry[figure]["estimate"] <= entry[figure]["high"]
        truth = truth_quality(router, loop["traffic"])
        assert entry["quality"]["low"] <= truth <= entry["quality"]["high"], (entry["router"], truth, entry["quality"])
        assert entry["trained_on_left_out"] == 0 and 0 < entry["effective_sample_size"] <= 650
    champion, elsewhere = report["routers"]
    assert champion["disagreement"] < elsewhere["disagreement"]
    assert champion["quality"]["high"] - champion["quality"]["low"] < elsewhere["quality"]["high"] - elsewhere["quality"]["low"]


def test_rows_a_router_was_trained_on_are_left_out_and_counted(loop, tmp_path):
    # A router trained on part of the served traffic: those requests must not judge it.
    seen = loop["traffic"][loop["traffic"]["prompt_id"].isin(loop["traffic"]["prompt_id"].unique()[:100])]
    seen.to_csv(tmp_path / "seen.csv", index=False)
    both = pd.concat([pd.read_csv(loop["base"] / "elsewhere.csv"), seen])
    both.to_csv(tmp_path / "both.csv", index=False)
    router = _train(tmp_path / "both.csv", loop["files"]["catalog"], tmp_path / "partly-seen", loop["cache"])
    traffic = read_traffic(loop["base"] / "audit.sqlite", log=lambda _: None)
    [entry] = evaluate_audit(traffic, [Judged("partly-seen", router)], resamples=200, log=lambda _: None)["routers"]
    assert entry["trained_on_left_out"] == 100 and entry["requests"] == 550


def test_the_command_writes_the_documented_json_and_refuses_bad_combinations(loop, tmp_path, capsys):
    out = tmp_path / "ope.json"
    code = main(["evaluate", "--audit", str(loop["base"] / "audit.sqlite"), "--router", str(loop["base"] / "champion"),
                 "--router", str(loop["base"] / "elsewhere"), "--resamples", "200", "--json", str(out)])
    assert code == 0 and "doubly robust" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert [r["router"] for r in data["routers"]] == [str(loop["base"] / "champion"), str(loop["base"] / "elsewhere")]
    assert set(data["routers"][0]) >= {"router", "quality_target", "quality", "cost", "aiq", "effective_sample_size"}
    assert set(data["routers"][0]["quality"]) >= {"estimate", "low", "high"}
    assert main(["evaluate", "--audit", "x.sqlite", "--outcomes", "y.csv", "--router", "r"]) == 2
    assert main(["evaluate", "--audit", str(loop["base"] / "audit.sqlite"), "--router", str(loop["base"] / "champion"),
                 "--policy", "a.yaml", "--policy", "b.yaml"]) == 2
    assert "one --policy per --router" in capsys.readouterr().err


def test_a_log_without_outcomes_or_distributions_is_refused_with_the_counts(loop, tmp_path):
    serve(loop["base"] / "champion", loop["traffic"].head(200), tmp_path / "silent.sqlite", report=False)
    traffic = read_traffic(tmp_path / "silent.sqlite", log=lambda _: None)
    assert len(traffic) == 0 and list(traffic.skipped.values()) == [40]
    with pytest.raises(ConfigError, match="only 0 logged requests.*no outcome reported"):
        evaluate_audit(traffic, [Judged("champion", loop["champion"])])


def test_retrain_from_the_audit_log_alone_is_judged_on_live_traffic(loop, tmp_path):
    from router_ml.training.loop.retrain import RetrainConfig, retrain

    result = retrain(RetrainConfig(audit=str(loop["base"] / "audit.sqlite"), base=str(loop["base"] / "champion"),
                                   out=str(tmp_path / "challenger"), resamples=300, cache_dir=str(loop["cache"]),
                                   min_live_requests=100), log=lambda _: None)
    live = result.decision["live"]
    assert live["requests"] >= 150 and "doubly robust" in live["estimator"]
    for figure in ("quality", "aiq"):
        assert live[figure]["difference"]["low"] <= live[figure]["difference"]["estimate"] <= live[figure]["difference"]["high"]
    assert result.decision["complete"] is None  # the champion held out nothing: the live log judges alone
    assert not result.promoted  # a directory base: nothing to promote into
    challenger = load_router(tmp_path / "challenger")
    held = set(pd.read_csv(tmp_path / "challenger.retrain" / "train-outcomes.csv")["prompt"])
    report = json.loads((tmp_path / "challenger.retrain" / "retrain-report.json").read_text())
    assert report["data"]["live_holdout_rows"] > 0
    traffic = read_traffic(loop["base"] / "audit.sqlite", log=lambda _: None)
    from router_ml.training.loop.retrain import live_split

    live_traffic, prompts = live_split(traffic, 0.3, 0)
    assert not prompts & held  # the challenger never trained on the requests it is judged on
    assert challenger.models == loop["champion"].models


def test_onboarding_a_new_model_from_served_traffic(loop, tmp_path):
    """A model held back from the champion is put in the serving catalog, served a capped share, and folded in by
    retrain once it has outcomes."""
    from router_ml.core.catalog import load_catalog
    from router_ml.core.head_arrays import load_head_arrays
    from router_ml.policy.onboarding import Onboarding
    from router_ml.training.loop.retrain import RetrainConfig, retrain

    frame, base = loop["frame"], tmp_path
    catalog = yaml.safe_load(loop["files"]["catalog"].read_text())
    four = {**catalog, "models": {m: v for m, v in catalog["models"].items() if m != "mini"}}
    (base / "four.yaml").write_text(yaml.safe_dump(four))
    champion_rows = frame[frame["prompt_id"].isin(pd.read_csv(loop["base"] / "champion.csv")["prompt_id"])]
    champion_rows[champion_rows["model"] != "mini"].to_csv(base / "champion.csv", index=False)
    champion = _train(base / "champion.csv", base / "four.yaml", base / "champion", loop["cache"])
    assert "mini" not in champion.models
    catalog["models"]["mini"]["prior"] = {"success": 0.9}
    (base / "serving.yaml").write_text(yaml.safe_dump(catalog))
    onboarding = Onboarding.from_catalog(load_catalog(base / "serving.yaml"), champion.models, rate=0.25)
    served, _ = serve(base / "champion", loop["traffic"], base / "audit.sqlite", rate=0.1, onboarding=onboarding)
    to_new = [s for s in served if s.model == "mini"]
    assert 60 < len(to_new) < 300 and all(s.exploration and s.reason.startswith("onboarding") for s in to_new)
    assert all(s.propensities["mini"] == s.propensity and s.scores["mini"] == 0.9 for s in to_new)

    result = retrain(RetrainConfig(audit=str(base / "audit.sqlite"), base=str(base / "champion"),
                                   out=str(base / "with-mini"), catalog=str(base / "serving.yaml"), min_new_outcomes=40,
                                   resamples=200, cache_dir=str(loop["cache"])), log=lambda _: None)
    assert set(result.stats["onboarded"]) == {"mini"}
    retrained = load_router(base / "with-mini")
    assert "mini" in retrained.models and retrained.manifest["strategy"]["name"] == champion.manifest["strategy"]["name"]
    arrays = load_head_arrays(base / "with-mini" / "head.npz")
    assert arrays.kind == "extended"
    from router_ml.core.artifact import read_estimator

    X = retrained.embedder.encode(["What is 2 + 3?", "Write a Rust B-tree with deletion."])
    assert np.allclose(arrays.predict(X), read_estimator(base / "with-mini").predict(X), atol=1e-6)
    assert "live" in result.decision  # judged on the log, where the new model was observed through onboarding


def test_monitor_reports_drift_and_alerts_on_a_degraded_model(loop, tmp_path, capsys):
    # The same traffic again, but the cheapest model's reported outcomes are all failures: it degraded.
    traffic = loop["traffic"].copy()
    traffic.loc[traffic["model"] == "nano", "score"] = 0.0
    served, _ = serve(loop["base"] / "champion", traffic, tmp_path / "degraded.sqlite", rate=0.05, repeat=3)
    assert sum(s.model == "nano" for s in served) >= 200  # enough outcomes for an alert
    png = tmp_path / "monitor.png"
    code = main(["monitor", "--audit", str(tmp_path / "degraded.sqlite"), "--router", str(loop["base"] / "champion"),
                 "--png", str(png), "--json", str(tmp_path / "monitor.json")])
    out = capsys.readouterr().out
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((tmp_path / "monitor.json").read_text())
    nano = next(c for c in report["latest"]["calibration"] if c["model"] == "nano")
    assert nano["observed"] == 0.0 and nano["drift"] < -0.5
    assert any(a.startswith("nano does worse than the router believes") for a in report["alerts"]) and "alerts:" in out
    healthy = main(["monitor", "--audit", str(loop["base"] / "audit.sqlite")])
    assert healthy == 0 and "no alert" in capsys.readouterr().out
