"""Hostile input and the front door: every entry point survives it with a named error or a
correct answer, and the audit log keeps what it should and nothing more."""

import hashlib
import json
import os
import stat
import sys
import time

import pytest
from fastapi.testclient import TestClient

from router_ml import PromptError, load_router
from router_ml.cli import main
from router_ml.errors import ArtifactExistsError, ConfigError
from router_ml.serve.app import create_app
from router_ml.serve.audit import AuditStore, read_joined
from router_ml.serve.auth import TokenStore
from router_ml.serve.limits import Limits
from router_ml.serve.record import Served
from router_ml.serve.service import RoutingService

SURROGATE_JSON = b'{"prompt": "abc \\ud800 def"}'  # the JSON escape of a lone surrogate


def post(client, path, body, **headers):
    return client.post(path, content=body if isinstance(body, bytes) else json.dumps(body),
                       headers={"Content-Type": "application/json", **headers})


@pytest.fixture()
def service(trained_router_dir, tmp_path):
    svc = RoutingService(str(trained_router_dir), audit=AuditStore(tmp_path / "audit.sqlite", flush_interval=0.02),
                         limits=Limits(max_body_bytes=200_000, max_metadata_bytes=2_000))
    yield svc
    svc.close()


@pytest.fixture()
def client(service):
    with TestClient(create_app(service)) as c:
        yield c


def metric(client, name, **labels):
    selector = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    line = next((x for x in client.get("/metrics").text.splitlines() if x.startswith(selector + " ")), None)
    return 0.0 if line is None else float(line.split()[-1])


# -- prompts that no encoder takes, and prompts with nothing in them --------------------------

