"""What the decision explorer shows, read from the audit database with aggregate SQL.

Every figure is one query over a time window of the `decisions` table (its `ts` index bounds
the scan) joined to the outcome of the model that served each request (the outcomes' primary
key): nothing loads the table into Python. The connection is read-only.

Definitions (docs/monitoring.md repeats them for the reader):

- **cost** of a request: the USD the gateway logged for its calls (`cost`), else the price
  list's estimate for the served model at the prompt's length (the serving router's
  `CostModel`: tokens = ceil(chars / chars_per_token), at least 1). Requests to a model the
  price list does not know and without a logged cost are counted as unpriced.
- **always the best model**: every request of the window sent to the model with the highest
  mean P(success) the router gave it over the window (its latest 100,000 requests); **always the cheapest**: to the
  model
  whose estimated total over the window is lowest. Both at the price list's estimates.
- **observed quality**: the mean reported outcome (score, else success as 1/0) of the served
  model over requests with one; **estimated quality**: the router's mean P(success) of the
  served model over every request, corrected by the mean of (observed - predicted) over
  requests with an outcome (an augmented estimate: unbiased when the outcomes that get
  reported are a random share of the traffic, and it uses every request, not only those).
- **latency percentiles**: nearest rank (the value at rank ceil(q n) of n sorted latencies), over
  the window's latest 100,000 requests.
- **novelty**: share of requests whose calibrated novelty is above 0.99 (about 0.01 while the
  traffic looks like the training data; router_ml.core.drift).

Deliberately left out: off-policy estimates of *other* routers (`router-ml evaluate --audit`
computes them; they need the prompt text and a reward model, not an aggregate query).
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from router_ml.core.catalog import CostModel
from router_ml.core.drift import EXPECTED_HIGH_SHARE, NOVELTY_HIGH
from router_ml.errors import AuditError

WINDOWS = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0, "all": math.inf}
DEFAULT_WINDOW = "24h"
PERCENTILES = (0.5, 0.9, 0.99)
PAGE_ROWS = 50
# Latency percentiles and the best model's mean P(success) read the window's latest SAMPLE decisions
# (a sort and a JSON parse per row: bounded, like the drift gauges); every other figure reads them all.
SAMPLE = 100_000
OUTCOME = "COALESCE(o.score, o.success)"  # a reported outcome as a number in [0, 1]
SERVED_OUTCOME = "LEFT JOIN outcomes o ON o.request_id = d.request_id AND o.model = d.model"
OUTCOME_FILTERS = ("any", "reported", "missing", "success", "failure")


def connect(path: str | Path) -> sqlite3.Connection:
    """The audit database, read-only (an AuditError names it when it is missing or not one)."""
    path = Path(path)
    if not path.is_file():
        raise AuditError(f"{path}: audit database not found")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10, check_same_thread=False)
    db.row_factory = sqlite3.Row
    return db


@dataclass(frozen=True)
class Window:
    """Decisions with since <= ts <= until; `name` is one of WINDOWS, anchored at the newest decision."""

    name: str
    since: float
    until: float

    @property
    def span(self) -> float:
        return self.until - self.since


def window_of(db: sqlite3.Connection, name: str = DEFAULT_WINDOW) -> Window | None:
    """The window `name` ending at the newest decision (so an old log still shows its last day);
    None when the log is empty."""
    if name not in WINDOWS:
        raise AuditError(f"window: expected one of {list(WINDOWS)}, found {name!r}", field="window")
    newest, oldest = db.execute("SELECT MAX(ts), MIN(ts) FROM decisions").fetchone()  # both from the ts index
    if newest is None:
        return None
    return Window(name, max(oldest, newest - WINDOWS[name]), newest)


def _tokens_sql(chars_per_token: float) -> str:
    """estimate_tokens (router_ml.core.catalog) in SQL: max(1, ceil(prompt_chars / chars_per_token))."""
    x = f"(d.prompt_chars / {float(chars_per_token)!r})"
    return f"MAX(1, CAST({x} AS INTEGER) + ({x} > CAST({x} AS INTEGER)))"


def _prices(cost_model: CostModel | None) -> dict[str, tuple[float, float]]:
    """model -> (fixed USD per call, USD per input token), as CostModel.estimate uses them."""
    if cost_model is None:
        return {}
    return {m: (float(f), float(t)) for m, f, t in zip(cost_model.models, cost_model._fixed, cost_model._per_token)}


SUMMED = ("requests", "logged_cost_rows", "logged_cost", "unlogged_tokens", "tokens", "predicted_rows", "predicted",
          "outcomes", "observed", "paired", "paired_observed", "paired_predicted", "explorations", "novelty_rows",
          "novelty_high", "fallbacks", "latency_rows", "latency")


def cells(db: sqlite3.Connection, window: Window, cost_model: CostModel | None, buckets: int = 24) -> list[dict]:
    """The window's sums per (time slice, router version, model), in one pass over the decisions'
    figures index: the overview, its timeline and the versions are all added up from these."""
    cpt = cost_model.chars_per_token if cost_model is not None else 4.0
    tokens = _tokens_sql(cpt)
    width = window.span / buckets if window.span > 0 else 1.0
    rows = db.execute(
        f"""SELECT MIN(CAST((d.ts - ?) / ? AS INTEGER), ?) AS bucket, d.router_version AS version, d.model AS model,
                   COUNT(*) AS requests, MIN(d.ts) AS first, MAX(d.ts) AS last,
                   COUNT(d.cost) AS logged_cost_rows, TOTAL(d.cost) AS logged_cost,
                   TOTAL(CASE WHEN d.cost IS NULL THEN {tokens} END) AS unlogged_tokens, TOTAL({tokens}) AS tokens,
                   COUNT(d.confidence) AS predicted_rows, TOTAL(d.confidence) AS predicted,
                   COUNT({OUTCOME}) AS outcomes, TOTAL({OUTCOME}) AS observed,
                   COUNT(CASE WHEN d.confidence IS NOT NULL THEN {OUTCOME} END) AS paired,
                   TOTAL(CASE WHEN d.confidence IS NOT NULL THEN {OUTCOME} END) AS paired_observed,
                   TOTAL(CASE WHEN {OUTCOME} IS NOT NULL THEN d.confidence END) AS paired_predicted,
                   TOTAL(d.exploration) AS explorations, COUNT(d.novelty) AS novelty_rows,
                   TOTAL(d.novelty > {NOVELTY_HIGH}) AS novelty_high, COUNT(d.fallback) AS fallbacks,
                   COUNT(d.latency_ms) AS latency_rows, TOTAL(d.latency_ms) AS latency
            FROM decisions d {SERVED_OUTCOME}
            WHERE d.ts >= ? AND d.ts <= ? GROUP BY bucket, d.router_version, d.model""",
        (window.since, width, buckets - 1, window.since, window.until)).fetchall()
    return [dict(r, width=width, buckets=buckets) for r in rows]


def _sum_by(rows: list[dict], *keys: str) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for r in rows:
        key = tuple(r[k] for k in keys)
        if key not in out:
            out[key] = {**{k: r[k] for k in keys}, **{k: 0 for k in SUMMED}, "first": r["first"], "last": r["last"]}
        o = out[key]
        for k in SUMMED:
            o[k] += r[k]
        o["first"], o["last"] = min(o["first"], r["first"]), max(o["last"], r["last"])
    return out


def overview(db: sqlite3.Connection, window: Window, cost_model: CostModel | None, buckets: int = 24,
             grouped: list[dict] | None = None) -> dict:
    """The overview's figures over `window` (see the module docstring for each definition);
    `grouped`: the window's `cells`, when the caller has them already."""
    grouped = cells(db, window, cost_model, buckets) if grouped is None else grouped
    span = (window.since, window.until)
    rows = sorted(_sum_by(grouped, "model").values(), key=lambda r: (-r["requests"], r["model"]))
    total = sum(r["requests"] for r in rows)
    prices = _prices(cost_model)
    models = []
    for r in rows:
        price = prices.get(r["model"])
        unlogged = r["requests"] - r["logged_cost_rows"]
        estimated = (price[0] * unlogged + price[1] * r["unlogged_tokens"]) if price else 0.0
        models.append({
            "model": r["model"], "requests": r["requests"], "share": r["requests"] / total,
            "cost": r["logged_cost"] + estimated, "logged_cost_rows": r["logged_cost_rows"],
            "unpriced": 0 if price else unlogged,
            "predicted": r["predicted"] / r["predicted_rows"] if r["predicted_rows"] else None,
            "outcomes": r["outcomes"], "observed": r["observed"] / r["outcomes"] if r["outcomes"] else None,
            "drift": ((r["paired_observed"] - r["paired_predicted"]) / r["paired"]) if r["paired"] else None,
            "paired": r["paired"], "explorations": int(r["explorations"]), "fallbacks": r["fallbacks"],
        })
    if not total:
        return {"window": window, "requests": 0, "models": []}
    sums = {k: sum(r[k] for r in rows) for k in ("tokens", "predicted_rows", "predicted", "outcomes", "observed",
                                                 "paired", "paired_observed", "paired_predicted", "novelty_rows",
                                                 "novelty_high", "explorations", "fallbacks")}
    return {
        "window": window,
        "requests": total,
        "models": models,
        "cost": _costs(db, window, models, prices, sums["tokens"], total),
        "quality": _quality(sums),
        "timeline": _timeline(window, grouped, buckets),
        "latency": _latency(db, window),
        "fallbacks": [dict(r) for r in db.execute(
            "SELECT d.fallback AS fallback_reason, COUNT(*) AS requests FROM decisions d WHERE d.ts >= ? AND d.ts <= ? "
            "AND d.fallback IS NOT NULL GROUP BY d.fallback ORDER BY requests DESC, d.fallback LIMIT 20", span)],
        "fallback_requests": sums["fallbacks"],
        "escalations": [dict(r) for r in db.execute(
            "SELECT COALESCE(json_extract(s.value, '$.check'), 'check') AS check_name, COUNT(*) AS escalated "
            "FROM decisions d INDEXED BY decisions_cascaded_ts, json_each(d.steps) s "
            "WHERE d.ts >= ? AND d.ts <= ? AND d.steps IS NOT NULL "
            "AND json_extract(s.value, '$.outcome') = 'check_failed' GROUP BY check_name ORDER BY escalated DESC, check_name",
            span)],
        "rules": [dict(r) for r in db.execute(
            "SELECT d.rule AS rules, COUNT(*) AS requests FROM decisions d WHERE d.ts >= ? AND d.ts <= ? "
            "AND d.rule IS NOT NULL GROUP BY d.rule ORDER BY requests DESC, d.rule LIMIT 10", span)],
        "explorations": int(sums["explorations"]),
        "novelty": {"requests": sums["novelty_rows"], "expected": EXPECTED_HIGH_SHARE,
                    "high_share": sums["novelty_high"] / sums["novelty_rows"] if sums["novelty_rows"] else None},
    }


