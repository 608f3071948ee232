"""The audit log's format, below the service that writes it: the SQLite schema, the outcome
record, the secret of the keyed prompt digests, and the readers.

    decisions   one row per served request (router_ml.serve.record.Served, as the writer keeps it)
    outcomes    what happened when a model answered a request, (request_id, model) unique
    audit_meta  how prompts are digested

The writer is `router_ml.serve.audit.AuditStore` (the service's, with its queue and writer
thread); readers are retraining and evaluation (`router_ml.training`), `router-ml audit
export` and anyone with the database: `read_joined` reads a database or a folder written
by `export_parquet`, read-only.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from router_ml.core.validation import check_number, check_share
from router_ml.errors import AuditError

PROMPT_STORAGE = ("hash", "text")
SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    request_id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    router_version TEXT NOT NULL,
    model TEXT NOT NULL,
    confidence REAL,
    scores TEXT,
    quality_target REAL,
    reason TEXT,
    rule TEXT,
    fallback TEXT,
    exploration INTEGER NOT NULL DEFAULT 0,
    propensity REAL,
    latency_ms REAL,
    prompt_sha256 TEXT NOT NULL,
    prompt_chars INTEGER NOT NULL,
    prompt TEXT,
    metadata TEXT,
    steps TEXT,
    cost REAL,
    novelty REAL,
    propensities TEXT,
    planned_model TEXT,
    shadow TEXT,
    session TEXT,
    session_note TEXT
);
CREATE TABLE IF NOT EXISTS outcomes (
    request_id TEXT NOT NULL,
    model TEXT NOT NULL,
    ts REAL NOT NULL,
    score REAL,
    success INTEGER,
    cost REAL,
    latency_ms REAL,
    source TEXT,
    PRIMARY KEY (request_id, model)
);
CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts);
"""
# Indexes added after the first release (created in place on older databases by create_schema), for
# the decision explorer (router_ml.serve.explorer): its filters and lists of models and versions; the
# columns of its aggregates, so that a window's figures read this index alone and not the wide rows
# (prompt text, scores); and the cascaded decisions, so that escalations visit only those.
ADDED_INDEXES = """
CREATE INDEX IF NOT EXISTS decisions_model_ts ON decisions (model, ts);
CREATE INDEX IF NOT EXISTS decisions_version_ts ON decisions (router_version, ts);
CREATE INDEX IF NOT EXISTS decisions_ts_figures ON decisions (ts, model, router_version, request_id, prompt_chars,
    cost, confidence, latency_ms, novelty, exploration, fallback);
CREATE INDEX IF NOT EXISTS decisions_cascaded_ts ON decisions (ts) WHERE steps IS NOT NULL;
CREATE INDEX IF NOT EXISTS decisions_session ON decisions (session);
"""
COLUMNS = ("request_id", "ts", "router_version", "model", "confidence", "scores", "quality_target", "reason", "rule",
            "fallback", "exploration", "propensity", "latency_ms", "prompt_sha256", "prompt_chars", "prompt", "metadata",
            "steps", "cost", "novelty", "propensities", "planned_model", "shadow", "session", "session_note")
# Columns added after the first release, and their types: added in place to older databases.
# propensities: the serving policy's distribution over the models (JSON {model: p});
# planned_model: its choice before exploration; shadow: a shadow router's choice (JSON {version, model});
# session: the conversation a request is a turn of (as given with prompt storage "text", else
# a keyed digest); session_note: why the turn kept, or did not keep, the conversation's model.
ADDED_COLUMNS = {"steps": "TEXT", "cost": "REAL", "novelty": "REAL", "propensities": "TEXT", "planned_model": "TEXT",
                 "shadow": "TEXT", "session": "TEXT", "session_note": "TEXT"}


def create_schema(db: sqlite3.Connection) -> None:
    """Create the tables, or bring an older database's up to date in place (columns added since the
    first release); safe when several processes do it at once."""
    db.executescript(SCHEMA)
    columns = {row[1] for row in db.execute("PRAGMA table_info(decisions)")}
    for column, kind in ADDED_COLUMNS.items():
        if column in columns:
            continue
        try:
            db.execute(f"ALTER TABLE decisions ADD COLUMN {column} {kind}")
        except sqlite3.OperationalError as exc:  # another process migrated it first
            if "duplicate column" not in str(exc):
                raise
    db.executescript(ADDED_INDEXES)  # after the columns: safe on every version of the table


