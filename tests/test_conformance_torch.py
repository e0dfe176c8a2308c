"""Under numbaq.schemes.TORCH, dynamic_quantize equals PyTorch's per-tensor dynamic
activation quantization bit for bit (optional: runs where torch is installed)."""

import warnings

import numpy as np
import pytest
from hypothesis import given

import numbaq as nq

from .conftest import float_arrays

torch = pytest.importorskip(
    "torch",
    reason="torch is not installed; `pip install torch==2.13.0` (CPU build) runs these "
    "PyTorch conformance tests",
)


def _torch(x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensors are deprecated in torch
        q = torch.quantize_per_tensor_dynamic(torch.from_numpy(x), torch.quint8, True)
        return q.int_repr().numpy(), np.float32(q.q_scale()), q.q_zero_point()


def _assert_same(x):
    q, qp = nq.dynamic_quantize(x, nq.schemes.TORCH)
    tq, tscale, tzp = _torch(x)
    np.testing.assert_array_equal(q, tq)
    assert qp.scale == tscale
    assert int(qp.zero_point) == tzp


@given(x=float_arrays(min_dims=1, max_dims=3))
def test_random_tensors_match_torch(x):
    _assert_same(x)


@pytest.mark.parametrize("seed", range(30))
def test_activations_match_torch(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((int(rng.integers(1, 200)), 768)).astype(np.float32)
    x *= np.float32(10.0 ** rng.uniform(-6, 4))
    if seed % 3 == 0:
        x = np.abs(x)
    elif seed % 3 == 1:
        x[:, rng.integers(0, 768, 8)] *= 20  # outlier channels
    _assert_same(x)


@pytest.mark.parametrize(
    "x",
    [
        np.zeros(5),
        np.full(4, 2.5),
        np.full(4, -1e-9),
        np.array([-1e-5, 3e-6]),
        np.array([0.0, 1e-4]),
    ],
    ids=["zeros", "constant", "tiny-negative", "small-scale", "small-positive"],
)
def test_torch_special_ranges(x):
    _assert_same(x.astype(np.float32))
