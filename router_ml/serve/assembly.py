"""Assembling a running service from its settings: router, audit store, policy, gateway, app.

    built = build_service(ServiceSettings(router="models:/my-router@champion", policy="policy.yaml"))
    app = built.app            # FastAPI; `router-ml serve` runs it on uvicorn
    ...
    built.close()              # flush the audit log, close upstream connections

`router-ml serve` is this plus uvicorn and signal handling; tests and users embedding the
service in their own process call it directly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from router_ml.core.router import DEFAULT_DECISION_CACHE, DEFAULT_EMBEDDING_CACHE, load_router
from router_ml.errors import PolicyError
from router_ml.policy.exploration import Exploration
from router_ml.policy.fallbacks import Fallbacks
from router_ml.policy.file import Policy, load_policy
from router_ml.policy.onboarding import Onboarding
from router_ml.policy.verifier import verifier_of
from router_ml.serve.audit import AuditStore
from router_ml.serve.auth import TokenStore
from router_ml.serve.gateway import Gateway, Upstreams
from router_ml.serve.limits import Limits
from router_ml.serve.service import RoutingService


@dataclass
class ServiceSettings:
    """Everything `router-ml serve` can be told (see its --help for each)."""

    router: str
    audit: str | Path | None = "audit.sqlite"  # None: no audit trail (outcomes cannot be recorded)
    prompt_storage: str = "hash"
    flush_interval: float = 0.2
    exploration_rate: float = 0.0
    exploration_design: str = "utility"  # router_ml.policy.exploration
    exploration_max_extra_cost: float | None = None  # a fraction of the chosen model's estimated cost
    shadow: str | None = None  # a router to judge in shadow: its choices logged, exploration aimed at them
    shadow_focus: float | None = None  # with a shadow: the exploration base rate where it agrees
    onboarding_rate: float = 0.05  # share of traffic for the catalog's models the router does not know
    fallback_model: str | None = None
    max_batch: int = 1000
    decision_cache: int = DEFAULT_DECISION_CACHE
    embedding_cache: int = DEFAULT_EMBEDDING_CACHE
    policy: str | Path | None = None
    catalog: str | Path | None = None  # with endpoints: turns the gateway on
    tokens_file: str | Path | None = None  # bearer tokens (router_ml.serve.auth); else ROUTER_ML_TOKENS
    audit_key_file: str | Path | None = None  # the audit log's digest secret (default: <audit>.key)
    audit_metadata_keys: tuple[str, ...] | None = None  # metadata stored as given (the rest hashed or dropped)
    audit_metadata_other: str = "hash"
    retain_text_days: float | None = None
    limits: Limits = field(default_factory=Limits)
    batch_wait_ms: float = 2.0  # micro-batching: the longest a request waits for others (0: off)
    ui: bool = True  # the decision explorer at /ui (router_ml.serve.explorer; the CLI turns it off beyond loopback)
    api_docs: bool = False  # serve /docs and /openapi.json (to admin tokens when tokens are on)
    warnings: list[str] = field(default_factory=list)  # filled by build_service: policy warnings


@dataclass
class BuiltService:
    service: RoutingService
    gateway: Gateway | None
    app: object  # fastapi.FastAPI
    tokens: TokenStore

    def close(self) -> None:
        """Flush the audit log and close upstream connections (after requests in flight finished)."""
        self.service.close()
        if self.gateway is not None:
            self.gateway.upstreams.close()


def build_service(settings: ServiceSettings) -> BuiltService:
    """Load the router and everything around it; nothing is left open if any part fails."""
    from router_ml.serve.app import create_app

    tokens = TokenStore.load(settings.tokens_file)  # first: a bad tokens file stops before anything opens
    audit = None if settings.audit is None else AuditStore(
        settings.audit, prompt_storage=settings.prompt_storage, flush_interval=settings.flush_interval,
        key_file=settings.audit_key_file, metadata_keys=settings.audit_metadata_keys,
        metadata_other=settings.audit_metadata_other, retain_text_days=settings.retain_text_days)
    try:
        loader = functools.partial(load_router, decision_cache_size=settings.decision_cache,
                                   embedding_cache_size=settings.embedding_cache)
        router = loader(settings.router)
        policy: Policy | None = None
        if settings.policy:
            policy = load_policy(settings.policy, router.models, router.cost_model.chars_per_token)
            settings.warnings.extend(policy.warnings)
            if policy.needs_verifier and verifier_of(router) is None:
                raise PolicyError(f"{settings.policy}: the policy reads the learned verifier, and router {router.version} "
                                  "has none (train it on outcomes with a response column)")
        catalog = None
        if settings.catalog:
            from router_ml.core.catalog import load_catalog

            catalog = load_catalog(settings.catalog)
        onboarding = None if catalog is None else Onboarding.from_catalog(catalog, router.models,
                                                                          settings.onboarding_rate)
        exploration = Exploration(rate=settings.exploration_rate, design=settings.exploration_design,
                                  max_extra_cost=settings.exploration_max_extra_cost, focus=settings.shadow_focus)
        shadow = loader(settings.shadow) if settings.shadow else None
        service = RoutingService(settings.router, audit=audit, exploration=exploration, onboarding=onboarding,
                                 shadow=shadow, fallback_model=settings.fallback_model, max_batch=settings.max_batch,
                                 loader=loader, router=router, policy=policy, limits=settings.limits,
                                 batch_wait_ms=settings.batch_wait_ms)
        gateway = None
        if catalog is not None and any(price.base_url for price in catalog.models.values()):
            # A catalog with endpoints turns the gateway on; one with prices only serves onboarding.
            fallbacks = policy.fallbacks if policy is not None else Fallbacks()
            models = [*router.models, *(onboarding.names if onboarding is not None else ())]
            gateway = Gateway(service, Upstreams(catalog, fallbacks, models), limits=settings.limits)
    except BaseException:
        if audit is not None:
            audit.close()
        raise
    service.warm_up(background=True)  # /readyz says 503 until the embedding model is loaded
    app = create_app(service, gateway, tokens=tokens, limits=settings.limits, api_docs=settings.api_docs,
                     ui=settings.ui)
    return BuiltService(service, gateway, app, tokens)
