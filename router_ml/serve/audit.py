"""The audit trail's writer: every routing decision, and the outcomes reported for it, in SQLite
(the format and its readers: router_ml.core.audit_format).

    store = AuditStore("audit.sqlite")            # prompts kept as sha256 + length by default
    store.record(prompt, served, metadata)        # a Served from the service; never blocks for long
    store.record_outcome(request_id, model, success=True, cost=0.0012)
    store.export_jsonl("audit.jsonl")

Decisions go through a bounded queue to one writer thread that commits them in
batches (every `flush_interval` seconds or `batch_size` rows), so routing never waits on
the disk. `close()` (also run at normal interpreter exit) drains the queue, so no
decision returned to a caller is lost on a normal exit; a crash loses at most the rows
of the last unflushed interval, and the database stays readable (SQLite WAL, each batch
one transaction). If the queue is full because the disk is failing, new records are
counted as dropped (`stats()["dropped"]`) rather than blocking requests; the service
reports that in /metrics and /readyz.

Outcomes are written synchronously: they must name a known request id (else
`UnknownRequestError`), and a (request id, model) pair is recorded once (a repeat is a
`DuplicateOutcomeError`).

What is stored about a request (see `AuditStore` for the settings): the decision itself
(model, scores, reason, rules, steps, costs, timing); the prompt as a keyed digest
(HMAC-SHA256 under a per-deployment secret) and its length, or as text with
`prompt_storage="text"` (retraining from the log needs the text, or the prompts from an
offline log); request metadata per the metadata policy. Nothing else from the request
(headers, tokens, client address) is stored.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import queue
import sqlite3
import threading
import time
import weakref
from pathlib import Path

from router_ml.core.audit_format import (  # noqa: F401 - Outcome, read_joined, load_key, export_parquet: public here too
    COLUMNS,
    METADATA_OTHER,
    PROMPT_STORAGE,
    Outcome,
    create_schema,
    export_parquet,
    load_key,
    read_joined,
)
from router_ml.core.files import atomic_write_text
from router_ml.core.prompts import keyed_digest
from router_ml.errors import AuditError, AuditStorageError, DuplicateOutcomeError, UnknownRequestError
from router_ml.serve.record import Served

_SENTINEL = object()
_OPEN: weakref.WeakSet[AuditStore] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:  # a normal exit flushes every open store
    for store in list(_OPEN):
        store.close()


class AuditStore:
    """See the module docstring. Privacy settings:

    - `prompt_storage`: "hash" (the default: a keyed digest and the length) or "text";
    - `key_file`: the per-deployment secret of the keyed digests (HMAC-SHA256), by default
      `<database>.key`, created with mode 0600 on first use; `key_file=False` keeps
      unkeyed sha256 digests (not recommended: a guessable prompt is found by hashing
      candidates);
    - `metadata_keys`: request metadata keys stored as given; the values of other keys are
      stored as keyed digests (`metadata_other="hash"`, so they can still be grouped) or
      dropped ("drop"). None: every key as given with text storage, none with hashes;
    - `retain_text_days`: prompt text and metadata of decisions older than this are erased
      (the decisions and their outcomes stay).
    """

    def __init__(self, path: str | Path, *, prompt_storage: str = "hash", batch_size: int = 256,
                 flush_interval: float = 0.2, queue_size: int = 50_000, max_bytes: int | None = None,
                 key_file: str | Path | bool | None = None, metadata_keys=None, metadata_other: str = "hash",
                 retain_text_days: float | None = None) -> None:
        if prompt_storage not in PROMPT_STORAGE:
            raise AuditError(f"prompt_storage: expected one of {PROMPT_STORAGE}, found {prompt_storage!r}")
        if metadata_other not in METADATA_OTHER:
            raise AuditError(f"metadata_other: expected one of {METADATA_OTHER}, found {metadata_other!r}")
        if retain_text_days is not None and not retain_text_days > 0:
            raise AuditError(f"retain_text_days: expected a number of days > 0, found {retain_text_days!r}")
        self.path = Path(path)
        self.prompt_storage = prompt_storage
        self.key_file = None if key_file is False else Path(key_file or f"{self.path}.key")
        self.metadata_keys = None if metadata_keys is None else frozenset(metadata_keys)
        self.metadata_other = metadata_other
        self.retain_text_days = retain_text_days
        self._last_redaction = 0.0
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_bytes = max_bytes  # a cap on the database's size; past it writes fail as "disk full"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                create_schema(db)
                db.execute("CREATE TABLE IF NOT EXISTS _write_check (x INTEGER)")
                db.execute("DELETE FROM _write_check")
            self.key = load_key(self.key_file) if self.key_file is not None else None
            with self._connect() as db:
                db.execute("CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT)")
                digest = "sha256" if self.key is None else f"hmac-sha256 key {hashlib.sha256(self.key).hexdigest()[:16]}"
                db.execute("INSERT OR IGNORE INTO audit_meta VALUES ('prompt_digest', ?)", (digest,))
            self._redact_old(force=True)
        except sqlite3.Error as exc:
            raise AuditStorageError(f"{self.path}: cannot open the audit database for writing: {exc}") from exc
        except OSError as exc:
            raise AuditStorageError(f"{self.path}: cannot create the audit database: {exc}") from exc
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._pending: set[str] = set()  # request ids queued but not yet committed
        self._lock = threading.Lock()
        self._written = 0
        self._dropped = 0
        self._write_errors = 0
        self._last_error: str | None = None
        self._closed = False
        self._writer = threading.Thread(target=self._run, name="router-ml-audit-writer", daemon=True)
        self._writer.start()
        _OPEN.add(self)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        if self.max_bytes:
            page = db.execute("PRAGMA page_size").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {max(1, self.max_bytes // page)}")
        return db

    # -- decisions -----------------------------------------------------------------------

    def record(self, prompt: str, served: Served, metadata: dict | None = None) -> bool:
        """Queue a served decision for writing; False (and counted as dropped) if the queue is full."""
        if self._closed:
            raise AuditError(f"{self.path}: the audit store is closed")
        with self._lock:
            self._pending.add(served.request_id)
        try:  # the row is built by the writer thread: nothing but a queue put on the request's path
            self._queue.put((prompt, served, metadata or {}), timeout=0.05)
        except queue.Full:
            with self._lock:
                self._pending.discard(served.request_id)
                self._dropped += 1
            return False
        return True

    def _row(self, prompt: str, r: Served, metadata: dict) -> tuple:
        metadata = self.stored_metadata(metadata)
        return (r.request_id, r.ts, r.router_version, r.model, r.confidence, json.dumps(r.scores), r.quality_target,
                r.reason, r.rule, r.fallback, int(r.exploration), r.propensity, r.latency_ms,
                keyed_digest(prompt, self.key), len(prompt), prompt if self.prompt_storage == "text" else None,
                json.dumps(metadata) if metadata else None, json.dumps(r.steps) if r.steps is not None else None,
                r.cost, r.novelty)

    def stored_metadata(self, metadata: dict) -> dict:
        """Request metadata as this store keeps it (see the class docstring)."""
        if not metadata:
            return {}
        keep = self.metadata_keys
        if keep is None:
            keep = set(metadata) if self.prompt_storage == "text" else set()
        out = {}
        for name, value in metadata.items():
            if name in keep:
                out[name] = value
            elif self.metadata_other == "hash":
                out[name] = "hmac:" + keyed_digest(json.dumps(value, sort_keys=True, default=str), self.key)[:32]
        return out

    def _redact_old(self, force: bool = False) -> None:
        """Erase prompt text and metadata older than `retain_text_days` (at most once a minute)."""
        if self.retain_text_days is None or (not force and time.monotonic() - self._last_redaction < 60):
            return
        self._last_redaction = time.monotonic()
        cutoff = time.time() - self.retain_text_days * 86400
        with self._connect() as db:
            db.execute("UPDATE decisions SET prompt = NULL, metadata = NULL WHERE ts < ? "
                       "AND (prompt IS NOT NULL OR metadata IS NOT NULL)", (cutoff,))

    def _run(self) -> None:
        db = self._connect()
        batch: list = []
        stop = False
        while not stop or batch:
            deadline = time.monotonic() + self.flush_interval
            while not stop and len(batch) < self.batch_size:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _SENTINEL:
                    stop = True
                    self._queue.task_done()
                else:
                    try:
                        batch.append(self._row(*item))
                    except Exception as exc:  # noqa: BLE001 - one unwritable record must not stop the writer
                        self._queue.task_done()
                        with self._lock:
                            self._dropped += 1
                            self._pending.discard(item[1].request_id)
                            self._last_error = f"record {item[1].request_id}: {type(exc).__name__}: {exc}"
            if batch:
                if self._write(db, batch):
                    for _ in batch:
                        self._queue.task_done()
                    batch = []
                elif stop or self._closed:
                    for _ in batch:  # closing: one try per batch, then give up rather than hang; counted as dropped
                        self._queue.task_done()
                    with self._lock:
                        self._dropped += len(batch)
                    batch = []
                else:
                    time.sleep(min(1.0, self.flush_interval * 5))  # the disk is failing: retry later
            try:
                self._redact_old()
            except sqlite3.Error as exc:  # retention is retried next time; writing decisions goes on
                with self._lock:
                    self._last_error = f"retention: {type(exc).__name__}: {exc}"
        db.close()

    def _write(self, db: sqlite3.Connection, batch: list) -> bool:
        try:
            with db:
                db.executemany(f"INSERT OR IGNORE INTO decisions ({', '.join(COLUMNS)}) "
                               f"VALUES ({', '.join('?' * len(COLUMNS))})", batch)
        except sqlite3.Error as exc:
            with self._lock:
                self._write_errors += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
            return False
        with self._lock:
            self._written += len(batch)
            self._last_error = None
            for row in batch:
                self._pending.discard(row[0])
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued decision is committed; False on timeout."""
        if timeout is None:
            self._queue.join()
            return True
        end = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > end:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Drain the queue, commit, stop the writer. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_SENTINEL)
        self._writer.join()
        _OPEN.discard(self)

    def stats(self) -> dict:
        with self._lock:
            return {"queued": self._queue.qsize(), "written": self._written, "dropped": self._dropped,
                    "write_errors": self._write_errors, "last_error": self._last_error,
                    "healthy": self._last_error is None and not self._closed}

    # -- outcomes ------------------------------------------------------------------------

    def record_outcome(self, request_id: str, model: str, *, success: bool | None = None, score: float | None = None,
                       cost: float | None = None, latency_ms: float | None = None, source: str = "api",
                       known_models=None) -> None:
        """Store what happened when `model` answered `request_id` (synchronously)."""
        self.record_outcomes([Outcome(request_id, model, success, score, cost, latency_ms, source)],
                             known_models=known_models, single=True)

    def record_outcomes(self, outcomes: list[Outcome], *, known_models=None, single: bool = False) -> int:
        """Store several outcomes all or nothing: each is checked (a known model when `known_models`
        is given, a finite cost >= 0, a score in [0, 1], a routed request id, not reported before)
        and then all are written in one transaction. Errors name the item ("[2].cost")."""
        if not outcomes:
            raise AuditError("no outcomes given", field="body")
        checked = [outcome.checked("" if single else f"[{i}].", known_models) for i, outcome in enumerate(outcomes)]
        seen: dict[tuple, int] = {}
        for i, outcome in enumerate(checked):
            key = (outcome.request_id, outcome.model)
            if key in seen:
                raise DuplicateOutcomeError(f"items {seen[key]} and {i} report request {outcome.request_id!r} "
                                            f"for model {outcome.model!r} twice", field=f"[{i}].model")
            seen[key] = i
        with self._lock:
            pending = any(o.request_id in self._pending for o in checked)
        if pending:
            self.flush(timeout=10)
        where = (lambda i, name: name) if single else (lambda i, name: f"[{i}].{name}")
        db = self._connect()
        try:
            with db:
                for i, o in enumerate(checked):
                    if db.execute("SELECT 1 FROM decisions WHERE request_id = ?", (o.request_id,)).fetchone() is None:
                        # The client reads this: it names the request, not where the database is.
                        raise UnknownRequestError(f"request_id {o.request_id!r}: no routed request has this id in "
                                                  "the audit log", field=where(i, "request_id"))
                    try:
                        db.execute("INSERT INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                   (o.request_id, o.model, time.time(), o.score,
                                    None if o.success is None else int(o.success), o.cost, o.latency_ms, o.source))
                    except sqlite3.IntegrityError as exc:
                        raise DuplicateOutcomeError(f"request_id {o.request_id!r}: an outcome for model {o.model!r} "
                                                    "is already recorded", field=where(i, "model")) from exc
        except sqlite3.Error as exc:
            raise AuditStorageError(f"{self.path}: cannot write the outcome: {exc}") from exc
        finally:
            db.close()
        return len(checked)

    # -- reading -------------------------------------------------------------------------

    def decisions(self, since: float | None = None) -> list[dict]:
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM decisions WHERE ts >= ? ORDER BY ts", (since or 0.0,)).fetchall()
        return [dict(r) for r in rows]

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])

    def export_jsonl(self, path: str | Path, since: float | None = None) -> int:
        """Decisions with their outcomes, one JSON object per line (written atomically)."""
        rows = read_joined(self.path, since)
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
        return len(rows)


