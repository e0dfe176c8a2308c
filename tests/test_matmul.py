"""matmul_integer (ONNX MatMulInteger), quantize_weight and quantized_linear."""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numbaq as nq
from numbaq import config, metrics
from numbaq import matmul as mm
from numbaq import reference as ref
from numbaq.kernels import paths

from .conftest import onnx_cases

DTYPES = [np.uint8, np.int8]


@pytest.fixture
def path(gemm_path):
    return gemm_path


def _operand(rng, dtype, shape, extreme):
    info = np.iinfo(dtype)
    if extreme:
        return rng.choice(np.array([info.min, info.max], dtype), shape)
    return rng.integers(info.min, info.max + 1, shape, dtype=dtype)


def _zero_point(rng, dtype, form, n):
    info = np.iinfo(dtype)
    if form == "none":
        return None
    if form == "scalar":
        return dtype(rng.integers(info.min, info.max + 1))
    return rng.integers(info.min, info.max + 1, n, dtype=dtype)


@given(
    m=st.integers(1, 300),
    k=st.integers(1, 300),
    n=st.integers(1, 300),
    a_dtype=st.sampled_from(DTYPES),
    b_dtype=st.sampled_from(DTYPES),
    a_form=st.sampled_from(["none", "scalar", "vector"]),
    b_form=st.sampled_from(["none", "scalar", "vector"]),
    extreme=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_matmul_integer_matches_reference(
    path, m, k, n, a_dtype, b_dtype, a_form, b_form, extreme, seed
):
    rng = np.random.default_rng(seed)
    a = _operand(rng, a_dtype, (m, k), extreme)
    b = _operand(rng, b_dtype, (k, n), extreme)
    za = _zero_point(rng, a_dtype, a_form, m)
    zb = _zero_point(rng, b_dtype, b_form, n)
    expected = ref.matmul_integer(a, b, 0 if za is None else za, 0 if zb is None else zb)
    np.testing.assert_array_equal(mm.matmul_integer(a, b, za, zb), expected)


onnx = pytest.importorskip("onnx", reason="onnx is not installed: pip install -e .[test]")


def _onnx_matmul_integer(a, b, za, zb):
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    node = helper.make_node("MatMulInteger", ["A", "B", "za", "zb"], ["Y"])
    t = lambda name, d: helper.make_tensor_value_info(  # noqa: E731
        name, helper.np_dtype_to_tensor_dtype(np.dtype(d)), None
    )
    graph = helper.make_graph(
        [node],
        "mmi",
        [t("A", a.dtype), t("B", b.dtype), t("za", a.dtype), t("zb", b.dtype)],
        [t("Y", np.int32)],
    )
    return ReferenceEvaluator(helper.make_model(graph)).run(
        None, {"A": a, "B": b, "za": za, "zb": zb}
    )[0]


def test_published_onnx_test_case(path):
    cases = onnx_cases("MatMulInteger")
    assert cases
    for case in cases:
        for inputs, outputs in case.data_sets:
            np.testing.assert_array_equal(mm.matmul_integer(*inputs), outputs[0])


@pytest.mark.parametrize("a_dtype", DTYPES)
@pytest.mark.parametrize("b_dtype", DTYPES)
@pytest.mark.parametrize("per_row", [False, True])
def test_matches_onnx_reference(path, a_dtype, b_dtype, per_row):
    rng = np.random.default_rng(5)
    m, k, n = 33, 70, 47
    a, b = _operand(rng, a_dtype, (m, k), False), _operand(rng, b_dtype, (k, n), False)
    za = _zero_point(rng, a_dtype, "vector" if per_row else "scalar", m)
    zb = _zero_point(rng, b_dtype, "vector" if per_row else "scalar", n)
    # onnx.reference subtracts a_zero_point by numpy broadcasting: a per-row one is (M, 1)
    expected = _onnx_matmul_integer(a, b, za.reshape(-1, 1) if per_row else za, zb)
    np.testing.assert_array_equal(mm.matmul_integer(a, b, za, zb), expected)


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((np.zeros((2, 3), np.uint8), np.zeros((4, 2), np.int8)), ValueError, "their K differ"),
        (
            (np.zeros((2, 3), np.int16), np.zeros((3, 2), np.int8)),
            TypeError,
            "a must be uint8 or int8",
        ),
        ((np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.float32)), TypeError, "b must be uint8"),
        ((np.zeros(3, np.uint8), np.zeros((3, 2), np.int8)), ValueError, "a must be 2-D"),
        ((np.zeros((0, 3), np.uint8), np.zeros((3, 2), np.int8)), ValueError, "a is empty"),
        (
            (np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.int8), np.array([1, 2, 3], np.uint8)),
            ValueError,
            "one value per row of a",
        ),
        ((np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.int8), 300), ValueError, r"\[0, 255\]"),
        ((np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.int8), 1.5), TypeError, "integer"),
    ],
)
def test_matmul_integer_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        mm.matmul_integer(*args)


