"""What the audit log keeps about a request, and for how long: the storage policy.

A decision's row holds the decision itself (model, scores, reason, rules, steps, costs,
timing), the prompt's keyed digest and length (its text only with `prompt_storage="text"`),
and the request's metadata as the metadata policy says. `retain_text_days` erases prompt text
and metadata from rows older than that; the decisions and their outcomes stay.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass

from router_ml.core.audit_format import METADATA_OTHER, PROMPT_STORAGE
from router_ml.core.prompts import keyed_digest
from router_ml.errors import AuditError
from router_ml.serve.record import Served


@dataclass(frozen=True)
class StoragePolicy:
    """See `AuditStore` for each setting; `key` is the secret of the keyed digests (None: unkeyed
    sha256)."""

    prompt_storage: str = "hash"
    key: bytes | None = None
    metadata_keys: frozenset[str] | None = None
    metadata_other: str = "hash"
    retain_text_days: float | None = None

    def __post_init__(self) -> None:
        if self.prompt_storage not in PROMPT_STORAGE:
            raise AuditError(f"prompt_storage: expected one of {PROMPT_STORAGE}, found {self.prompt_storage!r}")
        if self.metadata_other not in METADATA_OTHER:
            raise AuditError(f"metadata_other: expected one of {METADATA_OTHER}, found {self.metadata_other!r}")
        if self.retain_text_days is not None and not self.retain_text_days > 0:
            raise AuditError(f"retain_text_days: expected a number of days > 0, found {self.retain_text_days!r}")

    @property
    def digest(self) -> str:
        """How prompts are digested, as the database's audit_meta records it."""
        return "sha256" if self.key is None else f"hmac-sha256 key {hashlib.sha256(self.key).hexdigest()[:16]}"

    def row(self, prompt: str, r: Served, metadata: dict) -> tuple:
        """The decisions row (router_ml.core.audit_format.COLUMNS) of a served request."""
        metadata = self.stored_metadata(metadata)
        return (r.request_id, r.ts, r.router_version, r.model, r.confidence, json.dumps(r.scores), r.quality_target,
                r.reason, r.rule, r.fallback, int(r.exploration), r.propensity, r.latency_ms,
                keyed_digest(prompt, self.key), len(prompt), prompt if self.prompt_storage == "text" else None,
                json.dumps(metadata) if metadata else None, json.dumps(r.steps) if r.steps is not None else None,
                r.cost, r.novelty, json.dumps(r.propensities) if r.propensities is not None else None,
                r.planned_model, json.dumps(r.shadow) if r.shadow is not None else None,
                self.stored_session(r.session), r.session_note)

    def stored_session(self, session: str | None) -> str | None:
        """A session key as kept: as given with text storage, else a keyed digest (turns of one
        conversation still share it)."""
        if session is None or self.prompt_storage == "text":
            return session
        return "hmac:" + keyed_digest(session, self.key)[:32]

    def stored_metadata(self, metadata: dict) -> dict:
        """Request metadata as kept: the kept keys as given; the others' values as keyed digests
        (so they can still be grouped) or dropped. Without `metadata_keys`: every key as given
        with text storage, none with hashes."""
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

    def erase_expired(self, db: sqlite3.Connection, now: float | None = None) -> None:
        """Erase prompt text and metadata of decisions older than `retain_text_days` (no-op without it)."""
        if self.retain_text_days is None:
            return
        cutoff = (time.time() if now is None else now) - self.retain_text_days * 86400
        with db:
            db.execute("UPDATE decisions SET prompt = NULL, metadata = NULL WHERE ts < ? "
                       "AND (prompt IS NOT NULL OR metadata IS NOT NULL)", (cutoff,))
