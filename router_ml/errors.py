"""The one family of exceptions router-ml raises on purpose.

Every message says what was expected, what was found and, where there is one, what to
do about it. Input errors name the file, the row (1-based, as a spreadsheet shows it,
counting the header as row 1) and the field. Nothing here is caught silently anywhere
in the library.
"""

from __future__ import annotations


class RouterError(Exception):
    """Base class: catch this to handle every router-ml error."""


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


class PolicyError(ConfigError):
    """A policy file (rules, cascade, fallbacks) is invalid; the message names the line."""


class UpstreamError(RouterError):
    """Every model a request could go to failed (errors, timeouts, bad responses)."""


class ModelNotAllowedError(PolicyError):
    """The client named a model that the policy's rules do not allow for this request."""
