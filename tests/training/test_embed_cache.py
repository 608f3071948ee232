import numpy as np

from router_ml.core.embedders import CachedEmbedder
from router_ml.core.embedders.hashing import HashingEmbedder
from router_ml.training.embed.cache import DiskCachedEmbedder


class Counting(HashingEmbedder):
    def __init__(self):
        super().__init__(dim=32)
        self.calls = []

    def encode(self, texts, progress=False):
        self.calls.append(list(texts))
        return super().encode(texts)

    encode_prepared = encode


def test_disk_cache_embeds_each_text_once_across_runs(tmp_path):
    texts = ["a prompt", "another prompt", "a prompt"]
    first = Counting()
    vectors = DiskCachedEmbedder(first, tmp_path).encode(texts)
    assert sum(len(c) for c in first.calls) == 2
    second = Counting()
    again = DiskCachedEmbedder(second, tmp_path).encode(texts)
    assert second.calls == []
    np.testing.assert_array_equal(vectors, again)
    np.testing.assert_array_equal(vectors, HashingEmbedder(32).encode(texts))


def test_disk_cache_is_keyed_by_embedder_id(tmp_path):
    DiskCachedEmbedder(Counting(), tmp_path).encode(["x"])
    other = HashingEmbedder(dim=64)
    calls = []
    original = other.encode
    other.encode_prepared = lambda texts, progress=False: calls.append(texts) or original(texts)
    vectors = DiskCachedEmbedder(other, tmp_path).encode(["x"])
    assert calls == [["x"]] and vectors.shape == (1, 64)


def test_memory_cache_is_lru_and_can_be_off():
    inner = Counting()
    cache = CachedEmbedder(inner, maxsize=2)
    cache.encode(["a", "b"])
    cache.encode(["a"])  # a becomes most recent
    cache.encode(["c"])  # evicts b
    cache.encode(["a", "b"])
    assert inner.calls == [["a", "b"], ["c"], ["b"]]
    off = CachedEmbedder(Counting(), maxsize=0)
    off.encode(["a"])
    off.encode(["a"])
    assert len(off.embedder.calls) == 2


def test_hashing_embedder_is_deterministic_and_unit_length():
    vectors = HashingEmbedder().encode(["Hello world", "hello world", ""])
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(vectors[0], vectors[1])  # lower-cased
    assert not vectors[2].any()
