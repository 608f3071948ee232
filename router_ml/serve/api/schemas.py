"""The request bodies of router-ml's own API (POST /v1/route, /v1/outcomes), and JSON read as
the standard has it for the bodies read by hand (/v1/chat/completions).

Requests are read as JSON says them: "0.5" is not a number, true is not 1, and an unknown
(e.g. misspelt) field is an error rather than silently ignored.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router_ml.serve.audit import Outcome
from router_ml.serve.record import Served

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


def _no_constants(name: str):
    raise ValueError(f"{name} is not a JSON number")


def strict_json(raw: bytes):
    """JSON as the standard has it: NaN and Infinity (which Python's parser accepts) are refused."""
    return json.loads(raw, parse_constant=_no_constants)
