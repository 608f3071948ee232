"""The training prompts a router carries (router_ml.core.neighbours): novelty, explanations."""

import json

import numpy as np
import pytest

from router_ml import load_router
from router_ml.core.artifact import MANIFEST_FILE
from router_ml.core.neighbours import NEIGHBOURS_FILE, TrainingNeighbours, raw_novelty
from router_ml.errors import ArtifactIntegrityError


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_raw_novelty_is_one_minus_the_mean_similarity_of_the_k_nearest():
    train = unit([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    x = unit([[1, 0, 0]])
    expected = 1 - (1.0 + np.sqrt(0.5)) / 2  # itself and [1, 1, 0]
    assert raw_novelty(x, train, k=2)[0] == pytest.approx(expected, abs=1e-6)
    loo = raw_novelty(train, train, k=1, exclude_self=True)
    assert loo[0] == pytest.approx(1 - np.sqrt(0.5), abs=1e-6)  # its best match other than itself


def test_novelty_is_calibrated_on_held_out_folds():
    rng = np.random.default_rng(0)
    centres = unit(rng.normal(size=(5, 16)))
    X = unit(centres[rng.integers(0, 5, 400)] + rng.normal(0, 0.15, (400, 16)))
    arrays = TrainingNeighbours.arrays(X, np.zeros((400, 2)), [f"p{i}" for i in range(400)], np.arange(400) % 5)
    stored = TrainingNeighbours(arrays, ["a", "b"])
    typical = unit(centres[rng.integers(0, 5, 200)] + rng.normal(0, 0.15, (200, 16)))
    strange = unit(rng.normal(size=(50, 16)))
    assert 0.3 < np.median(stored.novelty(typical)) < 0.7  # like the held-out folds
    assert (stored.novelty(strange) > 0.99).mean() > 0.9
    assert stored.prompt(7) == "p7" and len(stored.nearest(X[7], 3)) == 3


def test_novelty_against_a_sample_of_the_training_prompts_stays_calibrated(monkeypatch):
    import router_ml.core.neighbours as neighbours

    monkeypatch.setattr(neighbours, "NOVELTY_ROWS", 100)
    rng = np.random.default_rng(1)
    centres = unit(rng.normal(size=(5, 16)))
    X = unit(centres[rng.integers(0, 5, 400)] + rng.normal(0, 0.15, (400, 16)))
    arrays = TrainingNeighbours.arrays(X, np.zeros((400, 2)), [f"p{i}" for i in range(400)], np.arange(400) % 5)
    stored = TrainingNeighbours(arrays, ["a", "b"])
    assert stored.novelty_X.shape == (100, 16) and len(stored.X) == 400  # explanations still see every prompt
    typical = unit(centres[rng.integers(0, 5, 300)] + rng.normal(0, 0.15, (300, 16)))
    assert 0.3 < np.median(stored.novelty(typical)) < 0.7
    assert (stored.novelty(unit(rng.normal(size=(50, 16)))) > 0.99).mean() > 0.9
    older = {k: v for k, v in arrays.items() if k != "novelty_rows"}  # written before the sample: all rows
    assert TrainingNeighbours(older, ["a", "b"]).novelty_X.shape == (400, 16)
    with pytest.raises(ValueError, match="novelty_rows"):
        TrainingNeighbours({**arrays, "novelty_rows": np.array([400])}, ["a", "b"])


def test_router_decisions_carry_novelty_and_explain_shows_the_nearest_training_prompts(trained_router_dir):
    router = load_router(trained_router_dir)
    training = [p for p in map(router.neighbours.prompt, range(60)) if len(p) < 200]  # stored whole
    seen = training[0]
    familiar = [d.novelty for d in router.route_batch(training)]
    strange = router.route("qwxz vbnm plokij uhygt rfed wsaq zxcv").novelty
    assert np.mean(familiar) < 0.5 < 0.95 < strange
    explanation = router.explain(seen, k=3)
    nearest = explanation.neighbours[0]
    assert nearest.similarity == pytest.approx(1.0, abs=1e-3) and nearest.prompt == seen
    assert set(nearest.outcomes) == set(router.models)
    assert [e["model"] for e in explanation.estimates] == router.models
    assert explanation.decision.model == router.route(seen).model
    text = explanation.render()
    assert explanation.decision.model in text and "similarity 1.00" in text and "novelty" in text


def test_a_router_without_its_training_prompts(demo_files, tmp_path):
    from router_ml.training.fit.pipeline import TrainConfig, train

    out = tmp_path / "private"
    train(TrainConfig(outcomes=str(demo_files["outcomes"]), catalog=str(demo_files["catalog"]), out=str(out),
                      embedder_kind="hashing", folds=2, mlflow=False, baselines=(), neighbours=False,
                      cache_dir=str(tmp_path / "cache")), log=lambda _: None, progress=False)
    assert not (out / NEIGHBOURS_FILE).exists()
    router = load_router(out)
    assert router.route("What is 2 + 2?").novelty is None
    assert "carries no training prompts" in router.explain("What is 2 + 2?").render()


def test_the_neighbours_file_is_covered_by_the_integrity_check(trained_router_dir, tmp_path):
    import shutil

    path = tmp_path / "copy"
    shutil.copytree(trained_router_dir, path)
    assert NEIGHBOURS_FILE in json.loads((path / MANIFEST_FILE).read_text())["files"]
    with open(path / NEIGHBOURS_FILE, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ArtifactIntegrityError, match=NEIGHBOURS_FILE):
        load_router(path)
