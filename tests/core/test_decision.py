import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_ml.core.decision import QualitySchedule, choose, explain_choice, lam_grid
from router_ml.core.validation import check_quality_target
from router_ml.errors import ConfigError

PROBA = np.array([[0.50, 0.70, 0.90], [0.80, 0.82, 0.85]])
COSTS = np.array([[1.0, 2.0, 10.0], [1.0, 2.0, 10.0]])


def test_extremes_of_the_trade_off():
    assert choose(PROBA, COSTS, math.inf, 10.0).tolist() == [0, 0]  # cheapest
    assert choose(PROBA, COSTS, 0.0, 10.0).tolist() == [2, 2]  # likeliest to succeed


def test_a_dearer_model_must_pay_for_itself():
    # At lam = 1 (cost in units of the dearest model), 0.2 more success for 0.1 more cost pays.
    assert choose(PROBA, COSTS, 1.0, 10.0).tolist() == [1, 0]


def test_ties_go_to_the_cheaper_model():
    proba = np.array([[0.9, 0.9]])
    assert choose(proba, np.array([[5.0, 1.0]]), 0.0, 5.0).tolist() == [1]


def test_schedule_from_a_sweep_is_monotone_and_hits_the_ends():
    lams = lam_grid(20)
    quality = np.linspace(0.5, 0.9, len(lams))  # falls as lam rises
    schedule = QualitySchedule.from_curve(lams, quality)
    assert schedule.lam_for(0.0) == math.inf
    assert schedule.lam_for(1.0) == 0.0
    values = [schedule.lam_for(t) for t in np.linspace(0.01, 0.99, 50)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    restored = QualitySchedule.from_dict(schedule.to_dict())
    assert restored == schedule


def test_schedule_keeps_the_cheapest_rate_for_each_quality():
    lams = np.array([math.inf, 10.0, 1.0, 0.1, 0.0])
    quality = np.array([0.5, 0.7, 0.7, 0.9, 0.9])
    schedule = QualitySchedule.from_curve(lams, quality)
    assert schedule.lam_for(0.5) == pytest.approx(10.0)  # 0.7 is half the gain; lam 10 reaches it
    assert schedule.lams[-1] == 0.0


def test_flat_curve_still_spans_the_knob():
    schedule = QualitySchedule.from_curve(np.array([math.inf, 1.0, 0.0]), np.array([0.6, 0.6, 0.6]))
    assert schedule.lam_for(0.0) == math.inf and schedule.lam_for(1.0) == 0.0


@pytest.mark.parametrize("value", [-0.1, 1.01, float("nan"), "high", None, True])
def test_quality_target_must_be_in_unit_interval(value):
    with pytest.raises(ConfigError, match="quality_target"):
        check_quality_target(value)


def test_malformed_schedule_is_refused():
    with pytest.raises(ConfigError):
        QualitySchedule(targets=(0.0, 0.5), lams=(math.inf, 0.0))


# -- the reason matches the choice -------------------------------------------------------


@st.composite
def choices(draw):
    m = draw(st.integers(2, 6))
    unit = st.floats(0.0, 1.0, allow_nan=False)
    proba = np.array(draw(st.lists(unit, min_size=m, max_size=m)))
    costs = np.array(draw(st.lists(st.floats(1e-6, 1.0, allow_nan=False), min_size=m, max_size=m)))
    lam = draw(st.sampled_from([math.inf, 0.0]) | st.floats(1e-4, 1e3))
    allowed = np.array(draw(st.lists(st.booleans(), min_size=m, max_size=m)))
    if not allowed.any():
        allowed[draw(st.integers(0, m - 1))] = True
    return proba, costs, lam, allowed


@given(choices())
@settings(max_examples=400, deadline=None)
def test_the_reason_names_only_trades_the_rule_made(case):
    proba, costs, lam, allowed = case
    models = [f"m{j}" for j in range(len(proba))]
    scale = 0.5
    chosen = int(choose(proba[None], costs[None], lam, scale, allowed)[0])
    reason = explain_choice(models, proba, costs, chosen, 0.5, lam, scale, allowed)
    assert allowed[chosen]
    if math.isinf(lam):
        assert costs[chosen] == costs[allowed].min() and "cheapest" in reason
        return
    utility = proba - lam * costs / scale
    assert utility[chosen] >= utility[allowed].max() - 1e-6  # the rule, within the tie-break
    if "is likelier" in reason:
        named = int(reason.split(" is likelier")[0].split("; ")[-1][1:])
        assert allowed[named] and proba[named] > proba[chosen] + 1e-9
        assert costs[named] > costs[chosen]  # a likelier model is only passed over for its price
        assert proba[named] - proba[chosen] <= lam * (costs[named] - costs[chosen]) / scale + 1e-6
        assert proba[named] == proba[allowed].max()
    else:
        assert "likeliest" in reason and proba[chosen] >= proba[allowed].max() - 1e-9
