"""Make the MLflow UI screenshots in docs/img/ again (docs/evaluation.md shows them).

    python docs/screenshots.py [--workdir DIR] [--out docs/img]

Builds a demo MLflow store in a fresh folder the way a user would: demo data, two
registered versions of `router-ml-demo` (the hashing embedder, so it takes a few minutes,
not an hour), an evaluation, a comparison and a promotion, all through the `router-ml`
commands; starts `mlflow ui` on that store (SQLite, telemetry off) on a free port on
localhost; and takes PNG screenshots with headless Chromium (Debian: `apt-get install
chromium`) of the experiment's runs, the comparison run and the registered model.

Chromium runs with a new empty profile and with its background networking, updates and
sync off, so it reaches nothing but the local MLflow server. Nothing outside `--workdir`
and `--out` is written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAME = "router-ml-demo"
EXPERIMENT = "router-ml"
WINDOW = "1440,900"
SHOTS = {  # file -> what it shows (the URL is filled in once the runs exist)
    "mlflow-runs.png": "the experiment's runs",
    "mlflow-comparison-run.png": "the comparison run",
    "mlflow-registered-model.png": "the registered model",
}
# The browser asks for the UI by this name, mapped to 127.0.0.1 inside Chromium only: served from a
# name that is not localhost, the UI leaves out its assistant panel (a third of the window). The
# server is told the name is its own (--allowed-hosts, --cors-allowed-origins).
UI_HOST = "mlflow-ui.test"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1"]


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    print("$ " + " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # promote exits 1 when it refuses: a decision, logged like the others
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def build_store(work: Path, env: dict) -> None:
    """Demo data, two registered versions, an evaluation, a comparison, a promotion."""
    cli = [str(Path(sys.executable).parent / "router-ml")]
    run([*cli, "demo-data", "--out", "data", "--prompts", "1200"], work, env)
    common = ["--catalog", "data/catalog.yaml", "--embedder-kind", "hashing", "--folds", "3", "--register", NAME,
              "--no-verifier", "--cache-dir", "cache"]
    run([*cli, "train", "--outcomes", "data/outcomes.csv", "--out", "models/demo", "--strategy", "per_model",
         *common], work, env)
    run([*cli, "train", "--outcomes", "data/outcomes.csv", "--out", "models/demo-knn", "--strategy", "knn",
         *common], work, env)
    run([*cli, "evaluate", "--router", f"models:/{NAME}/1", "--outcomes", "data/holdout.csv", "--catalog",
         "data/catalog.yaml", "--no-baselines", "--cache-dir", "cache"], work, env)
    run([*cli, "compare", "--name", NAME, "--versions", "1,2", "--outcomes", "data/holdout.csv", "--catalog",
         "data/catalog.yaml", "--report", "reports/compare"], work, env)
    run([*cli, "promote", NAME, "1", "--alias", "champion"], work, env)
    run([*cli, "promote", NAME, "2", "--alias", "champion", "--outcomes", "data/holdout.csv", "--catalog",
         "data/catalog.yaml"], work, env)
    print(run([*cli, "versions", NAME], work, env))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def start_ui(work: Path, env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri",
                             f"sqlite:///{work / 'mlflow.db'}", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1", "--allowed-hosts", f"{UI_HOST}:{port},127.0.0.1:{port}",
                             "--cors-allowed-origins", f"http://{UI_HOST}:{port}"], cwd=work, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                if response.status == 200:
                    return proc
        except OSError:
            if proc.poll() is not None:
                sys.exit("mlflow ui exited before it answered /health")
            time.sleep(1)
    proc.kill()
    sys.exit("mlflow ui did not answer /health within 3 minutes")


def urls(api: str, base: str) -> dict[str, str]:
    """The page of each shot: the API is asked on `api` (127.0.0.1), the browser goes to `base`."""
    experiment = get_json(f"{api}/api/2.0/mlflow/experiments/get-by-name?experiment_name={EXPERIMENT}")
    experiment_id = experiment["experiment"]["experiment_id"]
    found = get_json(f"{api}/api/2.0/mlflow/runs/search",
                     {"experiment_ids": [experiment_id], "filter": "tags.kind = 'comparison'", "max_results": 1})
    comparison = found["runs"][0]["info"]["run_id"]
    return {"mlflow-runs.png": f"{base}/#/experiments/{experiment_id}/runs",
            "mlflow-comparison-run.png": f"{base}/#/experiments/{experiment_id}/runs/{comparison}",
            "mlflow-registered-model.png": f"{base}/#/models/{NAME}"}


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("no Chromium found: apt-get install chromium (Debian) or pass --chromium PATH")


def screenshot(browser: str, url: str, path: Path, profile: Path, wait_ms: int) -> None:
    """One PNG of `url` after `wait_ms` of virtual time (the UI loads its data from the server)."""
    cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW}",
           f"--host-resolver-rules=MAP {UI_HOST} 127.0.0.1",
           f"--virtual-time-budget={wait_ms}", f"--screenshot={path}", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if done.returncode != 0 or not path.exists() or path.stat().st_size < 10_000:
        sys.exit(f"chromium could not take {path.name} of {url} ({done.returncode}):\n{done.stderr[-2000:]}")
    print(f"wrote {path} ({path.stat().st_size:,} bytes): {url}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="Folder for the demo store (default: a new temporary folder).")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img", help="Where the PNGs go.")
    parser.add_argument("--chromium", help="The Chromium binary (default: chromium on PATH).")
    parser.add_argument("--reuse", action="store_true", help="Take the screenshots of the store already in --workdir.")
    parser.add_argument("--wait-ms", type=int, default=20_000, help="Virtual time for each page to load its data.")
    args = parser.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="router-ml-screenshots-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "MLFLOW_REGISTRY"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", TOKENIZERS_PARALLELISM="false")
    if args.reuse:
        if not (work / "mlflow.db").exists():
            sys.exit(f"--reuse: {work / 'mlflow.db'} does not exist")
    elif (work / "mlflow.db").exists():
        sys.exit(f"{work / 'mlflow.db'} exists: pass an empty --workdir (or --reuse to photograph it)")
    else:
        build_store(work, env)

    browser = args.chromium or chromium()
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = start_ui(work, env, port)
    try:
        for name, url in urls(f"http://127.0.0.1:{port}", f"http://{UI_HOST}:{port}").items():
            with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
                screenshot(browser, url, args.out / name, Path(profile), args.wait_ms)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
