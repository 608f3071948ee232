"""The stream relay: a streamed answer on its way from the provider to the client.

It yields the provider's server-sent events as they arrive, turns a drop after the
first bytes into an error event (`data: {"error": ...}`), and on `close()` (the end, an
error or the client gone, whichever comes first) releases the upstream connection and
writes the audit row exactly once.
"""

from __future__ import annotations

import json
import threading

import httpx

from router_ml.serve.api_errors import error_body
from router_ml.serve.gateway.upstreams import Answer


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

    def __iter__(self) -> Relay:
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
            event = error_body(502, "upstream_failed", f"{self.answer.model}: {self._interrupted}")
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
