"""What operators and orchestrators call: GET /healthz (the process is up), GET /readyz (a router
is loaded and warm, the audit store is writing; 503 otherwise), GET /metrics (Prometheus), POST
/admin/reload (load the router again, e.g. after a promotion), and, when tokens guard the
service, the OpenAPI description (/openapi.json, /docs) behind the admin scope.

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


def operations_routes(service: RoutingService, access: Access, *, docs_behind_admin: bool) -> APIRouter:
    """The routes; `docs_behind_admin`: serve /openapi.json and /docs to admin tokens only (else
    FastAPI serves them, open, and they are not added here)."""
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

    if docs_behind_admin:  # the API description is for operators
        @routes.get("/openapi.json", include_in_schema=False, dependencies=[access.require("admin")])
        async def openapi(request: Request):
            return JSONResponse(request.app.openapi())

        @routes.get("/docs", include_in_schema=False, dependencies=[access.require("admin")])
        async def docs():
            from fastapi.openapi.docs import get_swagger_ui_html

            return get_swagger_ui_html(openapi_url="/openapi.json", title="router-ml")

    return routes
