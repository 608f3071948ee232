"""An OpenAI-compatible gateway: route a chat completion, call the chosen model, fall back.

`POST /v1/chat/completions` (router_ml.http) hands the request body to `Gateway.handle`:

1. The prompt is the text of the messages; `model` "auto" (or "router", or absent) lets
   the policy decide, a catalog model name forces that model; `metadata` (and `user`)
   feed the rules; an optional `router: {"quality_target": x}` sets the knob.
2. The service plans it (rules, router, cascade: router_ml.cascade) and the steps run:
   each step calls its model through `Upstreams.call`, which applies the fallbacks:
   retries, then the next model of the fallback chain, skipping models cooling down
   after recent failures. A timeout, a connection error, HTTP 429 or 5xx, or a body
   that is not a chat completion count as failures; any other 4xx is the request's
   fault and goes back to the client unchanged.
3. The provider's response goes back with headers naming the model that answered, the
   router version, the reason, the rules that fired, the fallbacks taken and the
   request id; the audit log gets one row per request with every step and attempt.

Streaming (`"stream": true`) passes the provider's server-sent events through as they
arrive. Fallback is possible until the first bytes arrive; a stream that drops later
ends with an error event (`data: {"error": ...}`) and is recorded as interrupted. A
cascade's response check needs the whole response, so streaming requests use only the
cascade's confidence skips: the first step left is streamed.

Upstream endpoints come from the catalog: `base_url` (may name environment variables
as `${VAR}`), `api_key_env` (the variable holding the key, sent as a bearer token) and
`upstream_model` (the provider's name for the model).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import httpx

from router_ml.audit import new_request_id
from router_ml.catalog import Catalog, estimate_tokens
from router_ml.cascade import run_cascade
from router_ml.errors import ConfigError, UpstreamError
from router_ml.rules import Fallbacks

AUTO_MODELS = {"", "auto", "router"}


class UpstreamClientError(Exception):
    """The provider rejected the request itself (4xx other than 429): passed through."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


@dataclass
class Answer:
    """One successful upstream call."""

    model: str  # the model that answered (after fallbacks)
    requested: str  # the model the cascade step asked for
    cost: float
    text: str = ""  # the assistant's message, for response checks
    data: dict | None = None  # the JSON body (non-streaming)
    stream: Iterator[bytes] | None = None  # the remaining bytes (streaming)
    response: httpx.Response | None = None  # the open upstream response (streaming), to close
    attempts: list[dict] = field(default_factory=list)


