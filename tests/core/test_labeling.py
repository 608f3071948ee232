import numpy as np

from router_ml.core.labeling import CENSORED, cheapest_successful_labels, label_names

N = np.nan


def test_cheapest_success_wins_by_per_prompt_cost():
    success = np.array([[0, 1, 1], [1, 1, 1], [0, 0, 1]], dtype=float)
    costs = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 3]], dtype=float)
    assert cheapest_successful_labels(success, costs).tolist() == [1, 0, 2]


def test_order_follows_cost_not_column():
    # Column 2 is cheapest on this prompt, and it succeeded.
    success = np.array([[1, 1, 1]], dtype=float)
    costs = np.array([[5, 3, 1]], dtype=float)
    assert cheapest_successful_labels(success, costs).tolist() == [2]


def test_no_model_succeeded_is_none_only_when_all_were_tried():
    success = np.array([[0, 0, 0], [0, N, 0]], dtype=float)
    costs = np.tile([1.0, 2.0, 3.0], (2, 1))
    labels = cheapest_successful_labels(success, costs)
    assert labels.tolist() == [3, CENSORED]
    assert label_names(labels, ["a", "b", "c"]) == ["none", "censored"]


def test_untried_cheaper_model_censors_but_untried_dearer_does_not():
    success = np.array([[N, 1, 0], [0, 1, N]], dtype=float)
    costs = np.tile([1.0, 2.0, 3.0], (2, 1))
    assert cheapest_successful_labels(success, costs).tolist() == [CENSORED, 1]


def test_pricier_but_weaker_model_is_never_preferred_by_label():
    # Model 2 costs more than model 1 but only model 1 succeeded: label is 1.
    success = np.array([[0, 1, 0]], dtype=float)
    costs = np.array([[1.0, 2.0, 9.0]])
    assert cheapest_successful_labels(success, costs).tolist() == [1]


def test_equal_costs_break_ties_by_column():
    success = np.array([[1, 1]], dtype=float)
    assert cheapest_successful_labels(success, np.array([[2.0, 2.0]])).tolist() == [0]
