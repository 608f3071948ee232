"""The OpenAI-compatible gateway: request handling (handler), upstream calls with retries,
fallbacks and cool-down (upstreams), and the stream relay (relay)."""

from router_ml.serve.gateway.handler import Gateway, Reply
from router_ml.serve.gateway.upstreams import Answer, Upstreams

__all__ = ["Answer", "Gateway", "Reply", "Upstreams"]
