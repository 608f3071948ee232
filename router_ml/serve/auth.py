"""The front door: bearer tokens with scopes, from a file or an environment variable.

    # tokens.yaml (pass with --tokens-file; the service reads it once, at start)
    tokens:
      - name: web-app               # shown in logs and metrics, never the token
        sha256: 9f86d08...          # sha256 hex of the token: the file holds no secret
        scopes: [route]
      - name: eval-pipeline
        env: EVAL_PIPELINE_TOKEN    # or: the token is in this environment variable
        scopes: [outcomes]
      - name: ops
        sha256: 60303ae...
        scopes: [admin, metrics]

or, without a file, `ROUTER_ML_TOKENS="route:TOKEN_A outcomes:TOKEN_B admin,metrics:TOKEN_C"`.
Tokens are never read from the command line (they would show in `ps` and shell history)
and never logged.

Scopes: `route` (POST /v1/route, /v1/chat/completions, GET /v1/models), `outcomes`
(POST /v1/outcomes), `metrics` (GET /metrics), `read` (the decision explorer at /ui: what was routed where,
and prompt text where the audit log keeps it), `admin` (POST /admin/reload, the OpenAPI docs,
and /ui). A browser presents its token once at /ui/login, which keeps it in an HttpOnly,
SameSite=Strict cookie scoped to /ui. /healthz and /readyz stay open for orchestrators. A request presents
`Authorization: Bearer TOKEN`; it is compared with every configured token's sha256 in
constant time (hmac.compare_digest).

With no token configured the service is open for routing on loopback only: the admin
endpoints are off, and `router-ml serve` refuses to bind beyond loopback unless told
`--allow-unauthenticated`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

from router_ml.errors import ConfigError

SCOPES = ("route", "outcomes", "metrics", "read", "admin")
ENV_TOKENS = "ROUTER_ML_TOKENS"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class Token:
    name: str
    digest: bytes  # sha256 of the token
    scopes: frozenset[str]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


def _scopes(value, where: str) -> frozenset[str]:
    scopes = value if isinstance(value, list) else [value]
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise ConfigError(f"{where}: scopes: expected some of {list(SCOPES)}, found {value!r}")
    return frozenset(scopes)


def _secret(token: str, where: str) -> bytes:
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{where}: a token needs at least {MIN_TOKEN_CHARS} characters (found {len(token)}); "
                          "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return _digest(token)


class TokenStore:
    """The configured tokens; `scopes_of(authorization header)` says what a request may do."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def check(self, authorization: str | None) -> Token | None:
        """The token an `Authorization: Bearer ...` header presents, or None (missing or unknown)."""
        if not authorization:
            return None
        kind, _, presented = authorization.partition(" ")
        if kind.lower() != "bearer" or not presented.strip():
            return None
        digest = _digest(presented.strip())
        found = None
        for token in self.tokens:  # every comparison runs: the time does not say which one matched
            if hmac.compare_digest(digest, token.digest):
                found = token
        return found

    @classmethod
    def load(cls, path: str | Path | None = None, environ=None) -> TokenStore:
        """From `path` (YAML, see module docstring) or, without one, ROUTER_ML_TOKENS; empty when neither."""
        environ = os.environ if environ is None else environ
        if path is not None:
            return cls(_from_file(Path(path), environ))
        spec = environ.get(ENV_TOKENS, "").strip()
        tokens = []
        for i, item in enumerate(spec.split()):
            scopes, sep, token = item.rpartition(":")
            where = f"{ENV_TOKENS} item {i + 1}"
            if not sep or not scopes:
                raise ConfigError(f"{where}: expected SCOPE[,SCOPE]:TOKEN")
            tokens.append(Token(f"env-{i + 1}", _secret(token, where), _scopes(scopes.split(","), where)))
        return cls(tokens)


def _from_file(path: Path, environ) -> list[Token]:
    import yaml

    if not path.is_file():
        raise ConfigError(f"{path}: tokens file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    entries = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected 'tokens:' with a list of {{name, sha256 or env, scopes}}")
    tokens, names = [], set()
    for i, entry in enumerate(entries, start=1):
        where = f"{path}: tokens[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping with name, sha256 (or env) and scopes")
        unknown = set(entry) - {"name", "sha256", "env", "scopes"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; a token itself never goes in the file "
                              "(give its sha256, or env: VARIABLE)")
        name = entry.get("name")
        if not isinstance(name, str) or not name or name in names:
            raise ConfigError(f"{where}: expected a unique name, found {name!r}")
        names.add(name)
        if ("sha256" in entry) == ("env" in entry):
            raise ConfigError(f"{where}: give exactly one of sha256 (hex of the token) and env (a variable name)")
        if "sha256" in entry:
            value = str(entry["sha256"]).lower()
            if not _HEX64.match(value):
                raise ConfigError(f"{where}: sha256: expected 64 hex digits (quote it in YAML)")
            digest = bytes.fromhex(value)
        else:
            variable = str(entry["env"])
            if not environ.get(variable):
                raise ConfigError(f"{where}: environment variable {variable} is not set")
            digest = _secret(environ[variable], f"{where} ({variable})")
        tokens.append(Token(name, digest, _scopes(entry.get("scopes"), where)))
    return tokens


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")
