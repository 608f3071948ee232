"""Retraining (router_ml.training.loop.retrain): the table from the champion's data and the logs, weights for
censored traffic, rows it cannot use, the holdout, and the guarded promotion end to end."""

import hashlib
import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from router_ml import load_router
from router_ml.core.catalog import catalog_from_dict
from router_ml.errors import ConfigError, MissingTrainingDataError
from router_ml.serve.audit import AuditStore, read_joined
from router_ml.serve.record import Served
from router_ml.training.data.outcomes import read_outcomes, to_routing_data
from router_ml.training.loop.retrain import (
    RetrainConfig,
    audit_outcomes,
    catalog_for,
    champion_data,
    combined_table,
    holdout_split,
)

CATALOG = catalog_from_dict({"models": {"small": {"input_price": 0.1, "output_price": 0.2},
                                        "large": {"input_price": 1.0, "output_price": 4.0}}})


def audit_with(path, storage, items):
    """items: (prompt, chosen model, exploration, propensity, {model: (score, cost)})."""
    store = AuditStore(path, prompt_storage=storage)
    for n, (prompt, model, explored, propensity, outcomes) in enumerate(items):
        served = Served(request_id=f"r{n}", router_version="v1", model=model, confidence=None, scores={}, costs={},
                        estimated_cost=None, reason="", quality_target=None, exploration=explored,
                        propensity=propensity)
        store.record(prompt, served, {"task": "math"})
        for m, (score, cost) in outcomes.items():
            store.record_outcome(served.request_id, m, score=score, cost=cost)
    store.close()
    return path


ITEMS = [("What is 2+2?", "small", False, 0.9, {"small": (1.0, 0.001)}),
         ("Prove it.", "small", True, 0.05, {"small": (0.0, None), "large": (1.0, 0.02)}),
         ("Unanswered", "large", False, 0.9, {})]


def test_audit_rows_with_text_or_hash_matched_to_offline(tmp_path):
    rows, stats = audit_outcomes(audit_with(tmp_path / "t.sqlite", "text", ITEMS), log=lambda _: None)
    assert {k: stats[k] for k in ("decisions", "with_outcomes", "outcome_rows", "exploration_rows", "no_prompt_text")} \
        == {"decisions": 3, "with_outcomes": 2, "outcome_rows": 3, "exploration_rows": 1, "no_prompt_text": 0}
    assert rows["prompt"].tolist() == ["What is 2+2?", "Prove it.", "Prove it."] and rows["task"].iloc[0] == "math"

    hashed = audit_with(tmp_path / "h.sqlite", "hash", ITEMS)
    messages = []
    rows, stats = audit_outcomes(hashed, log=messages.append)
    assert len(rows) == 0 and stats["no_prompt_text"] == 2 and "--prompt-storage text" in messages[0]
    from router_ml.core.prompts import keyed_digest
    from router_ml.serve.audit import load_key

    key = load_key(f"{hashed}.key", create=False)  # the audit log's own secret: digests are keyed
    assert hashlib.sha256(b"Prove it.").hexdigest() not in {r["prompt_sha256"] for r in read_joined(hashed)}
    known = {keyed_digest("Prove it.", key): "Prove it."}
    rows, stats = audit_outcomes(hashed, known, log=lambda _: None)
    assert rows["prompt"].tolist() == ["Prove it.", "Prove it."] and stats["no_prompt_text"] == 1


def test_the_routed_models_outcome_is_weighted_by_its_inverse_propensity(tmp_path):
    rows, stats = audit_outcomes(audit_with(tmp_path / "t.sqlite", "text", ITEMS), max_weight=15, log=lambda _: None)
    weights = dict(zip(zip(rows["prompt"], rows["model"]), rows["weight"]))
    assert weights[("What is 2+2?", "small")] == pytest.approx(1 / 0.9)
    assert weights[("Prove it.", "small")] == 15  # explored at propensity 0.05: 20, capped at 15
    assert weights[("Prove it.", "large")] == 1.0  # not the model the request went to: no propensity
    assert stats["weighted_rows"] == 2


