"""The audit trail's writer: every routing decision, and the outcomes reported for it, in SQLite
(the format and its readers: router_ml.core.audit_format).

    store = AuditStore("audit.sqlite")            # prompts kept as keyed digests + length by default
    store.record(prompt, served, metadata)        # a Served from the service; never blocks for long
    store.record_outcome(request_id, model, success=True, cost=0.0012)
    store.export_jsonl("audit.jsonl")

`AuditStore` (store.py) is the one object callers use; behind it, one concern per module:

- writer.py: decisions go through a bounded queue to one writer thread that commits them in
  batches (every `flush_interval` seconds or `batch_size` rows), so routing never waits on
  the disk. `close()` (also run at normal interpreter exit) drains the queue, so no
  decision returned to a caller is lost on a normal exit; a crash loses at most the rows
  of the last unflushed interval, and the database stays readable (SQLite WAL, each batch
  one transaction). If the queue is full because the disk is failing, new records are
  counted as dropped (`stats()["dropped"]`) rather than blocking requests; the service
  reports that in /metrics and /readyz.
- outcomes.py: outcomes are written synchronously: they must name a known request id (else
  `UnknownRequestError`), and a (request id, model) pair is recorded once (a repeat is a
  `DuplicateOutcomeError`).
- storage.py: what is stored about a request: the decision itself (model, scores, reason,
  rules, steps, costs, timing); the prompt as a keyed digest (HMAC-SHA256 under a
  per-deployment secret) and its length, or as text with `prompt_storage="text"`
  (retraining from the log needs the text, or the prompts from an offline log); request
  metadata per the metadata policy; and for how long text is kept. Nothing else from the
  request (headers, tokens, client address) is stored.
"""

from router_ml.core.audit_format import Outcome, export_parquet, load_key, read_joined
from router_ml.serve.audit.store import AuditStore

__all__ = ["AuditStore", "Outcome", "export_parquet", "load_key", "read_joined"]
