"""The documentation's shell commands, as tests/e2e/test_docs_commands.py runs them.

The convention (docs/development.md says the same, for writers):

- A fenced block whose language is `bash` holds commands a user copies: the test runs it.
  Output is fenced as `text` (or `console`), never as `bash`; `python`, `yaml`, `json`,
  ... blocks are not run.
- A bash block whose first line is `# docs-test: skip (REASON)` is not run; the reason is
  required and shows in the test's report. Keep these few: a real cluster, a clone from
  GitHub, a `pip install`, a command that needs data the demo does not have.
- A command may end with a non-zero status N on purpose when its text says so in a
  comment, `# exits N ...` (e.g. `router-ml promote ... # exits 1 if v2 is worse`): the
  test then accepts 0 or N. Any other non-zero status fails the test.
- `curl` fails on an HTTP error status (the test adds `--fail-with-body`), unless the
  command prints the status itself (`-w '%{http_code}'`), as the examples of errors do.
- The blocks of one page run in order in one bash session (`set -o pipefail`, stopping at
  the first command that fails), in a fresh copy of the demo set-up (what `make demo`
  leaves behind) with `.venv` on PATH, as a reader would run them in one terminal.
- `router-ml serve ...` starts in the background on a free port (the test adds `--port`
  and writes that port wherever the page says `localhost:8000`); the next commands run
  once its `/readyz` answers 200, and the server is stopped (SIGTERM) when another one
  starts or the page ends.
- Placeholders a user must fill in (`<from the answer>`) do not belong in a bash block:
  compute the value (`$(...)`), use the demo's files, or fence the block as `text`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN = "bash"
NOT_RUN = {"text", "console", "python", "yaml", "json", "jsonl", "csv", "toml", "ini", "http", "markdown", "md", "mermaid"}
DOCUMENTED_PORT = 8000

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
_DIRECTIVE = re.compile(r"^\s*#\s*docs-test:(?P<rest>.*)$")
_SKIP = re.compile(r"^\s*skip\s*\((?P<reason>[^()]*\S[^()]*)\)\s*$")
_EXITS = re.compile(r"#\s*exits (?P<status>\d+)\b")
_SERVE = re.compile(r"^(?P<env>(?:[A-Za-z_][A-Za-z0-9_]*=(?:\"[^\"]*\"|'[^']*'|\S+)\s+)*)"
                    r"(?P<cmd>(?:\.venv/bin/)?router-ml\s+serve\b)")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(?P<word>[A-Za-z_][A-Za-z0-9_]*)\1")
_PLACEHOLDER = re.compile(r"(?<![<\w])<(?!<)[A-Za-z][^<>\n]*>")


def doc_files(repo: Path = REPO) -> list[Path]:
    """README.md and every page of the site, in the order a reader meets them."""
    return [repo / "README.md", *sorted((repo / "docs").rglob("*.md"))]


@dataclass
class Block:
    path: str  # relative to the repository
    lang: str
    first_line: int  # 1-based line of the block's first content line
    lines: list[str]
    directive: str | None = None  # the text after "docs-test:" on the first line, if any

    @property
    def runnable(self) -> bool:
        return self.lang == RUN and self.skip_reason is None

    @property
    def skip_reason(self) -> str | None:
        if self.directive is None:
            return None
        match = _SKIP.match(self.directive)
        return match.group("reason").strip() if match else None

    def where(self, offset: int = 0) -> str:
        return f"{self.path}:{self.first_line + offset}"


def blocks(path: Path, repo: Path = REPO) -> list[Block]:
    """Every fenced code block of a Markdown file, with its language and position."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, lang = len(match.group("indent")), match.group("fence"), match.group("info").lower()
        body, j = [], i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence) and lines[j].strip().strip(fence[0]) == ""):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j].lstrip())
            j += 1
        block = Block(str(path.relative_to(repo)), lang, i + 2, body)
        if body and (directive := _DIRECTIVE.match(body[0])):
            block.directive = directive.group("rest").strip()
        found.append(block)
        i = j + 1
    return found


def all_blocks(repo: Path = REPO) -> list[Block]:
    return [b for path in doc_files(repo) for b in blocks(path, repo)]


@dataclass
class Command:
    """One command as bash reads it: continuation lines and heredoc bodies included."""

    start: int  # index of its first line in the block
    end: int  # index of its last line (inclusive)
    text: str
    allowed_status: int = 0