def _costs(db, window: Window, models: list[dict], prices: dict, tokens: float, total: int) -> dict:
    """The window's cost against sending every request to one model (the best, the cheapest)."""
    served = sum(m["cost"] for m in models)
    out = {"served": served, "unpriced": sum(m["unpriced"] for m in models), "best": None, "cheapest": None,
           "best_model": None, "cheapest_model": None}
    if not prices:
        return out
    always = {m: fixed * total + per_token * tokens for m, (fixed, per_token) in prices.items()}
    cheapest = min(always, key=lambda m: (always[m], m))
    names = list(prices)
    columns = ", ".join(f"AVG(json_extract(d.scores, ?)) AS c{i}" for i in range(len(names)))
    mean_p = db.execute(f"SELECT {columns} FROM (SELECT scores FROM decisions WHERE ts >= ? AND ts <= ? "
                        "ORDER BY ts DESC LIMIT ?) d",
                        (*[f'$."{m}"' for m in names], window.since, window.until, SAMPLE)).fetchone()
    believed = {m: p for m, p in zip(names, mean_p) if p is not None}
    best = max(believed, key=lambda m: (believed[m], m)) if believed else max(always, key=lambda m: (always[m], m))
    out.update(best_model=best, best=always[best], cheapest_model=cheapest, cheapest=always[cheapest],
               best_mean_p=believed.get(best), always=always)
    return out