def test_a_lone_surrogate_is_replaced_everywhere(trained_router_dir, client, service, tmp_path, capsys):
    router = load_router(trained_router_dir)
    assert router.route("abc \ud800 def").model == router.route("abc \ufffd def").model
    assert router.route_batch(["x \udfff"])[0].model in router.models

    answer = post(client, "/v1/route", SURROGATE_JSON)
    assert answer.status_code == 200, answer.text
    assert post(client, "/v1/route", {"prompt": "the next request on the same connection"}).status_code == 200
    assert metric(client, "router_prompt_replaced_characters_total") == 1
    assert metric(client, "router_requests_total", endpoint="route", status="ok") == 2
    service.audit.flush()
    [row] = [r for r in read_joined(tmp_path / "audit.sqlite") if r["prompt_chars"] == len("abc \ufffd def")]
    assert row["model"] == answer.json()["decisions"][0]["model"]

    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"prompt": "hi \\ud800"}\n')
    assert main(["route", "--router", str(trained_router_dir), "--input", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["model"] in router.models


@pytest.mark.parametrize("prompt", ["\x00\x00", "\u200b\u200c\ufeff", " \t\n", "\ud800", "\x1b\x07"])
def test_a_prompt_without_content_is_a_named_error(trained_router_dir, client, prompt):
    router = load_router(trained_router_dir)
    with pytest.raises(PromptError, match="only whitespace, control or zero-width"):
        router.route(prompt)
    answer = post(client, "/v1/route", {"prompt": prompt})
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "prompt"


@pytest.mark.parametrize("bad", [None, 42, {"prompt": "x"}])
def test_route_batch_of_something_that_is_not_a_list(trained_router_dir, bad):
    with pytest.raises(PromptError, match="prompt"):
        load_router(trained_router_dir).route_batch(bad)


# -- the front door -------------------------------------------------------------------------

TOKENS = {"route": "r" * 24, "outcomes": "o" * 24, "ops": "a" * 24}


@pytest.fixture()
def guarded(service, tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens:\n"
                    f"  - {{name: app, sha256: {hashlib.sha256(TOKENS['route'].encode()).hexdigest()}, scopes: [route]}}\n"
                    "  - {name: pipeline, env: EVAL_TOKEN, scopes: [outcomes]}\n"
                    f"  - {{name: ops, sha256: {hashlib.sha256(TOKENS['ops'].encode()).hexdigest()}, "
                    "scopes: [admin, metrics]}\n")
    tokens = TokenStore.load(path, environ={"EVAL_TOKEN": TOKENS["outcomes"]})
    with TestClient(create_app(service, tokens=tokens, api_docs=True)) as c:
        yield c


def bearer(name):
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def test_every_endpoint_but_health_needs_a_token_with_its_scope(guarded):
    assert guarded.get("/healthz").status_code == 200 and guarded.get("/readyz").status_code == 200
    missing = post(guarded, "/v1/route", {"prompt": "hi"})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "unauthorized"
    assert post(guarded, "/v1/route", {"prompt": "hi"}, Authorization="Bearer not-a-real-token").status_code == 401
    ok = post(guarded, "/v1/route", {"prompt": "hi"}, **bearer("route"))
    assert ok.status_code == 200
    wrong_scope = post(guarded, "/v1/outcomes", {"request_id": ok.json()["decisions"][0]["request_id"], "model": "nano",
                                                 "success": True}, **bearer("route"))
    assert wrong_scope.status_code == 403 and "lacks the scope 'outcomes'" in wrong_scope.json()["error"]["message"]
    assert TOKENS["route"] not in wrong_scope.text  # a token is never echoed
    reported = post(guarded, "/v1/outcomes", {"request_id": ok.json()["decisions"][0]["request_id"],
                                              "model": ok.json()["decisions"][0]["model"], "success": True},
                    **bearer("outcomes"))
    assert reported.status_code == 200
    assert guarded.get("/metrics").status_code == 401 and guarded.get("/metrics", headers=bearer("ops")).status_code == 200
    assert guarded.post("/admin/reload", headers=bearer("route")).status_code == 403
    assert guarded.post("/admin/reload", headers=bearer("ops")).status_code == 200
    assert guarded.get("/docs").status_code == 401 and guarded.get("/openapi.json", headers=bearer("ops")).status_code == 200
    assert guarded.get("/docs", headers=bearer("route")).status_code == 403
    assert "<script" not in guarded.get("/docs", headers=bearer("ops")).text.lower()
    assert guarded.get("/redoc").status_code == 404  # FastAPI's CDN-loading pages are never served
    text = guarded.get("/metrics", headers=bearer("ops")).text
    assert 'router_auth_failures_total{reason="missing_or_unknown"}' in text and 'reason="scope"' in text


def test_without_tokens_admin_is_off(client):
    refused = client.post("/admin/reload")
    assert refused.status_code == 403 and "admin endpoints are off" in refused.json()["error"]["message"]


@pytest.mark.parametrize("content, fragment", [
    ("tokens:\n  - {name: a, token: abcdefghijklmnopqrstu, scopes: [route]}\n", "a token itself never goes in the file"),
    ("tokens:\n  - {name: a, sha256: abc, scopes: [route]}\n", "64 hex digits"),
    ("tokens:\n  - {name: a, env: MISSING_TOKEN_VAR, scopes: [route]}\n", "MISSING_TOKEN_VAR is not set"),
    ("tokens:\n  - {name: a, sha256: " + "ab" * 32 + ", scopes: [root]}\n", "scopes: expected some of"),
    ("tokens: []\n", "expected 'tokens:'"),
])
def test_bad_tokens_files_name_the_problem(tmp_path, content, fragment):
    path = tmp_path / "t.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=fragment):
        TokenStore.load(path, environ={})


def test_tokens_from_the_environment_and_their_minimum_length():
    store = TokenStore.load(environ={"ROUTER_ML_TOKENS": f"route,metrics:{'x' * 20} admin:{'y' * 20}"})
    assert store.check(f"Bearer {'x' * 20}").scopes == {"route", "metrics"}
    assert store.check("Bearer nothing") is None and store.check(None) is None and store.check("Basic xyz") is None
    with pytest.raises(ConfigError, match="at least 16 characters"):
        TokenStore.load(environ={"ROUTER_ML_TOKENS": "route:short"})


def test_serve_refuses_to_open_beyond_loopback_without_tokens(trained_router_dir, capsys, monkeypatch):
    monkeypatch.delenv("ROUTER_ML_TOKENS", raising=False)
    code = main(["serve", "--router", str(trained_router_dir), "--host", "0.0.0.0", "--no-audit"])
    assert code == 2 and "--allow-unauthenticated" in capsys.readouterr().err


# -- limits ------------------------------------------------------------------------------------

def test_bodies_over_the_limit_are_refused_before_parsing(client):
    big = post(client, "/v1/route", {"prompt": "x", "metadata": {"pad": "y" * 300_000}})
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    chunked = client.post("/v1/route", content=iter([b'{"prompt": "', b"z" * 150_000, b"z" * 150_000, b'"}']),
                          headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert metric(client, "router_limited_total", reason="body_too_large") == 2


def test_metadata_is_capped_in_size_and_depth(client, service, tmp_path):
    too_big = post(client, "/v1/route", {"prompt": "x", "metadata": {"notes": "n" * 5_000}})
    assert too_big.status_code == 413 and too_big.json()["error"] == {
        "type": "invalid_request_error", "code": "metadata_too_large", "param": "metadata", "field": "metadata",
        "message": too_big.json()["error"]["message"]}
    nested: dict = {}
    inner = nested
    for _ in range(10):
        inner["a"] = {}
        inner = inner["a"]
    too_deep = post(client, "/v1/route", {"prompt": "x", "metadata": nested})
    assert too_deep.status_code == 413 and too_deep.json()["error"]["code"] == "metadata_too_deep"
    assert metric(client, "router_limited_total", reason="metadata_too_large") == 1
    service.audit.flush()
    assert read_joined(tmp_path / "audit.sqlite") == []  # nothing of either was written


def test_deeply_nested_json_gets_the_documented_error_shape(client):
    deep = b'{"prompt": "x", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = post(client, "/v1/route", deep)
    assert answer.status_code in (400, 413)
    assert set(answer.json()["error"]) == {"type", "message", "param", "code", "field"}
    assert client.get("/no/such/path").json()["error"]["code"] == "not_found"


# -- the audit log keeps what it should and nothing more ------------------------------------

def served(request_id="r1"):
    return Served(request_id=request_id, router_version="v", model="nano", confidence=0.5, scores={}, costs={},
                  estimated_cost=None, reason="", quality_target=0.5)


def test_prompts_are_keyed_digests_under_a_private_secret(tmp_path):
    store = AuditStore(tmp_path / "a.sqlite")
    store.record("my salary is 123", served(), {})
    store.close()
    key_file = tmp_path / "a.sqlite.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600 and len(key_file.read_bytes()) == 32
    [row] = read_joined(tmp_path / "a.sqlite")
    assert row["prompt"] is None and row["prompt_sha256"] != hashlib.sha256(b"my salary is 123").hexdigest()
    import hmac

    assert row["prompt_sha256"] == hmac.new(key_file.read_bytes(), b"my salary is 123", hashlib.sha256).hexdigest()


def test_metadata_is_kept_hashed_or_dropped_by_policy(tmp_path):
    ssn = {"tier": "free", "ssn": "123-45-6789", "user": "alice@example.com"}
    hashed = AuditStore(tmp_path / "h.sqlite", metadata_keys=["tier"])
    hashed.record("p", served(), ssn)
    hashed.close()
    [row] = read_joined(tmp_path / "h.sqlite")
    assert row["metadata"]["tier"] == "free" and row["metadata"]["ssn"].startswith("hmac:")
    assert "123-45-6789" not in json.dumps(row) and "alice" not in json.dumps(row)
    dropped = AuditStore(tmp_path / "d.sqlite", metadata_keys=["tier"], metadata_other="drop")
    dropped.record("p", served(), ssn)
    dropped.close()
    assert read_joined(tmp_path / "d.sqlite")[0]["metadata"] == {"tier": "free"}
    text = AuditStore(tmp_path / "t.sqlite", prompt_storage="text")  # text mode: metadata as given by default
    text.record("p", served(), ssn)
    text.close()
    assert read_joined(tmp_path / "t.sqlite")[0]["metadata"] == ssn


def test_retention_erases_old_text_and_keeps_the_decisions(tmp_path):
    store = AuditStore(tmp_path / "r.sqlite", prompt_storage="text")
    old = served("old")
    old.ts = time.time() - 40 * 86400
    store.record("an old prompt", old, {"tier": "free"})
    store.record("a new prompt", served("new"), {"tier": "free"})
    store.record_outcome("old", "nano", success=True)
    store.close()
    AuditStore(tmp_path / "r.sqlite", prompt_storage="text", retain_text_days=30).close()
    rows = {r["request_id"]: r for r in read_joined(tmp_path / "r.sqlite")}
    assert rows["old"]["prompt"] is None and rows["old"]["metadata"] == {} and rows["old"]["outcomes"]
    assert rows["new"]["prompt"] == "a new prompt"


# -- training's own inputs ------------------------------------------------------------------------

def test_train_refuses_an_output_it_would_destroy_before_any_work(demo_files, tmp_path, monkeypatch):
    from router_ml.training.fit.pipeline import TrainConfig, train

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "keep.csv").write_text("precious\n")
    for out, fragment in ((".", "working directory"), (str(data), "holds no router")):
        config = TrainConfig(outcomes=str(demo_files["outcomes"]), catalog=str(demo_files["catalog"]), out=out,
                             overwrite=True, embedder_kind="hashing", mlflow=False)
        started = time.perf_counter()
        with pytest.raises(ArtifactExistsError, match=fragment):
            train(config, log=lambda _: None, progress=False)
        assert time.perf_counter() - started < 2  # refused before embedding or fitting anything
    assert (data / "keep.csv").read_text() == "precious\n"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_the_key_file_is_refused_when_too_short(tmp_path):
    (tmp_path / "a.sqlite.key").write_bytes(b"short")
    from router_ml.errors import AuditError

    with pytest.raises(AuditError, match="at least 16 bytes"):
        AuditStore(tmp_path / "a.sqlite")
