"""Calls to the catalog's OpenAI-compatible endpoints: retries, fallback chains, cool-down, cost.

`Upstreams.call(model, body)` tries `model`, retries it, then the next model of its
fallback chain (`router_ml.policy.fallbacks`), skipping models cooling down after
recent failures. A timeout, a connection error, HTTP 429 or 5xx, or a body that is not a
chat completion count as failures; any other 4xx on the request's first attempt is the
request's fault and goes back to the client unchanged (`UpstreamRejectedError`).

Endpoints come from the catalog: `base_url` (may name environment variables as
`${VAR}`), `api_key_env` (the variable holding the key, sent as a bearer token) and
`upstream_model` (the provider's name for the model). The cost of a call is the
provider's token counts (`usage`) times the catalog's prices, or an estimate from
characters when the provider sends none.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from router_ml.core.catalog import Catalog, estimate_tokens
from router_ml.core.prompts import clean_json
from router_ml.errors import ConfigError, UpstreamError, UpstreamRejectedError
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
            for attempt in range(self.fallbacks.retries + 1):
                started = time.perf_counter()
                try:
                    answer = self._once(name, body, stream, may_reject=first and not attempts)
                except UpstreamRejectedError as exc:
                    exc.attempts = attempts + [{"model": name, "attempt": attempt + 1, "status": exc.status}]
                    raise
                except AttemptFailed as exc:
                    attempts.append({"model": name, "attempt": attempt + 1, "error": str(exc),
                                     "ms": round(1000 * (time.perf_counter() - started), 1)})
                    continue
                attempts.append({"model": name, "attempt": attempt + 1, "status": 200,
                                 "ms": round(1000 * (time.perf_counter() - started), 1)})
                answer.requested, answer.attempts = model, attempts
                return answer
            self._cool(name)
        raise UpstreamError("; ".join(f"{a['model']}: {a['error']}" for a in attempts if "error" in a),
                            attempts=attempts)

    def _once(self, model: str, body: dict, stream: bool, may_reject: bool) -> Answer:
        url, headers, upstream_model = self.endpoints[model]
        payload = {**{k: v for k, v in clean_json(body).items() if k in FORWARDED_FIELDS}, "model": upstream_model,
                   "stream": stream}
        try:
            request = self.client.build_request("POST", url, json=payload, headers=headers)
            response = self.client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise AttemptFailed(f"timeout after {self.fallbacks.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise AttemptFailed(f"connection error: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            if stream:
                response.close()
            raise AttemptFailed(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            if stream:
                response.read()
            if may_reject:
                raise UpstreamRejectedError(response.status_code, _json_or_error(response))
            # Later in the chain a 4xx says this model cannot take the request (context length,
            # a bad key): another model may.
            raise AttemptFailed(f"HTTP {response.status_code}")
        if stream:
            return self._open_stream(model, response)
        try:
            data = response.json()
            text = message_text(data["choices"][0]["message"]["content"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise AttemptFailed("malformed response: not a chat completion") from exc
        return Answer(model, model, self._cost(model, body, data.get("usage"), text), text, data=data)

    def _open_stream(self, model: str, response: httpx.Response) -> Answer:
        chunks = response.iter_bytes()  # decoded: the client gets no Content-Encoding from us
        try:
            first = next(chunks)  # fallback is still possible until the first bytes arrive
        except StopIteration as exc:
            response.close()
            raise AttemptFailed("stream closed before any data") from exc
        except httpx.HTTPError as exc:
            response.close()
            raise AttemptFailed(f"stream failed before any data: {type(exc).__name__}") from exc

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

    def close(self) -> None:
        self.client.close()


def _no_cookies():
    """A cookie jar that keeps nothing (its policy allows no domain)."""
    from http.cookiejar import CookieJar, DefaultCookiePolicy

    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


class AttemptFailed(Exception):
    """Internal to `Upstreams.call`: one attempt failed in a way another model might not (timeout, 5xx, 429, bad body)."""


def _expand(value: str, environ, where: str) -> str:
    def sub(match):
        name = match.group(1)
        if name not in environ:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return environ[name]

    return re.sub(r"\$\{(\w+)\}", sub, value)


def message_text(content) -> str:
    """The text of a chat message's content (a string, or the text parts of a list)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _json_or_error(response: httpx.Response) -> dict:
    try:
        data = response.json()
        if isinstance(data, dict):
            return data
    except ValueError:
        pass
    return {"error": {"type": "upstream_rejected", "message": response.text[:500], "field": None}}
