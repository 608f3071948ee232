"""router-ml: send each LLM request to the cheapest model that will handle it well.

    import router_ml
    router = router_ml.load_router("models/demo")   # or "models:/NAME@champion"
    decision = router.route("Summarise this contract ...")
    decision.model, decision.confidence, decision.reason

Importing this package loads nothing heavy: `Router`, `load_router` and `Decision` (and numpy
with them) are imported on first use, so that `router-ml`, whose entry point lives in this
package, starts at once (`router-ml serve` installs its signal handlers before anything
else); torch and sentence-transformers load when a router first embeds, mlflow only for
`models:/` URIs.

Layers (each imports only the ones before it): `router_ml.core` (the predictor),
`router_ml.policy` (rules, checks, cascades, fallbacks), `router_ml.serve` (the service,
audit trail, HTTP app and gateway). `training` (the pipeline) uses them; they never use it.
"""

from typing import TYPE_CHECKING

from router_ml.errors import (
    ArtifactError,
    ArtifactExistsError,
    ArtifactFormatError,
    ArtifactIntegrityError,
    CatalogError,
    ConfigError,
    EmbedderError,
    EmbedderMismatchError,
    ImportFormatError,
    OutcomesError,
    PromptError,
    PromptTooLongError,
    RouterError,
)

if TYPE_CHECKING:
    from router_ml.core.decision import Decision
    from router_ml.core.router import Router, load_router

__version__ = "0.1.0"

__all__ = [
    "ArtifactError",
    "ArtifactExistsError",
    "ArtifactFormatError",
    "ArtifactIntegrityError",
    "CatalogError",
    "ConfigError",
    "Decision",
    "EmbedderError",
    "EmbedderMismatchError",
    "ImportFormatError",
    "OutcomesError",
    "PromptError",
    "PromptTooLongError",
    "Router",
    "RouterError",
    "load_router",
    "__version__",
]

_LAZY = {"Decision": "router_ml.core.decision", "Router": "router_ml.core.router", "load_router": "router_ml.core.router"}


def __getattr__(name: str):
    """`Router`, `load_router` and `Decision`, imported on first use (PEP 562)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # once: later lookups are plain attributes
        return value
    raise AttributeError(f"module 'router_ml' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
