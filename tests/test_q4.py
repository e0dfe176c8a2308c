"""4-bit block weights (llama.cpp's Q4_1): the quantizer against gguf's, the kernels
(``vpdpbusd`` and portable) against :func:`numbaq.reference.q4_linear` bit for bit, on
any thread count and batch, and bad input."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numbaq import config, engine
from numbaq import reference as ref
from numbaq.kernels import paths
from numbaq.layers import Linear
from numbaq.layers.q4 import Q4Linear
from numbaq.weights_q4 import Q4Weight

KERNELS = [  # (GEMM path that selects it, the CPU feature it needs)
    ("vnni512", "avx512vnni"),
    ("avx2", "avx2"),
    ("plain", None),
]
HERE = [path for path, _ in KERNELS if path == "plain" or paths.supported(path)]


@pytest.fixture(
    params=[
        pytest.param(
            path,
            marks=pytest.mark.skipif(
                path not in HERE, reason=f"the Q4 {path} kernel needs {feature}"
            ),
        )
        for path, feature in KERNELS
    ]
)
def q4_path(request, monkeypatch):
    """Run a test through each 4-bit kernel: ``vpdpbusd``, ``vpmaddubsw`` and plain loops
    (the first two where the CPU has them)."""
    monkeypatch.setattr(config, "GEMM_PATH", request.param)
    assert engine.q4_kernels()[0] == request.param
    return request.param


def _weights(rng, n, k, special=True):
    w = rng.normal(size=(n, k)).astype(np.float32) * np.float32(rng.uniform(0.01, 3))
    if special and n > 2:
        w[0, :32] = 0  # an all-zero block: d = 0
        w[1, :32] = 1.5  # a constant block
    return w


def _run(x, w: Q4Weight, bias, parallel: bool):
    y = np.empty((x.shape[0], w.shape[0]), np.float32)
    kernel, args = engine.bound_q4_linear(x, w, bias, y)
    engine.check_blocks_status(kernel(*args[:-1], parallel))
    return y


# ------------------------------------------------------------------ the quantizer
def test_quantizer_matches_gguf():
    """reference.quantize_q4_1 and Q4Weight.from_float give gguf-py's Q4_1 blocks: codes,
    scales and offsets bit for bit (zero, constant and one-sided blocks included)."""
    gguf = pytest.importorskip("gguf", reason="gguf is not installed (pip install gguf)")
    rng = np.random.default_rng(0)
    w = _weights(rng, 8, 128)
    w[2, 32:64] = np.abs(w[2, 32:64])
    w[3] *= np.float32(1e-4)
    blocks = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_1).reshape(8, -1, 20)
    d = np.ascontiguousarray(blocks[..., 0:2]).view(np.float16)[..., 0].astype(np.float32)
    m = np.ascontiguousarray(blocks[..., 2:4]).view(np.float16)[..., 0].astype(np.float32)
    q = np.concatenate([blocks[..., 4:] & 15, blocks[..., 4:] >> 4], axis=2).reshape(8, 128)
    for got_q, got_d, got_m in (ref.quantize_q4_1(w), _unpacked(Q4Weight.from_float(w))):
        np.testing.assert_array_equal(got_q, q)
        np.testing.assert_array_equal(got_d, d)
        np.testing.assert_array_equal(got_m, m)
    np.testing.assert_array_equal(
        Q4Weight.from_float(w).dequantize(),
        gguf.quants.dequantize(blocks.reshape(8, -1), gguf.GGMLQuantizationType.Q4_1),
    )


def _unpacked(w: Q4Weight):
    return (w.codes(), *w.scales())


@given(st.integers(1, 40), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_packing_round_trips(n, blocks, seed):
    """Codes, scales and offsets come back in the order given, SwiGLU's gate/up pairs
    layout included."""
    rng = np.random.default_rng(seed)
    q = rng.integers(0, 16, (n, 32 * blocks)).astype(np.uint8)
    d = rng.normal(size=(n, blocks)).astype(np.float16).astype(np.float32)
    m = rng.normal(size=(n, blocks)).astype(np.float16).astype(np.float32)
    w = Q4Weight(q, d, m, pairs=n % 16 == 0)
    got_q, got_d, got_m = _unpacked(w)
    np.testing.assert_array_equal(got_q, q)
    np.testing.assert_array_equal(got_d, d)
    np.testing.assert_array_equal(got_m, m)
    assert w.nbytes == -(-n // 16) * 16 * blocks * 20  # 0.625 bytes a weight (+ padded rows)


# ------------------------------------------------------------------ the kernels
@given(
    st.integers(1, 9),
    st.integers(1, 70),
    st.integers(1, 5),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_kernels_equal_the_reference(m, n, blocks, seed, parallel):
    """Every shape off the 16-row grid, every kernel this CPU runs, serial and parallel:
    the bits of the plain-numpy twin (the same float32 operations in the same order)."""
    rng = np.random.default_rng(seed)
    w = Q4Weight.from_float(_weights(rng, n, 32 * blocks))
    x = (rng.normal(size=(m, 32 * blocks)) * rng.uniform(1e-3, 1e3)).astype(np.float32)
    x[0, :32] = 0  # an all-zero activation block: scale 0
    bias = rng.normal(size=n).astype(np.float32)
    want = ref.q4_linear(x, w.codes(), *w.scales(), bias)
    old = config.GEMM_PATH
    try:
        for path in HERE:
            config.GEMM_PATH = path
            np.testing.assert_array_equal(_run(x, w, bias, parallel), want)
    finally:
        config.GEMM_PATH = old


@given(st.integers(1, 6), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_swiglu_in_the_store_gives_the_two_passes_bits(m, f16, blocks, seed):
    """Gate/up pairs: the product writes ``silu(gate) * up`` itself, the bits of the
    Linear's output then ``kernels.decoder._swiglu``, on every kernel this CPU runs."""
    from numbaq.kernels import decoder as kd

    rng = np.random.default_rng(seed)
    f, k = 16 * f16, 32 * blocks
    w = Q4Weight.from_float(_weights(rng, 2 * f, k), pairs=True)
    x = rng.normal(size=(m, k)).astype(np.float32)
    bias = rng.normal(size=2 * f).astype(np.float32)
    want = np.empty((m, f), np.float32)
    kd._swiglu(ref.q4_linear(x, w.codes(), *w.scales(), bias), want)
    np.testing.assert_allclose(
        want,
        ref.swiglu(*np.split(ref.q4_linear(x, w.codes(), *w.scales(), bias), 2, axis=1)),
        rtol=1e-5,
        atol=1e-5,
    )
    old = config.GEMM_PATH
    try:
        for path in HERE:
            config.GEMM_PATH = path
            for parallel in (False, True):
                y = np.empty((m, f), np.float32)
                kernel, args = engine.bound_q4_linear(x, w, bias, y, glu=True)
                engine.check_blocks_status(kernel(*args[:-1], parallel))
                np.testing.assert_array_equal(y, want)
    finally:
        config.GEMM_PATH = old


