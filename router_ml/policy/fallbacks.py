"""Fallbacks: what to try when a model's call fails (an error, a timeout, 429 or 5xx).

    fallbacks:
      default: [mini, big-model]           # after any model, unless it has its own chain
      chains: {big-model: [big-model-backup]}
      retries: 1                           # more tries of the same model first
      timeout_s: 30
      cooldown_s: 30                       # a model that exhausted its tries is skipped this long

The settings only; the calls that follow them are `router_ml.serve.gateway.upstreams`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fallbacks:
    default: tuple[str, ...] = ()
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    retries: int = 1
    timeout_s: float = 30.0
    cooldown_s: float = 30.0

    def chain_for(self, model: str) -> list[str]:
        """`model`, then the models to try when it fails, without repeats."""
        chain = [model, *self.chains.get(model, self.default)]
        return list(dict.fromkeys(chain))
