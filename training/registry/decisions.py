"""Decisions about router versions, each logged as an MLflow run: compare, promote, retrain.

A decision run records what was decided and on what evidence, so the MLflow store is the
place where versions are compared:

    tags     kind (comparison | promotion | retrain), decision (what was decided, in a
             word or two), summary (one sentence, also the run's description in the UI),
             registered_model, registered_versions ("NAME/1,NAME/2": every version it
             touches), eval_set (the short fingerprint of the prompts measured)
    params   the versions and routers compared, the evaluation set's fingerprint, size and
             source (`eval_set.*`), the metric, confidence, resamples, margin, ...
    metrics  each version's value, the difference and its interval

`decision_runs(name)` reads back every decision touching a registered model, for
`router-ml versions`.

Deliberately not here: how a decision is reached (versions.py, loop/retrain.py).
"""

from __future__ import annotations

import math

from router_ml.core.mlflow_registry import import_mlflow

KINDS = ("comparison", "promotion", "retrain")
NOTE_TAG = "mlflow.note.content"  # what the MLflow UI shows as a run's description
TAG_CHARS = 5000


def version_refs(name: str | None, versions) -> str:
    """The `registered_versions` tag: "NAME/1,NAME/2" (versions given as numbers, or as
    (name, number) pairs when they belong to different registered models)."""
    refs = []
    for v in versions:
        refs.append(f"{v[0]}/{v[1]}" if isinstance(v, tuple) else f"{name}/{v}")
    return ",".join(refs)


def parse_refs(value: str | None) -> list[tuple[str, str]]:
    """(name, version) pairs of a `registered_versions` tag."""
    pairs = []
    for ref in (value or "").split(","):
        name, sep, version = ref.strip().rpartition("/")
        if sep and name and version:
            pairs.append((name, version))
    return pairs


def log_decision_run(kind: str, *, run_name: str, decision: str, summary: str, refs: str,
                     registered_model: str | None, eval_set: dict | None = None, params: dict | None = None,
                     metrics: dict | None = None, tags: dict | None = None, artifacts: dict | None = None,
                     artifact_dir: str | None = None, note: str | None = None, experiment: str = "router-ml") -> str:
    """Log one decision run (see the module docstring); returns its run id. `artifacts` maps
    a file name to a JSON-able object; `artifact_dir` is a folder logged as it is; `note` (default:
    the summary) is the description the MLflow UI shows."""
    from router_ml.training.registry.evaluations import eval_set_params
    from router_ml.training.registry.tracking import ensure_experiment

    if kind not in KINDS:
        raise ValueError(f"decision kind: expected one of {KINDS}, found {kind!r}")
    mlflow = import_mlflow()
    experiment_id = ensure_experiment(mlflow, experiment)
    all_tags = {"kind": kind, "decision": decision, "summary": summary[:TAG_CHARS], NOTE_TAG: (note or summary)[:TAG_CHARS]}
    if refs:  # none when only router directories were compared
        all_tags["registered_versions"] = refs
    if registered_model:
        all_tags["registered_model"] = registered_model
    if eval_set is not None:
        all_tags["eval_set"] = eval_set["id"]
    all_tags.update({k: str(v)[:TAG_CHARS] for k, v in (tags or {}).items() if v is not None})
    all_params = eval_set_params(eval_set, "eval_set") if eval_set is not None else {}
    all_params.update({k: str(v)[:500] for k, v in (params or {}).items() if v is not None})
    finite = {k: float(v) for k, v in (metrics or {}).items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags(all_tags)
        if all_params:
            mlflow.log_params(all_params)
        if finite:
            mlflow.log_metrics(finite)
        for file_name, obj in (artifacts or {}).items():
            mlflow.log_dict(obj, f"{kind}/{file_name}")
        if artifact_dir is not None:
            mlflow.log_artifacts(str(artifact_dir), artifact_path=kind)
    return run.info.run_id


def decision_runs(client, name: str) -> list[dict]:
    """Every decision run touching a version of `name`, oldest first:
    [{run_id, kind, decision, summary, started, versions, eval_set, experiment_id}]."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    # LIKE narrows the search in the store; the exact match on the parsed tag is below.
    query = f"tags.registered_versions LIKE '%{name}/%'" if "'" not in name else ""
    runs, token = [], None
    while experiments:
        page = client.search_runs(experiments, filter_string=query, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    found = []
    for run in runs:
        tags = run.data.tags
        if tags.get("kind") not in KINDS:
            continue
        versions = [v for n, v in parse_refs(tags.get("registered_versions")) if n == name]
        if not versions:
            continue
        found.append({"run_id": run.info.run_id, "kind": tags["kind"], "decision": tags.get("decision"),
                      "summary": tags.get("summary"), "started": run.info.start_time, "versions": versions,
                      "eval_set": tags.get("eval_set"), "experiment_id": run.info.experiment_id})
    return sorted(found, key=lambda d: (d["started"] or 0, d["run_id"]))
