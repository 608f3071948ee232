"""Router versions in MLflow: side-by-side comparison with intervals, guarded promotion.

- `compare_routers`: evaluates several routers (directories or models:/ URIs) on the same
  held-out prompts, each with its own embedder, dropping every prompt any of them was
  trained on; every metric of each, and a paired bootstrap of every difference against the
  first router (`Comparison`). Registered versions are labelled by their registry number
  (v1, v2), directories by their router version string.
- `log_comparison`: the comparison as an MLflow run (decisions.py), and each registered
  version's evaluation on that set indexed on the version (evaluations.py).
- `promote`: moves an alias (e.g. `champion`) to a version only when it is at least as
  good as the current holder on the chosen metric, measured on the same prompts: now, by a
  paired bootstrap on held-out outcomes, or from earlier evaluations of both on one
  evaluation set; `force` overrides and is recorded on the version and the registered
  model. Every promotion, refused or not, is an MLflow run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from router_ml.core.mlflow_registry import import_mlflow, parse_models_uri, resolve_model_version
from router_ml.errors import ConfigError, PromotionRefused
from router_ml.training.data.outcomes import RoutingData
from router_ml.training.evaluate.comparison import (
    HIGHER_IS_BETTER,
    MIN_PROMPTS,
    Difference,
    PairedBootstrap,
    PairedComparison,
    paired_bootstrap,
)
from router_ml.training.evaluate.metrics import NOISY_BELOW
from router_ml.training.registry.decisions import log_decision_run, version_refs
from router_ml.training.registry.evaluations import (
    comparable_sets,
    eval_tag_prefix,
    read_evaluations,
    record_evaluation,
)
from router_ml.training.registry.tracking import log_evaluation_run  # defined here before; callers import it here

__all__ = ["Comparison", "RouterRef", "compare_routers", "compare_versions", "eval_tag_prefix", "log_comparison",
           "log_evaluation_run", "promote", "registered_name_of", "routers_for"]


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


@dataclass
class RouterRef:
    """One router of a comparison: how outputs name it, where it came from."""

    label: str  # v2 for a registered version (NAME v2 when several names are compared), else its router version
    source: str  # the directory or models:/ URI it was loaded from
    router_version: str
    registered_model: str | None = None
    version: str | None = None  # the registry's version number

    def to_dict(self) -> dict:
        return {"source": self.source, "router_version": self.router_version,
                "registered_model": self.registered_model, "version": self.version}


def router_refs(sources: list[str], routers: dict) -> list[RouterRef]:
    """Labels for `routers` (source -> Router): registry version numbers where the source is
    the registry, router version strings otherwise; a repeated label gets its source added."""
    registered = {}
    if any(src.startswith("models:/") for src in sources):
        client = import_mlflow().MlflowClient()
        for src in sources:
            if src.startswith("models:/"):
                found = resolve_model_version(client, src)
                registered[src] = (found.name, str(found.version))
    names = {name for name, _ in registered.values()}
    refs, seen = [], set()
    for src in sources:
        if src in registered:
            name, version = registered[src]
            label = f"v{version}" if len(names) == 1 else f"{name} v{version}"
        else:
            name = version = None
            label = routers[src].version
        if label in seen:
            label = f"{label} ({src})"
        seen.add(label)
        refs.append(RouterRef(label, src, routers[src].version, name, version))
    return refs


@dataclass
class Comparison:
    """Several routers on one evaluation set: each one's report, and the paired bootstrap of every
    metric on the same draws. Differences are taken against the first router (the reference)."""

    refs: list[RouterRef]
    reports: dict[str, dict]  # label -> evaluation report
    bootstrap: PairedBootstrap
    source: str
    confidence: float = 0.95
    dropped_in_training: int = 0  # prompts of the file left out because a compared router trained on them

    @property
    def eval_set(self) -> dict:
        return self.bootstrap.eval_set

    @property
    def prompts(self) -> int:
        return self.bootstrap.prompts

    @property
    def reference(self) -> RouterRef:
        return self.refs[0]

    def metrics(self) -> list[str]:
        """The metrics defined on this data for every router (APGR and CPT need two models), in
        the order of the side-by-side table."""
        from router_ml.training.evaluate.report import COMPARE_KEYS

        return [m for m in COMPARE_KEYS if all(self.bootstrap.values[r.label][m] is not None for r in self.refs)]

    def differences(self, metric: str | None = None) -> list[Difference]:
        """Every other router minus the reference, on `metric` or on every defined metric."""
        keys = [metric] if metric else self.metrics()
        return [self.bootstrap.difference(self.reference.label, ref.label, key, self.confidence)
                for ref in self.refs[1:] for key in keys]

    def warning(self) -> str | None:
        """What a reader must know before trusting the figures: too few prompts."""
        if self.prompts >= NOISY_BELOW:
            return None
        dropped = (f"; {self.dropped_in_training} prompts of {self.source} were left out because a compared "
                   "router was trained on them" if self.dropped_in_training else "")
        return (f"only {self.prompts} prompts in the evaluation set{dropped}: figures on fewer than {NOISY_BELOW} "
                "prompts are noisy (docs/metrics.md); read the intervals, not the point estimates")

    def verdict(self, metric: str) -> str:
        """One sentence per other router on `metric`: the difference, its interval, and what it says."""
        parts = []
        for d in self.differences(metric):
            parts.append(f"{d.b} - {d.a} on {metric}: {_signed(d.difference)} [{_signed(d.low)}, {_signed(d.high)}] "
                         f"({d.confidence:.0%} paired bootstrap, {self.prompts} prompts): {d.verdict}")
        return "; ".join(parts)

    def summary(self) -> dict:
        """What compare.json holds besides the reports: the table, the evaluation set, the sources
        and every difference with its interval."""
        from router_ml.training.evaluate.report import comparison

        return {**comparison(self.reports), "eval_set": self.eval_set, "reference": self.reference.label,
                "sources": {r.label: r.to_dict() for r in self.refs}, "confidence": self.confidence,
                "resamples": self.bootstrap.resamples, "seed": self.bootstrap.seed,
                "differences": [d.to_dict() for d in self.differences()],
                "dropped_in_training": self.dropped_in_training, "warning": self.warning()}


def _signed(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:+.4f}"


def compare_routers(sources: list[str], frame, catalog, source: str, *, resamples: int = 1000, seed: int = 0,
                    confidence: float = 0.95, log: Callable[[str], None] = print) -> Comparison:
    """Evaluate each router on the same held-out prompts, with paired intervals of the differences."""
    from router_ml.core.router import load_router
    from router_ml.training.data.outcomes import to_routing_data
    from router_ml.training.embed.cache import DiskCachedEmbedder
    from router_ml.training.evaluate.evaluation import evaluate_router

    routers = {src: load_router(src) for src in sources}
    refs = router_refs(sources, routers)
    by_label = {ref.label: routers[ref.source] for ref in refs}
    first = next(iter(routers.values()))
    data = to_routing_data(frame, catalog, source, cost_model=first.cost_model)
    held = held_out_for(by_label, data, log)
    embedders = {label: DiskCachedEmbedder(router.embedder.embedder) for label, router in by_label.items()}
    reports = {label: evaluate_router(router, held, baselines=(), source=source, embedder=embedders[label])
               for label, router in by_label.items()}
    log(f"paired bootstrap of the differences: {resamples} resamples of {reports[refs[0].label]['prompts']} prompts")
    bootstrap = paired_bootstrap(by_label, held, resamples=resamples, seed=seed, embedders=embedders, source=source)
    return Comparison(refs, reports, bootstrap, source, confidence, len(data) - len(held))


def log_comparison(comparison: Comparison, metric: str = "aiq", experiment: str = "router-ml",
                   report_dir=None) -> str:
    """The comparison as an MLflow run; each registered version's evaluation on the set indexed
    on the version (pointing at this run). Returns the run id."""
    if metric not in HIGHER_IS_BETTER:
        raise ConfigError(f"--metric: expected one of {sorted(HIGHER_IS_BETTER)}, found {metric!r}")
    registered = [r for r in comparison.refs if r.version is not None]
    names = sorted({r.registered_model for r in registered})
    labels = [r.label for r in comparison.refs]
    metrics = {f"{r.label}.{k}": v for r in comparison.refs for k, v in comparison.bootstrap.values[r.label].items()
               if v is not None}
    for d in comparison.differences():
        key = f"{d.b}_minus_{d.a}.{d.metric}"
        metrics.update({key: d.difference, f"{key}.low": d.low, f"{key}.high": d.high})
    metrics = {_metric_key(k): v for k, v in metrics.items()}
    verdict = comparison.verdict(metric)
    summary = f"compare {' '.join(labels)} on evaluation set {comparison.eval_set['id']}: {verdict}"
    note = summary + (f".\n\nWarning: {comparison.warning()}." if comparison.warning() else "")
    words = sorted({d.verdict for d in comparison.differences(metric)})
    run_id = log_decision_run(
        "comparison", run_name=f"compare {' vs '.join(labels)} on {comparison.eval_set['id']}",
        decision=", ".join(words), summary=summary,
        refs=version_refs(None, [(r.registered_model, r.version) for r in registered]),
        registered_model=names[0] if len(names) == 1 else None, eval_set=comparison.eval_set,
        params={"routers": "; ".join(f"{r.label}={r.source}" for r in comparison.refs), "reference": labels[0],
                "metric": metric, "confidence": comparison.confidence, "resamples": comparison.bootstrap.resamples,
                "seed": comparison.bootstrap.seed},
        metrics=metrics, tags={"warning": comparison.warning(), "verdict": verdict},
        artifacts=None if report_dir else {"compare.json": _jsonable(comparison.summary())},
        artifact_dir=report_dir, note=note, experiment=experiment)
    client = import_mlflow().MlflowClient()
    for ref in registered:
        record_evaluation(client, ref.registered_model, ref.version, comparison.eval_set,
                          comparison.bootstrap.values[ref.label], run_id, "comparison")
    return run_id


def _metric_key(key: str) -> str:
    """An MLflow metric name (letters, digits, _ - . / and spaces) for a label such as 'demo v2 (models:/demo@x)'."""
    import re

    return re.sub(r"[^0-9A-Za-z_\-./ ]", "_", key)


def _jsonable(obj):
    import json

    from router_ml.training.evaluate.report import to_json_text

    return json.loads(to_json_text(obj))


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
    experiment: str = "router-ml",
    log: Callable[[str], None] = print,
) -> dict:
    """Point `alias` at `version` if it is at least as good as the current holder.

    With `frame` (held-out outcomes) both versions are evaluated now on the same prompts
    (those neither was trained on) and compared by a paired bootstrap: the candidate is
    promoted only when the one-sided 95 % lower bound of its improvement on `metric` is at
    least `-margin`, on at least `min_prompts` prompts. Without `frame`, earlier evaluations
    of both versions on one evaluation set of at least `min_prompts` prompts (the largest
    such set) are compared as point estimates (no interval exists for them). Every decision
    but a no-op is logged as an MLflow run (`run_id` in the result, or in the refusal's
    evidence).
    """
    if metric not in HIGHER_IS_BETTER:
        raise ConfigError(f"--metric: expected one of {sorted(HIGHER_IS_BETTER)}, found {metric!r}")
    mlflow = import_mlflow()
    client = mlflow.MlflowClient()
    candidate = resolve_model_version(client, f"models:/{name}/{version}")
    cand = str(candidate.version)
    registered = client.get_registered_model(name)
    holder = (registered.aliases or {}).get(alias)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    run = dict(experiment=experiment, registered_model=name)
    if holder is None:
        client.set_registered_model_alias(name, alias, cand)
        client.set_model_version_tag(name, cand, f"promotion.{alias}", f"first holder, {now}")
        summary = f"v{cand} is now @{alias}: no version held it before"
        run_id = log_decision_run("promotion", run_name=f"promote v{cand} to @{alias}", decision="first holder",
                                  summary=summary, refs=version_refs(name, [cand]),
                                  params={"alias": alias, "candidate_version": cand, "metric": metric}, **run)
        log(f"{name} version {cand} is now @{alias} (no version held it before)")
        return {"promoted": True, "version": cand, "previous": None, "run_id": run_id}
    holder = str(holder)
    if holder == cand:
        log(f"{name} version {cand} already holds @{alias}")
        return {"promoted": False, "version": cand, "previous": holder, "reason": "already holds it"}

    evidence: dict = {"metric": metric}
    comparison = None
    if frame is not None:
        comparison = compare_versions(name, cand, holder, metric, frame, catalog, source, resamples=resamples,
                                      seed=seed, log=log)
        evidence.update(comparison.to_dict(), margin=margin, min_prompts=min_prompts)
        detail = f"{comparison.describe()} against version {holder}"
        basis = "paired bootstrap on held-out outcomes"
        if comparison.prompts < min_prompts:
            refusal = (f"the evidence is too thin: {comparison.prompts} held-out prompts, at least {min_prompts} "
                       "are needed to tell two routers apart")
        elif not comparison.at_least_as_good(margin):
            refusal = (f"it is not at least as good as @{alias} (version {holder}) with {comparison.confidence:.0%} "
                       f"confidence (margin {margin:g})")
        else:
            refusal = None
    else:
        found = _earlier_evaluations(client, name, cand, holder, metric)
        better = HIGHER_IS_BETTER[metric]
        evidence.update(candidate=found["a"], incumbent=found["b"], prompts=found["prompts"],
                        basis=f"evaluation set {found['set']}", eval_set=found["set"], runs=[found["run_a"], found["run_b"]])
        basis = "earlier evaluations on one set (point estimates)"
        detail = (f"{metric} {found['a']:.4f} vs {found['b']:.4f} for version {holder}, measured on the same "
                  f"{found['prompts']} prompts (evaluation set {found['set']}; point estimates, no interval)")
        worse = found["a"] < found["b"] if better else found["a"] > found["b"]
        if found["prompts"] < min_prompts:
            refusal = (f"the evidence is too thin: the earlier evaluations of both on the same prompts have "
                       f"{found['prompts']}, at least {min_prompts} are needed; pass --outcomes FILE to evaluate both now")
        elif worse:
            refusal = f"it is worse than @{alias} (version {holder})"
        else:
            refusal = None

    decision = "promoted" if refusal is None else ("forced" if force else "refused")
    summary = {
        "promoted": f"v{cand} promoted to @{alias} over v{holder}: {detail}",
        "forced": f"v{cand} FORCED to @{alias} over v{holder} although {refusal}: {detail}",
        "refused": f"v{cand} not promoted to @{alias} (v{holder} keeps it): {refusal}: {detail}",
    }[decision]
    run_metrics = {f"v{cand}.{metric}": evidence.get("candidate"), f"v{holder}.{metric}": evidence.get("incumbent")}
    if comparison is not None:
        run_metrics.update(improvement=comparison.improvement, lower_bound=comparison.lower,
                           upper_bound=comparison.upper)
    run_id = log_decision_run(
        "promotion", run_name=f"promote v{cand} over v{holder} to @{alias}", decision=decision, summary=summary,
        refs=version_refs(name, [cand, holder]), eval_set=None if comparison is None else comparison.eval_set,
        params={"alias": alias, "candidate_version": cand, "incumbent_version": holder, "metric": metric,
                "margin": margin, "min_prompts": min_prompts, "basis": basis, "forced": decision == "forced",
                **({"resamples": resamples, "seed": seed, "confidence": comparison.confidence} if comparison else
                   {"eval_set.id": found["set"], "eval_set.prompts": found["prompts"],
                    "eval_set.source": found["source"]})},
        metrics=run_metrics, tags={"alias": alias, "candidate_version": cand, "incumbent_version": holder,
                                   **({} if comparison is not None else {"eval_set": found["set"]})},
        artifacts={"evidence.json": _jsonable(evidence)}, **run)
    evidence["run_id"] = run_id
    if comparison is not None:
        for v, values in ((cand, comparison.values["candidate"]), (holder, comparison.values["incumbent"])):
            record_evaluation(client, name, v, comparison.eval_set, values, run_id, "promotion")
    if decision == "refused":
        raise PromotionRefused(f"not promoted: {name} version {cand}: {refusal}; {detail}. "
                               "Pass --force to promote anyway (it is recorded in the registry)", evidence)
    client.set_registered_model_alias(name, alias, cand)
    forced = decision == "forced"
    note = f"{'FORCED over' if forced else 'replaced'} version {holder} at {now}: {detail}"
    client.set_model_version_tag(name, cand, f"promotion.{alias}", note[:5000])
    if forced:
        stamp = now.replace("+00:00", "Z").replace("T", " ")
        client.set_registered_model_tag(name, f"forced_promotion.{alias}.{stamp}",
                                        f"version {cand}: {refusal}; {detail}"[:5000])
    log(f"{name} version {cand} is now @{alias} ({note})")
    return {"promoted": True, "version": cand, "previous": holder, "forced": forced, "evidence": evidence,
            "run_id": run_id}


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
    """Both versions on the prompts of `frame` that neither was trained on, paired (every metric
    measured; `metric` decides). Nothing is written: `promote` logs and indexes the result."""
    from router_ml.core.router import load_router
    from router_ml.training.data.outcomes import to_routing_data
    from router_ml.training.embed.cache import DiskCachedEmbedder

    labels = {"candidate": cand_version, "incumbent": holder_version}
    routers = {role: load_router(f"models:/{name}/{v}") for role, v in labels.items()}
    data = to_routing_data(frame, catalog, source or "held-out outcomes", cost_model=routers["candidate"].cost_model)
    data = held_out_for({f"version {v}": routers[role] for role, v in labels.items()}, data, log)
    boot = paired_bootstrap(routers, data, resamples=resamples, seed=seed, source=source or "held-out outcomes",
                            embedders={role: DiskCachedEmbedder(r.embedder.embedder) for role, r in routers.items()})
    comparison = boot.comparison("candidate", "incumbent", metric)
    log(f"version {cand_version} against {holder_version} on evaluation set {comparison.eval_set['id']}: "
        f"{comparison.describe()}")
    return comparison


def _earlier_evaluations(client, name: str, cand_version: str, holder_version: str, metric: str) -> dict:
    """The largest evaluation set on which both versions were measured on `metric` (their tags)."""
    cand_tags = client.get_model_version(name, cand_version).tags
    holder_tags = client.get_model_version(name, holder_version).tags
    shared = comparable_sets(cand_tags, holder_tags, metric)
    if shared:
        return shared[0]
    legacy = any(g["legacy"] for tags in (cand_tags, holder_tags) for g in read_evaluations(tags).values())
    raise ConfigError(
        f"versions {cand_version} and {holder_version} of {name} have no {metric} measured on the same prompts"
        + ("; their evaluation tags from an earlier router-ml name the file, not the prompts measured, and are not "
           "used" if legacy else "")
        + "; pass --outcomes FILE to evaluate both now"
    )


def registered_name_of(uri: str) -> str | None:
    return parse_models_uri(uri)[0] if uri.startswith("models:/") else None
