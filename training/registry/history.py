"""What the MLflow store knows about a registered router: `router-ml versions NAME`.

For each version: when it was created, its router version string, the run that logged it,
the aliases it holds, its evaluations (one per evaluation set: the set's fingerprint,
prompts, metrics and the run that measured them; training.registry.evaluations) and the
decisions touching it (compare, promote and retrain runs; training.registry.decisions).

Deliberately read-only: nothing here writes to the store.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from router_ml.core.mlflow_registry import (
    DEFAULT_DB,
    default_tracking_uri,
    import_mlflow,
    local_store_uri,
    resolve_model_version,
)
from router_ml.errors import ConfigError
from router_ml.training.evaluate.metrics import NOISY_BELOW
from router_ml.training.registry.decisions import decision_runs
from router_ml.training.registry.evaluations import read_evaluations

SHOWN_METRICS = ("aiq", "gap_closed", "cost_to_match_best", "ece")  # the text view; --json has every one


def _time(millis: int | None) -> str | None:
    if millis is None:
        return None
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def version_history(name: str) -> dict:
    """Versions (oldest first), aliases, evaluations and decisions of registered model `name`."""
    if default_tracking_uri() == local_store_uri() and not (Path.cwd() / DEFAULT_DB).exists():
        raise ConfigError(f"no MLflow store here: {Path.cwd() / DEFAULT_DB} does not exist (and is not created by "
                          "a command that only reads); run where you trained, or set MLFLOW_TRACKING_URI")
    mlflow = import_mlflow()
    client = mlflow.MlflowClient()
    resolve_model_version(client, f"models:/{name}/latest")  # a clear error for an unknown name or no versions
    registered = client.get_registered_model(name)
    aliases = {alias: str(v) for alias, v in (registered.aliases or {}).items()}
    decisions = decision_runs(client, name)
    versions = []
    for mv in sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version)):
        full = client.get_model_version(name, mv.version)  # search results may leave tags out
        tags = dict(full.tags or {})
        evaluations = sorted(read_evaluations(tags).values(), key=lambda e: (e["legacy"], -(e["prompts"] or 0)))
        versions.append({
            "version": str(mv.version),
            "label": f"v{mv.version}",
            "created": _time(full.creation_timestamp),
            "router_version": tags.get("router_version"),
            "run_id": full.run_id,
            "source": full.source,
            "aliases": sorted(a for a, v in aliases.items() if v == str(mv.version)),
            "data_sha256": tags.get("data_sha256"),
            "promotions": {k.split(".", 1)[1]: v for k, v in tags.items() if k.startswith("promotion.")},
            "evaluations": evaluations,
            "decisions": [{**d, "started": _time(d["started"])} for d in decisions if str(mv.version) in d["versions"]],
        })
    return {"name": name, "tracking_uri": client.tracking_uri, "aliases": aliases, "versions": versions,
            "forced_promotions": {k: v for k, v in (registered.tags or {}).items() if k.startswith("forced_promotion.")}}


def format_history(history: dict) -> str:
    """The text `router-ml versions` prints."""
    aliases = ", ".join(f"@{a} -> v{v}" for a, v in sorted(history["aliases"].items())) or "none"
    lines = [f"{history['name']}: {len(history['versions'])} versions in {history['tracking_uri']}; aliases: {aliases}"]
    for v in history["versions"]:
        held = "".join(f"  @{a}" for a in v["aliases"])
        lines += ["", f"v{v['version']}{held}  created {v['created']}  router {v['router_version'] or '?'}  "
                      f"run {v['run_id'] or '-'}"]
        if v["evaluations"]:
            lines.append("  evaluations (set: prompts, metrics, measured by):")
            for e in v["evaluations"]:
                shown = ", ".join(f"{k} {e['metrics'][k]:.4g}" for k in SHOWN_METRICS if k in e["metrics"])
                if e["legacy"]:
                    lines.append(f"    {e['set']} (legacy: named by a file's hash, not by the prompts measured; "
                                 f"not used to decide): {shown}")
                    continue
                noisy = " (noisy)" if (e["prompts"] or 0) < NOISY_BELOW else ""
                lines.append(f"    {e['set']}: {e['prompts']} prompts{noisy}, {shown}; {e['kind']} run {e['run']}"
                             + (f", from {e['source']}" if e["source"] else ""))
        else:
            lines.append("  evaluations: none (router-ml evaluate --router models:/NAME/VERSION, or compare)")
        if v["decisions"]:
            lines.append("  decisions:")
            for d in v["decisions"]:
                lines.append(f"    {d['started']}  {d['kind']}: {d['summary'] or d['decision']} (run {d['run_id']})")
    return "\n".join(lines)
