"""MLflow settings shared by training, loading from the registry and the pyfunc flavour.

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
