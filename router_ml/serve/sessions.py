"""What the service remembers of conversations, and how a chat request is planned with it.

Both chat faces, the gateway (router_ml.serve.gateway) and the LiteLLM plugin
(router_ml.integrations.litellm), plan a chat request the same way:

1. the router reads the last user turn and a bounded window before it
   (router_ml.policy.conversation.routing_text), not system prompts, tool schemas or tool
   results; the rules' token conditions count the whole request;
2. a request whose last message is a tool result goes back to the model that made the tool
   call (remembered by tool-call id, else the session's last model);
3. with a session key, a later turn never goes to a weaker model than an earlier turn of the
   conversation used (`sessions.downgrade: allowed` turns this off); escalating stays allowed;
4. after the call, the model that answered is remembered for the session and its tool calls.

A rule that forces a model, or a restriction that leaves out the conversation's model, wins,
and the turn says so. Steps 2 and 3 fire as the pseudo-rules `tool-continuation` and `session`
(in the audit log's `rule`); the audit row keeps the session (`session`) and why the turn kept,
or did not keep, its model (`session_note`).

Memory: at most `max_sessions` conversations (the least recently used forgotten first), each
forgotten after `ttl_s` idle, and as many tool calls. A conversation this process has not seen
(another worker's, or one from before a restart) is looked up in the audit log, so the
guarantee holds across `--workers` and restarts for turns the log has written (it commits
every `--flush-interval`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from router_ml.policy.cascade import Plan
from router_ml.policy.conversation import (
    CONTINUATION_RULE,
    SESSION_RULE,
    ConversationSettings,
    RoutingText,
    SessionSettings,
    routing_text,
    session_key,
    strength_ranks,
)

TYPICAL_PROMPT_CHARS = 2000  # the prompt length at which models are ranked by price


@dataclass
class _Session:
    floor: str  # the strongest model an earlier turn used
    last: str  # the model of the latest turn
    turns: int
    seen: float


@dataclass
class ChatPlan:
    """A chat request planned: the router that planned it, the text it read, the plan (with the
    conversation's steering applied) and the session."""

    router: object
    prompt: str  # the routing text, normalised as the router reads it
    plan: Plan
    routed: RoutingText
    session: str | None = None
    session_source: str | None = None
    session_note: str | None = None
    action: str = "none"  # what the conversation did: first, routed, kept, released, continuation, none
    prior: _Session | None = None  # the conversation before this turn (memory or the audit log)


class Conversations:
    """Sessions and tool calls remembered, and the steering of plans with them (module docstring).

    `lookup(session) -> [models]` (optional) finds a conversation's earlier turns in the audit
    log when this process has not seen it."""

    def __init__(self, conversation: ConversationSettings | None = None, sessions: SessionSettings | None = None, *,
                 lookup: Callable[[str, float], list[str]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.conversation = conversation or ConversationSettings()
        self.settings = sessions or SessionSettings()
        self.lookup = lookup
        self.clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._calls: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._ranks: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()

    # -- planning ------------------------------------------------------------------------

    def plan(self, service, messages: list, *, quality_target=None, metadata: dict | None = None,
             headers: Mapping[str, str] | None = None, user=None, force: str | None = None,
             restrict: tuple | None = None, callable_models=None, routed: RoutingText | None = None,
             count: bool = True) -> ChatPlan:
        """Plan a chat request on `service` (a RoutingService): rules, router and cascade on the
        routing text (`routed`, when the caller has it already), then the conversation's
        steering (unless the client named a model: `force`). `callable_models`: the models a
        remembered tool call may go back to; `count`: see RoutingService.plan."""
        routed = routed or routing_text(messages, self.conversation)
        found = session_key(self.settings, headers=headers, metadata=metadata, user=user)
        key, source = found if found is not None else (None, None)
        router, [prompt], [plan] = service.plan([routed.text], quality_target, metadata, force=force,
                                               restrict=restrict, size=routed.request_chars, count=count)
        chat = ChatPlan(router, prompt, plan, routed, key, source)
        if key is not None:
            chat.prior = self._state(key, self.ranks(router))
        if force is None:
            models = set(callable_models) if callable_models is not None else set(router.models)
            self._steer(chat, models)
        if chat.session_note:
            plan.notes.append(chat.session_note)
        return chat

    def _steer(self, chat: ChatPlan, models: set[str]) -> None:
        plan, rules = chat.plan, chat.plan.rules
        ranks = self.ranks(chat.router)
        state = chat.prior
        if chat.routed.continues:
            asked = self.caller_of(chat.routed.continues) or (state.last if state is not None else None)
            if asked is None or asked not in models:
                chat.session_note = ("tool result: the model that asked for the tool is not known here; routed on the "
                                     "last user turn")
            elif rules.force and rules.force != asked:
                chat.session_note = f"tool result: not sent back to {asked}, the rule {rules.fired[-1]} forces {rules.force}"
                chat.action = "released"
                return
            elif rules.allowed is not None and asked not in rules.allowed:
                chat.session_note = (f"tool result: not sent back to {asked}, the rules allow only "
                                     f"{', '.join(rules.allowed)}")
                chat.action = "released"
                return
            else:
                self._force(plan, asked, CONTINUATION_RULE)
                chat.session_note = f"tool result: back to {asked}, the model that asked for the tool"
                chat.action = "continuation"
                return
        if chat.session is None:
            return
        if state is None:
            chat.action = "first"
            return
        floor = state.floor
        if floor not in ranks:  # a model the current router does not route (e.g. after a reload)
            chat.action = "routed"
            return
        planned = plan.model
        kept = [m for m in plan.steps if ranks.get(m, -1) >= ranks[floor]]
        if kept == plan.steps:
            chat.action = "routed"
            return
        if self.settings.downgrade:
            chat.session_note = f"session: {planned} is weaker than {floor}, an earlier turn's model; the policy allows it"
            chat.action = "released"
            return
        if rules.force:
            chat.session_note = (f"session: the rule {rules.fired[-1]} forces {rules.force}, weaker than {floor}, an "
                                 "earlier turn's model")
            chat.action = "released"
            return
        if not kept:
            allowed = rules.allowed if rules.allowed is not None else tuple(chat.router.models)
            stronger = sorted((m for m in allowed if ranks.get(m, -1) >= ranks[floor]), key=ranks.__getitem__)
            if not stronger:
                chat.session_note = (f"session: {floor}, an earlier turn's model, is outside the rules' restriction "
                                     f"({', '.join(allowed)}); routed as usual")
                chat.action = "released"
                return
            kept = [floor if floor in stronger else stronger[0]]
        plan.steps, plan.thresholds = kept, ()
        if len(kept) == 1:
            self._force(plan, kept[0], SESSION_RULE)
        else:
            rules.fired.append(SESSION_RULE)
        chat.session_note = (f"session: kept {kept[0]} (turn {state.turns + 1}; an earlier turn used {floor}, the "
                             f"router chose the weaker {planned})")
        chat.action = "kept"

    @staticmethod
    def _force(plan: Plan, model: str, rule: str) -> None:
        plan.steps, plan.thresholds = [model], ()
        plan.rules.force = model
        plan.rules.fired.append(rule)

    def ranks(self, router) -> dict[str, int]:
        """Each of the router's models ranked weakest (0) to strongest: the policy's order, else by
        estimated price for a typical prompt."""
        ranks = self._ranks.get(router.version)
        if ranks is None:
            costs = router.cost_model.estimate(TYPICAL_PROMPT_CHARS)[0]
            ranks = strength_ranks(list(router.models), self.settings.order, dict(zip(router.models, costs.tolist())))
            self._ranks = {router.version: ranks}  # one router at a time (a reload replaces it)
        return ranks

    # -- memory ----------------------------------------------------------------------------

    def _state(self, key: str, ranks: dict[str, int]) -> _Session | None:
        """The conversation `key` so far: from memory, else from the audit log (None: a new one)."""
        now = self.clock()
        with self._lock:
            state = self._sessions.get(key)
            if state is not None and now - state.seen > self.settings.ttl_s:
                del self._sessions[key]
                state = None
            if state is not None:
                self._sessions.move_to_end(key)
                return _Session(state.floor, state.last, state.turns, state.seen)
        if self.lookup is None:
            return None
        earlier = self.lookup(key, self.settings.ttl_s)  # oldest first
        if not earlier:
            return None
        return _Session(max(earlier, key=lambda m: ranks.get(m, -1)), earlier[-1], len(earlier), now)

    def remember(self, chat: ChatPlan, model: str, tool_calls: tuple[str, ...] = ()) -> None:
        """After the call: `model` answered this turn (and made `tool_calls`)."""
        now = self.clock()
        ranks = self.ranks(chat.router)
        with self._lock:
            if chat.session is not None:
                state = self._sessions.pop(chat.session, None)
                if state is None or now - state.seen > self.settings.ttl_s:
                    prior = chat.prior
                    state = _Session(prior.floor, prior.last, prior.turns, now) if prior else _Session(model, model, 0, now)
                if ranks.get(model, -1) > ranks.get(state.floor, -1):
                    state.floor = model
                state.last, state.turns, state.seen = model, state.turns + 1, now
                self._sessions[chat.session] = state
                while len(self._sessions) > self.settings.max_sessions:
                    self._sessions.popitem(last=False)
            for call_id in tool_calls:
                self._calls[call_id] = (model, now)
                self._calls.move_to_end(call_id)
            while len(self._calls) > self.settings.max_sessions:
                self._calls.popitem(last=False)

    def caller_of(self, call_ids: tuple[str, ...]) -> str | None:
        """The model that made one of these tool calls (the most recent one remembered), or None."""
        now = self.clock()
        with self._lock:
            for call_id in call_ids:
                found = self._calls.get(call_id)
                if found is not None and now - found[1] <= self.settings.ttl_s:
                    return found[0]
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
