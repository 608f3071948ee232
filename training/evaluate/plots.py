"""Plots of evaluation reports (PNG, matplotlib with the Agg backend: no display needed).

- `plot_curves`: cost–quality curves of the router and its baselines, with single models
  as labelled points, the oracle, random mixing (dashed hull) and the default target.
  For two models the x axis is the share of calls to the strong model (RouteLLM's).
- `plot_reliability`: mean confidence against observed success per confidence bin.
- `plot_route_mix`: how the route mix moves with `quality_target`.
- `plot_compare`: several routers' curves overlaid on the same prompts.
Every function takes a report dict (router_ml.training.evaluate.evaluation) and a path, and writes one file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _x_of(report: dict, entry: dict) -> float:
    return entry["strong_share"] if report.get("strong_model") else entry["mean_cost"]


def _single_x(report: dict, model: str, point: dict) -> float:
    if report.get("strong_model"):
        return 1.0 if model == report["strong_model"] else 0.0
    return point["mean_cost"]


def _axis_label(report: dict) -> str:
    return f"share of calls to {report['strong_model']}" if report.get("strong_model") else "mean cost per prompt (USD)"


def _draw_reference(ax, report: dict) -> None:
    singles = report["baselines"]["single_models"]
    xs = [_single_x(report, m, p) for m, p in singles.items()]
    ys = [p["quality"] for p in singles.values()]
    from router_ml.training.evaluate.metrics import nondecreasing_hull

    # Random mixing as AIQ counts it: the hull, flat once the best quality is reached.
    hull = nondecreasing_hull(np.column_stack([xs, ys]))
    hull = np.vstack([hull, [max(xs), hull[-1, 1]]])
    ax.plot(hull[:, 0], hull[:, 1], "--", color="grey", lw=1, label="random mixing")
    ax.scatter(xs, ys, color="black", zorder=5, s=25)
    for x, y, m in zip(xs, ys, singles):
        ax.annotate(m, (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    oracle = report["baselines"]["oracle"]
    if not report.get("strong_model"):
        ax.scatter([oracle["mean_cost"]], [oracle["quality"]], marker="*", s=120, color="gold",
                   edgecolor="black", zorder=6, label="oracle")
    else:
        ax.axhline(oracle["quality"], color="gold", lw=1, label="oracle quality")


def plot_curves(report: dict, path: str | Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    _draw_reference(ax, report)
    for baseline in report["baselines"]["learned"].values():
        pts = sorted((_x_of(report, p), p["quality"]) for p in baseline["curve"])
        ax.plot(*zip(*pts), lw=1.2, alpha=0.8, label=baseline["label"])
    pts = sorted((_x_of(report, p), p["quality"]) for p in report["curve"])
    ax.plot(*zip(*pts), lw=2.2, color="C3", label=f"router {report['router_version']}")
    d = report["default"]
    default = next(p for p in report["curve"] if p["quality_target"] == d["quality_target"])
    ax.scatter([_x_of(report, default)], [d["quality"]], color="C3", edgecolor="black", s=60, zorder=7,
               label=f"default target {d['quality_target']:g}")
    ax.set_xlabel(_axis_label(report))
    ax.set_ylabel("mean score")
    ax.set_title(f"Cost–quality on {report['prompts']} prompts")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def plot_reliability(report: dict, path: str | Path) -> Path:
    plt = _pyplot()
    table = report["default"]["reliability"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect calibration")
    if table:
        conf = [row["mean_confidence"] for row in table]
        rate = [row["success_rate"] for row in table]
        sizes = [20 + 200 * row["count"] / max(r["count"] for r in table) for row in table]
        ax.plot(conf, rate, "-", color="C0", lw=1)
        ax.scatter(conf, rate, s=sizes, color="C0", zorder=5, label="router (size = prompts in bin)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (predicted P(success) of the chosen model)")
    ax.set_ylabel("observed success rate")
    ax.set_title(f"Reliability at target {report['default']['quality_target']:g}: ECE {report['default']['ece']:.3f}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def plot_route_mix(report: dict, path: str | Path) -> Path:
    plt = _pyplot()
    curve = sorted(report["curve"], key=lambda p: p["quality_target"])
    targets = [p["quality_target"] for p in curve]
    shares = np.array([[p["share"][m] for m in report["models"]] for p in curve]).T
    fig, ax = plt.subplots(figsize=(7.5, 4))
    ax.stackplot(targets, shares, labels=report["models"], alpha=0.85)
    ax.axvline(report["default"]["quality_target"], color="black", lw=1, ls="--", label="default target")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("quality_target")
    ax.set_ylabel("share of prompts")
    ax.set_title("Route mix")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, path)


def plot_compare(reports: dict[str, dict], path: str | Path) -> Path:
    """Curves of several routers on the same prompts, with the shared reference points."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    first = next(iter(reports.values()))
    _draw_reference(ax, first)
    for i, (label, report) in enumerate(reports.items()):
        pts = sorted((_x_of(report, p), p["quality"]) for p in report["curve"])
        ax.plot(*zip(*pts), lw=2, color=f"C{i}", label=f"{label} (AIQ {report['metrics']['aiq']:.4f})")
    ax.set_xlabel(_axis_label(first))
    ax.set_ylabel("mean score")
    ax.set_title(f"Router versions on the same {first['prompts']} prompts")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.tight_layout()
        fig.savefig(tmp, dpi=110)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        fig.clear()
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path
