"""The OpenAI API's error contract, and request ids, for every response of the service.

    {"error": {"message": "...", "type": "invalid_request_error", "param": "messages", "code": "..."}}

`type` follows the HTTP status as the API's does; `code` says what exactly (e.g.
"model_not_found", "malformed_json", "prompt_too_long"); `param` names the offending
field; `field` repeats `param` for clients of earlier router-ml versions.
"""

from __future__ import annotations

import itertools
import os

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 405: "invalid_request_error", 409: "conflict_error", 413: "invalid_request_error",
               415: "invalid_request_error", 429: "rate_limit_error"}
NO_RETRY = {400, 401, 403, 404, 405, 409, 413, 415, 502}  # retrying the same request cannot help (x-should-retry)


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "api_error"), "param": param, "code": code,
                      "field": param}}


_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """An id for a response without an audit row (errors, lists): unique per process and run, cheap."""
    return f"req_{_PREFIX}{next(_COUNTER):x}"
