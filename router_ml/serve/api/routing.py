"""router-ml's own API: POST /v1/route (decisions for one prompt or a batch) and POST /v1/outcomes
(how a routed request went, which retraining learns from)."""

from __future__ import annotations

import dataclasses
import json
import logging

from fastapi import APIRouter
from fastapi.responses import Response

from router_ml.errors import (
    AuditError,
    AuditStorageError,
    BatchTooLargeError,
    ConfigError,
    DuplicateOutcomeError,
    InvalidRequestError,
    PromptError,
    PromptTooLongError,
    RequestTooLargeError,
    UnknownRequestError,
)
from router_ml.serve.api.access import Access
from router_ml.serve.api.errors import error
from router_ml.serve.api.schemas import OutcomeReport, RouteRequest, RouteResponse
from router_ml.serve.service import RoutingService

log = logging.getLogger("router_ml.serve")


def routing_routes(service: RoutingService, access: Access) -> APIRouter:
    routes = APIRouter()

    @routes.post("/v1/route", response_model=RouteResponse, summary="Route one prompt or a batch",
                 dependencies=[access.require("route")])
    async def route(body: RouteRequest):
        prompts = [body.prompt] if body.prompt is not None else body.prompts
        try:
            served = await service.route_async(prompts, body.quality_target, body.metadata)
        except RequestTooLargeError as exc:
            return error(413, exc.reason, str(exc), exc.field)
        except InvalidRequestError as exc:
            return error(400, "invalid_request", str(exc), exc.field)
        except BatchTooLargeError as exc:
            return error(413, "too_many_prompts", str(exc), "prompts")
        except PromptTooLongError as exc:
            return error(413, "prompt_too_long", str(exc), _field(exc, body))
        except PromptError as exc:
            return error(400, "invalid_prompt", str(exc), _field(exc, body))
        except ConfigError as exc:
            return error(400, "invalid_request", str(exc), "quality_target")
        # Written directly: the records are plain data, and FastAPI's response validation of
        # every field would cost more than routing does with the static embedder.
        payload = {"decisions": [dataclasses.asdict(item) for item in served]}
        headers = {"x-request-id": served[0].request_id} if len(served) == 1 else None  # a batch: one per decision
        return Response(json.dumps(payload, ensure_ascii=False, allow_nan=False, default=_not_json),
                        media_type="application/json", headers=headers)

    @routes.post("/v1/outcomes", summary="Report how a routed request went", dependencies=[access.require("outcomes")])
    def outcomes(body: OutcomeReport | list[OutcomeReport]):
        """One report or a list; a list is recorded all or nothing."""
        items = body if isinstance(body, list) else [body]
        if not items:
            return error(400, "invalid_request", "no outcomes given", "body")
        try:
            recorded = service.record_outcomes([item.outcome() for item in items], single=not isinstance(body, list))
        except UnknownRequestError as exc:
            return error(404, "unknown_request_id", str(exc), exc.field)
        except DuplicateOutcomeError as exc:
            return error(409, "duplicate_outcome", str(exc), exc.field)
        except AuditStorageError as exc:  # the server's fault: its detail (the database's path) stays here
            log.error("outcomes not recorded: %s", exc)
            return error(503, "outcome_not_recorded", "the outcome was not recorded: the audit log cannot be written "
                         "now (the server's log says why); retry later", None)
        except AuditError as exc:
            return error(400, "invalid_outcome", str(exc), exc.field)
        except ConfigError as exc:
            return error(503, "outcome_not_recorded", str(exc), None)
        return {"recorded": recorded}

    return routes


def _not_json(value):
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _field(exc: Exception, body: RouteRequest) -> str:
    """The prompt a prompt error is about: "prompts[3]" in a batch, else "prompt"."""
    message = str(exc)
    if message.startswith("prompts["):
        return message.split(":", 1)[0]
    return "prompt" if body.prompt is not None else "prompts"
