"""The routing metrics against values computed by hand from docs/metrics.md."""

import math

import numpy as np
import pytest

from router_ml.training.evaluate import metrics

SINGLES = np.array([[1.0, 0.5], [3.0, 0.9]])  # cheap model A, dear model B


def test_aiq_by_hand():
    # Hull (1, .5) - (2, .8) - (3, .9): trapezoids 0.65 + 0.85 over a width of 2.
    assert metrics.aiq(np.array([[2.0, 0.8]]), SINGLES) == pytest.approx(0.75)


def test_zero_router_and_oracle_by_hand():
    assert metrics.zero_router_aiq(SINGLES) == pytest.approx(0.7)
    # Oracle at (1.5, .95): rises to .95 then stays flat (non-decreasing hull).
    oracle = metrics.oracle_aiq(SINGLES, np.array([1.5, 0.95]))
    assert oracle == pytest.approx((0.5 * (0.5 + 0.95) / 2 + 1.5 * 0.95) / 2)
    assert metrics.gap_closed(0.75, 0.7, oracle) == pytest.approx(0.05 / (oracle - 0.7))


def test_points_below_the_hull_do_not_count():
    assert metrics.aiq(np.array([[2.0, 0.6]]), SINGLES) == pytest.approx(0.7)


def test_hull_is_made_non_decreasing():
    # A router point above the dear model's quality keeps the hull flat to the right.
    assert metrics.aiq(np.array([[2.0, 0.95]]), SINGLES) == pytest.approx(((0.5 + 0.95) / 2 + 0.95) / 2)


def test_cost_to_match_and_quality_at_best_cost():
    assert metrics.cost_to_match(np.array([[2.0, 0.8]]), SINGLES) == pytest.approx(1.0)
    assert metrics.cost_to_match(np.array([[2.0, 0.9]]), SINGLES) == pytest.approx(2 / 3)
    # Between (1, .5) and (2, 1.0) the hull reaches .9 at cost 1.8.
    assert metrics.cost_to_match(np.array([[2.0, 1.0]]), SINGLES) == pytest.approx(0.6)
    assert metrics.quality_at_best_cost(np.array([[2.0, 1.0]]), SINGLES) == pytest.approx(1.0)
    assert metrics.quality_at_best_cost(np.array([[2.0, 0.8]]), SINGLES) == pytest.approx(0.9)


def test_cost_to_match_is_nan_when_never_reached():
    singles = np.array([[1.0, 0.5], [3.0, 0.6], [2.0, 0.9]])  # the best model is not the dearest
    assert math.isnan(metrics.cost_to_match(np.array([[1.5, 0.7]]), singles))


def test_apgr_and_cpt_by_hand():
    # weak .6, strong .8; one sweep point: half the calls to strong give .75, PGR .75.
    share, quality = np.array([0.5]), np.array([0.75])
    assert metrics.apgr(share, quality, 0.6, 0.8) == pytest.approx(0.625)
    assert metrics.cpt(share, quality, 0.6, 0.8, 0.5) == pytest.approx(1 / 3)
    assert metrics.cpt(share, quality, 0.6, 0.8, 0.8) == pytest.approx(0.6)


def test_random_router_has_apgr_one_half():
    share = np.linspace(0, 1, 11)
    assert metrics.apgr(share, 0.6 + 0.2 * share, 0.6, 0.8) == pytest.approx(0.5)
    assert metrics.cpt(share, 0.6 + 0.2 * share, 0.6, 0.8, 0.5) == pytest.approx(0.5)


def test_expected_calibration_error_by_hand():
    ece, table = metrics.expected_calibration_error(np.array([0.15, 0.15, 0.85, 0.85]), np.array([0, 1, 1, 1]))
    assert ece == pytest.approx(0.35 * 0.5 + 0.15 * 0.5)
    assert [row["count"] for row in table] == [2, 2]
    assert metrics.expected_calibration_error(np.array([1.0, 0.0]), np.array([1, 0]))[0] == 0.0


def test_oracle_choice_prefers_the_cheapest_best():
    scores = np.array([[1, 1, 0], [0, 0.5, 0.5], [0, 0, 0]])
    costs = np.array([[2, 1, 3], [1, 3, 2], [3, 1, 2]], dtype=float)
    assert metrics.oracle_choice(scores, costs).tolist() == [1, 2, 1]


def test_upper_hull_drops_inner_points():
    hull = metrics.upper_hull(np.array([[0, 0], [1, 0.4], [2, 1], [1, 0.9], [3, 1]]))
    assert hull.tolist() == [[0, 0], [1, 0.9], [2, 1], [3, 1]]
