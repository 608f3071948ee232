"""Shared fixtures (small synthetic outcomes, fast trained routers, a fake upstream) and the
tiers: each test is marked with its folder's layer (core, policy, serve, integrations, training,
e2e), and
every e2e test is also `slow`.

    pytest -m "not slow"        the fast tier: units and in-process tests, no real embedding model,
                                no server processes, no real data sets (what .ci/run runs first)
    pytest -m serve             one layer
    pytest                      everything

Helpers that are not fixtures live in tests/support/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TESTS = Path(__file__).resolve().parent
LAYERS = ("core", "policy", "serve", "integrations", "training", "e2e")


ORDER = ("architecture", *LAYERS)  # cheapest and most basic first: a broken core fails in seconds


def _layer(item) -> str:
    parts = Path(str(item.fspath)).resolve().relative_to(TESTS).parts
    return parts[0] if len(parts) > 1 and parts[0] in LAYERS else "architecture"


def pytest_collection_modifyitems(config, items):
    for item in items:
        layer = _layer(item)
        item.add_marker(getattr(pytest.mark, layer))
        if layer == "e2e":
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: ORDER.index(_layer(item)))  # stable: file order kept within a layer


_AT_START = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}


@pytest.fixture(autouse=True)
def _no_tracking_uri_leaks():
    """`mlflow.set_tracking_uri` also writes MLFLOW_TRACKING_URI into os.environ: without this, an
    in-process training test (or session fixture) would send every later subprocess (a CLI, a
    server) to its store. After each test they are put back as they were when the run started."""
    yield
    for name, value in _AT_START.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory) -> dict[str, Path]:
    """A small synthetic outcomes log (300 prompts x 5 models) and its catalog."""
    from router_ml.training.data.demo import write_demo

    return write_demo(tmp_path_factory.mktemp("demo"), n_prompts=300, seed=3)


@pytest.fixture(scope="session")
def trained_router_dir(tmp_path_factory, demo_files) -> Path:
    """A router trained with the hashing embedder (fast, deterministic), no MLflow."""
    from router_ml.training.fit.pipeline import TrainConfig, train

    out = tmp_path_factory.mktemp("routers") / "hashing"
    config = TrainConfig(
        outcomes=str(demo_files["outcomes"]), catalog=str(demo_files["catalog"]), out=str(out),
        embedder_kind="hashing", folds=3, mlflow=False, cache_dir=str(tmp_path_factory.mktemp("cache")),
        router_version="test-router-1",
    )
    train(config, log=lambda _: None, progress=False)
    return out


@pytest.fixture(scope="session")
def answered_router_dir(tmp_path_factory) -> Path:
    """A router trained on a larger synthetic log with answers (enough to plan learned cascades)."""
    from router_ml.training.data.demo import write_demo
    from router_ml.training.fit.pipeline import TrainConfig, train

    base = tmp_path_factory.mktemp("answered")
    files = write_demo(base / "demo", n_prompts=600, seed=5)  # the holdout: <router>/../demo/holdout.csv
    out = base / "router"
    train(TrainConfig(outcomes=str(files["outcomes"]), test_outcomes=str(files["holdout"]), catalog=str(files["catalog"]),
                      out=str(out), embedder_kind="hashing", folds=3, mlflow=False, baselines=(),
                      cache_dir=str(tmp_path_factory.mktemp("cache")), router_version="answered-1"),
          log=lambda _: None, progress=False)
    return out


@pytest.fixture(scope="module")
def fake():
    """An OpenAI-compatible fake upstream on localhost (tests/support/fake_upstream.py), one per test module."""
    from tests.support.fake_upstream import FakeUpstream

    server = FakeUpstream(slow_s=2.0)
    yield server
    server.close()
