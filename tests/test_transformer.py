"""Transformer kernels (LayerNorm with residual, ragged attention) against numbaq.reference."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from numbaq import reference as ref
from numbaq.kernels.transformer import _add_layer_norm, _attention


@given(tokens=st.integers(1, 40), width=st.sampled_from([8, 48, 384]), seed=st.integers(0, 2**31))
def test_add_layer_norm_matches_reference(tokens, width, seed):
    rng = np.random.default_rng(seed)
    x, r = (rng.normal(0, 3, (tokens, width)).astype(np.float32) for _ in range(2))
    w, b = (rng.normal(size=width).astype(np.float32) for _ in range(2))
    out = np.empty_like(x)
    _add_layer_norm(x, r, w, b, 1e-12, out)
    # float64 sums on both sides; the float32 output rounds once (|out| ~ 3 |w| + |b|)
    np.testing.assert_allclose(out, ref.add_layer_norm(x, r, w, b, 1e-12), rtol=1e-5, atol=1e-5)


@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=5),
    heads=st.sampled_from([1, 4]),
    seed=st.integers(0, 2**31),
)
def test_ragged_attention_matches_reference(lengths, heads, seed):
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    q, k, v = (rng.normal(size=(offsets[-1], 8 * heads)).astype(np.float32) for _ in range(3))
    out = np.empty_like(q)
    _attention(q, k, v, offsets, heads, out)
    # float32 softmax and sums of at most 12 terms against float64: a few ulps of |v| <= 4
    np.testing.assert_allclose(out, ref.attention(q, k, v, offsets, heads), atol=2e-5)
