"""The routing service and its HTTP app, in process (FastAPI's TestClient)."""

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from router_ml import load_router
from router_ml.errors import ConfigError
from router_ml.policy.exploration import Exploration
from router_ml.serve.app import create_app
from router_ml.serve.audit import AuditStore, read_joined
from router_ml.serve.service import RoutingService
from tests.support.waiting import wait_until


@pytest.fixture()
def service(trained_router_dir, tmp_path):
    audit = AuditStore(tmp_path / "audit.sqlite", flush_interval=0.02)
    svc = RoutingService(str(trained_router_dir), audit=audit, seed=0)
    yield svc
    svc.close()


@pytest.fixture()
def client(service):
    with TestClient(create_app(service)) as c:
        yield c


def post(client, path, body):
    return client.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})


def test_route_one_and_batch_are_audited(client, service, tmp_path):
    one = post(client, "/v1/route", {"prompt": "What is 2 + 2?", "metadata": {"tier": "free"}})
    assert one.status_code == 200
    [d] = one.json()["decisions"]
    assert d["model"] in service.router.models and d["router_version"] == "test-router-1"
    assert 0 <= d["confidence"] <= 1 and d["fallback"] is None and not d["exploration"] and d["request_id"]
    batch = post(client, "/v1/route", {"prompts": ["a", "b", "c"], "quality_target": 0.0})
    assert batch.status_code == 200
    decisions = batch.json()["decisions"]
    assert len(decisions) == 3 and all(x["quality_target"] == 0.0 for x in decisions)
    assert len({x["request_id"] for x in decisions}) == 3
    service.audit.flush()
    rows = {r["request_id"]: r for r in read_joined(tmp_path / "audit.sqlite")}
    assert set(rows) == {d["request_id"]} | {x["request_id"] for x in decisions}
    assert rows[d["request_id"]]["metadata"]["tier"].startswith("hmac:")  # hash mode: values as keyed digests
    assert rows[d["request_id"]]["prompt"] is None and rows[d["request_id"]]["prompt_chars"] == len("What is 2 + 2?")


def test_outcomes_join_and_errors_name_the_field(client, service, tmp_path):
    [d] = post(client, "/v1/route", {"prompt": "hello"}).json()["decisions"]
    ok = post(client, "/v1/outcomes", {"request_id": d["request_id"], "model": d["model"], "success": True, "cost": 0.01})
    assert ok.status_code == 200 and ok.json() == {"recorded": 1}
    dup = post(client, "/v1/outcomes", {"request_id": d["request_id"], "model": d["model"], "success": False})
    assert dup.status_code == 409 and dup.json()["error"]["field"] == "model"
    unknown = post(client, "/v1/outcomes", {"request_id": "nope", "model": d["model"], "score": 0.5})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_request_id"
    missing = post(client, "/v1/outcomes", {"request_id": d["request_id"], "model": "x"})
    assert missing.status_code == 400 and "success" in missing.json()["error"]["message"]
    bad_score = post(client, "/v1/outcomes", {"request_id": d["request_id"], "model": "x", "score": 2})
    assert bad_score.status_code == 400 and bad_score.json()["error"]["field"] == "score"
    [row] = read_joined(tmp_path / "audit.sqlite")
    assert row["outcomes"][0]["success"] == 1 and row["outcomes"][0]["cost"] == 0.01


