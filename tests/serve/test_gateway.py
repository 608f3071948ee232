"""The OpenAI-compatible gateway against real HTTP upstreams on localhost (tests/support/fake_upstream.py)."""

import json

import pytest
from fastapi.testclient import TestClient

from router_ml.core.catalog import catalog_from_dict
from router_ml.errors import ConfigError
from router_ml.policy.fallbacks import Fallbacks
from router_ml.policy.file import load_policy
from router_ml.serve.app import create_app
from router_ml.serve.audit import AuditStore, read_joined
from router_ml.serve.gateway import Gateway, Upstreams
from router_ml.serve.service import RoutingService

PRICES = {"nano": (0.1, 0.4), "coder": (0.2, 0.8), "mini": (0.4, 1.6), "pro": (2.5, 10.0), "legacy-xl": (3.0, 12.0)}
ASK = {"model": "auto", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}


@pytest.fixture()
def gateway(trained_router_dir, tmp_path, fake):
    """make(kinds={model: behaviour}, policy=YAML text) -> (TestClient, audit path, service)."""
    made = []

    def make(kinds=None, policy=None, router=None):
        kinds = {m: "ok" for m in PRICES} | (kinds or {})
        catalog = catalog_from_dict({"models": {m: {"input_price": a, "output_price": b, "base_url": f"${{FAKE}}/{kinds[m]}",
                                                    "upstream_model": f"up-{m}", **({"api_key_env": "PRO_KEY"} if m == "pro" else {})}
                                                for m, (a, b) in PRICES.items()}}, "test catalog")
        policy_obj = None
        if policy is not None:
            path = tmp_path / f"policy{len(made)}.yaml"
            path.write_text(policy)
            policy_obj = load_policy(path, list(PRICES))
        audit_path = tmp_path / f"audit{len(made)}.sqlite"
        service = RoutingService(str(router or trained_router_dir), audit=AuditStore(audit_path, flush_interval=0.02),
                                 policy=policy_obj)
        fallbacks = policy_obj.fallbacks if policy_obj else Fallbacks(timeout_s=0.5)
        upstreams = Upstreams(catalog, fallbacks, service.router.models, environ={"FAKE": fake.url, "PRO_KEY": "sk-test"})
        client = TestClient(create_app(service, Gateway(service, upstreams)))
        made.append((service, upstreams))
        return client, audit_path, service

    yield make
    for service, upstreams in made:
        service.close()
        upstreams.close()


def rows(audit_path, service):
    service.audit.flush()
    return read_joined(audit_path)


def test_routes_forwards_and_names_the_model_in_headers(gateway, fake):
    client, audit, service = gateway()
    r = client.post("/v1/chat/completions", json=ASK)
    assert r.status_code == 200, r.text
    model = r.headers["x-router-model"]
    assert model in PRICES and r.headers["x-router-version"] == "test-router-1" and r.headers["x-router-reason"]
    assert r.json()["choices"][0]["message"]["content"] == f"plain answer from up-{model}"
    kind, body = fake.calls[-1]
    assert body["model"] == f"up-{model}" and body["messages"] == ASK["messages"] and "metadata" not in body
    [row] = rows(audit, service)
    assert row["request_id"] == r.headers["x-router-request-id"] and row["model"] == model
    assert row["steps"][0]["outcome"] == "accepted" and row["steps"][0]["attempts"][0]["status"] == 200
    assert row["cost"] == pytest.approx((10 * PRICES[model][0] + 5 * PRICES[model][1]) / 1e6)


def test_client_named_model_and_api_key(gateway, fake):
    client, _, _ = gateway()
    r = client.post("/v1/chat/completions", json={**ASK, "model": "pro"})
    assert r.headers["x-router-model"] == "pro" and r.headers["x-router-rule"] == "client-model"
    assert fake.auth[-1] == "Bearer sk-test"
    bad = client.post("/v1/chat/completions", json={**ASK, "model": "gpt-7"})
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "model_not_found"
    assert bad.json()["error"]["param"] == "model"


