"""Response checks: is this answer good enough to return, or should a cascade escalate?

    check: {json: true}                    # the answer parses as JSON
    check: {json_schema: {type: object, required: [city]}}   # ... and matches a JSON schema
    check: {regex: "^ANSWER: "}            # the pattern is found in the answer
    check: {min_chars: 1}                  # or max_chars
    check: {no_refusal: true}              # the answer does not decline ("I can't help with that")
    check: {max_hedges: 2}                 # at most this many hedging words ("however", "assume", ...)
    check: {answer_format: "####"}         # a final-answer marker (a literal), or {regex: ...}
    check: {python_parses: true}           # there is fenced Python code and it parses
    check: {verifier: 0.6}                 # the router's learned verifier gives P(success) >= 0.6
    check: {function: "mypkg.checks:ok"}   # any callable text -> bool
    check: [{no_refusal: true}, {verifier: 0.5}]   # a list: every check must pass

Each kind is one entry of `CHECKS` (kind -> builder of the test from the configured
value); a check that raises fails the response, never the request. The verifier needs a
router trained with responses (router_ml.policy.verifier); it reads the prompt, the
answer, the router's estimate for the answering model and earlier answers of the
cascade, which is why checks take an `AnswerContext`.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from router_ml.core.validation import check_number, check_share
from router_ml.errors import PolicyError
from router_ml.policy.answers import code_parses, hedges, is_refusal


@dataclass(frozen=True)
class AnswerContext:
    """What a check may read about one answer."""

    text: str
    prompt: str = ""
    model: str = ""  # the model that answered
    estimate: float | None = None  # the router's prompt-only P(success) for that model
    earlier: tuple[tuple[str, str], ...] = ()  # (model, answer) of earlier steps of the cascade
    verifier: object = None  # the router's Verifier, when it has one
    tool_calls: tuple[tuple[str, str], ...] = ()  # (function name, arguments as sent) of a tool-call answer
    refusal: str | None = None  # the API's structured refusal, when the model declined that way
    tool_schemas: dict | None = None  # the request's tools: name -> JSON schema of the arguments
    response_schema: dict | None = None  # the request's structured-output schema (response_format)


def structure_verdict(ctx: AnswerContext) -> Verdict | None:
    """The verdict on what an answer is rather than what it says, or None for a plain text answer.

    A tool call is valid when every call names a declared tool (when tools were declared)
    and its arguments parse as JSON (and match the tool's schema when one was given); then
    content checks do not apply to it. A structured refusal fails. Structured output must
    parse and match the requested schema; then the content checks still apply.
    """
    if ctx.refusal:
        return Verdict(False, failed="refusal", detail=f"the model refused: {ctx.refusal[:120]}")
    if ctx.tool_calls:
        for name, arguments in ctx.tool_calls:
            schemas = ctx.tool_schemas or {}
            if schemas and name not in schemas:
                return Verdict(False, failed="tool_call", detail=f"call to an undeclared tool {name!r}")
            try:
                parsed = json.loads(arguments)
            except (TypeError, ValueError):
                return Verdict(False, failed="tool_call", detail=f"{name}: the arguments are not JSON")
            schema = schemas.get(name)
            if schema and not _matches(parsed, schema):
                return Verdict(False, failed="tool_call", detail=f"{name}: the arguments do not match the tool's schema")
        return Verdict(True, detail="a valid tool call")
    if ctx.response_schema is not None:
        try:
            parsed = json.loads(ctx.text)
        except (TypeError, ValueError):
            return Verdict(False, failed="response_format", detail="the structured output is not JSON")
        if not _matches(parsed, ctx.response_schema):
            return Verdict(False, failed="response_format", detail="the structured output does not match the schema")
    return None


def _matches(value, schema: dict) -> bool:
    import jsonschema

    try:
        validator = jsonschema.validators.validator_for(schema)(schema)
        return validator.is_valid(value)
    except jsonschema.SchemaError:
        return True  # the client's schema is not one we can check: the provider accepted it, so do we


@dataclass
class Verdict:
    passed: bool
    score: float | None = None  # the verifier's P(success), when it ran
    failed: str | None = None  # the kind of check that failed
    detail: str = ""


@dataclass(frozen=True)
class Check:
    """A response check: passes when the response is good enough to return."""

    kind: str
    value: object
    fn: Callable[[str], bool] | None  # text -> bool; None for the verifier and for lists
    parts: tuple[Check, ...] = ()  # kind "all": every part must pass

    def __call__(self, answer: str | AnswerContext) -> bool:
        return self.verdict(answer).passed

    def verdict(self, answer: str | AnswerContext) -> Verdict:
        ctx = AnswerContext(answer) if isinstance(answer, str) else answer
        structural = structure_verdict(ctx)
        if structural is not None and (not structural.passed or ctx.tool_calls):
            return structural  # a tool call is judged as one; content checks read content
        return self._content_verdict(ctx)

    def _content_verdict(self, ctx: AnswerContext) -> Verdict:
        if self.kind == "all":
            score = None
            for part in self.parts:
                verdict = part._content_verdict(ctx)
                score = verdict.score if verdict.score is not None else score
                if not verdict.passed:
                    return Verdict(False, score, verdict.failed, verdict.detail)
            return Verdict(True, score)
        if self.kind == "verifier":
            return _verifier_verdict(ctx, float(self.value))
        passed = bool(self.fn(ctx.text))
        return Verdict(passed, failed=None if passed else self.kind)

    @property
    def needs_verifier(self) -> bool:
        return self.kind == "verifier" or any(p.needs_verifier for p in self.parts)

    def describe(self) -> str:
        if self.kind == "all":
            return " and ".join(p.describe() for p in self.parts)
        return f"{self.kind}: {self.value}"


def _verifier_verdict(ctx: AnswerContext, threshold: float) -> Verdict:
    if ctx.verifier is None:
        raise PolicyError("check verifier: the router has no learned verifier (train it on outcomes with responses)")
    if ctx.estimate is None:
        return Verdict(True, detail=f"no router estimate for {ctx.model}: verifier not run")
    score = ctx.verifier.score(ctx.model, ctx.prompt, ctx.text, ctx.estimate, ctx.earlier)
    if score is None:
        return Verdict(True, detail=f"no verifier for {ctx.model}")
    return Verdict(score >= threshold, score, None if score >= threshold else "verifier",
                   f"verifier {score:.3f} {'>=' if score >= threshold else '<'} {threshold:g}")


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


def _true_only(kind: str, value, where: str) -> None:
    if value is not True:
        raise PolicyError(f"{where}: check.{kind}: expected true")


def _no_refusal_check(value, where: str) -> Callable[[str], bool]:
    _true_only("no_refusal", value, where)
    return lambda text: not is_refusal(text)


def _max_hedges_check(value, where: str) -> Callable[[str], bool]:
    most = check_number(value, f"{where}: check.max_hedges", integer=True, error=PolicyError)
    return lambda text: hedges(text) <= most


def _answer_format_check(value, where: str) -> Callable[[str], bool]:
    if isinstance(value, str) and value:
        return lambda text: value in text
    if isinstance(value, dict) and set(value) - {"__line__"} == {"regex"}:
        pattern = compile_regex(value["regex"], f"{where}: check.answer_format.regex")
        return lambda text: pattern.search(text) is not None
    raise PolicyError(f"{where}: check.answer_format: expected a marker such as \"####\" or {{regex: ...}}, "
                      f"found {value!r}")


def _python_parses_check(value, where: str) -> Callable[[str], bool]:
    _true_only("python_parses", value, where)
    return lambda text: code_parses(text) is True


def _json_schema_check(value, where: str) -> Callable[[str], bool]:
    import jsonschema

    schema = _strip_lines(value)
    if not isinstance(schema, dict):
        raise PolicyError(f"{where}: check.json_schema: expected a JSON schema (a mapping), found {value!r}")
    try:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise PolicyError(f"{where}: check.json_schema: not a valid JSON schema: {exc.message}") from exc
    validator = validator_class(schema)

    def matches(text: str) -> bool:
        try:
            data = json.loads(text)
        except (TypeError, ValueError):
            return False
        return validator.is_valid(data)

    return matches


def _strip_lines(value):
    """A policy mapping without the loader's __line__ keys (a JSON schema must not see them)."""
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def _verifier_check(value, where: str) -> None:
    check_share(value, f"{where}: check.verifier (the least P(success) to keep an answer)", error=PolicyError)
    return None


# kind -> builder(configured value, where) -> test(text) -> bool (None: the check reads more than the text)
CHECKS: dict[str, Callable[[object, str], Callable[[str], bool] | None]] = {
    "json": _json_check,
    "json_schema": _json_schema_check,
    "regex": _regex_check,
    "min_chars": _min_chars_check,
    "max_chars": _max_chars_check,
    "no_refusal": _no_refusal_check,
    "max_hedges": _max_hedges_check,
    "answer_format": _answer_format_check,
    "python_parses": _python_parses_check,
    "verifier": _verifier_check,
    "function": _function_check,
}


def make_check(spec: dict | list, where: str) -> Check:
    """A Check from its policy-file mapping (exactly one kind) or a list of them (all must pass),
    or a PolicyError naming `where`."""
    if isinstance(spec, list):
        if not spec:
            raise PolicyError(f"{where}: check: expected at least one check in the list")
        parts = tuple(make_check(item, where) for item in spec)
        return Check("all", [p.describe() for p in parts], None, parts)
    if not isinstance(spec, dict):
        raise PolicyError(f"{where}: check: expected a mapping such as {{json: true}} or a list of them")
    keys = set(spec) - {"__line__"}
    if len(keys) != 1 or not keys <= set(CHECKS):
        raise PolicyError(f"{where}: check: expected exactly one of {sorted(CHECKS)}, found {sorted(keys) or 'none'}")
    kind = keys.pop()
    return Check(kind, _strip_lines(spec[kind]), CHECKS[kind](spec[kind], where))
