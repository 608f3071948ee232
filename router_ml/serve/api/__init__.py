"""The HTTP service's routes, one module per face, assembled by `router_ml.serve.app.create_app`.

    routing.py     POST /v1/route, POST /v1/outcomes (router-ml's own API)
    openai.py      POST /v1/chat/completions, GET /v1/models, /v1/models/{id} (OpenAI's shape)
    operations.py  /healthz, /readyz, /metrics, /admin/reload, and /docs, /openapi.json behind tokens

and what the faces share: `access.py` (the bearer-token dependency), `errors.py` (the error
responses and the handlers that turn FastAPI's own errors into them), `middleware.py` (request
ids, JSON only) and `schemas.py` (the request bodies).
"""
