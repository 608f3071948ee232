"""What operators and orchestrators call: GET /healthz (the process is up), GET /readyz (a router
is loaded and warm, the audit store is writing; 503 otherwise), GET /metrics (Prometheus), POST
/admin/reload (load the router again, e.g. after a promotion), and, when asked for (`serve
--api-docs`), the API's description (/openapi.json, and /docs: a page rendered here that runs
no script and loads nothing from elsewhere), behind the admin scope when tokens are on.

/healthz and /readyz stay open for orchestrators whatever the tokens.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from router_ml.errors import ReloadRefusedError
from router_ml.serve.api.access import Access
from router_ml.serve.api.errors import error
from router_ml.serve.service import RoutingService

log = logging.getLogger("router_ml.serve")


def operations_routes(service: RoutingService, access: Access, *, api_docs: bool = False,
                      docs_scope: str | None = "admin") -> APIRouter:
    """The routes; `api_docs`: serve /openapi.json and /docs, to tokens with `docs_scope` (None:
    to anyone who reaches the port, for a service without tokens)."""
    routes = APIRouter()

    @routes.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @routes.get("/readyz")
    async def readyz():
        ok, detail = service.ready()
        return JSONResponse(status_code=200 if ok else 503, content={"ready": ok, **detail})

    @routes.get("/metrics", dependencies=[access.require("metrics")])
    async def metrics():
        service.update_audit_gauges()
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @routes.post("/admin/reload", summary="Reload the router from its source (e.g. after a promotion)",
                 dependencies=[access.require("admin")])
    def reload():
        serving = service.router.version
        try:
            version = service.reload()
        except ReloadRefusedError as exc:  # why the new router was refused, in terms that name no file
            return error(503, "reload_failed", f"still serving {serving}: {exc}", None)
        except Exception as exc:  # noqa: BLE001 - the current router keeps serving
            # Loading errors name the router's files: they go to the server's log, not to the client.
            log.warning("reload failed, still serving %s: %s: %s", serving, type(exc).__name__, exc)
            return error(503, "reload_failed", f"still serving {serving}: the router could not be loaded "
                         f"({type(exc).__name__}; the server's log says why)", None)
        return {"router_version": version}

    if api_docs:  # the API description is for operators
        guard = [access.require(docs_scope)] if docs_scope else []

        @routes.get("/openapi.json", include_in_schema=False, dependencies=guard)
        async def openapi(request: Request):
            return JSONResponse(request.app.openapi())

        @routes.get("/docs", include_in_schema=False, dependencies=guard)
        async def docs(request: Request):
            from fastapi.responses import HTMLResponse

            from router_ml.serve.api.docs_page import CONTENT_SECURITY_POLICY, render_docs

            return HTMLResponse(render_docs(request.app.openapi()),
                                headers={"content-security-policy": CONTENT_SECURITY_POLICY,
                                         "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"})

    return routes
