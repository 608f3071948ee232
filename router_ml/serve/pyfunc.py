"""The MLflow pyfunc flavour of a router, so registered routers load anywhere MLflow runs.

`predict` takes a DataFrame with a `prompt` column (and optionally `quality_target`)
and returns one row per prompt, in typed columns:

    model           str      the chosen model
    confidence      double   P(the chosen model succeeds)
    scores          map      model -> P(success), for every model the router chooses between
    estimated_cost  double   USD, the chosen model on this prompt
    quality_target  double   the target the decision was made at (the row's, else the default)
    novelty         double   how unusual the prompt is next to the training prompts, 0..1 (NaN: unknown)
    reason          str      why this model
    router_version  str

`router_ml.training.registry.tracking` declares the same columns as the logged model's
signature (so `mlflow.pyfunc.spark_udf` returns them as a struct, `scores` as a
map<string, double>) and logs `model_config={"output": "typed"}`. Models logged before
that (no such key) answer as they did when they were logged: model, confidence, scores
as a JSON string, reason, router_version, matching their own signature (MLflow ignores a
`model_config` passed at load time to a model logged without one).

`router_ml.load_router("models:/NAME/VERSION")` reads the same logged model and returns
the full Router instead.

This module imports mlflow at import time; nothing in `router_ml` imports it unless a
router is logged or served through MLflow.
"""

from __future__ import annotations

import json
import math

import mlflow.pyfunc
import pandas as pd

from router_ml.core.mlflow_registry import ARTIFACT_KEY

OUTPUT_TYPED = "typed"  # the columns above (models logged by this version of router-ml)
OUTPUT_JSON_SCORES = "json-scores"  # the first shape: scores as a JSON string, five columns
OUTPUTS = (OUTPUT_TYPED, OUTPUT_JSON_SCORES)
TYPED_COLUMNS = ("model", "confidence", "scores", "estimated_cost", "quality_target", "novelty", "reason",
                 "router_version")


class RouterPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from router_ml.core.router import load_router

        config = getattr(context, "model_config", None) or {}
        self.output = config.get("output", OUTPUT_JSON_SCORES)  # no key: logged before typed columns
        if self.output not in OUTPUTS:
            raise ValueError(f"model_config output: expected one of {OUTPUTS}, found {self.output!r}")
        self.router = load_router(context.artifacts[ARTIFACT_KEY])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if isinstance(model_input, pd.DataFrame):
            frame = model_input
        else:
            frame = pd.DataFrame({"prompt": list(model_input)})
        if "prompt" not in frame.columns:
            raise ValueError(f"expected a 'prompt' column, found {list(frame.columns)}")
        targets = frame["quality_target"] if "quality_target" in frame.columns else pd.Series([None] * len(frame))
        targets = pd.to_numeric(targets, errors="raise")
        decisions = []
        # Group by target so each group is one batched embedding.
        for target, rows in pd.Series(range(len(frame))).groupby(targets.fillna(-1.0).to_numpy()):
            batch = self.router.route_batch(frame["prompt"].iloc[rows.to_numpy()].tolist(), None if target < 0 else float(target))
            decisions.extend(zip(rows.to_numpy(), batch))
        decisions.sort(key=lambda pair: pair[0])
        decisions = [d for _, d in decisions]
        if getattr(self, "output", OUTPUT_TYPED) == OUTPUT_JSON_SCORES:
            return pd.DataFrame({
                "model": [d.model for d in decisions],
                "confidence": [d.confidence for d in decisions],
                "scores": [json.dumps(d.scores) for d in decisions],
                "reason": [d.reason for d in decisions],
                "router_version": [d.router_version for d in decisions],
            })
        return pd.DataFrame({
            "model": pd.Series([d.model for d in decisions], dtype=object),
            "confidence": pd.Series([d.confidence for d in decisions], dtype="float64"),
            "scores": pd.Series([{m: float(p) for m, p in d.scores.items()} for d in decisions], dtype=object),
            "estimated_cost": pd.Series([d.estimated_cost for d in decisions], dtype="float64"),
            "quality_target": pd.Series([d.quality_target for d in decisions], dtype="float64"),
            "novelty": pd.Series([math.nan if d.novelty is None else d.novelty for d in decisions], dtype="float64"),
            "reason": pd.Series([d.reason for d in decisions], dtype=object),
            "router_version": pd.Series([d.router_version for d in decisions], dtype=object),
        }, columns=list(TYPED_COLUMNS))
