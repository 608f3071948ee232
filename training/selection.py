"""Step 4: choose the head and its settings by the routing metric, and calibrate the knob.

Each candidate (a head strategy with settings) is scored by K-fold cross-validation on
the training prompts: out-of-fold success probabilities go through the real policy at
every rate of a sweep, giving a cost–quality curve on held-out prompts; the candidate
with the highest AIQ on that curve wins. Accuracy is never the criterion: a head that
is right more often can still spend money in the wrong places.

Every candidate is tried twice: routing on its own probabilities, and routing on
probabilities recalibrated per model (Platt scaling). The calibration used for that
second variant is itself cross-fitted (fold k is calibrated on the other folds), so
the comparison is fair. Whichever variant wins, reported confidences are calibrated.

The winner's out-of-fold curve also calibrates the `quality_target` knob (the
`QualitySchedule`) and picks the default target: the lowest one whose held-out
quality reaches the best single model's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from router_ml.core.decision import QualitySchedule, choose, lam_grid
from router_ml.core.heads import HEADS, PlattCalibration
from router_ml.errors import ConfigError
from training import metrics
from training.outcomes import RoutingData

DEFAULT_CANDIDATES: tuple[tuple[str, dict], ...] = (
    ("per_model", {"C": 0.1}),
    ("per_model", {"C": 0.3}),
    ("per_model", {"C": 1.0}),
    ("cheapest_successful", {"C": 0.1}),
    ("cheapest_successful", {"C": 0.3}),
    ("cheapest_successful", {"C": 1.0}),
    ("blend", {"C": 0.1, "k": 50}),
    ("blend", {"C": 0.3, "k": 50}),
    ("blend", {"C": 0.1, "k": 100}),
)
MIN_COMPLETE_PROMPTS = 20
SWEEP_POINTS = 400


@dataclass
class Candidate:
    strategy: str
    params: dict

    @property
    def name(self) -> str:
        settings = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.strategy}({settings})"

    def make(self):
        return HEADS[self.strategy](**self.params)


@dataclass
class Sweep:
    """Routing a set of prompts at each rate of `lams`: mean cost and quality per rate."""

    lams: np.ndarray
    mean_cost: np.ndarray
    quality: np.ndarray
    choices: np.ndarray  # (len(lams), n_prompts) model indices

    def points(self) -> np.ndarray:
        return np.column_stack([self.mean_cost, self.quality])


def sweep(proba, policy_costs, cost_scale, scores, true_costs, lams=None) -> Sweep:
    """Route with the policy at each rate; score with logged outcomes and costs."""
    lams = lam_grid(SWEEP_POINTS) if lams is None else np.asarray(lams, dtype=float)
    rows = np.arange(len(scores))
    choices = np.stack([choose(proba, policy_costs, lam, cost_scale) for lam in lams])
    quality = np.array([scores[rows, c].mean() for c in choices])
    mean_cost = np.array([true_costs[rows, c].mean() for c in choices])
    return Sweep(lams, mean_cost, quality, choices)


def single_points(data: RoutingData) -> np.ndarray:
    """(cost, quality) of always sending every prompt to each model."""
    return np.column_stack([data.costs.mean(axis=0), data.scores.mean(axis=0)])


@dataclass
class Selection:
    candidate: Candidate
    route_on_calibrated: bool
    table: list[dict]  # every candidate's validation figures
    calibration: PlattCalibration  # fitted on all out-of-fold predictions of the winner
    schedule: QualitySchedule
    default_quality_target: float
    cost_scale: float
    validation: dict = field(default_factory=dict)


def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n) % folds


def out_of_fold(candidate: Candidate, X, data: RoutingData, fold_of: np.ndarray) -> np.ndarray:
    """Success probabilities for every training prompt from heads that never saw it."""
    proba = np.empty(data.success.shape)
    for k in np.unique(fold_of):
        held = fold_of == k
        head = candidate.make().fit(X[~held], data.success[~held], costs=data.costs[~held])
        proba[held] = head.predict_proba(X[held])
    return proba


def cross_fitted_calibration(raw: np.ndarray, success: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    """Calibrated out-of-fold probabilities, each fold calibrated on the other folds."""
    out = np.empty_like(raw)
    for k in np.unique(fold_of):
        held = fold_of == k
        out[held] = PlattCalibration().fit(raw[~held], success[~held]).transform(raw[held])
    return out


def policy_costs(data: RoutingData) -> np.ndarray:
    """Costs as the router estimates them when serving (from prompt length and prices)."""
    return data.cost_model.estimate(np.array([len(p) for p in data.prompts]))


def select_head(
    X: np.ndarray,
    data: RoutingData,
    candidates: list[Candidate],
    *,
    folds: int = 5,
    seed: int = 0,
    progress=None,
) -> Selection:
    """Cross-validate candidates by AIQ; calibrate the knob on the winner's held-out curve."""
    complete = data.complete
    if complete.sum() < MIN_COMPLETE_PROMPTS:
        raise ConfigError(
            f"only {int(complete.sum())} training prompts have outcomes for every model; at least "
            f"{MIN_COMPLETE_PROMPTS} are needed to measure cost against quality"
        )
    if folds < 2 or folds > len(data):
        raise ConfigError(f"folds: expected 2..{len(data)}, found {folds}")
    fold_of = fold_ids(len(data), folds, seed)
    est_costs = policy_costs(data)
    cost_scale = float(est_costs.mean(axis=0).max())
    scores, true_costs = data.scores[complete], data.costs[complete]
    singles = single_points(data.subset(np.flatnonzero(complete)))
    table, results = [], []
    for candidate in candidates:
        started = time.perf_counter()
        raw = out_of_fold(candidate, X, data, fold_of)
        calibrated = cross_fitted_calibration(raw, data.success, fold_of)
        seconds = round(time.perf_counter() - started, 2)
        for route_on_calibrated, basis in ((False, raw), (True, calibrated)):
            curve = sweep(basis[complete], est_costs[complete], cost_scale, scores, true_costs)
            row = {
                "candidate": candidate.name + (" +calibrated routing" if route_on_calibrated else ""),
                "strategy": candidate.strategy,
                "params": candidate.params,
                "route_on_calibrated": route_on_calibrated,
                "val_aiq": metrics.aiq(curve.points(), singles),
                "val_max_quality": float(curve.quality.max()),
                "val_cost_to_match_best": metrics.cost_to_match(curve.points(), singles),
                "val_brier_calibrated": float(np.nanmean((calibrated - data.success) ** 2)),
                "seconds": seconds,
            }
            table.append(row)
            results.append((row["val_aiq"], -len(results), candidate, route_on_calibrated, raw, calibrated, curve))
            if progress:
                progress(row)
    _, _, best, route_on_calibrated, raw, calibrated, curve = max(results, key=lambda r: (r[0], r[1]))
    schedule = QualitySchedule.from_curve(curve.lams, curve.quality)
    best_single = singles[:, 1].max()
    default = _default_target(schedule, curve, best_single)
    rows = np.arange(int(complete.sum()))
    basis = calibrated if route_on_calibrated else raw
    default_choice = choose(basis[complete], est_costs[complete], schedule.lam_for(default), cost_scale)
    ece, _ = metrics.expected_calibration_error(
        calibrated[complete][rows, default_choice], data.success[complete][rows, default_choice]
    )
    return Selection(
        candidate=best,
        route_on_calibrated=route_on_calibrated,
        table=table,
        calibration=PlattCalibration().fit(raw, data.success),
        schedule=schedule,
        default_quality_target=default,
        cost_scale=cost_scale,
        validation={
            "prompts": int(complete.sum()),
            "aiq": metrics.aiq(curve.points(), singles),
            "zero_router_aiq": metrics.zero_router_aiq(singles),
            "best_single_quality": float(best_single),
            "ece_at_default": ece,
        },
    )


def _default_target(schedule: QualitySchedule, curve: Sweep, best_single: float) -> float:
    """Lowest target whose held-out quality reaches the best single model's; else 1."""
    order = np.argsort(-curve.lams)
    reached = np.maximum.accumulate(curve.quality[order]) >= best_single - 1e-12
    if not reached.any():
        return 1.0
    lam = curve.lams[order][int(np.argmax(reached))]
    if math.isinf(lam):
        return 0.0
    # The schedule's first point at or below this rate; round up so the rate is reached.
    for t, stored in zip(schedule.targets, schedule.lams):
        if stored <= lam:
            return min(1.0, math.ceil(float(t) * 1e4) / 1e4)
    return 1.0