class Upstreams:
    """HTTP calls to the catalog's OpenAI-compatible endpoints, with retries, fallback
    chains and per-model cool-down."""

    def __init__(self, catalog: Catalog, fallbacks: Fallbacks, models: list[str], *, environ=None,
                 client: httpx.Client | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.catalog = catalog
        self.fallbacks = fallbacks
        self.endpoints: dict[str, tuple[str, dict, str]] = {}
        missing = []
        for name in dict.fromkeys([*models, *fallbacks.default, *(m for c in fallbacks.chains.values() for m in c)]):
            price = catalog.models.get(name)
            if price is None or not price.base_url:
                missing.append(name)
                continue
            url = _expand(price.base_url, environ, f"{catalog.source}: models.{name}.base_url").rstrip("/")
            headers = {}
            if price.api_key_env:
                key = environ.get(price.api_key_env)
                if not key:
                    raise ConfigError(f"{catalog.source}: models.{name}.api_key_env: environment variable "
                                      f"{price.api_key_env} is not set")
                headers["Authorization"] = f"Bearer {key}"
            self.endpoints[name] = (url + "/chat/completions", headers, price.upstream_model or name)
        if missing:
            raise ConfigError(f"{catalog.source}: no base_url for models {missing}; the gateway needs an "
                              "OpenAI-compatible endpoint for every model it may call (see data/README.md)")
        self.client = client or httpx.Client(timeout=httpx.Timeout(fallbacks.timeout_s),
                                             limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
        self._cooling: dict[str, float] = {}
        self._lock = threading.Lock()

    def cooling(self, model: str) -> bool:
        with self._lock:
            return self._cooling.get(model, 0.0) > time.monotonic()

    def _cool(self, model: str) -> None:
        if self.fallbacks.cooldown_s > 0:
            with self._lock:
                self._cooling[model] = time.monotonic() + self.fallbacks.cooldown_s

    def call(self, model: str, body: dict, stream: bool = False, *, allowed=None, first: bool = True) -> Answer:
        """Call `model`, retrying and falling back along its chain (within `allowed`, the models
        the rules left); UpstreamError if all fail. A 4xx other than 429 on the request's very
        first attempt (`first`) is the request's fault: UpstreamClientError, passed through."""
        chain = [m for m in self.fallbacks.chain_for(model) if m == model or allowed is None or m in allowed]
        attempts: list[dict] = []
        for i, name in enumerate(chain):
            if self.cooling(name) and any(not self.cooling(m) for m in chain[i + 1:]):
                attempts.append({"model": name, "error": "cooling down after recent failures"})
                continue  # a model further down the chain is available: skip this one for now
            for attempt in range(self.fallbacks.retries + 1):
                started = time.perf_counter()
                try:
                    answer = self._once(name, body, stream, may_reject=first and not attempts)
                except UpstreamClientError as exc:
                    exc.attempts = attempts + [{"model": name, "attempt": attempt + 1, "status": exc.response.status_code}]
                    raise
                except _Failed as exc:
                    attempts.append({"model": name, "attempt": attempt + 1, "error": str(exc),
                                     "ms": round(1000 * (time.perf_counter() - started), 1)})
                    continue
                attempts.append({"model": name, "attempt": attempt + 1, "status": 200,
                                 "ms": round(1000 * (time.perf_counter() - started), 1)})
                answer.requested, answer.attempts = model, attempts
                return answer
            self._cool(name)
        error = UpstreamError("; ".join(f"{a['model']}: {a['error']}" for a in attempts if "error" in a))
        error.attempts = attempts
        raise error

    def _once(self, model: str, body: dict, stream: bool, may_reject: bool) -> Answer:
        url, headers, upstream_model = self.endpoints[model]
        payload = {**{k: v for k, v in body.items() if k not in ("metadata", "router")}, "model": upstream_model,
                   "stream": stream}
        try:
            request = self.client.build_request("POST", url, json=payload, headers=headers)
            response = self.client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise _Failed(f"timeout after {self.fallbacks.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise _Failed(f"connection error: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            if stream:
                response.close()
            raise _Failed(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            if stream:
                response.read()
            if may_reject:
                raise UpstreamClientError(response)
            # Later in the chain a 4xx says this model cannot take the request (context length,
            # a bad key): another model may.
            raise _Failed(f"HTTP {response.status_code}")
        if stream:
            return self._open_stream(model, response)
        try:
            data = response.json()
            text = _text_of(data["choices"][0]["message"]["content"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _Failed("malformed response: not a chat completion") from exc
        return Answer(model, model, self._cost(model, body, data.get("usage"), text), text, data=data)

    def _open_stream(self, model: str, response: httpx.Response) -> Answer:
        chunks = response.iter_bytes()  # decoded: the client gets no Content-Encoding from us
        try:
            first = next(chunks)  # fallback is still possible until the first bytes arrive
        except StopIteration as exc:
            response.close()
            raise _Failed("stream closed before any data") from exc
        except httpx.HTTPError as exc:
            response.close()
            raise _Failed(f"stream failed before any data: {type(exc).__name__}") from exc

        def rest() -> Iterator[bytes]:
            yield first
            yield from chunks

        return Answer(model, model, 0.0, stream=rest(), response=response)

    def _cost(self, model: str, body: dict, usage: dict | None, text: str) -> float:
        price = self.catalog.models[model]
        if usage and isinstance(usage.get("prompt_tokens"), int) and isinstance(usage.get("completion_tokens"), int):
            return (usage["prompt_tokens"] * price.input_price + usage["completion_tokens"] * price.output_price) / 1e6
        prompt_chars = sum(len(_text_of(m.get("content"))) for m in body.get("messages", []) if isinstance(m, dict))
        tokens_in = float(estimate_tokens(prompt_chars, self.catalog.chars_per_token))
        tokens_out = float(estimate_tokens(len(text), self.catalog.chars_per_token))
        return self.catalog.call_cost(model, tokens_in, tokens_out)

    def close(self) -> None:
        self.client.close()


class _Failed(Exception):
    """One attempt failed in a way another model might not (timeout, 5xx, 429, bad body)."""


def _expand(value: str, environ, where: str) -> str:
    def sub(match):
        name = match.group(1)
        if name not in environ:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return environ[name]

    return re.sub(r"\$\{(\w+)\}", sub, value)


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


class RequestError(ValueError):
    """The chat request is invalid; `field` names what."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict | None = None
    stream: Iterator[bytes] | None = None


class Relay:
    """A streamed answer on its way to the client: yields the provider's bytes, turns a
    drop into an error event, and on `close()` (the end, an error or the client gone,
    whichever comes first; idempotent) closes the upstream response and writes the audit
    row once."""

    def __init__(self, answer: Answer, on_close) -> None:
        self.answer = answer
        self._on_close = on_close
        self._interrupted: str | None = None
        self._done = False
        self._closed = False
        self._lock = threading.Lock()

    def __iter__(self) -> "Relay":
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        try:
            return next(self.answer.stream)
        except StopIteration:
            self._done = True
            raise
        except httpx.HTTPError as exc:
            self._done = True
            self._interrupted = f"stream interrupted: {type(exc).__name__}"
            event = {"error": {"type": "upstream_failed", "message": f"{self.answer.model}: {self._interrupted}"}}
            return f"data: {json.dumps(event)}\n\n".encode()

    def next_chunk(self) -> bytes | None:
        """The next bytes, or None at the end (for async callers)."""
        try:
            return next(self)
        except StopIteration:
            return None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if not self._done and self._interrupted is None:
            self._interrupted = "client disconnected before the end of the stream"
        if self.answer.response is not None:
            self.answer.response.close()
        self._on_close(self._interrupted)


class Gateway:
    """Routes and executes chat completions for a RoutingService."""

    def __init__(self, service, upstreams: Upstreams) -> None:
        self.service = service
        self.upstreams = upstreams
        service.reload_checks.append(self._covers)

    def _covers(self, router) -> list[str]:
        missing = sorted(set(router.models) - set(self.upstreams.endpoints))
        return [f"the catalog has no endpoint for its models {missing}"] if missing else []

    def handle(self, body: dict) -> Reply:
        prompt, metadata, target, forced, stream = self._parse(body)
        started = time.perf_counter()
        router, [plan] = self.service.plan([prompt], target, metadata, force=forced)
        cascade = self.service.policy.cascade if self.service.policy is not None else None
        check = None
        if cascade is not None and cascade.check is not None and not stream:
            check = lambda answer: cascade.check(answer.text)  # noqa: E731
        request_id = new_request_id()
        item = {"request_id": request_id, "router_version": router.version, "confidence": plan.confidence,
                "scores": plan.decision.scores if plan.decision else {}, "quality_target": plan.quality_target,
                "rule": plan.rules.rule, "exploration": False, "propensity": None, "reason": plan.reason()}
        allowed = plan.rules.allowed

        def call(model: str) -> Answer:
            return self.upstreams.call(model, body, stream, allowed=allowed, first=model == plan.steps[0])

        try:
            answer, steps, spent = run_cascade(plan, cascade, call, check)
        except UpstreamClientError as exc:
            attempts = getattr(exc, "attempts", [])
            self._audit(prompt, item, metadata, plan.model, "client_error",
                        [{"model": plan.model, "outcome": "rejected", "attempts": attempts}], started)
            return Reply(exc.response.status_code, self._headers(item, plan.model, None),
                         body=_json_or_error(exc.response))
        except UpstreamError as exc:
            steps = [s.to_dict() for s in getattr(exc, "steps", [])]
            self._audit(prompt, item, metadata, plan.model, _join(plan.fallback, "all_failed"), steps, started)
            self.service.metrics.fallbacks.labels("all_failed").inc()
            message = f"every model failed: {exc}"
            return Reply(502, self._headers(item, plan.model, "all_failed"),
                         body={"error": {"type": "upstream_failed", "message": message, "field": None}})
        records = [s.to_dict() for s in steps]
        upstream = _fallback_summary(records)
        if upstream:
            self.service.metrics.fallbacks.labels("upstream").inc()
        fallback = _join(plan.fallback, upstream)
        headers = self._headers(item, answer.model, fallback)
        self.service.metrics.routes.labels(answer.model).inc()
        if answer.stream is None:
            self._audit(prompt, item, metadata, answer.model, fallback, records, started, cost=spent)
            return Reply(200, headers, body=answer.data)

        def audit_stream(interrupted: str | None) -> None:
            extra = [{"model": answer.model, "outcome": "stream_interrupted", "detail": interrupted}] if interrupted else []
            self._audit(prompt, item, metadata, answer.model,
                        _join(fallback, "stream_interrupted" if interrupted else None), records + extra, started)

        return Reply(200, headers, stream=Relay(answer, audit_stream))

    def _audit(self, prompt, item, metadata, model, fallback, steps, started, cost=None) -> None:
        record = {**item, "model": model, "fallback": fallback,
                  "latency_ms": round(1000 * (time.perf_counter() - started), 2)}
        if cost is not None:
            metadata = {**(metadata or {}), "cost": cost}
        self.service.record(prompt, record, metadata, steps=steps)

    def _headers(self, item: dict, model: str, fallback: str | None) -> dict[str, str]:
        headers = {"x-router-request-id": item["request_id"], "x-router-model": model,
                   "x-router-version": item["router_version"], "x-router-reason": _header(item["reason"])}
        if item.get("rule"):
            headers["x-router-rule"] = _header(item["rule"])
        if fallback:
            headers["x-router-fallback"] = _header(fallback)
        return headers

    def _parse(self, body: dict):
        if not isinstance(body, dict):
            raise RequestError("expected a JSON object with messages", "body")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError("expected a non-empty list of messages", "messages")
        texts = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise RequestError("expected an object with a role and content", f"messages[{i}]")
            if not isinstance(m.get("content"), (str, list)) and m.get("content") is not None:
                raise RequestError("expected a string or a list of content parts", f"messages[{i}].content")
            texts.append(_text_of(m.get("content")))
        prompt = "\n\n".join(t for t in texts if t)
        if not prompt.strip():
            raise RequestError("the messages hold no text to route on", "messages")
        model = body.get("model") or ""
        if not isinstance(model, str):
            raise RequestError("expected a model name or \"auto\"", "model")
        forced = None
        if model not in AUTO_MODELS:
            if model not in self.service.router.models:
                raise RequestError(f"unknown model {model!r}; use \"auto\" or one of {self.service.router.models}",
                                   "model")
            forced = model
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise RequestError("expected an object of key: value", "metadata")
        if isinstance(body.get("user"), str):
            metadata = {**metadata, "user": body["user"]}
        options = body.get("router") or {}
        target = options.get("quality_target") if isinstance(options, dict) else None
        if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 <= target <= 1):
            raise RequestError("expected a number in [0, 1]", "router.quality_target")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise RequestError("expected true or false", "stream")
        return prompt, metadata, target, forced, stream


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


def _json_or_error(response: httpx.Response) -> dict:
    try:
        data = response.json()
        if isinstance(data, dict):
            return data
    except ValueError:
        pass
    return {"error": {"type": "upstream_rejected", "message": response.text[:500], "field": None}}
