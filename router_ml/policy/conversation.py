"""Conversations and agents: what the router reads of a chat request, and how one conversation
keeps its model from turn to turn.

A chat request is a list of messages: system prompts, tool schemas, earlier turns, tool calls
and their results. Routing all of it as one block of text lets a long agent system prompt or a
tool's output decide where the request goes, and the embedder's window may cut off what the
human asked. So the router reads the *last user turn*, with a bounded window of earlier user
turns before it (a follow-up such as "and in Python?" means little alone):

    conversation:                 # a policy file's section (router_ml.policy.file); defaults shown
      context_turns: 1            # earlier user turns read with the last one (0: the last turn alone)
      context_chars: 1000         # at most this many characters of them, the most recent kept

System and developer messages, tool schemas, assistant turns and tool results are not read.
The window's turns come first and the last turn last (`routing_text`), so a router whose
embedder keeps the end of a long text (the default, `tail` truncation) always sees the ask.
benchmarks/conversations.py measures the window against routing the bare prompt.

A request whose last message is a tool result continues a tool call: it goes back to the model
that asked for the tool (`RoutingText.continues`, the tool-call ids it answers; the service
remembers which model made which call).

Sessions: with a session key (a header, `user`, or a metadata field), later turns of a
conversation never move to a weaker model than an earlier turn used; escalation stays allowed.

    sessions:
      key: [header:x-session-id, metadata:session_id]   # where a request names its conversation; first found wins
      downgrade: never            # or allowed: each turn routed on its own
      order: [nano, mini, pro]    # weakest first (default: the router's models by estimated price)
      ttl_s: 3600                 # a conversation idle this long is forgotten
      max_sessions: 100000        # most conversations remembered (the least recent forgotten first)

A rule that forces a model, or a restriction that leaves out the earlier turn's model, still
wins: that is the policy saying so. What the service remembers is in router_ml.serve.sessions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from router_ml.errors import InvalidRequestError

DEFAULT_CONTEXT_TURNS = 1
DEFAULT_CONTEXT_CHARS = 1000
DEFAULT_SESSION_KEYS = ("header:x-session-id", "metadata:session_id")
SESSION_SOURCES = ("header", "metadata", "user")
SESSION_RULE = "session"  # the name stickiness fires under, among the rules
CONTINUATION_RULE = "tool-continuation"  # the name a tool result sent back to its model fires under
TOOL_ROLES = ("tool", "function")
MAX_SESSION_KEY_CHARS = 256


@dataclass(frozen=True)
class ConversationSettings:
    """What the router reads of a conversation (see the module docstring)."""

    context_turns: int = DEFAULT_CONTEXT_TURNS
    context_chars: int = DEFAULT_CONTEXT_CHARS


@dataclass(frozen=True)
class SessionSettings:
    """How a conversation keeps its model (see the module docstring). `keys`: where a request
    names its session, as "header:NAME", "metadata:FIELD" or "user", the first found wins."""

    keys: tuple[str, ...] = DEFAULT_SESSION_KEYS
    downgrade: bool = False
    order: tuple[str, ...] | None = None
    ttl_s: float = 3600.0
    max_sessions: int = 100_000


@dataclass(frozen=True)
class RoutingText:
    """What the router reads of one chat request."""

    text: str  # the window of earlier user turns, then the last user turn
    source: str  # "last_user_turn", or "all_messages" when the request has no user turn with text
    context_turns: int  # earlier user turns read
    continues: tuple[str, ...] = ()  # tool-call ids a trailing tool result answers (a continuation)
    request_chars: int = 0  # characters of every message: what the model will read (rules' token counts)


def message_text(content) -> str:
    """The text of a chat message's content (a string, or the text parts of a list)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "\n".join(p.get("text", "") for p in content
                         if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return ""


