"""Onboarding a model the router was not trained on (router_ml.policy.onboarding): priors and capped shares."""

import numpy as np
import pytest

from router_ml import load_router
from router_ml.core.catalog import catalog_from_dict
from router_ml.errors import CatalogError, ConfigError
from router_ml.policy.onboarding import Onboarding, read_evaluations


def catalog(router, prior=None, source="<memory>"):
    models = {m: {"input_price": 0.1 * (i + 1), "output_price": 0.4 * (i + 1)} for i, m in enumerate(router.models)}
    models["newbie"] = {"input_price": 0.5, "output_price": 2.0, **({"prior": prior} if prior else {})}
    return catalog_from_dict({"models": models}, source)


def test_the_new_models_are_the_catalogs_the_router_does_not_route(trained_router_dir):
    router = load_router(trained_router_dir)
    onboarding = Onboarding.from_catalog(catalog(router), router.models, rate=0.05)
    assert onboarding.names == ["newbie"]
    assert Onboarding.from_catalog(catalog_from_dict({"models": {m: {"input_price": 1, "output_price": 1}
                                                                   for m in router.models}}), router.models) is None
    assert onboarding.for_router([*router.models, "newbie"]) is None and onboarding.for_router(router.models) is onboarding


def test_priors_constant_like_a_known_model_and_nearest_in_price(trained_router_dir):
    router = load_router(trained_router_dir)
    proba = np.random.default_rng(0).uniform(size=(4, len(router.models)))
    constant = Onboarding.from_catalog(catalog(router, {"success": 0.7}), router.models)
    constant.prepare(router)
    assert np.allclose(constant.priors(proba), 0.7)
    like = Onboarding.from_catalog(catalog(router, {"like": router.models[1]}), router.models)
    like.prepare(router)
    assert np.allclose(like.priors(proba)[:, 0], proba[:, 1])
    nearest = Onboarding.from_catalog(catalog(router), router.models)
    nearest.prepare(router)  # like the router's model nearest in price: one of its columns
    assert any(np.allclose(nearest.priors(proba)[:, 0], proba[:, j]) for j in range(len(router.models)))


def test_a_prior_from_a_few_offline_evaluations(trained_router_dir, tmp_path):
    router = load_router(trained_router_dir)
    evals = tmp_path / "evals.csv"
    evals.write_text("prompt,score\nWhat is 2 + 2?,1\nAdd 3 and 4.,1\nProve Fermat's last theorem.,0\n"
                     "Prove the Riemann hypothesis.,0\n")
    onboarding = Onboarding.from_catalog(catalog(router, {"evaluations": "evals.csv"}, str(tmp_path / "c.yaml")),
                                         router.models)
    onboarding.prepare(router)
    X = router.embedder.encode(["What is 5 + 2?", "Prove the four colour theorem."])
    easy, hard = onboarding.priors(np.zeros((2, len(router.models))), X)[:, 0]
    assert 0 < hard < easy < 1  # near the evaluated sums, above the proofs; shrunk toward their mean
    with pytest.raises(CatalogError, match="evaluations: .*not found"):
        catalog(router, {"evaluations": "missing.csv"}, str(tmp_path / "c.yaml"))
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,score\nhello,1.5\n")
    with pytest.raises(CatalogError, match="row 1: field 'score'"):
        read_evaluations(bad)


def test_shares_are_capped_and_aimed_where_the_prior_pays(trained_router_dir):
    router = load_router(trained_router_dir)
    onboarding = Onboarding.from_catalog(catalog(router, {"success": 0.9}), router.models, rate=0.1)
    priors = np.array([[0.9], [0.9], [0.9]])
    costs = np.array([[1e-4], [1e-4], [1e-4]])
    chosen = np.array([0.0, 0.88, 10.0])  # the chosen model's utility: far below, close, far above
    shares = onboarding.shares(priors, costs, chosen, np.zeros(3), 1e-3)[:, 0]
    assert shares[0] == pytest.approx(0.1 * (2 - 0.3)) and shares[2] == pytest.approx(0.1 * 0.3)
    assert shares[2] < shares[1] < shares[0]


def test_bad_priors_are_named(trained_router_dir):
    router = load_router(trained_router_dir)
    with pytest.raises(CatalogError, match="prior: expected one of"):
        catalog(router, {"maybe": 1})
    with pytest.raises(CatalogError, match=r"prior.success: expected a probability"):
        catalog(router, {"success": 2})
    with pytest.raises(CatalogError, match="prior.like: 'nobody' is not a model"):
        catalog(router, {"like": "nobody"})
    with pytest.raises(ConfigError, match="onboarding rate"):
        Onboarding.from_catalog(catalog(router), router.models, rate=0.5)