def commands(block: Block) -> list[Command]:
    out: list[Command] = []
    i, lines = 0, block.lines
    while i < len(lines):
        if not lines[i].strip() or lines[i].lstrip().startswith("#"):
            i += 1
            continue
        start, heredocs, quote = i, [], None
        while True:
            line = lines[i]
            code, quote = _code(line, quote)
            heredocs += [m.group("word") for m in _HEREDOC.finditer(code)]
            if (quote or code.rstrip().endswith(("\\", "|", "&&", "||"))) and i + 1 < len(lines):
                i += 1
                continue
            break
        for word in heredocs:  # the bodies follow the command, each ends at its word
            while i + 1 < len(lines) and lines[i + 1].strip() != word:
                i += 1
            i = min(i + 1, len(lines) - 1)
        text = "\n".join(lines[start:i + 1])
        allowed = _EXITS.search(text)
        out.append(Command(start, i, text, int(allowed.group("status")) if allowed else 0))
        i += 1
    return out


def _code(line: str, quote: str | None = None) -> tuple[str, str | None]:
    """The line without a trailing `# comment` (a `#` after a space, outside quotes), and the
    quote still open at its end (`quote`: the one open at its start). Good enough for the
    commands the docs show."""
    prev = " "
    for k, ch in enumerate(line):
        if quote:
            if ch == quote and not (quote == '"' and prev == "\\"):
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and prev.isspace():
            return line[:k], None
        prev = ch
    return line, quote


def placeholders(block: Block) -> list[tuple[int, str]]:
    """`<...>` a user would have to replace, outside heredoc redirections and comments."""
    found, quote = [], None
    for k, line in enumerate(block.lines):
        code, quote = _code(line, quote)
        for m in _PLACEHOLDER.finditer(code):
            found.append((block.first_line + k, m.group(0)))
    return found


def is_serve(line: str) -> bool:
    return bool(_SERVE.match(line.strip()))


@dataclass
class Script:
    """A page's runnable blocks as one bash script, and where each script line came from."""

    text: str
    origin: dict[int, tuple[Block, Command]] = field(default_factory=dict)  # script line (1-based) -> source
    skipped: list[Block] = field(default_factory=list)


PRELUDE = r"""
set -o pipefail -o errtrace
__docs_server_pid=
__docs_stop_server() {
    if [ -n "$__docs_server_pid" ]; then
        kill -TERM "$__docs_server_pid" 2>/dev/null || true
        wait "$__docs_server_pid" 2>/dev/null || true
        __docs_server_pid=
    fi
}
__docs_serve() {  # "$@": the documented `router-ml serve ...` (behind `env` for its assignments)
    __docs_stop_server
    "$@" --port "$DOCS_PORT" >> "$DOCS_STATE/server.log" 2>&1 &
    __docs_server_pid=$!
    local tries=0
    until command curl -fs -o /dev/null "http://127.0.0.1:$DOCS_PORT/readyz"; do
        if ! kill -0 "$__docs_server_pid" 2>/dev/null; then
            echo "docs-test: the server exited before it was ready" >&2
            local rc=0; wait "$__docs_server_pid" || rc=$?
            __docs_server_pid=; return $(( rc ? rc : 1 ))
        fi
        tries=$((tries + 1))
        if [ "$tries" -gt "$DOCS_SERVE_TRIES" ]; then
            echo "docs-test: the server was not ready after $DOCS_SERVE_TRIES tries" >&2; return 1
        fi
        sleep 0.25
    done
}
curl() {  # an HTTP error fails the command, unless it prints the status itself (-w '%{http_code}')
    case " $* " in
        *" -w "*|*" --write-out "*) command curl "$@" ;;
        *) command curl --fail-with-body "$@" ;;
    esac
}
__docs_err() {  # $1: script line, $2: status
    # Inside a function (the curl wrapper): its status becomes the calling command's, blamed there.
    if [ "${#FUNCNAME[@]}" -gt 2 ]; then return 0; fi
    if [ "${__DOCS_ALLOWED[$1]:-0}" = "$2" ]; then return 0; fi
    echo "$1 $2" > "$DOCS_STATE/failed"
    exit "$2"
}
trap 'trap - DEBUG; __docs_stop_server' EXIT
trap '__docs_err "$LINENO" "$?"' ERR
trap 'echo "$LINENO $EPOCHREALTIME" >> "$DOCS_STATE/lines"' DEBUG
"""