def routing_text(messages: list, settings: ConversationSettings = ConversationSettings()) -> RoutingText:
    """The text to route a chat request on: the last user turn, after at most
    `context_turns` earlier user turns (together at most `context_chars` characters, the most
    recent kept whole first); when no user turn has text, every message's text joined.
    InvalidRequestError when nothing has text."""
    texts = [message_text(m.get("content")) if isinstance(m, Mapping) else "" for m in messages]
    roles = [m.get("role") if isinstance(m, Mapping) else None for m in messages]
    total = sum(len(t) for t in texts)
    continues = _continuation(messages, roles)
    users = [i for i, (role, text) in enumerate(zip(roles, texts)) if role == "user" and text.strip()]
    if not users:
        joined = "\n\n".join(t for t in texts if t)
        if not joined.strip():
            raise InvalidRequestError("the messages hold no text to route on", "messages")
        return RoutingText(joined, "all_messages", 0, continues, total)
    ask = texts[users[-1]]
    context, budget = [], max(0, settings.context_chars)
    for i in reversed(users[:-1][-settings.context_turns:] if settings.context_turns > 0 else []):
        if budget <= 0:
            break
        turn = texts[i].strip()
        if len(turn) > budget:
            turn = turn[:budget].rstrip() + " ..."
        context.append(turn)
        budget -= len(turn)
    context.reverse()
    return RoutingText("\n\n".join([*context, ask]), "last_user_turn", len(context), continues, total)


def _continuation(messages: list, roles: list) -> tuple[str, ...]:
    """The tool-call ids that the request's trailing tool results answer (empty when its last
    message is not a tool result)."""
    if not roles or roles[-1] not in TOOL_ROLES:
        return ()
    ids, i = [], len(messages) - 1
    while i >= 0 and roles[i] in TOOL_ROLES:
        call_id = messages[i].get("tool_call_id")
        if isinstance(call_id, str) and call_id:
            ids.append(call_id)
        i -= 1
    if i >= 0 and roles[i] == "assistant":  # the turn that asked: its calls' ids (old `function` results carry none)
        for call in messages[i].get("tool_calls") or ():
            if isinstance(call, Mapping) and isinstance(call.get("id"), str) and call["id"] and call["id"] not in ids:
                ids.append(call["id"])
    return tuple(ids)


def tool_call_ids(message) -> tuple[str, ...]:
    """The ids of the tool calls in an assistant message (a response's `choices[i].message`)."""
    if not isinstance(message, Mapping):
        return ()
    return tuple(c["id"] for c in message.get("tool_calls") or ()
                 if isinstance(c, Mapping) and isinstance(c.get("id"), str) and c["id"])


def session_key(settings: SessionSettings, *, headers: Mapping[str, str] | None = None,
                metadata: Mapping | None = None, user=None) -> tuple[str, str] | None:
    """(the session key, where it came from) for a request, or None when it names no session.
    Header names are matched without regard to case; a key is at most 256 characters."""
    lowered = {str(k).lower(): v for k, v in (headers or {}).items()}
    for source in settings.keys:
        kind, _, name = source.partition(":")
        if kind == "header":
            value = lowered.get(name.lower())
        elif kind == "metadata":
            value = (metadata or {}).get(name)
        else:
            value = user
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.strip():
            value = value.strip()
            if len(value) > MAX_SESSION_KEY_CHARS:
                raise InvalidRequestError(f"the session key ({source}) is {len(value):,} characters; at most "
                                          f"{MAX_SESSION_KEY_CHARS} are accepted", name if kind != "user" else "user")
            return value, source
    return None


def strength_ranks(models: list[str], order: tuple[str, ...] | None, prices: Mapping[str, float]) -> dict[str, int]:
    """Each model's rank, weakest 0: the order the policy gives (models it leaves out rank by
    price below those it lists), else by estimated price, cheapest first."""
    by_price = sorted(models, key=lambda m: (prices.get(m, 0.0), m))
    if not order:
        return {m: i for i, m in enumerate(by_price)}
    listed = [m for m in order if m in models]
    rest = [m for m in by_price if m not in listed]
    return {m: i for i, m in enumerate([*rest, *listed])}


def parse_session_source(value, where: str, error) -> str:
    """A session key source as written in a policy file or an option ("header:x-session-id",
    "metadata:session_id", "user"), checked; `error(message)` builds the exception."""
    if not isinstance(value, str) or not value.strip():
        raise error(f"{where}: expected header:NAME, metadata:FIELD or user, found {value!r}")
    kind, colon, name = value.strip().partition(":")
    if kind not in SESSION_SOURCES or (kind == "user") == bool(colon) or (colon and not name.strip()):
        raise error(f"{where}: expected header:NAME, metadata:FIELD or user, found {value!r}")
    return f"{kind}:{name.strip()}" if colon else kind
