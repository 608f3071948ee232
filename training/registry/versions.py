"""Router versions in MLflow: evaluation runs, side-by-side comparison, guarded promotion.

- `log_evaluation_run`: an MLflow run per `router-ml evaluate`, with the metrics, the
  report folder and plots; a registered version also gets the figures as tags
  (`eval.<data sha256[:12]>.<metric>`), so versions evaluated on the same data can be
  compared later without re-running.
- `compare_routers`: evaluates several routers (directories or models:/ URIs) on the
  same held-out prompts, each with its own embedder, dropping every prompt any of them
  was trained on.
- `promote`: moves an alias (e.g. `champion`) to a version only when it is at least as
  good as the current holder on the chosen metric, measured on the same data; `force`
  overrides and is recorded on the version and the registered model.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np

from router_ml.core.mlflow_registry import import_mlflow, parse_models_uri, resolve_model_version
from router_ml.errors import ConfigError, PromotionRefused
from router_ml.training.data.outcomes import RoutingData, data_hash
from router_ml.training.evaluate.comparison import HIGHER_IS_BETTER, MIN_PROMPTS, PairedComparison, paired_comparison


def eval_tag_prefix(eval_sha: str) -> str:
    return f"eval.{eval_sha[:12]}."


def log_evaluation_run(report: dict, router_source: str, eval_sha: str, experiment: str = "router-ml") -> str:
    """Log one evaluation; tag the registered version when the router came from the registry."""
    from router_ml.training.registry.tracking import ensure_experiment, log_report

    mlflow = import_mlflow()
    experiment_id = ensure_experiment(mlflow, experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"evaluate {report['router_version']}") as run:
        mlflow.set_tags({"kind": "evaluation", "router_version": report["router_version"],
                         "router_source": router_source, "eval_data_sha256": eval_sha, "eval_source": report["source"]})
        log_report(mlflow, report, "eval")
    if router_source.startswith("models:/"):
        client = mlflow.MlflowClient()
        version = resolve_model_version(client, router_source)
        prefix = eval_tag_prefix(eval_sha)
        client.set_model_version_tag(version.name, version.version, prefix + "prompts", str(report["prompts"]))
        for key, value in report["metrics"].items():
            if isinstance(value, float) and np.isfinite(value):
                client.set_model_version_tag(version.name, version.version, prefix + key, f"{value:.6g}")
    return run.info.run_id


def routers_for(name: str | None, versions: list[str], routers: list[str]) -> list[str]:
    """Router sources for compare: explicit routers plus versions of a registered model."""
    sources = list(routers)
    if name:
        mlflow = import_mlflow()
        client = mlflow.MlflowClient()
        if versions:
            sources += [f"models:/{name}/{v}" for v in versions]
        else:
            resolve_model_version(client, f"models:/{name}/latest")  # errors if the name is unknown
            found = sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
            sources += [f"models:/{name}/{v.version}" for v in found]
    if len(sources) < 2:
        raise ConfigError(f"compare needs at least two routers, found {sources or 'none'}; "
                          "pass --router twice, or --name NAME with two or more versions")
    return sources


def held_out_for(routers: dict, data: RoutingData, log: Callable[[str], None]) -> RoutingData:
    """`data` without any prompt that any of the routers was trained on (when knowable)."""
    from router_ml.training.evaluate.evaluation import training_side

    seen: set[str] = set()
    for label, router in routers.items():
        side = training_side(router, log=lambda m, label=label: log(f"{label}: {m}"))
        if side is not None:
            seen |= set(side.prompt_ids)
    keep = np.array([pid not in seen for pid in data.prompt_ids], dtype=bool)
    if (~keep).any():
        log(f"dropping {int((~keep).sum())} prompts that a compared router was trained on")
    if not keep.any():
        raise ConfigError("every evaluation prompt was used to train one of the routers; pass held-out outcomes")
    return data.subset(np.flatnonzero(keep))


def compare_routers(sources: list[str], frame, catalog, source: str, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Evaluate each router on the same held-out prompts; returns label -> report."""
    from router_ml.core.router import load_router
    from router_ml.training.data.outcomes import to_routing_data
    from router_ml.training.embed.cache import DiskCachedEmbedder
    from router_ml.training.evaluate.evaluation import evaluate_router

    routers = {src: load_router(src) for src in sources}
    labels = {}
    for src, router in routers.items():
        label = router.version if router.version not in labels.values() else f"{router.version} ({src})"
        labels[src] = label
    first = next(iter(routers.values()))
    data = to_routing_data(frame, catalog, source, cost_model=first.cost_model)
    data = held_out_for(routers, data, log)
    reports = {}
    for src, router in routers.items():
        reports[labels[src]] = evaluate_router(router, data, baselines=(), source=source,
                                               embedder=DiskCachedEmbedder(router.embedder.embedder))
    return reports


