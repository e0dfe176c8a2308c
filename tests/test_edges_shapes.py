"""Scale and zero-point arrays whose size fits but whose shape does not: (N, 1) for (N,),
(1, N) per channel, transposed per-group or per-block scales, extra or missing unit axes.

Every verb that takes ``scale`` / ``zero_point`` arrays (``QParams`` and the verbs that
read one, ``matmul_integer``'s zero points, ``QuantizedWeight``'s scales) refuses them with
a ValueError naming the argument and the shape it expects; nothing is reshaped silently.
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import numbaq as nq


def same_size_shapes(shape: tuple) -> set[tuple]:
    """Shapes holding as many values as ``shape`` but laid out otherwise: its
    permutations, a unit axis put in or taken out, flattened, a dimension split in two."""
    shape = tuple(shape)
    out = set(itertools.permutations(shape))
    for i in range(len(shape) + 1):
        out.add(shape[:i] + (1,) + shape[i:])
    out.add(tuple(d for d in shape if d != 1))
    out.add((math.prod(shape),))
    for i, d in enumerate(shape):
        for f in range(2, d):
            if d % f == 0:
                out.add(shape[:i] + (f, d // f) + shape[i + 1 :])
    out.discard(shape)
    return out


def _refused(call, name: str, expected) -> None:
    """``call()`` raises a ValueError that names ``name`` and every expected shape."""
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert re.search(rf"(?<!\w){re.escape(name)}(?!\w)", message), message
    for shape in expected:
        assert str(tuple(shape)) in message, message


def _qparams(scale, zero_point=0, granularity="row", block_size=None):
    scale = np.asarray(scale, np.float32)
    zero_point = np.broadcast_to(np.asarray(zero_point, np.int32), scale.shape)
    return nq.QParams(scale, zero_point, "int8", -128, 127, granularity, block_size)


dims = st.integers(2, 6)


@given(r1=dims, r2=dims, k=dims, data=st.data())
def test_qparams_zero_point_shape_must_be_scales(r1, r2, k, data):
    """QParams: a zero point of another shape than the scale (and not one value)."""
    scale = np.full((r1, r2), 0.1, np.float32)
    wrong = data.draw(st.sampled_from(sorted(same_size_shapes(scale.shape))))
    _refused(
        lambda: nq.QParams(scale, np.zeros(wrong, np.int32), "int8", -128, 127, "row"),
        "zero_point",
        [scale.shape],
    )
    # one value is a zero point for all, in any shape
    for one in [(), (1,), (1, 1)]:
        nq.QParams(scale, np.zeros(one, np.int32), "int8", -128, 127, "row")


LAYOUTS = {  # granularity -> (x shape, block_size, the parameter shape it needs)
    "row": lambda r1, r2, k: ((r1, r2, k), None, (r1, r2)),
    "column": lambda r1, r2, k: ((r1, k), None, (k,)),
    "block": lambda r1, r2, k: ((r1, 2 * k), 2, (r1, k)),
    "tensor": lambda r1, r2, k: ((r1, k), None, ()),
}


@pytest.mark.parametrize("verb", ["quantize", "dequantize", "fake_quantize"])
@pytest.mark.parametrize("granularity", list(LAYOUTS))
@given(r1=dims, r2=dims, k=dims, data=st.data())
def test_verbs_refuse_scales_of_another_shape(verb, granularity, r1, r2, k, data):
    """quantize, dequantize and fake_quantize: qparams whose scales have the size of the
    input's groups but another shape."""
    x_shape, block_size, needed = LAYOUTS[granularity](r1, r2, k)
    wrong_shapes = same_size_shapes(needed) if needed else {(1,), (1, 1)}
    wrong = data.draw(st.sampled_from(sorted(wrong_shapes)))
    qp = _qparams(np.full(wrong, 0.05), 1, granularity, block_size)
    x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
    calls = {
        "quantize": lambda: nq.quantize(x, qp),
        "dequantize": lambda: nq.dequantize(np.zeros(x_shape, np.int8), qp),
        "fake_quantize": lambda: nq.fake_quantize(x, qp),
    }
    _refused(calls[verb], "qparams.scale", [needed])
    # the right shape works
    right = _qparams(np.full(needed, 0.05), 1, granularity, block_size)
    assert nq.fake_quantize(x, right).shape == x_shape


