"""Prometheus metrics of one service (its own registry, so services in a process do not collide)."""

from __future__ import annotations

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("router_requests", "Routing requests by outcome", ["status"], registry=r)
        self.prompts = Counter("router_prompts", "Prompts routed", registry=r)
        self.replaced_characters = Counter("router_prompt_replaced_characters",
                                           "Characters in prompts that no encoder takes (lone surrogates), "
                                           "replaced by U+FFFD", registry=r)
        self.latency = Histogram("router_request_latency_seconds", "Time to route one request", buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.routes = Counter("router_routes", "Routed prompts per chosen model", ["model"], registry=r)
        self.fallbacks = Counter("router_fallbacks", "Prompts sent to the fallback model", ["reason"], registry=r)
        self.explorations = Counter("router_explorations", "Prompts routed by exploration", registry=r)
        self.novelty_guarded = Counter("router_novelty_guarded", "Prompts the novelty guard sent to its safe model",
                                       registry=r)
        self.outcomes = Counter("router_outcomes", "Outcome reports by result", ["status"], registry=r)
        self.reloads = Counter("router_reloads", "Router reloads by result", ["result"], registry=r)
        self.limited = Counter("router_limited", "Requests refused by a limit, by reason", ["reason"], registry=r)
        self.auth_failures = Counter("router_auth_failures", "Requests refused for a missing, unknown or "
                                     "insufficient token", ["reason"], registry=r)
        self.audit_queue = Gauge("router_audit_queue", "Decisions waiting to be written", registry=r)
        self.audit_dropped = Gauge("router_audit_dropped", "Decisions the audit store could not keep", registry=r)
        self.audit_written = Gauge("router_audit_written", "Decisions written to the audit store", registry=r)
        self.version = Info("router", "The router being served", registry=r)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
