"""What `make demo` leaves behind, made the same way, for the e2e tests that need it (the docs
test, the first-hour test): the repository's tracked files copied to a temporary folder, then
the Makefile's own `demo` recipe run there with this interpreter's environment (`BIN`) and the
install step marked done (`STAMP`): demo data from `router-ml demo-data`, a router trained on it
with the static embedder, an MLflow store (`mlflow.db`, `mlartifacts/`) in that folder, a
registered version holding `@champion`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.docs import REPO

SETUP_TIMEOUT_S = 3600  # a shared two-core machine can be slow
OUTPUT_TAIL = 60


def tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the demo set-up copies the repository's tracked files and needs git: {exc}")
    return [name for name in out.stdout.decode().split("\0") if name and (REPO / name).is_file()]


def environment(workdir: Path) -> dict[str, str]:
    """This interpreter's environment on PATH; `make` in a page (or the set-up) uses it as
    installed: MAKEFLAGS sets the Makefile's BIN and a STAMP newer than pyproject.toml, so no
    page can start an install into it."""
    venv_bin = Path(sys.executable).parent
    stamp = workdir.parent / "installed.stamp"
    stamp.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "MLFLOW_REGISTRY", "SPARK_REMOTE"))}
    env.update(PATH=f"{workdir / '.venv' / 'bin'}{os.pathsep}{venv_bin}{os.pathsep}{env.get('PATH', '')}",
               MLFLOW_DISABLE_TELEMETRY="true", TOKENIZERS_PARALLELISM="false", PYTHONDONTWRITEBYTECODE="1",
               MAKEFLAGS=f"BIN={venv_bin} STAMP={stamp}")
    env.pop("VIRTUAL_ENV", None)
    return env


def link_venv(workdir: Path) -> None:
    """`.venv` in the copy is this interpreter's environment, so `.venv/bin/router-ml` and
    `source .venv/bin/activate` work as on a machine where `make demo` ran."""
    target = Path(sys.prefix)
    link = workdir / ".venv"
    if not link.exists():
        link.symlink_to(target, target_is_directory=True)


def make_demo(base: Path) -> Path:
    """Copy the repository to `base` and run `make demo` there (the recipe as written, the install
    step skipped); fails the test with the end of its output if it fails."""
    for name in tracked_files():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, base / name)
    link_venv(base)
    result = subprocess.run(["make", "demo"], cwd=base, env=environment(base), capture_output=True, text=True,
                            timeout=SETUP_TIMEOUT_S)
    (base / "make-demo.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-OUTPUT_TAIL:])
        pytest.fail(f"`make demo` (the e2e set-up) failed with status {result.returncode}:\n{tail}")
    return base
