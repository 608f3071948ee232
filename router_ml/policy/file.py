"""The policy file: rules, a cascade and fallback chains in one small YAML file.

    rules:                                  # checked in order for every request
      - name: long-context
        when: {min_tokens: 3000}            # all conditions must hold
        force: big-model                    # send it there; later rules are not checked
      - name: free-tier
        when: {metadata: {tier: free}}      # request metadata; a list means "any of"
        restrict: [nano, mini]              # the router chooses among these
      - name: code
        when: {regex: '(?m)^\\s*(def|class|fn) '}
        quality_target: 0.9                 # the knob, for matching requests
    cascade:                                # try a cheap model, escalate when not good enough
      steps: [nano, router]                 # "router": the learned router's choice
      escalate_if:
        confidence_below: 0.6               # skip a step the router doubts
        check: {json: true}                 # or a list; kinds in router_ml.policy.checks
    # cascade: learned                      # or: the router's own cascades, planned from its verifier
      max_escalations: 1
      max_cost: 0.05                        # USD per request, estimated before each call
    novelty: {above: 0.99, route_to: big-model}   # prompts unlike any training prompt go here
    fallbacks:                              # when a model errors or times out
      default: [mini, big-model]
      chains: {big-model: [big-model-backup]}
      retries: 1
      timeout_s: 30
      cooldown_s: 30
    conversation: {context_turns: 1, context_chars: 1000}   # what the router reads of a chat
    sessions:                               # a conversation never moves to a weaker model
      key: [header:x-session-id, metadata:session_id]
      downgrade: never

What each section means is in its own module: `rules`, `cascade` (and `checks`),
`fallbacks`, `conversation` (the conversation and sessions sections). This one reads the file with line numbers and validates it into a `Policy`.
A model the client names is honoured only within the rules' restriction, and a `force`
rule overrides it. A rule may combine `restrict` and `quality_target`; `force` stands alone.

Validation at load, each message naming the file and line: unknown keys or models, a
bad regex, a rule that can never match (min_tokens above max_tokens), a rule whose
restriction is disjoint from an earlier one that always applies with it (contradictory),
and duplicate names are errors; a rule that can never fire because an earlier `force`
rule matches whenever it does (shadowed) is a warning. `router-ml rules check` also
reports rules that never fired on a log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from router_ml.core.catalog import DEFAULT_CHARS_PER_TOKEN
from router_ml.core.validation import check_number, check_share
from router_ml.errors import PolicyError
from router_ml.policy.cascade import LEARNED, NOVELTY_GUARD, ROUTER_STEP, Cascade, NoveltyGuard
from router_ml.policy.checks import compile_regex, make_check
from router_ml.policy.conversation import (
    CONTINUATION_RULE,
    SESSION_RULE,
    ConversationSettings,
    SessionSettings,
    parse_session_source,
)
from router_ml.policy.fallbacks import Fallbacks
from router_ml.policy.rules import Condition, Rule, RuleResult, apply_rules, metadata_value

_TOP = {"rules", "cascade", "fallbacks", "novelty", "conversation", "sessions"}
_CONVERSATION = {"context_turns", "context_chars", "__line__"}
_SESSIONS = {"key", "downgrade", "order", "ttl_s", "max_sessions", "__line__"}
RESERVED_RULE_NAMES = (NOVELTY_GUARD, SESSION_RULE, CONTINUATION_RULE, "client-model")
_NOVELTY = {"above", "route_to", "__line__"}
_RULE = {"name", "when", "force", "restrict", "quality_target", "__line__"}
_WHEN = {"min_tokens", "max_tokens", "regex", "metadata", "__line__"}
_CASCADE = {"steps", "escalate_if", "max_escalations", "max_cost", "__line__"}
_ESCALATE = {"confidence_below", "check", "__line__"}
_FALLBACKS = {"default", "chains", "retries", "timeout_s", "cooldown_s", "__line__"}


@dataclass
class Policy:
    """A validated policy file: what the service and the replay apply around the router."""

    rules: list[Rule] = field(default_factory=list)
    cascade: Cascade | None = None
    fallbacks: Fallbacks = field(default_factory=Fallbacks)
    novelty: NoveltyGuard | None = None
    conversation: ConversationSettings = field(default_factory=ConversationSettings)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    warnings: list[str] = field(default_factory=list)
    source: str = "<memory>"
    chars_per_token: float = DEFAULT_CHARS_PER_TOKEN

    @property
    def needs_verifier(self) -> bool:
        """The policy reads the router's learned verifier (a learned cascade or a verifier check)."""
        return self.cascade is not None and (self.cascade.learned or (
            self.cascade.check is not None and self.cascade.check.needs_verifier))

    def models(self) -> set[str]:
        """Every model the policy names (rules, cascade steps, fallback chains)."""
        named = {r.force for r in self.rules if r.force} | {m for r in self.rules for m in (r.restrict or ())}
        if self.cascade is not None:
            named |= set(self.cascade.steps) - {ROUTER_STEP}
        if self.novelty is not None:
            named.add(self.novelty.route_to)
        named |= set(self.fallbacks.default) | set(self.fallbacks.chains)
        named |= set(self.sessions.order or ())
        return named | {m for chain in self.fallbacks.chains.values() for m in chain}

    def apply_rules(self, prompt: str, metadata: dict | None = None, size: int | None = None) -> RuleResult:
        """The rules' decision for a request; `size`: the characters of the whole request when
        the prompt routed on is only part of it (a conversation's last turn): token conditions
        count those."""
        return apply_rules(self.rules, prompt, metadata, self.chars_per_token, size=size)


