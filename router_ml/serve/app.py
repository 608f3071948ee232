"""The HTTP service: FastAPI routes over a RoutingService (`router-ml serve`).

    POST /v1/route      {"prompt": "..."} or {"prompts": [...]}, optional quality_target, metadata
    POST /v1/outcomes   {"request_id", "model", "success" | "score", "cost", "latency_ms"} or a list
    GET  /healthz       the process is up
    GET  /readyz        a router is loaded and the audit store is writing (503 otherwise)
    GET  /metrics       Prometheus metrics
    POST /admin/reload  reload the router now (e.g. after a promotion)
    POST /v1/chat/completions  OpenAI-compatible: route, call the model, fall back (router_ml.serve.gateway)
    GET  /docs          OpenAPI documentation

    GET  /v1/models, /v1/models/{id}   the routing names, the catalog's aliases and models (OpenAI's shape)

Errors follow the OpenAI API's contract everywhere: {"error": {"message", "type",
"param", "code"}} (`field`, the same as `param`, is kept for older clients), with the
API's status codes: 400 an invalid request (malformed JSON, a bad field, named in
`param`), 401/403 a missing or insufficient token, 404 an unknown model, route or request
id, 409 a duplicate outcome, 413 over a size limit, 415 not JSON, 429 rate limited
upstream (with Retry-After), 502 every model failed. Every response carries an
`x-request-id` header (the audit row's id when there is one), and an error that retrying
cannot fix says `x-should-retry: false`. A failure inside the router never becomes a 500
for a valid request: the service answers with the fallback model and says so in `reason`
and `fallback`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from router_ml.errors import (
    AuditError,
    AuthError,
    BatchTooLargeError,
    ConfigError,
    DuplicateOutcomeError,
    InvalidRequestError,
    ModelNotAllowedError,
    ModelNotFoundError,
    PromptError,
    PromptTooLongError,
    RequestTooLargeError,
    UnknownRequestError,
)
from router_ml.serve.api_errors import NO_RETRY, error_body, new_request_id
from router_ml.serve.audit import Outcome
from router_ml.serve.auth import TokenStore
from router_ml.serve.limits import BodyLimit, Limits
from router_ml.serve.record import Served
from router_ml.serve.service import RoutingService

# Requests are read as JSON says them: "0.5" is not a number, true is not 1, and an unknown
# (e.g. misspelt) field is an error rather than silently ignored.
STRICT = ConfigDict(strict=True, extra="forbid")


class RouteRequest(BaseModel):
    model_config = STRICT

    prompt: str | None = Field(None, description="One prompt to route.")
    prompts: list[str] | None = Field(None, description="Several prompts to route in one batch.")
    quality_target: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False,
                                         description="0 = cheapest, 1 = highest quality.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Kept in the audit log with each decision.")

    @model_validator(mode="after")
    def one_of_prompt_or_prompts(self):
        if (self.prompt is None) == (self.prompts is None):
            raise ValueError("give either 'prompt' or 'prompts'")
        if self.prompts is not None and not self.prompts:
            raise ValueError("'prompts' is empty; give at least one prompt")
        return self


class RouteResponse(BaseModel):
    decisions: list[Served]


class OutcomeReport(BaseModel):
    """How a routed request went (the model must be one the service routes to)."""

    model_config = STRICT

    request_id: str
    model: str
    success: bool | None = None
    score: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    cost: float | None = Field(None, ge=0.0, allow_inf_nan=False, description="USD")
    latency_ms: float | None = Field(None, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def success_or_score(self):
        if self.success is None and self.score is None:
            raise ValueError("give 'success' (true/false) or 'score' (0..1)")
        return self

    def outcome(self) -> Outcome:
        return Outcome(self.request_id, self.model, self.success, self.score, self.cost, self.latency_ms)


def _error(status: int, code: str, message: str, param: str | None = None, headers: dict | None = None) -> JSONResponse:
    extra = {"x-should-retry": "false"} if status in NO_RETRY else {}
    return JSONResponse(status_code=status, content=error_body(status, code, message, param),
                        headers={**extra, **(headers or {})})


def create_app(service: RoutingService, gateway=None, *, tokens: TokenStore | None = None,
               limits: Limits | None = None, gateway_concurrency: int = 64) -> FastAPI:
    """The FastAPI app over a service (and its gateway). `tokens` (router_ml.serve.auth) guard
    every endpoint but the health checks; without them admin is off. `limits` default to
    the service's."""
    tokens = tokens or TokenStore([])
    limits = limits or service.limits
    app = FastAPI(title="router-ml", version="1", description="Routes each LLM request to the cheapest model that will "
                  "handle it well, and records every decision.",
                  docs_url=None if tokens.enabled else "/docs", openapi_url=None if tokens.enabled else "/openapi.json")
    app.state.service = service
    app.state.gateway = gateway
    # Upstream calls can block for long (timeouts, retries, streams): they get their own
    # threads, so health checks and /v1/route never wait behind them.
    gateway_threads = anyio.CapacityLimiter(gateway_concurrency)
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes,
                       on_refusal=lambda reason: service.metrics.limited.labels(reason).inc(),
                       render=lambda status, kind, message: json.dumps(error_body(status, kind, message, "body")).encode())

    def require(scope: str):
        """A dependency: the request's token must carry `scope` (admin is off without tokens)."""
        def check(request: Request) -> None:
            if not tokens.enabled:
                if scope == "admin":
                    service.metrics.auth_failures.labels("admin_off").inc()
                    raise AuthError("admin endpoints are off: configure tokens (--tokens-file or ROUTER_ML_TOKENS) "
                                    "with the admin scope", 403)
                return
            token = tokens.check(request.headers.get("authorization"))
            if token is None:
                service.metrics.auth_failures.labels("missing_or_unknown").inc()
                raise AuthError("a valid bearer token is needed: Authorization: Bearer TOKEN", 401)
            if scope not in token.scopes:
                service.metrics.auth_failures.labels("scope").inc()
                raise AuthError(f"the token {token.name!r} lacks the scope {scope!r}", 403)
        return Depends(check)

    @app.exception_handler(AuthError)
    async def unauthorized(request: Request, exc: AuthError):
        response = _error(exc.status, "unauthorized" if exc.status == 401 else "forbidden", str(exc), "authorization")
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        kinds = {404: "not_found", 405: "method_not_allowed", 400: "malformed_json"}
        if exc.status_code == 400:
            service.metrics.requests.labels("rejected").inc()
            message = f"the body cannot be parsed: {exc.detail}"
        else:
            message = f"{request.method} {request.url.path}: {exc.detail}"
        return _error(exc.status_code, kinds.get(exc.status_code, "http_error"), message,
                      "body" if exc.status_code == 400 else None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        service.metrics.requests.labels("rejected").inc()
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            return _error(400, "malformed_json", f"the body is not valid JSON: {first.get('msg')}", "body")
        return _error(400, "invalid_request", first.get("msg", "invalid request"), _location(first.get("loc", ())))

    app.add_middleware(JsonOnly, on_refusal=lambda: service.metrics.requests.labels("rejected").inc())
    app.add_middleware(RequestId)

    def listed_models() -> list[dict]:
        """Routing names, the catalog's aliases and its models, each with what it means."""
        from router_ml.core.catalog import ROUTING_NAMES

        catalog = gateway.upstreams.catalog if gateway is not None else None
        router = service.router
        rows = [{"id": name, "description": f"routed by the learned router ({router.version}) at the request's "
                 "quality_target (router.quality_target) or its default"} for name in ROUTING_NAMES]
        if catalog is not None:
            rows += [{"id": alias.name, "description": alias.describe()} for alias in catalog.aliases.values()]
        names = list(dict.fromkeys([*router.models, *(catalog.models if catalog is not None else ())]))
        for name in names:
            price = catalog.models.get(name) if catalog is not None else None
            text = price.description if price is not None and price.description else "this model, always"
            rows.append({"id": name, "description": text})
        return [{"id": r["id"], "object": "model", "created": 0, "owned_by": "router-ml", "description": r["description"]}
                for r in rows]

    @app.get("/v1/models", summary="The model names a client may use (OpenAI's shape)", dependencies=[require("route")])
    async def models():
        return {"object": "list", "data": listed_models()}

    @app.get("/v1/models/{model_id:path}", summary="One model name and what it means", dependencies=[require("route")])
    async def model(model_id: str):
        for row in listed_models():
            if row["id"] == model_id:
                return row
        return _error(404, "model_not_found", f"the model {model_id!r} does not exist here; GET /v1/models lists "
                      "what does", "model")

    @app.post("/v1/route", response_model=RouteResponse, summary="Route one prompt or a batch",
              dependencies=[require("route")])
    async def route(body: RouteRequest):
        prompts = [body.prompt] if body.prompt is not None else body.prompts
        try:
            served = await service.route_async(prompts, body.quality_target, body.metadata)
        except RequestTooLargeError as exc:
            return _error(413, exc.reason, str(exc), exc.field)
        except InvalidRequestError as exc:
            return _error(400, "invalid_request", str(exc), exc.field)
        except BatchTooLargeError as exc:
            return _error(413, "too_many_prompts", str(exc), "prompts")
        except PromptTooLongError as exc:
            return _error(413, "prompt_too_long", str(exc), _field(exc, body))
        except PromptError as exc:
            return _error(400, "invalid_prompt", str(exc), _field(exc, body))
        except ConfigError as exc:
            return _error(400, "invalid_request", str(exc), "quality_target")
        # Written directly: the records are plain data, and FastAPI's response validation of
        # every field would cost more than routing does with the static embedder.
        payload = {"decisions": [dataclasses.asdict(item) for item in served]}
        headers = {"x-request-id": served[0].request_id} if len(served) == 1 else None  # a batch: one per decision
        return Response(json.dumps(payload, ensure_ascii=False, allow_nan=False, default=_not_json),
                        media_type="application/json", headers=headers)

    @app.post("/v1/outcomes", summary="Report how a routed request went", dependencies=[require("outcomes")])
    def outcomes(body: OutcomeReport | list[OutcomeReport]):
        """One report or a list; a list is recorded all or nothing."""
        items = body if isinstance(body, list) else [body]
        if not items:
            return _error(400, "invalid_request", "no outcomes given", "body")
        try:
            recorded = service.record_outcomes([item.outcome() for item in items], single=not isinstance(body, list))
        except UnknownRequestError as exc:
            return _error(404, "unknown_request_id", str(exc), exc.field)
        except DuplicateOutcomeError as exc:
            return _error(409, "duplicate_outcome", str(exc), exc.field)
        except AuditError as exc:
            return _error(400, "invalid_outcome", str(exc), exc.field)
        except ConfigError as exc:
            return _error(503, "outcome_not_recorded", str(exc), None)
        return {"recorded": recorded}

    @app.post("/v1/chat/completions", summary="OpenAI-compatible chat completion, routed and executed",
              dependencies=[require("route")])
    async def chat_completions(request: Request):
        if gateway is None:
            return _error(404, "gateway_off", "the gateway is off: start `router-ml serve` with --catalog naming each "
                          "model's base_url", None)
        try:
            body = strict_json(await request.body())
        except (ValueError, RecursionError) as exc:
            service.metrics.requests.labels("rejected").inc()
            detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            return _error(400, "malformed_json", f"the body is not valid JSON: {detail}", "body")
        try:
            reply = await anyio.to_thread.run_sync(gateway.handle, body, limiter=gateway_threads)
        except RequestTooLargeError as exc:
            service.metrics.limited.labels(exc.reason).inc()
            return _error(413, exc.reason, str(exc), exc.field)
        except ModelNotFoundError as exc:
            service.metrics.requests.labels("rejected").inc()
            return _error(404, "model_not_found", str(exc), "model")
        except InvalidRequestError as exc:
            service.metrics.requests.labels("rejected").inc()
            return _error(400, "invalid_request", str(exc), exc.field)
        except ModelNotAllowedError as exc:
            return _error(400, "model_not_allowed", str(exc), "model")
        except PromptTooLongError as exc:
            return _error(413, "prompt_too_long", str(exc), "messages")
        except (PromptError, ConfigError) as exc:
            return _error(400, "invalid_request", str(exc), "messages")
        if reply.stream is not None:
            return _RelayResponse(reply.stream, gateway_threads, headers=reply.headers)
        return JSONResponse(status_code=reply.status, content=reply.body, headers=reply.headers)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        ok, detail = service.ready()
        return JSONResponse(status_code=200 if ok else 503, content={"ready": ok, **detail})

    @app.get("/metrics", dependencies=[require("metrics")])
    async def metrics():
        service.update_audit_gauges()
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.post("/admin/reload", summary="Reload the router from its source (e.g. after a promotion)",
              dependencies=[require("admin")])
    def reload():
        try:
            version = service.reload()
        except Exception as exc:  # noqa: BLE001 - the current router keeps serving
            return _error(503, "reload_failed", f"still serving {service.router.version}: {exc}", None)
        return {"router_version": version}

    if tokens.enabled:  # the API description is for operators: behind the admin scope
        @app.get("/openapi.json", include_in_schema=False, dependencies=[require("admin")])
        async def openapi():
            return JSONResponse(app.openapi())

        @app.get("/docs", include_in_schema=False, dependencies=[require("admin")])
        async def docs():
            from fastapi.openapi.docs import get_swagger_ui_html

            return get_swagger_ui_html(openapi_url="/openapi.json", title="router-ml")

    return app


def _not_json(value):
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class RequestId:
    """ASGI middleware: every response carries an `x-request-id` (the audit row's id when the handler set
    one; else a fresh one, so a client can quote any response, errors included)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_id(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                if not any(name.lower() == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", new_request_id().encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_id)


class JsonOnly:
    """ASGI middleware: POST bodies under /v1/ must be JSON (415 otherwise), checked before anything
    reads them (a pure ASGI layer: Starlette's BaseHTTPMiddleware would cost a task per request)."""

    def __init__(self, app, on_refusal) -> None:
        self.app = app
        self.on_refusal = on_refusal

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith("/v1/"):
            kind = ""
            for name, value in scope.get("headers") or ():
                if name == b"content-type":
                    kind = value.decode("latin-1").split(";")[0].strip().lower()
            if kind != "application/json":
                self.on_refusal()
                response = _error(415, "unsupported_media_type",
                                  f"expected Content-Type application/json, found {kind or 'none'}", "content-type")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _RelayResponse(StreamingResponse):
    """Streams a gateway Relay on the gateway's threads and always closes it (end of stream,
    upstream drop or client disconnect), so the upstream connection is released and the
    audit row written exactly once."""

    def __init__(self, relay, limiter, headers: dict) -> None:
        async def chunks():
            while True:
                chunk = await anyio.to_thread.run_sync(relay.next_chunk, limiter=limiter)
                if chunk is None:
                    return
                yield chunk

        super().__init__(chunks(), media_type="text/event-stream", headers=headers)
        self.relay = relay
        self.limiter = limiter

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.relay.close, limiter=self.limiter)


def _no_constants(name: str):
    raise ValueError(f"{name} is not a JSON number")


def strict_json(raw: bytes):
    """JSON as the standard has it: NaN and Infinity (which Python's parser accepts) are refused."""
    return json.loads(raw, parse_constant=_no_constants)


def _location(loc) -> str:
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


def _field(exc: Exception, body: RouteRequest) -> str:
    message = str(exc)
    if message.startswith("prompts["):
        return message.split(":", 1)[0]
    return "prompt" if body.prompt is not None else "prompts"
