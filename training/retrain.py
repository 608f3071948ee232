"""Retraining from logged outcomes: audit log (+ offline logs) -> challenger -> guarded promotion.

    router-ml retrain --audit audit.sqlite --outcomes offline-eval.csv --base models:/my-router@champion \
        --out models/challenger

1. Read the audit log: every decision with a reported outcome becomes one contract row
   (prompt, model, score/success, cost). Prompts are needed as text: a log kept with
   `prompt_storage="hash"` is matched to the offline logs by sha256 where it can be;
   decisions whose text cannot be recovered are counted and left out.
2. Add the offline logs (`--outcomes`, the same contract as `train`), so prompts on which
   every model was tried are available; merge repeated (prompt, model) attempts by
   their mean.
3. Hold out a slice of *complete* prompts (every model's outcome known) that the
   champion was not trained on: evaluation needs every model's outcome on a prompt to
   compare policies fairly.
4. Train the challenger on the rest with the champion's own settings (embedder,
   backend, truncation, strategy, prices), register it, and promote it over the
   champion only if it is at least as good on the held-out slice (training.registry).

How the bias of logged traffic enters the labels. A routed request shows the outcome of
the one model the router chose. The cheapest-successful label of such a prompt is only
known when every model cheaper than its first success was also observed, and for
routed traffic that is rarely the case: if the router
sent a prompt to a mid-priced model and it succeeded, a cheaper model might have
succeeded too, so the label is *censored* (router_ml.core.labeling) and the prompt trains
only the per-model success head, for the model that was observed. The label classifier
therefore learns mostly from the offline logs and from prompts the router already sent
to the cheapest model; per-model estimates for models the router avoids stop improving.
Exploration (`router-ml serve --exploration-rate`) fixes that: a small share of requests
goes to another model, uniformly, marked in the log with its propensity, so every model
keeps being observed on today's traffic. The retrain report says how many rows came
from exploration and how many prompts were censored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from router_ml.core.catalog import Catalog, ModelPrice, estimate_tokens, load_catalog, write_catalog
from router_ml.errors import ConfigError

CONTRACT = ["prompt_id", "prompt", "model", "score", "success", "cost", "task", "source"]


@dataclass
class RetrainConfig:
    audit: str
    base: str  # the champion: models:/NAME@ALIAS (or a directory, then nothing is promoted)
    out: str  # the challenger's artifact directory
    outcomes: list[str] = field(default_factory=list)  # offline logs in the outcomes contract
    catalog: str | None = None  # default: the champion's own prices
    register: str | None = None  # default: the champion's registered name
    alias: str = "champion"
    metric: str = "aiq"
    holdout_size: float = 0.25
    seed: int = 0
    since: float | None = None  # only decisions logged at or after this unix time
    success_threshold: float | None = None  # default: the champion's
    cache_dir: str | None = None
    workdir: str | None = None  # where the training tables go (default: OUT + ".retrain")
    promote: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_size < 1.0:
            raise ConfigError(f"holdout_size: expected a fraction in (0, 1), found {self.holdout_size!r}")


def audit_outcomes(audit_path: str | Path, known_prompts: dict[str, str] | None = None, since: float | None = None,
                   log: Callable[[str], None] = print) -> tuple[pd.DataFrame, dict]:
    """Contract rows from the audit log: one per reported outcome, with the prompt's text.

    known_prompts maps sha256(prompt) -> prompt, to recover prompts logged as hashes.
    """
    from router_ml.serve.audit import read_joined

    decisions = read_joined(audit_path, since)
    known_prompts = known_prompts or {}
    rows, stats = [], {"decisions": len(decisions), "with_outcomes": 0, "outcome_rows": 0, "exploration_rows": 0,
                       "no_prompt_text": 0}
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
            rows.append({"prompt": prompt, "model": o["model"],
                         "score": o["score"], "success": None if o["success"] is None else bool(o["success"]),
                         "cost": o["cost"], "task": task, "source": f"audit:{d['request_id']}"})
            stats["outcome_rows"] += 1
            stats["exploration_rows"] += int(d["exploration"] and o["model"] == d["model"])
    if stats["no_prompt_text"]:
        log(f"{audit_path}: {stats['no_prompt_text']} decisions with outcomes have no prompt text (logged as hashes, "
            "not found in the offline logs) and are left out; serve with --prompt-storage text to retrain from the log")
    return pd.DataFrame(rows, columns=["prompt", "model", "score", "success", "cost", "task", "source"]), stats


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


def combined_table(audit_rows: pd.DataFrame, offline: list[pd.DataFrame], catalog: Catalog,
                   success_threshold: float) -> pd.DataFrame:
    """One contract table: offline logs plus audit rows, prompt ids unified by text, costs
    filled from the catalog where none was logged, repeats averaged."""
    from training.outcomes import prompt_hash, validate_outcomes

    frames = []
    ids_by_text: dict[str, str] = {}
    for frame in offline:
        ids_by_text.update(zip(frame["prompt"], frame["prompt_id"]))
        frames.append(frame.assign(source=frame.get("source", "offline"))[[c for c in CONTRACT if c in frame.columns]])
    if len(audit_rows):
        audit_rows = audit_rows.assign(prompt_id=[ids_by_text.get(p) or prompt_hash(p) for p in audit_rows["prompt"]])
        frames.append(audit_rows)
    if not frames:
        raise ConfigError("nothing to train on: the audit log has no outcomes and no --outcomes were given")
    table = pd.concat(frames, ignore_index=True)
    unknown = sorted(set(table["model"]) - set(catalog.models))
    if unknown:
        raise ConfigError(f"outcomes name models {unknown} that the prices ({catalog.source}) do not cover; "
                          f"known: {sorted(catalog.models)}; pass --catalog")
    missing = table["cost"].isna().to_numpy()
    if missing.any():
        lengths = table.loc[missing, "prompt"].str.len().to_numpy()
        tokens = estimate_tokens(lengths, catalog.chars_per_token)
        table.loc[missing, "cost"] = [catalog.call_cost(m, t) for m, t in zip(table.loc[missing, "model"], tokens)]
    table["success"] = table["success"].astype(object)
    validated = validate_outcomes(table, "retraining table", success_threshold=success_threshold, duplicates="mean")
    return validated


def holdout_split(table: pd.DataFrame, models: list[str], exclude: set[str], size: float, seed: int):
    """Complete prompts (every model observed) not in `exclude`, a seeded `size` share of them."""
    per_prompt = table.groupby("prompt_id")["model"].agg(lambda s: set(s) >= set(models))
    complete = [pid for pid, ok in per_prompt.items() if ok and pid not in exclude]
    if len(complete) < 10:
        raise ConfigError(
            f"only {len(complete)} prompts have every model's outcome ({', '.join(models)}) and were not used to "
            "train the champion; evaluation needs such prompts: pass an offline evaluation log with --outcomes"
        )
    rng = np.random.default_rng(seed)
    n = max(10, int(round(size * len(complete))))
    held = set(rng.choice(sorted(complete), size=min(n, len(complete)), replace=False).tolist())
    mask = table["prompt_id"].isin(held)
    return table[~mask], table[mask]


@dataclass
class RetrainResult:
    challenger: Path
    version: str | None
    promoted: bool
    decision: dict
    stats: dict


def retrain(config: RetrainConfig, log: Callable[[str], None] = print, progress: bool = False) -> RetrainResult:
    from router_ml.core.prompts import prompt_sha256
    from router_ml.core.router import load_router
    from router_ml.errors import PromotionRefused
    from training.evaluation import training_side
    from training.outcomes import read_outcomes
    from training.pipeline import TrainConfig, train
    from training.registry import promote, registered_name_of

    champion = load_router(config.base)
    base_config = champion.manifest.get("config", {})
    threshold = config.success_threshold if config.success_threshold is not None else \
        base_config.get("success_threshold", 0.5)
    catalog = catalog_for(champion, config.catalog)

    offline = [read_outcomes(p, success_threshold=threshold, duplicates="mean").assign(source=f"offline:{p}")
               for p in config.outcomes]
    known = {prompt_sha256(p): p for frame in offline for p in frame["prompt"].unique()}
    audit_rows, stats = audit_outcomes(config.audit, known, config.since, log)
    log(f"{config.audit}: {stats['decisions']} decisions, {stats['with_outcomes']} with outcomes, "
        f"{stats['outcome_rows']} outcome rows ({stats['exploration_rows']} from exploration)")
    table = combined_table(audit_rows, offline, catalog, threshold)
    table = table[table["model"].isin(champion.models)]

    side = training_side(champion, log=log)
    exclude = set(side.prompt_ids) if side is not None else set()
    if side is None:
        log("the champion's training prompts are unknown; the holdout may overlap them")
    train_table, holdout = holdout_split(table, champion.models, exclude, config.holdout_size, config.seed)
    stats.update(rows=len(table), prompts=int(table["prompt_id"].nunique()),
                 train_prompts=int(train_table["prompt_id"].nunique()), holdout_prompts=int(holdout["prompt_id"].nunique()))
    log(f"training table: {stats['rows']} rows, {stats['prompts']} prompts; holdout: {stats['holdout_prompts']} complete "
        "prompts the champion was not trained on")

    work = Path(config.workdir or f"{config.out}.retrain")
    work.mkdir(parents=True, exist_ok=True)
    paths = {"train": work / "train-outcomes.csv", "holdout": work / "holdout-outcomes.csv",
             "catalog": work / "catalog.yaml"}
    _write_csv(train_table, paths["train"])
    _write_csv(holdout, paths["holdout"])
    write_catalog(catalog, paths["catalog"])

    name = config.register or registered_name_of(config.base)
    train_config = TrainConfig(
        outcomes=str(paths["train"]), test_outcomes=str(paths["holdout"]), catalog=str(paths["catalog"]),
        out=config.out, overwrite=config.overwrite, register=name, mlflow=name is not None,
        success_threshold=threshold, seed=config.seed, cache_dir=config.cache_dir, baselines=(),
        **{k: base_config[k] for k in ("embedder", "embedder_kind", "backend", "onnx_precision", "truncation",
                                        "strategy", "folds") if k in base_config},
    )
    result = train(train_config, log=log, progress=progress)
    challenger = result.manifest["router_version"]
    if name is None or not config.promote:
        log(f"trained {challenger}; not registered or promoted (the base is not a registry URI, or --no-promote)")
        return RetrainResult(result.path, result.model_version, False, {"reason": "not registered"}, stats)
    holdout_frame = read_outcomes(paths["holdout"], success_threshold=threshold)
    try:
        decision = promote(name, result.model_version, config.alias, config.metric, frame=holdout_frame,
                           catalog=catalog, source=str(paths["holdout"]), log=log)
    except PromotionRefused as exc:
        log(str(exc))
        return RetrainResult(result.path, result.model_version, False, {"reason": str(exc)}, stats)
    return RetrainResult(result.path, result.model_version, bool(decision.get("promoted")), decision, stats)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    from router_ml.core.files import atomic_write_text

    columns = ["prompt_id", "prompt", "model", "score", "success", "cost", "task"]
    atomic_write_text(path, frame[columns].to_csv(index=False))

