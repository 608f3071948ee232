"""The one family of exceptions router-ml raises on purpose.

Every message says what was expected, what was found and, where there is one, what to
do about it. Input errors name the file, the row (1-based, as a spreadsheet shows it,
counting the header as row 1) and the field. Nothing here is caught silently anywhere
in the library.

Every class lives here, whichever layer raises it, so that a caller catches by type
(never by class name) and the CLI maps any of them to its exit status (`exit_code`).
What an error carries beyond its message (the request field it names, the upstream
attempts behind it) is a declared field, set by the constructor.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2
EXIT_REFUSED = 1


class RouterError(Exception):
    """Base class: catch this to handle every router-ml error."""

    exit_code = EXIT_BAD_INPUT  # what `router-ml` exits with when this error ends a command


# -- data, configuration and prompts ----------------------------------------------------

class OutcomesError(RouterError, ValueError):
    """An outcomes table does not satisfy the contract in data/README.md."""


class CatalogError(RouterError, ValueError):
    """A model catalog is malformed, or prices are missing where a cost is needed."""


class ImportFormatError(RouterError, ValueError):
    """A public data set's files do not have the layout an importer expects."""


class ConfigError(RouterError, ValueError):
    """A setting is out of range or inconsistent with the data."""


class PromptError(RouterError, ValueError):
    """A prompt cannot be routed: not a string, empty, or over the size limit."""


class PromptTooLongError(PromptError):
    """A prompt is longer than the router's `max_prompt_chars`."""


class BatchTooLargeError(PromptError):
    """More prompts in one request than the service accepts."""


# -- artifacts and embedders ------------------------------------------------------------

class ArtifactError(RouterError):
    """A packaged router cannot be written or read."""


class ArtifactExistsError(ArtifactError, FileExistsError):
    """The output directory exists and overwriting was not asked for."""


class ArtifactFormatError(ArtifactError):
    """The artifact's format version is not one this library reads, or its manifest is malformed."""


class ArtifactIntegrityError(ArtifactError):
    """A file in the artifact is missing or its sha256 differs from the manifest."""


class EmbedderMismatchError(ArtifactError):
    """The embedder available at load time is not the one the router was trained with."""


class EmbedderError(RouterError):
    """An embedding model cannot be found or loaded."""


# -- policy -----------------------------------------------------------------------------

class PolicyError(ConfigError):
    """A policy file (rules, cascade, fallbacks) is invalid; the message names the line."""


class ModelNotAllowedError(PolicyError):
    """The client named a model that the policy's rules do not allow for this request."""


class UpstreamError(RouterError):
    """Every model a request could go to failed (errors, timeouts, bad responses).

    `attempts`: every call made (model, attempt, status or error); `steps`: the cascade
    steps behind the failure (`router_ml.policy.cascade.StepRecord`), when a cascade ran.
    """

    def __init__(self, message: str, *, attempts: list[dict] | None = None, steps: list | None = None) -> None:
        super().__init__(message)
        self.attempts = list(attempts or [])
        self.steps = list(steps or [])


# -- the service ------------------------------------------------------------------------

class InvalidRequestError(RouterError, ValueError):
    """A request to the service is invalid; `field` names the offending part ("messages[2]")."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class ModelNotFoundError(InvalidRequestError):
    """A request names a model that is neither a routing alias nor a catalog model (HTTP 404)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "model")


class RequestTooLargeError(InvalidRequestError):
    """A request is over one of the service's limits (router_ml.serve.limits); `reason` names which."""

    def __init__(self, message: str, field: str, reason: str) -> None:
        super().__init__(message, field)
        self.reason = reason


class ReloadRefusedError(ConfigError):
    """A freshly loaded router was refused (it lacks the fallback model, the policy's models or
    the verifier the policy reads); the serving one keeps serving. The message names no file,
    so the service may answer it."""


class ListenError(RouterError):
    """`router-ml serve` cannot listen on its --host and --port (not this machine's address, no
    permission); checked before anything is created."""


class PortInUseError(ListenError):
    """Another process listens on the --host and --port `router-ml serve` was given."""


class AuthError(RouterError):
    """A request lacks a valid token (`status` 401) or its token lacks the scope (403)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


class UpstreamRejectedError(RouterError):
    """The provider rejected the request itself (a 4xx other than 429): passed to the client.

    `status` and `body` are the provider's answer; `attempts` the calls made.
    """

    def __init__(self, status: int, body: dict, *, attempts: list[dict] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.attempts = list(attempts or [])


class AuditError(RouterError):
    """The audit store cannot be opened or written, or an outcome report is invalid.

    `field` names the part of the report at fault ("[2].cost"), when one is.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AuditStorageError(AuditError):
    """The audit database cannot be opened or written: a fault of the server's storage, not of a
    request (the service answers 503 and logs this message, which names the database)."""


class UnknownRequestError(AuditError, LookupError):
    """An outcome names a request id that was never routed (or not by this store)."""


class DuplicateOutcomeError(AuditError):
    """An outcome for this (request id, model) was already recorded."""


# -- training ---------------------------------------------------------------------------

class MissingTrainingDataError(ConfigError):
    """Retraining needs the outcomes the champion was trained on, and they cannot be found."""


class PromotionRefused(RouterError):
    """The candidate is not shown to be at least as good as the alias's holder, or the evidence
    is too thin to tell (exit status 1). `evidence`: what the decision rested on."""

    exit_code = EXIT_REFUSED

    def __init__(self, message: str, evidence: dict | None = None) -> None:
        super().__init__(message)
        self.evidence = dict(evidence or {})
