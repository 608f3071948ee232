"""Every shell command in README.md and docs/ runs, as documented, on the demo set-up.

The set-up is what `make demo` leaves behind, made the same way: the repository's tracked
files copied to a temporary folder, then the Makefile's own `demo` recipe run there with
this interpreter's environment (`BIN`) and the install step marked done (`STAMP`): demo
data from `router-ml demo-data`, a router trained on it with the static embedder, an MLflow
store (`mlflow.db`, `mlartifacts/`) in that folder, a registered version.

Each page then runs in a fresh copy of that folder, its ```bash blocks in order in one
bash session (tests/support/docs.py has the conventions: skips with a reason, expected
exit statuses, `router-ml serve` in the background on a free port). A command that fails
fails its page's test with the file, the line, the command and the end of its output.

Slow: training the demo router takes minutes on two cores (the static embedder is
distilled once and cached under ~/.cache/router-ml), and some pages train or retrain.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.docs import REPO, blocks, doc_files, run_page
from tests.support.serverproc import free_port

PAGE_TIMEOUT_S = 3600  # per page, and for the set-up: a shared two-core machine can be slow
SERVE_TRIES = 480  # 0.25 s apart: two minutes for a server to load its router and warm up
OUTPUT_TAIL = 60


def _pages() -> list[Path]:
    return [p for p in doc_files() if any(b.lang == "bash" for b in blocks(p))]


def _tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the docs test copies the repository's tracked files and needs git: {exc}")
    return [name for name in out.stdout.decode().split("\0") if name and (REPO / name).is_file()]


def _environment(workdir: Path) -> dict[str, str]:
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


def _link_venv(workdir: Path) -> None:
    """`.venv` in the copy is this interpreter's environment, so `.venv/bin/router-ml` and
    `source .venv/bin/activate` work as on a machine where `make demo` ran."""
    target = Path(sys.prefix)
    link = workdir / ".venv"
    if not link.exists():
        link.symlink_to(target, target_is_directory=True)


@pytest.fixture(scope="session")
def demo_setup(tmp_path_factory) -> Path:
    """A copy of the repository after `make demo` (the recipe as written, the install step skipped)."""
    base = tmp_path_factory.mktemp("docs") / "demo"
    for name in _tracked_files():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, base / name)
    _link_venv(base)
    result = subprocess.run(["make", "demo"], cwd=base,
                            env=_environment(base), capture_output=True, text=True, timeout=PAGE_TIMEOUT_S)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-OUTPUT_TAIL:])
        pytest.fail(f"`make demo` (the docs' set-up) failed with status {result.returncode}:\n{tail}")
    return base


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_documented_commands_run(page: Path, demo_setup: Path, tmp_path: Path):
    page_blocks = blocks(page)
    runnable = [b for b in page_blocks if b.runnable]
    if not runnable:
        skipped = [b for b in page_blocks if b.lang == "bash"]
        pytest.skip(f"every bash block of {page.name} is marked skip: "
                    + "; ".join(f"{b.where()} ({b.skip_reason})" for b in skipped))
    workdir = tmp_path / "project"
    shutil.copytree(demo_setup, workdir, symlinks=True)
    failure = run_page(str(page.relative_to(REPO)), page_blocks, workdir, _environment(workdir), tmp_path / "state",
                       free_port(), timeout_s=PAGE_TIMEOUT_S, serve_tries=SERVE_TRIES, tail=OUTPUT_TAIL)
    if failure:
        pytest.fail(failure, pytrace=False)