@dataclass(frozen=True)
class Outcome:
    """What happened when `model` answered routed request `request_id`."""

    request_id: str
    model: str
    success: bool | None = None
    score: float | None = None  # 0..1
    cost: float | None = None  # USD
    latency_ms: float | None = None
    source: str = "api"

    def checked(self, where: str = "", known_models=None) -> Outcome:
        """This outcome with its numbers validated, or an AuditError naming the field."""
        def fail(field: str, message: str):
            raise AuditError(f"{where}{field}: {message}", field=f"{where}{field}")

        if not isinstance(self.request_id, str) or not self.request_id:
            fail("request_id", f"expected the request_id a routing answer gave, found {self.request_id!r}")
        if not isinstance(self.model, str) or not self.model:
            fail("model", f"expected a model name, found {self.model!r}")
        if known_models is not None and self.model not in known_models:
            fail("model", f"{self.model!r} is not a model this service routes to ({', '.join(sorted(known_models))})")
        if self.success is None and self.score is None:
            fail("success", "an outcome needs success (true/false) or score (0..1)")
        if self.success is not None and not isinstance(self.success, bool):
            fail("success", f"expected true or false, found {self.success!r}")
        def error(field: str):
            return lambda message: AuditError(message, field=f"{where}{field}")

        return Outcome(
            self.request_id, self.model, self.success,
            None if self.score is None else check_share(self.score, f"{where}score", error=error("score")),
            None if self.cost is None else check_number(self.cost, f"{where}cost", error=error("cost"), unit=" (USD)"),
            None if self.latency_ms is None else check_number(self.latency_ms, f"{where}latency_ms",
                                                              error=error("latency_ms")),
            self.source,
        )


KEY_BYTES = 32
METADATA_OTHER = ("hash", "drop")


