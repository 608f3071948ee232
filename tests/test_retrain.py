"""Building the retraining table from the audit log, and the errors on the way."""

import pandas as pd
import pytest

from router_ml import load_router
from router_ml.core.catalog import catalog_from_dict
from router_ml.errors import ConfigError
from router_ml.serve.audit import AuditStore
from router_ml.serve.record import Served
from training.outcomes import read_outcomes
from training.retrain import RetrainConfig, audit_outcomes, catalog_for, combined_table, holdout_split

CATALOG = catalog_from_dict({"models": {"small": {"input_price": 0.1, "output_price": 0.2},
                                        "large": {"input_price": 1.0, "output_price": 4.0}}})


def audit_with(path, storage, items):
    """items: (prompt, chosen model, exploration, {model: (score, cost)})."""
    store = AuditStore(path, prompt_storage=storage)
    for prompt, model, explored, outcomes in items:
        served = Served(request_id=f"r{len(prompt)}-{model}-{prompt[:4]}", router_version="v1", model=model,
                        confidence=None, scores={}, costs={}, estimated_cost=None, reason="", quality_target=None,
                        exploration=explored)
        rid = served.request_id
        store.record(prompt, served, {"task": "math"})
        for m, (score, cost) in outcomes.items():
            store.record_outcome(rid, m, score=score, cost=cost)
    store.close()
    return path


def test_audit_rows_with_text_or_hash_matched_to_offline(tmp_path):
    items = [("What is 2+2?", "small", False, {"small": (1.0, 0.001)}),
             ("Prove it.", "small", True, {"small": (0.0, None), "large": (1.0, 0.02)}),
             ("Unanswered", "large", False, {})]
    rows, stats = audit_outcomes(audit_with(tmp_path / "t.sqlite", "text", items), log=lambda _: None)
    assert stats == {"decisions": 3, "with_outcomes": 2, "outcome_rows": 3, "exploration_rows": 1, "no_prompt_text": 0}
    assert rows["prompt"].tolist() == ["What is 2+2?", "Prove it.", "Prove it."] and rows["task"].iloc[0] == "math"

    hashed = audit_with(tmp_path / "h.sqlite", "hash", items)
    messages = []
    rows, stats = audit_outcomes(hashed, log=messages.append)
    assert len(rows) == 0 and stats["no_prompt_text"] == 2 and "--prompt-storage text" in messages[0]
    import hashlib

    known = {hashlib.sha256(b"Prove it.").hexdigest(): "Prove it."}
    rows, stats = audit_outcomes(hashed, known, log=lambda _: None)
    assert rows["prompt"].tolist() == ["Prove it.", "Prove it."] and stats["no_prompt_text"] == 1


def test_combined_table_unifies_ids_fills_costs_and_averages(tmp_path):
    offline_path = tmp_path / "offline.csv"
    pd.DataFrame([{"prompt_id": "p1", "prompt": "Prove it.", "model": m, "score": s} for m, s in
                  (("small", 0.0), ("large", 1.0))]).to_csv(offline_path, index=False)
    offline = read_outcomes(offline_path)
    audit = pd.DataFrame([{"prompt": "Prove it.", "model": "large", "score": 0.0, "success": None, "cost": 0.5,
                           "task": None, "source": "audit"},
                          {"prompt": "New one", "model": "small", "score": None, "success": True, "cost": None,
                           "task": None, "source": "audit"}])
    table = combined_table(audit, [offline], CATALOG, 0.5)
    by = {(r.prompt_id, r.model): r for r in table.itertuples()}
    assert by[("p1", "large")].score == 0.5  # the offline and the logged attempt, averaged
    assert by[("p1", "large")].cost == pytest.approx((CATALOG.call_cost("large", 3) + 0.5) / 2)
    assert len(by) == 3 and by[next(k for k in by if k[0] != "p1")].cost > 0
    with pytest.raises(ConfigError, match=r"models \['medium'\]"):
        combined_table(audit.assign(model="medium"), [offline], CATALOG, 0.5)
    with pytest.raises(ConfigError, match="nothing to train on"):
        combined_table(audit.iloc[:0], [], CATALOG, 0.5)


def test_holdout_needs_complete_prompts_the_champion_did_not_see():
    rows = [{"prompt_id": f"p{i}", "model": m} for i in range(30) for m in ("small", "large")]
    rows += [{"prompt_id": f"q{i}", "model": "small"} for i in range(30)]  # routed traffic: one model each
    table = pd.DataFrame(rows)
    train, held = holdout_split(table, ["small", "large"], exclude={"p0", "p1"}, size=0.5, seed=0)
    assert set(held["prompt_id"]) <= {f"p{i}" for i in range(2, 30)} and held["prompt_id"].nunique() == 14
    assert not set(held["prompt_id"]) & set(train["prompt_id"])
    with pytest.raises(ConfigError, match="pass an offline evaluation log"):
        holdout_split(table, ["small", "large"], exclude={f"p{i}" for i in range(25)}, size=0.5, seed=0)


def test_prices_come_from_the_champion_or_the_catalog(trained_router_dir, tmp_path):
    router = load_router(trained_router_dir)
    catalog = catalog_for(router, None)
    assert list(catalog.models) == router.models
    assert catalog.call_cost(router.models[0], 100) == pytest.approx(router.cost_model.estimate([400])[0, 0])
    with pytest.raises(ConfigError, match="holdout_size"):
        RetrainConfig(audit="a", base="b", out="c", holdout_size=1.0)