# Reading YAML with line numbers: every mapping gets a "__line__" key.

def _loader():
    import yaml

    class LineLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            mapping = super().construct_mapping(node, deep=deep)
            mapping["__line__"] = node.start_mark.line + 1
            return mapping

    return LineLoader


def _read(path: Path) -> dict:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc}") from exc
    try:
        data = yaml.load(text, Loader=_loader())  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PolicyError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if data is None:
        data = {"__line__": 1}
    if not isinstance(data, dict):
        raise PolicyError(f"{path}:1: expected a mapping with rules, cascade and/or fallbacks")
    return data


LEARNED_NAME = "learned-cascade"  # the built-in policy: the router's own planned cascades


def load_policy(path: str | Path, models: list[str], chars_per_token: float = DEFAULT_CHARS_PER_TOKEN) -> Policy:
    """Read and validate a policy file against the models that can be routed to; the name
    `learned-cascade` (no such file) is the built-in policy of the router's learned cascades."""
    if str(path) == LEARNED_NAME and not Path(path).exists():
        return Policy(cascade=LEARNED, source=LEARNED_NAME, chars_per_token=chars_per_token)
    path = Path(path)
    if not path.is_file():
        raise PolicyError(f"{path}: policy file not found")
    return policy_from_dict(_read(path), models, str(path), chars_per_token)