def page_script(blocks_of_page: list[Block], port: int) -> Script:
    """One script for a page's bash blocks: the prelude, then each runnable block as written,
    with `router-ml serve` started in the background and `localhost:8000` made `localhost:PORT`."""
    head = PRELUDE.strip("\n").splitlines()
    body: list[str] = []
    script = Script("")
    allowed: dict[int, int] = {}
    for block in blocks_of_page:
        if block.lang != RUN:
            continue
        if not block.runnable:
            script.skipped.append(block)
            continue
        cmds = commands(block)
        for k, line in enumerate(block.lines):
            line = line.replace(f"localhost:{DOCUMENTED_PORT}", f"localhost:{port}")
            line = line.replace(f"127.0.0.1:{DOCUMENTED_PORT}", f"127.0.0.1:{port}")
            cmd = next((c for c in cmds if c.start <= k <= c.end), None)
            if cmd is not None and k == cmd.start and is_serve(line):
                indent = line[:len(line) - len(line.lstrip())]
                line = f"{indent}__docs_serve env {line.lstrip()}"
            body.append(line)
            number = len(head) + 1 + len(body)  # the ALLOWED line comes before the body
            if cmd is not None:
                script.origin[number] = (block, cmd)
                if cmd.allowed_status:
                    allowed[number] = cmd.allowed_status
    declare = "declare -A __DOCS_ALLOWED=(" + " ".join(f"[{n}]={s}" for n, s in allowed.items()) + ")"
    script.text = "\n".join([*head, declare, *body]) + "\n"
    return script


def line_times(state: Path) -> list[tuple[str, float]]:
    """(script line, the time it began) for each command the page's script ran, in order."""
    pairs = [row.split() for row in (state / "lines").read_text().splitlines()]
    return [(p[0], float(p[1])) for p in pairs if len(p) == 2]


def run_page(page: str, page_blocks: list[Block], workdir: Path, env: dict[str, str], state: Path, port: int, *,
             timeout_s: float = 1800, serve_tries: int = 480, tail: int = 60) -> str | None:
    """Run a page's bash blocks in `workdir`; None when every command did what the page says,
    else a message naming the file, the line and the command, with the end of the output."""
    script = page_script(page_blocks, port)
    state.mkdir(parents=True, exist_ok=True)
    (state / "page.sh").write_text(script.text)
    env = {**env, "DOCS_PORT": str(port), "DOCS_STATE": str(state), "DOCS_SERVE_TRIES": str(serve_tries)}
    log = state / "output.log"
    timed_out = False
    with open(log, "w") as out:
        # A session of its own, so that a timeout ends the server the page started as well.
        proc = subprocess.Popen(["bash", str(state / "page.sh")], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            status = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                status = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                status = proc.wait()
        try:  # whatever the page left running in the background (`cmd &`)
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if status == 0 and not timed_out:
        return None
    failed = (state / "failed").read_text().split() if (state / "failed").exists() else None
    line = int(failed[0]) if failed else None
    if timed_out and (state / "lines").exists():  # the last page line begun (traps log lines of their own)
        begun = [int(n) for n, _ in line_times(state) if int(n) in script.origin]
        line = begun[-1] if begun else None
    origin = script.origin.get(line) if line else None
    output = "\n".join(log.read_text(errors="replace").splitlines()[-tail:])
    if origin is not None:
        block, cmd = origin
        what = f"did not finish within {timeout_s:g} s" if timed_out else f"exited with status {failed[1]}"
        expected = f" (the page expects {cmd.allowed_status})" if cmd.allowed_status else ""
        message = f"{block.where(cmd.start)}: this documented command {what}{expected}:\n\n{cmd.text}\n"
    else:
        message = f"{page}: the page's commands " + ("timed out" if timed_out else f"failed with status {status}") + \
            " (no single command to blame: a syntax error?)\n"
    message += f"\n--- output (last {tail} lines) ---\n{output}"
    server = state / "server.log"
    if server.exists():
        message += "\n--- router-ml serve (last 20 lines) ---\n" + "\n".join(server.read_text(errors="replace").splitlines()[-20:])
    return message