def test_rules_restrict_and_are_audited(gateway):
    client, audit, service = gateway(policy="""
rules:
  - name: free-tier
    when: {metadata: {tier: free}}
    restrict: [nano, mini]
  - name: long
    when: {min_tokens: 2000}
    force: pro
""")
    free = client.post("/v1/chat/completions", json={**ASK, "metadata": {"tier": "free"}, "router": {"quality_target": 1.0}})
    assert free.headers["x-router-rule"] == "free-tier" and free.headers["x-router-model"] in ("nano", "mini")
    long = client.post("/v1/chat/completions", json={**ASK, "messages": [{"role": "user", "content": "word " * 2000}]})
    assert long.headers["x-router-model"] == "pro" and long.headers["x-router-rule"] == "long"
    assert [r["rule"] for r in rows(audit, service)] == ["free-tier", "long"]


def test_cascade_escalates_when_the_check_fails(gateway, fake):
    policy = """
cascade:
  steps: [nano, pro]
  escalate_if: {check: {json: true}}
"""
    client, audit, service = gateway(kinds={"nano": "ok", "pro": "json"}, policy=policy)
    r = client.post("/v1/chat/completions", json=ASK)
    assert r.headers["x-router-model"] == "pro" and json.loads(r.json()["choices"][0]["message"]["content"])["answer"] == 42
    steps = rows(audit, service)[0]["steps"]
    assert [(s["model"], s["outcome"]) for s in steps] == [("nano", "check_failed"), ("pro", "accepted")]
    client2, audit2, service2 = gateway(kinds={"nano": "json"}, policy=policy)
    assert client2.post("/v1/chat/completions", json=ASK).headers["x-router-model"] == "nano"
    assert [s["outcome"] for s in rows(audit2, service2)[0]["steps"]] == ["accepted"]


FALLBACKS = """
fallbacks:
  chains: {pro: [mini]}
  retries: 1
  timeout_s: 0.5
  cooldown_s: 60
"""


@pytest.mark.parametrize("kind, error", [("err500", "HTTP 500"), ("slow", "timeout"), ("malformed", "malformed response")])
def test_fallback_on_upstream_error_timeout_or_bad_body(gateway, fake, kind, error):
    client, audit, service = gateway(kinds={"pro": kind}, policy=FALLBACKS)
    before = sum(1 for k, _ in fake.calls if k == kind)
    r = client.post("/v1/chat/completions", json={**ASK, "model": "pro"})
    assert r.status_code == 200 and r.headers["x-router-model"] == "mini"
    assert error in r.headers["x-router-fallback"] and "pro -> mini" in r.headers["x-router-fallback"]
    assert sum(1 for k, _ in fake.calls if k == kind) - before == 2  # one retry
    # pro is cooling down: the next request goes straight to mini
    again = client.post("/v1/chat/completions", json={**ASK, "model": "pro"})
    assert again.headers["x-router-model"] == "mini" and sum(1 for k, _ in fake.calls if k == kind) - before == 2
    [first, second] = rows(audit, service)
    attempts = first["steps"][0]["attempts"]
    assert [a["model"] for a in attempts] == ["pro", "pro", "mini"] and "pro -> mini" in first["fallback"]
    assert "cooling down" in second["steps"][0]["attempts"][0]["error"]


def test_upstream_calls_are_counted_per_model_and_result(gateway):
    client, audit, service = gateway(kinds={"pro": "err500"}, policy=FALLBACKS)
    client.post("/v1/chat/completions", json={**ASK, "model": "pro"})  # pro fails twice, mini answers
    client.post("/v1/chat/completions", json={**ASK, "model": "pro"})  # pro is cooling down: skipped
    text = client.get("/metrics").text
    assert 'router_upstream_calls_total{model="pro",result="error"} 2.0' in text
    assert 'router_upstream_calls_total{model="pro",result="cooling_down"} 1.0' in text
    assert 'router_upstream_calls_total{model="mini",result="ok"} 2.0' in text
    assert 'router_upstream_latency_seconds_count{model="mini"} 2.0' in text
    assert 'router_upstream_latency_seconds_count{model="pro"} 2.0' in text