def test_k_past_the_int32_bound_is_refused():
    assert mm.max_k(255, 128) == 65793 and mm.max_k(128, 128) == 131071
    k = 65794
    with pytest.raises(ValueError, match="K=65794 can overflow the int32 accumulator"):
        mm.matmul_integer(np.zeros((1, k), np.uint8), np.zeros((k, 1), np.int8))
    # the same K is fine for int8 x int8 with zero points 0 (bound 131071)
    out = mm.matmul_integer(np.full((1, k), -128, np.int8), np.full((k, 1), -128, np.int8))
    assert out[0, 0] == 128 * 128 * k  # 1,077,985,... < 2**31


# ------------------------------------------------------------------ the Linear
SCHEMES = ["ONNX", "TORCH", "PER_TOKEN_INT8", "PER_TOKEN_UINT8", "PER_TOKEN_UINT7", "BLOCK_Q8_0"]


@pytest.mark.parametrize("scheme", SCHEMES)
@given(
    m=st.integers(1, 40),
    k_blocks=st.integers(1, 6),
    n=st.integers(1, 130),
    seed=st.integers(0, 2**31),
    with_bias=st.booleans(),
    activation=st.sampled_from([None, "relu"]),
)
def test_quantized_linear_matches_reference(
    path, scheme, m, k_blocks, n, seed, with_bias, activation
):
    rng = np.random.default_rng(seed)
    k = 32 * k_blocks if scheme == "BLOCK_Q8_0" else 32 * k_blocks - rng.integers(0, 4)
    x = (rng.standard_normal((m, k)) * rng.uniform(0.1, 10, (m, 1))).astype(np.float32)
    w = (rng.standard_normal((n, k)) * 0.05).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32) if with_bias else None
    qw = mm.quantize_weight(w)
    y = mm.quantized_linear(x, qw, bias, scheme, activation)
    expected = ref.quantized_linear(x, qw.q, qw.scale, bias, nq.schemes.get(scheme), activation)
    np.testing.assert_array_equal(y, expected)  # the same float32 ops in the same order


