"""The three abuse findings of issue #24, tried again against a real uvicorn server with the
service's guarded protocol: one client's idle sockets do not starve the others, and every
refusal is the JSON error shape and counted; requests in flight are capped per client; the
audit files are the owner's alone. (A provider's 401 is in tests/serve/test_gateway.py.)"""

from __future__ import annotations

import asyncio
import socket
import stat
import time

import httpx
import pytest

from router_ml.serve.app import create_app
from router_ml.serve.audit import AuditStore
from router_ml.serve.limits import ClientLimit, Limits
from router_ml.serve.protocol import guarded_protocol
from router_ml.serve.service import RoutingService
from tests.support.serverproc import InThread


def Served(service, **caps) -> InThread:
    """The app under uvicorn with the guarded protocol, as `router-ml serve` runs it."""
    protocol = guarded_protocol(5.0, lambda reason: service.metrics.limited.labels(reason).inc(), **caps)
    return InThread(create_app(service), timeout=60, http=protocol)


@pytest.fixture()
def service(trained_router_dir, tmp_path):
    svc = RoutingService(str(trained_router_dir), audit=AuditStore(tmp_path / "audit.sqlite", flush_interval=0.02))
    yield svc
    svc.close()


def test_one_clients_idle_sockets_do_not_starve_the_others(service):
    served = Served(service, max_connections=1_000, max_client_connections=8)
    idle: list[socket.socket] = []
    try:
        for _ in range(60):  # one client (127.0.0.1) opens many idle sockets
            idle.append(socket.create_connection(("127.0.0.1", served.port)))
        time.sleep(0.3)
        # another client (from 127.0.0.2) is served; the first one's next connection is refused,
        # with the JSON error shape, and counted
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as elsewhere:
            other = elsewhere.post(served.url + "/v1/route", json={"prompt": "What is 2 + 2?"}, timeout=10)
        assert other.status_code == 200, other.text
        same = httpx.post(served.url + "/v1/route", json={"prompt": "What is 2 + 2?"}, timeout=10)
        assert same.status_code == 429 and same.headers["content-type"] == "application/json"
        assert same.json()["error"]["code"] == "too_many_connections" and same.headers["retry-after"]
    finally:
        for s in idle:
            s.close()
    time.sleep(0.5)
    text = httpx.get(served.url + "/metrics", timeout=10).text
    served.stop()
    line = next(x for x in text.splitlines() if x.startswith('router_limited_total{reason="client_connections"}'))
    assert float(line.split()[-1]) >= 1


def test_requests_in_flight_are_capped_per_client_with_a_json_refusal():
    refused: list[str] = []
    release = asyncio.Event()

    async def slow_app(scope, receive, send):
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def render(status, code, message):
        import json

        return json.dumps({"error": {"code": code, "message": message}}).encode()

    limit = ClientLimit(slow_app, 2, identify=lambda scope: scope["client"][0], on_refusal=refused.append, render=render)

    async def call(host):
        sent = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "path": "/v1/route", "client": (host, 1)}
        await limit(scope, None, send)
        return sent[0]["status"], sent[-1]["body"]

    async def go():
        a = [asyncio.create_task(call("10.0.0.1")) for _ in range(2)]
        await asyncio.sleep(0.05)
        third = await call("10.0.0.1")  # the third from the same client: refused at once
        other = asyncio.create_task(call("10.0.0.2"))  # another client: admitted
        await asyncio.sleep(0.05)
        release.set()
        return third, [await t for t in a], await other

    third, first_two, other = asyncio.run(go())
    assert third[0] == 429 and b"too_many_requests_in_flight" in third[1]
    assert [s for s, _ in first_two] == [200, 200] and other[0] == 200
    assert refused == ["client_in_flight"]


def test_the_audit_files_are_the_owners_alone(tmp_path):
    store = AuditStore(tmp_path / "audit.sqlite", prompt_storage="text")
    try:
        store.flush()
        files = [p for p in tmp_path.iterdir() if p.name.startswith("audit.sqlite")]
        assert tmp_path / "audit.sqlite" in files
        for path in files:  # the database, its WAL and shared memory, and a key file when there is one
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        store.close()
    assert Limits().max_client_connections and Limits().max_client_in_flight  # on by default
