"""Retraining from the audit log, judged on live traffic: it cannot make the champion worse.

    router-ml retrain --audit audit.sqlite --base models:/my-router@champion --out models/challenger
    (--audit also takes a folder written by `router-ml audit export`; --outcomes adds offline logs)

1. **What the champion learned from.** Its training outcomes, found from its manifest
   (the file it names, accepted only if its content hash still matches) or given with
   `--base-outcomes`; when neither works, `MissingTrainingDataError` says so and nothing
   is trained. The prompts the champion held out when it was trained (its own test side)
   have never been seen by it.
2. **The live holdout.** A seeded share (`live_holdout`, 30 %) of the logged requests usable
   to judge routers (a prompt's text, a reported outcome of the model that served it and the
   serving distribution it was drawn from: router_ml.training.evaluate.off_policy) is set
   aside: the challenger never trains on their prompts.
3. **What is new.** Every other decision in the audit log with a reported outcome becomes a
   row of the outcomes contract; prompts logged as digests are recovered from the other
   logs where they appear there. Rows that cannot be used (a model neither the champion
   nor the catalog knows, a cost that is not a finite number >= 0, a score outside [0, 1],
   no prompt text) are skipped and counted, never fatal. Offline logs (`--outcomes`) are
   added as they are.
4. **Censored traffic.** A routed request shows only the outcome of the model it went
   to: the other models' outcomes are *unknown*, never "failed" (they stay NaN, and the
   heads train each model only on prompts where it was observed). Which model a request
   went to depended on the router, so each logged outcome of the served model is weighted
   by the inverse of its propensity, capped at `max_weight` (benchmarks/live_loop.py
   measures the cap's effect on the challenger against the truth). The judgement below
   corrects for the serving policy whatever the weights. Offline logs and the champion's
   data weigh 1.
5. **Duplicates.** The same (prompt, model) outcome seen more than once (the champion's
   data, an offline log, the audit log) is averaged: mean score and cost, success by the
   mean, and the smallest of the weights (an outcome also seen in an unbiased log needs
   no inverse-propensity weight).
6. **The complete holdout.** Prompts with every model's outcome that the champion was not
   trained on (its own held-out side, offline logs) are eligible; `holdout_size` of them,
   at least `min_holdout` where there are that many, are held out too. There may be none:
   that is no reason to stop, the live log judges.
7. **The challenger** trains on everything else with the champion's settings (embedder,
   backend, truncation, strategy, prices). A catalog model the champion did not route
   (onboarded: router_ml.policy.onboarding) joins it once it has `min_new_outcomes` logged
   outcomes (router_ml.training.loop.onboarding). **Its learned verifier** (what
   `cascade: learned` and `check: {verifier: ...}` read) is refitted from the answers in
   that table: the champion's logged answers (its training log's `response` column) and
   the offline logs'. The audit log keeps no answers, so served traffic adds outcomes but
   no answers. When the table has no answers at all and the champion has a verifier, the
   champion's is carried over unchanged, with a note in its manifest
   (`verifier.carried_from`); which of the two happened is logged and reported
   (`data.verifier`).
8. **The decision.** Both routers are judged on the live holdout by the doubly robust
   estimator, paired (the same reward model and bootstrap resamples): the challenger is
   promoted only when the 95 % lower bounds of its differences in quality (at each router's
   default target) and AIQ are both >= -margin and the log's overlap with its choices is
   not too thin. Where complete held-out prompts exist, both are also compared there on
   `--metric` (AIQ) by a paired bootstrap, reported beside, and a challenger that is worse
   there with 95 % confidence is not promoted either. Without a live judgement (too few
   held-out requests) the complete one decides alone; with neither, nothing is promoted.
   Otherwise the champion keeps the alias and the command exits 1. The report (which
   estimator judged, on how many requests, with what interval; the complete judgement;
   what was skipped) is printed and written beside the challenger.

Nothing logged is deleted or changed: the audit database is opened read-only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from router_ml.core.catalog import Catalog, ModelPrice, load_catalog, write_catalog
from router_ml.core.validation import check_number, check_share
from router_ml.errors import ConfigError, MissingTrainingDataError
from router_ml.training.evaluate.comparison import MIN_PROMPTS

CONTRACT = ["prompt_id", "prompt", "model", "score", "success", "cost", "input_tokens", "output_tokens", "task",
            "weight", "response", "source"]
MAX_WEIGHT = 5.0


@dataclass
class RetrainConfig:
    audit: str
    base: str  # the champion: models:/NAME@ALIAS (or a directory, then nothing is promoted)
    out: str  # the challenger's artifact directory
    outcomes: list[str] = field(default_factory=list)  # offline logs in the outcomes contract
    base_outcomes: str | None = None  # the champion's training outcomes, when its manifest's file is gone
    audit_key_file: str | None = None  # the audit log's digest secret (default: AUDIT + ".key", when present)
    catalog: str | None = None  # default: the champion's own prices
    register: str | None = None  # default: the champion's registered name
    alias: str = "champion"
    metric: str = "aiq"
    holdout_size: float = 0.25  # share of the eligible complete prompts held out (at least min_holdout)
    min_holdout: int = MIN_PROMPTS
    live_holdout: float = 0.3  # share of the usable logged requests held out to judge both routers on
    min_live_requests: int = 100  # fewer held-out logged requests: no live judgement
    min_complete: int = 50  # fewer eligible complete prompts: no complete judgement
    min_new_outcomes: int = 400  # a catalog model the champion did not route joins with at least this many outcomes
    margin: float = 0.0  # promote when the improvement's lower bound is >= -margin
    resamples: int = 1000
    max_weight: float = MAX_WEIGHT
    seed: int = 0
    since: float | None = None  # only decisions logged at or after this unix time
    success_threshold: float | None = None  # default: the champion's
    cache_dir: str | None = None
    workdir: str | None = None  # where the training tables go (default: OUT + ".retrain")
    promote: bool = True
    overwrite: bool = False
    spark_master: str | None = None  # train the candidate on Spark (training/data/spark.py)

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_size < 1.0:
            raise ConfigError(f"holdout_size: expected a fraction in (0, 1), found {self.holdout_size!r}")
        if not 0.0 < self.live_holdout < 1.0:
            raise ConfigError(f"live_holdout: expected a fraction in (0, 1), found {self.live_holdout!r}")
        check_number(self.min_holdout, "min_holdout", integer=True, positive=True)
        check_number(self.margin, "margin")
        check_number(self.resamples, "resamples", integer=True, positive=True)
        check_number(self.max_weight, "max_weight", positive=True)
        if self.max_weight < 1:
            raise ConfigError(f"max_weight: expected a number >= 1, found {self.max_weight!r}")


def _skip(stats: dict, reason: str) -> None:
    stats["skipped"][reason] = stats["skipped"].get(reason, 0) + 1


def audit_outcomes(audit_path: str | Path, known_prompts: dict[str, str] | None = None, since: float | None = None,
                   models: list[str] | None = None, max_weight: float = MAX_WEIGHT,
                   log: Callable[[str], None] = print) -> tuple[pd.DataFrame, dict]:
    """Contract rows from the audit log: one per usable reported outcome, with its prompt and weight.

    `known_prompts` maps sha256(prompt) -> prompt, to recover prompts logged as hashes;
    `models` (the champion's) are the only ones kept. Unusable rows are counted in
    `stats["skipped"]` by reason.
    """
    from router_ml.core.audit_format import read_joined

    decisions = read_joined(audit_path, since)
    known_prompts = known_prompts or {}
    rows = []
    stats = {"decisions": len(decisions), "with_outcomes": 0, "outcome_rows": 0, "exploration_rows": 0,
             "weighted_rows": 0, "no_prompt_text": 0, "skipped": {}}
    for d in decisions:
        if not d["outcomes"]:
            continue
        stats["with_outcomes"] += 1
        prompt = d["prompt"] if d["prompt"] is not None else known_prompts.get(d["prompt_sha256"])
        if prompt is None:
            stats["no_prompt_text"] += 1
            continue
        task = (d["metadata"] or {}).get("task")
        for o in d["outcomes"]:
            reason = _unusable(o, models)
            if reason:
                _skip(stats, reason)
                continue
            weight = 1.0
            propensity = d.get("propensity")
            if o["model"] == d["model"] and isinstance(propensity, (int, float)) and 0 < propensity <= 1:
                weight = min(1.0 / propensity, max_weight)
            rows.append({"prompt": prompt, "model": o["model"], "score": o["score"],
                         "success": None if o["success"] is None else bool(o["success"]), "cost": o["cost"],
                         "input_tokens": None, "output_tokens": None, "task": task, "weight": weight,
                         "source": f"audit:{d['request_id']}"})
            stats["outcome_rows"] += 1
            stats["exploration_rows"] += int(d["exploration"] and o["model"] == d["model"])
            stats["weighted_rows"] += int(weight != 1.0)
    if stats["no_prompt_text"]:
        log(f"{audit_path}: {stats['no_prompt_text']} decisions with outcomes have no prompt text (logged as hashes, "
            "not found in the offline logs) and are left out; serve with --prompt-storage text to retrain from the log")
    if stats["skipped"]:
        log(f"{audit_path}: skipped outcome rows that cannot be used: "
            + ", ".join(f"{n} {reason}" for reason, n in stats["skipped"].items()))
    return pd.DataFrame(rows, columns=CONTRACT[1:]), stats


def _unusable(outcome: dict, models: list[str] | None) -> str | None:
    """Why a logged outcome cannot train a router (None: it can)."""
    if models is not None and outcome["model"] not in models:
        return "naming a model the champion does not route"
    score, cost = outcome.get("score"), outcome.get("cost")
    if score is None and outcome.get("success") is None:
        return "without success or score"
    if score is not None and not (isinstance(score, (int, float)) and math.isfinite(score) and 0 <= score <= 1):
        return "with a score outside [0, 1]"
    if cost is not None and not (isinstance(cost, (int, float)) and math.isfinite(cost) and cost >= 0):
        return "with a cost that is not a finite number >= 0"
    return None


def catalog_for(router, catalog_path: str | None) -> Catalog:
    """The prices to train with: --catalog, else the champion's own."""
    if catalog_path:
        return load_catalog(catalog_path)
    cm = router.cost_model
    missing = [m for i, m in enumerate(cm.models) if cm.input_price[i] is None or cm.output_price[i] is None]
    if missing:
        raise ConfigError(f"the champion has no per-token prices for {missing} (it was trained on logged costs); "
                          "pass --catalog FILE with prices for every model")
    return Catalog({m: ModelPrice(cm.input_price[i], cm.output_price[i], cm.output_tokens[i])
                    for i, m in enumerate(cm.models)}, chars_per_token=cm.chars_per_token, source=f"{router.version} prices")


def champion_data(router, base_outcomes: str | None = None,
                  log: Callable[[str], None] = print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the outcomes the champion was trained on, the ones it held out when it was trained).

    From `base_outcomes`, else from the file its manifest names when that file's content
    hash still matches; otherwise MissingTrainingDataError.
    """
    from router_ml.training.data.outcomes import data_hash, read_outcomes, split_prompts, to_routing_data

    manifest = router.manifest
    config = manifest.get("config", {})
    recorded = manifest.get("training_data", {})
    read = dict(success_threshold=config.get("success_threshold", 0.5), duplicates=config.get("duplicates", "error"),
                column_map=config.get("column_map") or None)
    source = base_outcomes or recorded.get("source")
    if not source:
        raise MissingTrainingDataError(f"{router.version}: its manifest names no training outcomes; pass "
                                       "--base-outcomes FILE (the log it was trained on)")
    try:
        frame = read_outcomes(source, **read)
    except Exception as exc:  # noqa: BLE001 - any reason it cannot be read: say which file, and what to do
        raise MissingTrainingDataError(
            f"{router.version} was trained on {source}, which cannot be read now ({exc}); retraining without "
            "it would throw away what the champion learned: pass --base-outcomes FILE with that log") from exc
    if config.get("models"):
        frame = frame[frame["model"].isin(config["models"])]
    if data_hash(frame) != recorded.get("sha256"):
        if base_outcomes is None:
            raise MissingTrainingDataError(
                f"{source} has changed since {router.version} was trained on it (its content hash differs from the "
                "manifest's); pass --base-outcomes FILE with the log it was trained on")
        log(f"{base_outcomes}: not the file {router.version} was trained on by content hash; used as given")
    frame = frame[frame["model"].isin(router.models)]
    unseen = frame.iloc[:0]
    if base_outcomes is None and config.get("test_outcomes"):
        try:
            unseen = read_outcomes(config["test_outcomes"], **read)
            unseen = unseen[unseen["model"].isin(router.models)]
        except Exception as exc:  # noqa: BLE001 - only a source of extra holdout prompts
            log(f"the champion's test outcomes {config['test_outcomes']} cannot be read ({exc}); not used")
    elif base_outcomes is None and config.get("test_size", 0) > 0:
        data = to_routing_data(frame, None, source, cost_model=router.cost_model)
        _, held = split_prompts(data, config["test_size"], config.get("seed", 0))
        held_ids = set(held.prompt_ids)
        unseen = frame[frame["prompt_id"].isin(held_ids)]
        frame = frame[~frame["prompt_id"].isin(held_ids)]
    return frame, unseen


def combined_table(audit_rows: pd.DataFrame, logs: list[pd.DataFrame], catalog: Catalog,
                   success_threshold: float) -> pd.DataFrame:
    """One contract table: the logs (champion's data, offline logs) plus audit rows, prompt ids
    unified by text (the first log's id wins), costs priced by the pricing rule where none was
    logged, repeats averaged (data/README.md)."""
    from router_ml.training.data.outcomes import price_calls, prompt_hash, validate_outcomes

    frames = []
    ids_by_text: dict[str, str] = {}
    for frame in logs:
        for text, pid in zip(frame["prompt"], frame["prompt_id"]):
            ids_by_text.setdefault(text, pid)
        frame = frame.assign(prompt_id=[ids_by_text[t] for t in frame["prompt"]],
                             source=frame["source"] if "source" in frame.columns else "offline")
        frames.append(frame[[c for c in CONTRACT if c in frame.columns]])
    if len(audit_rows):
        frames.append(audit_rows.assign(prompt_id=[ids_by_text.get(p) or prompt_hash(p) for p in audit_rows["prompt"]]))
    if not frames or not sum(len(f) for f in frames):
        raise ConfigError("nothing to train on: the audit log has no usable outcomes and no other log was given")
    table = pd.concat(frames, ignore_index=True)
    unknown = sorted(set(table["model"]) - set(catalog.models))
    if unknown:
        raise ConfigError(f"outcomes name models {unknown} that the prices ({catalog.source}) do not cover; "
                          f"known: {sorted(catalog.models)}; pass --catalog")
    for column in ("input_tokens", "output_tokens", "weight"):
        if column not in table.columns:
            table[column] = np.nan if column != "weight" else 1.0
    table["input_tokens"] = pd.to_numeric(table["input_tokens"], errors="coerce")
    table["output_tokens"] = pd.to_numeric(table["output_tokens"], errors="coerce")
    missing = table["cost"].isna().to_numpy()
    if missing.any():
        table.loc[missing, "cost"] = price_calls(table.loc[missing], catalog)
    table["success"] = table["success"].astype(object)
    return validate_outcomes(table, "retraining table", success_threshold=success_threshold, duplicates="mean")


def holdout_split(table: pd.DataFrame, models: list[str], exclude: set[str], size: float, seed: int,
                  min_holdout: int = MIN_PROMPTS, min_complete: int = 0):
    """Complete prompts (every model observed) not in `exclude`: a seeded `size` share of them, at
    least `min_holdout` where there are that many. With fewer than `min_complete` eligible, none
    is held out (the live log judges alone)."""
    per_prompt = table.groupby("prompt_id")["model"].agg(lambda s: set(s) >= set(models))
    complete = [pid for pid, ok in per_prompt.items() if ok and pid not in exclude]
    if not complete or len(complete) < min_complete:
        return table, table.iloc[:0]
    rng = np.random.default_rng(seed)
    n = min(len(complete), max(min_holdout, int(round(size * len(complete)))))
    held = set(rng.choice(sorted(complete), size=n, replace=False).tolist())
    mask = table["prompt_id"].isin(held)
    return table[~mask], table[mask]


def live_split(traffic, share: float, seed: int):
    """(the logged requests to judge on, the prompts they hold): a seeded `share` of the usable
    requests, whole prompts at a time (a prompt logged twice is never on both sides)."""
    prompts = sorted(set(traffic.prompts))
    rng = np.random.default_rng(seed)
    held = set(rng.choice(prompts, size=int(round(share * len(prompts))), replace=False).tolist()) if prompts else set()
    rows = np.array([i for i, p in enumerate(traffic.prompts) if p in held], dtype=int)
    return traffic.subset(rows), held


@dataclass
class RetrainResult:
    challenger: Path | None
    version: str | None  # the registered version of the challenger
    promoted: bool
    decision: dict  # the evidence and why it was (not) promoted
    stats: dict
    report_path: Path | None = None

    def to_dict(self) -> dict:
        return {"challenger": None if self.challenger is None else str(self.challenger), "version": self.version,
                "promoted": self.promoted, "decision": self.decision, "data": self.stats,
                "report": None if self.report_path is None else str(self.report_path)}


def retrain(config: RetrainConfig, log: Callable[[str], None] = print, progress: bool = False) -> RetrainResult:
    """Steps 1-8 of the module docstring. A challenger that is not good enough is registered but not
    promoted (`promoted` False, `decision["refused"]` says why)."""
    from router_ml.core.router import load_router
    from router_ml.training.registry.versions import registered_name_of

    champion = load_router(config.base)
    threshold = config.success_threshold if config.success_threshold is not None else \
        champion.manifest.get("config", {}).get("success_threshold", 0.5)
    check_share(threshold, "success_threshold")
    catalog = catalog_for(champion, config.catalog)
    models = [*champion.models, *(m for m in catalog.models if m not in champion.models)]

    trained, unseen = champion_data(champion, config.base_outcomes, log)
    log(f"the champion {champion.version} was trained on {trained['prompt_id'].nunique()} prompts"
        + (f"; {unseen['prompt_id'].nunique()} more it held out" if len(unseen) else ""))
    offline = _offline_logs(config.outcomes, models, threshold, log)
    known = _prompts_by_digest(config, [trained, unseen, *offline])
    live, live_prompts = _live_holdout(config, known, log)
    audit_rows, stats = _audit_log_rows(config, models, known, live_prompts, log)
    logs = [trained.assign(source="champion"), unseen.assign(source="champion-held-out"), *offline]
    table = combined_table(audit_rows, logs, catalog, threshold)
    table, onboard = _onboarded(config, table, champion.models, stats, log)
    train_table, holdout = _split_for_judging(table, trained, champion.models, config, stats, log)

    stats["verifier"], carried = _verifier_source(champion, train_table, logs, log)
    paths = _write_tables(config, train_table, holdout, catalog)
    name = config.register or registered_name_of(config.base)
    champion_ref = _champion_ref(config.base) if name is not None else None
    result = _train_challenger(config, champion, paths, threshold, name, log, progress, onboard, carried)
    promoted, decision = _judge(config, champion, result, name, paths, catalog, threshold, live, stats, log)
    report = _report(champion, result, decision, stats)
    if name is not None:
        outcome = "promoted" if promoted else ("refused" if decision.get("refused") else "compared only")
        report["run_id"] = _log_retrain_run(config, name, champion_ref, champion.version, result, outcome,
                                            _retrain_summary(champion_ref, result, decision, outcome), report, stats)
        log(f"logged MLflow retrain run {report['run_id']}")
    _write_report(paths["report"], report)
    return RetrainResult(result.path, result.model_version, promoted, decision, stats, paths["report"])


def _onboarded(config: RetrainConfig, table: pd.DataFrame, models: list[str], stats: dict,
               log: Callable[[str], None]) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Step 7, new models: (the table without the new models that are not ready, the ready ones). A
    catalog model the champion does not route is ready with `min_new_outcomes` logged outcomes."""
    counts = table.loc[~table["model"].isin(models)].groupby("model")["prompt_id"].nunique().to_dict()
    ready = tuple(sorted(m for m, n in counts.items() if n >= config.min_new_outcomes))
    waiting = {m: n for m, n in counts.items() if m not in ready}
    stats["onboarded"], stats["onboarding"] = {m: counts[m] for m in ready}, waiting
    if ready:
        log("new models joining the router: " + ", ".join(f"{m} ({counts[m]} outcomes)" for m in ready))
    if waiting:
        log("new models still onboarding (fewer than "
            f"{config.min_new_outcomes} outcomes; keep serving them with the catalog): "
            + ", ".join(f"{m} ({n})" for m, n in waiting.items()))
    return table[table["model"].isin([*models, *ready])], ready


def _live_holdout(config: RetrainConfig, known: dict[str, str], log: Callable[[str], None]):
    """Step 2: (the held-out logged requests, their prompts)."""
    from router_ml.training.evaluate.off_policy import read_traffic

    traffic = read_traffic(config.audit, config.since, known_prompts=known, log=log)
    live, prompts = live_split(traffic, config.live_holdout, config.seed)
    log(f"live holdout: {len(live)} of the {len(traffic)} logged requests usable to judge routers "
        f"({config.live_holdout:.0%} of their prompts; the challenger does not train on them)")
    return live, prompts


def _champion_ref(base: str) -> tuple[str, str] | None:
    """(registered name, version number) of the champion when it came from the registry; resolved
    before anything can move the alias."""
    if not base.startswith("models:/"):
        return None
    from router_ml.core.mlflow_registry import import_mlflow, resolve_model_version

    found = resolve_model_version(import_mlflow().MlflowClient(), base)
    return found.name, str(found.version)


def _retrain_summary(champion_ref, result, decision: dict, outcome: str) -> str:
    champion = f"v{champion_ref[1]}" if champion_ref else "the champion"
    challenger = f"v{result.model_version}" if result.model_version else result.manifest["router_version"]
    judged = [f"{kind}: {decision[kind]['describe']}" for kind in ("live", "complete") if decision.get(kind)]
    evidence = (" (" + "; ".join(judged) + ")") if judged else ""
    verb = {"promoted": "promoted over", "refused": "not promoted over", "compared only": "compared with"}[outcome]
    return f"challenger {challenger} {verb} {champion} (margin {decision.get('margin', 0):g}){evidence}"


def _log_retrain_run(config: RetrainConfig, name: str, champion_ref, champion_version: str, result, outcome: str,
                     summary: str, report: dict, stats: dict) -> str:
    """The retraining as an MLflow run (training.registry.decisions): both versions, the holdout's
    evaluation set, the metric, its interval and the decision; with --no-promote (or nothing to
    promote in) the holdout evaluations of both are indexed on their versions here."""
    from router_ml.training.registry.decisions import log_decision_run, version_refs

    decision = report.get("decision") or {}
    complete, live = decision.get("complete") or {}, decision.get("live") or {}
    refs = [champion_ref] if champion_ref else []
    challenger = result.model_version if result is not None else None
    if challenger:
        refs.append((name, challenger))
    eval_set = complete.get("eval_set") if isinstance(complete.get("eval_set"), dict) else None
    metrics = {k: v for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    metrics.update({k: complete[k] for k in ("candidate", "incumbent", "improvement", "lower", "upper")
                    if isinstance(complete.get(k), (int, float))})
    for figure in ("quality", "aiq"):  # the live judgement's paired difference (doubly robust) and its interval
        for key, value in ((live.get(figure) or {}).get("difference") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[f"live_{figure}_difference_{key}"] = value
    run_id = log_decision_run(
        "retrain", run_name=f"retrain {'v' + champion_ref[1] if champion_ref else champion_version}"
                            + (f" -> v{challenger}" if challenger else ""),
        decision=outcome, summary=summary, refs=version_refs(None, refs), registered_model=name, eval_set=eval_set,
        params={"base": config.base, "audit": config.audit, "outcomes": ",".join(config.outcomes), "alias": config.alias,
                "metric": config.metric, "margin": config.margin, "holdout_size": config.holdout_size,
                "min_holdout": config.min_holdout, "resamples": config.resamples, "seed": config.seed,
                "max_weight": config.max_weight, "since": config.since, "promote": config.promote,
                "live_holdout": config.live_holdout, "min_live_requests": config.min_live_requests},
        metrics=metrics,
        tags={"champion_version": champion_ref[1] if champion_ref else None, "champion_router": champion_version,
              "challenger_version": challenger, "challenger_run": getattr(result, "run_id", None),
              "promotion_run": None},
        artifacts={"retrain-report.json": json.loads(json.dumps(report, default=str))})
    if eval_set is not None and complete.get("values"):
        from router_ml.core.mlflow_registry import import_mlflow
        from router_ml.training.registry.evaluations import record_evaluation

        client = import_mlflow().MlflowClient()
        pairs = [(challenger and (name, challenger), complete["values"].get("candidate")),
                 (champion_ref, complete["values"].get("incumbent"))]
        for ref, values in pairs:
            if ref and values:
                record_evaluation(client, ref[0], ref[1], eval_set, values, run_id, "retrain")
    return run_id


def _offline_logs(paths: list[str], models: list[str], success_threshold: float,
                  log: Callable[[str], None]) -> list[pd.DataFrame]:
    """Step 2, offline: each log's rows for the champion's models (the others are counted and left out)."""
    from router_ml.training.data.outcomes import read_outcomes

    offline = []
    for path in paths:
        frame = read_outcomes(path, success_threshold=success_threshold, duplicates="mean")
        other = sorted(set(frame["model"]) - set(models))
        if other:
            log(f"{path}: {int(frame['model'].isin(other).sum())} rows for models the champion does not route "
                f"({', '.join(other)}) are left out")
        offline.append(frame[frame["model"].isin(models)].assign(source=f"offline:{path}"))
    return offline


def _audit_log_rows(config: RetrainConfig, models: list[str], known: dict[str, str], exclude: set[str],
                    log: Callable[[str], None]) -> tuple[pd.DataFrame, dict]:
    """Step 3, served traffic: `audit_outcomes` of the audit log, with prompts logged as digests
    recovered from `known`, without the prompts of the live holdout; and what was counted."""
    audit_rows, stats = audit_outcomes(config.audit, known, config.since, models, config.max_weight, log)
    held = audit_rows["prompt"].isin(exclude)
    stats["live_holdout_rows"] = int(held.sum())
    audit_rows = audit_rows[~held]
    log(f"{config.audit}: {stats['decisions']} decisions, {stats['with_outcomes']} with outcomes, "
        f"{stats['outcome_rows']} usable outcome rows ({stats['exploration_rows']} from exploration, "
        f"{stats['weighted_rows']} weighted by inverse propensity), {stats['live_holdout_rows']} of them held out "
        "to judge on")
    return audit_rows, stats


def _prompts_by_digest(config: RetrainConfig, logs: list[pd.DataFrame]) -> dict[str, str]:
    """digest -> prompt for every prompt of `logs`: keyed with the audit log's secret (its key
    file), and plain sha256 for logs written before keyed digests."""
    from router_ml.core.audit_format import load_key
    from router_ml.core.prompts import keyed_digest

    key_file = Path(config.audit_key_file or f"{config.audit}.key")
    key = load_key(key_file, create=False) if key_file.exists() else None
    texts = {p for frame in logs for p in frame["prompt"].unique()}
    known = {keyed_digest(p, None): p for p in texts}
    if key is not None:
        known.update({keyed_digest(p, key): p for p in texts})
    return known


def _split_for_judging(table: pd.DataFrame, trained: pd.DataFrame, models: list[str], config: RetrainConfig,
                       stats: dict, log: Callable[[str], None]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Step 5: (the challenger's training table, the holdout neither router trains on); the sizes
    are added to `stats`."""
    trained_ids = set(table.loc[table["prompt"].isin(set(trained["prompt"])), "prompt_id"])
    train_table, holdout = holdout_split(table, models, trained_ids, config.holdout_size, config.seed,
                                         config.min_holdout, config.min_complete)
    stats.update(rows=len(table), prompts=int(table["prompt_id"].nunique()),
                 champion_prompts=len(trained_ids), train_prompts=int(train_table["prompt_id"].nunique()),
                 holdout_prompts=int(holdout["prompt_id"].nunique()))
    log(f"training table: {stats['rows']} rows, {stats['prompts']} prompts ({stats['champion_prompts']} from the "
        f"champion's training data); complete holdout: {stats['holdout_prompts']} prompts with every model's outcome "
        "that neither router trains on" + ("" if stats["holdout_prompts"] else
                                           f" (fewer than {config.min_complete} eligible: the live log judges alone)"))
    return train_table, holdout


def _answered(frame: pd.DataFrame) -> pd.Series:
    if "response" not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame["response"].map(lambda r: isinstance(r, str) and r != "")


def _verifier_source(champion, train_table: pd.DataFrame, logs: list[pd.DataFrame],
                     log: Callable[[str], None]) -> tuple[dict, tuple[dict, dict] | None]:
    """Step 6, the verifier: refitted from the answers in the challenger's table, or the champion's
    carried over when there are none; (what is reported, the verifier to carry or None). Logged."""
    from router_ml.policy.verifier import VERIFIER_FILE

    answers = int(_answered(train_table).sum())
    origins = sorted({str(frame["source"].iloc[0]).split(":")[0].removesuffix("-held-out") for frame in logs
                      if len(frame) and "source" in frame.columns and _answered(frame).any()})
    spec = champion.manifest.get("verifier")
    if champion.manifest.get("config", {}).get("verifier", True) is False:
        info = {"how": "none", "answers": answers, "note": "the champion was trained without one (--no-verifier)"}
    elif answers:
        info = {"how": "refitted" if spec else "fitted", "answers": answers, "from": origins,
                "note": "from the logged answers in the training table; the audit log keeps no answers"}
        log(f"verifier: {info['how']} from {answers} logged answers ({', '.join(origins)}); the audit log keeps no "
            "answers, so served traffic adds outcomes only")
    elif spec:
        unknown = sorted({e["model"] for e in spec.get("entries", [])} - set(train_table["model"]))
        if unknown:
            info = {"how": "dropped", "answers": 0,
                    "note": f"no answers to refit it from, and the champion's names models the challenger does not "
                            f"route ({unknown}): a policy that reads the verifier will refuse the challenger"}
            log(f"verifier: {info['note']}")
            return info, None
        path = Path(champion.path) / VERIFIER_FILE
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        info = {"how": "carried over", "answers": 0, "from": champion.version,
                "note": "no answers in the training table to refit it from; the champion's verifier and cascade "
                        "plans are kept unchanged (made for its estimates): pass the log it was trained on with its "
                        "response column, or an offline log with answers (--outcomes), to refit it"}
        log(f"verifier: carried over from {champion.version}: {info['note']}")
        return info, ({**spec, "carried_from": champion.version}, arrays)
    else:
        info = {"how": "none", "answers": 0, "note": "neither the champion nor the logs have answers"}
    return info, None


def _write_tables(config: RetrainConfig, train_table: pd.DataFrame, holdout: pd.DataFrame,
                  catalog: Catalog) -> dict[str, Path]:
    """The training table, the holdout and the prices, written to the work folder; the paths
    (and where the report goes)."""
    work = Path(config.workdir or f"{config.out}.retrain")
    work.mkdir(parents=True, exist_ok=True)
    paths = {"train": work / "train-outcomes.csv", "holdout": work / "holdout-outcomes.csv",
             "catalog": work / "catalog.yaml", "report": work / "retrain-report.json"}
    _write_csv(train_table, paths["train"])
    _write_csv(holdout, paths["holdout"])
    paths["holdout_prompts"] = int(holdout["prompt_id"].nunique())
    write_catalog(catalog, paths["catalog"])
    return paths


def _train_challenger(config: RetrainConfig, champion, paths: dict[str, Path], success_threshold: float,
                      name: str | None, log: Callable[[str], None], progress: bool, onboard: tuple[str, ...] = (),
                      carried_verifier: tuple[dict, dict] | None = None):
    """Step 6: the challenger, trained on the training table with the champion's settings
    (registered as `name` when there is one); `carried_verifier` is kept when the table has
    no answers (`_verifier_source`)."""
    from router_ml.training.fit.pipeline import TrainConfig, train

    base_config = champion.manifest.get("config", {})
    train_config = TrainConfig(
        outcomes=str(paths["train"]), catalog=str(paths["catalog"]),
        **({"test_outcomes": str(paths["holdout"])} if paths["holdout_prompts"] else {"test_size": 0.0}),
        out=config.out, overwrite=config.overwrite, register=name, mlflow=name is not None,
        success_threshold=success_threshold, seed=config.seed, cache_dir=config.cache_dir, baselines=(),
        spark_master=config.spark_master, onboard=onboard,
        **{k: base_config[k] for k in ("embedder", "embedder_kind", "backend", "onnx_precision", "truncation",
                                        "strategy", "folds", "verifier", "static_max_tokens") if k in base_config},
    )
    return train(train_config, log=log, progress=progress, carried_verifier=carried_verifier)


def _judge(config: RetrainConfig, champion, result, name: str | None, paths: dict, catalog: Catalog,
           success_threshold: float, live, stats: dict, log: Callable[[str], None]) -> tuple[bool, dict]:
    """Step 8: (whether the challenger was promoted, the evidence): the live judgement, the complete one
    beside it, and the alias moved through the registry when both allow it."""
    from router_ml.core.router import load_router

    challenger = load_router(result.path)
    decision: dict = {"metric": config.metric, "margin": config.margin, "live": None, "complete": None}
    if len(live) >= config.min_live_requests:
        decision["live"] = _live_judgement(config, challenger, champion, live, log)
    else:
        decision["live_note"] = (f"no live judgement: {len(live)} held-out logged requests, fewer than "
                                 f"{config.min_live_requests}")
        log(decision["live_note"])
    if paths["holdout_prompts"] and set(challenger.models) <= set(champion.models):
        decision["complete"] = _complete_judgement(config, challenger, champion, paths, catalog, success_threshold,
                                                   log)
    elif paths["holdout_prompts"]:
        decision["complete_note"] = ("no complete judgement: the complete held-out prompts have no outcomes of the "
                                     f"new models {sorted(set(challenger.models) - set(champion.models))}")
        log(decision["complete_note"])
    refusal = _refusal(decision)
    decision["promoted"] = False
    if refusal is not None:
        decision["refused"] = refusal
        log(f"not promoted: {refusal}")
        return False, decision
    if name is None or not config.promote:
        decision["note"] = "not promoted: the base is not a registry URI, or --no-promote (the evidence allowed it)"
        log(decision["note"])
        return False, decision
    from router_ml.training.registry.versions import move_alias

    detail = decision["live"]["describe"] if decision["live"] else decision["complete"]["describe"]
    moved = move_alias(name, result.model_version, config.alias, detail, log=log)
    decision.update(promoted=moved["promoted"], previous=moved.get("previous"))
    return decision["promoted"], decision


def _live_judgement(config: RetrainConfig, challenger, champion, live, log: Callable[[str], None]) -> dict:
    from router_ml.training.evaluate.off_policy import Judged, compare_on_traffic

    comparison = compare_on_traffic(live, Judged("challenger", challenger), Judged("champion", champion),
                                    margin=config.margin, resamples=config.resamples, seed=config.seed, log=log)
    log(f"challenger against the champion, live: {comparison.describe()}")
    return {**comparison.to_dict(), "describe": comparison.describe()}


def _complete_judgement(config: RetrainConfig, challenger, champion, paths: dict, catalog: Catalog,
                        success_threshold: float, log: Callable[[str], None]) -> dict:
    """Both routers on the complete held-out prompts, paired on `--metric`."""
    from router_ml.training.data.outcomes import read_outcomes, to_routing_data
    from router_ml.training.evaluate.comparison import paired_comparison

    frame = read_outcomes(paths["holdout"], success_threshold=success_threshold)
    data = to_routing_data(frame, catalog, str(paths["holdout"]))
    comparison = paired_comparison(challenger, champion, data, config.metric, resamples=config.resamples,
                                   seed=config.seed, source=str(paths["holdout"]))
    worse = math.isfinite(comparison.upper) and comparison.upper < -config.margin
    log(f"challenger against the champion, on complete held-out prompts: {comparison.describe()}")
    return {**comparison.to_dict(), "worse_with_confidence": bool(worse), "describe": comparison.describe()}


def _refusal(decision: dict) -> str | None:
    """Why the evidence does not allow a promotion (None: it does)."""
    live, complete = decision["live"], decision["complete"]
    if live is None and complete is None:
        return ("no evidence to judge the challenger on: too few held-out logged requests with outcomes and no "
                "complete held-out prompts (report more outcomes, or pass an offline log with --outcomes)")
    if complete is not None and complete["worse_with_confidence"]:
        return f"it is worse than the champion on the complete held-out prompts with confidence ({complete['describe']})"
    if live is not None:
        return live["why_not"]
    if complete is not None and not complete["lower"] >= -decision["margin"]:
        return (f"it is not at least as good as the champion on the complete held-out prompts with confidence "
                f"({complete['describe']})")
    return None


def _report(champion, result, decision: dict, stats: dict) -> dict:
    """The retraining report: both versions, the decision and the data counts."""
    return {"champion": champion.version, "challenger": result.manifest["router_version"],
            "registered_version": result.model_version, "decision": decision, "data": stats}


def _write_report(path: Path, report: dict) -> None:
    """The retraining report, beside the tables."""
    from router_ml.core.files import atomic_write_text

    atomic_write_text(path, json.dumps(report, indent=2, default=str))


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    from router_ml.core.files import atomic_write_text

    columns = ["prompt_id", "prompt", "model", "score", "success", "cost", "task", "weight"]
    if _answered(frame).any():  # the answers the challenger's verifier is fitted and judged on
        columns.append("response")
    atomic_write_text(path, frame[columns].to_csv(index=False))
