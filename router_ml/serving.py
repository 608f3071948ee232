"""A router in service: request ids, exploration, fallback on router errors, the audit
trail, metrics, and hot reload of a new champion without dropping requests.

`RoutingService` is what the HTTP app (router_ml.http) and in-process users share:

    service = RoutingService("models:/my-router@champion", audit=AuditStore("audit.sqlite"),
                             exploration_rate=0.02)
    [served] = service.route(["Summarise ..."], metadata={"tier": "free"})
    service.record_outcome(served["request_id"], served["model"], success=True, cost=0.002)

Exploration: with probability `exploration_rate` a request goes to a model other than
the router's choice, uniformly among the others, marked `exploration` in the response
and the audit log with its propensity (the probability that the policy sent this
request to the model it went to). Logged traffic otherwise only shows outcomes for the
models the router already prefers, so retraining would never learn that a cheaper
model became good enough; exploration is how every model keeps getting observed.

Hot reload swaps the router reference only after the new router is fully loaded;
requests in flight finish on the router they started with. If the registry is
unreachable the current router keeps serving and the failure is counted.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable

from router_ml.audit import AuditStore, DecisionRecord, new_request_id
from router_ml.errors import ConfigError, PromptError, RouterError
from router_ml.router import Router, load_router

log = logging.getLogger("router_ml.serving")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Prometheus metrics of one service (its own registry, so services do not collide)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("router_requests", "Routing requests by outcome", ["status"], registry=r)
        self.prompts = Counter("router_prompts", "Prompts routed", registry=r)
        self.latency = Histogram("router_request_latency_seconds", "Time to route one request", buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.routes = Counter("router_routes", "Routed prompts per chosen model", ["model"], registry=r)
        self.fallbacks = Counter("router_fallbacks", "Prompts sent to the fallback model", ["reason"], registry=r)
        self.explorations = Counter("router_explorations", "Prompts routed by exploration", registry=r)
        self.outcomes = Counter("router_outcomes", "Outcome reports by result", ["status"], registry=r)
        self.reloads = Counter("router_reloads", "Router reloads by result", ["result"], registry=r)
        self.audit_queue = Gauge("router_audit_queue", "Decisions waiting to be written", registry=r)
        self.audit_dropped = Gauge("router_audit_dropped", "Decisions the audit store could not keep", registry=r)
        self.audit_written = Gauge("router_audit_written", "Decisions written to the audit store", registry=r)
        self.version = Info("router", "The router being served", registry=r)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class RoutingService:
    def __init__(
        self,
        source: str,
        *,
        audit: AuditStore | None = None,
        exploration_rate: float = 0.0,
        fallback_model: str | None = None,
        max_batch: int = 1000,
        seed: int | None = None,
        loader: Callable[[str], Router] = load_router,
        router: Router | None = None,
    ) -> None:
        if not 0.0 <= exploration_rate < 1.0:
            raise ConfigError(f"exploration_rate: expected a share in [0, 1), found {exploration_rate!r}")
        if max_batch < 1:
            raise ConfigError(f"max_batch: expected >= 1, found {max_batch}")
        self.source = source
        self.loader = loader
        self.audit = audit
        self.exploration_rate = exploration_rate
        self.max_batch = max_batch
        self.metrics = Metrics()
        self._random = random.Random(seed)
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._router = router if router is not None else loader(source)
        self._registry_version = None
        self.fallback_model = fallback_model or self._router.models[-1]  # the dearest model, by default
        if self.fallback_model not in self._router.models:
            raise ConfigError(f"fallback_model {self.fallback_model!r} is not one of the router's models "
                              f"{self._router.models}")
        self.metrics.version.info({"router_version": self._router.version, "source": source})

    @property
    def router(self) -> Router:
        return self._router

    # -- routing -------------------------------------------------------------------------

    def route(self, prompts: list[str], quality_target: float | None = None, metadata: dict | None = None) -> list[dict]:
        """Route a batch; bad prompts raise PromptError/ConfigError, router failures fall back."""
        if len(prompts) > self.max_batch:
            raise BatchTooLargeError(f"prompts: {len(prompts)} prompts is over the limit of {self.max_batch} per request")
        router = self._router  # this request finishes on this router, whatever a reload does
        started = time.perf_counter()
        try:
            decisions = [router.route(prompts[0], quality_target)] if len(prompts) == 1 else \
                router.route_batch(prompts, quality_target)
            served = [self._served(d) for d in decisions]
        except (PromptError, ConfigError):
            self.metrics.requests.labels("rejected").inc()
            raise
        except Exception as exc:  # noqa: BLE001 - a valid request always gets an answer
            log.exception("router failed; answering with the fallback model")
            self.metrics.fallbacks.labels("router_error").inc(len(prompts))
            served = [self._fallback(router, quality_target, exc) for _ in prompts]
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels("ok").inc()
        self.metrics.latency.observe(elapsed)
        self.metrics.prompts.inc(len(prompts))
        per_prompt_ms = 1000 * elapsed / len(prompts)
        for prompt, item in zip(prompts, served):
            item["request_id"] = new_request_id()
            item["latency_ms"] = per_prompt_ms
            self.metrics.routes.labels(item["model"]).inc()
            if self.audit is not None:
                self.audit.record(DecisionRecord(
                    request_id=item["request_id"], router_version=item["router_version"], model=item["model"],
                    prompt=prompt, confidence=item["confidence"], scores=item["scores"],
                    quality_target=item["quality_target"], reason=item["reason"], rule=item.get("rule"),
                    fallback=item["fallback"], exploration=item["exploration"], propensity=item["propensity"],
                    latency_ms=per_prompt_ms, metadata=metadata or {},
                ))
        self._update_audit_gauges()
        return served

    def _served(self, decision) -> dict:
        item = decision.to_dict()
        item.update(exploration=False, fallback=None, propensity=1.0 - self.exploration_rate)
        others = [m for m in decision.scores if m != decision.model]
        if self.exploration_rate and others and self._random.random() < self.exploration_rate:
            chosen = self._random.choice(others)
            item.update(model=chosen, confidence=decision.scores[chosen], estimated_cost=decision.costs[chosen],
                        exploration=True, propensity=self.exploration_rate / len(others),
                        reason=f"exploration: sent to {chosen} instead of {decision.model} "
                               f"(rate {self.exploration_rate:g}); router: {decision.reason}")
            self.metrics.explorations.inc()
        return item

    def _fallback(self, router: Router, quality_target, exc: Exception) -> dict:
        return {
            "model": self.fallback_model, "confidence": None, "scores": {}, "costs": {}, "estimated_cost": None,
            "reason": f"router error ({type(exc).__name__}: {exc}); answered with the fallback model {self.fallback_model}",
            "router_version": router.version, "quality_target": quality_target, "exploration": False,
            "fallback": "router_error", "propensity": None,
        }

    def _update_audit_gauges(self) -> None:
        if self.audit is not None:
            stats = self.audit.stats()
            self.metrics.audit_queue.set(stats["queued"])
            self.metrics.audit_dropped.set(stats["dropped"])
            self.metrics.audit_written.set(stats["written"])

    # -- outcomes ------------------------------------------------------------------------

    def record_outcome(self, request_id: str, model: str, **fields) -> None:
        if self.audit is None:
            raise ConfigError("this service has no audit store; start it with an audit database to record outcomes")
        try:
            self.audit.record_outcome(request_id, model, **fields)
        except RouterError:
            self.metrics.outcomes.labels("rejected").inc()
            raise
        self.metrics.outcomes.labels("ok").inc()

    # -- health and reload ---------------------------------------------------------------

    def ready(self) -> tuple[bool, dict]:
        audit = self.audit.stats() if self.audit is not None else None
        ok = audit is None or audit["healthy"]
        return ok, {"router_version": self._router.version, "source": self.source, "audit": audit}

    def reload(self, source: str | None = None) -> str:
        """Load `source` (default: the serving source again) and swap it in; the old one keeps
        serving if loading fails (the error is raised and counted)."""
        with self._reload_lock:
            try:
                fresh = self.loader(source or self.source)
            except Exception:
                self.metrics.reloads.labels("failed").inc()
                raise
            if self.fallback_model not in fresh.models:
                self.metrics.reloads.labels("failed").inc()
                raise ConfigError(f"the new router lacks the fallback model {self.fallback_model!r}")
            self._router = fresh
            if source:
                self.source = source
            self.metrics.reloads.labels("ok").inc()
            self.metrics.version.info({"router_version": fresh.version, "source": self.source})
            log.info("now serving router %s", fresh.version)
            return fresh.version

    def registry_version(self) -> str | None:
        """The registry version the serving source points at now (None for a directory)."""
        if not self.source.startswith("models:/"):
            return None
        from router_ml.mlflow_support import import_mlflow, resolve_model_version

        return str(resolve_model_version(import_mlflow().MlflowClient(), self.source).version)

    def watch_registry(self, interval: float) -> None:
        """Reload whenever the registry moves the serving alias (checked every `interval` s)."""
        if not self.source.startswith("models:/"):
            return
        try:
            self._registry_version = self.registry_version()
        except Exception:  # noqa: BLE001 - unreachable now; the watcher retries
            self._registry_version = None

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    current = self.registry_version()
                    if current != self._registry_version:
                        self.reload()
                        self._registry_version = current
                except Exception as exc:  # noqa: BLE001 - keep serving the current router
                    self.metrics.reloads.labels("registry_unreachable").inc()
                    log.warning("registry check failed, still serving %s: %s", self._router.version, exc)

        self._watcher = threading.Thread(target=loop, name="router-ml-registry-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.audit is not None:
            self.audit.close()


class BatchTooLargeError(PromptError):
    """More prompts in one request than the service accepts."""
