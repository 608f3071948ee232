"""Shared fixtures: small synthetic outcomes, a fast trained router, the real data sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path in ../shared/data, or a clean skip when the data is not beside the checkout."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available at {path} (it sits in ../shared/data beside the checkout)")
    return path


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory) -> dict[str, Path]:
    """A small synthetic outcomes log (300 prompts x 5 models) and its catalog."""
    from training.demo_data import write_demo

    return write_demo(tmp_path_factory.mktemp("demo"), n_prompts=300, seed=3)


@pytest.fixture(scope="session")
def trained_router_dir(tmp_path_factory, demo_files) -> Path:
    """A router trained with the hashing embedder (fast, deterministic), no MLflow."""
    from training.pipeline import TrainConfig, train

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
    from training.demo_data import write_demo
    from training.pipeline import TrainConfig, train

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
    """An OpenAI-compatible fake upstream on localhost (tests/fake_upstream.py), one per test module."""
    from tests.fake_upstream import FakeUpstream

    server = FakeUpstream(slow_s=2.0)
    yield server
    server.close()
