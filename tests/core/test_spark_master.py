"""Which masters are one machine (router_ml.core.spark.local_cores): they get shuffle partitions
sized to their cores, not Spark's 200. No pyspark needed."""

import os

import pytest

from router_ml.core.spark import local_cores


@pytest.mark.parametrize("master, cores", [
    ("local", 1), ("local[2]", 2), ("local[8]", 8), ("local[4, 3]", 4), (" local[3] ", 3), ("local[0]", 1),
    ("local[*]", os.cpu_count() or 1),
    ("spark://host:7077", None), ("yarn", None), ("k8s://https://h:443", None), ("sc://host:15002", None),
    (None, None), ("", None), ("local-cluster[2,1,1024]", None), ("locals[2]", None),
])
def test_local_masters_and_their_cores(master, cores):
    assert local_cores(master) == cores
