import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from router_ml.core.heads import (
    HEADS,
    CheapestSuccessfulHead,
    KNNHead,
    PerModelSuccessHead,
    PlattCalibration,
    RoutingHead,
)


def synthetic(n=400, seed=0):
    """Two clusters: on cluster 0 the cheap model succeeds; on cluster 1 only the dear one."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 2, n)
    X = rng.normal(0, 0.3, (n, 8)) + cluster[:, None] * 1.5
    Y = np.column_stack([(cluster == 0) & (rng.random(n) < 0.9), rng.random(n) < 0.85]).astype(float)
    costs = np.tile([1.0, 10.0], (n, 1))
    return X, Y, costs, cluster


@pytest.mark.parametrize("name", sorted(HEADS))
def test_every_head_learns_where_the_cheap_model_fails(name):
    X, Y, costs, cluster = synthetic()
    head = HEADS[name]().fit(X[:300], Y[:300], costs=costs[:300])
    proba = head.predict_proba(X[300:])
    assert proba.shape == (100, 2) and np.all((proba >= 0) & (proba <= 1))
    test_cluster = cluster[300:]
    if name == "sw":
        # RouteLLM's weights (10 to 100 for every training prompt) smooth heavily: only the order is sharp.
        assert proba[test_cluster == 0, 0].mean() - proba[test_cluster == 1, 0].mean() > 0.25
        assert proba[test_cluster == 0, 0].min() > proba[test_cluster == 1, 0].max()
    else:
        assert proba[test_cluster == 0, 0].mean() > 0.7
        assert proba[test_cluster == 1, 0].mean() < 0.3
    assert clone(head).get_params() == head.get_params()


@pytest.mark.parametrize("name", sorted(HEADS))
def test_heads_refuse_to_predict_unfitted(name):
    with pytest.raises(NotFittedError):
        HEADS[name]().predict_proba(np.zeros((1, 8)))


def test_per_model_head_trains_on_partial_logs():
    X, Y, costs, _ = synthetic()
    Y = Y.copy()
    Y[::2, 1] = np.nan  # the dear model was tried on half the prompts only
    proba = PerModelSuccessHead().fit(X, Y).predict_proba(X)
    assert np.isfinite(proba).all()


def test_label_head_measures_a_pricier_but_weaker_model():
    # Three models by price: a (cheap), b (mid, strong), c (dearest, weak).
    rng = np.random.default_rng(1)
    n = 600
    X = rng.normal(size=(n, 4))
    a = (X[:, 0] > 0.5).astype(float)
    b = (rng.random(n) < 0.9).astype(float)
    c = (rng.random(n) < 0.3).astype(float)
    Y = np.column_stack([a, b, c])
    head = CheapestSuccessfulHead().fit(X, Y, costs=np.tile([1.0, 2.0, 3.0], (n, 1)))
    proba = head.predict_proba(X)
    # The dearest model's success probability is its measured rate, not "best because priciest".
    assert proba[:, 2].mean() == pytest.approx(c.mean(), abs=0.08)
    assert proba[:, 1].mean() > proba[:, 2].mean() + 0.4


def test_label_head_none_class_lowers_every_model():
    rng = np.random.default_rng(2)
    n = 500
    X = rng.normal(size=(n, 4))
    hopeless = X[:, 0] > 0.8
    Y = np.where(hopeless[:, None], 0.0, (rng.random((n, 2)) < [0.6, 0.9]).astype(float))
    head = CheapestSuccessfulHead().fit(X, Y, costs=np.tile([1.0, 5.0], (n, 1)))
    proba = head.predict_proba(X)
    assert proba[hopeless].max(axis=1).mean() < 0.3
    assert proba[~hopeless, 1].mean() > 0.7


def test_label_head_needs_costs_and_uncensored_prompts():
    X, Y, costs, _ = synthetic()
    with pytest.raises(ValueError, match="needs costs"):
        CheapestSuccessfulHead().fit(X, Y)
    Y = Y.copy()
    Y[:, 0] = np.nan
    with pytest.raises(ValueError, match="censored"):
        CheapestSuccessfulHead().fit(X, Y, costs=costs)


def test_targets_must_be_binary_or_nan():
    with pytest.raises(ValueError, match="1.0 \\(success\\)"):
        PerModelSuccessHead().fit(np.zeros((3, 2)), np.array([[0.5, 1], [0, 1], [1, 0]]))


def test_platt_calibration_fixes_timid_probabilities():
    rng = np.random.default_rng(3)
    truth = rng.random(5000)
    y = (rng.random(5000) < truth).astype(float)
    timid = 0.5 + 0.2 * (truth - 0.5)  # right order, squeezed toward 0.5
    calibration = PlattCalibration().fit(timid[:, None], y[:, None])
    fixed = calibration.transform(timid[:, None])[:, 0]
    assert np.abs(fixed - truth).mean() < 0.05 < np.abs(timid - truth).mean()
    assert np.all(np.diff(fixed[np.argsort(timid)]) >= 0)  # order kept


def test_routing_head_gives_one_probability_space():
    """What the router trades against cost is what it reports: calibrated probabilities. Routers
    trained before that rule with route_on_calibrated=False keep routing on, and now report, raw ones."""
    X, Y, costs, _ = synthetic()
    knn = KNNHead().fit(X, Y)
    calibration = PlattCalibration().fit(knn.predict_proba(X), Y)
    np.testing.assert_allclose(RoutingHead(knn, calibration).predict(X), calibration.transform(knn.predict_proba(X)))
    np.testing.assert_allclose(RoutingHead(knn, calibration, route_on_calibrated=False).predict(X),
                               knn.predict_proba(X))


@pytest.mark.parametrize("name, settings", [("per_model", {}), ("cheapest_successful", {}), ("knn", {"k": 250}),
                                            ("blend", {"k": 250})])
def test_a_weight_of_two_counts_like_a_repeated_prompt(name, settings):
    """Inverse-propensity weights (retraining from logged traffic) enter the fit as repetition would
    (for kNN with every prompt a neighbour: repeats would otherwise crowd others out of the k)."""
    X, Y, costs, _ = synthetic(n=200, seed=3)
    Y[::3, 0] = np.nan  # a partial log: some outcomes unknown
    W = np.ones_like(Y)
    W[:50] = 2.0
    weighted = HEADS[name](**settings).fit(X, Y, costs=costs, sample_weight=W)
    repeated = HEADS[name](**settings).fit(np.vstack([X, X[:50]]), np.vstack([Y, Y[:50]]),
                                           costs=np.vstack([costs, costs[:50]]))
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), atol=2e-3)


def test_weights_must_be_positive_where_outcomes_are_known():
    X, Y, costs, _ = synthetic(n=50)
    W = np.ones_like(Y)
    W[0, 0] = 0.0
    with pytest.raises(ValueError, match="sample_weight"):
        PerModelSuccessHead().fit(X, Y, sample_weight=W)
    with pytest.raises(ValueError, match="shape"):
        PerModelSuccessHead().fit(X, Y, sample_weight=W[:, :1])


def test_similarity_weighted_rates_use_routellms_weights():
    from router_ml.core.heads import SimilarityWeightedHead

    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    Y = np.array([[1.0, 0.0], [0.0, np.nan]])  # the second model was never tried on the second prompt
    proba = SimilarityWeightedHead().fit(X, Y).predict_proba(np.array([[2.0, 0.0]]))
    # weights 10*10^(1/1) = 100 for the identical prompt, 10*10^0 = 10 for the orthogonal one
    assert proba[0, 0] == pytest.approx(100 / 110)
    assert proba[0, 1] == pytest.approx(0.0)  # only the first prompt tried it, and it failed


def test_ensemble_averages_its_members_calibrated_probabilities_and_refuses_bad_members():
    from router_ml.core.heads import EnsembleHead

    X, Y, costs, _ = synthetic()
    ones = PlattCalibration().fit(np.full(Y.shape, 0.5), Y)
    ones.coef_, ones.intercept_ = np.ones(2), np.zeros(2)  # the identity scaling
    head = EnsembleHead(members=[("per_model", {"C": 1.0}), ("knn", {"k": 25})]).fit(
        X, Y, costs=costs, member_calibrations=[ones, ones])
    expected = 0.5 * (PerModelSuccessHead(C=1.0).fit(X, Y).predict_proba(X[:5]) + KNNHead(k=25).fit(X, Y).predict_proba(X[:5]))
    assert np.allclose(head.predict_proba(X[:5]), expected, atol=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        EnsembleHead(members=[("knn", {})]).fit(X, Y)
    with pytest.raises(ValueError, match="'ensemble' is not a head"):
        EnsembleHead(members=[("knn", {}), ("ensemble", {})]).fit(X, Y)
    with pytest.raises(ValueError, match="member_calibrations: expected 2"):
        EnsembleHead(members=[("knn", {}), ("sw", {})]).fit(X, Y, member_calibrations=[ones])
