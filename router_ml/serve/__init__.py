"""The serve layer: running a router. The service (`service.RoutingService`), the audit store's
writer (`audit/`), the HTTP app (`app`, its routes by face in `api/`), the OpenAI-compatible
gateway (`gateway/`), metrics, limits, tokens, the listening sockets (`listen`) and the MLflow
pyfunc.

Imports `router_ml.core` and `router_ml.policy`; nothing below it imports it. Importing this
package imports nothing heavy (FastAPI loads with `app`).
"""
