"""Step 4: choose the head and its settings by the routing metric, and calibrate the knob.

**Candidates.** Every router the project ships as a baseline is a candidate, not only a
reference: per-model logistic regression, the cheapest-successful label classifier, kNN,
RouteLLM's similarity-weighted (SW) ranking, the blend and an MLP per model, each at a
few settings (DEFAULT_CANDIDATES), and a calibrated average of the best few (an
`EnsembleHead` of the top 2 or 3 of different kinds) when that measures better.

**Scoring.** Each candidate is scored by K-fold cross-validation on the training prompts:
out-of-fold success probabilities go through the real policy at every rate of a sweep,
giving a cost-quality curve on held-out prompts; its AIQ is the figure of merit. Accuracy
is never the criterion: a head that is right more often can still spend money in the
wrong places. Routers route on calibrated probabilities (per-model Platt scaling), the
same numbers a Decision reports, so each candidate is scored on probabilities calibrated
the way it will be: the calibration of fold k is itself fitted on the other folds.
Candidates share the folds, and the neighbour heads (kNN at every k, SW, the blend's kNN
part) share one similarity matrix per fold; a blend's predictions are the mean of its
parts', already computed; an ensemble's come from its members' without refitting.

**Choosing, honestly.** The rule: the highest out-of-fold AIQ among the candidates and
the ensembles of the best few. `select_head(anchor=...)` can instead keep a given candidate
unless the best beats it by a paired 90 % interval above zero; it is off by default. On
repeated splits of the shared sets' training sides (benchmarks/selection_study.py) anchoring
on the per-model router gained 0.0044 AIQ on GSM8K's 490 prompts and nothing elsewhere, but on
the demo it kept per_model(C=1.0), which sent 6 of 30 typed hard prompts to cheap models;
anchoring on the blend was neutral on every set. The best of many noisy figures flatters the winner, so
the rule itself is cross-validated (nested): for each fold it is applied to the other
folds' figures, and the candidate it picks is measured on the fold left out. Those
held-out routes, put together, are the estimate of what the chosen router does on
prompts it has not seen; training prints it beside every shipped baseline's out-of-fold
curve, as differences with paired bootstrap intervals (90 %), and the runner-up with its
margin, so a choice that is the luck of one split shows as a margin whose interval
straddles zero. (The folds' heads are shared: a fold's choice never looks at that fold's
predictions, though the heads behind the other folds' predictions were fitted with it.)

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

What training then *claims* about the default is measured the nested way too: the rule
is applied on all folds but one and the rate it picks is run on the one left out; the
per-prompt difference from the best single model, with its bootstrap interval, is the
held-out figure. Training claims the default matches the best single model only when
that interval lies above zero, and says "no claim" otherwise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from router_ml.core.decision import QualitySchedule, choose, lam_grid
from router_ml.core.head_arrays import knn_rates, sw_rates, unit_rows
from router_ml.core.heads import HEADS, PRIOR_WEIGHT, PlattCalibration, success_counts
from router_ml.errors import ConfigError
from router_ml.training.data.outcomes import RoutingData
from router_ml.training.evaluate import metrics
from router_ml.training.evaluate.paired import Curve, PairedBootstrap, mean_interval

DEFAULT_CANDIDATES: tuple[tuple[str, dict], ...] = (
    ("per_model", {"C": 0.1}),
    ("per_model", {"C": 0.3}),
    ("per_model", {"C": 1.0}),
    ("cheapest_successful", {"C": 0.1}),
    ("cheapest_successful", {"C": 0.3}),
    ("cheapest_successful", {"C": 1.0}),
    ("knn", {"k": 25}),
    ("knn", {"k": 50}),
    ("knn", {"k": 100}),
    ("sw", {}),
    ("blend", {"C": 0.1, "k": 50}),
    ("blend", {"C": 0.3, "k": 50}),
    ("blend", {"C": 0.1, "k": 100}),
    ("mlp", {}),
)
# Candidates whose fitting time outweighs their record on large logs: above this many outcomes (prompts x
# models) the default list leaves them out, and training says so. An MLP per model took ten times as long
# as every other candidate together on LLMRouter's 50,000 outcomes, and routed worse than most; on the
# demo's 12,000 (static embedder) it took 79 s against 4-7 s for each other candidate, for a lower AIQ.
COSTLY_ABOVE = {"mlp": 6_000}
# The baselines the evaluation reports (training/evaluate/evaluation.py), as candidates: the chosen router is
# compared with each of them on held-out folds.
BASELINE_CANDIDATES: dict[str, tuple[str, dict]] = {
    "kNN k=25": ("knn", {"k": 25}),
    "SW ranking": ("sw", {}),
    "MLP": ("mlp", {}),
    "per-model logistic": ("per_model", {"C": 1.0}),
    "blend": ("blend", {"C": 0.1, "k": 50}),
}
ENSEMBLE_SIZES = (2, 3)  # a calibrated average of the best 2 or 3 candidates of different families
# What each kind of head reads; an ensemble's members share none (a blend is already linear + neighbours).
FAMILIES = {"per_model": {"linear"}, "cheapest_successful": {"label"}, "knn": {"neighbours"}, "sw": {"kernel"},
            "blend": {"linear", "neighbours"}, "mlp": {"mlp"}}
MIN_COMPLETE_PROMPTS = 20
SWEEP_POINTS = 400
RESAMPLES = 400  # paired bootstrap draws for the intervals training prints
CONFIDENCE = 0.90


@dataclass
class Candidate:
    strategy: str
    params: dict

    @property
    def name(self) -> str:
        if self.strategy == "ensemble":
            return "ensemble(" + " + ".join(Candidate(k, p).name for k, p in self.params.get("members", ())) + ")"
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

    def subset(self, rows: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> Sweep:
        """The same rates on the prompts `rows` (scored with their `scores` and `costs`, full arrays)."""
        choices = self.choices[:, rows]
        at = np.asarray(rows)
        return Sweep(self.lams, np.array([costs[at, c].mean() for c in choices]),
                     np.array([scores[at, c].mean() for c in choices]), choices)


def sweep(proba, policy_costs, cost_scale, scores, true_costs, lams=None) -> Sweep:
    """Route with the policy at each rate; score with logged outcomes and costs."""
    lams = lam_grid(SWEEP_POINTS) if lams is None else np.asarray(lams, dtype=float)
    rows = np.arange(len(scores))
    choices = np.stack([choose(proba, policy_costs, lam, cost_scale) for lam in lams])
    quality = np.array([scores[rows, c].mean() for c in choices])
    mean_cost = np.array([true_costs[rows, c].mean() for c in choices])
    return Sweep(lams, mean_cost, quality, choices)


def default_candidates(outcomes: int) -> tuple[list[Candidate], list[str]]:
    """DEFAULT_CANDIDATES for a log of `outcomes` (prompts x models), and a note for each one left out."""
    kept, notes = [], []
    for strategy, params in DEFAULT_CANDIDATES:
        limit = COSTLY_ABOVE.get(strategy)
        if limit is not None and outcomes > limit:
            notes.append(f"{Candidate(strategy, params).name} left out: {outcomes:,} outcomes, more than the "
                         f"{limit:,} it can be fitted on in reasonable time")
            continue
        kept.append(Candidate(strategy, params))
    return kept, notes


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
    member_calibrations: list | None = None  # an ensemble's: each member's Platt scaling, from its out-of-fold predictions
    report: dict = field(default_factory=dict)  # the choice: runner-up, margin, nested estimate against the baselines

    @property
    def default_quality_target(self) -> float:
        return self.default.target

    def fit_head(self, X: np.ndarray, data: RoutingData):
        """The chosen head fitted on every training prompt."""
        fit = {"member_calibrations": self.member_calibrations} if self.candidate.strategy == "ensemble" else {}
        return self.candidate.make().fit(X, data.success, costs=data.costs, sample_weight=data.weights, **fit)


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


class FoldPredictions:
    """Out-of-fold raw predictions of many candidates on shared folds, each computed once.

    The neighbour heads read one similarity matrix per fold: kNN at every k takes the first
    k of the same sorted neighbours, SW weighs the same similarities; a blend is the mean of
    its per-model and kNN parts. Anything else is fitted fold by fold (`out_of_fold`).
    The results equal the heads' own predictions (up to ties among neighbours).
    """

    def __init__(self, X: np.ndarray, data: RoutingData, fold_of: np.ndarray, k_max: int = 0) -> None:
        self.X, self.data, self.fold_of = np.asarray(X, dtype=np.float32), data, fold_of
        self.k_max = int(k_max)
        self._raw: dict[str, np.ndarray] = {}
        self._top: np.ndarray | None = None  # (n, k_max) global indices of each prompt's nearest training prompts
        self._sw: np.ndarray | None = None
        self._priors: dict[int, np.ndarray] = {}

    def raw(self, candidate: Candidate) -> np.ndarray:
        name = candidate.name
        if name not in self._raw:
            self._raw[name] = self._compute(candidate)
        return self._raw[name]

    def _compute(self, candidate: Candidate) -> np.ndarray:
        kind, params = candidate.strategy, candidate.params
        if kind == "blend" and set(params) <= {"C", "k"}:
            linear = self.raw(Candidate("per_model", {"C": params.get("C", 0.1)}))
            return 0.5 * (linear + self.raw(Candidate("knn", {"k": params.get("k", 50)})))
        if kind == "knn" and set(params) <= {"k"} and 1 <= params.get("k", 25) <= self.k_max:
            self._neighbours()
            out = np.empty(self.data.success.shape)
            tried, wins = self._counts
            for k in np.unique(self.fold_of):
                held = self.fold_of == k
                top = self._top[held, : min(params.get("k", 25), int((~held).sum()))]
                out[held] = knn_rates(top, tried, wins, self._priors[int(k)], PRIOR_WEIGHT)
            return out
        if kind == "sw" and not params:
            self._neighbours()
            return self._sw
        return out_of_fold(candidate, self.X, self.data, self.fold_of)

    def _neighbours(self, chunk: int = 512) -> None:
        """Per fold, one pass over the similarities: the sorted top k_max and the SW rates."""
        if self._sw is not None:
            return
        data = self.data
        tried, wins, _ = success_counts(data.success, data.weights)
        self._counts = (tried, wins)
        X = unit_rows(self.X)
        n = len(X)
        k_max = max(self.k_max, 1)
        self._top = np.zeros((n, k_max), dtype=np.intp)
        self._sw = np.empty(data.success.shape)
        for k in np.unique(self.fold_of):
            held_rows, train_rows = np.flatnonzero(self.fold_of == k), np.flatnonzero(self.fold_of != k)
            _, _, prior = success_counts(data.success[train_rows],
                                         None if data.weights is None else data.weights[train_rows])
            self._priors[int(k)] = prior
            A = X[train_rows]
            top_k = min(k_max, len(train_rows))
            for start in range(0, len(held_rows), chunk):
                rows = held_rows[start:start + chunk]
                similarity = X[rows] @ A.T
                self._sw[rows] = sw_rates(similarity.astype(np.float64), tried[train_rows], wins[train_rows], prior)
                part = np.argpartition(similarity, len(train_rows) - top_k, axis=1)[:, len(train_rows) - top_k:]
                order = np.argsort(-np.take_along_axis(similarity, part, axis=1), axis=1, kind="stable")
                self._top[rows, :top_k] = train_rows[np.take_along_axis(part, order, axis=1)]


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


@dataclass
class _Scored:
    """One candidate's out-of-fold predictions and what routing on them does to each complete prompt."""

    candidate: Candidate
    raw: np.ndarray  # (n, m): the head's (an ensemble's: the mean of its members' calibrated)
    calibrated: np.ndarray  # (n, m)
    curve: Sweep  # on the complete prompts
    score: np.ndarray  # (rates, complete prompts) the score each prompt got at each rate
    cost: np.ndarray  # (rates, complete prompts)
    seconds: float = 0.0

    def curve_of(self, strong: int | None = None) -> Curve:
        """Its routes as a Curve, one point per distinct route (neighbouring rates often route alike)."""
        if not hasattr(self, "_distinct"):
            self._distinct = np.unique(self.curve.choices, axis=0, return_index=True)[1]
        keep = np.sort(self._distinct)
        return Curve(self.score[keep], self.cost[keep],
                     None if strong is None else (self.curve.choices[keep] == strong).astype(float))