def test_gelu_epilogue():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((9, 64)).astype(np.float32)
    qw = mm.quantize_weight(rng.standard_normal((20, 64)).astype(np.float32))
    y = mm.quantized_linear(x, qw, None, "PER_TOKEN_INT8", "gelu")
    expected = ref.quantized_linear(x, qw.q, qw.scale, None, nq.schemes.PER_TOKEN_INT8, "gelu")
    # float32 erf against float64 erf rounded to float32: a few ulps of |y| <= 30
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scheme", ["ONNX", "PER_TOKEN_INT8"])
def test_quantized_linear_accuracy_bound(scheme):
    """SQNR against float64 math, above the bound the two roundings allow.

    Each activation and weight is off by at most half a step, so the relative error
    is about sqrt(1/12) / 127.5 per operand for uniform rounding noise; two operands
    give an SQNR near 10 log10(3 * 127**2 / 2) = 44 dB for int8 at a well-used range.
    Gaussian data uses about 1/3.5 of its range, costing 20 log10(3.5) = 11 dB each side
    on average, so we ask for 30 dB.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 768)).astype(np.float32)
    w = rng.standard_normal((256, 768)).astype(np.float32)
    y = mm.quantized_linear(x, mm.quantize_weight(w), scheme=scheme)
    assert metrics.sqnr(x.astype(np.float64) @ w.T.astype(np.float64), y) > 30


@pytest.mark.parametrize("scheme", ["ONNX", "PER_TOKEN_INT8", "BLOCK_Q8_0"])
def test_one_thread_equals_n_threads(scheme, monkeypatch):
    monkeypatch.setattr(config, "GEMM_PARALLEL_MIN", 0)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((100, 224)).astype(np.float32)  # K: 7 blocks of 32
    qw = mm.quantize_weight(rng.standard_normal((150, 224)).astype(np.float32))
    before = numba.get_num_threads()
    try:
        results = []
        for t in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(t)
            results.append(mm.quantized_linear(x, qw, None, scheme))
    finally:
        numba.set_num_threads(before)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_leading_dims_and_weight_repr():
    rng = np.random.default_rng(4)
    qw = mm.quantize_weight(rng.standard_normal((6, 8)).astype(np.float32))
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    y = mm.quantized_linear(x, qw)
    assert y.shape == (2, 3, 6)
    np.testing.assert_array_equal(y.reshape(6, 6), mm.quantized_linear(x.reshape(6, 8), qw))
    assert repr(qw).startswith("QuantizedWeight(6 x 8 int8 per channel, q in [-127, 127]")


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda qw: mm.quantized_linear(np.ones((2, 7)), qw), ValueError, r"shape \(\.\.\., 8\)"),
        (lambda qw: mm.quantized_linear(np.ones((2, 8), np.int32), qw), TypeError, "floating"),
        (lambda qw: mm.quantized_linear(np.full((2, 8), np.nan), qw), ValueError, "NaN or Inf"),
        (lambda qw: mm.quantized_linear(np.ones((2, 8)), qw, np.ones(5)), ValueError, "bias"),
        (
            lambda qw: mm.quantized_linear(np.ones((2, 8)), qw, activation="tanh"),
            ValueError,
            "activation",
        ),
        (lambda qw: mm.quantized_linear(np.ones((2, 8)), qw.q), TypeError, "QuantizedWeight"),
        (lambda qw: mm.quantized_linear(np.ones((0, 8)), qw), ValueError, "empty"),
        (lambda qw: mm.quantize_weight(np.ones(8)), ValueError, "2-D"),
        (lambda qw: mm.quantize_weight(np.ones((2, 8)), dtype="uint8"), ValueError, "'int8'"),
    ],
)
def test_quantized_linear_bad_input(call, error, match):
    qw = mm.quantize_weight(np.linspace(-1, 1, 48).reshape(6, 8))
    with pytest.raises(error, match=match):
        call(qw)


def test_non_contiguous_input_is_copied():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16, 64)).astype(np.float32)
    qw = mm.quantize_weight(rng.standard_normal((8, 32)).astype(np.float32))
    np.testing.assert_array_equal(
        mm.quantized_linear(x[:, ::2], qw), mm.quantized_linear(np.ascontiguousarray(x[:, ::2]), qw)
    )


def test_info_names_the_path(monkeypatch):
    info = mm.info()
    assert info["gemm_path"] in paths.PATHS and info["gemm_path_reason"] and info["amx"]
    monkeypatch.setattr(config, "GEMM_PATH", "plain")
    assert mm.info()["gemm_path"] == "plain"
    assert mm.info()["gemm_path_reason"] == "forced by numbaq.config.GEMM_PATH"


@pytest.mark.parametrize("dtype", ["int4", "int8"])
@pytest.mark.parametrize("scheme", ["PER_TOKEN_INT8", "BLOCK_Q8_0"])
def test_per_group_weights_match_reference(path, dtype, scheme):
    rng = np.random.default_rng(8)
    w = rng.normal(size=(40, 96)).astype(np.float32)
    w[:, 5] *= 30  # an outlier input channel: its group gets its own scale
    x = rng.normal(size=(7, 96)).astype(np.float32)
    b = rng.normal(size=40).astype(np.float32)
    qw = mm.quantize_weight(w, dtype=dtype, group_size=32)
    assert qw.group_size == 32 and qw.scale.shape == (40, 3)
    y = mm.quantized_linear(x, qw, b, scheme)
    np.testing.assert_array_equal(
        y, ref.quantized_linear(x, qw.q, qw.scale, b, nq.schemes.get(scheme))
    )
    per_channel = mm.quantized_linear(x, mm.quantize_weight(w, dtype=dtype), b, scheme)
    exact = x.astype(np.float64) @ w.T.astype(np.float64) + b
    assert metrics.sqnr(exact, y) > metrics.sqnr(exact, per_channel)


def test_per_group_weights_need_symmetric_int8_activations():
    qw = mm.quantize_weight(np.ones((4, 64), np.float32), dtype="int4", group_size=32)
    with pytest.raises(ValueError, match="symmetric int8 activations"):
        mm.quantized_linear(np.ones((2, 64)), qw, scheme="ONNX")
    with pytest.raises(ValueError, match=r"activation blocks \(16\) must match"):
        mm.quantized_linear(
            np.ones((2, 64)), qw, scheme=nq.schemes.BLOCK_Q8_0.replace(block_size=16)
        )


def test_block_scheme_names_the_blocks_that_hold_nan():
    """The fused block-scaled Linear (one kernel: quantize each block, then the tiles)
    refuses NaN/Inf and counts the blocks that hold it."""
    x = np.ones((3, 96), np.float32)
    x[1, 40] = np.nan
    x[2, 0] = np.inf
    qw = mm.quantize_weight(np.ones((8, 96), np.float32))
    with pytest.raises(ValueError, match=r"NaN or Inf \(in 2 blocks"):
        mm.quantized_linear(x, qw, scheme="BLOCK_Q8_0")


def test_block_panels_made_once_and_laid_out_panel_by_panel():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 64)).astype(np.float32)
    qw = mm.quantize_weight(w, group_size=32)
    scales, sums = qw.block_panels(32, 4)  # panels of 4 columns: [p][b][j]
    assert scales.shape == sums.shape == (2 * 2 * 4,) and scales.flags.c_contiguous
    want_sums = qw.q.reshape(5, 2, 32).sum(axis=2)
    for n in range(5):
        for b in range(2):
            at = ((n // 4) * 2 + b) * 4 + n % 4
            assert scales[at] == qw.scale[n, b] and sums[at] == want_sums[n, b]
    assert scales[(1 * 2 + 0) * 4 + 1] == 0 and sums[(1 * 2 + 1) * 4 + 3] == 0  # past N
    assert qw.block_panels(32, 4)[0] is scales  # cached with the weights' other arrays
    per_channel = mm.quantize_weight(w).block_panels(16, 1)[0].reshape(5, 4)
    np.testing.assert_array_equal(
        per_channel, np.repeat(mm.quantize_weight(w).scale[:, None], 4, 1)
    )


def test_derived_values_are_made_once_and_forgotten_on_request():
    """``QuantizedWeight.derived`` is the one cache of what the kernels derive from the
    weights: made once per key, kept, dropped by ``forget`` (one key or all) and by
    pickling."""
    import pickle

    qw = mm.quantize_weight(np.ones((4, 8), np.float32))
    made = []
    assert qw.derived(("x",), lambda v: made.append(v) or v, 1) == 1
    assert qw.derived(("x",), lambda v: made.append(v) or v, 2) == 1 and made == [1]
    packed = qw.packed("plain")
    assert qw.packed("plain") is packed
    qw.forget(("x",))
    assert qw.derived(("x",), lambda: 3) == 3 and qw.packed("plain") is packed
    assert pickle.loads(pickle.dumps(qw))._derived == {}
    qw.forget()
    assert qw.packed("plain") is not packed


def test_a_block_scheme_needs_k_a_multiple_of_its_block():
    qw = mm.quantize_weight(np.ones((4, 48), np.float32))
    with pytest.raises(ValueError, match=r"K = 48 is not a multiple of the block_size"):
        mm.quantized_linear(np.ones((2, 48), np.float32), qw, scheme="BLOCK_Q8_0")
