"""A router in service: request ids, exploration, fallback on router errors, the audit
trail, metrics, and hot reload of a new champion without dropping requests.

`RoutingService` is what the HTTP app (router_ml.serve.app), the gateway and in-process
users share:

    service = RoutingService("models:/my-router@champion", audit=AuditStore("audit.sqlite"),
                             exploration=Exploration(rate=0.05))
    [served] = service.route(["Summarise ..."], metadata={"tier": "free"})   # -> list[Served]
    service.record_outcome(served.request_id, served.model, success=True, cost=0.002)

Where each planned request really goes is the serving policy's (router_ml.serve.exploring):
exploration sends a share of requests to other models, aimed at those close to the best
(router_ml.policy.exploration), models of the serving catalog the router was not trained on
get a small share (onboarding, router_ml.policy.onboarding), and a shadow router's choices
are recorded beside each decision. Every served decision carries the distribution it was
drawn from (`propensities`), so that any router can be judged from the log
(`router-ml evaluate --audit`) and retraining can weight what it learns. Logged traffic
otherwise only shows outcomes for the models the router already prefers, so retraining
would never learn that a cheaper model became good enough.

Hot reload swaps the router reference only after the new router is fully loaded;
requests in flight finish on the router they started with. If the registry is
unreachable the current router keeps serving and the failure is counted. A new router
that cannot serve this service's policy, fallback model or gateway is refused: the
current one keeps serving, the refusal is logged once and counted
(`router_reloads_total{result="refused"}`, `router_reload_refused` 1), and /readyz stays
ready but says which version was refused and why (`reload_refused`), until a reload
succeeds. The registry watcher does not try a refused version again; it tries the next
version the alias moves to.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from router_ml.core.drift import drift_from_database
from router_ml.core.router import Router, load_router
from router_ml.core.validation import check_quality_target
from router_ml.errors import (
    BatchTooLargeError,
    ConfigError,
    InvalidRequestError,
    ModelNotAllowedError,
    PromptError,
    ReloadRefusedError,
    RequestTooLargeError,
    RouterError,
)
from router_ml.policy.cascade import Plan
from router_ml.policy.exploration import Exploration
from router_ml.policy.file import Policy
from router_ml.policy.onboarding import Onboarding
from router_ml.policy.plans import make_plans
from router_ml.policy.rules import RuleResult
from router_ml.policy.verifier import verifier_of
from router_ml.serve.audit import AuditStore, Outcome
from router_ml.serve.batcher import Batcher, Job
from router_ml.serve.exploring import ServingPolicy
from router_ml.serve.limits import Limits, check_metadata
from router_ml.serve.metrics import Metrics
from router_ml.serve.record import Served

log = logging.getLogger("router_ml.serve")
DRIFT_REFRESH_S = 10.0



def _warm(router: Router) -> None:
    router.route("warm-up: load the embedding model")


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
        policy: Policy | None = None,
        limits: Limits | None = None,
        batch_wait_ms: float = 0.0,
        exploration: Exploration | None = None,
        onboarding: Onboarding | None = None,
        shadow: Router | None = None,
    ) -> None:
        if not 0.0 <= exploration_rate < 1.0:
            raise ConfigError(f"exploration_rate: expected a share in [0, 1), found {exploration_rate!r}")
        if exploration is not None and exploration_rate and exploration.rate != exploration_rate:
            raise ConfigError("give the exploration rate once: exploration_rate or exploration.rate")
        if max_batch < 1:
            raise ConfigError(f"max_batch: expected >= 1, found {max_batch}")
        self.source = source
        self.loader = loader
        self.audit = audit
        self.serving = ServingPolicy(exploration or Exploration(rate=exploration_rate), onboarding, shadow, seed)
        self.max_batch = max_batch
        self.policy = policy
        self.limits = limits or Limits()
        self._active = 0  # requests inside route(): how many the batcher may expect
        self._active_lock = threading.Lock()
        self.batcher = None
        if batch_wait_ms > 0:
            self.batcher = Batcher(lambda jobs: self._plan_jobs(jobs), lambda: self._active,
                                   max_wait_s=batch_wait_ms / 1000, max_prompts=max(256, max_batch))
        self.reload_checks: list[Callable[[Router], list[str]]] = []  # more conditions a new router must meet
        self.extra_models: set[str] = set()  # models the service calls besides the router's (gateway fallbacks)
        self.metrics = Metrics()
        self._drift_at = -DRIFT_REFRESH_S
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._router = router if router is not None else loader(source)
        self._warm = threading.Event()
        self._warming = False  # until warm_up() is asked for, readiness does not wait for it
        self._registry_version = None
        self._refused: dict | None = None  # the newest version refused at reload, while an older one serves
        self.fallback_model = fallback_model or self._router.models[-1]  # the dearest model, by default
        if self.fallback_model not in self._router.models:
            raise ConfigError(f"fallback_model {self.fallback_model!r} is not one of the router's models "
                              f"{self._router.models}")
        problems = self.serving.check(self._router)
        if problems:
            raise ConfigError(f"cannot serve {self._router.version}: " + "; ".join(problems))
        self.serving.use(self._router)
        self.extra_models |= self.serving.models
        self.reload_checks.append(self.serving.check)
        self.metrics.serving(self._router.version, source)

    @property
    def router(self) -> Router:
        return self._router

    def route(self, prompts: list[str], quality_target: float | None = None,
              metadata: dict | None = None) -> list[Served]:
        """Route a batch; bad prompts raise PromptError/ConfigError, router failures fall back."""
        started = self._admit(prompts)
        try:
            router, prompts, plans = self.plan(prompts, quality_target, metadata)
        finally:
            self._leave()
        return self._served(router, prompts, plans, metadata, started)

    async def route_async(self, prompts: list[str], quality_target: float | None = None,
                          metadata: dict | None = None) -> list[Served]:
        """`route` for an event loop: with batching on, the request waits for its batch on the loop
        (no thread per request: the batcher resolves a whole batch with one wake-up); without
        batching, routing runs on a worker thread."""
        if self.batcher is None:
            import anyio

            return await anyio.to_thread.run_sync(self.route, prompts, quality_target, metadata)
        started = self._admit(prompts)
        try:
            router = self._router
            prompts, target = self._checked(router, prompts, quality_target, metadata)
            router, plans = await self.batcher.submit_async(Job(prompts, target, metadata or {}))
        finally:
            self._leave()
        return self._served(router, prompts, plans, metadata, started)

    def _admit(self, prompts: list[str]) -> float:
        """Count a request in (the batcher waits for requests in flight); refuse an oversized batch."""
        if len(prompts) > self.max_batch:
            self.metrics.requests.labels("route", "rejected").inc()
            raise BatchTooLargeError(f"prompts: {len(prompts)} prompts is over the limit of {self.max_batch} per request")
        with self._active_lock:
            self._active += 1
        return time.perf_counter()

    def _leave(self) -> None:
        with self._active_lock:
            self._active -= 1

    def _served(self, router: Router, prompts: list[str], plans: list[Plan], metadata: dict | None,
                started: float) -> list[Served]:
        """The records of planned prompts (the serving policy applied), counted and queued for the audit log."""
        served = self.assign(router, prompts, plans)
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels("route", "ok").inc()
        self.metrics.latency.observe(elapsed)
        self.metrics.prompts.inc(len(prompts))
        per_prompt_ms = 1000 * elapsed / len(prompts)
        for prompt, item, plan in zip(prompts, served, plans):
            item.latency_ms = per_prompt_ms
            self.metrics.routes.labels(item.model).inc()
            if plan.guarded:
                self.metrics.novelty_guarded.inc()
            self.record(prompt, item, metadata)
        return served

    def plan(self, prompts: list[str], quality_target: float | None = None, metadata: dict | None = None,
             force: str | None = None, restrict: tuple | None = None, size: int | None = None,
             count: bool = True) -> tuple[Router, list[str], list[Plan]]:
        """Rules, router and cascade for each prompt (nothing called yet): the router used, the
        prompts as it normalised them (router_ml.core.prompts) and the plans. A router failure
        gives the fallback model's plan. `force` (a model the client named) skips the router.
        With batching on, concurrent requests are planned together (router_ml.serve.batcher).
        `restrict` is (label, models): candidates narrowed after the rules (a catalog alias).
        `size`: the characters of the whole request the prompts were taken from (a chat request's
        messages), which the rules' token conditions count. `count`: refusals are counted as
        /v1/route's (the gateway counts its own requests)."""
        router = self._router  # this request finishes on this router, whatever a reload does
        prompts, quality_target = self._checked(router, prompts, quality_target, metadata, count)
        if force is not None:
            return router, prompts, [self._client_plan(p, force, quality_target, metadata, size) for p in prompts]
        job = Job(prompts, quality_target, metadata or {}, restrict=restrict, size=size)
        if self.batcher is None:
            [(router, plans)] = self._plan_jobs([job], router)
        else:
            router, plans = self.batcher.submit(job)
        return router, prompts, plans

    def _checked(self, router: Router, prompts, quality_target, metadata,
                 count: bool = True) -> tuple[list[str], float | None]:
        """Metadata within limits, prompts normalised, the target valid: or a named error, counted
        (as /v1/route's unless `count` is false)."""
        try:
            if metadata:
                check_metadata(metadata, self.limits)
            prompts, replaced = router.normalize(prompts)
            if quality_target is not None:
                quality_target = check_quality_target(quality_target)
        except RequestTooLargeError as exc:
            if count:
                self.metrics.limited.labels(exc.reason).inc()
            raise
        except (PromptError, ConfigError, InvalidRequestError):
            if count:
                self.metrics.requests.labels("route", "rejected").inc()
            raise
        if replaced:
            self.metrics.replaced_characters.inc(replaced)
        return prompts, quality_target

    def _plan_jobs(self, jobs: list[Job], router: Router | None = None) -> list[tuple[Router, list[Plan]]]:
        """Plan several requests with one router call (one embedding); the fallback model's
        plans for all of them if the router fails."""
        router = router or self._router
        prompts = [p for job in jobs for p in job.prompts]
        targets = [job.quality_target for job in jobs for _ in job.prompts]
        metadata = [job.metadata for job in jobs for _ in job.prompts]
        restrict = [job.restrict for job in jobs for _ in job.prompts]
        sizes = [job.size for job in jobs for _ in job.prompts]
        try:
            plans = make_plans(router, self.policy, prompts, metadata, targets, verifier=self.verifier(router),
                               restrict=restrict if any(r is not None for r in restrict) else None,
                               sizes=sizes if any(n is not None for n in sizes) else None)
        except Exception as exc:  # noqa: BLE001 - a valid request always gets an answer
            log.exception("router failed; answering with the fallback model")
            self.metrics.fallbacks.labels("router_error").inc(len(prompts))
            note = (f"router error ({type(exc).__name__}: {exc}); answered with the fallback model "
                    f"{self.fallback_model}")
            plans = [Plan([self.fallback_model], RuleResult(), None, target, notes=[note], fallback="router_error")
                     for target in targets]
        self.serving.shadow_plans(prompts, plans, targets)  # on the planner's thread: it embeds
        out, start = [], 0
        for job in jobs:
            out.append((router, plans[start:start + len(job.prompts)]))
            start += len(job.prompts)
        return out

    def verifier(self, router: Router):
        """The router's learned verifier when the policy reads it (else None)."""
        if self.policy is None or not self.policy.needs_verifier:
            return None
        return verifier_of(router)

    def _client_plan(self, prompt: str, model: str, quality_target, metadata, size: int | None = None) -> Plan:
        """A plan for a model the client named: rules still apply (a force wins, a restriction binds)."""
        rules = self.policy.apply_rules(prompt, metadata, size) if self.policy is not None else RuleResult()
        if rules.force:
            return Plan([rules.force], rules, None, quality_target,
                        notes=[f"the client asked for {model}; rule {rules.fired[-1]} forces {rules.force}"])
        if rules.allowed is not None and model not in rules.allowed:
            raise ModelNotAllowedError(f"model {model!r} is not allowed for this request by rules {rules.fired} "
                                       f"(allowed: {list(rules.allowed)}); use \"auto\" or an allowed model")
        rules.fired.append("client-model")
        rules.force = model
        return Plan([model], rules, None, rules.quality_target if rules.quality_target is not None else quality_target)

    def record(self, prompt: str, served: Served, metadata: dict | None) -> None:
        if self.audit is not None:
            self.audit.record(prompt, served, metadata or {})

    def assign(self, router: Router, prompts: list[str], plans: list[Plan]) -> list[Served]:
        """Where each plan really goes, with the distribution it was drawn from (router_ml.serve.exploring);
        explorations, onboardings and their expected extra cost counted, and the estimated cost against
        always the best and always the cheapest model."""
        served = self.serving.assign(router, prompts, plans)
        self.serving.observe(served)
        for item in served:
            self.metrics.count_cost(item.model, item.costs, item.scores)
            if item.exploration:
                kind = "exploration" if item.model in router.models else "onboarding"
                self.metrics.explorations.labels(kind, item.model).inc()
                extra = (item.costs.get(item.model) or 0.0) - (item.costs.get(item.planned_model) or 0.0)
                self.metrics.exploration_extra_cost.inc(max(extra, 0.0))
                self.metrics.exploration_saved_cost.inc(max(-extra, 0.0))
        return served

    @property
    def exploration_rate(self) -> float:
        return self.serving.exploration.rate

    def update_audit_gauges(self) -> None:
        """Refresh the audit and drift gauges (on each /metrics scrape, not per request; drift at most
        every DRIFT_REFRESH_S seconds: two bounded queries of the audit database)."""
        if self.audit is None:
            return
        stats = self.audit.stats()
        self.metrics.audit_queue.set(stats["queued"])
        self.metrics.audit_dropped.set(stats["dropped"])
        self.metrics.audit_written.set(stats["written"])
        now = time.monotonic()
        if now - self._drift_at < DRIFT_REFRESH_S:
            return
        self._drift_at = now
        try:
            drift = drift_from_database(self.audit.path)
        except Exception as exc:  # noqa: BLE001 - a busy or broken database only delays the gauges
            log.warning("drift gauges not refreshed: %s", exc)
            return
        for item in drift.calibration:
            self.metrics.calibration_drift.labels(item.model).set(item.drift)
            self.metrics.calibration_outcomes.labels(item.model).set(item.outcomes)
        self.metrics.novelty_high_share.set(drift.novelty_high_share)
        self.metrics.novelty_requests.set(drift.novelty_requests)

    @property
    def known_models(self) -> set[str]:
        """Models an outcome may name: the router's, and any others the service can call."""
        return set(self._router.models) | self.extra_models

    def record_outcome(self, request_id: str, model: str, **fields) -> None:
        self.record_outcomes([Outcome(request_id, model, **fields)], single=True)

    def record_outcomes(self, outcomes: list[Outcome], single: bool = False) -> int:
        """Validate and store outcome reports, all or none (see AuditStore.record_outcomes)."""
        if self.audit is None:
            raise ConfigError("this service has no audit store; start it with an audit database to record outcomes")
        try:
            written = self.audit.record_outcomes(outcomes, known_models=self.known_models, single=single)
        except RouterError:
            self.metrics.outcomes.labels("rejected").inc(len(outcomes) or 1)
            raise
        self.metrics.outcomes.labels("ok").inc(written)
        return written

    def warm_up(self, background: bool = True) -> None:
        """Route one prompt so the embedding model is loaded before real traffic arrives (loading
        torch takes seconds); until it has, `ready()` says no. Reloads warm the new router
        before swapping it in."""
        self._warm.clear()
        self._warming = True

        def run() -> None:
            try:
                _warm(self._router)
            except Exception:  # noqa: BLE001 - a failure shows on the first request, with its error
                log.exception("warming up the router failed")
            self._warm.set()

        if background:
            threading.Thread(target=run, name="router-ml-warm-up", daemon=True).start()
        else:
            run()

    def ready(self) -> tuple[bool, dict]:
        """Whether the service can answer (warm, audit log writing) and what /readyz says about it:
        open to anyone who reaches the port, so a registry source is named and a directory is not."""
        audit = self.audit.stats() if self.audit is not None else None
        warm = not self._warming or self._warm.is_set()
        ok = warm and (audit is None or audit["healthy"])
        source = self.source if self.source.startswith(("models:/", "runs:/")) else "local directory"
        detail = {"router_version": self._router.version, "source": source, "warm": warm, "audit": audit}
        if self._refused is not None:  # ready, but on an older router than the source offers: say which and why
            detail["reload_refused"] = dict(self._refused)
        return ok, detail

    def reload(self, source: str | None = None) -> str:
        """Load `source` (default: the serving source again) and swap it in; the old one keeps
        serving if loading fails (the error is raised and counted)."""
        with self._reload_lock:
            try:
                fresh = self.loader(source or self.source)
            except Exception:
                self.metrics.reloads.labels("failed").inc()
                raise
            problems = []
            if self.fallback_model not in fresh.models:
                problems.append(f"it lacks the fallback model {self.fallback_model!r}")
            if self.policy is not None and self.policy.models() - set(fresh.models):
                problems.append(f"the policy names models it does not route: {sorted(self.policy.models() - set(fresh.models))}")
            try:
                if self.policy is not None and self.policy.needs_verifier and verifier_of(fresh) is None:
                    problems.append("the policy reads the learned verifier, and it has none")
            except Exception as exc:  # noqa: BLE001 - an unreadable verifier is a reason to refuse, not to crash
                log.warning("the verifier of router %s cannot be read: %s: %s", fresh.version, type(exc).__name__, exc)
                problems.append(f"its verifier cannot be read ({type(exc).__name__}; the log says why)")
            for check in self.reload_checks:
                problems += check(fresh)
            if problems:
                self._refuse(fresh.version, problems)
            _warm(fresh)
            self.serving.use(fresh)  # before the swap: a request planned on the new router finds its onboarding
            previous = self._router.version
            self._router = fresh
            if source:
                self.source = source
            self._refused = None
            self.metrics.reload_refused.set(0)
            self.metrics.reloads.labels("ok").inc()
            self.metrics.serving(fresh.version, self.source)
            log.info("reloaded: now serving router %s (was %s) from %s", fresh.version, previous, self.source)
            return fresh.version

    def _refuse(self, version: str, problems: list[str]) -> None:
        """Keep serving the current router: count, log (once) and remember why `version` was refused; raise."""
        reason = "; ".join(problems)
        self.metrics.reloads.labels("refused").inc()
        self.metrics.reload_refused.set(1)
        log.warning("reload refused, still serving %s: not serving %s: %s", self._router.version, version, reason)
        self._refused = {"version": version, "serving": self._router.version, "reason": reason,
                         "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        raise ReloadRefusedError(f"not serving {version}: {reason}")

    def registry_version(self) -> str | None:
        """The registry version the serving source points at now (None for a directory)."""
        if not self.source.startswith("models:/"):
            return None
        from router_ml.core.mlflow_registry import import_mlflow, resolve_model_version

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
                self.check_registry()

        self._watcher = threading.Thread(target=loop, name="router-ml-registry-watch", daemon=True)
        self._watcher.start()

    def check_registry(self) -> None:
        """One check of the registry watcher: reload when the alias points at another version. A refused
        version is not tried again (reload logged and counted it once); a version that failed to load is
        tried again at the next check; an unreachable registry is counted and logged."""
        try:
            current = self.registry_version()
        except Exception as exc:  # noqa: BLE001 - keep serving the current router
            self.metrics.reloads.labels("registry_unreachable").inc()
            log.warning("registry check failed, still serving %s: %s", self._router.version, exc)
            return
        if current == self._registry_version:
            return
        try:
            self.reload()
        except ReloadRefusedError:
            self._registry_version = current  # refused for good; the next version the alias moves to is tried
        except Exception as exc:  # noqa: BLE001 - keep serving the current router; counted by reload
            log.warning("reload of registry version %s failed, still serving %s: %s: %s", current,
                        self._router.version, type(exc).__name__, exc)
        else:
            self._registry_version = current

    def close(self) -> None:
        self._stop.set()
        if self.batcher is not None:
            self.batcher.close()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.audit is not None:
            self.audit.close()

