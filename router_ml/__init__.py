"""router-ml: send each LLM request to the cheapest model that will handle it well.

    import router_ml
    router = router_ml.load_router("models/demo")   # or "models:/NAME@champion"
    decision = router.route("Summarise this contract ...")
    decision.model, decision.confidence, decision.reason

Importing this package loads numpy and the library's own modules only: torch and
sentence-transformers load when a router first embeds, mlflow only for `models:/` URIs.
"""

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
from router_ml.policy import Decision
from router_ml.router import Router, load_router

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
