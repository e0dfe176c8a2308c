"""numbaq.dynamic_quantize_linear against ONNX's own reference implementation."""

import numpy as np
import pytest
from hypothesis import given

import numbaq as nq
from numbaq import reference as ref

from .conftest import float_arrays, onnx_cases

onnx = pytest.importorskip("onnx", reason="onnx is not installed: pip install -e .[test]")
from onnx import helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

_NODE = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "y_scale", "y_zero_point"])
_GRAPH = helper.make_graph(
    [_NODE],
    "dql",
    [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
    [
        helper.make_tensor_value_info("y", onnx.TensorProto.UINT8, None),
        helper.make_tensor_value_info("y_scale", onnx.TensorProto.FLOAT, None),
        helper.make_tensor_value_info("y_zero_point", onnx.TensorProto.UINT8, None),
    ],
)
_EVALUATOR = ReferenceEvaluator(helper.make_model(_GRAPH))


def _onnx(x):
    return _EVALUATOR.run(None, {"x": x})


def _assert_same(ours, theirs):
    y, s, z = ours
    ey, es, ez = theirs
    assert y.dtype == np.uint8 and z.dtype == np.uint8 and s.dtype == np.float32
    np.testing.assert_array_equal(y, ey)
    assert s == es and z == ez


_CASES = onnx_cases("DynamicQuantizeLinear")


def test_published_cases_were_found():
    assert len(_CASES) >= 3


@pytest.mark.parametrize("case", _CASES, ids=lambda c: c.name)
def test_published_test_cases(case):
    for inputs, outputs in case.data_sets:
        _assert_same(nq.dynamic_quantize_linear(inputs[0]), outputs)


@given(x=float_arrays(min_dims=0, max_dims=3))
def test_random_tensors_match_onnx_reference(x):
    _assert_same(nq.dynamic_quantize_linear(x), _onnx(x))


@pytest.mark.parametrize("seed", range(20))
def test_realistic_activations_match_onnx_reference(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((int(rng.integers(1, 300)), 64)).astype(np.float32)
    x *= np.float32(10.0 ** rng.uniform(-3, 3))
    if seed % 3 == 0:
        x = np.maximum(x, 0)  # post-ReLU: the zero point sits at 0
    _assert_same(nq.dynamic_quantize_linear(x), _onnx(x))


def test_reference_twin_matches_onnx_reference():
    x = np.random.default_rng(7).standard_normal((17, 9)).astype(np.float32)
    _assert_same(ref.dynamic_quantize_linear(x), _onnx(x))
