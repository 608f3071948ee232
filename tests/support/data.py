"""The real public data sets in ../shared/data beside the checkout, or a clean skip without them."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path in ../shared/data, or a clean skip when the data is not beside the checkout."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available at {path} (it sits in ../shared/data beside the checkout)")
    return path