def _quality(s: dict) -> dict:
    predicted = s["predicted"] / s["predicted_rows"] if s["predicted_rows"] else None
    observed = s["observed"] / s["outcomes"] if s["outcomes"] else None
    correction = (s["paired_observed"] - s["paired_predicted"]) / s["paired"] if s["paired"] else None
    if predicted is not None and correction is not None:
        estimated, how = min(1.0, max(0.0, predicted + correction)), "augmented"
    elif observed is not None:
        estimated, how = observed, "observed"
    else:
        estimated, how = predicted, "predicted"
    return {"predicted": predicted, "predicted_rows": s["predicted_rows"], "observed": observed,
            "outcomes": s["outcomes"], "correction": correction, "estimated": estimated, "estimated_from": how}


def _timeline(window: Window, grouped: list[dict], buckets: int) -> dict:
    """Requests per model in `buckets` equal slices of the window."""
    counts: dict[str, list[int]] = {}
    for r in grouped:
        counts.setdefault(r["model"], [0] * buckets)[r["bucket"]] += r["requests"]
    width = window.span / buckets if window.span > 0 else 1.0
    return {"since": window.since, "width": width, "buckets": buckets, "counts": counts}


def _latency(db, window: Window) -> dict:
    """Percentiles over the window's latest SAMPLE latencies (all of them in a smaller window)."""
    latest = ("SELECT latency_ms FROM decisions WHERE ts >= ? AND ts <= ? AND latency_ms IS NOT NULL "
              "ORDER BY ts DESC LIMIT ?")
    span = (window.since, window.until, SAMPLE)
    n = db.execute(f"SELECT COUNT(*) FROM ({latest})", span).fetchone()[0]
    if not n:
        return {"requests": 0}
    ranks = {q: max(1, math.ceil(q * n)) for q in PERCENTILES}
    marks = ", ".join("?" * len(ranks))
    found = dict(db.execute(
        "SELECT rank, latency_ms FROM (SELECT latency_ms, ROW_NUMBER() OVER (ORDER BY latency_ms) AS rank "
        f"FROM ({latest})) WHERE rank IN ({marks})", (*span, *ranks.values())).fetchall())
    return {"requests": n, "sampled": n == SAMPLE, **{f"p{round(q * 100)}": found[rank] for q, rank in ranks.items()}}


