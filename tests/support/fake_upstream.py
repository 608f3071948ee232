"""A small OpenAI-compatible server on localhost, with misbehaviours chosen by URL path.

    /ok/chat/completions          a normal completion ("plain answer from MODEL")
    /json/chat/completions        a completion whose content is JSON
    /slow/chat/completions        answers after `slow_s` seconds (to trigger timeouts)
    /err500/chat/completions      HTTP 500
    /bad400/chat/completions      HTTP 400 with an OpenAI-style error (the request's fault)
    /malformed/chat/completions   HTTP 200 with a body that is not JSON
    /flaky/chat/completions       HTTP 500 on the first call, then normal
    /cookie/chat/completions      a normal completion that also sets a cookie
    /refuse/chat/completions      a completion that declines ("I'm sorry, but I can't help ...")
    /refusalfield/chat/completions  a structured refusal (message.refusal set, content null)
    /tool/chat/completions        a tool call (content null) with valid JSON arguments
    /toolbad/chat/completions     a tool call whose arguments are not JSON
    /toolschema/chat/completions  a tool call whose arguments miss the declared schema's required field
    /htmlstream/chat/completions  with "stream": true, a 200 text/html page instead of an event stream
    /ratelimit/chat/completions   429 with Retry-After: 1 on the first call, then normal
    /always429/chat/completions   429 with Retry-After: 30, always
    /sum/chat/completions         a worked sum with a final answer ("2 + 2 = 4\n#### 4")
With "stream": true, ok/json send three SSE chunks and [DONE]; /drop sends one chunk and
closes the connection mid-stream.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeUpstream:
    def __init__(self, slow_s: float = 2.0) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.auth: list[str | None] = []
        self.cookies: list[str | None] = []  # the Cookie header of each request
        self.slow_s = slow_s
        self._flaky_seen = False
        self._ratelimit_seen = False
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                kind = self.path.strip("/").split("/")[0]
                upstream.calls.append((kind, body))
                upstream.auth.append(self.headers.get("Authorization"))
                upstream.cookies.append(self.headers.get("Cookie"))
                upstream.handle(self, kind, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # dropped connections are on purpose
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- behaviours ---------------------------------------------------------------------

    def handle(self, h, kind: str, body: dict) -> None:
        model = body.get("model", "?")
        if kind == "slow":
            time.sleep(self.slow_s)
            kind = "ok"
        if kind == "flaky":
            if not self._flaky_seen:
                self._flaky_seen = True
                return self._send(h, 500, b'{"error": "overloaded"}')
            kind = "ok"
        if kind == "ratelimit":
            if not self._ratelimit_seen:
                self._ratelimit_seen = True
                return self._send(h, 429, b'{"error": {"message": "slow down"}}', headers={"Retry-After": "1"})
            kind = "ok"
        if kind == "always429":
            return self._send(h, 429, b'{"error": {"message": "slow down"}}', headers={"Retry-After": "30"})
        if kind == "htmlstream" and body.get("stream"):
            return self._send(h, 200, b"<html><body>502 Bad Gateway (proxy)</body></html>", "text/html")
        if kind in ("tool", "toolbad", "toolschema", "refusalfield"):
            arguments = {"tool": '{"city": "Paris"}', "toolbad": '{"city": "Par', "toolschema": '{"town": "Paris"}'}
            message = {"role": "assistant", "content": None}
            if kind == "refusalfield":
                message["refusal"] = "I can't help with that."
            else:
                message["tool_calls"] = [{"id": "call_1", "type": "function",
                                          "function": {"name": "get_weather", "arguments": arguments[kind]}}]
            data = {"id": "cmpl-1", "object": "chat.completion", "model": model,
                    "choices": [{"index": 0, "message": message,
                                 "finish_reason": "stop" if kind == "refusalfield" else "tool_calls"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
            return self._send(h, 200, json.dumps(data).encode())
        if kind == "auth401":  # a provider refusing the gateway's key, quoting its first characters
            key = (h.headers.get("Authorization") or "").removeprefix("Bearer ")
            return self._send(h, 401, json.dumps({"error": {"message": f"Incorrect API key provided: {key[:6]}****",
                                                            "type": "invalid_request_error"}}).encode())
        if kind == "err500":
            return self._send(h, 500, b'{"error": {"message": "internal error"}}')
        if kind == "bad400":
            return self._send(h, 400, json.dumps({"error": {"message": "max_tokens too large", "type": "invalid_request_error"}}).encode())
        if kind == "malformed":
            return self._send(h, 200, b"<html>gateway timeout</html>", "text/html")
        extra = {"Set-Cookie": "session=client-a-secret; Path=/"} if kind == "cookie" else {}
        content = {"json": json.dumps({"answer": 42, "model": model}),
                   "refuse": "I'm sorry, but I can't help with that request.",
                   "sum": "2 + 2 = 4\n#### 4"}.get(kind, f"plain answer from {model}")
        if body.get("stream"):
            return self._stream(h, model, content, drop=kind == "drop")
        data = {"id": "cmpl-1", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
        self._send(h, 200, json.dumps(data).encode(), headers=extra)

    @staticmethod
    def _send(h, status: int, payload: bytes, kind: str = "application/json", headers: dict | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", kind)
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    @staticmethod
    def _stream(h, model: str, content: str, drop: bool) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        pieces = [content[: len(content) // 3], content[len(content) // 3: 2 * len(content) // 3], content[2 * len(content) // 3:]]
        events = [{"id": "c", "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
        for i, event in enumerate(events):
            data = f"data: {json.dumps(event)}\n\n".encode()
            h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            h.wfile.flush()
            if drop and i == 0:
                time.sleep(0.05)
                h.connection.shutdown(2)  # mid-stream: no terminating chunk
                h.close_connection = True
                return
        done = b"data: [DONE]\n\n"
        h.wfile.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
        h.wfile.flush()
