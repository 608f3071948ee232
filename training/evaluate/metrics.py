"""Routing metrics, implemented exactly as defined in the project's metrics document.

Sources: AIQ and the zero router from RouterBench (Hu et al., arXiv 2403.12031); APGR
and CPT from RouteLLM (Ong et al., arXiv 2406.18665); expected calibration error from
Guo et al. 2017 (10 equal-width bins). The definitions, word for word, are in
`docs/metrics.md`.

A *point* is (mean cost, mean score) of one way of routing a set of prompts. Functions
here take arrays and return floats; they know nothing about routers or files.
Deliberately left out: bootstrapped confidence intervals (a later evaluation issue).
"""

from __future__ import annotations

import math

import numpy as np

NOISY_BELOW = 200  # fewer test prompts than this make a figure noisy, and reports say so


def upper_hull(points: np.ndarray) -> np.ndarray:
    """Vertices of the upper convex hull of (x, y) points, sorted by x."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]  # sorted by x, then y
    if len(pts) > 1:
        pts = pts[np.concatenate([[True], np.any(pts[1:] != pts[:-1], axis=1)])]  # each point once
    pts = pts.tolist()  # Python floats: a fast loop
    hull: list[list[float]] = []
    for p in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            # Drop the middle vertex when it lies on or below the chord to p.
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        if hull and hull[-1][0] == p[0]:  # same x: keep the higher y (unique sorts ascending)
            hull.pop()
        hull.append(p)
    return np.array(hull, dtype=float)


def nondecreasing_hull(points: np.ndarray) -> np.ndarray:
    """Upper hull made non-decreasing in quality: flat after its highest vertex."""
    hull = upper_hull(points)
    top = int(np.argmax(hull[:, 1]))
    return hull[: top + 1]


def _hull_value(hull: np.ndarray, x: float) -> float:
    """Quality of a non-decreasing hull at cost x (flat beyond its last vertex)."""
    if x <= hull[0, 0]:
        return float(hull[0, 1]) if x == hull[0, 0] else math.nan
    if x >= hull[-1, 0]:
        return float(hull[-1, 1])
    return float(np.interp(x, hull[:, 0], hull[:, 1]))


def aiq(points: np.ndarray, single_points: np.ndarray) -> float:
    """RouterBench's AIQ of a set of routing points.

    points: (k, 2) (cost, quality) of the router's sweep; single_points: (m, 2) of the
    single models. The cheapest and the dearest single model are added, the upper
    convex hull is taken and made non-decreasing, and its area over the single models'
    cost range is divided by the range's width.
    """
    single = np.asarray(single_points, dtype=float)
    lo_i, hi_i = int(np.argmin(single[:, 0])), int(np.argmax(single[:, 0]))
    lo, hi = single[lo_i, 0], single[hi_i, 0]
    if hi <= lo:
        raise ValueError("AIQ needs single models of different costs")
    pts = np.vstack([np.asarray(points, dtype=float).reshape(-1, 2), single[[lo_i, hi_i]]])
    hull = nondecreasing_hull(pts)
    xs = hull[:, 0]
    grid = np.concatenate([[lo], xs[(xs > lo) & (xs < hi)], [hi]])
    # the hull's quality at each grid cost: flat beyond its last vertex, undefined left of its first
    values = np.where(grid < hull[0, 0], math.nan, np.interp(grid, hull[:, 0], hull[:, 1]))
    if np.isnan(values[0]):  # hull starts right of lo: impossible, the cheapest point is in it
        raise ValueError("hull does not cover the cheapest model's cost")
    return float(np.trapezoid(values, grid) / (hi - lo))


def zero_router_aiq(single_points: np.ndarray) -> float:
    """AIQ of random mixing between single models (the hull of the single points)."""
    return aiq(single_points, single_points)


def oracle_aiq(single_points: np.ndarray, oracle_point: np.ndarray) -> float:
    return aiq(np.vstack([single_points, np.reshape(oracle_point, (1, 2))]), single_points)


def gap_closed(aiq_router: float, aiq_zero: float, aiq_oracle: float) -> float:
    """(AIQ_router - AIQ_zero) / (AIQ_oracle - AIQ_zero): 0 = random mixing, 1 = oracle."""
    span = aiq_oracle - aiq_zero
    return float((aiq_router - aiq_zero) / span) if span > 0 else math.nan


def cost_to_match(points: np.ndarray, single_points: np.ndarray) -> float:
    """On the router's non-decreasing hull, the lowest cost reaching the best single model's
    quality, divided by that model's cost; NaN if the hull never reaches it."""
    single = np.asarray(single_points, dtype=float)
    best = single[np.lexsort((single[:, 0], -single[:, 1]))[0]]  # highest quality, cheapest on ties
    lo_i, hi_i = int(np.argmin(single[:, 0])), int(np.argmax(single[:, 0]))
    hull = nondecreasing_hull(np.vstack([np.asarray(points, dtype=float).reshape(-1, 2), single[[lo_i, hi_i]]]))
    reach = np.flatnonzero(hull[:, 1] >= best[1] - 1e-12)
    if len(reach) == 0:
        return math.nan
    i = int(reach[0])
    if i == 0:
        x = hull[0, 0]
    else:
        (x1, y1), (x2, y2) = hull[i - 1], hull[i]
        x = x1 + (best[1] - y1) * (x2 - x1) / (y2 - y1)
    return float(x / best[0]) if best[0] > 0 else math.nan


