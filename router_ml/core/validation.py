"""The small checks every layer applies to user-supplied numbers, in one copy each.

Each raises the error class its caller names (a `ConfigError` by default, a
`PolicyError` for policy files, a `CatalogError` for catalogs) with a message that
quotes `where` and the value found. Booleans are not numbers here: `true` as a quality
target is a mistake, not 1.0.
"""

from __future__ import annotations

import math

import numpy as np

from router_ml.errors import ConfigError


def is_number(value) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))


def check_number(value, where: str, *, integer: bool = False, positive: bool = False, error=ConfigError,
                 unit: str = ""):
    """A finite number >= 0 (> 0 with `positive`; whole with `integer`), or `error`."""
    kind = "a whole number" if integer else "a number"
    if not is_number(value):
        raise error(f"{where}: expected {kind}{unit}, found {value!r}")
    if not math.isfinite(value) or (integer and int(value) != value):
        raise error(f"{where}: expected {kind if integer else 'a finite number'}{unit}, found {value!r}")
    if value < 0 or (positive and value == 0):
        raise error(f"{where}: expected {kind} {'> 0' if positive else '>= 0'}{unit}, found {value!r}")
    return int(value) if integer else float(value)


def check_share(value, where: str, *, error=ConfigError) -> float:
    """A number in [0, 1] (a quality target, a rate, a score), or `error`."""
    if not is_number(value) or math.isnan(value) or not 0.0 <= value <= 1.0:
        raise error(f"{where}: expected a number in [0, 1], found {value!r}")
    return float(value)


def check_quality_target(value, where: str = "quality_target", *, error=ConfigError) -> float:
    return check_share(value, where, error=error)
