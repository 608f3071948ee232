"""The gateway: an OpenAI-compatible chat completion, routed and executed.

`POST /v1/chat/completions` (router_ml.serve.app) hands the request body to `Gateway.handle`:

1. The router reads what the human asked: the last user turn and a bounded window of
   earlier user turns (router_ml.policy.conversation), not system prompts, tool schemas or
   tool results; the rules' token conditions count the whole request. A request whose last
   message is a tool result goes back to the model that made the tool call, and with a
   session key later turns of a conversation never go to a weaker model than an earlier
   turn used (router_ml.serve.sessions). `model` "auto" (or "router", or absent) lets
   the policy decide; a catalog alias means what the operator wrote (a model, or routing
   at a target and/or among models no dearer than one, router_ml.core.catalog.Alias); a
   catalog model name forces that model; any other name is 404 `model_not_found`.
   `metadata` (and `user`) feed the rules; an optional `router: {"quality_target": x}`
   sets the knob.
2. The service plans it (rules, router, cascade: router_ml.policy.cascade) and the steps
   run: each step calls its model through `Upstreams.call` (upstreams.py), which applies
   the fallbacks.
3. The provider's response goes back with headers naming the model that answered, the
   router version, the reason, the rules that fired, the fallbacks taken and the
   request id; the audit log gets one row per request with every step and attempt (and
   the session, with why the turn kept its model); /metrics counts every call per model
   (errors by kind, latency, tokens, cost) and every cascade step by outcome.

Streaming (`"stream": true`) passes the provider's server-sent events through as they
arrive (relay.py). Fallback is possible until the first bytes arrive; a stream that
drops later ends with an error event and is recorded as interrupted. A cascade's
response check needs the whole response, so streaming requests use only the cascade's
confidence skips: the first step left is streamed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from router_ml.core.catalog import ROUTING_NAMES, estimate_tokens
from router_ml.core.validation import check_quality_target
from router_ml.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    RequestTooLargeError,
    UpstreamError,
    UpstreamRejectedError,
)
from router_ml.policy.cascade import make_judge, run_cascade
from router_ml.policy.conversation import ConversationSettings, SessionSettings, routing_text, tool_call_ids
from router_ml.serve.api_errors import error_body
from router_ml.serve.gateway.relay import Relay
from router_ml.serve.gateway.upstreams import FORWARDED_FIELDS, GATEWAY_FIELDS, Answer, Upstreams
from router_ml.serve.limits import Limits, json_depth
from router_ml.serve.metrics import Metrics
from router_ml.serve.record import Served
from router_ml.serve.sessions import Conversations

log = logging.getLogger("router_ml.serve")

AUTO_MODELS = {"", *ROUTING_NAMES}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict | None = None
    stream: Iterator[bytes] | None = None


class Gateway:
    """Routes and executes chat completions for a RoutingService."""

    def __init__(self, service, upstreams: Upstreams, limits: Limits | None = None,
                 conversations: Conversations | None = None) -> None:
        self.service = service
        self.upstreams = upstreams
        self.limits = limits or service.limits
        policy = service.policy
        self.conversations = conversations or Conversations(
            policy.conversation if policy is not None else ConversationSettings(),
            policy.sessions if policy is not None else SessionSettings(),
            lookup=service.audit.session_models if service.audit is not None else None)
        service.reload_checks.append(self._covers)
        service.extra_models |= set(upstreams.endpoints)

    def _covers(self, router) -> list[str]:
        missing = sorted(set(router.models) - set(self.upstreams.endpoints))
        return [f"the catalog has no endpoint for its models {missing}"] if missing else []

    def handle(self, body: dict, headers: Mapping[str, str] | None = None) -> Reply:
        """Answer one chat completion request (`headers`: the request's, for a session key)."""
        messages, metadata, target, model_name, stream, user = self._parse(body)
        started = time.perf_counter()
        routed = routing_text(messages, self.conversations.conversation)
        forced, alias_target, restrict = self._resolve(model_name, routed.request_chars)
        chat = self.conversations.plan(self.service, messages, quality_target=target if target is not None else alias_target,
                                       metadata=metadata, headers=headers, user=user, force=forced, restrict=restrict,
                                       callable_models=self.upstreams.endpoints, routed=routed, count=False)
        router, prompt, plan = chat.router, chat.prompt, chat.plan
        metrics: Metrics = self.service.metrics
        cascade = self.service.policy.cascade if self.service.policy is not None else None
        if stream and plan.thresholds and plan.decision is not None:  # a learned cascade needs the whole answer
            plan.steps = [plan.decision.model]
            plan.thresholds = ()
            plan.notes.append("streamed: the router's choice, single-shot (a learned cascade reads the whole answer)")
        reason = plan.reason()
        [served] = self.service.assign(router, [prompt], [plan])  # exploration may send it elsewhere
        served.reason = served.reason if served.exploration else reason
        check = None if stream else make_judge(plan, cascade, prompt, self.service.verifier(router),
                                               request=request_context(body))
        served.session, served.session_note = chat.session, chat.session_note
        if plan.guarded:
            metrics.novelty_guarded.inc()
        if chat.action != "none":
            metrics.session_turns.labels(chat.action).inc()
        allowed = plan.rules.allowed

        def call(model: str) -> Answer:
            try:
                answer = self.upstreams.call(model, body, stream, allowed=allowed, first=model == plan.steps[0])
            except (UpstreamError, UpstreamRejectedError) as exc:
                observe_calls(metrics, exc.attempts)
                raise
            observe_calls(metrics, answer.attempts, answer)
            return answer

        try:
            answer, steps, spent = run_cascade(plan, cascade, call, check)
        except UpstreamRejectedError as exc:
            self.service.metrics.count_attempts(exc.attempts)
            self._audit(prompt, served, metadata, started, fallback="client_error",
                        steps=[{"model": plan.model, "outcome": "rejected", "attempts": exc.attempts}])
            return Reply(exc.status, self._headers(served), body=exc.body)
        except UpstreamError as exc:
            for attempts in [step.attempts for step in exc.steps] if exc.steps else [exc.attempts]:
                self.service.metrics.count_attempts(attempts)
            self._audit(prompt, served, metadata, started, fallback=_join(plan.fallback, "all_failed"),
                        steps=[s.to_dict() for s in exc.steps])
            observe_steps(metrics, exc.steps, returned=None)
            metrics.fallbacks.labels("all_failed").inc()
            attempts = exc.attempts or [a for step in exc.steps for a in (step.attempts or [])]
            failed = [a for a in attempts if "error" in a and not a["error"].startswith("cooling down")]
            if failed and all(a.get("status") == 429 for a in failed):
                # Every model is rate limited: say so, and when to come back (the longest wait asked for).
                after = max(a.get("retry_after") or 1.0 for a in failed)
                return Reply(429, {**self._headers(served), "retry-after": str(max(1, round(after))),
                                   "x-should-retry": "true"},
                             body=error_body(429, "rate_limited", f"every model is rate limited upstream: {exc}"))
            if failed and all(a.get("kind") == "auth" for a in failed):
                log.warning("every provider refused the gateway's credentials: %s", exc)
                return Reply(502, {**self._headers(served), "x-should-retry": "false"},
                             body=error_body(502, "upstream_auth_failed", "the providers refused the gateway's own "
                                             f"credentials (the operator's keys, not yours): {exc}"))
            return Reply(502, {**self._headers(served), "x-should-retry": "false"},
                         body=error_body(502, "upstream_failed", f"every model failed, each already retried: {exc}"))
        records = [s.to_dict() for s in steps]
        for step in steps:
            self.service.metrics.count_attempts(step.attempts)
        for step in steps[:-1]:
            if step.outcome == "check_failed":
                metrics.escalations.labels(step.check or "check").inc()
        observe_steps(metrics, steps, returned=answer)
        if any(a.get("kind") == "auth" for r in records for a in r.get("attempts") or ()):
            log.warning("a provider refused the gateway's credentials (answered by a fallback): %s",
                        _fallback_summary(records))
        upstream = _fallback_summary(records)
        if upstream:
            metrics.fallbacks.labels("upstream").inc()
        served.model = answer.model
        served.fallback = _join(plan.fallback, upstream)
        headers = self._headers(served)
        metrics.routes.labels(answer.model).inc()
        if answer.stream is None:
            self._audit(prompt, served, metadata, started, steps=records, cost=spent)
            self.conversations.remember(chat, answer.model, _tool_calls(answer.data))
            return Reply(200, headers, body=answer.data)
        fallback = served.fallback
        self.conversations.remember(chat, answer.model)

        def audit_stream(interrupted: str | None) -> None:
            extra = [{"model": answer.model, "outcome": "stream_interrupted", "detail": interrupted}] if interrupted else []
            self._audit(prompt, served, metadata, started, steps=records + extra,
                        fallback=_join(fallback, "stream_interrupted" if interrupted else None))

        return Reply(200, headers, stream=Relay(answer, audit_stream))

    def _audit(self, prompt: str, served: Served, metadata: dict, started: float, *, steps: list[dict],
               fallback: str | None = None, cost: float | None = None) -> None:
        if fallback is not None:
            served.fallback = fallback
        served.steps, served.cost = steps, cost
        served.latency_ms = round(1000 * (time.perf_counter() - started), 2)
        self.service.record(prompt, served, metadata)

    def _headers(self, served: Served) -> dict[str, str]:
        headers = {"x-request-id": served.request_id, "x-router-request-id": served.request_id,
                   "x-router-model": served.model,
                   "x-router-version": served.router_version, "x-router-reason": _header(served.reason)}
        if served.rule:
            headers["x-router-rule"] = _header(served.rule)
        if served.fallback:
            headers["x-router-fallback"] = _header(served.fallback)
        return headers

    def _parse(self, body: dict):
        """The request's messages, metadata, quality target, model name, stream flag and user,
        checked against the limits; InvalidRequestError / RequestTooLargeError naming the field."""
        if not isinstance(body, dict):
            raise InvalidRequestError("expected a JSON object with messages", "body")
        unknown = sorted(set(body) - FORWARDED_FIELDS - GATEWAY_FIELDS)
        if unknown:
            raise InvalidRequestError(f"unknown or unsupported field {unknown[0]!r}: the gateway passes only the "
                                      "OpenAI chat-completion fields it knows (README, the gateway)", unknown[0])
        limits = self.limits
        if json_depth(body, limits.max_json_depth) > limits.max_json_depth:
            raise RequestTooLargeError(f"the request is nested deeper than {limits.max_json_depth} levels", "body",
                                       "json_too_deep")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequestError("expected a non-empty list of messages", "messages")
        if len(messages) > limits.max_messages:
            raise RequestTooLargeError(f"{len(messages):,} messages is over the limit of {limits.max_messages:,}",
                                       "messages", "too_many_messages")
        tools = body.get("tools")
        if isinstance(tools, list) and len(tools) > limits.max_tools:
            raise RequestTooLargeError(f"{len(tools):,} tools is over the limit of {limits.max_tools:,}", "tools",
                                       "too_many_tools")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise InvalidRequestError("expected an object with a role and content", f"messages[{i}]")
            if not isinstance(m.get("content"), (str, list)) and m.get("content") is not None:
                raise InvalidRequestError("expected a string or a list of content parts", f"messages[{i}].content")
        model = body.get("model") or ""
        if not isinstance(model, str):
            raise InvalidRequestError("expected a model name or \"auto\"", "model")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise InvalidRequestError("expected an object of key: value", "metadata")
        user = body.get("user") if isinstance(body.get("user"), str) else None
        if user is not None:
            metadata = {**metadata, "user": user}
        options = body.get("router") or {}
        target = options.get("quality_target") if isinstance(options, dict) else None
        if target is not None:
            target = check_quality_target(target, "router.quality_target",
                                          error=lambda message: InvalidRequestError(message, "router.quality_target"))
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise InvalidRequestError("expected true or false", "stream")
        return messages, metadata, target, model, stream, user

    def _resolve(self, model: str, request_chars: int) -> tuple[str | None, float | None, tuple | None]:
        """A requested model name as (forced model, quality target, restriction), or ModelNotFoundError;
        `request_chars`: the request's size, which an alias's price cap is checked at."""
        catalog = self.upstreams.catalog
        if model in AUTO_MODELS:
            return None, None, None
        alias = catalog.aliases.get(model)
        if alias is not None:
            if alias.model is not None:
                return alias.model, None, None
            restrict = None
            if alias.up_to is not None:
                tokens = float(estimate_tokens(max(1, request_chars), catalog.chars_per_token))
                cap = catalog.call_cost(alias.up_to, tokens)
                allowed = tuple(m for m in self.service.router.models
                                if m in catalog.models and catalog.call_cost(m, tokens) <= cap * (1 + 1e-9))
                restrict = (f"alias {model}: no dearer than {alias.up_to}", allowed)
            return None, alias.quality_target, restrict
        if model in self.service.router.models or model in self.upstreams.endpoints:
            return model, None, None
        known = [*ROUTING_NAMES, *catalog.aliases, *self.service.router.models]
        raise ModelNotFoundError(f"the model {model!r} does not exist here; use one of {known} (GET /v1/models)")


def request_context(body: dict) -> dict:
    """What the request says a valid answer looks like: its tools' argument schemas and its
    structured-output schema (router_ml.policy.checks.structure_verdict)."""
    schemas = {}
    for tool in body.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            parameters = function.get("parameters")
            schemas[function["name"]] = parameters if isinstance(parameters, dict) else None
    response_schema = None
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_object":
            response_schema = {"type": "object"}
        elif fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), dict):
            schema = fmt["json_schema"].get("schema")
            response_schema = schema if isinstance(schema, dict) else {}
    return {"tool_schemas": schemas or None, "response_schema": response_schema}


