"""Prometheus metrics of one service (its own registry, so services in a process do not collide).

With `router-ml serve --workers N` every worker process counts into files in
PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode, set up by the command
before the workers start), and /metrics, answered by any worker, adds them all up.
"""

from __future__ import annotations

import os

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Model calls take seconds, not milliseconds: the gateway's and the upstreams' histograms.
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
ENDPOINTS = {"/v1/route": "route", "/v1/chat/completions": "chat_completions", "/v1/outcomes": "outcomes"}


def endpoint_of(path: str) -> str:
    """The `endpoint` label of a request path (route, chat_completions, outcomes, other)."""
    return ENDPOINTS.get(path.rstrip("/") or "/", "other")


def status_of(code: int) -> str:
    """The `status` label of an HTTP answer: ok, rejected (the request's fault), unauthorized,
    limited (over a limit), rate_limited (upstream), failed (upstream or server)."""
    if code < 400:
        return "ok"
    if code in (401, 403):
        return "unauthorized"
    if code == 413:
        return "limited"
    if code == 429:
        return "rate_limited"
    return "rejected" if code < 500 else "failed"


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("router_requests", "Requests by endpoint (route, chat_completions, outcomes) and "
                                "outcome (ok, rejected, limited, unauthorized, rate_limited, failed)",
                                ["endpoint", "status"], registry=r)
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
        self.escalations = Counter("router_escalations", "Cascade steps whose answer failed a check and were "
                                   "escalated, by the check (verifier, json, ...)", ["reason"], registry=r)
        self.outcomes = Counter("router_outcomes", "Outcome reports by result", ["status"], registry=r)
        self.reloads = Counter("router_reloads", "Router reloads by result", ["result"], registry=r)
        self.limited = Counter("router_limited", "Requests refused by a limit, by reason", ["reason"], registry=r)
        self.auth_failures = Counter("router_auth_failures", "Requests refused for a missing, unknown or "
                                     "insufficient token", ["reason"], registry=r)
        # The gateway: whole requests, each upstream call, cascade steps, conversations.
        self.gateway_latency = Histogram("router_gateway_latency_seconds", "Time to answer a chat completion, the "
                                         "model calls included (a stream: until its end)", buckets=CALL_BUCKETS,
                                         registry=r)
        self.upstream_requests = Counter("router_upstream_requests", "Calls to a model's endpoint (every attempt: "
                                         "retries and fallbacks included), by the model called", ["model"], registry=r)
        self.upstream_errors = Counter("router_upstream_errors", "Failed calls to a model's endpoint by kind (timeout, "
                                       "connection, rate_limited, server_error, auth, client_error, malformed, "
                                       "stream)", ["model", "kind"], registry=r)
        self.upstream_latency = Histogram("router_upstream_latency_seconds", "Time of one call to a model's endpoint "
                                          "(a stream: to its first bytes)", ["model"], buckets=CALL_BUCKETS,
                                          registry=r)
        self.upstream_tokens = Counter("router_upstream_tokens", "Tokens of answered calls as the provider counted "
                                       "them, by model and kind (prompt, completion)", ["model", "kind"], registry=r)
        self.upstream_cost = Counter("router_upstream_cost_usd", "USD spent on answered calls (the provider's token "
                                     "counts times the catalog's prices; estimated from characters without them)",
                                     ["model"], registry=r)
        self.cascade_steps = Counter("router_cascade_steps", "Cascade steps by model and outcome (accepted, "
                                     "escalated: its answer failed a check, returned_unverified: the last step's "
                                     "answer failed its check and was returned anyway, failed, cost_cap, "
                                     "escalation_cap)", ["model", "outcome"], registry=r)
        self.session_turns = Counter("router_session_turns", "Chat turns by what their conversation did (first, "
                                     "routed, kept: raised to an earlier turn's model, released: the policy let it "
                                     "go lower, continuation: a tool result back to its model)", ["action"],
                                     registry=r)
        gauge = {"multiprocess_mode": "livesum"}
        self.audit_queue = Gauge("router_audit_queue", "Decisions waiting to be written", registry=r, **gauge)
        self.audit_dropped = Gauge("router_audit_dropped", "Decisions the audit store could not keep", registry=r,
                                   **gauge)
        self.audit_written = Gauge("router_audit_written", "Decisions written to the audit store", registry=r,
                                   **gauge)
        self._info = Gauge("router_info", "The router being served (value 1)", ["router_version", "source"],
                           registry=r, multiprocess_mode="liveall")
        self._info_labels: tuple | None = None

    def serving(self, router_version: str, source: str) -> None:
        """Say which router is being served (router_info{router_version, source} 1)."""
        if self._info_labels is not None:
            self._info.remove(*self._info_labels)
        self._info_labels = (router_version, source)
        self._info.labels(*self._info_labels).set(1)

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)


def worker_exited(pid: int) -> None:
    """Multiprocess mode: forget a stopped worker's live gauges."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
