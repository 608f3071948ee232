"""Waiting on a condition, not for a fixed time: on a loaded machine a fixed sleep is too short
(a process has not started, a thread has not run) and on an idle one too long."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], what: str, timeout: float = 120.0, every: float = 0.02):
    """Poll `condition` until it is true (returned), or fail naming `what` after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"waited {timeout:g} s for {what}")
        time.sleep(every)


def closed_by_peer(sock: socket.socket, timeout: float = 60.0) -> bool:
    """Wait until the other end closes `sock` (True), or `timeout` passes with it open (False)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:  # reset: closed as well
        return True
