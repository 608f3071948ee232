"""Calls to the catalog's OpenAI-compatible endpoints: retries, fallback chains, cool-down, cost.

`Upstreams.call(model, body)` tries `model`, retries it, then the next model of its
fallback chain (`router_ml.policy.fallbacks`), skipping models cooling down after
recent failures. A timeout, a connection error, HTTP 429 or 5xx, a body that is not a
chat completion, or (streaming) a 200 that is not an event stream count as failures;
so does a 401 or 403: the provider refused the *gateway's* credentials, which is never the
client's fault, so it is never passed to the client as its own 401 (the failure names the
model and the provider's host, never the key), and is not retried (the same key would be
refused again): the chain moves on to its next model. Any other 4xx on the request's first
attempt is the request's fault and goes back to the client (`UpstreamRejectedError`), with
anything in it that looks like the provider's key redacted. Retries of one model wait: as long as
its `Retry-After` asks (up to MAX_RETRY_AFTER_S; a longer wait moves on to the next
model at once), else an exponential backoff with jitter (BACKOFF_S doubling per try, at
most BACKOFF_MAX_S, times a random factor in [0.5, 1]).

Endpoints come from the catalog: `base_url` (may name environment variables as
`${VAR}`), `api_key_env` (the variable holding the key, sent as a bearer token) and
`upstream_model` (the provider's name for the model). The cost of a call is the
provider's token counts (`usage`) times the catalog's prices, or an estimate from
characters when the provider sends none.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from router_ml.core.catalog import Catalog, estimate_tokens
from router_ml.core.prompts import clean_json
from router_ml.errors import ConfigError, UpstreamError, UpstreamRejectedError
from router_ml.policy.conversation import message_text
from router_ml.policy.fallbacks import Fallbacks

# The OpenAI chat-completion request fields passed to the provider as the client sent them
# (strings cleaned of lone surrogates). The gateway reads `model`, `stream`, `metadata` and
# `router` itself; any other field is refused (handler.py), never forwarded: a field the
# gateway does not know could change where or how the provider is called.
FORWARDED_FIELDS = frozenset({
    "messages", "temperature", "top_p", "n", "stop", "max_tokens", "max_completion_tokens", "presence_penalty",
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "seed", "tools", "tool_choice",
    "parallel_tool_calls", "response_format", "stream_options", "user", "functions", "function_call",
    "reasoning_effort", "modalities", "prediction", "service_tier", "store", "audio", "web_search_options",
})
GATEWAY_FIELDS = frozenset({"model", "stream", "metadata", "router"})
MAX_RETRY_AFTER_S = 10.0
BACKOFF_S, BACKOFF_MAX_S = 0.1, 2.0
SSE_STARTS = (b"data:", b":", b"event:", b"id:", b"retry:")


@dataclass
class Answer:
    """One successful upstream call."""

    model: str  # the model that answered (after fallbacks)
    requested: str  # the model the cascade step asked for
    cost: float
    text: str = ""  # the assistant's message, for response checks
    tool_calls: tuple = ()  # (function name, arguments) of a tool-call answer
    refusal: str | None = None  # the API's structured refusal
    data: dict | None = None  # the JSON body (non-streaming)
    stream: Iterator[bytes] | None = None  # the remaining bytes (streaming)
    response: httpx.Response | None = None  # the open upstream response (streaming), to close
    attempts: list[dict] = field(default_factory=list)


# What a failed attempt was, for /metrics (router_upstream_errors_total{kind}) and the audit's attempts.
ERROR_KINDS = ("timeout", "connection", "rate_limited", "server_error", "auth", "client_error", "malformed", "stream")


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
        self._secrets = [v.removeprefix("Bearer ") for _, h, _ in self.endpoints.values() for v in h.values()]
        if missing:
            raise ConfigError(f"{catalog.source}: no base_url for models {missing}; the gateway needs an "
                              "OpenAI-compatible endpoint for every model it may call (see data/README.md)")
        # No cookie jar: one client serves every request, and a cookie an upstream sets for one
        # client's request must never ride along on another's.
        self.client = client or httpx.Client(timeout=httpx.Timeout(fallbacks.timeout_s), cookies=_no_cookies(),
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
            tries = self.fallbacks.retries + 1
            for attempt in range(tries):
                started = time.perf_counter()
                try:
                    answer = self._once(name, body, stream, may_reject=first and not attempts)
                except UpstreamRejectedError as exc:
                    exc.attempts = attempts + [{"model": name, "attempt": attempt + 1, "status": exc.status,
                                                "kind": "client_error",
                                                "ms": round(1000 * (time.perf_counter() - started), 1)}]
                    raise
                except AttemptFailed as exc:
                    attempts.append({"model": name, "attempt": attempt + 1, "error": str(exc), "kind": exc.kind,
                                     "ms": round(1000 * (time.perf_counter() - started), 1),
                                     **({"status": exc.status} if exc.status else {}),
                                     **({"retry_after": exc.retry_after} if exc.retry_after is not None else {})})
                    if exc.kind == "auth":
                        break  # the same key would be refused again: next model, no retry
                    if attempt + 1 < tries and not self._wait_before_retry(attempt, exc, attempts[-1]):
                        break  # the provider asks for a longer wait than is worth it: next model
                    continue
                attempts.append({"model": name, "attempt": attempt + 1, "status": 200,
                                 "ms": round(1000 * (time.perf_counter() - started), 1)})
                answer.requested, answer.attempts = model, attempts
                return answer
            self._cool(name)
        raise UpstreamError("; ".join(f"{a['model']}: {a['error']}" for a in attempts if "error" in a),
                            attempts=attempts)

    @staticmethod
    def _wait_before_retry(attempt: int, failure: AttemptFailed, record: dict) -> bool:
        """Sleep before retrying the same model; False when its Retry-After is too long to wait."""
        if failure.retry_after is not None:
            if failure.retry_after > MAX_RETRY_AFTER_S:
                record["note"] = f"Retry-After {failure.retry_after:g} s is longer than {MAX_RETRY_AFTER_S:g} s"
                return False
            delay = failure.retry_after
        else:
            delay = min(BACKOFF_MAX_S, BACKOFF_S * 2 ** attempt) * random.uniform(0.5, 1.0)
        record["waited_s"] = round(delay, 3)
        time.sleep(delay)
        return True

    def _once(self, model: str, body: dict, stream: bool, may_reject: bool) -> Answer:
        url, headers, upstream_model = self.endpoints[model]
        payload = {**{k: v for k, v in clean_json(body).items() if k in FORWARDED_FIELDS}, "model": upstream_model,
                   "stream": stream}
        try:
            request = self.client.build_request("POST", url, json=payload, headers=headers)
            response = self.client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise AttemptFailed(f"timeout after {self.fallbacks.timeout_s:g} s", kind="timeout") from exc
        except httpx.HTTPError as exc:
            raise AttemptFailed(f"connection error: {type(exc).__name__}", kind="connection") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            if stream:
                response.close()
            raise AttemptFailed(f"HTTP {status}", status=status, kind="rate_limited" if status == 429 else "server_error",
                                retry_after=_retry_after(response.headers.get("retry-after")))
        if status in (401, 403, 407):
            response.close()
            # The provider refused the gateway's own credentials: the operator's problem, never the
            # client's (its SDK would report *its* key as wrong). The body may quote the key: dropped.
            raise AttemptFailed(f"HTTP {status} from {_host(url)}: the provider refused the gateway's credentials for "
                                f"{model} (the operator's key, not the client's)", status=status, kind="auth")
        if status >= 400:
            if stream:
                response.read()
            if may_reject:
                raise UpstreamRejectedError(status, self._redacted(_json_or_error(response)))
            # Later in the chain a 4xx says this model cannot take the request (context length):
            # another model may.
            raise AttemptFailed(f"HTTP {status}", status=status, kind="client_error")
        if stream:
            return self._open_stream(model, response)
        try:
            data = response.json()
            message = data["choices"][0]["message"]
            text = message_text(message.get("content"))
            calls = tuple((c["function"]["name"], c["function"].get("arguments", ""))
                          for c in message.get("tool_calls") or () if c.get("type", "function") == "function")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise AttemptFailed("malformed response: not a chat completion", kind="malformed") from exc
        refusal = message.get("refusal") if isinstance(message.get("refusal"), str) else None
        return Answer(model, model, self._cost(model, body, data.get("usage"), text), text, data=data,
                      tool_calls=calls, refusal=refusal)

    def _open_stream(self, model: str, response: httpx.Response) -> Answer:
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "text/event-stream":  # e.g. a proxy's HTML error page with status 200
            response.close()
            raise AttemptFailed(f"HTTP 200 but not an event stream (content-type {kind or 'none'})", kind="stream")
        chunks = response.iter_bytes()  # decoded: the client gets no Content-Encoding from us
        try:
            first = next(chunks)  # fallback is still possible until the first bytes arrive
        except StopIteration as exc:
            response.close()
            raise AttemptFailed("stream closed before any data", kind="stream") from exc
        except httpx.HTTPError as exc:
            response.close()
            raise AttemptFailed(f"stream failed before any data: {type(exc).__name__}", kind="stream") from exc
        if not first.lstrip().startswith(SSE_STARTS):
            response.close()
            raise AttemptFailed("the stream's first bytes are not a server-sent event", kind="stream")

        def rest() -> Iterator[bytes]:
            yield first
            yield from chunks

        return Answer(model, model, 0.0, stream=rest(), response=response)

    def _cost(self, model: str, body: dict, usage: dict | None, text: str) -> float:
        price = self.catalog.models[model]
        if usage and isinstance(usage.get("prompt_tokens"), int) and isinstance(usage.get("completion_tokens"), int):
            return (usage["prompt_tokens"] * price.input_price + usage["completion_tokens"] * price.output_price) / 1e6
        prompt_chars = sum(len(message_text(m.get("content"))) for m in body.get("messages", []) if isinstance(m, dict))
        tokens_in = float(estimate_tokens(prompt_chars, self.catalog.chars_per_token))
        tokens_out = float(estimate_tokens(len(text), self.catalog.chars_per_token))
        return self.catalog.call_cost(model, tokens_in, tokens_out)

    def _redacted(self, body):
        """A provider's error body with anything that looks like one of the gateway's keys redacted."""
        if isinstance(body, dict):
            return {k: self._redacted(v) for k, v in body.items()}
        if isinstance(body, list):
            return [self._redacted(v) for v in body]
        return redact_secrets(body, self._secrets) if isinstance(body, str) else body

    def close(self) -> None:
        self.client.close()


_KEY_LIKE = re.compile(r"\b(?:sk|rk|pk)[-_][A-Za-z0-9_\-*.]{3,}", re.IGNORECASE)


def redact_secrets(text: str, secrets: list[str]) -> str:
    """`text` with every key, any part of a key of 6 characters or more, and anything shaped
    like an API key (sk-..., rk-..., pk-...) replaced by [redacted]."""
    for secret in secrets:
        for n in range(len(secret), 5, -1):  # the longest piece of the key that appears
            for piece in {secret[:n], secret[-n:]}:
                if piece in text:
                    text = text.replace(piece, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


def _host(url: str) -> str:
    """The host (and port) of an endpoint URL: how a failure names the provider."""
    return httpx.URL(url).netloc.decode("ascii", "replace") or url


def _no_cookies():
    """A cookie jar that keeps nothing (its policy allows no domain)."""
    from http.cookiejar import CookieJar, DefaultCookiePolicy

    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


class AttemptFailed(Exception):
    """Internal to `Upstreams.call`: one attempt failed in a way another model might not (timeout, 5xx, 429, bad body)."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None,
                 kind: str = "server_error") -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.kind = kind


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    import datetime as dt

    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _expand(value: str, environ, where: str) -> str:
    def sub(match):
        name = match.group(1)
        if name not in environ:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return environ[name]

    return re.sub(r"\$\{(\w+)\}", sub, value)


def _json_or_error(response: httpx.Response) -> dict:
    try:
        data = response.json()
        if isinstance(data, dict):
            return data
    except ValueError:
        pass
    return {"error": {"type": "upstream_rejected", "message": response.text[:500], "field": None}}
