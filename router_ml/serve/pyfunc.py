"""The MLflow pyfunc flavour of a router, so registered routers load anywhere MLflow runs.

`predict` takes a DataFrame with a `prompt` column (and optionally `quality_target`)
and returns one row per prompt: model, confidence, scores (a JSON object), reason,
router_version. `router_ml.load_router("models:/NAME/VERSION")` reads the same logged
model and returns the full Router instead.

This module imports mlflow at import time; nothing in `router_ml` imports it unless a
router is logged or served through MLflow.
"""

from __future__ import annotations

import json

import mlflow.pyfunc
import pandas as pd

from router_ml.core.mlflow_registry import ARTIFACT_KEY


class RouterPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from router_ml.core.router import load_router

        self.router = load_router(context.artifacts[ARTIFACT_KEY])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if isinstance(model_input, pd.DataFrame):
            frame = model_input
        else:
            frame = pd.DataFrame({"prompt": list(model_input)})
        if "prompt" not in frame.columns:
            raise ValueError(f"expected a 'prompt' column, found {list(frame.columns)}")
        targets = frame["quality_target"] if "quality_target" in frame.columns else pd.Series([None] * len(frame))
        decisions = []
        # Group by target so each group is one batched embedding.
        for target, rows in pd.Series(range(len(frame))).groupby(targets.fillna(-1.0).to_numpy()):
            batch = self.router.route_batch(frame["prompt"].iloc[rows.to_numpy()].tolist(), None if target < 0 else float(target))
            decisions.extend(zip(rows.to_numpy(), batch))
        decisions.sort(key=lambda pair: pair[0])
        return pd.DataFrame(
            {
                "model": [d.model for _, d in decisions],
                "confidence": [d.confidence for _, d in decisions],
                "scores": [json.dumps(d.scores) for _, d in decisions],
                "reason": [d.reason for _, d in decisions],
                "router_version": [d.router_version for _, d in decisions],
            }
        )