class _Chooser:
    """The selection rule on any subset of the complete training prompts, and its nested estimate."""

    def __init__(self, data: RoutingData, fold_of: np.ndarray, complete: np.ndarray, est_costs: np.ndarray,
                 cost_scale: float, ensembles: bool = True, anchor: str | None = None, resamples: int = RESAMPLES,
                 seed: int = 0) -> None:
        self.data, self.fold_of, self.complete, self.ensembles = data, fold_of, complete, ensembles
        self.est_costs, self.cost_scale = est_costs, cost_scale
        self.scores, self.costs = data.scores[complete], data.costs[complete]
        self.scored: dict[str, _Scored] = {}
        self.base: list[str] = []  # the candidates in the order given (ties go to the earlier)
        self.anchor, self.resamples, self.seed = anchor, resamples, seed
        self._boots: dict[tuple, PairedBootstrap] = {}

    def add(self, candidate: Candidate, raw: np.ndarray, calibrated: np.ndarray | None = None,
            seconds: float = 0.0) -> _Scored:
        data = self.data
        if calibrated is None:
            calibrated = cross_fitted_calibration(raw, data.success, self.fold_of, data.weights)
        curve = sweep(calibrated[self.complete], self.est_costs[self.complete], self.cost_scale, self.scores,
                      self.costs)
        rows = np.arange(len(self.scores))
        scored = _Scored(candidate, raw, calibrated, curve, self.scores[rows, curve.choices],
                         self.costs[rows, curve.choices], seconds)
        self.scored[candidate.name] = scored
        return scored

    def aiq(self, name: str, rows: np.ndarray | None = None) -> float:
        s = self.scored[name]
        if rows is None:
            return metrics.aiq(s.curve.points(), np.column_stack([self.costs.mean(0), self.scores.mean(0)]))
        points = np.column_stack([s.cost[:, rows].mean(axis=1), s.score[:, rows].mean(axis=1)])
        return metrics.aiq(points, np.column_stack([self.costs[rows].mean(0), self.scores[rows].mean(0)]))

    def ensemble(self, members: list[str]) -> str:
        """The calibrated average of `members` (names of scored candidates), scored like any candidate."""
        members = sorted(members, key=self.base.index)  # one name, one set of predictions, whatever the ranking
        candidate = Candidate("ensemble", {"members": [[self.scored[m].candidate.strategy,
                                                        dict(self.scored[m].candidate.params)] for m in members]})
        if candidate.name not in self.scored:
            started = time.perf_counter()
            raw = np.mean([self.scored[m].calibrated for m in members], axis=0)
            self.add(candidate, raw, seconds=time.perf_counter() - started)
        return candidate.name

    def options(self, rows: np.ndarray | None = None) -> list[str]:
        """What the rule chooses among on `rows`: every candidate, and the ensembles of the best few there."""
        options = list(self.base)
        if not self.ensembles:
            return options
        ranked = sorted(self.base, key=lambda name: -self.aiq(name, rows))
        for size in ENSEMBLE_SIZES:
            members, families = [], set()
            for name in ranked:
                family = FAMILIES.get(self.scored[name].candidate.strategy, {name})
                if not family & families:
                    members.append(name)
                    families |= family
                if len(members) == size:
                    options.append(self.ensemble(members))
                    break
        return options

    def best(self, rows: np.ndarray | None = None) -> str:
        """The highest AIQ on `rows` among `options(rows)` (ties to the earlier)."""
        options = self.options(rows)
        figures = [self.aiq(name, rows) for name in options]
        return options[int(np.argmax(figures))]

    def choose(self, rows: np.ndarray | None = None) -> str:
        """The rule: the best on `rows`, unless the anchor is a candidate and the best does not beat it there
        by a paired interval above zero."""
        best = self.best(rows)
        if self.anchor is None or self.anchor not in self.scored or best == self.anchor:
            return best
        return best if self.compare(best, self.anchor, rows).lower > 0 else self.anchor

    def compare(self, first: str, second: str, rows: np.ndarray | None = None):
        """`first` minus `second` in AIQ on `rows` (all complete prompts: None), with its paired interval."""
        curves = [self.scored[name].curve_of(self._strong()) for name in (first, second)]
        if rows is not None:
            curves = [curve.subset(np.asarray(rows)) for curve in curves]
        return self.bootstrap(rows).compare(*curves, "aiq", CONFIDENCE)

    def bootstrap(self, rows: np.ndarray | None = None) -> PairedBootstrap:
        """The paired bootstrap on `rows` of the complete prompts (all: None), made once."""
        key = None if rows is None else tuple(np.asarray(rows).tolist())
        if key not in self._boots:
            at = slice(None) if rows is None else np.asarray(rows)
            self._boots[key] = PairedBootstrap(self.scores[at], self.costs[at], resamples=self.resamples,
                                               seed=self.seed, strong=self._strong())
        return self._boots[key]

    def nested(self) -> list[tuple[str, np.ndarray]]:
        """Per fold, the rule's choice on the other folds, and the fold's rows (of the complete prompts)."""
        folds = self.fold_of[self.complete]
        return [(self.choose(np.flatnonzero(folds != k)), np.flatnonzero(folds == k)) for k in np.unique(folds)]

    def _strong(self) -> int | None:
        return int(np.argmax(self.costs.mean(axis=0))) if self.scores.shape[1] == 2 else None