def test_outcomes_that_would_poison_retraining_are_refused(client, service, tmp_path):
    [a, b] = post(client, "/v1/route", {"prompts": ["first", "second"]}).json()["decisions"]
    ghost = post(client, "/v1/outcomes", {"request_id": a["request_id"], "model": "gpt-5", "success": True})
    assert ghost.status_code == 400 and ghost.json()["error"]["field"] == "model"
    assert "not a model this service routes to" in ghost.json()["error"]["message"]
    infinite = client.post("/v1/outcomes", headers={"Content-Type": "application/json"},
                           content=f'{{"request_id": "{a["request_id"]}", "model": "{a["model"]}", "success": true, '
                                   '"cost": Infinity}')
    assert infinite.status_code == 400, infinite.text
    assert post(client, "/v1/outcomes", {"request_id": a["request_id"], "model": a["model"], "success": True,
                                         "cost": -1}).status_code == 400
    assert post(client, "/v1/outcomes", {"request_id": a["request_id"], "model": a["model"], "success": 1}).status_code == 400
    # A list is applied all or nothing: a bad item leaves the good one unrecorded, so a retry works.
    good = {"request_id": a["request_id"], "model": a["model"], "success": True}
    mixed = post(client, "/v1/outcomes", [good, {"request_id": "unknown-id", "model": b["model"], "score": 0.5}])
    assert mixed.status_code == 404 and mixed.json()["error"]["field"] == "[1].request_id"
    service.audit.flush()
    assert all(not r["outcomes"] for r in read_joined(tmp_path / "audit.sqlite"))
    retry = post(client, "/v1/outcomes", [good, {"request_id": b["request_id"], "model": b["model"], "score": 0.5}])
    assert retry.status_code == 200 and retry.json() == {"recorded": 2}
    twice = post(client, "/v1/outcomes", [{**good, "request_id": b["request_id"], "model": b["model"]}] * 2)
    assert twice.status_code == 409 and twice.json()["error"]["field"] == "[1].model"
    with pytest.raises(Exception, match="not a model this service routes to"):
        service.record_outcome(a["request_id"], "ghost", success=True)


def test_request_fields_are_read_strictly(client):
    for body, field in [({"prompt": "x", "quality_target": True}, "quality_target"),
                        ({"prompt": "x", "quality_target": "0.5"}, "quality_target"),
                        ({"prompt": "x", "quality_targt": 0.5}, "quality_targt")]:
        answer = post(client, "/v1/route", body)
        assert answer.status_code == 400 and answer.json()["error"]["field"] == field, answer.text
    assert post(client, "/v1/route", {"prompt": "x", "quality_target": 1}).status_code == 200