def test_rows_that_cannot_be_used_are_skipped_and_counted(tmp_path):
    path = audit_with(tmp_path / "t.sqlite", "text", ITEMS)
    db = sqlite3.connect(path)  # an older log, written before outcomes were validated
    with db:
        db.execute("INSERT INTO outcomes VALUES ('r0', 'gpt-5', 0, 1.0, 1, 0.1, NULL, 'api')")
        db.execute("INSERT INTO outcomes VALUES ('r0', 'large', 0, 1.5, NULL, 0.1, NULL, 'api')")
        db.execute("INSERT INTO outcomes VALUES ('r2', 'large', 0, 1.0, NULL, 1e309, NULL, 'api')")
    db.close()
    messages = []
    rows, stats = audit_outcomes(path, models=["small", "large"], log=messages.append)
    assert stats["skipped"] == {"naming a model the champion does not route": 1, "with a score outside [0, 1]": 1,
                                "with a cost that is not a finite number >= 0": 1}
    assert len(rows) == 3 and "skipped" in messages[-1]


def test_censored_traffic_leaves_other_models_unknown_not_failed(tmp_path):
    rows, _ = audit_outcomes(audit_with(tmp_path / "t.sqlite", "text", ITEMS[:2]), log=lambda _: None)
    table = combined_table(rows, [], CATALOG, 0.5)
    data = to_routing_data(table, CATALOG)
    large = data.models.index("large")
    assert data.prompts[0] == "What is 2+2?"  # routed to small only: large's outcome is unknown
    assert np.isnan(data.success[0, large]) and np.isnan(data.scores[0, large]) and data.success[1, large] == 1
    assert data.weights is not None and data.weights[0, data.models.index("small")] == pytest.approx(1 / 0.9)


def test_combined_table_unifies_ids_prices_by_the_rule_and_averages(tmp_path):
    offline_path = tmp_path / "offline.csv"
    pd.DataFrame([{"prompt_id": "p1", "prompt": "Prove it.", "model": m, "score": s, "output_tokens": 10}
                  for m, s in (("small", 0.0), ("large", 1.0))]).to_csv(offline_path, index=False)
    offline = read_outcomes(offline_path)
    audit = pd.DataFrame([{"prompt": "Prove it.", "model": "large", "score": 0.0, "success": None, "cost": 0.5,
                           "task": None, "weight": 3.0, "source": "audit"},
                          {"prompt": "New one", "model": "small", "score": None, "success": True, "cost": None,
                           "task": None, "weight": 1.0, "source": "audit"}])
    table = combined_table(audit, [offline], CATALOG, 0.5)
    by = {(r.prompt_id, r.model): r for r in table.itertuples()}
    assert by[("p1", "large")].score == 0.5  # the offline and the logged attempt, averaged
    offline_cost = (3 * 1.0 + 10 * 4.0) / 1e6  # logged output tokens x the catalog's prices
    assert by[("p1", "large")].cost == pytest.approx((offline_cost + 0.5) / 2)
    assert by[("p1", "large")].weight == 1.0  # also seen in an unbiased log: no inverse-propensity weight
    assert len(by) == 3 and by[next(k for k in by if k[0] != "p1")].cost > 0
    with pytest.raises(ConfigError, match=r"models \['medium'\]"):
        combined_table(audit.assign(model="medium"), [offline], CATALOG, 0.5)
    with pytest.raises(ConfigError, match="nothing to train on"):
        combined_table(audit.iloc[:0], [], CATALOG, 0.5)


