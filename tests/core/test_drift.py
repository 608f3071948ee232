"""Drift (router_ml.core.drift): calibration per model and novel traffic, from arrays and from an audit database."""

import numpy as np
import pytest

from router_ml.core.drift import calibration, drift_from_database, novelty_share
from router_ml.serve.audit import AuditStore
from router_ml.serve.record import Served


def test_calibration_per_model_and_its_noise():
    models = ["a"] * 400 + ["b"] * 100
    predicted = np.r_[np.full(400, 0.9), np.full(100, 0.5)]
    observed = np.r_[np.ones(300), np.zeros(100), np.ones(50), np.zeros(50)]
    [a, b] = calibration(models, predicted, observed)
    assert (a.model, a.outcomes, a.observed, a.drift) == ("a", 400, 0.75, pytest.approx(-0.15))
    assert a.standard_error == pytest.approx(np.sqrt(0.9 * 0.1 / 400)) and b.drift == pytest.approx(0.0)
    share, known = novelty_share(np.r_[np.full(95, 0.5), np.full(5, 0.999), [np.nan]])
    assert (share, known) == (0.05, 100)


def test_drift_from_an_audit_database_reads_the_latest_rows(tmp_path):
    store = AuditStore(tmp_path / "audit.sqlite")
    for i in range(300):
        model = "cheap" if i % 3 else "dear"
        served = Served(request_id=f"r{i}", router_version="v1", model=model, confidence=0.9, scores={model: 0.9},
                        costs={}, estimated_cost=None, reason="", quality_target=0.5, novelty=0.999 if i >= 250 else 0.4,
                        ts=1000.0 + i)
        store.record(f"prompt {i}", served)
    store.flush()
    for i in range(300):  # the cheap model fails from request 150 on: it degraded
        model = "cheap" if i % 3 else "dear"
        store.record_outcome(f"r{i}", model, success=not (model == "cheap" and i >= 150))
    store.close()
    drift = drift_from_database(tmp_path / "audit.sqlite", decisions=100, outcomes=50)
    assert drift.novelty_requests == 100 and drift.novelty_high_share == pytest.approx(0.5)
    cheap = next(c for c in drift.calibration if c.model == "cheap")
    assert cheap.outcomes == 50 and cheap.observed == 0.0 and cheap.drift == pytest.approx(-0.9)
    dear = next(c for c in drift.calibration if c.model == "dear")
    assert dear.drift == pytest.approx(0.1)
    assert drift_from_database(tmp_path / "audit.sqlite", router_version="other").novelty_requests == 0