def test_bad_requests_are_4xx_json_naming_the_field(client, service):
    malformed = client.post("/v1/route", content=b'{"prompt": ', headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "malformed_json"
    wrong_type = client.post("/v1/route", content=b"prompt=hi", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert wrong_type.status_code == 415 and wrong_type.json()["error"]["field"] == "content-type"
    empty = post(client, "/v1/route", {"prompts": []})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]
    neither = post(client, "/v1/route", {"quality_target": 0.5})
    assert neither.status_code == 400
    target = post(client, "/v1/route", {"prompt": "x", "quality_target": 1.5})
    assert target.status_code == 400 and target.json()["error"]["field"] == "quality_target"
    wrong_kind = post(client, "/v1/route", {"prompts": ["ok", 3]})
    assert wrong_kind.status_code == 400 and wrong_kind.json()["error"]["field"] == "prompts[1]"
    huge = post(client, "/v1/route", {"prompt": "x" * 1_000_000})
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "prompt_too_long"
    assert huge.json()["error"]["field"] == "prompt"
    too_many = post(client, "/v1/route", {"prompts": ["hi"] * 10_000})
    assert too_many.status_code == 413 and "limit of 1000" in too_many.json()["error"]["message"]
    blank = post(client, "/v1/route", {"prompts": ["fine", "   "]})
    assert blank.status_code == 400 and blank.json()["error"]["field"] == "prompts[1]"
    service.audit.flush()
    assert service.audit.count() == 0  # nothing rejected was routed or audited


def test_router_failure_answers_with_the_fallback_model(client, service, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("embedding backend crashed")

    monkeypatch.setattr(service.router, "route", broken)
    monkeypatch.setattr(service.router, "predict_scores", broken)
    for body in ({"prompt": "hi"}, {"prompts": ["a", "b"]}):
        r = post(client, "/v1/route", body)
        assert r.status_code == 200
        for d in r.json()["decisions"]:
            assert d["model"] == service.fallback_model and d["fallback"] == "router_error"
            assert "embedding backend crashed" in d["reason"]
    metrics = client.get("/metrics").text
    assert 'router_fallbacks_total{reason="router_error"} 3.0' in metrics
    service.audit.flush()
    assert {r["fallback"] for r in service.audit.decisions()} == {"router_error"}


def test_health_ready_metrics_and_docs(client, service):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["router_version"] == "test-router-1"
    post(client, "/v1/route", {"prompts": ["a", "b"]})
    text = client.get("/metrics").text
    assert "router_requests_total" in text and "router_request_latency_seconds_bucket" in text
    assert "router_prompts_total 2.0" in text and "router_routes_total{model=" in text
    assert 'router_info{router_version="test-router-1"' in text
    assert client.get("/openapi.json").status_code == 404 and client.get("/docs").status_code == 404  # off by default
    with TestClient(create_app(service, api_docs=True)) as documented:
        assert "/v1/route" in documented.get("/openapi.json").json()["paths"]
        page = documented.get("/docs")
        assert page.status_code == 200 and "POST /v1/route" in page.text
        assert "<script" not in page.text.lower() and "script-src" not in page.headers["content-security-policy"]
        assert "default-src 'none'" in page.headers["content-security-policy"] and "http" not in page.text.split(
            "<body>")[0]  # nothing loaded from elsewhere


def test_readyz_waits_for_the_embedding_model(service, client, monkeypatch):
    """/readyz says 503 until warm_up has routed once (loading torch takes seconds)."""
    import threading

    release = threading.Event()
    original = service.router.route
    monkeypatch.setattr(service.router, "route", lambda *a, **k: release.wait(120) and original(*a, **k))
    service.warm_up(background=True)
    warming = client.get("/readyz")
    assert warming.status_code == 503 and warming.json()["warm"] is False
    release.set()
    wait_until(lambda: client.get("/readyz").status_code == 200, "/readyz to say 200 once warm", timeout=60)
    assert client.get("/readyz").json()["warm"] is True


def test_every_rejected_request_is_counted(client):
    def rejected():
        text = client.get("/metrics").text
        line = next((x for x in text.splitlines() if x.startswith('router_requests_total{endpoint="route",status="rejected"}')), "x 0")
        return float(line.split()[-1])

    client.post("/v1/route", content=b'{"prompt": ', headers={"Content-Type": "application/json"})  # 400
    client.post("/v1/route", content=b"prompt=hi", headers={"Content-Type": "text/plain"})  # 415
    post(client, "/v1/route", {"prompts": []})  # 400, schema
    post(client, "/v1/route", {"prompt": "   "})  # 400, an empty prompt
    post(client, "/v1/route", {"prompt": "x", "quality_target": 3})  # 400
    post(client, "/v1/route", {"prompt": "x" * 1_000_000})  # 413
    assert rejected() == 6


def test_readyz_reports_a_failing_audit_store(client, service, monkeypatch):
    monkeypatch.setattr(service.audit, "stats", lambda: {"queued": 0, "written": 0, "dropped": 3, "write_errors": 1,
                                                         "last_error": "disk full", "healthy": False})
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["audit"]["last_error"] == "disk full"


def test_uniform_exploration_marks_requests_and_propensity(trained_router_dir, tmp_path):
    audit = AuditStore(tmp_path / "audit.sqlite")
    svc = RoutingService(str(trained_router_dir), audit=audit, exploration=Exploration(rate=0.5, design="uniform"),
                         seed=1)
    router = load_router(trained_router_dir)
    prompts = [f"question number {i}" for i in range(60)]
    served = svc.route(prompts)
    plain = router.route_batch(prompts)
    explored = [s for s in served if s.exploration]
    assert 10 < len(explored) < 50
    n_other = len(router.models) - 1
    for s, d in zip(served, plain):
        assert s.planned_model == d.model and s.propensities[s.model] == s.propensity
        assert sum(s.propensities.values()) == pytest.approx(1.0)
        if s.exploration:
            assert s.model != d.model and s.propensity == pytest.approx(0.5 / n_other)
            assert s.reason.startswith("exploration")
        else:
            assert s.model == d.model and s.propensity == 0.5
    svc.close()
    rows = read_joined(tmp_path / "audit.sqlite")
    assert sum(r["exploration"] for r in rows) == len(explored)
    logged = {r["request_id"]: r for r in rows}
    for s in served:  # the whole distribution reaches the log
        row = logged[s.request_id]
        assert row["propensities"] == pytest.approx(s.propensities) and row["planned_model"] == s.planned_model
    with pytest.raises(ConfigError, match="exploration_rate"):
        RoutingService(str(trained_router_dir), exploration_rate=1.0)


def test_utility_exploration_logs_the_distribution_it_draws_from(trained_router_dir, tmp_path):
    """The default design: the logged distribution is the one `distribution` gives for the decision, the
    choice keeps 1 - rate, every other model keeps at least rate * floor / (others), and the draws follow it."""
    from router_ml.policy.exploration import distribution

    settings = Exploration(rate=0.3)
    svc = RoutingService(str(trained_router_dir), exploration=settings, seed=7)
    router = load_router(trained_router_dir)
    prompts = [f"how do I sort a list of {i} numbers in Python?" for i in range(400)]
    served = svc.route(prompts)
    decisions = router.route_batch(prompts)
    models = router.models
    for s, d in zip(served, decisions):
        expected = distribution(settings, np.array([[d.scores[m] for m in models]]),
                                np.array([[d.costs[m] for m in models]]), np.array([models.index(d.model)]),
                                router.trade_off(d.quality_target), router.cost_scale)[0]
        assert [s.propensities.get(m, 0.0) for m in models] == pytest.approx(expected, abs=1e-8)
        assert s.propensities[d.model] == pytest.approx(0.7)
        assert min(s.propensities.values()) >= 0.3 * settings.floor / (len(models) - 1) - 1e-9
    share = np.mean([s.exploration for s in served])
    assert 0.22 < share < 0.38  # 0.3 expected; 400 draws
    svc.close()


def test_forced_guarded_and_fallback_decisions_have_propensity_one(trained_router_dir):
    from router_ml.policy.file import policy_from_dict

    router = load_router(trained_router_dir)
    policy = policy_from_dict({"rules": [{"name": "code", "when": {"regex": "(?i)python"}, "force": router.models[0]}]},
                              router.models)
    svc = RoutingService(str(trained_router_dir), exploration=Exploration(rate=0.9), policy=policy, seed=3)
    forced = svc.route(["write python code"] * 20)
    assert all(s.propensities == {router.models[0]: 1.0} and s.propensity == 1.0 and not s.exploration
               for s in forced)
    svc.close()


def test_reload_keeps_serving_when_the_source_is_unreachable(service, trained_router_dir):
    from router_ml.serve.auth import TokenStore

    admin = {"Authorization": "Bearer " + "k" * 20}
    tokens = TokenStore.load(environ={"ROUTER_ML_TOKENS": "admin,route,metrics:" + "k" * 20})

    def unreachable(source):
        raise ConnectionError("registry at http://mlflow:5000 unreachable")

    with TestClient(create_app(service, tokens=tokens)) as client:
        service.loader = unreachable
        r = client.post("/admin/reload", headers=admin)
        assert r.status_code == 503 and "still serving test-router-1" in r.json()["error"]["message"]
        assert client.post("/v1/route", json={"prompt": "still here"}, headers=admin).status_code == 200
        assert 'router_reloads_total{result="failed"} 1.0' in client.get("/metrics", headers=admin).text
        service.loader = load_router
        assert client.post("/admin/reload", headers=admin).json() == {"router_version": "test-router-1"}


def test_reload_refuses_a_router_without_the_fallback_model(service, trained_router_dir):
    real = load_router(trained_router_dir)
    real.models = [m for m in real.models if m != service.fallback_model]
    service.loader = lambda source: real
    with pytest.raises(ConfigError, match="fallback model"):
        service.reload()
    assert service.router.version == "test-router-1"


def test_concurrent_requests_are_batched_and_answered_as_alone(trained_router_dir, tmp_path):
    import threading

    audit = AuditStore(tmp_path / "batched.sqlite", flush_interval=0.02)
    batched = RoutingService(str(trained_router_dir), audit=audit, batch_wait_ms=20)
    router = load_router(trained_router_dir)
    prompts = [f"question {i}: what is {i} + {i}?" for i in range(40)]
    answers: dict = {}
    start = threading.Barrier(8)

    def client(k):
        start.wait()
        for i in range(k, len(prompts), 8):
            target = (0.0, 0.5, None)[i % 3]
            answers[i] = (target, batched.route([prompts[i]], quality_target=target)[0])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 40
    assert batched.batcher.jobs == 40 and batched.batcher.batches < 40  # some requests shared a router call
    for i, (target, served) in answers.items():
        alone = router.route(prompts[i], target)
        assert served.model == alone.model and served.quality_target == alone.quality_target
        assert served.confidence == pytest.approx(alone.confidence, abs=1e-6)
    batched.close()
    assert {r["request_id"] for r in read_joined(tmp_path / "batched.sqlite")} == \
        {served.request_id for _, served in answers.values()}


def test_no_http_body_names_a_server_path(service, trained_router_dir, tmp_path, caplog):
    """Found in review: the 404 for an unknown request id named the audit database's path. A client
    learns what was wrong with its request, never where the server keeps its files; a failure of
    the server itself is logged with its detail and answered without it."""
    import logging
    import sqlite3

    from router_ml.serve.auth import TokenStore

    token = {"Authorization": "Bearer " + "k" * 20}
    tokens = TokenStore.load(environ={"ROUTER_ML_TOKENS": "admin,route,outcomes,metrics:" + "k" * 20})
    with TestClient(create_app(service, tokens=tokens)) as client, caplog.at_level(logging.WARNING, "router_ml"):
        [d] = client.post("/v1/route", json={"prompt": "hello"}, headers=token).json()["decisions"]
        unknown = client.post("/v1/outcomes", json={"request_id": "nope", "model": d["model"], "success": True},
                              headers=token)
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_request_id"
        assert "'nope'" in unknown.json()["error"]["message"]

        service.audit.flush()
        db = sqlite3.connect(service.audit.path)  # the database loses its outcomes table
        db.execute("ALTER TABLE outcomes RENAME TO outcomes_elsewhere")
        db.commit()
        db.close()
        broken = client.post("/v1/outcomes", json={"request_id": d["request_id"], "model": d["model"], "success": True},
                             headers=token)
        assert broken.status_code == 503 and broken.json()["error"]["code"] == "outcome_not_recorded"

        service.source = str(tmp_path / "routers" / "moved-away")
        reload = client.post("/admin/reload", headers=token)
        assert reload.status_code == 503 and "still serving test-router-1" in reload.json()["error"]["message"]
        ready = client.get("/readyz")
        bodies = {"unknown request id": unknown.text, "broken database": broken.text, "reload": reload.text,
                  "readyz": ready.text}
    for what, body in bodies.items():
        for path in (str(tmp_path), str(trained_router_dir)):
            assert path not in body, f"{what}: {body}"
    assert str(service.audit.path) in caplog.text and "moved-away" in caplog.text  # the detail, server-side


def test_a_refused_reload_is_logged_once_counted_and_shown_by_readyz(answered_router_dir, caplog):
    """A service on `cascade: learned` whose registry alias moves to a router without a verifier keeps
    serving, says so once in the log, counts it, and /readyz stays ready but names the refused version
    and why; the next version the alias moves to (a fit one) is served and clears it."""
    import logging

    from router_ml.policy.file import load_policy
    from router_ml.policy.verifier import attach_verifier

    champion = load_router(answered_router_dir)
    unfit = load_router(answered_router_dir)
    unfit.version = "answered-2-no-verifier"
    attach_verifier(unfit, None)
    fit = load_router(answered_router_dir)
    fit.version = "answered-3"
    registry = {"version": "1", "router": unfit}
    svc = RoutingService("models:/demo-router@champion", router=champion, loader=lambda source: registry["router"],
                         policy=load_policy("learned-cascade", champion.models))
    svc.registry_version = lambda: registry["version"]
    svc._registry_version = "1"
    try:
        registry["version"] = "2"
        with caplog.at_level(logging.INFO, logger="router_ml.serve"):
            for _ in range(3):  # three watcher intervals
                svc.check_registry()
        logged = [r.getMessage() for r in caplog.records if r.name == "router_ml.serve"]
        assert len(logged) == 1 and "reload refused" in logged[0] and "answered-2-no-verifier" in logged[0], logged
        assert svc.router is champion
        with TestClient(create_app(svc)) as client:
            ready = client.get("/readyz")
            metrics = client.get("/metrics").text
        assert ready.status_code == 200 and ready.json()["ready"] is True
        refused = ready.json()["reload_refused"]
        assert refused["version"] == "answered-2-no-verifier" and refused["serving"] == "answered-1"
        assert "verifier" in refused["reason"] and refused["at"]
        assert 'router_reloads_total{result="refused"} 1.0' in metrics
        assert "router_reload_refused 1.0" in metrics and 'result="registry_unreachable"' not in metrics

        registry.update(version="3", router=fit)
        svc.check_registry()
        assert svc.router is fit
        with TestClient(create_app(svc)) as client:
            ready = client.get("/readyz").json()
            metrics = client.get("/metrics").text
        assert "reload_refused" not in ready and ready["router_version"] == "answered-3"
        assert "router_reload_refused 0.0" in metrics and 'router_reloads_total{result="ok"} 1.0' in metrics
    finally:
        svc.close()


def test_the_registry_watcher_retries_a_version_that_failed_to_load(trained_router_dir):
    """Loading can fail for a passing reason (a download): unlike a refusal, the next check tries again."""
    router = load_router(trained_router_dir)
    calls = []

    def flaky(source):
        calls.append(source)
        if len(calls) == 1:
            raise ConnectionError("artifact store unreachable")
        return router

    svc = RoutingService("models:/demo-router@champion", router=load_router(trained_router_dir), loader=flaky)
    svc.registry_version = lambda: "2"
    svc._registry_version = "1"
    try:
        svc.check_registry()
        assert len(calls) == 1 and svc.router is not router
        svc.check_registry()
        assert len(calls) == 2 and svc.router is router
        svc.check_registry()
        assert len(calls) == 2  # served: nothing more to do until the alias moves
        metrics = svc.metrics.render().decode()
        assert 'router_reloads_total{result="failed"} 1.0' in metrics and 'result="ok"} 1.0' in metrics
    finally:
        svc.close()


def test_serve_takes_the_built_in_learned_cascade_policy_as_replay_does(answered_router_dir, tmp_path):
    """`serve --policy learned-cascade` (docs/serving.md) was refused as a file that does not exist."""
    import click

    from router_ml.policy.file import LEARNED_NAME
    from router_ml.serve.assembly import ServiceSettings, build_service
    from router_ml.serve.cli import LEARNED_POLICY, PolicySource

    assert LEARNED_POLICY == LEARNED_NAME
    value = PolicySource().convert("learned-cascade", None, None)
    built = build_service(ServiceSettings(router=str(answered_router_dir), audit=None, policy=value))
    try:
        assert built.service.policy.cascade.learned
        [served] = built.service.route(["What is 17 * 23?"])
        assert served.model in built.service.router.models
    finally:
        built.close()
    with pytest.raises(click.BadParameter, match="does not exist: give a policy file .* or learned-cascade"):
        PolicySource().convert(str(tmp_path / "nope.yaml"), None, None)
    with pytest.raises(click.BadParameter, match="a directory"):
        PolicySource().convert(str(tmp_path), None, None)
