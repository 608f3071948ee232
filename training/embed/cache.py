"""Step 3's disk cache: embeddings keyed by (model id, sha256 of the text the model saw).

Retraining on the same prompts, or sweeping settings over them, then embeds each text
once per embedder. The store is one SQLite file (`embeddings.sqlite`) in the cache
directory: `--cache-dir`, else `$ROUTER_ML_CACHE`, else `~/.cache/router-ml`. New
vectors are committed chunk by chunk, so an interrupted run keeps what it finished.
The key is the model's id (a fingerprint of its files and its window) and the text
after truncation, so a changed model never reads another model's vectors, and
truncation strategies share the vectors of every prompt that fits the window whole.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import numpy as np

CACHE_FILE = "embeddings.sqlite"
_CHUNK = 256


def default_cache_dir() -> Path:
    return Path(os.environ.get("ROUTER_ML_CACHE") or Path.home() / ".cache" / "router-ml")


def text_key(text: str) -> str:
    """A cache key for a text: its sha256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CacheWrapper:
    """An embedder behind a cache: its identity, spec, files and truncation are the embedder's own."""

    def __init__(self, embedder) -> None:
        self.embedder = embedder
        self.kind, self.id, self.model_id, self.dim = embedder.kind, embedder.id, embedder.model_id, embedder.dim

    def spec(self) -> dict:
        return self.embedder.spec()

    def files(self):
        return self.embedder.files()

    def truncate(self, texts: list[str]) -> list[str]:
        return self.embedder.truncate(texts)


class DiskCachedEmbedder(CacheWrapper):
    """Wraps an embedder with the SQLite cache; same `encode` contract."""

    def __init__(self, embedder, cache_dir: str | Path | None = None) -> None:
        super().__init__(embedder)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.cache_dir / CACHE_FILE
        self.hits = 0
        self.misses = 0
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS vectors (embedder TEXT NOT NULL, text_sha256 TEXT NOT NULL, "
                "vector BLOB NOT NULL, PRIMARY KEY (embedder, text_sha256))"
            )

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self.encode_prepared(self.embedder.truncate(list(texts)), progress=progress)

    def encode_prepared(self, texts: list[str], progress: bool = False) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._connect() as db:
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in db.execute(
                    f"SELECT text_sha256, vector FROM vectors WHERE embedder = ? AND text_sha256 IN ({marks})",
                    [self.model_id, *chunk],
                ):
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        todo = {}
        for key, text in zip(keys, texts):
            if key not in found:
                todo.setdefault(key, text)
        self.hits += len(set(keys)) - len(todo)
        self.misses += len(todo)
        if todo:
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(todo), desc="embedding prompts", unit="prompt")
            items = list(todo.items())
            # Longest first so padded batches waste little; order does not change vectors.
            items.sort(key=lambda kv: -len(kv[1]))
            for start in range(0, len(items), _CHUNK):
                chunk = items[start : start + _CHUNK]
                vectors = self.embedder.encode_prepared([text for _, text in chunk])
                with self._connect() as db:
                    db.executemany(
                        "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                        [(self.model_id, key, vec.astype(np.float32).tobytes()) for (key, _), vec in zip(chunk, vectors)],
                    )
                for (key, _), vec in zip(chunk, vectors):
                    found[key] = vec.astype(np.float32)
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[k] for k in keys])
