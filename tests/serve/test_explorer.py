"""The decision explorer (/ui) in process: its figures against the audit database, access, the
request page; and the shipped Grafana dashboard and Prometheus rules against the exported metrics."""

import json
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from router_ml.core.audit_format import create_schema
from router_ml.serve.app import create_app
from router_ml.serve.audit import AuditStore
from router_ml.serve.auth import TokenStore
from router_ml.serve.explorer import queries
from router_ml.serve.metrics import Metrics
from router_ml.serve.service import RoutingService
from tests.support.audit_log import figures_from_rows, seed_audit_log

ROOT = Path(__file__).resolve().parents[2]
READ, ROUTE = "r" * 20 + "-read-token", "q" * 20 + "-route-token"


@pytest.fixture(scope="module")
def seeded(trained_router_dir, tmp_path_factory):
    from router_ml import load_router

    path = tmp_path_factory.mktemp("explorer") / "audit.sqlite"
    models = load_router(str(trained_router_dir)).models
    ids = seed_audit_log(path, models, n=300)
    return path, ids


@pytest.fixture()
def service(trained_router_dir, seeded):
    svc = RoutingService(str(trained_router_dir), audit=AuditStore(seeded[0], key_file=False), seed=0)
    yield svc
    svc.close()


def shown(html: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert m, f"no element {element_id} on the page"
    return m.group(1).strip()


def usd(text: str) -> float:
    return float(text.replace("$", "").replace(",", ""))


def test_overview_figures_equal_those_computed_from_the_database(service, seeded):
    expected = figures_from_rows(seeded[0], service.router.cost_model)
    html = TestClient(create_app(service)).get("/ui?window=all").text
    assert shown(html, "total-requests") == f"{expected['requests']:,}"
    assert usd(shown(html, "cost-served")) == pytest.approx(expected["served_cost"], abs=5e-5)
    assert usd(shown(html, "cost-best")) == pytest.approx(expected["always"][expected["best_model"]], abs=5e-5)
    assert usd(shown(html, "cost-cheapest")) == pytest.approx(expected["always"][expected["cheapest_model"]], abs=5e-5)
    assert f"Always {expected['best_model']} (best)" in html
    assert shown(html, "quality-observed") == f"{expected['observed']:.3f}"
    assert shown(html, "outcomes-count") == f"{expected['outcomes']:,} outcomes"
    assert shown(html, "latency") == f"{expected['latency_p50']:,.1f} ms"
    rows = dict(re.findall(r'<tr data-model="([^"]+)">(.*?)</tr>', html, re.S))
    assert set(rows) == set(expected["models"])
    for model, want in expected["models"].items():
        cells = dict(re.findall(r'class="num (requests|share|outcomes|observed)">([^<]*)<', rows[model]))
        assert cells["requests"] == f"{want['requests']:,}"
        assert cells["share"] == f"{100 * want['share']:.1f} %"
        assert cells["outcomes"] == f"{want['outcomes']:,}"
        assert cells["observed"] == ("–" if want["observed"] is None else f"{want['observed']:.3f}")
    # two router versions (a reload) side by side, and the shadow's agreement
    versions = dict(re.findall(r'<tr data-version="([^"]+)">.*?class="num requests">([^<]*)<', html, re.S))
    assert versions == {"router-a": "180", "router-b": "120"}
    assert "router-c: agrees on" in html


def test_window_is_anchored_at_the_newest_decision(service, seeded):
    db = queries.connect(seeded[0])
    try:
        window = queries.window_of(db, "1h")
        data = queries.overview(db, window, service.router.cost_model)
    finally:
        db.close()
    expected = figures_from_rows(seeded[0], service.router.cost_model, window.since, window.until)
    assert window.span == 3600 and data["requests"] == expected["requests"] == 121  # one every 30 s, both ends
    assert data["cost"]["served"] == pytest.approx(expected["served_cost"])
    with pytest.raises(Exception, match="window: expected one of"):
        queries.window_of(queries.connect(seeded[0]), "2h")


def test_request_page_shows_the_decision_estimates_steps_and_outcome(service, seeded):
    from router_ml.core.audit_format import read_joined

    rows = {r["request_id"]: r for r in read_joined(seeded[0])}
    rid = next(i for i in seeded[1] if rows[i]["steps"] and any(o["model"] == rows[i]["model"]
                                                                 for o in rows[i]["outcomes"]))
    row = rows[rid]
    client = TestClient(create_app(service))
    html = client.get(f"/ui/requests/{rid}").text
    assert shown(html, "served-model") == row["model"] and shown(html, "router-version") == row["router_version"]
    assert shown(html, "confidence") == f"{row['confidence']:.3f}"
    outcome = next(o for o in row["outcomes"] if o["model"] == row["model"])
    assert shown(html, "outcome") == f"{outcome['score'] if outcome['score'] is not None else float(outcome['success']):.3f}"
    estimates = dict(re.findall(r'<tr data-model="([^"]+)"[^>]*>.*?class="num p">([^<]*)<', html, re.S))
    assert estimates == {m: f"{p:.3f}" for m, p in row["scores"].items()}
    assert 'id="steps"' in html and "check_failed" in html
    assert row["prompt"] in html  # stored as text in this log
    # nearest training prompts, as `explain` gives them
    assert 'id="neighbours"' in html or "carries no training prompts" in html
    assert client.get("/ui/requests/nope").status_code == 404


def test_decision_search_filters(service, seeded):
    client = TestClient(create_app(service))
    html = client.get("/ui/requests", params={"version": "router-a", "limit": 500}).text
    assert html.count('class="request-link"') == 180
    html = client.get("/ui/requests", params={"q": "req00001"}).text
    assert html.count('class="request-link"') == 10  # req000010..req000019
    html = client.get("/ui/requests", params={"q": "long-prompts", "limit": 500}).text
    assert html.count('class="request-link"') == len([i for i in range(300) if i % 11 == 0])
    page = client.get("/ui/requests").text
    assert page.count('class="request-link"') == queries.PAGE_ROWS and 'id="older"' in page
    older = re.search(r'id="older" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert "req000249" in client.get(older).text  # the next page starts where the first ended
    assert client.get("/ui/requests", params={"outcome": "bogus"}).status_code == 400


def test_access_read_scope_login_cookie_and_off(service, monkeypatch):
    tokens = TokenStore.load(environ={"ROUTER_ML_TOKENS": f"read:{READ} route:{ROUTE}"})
    client = TestClient(create_app(service, tokens=tokens), follow_redirects=False)
    refused = client.get("/ui")
    assert refused.status_code == 303 and refused.headers["location"].startswith("/ui/login")
    assert client.get("/ui", headers={"Authorization": f"Bearer {ROUTE}"}).status_code == 403
    assert client.get("/ui", headers={"Authorization": f"Bearer {READ}"}).status_code == 200
    bad = client.post("/ui/login", data={"token": ROUTE, "next": "/ui"})
    assert bad.status_code == 401 and "lacks the read scope" in bad.text
    ok = client.post("/ui/login", data={"token": READ, "next": "https://evil.example/"})
    assert ok.status_code == 303 and ok.headers["location"] == "/ui"  # no open redirect
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert client.get("/ui/requests").status_code == 200  # the cookie from the login
    off = TestClient(create_app(service, ui=False))
    assert off.get("/ui").status_code == 404


def test_explorer_turns_on_only_on_loopback_or_with_tokens():
    from router_ml.serve.cli import explorer_enabled

    assert explorer_enabled("127.0.0.1", tokens=False, no_ui=False)
    assert not explorer_enabled("0.0.0.0", tokens=False, no_ui=False)
    assert explorer_enabled("0.0.0.0", tokens=True, no_ui=False)
    assert not explorer_enabled("127.0.0.1", tokens=True, no_ui=True)


def test_an_older_database_gets_the_explorer_indexes(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE decisions (request_id TEXT PRIMARY KEY, ts REAL NOT NULL, router_version TEXT "
                     "NOT NULL, model TEXT NOT NULL, confidence REAL, scores TEXT, quality_target REAL, reason TEXT, "
                     "rule TEXT, fallback TEXT, exploration INTEGER NOT NULL DEFAULT 0, propensity REAL, "
                     "latency_ms REAL, prompt_sha256 TEXT NOT NULL, prompt_chars INTEGER NOT NULL, prompt TEXT, "
                     "metadata TEXT)")
    create_schema(db)
    indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"decisions_ts", "decisions_model_ts", "decisions_version_ts"} <= indexes
    plan = " ".join(r[3] for r in db.execute(
        "EXPLAIN QUERY PLAN SELECT model, COUNT(*) FROM decisions WHERE ts >= 0 AND ts <= 1 GROUP BY model"))
    assert "USING INDEX" in plan or "USING COVERING INDEX" in plan
    db.close()


# -- the shipped Grafana dashboard and Prometheus files ---------------------------------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan"}
PROMETHEUS_OWN = {"up"}  # written by Prometheus itself for every scrape target


def exported_names() -> set[str]:
    """Every sample name the service's metrics module defines (a counter's _total, a histogram's _bucket...)."""
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created"), "info": ("_info",)}
    return {family.name + s for family in Metrics().registry.collect() for s in suffixes[family.type]}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords,
    label names (inside {} or by/on/without (...)), strings or durations."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][\w:]*)\b(\s*\()?", expr):
        if m.group(2) or m.group(1).lower() in PROMQL_WORDS:
            continue
        names.add(m.group(1))
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads((ROOT / "deploy/grafana/router-ml.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    return exprs


def rule_queries() -> list[str]:
    import yaml

    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_metric_name_parser():
    assert metric_names('sum by (model) (rate(router_routes_total{job=~"$job"}[$__rate_interval])) * 3600') == {
        "router_routes_total"}
    assert metric_names("abs(a_b) > 0.1 and on(instance, model) c_d >= 200") == {"a_b", "c_d"}
    assert metric_names("histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))") == {"x_bucket"}


def test_dashboard_and_rules_read_only_exported_metrics():
    exported = exported_names()
    assert {"router_requests_total", "router_calibration_drift", "router_upstream_latency_seconds_bucket"} <= exported
    for source, exprs in (("deploy/grafana/router-ml.json", dashboard_queries()),
                          ("deploy/prometheus/alerts.yml", rule_queries())):
        assert exprs, f"{source}: no queries found"
        for expr in exprs:
            unknown = metric_names(expr) - exported - PROMETHEUS_OWN
            if "label_values" in expr:
                unknown -= {"job"}  # label_values(metric, label): the second is a label
            assert not unknown, f"{source}: {expr!r} reads {sorted(unknown)}, which the service does not export"
    # every panel has a query; the dashboard covers what the issue lists
    titles = " ".join(p["title"] for p in json.loads((ROOT / "deploy/grafana/router-ml.json").read_text())["panels"])
    for topic in ("Requests", "spend", "Error share", "latency", "escalations", "drift", "Audit backlog"):
        assert topic in titles


def test_promtool_accepts_the_rules_and_the_config():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus; .ci/run installs it)")
    for args in (["check", "rules", "deploy/prometheus/alerts.yml"], ["check", "config", "deploy/prometheus/prometheus.yml"]):
        done = subprocess.run([promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_costs_are_counted_against_the_best_and_the_cheapest_model(trained_router_dir, tmp_path):
    svc = RoutingService(str(trained_router_dir), audit=None, seed=0)
    try:
        [served] = svc.route(["Explain the difference between TCP and UDP."])
        text = svc.metrics.render().decode()
    finally:
        svc.close()
    value = lambda name: float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))  # noqa: E731
    assert value(f'router_estimated_cost_usd_total{{model="{served.model}"}}') == pytest.approx(served.costs[served.model])
    best = max(served.scores, key=served.scores.get)
    assert value("router_best_model_cost_usd_total") == pytest.approx(served.costs[best])
    assert value("router_cheapest_model_cost_usd_total") == pytest.approx(min(served.costs.values()))
