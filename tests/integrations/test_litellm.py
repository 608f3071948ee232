"""The LiteLLM plugin against a real litellm.Router whose deployments answer with `mock_response`
(no network): decisions equal the router's own, every call is one audit row, retries follow the
policy's fallbacks, router-ml's failures fail open, and conversations behave as in the gateway.

The LiteLLM proxy app itself is not started here: its `proxy` extra pins packages (rich < 14,
litellm-proxy) that conflict with this project's environment. Its hooks are driven the way the
proxy drives them (`test_the_proxy_hooks_attach_and_answer_headers`)."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import time
import types

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list download
litellm = pytest.importorskip("litellm")
import logging  # noqa: E402

import hypothesis  # noqa: E402, F401 - loaded now: pytest's hypothesis plugin imports it at the end, see below

# LiteLLM's log filters parse its debug messages with ast.literal_eval, on whichever thread logs;
# CPython 3.11.7's AST state is not thread-safe ("AST constructor recursion depth mismatch") when
# pytest's own assertion rewriting parses at the same time. The tests do not need LiteLLM's logs.
for _name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
    logging.getLogger(_name).setLevel(logging.WARNING)

from router_ml import load_router  # noqa: E402
from router_ml.core.audit_format import read_joined  # noqa: E402
from router_ml.integrations.litellm import RouterMLRouting  # noqa: E402

MODELS = ["nano", "coder", "mini", "pro", "legacy-xl"]
PRICES = {"nano": (0.1, 0.4), "coder": (0.2, 0.8), "mini": (0.4, 1.6), "pro": (2.5, 10.0), "legacy-xl": (3.0, 12.0)}
PROMPTS = [
    "What is 2 + 2?", "Write a Python function that reverses a linked list.", "Translate into French: good night",
    "Prove that the square root of 2 is irrational.", "Summarise the causes of the First World War in 3 lines.",
    "def f(x): return x * 2  # what does this do?", "Name three prime numbers.", "Explain TCP slow start.",
    "Write a haiku about autumn.", "What is the capital of Australia?", "Sort [3, 1, 2] in Rust.",
    "Derive the quadratic formula step by step.",
]
SYSTEM = "You are a careful assistant for ACME Corp. " * 120  # a long agent system prompt
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city. " * 40,
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]


def deployments(failing=(), extra=()):
    """One group "auto" with a deployment per catalog model (answers name the model), and a
    group "direct" the plugin does not route."""
    out = [{"model_name": "auto",
            "litellm_params": {"model": f"openai/up-{m}", "api_key": "sk-test-not-real",
                               "mock_response": "litellm.InternalServerError" if m in failing else f"answer from {m}"},
            "model_info": {"id": f"dep-{m}", "router_ml_model": m}} for m in MODELS]
    out.append({"model_name": "direct", "litellm_params": {"model": "openai/other", "api_key": "sk-test-not-real",
                                                           "mock_response": "direct answer"},
                "model_info": {"id": "dep-direct"}})
    return out + list(extra)


@pytest.fixture()
def loop():
    """One event loop per test: LiteLLM runs its async callbacks on the loop of the calls, later."""
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


@pytest.fixture()
def make(trained_router_dir, tmp_path, loop):
    """make(policy=YAML, failing=models, **plugin options) -> (litellm.Router, plugin, audit path)."""
    made = []

    def build(policy=None, failing=(), num_retries=2, prompt_storage="text", **options):
        path = None
        if policy is not None:
            path = tmp_path / f"policy{len(made)}.yaml"
            path.write_text(policy)
        audit = tmp_path / f"audit{len(made)}.sqlite"
        router = litellm.Router(model_list=deployments(failing), num_retries=num_retries, retry_after=0)
        plugin = RouterMLRouting(str(trained_router_dir), policy=path, audit=audit, prompt_storage=prompt_storage,
                                 settle_s=30, seed=0, **options).attach(router)
        plugin.loop = loop
        LOOPS[id(router)] = loop
        made.append(plugin)
        return router, plugin, audit

    yield build
    for plugin in made:
        loop.run_until_complete(plugin.aflush())
        plugin.close()


LOOPS: dict[int, asyncio.AbstractEventLoop] = {}  # id(litellm router) -> its test's loop


def chat(router, messages, **kwargs):
    return LOOPS[id(router)].run_until_complete(router.acompletion(model="auto", messages=messages, **kwargs))


def flushed(plugin):
    plugin.loop.run_until_complete(plugin.aflush())


def served_by(response) -> str:
    return response._hidden_params["model_id"].removeprefix("dep-")


def test_decisions_equal_the_routers_own_and_each_call_is_one_audit_row(make, trained_router_dir):
    router, plugin, audit = make()
    own = load_router(trained_router_dir)
    sent = []
    for i, prompt in enumerate(PROMPTS):
        target = [None, 0.0, 1.0, 0.5][i % 4]
        options = {} if target is None else {"quality_target": target}
        metadata = {"router_ml": options, "tier": "free"}
        response = chat(router, [{"role": "user", "content": prompt}], metadata=metadata)
        expected = own.route(prompt, target).model
        assert served_by(response) == expected == metadata["router_ml"]["model"], prompt
        assert response.choices[0].message.content == f"answer from {expected}"
        sent.append((metadata["router_ml"]["request_id"], prompt, expected, target))
    flushed(plugin)
    rows = {r["request_id"]: r for r in read_joined(audit)}
    assert set(rows) == {rid for rid, *_ in sent}  # one row per call, keyed by the id the caller got back
    for rid, prompt, model, target in sent:
        row = rows[rid]
        assert row["model"] == model and row["prompt"] == prompt and row["router_version"] == "test-router-1"
        assert row["quality_target"] == (own.default_quality_target if target is None else target)
        assert row["propensity"] == 1.0 and not row["exploration"] and row["fallback"] is None
        assert row["metadata"] == {"tier": "free"}  # the caller's metadata, none of LiteLLM's own keys
        [step] = row["steps"]
        assert step["outcome"] == "accepted" and step["served_by"] == model
        assert [a["status"] for a in step["attempts"]] == [200] and step["attempts"][0]["deployment"] == f"dep-{model}"
        input_price, output_price = PRICES[model]
        assert row["cost"] == pytest.approx((10 * input_price + 20 * output_price) / 1e6)  # the mock's usage, catalog prices
        assert row["latency_ms"] > 0 and row["scores"] and row["outcomes"] == []


def test_a_group_the_plugin_does_not_route_passes_through_unrecorded(make):
    router, plugin, audit = make()

    answer = plugin.loop.run_until_complete(router.acompletion(model="direct", messages=[{"role": "user", "content": "hi"}]))
    assert answer.choices[0].message.content == "direct answer"
    flushed(plugin)
    assert read_joined(audit) == []


def test_the_sync_router_is_routed_and_recorded_too(make, trained_router_dir):
    router, plugin, audit = make()
    metadata = {}
    response = router.completion(model="auto", messages=[{"role": "user", "content": PROMPTS[1]}], metadata=metadata)
    assert served_by(response) == load_router(trained_router_dir).route(PROMPTS[1]).model
    plugin.flush()  # the sync Router runs its callbacks on threads: the plain flush waits for them
    [row] = read_joined(audit)
    assert row["request_id"] == metadata["router_ml"]["request_id"] and row["model"] == served_by(response)


FORCE_PRO = """
rules:
  - name: gold
    when: {metadata: {tier: gold}}
    force: pro
