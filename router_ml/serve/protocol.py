"""uvicorn's HTTP/1.1 protocol with a deadline for receiving each request and caps on connections.

uvicorn closes a keep-alive connection that stays idle after a response, but a connection
that never sends a complete request (headers or body a byte at a time, or nothing at all)
is held as long as the client likes: a few hundred such connections take the service
down. Here every connection must deliver a whole request within `request_timeout_s` of
opening (or of the previous response); otherwise it is closed and counted
(`router_limited_total{reason="slow_client"}`).

Connections are capped per client address (`max_client_connections`) and in all
(`max_connections`), so that one client's idle sockets cannot starve everyone else: a
connection past its client's cap has `REFUSED_GRACE_S` to send its request, which is
answered 429 `too_many_connections` (the JSON error shape, `Connection: close`), and is
closed then; it does not count toward the total. A request arriving while the process holds
more than `max_connections` connections or requests is answered 503 `server_busy` (JSON,
`Retry-After`), where uvicorn would answer plain text. Each refusal is counted
(`router_limited_total{reason="client_connections" | "server_busy"}`).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from router_ml.serve.api_errors import error_body, new_request_id

REFUSED_GRACE_S = 2.0  # how long a connection past its client's cap may take to send the request it is refused


class GuardedH11Protocol(H11Protocol):
    """H11Protocol with a deadline and connection caps: subclasses set `request_timeout_s`,
    `max_connections`, `max_client_connections` (None: no cap) and `on_limited(reason)`, and
    share a `_clients` dict (address -> open connections) and `_state` (connections past a cap)."""

    request_timeout_s: float = 30.0
    max_connections: int | None = None
    max_client_connections: int | None = None
    _clients: dict[str, int] = {}
    _state: dict[str, int] = {"over": 0}
    _deadline = None
    _host: str | None = None
    _over = False

    def on_limited(self, reason: str) -> None:
        """Called when a connection or request is refused or closed by a limit (reason: slow_client,
        client_connections, server_busy)."""

    def on_timeout(self) -> None:  # kept for subclasses written against the older hook
        self.on_limited("slow_client")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        inner = self.app

        async def guarded(scope, receive, send) -> None:
            refusal = self._refusal()
            if refusal is None:
                await inner(scope, receive, send)
                return
            status, code, message, extra = refusal
            self.on_limited(code if code != "too_many_connections" else "client_connections")
            body = json.dumps(error_body(status, code, message)).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                    (b"connection", b"close"), (b"x-request-id", new_request_id().encode()), *extra]})
            await send({"type": "http.response.body", "body": body})

        self.app = guarded

    def _refusal(self):
        if self._over:
            return (429, "too_many_connections",
                    f"this client has more than {self.max_client_connections} connections open; reuse them "
                    "(HTTP keep-alive) or open fewer", [(b"retry-after", b"1")])
        if self.max_connections is not None:
            active = len(self.connections) - self._state["over"]
            if active > self.max_connections or len(self.tasks) > self.max_connections:
                return (503, "server_busy", f"the service is at its limit of {self.max_connections} connections or "
                        "requests in flight; retry shortly", [(b"retry-after", b"1")])
        return None

    def _arm(self, seconds: float | None = None) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout_s if seconds is None else seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.on_limited("client_connections" if self._over else "slow_client")
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._host = self.client[0] if self.client else ""
        opened = self._clients.get(self._host, 0) + 1
        self._clients[self._host] = opened
        if self.max_client_connections is not None and opened > self.max_client_connections:
            self._over = True
            self._state["over"] += 1
            self._arm(min(REFUSED_GRACE_S, self.request_timeout_s))
        else:
            self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        if self._host is not None:
            left = self._clients.get(self._host, 1) - 1
            if left > 0:
                self._clients[self._host] = left
            else:
                self._clients.pop(self._host, None)
            if self._over:
                self._state["over"] -= 1
            self._host = None
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR):
            self._disarm()  # the whole request is in (or the connection is over)

    def on_response_complete(self) -> None:
        self._arm()  # the next request on this connection has its own deadline
        super().on_response_complete()  # (a pipelined request already in is handled, and disarms, here)


def guarded_protocol(request_timeout_s: float, on_limited: Callable[[str], None], *,
                     max_connections: int | None = None,
                     max_client_connections: int | None = None) -> type[GuardedH11Protocol]:
    """A protocol class (for uvicorn's `http=`) that enforces the deadline and the caps in this
    process; `on_limited(reason)` counts each refusal."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,),
                {"request_timeout_s": request_timeout_s, "on_limited": lambda self, reason: on_limited(reason),
                 "max_connections": max_connections or None, "max_client_connections": max_client_connections or None,
                 "_clients": {}, "_state": {"over": 0}})
