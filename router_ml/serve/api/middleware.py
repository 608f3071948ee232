"""The service's ASGI layers, outermost first: every response gets an `x-request-id`; every chat
completion is counted by its outcome and timed (`router_requests_total{endpoint="chat_completions"}`,
`router_gateway_latency_seconds`); a client may have only so many requests in flight (429,
router_ml.serve.limits.ClientLimit); a POST under /v1/ must be JSON (415); a body is read up to
the size limit before anything parses it (413, router_ml.serve.limits.BodyLimit).

Pure ASGI classes: Starlette's BaseHTTPMiddleware would cost a task per request.
"""

from __future__ import annotations

import json
import time

from fastapi import FastAPI

from router_ml.serve.api.errors import error
from router_ml.serve.api_errors import error_body, new_request_id
from router_ml.serve.auth import TokenStore
from router_ml.serve.limits import BodyLimit, ClientLimit, Limits
from router_ml.serve.metrics import Metrics, endpoint_of, status_of

CHAT = "chat_completions"


def install_middleware(app: FastAPI, metrics: Metrics, limits: Limits, tokens: TokenStore | None = None) -> None:
    """The layers; the last added is the outermost."""
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes,
                       on_refusal=lambda reason: metrics.limited.labels(reason).inc(),
                       render=lambda status, kind, message: json.dumps(error_body(status, kind, message, "body")).encode())
    app.add_middleware(JsonOnly, on_refusal=lambda path: endpoint_of(path) != CHAT and metrics.requests.labels(
        endpoint_of(path), "rejected").inc())
    app.add_middleware(ClientLimit, limit=limits.max_client_in_flight, identify=client_identity(tokens),
                       on_refusal=lambda reason: metrics.limited.labels(reason).inc(),
                       render=lambda status, kind, message: json.dumps(error_body(status, kind, message)).encode())
    app.add_middleware(ChatCounter, metrics=metrics)
    app.add_middleware(RequestId)


def client_identity(tokens: TokenStore | None):
    """Who a request is from, for per-client limits: its address, and its token's name when
    tokens are on (an unknown token is its address alone)."""
    def identify(scope) -> str:
        client = scope.get("client")
        address = client[0] if client else ""
        if tokens is None or not tokens.enabled:
            return address
        for name, value in scope.get("headers") or ():
            if name == b"authorization":
                token = tokens.check(value.decode("latin-1"))
                return f"{address} {token.name}" if token is not None else address
        return address
    return identify


class ChatCounter:
    """Counts every chat completion by its answer's status (`router_requests_total{endpoint=
    "chat_completions", status}`: refusals by a token, a limit or the JSON check included) and
    times it to the end of its body (`router_gateway_latency_seconds`)."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or endpoint_of(scope["path"]) != CHAT:
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def observed(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            self.metrics.requests.labels(CHAT, status_of(status[0])).inc()
            self.metrics.gateway_latency.observe(time.perf_counter() - started)


class RequestId:
    """Every response carries an `x-request-id` (the audit row's id when the handler set one; else
    a fresh one, so a client can quote any response, errors included)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_id(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                if not any(name.lower() == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", new_request_id().encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_id)


class JsonOnly:
    """POST bodies under /v1/ must be JSON (415 otherwise), checked before anything reads them."""

    def __init__(self, app, on_refusal) -> None:
        self.app = app
        self.on_refusal = on_refusal

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith("/v1/"):
            kind = ""
            for name, value in scope.get("headers") or ():
                if name == b"content-type":
                    kind = value.decode("latin-1").split(";")[0].strip().lower()
            if kind != "application/json":
                self.on_refusal(scope["path"])
                response = error(415, "unsupported_media_type",
                                 f"expected Content-Type application/json, found {kind or 'none'}", "content-type")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