def select_head(
    X: np.ndarray,
    data: RoutingData,
    candidates: list[Candidate],
    *,
    folds: int = 5,
    seed: int = 0,
    progress: Callable[[dict], None] | None = None,
    ensembles: bool = True,
    resamples: int = RESAMPLES,
    anchor: tuple[str, dict] | None = None,
) -> Selection:
    """Cross-validate candidates by AIQ and choose by the rule in the module docstring; calibrate the
    knob on the winner's held-out curve. `ensembles` False leaves the averages out of the choice;
    `anchor` (strategy, params), a candidate, is kept unless the best beats it by a paired interval above
    zero; None (the default) chooses the best out-of-fold AIQ."""
    complete = data.complete
    if complete.sum() < MIN_COMPLETE_PROMPTS:
        raise ConfigError(
            f"only {int(complete.sum())} training prompts have outcomes for every model; at least "
            f"{MIN_COMPLETE_PROMPTS} are needed to measure cost against quality"
        )
    if folds < 2 or folds > len(data):
        raise ConfigError(f"folds: expected 2..{len(data)}, found {folds}")
    if not candidates:
        raise ConfigError("candidates: expected at least one head to choose from")
    fold_of = fold_ids(len(data), folds, seed)
    est_costs = policy_costs(data)
    cost_scale = float(est_costs.mean(axis=0).max())
    scores, true_costs = data.scores[complete], data.costs[complete]
    singles = single_points(data.subset(np.flatnonzero(complete)))
    k_max = max([int(c.params.get("k", 25)) for c in candidates if c.strategy in ("knn", "blend")] + [0])
    predictions = FoldPredictions(X, data, fold_of, k_max=k_max)
    chooser = _Chooser(data, fold_of, complete, est_costs, cost_scale, ensembles,
                       anchor=None if anchor is None else Candidate(*anchor).name, resamples=resamples, seed=seed)
    table = []
    for candidate in candidates:
        started = time.perf_counter()
        scored = chooser.add(candidate, predictions.raw(candidate))
        scored.seconds = time.perf_counter() - started
        chooser.base.append(candidate.name)
        row = _row(chooser, scored, data)
        table.append(row)
        if progress:
            progress(row)
    best_name = chooser.choose()
    for name in chooser.options():
        if name not in chooser.base:  # the ensembles the rule weighed on every prompt
            table.append(_row(chooser, chooser.scored[name], data))
            if progress:
                progress(table[-1])
    best = chooser.scored[best_name]
    report = _choice_report(chooser, best_name, data, resamples, seed)
    schedule = QualitySchedule.from_curve(best.curve.lams, best.curve.quality)
    default = default_target(schedule, best.curve, scores, true_costs, fold_of[complete], resamples=resamples,
                             seed=seed)
    rows = np.arange(int(complete.sum()))
    calibrated = best.calibrated
    default_choice = choose(calibrated[complete], est_costs[complete], schedule.lam_for(default.target), cost_scale)
    ece, _ = metrics.expected_calibration_error(
        calibrated[complete][rows, default_choice], data.success[complete][rows, default_choice]
    )
    member_calibrations = None
    if best.candidate.strategy == "ensemble":
        member_calibrations = [PlattCalibration().fit(predictions.raw(Candidate(kind, params)), data.success,
                                                      sample_weight=data.weights)
                               for kind, params in best.candidate.params["members"]]
    return Selection(
        candidate=best.candidate,
        table=table,
        calibration=PlattCalibration().fit(best.raw, data.success, sample_weight=data.weights),
        schedule=schedule,
        default=default,
        cost_scale=cost_scale,
        validation={
            "prompts": int(complete.sum()),
            "aiq": metrics.aiq(best.curve.points(), singles),
            "zero_router_aiq": metrics.zero_router_aiq(singles),
            "best_single_quality": float(singles[:, 1].max()),
            "ece_at_default": ece,
            "nested_aiq": report["nested"]["aiq"],
        },
        out_of_fold=calibrated,
        fold_of=fold_of,
        member_calibrations=member_calibrations,
        report=report,
    )


