"""The HTTP service: FastAPI routes over a RoutingService (`router-ml serve`), one module per
face under router_ml.serve.api, assembled here.

Routing (api/routing.py):
    POST /v1/route      {"prompt": "..."} or {"prompts": [...]}, optional quality_target, metadata
    POST /v1/outcomes   {"request_id", "model", "success" | "score", "cost", "latency_ms"} or a list
OpenAI's shape (api/openai.py):
    POST /v1/chat/completions  route, call the model, fall back (router_ml.serve.gateway)
    GET  /v1/models, /v1/models/{id}   the routing names, the catalog's aliases and models
Operations (api/operations.py):
    GET  /healthz       the process is up
    GET  /readyz        a router is loaded and the audit store is writing (503 otherwise)
    GET  /metrics       Prometheus metrics
    POST /admin/reload  reload the router now (e.g. after a promotion)
    GET  /docs, /openapi.json   the API's description, off unless asked for (`api_docs`); behind the
                        admin scope when tokens are on; the page runs no script and loads nothing
                        from elsewhere (api/docs_page.py)
Decision explorer (explorer/routes.py):
    GET  /ui, /ui/requests, /ui/requests/{id}, /ui/versions   pages over the audit log (read or admin scope)

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

from fastapi import FastAPI

from router_ml.serve.api.access import Access
from router_ml.serve.api.errors import install_error_handlers
from router_ml.serve.api.middleware import install_middleware
from router_ml.serve.api.openai import openai_routes
from router_ml.serve.api.operations import operations_routes
from router_ml.serve.api.routing import routing_routes
from router_ml.serve.auth import TokenStore
from router_ml.serve.limits import Limits
from router_ml.serve.service import RoutingService


def create_app(service: RoutingService, gateway=None, *, tokens: TokenStore | None = None,
               limits: Limits | None = None, gateway_concurrency: int = 64, api_docs: bool = False,
               ui: bool = True) -> FastAPI:
    """The FastAPI app over a service (and its gateway). `tokens` (router_ml.serve.auth) guard
    every endpoint but the health checks; without them admin is off. `limits` default to
    the service's; `gateway_concurrency`: upstream calls in flight at once; `api_docs`: serve
    /docs and /openapi.json (to admin tokens when tokens are on); `ui`: serve the decision
    explorer at /ui (behind the read or admin scope when tokens are on)."""
    tokens = tokens or TokenStore([])
    limits = limits or service.limits
    # FastAPI's own documentation pages load their scripts from a CDN: never served (the
    # operations routes serve a page of their own when asked to).
    app = FastAPI(title="router-ml", version="1", description="Routes each LLM request to the cheapest model that will "
                  "handle it well, and records every decision.", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    app.state.gateway = gateway
    install_middleware(app, service.metrics, limits, tokens)
    install_error_handlers(app, service.metrics)
    access = Access(tokens, service.metrics)
    app.include_router(openai_routes(service, gateway, access, gateway_concurrency))
    app.include_router(routing_routes(service, access))
    app.include_router(operations_routes(service, access, api_docs=api_docs, docs_scope="admin" if tokens.enabled else None))
    if ui:
        from router_ml.serve.explorer.routes import explorer_routes

        app.include_router(explorer_routes(service, tokens, service.metrics))
    return app
