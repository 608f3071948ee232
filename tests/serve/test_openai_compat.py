"""The gateway as a drop-in OpenAI endpoint, driven by the official `openai` client.

A real uvicorn server (in a thread, on a free localhost port) runs the service over the
trained test router; the catalog points every model at tests/support/fake_upstream.py, whose
URL path picks a behaviour. Each test is one thing an existing OpenAI-client application
does, and what it must see.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

openai = pytest.importorskip("openai")

from router_ml.core.catalog import catalog_from_dict  # noqa: E402
from router_ml.policy.fallbacks import Fallbacks  # noqa: E402
from router_ml.policy.file import policy_from_dict  # noqa: E402
from router_ml.serve.app import create_app  # noqa: E402
from router_ml.serve.audit import AuditStore, read_joined  # noqa: E402
from router_ml.serve.auth import TokenStore  # noqa: E402
from router_ml.serve.gateway import Gateway, Upstreams  # noqa: E402
from router_ml.serve.service import RoutingService  # noqa: E402
from tests.support.serverproc import InThread as Running  # noqa: E402

PRICES = {"nano": (0.1, 0.4), "coder": (0.2, 0.8), "mini": (0.4, 1.6), "pro": (2.5, 10.0), "legacy-xl": (3.0, 12.0)}
HELLO = [{"role": "user", "content": "What is 2 + 2?"}]
ALIASES = {"gpt-4o": {"up_to": "mini", "description": "routed among models no dearer than mini"},
           "gpt-4o-mini": {"model": "nano"}, "careful": {"quality_target": 1.0}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture()
def gateway(trained_router_dir, tmp_path, fake):
    """make(kinds={model: behaviour}, policy=dict, tokens=[...], **fallbacks) -> (openai.OpenAI, base URL, service)."""
    made = []

    def make(kinds=None, policy=None, tokens=None, max_retries=2, **fallback_settings):
        kinds = {m: "ok" for m in PRICES} | (kinds or {})
        catalog = catalog_from_dict({
            "models": {m: {"input_price": a, "output_price": b, "base_url": f"{fake.url}/{kinds[m]}"}
                       for m, (a, b) in PRICES.items()},
            "aliases": ALIASES}, "test catalog")
        settings = {"timeout_s": 0.5, "retries": 1, "cooldown_s": 0, **fallback_settings}
        policy_obj = policy_from_dict({**(policy or {}), "fallbacks": {**settings, **(policy or {}).get("fallbacks", {})}},
                                      list(PRICES)) if policy or fallback_settings else None
        audit = AuditStore(tmp_path / f"audit{len(made)}.sqlite", flush_interval=0.02)
        service = RoutingService(str(trained_router_dir), audit=audit, policy=policy_obj)
        fallbacks = policy_obj.fallbacks if policy_obj else Fallbacks(**settings)
        upstreams = Upstreams(catalog, fallbacks, service.router.models)
        store = TokenStore.load(environ={"ROUTER_ML_TOKENS": " ".join(tokens)}) if tokens else None
        running = Running(create_app(service, Gateway(service, upstreams), tokens=store))
        made.append((running, service, upstreams))
        client = openai.OpenAI(base_url=running.url + "/v1", api_key="sk-anything", max_retries=max_retries)
        return client, running.url, service

    yield make
    for running, service, upstreams in made:
        running.stop()
        service.close()
        upstreams.close()


def audit_rows(service, expected: int | None = None, wait_s: float = 60.0):
    """The audit rows; with `expected`, waits for that many (a stream's row is written when it closes)."""
    end = time.monotonic() + wait_s
    while True:
        service.audit.flush()
        rows = read_joined(service.audit.path)
        if expected is None or len(rows) >= expected or time.monotonic() > end:
            return rows
        time.sleep(0.05)


def test_models_are_listed_and_retrieved_in_the_api_shape(gateway):
    client, _, service = gateway()
    listed = client.models.list()
    ids = [m.id for m in listed.data]
    assert {"auto", "gpt-4o", "gpt-4o-mini", "careful", *PRICES} <= set(ids)
    assert all(m.object == "model" and m.owned_by for m in listed.data)
    auto = client.models.retrieve("auto")
    assert "router" in auto.model_extra["description"]
    assert "no dearer than mini" in client.models.retrieve("gpt-4o").model_extra["description"]
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve("gpt-5-turbo-imaginary")
    assert raised.value.code == "model_not_found" and raised.value.request_id


def test_a_typed_call_with_the_routing_headers_and_one_request_id(gateway):
    client, _, service = gateway()
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HELLO, temperature=0.2, seed=7)
    completion = raw.parse()
    assert completion.choices[0].message.content.startswith("plain answer from")
    headers = raw.headers
    assert headers["x-router-model"] in PRICES and headers["x-router-version"]
    assert headers["x-request-id"] == headers["x-router-request-id"]
    assert [r["request_id"] for r in audit_rows(service)] == [headers["x-request-id"]]


def test_aliases_route_within_a_price_or_name_a_model(gateway, fake):
    client, _, service = gateway()
    for _ in range(3):
        r = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
        assert r.headers["x-router-model"] in {"nano", "coder", "mini"}  # never dearer than mini
    r = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    assert r.headers["x-router-model"] == "nano"
    r = client.chat.completions.with_raw_response.create(model="careful", messages=HELLO)
    assert "quality_target 1" in r.headers["x-router-reason"]
    sent = [body["model"] for kind, body in fake.calls[-5:]]
    assert "gpt-4o" not in sent and "careful" not in sent  # the provider sees its own model names
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-3.5-legacy", messages=HELLO)
    assert raised.value.code == "model_not_found" and raised.value.status_code == 404


