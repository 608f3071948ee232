"""Start `router-ml serve` in a child process on a free localhost port (Server), or an app under
uvicorn in a thread (InThread), for the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class InThread:
    """uvicorn serving `app` in a thread on a free localhost port (`config`: more uvicorn settings,
    e.g. `http=` a protocol); `url` is its base URL, ready once the constructor returns."""

    def __init__(self, app, timeout: float = 120.0, **config) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    **config))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise TimeoutError("the test server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class Server:
    def __init__(self, router: str, cwd: Path, *args: str, env: dict | None = None, inherit: bool = True) -> None:
        """`env` is added to this process's environment, or (`inherit` False) is the whole environment:
        so that a tracking URI another test left in os.environ cannot reach the server."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(cwd / f"serve-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "router_ml.cli", "serve", "--router", router, "--port", str(self.port), *args],
            cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT, env={**(os.environ if inherit else {}), **(env or {})},
        )

    def wait_ready(self, timeout: float = 180.0) -> Server:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout} s: {self.output()}")

    def wait_for_output(self, text: str, timeout: float = 60.0) -> Server:
        """Wait until the server has printed `text` (e.g. "loading router": its signal handlers are in)."""
        end = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} before printing {text!r}: {self.output()}")
            if time.monotonic() > end:
                raise TimeoutError(f"server did not print {text!r} in {timeout} s: {self.output()}")
            time.sleep(0.02)
        return self

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.log.close()
        return code

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
