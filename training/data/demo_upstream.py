"""A stand-in provider for the demo's five SYNTHETIC models, OpenAI-compatible, on localhost.

    router-ml demo-upstream --port 9000
    router-ml serve --router models/demo --catalog data/demo/catalog-local.yaml ...

so that the gateway (`POST /v1/chat/completions`) can be tried with no provider account and
no key. It answers `POST /v1/chat/completions` (streamed or not) and `GET /v1/models` for
nano, coder, mini, pro and legacy-xl, in character: a request's prompt is given a task and
a difficulty from its wording (`guess_task`, a few keyword rules, much cruder than a real
model), the model succeeds with the probability the demo log's generator gives it
(training/data/demo.py, `success_probability`), and the answer is written from the
demo's templates (`answer`), so a wrong answer often hedges, slips in its arithmetic, does
not parse or declines, as in the demo log the learned verifier was trained on. The same
prompt and model always get the same answer. Headers `x-demo-task` and `x-demo-outcome`
say what was drawn (for reporting outcomes in a demo; a real provider says nothing of the
kind). Nothing here is a language model.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from router_ml.training.data.demo import (
    DEFAULT_PORT,
    HARDNESS_SD,
    MODELS,
    TIER_DIFFICULTY,
    answer,
    success_probability,
)

_TASK_RULES = [  # first match wins
    ("translation", r"\btranslat|\bhow do you say\b|\bwhat does [\"'].+[\"'] mean\b|\bin (french|spanish|german|italian|"
                    r"japanese|portuguese|polish|dutch|icelandic|basque|swahili|finnish)\?"),
    ("summarisation", r"\bsummar|\btl;?dr\b|\bgist\b|\bmeeting notes\b|\bexecutive summary\b"),
    ("code", r"\b(python|javascript|typescript|rust|golang|java|kotlin|ruby|swift|php|sql|bash|c\+\+|c#|html|css|regex|"
             r"function|class|module|script|compiler|parser|git|api|endpoint|deadlock|race condition|refactor|"
             r"unit tests?|lock-free|b\+? ?tree|hash map)\b"),
    ("math", r"\b(prove|proof|theorem|integral|derivative|equation|solve|calculate|compute|square root|matrix|"
             r"eigenvalues?|probability|percent|recurrence|modulo|remainder|fraction|sum of)\b|\d\s*[-+*/x^%]\s*\d|%"),
    ("logic", r"\b(puzzle|riddle|knights?|knaves?|deduc\w*|sits? (left|next)|what comes next|odd one out)\b"),
    ("writing", r"\b(haiku|poem|essay|story|novel|rewrite|reword|synonym|cover letter|slogan|typos?|spelling|"
                r"speech|draft an email|blog post)\b"),
    ("analysis", r"\b(analy[sz]e|analysis|evaluate|pros and cons|advantages|trade-?offs?|architecture|threat model|"
                 r"compare|critically|literature review|study|experiment)\b"),
    ("chat", r"^\W*(hi|hello|hey|good (morning|afternoon|evening|night)|thanks?|thank you|bye|how are you)\b|"
             r"\b(joke|fun fact|riddle)\b"),
]
_HARD = re.compile(
    r"\b(prove|proof|rigorous\w*|formal(ly)?|derive|theorem|design|architecture|trade-?offs?|distributed|"
    r"concurren\w*|lock-free|thread-safe|linearizab\w*|consensus|raft|paxos|compiler|critically|historiograph\w*|"
    r"literature review|threat model|legal|clause|indemnif\w*|liab\w*|register|every (decision|failure|step)|"
    r"single points? of failure|complexity|power analysis|randomi[sz]ed|from first principles|close reading)\b", re.I)
_HARDEST = re.compile(r"\b(prove|proof|rigorous\w*|theorem|derive|lock-free|consensus|raft|paxos|compiler|"
                      r"critically|literature review|threat model|indemnif\w*|legal clause)\b", re.I)
_MEDIUM = re.compile(r"\b(explain|why|steps?|bullet|with tests|unit tests|module|class|paragraph|compare|plan|"
                     r"advice|tips|differences?)\b", re.I)


def guess_task(prompt: str) -> tuple[str, str]:
    """(task, tier) of a prompt, from its wording: a few keyword rules (see the module docstring)."""
    text = prompt.lower()
    task = next((name for name, rule in _TASK_RULES if re.search(rule, text)), "factual")
    hard = len(_HARD.findall(prompt))
    if _HARDEST.search(prompt) or hard >= 2 or (hard and len(prompt) > 160) or len(prompt) > 900:
        tier = "hard"
    elif hard or _MEDIUM.search(prompt) or len(prompt) > 160:
        tier = "medium"
    else:
        tier = "easy"
    return task, tier


def _rng(*parts: str) -> np.random.Generator:
    digest = hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def reply(prompt: str, model: str, seed: int = 7) -> tuple[str, dict]:
    """The model's answer to `prompt` and what was drawn: {task, tier, success}. Deterministic."""
    task, tier = guess_task(prompt)
    shared = _rng(str(seed), prompt)  # the prompt's difficulty and hardness, shared by every model
    difficulty = TIER_DIFFICULTY[tier] + shared.uniform(-0.08, 0.08)
    hardness = shared.normal(0.0, HARDNESS_SD)
    own = _rng(str(seed), model, prompt)
    success = bool(own.random() < success_probability(model, task, difficulty, hardness))
    return answer(own, prompt, task, tier, success), {"task": task, "tier": tier, "success": success}


