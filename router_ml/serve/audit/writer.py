"""The audit log's decision writer: a bounded queue and one thread that commits it in batches.

Routing puts a decision on the queue and returns (a put waits at most 50 ms; on a full queue
the decision is counted as dropped instead). The thread builds each row, commits a batch
every `flush_interval` seconds or `batch_size` rows in one transaction, and retries a batch
the disk refused, later, until closing: then it tries once more and counts what it could
not write as dropped rather than hang. What a row is and how it is inserted belong to the
caller (router_ml.serve.audit.store); this module knows queues, threads and counts.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Iterable

_SENTINEL = object()


class DecisionWriter:
    """`build_row(item)` turns a queued item into a row; `insert(db, rows) -> bool` commits
    rows (False or an sqlite3.Error: not written, retried later); `after_batch()` runs on the
    writer thread after each round (retention), its sqlite3.Error recorded, not raised."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], build_row: Callable[[object], tuple],
                 insert: Callable[[sqlite3.Connection, list[tuple]], bool], *, batch_size: int = 256,
                 flush_interval: float = 0.2, queue_size: int = 50_000,
                 after_batch: Callable[[], None] | None = None) -> None:
        self.connect = connect
        self.build_row = build_row
        self.insert = insert
        self.after_batch = after_batch
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._pending: set[Hashable] = set()  # keys queued but not yet committed
        self._lock = threading.Lock()
        self._written = 0
        self._dropped = 0
        self._write_errors = 0
        self._last_error: str | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="router-ml-audit-writer", daemon=True)
        self._thread.start()

    # -- the caller's side -------------------------------------------------------------------

    def put(self, key: Hashable, item: object) -> bool:
        """Queue `item` (`key`: its request id); False (and counted as dropped) if the queue is full."""
        with self._lock:
            self._pending.add(key)
        try:  # the row is built by the writer thread: nothing but a queue put on the request's path
            self._queue.put((key, item), timeout=0.05)
        except queue.Full:
            with self._lock:
                self._pending.discard(key)
                self._dropped += 1
            return False
        return True

    def any_pending(self, keys: Iterable[Hashable]) -> bool:
        """Whether any of `keys` is queued and not yet committed."""
        with self._lock:
            return any(key in self._pending for key in keys)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued item is committed (or given up); False on timeout."""
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
        """Drain the queue, commit, stop the thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_SENTINEL)
        self._thread.join()

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> dict:
        with self._lock:
            return {"queued": self._queue.qsize(), "written": self._written, "dropped": self._dropped,
                    "write_errors": self._write_errors, "last_error": self._last_error,
                    "healthy": self._last_error is None and not self._closed}

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        db = self.connect()
        batch: list[tuple[Hashable, tuple]] = []
        stop = False
        while not stop or batch:
            deadline = time.monotonic() + self.flush_interval
            while not stop and len(batch) < self.batch_size:
                try:
                    entry = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if entry is _SENTINEL:
                    stop = True
                    self._queue.task_done()
                    continue
                key, item = entry
                try:
                    batch.append((key, self.build_row(item)))
                except Exception as exc:  # noqa: BLE001 - one unwritable record must not stop the writer
                    self._queue.task_done()
                    with self._lock:
                        self._dropped += 1
                        self._pending.discard(key)
                        self._last_error = f"record {key}: {type(exc).__name__}: {exc}"
            if batch:
                if self._commit(db, batch):
                    self._done(len(batch))
                    batch = []
                elif stop or self._closed:
                    self._done(len(batch))  # closing: one try per batch, then give up rather than hang
                    with self._lock:
                        self._dropped += len(batch)
                    batch = []
                else:
                    time.sleep(min(1.0, self.flush_interval * 5))  # the disk is failing: retry later
            if self.after_batch is not None:
                try:
                    self.after_batch()
                except sqlite3.Error as exc:  # retried next time; writing decisions goes on
                    with self._lock:
                        self._last_error = f"retention: {type(exc).__name__}: {exc}"
        db.close()

    def _commit(self, db: sqlite3.Connection, batch: list[tuple[Hashable, tuple]]) -> bool:
        try:
            ok = self.insert(db, [row for _, row in batch])
        except sqlite3.Error as exc:
            with self._lock:
                self._write_errors += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
            return False
        if ok:
            with self._lock:
                self._written += len(batch)
                self._last_error = None
                for key, _ in batch:
                    self._pending.discard(key)
        return ok

    def _done(self, n: int) -> None:
        for _ in range(n):
            self._queue.task_done()