def test_close_to_the_float_product(q4_path):
    """The dequantized weights times x: only the activations' blocks (8 bits, about
    1 / 254 of each block's range) stand between them."""
    rng = np.random.default_rng(1)
    w = Q4Weight.from_float(_weights(rng, 100, 256, special=False))
    x = rng.normal(size=(5, 256)).astype(np.float32)
    y = Q4Linear(w)(x)
    want = x.astype(np.float64) @ w.dequantize().T.astype(np.float64)
    assert np.abs(y - want).max() <= 0.01 * np.abs(want).max()


def test_threads_and_batch_do_not_change_bits(q4_path):
    rng = np.random.default_rng(2)
    layer = Q4Linear(Q4Weight.from_float(_weights(rng, 300, 576)), rng.normal(size=300))
    x = rng.normal(size=(7, 576)).astype(np.float32)
    many = layer(x)
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = layer(x)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(one, many)
    alone = np.concatenate([layer(x[i : i + 1]) for i in range(7)])
    np.testing.assert_array_equal(alone, many)


def test_zero_and_constant_inputs(q4_path):
    rng = np.random.default_rng(3)
    w = _weights(rng, 20, 64)
    bias = rng.normal(size=20).astype(np.float32)
    layer = Q4Linear.from_float(Linear(w, bias))
    np.testing.assert_array_equal(layer(np.zeros((2, 64), np.float32)), np.tile(bias, (2, 1)))
    const = layer(np.full((1, 64), 2.0, np.float32))
    q = layer.qweight
    np.testing.assert_allclose(const[0], 2 * q.dequantize().sum(axis=1) + bias, rtol=1e-5)


def test_leading_axes_and_trace(q4_path):
    import numbaq

    rng = np.random.default_rng(4)
    layer = Q4Linear.from_float(Linear(_weights(rng, 8, 32)))
    x = rng.normal(size=(2, 3, 32)).astype(np.float32)
    y = layer(x)
    assert y.shape == (2, 3, 8)
    np.testing.assert_array_equal(y.reshape(6, 8), layer(x.reshape(6, 32)))
    calls = numbaq.trace(layer, x)[""]
    assert len(calls) == 1 and calls[0]["scale"].shape == (6, 1)  # a scale per row and block


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "q, d, m, match",
    [
        (
            np.zeros((2, 30), np.uint8),
            np.zeros((2, 1)),
            np.zeros((2, 1)),
            "K a positive multiple of 32",
        ),
        (np.full((2, 32), 16, np.uint8), np.zeros((2, 1)), np.zeros((2, 1)), r"\[0, 15\]"),
        (np.zeros((2, 32), np.float32), np.zeros((2, 1)), np.zeros((2, 1)), r"\[0, 15\]"),
        (
            np.zeros((2, 32), np.uint8),
            np.zeros((2, 2)),
            np.zeros((2, 1)),
            r"d: shape \(N, K // 32\)",
        ),
        (np.zeros((2, 32), np.uint8), np.zeros((2, 1)), np.full((2, 1), np.nan), "m"),
        (np.zeros((2, 32), np.uint8), np.full((2, 1), 0.1), np.zeros((2, 1)), "half precision"),
        (np.zeros((2, 32), np.uint8), np.full((2, 1), 1e6), np.zeros((2, 1)), "half precision"),
    ],
)
def test_bad_weights(q, d, m, match):
    with pytest.raises(ValueError, match=match):
        Q4Weight(q, d, m)
    with pytest.raises(ValueError, match=r"pairs needs N .* a multiple of 16"):
        Q4Weight(np.zeros((24, 32), np.uint8), np.zeros((24, 1)), np.zeros((24, 1)), pairs=True)


