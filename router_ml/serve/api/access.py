"""Who may call what: the dependency each route declares with the scope its token must carry
(router_ml.serve.auth has the tokens and the scopes)."""

from __future__ import annotations

from fastapi import Depends, Request

from router_ml.errors import AuthError
from router_ml.serve.auth import TokenStore
from router_ml.serve.metrics import Metrics


class Access:
    """`require(scope)`: a FastAPI dependency refusing a request whose token lacks `scope` (401
    without a valid token, 403 with one that lacks the scope). Without tokens every route is
    open but admin, which is off; refusals are counted by reason."""

    def __init__(self, tokens: TokenStore, metrics: Metrics) -> None:
        self.tokens = tokens
        self.metrics = metrics

    def require(self, scope: str):
        tokens, failures = self.tokens, self.metrics.auth_failures

        def check(request: Request) -> None:
            if not tokens.enabled:
                if scope == "admin":
                    failures.labels("admin_off").inc()
                    raise AuthError("admin endpoints are off: configure tokens (--tokens-file or ROUTER_ML_TOKENS) "
                                    "with the admin scope", 403)
                return
            token = tokens.check(request.headers.get("authorization"))
            if token is None:
                failures.labels("missing_or_unknown").inc()
                raise AuthError("a valid bearer token is needed: Authorization: Bearer TOKEN", 401)
            if scope not in token.scopes:
                failures.labels("scope").inc()
                raise AuthError(f"the token {token.name!r} lacks the scope {scope!r}", 403)
        return Depends(check)
