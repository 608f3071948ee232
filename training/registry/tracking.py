"""Step 7: log a training run to MLflow and optionally register the router.

Each run records the settings as parameters, the training-data sha256 and router
version as tags, validation metrics, the held-out metrics keyed by their evaluation set
(`test.<set>.metrics.aiq`: runs tested on different prompts never share a column), the
seconds each stage took, the candidate table and evaluation report as JSON, and the
router itself as a pyfunc model (artifact directory included, typed output columns:
router_ml.serve.pyfunc), which `--register NAME` turns into a registered model version
tagged with the data hash and indexed with its held-out evaluation
(training.registry.evaluations).

Defaults come from `router_ml.core.mlflow_registry`: a SQLite store in the working directory
with artifacts in `./mlartifacts`, unless `MLFLOW_TRACKING_URI` is set.
"""

from __future__ import annotations

import math
from importlib import metadata
from pathlib import Path

from router_ml.core.mlflow_registry import DEFAULT_ARTIFACTS, import_mlflow, local_store_uri, resolve_model_version
from router_ml.training.registry.evaluations import eval_set_params, record_evaluation


def _flatten(prefix: str, obj, out: dict) -> dict:
    if isinstance(obj, dict):
        for key, value in obj.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), value, out)
    else:
        out[prefix] = obj
    return out


