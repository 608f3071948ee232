"""Limits on what one request may cost the service, enforced before the work they would cause.

- **Body size** (`max_body_bytes`): the body is read up to the limit before anything parses
  it; past it, 413 (`BodyLimit`, an ASGI middleware).
- **Metadata** (`max_metadata_bytes`, `max_metadata_depth`): request metadata is kept in the
  audit log with every decision, so it is capped in size (as compact JSON) and nesting.
- **Gateway fields** (`max_messages`, `max_tools`, `max_json_depth`): a chat request's
  lists and nesting are bounded before it is routed or forwarded.
- **Slow clients** (`request_timeout_s`, `keep_alive_s`): a connection must deliver a
  whole request within the timeout, and an idle keep-alive connection is closed; a client
  that sends headers or body a byte at a time cannot hold a connection
  (router_ml.serve.protocol).
- **One client among many** (`max_client_connections`, `max_client_in_flight`,
  `max_connections`): connections per client address, requests in flight per client (its
  address, and its token's name when tokens are on: `ClientLimit`, an ASGI middleware), and
  connections or requests in all (router_ml.serve.protocol), so that one client cannot
  starve the others. 0 (or None) turns a cap off.

Every refusal is the JSON error shape and is counted in /metrics by reason
(`router_limited_total{reason}`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from router_ml.errors import InvalidRequestError, RequestTooLargeError


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 4_000_000
    max_metadata_bytes: int = 8_192
    max_metadata_depth: int = 4
    max_messages: int = 1_000
    max_tools: int = 128
    max_json_depth: int = 32
    request_timeout_s: float = 30.0
    keep_alive_s: int = 5
    max_connections: int | None = 1_000
    max_client_connections: int | None = 64
    max_client_in_flight: int | None = 32


def json_depth(value, limit: int) -> int:
    """Nesting depth of a parsed JSON value, counting stops once past `limit` (iterative: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_metadata(metadata, limits: Limits, field: str = "metadata") -> None:
    """RequestTooLargeError when request metadata is too deep or too big to keep in the audit log;
    InvalidRequestError for a number JSON does not have (NaN, Infinity)."""
    if json_depth(metadata, limits.max_metadata_depth) > limits.max_metadata_depth:
        raise RequestTooLargeError(f"{field}: nested deeper than {limits.max_metadata_depth} levels", field,
                                   "metadata_too_deep")
    try:
        size = len(json.dumps(metadata, separators=(",", ":"), default=str, allow_nan=False))
    except ValueError as exc:
        raise InvalidRequestError(f"{field}: NaN and Infinity are not JSON numbers", field) from exc
    if size > limits.max_metadata_bytes:
        raise RequestTooLargeError(f"{field}: {size:,} bytes as JSON is over the limit of "
                                   f"{limits.max_metadata_bytes:,}", field, "metadata_too_large")


class BodyLimit:
    """ASGI middleware: read the body up to `limit` bytes before the app sees it; 413 past it."""

    def __init__(self, app, limit: int, on_refusal: Callable[[str], None], render: Callable[[int, str, str], bytes]):
        self.app = app
        self.limit = limit
        self.on_refusal = on_refusal
        self.render = render

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send, int(declared))
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send, size)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, delivered = b"".join(chunks), False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: disconnects, as the server reports them

        await self.app(scope, replay, send)

    async def _refuse(self, send, size: int) -> None:
        self.on_refusal("body_too_large")
        payload = self.render(413, "body_too_large", f"the request body ({size:,} bytes or more) is over the limit "
                                                     f"of {self.limit:,} bytes")
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


class ClientLimit:
    """ASGI middleware: at most `limit` requests in flight per client (`identify(scope)`: its
    address, and its token's name when tokens are on); past it, 429 `too_many_requests_in_flight`
    with `Retry-After`. A stream is in flight until it ends."""

    def __init__(self, app, limit: int | None, identify: Callable[[dict], str], on_refusal: Callable[[str], None],
                 render: Callable[[int, str, str], bytes]) -> None:
        self.app = app
        self.limit = limit
        self.identify = identify
        self.on_refusal = on_refusal
        self.render = render
        self._in_flight: dict[str, int] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not self.limit or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        client = self.identify(scope)
        if self._in_flight.get(client, 0) >= self.limit:
            self.on_refusal("client_in_flight")
            payload = self.render(429, "too_many_requests_in_flight",
                                  f"this client already has {self.limit} requests in flight; wait for one to finish")
            await send({"type": "http.response.start", "status": 429,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
            return
        self._in_flight[client] = self._in_flight.get(client, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self._in_flight[client] - 1
            if left:
                self._in_flight[client] = left
            else:
                del self._in_flight[client]
