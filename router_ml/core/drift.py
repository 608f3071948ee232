"""Drift: is the router still right about its models, and is the traffic still like its training data?

Two signals, both from what the audit log already holds:

- **Calibration drift**, per model: over the latest outcomes reported for requests a model
  served, the observed success rate minus the P(success) the router gave it when it routed
  them. A router that is calibrated on its training data starts near 0; a provider that
  silently degrades a model shows as a negative drift for that model (the router still
  believes in it), a model that got better as a positive one. The standard error says how
  much of it is noise: with n outcomes it is about sqrt(p (1 - p) / n).
- **Novelty**: every decision carries the prompt's novelty, calibrated on held-out prompts
  so that a share 1 - q of them is above q (router_ml.core.neighbours). The share of recent
  requests above 0.99 is about 1 % while traffic looks like the training data; a sustained
  5 % means traffic moved to prompts the router has little evidence for.

`drift_from_database` computes both over the latest rows of an audit database with two
bounded SQL queries (the decisions' time index, no table scan), for the service's
Prometheus gauges and `router-ml monitor`; `calibration` and `novelty_share` work on plain
arrays. Suggested alert thresholds (docs/monitoring.md, deploy/prometheus): |drift| > 0.1
with at least 200 outcomes for a model; novelty share above 0.99 over 5 % of the latest
1,000 requests.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NOVELTY_HIGH = 0.99  # a calibrated novelty above this: more unusual than 99 % of held-out prompts
EXPECTED_HIGH_SHARE = 1.0 - NOVELTY_HIGH
DECISION_WINDOW = 1000
OUTCOME_WINDOW = 500  # per model


@dataclass(frozen=True)
class ModelCalibration:
    model: str
    outcomes: int
    predicted: float  # mean P(success) the router gave the requests this model served
    observed: float  # their mean reported score (success as 1/0)

    @property
    def drift(self) -> float:
        return self.observed - self.predicted

    @property
    def standard_error(self) -> float:
        p = min(max(self.predicted, 1e-3), 1 - 1e-3)
        return math.sqrt(p * (1 - p) / self.outcomes) if self.outcomes else math.inf

    def to_dict(self) -> dict:
        return {"model": self.model, "outcomes": self.outcomes, "predicted": self.predicted,
                "observed": self.observed, "drift": self.drift, "standard_error": self.standard_error}


def calibration(models: list[str], predicted: np.ndarray, observed: np.ndarray) -> list[ModelCalibration]:
    """Per model (in first-seen order), predicted vs observed over the given outcomes (NaN predictions left out)."""
    models = list(models)
    predicted, observed = np.asarray(predicted, dtype=float), np.asarray(observed, dtype=float)
    out = []
    for name in dict.fromkeys(models):
        rows = np.array([m == name for m in models]) & np.isfinite(predicted) & np.isfinite(observed)
        if rows.any():
            out.append(ModelCalibration(name, int(rows.sum()), float(predicted[rows].mean()),
                                        float(observed[rows].mean())))
    return out


def novelty_share(novelty: np.ndarray, above: float = NOVELTY_HIGH) -> tuple[float, int]:
    """(share of the known novelties above `above`, how many were known)."""
    novelty = np.asarray(novelty, dtype=float)
    known = novelty[np.isfinite(novelty)]
    return (float(np.mean(known > above)) if len(known) else 0.0), int(len(known))


@dataclass(frozen=True)
class Drift:
    calibration: list[ModelCalibration]
    novelty_high_share: float
    novelty_requests: int

    def to_dict(self) -> dict:
        return {"calibration": [c.to_dict() for c in self.calibration], "novelty_high_share": self.novelty_high_share,
                "novelty_requests": self.novelty_requests, "novelty_expected_share": EXPECTED_HIGH_SHARE}


def drift_from_database(path: str | Path, decisions: int = DECISION_WINDOW, outcomes: int = OUTCOME_WINDOW,
                        router_version: str | None = None) -> Drift:
    """Drift over the latest `decisions` decisions and, per model, the outcomes of the latest requests it
    served (at most `outcomes`), optionally of one router version; read-only."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        version = "" if router_version is None else "WHERE router_version = ?"
        args = () if router_version is None else (router_version,)
        novelty = [r[0] for r in db.execute(
            f"SELECT novelty FROM decisions {version} ORDER BY ts DESC LIMIT ?", (*args, decisions))]
        rows = db.execute(
            "SELECT d.model, d.confidence, o.score, o.success FROM "
            f"(SELECT request_id, model, confidence FROM decisions {version} ORDER BY ts DESC LIMIT ?) d "
            "JOIN outcomes o ON o.request_id = d.request_id AND o.model = d.model", (*args, decisions * 10)).fetchall()
    finally:
        db.close()
    kept: dict[str, list] = {}
    for model, confidence, score, success in rows:  # newest first: keep the latest `outcomes` per model
        if len(kept.setdefault(model, [])) < outcomes:
            value = score if score is not None else (None if success is None else float(success))
            kept[model].append((np.nan if confidence is None else confidence, np.nan if value is None else value))
    models = [m for m, items in kept.items() for _ in items]
    pairs = np.array([pair for items in kept.values() for pair in items], dtype=float).reshape(-1, 2)
    share, known = novelty_share(np.array([np.nan if v is None else v for v in novelty], dtype=float))
    return Drift(calibration(models, pairs[:, 0], pairs[:, 1]), share, known)
