"""router-ml: send each LLM request to the cheapest model that will handle it well.

    import router_ml
    router = router_ml.load_router("models/demo")   # or "models:/NAME@champion"
    decision = router.route("Summarise this contract ...")
    decision.model, decision.confidence, decision.reason

Importing this package loads numpy and the library's own modules only: torch and
sentence-transformers load when a router first embeds, mlflow only for `models:/` URIs.

Layers (each imports only the ones before it): `router_ml.core` (the predictor),
`router_ml.policy` (rules, checks, cascades, fallbacks), `router_ml.serve` (the service,
audit trail, HTTP app and gateway). `training` (the pipeline) uses them; they never use it.
"""

from router_ml.core.decision import Decision
from router_ml.core.router import Router, load_router
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