def versions(db: sqlite3.Connection, window: Window, cost_model: CostModel | None,
             grouped: list[dict] | None = None) -> list[dict]:
    """Each router version's traffic in the window, side by side (newest first), and its shadow's agreement."""
    grouped = cells(db, window, cost_model) if grouped is None else grouped
    prices = _prices(cost_model)
    out: dict[str, dict] = {}
    for r in _sum_by(grouped, "version", "model").values():
        v = out.setdefault(r["version"], {"version": r["version"], "requests": 0, "first": r["first"],
                                          "last": r["last"], "models": {}, "cost": 0.0, "unpriced": 0,
                                          "predicted_rows": 0, "predicted": 0.0, "outcomes": 0, "observed": 0.0,
                                          "latency_rows": 0, "latency": 0.0})
        v["requests"] += r["requests"]
        v["first"], v["last"] = min(v["first"], r["first"]), max(v["last"], r["last"])
        v["models"][r["model"]] = r["requests"]
        price = prices.get(r["model"])
        unlogged = r["requests"] - r["logged_cost_rows"]
        v["cost"] += r["logged_cost"] + (price[0] * unlogged + price[1] * r["unlogged_tokens"] if price else 0.0)
        v["unpriced"] += 0 if price else unlogged
        for k in ("predicted_rows", "predicted", "outcomes", "observed", "latency_rows", "latency"):
            v[k] += r[k]
    shadows: dict[str, list[dict]] = {}
    for r in db.execute(
        "SELECT d.router_version AS version, json_extract(d.shadow, '$.version') AS shadow_version, "
        "COUNT(*) AS requests, TOTAL(json_extract(d.shadow, '$.model') = COALESCE(d.planned_model, d.model)) AS agree "
        "FROM decisions d WHERE d.ts >= ? AND d.ts <= ? AND d.shadow IS NOT NULL "
        "GROUP BY d.router_version, shadow_version",
        (window.since, window.until)):
        shadows.setdefault(r["version"], []).append(dict(r))
    result = []
    for v in sorted(out.values(), key=lambda v: -v["last"]):
        result.append({
            "version": v["version"], "requests": v["requests"], "first": v["first"], "last": v["last"],
            "shares": {m: n / v["requests"] for m, n in sorted(v["models"].items(), key=lambda kv: -kv[1])},
            "cost_per_request": v["cost"] / v["requests"], "unpriced": v["unpriced"],
            "predicted": v["predicted"] / v["predicted_rows"] if v["predicted_rows"] else None,
            "outcomes": v["outcomes"], "observed": v["observed"] / v["outcomes"] if v["outcomes"] else None,
            "latency_mean": v["latency"] / v["latency_rows"] if v["latency_rows"] else None,
            "shadows": shadows.get(v["version"], []),
        })
    return result