def test_the_complete_holdout_takes_complete_prompts_the_champion_did_not_see():
    rows = [{"prompt_id": f"p{i}", "model": m} for i in range(30) for m in ("small", "large")]
    rows += [{"prompt_id": f"q{i}", "model": "small"} for i in range(30)]  # routed traffic: one model each
    table = pd.DataFrame(rows)
    train, held = holdout_split(table, ["small", "large"], exclude={"p0", "p1"}, size=0.25, seed=0, min_holdout=10)
    assert set(held["prompt_id"]) <= {f"p{i}" for i in range(2, 30)} and held["prompt_id"].nunique() == 10
    assert not set(held["prompt_id"]) & set(train["prompt_id"])
    # Too few eligible: nothing is held out (the live log judges alone); no longer a reason to stop.
    train, held = holdout_split(table, ["small", "large"], exclude={f"p{i}" for i in range(25)}, size=0.5, seed=0,
                                min_holdout=10, min_complete=8)
    assert len(held) == 0 and len(train) == len(table)


def test_the_champions_training_data_is_found_or_a_named_error(trained_router_dir, demo_files, tmp_path):
    router = load_router(trained_router_dir)
    trained, unseen = champion_data(router, log=lambda _: None)
    assert trained["prompt_id"].nunique() + unseen["prompt_id"].nunique() == 300  # the demo log, split 80/20
    assert unseen["prompt_id"].nunique() == 60 and not set(trained["prompt_id"]) & set(unseen["prompt_id"])

    changed = tmp_path / "manifest-points-here.csv"
    pd.read_csv(demo_files["outcomes"]).iloc[:-5].to_csv(changed, index=False)
    moved = load_router(trained_router_dir)
    moved.manifest["training_data"] = {**moved.manifest["training_data"], "source": str(changed)}
    with pytest.raises(MissingTrainingDataError, match="has changed since.*--base-outcomes"):
        champion_data(moved)
    moved.manifest["training_data"] = {**moved.manifest["training_data"], "source": str(tmp_path / "gone.csv")}
    with pytest.raises(MissingTrainingDataError, match="cannot be read now.*--base-outcomes"):
        champion_data(moved)
    messages = []
    given, _ = champion_data(moved, str(changed), log=messages.append)
    assert given["prompt_id"].nunique() == 299 and "used as given" in messages[0]


def test_prices_come_from_the_champion_or_the_catalog(trained_router_dir, tmp_path):
    router = load_router(trained_router_dir)
    catalog = catalog_for(router, None)
    assert list(catalog.models) == router.models
    assert catalog.call_cost(router.models[0], 100) == pytest.approx(router.cost_model.estimate([400])[0, 0])
    with pytest.raises(ConfigError, match="holdout_size"):
        RetrainConfig(audit="a", base="b", out="c", holdout_size=1.0)
    with pytest.raises(ConfigError, match="max_weight"):
        RetrainConfig(audit="a", base="b", out="c", max_weight=0.5)


