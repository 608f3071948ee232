"""Step 5: measure a router on held-out outcomes, at its default target and over a sweep.

Routes every evaluation prompt through the router's own policy (the same code path as
`route_batch`) at each `quality_target` of a sweep (see `sweep_targets`), prices each route with the logged
or catalog cost of the chosen model on that prompt, and scores it with that model's
logged score. Only prompts with outcomes for every model the router can choose are
scored (a route to an untried model has no known outcome); the report counts the rest.

Reported beside the router: each single model, always-cheapest, always-best (highest
mean score), the oracle (cheapest model reaching the best score on each prompt), and
random mixing through AIQ's zero router. Metric definitions: docs/metrics.md.
"""

from __future__ import annotations

import math

import numpy as np

from router_ml.errors import ConfigError
from router_ml.policy import check_quality_target
from training import metrics
from training.outcomes import RoutingData

DEFAULT_SWEEP = tuple(np.round(np.linspace(0.0, 1.0, 101), 4))


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
    order = [data.models.index(m) for m in router_models]
    return RoutingData(
        data.prompt_ids, data.prompts, data.tasks, list(router_models),
        data.scores[:, order], data.success[:, order], data.costs[:, order], data.cost_model,
    )


def _point(choice: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> tuple[float, float]:
    rows = np.arange(len(choice))
    return float(costs[rows, choice].mean()), float(scores[rows, choice].mean())


def sweep_targets(router) -> list[float]:
    """Steps of 0.01, plus the router's own schedule points and default target.

    The knob is uniform in held-out quality, so the last hundredth of it can span much of
    the cost range; the schedule's points are where decisions change, so including them
    traces the whole curve.
    """
    return sorted({*DEFAULT_SWEEP, *router.schedule.targets, router.default_quality_target})


def evaluate_router(router, data: RoutingData, targets=None, source: str = "evaluation outcomes") -> dict:
    """A JSON-able report of the router on `data` (see module docstring)."""
    targets = sorted({check_quality_target(t) for t in (sweep_targets(router) if targets is None else targets)})
    if len(targets) < 2:
        raise ConfigError(f"quality_target sweep: expected at least 2 distinct targets, found {targets}")
    data = align_to_router(data, router.models, source)
    complete = data.complete
    n_skipped = int((~complete).sum())
    if complete.sum() == 0:
        raise ConfigError(f"{source}: no prompt has outcomes for every router model")
    data = data.subset(np.flatnonzero(complete))
    scores, costs, models = data.scores, data.costs, data.models
    n = len(data)
    predicted = router.predict_scores(data.prompts)

    curve = []
    for t in targets:
        choice = router.choose_indices(predicted, t)
        cost, quality = _point(choice, scores, costs)
        curve.append({"quality_target": t, "mean_cost": cost, "quality": quality,
                      "share": {m: float((choice == j).mean()) for j, m in enumerate(models)}})
    points = np.array([[p["mean_cost"], p["quality"]] for p in curve])

    singles = np.column_stack([costs.mean(axis=0), scores.mean(axis=0)])
    cheapest = int(np.argmin(singles[:, 0]))
    best = int(np.lexsort((singles[:, 0], -singles[:, 1]))[0])
    oracle = metrics.oracle_choice(scores, costs)
    oracle_point = np.array(_point(oracle, scores, costs))

    default_t = router.default_quality_target
    choice = router.choose_indices(predicted, default_t)
    rows = np.arange(n)
    d_cost, d_quality = _point(choice, scores, costs)
    ece, reliability = metrics.expected_calibration_error(predicted.proba[rows, choice], data.success[rows, choice])

    aiq_router = metrics.aiq(points, singles)
    aiq_zero = metrics.zero_router_aiq(singles)
    aiq_oracle = metrics.oracle_aiq(singles, oracle_point)
    report = {
        "router_version": router.version,
        "prompts": n,
        "prompts_skipped_incomplete": n_skipped,
        "noisy": n < metrics.NOISY_BELOW,
        "models": models,
        "default": {
            "quality_target": default_t,
            "quality": d_quality,
            "mean_cost": d_cost,
            "share": {m: float((choice == j).mean()) for j, m in enumerate(models)},
            "ece": ece,
            "reliability": reliability,
        },
        "baselines": {
            "always_cheapest": {"model": models[cheapest], "mean_cost": float(singles[cheapest, 0]), "quality": float(singles[cheapest, 1])},
            "always_best": {"model": models[best], "mean_cost": float(singles[best, 0]), "quality": float(singles[best, 1])},
            "oracle": {"mean_cost": float(oracle_point[0]), "quality": float(oracle_point[1])},
            "single_models": {m: {"mean_cost": float(singles[j, 0]), "quality": float(singles[j, 1])} for j, m in enumerate(models)},
        },
        "metrics": {
            "aiq": aiq_router,
            "aiq_zero_router": aiq_zero,
            "aiq_oracle": aiq_oracle,
            "gap_closed": metrics.gap_closed(aiq_router, aiq_zero, aiq_oracle),
            "cost_to_match_best": metrics.cost_to_match(points, singles),
            "quality_at_best_cost": metrics.quality_at_best_cost(points, singles),
            "ece": ece,
        },
        "curve": curve,
    }
    if len(models) == 2:
        strong = int(np.argmax(singles[:, 0]))
        share = np.array([p["share"][models[strong]] for p in curve])
        weak_q, strong_q = float(singles[1 - strong, 1]), float(singles[strong, 1])
        if strong_q != weak_q:
            report["metrics"].update({
                "apgr": metrics.apgr(share, points[:, 1], weak_q, strong_q),
                "cpt50": metrics.cpt(share, points[:, 1], weak_q, strong_q, 0.5),
                "cpt80": metrics.cpt(share, points[:, 1], weak_q, strong_q, 0.8),
            })
    return report


def format_report(report: dict) -> str:
    """A short plain-text table of a report, for the CLI."""
    lines = []
    note = metrics.noisy_note(report["prompts"])
    lines.append(f"router {report['router_version']} on {report['prompts']} prompts{note}"
                 + (f" ({report['prompts_skipped_incomplete']} skipped: not every model tried)" if report["prompts_skipped_incomplete"] else ""))
    lines.append(f"{'':28s} {'quality':>8s} {'cost/prompt':>12s}")
    d = report["default"]
    lines.append(f"{'router @ target ' + format(d['quality_target'], 'g'):28s} {d['quality']:8.4f} {d['mean_cost']:12.3g}")
    b = report["baselines"]
    lines.append(f"{'always cheapest (' + b['always_cheapest']['model'][:12] + ')':28s} {b['always_cheapest']['quality']:8.4f} {b['always_cheapest']['mean_cost']:12.3g}")
    lines.append(f"{'always best (' + b['always_best']['model'][:16] + ')':28s} {b['always_best']['quality']:8.4f} {b['always_best']['mean_cost']:12.3g}")
    lines.append(f"{'oracle':28s} {b['oracle']['quality']:8.4f} {b['oracle']['mean_cost']:12.3g}")
    lines.append("route share at the default target: " + ", ".join(f"{m} {s:.1%}" for m, s in d["share"].items()))
    m = report["metrics"]
    extra = "".join(f", {k.upper()} {m[k]:.3f}" for k in ("apgr", "cpt50", "cpt80") if k in m and not math.isnan(m[k]))
    lines.append(
        f"AIQ {m['aiq']:.4g} (random mixing {m['aiq_zero_router']:.4g}, oracle {m['aiq_oracle']:.4g}), "
        f"gap closed {m['gap_closed']:.3f}, cost to match best {m['cost_to_match_best']:.3f}, "
        f"ECE {m['ece']:.3f}{extra}"
    )
    return "\n".join(lines)