def test_bad_float_weights_and_layer_input(q4_path):
    with pytest.raises(ValueError, match="K a positive multiple of 32"):
        Q4Weight.from_float(np.zeros((3, 40), np.float32))
    with pytest.raises(ValueError, match="w"):
        Q4Weight.from_float(np.full((3, 32), np.inf, np.float32))
    with pytest.raises(TypeError, match="Q4Weight"):
        Q4Linear(np.zeros((2, 32)))
    layer = Q4Linear.from_float(Linear(np.ones((4, 32), np.float32)))
    with pytest.raises(ValueError, match="Q4Linear"):
        layer(np.ones((2, 31), np.float32))
    bad = np.ones((2, 32), np.float32)
    bad[1, 5] = np.nan
    with pytest.raises(ValueError, match=r"Q4Linear.*NaN or Inf"):
        layer(bad)
    big = Q4Linear.from_float(Linear(np.full((4, 32), 60000.0, np.float32)))
    with pytest.raises(ValueError, match=r"Q4Linear: the output .* overflow"):
        big(np.full((1, 32), 3e38, np.float32))


# ------------------------------------------------------------------ Q8_0: the one-row product
@pytest.mark.skipif(not paths.supported("vnni512"), reason="the Q8_0 row kernel needs avx512vnni")
@given(st.integers(1, 70), st.integers(1, 5), st.booleans(), st.integers(0, 2**32 - 1))
def test_q8_row_kernel_gives_the_block_tiles_bits(n, blocks, grouped, seed):
    """One row of a BLOCK_Q8_0 Linear runs kernels.q8 (weights + 128, the activation
    block's sum as the correction): the bits of the block tiles (the same row among
    others) and of the reference, per-group and per-channel weights, on any thread count."""
    from numbaq import quantize_weight, quantized_linear, schemes

    rng = np.random.default_rng(seed)
    k = 32 * blocks
    w = quantize_weight(_weights(rng, n, k), group_size=32 if grouped else None)
    x = (rng.normal(size=(3, k)) * rng.uniform(1e-3, 1e3)).astype(np.float32)
    bias = rng.normal(size=n).astype(np.float32)
    old, threads = config.GEMM_PATH, numba.get_num_threads()
    try:
        config.GEMM_PATH = "vnni512"
        assert (
            engine.bound_linear_blocks(
                x[:1], schemes.BLOCK_Q8_0, w, bias, 0, np.empty((1, n), np.float32)
            )[0].__name__
            == "q8_gemv"
        )
        tiles = quantized_linear(x, w, bias, "BLOCK_Q8_0")
        for t in (1, threads):
            numba.set_num_threads(t)
            for i in range(3):
                np.testing.assert_array_equal(
                    quantized_linear(x[i : i + 1], w, bias, "BLOCK_Q8_0"), tiles[i : i + 1]
                )
    finally:
        config.GEMM_PATH = old
        numba.set_num_threads(threads)
    want = ref.quantized_linear(x, w.q, w.scale, bias, schemes.BLOCK_Q8_0)
    np.testing.assert_array_equal(tiles, want)


@pytest.mark.parametrize(
    "x, error, match",
    [
        (np.zeros((0, 32), np.float32), ValueError, "Q4Linear: x is empty"),
        (np.zeros((2, 32), np.int32), TypeError, "Q4Linear: x must be a floating-point array"),
        (np.full((1, 32), 1e300), ValueError, "Q4Linear: x contains NaN or Inf"),
        ("abc", TypeError, "Q4Linear: x must be a floating-point array"),
    ],
)
def test_bad_input_classes(x, error, match):
    layer = Q4Linear.from_float(Linear(np.ones((4, 32), np.float32)))
    with pytest.raises(error, match=match):
        layer(x)


def test_non_contiguous_and_float64_input_give_the_float32_bits(q4_path):
    rng = np.random.default_rng(5)
    layer = Q4Linear.from_float(Linear(_weights(rng, 20, 64)))
    x = rng.normal(size=(3, 128)).astype(np.float32)[:, ::2]
    want = layer(np.ascontiguousarray(x))
    np.testing.assert_array_equal(layer(x), want)
    np.testing.assert_array_equal(layer(x.astype(np.float64)), want)