fallbacks:
  chains: {pro: [mini]}
"""


def test_a_failed_call_is_retried_along_the_policys_fallback_chain(make):
    router, plugin, audit = make(policy=FORCE_PRO, failing={"pro"})
    metadata = {"tier": "gold"}
    response = chat(router, [{"role": "user", "content": "What is 2 + 2?"}], metadata=metadata)
    assert served_by(response) == "mini"
    flushed(plugin)
    [row] = read_joined(audit)
    assert row["model"] == "mini" and row["rule"] == "gold" and "pro -> mini" in row["fallback"]
    attempts = row["steps"][0]["attempts"]
    assert [(a["model"], a.get("status")) for a in attempts] == [("pro", 500), ("mini", 200)]
    assert attempts[0]["kind"] == "server_error" and "sk-test" not in json.dumps(row)


def test_every_call_failing_is_one_all_failed_row(make):
    router, plugin, audit = make(policy=FORCE_PRO.replace("chains: {pro: [mini]}", "chains: {}"), failing={"pro"},
                                 num_retries=1)
    with pytest.raises(litellm.InternalServerError):
        chat(router, [{"role": "user", "content": "What is 2 + 2?"}], metadata={"tier": "gold"})
    flushed(plugin)
    [row] = read_joined(audit)
    assert row["model"] == "pro" and row["fallback"] == "all_failed" and row["cost"] is None
    assert [a["model"] for a in row["steps"][0]["attempts"]] == ["pro", "pro"]
    assert row["steps"][0]["outcome"] == "failed"


def test_a_router_error_fails_open_to_the_configured_deployment(make, monkeypatch):
    router, plugin, audit = make(fallback="dep-mini")

    def broken(*args, **kwargs):
        raise RuntimeError("the embedder is gone")

    monkeypatch.setattr(plugin.service, "plan", broken)
    metadata = {}
    response = chat(router, [{"role": "user", "content": "What is 2 + 2?"}], metadata=metadata)
    assert served_by(response) == "mini" and response.choices[0].message.content == "answer from mini"
    flushed(plugin)
    [row] = read_joined(audit)
    assert row["fallback"] == "router_error" and "RuntimeError" in row["reason"] and row["model"] == "mini"
    assert row["request_id"] == metadata["router_ml"]["request_id"]


def test_a_slow_router_fails_open_within_the_deadline(make, monkeypatch):
    router, plugin, audit = make(fallback="pro", timeout_s=0.3)
    original = plugin.service.plan

    def slow(*args, **kwargs):
        time.sleep(2.0)
        return original(*args, **kwargs)

    monkeypatch.setattr(plugin.service, "plan", slow)
    started = time.perf_counter()
    response = chat(router, [{"role": "user", "content": "What is 2 + 2?"}])
    assert served_by(response) == "pro" and time.perf_counter() - started < 1.8
    flushed(plugin)
    [row] = read_joined(audit)
    assert row["fallback"] == "router_timeout" and "longer than 0.3 s" in row["reason"]


def test_a_check_or_the_callers_score_is_written_as_the_outcome_and_retrain_reads_it(make):
    from router_ml.training.loop.retrain import audit_outcomes

    router, plugin, audit = make(check={"json": True})
    metadata = {}
    chat(router, [{"role": "user", "content": "Give me JSON."}], metadata=metadata)
    flushed(plugin)
    [row] = read_joined(audit)
    [outcome] = row["outcomes"]
    assert outcome["model"] == row["model"] and outcome["success"] == 0 and outcome["source"] == "check"
    assert outcome["cost"] == pytest.approx(row["cost"])
    table, stats = audit_outcomes(audit, models=MODELS, log=lambda _: None)
    assert stats["outcome_rows"] == 1 and table.iloc[0]["prompt"] == "Give me JSON." and not table.iloc[0]["success"]

    def score(kwargs, response):  # the caller scores some calls at once and reports others later
        return None if kwargs["messages"][-1]["content"] == "again" else 0.75

    router2, plugin2, audit2 = make(score=score)
    chat(router2, [{"role": "user", "content": "hello"}])
    flushed(plugin2)
    [outcome] = read_joined(audit2)[0]["outcomes"]
    assert outcome["score"] == 0.75 and outcome["source"] == "caller"
    # and a score reported later, by the request id the call answered with
    later = {}
    chat(router2, [{"role": "user", "content": "again"}], metadata=later)
    plugin2.record_outcome(later["router_ml"]["request_id"], later["router_ml"]["model"], success=True)
    flushed(plugin2)
    rows = {r["request_id"]: r for r in read_joined(audit2)}
    [reported] = rows[later["router_ml"]["request_id"]]["outcomes"]
    assert reported["source"] == "api" and reported["success"] == 1 and reported["model"] == later["router_ml"]["model"]


def test_an_agent_conversation_is_routed_on_what_the_human_asked(make, trained_router_dir):
    router, plugin, audit = make()
    own = load_router(trained_router_dir)
    ask = "Prove that the square root of 2 is irrational."
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": "Hi there."},
                {"role": "assistant", "content": "Hello! How can I help?"},
                {"role": "user", "content": ask}]
    metadata = {}
    response = chat(router, messages, tools=TOOLS, metadata=metadata)
    window = "Hi there.\n\n" + ask  # the default window: one earlier user turn before the ask
    assert served_by(response) == own.route(window).model
    flushed(plugin)
    [row] = read_joined(audit)
    assert row["prompt"] == window and SYSTEM[:40] not in row["prompt"]


def test_a_tool_result_goes_back_to_the_model_that_asked_for_it(make):
    router, plugin, audit = make(policy="rules:\n  - {name: gold, when: {metadata: {tier: gold}}, force: pro}\n")
    call = [{"id": "call_weather_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    first = chat(router, [{"role": "user", "content": "Weather in Paris?"}], tools=TOOLS, metadata={"tier": "gold"},
                 mock_tool_calls=call)
    assert served_by(first) == "pro" and first.choices[0].message.tool_calls[0].id == "call_weather_1"
    followup = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": call},
                {"role": "tool", "tool_call_id": "call_weather_1", "content": json.dumps({"temp": 21, "sky": "clear"})}]
    metadata = {"router_ml": {"quality_target": 0.0}}  # the router alone would pick a cheap model
    second = chat(router, followup, tools=TOOLS, metadata=metadata)
    assert served_by(second) == "pro"
    flushed(plugin)
    row = {r["request_id"]: r for r in read_joined(audit)}[metadata["router_ml"]["request_id"]]
    assert "tool-continuation" in row["rule"] and "back to pro" in row["session_note"]


def test_a_session_never_moves_to_a_weaker_model(make, trained_router_dir):
    router, plugin, audit = make(prompt_storage="hash")
    own = load_router(trained_router_dir)
    ranks = plugin.conversations.ranks(own)
    prompt = "What is 2 + 2?"
    strong, weak = own.route(prompt, 1.0).model, own.route(prompt, 0.0).model
    assert ranks[strong] > ranks[weak]
    turns = []
    for target in (1.0, 0.0, 0.0):
        metadata = {"session_id": "conversation-42", "router_ml": {"quality_target": target}}
        response = chat(router, [{"role": "user", "content": prompt}], metadata=metadata)
        turns.append((served_by(response), metadata["router_ml"]))
    assert [model for model, _ in turns] == [strong, strong, strong]
    assert "session: kept" in turns[1][1]["session_note"]
    other = {"session_id": "another", "router_ml": {"quality_target": 0.0}}
    assert served_by(chat(router, [{"role": "user", "content": prompt}], metadata=other)) == weak
    flushed(plugin)
    rows = {r["request_id"]: r for r in read_joined(audit)}
    first, second = rows[turns[0][1]["request_id"]], rows[turns[1][1]["request_id"]]
    assert first["session"] == second["session"] and first["session"].startswith("hmac:")  # hash mode: a digest
    assert "conversation-42" not in json.dumps(list(rows.values()))
    assert second["rule"] == "session" and "the router chose the weaker" in second["session_note"]
    assert first["session_note"] is None


def test_the_proxy_hooks_attach_and_answer_headers(trained_router_dir, tmp_path, monkeypatch):
    """What the proxy does with a callback from `litellm_settings.callbacks`: the pre-call hook
    before routing (here it attaches the plugin to the proxy's Router), the Router call with the
    request's data, then the post-call hook, whose hidden-params headers the proxy answers with."""
    router = litellm.Router(model_list=deployments(), num_retries=0)
    proxy_server = types.ModuleType("litellm.proxy.proxy_server")
    proxy_server.llm_router = router
    monkeypatch.setitem(sys.modules, "litellm.proxy.proxy_server", proxy_server)
    monkeypatch.setattr(importlib.import_module("litellm.proxy"), "proxy_server", proxy_server, raising=False)
    plugin = RouterMLRouting(str(trained_router_dir), audit=tmp_path / "proxy.sqlite", settle_s=30)
    try:
        data = {"model": "auto", "messages": [{"role": "user", "content": "What is 2 + 2?"}],
                "metadata": {"requester_metadata": {"tier": "free"}, "headers": {"x-session-id": "abc"},
                             "user_api_key_hash": "hashed-key", "tier": "free"}}

        async def go():
            data_out = await plugin.async_pre_call_hook(None, None, data, "acompletion")
            response = await router.acompletion(**data_out)
            return await plugin.async_post_call_success_hook(data_out, None, response)

        loop = asyncio.new_event_loop()
        try:
            response = loop.run_until_complete(go())
            headers = response._hidden_params["additional_headers"]
            assert headers["x-router-model"] == served_by(response) and headers["x-router-request-id"]
            loop.run_until_complete(plugin.aflush())
        finally:
            loop.close()
        [row] = read_joined(tmp_path / "proxy.sqlite")
        assert row["request_id"] == headers["x-router-request-id"] and row["session"] is not None
        assert set(row["metadata"]) == {"tier"}  # the requester's metadata, not the proxy's key hash or headers
    finally:
        plugin.close()


def test_attaching_checks_the_deployments(trained_router_dir, tmp_path):
    from router_ml.errors import ConfigError

    bare = litellm.Router(model_list=[{"model_name": "auto", "litellm_params": {"model": "openai/unknown",
                                                                                "mock_response": "x"}}])
    plugin = RouterMLRouting(str(trained_router_dir), audit=None)
    try:
        with pytest.raises(ConfigError, match="no deployment maps to one of the router's models"):
            plugin.attach(bare)
        with pytest.raises(ConfigError, match="fallback 'nowhere'"):
            RouterMLRouting(service=plugin.service, fallback="nowhere").attach(litellm.Router(model_list=deployments()))
    finally:
        plugin.close()
