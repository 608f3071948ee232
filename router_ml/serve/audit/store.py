"""`AuditStore`: the audit database opened for writing, and the one object the service uses.

It opens (creating when missing) the database and its key, and hands each concern to its
module: decisions to the writer thread (writer.py), rows and retention to the storage
policy (storage.py), outcome reports to outcomes.py. Reading is router_ml.core.audit_format's
(`read_joined`); the few readers here are for the service and tests.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import os
import sqlite3
import stat
import time
import weakref
from pathlib import Path

from router_ml.core.audit_format import COLUMNS, Outcome, create_schema, load_key, read_joined
from router_ml.core.files import atomic_write_text
from router_ml.errors import AuditError, AuditStorageError
from router_ml.serve.audit.outcomes import checked_outcomes, write_outcomes
from router_ml.serve.audit.storage import StoragePolicy
from router_ml.serve.audit.writer import DecisionWriter
from router_ml.serve.record import Served

log = logging.getLogger("router_ml.serve")
_OPEN: weakref.WeakSet[AuditStore] = weakref.WeakSet()
PRIVATE = 0o600  # the database, its WAL and shared-memory files, and the key: the owner's alone
RETENTION_EVERY_S = 60  # how often the writer erases expired text (and once at opening)


@atexit.register
def _close_all() -> None:  # a normal exit flushes every open store
    for store in list(_OPEN):
        store.close()


class AuditStore:
    """The audit log of a service (router_ml.serve.audit). Privacy settings (storage.py):

    - `prompt_storage`: "hash" (the default: a keyed digest and the length) or "text" (the
      text as well);
    - `key_file`: the per-deployment secret of the keyed digests (HMAC-SHA256), by default
      the database's path with ".key" appended (audit.sqlite.key), created with mode 0600
      on first use; `key_file=False` keeps unkeyed sha256 digests (not recommended: a
      guessable prompt is found by hashing candidates);
    - `metadata_keys`: request metadata keys stored as given; the values of other keys are
      stored as keyed digests (`metadata_other="hash"`, so they can still be grouped) or
      dropped ("drop"). None: every key as given with text storage, none with hashes;
    - `retain_text_days`: prompt text and metadata of decisions older than this are erased
      (the decisions and their outcomes stay).

    Writing (writer.py): `batch_size`, `flush_interval` and `queue_size` shape the writer's
    batches and queue; `max_bytes` caps the database's size (past it writes fail as "disk
    full" and are retried, the store reports itself unhealthy).
    """

    def __init__(self, path: str | Path, *, prompt_storage: str = "hash", batch_size: int = 256,
                 flush_interval: float = 0.2, queue_size: int = 50_000, max_bytes: int | None = None,
                 key_file: str | Path | bool | None = None, metadata_keys=None, metadata_other: str = "hash",
                 retain_text_days: float | None = None) -> None:
        policy = StoragePolicy(prompt_storage, None, None if metadata_keys is None else frozenset(metadata_keys),
                               metadata_other, retain_text_days)  # checked before anything is created
        self.path = Path(path)
        self.key_file = None if key_file is False else Path(key_file or f"{self.path}.key")
        self.max_bytes = max_bytes
        self._last_retention = 0.0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _create_private(self.path)
            with self._connect() as db:
                create_schema(db)
                db.execute("CREATE TABLE IF NOT EXISTS _write_check (x INTEGER)")
                db.execute("DELETE FROM _write_check")
            key = load_key(self.key_file) if self.key_file is not None else None
            self.policy = dataclasses.replace(policy, key=key)
            with self._connect() as db:
                db.execute("CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT)")
                db.execute("INSERT OR IGNORE INTO audit_meta VALUES ('prompt_digest', ?)", (self.policy.digest,))
            self._erase_expired(force=True)
        except sqlite3.Error as exc:
            raise AuditStorageError(f"{self.path}: cannot open the audit database for writing: {exc}") from exc
        except OSError as exc:
            raise AuditStorageError(f"{self.path}: cannot create the audit database: {exc}") from exc
        # The writer calls back through the store (not bound methods fixed here), so that what a
        # batch is and how it is inserted stay the store's to define.
        self._writer = DecisionWriter(self._connect, lambda item: self.policy.row(*item),
                                      lambda db, rows: self._write(db, rows), batch_size=batch_size,
                                      flush_interval=flush_interval, queue_size=queue_size,
                                      after_batch=self._erase_expired)
        _OPEN.add(self)

    # -- settings, as given --------------------------------------------------------------

    @property
    def prompt_storage(self) -> str:
        return self.policy.prompt_storage

    @property
    def key(self) -> bytes | None:
        return self.policy.key

    @property
    def metadata_keys(self) -> frozenset[str] | None:
        return self.policy.metadata_keys

    @property
    def metadata_other(self) -> str:
        return self.policy.metadata_other

    @property
    def retain_text_days(self) -> float | None:
        return self.policy.retain_text_days

    @property
    def batch_size(self) -> int:
        return self._writer.batch_size

    @property
    def flush_interval(self) -> float:
        return self._writer.flush_interval

    def stored_metadata(self, metadata: dict) -> dict:
        """Request metadata as this store keeps it (see the class docstring)."""
        return self.policy.stored_metadata(metadata)

    # -- the database --------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        if self.max_bytes:
            page = db.execute("PRAGMA page_size").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {max(1, self.max_bytes // page)}")
        return db

    def _write(self, db: sqlite3.Connection, rows: list[tuple]) -> bool:
        """Insert a batch of decision rows in one transaction (an sqlite3.Error: not written)."""
        with db:
            db.executemany(f"INSERT OR IGNORE INTO decisions ({', '.join(COLUMNS)}) "
                           f"VALUES ({', '.join('?' * len(COLUMNS))})", rows)
        return True

    def _erase_expired(self, force: bool = False) -> None:
        """Retention (storage.py), at most once a minute unless forced."""
        if self.policy.retain_text_days is None:
            return
        if not force and time.monotonic() - self._last_retention < RETENTION_EVERY_S:
            return
        self._last_retention = time.monotonic()
        db = self._connect()
        try:
            self.policy.erase_expired(db)
        finally:
            db.close()

    # -- decisions -----------------------------------------------------------------------

    def record(self, prompt: str, served: Served, metadata: dict | None = None) -> bool:
        """Queue a served decision for writing; False (and counted as dropped) if the queue is full."""
        if self._writer.closed:
            raise AuditError(f"{self.path}: the audit store is closed")
        return self._writer.put(served.request_id, (prompt, served, metadata or {}))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued decision is committed; False on timeout."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        """Drain the queue, commit, stop the writer. Safe to call twice."""
        self._writer.close()
        _OPEN.discard(self)

    def stats(self) -> dict:
        """queued, written, dropped, write_errors, last_error, healthy (what /metrics and /readyz show)."""
        return self._writer.stats()

    # -- outcomes ------------------------------------------------------------------------

    def record_outcome(self, request_id: str, model: str, *, success: bool | None = None, score: float | None = None,
                       cost: float | None = None, latency_ms: float | None = None, source: str = "api",
                       known_models=None) -> None:
        """Store what happened when `model` answered `request_id` (synchronously)."""
        self.record_outcomes([Outcome(request_id, model, success, score, cost, latency_ms, source)],
                             known_models=known_models, single=True)

    def record_outcomes(self, outcomes: list[Outcome], *, known_models=None, single: bool = False) -> int:
        """Store several outcomes all or nothing (outcomes.py): each checked, then all written in one
        transaction. Errors name the item ("[2].cost"); AuditStorageError if the database fails."""
        checked = checked_outcomes(outcomes, known_models=known_models, single=single)
        if self._writer.any_pending(o.request_id for o in checked):
            self.flush(timeout=10)  # a decision answered a moment ago: let the writer commit it first
        db = self._connect()
        try:
            return write_outcomes(db, checked, single=single)
        except sqlite3.Error as exc:
            raise AuditStorageError(f"{self.path}: cannot write the outcome: {exc}") from exc
        finally:
            db.close()

    # -- reading -------------------------------------------------------------------------

    def session_models(self, session: str, within_s: float) -> list[str]:
        """The models that answered the turns of conversation `session` in the last `within_s`
        seconds, oldest first (requests that every model failed left out): what a service that
        has not seen the conversation (another worker, a restart) steers its next turn by."""
        stored = self.policy.stored_session(session)
        db = self._connect()
        try:
            rows = db.execute("SELECT model FROM decisions WHERE session = ? AND ts >= ? AND "
                              "(fallback IS NULL OR fallback NOT LIKE '%all_failed%') ORDER BY ts",
                              (stored, time.time() - within_s)).fetchall()
        except sqlite3.Error:
            return []  # the log cannot be read now: the turn is routed as a conversation's first
        finally:
            db.close()
        return [r[0] for r in rows]

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


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner alone (SQLite then creates the WAL and
    shared-memory files with the same mode); warn when an existing one is readable by others."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s is readable or writable by others (mode %04o): it holds every decision (and prompts with "
                        "--prompt-storage text); chmod 600 it", path, mode)
        return
    os.close(fd)
