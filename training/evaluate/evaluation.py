"""Evaluate a router on held-out outcomes, beside baselines measured the same way.

Routes every evaluation prompt through the router's own policy (the code path of
`route_batch`) at each `quality_target` of a sweep (`sweep_targets`), prices each route
with the logged (or catalog) cost of the chosen model on that prompt and scores it with
that model's logged score. Only prompts with an outcome for every router model are
scored, and prompts the router was trained on are dropped; the report counts both.

Beside the router, on the same prompts:
- each single model, always-cheapest, always-best, the oracle, and random mixing (the
  zero router: the hull of the single models);
- learned baselines fitted on the router's training prompts with the router's own
  embeddings, when those prompts are known (`training_side`), the simple routers of the
  peers' kinds: a kNN router (k=25, cosine), one MLP per model, one logistic regression
  per model, the blend of logistic and kNN, each trading its own P(success) against cost
  with the router's policy, and RouteLLM's similarity-weighted ranking (for two models
  its weighted Bradley–Terry win rate of the strong model, thresholded; for more, each
  model's success rate under the same weights, through the policy);
- for each learned baseline, the router minus the baseline on AIQ and the set's headline
  metric (APGR for two models, gap closed otherwise) with a paired bootstrap interval
  (90 %, prompts resampled; router_ml.training.evaluate.paired).

Reported: each curve's AIQ, gap closed, cost to match the best model, quality at its
cost, and APGR / CPT(50 %) / CPT(80 %) for two models; the router's calibration (ECE
and reliability table) at its default target; the route mix; and per-task slices when
the outcomes have a `task` column. Definitions: docs/metrics.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from router_ml.core.decision import choose, lam_grid
from router_ml.core.heads import BlendHead, KNNHead, MLPHead, PerModelSuccessHead, SimilarityWeightedHead
from router_ml.core.validation import check_quality_target
from router_ml.errors import ConfigError
from router_ml.training.data.outcomes import RoutingData, evaluation_set_hash
from router_ml.training.evaluate import metrics

DEFAULT_SWEEP = tuple(np.round(np.linspace(0.0, 1.0, 101), 4))
BASELINES = ("knn", "mlp", "sw_ranking", "per_model", "blend")
BASELINE_LABELS = {"knn": "kNN k=25", "mlp": "MLP", "sw_ranking": "SW ranking (RouteLLM)",
                   "per_model": "per-model logistic", "blend": "blend (logistic + kNN)"}
BASELINE_HEADS = {"knn": lambda: KNNHead(k=25), "mlp": MLPHead, "per_model": lambda: PerModelSuccessHead(C=1.0),
                  "blend": lambda: BlendHead(C=0.1, k=50), "sw_ranking": SimilarityWeightedHead}
PAIRED_RESAMPLES = 1000
PAIRED_CONFIDENCE = 0.90
SET_ID_CHARS = 12  # an evaluation set's short fingerprint: how MLflow keys and tags name it
METRIC_KEYS = ("aiq", "gap_closed", "cost_to_match_best", "quality_at_best_cost", "apgr", "cpt50", "cpt80", "ece")


def sweep_targets(router) -> list[float]:
    """Steps of 0.01, plus the router's own schedule points and default target.

    The knob is uniform in held-out quality, so the last hundredth of it can span much of
    the cost range; the schedule's points are where decisions change, so including them
    traces the whole curve.
    """
    return sorted({*DEFAULT_SWEEP, *router.schedule.targets, router.default_quality_target})


def align_to_router(data: RoutingData, router_models: list[str], source: str = "evaluation outcomes") -> RoutingData:
    """Reorder the data's model columns to the router's; refuse unknown or missing models."""
    unknown = [m for m in data.models if m not in router_models]
    if unknown:
        raise ConfigError(f"{source}: models {unknown} are not among the router's models {router_models}")
    missing = [m for m in router_models if m not in data.models]
    if missing:
        raise ConfigError(
            f"{source}: no outcomes for models {missing}, which the router can choose; "
            "evaluation needs every router model's outcome on each prompt"
        )
    return data.columns(list(router_models))


def training_side(router, train_outcomes: str | None = None, log: Callable[[str], None] = print,
                  reader: Callable | None = None) -> RoutingData | None:
    """The prompts the router was trained on, when they can be known for certain.

    From `train_outcomes` if given; else from the file named in the router's manifest,
    re-split exactly as training did, but only if its content hash still matches.
    `reader` reads an outcomes file (default `read_outcomes`; with Spark, on the cluster).
    """
    from router_ml.core.catalog import load_catalog
    from router_ml.training.data.outcomes import data_hash, read_outcomes, split_prompts, to_routing_data

    read_outcomes = reader or read_outcomes
    manifest = router.manifest
    config = manifest.get("config", {})
    read = dict(success_threshold=config.get("success_threshold", 0.5), duplicates=config.get("duplicates", "error"),
                column_map=config.get("column_map") or None)
    catalog = None
    if config.get("catalog"):
        try:
            catalog = load_catalog(config["catalog"])
        except Exception:  # noqa: BLE001 - the router's own prices do as well
            catalog = None
    if train_outcomes is not None:
        frame = read_outcomes(train_outcomes, **read)
        frame = frame[frame["model"].isin(router.models)]
        return align_to_router(to_routing_data(frame, catalog, str(train_outcomes), cost_model=router.cost_model),
                               router.models, str(train_outcomes))
    source = manifest.get("training_data", {}).get("source")
    if not source:
        return None
    try:
        frame = read_outcomes(source, **read)
    except Exception as exc:  # noqa: BLE001 - a moved or changed file only costs the learned baselines
        log(f"training outcomes {source} cannot be read ({exc}); learned baselines skipped (pass --train-outcomes)")
        return None
    if config.get("models"):
        frame = frame[frame["model"].isin(config["models"])]
    if data_hash(frame) != manifest["training_data"].get("sha256"):
        log(f"training outcomes {source} changed since training (hash differs); learned baselines skipped")
        return None
    data = to_routing_data(frame, catalog, source, cost_model=router.cost_model)
    if not config.get("test_outcomes") and config.get("test_size", 0) > 0:
        data, _ = split_prompts(data, config["test_size"], config.get("seed", 0))
    return align_to_router(data, router.models, source)


def _points(choices: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> np.ndarray:
    rows = np.arange(scores.shape[0])
    return np.array([[costs[rows, c].mean(), scores[rows, c].mean()] for c in choices])


class _Context:
    """What every curve on one evaluation set is measured against."""

    def __init__(self, data: RoutingData) -> None:
        self.scores, self.costs, self.success = data.scores, data.costs, data.success
        self.singles = np.column_stack([self.costs.mean(axis=0), self.scores.mean(axis=0)])
        self.oracle = metrics.oracle_choice(self.scores, self.costs)
        rows = np.arange(len(data))
        self.oracle_point = np.array([self.costs[rows, self.oracle].mean(), self.scores[rows, self.oracle].mean()])
        self.aiq_zero = metrics.zero_router_aiq(self.singles)
        self.aiq_oracle = metrics.oracle_aiq(self.singles, self.oracle_point)
        self.strong = int(np.argmax(self.singles[:, 0])) if len(data.models) == 2 else None

    def point_metrics(self, points: np.ndarray) -> dict:
        """Cost-quality metrics of a curve given as (mean cost, mean score) points."""
        aiq = metrics.aiq(points, self.singles)
        return {
            "aiq": aiq,
            "gap_closed": metrics.gap_closed(aiq, self.aiq_zero, self.aiq_oracle),
            "cost_to_match_best": metrics.cost_to_match(points, self.singles),
            "quality_at_best_cost": metrics.quality_at_best_cost(points, self.singles),
        }

    def curve_metrics(self, choices: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray | None]:
        points = _points(choices, self.scores, self.costs)
        result = self.point_metrics(points)
        share = None
        if self.strong is not None:
            share = (choices == self.strong).mean(axis=1)
            weak_q, strong_q = self.singles[1 - self.strong, 1], self.singles[self.strong, 1]
            if strong_q != weak_q:
                result.update(
                    apgr=metrics.apgr(share, points[:, 1], weak_q, strong_q),
                    cpt50=metrics.cpt(share, points[:, 1], weak_q, strong_q, 0.5),
                    cpt80=metrics.cpt(share, points[:, 1], weak_q, strong_q, 0.8),
                )
        return result, points, share

    def ece(self, proba: np.ndarray, choice: np.ndarray) -> tuple[float, list[dict]]:
        rows = np.arange(len(choice))
        return metrics.expected_calibration_error(proba[rows, choice], self.success[rows, choice])


def sw_ranking_win_rate(X_train, train: RoutingData, X_test, strong: int, chunk: int = 512) -> np.ndarray:
    """RouteLLM's similarity-weighted ranking for two models: P(strong beats weak | prompt).

    Every training prompt is a battle (the higher score wins, equal scores tie); battles
    are weighted 10 * 10^(sim / max sim) by cosine similarity to the prompt, as in
    RouteLLM's SWRankingRouter. With two models the weighted Bradley–Terry estimate with
    ties counted as half a win is the weighted win rate.
    """
    weak = 1 - strong
    usable = ~np.isnan(train.scores).any(axis=1)
    diff = train.scores[usable, strong] - train.scores[usable, weak]
    wins = np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
    A = np.asarray(X_train, dtype=np.float32)[usable]
    A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)
    out = np.empty(len(X_test))
    for start in range(0, len(X_test), chunk):
        B = np.asarray(X_test[start : start + chunk], dtype=np.float32)
        B = B / np.maximum(np.linalg.norm(B, axis=1, keepdims=True), 1e-12)
        sim = B @ A.T
        max_sim = np.maximum(sim.max(axis=1, keepdims=True), 1e-6)
        weights = 10.0 * np.power(10.0, sim / max_sim)
        out[start : start + chunk] = (weights @ wins) / weights.sum(axis=1)
    return out


def _threshold_choices(win_rate: np.ndarray, strong: int, points: int = 201) -> np.ndarray:
    """Route to the strong model when its win rate >= threshold, thresholds at quantiles."""
    thresholds = np.unique(np.concatenate([[np.inf], np.quantile(win_rate, np.linspace(0, 1, points))]))
    return np.stack([np.where(win_rate >= t, strong, 1 - strong) for t in thresholds])


def _learned_baselines(router, ctx: _Context, X_test, training: RoutingData, X_train, est_costs, default_cost,
                       names, log) -> dict:
    out = {}
    lams = lam_grid(200)
    for name in names:
        if name == "sw_ranking" and ctx.strong is not None:
            win_rate = sw_ranking_win_rate(X_train, training, X_test, ctx.strong)
            choices = _threshold_choices(win_rate, ctx.strong)
            proba = None
        else:
            head = BASELINE_HEADS[name]().fit(X_train, training.success)
            proba = head.predict_proba(X_test)
            choices = np.stack([choose(proba, est_costs, lam, router.cost_scale) for lam in lams])
        result, points, share = ctx.curve_metrics(choices)
        at_budget = int(np.argmin(np.abs(points[:, 0] - default_cost)))
        if proba is not None:
            result["ece"], _ = ctx.ece(proba, choices[at_budget])
        out[name] = {
            "label": BASELINE_LABELS[name],
            "metrics": result,
            "choices": choices,  # for the paired comparison; dropped from the report
            "curve": [
                {"mean_cost": float(c), "quality": float(q), **({"strong_share": float(share[i])} if share is not None else {})}
                for i, (c, q) in enumerate(points)
            ],
        }
        log(f"baseline {BASELINE_LABELS[name]}: AIQ {result['aiq']:.4g}")
    return out


def versus_baselines(ctx: _Context, router_choices: np.ndarray, baseline_choices: dict[str, np.ndarray],
                     resamples: int = PAIRED_RESAMPLES, confidence: float = PAIRED_CONFIDENCE,
                     log: Callable[[str], None] = lambda _: None) -> dict:
    """The router minus each baseline on AIQ and the headline metric, with paired bootstrap intervals.

    `router_choices` and each baseline's are (sweep points, prompts) model indices on the
    evaluation prompts. Empty when `resamples` is 0 or there are fewer than two prompts.
    """
    if resamples <= 0 or len(ctx.scores) < 2 or not baseline_choices:
        return {}
    from router_ml.training.evaluate.paired import Curve, PairedBootstrap

    boot = PairedBootstrap(ctx.scores, ctx.costs, resamples=resamples, seed=0, strong=ctx.strong)
    two = ctx.strong is not None and ctx.singles[0, 1] != ctx.singles[1, 1]
    headline = "apgr" if two else "gap_closed"
    router = Curve.of_choices(router_choices, ctx.scores, ctx.costs, ctx.strong)
    mine = {m: boot.values(router, m) for m in ("aiq", headline)}
    out = {}
    for name, choices in baseline_choices.items():
        theirs = Curve.of_choices(choices, ctx.scores, ctx.costs, ctx.strong)
        out[name] = {m: boot.interval(mine[m], boot.values(theirs, m), m, confidence).to_dict() for m in mine}
        a = out[name]["aiq"]
        log(f"router vs {BASELINE_LABELS.get(name, name)}: AIQ {a['difference']:+.4f} "
            f"[{confidence:.0%}: {a['lower']:+.4f}, {a['upper']:+.4f}]")
    return out


def _task_slices(data: RoutingData, ctx: _Context, target_choices: np.ndarray, default_choice: np.ndarray) -> dict:
    tasks = np.array([t if t is not None else "" for t in data.tasks], dtype=object)
    if not any(tasks):
        return {}
    models = data.models
    slices = {}
    for task in sorted(set(tasks) - {""}):
        rows = np.flatnonzero(tasks == task)
        scores, costs = data.scores[rows], data.costs[rows]
        singles = np.column_stack([costs.mean(axis=0), scores.mean(axis=0)])
        best = int(np.lexsort((singles[:, 0], -singles[:, 1]))[0])
        oracle = metrics.oracle_choice(scores, costs)
        picked = default_choice[rows]
        r = np.arange(len(rows))
        entry = {
            "prompts": int(len(rows)),
            "noisy": bool(len(rows) < metrics.NOISY_BELOW),
            "quality": float(scores[r, picked].mean()),
            "mean_cost": float(costs[r, picked].mean()),
            "best_model": models[best],
            "best_model_quality": float(singles[best, 1]),
            "best_model_cost": float(singles[best, 0]),
            "oracle_quality": float(scores[r, oracle].mean()),
            "share": _shares(picked, models),
        }
        if singles[:, 0].max() > singles[:, 0].min():
            points = _points(target_choices[:, rows], scores, costs)
            aiq = metrics.aiq(points, singles)
            oracle_point = np.array([costs[r, oracle].mean(), scores[r, oracle].mean()])
            entry["aiq"] = aiq
            entry["gap_closed"] = metrics.gap_closed(aiq, metrics.zero_router_aiq(singles),
                                                     metrics.oracle_aiq(singles, oracle_point))
        slices[task] = entry
    return slices


def evaluate_router(
    router,
    data: RoutingData,
    *,
    training: RoutingData | None = None,
    baselines=BASELINES,
    targets=None,
    source: str = "evaluation outcomes",
    embedder=None,
    train_embeddings: np.ndarray | None = None,
    paired_resamples: int = PAIRED_RESAMPLES,
    log: Callable[[str], None] = lambda _: None,
) -> dict:
    """A JSON-able report of the router on `data` (see module docstring).

    `training` (the router's training prompts) drops overlapping prompts and enables the
    learned baselines; `embedder` (default: the router's) embeds for both, and
    `train_embeddings` skips embedding the training prompts. `paired_resamples` draws
    give the intervals against each baseline (0: none).
    """
    targets = _checked_sweep(router, targets)
    data, skipped = _evaluation_prompts(data, router.models, training, source)
    ctx = _Context(data)
    embedder = embedder or router.embedder
    X_test = embedder.encode(data.prompts)
    predicted = router.predict_scores(data.prompts, embeddings=X_test)
    target_choices = np.stack([router.choose_indices(predicted, t) for t in targets])
    router_metrics, curve = _router_curve(ctx, targets, target_choices, data.models)
    default, default_choice = _default_point(router, data, ctx, predicted)
    router_metrics["ece"] = default["ece"]
    learned, versus = {}, {}
    if training is not None and baselines:
        X_train = train_embeddings if train_embeddings is not None else embedder.encode(training.prompts)
        learned = _learned_baselines(router, ctx, X_test, training, X_train, predicted.costs, default["mean_cost"],
                                     baselines, log)
        versus = versus_baselines(ctx, target_choices, {k: v.pop("choices") for k, v in learned.items()},
                                  resamples=paired_resamples, log=log)
    n, models = len(data), data.models
    return {
        "router_version": router.version,
        "source": source,
        "pricing": data.pricing,
        "prompts": n,
        "eval_set": evaluation_set(data, source),
        "prompts_skipped_incomplete": skipped["incomplete"],
        "prompts_skipped_in_training": skipped["in_training"],
        "noisy": n < metrics.NOISY_BELOW,
        "models": models,
        "strong_model": models[ctx.strong] if ctx.strong is not None else None,
        "default": default,
        "metrics": router_metrics,
        "baselines": _baselines(ctx, models, learned, baselines),
        "versus_baselines": versus,
        "tasks": _task_slices(data, ctx, target_choices, default_choice),
        "curve": curve,
    }


def evaluation_set(data: RoutingData, source: str) -> dict:
    """What identifies the prompts an evaluation measured: their fingerprint
    (`evaluation_set_hash`), its 12-character short form (the name MLflow keys use), how
    many prompts and where they came from."""
    sha = evaluation_set_hash(data)
    return {"sha256": sha, "id": sha[:SET_ID_CHARS], "prompts": len(data), "source": source}


def _checked_sweep(router, targets) -> list[float]:
    """The quality targets to sweep (default: `sweep_targets`), sorted, at least two distinct."""
    targets = sorted({check_quality_target(t) for t in (sweep_targets(router) if targets is None else targets)})
    if len(targets) < 2:
        raise ConfigError(f"quality_target sweep: expected at least 2 distinct targets, found {targets}")
    return targets


def _evaluation_prompts(data: RoutingData, router_models: list[str], training: RoutingData | None,
                        source: str) -> tuple[RoutingData, dict]:
    """The prompts to score, in the router's model order: those with every model's outcome that
    the router was not trained on; and how many of each kind were skipped."""
    data = align_to_router(data, router_models, source)
    skipped = {"incomplete": int((~data.complete).sum()), "in_training": 0}
    keep = data.complete
    if training is not None:
        seen = set(training.prompt_ids)
        overlap = np.array([pid in seen for pid in data.prompt_ids], dtype=bool)
        skipped["in_training"] = int((overlap & keep).sum())
        keep = keep & ~overlap
    if keep.sum() == 0:
        raise ConfigError(f"{source}: no prompt left to evaluate: every prompt lacks some model's outcome "
                          "or was used to train the router")
    return data.subset(np.flatnonzero(keep)), skipped


def _shares(choice: np.ndarray, models: list[str]) -> dict[str, float]:
    """The share of prompts routed to each model."""
    return {m: float((choice == j).mean()) for j, m in enumerate(models)}


def _router_curve(ctx: _Context, targets: list[float], target_choices: np.ndarray,
                  models: list[str]) -> tuple[dict, list[dict]]:
    """The router's curve metrics and one point per target (cost, quality, route mix)."""
    router_metrics, points, share = ctx.curve_metrics(target_choices)
    curve = []
    for i, t in enumerate(targets):
        entry = {"quality_target": t, "mean_cost": float(points[i, 0]), "quality": float(points[i, 1]),
                 "share": _shares(target_choices[i], models)}
        if share is not None:
            entry["strong_share"] = float(share[i])
        curve.append(entry)
    return router_metrics, curve


def _default_point(router, data: RoutingData, ctx: _Context, predicted) -> tuple[dict, np.ndarray]:
    """The router at its default target (quality, cost, route mix, calibration), and its choices."""
    default_t = router.default_quality_target
    choice = router.choose_indices(predicted, default_t)
    rows = np.arange(len(data))
    ece, reliability = ctx.ece(predicted.proba, choice)
    return {
        "quality_target": default_t,
        "quality": float(data.scores[rows, choice].mean()),
        "mean_cost": float(data.costs[rows, choice].mean()),
        "share": _shares(choice, data.models),
        "ece": ece,
        "reliability": reliability,
    }, choice


def _baselines(ctx: _Context, models: list[str], learned: dict, baselines) -> dict:
    """The fixed baselines (cheapest, best, oracle, each model, random mixing) beside the learned ones."""
    singles = ctx.singles
    cheapest = int(np.argmin(singles[:, 0]))
    best = int(np.lexsort((singles[:, 0], -singles[:, 1]))[0])
    return {
        "always_cheapest": {"model": models[cheapest], "mean_cost": float(singles[cheapest, 0]), "quality": float(singles[cheapest, 1])},
        "always_best": {"model": models[best], "mean_cost": float(singles[best, 0]), "quality": float(singles[best, 1])},
        "oracle": {"mean_cost": float(ctx.oracle_point[0]), "quality": float(ctx.oracle_point[1])},
        "single_models": {m: {"mean_cost": float(singles[j, 0]), "quality": float(singles[j, 1])} for j, m in enumerate(models)},
        "random_mixing": {
            "aiq": ctx.aiq_zero, "gap_closed": 0.0,
            "cost_to_match_best": metrics.cost_to_match(singles, singles),
            "quality_at_best_cost": metrics.quality_at_best_cost(singles, singles),
            **({"apgr": 0.5, "cpt50": 0.5, "cpt80": 0.8} if ctx.strong is not None else {}),
        },
        "learned": learned,
        "learned_skipped": None if learned or not baselines else
        "the router's training prompts are unknown (pass --train-outcomes)",
    }


def comparison_rows(report: dict) -> list[tuple[str, dict]]:
    """(label, metrics) for the router and every baseline, in table order."""
    rows = [(f"router {report['router_version']}", report["metrics"])]
    rows += [(b["label"], b["metrics"]) for b in report["baselines"]["learned"].values()]
    rows.append(("random mixing", report["baselines"]["random_mixing"]))
    return rows


def fmt(value, spec=".4f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def metrics_table(rows: list[tuple[str, dict]], two_models: bool) -> str:
    """A Markdown table of curve metrics, one row per router or baseline."""
    keys = [k for k in METRIC_KEYS if two_models or k not in ("apgr", "cpt50", "cpt80")]
    titles = {"aiq": "AIQ", "gap_closed": "gap closed", "cost_to_match_best": "cost to match best",
              "quality_at_best_cost": "quality at best's cost", "apgr": "APGR", "cpt50": "CPT(50%)",
              "cpt80": "CPT(80%)", "ece": "ECE"}
    lines = ["| router | " + " | ".join(titles[k] for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for label, m in rows:
        lines.append(f"| {label} | " + " | ".join(fmt(m.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def matched_quality_line(report: dict) -> str:
    """What routing saves at the best single model's quality, in one sentence."""
    best = report["baselines"]["always_best"]
    share = report["metrics"].get("cost_to_match_best")
    if share is None or not math.isfinite(share) or share >= 1.0:
        return (f"at matched quality: the router does not reach {best['model']}'s quality ({best['quality']:.4f}) "
                "for less than its cost on these prompts")
    return (f"at matched quality: the router reaches {best['model']}'s quality ({best['quality']:.4f}) at "
            f"{share:.0%} of its cost, a saving of {1 - share:.0%}")


def format_report(report: dict) -> str:
    """The plain-text summary the CLI prints."""
    lines = []
    skipped = []
    if report["prompts_skipped_incomplete"]:
        skipped.append(f"{report['prompts_skipped_incomplete']} without every model's outcome")
    if report.get("prompts_skipped_in_training"):
        skipped.append(f"{report['prompts_skipped_in_training']} used in training")
    eval_set = report.get("eval_set")
    lines.append(f"router {report['router_version']} on {report['prompts']} prompts{metrics.noisy_note(report['prompts'])}"
                 + (f" (skipped: {', '.join(skipped)})" if skipped else "")
                 + (f", evaluation set {eval_set['id']}" if eval_set else ""))
    lines.append(f"{'':32s} {'quality':>8s} {'cost/prompt':>12s}")
    d, b = report["default"], report["baselines"]
    lines.append(f"{'router @ target ' + format(d['quality_target'], 'g'):32s} {d['quality']:8.4f} {d['mean_cost']:12.3g}")
    lines.append(f"{'always cheapest (' + b['always_cheapest']['model'][:14] + ')':32s} {b['always_cheapest']['quality']:8.4f} {b['always_cheapest']['mean_cost']:12.3g}")
    lines.append(f"{'always best (' + b['always_best']['model'][:18] + ')':32s} {b['always_best']['quality']:8.4f} {b['always_best']['mean_cost']:12.3g}")
    lines.append(f"{'oracle':32s} {b['oracle']['quality']:8.4f} {b['oracle']['mean_cost']:12.3g}")
    lines.append("route share at the default target: " + ", ".join(f"{m} {s:.1%}" for m, s in d["share"].items()))
    lines.append(matched_quality_line(report))
    lines.append(f"costs: {report.get('pricing', 'logged cost per call')}")
    lines.append("")
    lines.append(metrics_table(comparison_rows(report), report["strong_model"] is not None))
    if b.get("learned_skipped"):
        lines.append(f"(learned baselines skipped: {b['learned_skipped']})")
    lines.extend(versus_lines(report.get("versus_baselines") or {}))
    return "\n".join(lines)


def versus_lines(versus: dict) -> list[str]:
    """The router against each learned baseline, paired on the same prompts (report["versus_baselines"])."""
    if not versus:
        return []
    lines = ["", "router minus each baseline, same prompts (paired bootstrap interval):"]
    for name, by_metric in versus.items():
        parts = []
        for metric, v in by_metric.items():
            verdict = "better" if v["lower"] > 0 else "worse" if v["upper"] < 0 else "within noise"
            parts.append(f"{metric} {v['difference']:+.4f} [{v['confidence']:.0%}: {v['lower']:+.4f}, "
                         f"{v['upper']:+.4f}] {verdict}")
        lines.append(f"  vs {BASELINE_LABELS.get(name, name):24s} " + "; ".join(parts))
    return lines
