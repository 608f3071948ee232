"""Step 4: choose the head and its settings by the routing metric, and calibrate the knob.

Each candidate (a head strategy with settings) is scored by K-fold cross-validation on
the training prompts: out-of-fold success probabilities go through the real policy at
every rate of a sweep, giving a cost–quality curve on held-out prompts; the candidate
with the highest AIQ on that curve wins. Accuracy is never the criterion: a head that
is right more often can still spend money in the wrong places.

Routers route on calibrated probabilities (per-model Platt scaling), the same numbers
a Decision reports, so each candidate is scored on probabilities calibrated the way it
will be: the calibration of fold k is itself fitted on the other folds.

The winner's out-of-fold curve also calibrates the `quality_target` knob (the
`QualitySchedule`) and picks the default target (`default_target`):

1. the lowest target whose out-of-fold quality reaches the best single model's plus a
   margin for unseen prompts. The margin is measured across the folds: on each fold,
   the lowest rate that reaches the best single model on the *other* folds is applied,
   and how far short of that model it falls there is recorded; the margin is the mean
   shortfall plus its standard error across folds (the optimism of picking a rate that
   only just reaches the bar, and its uncertainty);
2. when no target gets there, the router cannot keep that promise; the default is then
   the lowest target whose out-of-fold quality is within one point (0.01) of the
   router's own best, and training says so.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from router_ml.core.decision import QualitySchedule, choose, lam_grid
from router_ml.core.heads import HEADS, PlattCalibration
from router_ml.errors import ConfigError
from router_ml.training.data.outcomes import RoutingData
from router_ml.training.evaluate import metrics

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
    table: list[dict]  # every candidate's validation figures
    calibration: PlattCalibration  # fitted on all out-of-fold predictions of the winner
    schedule: QualitySchedule
    default: DefaultTarget
    cost_scale: float
    validation: dict = field(default_factory=dict)
    out_of_fold: np.ndarray | None = None  # (n, m) the winner's calibrated out-of-fold probabilities
    fold_of: np.ndarray | None = None  # (n,) each training prompt's fold

    @property
    def default_quality_target(self) -> float:
        return self.default.target


def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n) % folds


def out_of_fold(candidate: Candidate, X, data: RoutingData, fold_of: np.ndarray) -> np.ndarray:
    """Success probabilities for every training prompt from heads that never saw it."""
    proba = np.empty(data.success.shape)
    for k in np.unique(fold_of):
        held = fold_of == k
        head = candidate.make().fit(X[~held], data.success[~held], costs=data.costs[~held],
                                    sample_weight=None if data.weights is None else data.weights[~held])
        proba[held] = head.predict_proba(X[held])
    return proba


def cross_fitted_calibration(raw: np.ndarray, success: np.ndarray, fold_of: np.ndarray,
                             weights: np.ndarray | None = None) -> np.ndarray:
    """Calibrated out-of-fold probabilities, each fold calibrated on the other folds."""
    out = np.empty_like(raw)
    for k in np.unique(fold_of):
        held = fold_of == k
        calibration = PlattCalibration().fit(raw[~held], success[~held],
                                             sample_weight=None if weights is None else weights[~held])
        out[held] = calibration.transform(raw[held])
    return out


def policy_costs(data: RoutingData) -> np.ndarray:
    """Costs as the router estimates them when serving (from prompt length and prices)."""
    return data.cost_model.estimate(np.array([len(p) for p in data.prompts]))


ONE_POINT = 0.01  # "within one point" of the router's best quality, the fallback default


@dataclass
class DefaultTarget:
    """The default quality target and the rule that chose it (kept in the manifest)."""

    target: float
    rule: str  # "matches_best_single" or "near_router_best"
    note: str  # one sentence for logs and reports
    quality: float  # held-out (out-of-fold) quality at this target
    cost_share: float  # its mean cost / the best single model's
    margin: float  # how far short of the best single model a just-reaching rate falls on unseen folds

    def to_dict(self) -> dict:
        return asdict(self)


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
        calibrated = cross_fitted_calibration(raw, data.success, fold_of, data.weights)
        curve = sweep(calibrated[complete], est_costs[complete], cost_scale, scores, true_costs)
        row = {
            "candidate": candidate.name,
            "strategy": candidate.strategy,
            "params": candidate.params,
            "val_aiq": metrics.aiq(curve.points(), singles),
            "val_max_quality": float(curve.quality.max()),
            "val_cost_to_match_best": metrics.cost_to_match(curve.points(), singles),
            "val_brier_calibrated": float(np.nanmean((calibrated - data.success) ** 2)),
            "seconds": round(time.perf_counter() - started, 2),
        }
        table.append(row)
        results.append((row["val_aiq"], -len(results), candidate, raw, calibrated, curve))
        if progress:
            progress(row)
    _, _, best, raw, calibrated, curve = max(results, key=lambda r: (r[0], r[1]))
    schedule = QualitySchedule.from_curve(curve.lams, curve.quality)
    default = default_target(schedule, curve, scores, true_costs, fold_of[complete])
    rows = np.arange(int(complete.sum()))
    default_choice = choose(calibrated[complete], est_costs[complete], schedule.lam_for(default.target), cost_scale)
    ece, _ = metrics.expected_calibration_error(
        calibrated[complete][rows, default_choice], data.success[complete][rows, default_choice]
    )
    return Selection(
        candidate=best,
        table=table,
        calibration=PlattCalibration().fit(raw, data.success, sample_weight=data.weights),
        schedule=schedule,
        default=default,
        cost_scale=cost_scale,
        validation={
            "prompts": int(complete.sum()),
            "aiq": metrics.aiq(curve.points(), singles),
            "zero_router_aiq": metrics.zero_router_aiq(singles),
            "best_single_quality": float(singles[:, 1].max()),
            "ece_at_default": ece,
        },
        out_of_fold=calibrated,
        fold_of=fold_of,
    )


def default_target(schedule: QualitySchedule, curve: Sweep, scores: np.ndarray, costs: np.ndarray,
                   fold_of: np.ndarray) -> DefaultTarget:
    """The default quality target by the rule in the module docstring.

    `curve` is the router's sweep on out-of-fold predictions; `scores` and `costs`
    (n, n_models) are those prompts' logged outcomes and `fold_of` their folds. The margin
    is how far short of the best single model a rate chosen on the other folds falls on
    each fold (the optimism of picking the lowest rate that just reaches it): the mean
    plus its standard error.
    """
    n = len(scores)
    rows = np.arange(n)
    means = scores.mean(axis=0)
    top = np.flatnonzero(means >= means.max() - 1e-12)
    best = int(top[np.argmin(costs.mean(axis=0)[top])])
    best_cost = float(costs[:, best].mean())
    order = np.argsort(-curve.lams, kind="stable")  # cheapest rate first
    routed = scores[rows, curve.choices]  # (rates, prompts): the score each rate's choice got
    shortfalls = []
    for k in np.unique(fold_of):
        held = fold_of == k
        if held.all() or not held.any():
            continue
        reached = [r for r in order if routed[r, ~held].mean() >= scores[~held, best].mean() - 1e-12]
        if reached:
            shortfalls.append(scores[held, best].mean() - routed[reached[0], held].mean())
    if len(shortfalls) >= 2:  # the mean shortfall plus its standard error across folds
        margin = max(0.0, float(np.mean(shortfalls) + np.std(shortfalls, ddof=1) / math.sqrt(len(shortfalls))))
    else:
        margin = math.inf  # cannot be estimated: no promise to keep
    matched = [r for r in order if curve.quality[r] >= means[best] + margin - 1e-12]
    if matched:
        r, rule = matched[0], "matches_best_single"
    else:
        r = next(r for r in order if curve.quality[r] >= curve.quality.max() - ONE_POINT)
        rule = "near_router_best"
    target = _target_for_rate(schedule, curve.lams[r])
    quality, share = float(curve.quality[r]), float(curve.mean_cost[r] / best_cost) if best_cost > 0 else math.nan
    if rule == "matches_best_single":
        note = (f"default quality_target {target:g}: held-out quality {quality:.4f} reaches the best single model's "
                f"{means[best]:.4f} plus a margin of {margin:.4f} for unseen prompts, at {share:.0%} of its cost")
    else:
        note = (f"the router does not reach the best single model's held-out quality ({means[best]:.4f}) with a "
                f"margin for unseen prompts ({margin:.4f}); its best is {curve.quality.max():.4f}. Default "
                f"quality_target {target:g} is the lowest within {ONE_POINT:g} of that: quality {quality:.4f} at "
                f"{share:.0%} of the best single model's cost")
    return DefaultTarget(target, rule, note, quality, share, margin)


def _target_for_rate(schedule: QualitySchedule, lam: float) -> float:
    """The lowest target whose rate is at most `lam` (rounded up, so that rate is reached)."""
    if math.isinf(lam):
        return 0.0
    for t, stored in zip(schedule.targets, schedule.lams):
        if stored <= lam:
            return min(1.0, math.ceil(float(t) * 1e4) / 1e4)
    return 1.0