@pytest.mark.slow
def test_a_small_misleading_log_cannot_replace_a_good_champion(tmp_path, monkeypatch):
    """Issue seen in the field: retraining on a few hundred new rows replaced a champion trained on
    thousands with a worse router. Now the challenger learns from what the champion learned, a
    share of the log is held out to judge both on live traffic, complete prompts neither router
    saw are judged beside, and the challenger is promoted only when the evidence shows it at
    least as good; with no evidence at all nothing is promoted."""
    from router_ml.cli import main
    from router_ml.training.data.demo import write_demo
    from router_ml.training.fit.pipeline import TrainConfig, train

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    files = write_demo(tmp_path / "demo", n_prompts=1600, seed=11)
    common = dict(catalog=str(files["catalog"]), embedder_kind="hashing", folds=3, baselines=(),
                  cache_dir=str(tmp_path / "cache"))
    train(TrainConfig(outcomes=str(files["outcomes"]), out=str(tmp_path / "champion"), register="shop",
                      router_version="shop-v1", **common), log=lambda _: None, progress=False)
    assert main(["promote", "shop", "1"]) == 0

    # Logged traffic whose reported outcomes say the dear models always fail: misleading. Served
    # without exploration (propensity 1), so the log cannot show a different router to be better.
    champion = load_router("models:/shop@champion")
    holdout = pd.read_csv(files["holdout"])
    prompts = holdout["prompt"].unique()[:150]
    decisions = champion.route_batch(list(prompts))
    store = AuditStore(tmp_path / "audit.sqlite", prompt_storage="text")
    for n, (prompt, d) in enumerate(zip(prompts, decisions)):
        served = Served(request_id=f"r{n}", router_version=d.router_version, model=d.model, confidence=d.confidence,
                        scores=d.scores, costs=d.costs, estimated_cost=d.estimated_cost, reason=d.reason,
                        quality_target=d.quality_target, propensity=1.0, propensities={d.model: 1.0})
        store.record(prompt, served, {})
        store.record_outcome(served.request_id, d.model, success=d.model in champion.models[:2], cost=d.estimated_cost)
    store.close()
    common_args = ["retrain", "--audit", str(tmp_path / "audit.sqlite"), "--base", "models:/shop@champion",
                   "--cache-dir", str(tmp_path / "cache"), "--resamples", "300"]

    # No evidence: too few held-out logged requests for a live judgement and, with the complete
    # judgement off (more complete prompts required than exist), nothing to judge on: refused, exit 1.
    code = main([*common_args, "--out", str(tmp_path / "blind"), "--live-holdout", "0.2",
                 "--min-complete", "100000"])
    report = json.loads((tmp_path / "blind.retrain" / "retrain-report.json").read_text())
    assert code == 1 and report["decision"]["live"] is None and report["decision"]["complete"] is None
    assert "no evidence" in report["decision"]["refused"]
    assert load_router("models:/shop@champion").version == "shop-v1"

    # The champion's own 320 held-out prompts judge the challenger; nothing new but the misleading
    # log to learn from, so it cannot be shown to be at least as good: the champion stays.
    code = main([*common_args, "--out", str(tmp_path / "challenger"), "--holdout-size", "0.99"])
    report = json.loads((tmp_path / "challenger.retrain" / "retrain-report.json").read_text())
    data, decision = report["data"], report["decision"]
    assert data["champion_prompts"] == 1280 and data["holdout_prompts"] >= 300  # 1600 prompts, 80 % trained on
    assert data["train_prompts"] >= data["champion_prompts"]
    assert data["outcome_rows"] == 150 and 20 <= data["live_holdout_rows"] <= 80  # 30 % held out to judge on
    assert decision["live"] is None and "fewer than 100" in decision["live_note"]
    assert decision["complete"]["prompts"] == data["holdout_prompts"]
    assert code == 1 and decision["promoted"] is False
    assert "worse than the champion" in decision["refused"] or "not at least as good" in decision["refused"]
    assert load_router("models:/shop@champion").version == "shop-v1"  # the champion kept

    # Each decision is an MLflow run: both refused retrainings, with both versions, the complete
    # holdout's set and the interval (promote's own run is the first).
    from router_ml.core.mlflow_registry import import_mlflow
    from router_ml.training.registry.decisions import decision_runs

    client = import_mlflow().MlflowClient()
    runs = decision_runs(client, "shop")
    assert [(d["kind"], d["decision"]) for d in runs] == [("promotion", "first holder"), ("retrain", "refused"),
                                                          ("retrain", "refused")]
    retrain_run = client.get_run(runs[-1]["run_id"])
    assert runs[-1]["versions"] == ["1", "3"] and report["run_id"] == runs[-1]["run_id"]
    assert retrain_run.data.tags["champion_version"] == "1" and retrain_run.data.tags["challenger_version"] == "3"
    assert retrain_run.data.params["eval_set.prompts"] == str(data["holdout_prompts"])
    assert retrain_run.data.metrics["lower"] == pytest.approx(decision["complete"]["lower"])
    assert "no evidence" in runs[1]["summary"] or "not promoted" in runs[1]["summary"]

