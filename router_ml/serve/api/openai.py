"""The OpenAI face: POST /v1/chat/completions (routed, called and fallen back by the gateway,
router_ml.serve.gateway) and GET /v1/models, /v1/models/{id} (the names a client may ask for).

The gateway's upstream calls can block for long (timeouts, retries, streams): they run on
threads of their own, at most `concurrency` at once, so health checks and /v1/route never wait
behind them.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from router_ml.errors import (
    ConfigError,
    InvalidRequestError,
    ModelNotAllowedError,
    ModelNotFoundError,
    PromptError,
    PromptTooLongError,
    RequestTooLargeError,
)
from router_ml.serve.api.access import Access
from router_ml.serve.api.errors import error
from router_ml.serve.api.schemas import strict_json
from router_ml.serve.service import RoutingService


def openai_routes(service: RoutingService, gateway, access: Access, concurrency: int = 64) -> APIRouter:
    """The routes; without a gateway (no --catalog) chat completions answer 404 `gateway_off`."""
    routes = APIRouter()
    gateway_threads = anyio.CapacityLimiter(concurrency)

    @routes.get("/v1/models", summary="The model names a client may use (OpenAI's shape)",
                dependencies=[access.require("route")])
    async def models():
        return {"object": "list", "data": listed_models(service, gateway)}

    @routes.get("/v1/models/{model_id:path}", summary="One model name and what it means",
                dependencies=[access.require("route")])
    async def model(model_id: str):
        for row in listed_models(service, gateway):
            if row["id"] == model_id:
                return row
        return error(404, "model_not_found", f"the model {model_id!r} does not exist here; GET /v1/models lists "
                     "what does", "model")

    @routes.post("/v1/chat/completions", summary="OpenAI-compatible chat completion, routed and executed",
                 dependencies=[access.require("route")])
    async def chat_completions(request: Request):
        if gateway is None:
            return error(404, "gateway_off", "the gateway is off: start `router-ml serve` with --catalog naming each "
                         "model's base_url", None)
        # Every answer is counted by its status (router_requests_total{endpoint="chat_completions"},
        # api/middleware.py ChatCounter): nothing is counted here but the limits.
        try:
            body = strict_json(await request.body())
        except (ValueError, RecursionError) as exc:
            detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            return error(400, "malformed_json", f"the body is not valid JSON: {detail}", "body")
        try:
            reply = await anyio.to_thread.run_sync(gateway.handle, body, request.headers, limiter=gateway_threads)
        except RequestTooLargeError as exc:
            service.metrics.limited.labels(exc.reason).inc()
            return error(413, exc.reason, str(exc), exc.field)
        except ModelNotFoundError as exc:
            return error(404, "model_not_found", str(exc), "model")
        except InvalidRequestError as exc:
            return error(400, "invalid_request", str(exc), exc.field)
        except ModelNotAllowedError as exc:
            return error(400, "model_not_allowed", str(exc), "model")
        except PromptTooLongError as exc:
            return error(413, "prompt_too_long", str(exc), "messages")
        except (PromptError, ConfigError) as exc:
            return error(400, "invalid_request", str(exc), "messages")
        if reply.stream is not None:
            return RelayResponse(reply.stream, gateway_threads, headers=reply.headers)
        return JSONResponse(status_code=reply.status, content=reply.body, headers=reply.headers)

    return routes


def listed_models(service: RoutingService, gateway) -> list[dict]:
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


class RelayResponse(StreamingResponse):
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