def _row(chooser: _Chooser, scored: _Scored, data: RoutingData) -> dict:
    """A candidate's line in the selection table (and the manifest's)."""
    curve = scored.curve
    singles = np.column_stack([chooser.costs.mean(0), chooser.scores.mean(0)])
    return {
        "candidate": scored.candidate.name,
        "strategy": scored.candidate.strategy,
        "params": scored.candidate.params,
        "val_aiq": metrics.aiq(curve.points(), singles),
        "val_max_quality": float(curve.quality.max()),
        "val_cost_to_match_best": metrics.cost_to_match(curve.points(), singles),
        "val_brier_calibrated": float(np.nanmean((scored.calibrated - data.success) ** 2)),
        "seconds": round(scored.seconds, 2),
    }


def _choice_report(chooser: _Chooser, best_name: str, data: RoutingData, resamples: int, seed: int) -> dict:
    """The runner-up and the margin; the nested estimate of the rule against every shipped baseline.

    The nested figure is the mean over folds of the AIQ, on the fold, of what the rule chose
    without it (a mean of per-fold AIQs, not the AIQ of routes put together from different
    heads, whose knobs do not line up); each baseline is measured the same way on the same
    folds, and every fold's prompts are resampled together for the interval.
    """
    strong = chooser._strong()
    boot = chooser.bootstrap()
    others = sorted((n for n in chooser.options() if n != best_name), key=lambda n: -chooser.aiq(n))
    report: dict = {"chosen": best_name, "confidence": CONFIDENCE, "resamples": resamples,
                    "prompts": int(len(chooser.scores))}
    top = chooser.best()
    if chooser.anchor is not None and chooser.anchor in chooser.scored and top != chooser.anchor:
        # the anchor rule's test: the best option against the anchor (kept when this does not clear zero)
        report["anchor"] = {"candidate": chooser.anchor, "best": top, "kept": best_name == chooser.anchor,
                            **chooser.compare(top, chooser.anchor).to_dict()}
    if others:
        runner_up = others[0]
        report["runner_up"] = runner_up
        report["margin"] = chooser.compare(best_name, runner_up).to_dict()
    folds = chooser.nested()
    fold_boots = [PairedBootstrap(chooser.scores[rows], chooser.costs[rows], resamples=resamples, seed=seed + 1 + i,
                                  strong=strong) for i, (_, rows) in enumerate(folds)]

    def per_fold_mean(name_of_fold) -> np.ndarray:
        return np.mean([b.values(chooser.scored[name_of_fold(i)].curve_of(strong).subset(rows), "aiq")
                        for i, (b, (_, rows)) in enumerate(zip(fold_boots, folds))], axis=0)

    nested = per_fold_mean(lambda i: folds[i][0])
    report["nested"] = {"aiq": float(nested[0]), "chosen_by_fold": [name for name, _ in folds], "versus": {},
                        "measure": "mean over folds of the AIQ on each fold"}
    for label, (kind, params) in BASELINE_CANDIDATES.items():
        name = Candidate(kind, params).name
        if name not in chooser.scored:
            continue
        baseline = per_fold_mean(lambda i, name=name: name)
        report["nested"]["versus"][label] = {"candidate": name, **boot.interval(nested, baseline, "aiq",
                                                                                CONFIDENCE).to_dict()}
    return report


