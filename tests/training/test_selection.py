"""Choosing the head by validation AIQ (router_ml.training.fit.selection): honest out-of-fold predictions,
the winner is the best row of the table, and the knob's schedule comes from its curve."""

import numpy as np
import pytest

from router_ml.core.catalog import CostModel
from router_ml.errors import ConfigError
from router_ml.training.data.outcomes import RoutingData
from router_ml.training.fit.selection import Candidate, describe_choice, fold_ids, out_of_fold, select_head


def routing_data(n=300, seed=0):
    """Two models; the cheap one succeeds on the first cluster only, the dear one mostly everywhere."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 2, n)
    X = (rng.normal(0, 0.3, (n, 8)) + cluster[:, None] * 1.5).astype(np.float32)
    success = np.column_stack([(cluster == 0) & (rng.random(n) < 0.9), rng.random(n) < 0.85]).astype(float)
    prompts = [f"prompt {i}" for i in range(n)]
    cost_model = CostModel(["cheap", "dear"], [0.1, 10.0], [0.1, 30.0], [100, 100], [None, None])
    costs = cost_model.estimate(np.array([len(p) for p in prompts]))
    data = RoutingData([str(i) for i in range(n)], prompts, [None] * n, ["cheap", "dear"], success.copy(), success,
                       costs, cost_model)
    return X, data


class Memorizer:
    """Says 1 for prompts it was fitted on and 0 otherwise: shows any leak of a prompt into its own fold."""

    def fit(self, X, Y, costs=None, sample_weight=None):
        self.seen_ = {x.tobytes() for x in X}
        self.m_ = Y.shape[1]
        return self

    def predict_proba(self, X):
        return np.array([[float(x.tobytes() in self.seen_)] * self.m_ for x in X])


class MemorizerCandidate(Candidate):
    def make(self):
        return Memorizer()


def test_out_of_fold_predictions_never_come_from_a_head_that_saw_the_prompt():
    X, data = routing_data()
    proba = out_of_fold(MemorizerCandidate("memorizer", {}), X, data, fold_ids(len(data), 5, 0))
    assert proba.shape == (len(data), 2) and (proba == 0).all()


def test_folds_are_balanced_and_seeded():
    folds = fold_ids(103, 5, seed=1)
    assert sorted(np.bincount(folds)) == [20, 20, 21, 21, 21]
    assert (folds == fold_ids(103, 5, seed=1)).all() and not (folds == fold_ids(103, 5, seed=2)).all()


def test_the_winner_is_the_best_row_of_the_table_and_the_knob_spans_it():
    X, data = routing_data()
    candidates = [Candidate("per_model", {"C": 0.01}), Candidate("per_model", {"C": 1.0}), Candidate("knn", {"k": 5})]
    selection = select_head(X, data, candidates, folds=3, seed=0, anchor=None)
    # Every candidate, then the calibrated averages of the best few of different kinds (here one: 2 families).
    assert [row["candidate"] for row in selection.table[:3]] == [c.name for c in candidates]
    assert [row["strategy"] for row in selection.table[3:]] == ["ensemble"]
    best = max(selection.table, key=lambda row: row["val_aiq"])
    assert selection.candidate.name == best["candidate"]
    assert selection.validation["aiq"] == pytest.approx(best["val_aiq"])
    # The router learned where the cheap model fails: it beats random mixing on held-out folds.
    assert selection.validation["aiq"] > selection.validation["zero_router_aiq"]
    schedule = selection.schedule
    assert schedule.lam_for(0.0) == np.inf and schedule.lam_for(1.0) == 0.0
    assert 0.0 <= selection.default_quality_target <= 1.0


def xor_data(n=600, seed=0):
    """The cheap model succeeds on two opposite quadrants: no linear head can tell where, neighbours can."""
    X, data = routing_data(n, seed)
    rng = np.random.default_rng(seed + 1)
    X = rng.normal(0, 1, (n, 2)).astype(np.float32)
    easy = (X[:, 0] > 0) == (X[:, 1] > 0)
    data.success[:, 0] = (easy & (rng.random(n) < 0.95)).astype(float)
    data.scores[:, 0] = data.success[:, 0]
    return X, data


PLAIN = ("per_model", {"C": 1.0})  # the anchor in these tests (training has none by default)


def test_the_plain_router_is_kept_unless_the_best_beats_it_measurably():
    candidates = [Candidate("per_model", {"C": 1.0}), Candidate("per_model", {"C": 0.3}), Candidate("knn", {"k": 25})]
    # Neighbours see the quadrants, the plain router cannot: the best beats it by far, and is chosen.
    X, data = xor_data()
    selection = select_head(X, data, candidates, folds=3, seed=0, resamples=100, anchor=PLAIN)
    anchor = selection.report["anchor"]
    assert anchor["candidate"] == "per_model(C=1.0)" and anchor["lower"] > 0 and not anchor["kept"]
    assert selection.candidate.name == anchor["best"] == max(selection.table, key=lambda r: r["val_aiq"])["candidate"]
    # Clusters a line separates: an average with neighbours edges out the plain router by chance, and loses.
    X, data = routing_data()
    selection = select_head(X, data, candidates, folds=3, seed=0, resamples=100, anchor=PLAIN)
    anchor = selection.report["anchor"]
    assert anchor["best"] != "per_model(C=1.0)" and anchor["difference"] > 0 and anchor["lower"] <= 0
    assert anchor["kept"] and selection.candidate.name == "per_model(C=1.0)"
    assert describe_choice(selection.report)[0].endswith("not measurably better, so per_model(C=1.0) is kept")
    # Without an anchor (training's default) the same figures choose the argmax.
    assert select_head(X, data, candidates, folds=3, seed=0, resamples=100, anchor=None).candidate.name == anchor["best"]


def test_too_few_complete_prompts_is_a_named_error():
    X, data = routing_data(n=60)
    data.scores[10:] = np.nan  # only 10 prompts have both models' outcomes
    data.scores[10:, 1] = data.success[10:, 1]
    with pytest.raises(ConfigError, match="every model"):
        select_head(X, data, [Candidate("per_model", {"C": 1.0})], folds=3)


def sweep_of(choices, scores, costs):
    from router_ml.training.fit.selection import Sweep

    rows = np.arange(scores.shape[0])
    lams = np.array([np.inf, 1.0, 0.1, 0.0])[: len(choices)]
    choices = np.array(choices)
    return Sweep(lams, np.array([costs[rows, c].mean() for c in choices]),
                 np.array([scores[rows, c].mean() for c in choices]), choices)


def test_the_default_reaches_the_best_single_model_with_a_margin_for_unseen_prompts():
    from router_ml.core.decision import QualitySchedule
    from router_ml.training.fit.selection import default_target

    n = 100
    scores = np.zeros((n, 2))
    scores[:90, 1] = 1  # the dear model: 0.9
    scores[:60, 0] = scores[90:, 0] = 1  # the cheap one: right on 60 easy prompts and on the 10 the dear one misses
    costs = np.tile([1.0, 10.0], (n, 1))
    cheap, mixed, smart, dear = np.zeros(n, int), np.r_[np.zeros(60), np.ones(15), np.zeros(25)].astype(int), \
        np.r_[np.zeros(60), np.ones(30), np.zeros(10)].astype(int), np.ones(n, int)
    curve = sweep_of([cheap, mixed, smart, dear], scores, costs)
    schedule = QualitySchedule.from_curve(curve.lams, curve.quality)
    default = default_target(schedule, curve, scores, costs, np.arange(n) % 5)
    assert default.rule == "matches_best_single" and default.margin == 0.0
    assert schedule.lam_for(default.target) <= 0.1 and default.quality == 1.0
    assert default.cost_share == pytest.approx(curve.mean_cost[2] / 10.0)

    # A router that never gets to the dear model's quality: the default says so and stays near its own best.
    weak = sweep_of([cheap, mixed], scores, costs)
    weak = type(weak)(np.array([np.inf, 0.0]), weak.mean_cost, weak.quality, weak.choices)
    fallback = default_target(QualitySchedule.from_curve(weak.lams, weak.quality), weak, scores, costs,
                              np.arange(n) % 5)
    assert fallback.rule == "near_router_best" and "does not reach" in fallback.note
    assert fallback.quality == pytest.approx(0.85) and fallback.target == 1.0


@pytest.mark.parametrize("candidate", [Candidate("knn", {"k": 5}), Candidate("knn", {"k": 40}), Candidate("sw", {}),
                                       Candidate("blend", {"C": 0.3, "k": 5})])
def test_shared_neighbour_predictions_equal_each_head_fitted_fold_by_fold(candidate):
    from router_ml.training.fit.selection import FoldPredictions

    X, data = routing_data(n=200)
    X = X + np.random.default_rng(1).normal(0, 1e-3, X.shape).astype(np.float32)  # no tied neighbours
    fold_of = fold_ids(len(data), 4, 0)
    shared = FoldPredictions(X, data, fold_of, k_max=40).raw(candidate)
    assert np.allclose(shared, out_of_fold(candidate, X, data, fold_of), atol=1e-5)


def test_the_choice_report_gives_the_runner_up_and_the_rule_measured_on_folds_it_did_not_see():
    from router_ml.training.fit.selection import describe_choice

    X, data = routing_data()
    candidates = [Candidate("per_model", {"C": 1.0}), Candidate("knn", {"k": 25}), Candidate("sw", {})]
    selection = select_head(X, data, candidates, folds=3, seed=0, resamples=100, anchor=PLAIN)
    report = selection.report
    rows = {row["candidate"]: row["val_aiq"] for row in selection.table}
    best = max(rows, key=rows.get)
    anchor = report["anchor"]  # the best against the plain router: chosen only when the interval clears zero
    assert anchor["best"] == best and anchor["kept"] == (anchor["lower"] <= 0)
    assert report["chosen"] == selection.candidate.name == (best if anchor["lower"] > 0 else "per_model(C=1.0)")
    runner_up = max((name for name in rows if name != report["chosen"]), key=rows.get)
    assert report["runner_up"] == runner_up
    assert report["margin"]["difference"] == pytest.approx(rows[report["chosen"]] - rows[runner_up])
    nested = report["nested"]
    assert len(nested["chosen_by_fold"]) == 3
    assert all(name in rows or name.startswith("ensemble(") for name in nested["chosen_by_fold"])
    assert set(nested["versus"]) == {"kNN k=25", "SW ranking", "per-model logistic"}
    for v in nested["versus"].values():
        assert v["lower"] <= v["difference"] <= v["upper"]
    assert selection.validation["nested_aiq"] == nested["aiq"]
    lines = describe_choice(report)
    assert lines[0].startswith(f"best by out-of-fold AIQ: {best}, {anchor['difference']:+.4f} against per_model(C=1.0)")
    assert lines[1].startswith(f"chose {report['chosen']}; runner-up {runner_up}")
    assert any("vs SW ranking (sw())" in line for line in lines)


def test_no_ensembles_when_told_and_an_ensemble_winner_is_fitted_with_its_members_calibrations():
    from router_ml.core.heads import EnsembleHead

    X, data = routing_data()
    candidates = [Candidate("per_model", {"C": 1.0}), Candidate("knn", {"k": 25})]
    plain = select_head(X, data, candidates, folds=3, seed=0, ensembles=False, resamples=50)
    assert [row["candidate"] for row in plain.table] == [c.name for c in candidates]
    assert plain.member_calibrations is None
    forced = select_head(X, data, [Candidate("ensemble", {"members": [["per_model", {"C": 1.0}], ["knn", {"k": 25}]]})],
                         folds=3, seed=0, ensembles=False, resamples=50)
    head = forced.fit_head(X, data)
    # The members' scaling comes from their out-of-fold predictions, the same the choice was measured on.
    assert isinstance(head, EnsembleHead) and len(forced.member_calibrations) == 2
    assert all(a is b for a, b in zip(head.calibrations_, forced.member_calibrations))
    proba = head.predict_proba(X[:10])
    assert proba.shape == (10, 2) and ((proba > 0) & (proba < 1)).all()


def test_costly_candidates_are_left_out_of_large_logs_with_a_note():
    from router_ml.training.fit.selection import COSTLY_ABOVE, default_candidates

    small, notes = default_candidates(1_000)
    assert "mlp" in {c.strategy for c in small} and not notes
    large, notes = default_candidates(COSTLY_ABOVE["mlp"] + 1)
    assert "mlp" not in {c.strategy for c in large} and len(notes) == 1 and "mlp" in notes[0]
    assert {"knn", "sw", "per_model", "blend", "cheapest_successful"} <= {c.strategy for c in large}


def test_the_default_claims_to_match_the_best_model_only_when_held_out_folds_support_it():
    from router_ml.core.decision import QualitySchedule
    from router_ml.training.fit.selection import default_target

    n = 100
    scores = np.zeros((n, 2))
    scores[:90, 1] = 1
    scores[:60, 0] = scores[90:, 0] = 1
    costs = np.tile([1.0, 10.0], (n, 1))
    cheap, dear = np.zeros(n, int), np.ones(n, int)
    smart = np.r_[np.zeros(60), np.ones(30), np.zeros(10)].astype(int)
    curve = sweep_of([cheap, smart, dear], scores, costs)
    curve = type(curve)(np.array([np.inf, 0.1, 0.0]), curve.mean_cost, curve.quality, curve.choices)
    good = default_target(QualitySchedule.from_curve(curve.lams, curve.quality), curve, scores, costs,
                          np.arange(n) % 5, resamples=200)
    assert good.claim and good.held_out["difference"] == pytest.approx(0.1) and good.held_out["lower"] > 0
    assert "it matches the best single model" in good.note
    # A router that falls short of the dear model on held-out folds: no claim.
    mixed = np.r_[np.zeros(60), np.ones(15), np.zeros(25)].astype(int)
    plain = sweep_of([cheap, mixed], scores, costs)
    plain = type(plain)(np.array([np.inf, 0.0]), plain.mean_cost, plain.quality, plain.choices)
    none = default_target(QualitySchedule.from_curve(plain.lams, plain.quality), plain, scores, costs,
                          np.arange(n) % 5, resamples=200)
    assert not none.claim and "no claim" in none.note
