"""Property-based fuzzing (Hypothesis): random unicode (lone surrogates included), nesting, sizes
and types against the HTTP request models and the outcomes reader. Never a 500 or a stray
exception: only a named error or a correct result."""

import json
import math

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_ml.core.catalog import catalog_from_dict
from router_ml.errors import OutcomesError, RouterError
from router_ml.serve.app import create_app
from router_ml.serve.audit import AuditStore
from router_ml.serve.gateway import Gateway, Upstreams
from router_ml.serve.service import RoutingService
from router_ml.training.data.outcomes import validate_outcomes
from tests.support.fake_upstream import FakeUpstream

# Any character: lone surrogates, controls and zero-width characters included, and often.
ANY_TEXT = st.text(st.characters() | st.characters(categories=["Cs", "Cc", "Cf", "Zs"]), max_size=40)
SCALARS = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_infinity=True) \
    | ANY_TEXT
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
                    max_leaves=20)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


def body_of(known: list[str]):
    keys = st.sampled_from(known) | ANY_TEXT
    return st.dictionaries(keys, JSON, max_size=6) | JSON


def encode(value) -> bytes:
    """JSON as a client would send it (ensure_ascii writes lone surrogates as \\ud800 escapes)."""
    return json.dumps(value, allow_nan=True).encode()


@pytest.fixture(scope="module")
def client(trained_router_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    fake = FakeUpstream(slow_s=0.1)
    service = RoutingService(str(trained_router_dir), audit=AuditStore(root / "audit.sqlite", flush_interval=0.05))
    prices = {m: {"input_price": 1, "output_price": 1, "base_url": f"{fake.url}/ok"} for m in service.router.models}
    upstreams = Upstreams(catalog_from_dict({"models": prices}), service.policy.fallbacks if service.policy else
                          __import__("router_ml.policy.fallbacks", fromlist=["Fallbacks"]).Fallbacks(),
                          service.router.models)
    with TestClient(create_app(service, Gateway(service, upstreams))) as c:
        yield c
    service.close()
    upstreams.close()
    fake.close()


def check(response) -> None:
    assert response.status_code < 500, response.text
    payload = response.json()
    if response.status_code >= 400:
        assert set(payload["error"]) >= {"type", "message"}, payload


@given(body=body_of(["prompt", "prompts", "quality_target", "metadata"]))
@FUZZ
def test_route_requests(client, body):
    check(client.post("/v1/route", content=encode(body), headers={"Content-Type": "application/json"}))


@given(body=body_of(["request_id", "model", "success", "score", "cost", "latency_ms"]) | st.lists(JSON, max_size=3))
@FUZZ
def test_outcome_reports(client, body):
    check(client.post("/v1/outcomes", content=encode(body), headers={"Content-Type": "application/json"}))


@given(messages=st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]) | ANY_TEXT,
                                                "content": ANY_TEXT | JSON}), max_size=3),
       extra=st.dictionaries(st.sampled_from(["model", "stream", "metadata", "router", "user", "temperature", "n"]),
                             JSON, max_size=3))
@FUZZ
def test_chat_requests(client, messages, extra):
    response = client.post("/v1/chat/completions", content=encode({"messages": messages, **extra}),
                           headers={"Content-Type": "application/json"})
    assert response.status_code < 500, response.text


@given(raw=st.binary(max_size=300))
@FUZZ
def test_raw_bytes(client, raw):
    check(client.post("/v1/route", content=raw, headers={"Content-Type": "application/json"}))


CELL = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True, allow_infinity=True) | ANY_TEXT


@given(rows=st.lists(st.fixed_dictionaries({"prompt": CELL, "model": CELL}, optional={
    "score": CELL, "success": CELL, "cost": CELL, "prompt_id": CELL, "task": CELL, "input_tokens": CELL,
    "weight": CELL}), min_size=1, max_size=8))
@FUZZ
def test_the_outcomes_contract(rows):
    frame = pd.DataFrame(rows, dtype=object)  # as the readers hand it over (object columns)
    try:
        out = validate_outcomes(frame, "fuzz", duplicates="mean")
    except OutcomesError:
        return
    assert len(out) >= 1 and out["score"].between(0, 1).all()
    assert all(isinstance(p, str) and p for p in out["prompt"])
    assert all(math.isfinite(w) and w > 0 for w in out["weight"])


@given(lines=st.lists(st.one_of(st.binary(max_size=60), JSON.map(encode)), min_size=1, max_size=6))
@FUZZ
def test_outcomes_files(tmp_path_factory, lines):
    from router_ml.training.data.outcomes import read_outcomes

    path = tmp_path_factory.mktemp("jsonl") / "o.jsonl"
    path.write_bytes(b"\n".join(lines))
    try:
        read_outcomes(path)
    except RouterError:
        pass
