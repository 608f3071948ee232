"""Response checks: is this answer good enough to return, or should a cascade escalate?

    check: {json: true}                    # the answer parses as JSON
    check: {regex: "^ANSWER: "}            # the pattern is found in the answer
    check: {min_chars: 1}                  # or max_chars
    check: {function: "mypkg.checks:ok"}   # any callable text -> bool

Each kind is one entry of `CHECKS` (kind -> builder of the test from the configured
value); a check that raises fails the response, never the request.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from router_ml.core.validation import check_number
from router_ml.errors import PolicyError


@dataclass(frozen=True)
class Check:
    """A response check: True means the response is good enough to return."""

    kind: str
    value: object
    fn: Callable[[str], bool]

    def __call__(self, text: str) -> bool:
        return bool(self.fn(text))

    def describe(self) -> str:
        return f"{self.kind}: {self.value}"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (TypeError, ValueError):
        return False
    return True


def compile_regex(pattern, where: str) -> re.Pattern:
    if not isinstance(pattern, str) or not pattern:
        raise PolicyError(f"{where}: expected a regular expression, found {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise PolicyError(f"{where}: bad regular expression {pattern!r}: {exc}") from exc


def _json_check(value, where: str) -> Callable[[str], bool]:
    if value is not True:
        raise PolicyError(f"{where}: check.json: expected true")
    return _is_json


def _regex_check(value, where: str) -> Callable[[str], bool]:
    pattern = compile_regex(value, f"{where}: check.regex")
    return lambda text: pattern.search(text) is not None


def _min_chars_check(value, where: str) -> Callable[[str], bool]:
    least = check_number(value, f"{where}: check.min_chars", integer=True, error=PolicyError)
    return lambda text: len(text) >= least


def _max_chars_check(value, where: str) -> Callable[[str], bool]:
    most = check_number(value, f"{where}: check.max_chars", integer=True, error=PolicyError)
    return lambda text: len(text) <= most


def _function_check(value, where: str) -> Callable[[str], bool]:
    if not isinstance(value, str) or ":" not in value:
        raise PolicyError(f"{where}: check.function: expected 'package.module:function', found {value!r}")
    module, _, attr = value.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise PolicyError(f"{where}: check.function: cannot import {value!r}: {exc}") from exc
    if not callable(fn):
        raise PolicyError(f"{where}: check.function: {value!r} is not callable")
    return fn


# kind -> builder(configured value, where) -> test(text) -> bool
CHECKS: dict[str, Callable[[object, str], Callable[[str], bool]]] = {
    "json": _json_check,
    "regex": _regex_check,
    "min_chars": _min_chars_check,
    "max_chars": _max_chars_check,
    "function": _function_check,
}


def make_check(spec: dict, where: str) -> Check:
    """A Check from its policy-file mapping (exactly one kind), or a PolicyError naming `where`."""
    keys = set(spec) - {"__line__"}
    if len(keys) != 1 or not keys <= set(CHECKS):
        raise PolicyError(f"{where}: check: expected exactly one of {sorted(CHECKS)}, found {sorted(keys) or 'none'}")
    kind = keys.pop()
    return Check(kind, spec[kind], CHECKS[kind](spec[kind], where))
