"""Error responses in the OpenAI API's shape (router_ml.serve.api_errors), and the handlers that
give FastAPI's own errors (bad JSON, a bad field, an unknown path, a refused token) that shape.

Messages go to clients: they say what was wrong with the request, never where the server keeps
its files (a failure of the server itself is logged with its detail and answered generically).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from router_ml.errors import AuthError
from router_ml.serve.api_errors import NO_RETRY, error_body
from router_ml.serve.metrics import Metrics, endpoint_of, status_of


def error(status: int, code: str, message: str, param: str | None = None, headers: dict | None = None) -> JSONResponse:
    """An error response; one that retrying cannot fix says `x-should-retry: false`."""
    extra = {"x-should-retry": "false"} if status in NO_RETRY else {}
    return JSONResponse(status_code=status, content=error_body(status, code, message, param),
                        headers={**extra, **(headers or {})})


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    """Refused tokens, unparsable bodies, invalid fields and unknown paths, as error responses
    (a rejected request is counted)."""

    @app.exception_handler(AuthError)
    async def unauthorized(request: Request, exc: AuthError):
        response = error(exc.status, "unauthorized" if exc.status == 401 else "forbidden", str(exc), "authorization")
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        kinds = {404: "not_found", 405: "method_not_allowed", 400: "malformed_json"}
        endpoint = endpoint_of(request.url.path)
        if endpoint != "chat_completions":  # (chat completions are counted by the ChatCounter middleware)
            metrics.requests.labels(endpoint, status_of(exc.status_code)).inc()
        if exc.status_code == 400:
            message = f"the body cannot be parsed: {exc.detail}"
        else:
            message = f"{request.method} {request.url.path}: {exc.detail}"
        return error(exc.status_code, kinds.get(exc.status_code, "http_error"), message,
                     "body" if exc.status_code == 400 else None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        metrics.requests.labels(endpoint_of(request.url.path), "rejected").inc()
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            return error(400, "malformed_json", f"the body is not valid JSON: {first.get('msg')}", "body")
        return error(400, "invalid_request", first.get("msg", "invalid request"), location(first.get("loc", ())))


def location(loc) -> str:
    """A field path as users write it ("prompts[1]", "[0].score"), without pydantic's internal
    tags for unions and validators ("function-after[...]", "list[Outcome]")."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or str(part) in ("OutcomeReport", "RouteRequest"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "body"