def _prompt_of(body: dict) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: expected a non-empty list")
    parts = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # content parts
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        if isinstance(content, str) and (not isinstance(message, dict) or message.get("role") != "system"):
            parts.append(content)
    return "\n".join(parts)


class DemoUpstream:
    """The server: `DemoUpstream(port=0)` starts it on a thread; `url` is its base URL (ending in /v1)."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, seed: int = 7, log=None) -> None:
        self.seed = seed
        self.calls = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "router-ml-demo-upstream"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.rstrip("/") in ("/v1/models", "/models"):
                    data = {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "router-ml demo"}
                                                       for m in MODELS]}
                    return self._json(200, data)
                self._json(404, _error(f"no route {self.path}; try POST /v1/chat/completions", "not_found"))

            def do_POST(self):
                if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                    return self._json(404, _error(f"no route {self.path}; try POST /v1/chat/completions",
                                                  "not_found"))
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                    if not isinstance(body, dict):
                        raise ValueError("expected a JSON object")
                    prompt = _prompt_of(body)
                except (ValueError, TypeError) as exc:
                    return self._json(400, _error(f"invalid request: {exc}", "invalid_request"))
                model = body.get("model")
                if model not in MODELS:
                    return self._json(404, _error(f"model {model!r} not found; this demo serves {list(MODELS)}",
                                                  "model_not_found"))
                upstream.calls += 1
                text, drawn = reply(prompt, model, upstream.seed)
                out_tokens = max(1, math.ceil(len(text) / 4))
                usage = {"prompt_tokens": max(1, math.ceil(len(prompt) / 4)), "completion_tokens": out_tokens,
                         "total_tokens": max(1, math.ceil(len(prompt) / 4)) + out_tokens}
                headers = {"x-demo-task": f"{drawn['task']}/{drawn['tier']}",
                           "x-demo-outcome": "success" if drawn["success"] else "failure"}
                created = int(time.time())
                if body.get("stream"):
                    return self._stream(model, text, created, headers)
                data = {"id": f"chatcmpl-demo-{upstream.calls}", "object": "chat.completion", "created": created,
                        "model": model, "usage": usage,
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}]}
                self._json(200, data, headers)

            def _json(self, status: int, data: dict, headers: dict | None = None) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self, model: str, text: str, created: int, headers: dict) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                pieces = [text[i:i + 24] for i in range(0, len(text), 24)] or [""]
                events = [{"id": f"chatcmpl-demo-{upstream.calls}", "object": "chat.completion.chunk",
                           "created": created, "model": model,
                           "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                          for piece in pieces]
                events.append({"id": f"chatcmpl-demo-{upstream.calls}", "object": "chat.completion.chunk",
                               "created": created, "model": model,
                               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                for event in events:
                    self._chunk(f"data: {json.dumps(event)}\n\n".encode())
                self._chunk(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_address[1]
        self.url = f"http://{host}:{self.port}/v1"
        self.thread: threading.Thread | None = None

    def start(self) -> DemoUpstream:
        self.thread = threading.Thread(target=self.server.serve_forever, name="demo-upstream", daemon=True)
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _error(message: str, code: str) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "code": code}}
