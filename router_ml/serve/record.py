"""`Served`: one served decision, the same typed record from the plan to the HTTP reply and
the audit row.

The service builds it from a `Plan` (rules, the router's `Decision`, cascade steps),
exploration may change where it goes, the gateway adds what the calls did (`steps`,
`cost`, `fallback`), `/v1/route` answers with it, and the audit store writes it with the
prompt and the request metadata beside it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field

from router_ml.policy.cascade import Plan


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Served:
    """A routed request: where it went, why, and (for the gateway) what the calls did."""

    request_id: str
    router_version: str
    model: str
    confidence: float | None  # P(model succeeds), from the router; None when a rule forced it
    scores: dict[str, float]
    costs: dict[str, float]  # estimated USD per candidate model
    estimated_cost: float | None
    reason: str
    quality_target: float | None
    rule: str | None = None  # the rules that fired, comma-separated
    fallback: str | None = None  # why the answer did not come from the planned model, if it did not
    exploration: bool = False  # sent elsewhere than the policy's choice, to learn (or to onboard a new model)
    propensity: float | None = None  # P(this request went to `model` under the serving policy)
    propensities: dict[str, float] | None = None  # the serving policy's whole distribution over the models
    planned_model: str | None = None  # the policy's choice before exploration
    cascade: list[str] = field(default_factory=list)  # the models a gateway would try, in order
    latency_ms: float | None = None
    steps: list[dict] | None = None  # gateway: each cascade step and its attempts
    cost: float | None = None  # gateway: USD spent on the calls
    novelty: float | None = None  # how unusual the prompt is next to the router's training prompts (0..1)
    shadow: dict | None = None  # a shadow router's choice for this request: {"version", "model"}
    session: str | None = None  # the conversation this request is a turn of (router_ml.policy.conversation)
    session_note: str | None = None  # why this turn kept (or did not keep) the conversation's model
    ts: float = field(default_factory=time.time)

    @classmethod
    def from_plan(cls, plan: Plan, router_version: str, request_id: str | None = None) -> Served:
        d = plan.decision
        plain = d is not None and not plan.rules.fired and not plan.notes and len(plan.steps) == 1
        return cls(
            request_id=request_id or new_request_id(), router_version=router_version, model=plan.model,
            confidence=plan.confidence, scores=d.scores if d else {}, costs=d.costs if d else {},
            estimated_cost=d.costs.get(plan.model) if d else None, reason=d.reason if plain else plan.reason(),
            quality_target=d.quality_target if d else plan.quality_target, rule=plan.rules.rule,
            fallback=plan.fallback, cascade=list(plan.steps), novelty=d.novelty if d else None,
        )

    def to_dict(self) -> dict:
        return asdict(self)