def promote(
    name: str,
    version: str,
    alias: str = "champion",
    metric: str = "aiq",
    *,
    frame=None,
    catalog=None,
    source: str | None = None,
    force: bool = False,
    margin: float = 0.0,
    min_prompts: int = MIN_PROMPTS,
    resamples: int = 1000,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Point `alias` at `version` if it is at least as good as the current holder.

    With `frame` (held-out outcomes) both versions are evaluated now on the same prompts
    (those neither was trained on) and compared by a paired bootstrap: the candidate is
    promoted only when the one-sided 95 % lower bound of its improvement on `metric` is at
    least `-margin`, on at least `min_prompts` prompts. Without `frame`, earlier evaluation
    tags on the same data are compared as point estimates (no interval exists for them).
    """
    if metric not in HIGHER_IS_BETTER:
        raise ConfigError(f"--metric: expected one of {sorted(HIGHER_IS_BETTER)}, found {metric!r}")
    mlflow = import_mlflow()
    client = mlflow.MlflowClient()
    candidate = resolve_model_version(client, f"models:/{name}/{version}")
    registered = client.get_registered_model(name)
    holder = (registered.aliases or {}).get(alias)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if holder is None:
        client.set_registered_model_alias(name, alias, candidate.version)
        client.set_model_version_tag(name, candidate.version, f"promotion.{alias}", f"first holder, {now}")
        log(f"{name} version {candidate.version} is now @{alias} (no version held it before)")
        return {"promoted": True, "version": candidate.version, "previous": None}
    if str(holder) == str(candidate.version):
        log(f"{name} version {candidate.version} already holds @{alias}")
        return {"promoted": False, "version": candidate.version, "previous": str(holder), "reason": "already holds it"}

    evidence: dict = {"metric": metric}
    if frame is not None:
        comparison = compare_versions(name, candidate.version, str(holder), metric, frame, catalog, source,
                                      resamples=resamples, seed=seed, log=log)
        evidence.update(comparison.to_dict(), margin=margin, min_prompts=min_prompts)
        detail = f"{comparison.describe()} against version {holder}"
        if comparison.prompts < min_prompts:
            refusal = (f"the evidence is too thin: {comparison.prompts} held-out prompts, at least {min_prompts} "
                       "are needed to tell two routers apart")
        elif not comparison.at_least_as_good(margin):
            refusal = (f"it is not at least as good as @{alias} (version {holder}) with {comparison.confidence:.0%} "
                       f"confidence (margin {margin:g})")
        else:
            refusal = None
    else:
        cand_value, champ_value, basis = _compare_tags(client, name, candidate.version, str(holder), metric)
        better = HIGHER_IS_BETTER[metric]
        evidence.update(candidate=cand_value, incumbent=champ_value, basis=basis)
        detail = f"{metric} {cand_value:.4f} vs {champ_value:.4f} for version {holder}, {basis} (point estimates)"
        worse = cand_value < champ_value if better else cand_value > champ_value
        refusal = f"it is worse than @{alias} (version {holder})" if worse else None
    if refusal and not force:
        raise PromotionRefused(f"not promoted: {name} version {candidate.version}: {refusal}; {detail}. "
                               "Pass --force to promote anyway (it is recorded in the registry)", evidence)
    client.set_registered_model_alias(name, alias, candidate.version)
    forced = refusal is not None
    note = f"{'FORCED over' if forced else 'replaced'} version {holder} at {now}: {detail}"
    client.set_model_version_tag(name, candidate.version, f"promotion.{alias}", note[:5000])
    if forced:
        stamp = now.replace("+00:00", "Z").replace("T", " ")
        client.set_registered_model_tag(name, f"forced_promotion.{alias}.{stamp}",
                                        f"version {candidate.version}: {refusal}; {detail}"[:5000])
    log(f"{name} version {candidate.version} is now @{alias} ({note})")
    return {"promoted": True, "version": candidate.version, "previous": str(holder), "forced": forced,
            "evidence": evidence}


def move_alias(name: str, version: str, alias: str, detail: str, *, log: Callable[[str], None] = print) -> dict:
    """Point `alias` at `version` on evidence judged elsewhere (retraining's live judgement), recording
    the evidence on the version as `promote` does."""
    mlflow = import_mlflow()
    client = mlflow.MlflowClient()
    candidate = resolve_model_version(client, f"models:/{name}/{version}")
    holder = (client.get_registered_model(name).aliases or {}).get(alias)
    if holder is not None and str(holder) == str(candidate.version):
        log(f"{name} version {candidate.version} already holds @{alias}")
        return {"promoted": False, "version": candidate.version, "previous": str(holder)}
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    client.set_registered_model_alias(name, alias, candidate.version)
    note = (f"replaced version {holder} at {now}: " if holder is not None else f"first holder, {now}: ") + detail
    client.set_model_version_tag(name, candidate.version, f"promotion.{alias}", note[:5000])
    log(f"{name} version {candidate.version} is now @{alias} ({note})")
    return {"promoted": True, "version": candidate.version, "previous": None if holder is None else str(holder)}


def compare_versions(name: str, cand_version: str, holder_version: str, metric: str, frame, catalog, source,
                     *, resamples: int = 1000, seed: int = 0, log: Callable[[str], None] = print) -> PairedComparison:
    """Both versions on the prompts of `frame` that neither was trained on, paired; tags each version
    with its value (`eval.<data sha>.<metric>`)."""
    from router_ml.core.router import load_router
    from router_ml.training.data.outcomes import to_routing_data
    from router_ml.training.embed.cache import DiskCachedEmbedder

    routers = {v: load_router(f"models:/{name}/{v}") for v in (cand_version, holder_version)}
    data = to_routing_data(frame, catalog, source or "held-out outcomes", cost_model=routers[cand_version].cost_model)
    data = held_out_for(routers, data, log)
    comparison = paired_comparison(
        routers[cand_version], routers[holder_version], data, metric, resamples=resamples, seed=seed,
        embedders=tuple(DiskCachedEmbedder(r.embedder.embedder) for r in routers.values()))
    mlflow = import_mlflow()
    client = mlflow.MlflowClient()
    sha = data_hash(frame)
    for v, value in ((cand_version, comparison.candidate), (holder_version, comparison.incumbent)):
        if np.isfinite(value):
            client.set_model_version_tag(name, v, eval_tag_prefix(sha) + metric, f"{value:.6g}")
    log(f"version {cand_version} against {holder_version}: {comparison.describe()}")
    return comparison


def _compare_tags(client, name, cand_version, holder_version, metric):
    """Metric of both versions from evaluation tags on the same data."""
    cand_tags = client.get_model_version(name, cand_version).tags
    champ_tags = client.get_model_version(name, holder_version).tags
    for key, value in cand_tags.items():
        if key.startswith("eval.") and key.endswith("." + metric) and key in champ_tags:
            return float(value), float(champ_tags[key]), f"from evaluation tags {key}"
    raise ConfigError(
        f"versions {cand_version} and {holder_version} of {name} have no {metric} measured on the same data; "
        "pass --outcomes FILE to evaluate both now"
    )


def registered_name_of(uri: str) -> str | None:
    return parse_models_uri(uri)[0] if uri.startswith("models:/") else None
