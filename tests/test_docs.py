"""The documentation's shape, fast: README.md stays a front door, every page is in the site's
nav, every code block says what it is, and the harness that runs the documented commands
(tests/e2e/test_docs_commands.py) blames the right line.

`mkdocs build --strict` (make docs) checks the site's links and anchors; here: what it does
not (README.md and data/README.md are read on the repository, not built).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.docs import (
    NOT_RUN,
    REPO,
    RUN,
    Block,
    all_blocks,
    blocks,
    commands,
    page_script,
    placeholders,
    run_page,
)
from tests.support.serverproc import free_port

README_MAX_LINES = 250
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def _nav_pages(entries) -> list[str]:
    pages = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines, the limit is {README_MAX_LINES}: move the detail to a page under docs/")


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    nav = _nav_pages(config["nav"])
    pages = sorted(str(p.relative_to(REPO / "docs")) for p in (REPO / "docs").rglob("*.md"))
    assert sorted(set(pages) - set(nav)) == [], "pages missing from the nav in mkdocs.yml"
    assert sorted(set(nav) - set(pages)) == [], "nav entries in mkdocs.yml without a page"
    assert len(nav) == len(set(nav)), "a page is twice in the nav"


@pytest.mark.parametrize("name", ["README.md", "data/README.md"])
def test_repository_readmes_link_to_files_that_exist(name):
    path = REPO / name
    broken = []
    for match in _LINK.finditer(path.read_text()):
        target = match.group("target").split("#")[0]
        if not target or "://" in target or target.startswith("mailto:"):
            continue
        if not (path.parent / target).exists():
            broken.append(target)
    assert broken == [], f"{name} links to files that do not exist"


def test_every_code_block_says_what_it_is():
    unknown = [f"{b.where(-1)}: ```{b.lang or '(no language)'}" for b in all_blocks() if b.lang not in NOT_RUN | {RUN}]
    assert unknown == [], ("fence shell commands as ```bash (run by the docs test) and output as ```text; "
                           f"known languages: {sorted(NOT_RUN | {RUN})}")


def test_skips_have_reasons_and_directives_are_known():
    bad = [f"{b.where()}: {b.directive!r}" for b in all_blocks()
           if b.directive is not None and (b.lang != RUN or b.skip_reason is None)]
    assert bad == [], "a docs-test directive is `# docs-test: skip (REASON)` on the first line of a bash block"


def test_runnable_blocks_have_no_placeholders():
    found = [f"{where}: {text}" for b in all_blocks() if b.runnable for where, text in placeholders(b)]
    assert found == [], "a bash block is run as written: compute the value, use the demo's files, or fence it as text"


def test_every_page_is_valid_bash():
    pages = sorted({b.path for b in all_blocks() if b.runnable})
    for page in pages:
        script = page_script(blocks(REPO / page), port=8000)
        result = subprocess.run(["bash", "-n"], input=script.text, capture_output=True, text=True)
        assert result.returncode == 0, f"{page}: {result.stderr}"


# The harness itself, on a page written here: it must blame the right line, honour `# exits N`,
# and serve in the background with the port substituted.

def _page(tmp_path: Path, text: str) -> list[Block]:
    path = tmp_path / "page.md"
    path.write_text(text)
    return blocks(path, repo=tmp_path)


def _run(tmp_path: Path, text: str, **kwargs) -> str | None:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", **kwargs.pop("env", {})}
    return run_page("page.md", _page(tmp_path, text), work, env, tmp_path / "state", free_port(), **kwargs)


def test_commands_join_continuations_and_heredocs(tmp_path):
    [block] = _page(tmp_path, "x\n\n```bash\necho a \\\n  b   # exits 3\ncat > f <<'EOF'\nx\nEOF\ntrue\n```\n")
    assert [(c.start, c.end, c.allowed_status) for c in commands(block)] == [(0, 1, 3), (2, 4, 0), (5, 5, 0)]


def test_a_failing_command_is_named_with_its_file_and_line(tmp_path):
    text = ("# Page\n\n```bash\ntrue\necho skipped-over\n```\n\n```text\nnot run\n```\n\n"
            "```bash\n# docs-test: skip (never run)\nfalse\n```\n\n```bash\necho fine\nls /no/such/dir \\\n"
            "  --all\necho never\n```\n")
    message = _run(tmp_path, text)
    assert message is not None
    assert message.startswith("page.md:19: this documented command exited with status 2:"), message
    assert "ls /no/such/dir \\\n  --all" in message and "echo never" not in message.split("---")[0]
    assert "fine" in message  # the output before the failure


def test_an_exit_status_the_page_announces_is_not_a_failure(tmp_path):
    assert _run(tmp_path, "```bash\nbash -c 'exit 1'   # exits 1: on purpose\necho ok\n```\n") is None
    message = _run(tmp_path, "```bash\nbash -c 'exit 2'   # exits 1: on purpose\n```\n")
    assert message is not None and "exited with status 2 (the page expects 1)" in message


def test_a_failure_inside_a_substitution_blames_its_command(tmp_path):
    message = _run(tmp_path, "```bash\ntrue\nx=$(false)\n```\n")
    assert message is not None and message.startswith("page.md:3:"), message


def test_a_command_that_hangs_is_named(tmp_path):
    message = _run(tmp_path, "```bash\ntrue\nsleep 30\n```\n", timeout_s=2)
    assert message is not None and message.startswith("page.md:3: this documented command did not finish"), message


def test_serve_runs_in_the_background_on_the_test_port(tmp_path):
    """A stand-in `router-ml` that serves /readyz with Python's http.server on --port."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "router-ml"
    fake.write_text(f"""#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = --port ] && port=$2; shift; done
mkdir -p served && echo ok > served/readyz && echo "$GREETING" > served/greeting
exec {sys.executable} -m http.server --bind 127.0.0.1 --directory served "$port"
""")
    fake.chmod(0o755)
    text = ("```bash\nGREETING=hello router-ml serve --router models/demo\n```\n\n"
            "```bash\ncurl -s localhost:8000/greeting | grep -q hello\n```\n")
    assert _run(tmp_path, text, env={"HOME": str(tmp_path)}) is None
    log = (tmp_path / "state" / "server.log").read_text()
    assert '"GET /readyz' in log and '"GET /greeting' in log  # served, then the curl reached it
    message = _run(tmp_path, "```bash\nrouter-ml serve --router x\ncurl -s localhost:8000/missing\n```\n")
    assert message is not None and message.startswith("page.md:3:"), message
