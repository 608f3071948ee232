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
        self.explorations = Counter("router_explorations", "Prompts sent elsewhere than the policy's choice, by kind "
                                    "(exploration, onboarding) and the model they went to", ["kind", "model"],
                                    registry=r)
        self.exploration_extra_cost = Counter("router_exploration_extra_cost_usd", "Estimated USD that explored "
                                              "prompts cost above the policy's choice", registry=r)
        self.exploration_saved_cost = Counter("router_exploration_saved_cost_usd", "Estimated USD that explored "
                                              "prompts cost below the policy's choice", registry=r)
        # Estimated cost (the router's price list at each prompt's length) of what was served, and of
        # the same requests sent to the model the router rated most likely to succeed, or to the cheapest:
        # savings = 1 - served / best. Requests without estimates (a rule forced the model) are not counted.
        self.estimated_cost = Counter("router_estimated_cost_usd", "Estimated USD of the served requests, by the "
                                      "model they were sent to", ["model"], registry=r)
        self.best_model_cost = Counter("router_best_model_cost_usd", "Estimated USD of the same requests, each sent "
                                       "to the model the router rated most likely to succeed", registry=r)
        self.cheapest_model_cost = Counter("router_cheapest_model_cost_usd", "Estimated USD of the same requests, "
                                           "each sent to the cheapest model", registry=r)
        self.novelty_guarded = Counter("router_novelty_guarded", "Prompts the novelty guard sent to its safe model",
                                       registry=r)
        self.escalations = Counter("router_escalations", "Cascade steps whose answer failed a check and were "
                                   "escalated, by the check (verifier, json, ...)", ["reason"], registry=r)
        # The gateway's calls to each model (every attempt: retries and fallbacks included).
        self.upstream_calls = Counter("router_upstream_calls", "Gateway calls to a model by result (ok, error, "
                                      "rate_limited, rejected, cooling_down)", ["model", "result"], registry=r)
        self.outcomes = Counter("router_outcomes", "Outcome reports by result", ["status"], registry=r)
        self.reloads = Counter("router_reloads", "Router reloads by result: ok, failed (could not load), refused (loaded "
                               "but unfit for this service's policy, fallback or gateway), registry_unreachable",
                               ["result"], registry=r)
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
        # Drift (router_ml.core.drift), refreshed from the audit database on scrape; every worker
        # computes the same figures from the one database, so the most recent one is kept.
        latest = {"multiprocess_mode": "livemostrecent"}
        self.calibration_drift = Gauge("router_calibration_drift", "Observed minus predicted success over the "
                                       "latest outcomes of requests each model served", ["model"], registry=r, **latest)
        self.calibration_outcomes = Gauge("router_calibration_outcomes", "Outcomes behind router_calibration_drift, "
                                          "per model", ["model"], registry=r, **latest)
        self.novelty_high_share = Gauge("router_novelty_high_share", "Share of the latest requests whose novelty is "
                                        "above 0.99 (about 0.01 while traffic looks like the training data)",
                                        registry=r, **latest)
        self.novelty_requests = Gauge("router_novelty_requests", "Requests behind router_novelty_high_share",
                                      registry=r, **latest)
        self.reload_refused = Gauge("router_reload_refused", "1 while an older router serves because the newest one "
                                    "was refused at reload (/readyz says which and why), else 0", registry=r,
                                    multiprocess_mode="livemax")
        self._info = Gauge("router_info", "The router being served (value 1)", ["router_version", "source"],
                           registry=r, multiprocess_mode="liveall")
        self._info_labels: tuple | None = None

    def count_cost(self, model: str, costs: dict[str, float], scores: dict[str, float]) -> None:
        """Count one served request's estimated cost, and its cost at the best and at the cheapest model."""
        if not costs or costs.get(model) is None:
            return
        best = max(scores, key=lambda m: (scores[m], -costs.get(m, 0.0))) if scores else None
        self.estimated_cost.labels(model).inc(costs[model])
        self.best_model_cost.inc(costs.get(best, costs[model]))
        self.cheapest_model_cost.inc(min(costs.values()))

    def count_attempts(self, attempts: list[dict] | None) -> None:
        """Count the gateway's calls (router_ml.serve.gateway.upstreams attempt records) per model and result
        (router_upstream_requests and router_upstream_errors count the same attempts by model and error kind)."""
        for a in attempts or ():
            model = a.get("model")
            if not model:
                continue
            status = a.get("status")
            if "error" not in a:
                result = "ok" if status in (None, 200) else "rejected"
            elif "ms" not in a:
                result = "cooling_down"  # skipped, not called
            else:
                result = "rate_limited" if status == 429 else "error"
            self.upstream_calls.labels(model, result).inc()  # latency: observe_calls (gateway/handler.py)

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
