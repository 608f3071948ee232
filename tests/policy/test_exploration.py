"""The serving policy's exploration (router_ml.policy.exploration): exact, logged distributions."""

import numpy as np
import pytest

from router_ml.errors import ConfigError
from router_ml.policy.exploration import Exploration, distribution, draw, extra_cost

RNG = np.random.default_rng(0)
N, M = 200, 5
PROBA = RNG.uniform(0.2, 0.95, (N, M))
COSTS = np.sort(RNG.uniform(1e-5, 1e-3, (N, M)), axis=1)  # cheapest first
CHOICE = RNG.integers(0, M, N)
LAM, SCALE = 0.5, float(COSTS.mean(axis=0).max())


def test_rows_are_distributions_and_the_choice_keeps_one_minus_the_rate():
    for design in ("utility", "uniform"):
        policy = distribution(Exploration(rate=0.1, design=design), PROBA, COSTS, CHOICE, LAM, SCALE)
        assert policy.shape == (N, M) and np.allclose(policy.sum(axis=1), 1.0)
        assert np.allclose(policy[np.arange(N), CHOICE], 0.9)
        if design == "uniform":
            others = np.ones((N, M), dtype=bool)
            others[np.arange(N), CHOICE] = False
            assert np.allclose(policy[others], 0.1 / (M - 1))


def test_utility_puts_more_on_models_close_to_the_best_and_keeps_the_floor():
    settings = Exploration(rate=0.2, floor=0.3, temperature=0.05)
    policy = distribution(settings, PROBA, COSTS, CHOICE, LAM, SCALE)
    utility = PROBA - LAM * COSTS / SCALE
    rows = np.arange(N)
    for i in rows:
        others = [j for j in range(M) if j != CHOICE[i]]
        assert min(policy[i, others]) >= 0.2 * 0.3 / (M - 1) - 1e-12  # the floor
        best, worst = max(others, key=lambda j: utility[i, j]), min(others, key=lambda j: utility[i, j])
        assert policy[i, best] >= policy[i, worst]


def test_the_rules_restriction_binds_and_no_other_model_means_no_exploration():
    allowed = np.zeros((N, M), dtype=bool)
    allowed[np.arange(N), CHOICE] = True
    allowed[:, 0] = True  # the cheapest is allowed too
    policy = distribution(Exploration(rate=0.3), PROBA, COSTS, CHOICE, LAM, SCALE, allowed=allowed)
    assert np.all(policy[~allowed] == 0)
    alone = CHOICE == 0  # nothing else allowed: stays put
    assert np.all(policy[alone, 0] == 1.0)
    assert np.allclose(policy[~alone, 0], 0.3)


def test_a_cost_cap_holds_the_expected_extra_cost():
    capped = Exploration(rate=0.2, floor=0.0, max_extra_cost=0.05)
    policy = distribution(capped, PROBA, COSTS, np.zeros(N, dtype=int), 0.0, SCALE)  # cheapest chosen: others cost more
    extra = extra_cost(policy, COSTS, np.zeros(N, dtype=int))
    assert np.all(extra <= 0.05 * COSTS[:, 0] * 1.001)
    free = distribution(Exploration(rate=0.2, floor=0.0), PROBA, COSTS, np.zeros(N, dtype=int), 0.0, SCALE)
    assert extra_cost(free, COSTS, np.zeros(N, dtype=int)).mean() > extra.mean()


def test_a_shadow_router_gets_the_targeted_mass_and_focus_keeps_the_mean_rate():
    shadow = (CHOICE + 1) % M  # always disagrees
    shadow[:100] = CHOICE[:100]  # agrees on half
    settings = Exploration(rate=0.1, floor=0.3)
    policy = distribution(settings, PROBA, COSTS, CHOICE, LAM, SCALE, shadow_choice=shadow)
    rows = np.arange(100, N)
    assert np.allclose(policy[rows, shadow[rows]], 0.1 * (0.7 + 0.3 / (M - 1)))
    focused = distribution(Exploration(rate=0.1, focus=0.02), PROBA, COSTS, CHOICE, LAM, SCALE, shadow_choice=shadow)
    explored = 1.0 - focused[np.arange(N), CHOICE]
    assert explored[:100] == pytest.approx(np.full(100, 0.02)) and explored.mean() == pytest.approx(0.1)


def test_draw_follows_the_distribution():
    row = np.array([0.7, 0.1, 0.2])
    draws = [draw(row, u) for u in np.linspace(0, 0.999, 1000)]
    assert np.bincount(draws, minlength=3) / 1000 == pytest.approx(row, abs=0.002)


def test_settings_are_checked():
    for bad in (dict(rate=1.0), dict(design="greedy"), dict(floor=1.5), dict(temperature=0), dict(rate=0.1, focus=0.2),
                dict(max_extra_cost=-1)):
        with pytest.raises(ConfigError):
            Exploration(**bad)
    assert np.all(distribution(Exploration(), PROBA, COSTS, CHOICE, LAM, SCALE)[np.arange(N), CHOICE] == 1.0)
