"""router-ml inside LiteLLM: a routing plugin for a LiteLLM `Router` (the SDK or the proxy) that
sends each request to the deployment of the model router-ml chooses, and callbacks that write
every call to router-ml's audit store, so `retrain --audit` and `evaluate --audit` work on
LiteLLM traffic as on router-ml's own gateway.

    import litellm
    from router_ml.integrations.litellm import RouterMLRouting

    router = litellm.Router(model_list=[            # one model group, a deployment per catalog model
        {"model_name": "auto", "litellm_params": {"model": "openai/gpt-4o-mini"}, "model_info": {"router_ml_model": "mini"}},
        {"model_name": "auto", "litellm_params": {"model": "openai/gpt-4o"}, "model_info": {"router_ml_model": "pro"}},
    ])
    routing = RouterMLRouting("models:/my-router@champion", policy="policy.yaml", audit="audit.sqlite").attach(router)
    await router.acompletion(model="auto", messages=[...], metadata={"router_ml": {"quality_target": 0.9}})

What it does, per request to a routed group (`groups`, default "auto"):

1. Plans it as router-ml's gateway does (router_ml.serve.sessions): the router reads the last
   user turn and a bounded window before it; the policy's rules and novelty guard apply; a
   tool result goes back to the model that made the tool call; with a session key, a later
   turn never goes to a weaker model than an earlier one used. The quality target is the
   request's `metadata.router_ml.quality_target`, else the group's (`groups={"auto": None,
   "careful": 0.9}`), else the router's default. A policy's cascade is not run (LiteLLM makes
   one call per request): the router's choice among its steps is served, and the reason says so.
2. Picks a deployment of the chosen model in the group (at random among several) and writes
   `request_id`, `model` and `reason` into the request's `metadata["router_ml"]` (the caller's
   dict: an SDK caller reads them there; the proxy also answers them as `x-router-*` headers).
3. Fails open: on any error of router-ml itself, or when planning takes longer than
   `timeout_s`, the request goes to the `fallback` deployment (a deployment id or a catalog
   model; default: a deployment of the router's fallback model) and the audit row says why.
4. On a retry (LiteLLM calls the plugin again after a failed call), the policy's fallback chain
   of the planned model decides the next model; each attempt is recorded.
5. When the call succeeds, one audit row (a `Served` record, as the gateway writes it: model,
   propensity under the serving policy, reason, rules, session, steps with every attempt, the
   cost from the provider's token counts at the catalog's prices, latency) and, when `check`
   or `score` is configured, an outcome row (the check's verdict, or the caller's score). When
   every attempt failed, the row is written `settle_s` after the last failure with no retry,
   as `all_failed`. `record_outcome(request_id, ...)` adds a score reported later.

Groups the plugin does not route pass through: LiteLLM's `register_plugin` hands every pick to
the plugin, which takes a deployment of the requested group at random (as simple-shuffle does).

The LiteLLM proxy: a `config.yaml` names a small module that builds the plugin under
`litellm_settings.callbacks`; the plugin attaches itself to the proxy's Router on the first
request (its pre-call hook) and adds its headers to each answer (docs/litellm.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from litellm.integrations.custom_logger import CustomLogger
from litellm.types.router import CustomRoutingStrategyBase

from router_ml.core.audit_format import Outcome
from router_ml.errors import ConfigError
from router_ml.policy.checks import AnswerContext, make_check
from router_ml.policy.conversation import (
    ConversationSettings,
    SessionSettings,
    message_text,
    routing_text,
    tool_call_ids,
)
from router_ml.policy.fallbacks import Fallbacks
from router_ml.serve.audit import AuditStore
from router_ml.serve.record import Served, new_request_id
from router_ml.serve.service import RoutingService
from router_ml.serve.sessions import ChatPlan, Conversations

log = logging.getLogger("router_ml.integrations.litellm")

OPTIONS = "router_ml"  # the metadata key a request's options go in, and the plugin's answers come back in
_CALL = "_call"  # the plugin's own mark, inside metadata["router_ml"]: the request's pending decision
MODEL_INFO_KEY = "router_ml_model"  # a deployment's model_info key naming its catalog model
DEFAULT_GROUPS = ("auto",)
# Keys LiteLLM itself puts into a request's metadata (the SDK's Router and the proxy): not the
# caller's, so neither matched by rules nor kept in the audit log.
LITELLM_METADATA = frozenset({
    "model_group", "model_group_alias", "attempted_fallbacks", "original_model_group", "attempted_retries",
    "max_retries", "model_group_size", "deployment", "model_info", "api_base", "deployment_model_name",
    "kubernetes_pod_routing", "caching_groups", "hidden_params", "previous_models", "request_retry_count",
    "headers", "endpoint", "requester_ip_address", "requester_metadata", "user_agent", "inherited_tags",
    "routing_plugin_signals", "litellm_received_at", "llm_api_timing_windows", "litellm_parent_otel_span",
    "tags", "spend_logs_metadata", "applied_guardrails", "global_max_parallel_requests", "mcp_tool_call_metadata",
    "model_group_retry_policy", "team_alias", "team_id", "deployment_tags", OPTIONS,
})
LITELLM_METADATA_PREFIXES = ("user_api_key", "litellm", "_")


@dataclass
class _Pending:
    """A routed request between its first pick and its last callback."""

    served: Served
    prompt: str
    metadata: dict  # the caller's metadata (rules' input, the audit row's)
    group: str
    chat: ChatPlan | None
    planned: str  # the catalog model the plan chose
    chain: list[str]  # the models to try, in order: the planned one, then its fallbacks
    started: float = field(default_factory=time.time)
    tried: list[str] = field(default_factory=list)  # deployment ids handed to LiteLLM, in order
    attempts: list[dict] = field(default_factory=list)  # each call's result
    in_flight: int = 0  # picks not yet followed by a callback
    failed_at: float | None = None
    request: dict | None = None  # the request's tools and response format, for checks
    later: list[Outcome] = field(default_factory=list)  # outcomes reported before the call's callback came


class RouterMLRouting(CustomLogger):
    """The plugin: a routing strategy for `litellm.Router.register_plugin` (`.strategy`) and the
    success/failure callbacks and proxy hooks (this object, a LiteLLM CustomLogger).

    `router`: a router directory or `models:/` URI (or a RoutingService with `service=`);
    `policy`: a policy file (rules, novelty guard, fallbacks, conversation, sessions);
    `audit`: the audit database (a path or an AuditStore; None: no audit log), with
    `prompt_storage` ("hash" or "text", as `router-ml serve`) and `audit_key_file`;
    `groups`: the model groups routed, a list or {group: default quality target};
    `fallback`: where a request goes when router-ml fails (a deployment id or a catalog model);
    `timeout_s`: the longest planning may take before failing open; `exploration_rate`: as
    `serve --exploration-rate`; `check`: a response check (as in a policy file, e.g.
    {"json": True}) whose verdict is written as the call's outcome; `score(kwargs, response)`:
    the caller's score of a call (True/False or 0..1, None for none), written as its outcome;
    `settle_s`: how long after a failure with no retry a request counts as failed."""

    def __init__(self, router=None, *, policy: str | Path | None = None, audit: str | Path | AuditStore | None = None,
                 prompt_storage: str = "hash", audit_key_file: str | Path | None = None, groups=DEFAULT_GROUPS,
                 fallback: str | None = None, timeout_s: float = 2.0, exploration_rate: float = 0.0,
                 check=None, score: Callable | None = None, settle_s: float = 5.0, seed: int | None = None,
                 service: RoutingService | None = None, batch_wait_ms: float = 2.0) -> None:
        super().__init__()
        # LiteLLM registers one logger per class and `callback_name`: each plugin is its own.
        self.callback_name = f"router-ml-{uuid.uuid4().hex[:12]}"
        if timeout_s <= 0 or settle_s <= 0:
            raise ConfigError(f"timeout_s and settle_s: expected seconds > 0, found {timeout_s!r}, {settle_s!r}")
        if service is None:
            if router is None:
                raise ConfigError("RouterMLRouting: give the router (a directory or models:/ URI) or a service")
            service = _build_service(str(router), policy, audit, prompt_storage, audit_key_file, exploration_rate,
                                     seed, batch_wait_ms)
        self.service = service
        policy_obj = service.policy
        self.fallbacks = policy_obj.fallbacks if policy_obj is not None else Fallbacks()
        self.conversations = Conversations(
            policy_obj.conversation if policy_obj is not None else ConversationSettings(),
            policy_obj.sessions if policy_obj is not None else SessionSettings(),
            lookup=service.audit.session_models if service.audit is not None else None)
        self.groups = dict(groups) if isinstance(groups, Mapping) else dict.fromkeys(groups)
        if not self.groups:
            raise ConfigError("groups: expected at least one model group to route")
        for name, target in self.groups.items():
            if target is not None and not (isinstance(target, (int, float)) and 0 <= target <= 1):
                raise ConfigError(f"groups.{name}: expected a quality target in [0, 1] or None, found {target!r}")
        self.fallback = fallback
        self.timeout_s = float(timeout_s)
        self.settle_s = float(settle_s)
        self.check = make_check(check, "RouterMLRouting(check=...)") if isinstance(check, (dict, list)) else check
        self.score = score
        self.strategy = _Strategy(self)
        self.litellm_router = None
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="router-ml-litellm")
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep, name="router-ml-litellm-settle", daemon=True)
        self._sweeper.start()
        service.warm_up(background=False)  # the embedding model is loaded before the first request's deadline

    # -- attaching -----------------------------------------------------------------------

    def attach(self, litellm_router) -> RouterMLRouting:
        """Register the routing strategy on a LiteLLM Router and this object among LiteLLM's
        callbacks; checks that each routed group has deployments of the router's models."""
        import litellm

        self.litellm_router = litellm_router
        for group in self.groups:
            mapped = [d for d in self._deployments(group) if self._model_of(d) is not None]
            if not mapped:
                raise ConfigError(f"model group {group!r}: no deployment maps to one of the router's models "
                                  f"{self.service.router.models} (set model_info.{MODEL_INFO_KEY}, or name the "
                                  "deployment's model after a catalog model)")
            self._fallback_for(group)  # a configured fallback that does not exist is an error now
        litellm_router.register_plugin(self.strategy)
        if self not in litellm.callbacks:
            litellm.callbacks.append(self)
        return self

    def detach(self) -> None:
        """Take this object off LiteLLM's callbacks, and the lists LiteLLM copied it into (the
        Router keeps the strategy until its routing strategy changes)."""
        import litellm

        for name in ("callbacks", "success_callback", "failure_callback", "_async_success_callback",
                     "_async_failure_callback"):
            registered = getattr(litellm, name, None)
            while isinstance(registered, list) and self in registered:
                registered.remove(self)

    # -- deployments ---------------------------------------------------------------------

    def _deployments(self, group: str) -> list[dict]:
        return [d for d in self.litellm_router.registry().all() if d.get("model_name") == group]

    def _model_of(self, deployment: Mapping) -> str | None:
        """The catalog model a deployment serves: model_info.router_ml_model, else the group or the
        provider model when it names one of the router's models; None when it serves none."""
        models = self.service.known_models
        info = deployment.get("model_info") or {}
        named = info.get(MODEL_INFO_KEY)
        if isinstance(named, str) and named:
            return named if named in models else None
        if deployment.get("model_name") in models:
            return deployment["model_name"]
        provider = str((deployment.get("litellm_params") or {}).get("model", ""))
        tail = provider.rsplit("/", 1)[-1]
        return provider if provider in models else tail if tail in models else None

    @staticmethod
    def _id_of(deployment: Mapping) -> str:
        return str((deployment.get("model_info") or {}).get("id", ""))

    def _fallback_for(self, group: str) -> dict:
        """The deployment a request of `group` goes to when router-ml fails."""
        deployments = self._deployments(group)
        wanted = self.fallback or self.service.fallback_model
        for d in deployments:
            if self._id_of(d) == wanted:
                return d
        matching = [d for d in deployments if self._model_of(d) == wanted]
        if matching:
            return matching[0]
        if self.fallback is not None:
            raise ConfigError(f"fallback {self.fallback!r}: neither a deployment id nor a catalog model with a "
                              f"deployment in group {group!r}")
        return deployments[-1]

    def _pick_of(self, group: str, model: str, exclude=()) -> dict | None:
        """A deployment of `model` in `group`, at random, preferring ones not yet tried."""
        options = [d for d in self._deployments(group) if self._model_of(d) == model]
        fresh = [d for d in options if self._id_of(d) not in exclude]
        pool = fresh or options
        return self._random.choice(pool) if pool else None

    # -- picking -------------------------------------------------------------------------

    def begin(self, model: str, messages, request_kwargs: dict | None):
        """The first half of a pick: a deployment at once (a group not routed, a retry), or the
        planning to run (`_Routing`, whose `plan()` the caller runs within the deadline)."""
        request_kwargs = request_kwargs if request_kwargs is not None else {}
        if model not in self.groups:
            return self._pass_through(model, request_kwargs)
        metadata = _metadata_of(request_kwargs, create=True)
        options = metadata.get(OPTIONS) if isinstance(metadata.get(OPTIONS), dict) else {}
        with self._lock:
            pending = self._pending.get(options.get(_CALL)) if options.get(_CALL) else None
        if pending is not None:
            return self._retry(pending, model)
        if not messages:  # not a chat request (embeddings, ...): nothing to route on
            return self._pass_through(model, request_kwargs)
        options = {k: v for k, v in options.items() if k not in (_CALL, "request_id", "model", "reason",
                                                                   "session_note")} | \
            ({"request_id": options["request_id"]} if isinstance(options.get("request_id"), str) else {})
        metadata[OPTIONS] = options  # a copy: a dict the caller passes again is not shared between requests
        caller = _caller_metadata(metadata)
        return _Routing(self, model, list(messages), request_kwargs, metadata, caller, options)

    def finish(self, routing: _Routing, pending: _Pending | None, error: BaseException | None) -> dict:
        """The second half: the planned request's deployment (or the fallback's, on `error`),
        stamped into the request's metadata and remembered until its callbacks."""
        if pending is None:
            timed_out = isinstance(error, (TimeoutError, concurrent.futures.TimeoutError))
            if not timed_out:
                log.error("router-ml failed to route a request; failing open", exc_info=error)
            pending = self._failed_open(routing.group, routing.messages, routing.caller, routing.options, error,
                                        timed_out)
        deployment = self._pick_of(pending.group, pending.chain[0])
        if deployment is None:  # the model has no deployment in this group any more
            deployment = self._fallback_for(pending.group)
            pending.served.model = self._model_of(deployment) or pending.served.model
            pending.served.fallback = _join(pending.served.fallback, "no_deployment")
        token = uuid.uuid4().hex
        routing.options.update({_CALL: token, "request_id": pending.served.request_id, "model": pending.served.model,
                                "reason": pending.served.reason})
        if pending.served.session_note:
            routing.options["session_note"] = pending.served.session_note
        with self._lock:
            pending.tried.append(self._id_of(deployment))
            pending.in_flight += 1
            self._pending[token] = pending
        return deployment

    def _plan(self, group: str, messages: list, request_kwargs: dict, metadata: dict, caller: dict,
              options: dict) -> _Pending:
        """Plan a routed request (on a worker thread): rules, router, conversation, exploration."""
        service = self.service
        target = options.get("quality_target", self.groups[group])
        headers = metadata.get("headers") if isinstance(metadata.get("headers"), Mapping) else None
        if target is None and headers:
            value = {str(k).lower(): v for k, v in headers.items()}.get("x-router-quality-target")
            target = float(value) if value not in (None, "") else None
        available = sorted({m for d in self._deployments(group) if (m := self._model_of(d)) is not None})
        restrict = None if set(service.router.models) <= set(available) else \
            (f"group {group}: among the models with a deployment", tuple(m for m in service.router.models if m in available))
        user = request_kwargs.get("user") if isinstance(request_kwargs.get("user"), str) else None
        if user is not None:
            caller = {**caller, "user": user}
        self._await_tool_calls(messages)
        chat = self.conversations.plan(service, messages, quality_target=target, metadata=caller, headers=headers,
                                       user=user, restrict=restrict, callable_models=available, count=False)
        plan = chat.plan
        if len(plan.steps) > 1:  # one call per request: the router's choice among the cascade's steps
            chosen = plan.decision.model if plan.decision is not None and plan.decision.model in plan.steps \
                else plan.steps[-1]
            plan.notes.append(f"cascade {' -> '.join(plan.steps)} not run (LiteLLM makes one call per request): "
                              f"{chosen}, the router's choice")
            plan.steps, plan.thresholds = [chosen], ()
        reason = plan.reason()
        # Where the plan really goes, with the serving distribution it was drawn from (exploration,
        # onboarding; propensity 1 when forced, guarded or fallen back), counted as the service counts it.
        [served] = service.assign(chat.router, [chat.prompt], [plan])
        served.reason = served.reason if served.exploration else reason
        if options.get("request_id"):
            served.request_id = options["request_id"]
        served.session, served.session_note = chat.session, chat.session_note
        if chat.action != "none":
            service.metrics.session_turns.labels(chat.action).inc()
        if plan.guarded:
            service.metrics.novelty_guarded.inc()
        chain = [m for m in self.fallbacks.chain_for(served.model)
                 if m == served.model or ((plan.rules.allowed is None or m in plan.rules.allowed) and m in available)]
        # The session remembers the turn now: LiteLLM runs success callbacks later, on its own
        # queue, and the conversation's next turn may be planned before this one's callback.
        self.conversations.remember(chat, served.model)
        return _Pending(served, chat.prompt, caller, group, chat, served.model, chain,
                        request={k: request_kwargs.get(k) for k in ("tools", "response_format")})

    def _await_tool_calls(self, messages: list) -> None:
        """A tool result answers a tool call whose model is remembered in the call's success
        callback, which LiteLLM runs later, on its own queue: when the call is not known yet and
        some call's callback is still to come, wait for it (at most half the planning deadline)."""
        try:
            ids = routing_text(messages, self.conversations.conversation).continues
        except Exception:  # noqa: BLE001 - nothing to route on: conversations.plan names the error
            return
        deadline = time.monotonic() + self.timeout_s / 2
        while ids and self.conversations.caller_of(ids) is None and self._waiting() and time.monotonic() < deadline:
            time.sleep(0.01)

    def _failed_open(self, group: str, messages, caller: dict, options: dict, exc: BaseException | None,
                     timed_out: bool) -> _Pending:
        deployment = self._fallback_for(group)
        model = self._model_of(deployment) or str(deployment.get("model_name"))
        why = f"router-ml took longer than {self.timeout_s:g} s" if timed_out else \
            f"router-ml failed ({type(exc).__name__}: {exc})"
        router = self.service.router
        served = Served(request_id=options.get("request_id") or new_request_id(), router_version=router.version,
                        model=model, confidence=None, scores={}, costs={}, estimated_cost=None,
                        reason=f"{why}; failed open to {model}", quality_target=options.get("quality_target"),
                        fallback="router_timeout" if timed_out else "router_error", cascade=[model])
        self.service.metrics.fallbacks.labels(served.fallback).inc()
        texts = [message_text(m.get("content")) for m in messages or () if isinstance(m, Mapping)]
        return _Pending(served, "\n\n".join(t for t in texts if t), caller, group, None, model, [model])

    def _retry(self, pending: _Pending, group: str) -> dict:
        """A later call of a request already routed: the next model of the planned model's
        fallback chain that has a deployment not yet tried, else the planned model again."""
        if group != pending.group:  # a LiteLLM fallback to another group: its own deployments
            deployment = self._pass_through(group, {})
        else:
            deployment = None
            for model in pending.chain:
                candidate = self._pick_of(group, model, exclude=pending.tried)
                if candidate is not None and self._id_of(candidate) not in pending.tried:
                    deployment = candidate
                    break
            deployment = deployment or self._pick_of(group, pending.chain[0]) or self._fallback_for(group)
        with self._lock:
            pending.tried.append(self._id_of(deployment))
            pending.in_flight += 1
            pending.failed_at = None
        return deployment

    def _pass_through(self, group: str, request_kwargs: Mapping) -> dict:
        """A deployment of a group the plugin does not route: one at random (simple-shuffle)."""
        deployments = self._deployments(group)
        if not deployments:
            deployments = [d for d in self.litellm_router.registry().all() if self._id_of(d) == group]
        if not deployments:
            raise ValueError(f"no deployment for model group {group!r}")
        return self._random.choice(deployments)

    # -- callbacks -----------------------------------------------------------------------

    def _pending_of(self, kwargs: Mapping, pop: bool) -> tuple[str | None, _Pending | None]:
        metadata = _metadata_of(kwargs.get("litellm_params") or {}) or _metadata_of(kwargs)
        options = metadata.get(OPTIONS) if isinstance(metadata, Mapping) else None
        token = options.get(_CALL) if isinstance(options, Mapping) else None
        with self._lock:
            pending = (self._pending.pop(token, None) if pop else self._pending.get(token)) if token else None
        return token, pending

    def _deployment_of(self, kwargs: Mapping) -> tuple[str, str | None]:
        """(the deployment id, its catalog model) a callback is about."""
        params = kwargs.get("litellm_params") or {}
        info = params.get("model_info") or _metadata_of(params).get("model_info") or {}
        deployment_id = str(info.get("id") or kwargs.get("model_id") or "")
        for d in self.litellm_router.registry().all() if self.litellm_router is not None else ():
            if self._id_of(d) == deployment_id:
                return deployment_id, self._model_of(d)
        return deployment_id, None

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._on_success(kwargs, response_obj, end_time)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._on_success(kwargs, response_obj, end_time)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._on_failure(kwargs, start_time, end_time)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._on_failure(kwargs, start_time, end_time)

    def _on_success(self, kwargs: Mapping, response, end_time) -> None:
        try:
            _, pending = self._pending_of(kwargs, pop=True)
            if pending is None:
                return  # not a routed request (a passed-through group), or already written
            deployment_id, model = self._deployment_of(kwargs)
            served = pending.served
            model = model or str(kwargs.get("model") or served.model)
            ms = _ms(kwargs.get("api_call_start_time") or kwargs.get("start_time"), end_time)
            pending.attempts.append({"model": model, "deployment": deployment_id, "attempt": len(pending.attempts) + 1,
                                     "status": 200, **({"ms": ms} if ms is not None else {})})
            usage = _usage(response)
            cost = self._cost(model, usage, kwargs)
            if model != pending.planned:
                served.fallback = _join(served.fallback, f"{pending.planned} -> {model}")
            served.model = model
            served.steps = [{"model": pending.planned, "outcome": "accepted", "cost": cost, "served_by": model,
                             "attempts": pending.attempts}]
            served.cost = cost
            served.latency_ms = round(1000 * (_timestamp(end_time) - pending.started), 2)
            self._observe(pending.attempts, model, usage, cost)
            self.service.metrics.routes.labels(model).inc()
            self.service.metrics.requests.labels("litellm", "ok").inc()
            self.service.record(pending.prompt, served, pending.metadata)
            if pending.chat is not None:  # the turn was remembered when it was planned: its tool calls, and a fallback
                chat = pending.chat if model != pending.planned else dataclasses.replace(pending.chat, session=None)
                self.conversations.remember(chat, model, _tool_calls(response))
            self._outcome(pending, served, response, kwargs, cost)
            self._later(pending)
        except Exception:  # noqa: BLE001 - a callback never fails the caller's request
            log.exception("router-ml could not record a LiteLLM call")

    def _on_failure(self, kwargs: Mapping, start_time, end_time) -> None:
        try:
            _, pending = self._pending_of(kwargs, pop=False)
            if pending is None:
                return
            deployment_id, model = self._deployment_of(kwargs)
            exc = kwargs.get("exception")
            status = getattr(exc, "status_code", None)
            attempt = {"model": model or str(kwargs.get("model") or ""), "deployment": deployment_id,
                       "attempt": len(pending.attempts) + 1, "error": _error_text(exc), "kind": _kind(exc)}
            if isinstance(status, int):
                attempt["status"] = status
            ms = _ms(start_time, end_time)
            if ms is not None:
                attempt["ms"] = ms
            with self._lock:
                pending.attempts.append(attempt)
                pending.in_flight = max(0, pending.in_flight - 1)
                pending.failed_at = time.monotonic()
        except Exception:  # noqa: BLE001
            log.exception("router-ml could not record a failed LiteLLM call")

    def _cost(self, model: str, usage: dict | None, kwargs: Mapping) -> float | None:
        """USD: the provider's token counts times the router's prices; LiteLLM's own cost when the
        router has no prices for the model; None when neither is known."""
        cost_model = self.service.router.cost_model
        if model in cost_model.models and usage and isinstance(usage.get("prompt_tokens"), int):
            i = cost_model.models.index(model)
            if cost_model.input_price[i] is not None and cost_model.output_price[i] is not None:
                return (usage["prompt_tokens"] * cost_model.input_price[i]
                        + int(usage.get("completion_tokens") or 0) * cost_model.output_price[i]) / 1e6
            if cost_model.mean_call_cost[i] is not None:
                return float(cost_model.mean_call_cost[i])
        cost = kwargs.get("response_cost")
        return float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None

    def _observe(self, attempts: list[dict], model: str, usage: dict | None, cost: float | None) -> None:
        metrics = self.service.metrics
        for a in attempts:
            metrics.upstream_requests.labels(a["model"]).inc()
            if a.get("ms") is not None:
                metrics.upstream_latency.labels(a["model"]).observe(a["ms"] / 1000)
            if "error" in a:
                metrics.upstream_errors.labels(a["model"], a.get("kind", "server_error")).inc()
        for kind in ("prompt", "completion"):
            tokens = (usage or {}).get(f"{kind}_tokens")
            if isinstance(tokens, int) and tokens >= 0:
                metrics.upstream_tokens.labels(model, kind).inc(tokens)
        if cost:
            metrics.upstream_cost.labels(model).inc(cost)

    def _outcome(self, pending: _Pending, served: Served, response, kwargs: Mapping, cost: float | None) -> None:
        """The configured verdict on the answer (`check`) or the caller's score (`score`), as an outcome row."""
        if self.service.audit is None or (self.check is None and self.score is None):
            return
        success, score, source = None, None, None
        if self.score is not None:
            given = self.score(kwargs, response)
            if isinstance(given, bool):
                success, source = given, "caller"
            elif isinstance(given, (int, float)):
                score, source = float(given), "caller"
        if source is None and self.check is not None:
            message = _message(response)
            calls = tuple((c["function"]["name"], c["function"].get("arguments", ""))
                          for c in (message or {}).get("tool_calls") or () if isinstance(c, Mapping) and
                          isinstance(c.get("function"), Mapping))
            request = pending.request or {}
            schemas = {t["function"]["name"]: t["function"].get("parameters") for t in request.get("tools") or ()
                       if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping)} or None
            fmt = request.get("response_format")
            response_schema = {"type": "object"} if isinstance(fmt, Mapping) and fmt.get("type") == "json_object" else None
            estimate = pending.chat.plan.decision.scores.get(served.model) if pending.chat is not None and \
                pending.chat.plan.decision is not None else None
            verdict = self.check.verdict(AnswerContext(
                message_text((message or {}).get("content")), pending.prompt, served.model, estimate,
                verifier=self.service.verifier(self.service.router), tool_calls=calls,
                refusal=(message or {}).get("refusal") if isinstance((message or {}).get("refusal"), str) else None,
                tool_schemas=schemas, response_schema=response_schema))
            success, score, source = verdict.passed, verdict.score, "check"
        if source is None:
            return
        self.service.record_outcomes([Outcome(served.request_id, served.model, success, score, cost, served.latency_ms,
                                              source)], single=True)

    def record_outcome(self, request_id: str, model: str, **fields) -> None:
        """Record how a routed call went, later (`success=`, `score=`, `cost=`, `latency_ms=`): the
        request id is `metadata["router_ml"]["request_id"]` of the call. Reported before LiteLLM
        has run the call's callback, it is checked now and written right after the decision."""
        outcome = Outcome(request_id, model, **fields).checked(known_models=self.service.known_models)
        with self._lock:
            pending = next((p for p in self._pending.values() if p.served.request_id == request_id), None)
            if pending is not None:
                pending.later.append(outcome)
                return
        self.service.record_outcomes([outcome], single=True)

    def _later(self, pending: _Pending) -> None:
        """The outcomes reported while the call was still on its way."""
        if pending.later:
            self.service.record_outcomes(pending.later)

    # -- failed requests ------------------------------------------------------------------

    def _sweep(self) -> None:
        while not self._stop.wait(min(0.5, self.settle_s / 2)):
            self._settle(lambda p: p.failed_at is not None and time.monotonic() - p.failed_at >= self.settle_s)

    def _settle(self, due: Callable[[_Pending], bool]) -> int:
        """Write the requests whose every call failed (`due` says which have waited long enough)."""
        with self._lock:
            done = [(t, p) for t, p in self._pending.items() if p.in_flight == 0 and p.failed_at is not None and due(p)]
            for token, _ in done:
                del self._pending[token]
        for _, pending in done:
            try:
                served = pending.served
                served.fallback = _join(served.fallback, "all_failed")
                served.steps = [{"model": pending.planned, "outcome": "failed", "attempts": pending.attempts,
                                 "detail": "; ".join(f"{a['model']}: {a['error']}" for a in pending.attempts
                                                     if "error" in a)}]
                served.latency_ms = round(1000 * (time.time() - pending.started), 2)
                self._observe(pending.attempts, pending.planned, None, None)
                self.service.metrics.fallbacks.labels("all_failed").inc()
                self.service.metrics.requests.labels("litellm", "failed").inc()
                self.service.record(pending.prompt, served, pending.metadata)
                self._later(pending)
            except Exception:  # noqa: BLE001
                log.exception("router-ml could not record a failed LiteLLM request")
        return len(done)

    def _waiting(self) -> bool:
        """Whether a call handed to LiteLLM has not had its callback yet."""
        with self._lock:
            return any(p.in_flight > 0 for p in self._pending.values())

    def flush(self, timeout: float = 10.0) -> None:
        """Wait (at most `timeout` s) for the callbacks of the calls made, write every request
        whose calls all failed at once (without waiting `settle_s`), and wait until the audit
        log has committed every row: for tests and shutdown, when no request is in flight.
        LiteLLM runs async callbacks on the event loop: from async code, `await aflush()`."""
        deadline = time.monotonic() + timeout
        while self._waiting() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._settle(lambda p: True)
        if self.service.audit is not None:
            self.service.audit.flush(max(0.1, deadline - time.monotonic()))

    async def aflush(self, timeout: float = 10.0) -> None:
        """`flush` for async code: lets the event loop run LiteLLM's callbacks while it waits."""
        deadline = time.monotonic() + timeout
        while self._waiting() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.get_running_loop().run_in_executor(None, self.flush, max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Flush, stop the plugin's threads and close the service (its audit log)."""
        self.flush(timeout=1.0)
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.detach()
        self.service.close()

    def metrics_text(self) -> bytes:
        """The plugin's Prometheus metrics (router_*), to serve from the caller's own app."""
        return self.service.metrics.render()

    # -- the LiteLLM proxy ------------------------------------------------------------------

    async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
        """The proxy calls this before routing each request: attach to the proxy's Router once."""
        if self.litellm_router is None:
            from litellm.proxy import proxy_server

            if proxy_server.llm_router is None:
                raise ConfigError("the LiteLLM proxy has no Router (model_list is empty)")
            self.attach(proxy_server.llm_router)
        return data

    async def async_post_call_success_hook(self, data, user_api_key_dict, response):
        """The proxy calls this before answering: the decision goes back as x-router-* headers."""
        options = _metadata_of(data).get(OPTIONS)
        if isinstance(options, Mapping) and options.get("request_id"):
            hidden = getattr(response, "_hidden_params", None)
            if isinstance(hidden, dict):
                headers = hidden.setdefault("additional_headers", {}) or {}
                hidden["additional_headers"] = headers
                headers["x-router-request-id"] = str(options["request_id"])
                headers["x-router-model"] = str(options.get("model", ""))
                headers["x-router-reason"] = " ".join(str(options.get("reason", "")).split())[:400].encode(
                    "latin-1", "replace").decode("latin-1")
        return response


class _Routing:
    """A pick that needs planning: what `RouterMLRouting.begin` read of the request."""

    def __init__(self, plugin: RouterMLRouting, group: str, messages: list, request_kwargs: dict, metadata: dict,
                 caller: dict, options: dict) -> None:
        self.plugin, self.group, self.messages = plugin, group, messages
        self.request_kwargs, self.metadata, self.caller, self.options = request_kwargs, metadata, caller, options

    def plan(self) -> _Pending:
        return self.plugin._plan(self.group, self.messages, self.request_kwargs, self.metadata, self.caller,
                                 self.options)


class _Strategy(CustomRoutingStrategyBase):
    """What `litellm.Router.register_plugin` takes: each pick goes to the plugin; planning (which
    embeds the prompt) runs on the plugin's threads within `timeout_s`."""

    def __init__(self, plugin: RouterMLRouting) -> None:
        self.plugin = plugin

    async def async_get_available_deployment(self, model, messages=None, input=None, specific_deployment=False,
                                             request_kwargs=None):
        plugin = self.plugin
        step = plugin.begin(model, messages, request_kwargs)
        if not isinstance(step, _Routing):
            return step
        future = asyncio.get_running_loop().run_in_executor(plugin._pool, step.plan)
        try:
            pending = await asyncio.wait_for(future, plugin.timeout_s)
        except Exception as exc:  # noqa: BLE001 - a timeout or a failure of router-ml: fail open
            return plugin.finish(step, None, exc)
        return plugin.finish(step, pending, None)

    def get_available_deployment(self, model, messages=None, input=None, specific_deployment=False,
                                 request_kwargs=None):
        plugin = self.plugin
        step = plugin.begin(model, messages, request_kwargs)
        if not isinstance(step, _Routing):
            return step
        try:
            pending = plugin._pool.submit(step.plan).result(timeout=plugin.timeout_s)
        except Exception as exc:  # noqa: BLE001 - a timeout or a failure of router-ml: fail open
            return plugin.finish(step, None, exc)
        return plugin.finish(step, pending, None)


def _build_service(router: str, policy, audit, prompt_storage: str, audit_key_file, exploration_rate: float,
                   seed, batch_wait_ms: float) -> RoutingService:
    from router_ml.core.router import load_router
    from router_ml.policy.file import load_policy
    from router_ml.policy.verifier import verifier_of

    loaded = load_router(router)
    policy_obj = None
    if policy is not None:
        policy_obj = load_policy(policy, loaded.models, loaded.cost_model.chars_per_token)
        if policy_obj.needs_verifier and verifier_of(loaded) is None:
            raise ConfigError(f"{policy}: the policy reads the learned verifier, and router {loaded.version} has none")
    store = audit
    if audit is not None and not isinstance(audit, AuditStore):
        store = AuditStore(audit, prompt_storage=prompt_storage, key_file=audit_key_file)
    try:
        return RoutingService(router, audit=store, router=loaded, policy=policy_obj, exploration_rate=exploration_rate,
                              seed=seed, batch_wait_ms=batch_wait_ms)
    except BaseException:
        if store is not None and store is not audit:
            store.close()
        raise


def _metadata_of(kwargs: Mapping, create: bool = False) -> dict:
    """A request's metadata dict, as LiteLLM names it (`litellm_metadata` on newer endpoints);
    with `create`, an empty one put on the request when it has none."""
    if not isinstance(kwargs, Mapping):
        return {}
    for name in ("litellm_metadata", "metadata"):
        value = kwargs.get(name)
        if isinstance(value, dict):
            return value
    if create and isinstance(kwargs, dict):
        return kwargs.setdefault("metadata", {})
    return {}


def _caller_metadata(metadata: Mapping) -> dict:
    """The caller's own metadata, without what LiteLLM adds: the proxy's `requester_metadata`,
    else the request's metadata less LiteLLM's keys."""
    requester = metadata.get("requester_metadata")
    source = requester if isinstance(requester, Mapping) else metadata
    return {k: v for k, v in source.items()
            if isinstance(k, str) and k not in LITELLM_METADATA and not k.startswith(LITELLM_METADATA_PREFIXES)}


def _message(response):
    try:
        message = response.choices[0].message
    except (AttributeError, IndexError, TypeError):
        return None
    if hasattr(message, "model_dump"):
        return message.model_dump()
    return message if isinstance(message, Mapping) else None


def _tool_calls(response) -> tuple[str, ...]:
    ids: list[str] = []
    for choice in getattr(response, "choices", None) or ():
        message = getattr(choice, "message", None)
        if message is not None and hasattr(message, "model_dump"):
            ids += tool_call_ids(message.model_dump())
    return tuple(ids)


def _usage(response) -> dict | None:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None
    if hasattr(usage, "model_dump"):
        usage = usage.model_dump()
    return usage if isinstance(usage, Mapping) else None


def _kind(exc) -> str:
    """An exception's kind, as the gateway names failed calls (router_upstream_errors_total{kind})."""
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__.lower()
    if "timeout" in name:
        return "timeout"
    if "connection" in name:
        return "connection"
    if status in (401, 403, 407):
        return "auth"
    if status == 429:
        return "rate_limited"
    if isinstance(status, int) and 400 <= status < 500:
        return "client_error"
    return "server_error"


def _error_text(exc) -> str:
    """A failed call, named without the provider's message (which may quote a key)."""
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if isinstance(status, int) else "")


def _timestamp(value) -> float:
    if hasattr(value, "timestamp"):
        return value.timestamp()
    return float(value) if isinstance(value, (int, float)) else time.time()


def _ms(start, end) -> float | None:
    try:
        return round(1000 * (_timestamp(end) - _timestamp(start)), 1) if start is not None and end is not None else None
    except (TypeError, ValueError, OverflowError):
        return None


def _join(*parts: str | None) -> str | None:
    return "; ".join(p for p in parts if p) or None


__all__ = ["MODEL_INFO_KEY", "OPTIONS", "RouterMLRouting"]
