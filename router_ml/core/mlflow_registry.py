"""MLflow: the tracking store's defaults and `models:/` URIs, for loading routers from the registry.

Defaults follow the project's rule: telemetry off, and a SQLite tracking store in the
working directory (`sqlite:///./mlflow.db`, artifacts in `./mlartifacts`) unless
`MLFLOW_TRACKING_URI` says otherwise. The deprecated `./mlruns` file store is never
the default. mlflow is imported only when one of these functions is called.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
# The name under which a logged router model keeps the router directory (its MLflow artifact).
ARTIFACT_KEY = "router"


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or local_store_uri()


def local_store_uri() -> str:
    """The embedded default: a SQLite file in the working directory."""
    return f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def import_mlflow():
    """mlflow, configured with the defaults above (and quiet: no download bars or store INFO logs)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import logging

    import mlflow

    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow.pyfunc").setLevel(logging.WARNING)

    mlflow.set_tracking_uri(default_tracking_uri())
    return mlflow


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """(name, version, alias) of a `models:/NAME/VERSION`, `models:/NAME/latest` or `models:/NAME@ALIAS` URI."""
    from router_ml.errors import ConfigError

    if not uri.startswith("models:/"):
        raise ConfigError(f"{uri}: expected a models:/NAME/VERSION or models:/NAME@ALIAS URI")
    rest = uri[len("models:/"):].strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, None, alias
    name, _, version = rest.rpartition("/")
    if not name:
        raise ConfigError(f"{uri}: expected models:/NAME/VERSION or models:/NAME@ALIAS")
    return name, version, None


def resolve_model_version(client, uri: str):
    """The registry's ModelVersion for a models:/ URI, or a clear error naming what is missing."""
    from router_ml.errors import ArtifactError

    name, version, alias = parse_models_uri(uri)
    try:
        registered = client.get_registered_model(name)
    except Exception as exc:  # noqa: BLE001 - MlflowException has no finer type for "not found"
        names = sorted(m.name for m in client.search_registered_models())
        raise ArtifactError(f"{uri}: no registered model named {name!r} in {client.tracking_uri} "
                            f"(registered: {names or 'none'})") from exc
    if alias is not None:
        if alias not in (registered.aliases or {}):
            raise ArtifactError(f"{uri}: alias {alias!r} is not set on model {name!r} "
                                f"(aliases: {dict(registered.aliases or {}) or 'none'}); set one with router-ml promote")
        return client.get_model_version_by_alias(name, alias)
    if version == "latest":
        versions = client.search_model_versions(f"name='{name}'")
        if not versions:
            raise ArtifactError(f"{uri}: model {name!r} has no versions")
        return max(versions, key=lambda v: int(v.version))
    try:
        return client.get_model_version(name, version)
    except Exception as exc:  # noqa: BLE001
        raise ArtifactError(f"{uri}: model {name!r} has no version {version!r}") from exc
