"""Embedding on a Spark cluster, through a Parquet cache (`--spark-master`): step 5 of
router_ml.training.data.spark's pipeline.

The distinct texts no run has embedded yet are embedded by Python workers (each loads
the embedder once), appended to a Parquet cache keyed by the embedder's id (its files'
fingerprint and window) and the text's sha256, reused across runs and router versions;
the driver reads back the vectors it needs.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from router_ml.core.spark import describe, parallelism, spark_path
from router_ml.errors import OutcomesError
from router_ml.training.data.spark import spark_reader
from router_ml.training.embed.cache import CacheWrapper, default_cache_dir, text_key

CACHE_DIR = "spark-embeddings"


def _embed_partition(factory: Callable, texts_col: str = "text"):
    """mapInPandas: embed each batch of (key, text) with the embedder `factory()` makes, once per worker."""

    def embed(batches):
        embedder = _worker_embedder(factory)
        for frame in batches:
            vectors = embedder.encode(frame[texts_col].tolist()) if len(frame) else np.zeros((0, 1))
            yield pd.DataFrame({"key": frame["key"], "vector": list(vectors.astype(np.float32))})

    return embed


_EMBEDDERS: dict[str, object] = {}


def _worker_embedder(factory):
    """The embedder `factory` builds, once per Python worker (tasks unpickle a new factory each time)."""
    key = repr(getattr(factory, "args", factory))
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = factory()
    return _EMBEDDERS[key]


def _partitions(rows: int, cores: int) -> int:
    """Partitions for embedding `rows` texts: a multiple of the cores (no straggling last round), about
    2,000 texts each up to four rounds, never fewer than 64 texts each."""
    rounds = min(4, max(1, math.ceil(rows / (2000 * cores))))
    return max(1, min(cores * rounds, rows // 64))


class SparkCachedEmbedder(CacheWrapper):
    """An embedder whose `encode` runs on the cluster, through a Parquet cache (module docstring, step 5).

    `embedder` is the driver's copy (for its id, dimension, files and truncation);
    `factory` rebuilds it in a worker (a picklable callable: the training config or the
    router's embedder spec and directory).
    """

    def __init__(self, embedder, spark, factory: Callable, cache_dir: str | Path | None = None,
                 log: Callable[[str], None] = print) -> None:
        super().__init__(embedder)
        self.spark, self.factory, self.log = spark, factory, log
        root = Path(cache_dir) if cache_dir else default_cache_dir()
        self.path = root / CACHE_DIR / hashlib.sha256(self.id.encode()).hexdigest()[:24]
        self.embedded = 0
        self.reused = 0

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Vectors of `texts` (as the embedder would give them), embedding on the cluster what the cache lacks."""
        from pyspark.sql import functions as F

        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = [text_key(t) for t in texts]
        unique = pd.DataFrame({"key": keys, "text": texts}).drop_duplicates("key")
        wanted = self.spark.createDataFrame(unique)
        cached = self._cached()
        todo = wanted if cached is None else wanted.join(cached.select("key"), on="key", how="left_anti")
        missing = todo.count()
        self.reused += len(unique) - missing
        if missing:
            self.log(f"spark: embedding {missing:,} of {len(unique):,} distinct texts on the cluster "
                     f"({len(unique) - missing:,} in the cache {self.path})")
            parts = _partitions(missing, parallelism(self.spark))
            fresh = todo.repartition(parts).mapInPandas(_embed_partition(self.factory), "key string, vector array<float>")
            fresh.write.mode("append").parquet(spark_path(self.path))  # each part file is committed whole
            self.embedded += missing
        else:
            self.log(f"spark: all {len(unique):,} distinct texts found in the embedding cache {self.path}")
        found = self._cached().join(F.broadcast(wanted.select("key")), on="key", how="left_semi").toPandas()
        found = found.drop_duplicates("key").set_index("key")["vector"]
        return np.stack([np.asarray(found[k], dtype=np.float32) for k in keys])

    def _cached(self):
        if not self.path.exists() or not any(self.path.glob("*.parquet")):
            return None
        return self.spark.read.parquet(spark_path(self.path))


def router_embedder_factory(router_path: str):
    """A picklable callable that builds a packaged router's embedder in a worker."""
    return functools.partial(_router_embedder, spark_path(router_path))


def _router_embedder(router_path: str):
    from router_ml.core.artifact import read_manifest
    from router_ml.core.embedders.base import make_embedder

    return make_embedder(read_manifest(router_path)["embedder"], artifact_dir=router_path)


def router_inputs(master: str, router, cache_dir=None, catalog=None, log: Callable[[str], None] = print):
    """For evaluate and replay on Spark: (read_outcomes on the cluster, the router's embedder through the
    cluster's embedding cache)."""
    from router_ml.core.spark import spark_session

    spark = spark_session(master)
    log(describe(spark))
    if router.path is None:
        raise OutcomesError("spark: the router has no directory the workers could load its embedder from")
    embedder = SparkCachedEmbedder(router.embedder.embedder, spark, router_embedder_factory(router.path), cache_dir,
                                   log=log)
    return spark_reader(spark, catalog=catalog, log=log, cost_model=router.cost_model), embedder