def test_invalid_requests_are_400_with_param_code_and_request_id(gateway):
    client, _, _ = gateway()
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="auto", messages=[])
    error = raised.value
    assert error.status_code == 400 and error.param == "messages" and error.code and error.request_id
    assert error.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="auto", messages=HELLO, extra_body={"frobnicate": 1})
    assert raised.value.param == "frobnicate"
    r = httpx.post(client.base_url.join("chat/completions").__str__(), content=b"{not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json" and r.headers["x-request-id"]


def test_authentication_and_permission_errors_are_the_api_classes(gateway):
    client, url, _ = gateway(tokens=["route:tok-route-0123456789abcdef", "metrics:tok-metrics-0123456789abcdef"])
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model="auto", messages=HELLO)
    assert raised.value.status_code == 401 and raised.value.request_id
    metrics_only = openai.OpenAI(base_url=url + "/v1", api_key="tok-metrics-0123456789abcdef", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        metrics_only.chat.completions.create(model="auto", messages=HELLO)
    ok = openai.OpenAI(base_url=url + "/v1", api_key="tok-route-0123456789abcdef")
    assert ok.chat.completions.create(model="auto", messages=HELLO).choices


def test_streaming_through_the_client(gateway):
    client, _, service = gateway()
    chunks = list(client.chat.completions.create(model="auto", messages=HELLO, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("plain answer from")
    assert len(audit_rows(service, 1)) == 1


def test_twenty_concurrent_async_requests(gateway):
    client, url, service = gateway()

    async def main():
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x") as aclient:
            return await asyncio.gather(*(aclient.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": f"What is {i} + {i}?"}]) for i in range(20)))

    replies = asyncio.run(main())
    ids = {r.headers["x-request-id"] for r in replies}
    assert len(ids) == 20 and all(r.parse().choices for r in replies)
    assert {r["request_id"] for r in audit_rows(service)} == ids


def test_a_tool_call_is_judged_as_a_tool_call_not_paid_twice(gateway, fake):
    cascade = {"cascade": {"steps": ["nano", "pro"], "escalate_if": {"check": {"min_chars": 1}}}}
    client, _, service = gateway(kinds={"nano": "tool"}, policy=cascade)
    before = len(fake.calls)
    r = client.chat.completions.with_raw_response.create(model="auto", messages=HELLO, tools=TOOLS)
    message = r.parse().choices[0].message
    assert message.content is None and message.tool_calls[0].function.name == "get_weather"
    assert r.headers["x-router-model"] == "nano" and [k for k, _ in fake.calls[before:]] == ["tool"]
    # Arguments that do not parse, or miss what the tool's schema requires, are not a valid answer.
    for kind in ("toolbad", "toolschema"):
        client, _, service = gateway(kinds={"nano": kind}, policy=cascade)
        r = client.chat.completions.with_raw_response.create(model="auto", messages=HELLO, tools=TOOLS)
        assert r.headers["x-router-model"] == "pro"
        step = audit_rows(service)[0]["steps"][0]
        assert step["outcome"] == "check_failed" and step["check"] == "tool_call"


def test_a_refusal_fails_a_content_check(gateway):
    cascade = {"cascade": {"steps": ["nano", "pro"], "escalate_if": {"check": {"min_chars": 1}}}}
    client, _, service = gateway(kinds={"nano": "refusalfield"}, policy=cascade)
    r = client.chat.completions.with_raw_response.create(model="auto", messages=HELLO)
    assert r.headers["x-router-model"] == "pro"
    assert audit_rows(service)[0]["steps"][0]["check"] == "refusal"


def test_a_streamed_200_that_is_not_an_event_stream_falls_back(gateway):
    client, _, service = gateway(kinds={"nano": "htmlstream"}, policy={"fallbacks": {"chains": {"nano": ["mini"]}}})
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("plain answer from")
    step = audit_rows(service, 1)[0]["steps"][0]
    assert step["served_by"] == "mini"
    assert any("not an event stream" in a.get("error", "") for a in step["attempts"])


def test_when_everything_failed_the_client_does_not_retry(gateway, fake):
    client, _, _ = gateway(kinds={m: "err500" for m in PRICES}, policy={"fallbacks": {"chains": {"nano": ["mini"]}}},
                           max_retries=2)
    before = len(fake.calls)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    error = raised.value
    assert error.status_code == 502 and error.response.headers["x-should-retry"] == "false"
    assert len(fake.calls) - before == 4  # nano and mini, two tries each: the client did not multiply them
    assert "nano: nano" not in error.message and "nano: HTTP 500" in error.message


def test_retry_after_is_honoured_and_a_rate_limit_everywhere_is_a_429(gateway, fake):
    client, _, _ = gateway(kinds={"nano": "ratelimit"}, retries=1, timeout_s=3.0)
    started = time.monotonic()
    r = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    assert r.headers["x-router-model"] == "nano" and time.monotonic() - started >= 1.0  # waited as asked
    client, _, _ = gateway(kinds={"nano": "always429"}, retries=0, max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert raised.value.response.headers["retry-after"] == "30"


def test_every_error_under_v1_has_the_api_shape(gateway):
    _, url, _ = gateway()
    for method, path, body in (("GET", "/v1/nothing-here", None), ("POST", "/v1/route", {"prompt": ""}),
                               ("POST", "/v1/outcomes", {"request_id": "nope", "model": "nano", "success": True})):
        r = httpx.request(method, url + path, json=body)
        error = r.json()["error"]
        assert set(error) >= {"message", "type", "param", "code"} and r.headers["x-request-id"], (path, r.text)
        assert r.status_code in (400, 404)
    assert json.loads(httpx.get(url + "/v1/models").text)["object"] == "list"
