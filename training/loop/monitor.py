"""`router-ml monitor --audit AUDIT --router R`: drift and exploration over time, as text and a PNG.

What the service's Prometheus gauges show now (router_ml.core.drift), over the whole log:
per time bucket (an hour or a day), the requests, the share whose novelty is above 0.99
(about 1 % while traffic looks like the training data), each model's calibration drift
(observed success minus the P(success) the router gave the requests it served) with its
outcome count, and what exploration cost (the estimated extra USD of explored requests over
the policy's own choice, priced by the router's cost model from each prompt's length).
The text ends with the latest window's figures and what crosses the suggested alert
thresholds (docs/monitoring.md).

Rows are read with one query of the columns needed (no prompt text), so a log of a million
decisions takes seconds; `--router` restricts nothing unless `--only-router` says so (every
version served is shown, labelled), and prices the exploration.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from router_ml.core.drift import EXPECTED_HIGH_SHARE, NOVELTY_HIGH, drift_from_database
from router_ml.errors import AuditError

DRIFT_ALERT = 0.1  # |observed - predicted| worth an alert, with at least MIN_ALERT_OUTCOMES outcomes
MIN_ALERT_OUTCOMES = 200
NOVELTY_ALERT = 0.05  # share above NOVELTY_HIGH worth an alert (five times what training traffic shows)


def read_monitor_rows(path: str | Path, since: float | None = None,
                      router_version: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(decisions, outcomes of the served model) with the columns monitoring needs, read-only."""
    path = Path(path)
    if not path.is_file():
        raise AuditError(f"{path}: audit database not found")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        columns = {r[1] for r in db.execute("PRAGMA table_info(decisions)")}
        wanted = ["request_id", "ts", "router_version", "model", "confidence", "novelty", "exploration",
                  "prompt_chars"] + [c for c in ("planned_model",) if c in columns]
        where, args = ["ts >= ?"], [since or 0.0]
        if router_version is not None:
            where.append("router_version = ?")
            args.append(router_version)
        decisions = pd.read_sql_query(f"SELECT {', '.join(wanted)} FROM decisions WHERE {' AND '.join(where)}", db,
                                      params=args)
        outcomes = pd.read_sql_query(
            "SELECT o.request_id, o.score, o.success FROM outcomes o JOIN decisions d ON d.request_id = o.request_id "
            f"AND d.model = o.model WHERE {' AND '.join('d.' + w for w in where)}", db, params=args)
    except sqlite3.Error as exc:
        raise AuditError(f"{path}: not a readable audit database: {exc}") from exc
    finally:
        db.close()
    if "planned_model" not in decisions.columns:
        decisions["planned_model"] = None
    outcomes["observed"] = outcomes["score"].where(outcomes["score"].notna(), outcomes["success"].astype(float))
    return decisions, outcomes[["request_id", "observed"]]


def bucket_seconds(decisions: pd.DataFrame, bucket: str) -> int:
    if bucket == "hour":
        return 3600
    if bucket == "day":
        return 86400
    span = float(decisions["ts"].max() - decisions["ts"].min()) if len(decisions) else 0.0
    return 3600 if span < 3 * 86400 else 86400


