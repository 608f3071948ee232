"""The documentation's screenshots of the decision explorer (docs/monitoring.md), taken by the
same headless Chromium as the browser tests, of a real `router-ml serve` over a seeded log:

    .venv/bin/python -m tests.support.explorer_screenshots docs/img

Trains a small router on the synthetic demo data (hashing embedder, seconds), seeds an audit
log (tests/support/audit_log.py: two router versions, a shadow, cascades, outcomes), serves it
and saves explorer-overview.png and explorer-request.png into the folder given.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.support import browser
from tests.support.audit_log import seed_audit_log
from tests.support.serverproc import Server


def main(out: Path) -> None:
    reason = browser.missing()
    if reason:
        raise SystemExit(f"cannot take screenshots: {reason}")
    from selenium.webdriver.common.by import By

    from router_ml import load_router
    from router_ml.core.audit_format import read_joined
    from router_ml.training.data.demo import write_demo
    from router_ml.training.fit.pipeline import TrainConfig, train

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = write_demo(tmp / "demo", n_prompts=300, seed=3)
        train(TrainConfig(outcomes=str(files["outcomes"]), catalog=str(files["catalog"]), out=str(tmp / "router"),
                          embedder_kind="hashing", folds=3, mlflow=False, cache_dir=str(tmp / "cache"),
                          router_version="router-b"), log=lambda _: None, progress=False)
        seed_audit_log(tmp / "audit.sqlite", load_router(str(tmp / "router")).models, n=2000, novel_share=0.02)
        # a request with a cascade and a reported outcome: the page with the most to show
        shown = next(r["request_id"] for r in reversed(read_joined(tmp / "audit.sqlite"))
                     if r["steps"] and any(o["model"] == r["model"] for o in r["outcomes"]))
        with Server(str(tmp / "router"), tmp, "--audit", "audit.sqlite") as server:
            server.wait_ready()
            driver = browser.headless_chromium(width=1360)
            try:
                driver.get(server.url + "/ui?window=24h")
                browser.full_page_screenshot(driver, out / "explorer-overview.png")
                driver.set_window_size(1360, 1000)
                driver.get(f"{server.url}/ui/requests/{shown}")
                driver.find_element(By.ID, "served-model")
                browser.full_page_screenshot(driver, out / "explorer-request.png")
            finally:
                driver.quit()
            server.stop()
    print(f"wrote {out / 'explorer-overview.png'} and {out / 'explorer-request.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