def load_key(path: str | Path, create: bool = True) -> bytes:
    """The audit log's secret for keyed prompt digests, from `path` (created, 0600, when missing)."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise AuditError(f"{path}: audit key file not found")
        import secrets
        import tempfile

        # Written privately, then linked into place: if several processes (serve --workers)
        # start at once, the first link wins and every process reads that one key.
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(KEY_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise AuditError(f"{path}: cannot read the audit key: {exc}") from exc
    if len(key) < 16:
        raise AuditError(f"{path}: an audit key needs at least 16 bytes, found {len(key)}")
    return key


def read_joined(path: str | Path, since: float | None = None) -> list[dict]:
    """Every decision with its outcomes (a list per decision), read-only; for export and retraining.
    `path` is the audit database, or a folder written by `export_parquet`."""
    path = Path(path)
    if path.is_dir():
        decisions, outcomes = _read_export(path, since)
    elif not path.is_file():
        raise AuditError(f"{path}: audit database not found")
    else:
        decisions, outcomes = _read_database(path, since)
    for d in decisions:
        d["scores"] = json.loads(d["scores"]) if d["scores"] else {}
        d["metadata"] = json.loads(d["metadata"]) if d["metadata"] else {}
        d["steps"] = json.loads(d["steps"]) if d.get("steps") else []
        d["propensities"] = json.loads(d["propensities"]) if d.get("propensities") else None
        d["shadow"] = json.loads(d["shadow"]) if d.get("shadow") else None
        d.setdefault("planned_model", None)
        d["exploration"] = bool(d["exploration"])
        d["outcomes"] = outcomes.get(d["request_id"], [])
    return decisions


def _read_database(path: Path, since: float | None) -> tuple[list[dict], dict[str, list[dict]]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        decisions = [dict(r) for r in db.execute("SELECT * FROM decisions WHERE ts >= ? ORDER BY ts", (since or 0.0,))]
        outcomes: dict[str, list[dict]] = {}
        for r in db.execute("SELECT * FROM outcomes"):
            outcomes.setdefault(r["request_id"], []).append({k: r[k] for k in r.keys() if k != "request_id"})
    except sqlite3.Error as exc:
        raise AuditError(f"{path}: not a readable audit database: {exc}") from exc
    finally:
        db.close()
    return decisions, outcomes


EXPORT_TABLES = ("decisions", "outcomes")


def _read_export(path: Path, since: float | None) -> tuple[list[dict], dict[str, list[dict]]]:
    import pandas as pd

    missing = [t for t in EXPORT_TABLES if not (path / t).is_dir()]
    if missing:
        raise AuditError(f"{path}: not an audit export (no {missing} folder; write one with router-ml audit export)")
    try:
        decisions = pd.read_parquet(path / "decisions")
        outcomes = pd.read_parquet(path / "outcomes")
    except Exception as exc:  # noqa: BLE001 - pyarrow's errors name the broken file
        raise AuditError(f"{path}: cannot read the audit export: {exc}") from exc
    if decisions.empty:  # an export of an empty database, or of a period without decisions
        return [], {}
    decisions = decisions.drop(columns=["day"], errors="ignore")
    if since is not None:
        decisions = decisions[decisions["ts"] >= since]
    decisions = decisions.sort_values("ts", kind="stable")
    clean = lambda v: None if isinstance(v, float) and v != v else v  # noqa: E731 - NaN (a missing value) -> None
    rows = [{k: clean(v) for k, v in r.items()} for r in decisions.to_dict("records")]
    joined: dict[str, list[dict]] = {}
    for r in outcomes.drop(columns=["day"], errors="ignore").to_dict("records"):
        joined.setdefault(r.pop("request_id"), []).append({k: clean(v) for k, v in r.items()})
    return rows, joined


def export_parquet(db_path: str | Path, out_dir: str | Path, since: float | None = None,
                   chunk_rows: int = 200_000) -> dict[str, int]:
    """Decisions and outcomes of the audit database as Parquet, partitioned by day (UTC), in `out_dir`:

        out_dir/decisions/day=2026-11-27/part-0.parquet    (columns as in the database)
        out_dir/outcomes/day=2026-11-27/part-0.parquet

    Read in chunks (the database may be large), written into a new folder beside `out_dir`
    and renamed into place when complete; an existing `out_dir` is never touched. Decisions
    from `since` (a Unix time) on; their outcomes whenever reported.
    """
    import tempfile

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    db_path, out_dir = Path(db_path), Path(out_dir)
    if not db_path.is_file():
        raise AuditError(f"{db_path}: audit database not found")
    if out_dir.exists():
        raise AuditError(f"{out_dir}: already exists; choose a new folder (an export never overwrites)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    counts = {}
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        queries = {"decisions": ("SELECT * FROM decisions WHERE ts >= ? ORDER BY ts", (since or 0.0,)),
                   "outcomes": ("SELECT o.* FROM outcomes o JOIN decisions d ON d.request_id = o.request_id "
                                "WHERE d.ts >= ? ORDER BY o.ts", (since or 0.0,))}
        arrow_types = {"INTEGER": pa.int64(), "REAL": pa.float64()}
        for table, (sql, args) in queries.items():
            counts[table] = 0
            # One schema from the database's declared types for every chunk: inferred per chunk, a
            # column that is all NULL in one chunk would be typed null and the parts would not read back.
            columns = db.execute(f"PRAGMA table_info({table})").fetchall()
            schema = pa.schema([(c[1], arrow_types.get(str(c[2]).upper(), pa.string())) for c in columns]
                               + [("day", pa.string())])
            for i, chunk in enumerate(pd.read_sql_query(sql, db, params=args, chunksize=chunk_rows)):
                chunk["day"] = pd.to_datetime(chunk["ts"], unit="s", utc=True).dt.strftime("%Y-%m-%d")
                pq.write_to_dataset(pa.Table.from_pandas(chunk, schema=schema, preserve_index=False),
                                    str(tmp / table), partition_cols=["day"],
                                    basename_template=f"part-{i}-{{i}}.parquet")
                counts[table] += len(chunk)
            (tmp / table).mkdir(exist_ok=True)  # an empty table is an empty folder, still readable
        tmp.rename(out_dir)
    except sqlite3.Error as exc:
        raise AuditError(f"{db_path}: not a readable audit database: {exc}") from exc
    finally:
        db.close()
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return counts
