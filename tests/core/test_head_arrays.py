"""Every head predicts the same from its arrays (router_ml.core.head_arrays) as from its estimators."""

import numpy as np
import pytest

from router_ml.core.head_arrays import ArrayHead, load_head_arrays, save_arrays
from router_ml.core.heads import HEADS, PlattCalibration, RoutingHead


def data(n=300, m=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 16)).astype(np.float32)
    Y = (rng.random((n, m)) < 1 / (1 + np.exp(-X[:, :m]))).astype(float)
    Y[:, 2] = 1.0  # one model always succeeds: a constant estimator
    return X, Y, np.tile(np.arange(1.0, m + 1), (n, 1))


@pytest.mark.parametrize("name", sorted(HEADS))
@pytest.mark.parametrize("route_on_calibrated", [False, True])
def test_head_from_arrays_predicts_as_the_estimators(name, route_on_calibrated, tmp_path):
    X, Y, costs = data()
    head = HEADS[name]().fit(X[:200], Y[:200], costs=costs[:200])
    routing = RoutingHead(head, PlattCalibration().fit(head.predict_proba(X[:200]), Y[:200]), route_on_calibrated)
    save_arrays(tmp_path / "head.npz", routing.to_arrays())
    from_arrays = load_head_arrays(tmp_path / "head.npz")
    np.testing.assert_allclose(from_arrays.predict(X[200:]), routing.predict(X[200:]), atol=1e-5)


def test_two_class_label_head_uses_the_binary_form(tmp_path):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 8)).astype(np.float32)
    Y = np.column_stack([X[:, 0] > 0, np.ones(200)]).astype(float)  # labels: model 0 or model 1, never none
    head = HEADS["cheapest_successful"]().fit(X, Y, costs=np.tile([1.0, 2.0], (200, 1)))
    routing = RoutingHead(head, PlattCalibration().fit(head.predict_proba(X), Y), True)
    from_arrays = ArrayHead(routing.to_arrays())
    np.testing.assert_allclose(from_arrays.predict(X), routing.predict(X), atol=1e-5)


def test_wrong_format_is_refused():
    with pytest.raises(ValueError, match="format"):
        ArrayHead({"format": np.array(99), "kind": np.array("knn")})
