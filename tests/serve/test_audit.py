import json
import os
import sqlite3

import pytest

from router_ml.errors import AuditError, DuplicateOutcomeError, UnknownRequestError
from router_ml.serve.audit import AuditStore, read_joined
from router_ml.serve.record import Served, new_request_id


class Record:
    """A prompt and its served decision, as the service hands them to the store."""

    def __init__(self, prompt: str, metadata: dict | None = None) -> None:
        self.prompt, self.metadata = prompt, metadata or {}
        self.served = Served(request_id=new_request_id(), router_version="v1", model="small", confidence=0.9,
                             scores={"small": 0.9, "large": 0.95}, costs={}, estimated_cost=None, reason="r",
                             quality_target=0.5)
        self.request_id = self.served.request_id


def record(prompt="What is 2 + 2?", metadata=None):
    return Record(prompt, metadata)


def write(store, r: Record) -> bool:
    return store.record(r.prompt, r.served, r.metadata)


def test_decisions_are_written_in_batches_and_flushed_on_close(tmp_path):
    store = AuditStore(tmp_path / "a.sqlite", flush_interval=0.05)
    records = [record(f"prompt {i}") for i in range(500)]
    for r in records:
        assert write(store, r)
    store.close()
    rows = read_joined(tmp_path / "a.sqlite")
    assert [r["request_id"] for r in rows] == [r.request_id for r in records]
    assert rows[0]["prompt"] is None and rows[0]["prompt_chars"] == len("prompt 0")  # hash by default
    assert rows[0]["scores"] == {"small": 0.9, "large": 0.95}


def test_prompt_text_only_when_asked(tmp_path):
    store = AuditStore(tmp_path / "a.sqlite", prompt_storage="text")
    write(store, record("keep me"))
    store.close()
    assert read_joined(tmp_path / "a.sqlite")[0]["prompt"] == "keep me"
    with pytest.raises(AuditError, match="prompt_storage"):
        AuditStore(tmp_path / "b.sqlite", prompt_storage="all")


def test_outcomes_join_and_reject_unknown_or_duplicate(tmp_path):
    store = AuditStore(tmp_path / "a.sqlite")
    r = record()
    write(store, r)
    store.record_outcome(r.request_id, "small", success=True, cost=0.001)  # pending decision: flushed first
    with pytest.raises(DuplicateOutcomeError, match="already recorded"):
        store.record_outcome(r.request_id, "small", success=False)
    store.record_outcome(r.request_id, "large", score=0.7)
    with pytest.raises(UnknownRequestError, match="no routed request"):
        store.record_outcome("nope", "small", success=True)
    with pytest.raises(AuditError, match="score"):
        store.record_outcome(r.request_id, "other", score=1.5)
    store.close()
    joined = read_joined(tmp_path / "a.sqlite")[0]
    assert sorted(o["model"] for o in joined["outcomes"]) == ["large", "small"]


def test_export_jsonl(tmp_path):
    store = AuditStore(tmp_path / "a.sqlite")
    for i in range(3):
        write(store, record(f"p{i}"))
    store.flush()
    assert store.export_jsonl(tmp_path / "out.jsonl") == 3
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and lines[0]["outcomes"] == []
    store.close()


@pytest.fixture()
def read_only(tmp_path):
    """Make paths unwritable even for root (chattr +i), or by mode for other users."""
    import shutil
    import subprocess

    locked = []

    def lock(path):
        if os.geteuid() == 0:
            if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
                pytest.skip("running as root without chattr: cannot make a file read-only")
        else:
            os.chmod(path, 0o555 if path.is_dir() else 0o444)
        locked.append(path)

    yield lock
    for path in locked:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)])
        else:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)


def test_read_only_database_is_refused_at_open(tmp_path, read_only):
    folder = tmp_path / "audit"
    AuditStore(folder / "a.sqlite").close()
    for path in [*folder.iterdir(), folder]:
        read_only(path)
    with pytest.raises(AuditError, match="cannot open the audit database for writing"):
        AuditStore(folder / "a.sqlite")


def test_read_only_directory_is_refused_at_open(tmp_path):
    target = tmp_path / "file-not-dir"
    target.write_text("x")
    with pytest.raises(AuditError, match="cannot"):
        AuditStore(target / "a.sqlite")


def test_full_database_keeps_records_queued_and_reports_it(tmp_path):
    store = AuditStore(tmp_path / "a.sqlite", flush_interval=0.02, batch_size=5, max_bytes=64 * 1024)
    big = "x" * 2000
    accepted = [write(store, record(big, metadata={"pad": big})) for _ in range(200)]
    assert all(accepted)  # routing is never blocked by the full disk
    assert not store.flush(timeout=1.0)
    stats = store.stats()
    assert not stats["healthy"] and "full" in stats["last_error"] and stats["write_errors"] > 0
    written = store.count()
    assert 0 < written < 200
    store.close()  # on exit the writer gives up on what cannot be written, and counts it
    # Every accepted record is either in the database or counted as dropped (the writer may still
    # have fitted a batch in after the count above, when SQLite reused freed pages).
    final = AuditStore(tmp_path / "a.sqlite").count()  # and the database is still readable
    assert written <= final < 200 and store.stats()["dropped"] == 200 - final


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path, monkeypatch):
    store = AuditStore(tmp_path / "a.sqlite", queue_size=2, batch_size=2, flush_interval=0.02)
    monkeypatch.setattr(store, "_write", lambda db, batch: False)
    results = [write(store, record(f"p{i}")) for i in range(20)]
    assert results.count(False) > 0 and store.stats()["dropped"] == results.count(False)
    monkeypatch.undo()  # the disk recovers: everything that was accepted gets written
    store.close()
    assert store.count() == results.count(True)


def test_database_stays_readable_while_written(tmp_path):
    store = AuditStore(tmp_path / "a.sqlite", flush_interval=0.01)
    for i in range(200):
        write(store, record(f"p{i}"))
    reader = sqlite3.connect(tmp_path / "a.sqlite")
    reader.execute("SELECT COUNT(*) FROM decisions").fetchone()
    store.close()
    assert reader.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 200


def test_an_export_reads_back_when_a_column_is_null_in_a_whole_chunk_or_empty(tmp_path):
    """Found in review: chunks typed one by one (an all-NULL `rule` typed null in the first) did not read back;
    an empty export raised KeyError."""
    from router_ml.serve.audit import AuditStore, export_parquet, read_joined
    from router_ml.serve.record import Served

    store = AuditStore(tmp_path / "audit.sqlite", prompt_storage="text", flush_interval=0.01)
    for i in range(4):
        store.record(f"prompt {i}", Served(request_id=f"r{i}", router_version="v", model="nano", confidence=0.9,
                                           scores={}, costs={}, estimated_cost=None, reason="r", quality_target=None,
                                           rule=None if i < 2 else "math", ts=1_790_000_000.0 + i), {})
    store.close()
    export_parquet(tmp_path / "audit.sqlite", tmp_path / "export", chunk_rows=2)
    assert [r["rule"] for r in read_joined(tmp_path / "export")] == [None, None, "math", "math"]
    export_parquet(tmp_path / "audit.sqlite", tmp_path / "later", since=1_800_000_000.0)
    assert read_joined(tmp_path / "later") == []