def quality_at_best_cost(points: np.ndarray, single_points: np.ndarray) -> float:
    """The router hull's quality at the best single model's mean cost."""
    single = np.asarray(single_points, dtype=float)
    best = single[np.lexsort((single[:, 0], -single[:, 1]))[0]]
    lo_i, hi_i = int(np.argmin(single[:, 0])), int(np.argmax(single[:, 0]))
    hull = nondecreasing_hull(np.vstack([np.asarray(points, dtype=float).reshape(-1, 2), single[[lo_i, hi_i]]]))
    return _hull_value(hull, float(best[0]))


def pgr_curve(strong_share: np.ndarray, quality: np.ndarray, weak: float, strong: float) -> tuple[np.ndarray, np.ndarray]:
    """RouteLLM's curve: (0, weak), the sweep points sorted by share, (1, strong), as PGR."""
    if strong == weak:
        raise ValueError("APGR is undefined when the weak and strong models score the same")
    c = np.concatenate([[0.0], np.asarray(strong_share, dtype=float), [1.0]])
    y = np.concatenate([[weak], np.asarray(quality, dtype=float), [strong]])
    order = np.lexsort((y, c))
    return c[order], (y[order] - weak) / (strong - weak)


def apgr(strong_share: np.ndarray, quality: np.ndarray, weak: float, strong: float) -> float:
    """Area under PGR(c) for c in [0, 1], straight lines between points."""
    c, pgr = pgr_curve(strong_share, quality, weak, strong)
    return float(np.trapezoid(pgr, c))


def cpt(strong_share: np.ndarray, quality: np.ndarray, weak: float, strong: float, level: float) -> float:
    """Smallest share of strong calls at which PGR reaches `level` (0.5 for CPT(50%))."""
    c, pgr = pgr_curve(strong_share, quality, weak, strong)
    for i in range(len(c)):
        if pgr[i] >= level:
            if i == 0:
                return float(c[0])
            c1, p1, c2, p2 = c[i - 1], pgr[i - 1], c[i], pgr[i]
            return float(c1 + (level - p1) * (c2 - c1) / (p2 - p1))
    return math.nan


def expected_calibration_error(confidence: np.ndarray, success: np.ndarray, bins: int = 10) -> tuple[float, list[dict]]:
    """ECE over `bins` equal-width confidence bins, and the reliability table behind it."""
    confidence = np.asarray(confidence, dtype=float)
    success = np.asarray(success, dtype=float)
    if len(confidence) == 0:
        return math.nan, []
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        in_bin = index == b
        count = int(in_bin.sum())
        if count == 0:
            continue
        mean_conf, rate = float(confidence[in_bin].mean()), float(success[in_bin].mean())
        ece += count / len(confidence) * abs(mean_conf - rate)
        table.append({"bin": f"[{b / bins:.1f}, {(b + 1) / bins:.1f})", "count": count,
                      "mean_confidence": mean_conf, "success_rate": rate})
    return float(ece), table


def oracle_choice(scores: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Per prompt, the cheapest model that reaches the highest score any model got."""
    best = scores.max(axis=1, keepdims=True)
    reaching = scores >= best - 1e-12
    return np.argmin(np.where(reaching, costs, np.inf), axis=1)


def noisy_note(n: int) -> str:
    return f" (only {n} prompts: noisy)" if n < NOISY_BELOW else ""