def observe_calls(metrics: Metrics, attempts: list[dict] | None, answer: Answer | None = None) -> None:
    """Count each call to a model's endpoint (errors by kind, latency), and the tokens and cost
    of the call that answered (router_upstream_*)."""
    for a in attempts or ():
        if "ms" not in a:
            continue  # skipped (cooling down): no call made
        metrics.upstream_requests.labels(a["model"]).inc()
        metrics.upstream_latency.labels(a["model"]).observe(a["ms"] / 1000)
        if "error" in a or a.get("status", 200) >= 400:
            metrics.upstream_errors.labels(a["model"], a.get("kind", "server_error")).inc()
    if answer is None:
        return
    usage = (answer.data or {}).get("usage") if isinstance(answer.data, dict) else None
    if isinstance(usage, dict):
        for kind in ("prompt", "completion"):
            tokens = usage.get(f"{kind}_tokens")
            if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
                metrics.upstream_tokens.labels(answer.model, kind).inc(tokens)
    if answer.stream is None and answer.cost:
        metrics.upstream_cost.labels(answer.model).inc(answer.cost)


def observe_steps(metrics: Metrics, steps, returned) -> None:
    """Count each cascade step by its outcome; a last step whose answer failed its check and
    was returned anyway counts as `returned_unverified`, an earlier one as `escalated`."""
    for step in steps:
        outcome = step.outcome
        if outcome == "check_failed":
            outcome = "returned_unverified" if step is steps[-1] and returned is not None else "escalated"
        metrics.cascade_steps.labels(step.model, outcome).inc()