def describe_choice(report: dict) -> list[str]:
    """The lines training prints about its choice (the report of `select_head`)."""
    lines = []
    anchor = report.get("anchor")
    if anchor:
        verdict = (f"not measurably better, so {anchor['candidate']} is kept" if anchor["kept"]
                   else f"measurably better, so it replaces {anchor['candidate']}")
        lines.append(f"best by out-of-fold AIQ: {anchor['best']}, {anchor['difference']:+.4f} against "
                     f"{anchor['candidate']} [{anchor['confidence']:.0%} paired interval {anchor['lower']:+.4f}, "
                     f"{anchor['upper']:+.4f}]: {verdict}")
    margin = report.get("margin")
    if margin:
        lines.append(f"chose {report['chosen']}; runner-up {report['runner_up']}, out-of-fold AIQ margin "
                     f"{margin['difference']:+.4f} [{margin['confidence']:.0%} paired interval {margin['lower']:+.4f}, "
                     f"{margin['upper']:+.4f}]" + (" (within noise)" if margin["lower"] <= 0 else ""))
    nested = report["nested"]
    lines.append(f"held-out folds (the rule applied without each fold, {report['prompts']} prompts): mean AIQ per fold "
                 f"{nested['aiq']:.4f}; chosen per fold: {', '.join(nested['chosen_by_fold'])}")
    for label, v in nested["versus"].items():
        verdict = "better" if v["lower"] > 0 else "worse" if v["upper"] < 0 else "no measurable difference"
        lines.append(f"  vs {label} ({v['candidate']}): {v['difference']:+.4f} AIQ [{v['lower']:+.4f}, "
                     f"{v['upper']:+.4f}]: {verdict}")
    return lines


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
    held_out: dict | None = None  # the nested estimate: quality, the best model's, difference and interval, cost share
    claim: bool = False  # the held-out interval supports "as good as the best single model"

    def to_dict(self) -> dict:
        return asdict(self)