def policy_from_dict(data: dict, models: list[str], source: str = "<policy>",
                     chars_per_token: float = DEFAULT_CHARS_PER_TOKEN) -> Policy:
    known = set(models)

    def at(obj, fallback: int = 1) -> str:
        line = obj.get("__line__", fallback) if isinstance(obj, dict) else fallback
        return f"{source}:{line}"

    def keys_of(obj: dict, allowed: set, where: str) -> None:
        unknown = sorted(set(obj) - allowed)
        if unknown:
            raise PolicyError(f"{where}: unknown keys {unknown}; expected some of {sorted(allowed - {'__line__'})}")

    def model(name, where: str, allow_router: bool = False) -> str:
        if allow_router and name == ROUTER_STEP:
            return name
        if not isinstance(name, str) or name not in known:
            raise PolicyError(f"{where}: model {name!r} is not in the catalog/router ({', '.join(models)})")
        return name

    def model_list(value, where: str, allow_router: bool = False) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise PolicyError(f"{where}: expected a non-empty list of models, found {value!r}")
        return tuple(model(v, where, allow_router) for v in value)

    keys_of(data, _TOP | {"__line__"}, at(data))
    policy = Policy(source=source, chars_per_token=chars_per_token)

    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list):
        raise PolicyError(f"{at(data)}: rules: expected a list of rules")
    names: dict[str, int] = {}
    for i, raw in enumerate(raw_rules, start=1):
        if not isinstance(raw, dict):
            raise PolicyError(f"{source}: rules[{i}]: expected a mapping with when and an action, found {raw!r}")
        where = at(raw)
        keys_of(raw, _RULE, where)
        name = str(raw.get("name", f"rule-{i}"))
        if name in names:
            raise PolicyError(f"{where}: rule name {name!r} is already used on line {names[name]}")
        if name in RESERVED_RULE_NAMES:
            raise PolicyError(f"{where}: rule name {name!r} is reserved (router-ml records {list(RESERVED_RULE_NAMES)} "
                              "among the rules that fired)")
        names[name] = raw.get("__line__", 1)
        rule = Rule(name=name, line=raw.get("__line__", 1), when=_condition(raw.get("when") or {}, where),
                    force=model(raw["force"], where) if raw.get("force") is not None else None,
                    restrict=model_list(raw["restrict"], where) if raw.get("restrict") is not None else None,
                    quality_target=_target(raw.get("quality_target"), where))
        if rule.force is None and rule.restrict is None and rule.quality_target is None:
            raise PolicyError(f"{where}: rule {name!r} has no action; give force, restrict or quality_target")
        if rule.force is not None and (rule.restrict is not None or rule.quality_target is not None):
            raise PolicyError(f"{where}: rule {name!r}: force picks the model, so restrict/quality_target would be "
                              "ignored; split it into two rules")
        _check_against_earlier(rule, policy, where)
        policy.rules.append(rule)

    raw = data.get("cascade")
    if raw == "learned":  # the router's own planned cascades
        policy.cascade = LEARNED
    elif raw is not None:
        where = at(raw, data.get("__line__", 1))
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: cascade: expected a mapping with steps and escalate_if, or \"learned\"")
        keys_of(raw, _CASCADE, where)
        steps = model_list(raw.get("steps"), f"{where}: cascade.steps", allow_router=True)
        if len(steps) < 2:
            raise PolicyError(f"{where}: cascade.steps: expected at least two steps, found {list(steps)}")
        escalate = raw.get("escalate_if") or {}
        if not isinstance(escalate, dict):
            raise PolicyError(f"{where}: cascade.escalate_if: expected a mapping")
        keys_of(escalate, _ESCALATE, at(escalate, raw.get("__line__", 1)))
        below = escalate.get("confidence_below")
        if below is not None:
            below = _target(below, f"{where}: cascade.escalate_if.confidence_below")
        check = None
        if escalate.get("check") is not None:
            check = make_check(escalate["check"], at(escalate["check"], escalate.get("__line__", raw.get("__line__", 1))))
        if below is None and check is None:
            raise PolicyError(f"{where}: cascade.escalate_if: give confidence_below and/or check")
        max_esc = _number(raw.get("max_escalations", len(steps) - 1), f"{where}: cascade.max_escalations", integer=True)
        max_cost = raw.get("max_cost")
        if max_cost is not None:
            max_cost = _number(max_cost, f"{where}: cascade.max_cost (USD)", positive=True)
        policy.cascade = Cascade(steps, below, check, max_esc, max_cost)

    raw = data.get("novelty")
    if raw is not None:
        where = at(raw, data.get("__line__", 1))
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: novelty: expected a mapping such as {{above: 0.99, route_to: MODEL}}")
        keys_of(raw, _NOVELTY, where)
        if raw.get("above") is None or raw.get("route_to") is None:
            raise PolicyError(f"{where}: novelty: give above (0..1) and route_to (a model)")
        policy.novelty = NoveltyGuard(_target(raw["above"], f"{where}: novelty.above"),
                                      model(raw["route_to"], f"{where}: novelty.route_to"))

    raw = data.get("conversation")
    if raw is not None:
        where = at(raw, data.get("__line__", 1))
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: conversation: expected a mapping such as {{context_turns: 1, context_chars: 1000}}")
        keys_of(raw, _CONVERSATION, where)
        defaults = ConversationSettings()
        policy.conversation = ConversationSettings(
            context_turns=_number(raw.get("context_turns", defaults.context_turns),
                                  f"{where}: conversation.context_turns", integer=True),
            context_chars=_number(raw.get("context_chars", defaults.context_chars),
                                  f"{where}: conversation.context_chars", integer=True))

    raw = data.get("sessions")
    if raw is not None:
        where = at(raw, data.get("__line__", 1))
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: sessions: expected a mapping such as {{key: [header:x-session-id], "
                              "downgrade: never}")
        keys_of(raw, _SESSIONS, where)
        defaults = SessionSettings()
        keys = raw.get("key", list(defaults.keys))
        keys = keys if isinstance(keys, list) else [keys]
        if not keys:
            raise PolicyError(f"{where}: sessions.key: expected header:NAME, metadata:FIELD or user (or a list)")
        keys = tuple(parse_session_source(k, f"{where}: sessions.key", PolicyError) for k in keys)
        downgrade = raw.get("downgrade", "never")
        if downgrade not in ("never", "allowed"):
            raise PolicyError(f"{where}: sessions.downgrade: expected never or allowed, found {downgrade!r}")
        order = model_list(raw["order"], f"{where}: sessions.order") if raw.get("order") is not None else None
        if order is not None and len(set(order)) != len(order):
            raise PolicyError(f"{where}: sessions.order: a model is listed twice in {list(order)}")
        policy.sessions = SessionSettings(
            keys=keys, downgrade=downgrade == "allowed", order=order,
            ttl_s=_number(raw.get("ttl_s", defaults.ttl_s), f"{where}: sessions.ttl_s", positive=True),
            max_sessions=_number(raw.get("max_sessions", defaults.max_sessions), f"{where}: sessions.max_sessions",
                                 integer=True, positive=True))

    raw = data.get("fallbacks")
    if raw is not None:
        where = at(raw, data.get("__line__", 1))
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: fallbacks: expected a mapping")
        keys_of(raw, _FALLBACKS, where)
        default = model_list(raw["default"], f"{where}: fallbacks.default") if raw.get("default") is not None else ()
        chains_raw = raw.get("chains") or {}
        if not isinstance(chains_raw, dict):
            raise PolicyError(f"{where}: fallbacks.chains: expected model: [fallback models]")
        chains = {model(k, f"{where}: fallbacks.chains"): model_list(v, f"{where}: fallbacks.chains.{k}")
                  for k, v in chains_raw.items() if k != "__line__"}
        policy.fallbacks = Fallbacks(
            default, chains,
            retries=_number(raw.get("retries", 1), f"{where}: fallbacks.retries", integer=True),
            timeout_s=_number(raw.get("timeout_s", 30.0), f"{where}: fallbacks.timeout_s", positive=True),
            cooldown_s=_number(raw.get("cooldown_s", 30.0), f"{where}: fallbacks.cooldown_s"),
        )
    return policy


def _check_against_earlier(rule: Rule, policy: Policy, where: str) -> None:
    for earlier in policy.rules:
        if not rule.when.implies(earlier.when):
            continue  # the earlier rule does not always fire with this one
        if earlier.force:
            policy.warnings.append(f"{where}: rule {rule.name!r} never fires: rule {earlier.name!r} "
                                   f"(line {earlier.line}) matches whenever it does and forces {earlier.force}")
        elif earlier.restrict and (rule.restrict or rule.force):
            wanted = rule.restrict or (rule.force,)
            if not set(wanted) & set(earlier.restrict):
                action = f"restricting to {list(wanted)}" if rule.restrict else f"forcing {rule.force}"
                raise PolicyError(f"{where}: rule {rule.name!r} contradicts rule {earlier.name!r} (line {earlier.line}): "
                                  f"both apply to the same requests, and {action} after restricting to "
                                  f"{list(earlier.restrict)} leaves no model")


def _condition(raw, where: str) -> Condition:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: when: expected a mapping of conditions, found {raw!r}")
    unknown = sorted(set(raw) - _WHEN)
    if unknown:
        raise PolicyError(f"{where}: when: unknown conditions {unknown}; expected some of "
                          f"{sorted(_WHEN - {'__line__'})}")
    lo = _number(raw["min_tokens"], f"{where}: when.min_tokens", integer=True) if raw.get("min_tokens") is not None else None
    hi = _number(raw["max_tokens"], f"{where}: when.max_tokens", integer=True) if raw.get("max_tokens") is not None else None
    if lo is not None and hi is not None and lo > hi:
        raise PolicyError(f"{where}: when: min_tokens {lo} > max_tokens {hi}: the rule can never match")
    meta = raw.get("metadata") or {}
    if not isinstance(meta, dict):
        raise PolicyError(f"{where}: when.metadata: expected key: value (or key: [values])")
    metadata = {}
    for key, value in meta.items():
        if key == "__line__":
            continue
        values = value if isinstance(value, list) else [value]
        if not values or any(isinstance(v, (dict, list)) or v is None for v in values):
            raise PolicyError(f"{where}: when.metadata.{key}: expected a value or a list of values, found {value!r}")
        metadata[str(key)] = frozenset(metadata_value(v) for v in values)
    regex = compile_regex(raw["regex"], f"{where}: when.regex") if raw.get("regex") is not None else None
    return Condition(lo, hi, regex, metadata)


def _target(value, where: str) -> float | None:
    return None if value is None else check_share(value, where, error=PolicyError)


def _number(value, where: str, *, integer: bool = False, positive: bool = False):
    return check_number(value, where, integer=integer, positive=positive, error=PolicyError)