@given(m=dims, n=dims, k=dims, data=st.data())
def test_matmul_integer_zero_points_of_another_shape(m, n, k, data):
    """a_zero_point: scalar, (M,) or (M, 1); b_zero_point: scalar, (N,) or (1, N), as ONNX
    MatMulInteger; (1, M), (N, 1) and other layouts of as many values are refused."""
    a = np.ones((m, k), np.uint8)
    b = np.ones((k, n), np.int8)
    good_a, good_b = [(m,), (m, 1)], [(n,), (1, n)]
    wrong_a = data.draw(st.sampled_from(sorted(same_size_shapes((m,)) - set(good_a))))
    wrong_b = data.draw(st.sampled_from(sorted(same_size_shapes((n,)) - set(good_b))))
    _refused(lambda: nq.matmul_integer(a, b, np.full(wrong_a, 3, np.uint8)), "a_zero_point", good_a)
    _refused(
        lambda: nq.matmul_integer(a, b, None, np.full(wrong_b, 2, np.int8)),
        "b_zero_point",
        good_b,
    )
    expected = nq.matmul_integer(a, b, np.uint8(3), np.int8(2))
    for sa, sb in itertools.product(good_a + [(), (1,)], good_b + [(), (1, 1)]):
        za, zb = np.full(sa, 3, np.uint8), np.full(sb, 2, np.int8)
        np.testing.assert_array_equal(nq.matmul_integer(a, b, za, zb), expected)


@given(n=dims, groups=dims, data=st.data())
def test_from_int8_scales_of_another_shape(n, groups, data):
    """QuantizedWeight.from_int8: per-channel scales (N,) given as (N, 1) or (1, N),
    per-group scales (N, G) transposed or flattened, are refused."""
    assume(n != groups)
    k = 4 * groups
    q = np.ones((n, k), np.int8)
    # per channel: (1, N) and (N, 1), and with more axes
    for wrong in sorted(same_size_shapes((n,)) - {(n,)}):
        _refused(
            lambda wrong=wrong: nq.QuantizedWeight.from_int8(q, np.ones(wrong)), "scale", [(n,)]
        )
    # per group: the transposed array and the other layouts of N * G values
    wrong = data.draw(st.sampled_from(sorted(same_size_shapes((n, groups)))))
    if len(wrong) == 2 and wrong[0] == n and k % wrong[1] == 0:
        return  # another valid grouping of K (N, G') with G' dividing K: not a wrong shape
    _refused(lambda: nq.QuantizedWeight.from_int8(q, np.ones(wrong)), "scale", [])
    # a per-group scheme says the groups: the scales must be exactly (N, K // group_size)
    scheme = nq.QScheme("int8", granularity="block", block_size=4, name="weights")
    _refused(
        lambda: nq.QuantizedWeight.from_int8(q, np.ones(wrong), scheme), "scale", [(n, groups)]
    )
    ok = nq.QuantizedWeight.from_int8(q, np.ones((n, groups)), scheme)
    assert ok.group_size == 4
    # and the dataclass itself refuses scales whose groups contradict the scheme
    if groups % 2 == 0:
        other = nq.QScheme("int8", granularity="block", block_size=8, name="weights")
        _refused(
            lambda: nq.QuantizedWeight(ok.q, ok.scale, other, ok.col_sums),
            "scale",
            [(n, groups // 2)],
        )


def test_from_int8_group_of_all_k_needs_its_scheme():
    """(N, 1) is one group of all K: taken with a per-group scheme that says so (as
    quantize_weight(group_size=K) makes), refused without one (it looks like (N,))."""
    w = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    qw = nq.quantize_weight(w, group_size=8)
    assert qw.scale.shape == (3, 1)
    again = nq.QuantizedWeight.from_int8(qw.q, qw.scale, qw.scheme)
    np.testing.assert_array_equal(again.dequantize(), qw.dequantize())
    _refused(lambda: nq.QuantizedWeight.from_int8(qw.q, qw.scale), "scale", [(3,)])
    # the per-channel form of the same scales is taken
    nq.QuantizedWeight.from_int8(qw.q, qw.scale.reshape(-1))


def test_static_linear_refuses_non_tensor_activation_scales():
    """StaticQuantLinear's activation qparams hold one scale: (1,) is refused too."""
    qw = nq.quantize_weight(np.eye(4, dtype=np.float32))
    for shape in [(1,), (1, 1)]:
        qp = nq.QParams(np.full(shape, 0.1, np.float32), np.zeros(shape, np.int32), "uint8", 0, 255)
        with pytest.raises(ValueError, match="per tensor"):
            nq.StaticQuantLinear(qw, None, qp)
