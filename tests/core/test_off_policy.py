"""The off-policy study's building blocks (benchmarks/ope/): estimators, AIQ, reward models, designs."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.ope.designs import ExplorationDesign, logging_policy
from router_ml.core.off_policy.estimators import (
    LoggedTraffic,
    aiq_batch,
    basic_interval,
    bias_corrected,
    estimator_terms,
    importance_weights,
    predicted_width,
    ratio,
    resample_counts,
)
from router_ml.core.off_policy.reward_models import (
    cross_fit,
    embedding_rewards,
    fractional_logistic,
    logged_score_rewards,
)
from router_ml.training.evaluate.metrics import aiq


def test_aiq_batch_is_metrics_aiq():
    rng = np.random.default_rng(1)
    for trial in range(60):
        points = int(rng.integers(1, 30))
        cost, quality = rng.uniform(0.05, 1.0, (8, points + 2)), rng.uniform(0, 1, (8, points + 2))
        if trial % 2:  # ties in cost and quality
            cost, quality = np.round(cost, 1), np.round(quality, 1)
        cost[:, 0], cost[:, 1] = np.minimum(cost[:, 0], 0.3), np.maximum(cost[:, 1], 0.7)
        got = aiq_batch(cost, quality)
        for b in range(8):
            singles = np.array([[cost[b, 0], quality[b, 0]], [cost[b, 1], quality[b, 1]]])
            assert got[b] == pytest.approx(aiq(np.column_stack([cost[b, 2:], quality[b, 2:]]), singles), abs=1e-12)
    assert np.isnan(aiq_batch(np.array([[0.1, 0.9, np.nan]]), np.array([[0.5, 0.6, 0.7]])))[0]


def _world(rng, n=2000, m=4):
    X = rng.normal(size=(n, 5))
    p = 1 / (1 + np.exp(-X[:, :m]))
    costs = np.tile([0.1, 0.2, 0.5, 0.9], (n, 1))
    choice = np.argmax(p - 0.3 * costs, axis=1)
    return X, p, costs, choice


def _log(rng, p, policy, costs):
    n, m = p.shape
    outcomes = (rng.random((n, m)) < p).astype(float)
    served = np.minimum((rng.random(n)[:, None] > np.cumsum(policy, axis=1)).sum(axis=1), m - 1)
    rows = np.arange(n)
    return LoggedTraffic(served, outcomes[rows, served], costs[rows, served], policy), outcomes


@pytest.mark.parametrize("estimator", ["ips", "snips", "dr"])
def test_estimators_are_unbiased_with_known_propensities(estimator):
    rng = np.random.default_rng(0)
    X, p, costs, choice = _world(rng)
    policy = logging_policy(ExplorationDesign("uniform", 0.2), choice, p, costs, np.array([0.3]), 1.0)
    target = np.argmax(p - 0.05 * costs, axis=1)  # disagrees with the logging choice often
    truth = p[np.arange(len(p)), target].mean()
    wrong_model = np.full_like(p, 0.5)  # DR stays unbiased whatever the reward model
    values = []
    for _ in range(150):
        log, _ = _log(rng, p, policy, costs)
        values.append(ratio(*estimator_terms(estimator, log, log.score, target, wrong_model)))
    assert np.mean(values) == pytest.approx(truth, abs=3 * np.std(values) / np.sqrt(len(values)) + 0.003)


def test_dr_with_the_true_outcomes_as_reward_model_is_exact_and_dm_ignores_the_log():
    rng = np.random.default_rng(2)
    X, p, costs, choice = _world(rng, n=500)
    policy = logging_policy(ExplorationDesign("uniform", 0.1), choice, p, costs, np.array([0.3]), 1.0)
    log, outcomes = _log(rng, p, policy, costs)
    target = np.column_stack([choice, np.zeros_like(choice), np.full_like(choice, 3)])
    u, d = estimator_terms("dr", log, log.score, target, outcomes)
    assert ratio(u, d) == pytest.approx(outcomes[np.arange(500)[:, None], target].mean(axis=0))
    u, d = estimator_terms("dm", log, log.score, target, p)
    assert ratio(u, d) == pytest.approx(p[np.arange(500)[:, None], target].mean(axis=0))


def test_importance_weights_and_bootstrap_counts():
    policy = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    log = LoggedTraffic(np.array([0, 1, 1]), np.array([1.0, 0.0, 1.0]), np.ones(3), policy)
    assert importance_weights(log, np.array([0, 0, 1])) == pytest.approx([1 / 0.9, 0.0, 1 / 0.8])
    counts = resample_counts(3, 50, np.random.default_rng(0))
    assert counts.shape == (50, 3) and (counts.sum(axis=1) == 3).all()
    with pytest.raises(ValueError, match="propensity"):
        LoggedTraffic(np.array([1]), np.array([1.0]), np.ones(1), np.array([[1.0, 0.0]]))


def test_logging_designs_keep_their_promises():
    rng = np.random.default_rng(3)
    X, p, costs, choice = _world(rng, n=400)
    costs = costs * rng.uniform(0.5, 2.0, (400, 1))
    rows = np.arange(400)
    lams = np.array([0.3, 0.1, 0.0])
    for design in (ExplorationDesign("u", 0.1), ExplorationDesign("t", 0.1, "utility", 0.05, 0.3),
                   ExplorationDesign("s", 0.1, "utility", 0.05, 0.3, sweep=True),
                   ExplorationDesign("c", 0.1, "closeness", 0.05, 0.3)):
        policy = logging_policy(design, choice, p, costs, lams, 1.0)
        assert np.allclose(policy.sum(axis=1), 1.0)
        assert policy[rows, choice] == pytest.approx(np.full(400, 0.9))
        assert policy.min() >= 0.1 * design.floor / 3 - 1e-12
    capped = ExplorationDesign("cap", 0.1, "utility", 0.05, 0.3, max_extra_cost=0.05)
    policy = logging_policy(capped, choice, p, costs, lams, 1.0)
    chosen = costs[rows, choice]
    extra = (policy * (costs - chosen[:, None])).sum(axis=1)
    others = np.where(np.arange(4)[None, :] == choice[:, None], np.inf, costs)
    # the cap holds unless even the untilted floor plus the cheapest other model exceed it
    least = 0.1 * 0.3 * (costs - chosen[:, None]).sum(axis=1) / 3 + 0.1 * 0.7 * (others.min(axis=1) - chosen)
    assert (extra <= np.maximum(0.05 * chosen, least) + 1e-6).all()
    assert (extra[least < 0.05 * chosen] <= 0.05 * chosen[least < 0.05 * chosen] + 1e-6).all()
    assert (extra > 0.05 * chosen + 1e-6).any()  # some rows need the floor beyond the cap (the test bites)
    shadow = (choice + 1) % 4
    policy = logging_policy(ExplorationDesign("sh", 0.1, "shadow", 0.05, 0.3), choice, p, costs, lams, 1.0, shadow)
    assert policy[rows, shadow] == pytest.approx(np.full(400, 0.1 * (0.7 + 0.3 / 3)))
    focused = ExplorationDesign("shf", 0.1, "shadow", 0.05, 0.3, focus=0.02)
    agree = rows % 4 == 0  # a quarter of the requests: the shadow router agrees with the choice
    shadow_some = np.where(agree, choice, shadow)
    policy = logging_policy(focused, choice, p, costs, lams, 1.0, shadow_some)
    explored = 1.0 - policy[rows, choice]
    assert explored[agree] == pytest.approx(np.full(agree.sum(), 0.02))
    assert explored.mean() == pytest.approx(0.1)  # the budget moved, not grown
    assert policy[~agree][np.arange((~agree).sum()), shadow[~agree]] == pytest.approx(
        np.full((~agree).sum(), (0.1 - 0.02 * 0.25) / 0.75 * (0.7 + 0.3 / 3)))
    with pytest.raises(ValueError, match="shadow routers"):
        logging_policy(ExplorationDesign("sh", 0.1, "shadow"), choice, p, costs, lams, 1.0)


def test_fractional_logistic_matches_scikit_learn_on_0_1_labels():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 6))
    y = (rng.random(300) < 1 / (1 + np.exp(-2 * X[:, 0]))).astype(float)
    ours = fractional_logistic(X, y, C=0.3)
    theirs = LogisticRegression(C=0.3, max_iter=2000, tol=1e-10).fit(X, y)
    assert ours.coef == pytest.approx(theirs.coef_[0], abs=1e-4)
    assert ours.intercept == pytest.approx(theirs.intercept_[0], abs=1e-4)
    assert fractional_logistic(X, np.ones(300), C=1.0) is None


def test_cross_fitting_never_uses_a_request_own_outcome():
    rng = np.random.default_rng(5)
    n, m = 200, 3
    X = rng.normal(size=(n, 4))
    served = rng.integers(0, m, n)
    score = rng.random(n)
    proba = rng.uniform(0.1, 0.9, (n, m))
    for make in (lambda s: embedding_rewards(X, served, s, m), lambda s: logged_score_rewards(proba, served, s)):
        before = cross_fit(make(score), n, 5, np.random.default_rng(0))
        changed = score.copy()
        changed[7] = 1.0 - changed[7]
        after = cross_fit(make(changed), n, 5, np.random.default_rng(0))
        assert after[7] == pytest.approx(before[7])
        assert not np.allclose(after, before)  # the other folds' models saw the change


def test_basic_interval_reflects_the_percentile_interval_around_the_estimate():
    draws = np.linspace(0.50, 0.60, 1001)  # resamples sit above the estimate: the estimate is biased up
    lo, hi = basic_interval(0.52, draws, 0.9)
    assert (lo, hi) == pytest.approx((2 * 0.52 - 0.595, 2 * 0.52 - 0.505))
    assert bias_corrected(0.52, draws) == pytest.approx(0.49)


def test_predicted_width_matches_the_spread_of_dr_estimates():
    rng = np.random.default_rng(6)
    X, p, costs, choice = _world(rng, n=3000)
    policy = logging_policy(ExplorationDesign("uniform", 0.1), choice, p, costs, np.array([0.3]), 1.0)
    target = np.argmax(p - 0.05 * costs, axis=1)
    rows = np.arange(len(p))
    values = []
    for _ in range(200):
        log, _ = _log(rng, p, policy, costs)
        values.append(ratio(*estimator_terms("dr", log, log.score, target, p)))
    spread = 2 * 1.6449 * np.std(values)
    assert predicted_width(p[rows, target], policy[rows, target]) == pytest.approx(spread, rel=0.15)
