"""The e2e layer's shared set-up: one `make demo` per session (tests/support/demo_setup.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.demo_setup import make_demo


@pytest.fixture(scope="session")
def demo_setup(tmp_path_factory) -> Path:
    """A copy of the repository after `make demo`; copy it again before changing anything in it."""
    return make_demo(tmp_path_factory.mktemp("docs") / "demo")
