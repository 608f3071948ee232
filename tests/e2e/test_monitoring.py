"""Monitoring with real parts: the explorer of a real `router-ml serve` process in headless
Chromium, its figures checked against the audit database; a real Prometheus scraping the
service and evaluating the shipped alert rules. Each skips with the reason when its program
is absent (.ci/run installs them)."""

import json
import shutil
import subprocess

import httpx
import pytest

from tests.support import browser
from tests.support.audit_log import figures_from_rows, seed_audit_log
from tests.support.serverproc import Server, free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served_log(trained_router_dir, tmp_path_factory):
    """A seeded audit log (novel traffic: 8 % of requests above 0.99) behind a real service."""
    from router_ml import load_router

    cwd = tmp_path_factory.mktemp("monitoring")
    router = load_router(str(trained_router_dir))
    seed_audit_log(cwd / "audit.sqlite", router.models, n=600, novel_share=0.08)
    # The log's decisions are from the past: route a few now as well (the live part of the log)
    with Server(str(trained_router_dir), cwd, "--audit", "audit.sqlite", "--flush-interval", "0.05") as server:
        server.wait_ready()
        for prompt in ("What is 2 + 2?", "Write a sonnet about the sea.", "Summarise the GDPR in one line."):
            assert httpx.post(server.url + "/v1/route", json={"prompt": prompt}).status_code == 200
        yield server, cwd / "audit.sqlite", router


@pytest.fixture()
def chromium():
    reason = browser.missing()
    if reason:
        pytest.skip(reason)
    driver = browser.headless_chromium()
    yield driver
    driver.quit()


def text(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text.strip()


def test_the_explorer_in_a_browser_shows_the_databases_figures(served_log, chromium, tmp_path):
    from selenium.webdriver.common.by import By

    server, audit, router = served_log
    chromium.get(server.url + "/ui?window=all")
    expected = figures_from_rows(audit, router.cost_model)  # after the page: the same rows
    assert text(chromium, "total-requests") == f"{expected['requests']:,}" == "603"
    assert float(text(chromium, "cost-served").lstrip("$")) == pytest.approx(expected["served_cost"], abs=5e-5)
    assert text(chromium, "quality-observed") == f"{expected['observed']:.3f}"
    shown = {}
    for row in chromium.find_elements(By.CSS_SELECTOR, "#models tbody tr"):
        cells = {c.get_attribute("class").split()[-1]: c.text for c in row.find_elements(By.CSS_SELECTOR, "td.num")}
        shown[row.get_attribute("data-model")] = (cells["requests"], cells["share"])
    assert shown == {m: (f"{v['requests']:,}", f"{100 * v['share']:.1f} %") for m, v in expected["models"].items()}
    assert len(chromium.find_elements(By.CSS_SELECTOR, "svg.chart rect")) > 10  # the charts were drawn
    browser.full_page_screenshot(chromium, tmp_path / "overview.png")

    # the list, then one request's page, by clicking as a person would
    chromium.get(server.url + "/ui/requests?q=req000042")
    chromium.find_element(By.CSS_SELECTOR, "a.request-link").click()
    wait_until(lambda: "/ui/requests/req000042" in chromium.current_url, "the request page", timeout=10)
    from router_ml.core.audit_format import read_joined

    row = next(r for r in read_joined(audit) if r["request_id"] == "req000042")
    assert text(chromium, "request-id") == "req000042" and text(chromium, "served-model") == row["model"]
    assert text(chromium, "confidence") == f"{row['confidence']:.3f}"
    estimates = {tr.get_attribute("data-model"): tr.find_element(By.CSS_SELECTOR, "td.p").text
                 for tr in chromium.find_elements(By.CSS_SELECTOR, "#estimates tbody tr")}
    assert estimates == {m: f"{p:.3f}" for m, p in row["scores"].items()}
    assert row["prompt"] in chromium.find_element(By.ID, "prompt").text
    browser.full_page_screenshot(chromium, tmp_path / "request.png")
    for name in ("overview.png", "request.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / name).stat().st_size > 20_000


def test_a_real_prometheus_scrapes_the_service_and_evaluates_the_rules(served_log, tmp_path):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("prometheus is not installed (Debian: apt-get install prometheus; .ci/run installs it)")
    server, _, _ = served_log
    config = tmp_path / "prometheus.yml"
    # The shipped config with this service as its target and second-long intervals.
    shipped = (ROOT / "deploy/prometheus/prometheus.yml").read_text()
    config.write_text(shipped.replace("scrape_interval: 15s", "scrape_interval: 1s")
                      .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
                      .replace('"127.0.0.1:8000"', f'"127.0.0.1:{server.port}"')
                      .replace("- alerts.yml", f"- {ROOT / 'deploy/prometheus/alerts.yml'}"))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "w")
    proc = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        def scraped():
            try:
                targets = httpx.get(f"{api}/targets", timeout=2).json()["data"]["activeTargets"]
            except (httpx.HTTPError, KeyError, ValueError):
                return False
            return bool(targets) and targets[0]["health"] == "up"

        wait_until(scraped, "Prometheus to scrape the service", timeout=60, every=0.5)

        def query(expr: str) -> list:
            return httpx.get(f"{api}/query", params={"query": expr}, timeout=5).json()["data"]["result"]

        wait_until(lambda: query("router_novelty_high_share"), "the drift gauges in Prometheus", timeout=30, every=0.5)
        [share] = query("router_novelty_high_share")
        assert 0.05 < float(share["value"][1]) < 0.2  # the seeded novel traffic, through the service's gauge
        assert query('router_routes_total') and query("router_estimated_cost_usd_total")

        def evaluated():
            groups = httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            return rules if rules and all(r.get("lastEvaluation", "").startswith("2") and
                                          not r["lastEvaluation"].startswith("0001") for r in rules) else None

        rules = wait_until(evaluated, "the rules to be evaluated", timeout=30, every=0.5)
        assert len(rules) == 9 and all(r["health"] == "ok" for r in rules), json.dumps(rules, indent=1)[:3000]
        # The condition holds once a scrape has brought the gauges in (a rule evaluated before the first
        # scrape is inactive); `for: 30m` has not passed, so it stays pending.
        def novelty_state():
            groups = httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
            return next(r["state"] for g in groups for r in g["rules"] if r["name"] == "RouterNoveltyHigh")

        wait_until(lambda: novelty_state() == "pending", "RouterNoveltyHigh to be pending", timeout=30, every=0.5)
        quiet = [r["name"] for r in rules if r["state"] == "inactive"]
        assert {"RouterDown", "RouterAuditBacklog", "RouterReloadRefused"} <= set(quiet)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
