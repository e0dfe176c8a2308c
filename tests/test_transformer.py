"""Transformer kernels (LayerNorm with residual, ragged attention in float and int8) against
numbaq.reference, and the parallel entry points against the serial ones, bit for bit."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numbaq import reference as ref
from numbaq.kernels import transformer as kt
from numbaq.models.bert_layers import _task_split, attention, attention_qkv


@given(tokens=st.integers(1, 40), width=st.sampled_from([8, 48, 384]), seed=st.integers(0, 2**31))
def test_add_layer_norm_matches_reference(tokens, width, seed):
    rng = np.random.default_rng(seed)
    x, r = (rng.normal(0, 3, (tokens, width)).astype(np.float32) for _ in range(2))
    w, b = (rng.normal(size=width).astype(np.float32) for _ in range(2))
    out, serial = np.empty_like(x), np.empty_like(x)
    kt._add_layer_norm(x, r, w, b, 1e-12, out)
    kt._add_layer_norm_serial(x, r, w, b, 1e-12, serial)
    # float64 sums on both sides; the float32 output rounds once (|out| ~ 3 |w| + |b|)
    np.testing.assert_allclose(out, ref.add_layer_norm(x, r, w, b, 1e-12), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out, serial)


def _ragged(lengths, width, seed):
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    qkv = rng.normal(size=(offsets[-1], 3 * width)).astype(np.float32)
    return qkv, offsets


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=5),
    heads=st.sampled_from([1, 4]),
    head_dim=st.sampled_from([8, 16, 32, 40]),
    seed=st.integers(0, 2**31),
)
def test_ragged_attention_matches_reference(lengths, heads, head_dim, seed):
    qkv, offsets = _ragged(lengths, heads * head_dim, seed)
    q, k, v = np.split(qkv, 3, axis=1)
    out = np.empty_like(q)
    kt._attention(qkv, offsets, heads, out)
    # float32 scores (sums of head_dim <= 40 products of N(0, 1) values, |s| < ~40 sqrt(d)
    # ulps), float32 exp (3 ulps) and weighted sums of at most 40 values with |v| <= ~5:
    # a few hundred float32 ulps of 1 at most, against float64
    np.testing.assert_allclose(out, ref.attention(q, k, v, offsets, heads), atol=3e-5)
    # the worker split: each task's arithmetic is the same on any worker
    for workers in (2, 3):
        ptr, tasks = _task_split(offsets, heads, workers)
        assert sorted(tasks.tolist()) == list(range((offsets.size - 1) * heads))
        par = np.empty_like(q)
        kt._attention_par(qkv, offsets, heads, ptr, tasks, par)
        np.testing.assert_array_equal(par, out)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=5),
    heads=st.sampled_from([1, 3]),
    head_dim=st.sampled_from([8, 16, 32, 40]),
    seed=st.integers(0, 2**31),
)
def test_int8_attention_matches_reference(lengths, heads, head_dim, seed):
    qkv, offsets = _ragged(lengths, heads * head_dim, seed)
    q, k, v = np.split(qkv, 3, axis=1)
    out = np.empty_like(q)
    kt._attention_int8(qkv, offsets, heads, out)
    expected, _ = ref.attention_int8(q, k, v, offsets, heads)
    # the codes and int32 sums are exact; only the exp differs (numpy's against mathf's,
    # 3 ulps), which can move a probability code by 1 where 255 e sits on a rounding
    # boundary: then out moves by at most (|v|max + |out|) / sum of codes, sum >= 255
    vmax = np.abs(v).max()
    np.testing.assert_allclose(out, expected, atol=2 * vmax / 255 + 1e-5)
    for workers in (2, 3):
        ptr, tasks = _task_split(offsets, heads, workers)
        par = np.empty_like(q)
        kt._attention_int8_par(qkv, offsets, heads, ptr, tasks, par)
        np.testing.assert_array_equal(par, out)
    # and it is an attention: close to the float one (int8 q, k, v and 8-bit probabilities)
    exact = ref.attention(q, k, v, offsets, heads)
    assert np.abs(out - exact).max() < 0.1 * vmax + 0.05


def test_int8_attention_codes_exact():
    qkv, offsets = _ragged([5, 12], 32, 3)
    q, k, v = np.split(qkv, 3, axis=1)
    _, codes = ref.attention_int8(q, k, v, offsets, 2)
    # per token and head: the largest |code| of each row of q is 127
    assert (np.abs(codes["q"][:, :16]).max(axis=1) == 127).all()
    assert (np.abs(codes["v"][:5, 16:]).max(axis=0) == 127).all()


def test_attention_threads_bit_identical():
    qkv, offsets = _ragged([1, 7, 33, 16, 2, 64], 96, 7)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = [attention_qkv(qkv, offsets, 4, dtype) for dtype in ("float", "int8")]
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = [attention_qkv(qkv, offsets, 4, dtype) for dtype in ("float", "int8")]
    finally:
        numba.set_num_threads(threads)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_attention_validates():
    qkv, offsets = _ragged([3, 4], 16, 0)
    with pytest.raises(ValueError, match="heads"):
        attention_qkv(qkv, offsets, 3)
    with pytest.raises(ValueError, match="offsets"):
        attention_qkv(qkv, np.array([0, 3, 6]), 2)
    with pytest.raises(ValueError, match="offsets"):
        attention_qkv(qkv, np.array([0, 0, 7]), 2)
    with pytest.raises(ValueError, match="qkv"):
        attention_qkv(qkv[:, :-1], offsets, 2)
    with pytest.raises(ValueError, match="dtype"):
        attention_qkv(qkv, offsets, 2, "int4")
    with pytest.raises(ValueError, match="one shape"):
        attention(qkv[:, :16], qkv[:, :16], qkv[:-1, :16], offsets, 2)


@settings(max_examples=20, deadline=None)
@given(
    tokens=st.integers(1, 150),
    width=st.sampled_from([8, 36, 384]),
    scheme=st.sampled_from(["PER_TOKEN_UINT8", "PER_TOKEN_INT8", "ONNX", "TORCH"]),
    seed=st.integers(0, 2**31),
)
def test_layer_norm_quant_equals_layer_norm_then_quantize(tokens, width, scheme, seed):
    """The LayerNorm that also writes the GEMM's lhs: its float output is the plain
    LayerNorm's, and its codes, scales and zero points those of the dynamic Linear's own
    quantize pass (``_quantize_lhs``) on that output, bit for bit; serial == parallel."""
    from numbaq import engine, schemes
    from numbaq.kernels.quantize import _quantize_lhs

    rng = np.random.default_rng(seed)
    x, r = (rng.normal(0, 3, (tokens, width)).astype(np.float32) for _ in range(2))
    w, b = (rng.normal(size=width).astype(np.float32) for _ in range(2))
    lhs = engine.lhs_params(schemes.get(scheme))
    expected = np.empty_like(x)
    kt._add_layer_norm_serial(x, r, w, b, 1e-12, expected)
    a0, s0, z0 = (
        engine.lhs_buffer(tokens, width),
        np.empty(tokens, np.float32),
        np.empty(tokens, np.int32),
    )
    assert _quantize_lhs(expected, lhs, a0, s0, z0) == 0
    for kernel in (kt._add_layer_norm_quant, kt._add_layer_norm_quant_par):
        out = np.empty_like(x)
        a, s, z = (
            engine.lhs_buffer(tokens, width),
            np.empty(tokens, np.float32),
            np.empty(tokens, np.int32),
        )
        assert kernel(x, r, w, b, 1e-12, out, lhs, a, s, z) == 0
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(a, a0)
        np.testing.assert_array_equal(s, s0)
        np.testing.assert_array_equal(z, z0)
    x[0, 0] = np.nan  # a non-finite row is counted, not quantized
    out = np.empty_like(x)
    assert kt._add_layer_norm_quant(x, r, w, b, 1e-12, out, lhs, a, s, z) == 1


@pytest.mark.parametrize("length", [4, 5, 7, 9, 17])
def test_attention_row_groups_give_the_bits_of_single_rows(length):
    """Rows run four at a time (``kernels.transformer.ROWS``), the last ``length % 4`` one
    at a time: the same sums in the same order, so a query repeated in both gives the same
    bits in both."""
    qkv, offsets = _ragged([length], 64, 5)
    last = length - 1  # the single-row path, or (length 4) the fourth lane of the group
    qkv[last, :64] = qkv[0, :64]  # the same query: the same output row, bit for bit
    out = np.empty((length, 64), np.float32)
    kt._attention(qkv, offsets, 2, out)
    np.testing.assert_array_equal(out[last], out[0])