def over_time(decisions: pd.DataFrame, outcomes: pd.DataFrame, router, bucket: str = "auto") -> dict:
    """Per bucket: requests, novelty share above 0.99, explored share and extra cost, each model's drift."""
    if decisions.empty:
        return {"bucket_seconds": 0, "buckets": []}
    seconds = bucket_seconds(decisions, bucket)
    frame = decisions.copy()
    frame["bucket"] = (frame["ts"] // seconds * seconds).astype(int)
    frame["extra_cost"] = _exploration_extra_cost(frame, router)
    joined = frame.merge(outcomes, on="request_id", how="inner")
    buckets = []
    for start, rows in frame.groupby("bucket", sort=True):
        novelty = rows["novelty"].astype(float)
        known = novelty.notna()
        served = joined[joined["bucket"] == start]
        models = {}
        for model, group in served.groupby("model"):
            ok = group["confidence"].notna() & group["observed"].notna()
            if ok.any():
                models[model] = {"outcomes": int(ok.sum()), "predicted": float(group.loc[ok, "confidence"].mean()),
                                 "observed": float(group.loc[ok, "observed"].mean())}
                models[model]["drift"] = models[model]["observed"] - models[model]["predicted"]
        buckets.append({
            "start": int(start), "requests": int(len(rows)),
            "novelty_high_share": float((novelty[known] > NOVELTY_HIGH).mean()) if known.any() else None,
            "explored_share": float(rows["exploration"].astype(bool).mean()),
            "exploration_extra_cost": float(np.nansum(rows["extra_cost"])),
            "versions": sorted(rows["router_version"].unique().tolist()), "models": models})
    return {"bucket_seconds": seconds, "buckets": buckets}


def _exploration_extra_cost(frame: pd.DataFrame, router) -> np.ndarray:
    """Estimated USD of each explored request above its planned model (NaN for others or unpriced models)."""
    out = np.full(len(frame), np.nan)
    explored = frame["exploration"].astype(bool).to_numpy() & frame["planned_model"].notna().to_numpy()
    if router is None or not explored.any():
        return out
    index = {m: j for j, m in enumerate(router.models)}
    costs = router.cost_model.estimate(frame["prompt_chars"].to_numpy()[explored])
    served = [index.get(m) for m in frame["model"].to_numpy()[explored]]
    planned = [index.get(m) for m in frame["planned_model"].to_numpy()[explored]]
    extra = [costs[i, s] - costs[i, p] if s is not None and p is not None else np.nan
             for i, (s, p) in enumerate(zip(served, planned))]
    out[explored] = extra
    return out


def alerts(latest) -> list[str]:
    """What in the latest window crosses the suggested thresholds."""
    out = []
    for item in latest.calibration:
        if item.outcomes >= MIN_ALERT_OUTCOMES and abs(item.drift) > DRIFT_ALERT:
            direction = "worse" if item.drift < 0 else "better"
            out.append(f"{item.model} does {direction} than the router believes: observed {item.observed:.3f} against "
                       f"predicted {item.predicted:.3f} over its latest {item.outcomes} outcomes (drift "
                       f"{item.drift:+.3f}, threshold {DRIFT_ALERT:g}): check the provider, then retrain")
    if latest.novelty_requests >= 100 and latest.novelty_high_share > NOVELTY_ALERT:
        out.append(f"{latest.novelty_high_share:.1%} of the latest {latest.novelty_requests} requests are more unusual "
                   f"than 99 % of the training data's held-out prompts (about {EXPECTED_HIGH_SHARE:.0%} expected, "
                   f"threshold {NOVELTY_ALERT:.0%}): traffic is moving away from what the router learned")
    return out


def monitor(audit: str | Path, router=None, *, since: float | None = None, bucket: str = "auto",
            png: str | Path | None = None, log: Callable[[str], None] = print) -> dict:
    """The monitoring report (module docstring); writes the PNG when asked."""
    decisions, outcomes = read_monitor_rows(audit, since)
    latest = drift_from_database(audit)
    report = {"audit": str(audit), "decisions": int(len(decisions)), "outcomes": int(len(outcomes)),
              "router": None if router is None else router.version, "latest": latest.to_dict(),
              "over_time": over_time(decisions, outcomes, router, bucket)}
    report["alerts"] = alerts(latest)
    if png is not None:
        plot_monitor(report, png)
        log(f"wrote {png}")
    return report


def format_monitor(report: dict) -> str:
    lines = [f"{report['audit']}: {report['decisions']} decisions, {report['outcomes']} outcomes of the served model"]
    seconds = report["over_time"]["bucket_seconds"]
    fmt = "%Y-%m-%d %H:00" if seconds == 3600 else "%Y-%m-%d"
    lines.append(f"{'period':16s} {'requests':>9s} {'novel>0.99':>10s} {'explored':>9s} {'extra $':>10s}  "
                 "calibration drift per model (outcomes)")
    for b in report["over_time"]["buckets"]:
        when = dt.datetime.fromtimestamp(b["start"], dt.UTC).strftime(fmt)
        share = "n/a" if b["novelty_high_share"] is None else f"{b['novelty_high_share']:.1%}"
        drift = ", ".join(f"{m} {v['drift']:+.3f} ({v['outcomes']})" for m, v in sorted(b["models"].items()))
        lines.append(f"{when:16s} {b['requests']:9d} {share:>10s} {b['explored_share']:9.1%} "
                     f"{b['exploration_extra_cost']:10.3g}  {drift or '-'}")
    latest = report["latest"]
    lines.append("")
    lines.append(f"latest {latest['novelty_requests']} requests: {latest['novelty_high_share']:.1%} above novelty 0.99 "
                 f"(about {latest['novelty_expected_share']:.0%} expected)")
    for c in latest["calibration"]:
        lines.append(f"  {c['model']}: observed {c['observed']:.3f}, predicted {c['predicted']:.3f}, drift "
                     f"{c['drift']:+.3f} ± {c['standard_error']:.3f} over {c['outcomes']} outcomes")
    lines += ["", "alerts:" if report["alerts"] else "no alert (thresholds: docs/monitoring.md)"]
    lines += [f"  - {a}" for a in report["alerts"]]
    return "\n".join(lines)


def plot_monitor(report: dict, path: str | Path) -> None:
    """Two panels over time: novelty share above 0.99, and each model's calibration drift."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from router_ml.core.files import atomic_write_bytes

    buckets = report["over_time"]["buckets"]
    when = [dt.datetime.fromtimestamp(b["start"], dt.UTC) for b in buckets]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(when, [math.nan if b["novelty_high_share"] is None else b["novelty_high_share"] for b in buckets],
             marker="o", label="share above novelty 0.99")
    top.axhline(EXPECTED_HIGH_SHARE, color="grey", linestyle=":", label="expected (training data)")
    top.axhline(NOVELTY_ALERT, color="red", linestyle="--", label="alert threshold")
    top.set_ylabel("novel requests")
    top.legend(loc="upper left", fontsize=8)
    models = sorted({m for b in buckets for m in b["models"]})
    for model in models:
        bottom.plot(when, [b["models"][model]["drift"] if model in b["models"] else math.nan for b in buckets],
                    marker=".", label=model)
    for level in (-DRIFT_ALERT, DRIFT_ALERT):
        bottom.axhline(level, color="red", linestyle="--", linewidth=0.8)
    bottom.axhline(0, color="grey", linewidth=0.5)
    bottom.set_ylabel("observed - predicted")
    bottom.legend(loc="upper left", fontsize=8, ncol=3)
    fig.suptitle(f"router-ml monitor: {Path(report['audit']).name}")
    fig.autofmt_xdate()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
