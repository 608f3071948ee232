"""Kept so that routers logged to MLflow by router-ml 0.1 still load.

Their logged entry file runs `from router_ml.pyfunc import RouterPyfunc`; the flavour
now lives in `router_ml.serve.pyfunc`.
"""

from router_ml.serve.pyfunc import ARTIFACT_KEY, RouterPyfunc

__all__ = ["ARTIFACT_KEY", "RouterPyfunc"]