@pytest.mark.slow
def test_retraining_keeps_the_champions_verifier_refitted_from_answers_or_carried_over(tmp_path):
    """Found by a new user: `retrain` dropped the learned verifier (the challenger's training table had
    no response column), so a service on `cascade: learned` refused every reload. Now the verifier is
    refitted from the champion's and the offline logs' answers, or, where no answers are left, the
    champion's is carried over; retrain says which."""
    from router_ml.policy.file import load_policy
    from router_ml.policy.verifier import verifier_of
    from router_ml.serve.service import RoutingService
    from router_ml.training.data.demo import write_demo
    from router_ml.training.fit.pipeline import TrainConfig, train
    from router_ml.training.loop.retrain import retrain

    files = write_demo(tmp_path / "demo", n_prompts=800, seed=13)
    cache = str(tmp_path / "cache")
    train(TrainConfig(outcomes=str(files["outcomes"]), out=str(tmp_path / "champion"), catalog=str(files["catalog"]),
                      embedder_kind="hashing", folds=3, baselines=(), mlflow=False, cache_dir=cache,
                      router_version="champion-1"), log=lambda _: None, progress=False)
    champion = load_router(tmp_path / "champion")
    assert verifier_of(champion) is not None
    holdout = pd.read_csv(files["holdout"])
    audit = audit_with(tmp_path / "audit.sqlite", "text", [
        (p, "nano", False, 1.0, {"nano": (1.0, 0.0001)}) for p in holdout["prompt"].unique()[:30]])
    messages = []

    refit = retrain(RetrainConfig(audit=str(audit), base=str(tmp_path / "champion"), out=str(tmp_path / "refit"),
                                  outcomes=[str(files["holdout"])], cache_dir=cache, resamples=100),
                    log=messages.append)
    info = refit.stats["verifier"]
    assert info["how"] == "refitted" and info["answers"] > 1000 and info["from"] == ["champion", "offline"]
    assert any("verifier: refitted from" in m and "audit log keeps no answers" in m for m in messages)
    challenger = load_router(refit.challenger)
    assert verifier_of(challenger) is not None and "carried_from" not in challenger.manifest["verifier"]
    table = pd.read_csv(tmp_path / "refit.retrain" / "train-outcomes.csv")
    assert "response" in table.columns and table["response"].notna().mean() > 0.9  # the audit rows have none
    report = json.loads((tmp_path / "refit.retrain" / "retrain-report.json").read_text())
    assert report["data"]["verifier"]["how"] == "refitted"

    # No answers left anywhere: the champion's log given without its response column, an offline log too.
    bare = tmp_path / "bare"
    bare.mkdir()
    pd.read_csv(files["outcomes"]).drop(columns="response").to_csv(bare / "outcomes.csv", index=False)
    holdout.drop(columns="response").to_csv(bare / "holdout.csv", index=False)
    messages.clear()
    carried = retrain(RetrainConfig(audit=str(audit), base=str(tmp_path / "champion"), out=str(tmp_path / "carried"),
                                    base_outcomes=str(bare / "outcomes.csv"), outcomes=[str(bare / "holdout.csv")],
                                    cache_dir=cache, resamples=100), log=messages.append)
    assert carried.stats["verifier"]["how"] == "carried over" and carried.stats["verifier"]["from"] == "champion-1"
    assert any("verifier: carried over from champion-1" in m for m in messages)
    challenger = load_router(carried.challenger)
    assert challenger.manifest["verifier"]["carried_from"] == "champion-1"
    assert verifier_of(challenger).plans == verifier_of(champion).plans

    # A service on the learned cascade takes either challenger at reload.
    policy = load_policy("learned-cascade", champion.models)
    service = RoutingService(str(tmp_path / "champion"), router=champion, policy=policy)
    try:
        for out in (refit.challenger, carried.challenger):
            service.reload(str(out))
            assert service.router.version == load_router(out).version and "reload_refused" not in service.ready()[1]
    finally:
        service.close()
