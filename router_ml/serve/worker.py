"""One process of `router-ml serve --workers N`: uvicorn starts N of these behind one port.

The command writes the service's settings to ROUTER_ML_SERVE_SETTINGS (JSON) and points
PROMETHEUS_MULTIPROC_DIR at a fresh folder before uvicorn spawns the workers; each
worker builds its own service (router, policy, gateway, its own audit writer) from those
settings. All write to the one audit database (SQLite in WAL mode serialises their
commits; a writer waits up to 30 s for the lock), so there is one audit trail. On
SIGTERM uvicorn drains each worker's requests, and each worker's shutdown flushes its
audit queue before the process exits: no answered decision is lost.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path

from router_ml.serve.assembly import ServiceSettings, build_service
from router_ml.serve.limits import Limits
from router_ml.serve.metrics import worker_exited
from router_ml.serve.protocol import GuardedH11Protocol

SETTINGS_ENV = "ROUTER_ML_SERVE_SETTINGS"
_built = None  # this worker's service, once create_app has run


def settings_to_env(settings: ServiceSettings, reload_interval: float) -> str:
    data = dataclasses.asdict(settings)
    data.pop("warnings")
    data["reload_interval"] = reload_interval
    return json.dumps(data, default=lambda v: str(v) if isinstance(v, Path) else v)


def _settings() -> dict:
    return json.loads(os.environ[SETTINGS_ENV])


@functools.cache
def _limits() -> Limits:
    return Limits(**_settings()["limits"])


class WorkerProtocol(GuardedH11Protocol):
    """The request deadline and the connection caps in a worker (uvicorn imports it by name
    there: `http=`); the caps hold per worker process."""

    _clients: dict[str, int] = {}
    _state: dict[str, int] = {"over": 0}

    @property
    def request_timeout_s(self) -> float:
        return _limits().request_timeout_s

    @property
    def max_connections(self) -> int | None:
        return _limits().max_connections

    @property
    def max_client_connections(self) -> int | None:
        return _limits().max_client_connections

    def on_limited(self, reason: str) -> None:
        if _built is not None:
            _built.service.metrics.limited.labels(reason).inc()


def create_app():
    """The app of one worker (uvicorn's factory)."""
    global _built
    data = _settings()
    reload_interval = data.pop("reload_interval")
    data["limits"] = Limits(**data["limits"])
    if data.get("audit_metadata_keys") is not None:
        data["audit_metadata_keys"] = tuple(data["audit_metadata_keys"])
    built = _built = build_service(ServiceSettings(**data))
    if reload_interval > 0:
        built.service.watch_registry(reload_interval)

    def shutdown() -> None:
        built.close()  # after uvicorn has drained this worker's requests: flush its audit log
        worker_exited(os.getpid())

    built.app.router.on_shutdown.append(shutdown)
    return built.app
