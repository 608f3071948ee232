"""The static embedder's mean pooling, blockwise, against the plain sum (no model needed)."""

import numpy as np
import pytest

from router_ml.core.embedders.static import POOL_TOKENS, _segment_sums


@pytest.mark.parametrize("lengths", [[1], [3, 1, 7], [POOL_TOKENS - 1, 2, POOL_TOKENS + 5, 1], [5] * 700,
                                     [2 * POOL_TOKENS + 3]])
def test_blockwise_sums_equal_plain_sums(lengths):
    rng = np.random.default_rng(len(lengths))
    vectors = rng.standard_normal((500, 16)).astype(np.float32)
    lengths = np.array(lengths)
    flat = rng.integers(0, len(vectors), lengths.sum())
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    expected = np.stack([vectors[flat[a:b]].sum(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])
    np.testing.assert_allclose(_segment_sums(vectors, flat, lengths), expected, rtol=1e-5, atol=1e-5)
