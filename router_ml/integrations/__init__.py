"""Integrations: router-ml inside other people's gateways.

`router_ml.integrations.litellm`: a routing plugin and callbacks for a LiteLLM Router (the SDK)
or the LiteLLM proxy (`pip install 'router-ml[litellm]'`).

The layer sits above `router_ml.serve` (it loads a router into a RoutingService and writes the
service's audit store); nothing in router_ml imports it, and importing router_ml never imports
LiteLLM.
"""
