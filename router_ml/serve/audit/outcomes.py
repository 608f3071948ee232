"""Outcome reports, checked and written all or nothing.

Each outcome is checked on its own (a known model when the caller says which are known, a
finite cost >= 0, a score in [0, 1]: router_ml.core.audit_format.Outcome.checked), the
report for repeats, and then the database: every request id must have been routed, and a
(request id, model) pair is recorded once. Errors name the item ("[2].cost"). Their
messages go back to the client that reported: they say what was wrong with the report and
never where the database is.
"""

from __future__ import annotations

import sqlite3
import time

from router_ml.core.audit_format import Outcome
from router_ml.errors import AuditError, DuplicateOutcomeError, UnknownRequestError


def checked_outcomes(outcomes: list[Outcome], *, known_models=None, single: bool = False) -> list[Outcome]:
    """The outcomes validated, or an AuditError naming the item and field (a lone outcome's fields
    are named bare: "cost"; a list's by index: "[2].cost")."""
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
    return checked


def write_outcomes(db: sqlite3.Connection, checked: list[Outcome], *, single: bool = False) -> int:
    """Insert checked outcomes in one transaction: UnknownRequestError for a request id never
    routed, DuplicateOutcomeError for a pair already recorded (nothing written then); an
    sqlite3.Error from the database itself is the caller's to report."""
    def where(i: int, name: str) -> str:
        return name if single else f"[{i}].{name}"

    with db:
        for i, o in enumerate(checked):
            if db.execute("SELECT 1 FROM decisions WHERE request_id = ?", (o.request_id,)).fetchone() is None:
                raise UnknownRequestError(f"request_id {o.request_id!r}: no routed request has this id in the audit "
                                          "log", field=where(i, "request_id"))
            try:
                db.execute("INSERT INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (o.request_id, o.model, time.time(), o.score,
                            None if o.success is None else int(o.success), o.cost, o.latency_ms, o.source))
            except sqlite3.IntegrityError as exc:
                raise DuplicateOutcomeError(f"request_id {o.request_id!r}: an outcome for model {o.model!r} "
                                            "is already recorded", field=where(i, "model")) from exc
    return len(checked)