def _numeric_metrics(metrics: dict) -> dict[str, float]:
    flat = _flatten("", metrics, {})
    return {
        key.replace("@", "_"): float(value)
        for key, value in flat.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


def ensure_experiment(mlflow, name: str) -> str:
    """Experiment id for `name`, created with artifacts in ./mlartifacts under the default store."""
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if mlflow.get_tracking_uri() == local_store_uri():  # our default store: keep artifacts beside it
        location = (Path.cwd() / DEFAULT_ARTIFACTS).resolve().as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def pip_requirements() -> list[str]:
    names = ("scikit-learn", "numpy", "pandas", "joblib", "sentence-transformers", "pyyaml")
    reqs = []
    for name in names:
        try:
            reqs.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


def router_signature():
    """Inputs: prompt, optional quality_target. Outputs: the typed columns of
    router_ml.serve.pyfunc (`scores` a map of model -> P(success))."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, DataType, Map, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "prompt"), ColSpec("double", "quality_target", required=False)]),
        outputs=Schema([ColSpec("string", "model"), ColSpec("double", "confidence"),
                        ColSpec(Map(DataType.double), "scores"), ColSpec("double", "estimated_cost"),
                        ColSpec("double", "quality_target"), ColSpec("double", "novelty"),
                        ColSpec("string", "reason"), ColSpec("string", "router_version")]),
    )


def log_router_model(mlflow, artifact_path: Path, register: str | None):
    """Log the router as a pyfunc model (from code, nothing pickled); returns the ModelInfo."""
    import pandas as pd

    import router_ml
    from router_ml.core.mlflow_registry import ARTIFACT_KEY

    return mlflow.pyfunc.log_model(
        name="router",
        python_model=str(Path(router_ml.__file__).parent / "serve" / "pyfunc_entrypoint.py"),
        artifacts={ARTIFACT_KEY: str(artifact_path)},
        model_config={"output": "typed"},  # router_ml.serve.pyfunc: models logged before this answer as they did
        signature=router_signature(),
        input_example=pd.DataFrame({"prompt": ["What is 17 * 23?"], "quality_target": [0.8]}),
        pip_requirements=pip_requirements(),
        registered_model_name=register,
    )


def report_metrics(report: dict, prefix: str) -> dict[str, float]:
    """Flat MLflow metrics of a report: the router's, its default point and each baseline's."""
    flat = {"metrics": report["metrics"],
            "default": {k: report["default"][k] for k in ("quality_target", "quality", "mean_cost", "ece")},
            "prompts": report["prompts"]}
    for name, baseline in report["baselines"]["learned"].items():
        flat[f"baseline_{name}"] = baseline["metrics"]
    flat["baseline_random"] = report["baselines"]["random_mixing"]
    return _numeric_metrics({prefix: flat})


def log_report(mlflow, report: dict, prefix: str, artifact_dir: str | None = None) -> None:
    """Log a report's metrics under `prefix` and its folder (summary, JSON, plots) to the active run."""
    import tempfile

    from router_ml.training.evaluate.report import write_report

    mlflow.log_metrics(report_metrics(report, prefix))
    with tempfile.TemporaryDirectory() as tmp:
        write_report(report, tmp)
        mlflow.log_artifacts(tmp, artifact_path=artifact_dir or f"evaluation/{prefix}")


def log_training_run(config, manifest: dict, artifact_path: Path, report: dict | None,
                     timings: dict[str, float] | None = None) -> tuple[str, str | None]:
    """Log one training run; returns (run id, registered version or None).

    The held-out figures are keyed by their evaluation set (`test.<set>.metrics.aiq`, the set's
    fingerprint and size as `test_set.*` parameters): two runs share a column in the MLflow UI
    only when they were tested on the same prompts. A registered version indexes the test as
    one of its evaluations (training.registry.evaluations).
    """
    mlflow = import_mlflow()
    experiment_id = ensure_experiment(mlflow, config.experiment)
    params = {k: ("" if v is None else str(v))[:500] for k, v in _flatten("", config.to_dict(), {}).items()}
    params.update({
        "strategy": manifest["strategy"]["name"],
        **{f"strategy.{k}": str(v) for k, v in manifest["strategy"]["params"].items()},
        "embedder_id": manifest["embedder"]["id"],
        "default_quality_target": str(manifest["policy"]["default_quality_target"]),
    })
    eval_set = report["eval_set"] if report is not None else None
    if eval_set is not None:
        params.update(eval_set_params(eval_set, "test_set"))
    with mlflow.start_run(experiment_id=experiment_id, run_name=manifest["router_version"]) as run:
        mlflow.log_params(params)
        tags = {"kind": "training", "router_version": manifest["router_version"],
                "data_sha256": manifest["training_data"]["sha256"], "models": ",".join(manifest["models"])}
        if eval_set is not None:
            tags["test_set"] = eval_set["id"]
        mlflow.set_tags(tags)
        mlflow.log_metrics(_numeric_metrics({"val": manifest["metrics"]["validation"]}))
        if timings:
            mlflow.log_metrics({f"seconds.{stage.lower().replace(' ', '_')}": round(float(s), 3)
                                for stage, s in timings.items()})
        if report is not None:
            log_report(mlflow, report, f"test.{eval_set['id']}", artifact_dir="evaluation/test")
        mlflow.log_dict({"candidates": manifest["strategy"]["candidates"]}, "selection/candidates.json")
        info = log_router_model(mlflow, artifact_path, config.register)
        version = None
        if config.register:
            version = str(info.registered_model_version)
            client = mlflow.MlflowClient()
            mlflow.set_tags({"registered_model": config.register,
                             "registered_versions": f"{config.register}/{version}"})
            for key, value in {"data_sha256": manifest["training_data"]["sha256"],
                               "router_version": manifest["router_version"]}.items():
                client.set_model_version_tag(config.register, version, key, value)
            if report is not None:
                record_evaluation(client, config.register, version, eval_set, report["metrics"], run.info.run_id,
                                  "training")
        return run.info.run_id, version


def log_evaluation_run(report: dict, router_source: str, file_sha256: str | None = None,
                       experiment: str = "router-ml") -> str:
    """Log one `router-ml evaluate` as a run; index it on the version when the router came from
    the registry. Metrics are keyed by the evaluation set (`eval.<set>.metrics.aiq`), so runs on
    different prompts never share a column in the MLflow UI."""
    mlflow = import_mlflow()
    client = mlflow.MlflowClient()
    eval_set = report["eval_set"]
    registered = resolve_model_version(client, router_source) if router_source.startswith("models:/") else None
    experiment_id = ensure_experiment(mlflow, experiment)
    label = f"v{registered.version}" if registered is not None else report["router_version"]
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"evaluate {label} on {eval_set['id']}") as run:
        tags = {"kind": "evaluation", "router_version": report["router_version"], "router_source": router_source,
                "eval_set": eval_set["id"], "eval_source": report["source"]}
        if registered is not None:
            tags.update(registered_model=registered.name, registered_versions=f"{registered.name}/{registered.version}")
        mlflow.set_tags(tags)
        mlflow.log_params(eval_set_params(eval_set, "eval_set") | ({"file_sha256": file_sha256} if file_sha256 else {}))
        log_report(mlflow, report, f"eval.{eval_set['id']}", artifact_dir="evaluation/eval")
    if registered is not None:
        record_evaluation(client, registered.name, registered.version, eval_set, report["metrics"], run.info.run_id,
                          "evaluation")
    return run.info.run_id
