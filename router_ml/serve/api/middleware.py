"""The service's ASGI layers, outermost first: every response gets an `x-request-id`; a POST
under /v1/ must be JSON (415); a body is read up to the size limit before anything parses it
(413, router_ml.serve.limits.BodyLimit).

Pure ASGI classes: Starlette's BaseHTTPMiddleware would cost a task per request.
"""

from __future__ import annotations

import json

from fastapi import FastAPI

from router_ml.serve.api.errors import error
from router_ml.serve.api_errors import error_body, new_request_id
from router_ml.serve.limits import BodyLimit, Limits
from router_ml.serve.metrics import Metrics


def install_middleware(app: FastAPI, metrics: Metrics, limits: Limits) -> None:
    """The three layers; the last added is the outermost."""
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes,
                       on_refusal=lambda reason: metrics.limited.labels(reason).inc(),
                       render=lambda status, kind, message: json.dumps(error_body(status, kind, message, "body")).encode())
    app.add_middleware(JsonOnly, on_refusal=lambda: metrics.requests.labels("rejected").inc())
    app.add_middleware(RequestId)


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
                self.on_refusal()
                response = error(415, "unsupported_media_type",
                                 f"expected Content-Type application/json, found {kind or 'none'}", "content-type")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
