"""Every shell command in README.md and docs/ runs, as documented, on the demo set-up.

The set-up is what `make demo` leaves behind, made the same way (the session fixture
`demo_setup`, tests/e2e/conftest.py and tests/support/demo_setup.py): demo data from
`router-ml demo-data`, a router trained on it with the static embedder, an MLflow store
(`mlflow.db`, `mlartifacts/`) in that folder, a registered version holding `@champion`.

Each page then runs in a fresh copy of that folder, its ```bash blocks in order in one
bash session (tests/support/docs.py has the conventions: skips with a reason, expected
exit statuses, `router-ml serve` in the background on a free port). A command that fails
fails its page's test with the file, the line, the command and the end of its output.

Slow: training the demo router takes minutes on two cores (the static embedder is
distilled once and cached under ~/.cache/router-ml), and some pages train or retrain.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.demo_setup import environment
from tests.support.docs import REPO, blocks, doc_files, run_page
from tests.support.serverproc import free_port

PAGE_TIMEOUT_S = 3600  # per page: a shared two-core machine can be slow
SERVE_TRIES = 480  # 0.25 s apart: two minutes for a server to load its router and warm up
OUTPUT_TAIL = 60


def _pages() -> list[Path]:
    return [p for p in doc_files() if any(b.lang == "bash" for b in blocks(p))]


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
    failure = run_page(str(page.relative_to(REPO)), page_blocks, workdir, environment(workdir), tmp_path / "state",
                       free_port(), timeout_s=PAGE_TIMEOUT_S, serve_tries=SERVE_TRIES, tail=OUTPUT_TAIL)
    if failure:
        pytest.fail(failure, pytrace=False)