@dataclass(frozen=True)
class Search:
    """The decision list's filters: `text` matches a request id's start, the model, the router
    version, the rule or the fallback exactly or in part; `before` pages back (a ts)."""

    text: str = ""
    model: str = ""
    version: str = ""
    outcome: str = "any"
    before: float | None = None
    limit: int = PAGE_ROWS

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOME_FILTERS:
            raise AuditError(f"outcome: expected one of {list(OUTCOME_FILTERS)}, found {self.outcome!r}",
                             field="outcome")
        if not 1 <= self.limit <= 500:
            raise AuditError(f"limit: expected 1..500 rows, found {self.limit}", field="limit")


def decisions(db: sqlite3.Connection, search: Search) -> list[dict]:
    """The newest decisions that match `search` (newest first), each with its served model's outcome."""
    where, args = [], []
    if search.before is not None:
        where.append("d.ts < ?")
        args.append(search.before)
    if search.model:
        where.append("d.model = ?")
        args.append(search.model)
    if search.version:
        where.append("d.router_version = ?")
        args.append(search.version)
    if search.text:
        escaped = search.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("(d.request_id LIKE ? ESCAPE '\\' OR d.model = ? OR d.router_version = ? "
                     "OR d.rule LIKE ? ESCAPE '\\' OR d.fallback LIKE ? ESCAPE '\\')")
        args += [escaped + "%", search.text, search.text, f"%{escaped}%", f"%{escaped}%"]
    outcome = {"reported": f"{OUTCOME} IS NOT NULL", "missing": f"{OUTCOME} IS NULL",
               "success": f"{OUTCOME} >= 0.5", "failure": f"{OUTCOME} < 0.5"}.get(search.outcome)
    if outcome:
        where.append(outcome)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    rows = db.execute(
        f"""SELECT d.request_id, d.ts, d.router_version, d.model, d.confidence, d.quality_target, d.rule, d.fallback,
                   d.exploration, d.latency_ms, d.cost, d.prompt_chars, d.novelty, d.steps,
                   {OUTCOME} AS outcome
            FROM decisions d {SERVED_OUTCOME} {clause} ORDER BY d.ts DESC LIMIT ?""",
        (*args, search.limit)).fetchall()
    return [dict(r) for r in rows]


def request(db: sqlite3.Connection, request_id: str) -> dict | None:
    """One decision as logged (JSON columns as text) with every outcome reported for it; None if unknown."""
    row = db.execute("SELECT * FROM decisions WHERE request_id = ?", (request_id,)).fetchone()
    if row is None:
        return None
    out = dict(row)
    out["outcomes"] = [dict(r) for r in db.execute(
        "SELECT model, ts, score, success, cost, latency_ms, source FROM outcomes WHERE request_id = ? ORDER BY ts",
        (request_id,))]
    return out


def version_names(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute("SELECT DISTINCT router_version FROM decisions ORDER BY router_version")]


def model_names(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute("SELECT DISTINCT model FROM decisions ORDER BY model")]
