"""Paired bootstrap intervals for routing curves (router_ml.training.evaluate.paired)."""

import numpy as np
import pytest

from router_ml.training.evaluate import metrics
from router_ml.training.evaluate.paired import Curve, PairedBootstrap, mean_interval


def two_models(n=400, seed=0):
    rng = np.random.default_rng(seed)
    easy = rng.random(n) < 0.6
    scores = np.column_stack([easy & (rng.random(n) < 0.95), rng.random(n) < 0.9]).astype(float)
    costs = np.tile([1.0, 10.0], (n, 1))
    return scores, costs, easy


def sweep_choices(order, n):
    """Routes that send the first k prompts of `order` to the strong model, k from 0 to n."""
    out = []
    for k in np.linspace(0, n, 21).astype(int):
        c = np.zeros(n, int)
        c[order[:k]] = 1
        out.append(c)
    return np.array(out)


def test_the_value_on_the_data_is_the_metric_and_a_curve_against_itself_is_zero():
    scores, costs, easy = two_models()
    boot = PairedBootstrap(scores, costs, resamples=200, seed=0, strong=1)
    curve = Curve.of_choices(sweep_choices(np.argsort(easy, kind="stable"), len(scores)), scores, costs, strong=1)
    values = boot.values(curve, "aiq")
    points = np.column_stack([curve.cost.mean(axis=1), curve.score.mean(axis=1)])
    singles = np.column_stack([costs.mean(0), scores.mean(0)])
    assert values[0] == pytest.approx(metrics.aiq(points, singles))
    same = boot.compare(curve, curve, "apgr")
    assert same.difference == 0.0 and same.lower == 0.0 and same.upper == 0.0 and same.not_worse


def test_a_router_that_knows_the_hard_prompts_beats_a_random_one_with_confidence():
    scores, costs, easy = two_models()
    n = len(scores)
    boot = PairedBootstrap(scores, costs, resamples=300, seed=1, strong=1)
    smart = Curve.of_choices(sweep_choices(np.argsort(easy, kind="stable"), n), scores, costs, strong=1)
    blind = Curve.of_choices(sweep_choices(np.random.default_rng(3).permutation(n), n), scores, costs, strong=1)
    for metric in ("aiq", "gap_closed", "apgr"):
        better = boot.compare(smart, blind, metric)
        assert better.lower <= better.difference <= better.upper
        assert better.favours_first, better.describe()
        worse = boot.compare(blind, smart, metric)
        assert not worse.not_worse
    cost = boot.compare(smart, blind, "cost_to_match_best")
    assert cost.difference <= 0


def test_apgr_needs_the_strong_model_and_bad_settings_are_refused():
    scores, costs, _ = two_models(n=50)
    curve = Curve.of_choices(np.zeros((1, 50), int), scores, costs)
    with pytest.raises(ValueError, match="APGR"):
        PairedBootstrap(scores, costs, resamples=10).values(curve, "apgr")
    with pytest.raises(ValueError, match="metric"):
        PairedBootstrap(scores, costs, resamples=10).values(curve, "accuracy")
    with pytest.raises(ValueError, match="confidence"):
        PairedBootstrap(scores, costs, resamples=10).compare(curve, curve, "aiq", confidence=1.5)
    with pytest.raises(ValueError, match="at least 2 prompts"):
        PairedBootstrap(scores[:1], costs[:1])


def test_joined_curves_put_each_part_back_on_its_prompts():
    scores, costs, _ = two_models(n=10)
    a = Curve(np.ones((2, 4)), np.full((2, 4), 2.0))
    b = Curve(np.zeros((2, 6)), np.full((2, 6), 3.0))
    joined = Curve.joined([(np.arange(0, 10, 2)[:4], a), (np.array([1, 3, 5, 7, 9, 8]), b)], 10)
    assert joined.score[:, [0, 2, 4, 6]].tolist() == [[1.0] * 4] * 2
    assert joined.cost[:, [1, 3, 8]].tolist() == [[3.0] * 3] * 2


def test_mean_interval_covers_the_mean_and_shrinks_with_more_prompts():
    rng = np.random.default_rng(0)
    small = rng.normal(0.1, 1.0, 50)
    large = rng.normal(0.1, 1.0, 5000)
    m, lo, hi = mean_interval(small, resamples=500)
    assert lo <= m <= hi and m == pytest.approx(small.mean())
    _, lo2, hi2 = mean_interval(large, resamples=500)
    assert hi2 - lo2 < (hi - lo) / 4 and lo2 > 0
