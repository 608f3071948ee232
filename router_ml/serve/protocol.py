"""uvicorn's HTTP/1.1 protocol with a deadline for receiving each request.

uvicorn closes a keep-alive connection that stays idle after a response, but a connection
that never sends a complete request (headers or body a byte at a time, or nothing at all)
is held as long as the client likes: a few hundred such connections take the service
down. Here every connection must deliver a whole request within `request_timeout_s` of
opening (or of the previous response); otherwise it is closed and counted
(`router_limited_total{reason="slow_client"}`).
"""

from __future__ import annotations

from collections.abc import Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class GuardedH11Protocol(H11Protocol):
    """H11Protocol with a deadline: subclasses set `request_timeout_s` and `on_timeout`."""

    request_timeout_s: float = 30.0
    _deadline = None

    def on_timeout(self) -> None:
        """Called when a connection is closed for missing its deadline."""

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.on_timeout()
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR):
            self._disarm()  # the whole request is in (or the connection is over)

    def on_response_complete(self) -> None:
        self._arm()  # the next request on this connection has its own deadline
        super().on_response_complete()  # (a pipelined request already in is handled, and disarms, here)


def guarded_protocol(request_timeout_s: float, on_timeout: Callable[[], None]) -> type[GuardedH11Protocol]:
    """A protocol class (for uvicorn's `http=`) that enforces the request deadline in this process."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,),
                {"request_timeout_s": request_timeout_s, "on_timeout": lambda self: on_timeout()})