def test_every_model_failing_is_a_clear_502_and_audited(gateway):
    client, audit, service = gateway(kinds={"pro": "err500", "mini": "err500"}, policy=FALLBACKS)
    r = client.post("/v1/chat/completions", json={**ASK, "model": "pro"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_failed"
    assert "pro: HTTP 500" in r.json()["error"]["message"] and "mini: HTTP 500" in r.json()["error"]["message"]
    [row] = rows(audit, service)
    assert row["fallback"] == "all_failed" and len(row["steps"][0]["attempts"]) == 4


def test_request_errors_from_the_provider_pass_through(gateway, fake):
    client, audit, service = gateway(kinds={"pro": "bad400"}, policy=FALLBACKS)
    r = client.post("/v1/chat/completions", json={**ASK, "model": "pro"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "max_tokens too large"
    assert fake.calls[-1][0] == "bad400"  # no fallback for the request's own fault
    assert rows(audit, service)[0]["fallback"] == "client_error"


def sse(response) -> list[str]:
    return [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]


def test_streaming_passes_through_and_falls_back_before_the_first_byte(gateway):
    client, audit, service = gateway(kinds={"pro": "err500"}, policy=FALLBACKS)
    with client.stream("POST", "/v1/chat/completions", json={**ASK, "model": "pro", "stream": True}) as r:
        r.read()
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-router-model"] == "mini"
    events = sse(r)
    assert events[-1] == "[DONE]"
    assert "".join(json.loads(e)["choices"][0]["delta"]["content"] for e in events[:-1]) == "plain answer from up-mini"
    [row] = rows(audit, service)
    assert row["model"] == "mini" and "pro -> mini" in row["fallback"]


def test_a_stream_that_drops_ends_with_an_error_event(gateway):
    client, audit, service = gateway(kinds={"pro": "drop"}, policy=FALLBACKS)
    with client.stream("POST", "/v1/chat/completions", json={**ASK, "model": "pro", "stream": True}) as r:
        r.read()
    events = sse(r)
    assert len(events) == 2 and json.loads(events[-1])["error"]["code"] == "upstream_failed"
    [row] = rows(audit, service)
    assert "stream_interrupted" in row["fallback"] and row["steps"][-1]["outcome"] == "stream_interrupted"


def test_bad_chat_requests(gateway, trained_router_dir):
    client, audit, service = gateway()
    cases = [({"model": "auto"}, "messages"), ({"messages": []}, "messages"),
             ({"messages": [{"content": "hi"}]}, "messages[0]"), ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
             ({**ASK, "stream": "yes"}, "stream"), ({**ASK, "router": {"quality_target": 2}}, "router.quality_target"),
             ({**ASK, "metadata": ["x"]}, "metadata")]
    for body, field in cases:
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, (body, r.text)
    malformed = client.post("/v1/chat/completions", content=b"{", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    assert rows(audit, service) == []
    off = TestClient(create_app(RoutingService(str(trained_router_dir))))
    assert off.post("/v1/chat/completions", json=ASK).status_code == 404


def test_endpoints_are_checked_at_start(trained_router_dir):
    router_models = list(PRICES)
    no_url = catalog_from_dict({"models": {m: {"input_price": 1, "output_price": 1} for m in PRICES}}, "c.yaml")
    with pytest.raises(ConfigError, match="no base_url for models"):
        Upstreams(no_url, Fallbacks(), router_models, environ={})
    with_env = catalog_from_dict({"models": {m: {"input_price": 1, "output_price": 1, "base_url": "${NOPE}/v1"}
                                             for m in PRICES}}, "c.yaml")
    with pytest.raises(ConfigError, match="environment variable NOPE is not set"):
        Upstreams(with_env, Fallbacks(), router_models, environ={})
    keyed = catalog_from_dict({"models": {m: {"input_price": 1, "output_price": 1, "base_url": "http://x",
                                              "api_key_env": "KEY"} for m in PRICES}}, "c.yaml")
    with pytest.raises(ConfigError, match="KEY is not set"):
        Upstreams(keyed, Fallbacks(), router_models, environ={})


def test_a_4xx_later_in_the_chain_is_a_failure_not_the_answer(gateway, fake):
    client, audit, service = gateway(kinds={"pro": "err500", "mini": "bad400"}, policy="""
fallbacks:
  chains: {pro: [mini, legacy-xl]}
  retries: 0
""")
    r = client.post("/v1/chat/completions", json={**ASK, "model": "pro"})
    assert r.status_code == 200 and r.headers["x-router-model"] == "legacy-xl"
    assert "mini: HTTP 400" in r.headers["x-router-fallback"]


def test_a_check_that_raises_fails_the_response_not_the_request(gateway, tmp_path, monkeypatch):
    import sys
    import types

    module = types.ModuleType("broken_checks")
    module.check = lambda text: 1 / 0
    monkeypatch.setitem(sys.modules, "broken_checks", module)
    client, audit, service = gateway(policy="""
cascade:
  steps: [nano, pro]
  escalate_if: {check: {function: "broken_checks:check"}}
""")
    r = client.post("/v1/chat/completions", json=ASK)
    assert r.status_code == 200 and r.headers["x-router-model"] == "pro"
    steps = rows(audit, service)[0]["steps"]
    assert steps[0]["outcome"] == "check_failed" and "ZeroDivisionError" in steps[0]["detail"]


def test_client_model_within_the_rules(gateway):
    client, _, _ = gateway(policy="""
rules:
  - {name: free, when: {metadata: {tier: free}}, restrict: [nano, mini]}
fallbacks:
  default: [pro, mini]
""")
    denied = client.post("/v1/chat/completions", json={**ASK, "model": "pro", "metadata": {"tier": "free"}})
    assert denied.status_code == 400 and denied.json()["error"]["code"] == "model_not_allowed"
    ok = client.post("/v1/chat/completions", json={**ASK, "model": "mini", "metadata": {"tier": "free"}})
    assert ok.headers["x-router-model"] == "mini" and ok.headers["x-router-rule"] == "free,client-model"


def test_fallback_chain_stays_within_the_rules(gateway):
    client, audit, service = gateway(kinds={"nano": "err500"}, policy="""
rules:
  - {name: free, when: {metadata: {tier: free}}, restrict: [nano, mini]}
fallbacks:
  default: [pro, mini]
  retries: 0
""")
    r = client.post("/v1/chat/completions", json={**ASK, "model": "nano", "metadata": {"tier": "free"}})
    assert r.headers["x-router-model"] == "mini"  # pro is first in the chain but not allowed for free


def test_a_client_that_leaves_mid_stream_still_gets_audited(gateway):
    from router_ml.serve.gateway.relay import Relay

    client, audit, service = gateway()
    reply = client.app.state.gateway.handle({**ASK, "model": "mini", "stream": True})
    assert isinstance(reply.stream, Relay)
    reply.stream.close()  # what the HTTP layer does when the client disconnects before the first chunk
    reply.stream.close()  # idempotent
    assert reply.stream.answer.response.is_closed
    [row] = rows(audit, service)
    assert "stream_interrupted" in row["fallback"] and "client disconnected" in row["steps"][-1]["detail"]


def test_reload_refuses_a_router_the_catalog_cannot_serve(gateway, trained_router_dir):
    from router_ml import load_router

    client, _, service = gateway()
    fresh = load_router(trained_router_dir)
    fresh.models = fresh.models + ["gpt-9"]
    service.loader = lambda source: fresh
    with pytest.raises(ConfigError, match=r"no endpoint for its models \['gpt-9'\]"):
        service.reload()



def test_hostile_chat_requests_are_answered_not_crashed_on(gateway, fake):
    client, audit_path, service = gateway()
    surrogate = client.post("/v1/chat/completions", headers={"Content-Type": "application/json"},
                            content=b'{"model": "auto", "messages": [{"role": "user", "content": "hi \\ud800 there"}]}')
    assert surrogate.status_code == 200, surrogate.text
    kind, body = fake.calls[-1]
    assert body["messages"][0]["content"] == "hi \ufffd there"  # what the provider got: valid UTF-8
    unknown = client.post("/v1/chat/completions", json={**ASK, "base_url": "http://evil.example"})
    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == "base_url"
    many = client.post("/v1/chat/completions", json={**ASK, "messages": ASK["messages"] * 1001})
    assert many.status_code == 413 and many.json()["error"]["code"] == "too_many_messages"
    deep: dict = {}
    inner = deep
    for _ in range(40):
        inner["x"] = {}
        inner = inner["x"]
    nested = client.post("/v1/chat/completions", json={**ASK, "response_format": deep})
    assert nested.status_code == 413 and nested.json()["error"]["code"] == "json_too_deep"
    client.post("/v1/chat/completions", json={**ASK, "metadata": {"tier": "free"}, "router": {"quality_target": 0.5},
                                              "temperature": 0.2})
    kind, body = fake.calls[-1]
    assert "metadata" not in body and "router" not in body and body["temperature"] == 0.2


def test_no_cookie_travels_from_one_client_to_another(gateway, fake):
    client, _, _ = gateway({m: "cookie" for m in PRICES})
    for _ in range(3):
        assert client.post("/v1/chat/completions", json=ASK).status_code == 200
    assert fake.cookies[-3:] == [None, None, None]  # the upstream set a cookie each time; none was sent back


def test_a_learned_cascade_reads_the_answer_escalates_and_is_audited(gateway, answered_router_dir):
    from router_ml import load_router
    from router_ml.policy.verifier import verifier_of

    verifier = verifier_of(load_router(answered_router_dir))
    plan = max((p for p in verifier.plans if p.first is not None), key=lambda p: p.thresholds[0])  # the most doubtful
    target = plan.quality_target
    ask = {**ASK, "router": {"quality_target": target}}
    client, audit, service = gateway(kinds={plan.first: "refuse"}, policy="cascade: learned\n", router=answered_router_dir)
    r = client.post("/v1/chat/completions", json=ask)
    assert r.status_code == 200
    steps = rows(audit, service)[0]["steps"]
    assert steps[0]["model"] == plan.first and steps[0]["outcome"] == "check_failed"
    assert steps[0]["check"] == "verifier" and 0 <= steps[0]["verifier"] < 0.5
    assert r.headers["x-router-model"] != plan.first and len(steps) >= 2
    metrics = client.get("/metrics").text
    assert 'router_escalations_total{reason="verifier"} 1.0' in metrics
    # A good answer from the first model is kept, with its score on record.
    client, audit, service = gateway(kinds={plan.first: "sum"}, policy="cascade: learned\n", router=answered_router_dir)
    client.post("/v1/chat/completions", json=ask)
    first = rows(audit, service)[0]["steps"][0]
    assert first["model"] == plan.first and "verifier" in first
    # Streaming cannot read the whole answer first: the router's own choice, single-shot.
    r = client.post("/v1/chat/completions", json={**ask, "stream": True})
    assert r.status_code == 200 and "single-shot" in r.headers["x-router-reason"]


# -- conversations and agents (router_ml.policy.conversation, router_ml.serve.sessions) ---------

SYSTEM = "You are a careful assistant for ACME Corp. Follow the rules. " * 100  # a long agent system prompt
WEATHER_TOOL = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city. " * 30,
                                                  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def test_a_conversation_is_routed_on_the_last_user_turn_and_one_earlier(gateway, trained_router_dir):
    from router_ml import load_router

    client, audit, service = gateway()
    ask = "Prove that the square root of 2 is irrational."
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "An old question, not read."},
                {"role": "assistant", "content": "An old answer."}, {"role": "user", "content": "Hi there."},
                {"role": "assistant", "content": "Hello! How can I help?"}, {"role": "user", "content": ask}]
    r = client.post("/v1/chat/completions", json={"model": "auto", "messages": messages, "tools": WEATHER_TOOL})
    assert r.status_code == 200, r.text
    window = "Hi there.\n\n" + ask
    assert r.headers["x-router-model"] == load_router(trained_router_dir).route(window).model
    [row] = rows(audit, service)
    assert row["model"] == r.headers["x-router-model"] and row["session"] is None


def test_a_tool_result_goes_back_to_the_model_that_asked_and_a_session_never_moves_down(gateway, fake, trained_router_dir):
    from router_ml import load_router

    client, audit, service = gateway(kinds={m: "tool" for m in PRICES})
    first = client.post("/v1/chat/completions", headers={"x-session-id": "conv-1"},
                        json={"model": "pro", "messages": [{"role": "user", "content": "Weather in Paris?"}],
                              "tools": WEATHER_TOOL})
    assert first.status_code == 200, first.text
    asked = first.headers["x-router-model"]
    assert asked == "pro"
    call = first.json()["choices"][0]["message"]["tool_calls"]
    followup = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": call},
                {"role": "tool", "tool_call_id": call[0]["id"], "content": json.dumps({"temp": 21})}]
    second = client.post("/v1/chat/completions",  # no session key; a target the router alone serves cheaply
                         json={"model": "auto", "messages": followup, "tools": WEATHER_TOOL,
                               "router": {"quality_target": 0.0}})
    assert second.headers["x-router-model"] == asked and "tool-continuation" in second.headers["x-router-rule"]
    # a later turn of the session with a target the router alone would serve with a weaker model
    router = load_router(trained_router_dir)
    prompt = "What is 2 + 2?"
    weak = router.route(prompt, 0.0).model
    assert list(PRICES).index(weak) < list(PRICES).index("pro")  # weaker: cheaper (the default order)
    third = client.post("/v1/chat/completions", headers={"x-session-id": "conv-1"},
                        json={"model": "auto", "messages": [{"role": "user", "content": prompt}],
                              "router": {"quality_target": 0.0}})
    assert third.headers["x-router-model"] == asked and third.headers["x-router-rule"] == "session"
    other = client.post("/v1/chat/completions", headers={"x-session-id": "conv-2"},
                        json={"model": "auto", "messages": [{"role": "user", "content": prompt}],
                              "router": {"quality_target": 0.0}})
    assert other.headers["x-router-model"] == router.route(prompt, 0.0).model
    by_id = {r["request_id"]: r for r in rows(audit, service)}
    kept = by_id[third.headers["x-router-request-id"]]
    assert kept["session"] == by_id[first.headers["x-router-request-id"]]["session"] and kept["session"]
    assert "session: kept" in kept["session_note"] and "back to" in by_id[second.headers["x-router-request-id"]]["session_note"]
    text = client.get("/metrics").text
    assert 'router_session_turns_total{action="kept"} 1.0' in text
    assert 'router_session_turns_total{action="continuation"} 1.0' in text


# -- abuse: a provider refusing the operator's key; metrics of every request ---------------------

def test_a_providers_401_is_a_502_naming_the_provider_never_its_key(gateway, fake):
    client, audit, service = gateway(kinds={"pro": "auth401"})
    r = client.post("/v1/chat/completions", json={**ASK, "model": "pro"})
    assert r.status_code == 502, r.text  # not the client's 401: its own key is fine
    error = r.json()["error"]
    assert "pro" in error["message"] and "sk-tes" not in r.text and "sk-test" not in r.text
    [row] = rows(audit, service)
    assert "sk-tes" not in json.dumps(row)
    text = client.get("/metrics").text
    [auth] = [line for line in text.splitlines() if line.startswith('router_upstream_errors_total{kind="auth",model="pro"}')]
    assert float(auth.split()[-1]) == 1  # refused once, not retried: the same key would be refused again


def test_every_gateway_request_is_counted_with_per_upstream_metrics(gateway):
    client, _, _ = gateway()
    for _ in range(3):
        assert client.post("/v1/chat/completions", json=ASK).status_code == 200
    assert client.post("/v1/route", json={"prompt": "hi"}).status_code == 200
    bad = client.post("/v1/chat/completions", json={"model": "auto", "messages": []})
    assert bad.status_code == 400
    text = client.get("/metrics").text
    assert 'router_requests_total{endpoint="chat_completions",status="ok"} 3.0' in text
    assert 'router_requests_total{endpoint="route",status="ok"} 1.0' in text
    assert 'router_requests_total{endpoint="chat_completions",status="rejected"} 1.0' in text
    served = [line for line in text.splitlines() if line.startswith("router_upstream_requests_total{")]
    assert sum(float(line.split()[-1]) for line in served) == 3
    assert "router_upstream_latency_seconds_bucket{" in text and "router_upstream_cost_usd_total{" in text
    assert 'router_upstream_tokens_total{kind="prompt"' in text