def _default_rate(curve: Sweep, scores: np.ndarray, costs: np.ndarray, fold_of: np.ndarray,
                  best: int) -> tuple[int, str, float]:
    """The index of the default rate in `curve` by the rule in the module docstring, the rule and the margin."""
    n = len(scores)
    rows = np.arange(n)
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
    best_quality = scores[:, best].mean()
    matched = [r for r in order if curve.quality[r] >= best_quality + margin - 1e-12]
    if matched:
        return int(matched[0]), "matches_best_single", margin
    r = next(r for r in order if curve.quality[r] >= curve.quality.max() - ONE_POINT)
    return int(r), "near_router_best", margin


def best_single(scores: np.ndarray, costs: np.ndarray) -> int:
    """The model with the highest mean score, the cheapest among equals."""
    means = scores.mean(axis=0)
    top = np.flatnonzero(means >= means.max() - 1e-12)
    return int(top[np.argmin(costs.mean(axis=0)[top])])


def default_target(schedule: QualitySchedule, curve: Sweep, scores: np.ndarray, costs: np.ndarray,
                   fold_of: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> DefaultTarget:
    """The default quality target by the rule in the module docstring, and its held-out figure.

    `curve` is the router's sweep on out-of-fold predictions; `scores` and `costs`
    (n, n_models) are those prompts' logged outcomes and `fold_of` their folds. The margin
    is how far short of the best single model a rate chosen on the other folds falls on
    each fold (the optimism of picking the lowest rate that just reaches it): the mean
    plus its standard error. The held-out figure applies the whole rule on all folds but
    one and runs the rate it picks on the one left out.
    """
    best = best_single(scores, costs)
    best_cost = float(costs[:, best].mean())
    r, rule, margin = _default_rate(curve, scores, costs, fold_of, best)
    target = _target_for_rate(schedule, curve.lams[r])
    quality, share = float(curve.quality[r]), float(curve.mean_cost[r] / best_cost) if best_cost > 0 else math.nan
    held_out = _held_out_default(curve, scores, costs, fold_of, best, resamples, seed)
    claim = bool(held_out is not None and held_out["lower"] >= 0.0)
    best_quality = float(scores[:, best].mean())
    if held_out is None:
        figure = "too few folds to measure it on held-out folds: no claim"
    else:
        figure = (f"on held-out folds (the rule applied without each fold) its quality is {held_out['quality']:.4f}, "
                  f"{held_out['difference']:+.4f} against the best single model [{CONFIDENCE:.0%} interval "
                  f"{held_out['lower']:+.4f}, {held_out['upper']:+.4f}], at {held_out['cost_share']:.0%} of its cost: "
                  + ("it matches the best single model" if claim else "no claim that it matches the best single model"))
    if rule == "matches_best_single":
        note = (f"default quality_target {target:g}, the lowest whose out-of-fold quality ({quality:.4f}) reaches the "
                f"best single model's {best_quality:.4f} plus a margin of {margin:.4f} for unseen prompts; " + figure)
    else:
        note = (f"the router does not reach the best single model's out-of-fold quality ({best_quality:.4f}) with a "
                f"margin for unseen prompts ({margin:.4f}); its best is {curve.quality.max():.4f}. Default "
                f"quality_target {target:g} is the lowest within {ONE_POINT:g} of that ({quality:.4f} at "
                f"{share:.0%} of the best single model's cost); " + figure)
    return DefaultTarget(target, rule, note, quality, share, margin, held_out, claim)


def _held_out_default(curve: Sweep, scores: np.ndarray, costs: np.ndarray, fold_of: np.ndarray, best: int,
                      resamples: int, seed: int) -> dict | None:
    """The default rule run nested: the rate chosen without a fold, measured on it (module docstring)."""
    folds = np.unique(fold_of)
    if len(folds) < 3:  # the inner rule needs two folds to measure its margin
        return None
    n = len(scores)
    routed_score, routed_cost = np.empty(n), np.empty(n)
    for k in folds:
        inner, held = np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)
        r, _, _ = _default_rate(curve.subset(inner, scores, costs), scores[inner], costs[inner], fold_of[inner], best)
        routed_score[held] = scores[held, curve.choices[r, held]]
        routed_cost[held] = costs[held, curve.choices[r, held]]
    difference, lower, upper = mean_interval(routed_score - scores[:, best], resamples, seed, CONFIDENCE)
    best_cost = float(costs[:, best].mean())
    return {"prompts": int(n), "quality": float(routed_score.mean()), "best_quality": float(scores[:, best].mean()),
            "difference": difference, "lower": lower, "upper": upper, "confidence": CONFIDENCE,
            "cost_share": float(routed_cost.mean() / best_cost) if best_cost > 0 else math.nan}


def _target_for_rate(schedule: QualitySchedule, lam: float) -> float:
    """The lowest target whose rate is at most `lam` (rounded up, so that rate is reached)."""
    if math.isinf(lam):
        return 0.0
    for t, stored in zip(schedule.targets, schedule.lams):
        if stored <= lam:
            return min(1.0, math.ceil(float(t) * 1e4) / 1e4)
    return 1.0
