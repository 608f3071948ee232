"""Rules: ordered conditions on a request and what they do to its routing.

    - name: free-tier
      when: {metadata: {tier: free}, max_tokens: 2000}   # all conditions must hold
      restrict: [nano, mini]                            # or force: MODEL, or quality_target: x

Conditions: `min_tokens` / `max_tokens` (the request's length in tokens, estimated from
its characters as the catalog does: for a chat request every message, what the model will
read), `regex` (searched in the prompt routed on: for a chat request the last user turn and
its window, router_ml.policy.conversation), `metadata`
(key: value or key: [values]). Every matching rule applies its actions in order:
`restrict` narrows the candidates (a restriction that would leave no model is skipped
and noted), the first `quality_target` set wins, and `force` picks the model and stops
(a `force` outside an earlier restriction is skipped and noted: restrictions are
guarantees, e.g. what a tier may use).

`count_rule_hits` is what `router-ml rules check` reports: how often each rule fired on
a log of requests, so rules that never fire can be found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from router_ml.core.catalog import DEFAULT_CHARS_PER_TOKEN, estimate_tokens


@dataclass(frozen=True)
class Condition:
    min_tokens: int | None = None
    max_tokens: int | None = None
    regex: re.Pattern | None = None
    metadata: dict[str, frozenset] = field(default_factory=dict)

    def matches(self, tokens: int, prompt: str, metadata: dict) -> bool:
        if self.min_tokens is not None and tokens < self.min_tokens:
            return False
        if self.max_tokens is not None and tokens > self.max_tokens:
            return False
        for key, values in self.metadata.items():
            if key not in metadata or metadata_value(metadata[key]) not in values:
                return False
        return self.regex is None or self.regex.search(prompt) is not None

    def implies(self, other: Condition) -> bool:
        """Whenever this condition holds, `other` holds too (checked structurally)."""
        if other.min_tokens is not None and (self.min_tokens is None or self.min_tokens < other.min_tokens):
            return False
        if other.max_tokens is not None and (self.max_tokens is None or self.max_tokens > other.max_tokens):
            return False
        if other.regex is not None and (self.regex is None or self.regex.pattern != other.regex.pattern
                                        or self.regex.flags != other.regex.flags):
            return False
        return all(key in self.metadata and self.metadata[key] <= values for key, values in other.metadata.items())


@dataclass(frozen=True)
class Rule:
    name: str
    line: int
    when: Condition
    force: str | None = None
    restrict: tuple[str, ...] | None = None
    quality_target: float | None = None

    def describe(self) -> str:
        action = (f"force {self.force}" if self.force else
                  ", ".join(x for x in (f"restrict to {list(self.restrict)}" if self.restrict else "",
                                        f"quality_target {self.quality_target:g}" if self.quality_target is not None else "")
                            if x))
        return f"rule {self.name!r} (line {self.line}): {action}"


@dataclass
class RuleResult:
    """What the rules decided for one request."""

    fired: list[str] = field(default_factory=list)
    force: str | None = None
    allowed: tuple[str, ...] | None = None
    quality_target: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rule(self) -> str | None:
        return ",".join(self.fired) or None


def apply_rules(rules: list[Rule], prompt: str, metadata: dict | None = None,
                chars_per_token: float = DEFAULT_CHARS_PER_TOKEN, size: int | None = None) -> RuleResult:
    """What `rules`, checked in order, decide for one request; `size`: the request's characters
    when `prompt` is only the part routed on (token conditions count them), else the prompt's."""
    metadata = metadata or {}
    tokens = int(estimate_tokens(len(prompt) if size is None else max(size, len(prompt)), chars_per_token))
    result = RuleResult()
    for rule in rules:
        if not rule.when.matches(tokens, prompt, metadata):
            continue
        if rule.force:
            if result.allowed is not None and rule.force not in result.allowed:
                result.notes.append(f"{rule.name}: skipped, it forces {rule.force} outside the restriction "
                                    f"{list(result.allowed)}")
                continue
            result.fired.append(rule.name)
            result.force = rule.force
            break
        applied = False
        if rule.restrict is not None:
            narrowed = rule.restrict if result.allowed is None else tuple(m for m in result.allowed if m in rule.restrict)
            if narrowed:
                result.allowed = narrowed
                applied = True
            else:
                result.notes.append(f"{rule.name}: skipped, its restriction {list(rule.restrict)} leaves no model "
                                    f"with {list(result.allowed)}")
        if rule.quality_target is not None and result.quality_target is None:
            result.quality_target = rule.quality_target
            applied = True
        if applied:
            result.fired.append(rule.name)
    return result


@dataclass
class RuleHits:
    """How often each rule fired on a log (`requests` seen in all)."""

    counts: dict[str, int]
    requests: int = 0

    def never_fired(self, rules: list[Rule]) -> list[Rule]:
        return [r for r in rules if self.counts.get(r.name, 0) == 0] if self.requests else []


def count_rule_hits(rules: list[Rule], *, requests: Iterable[tuple[str, dict]] = (),
                    fired_lists: Iterable[str | None] = (), chars_per_token: float = DEFAULT_CHARS_PER_TOKEN) -> RuleHits:
    """Count firings: `requests` (prompt, metadata) are run through the rules now;
    `fired_lists` are rules recorded as fired (the audit log's comma-separated `rule`)."""
    hits = RuleHits({rule.name: 0 for rule in rules})
    for prompt, metadata in requests:
        for name in apply_rules(rules, prompt, metadata, chars_per_token).fired:
            hits.counts[name] += 1
        hits.requests += 1
    for fired in fired_lists:
        for name in (fired or "").split(","):
            if name in hits.counts:
                hits.counts[name] += 1
        hits.requests += 1
    return hits


def metadata_value(value) -> str:
    """How rules compare metadata: as strings, booleans written as YAML writes them (true/false)."""
    return str(value).lower() if isinstance(value, bool) else str(value)