def _tool_calls(data) -> tuple[str, ...]:
    """The tool-call ids of every choice of a chat completion."""
    if not isinstance(data, dict):
        return ()
    return tuple(i for choice in data.get("choices") or () if isinstance(choice, dict)
                 for i in tool_call_ids(choice.get("message")))


def _join(*parts: str | None) -> str | None:
    return "; ".join(p for p in parts if p) or None


def _fallback_summary(records: list[dict]) -> str | None:
    """What went wrong on the way, e.g. "big: HTTP 500 x2; big -> backup", or None."""
    parts = []
    for step in records:
        errors: dict[str, int] = {}
        for a in step.get("attempts") or []:
            if "error" in a:
                key = f"{a['model']}: {a['error']}"
                errors[key] = errors.get(key, 0) + 1
        parts += [k if n == 1 else f"{k} x{n}" for k, n in errors.items()]
        if step.get("served_by") not in (None, step["model"]):
            parts.append(f"{step['model']} -> {step['served_by']}")
    return "; ".join(parts) or None


def _header(value: str, limit: int = 400) -> str:
    """A header-safe rendering: latin-1 only, one line, bounded."""
    text = " ".join(str(value).split())
    text = text.encode("latin-1", "replace").decode("latin-1")
    return text if len(text) <= limit else text[: limit - 3] + "..."
