"""The fused LSTM/GRU recurrence (numbaq.engine.recurrence): blocks of hidden units, each
its gates' columns of the hidden projection and its units' update, split across threads.
It must give the bits of the step-by-step path (a dynamic Linear of h, then the gates),
on every GEMM path, for any thread count, hidden size (tails) and batch."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbaq as nq
from numbaq.kernels.rnn import gate_order


def test_gate_order_keeps_each_blocks_gates_together():
    order = gate_order(4, 5, 2)  # blocks of units [0, 1], [2, 3], [4]
    assert order.tolist() == [0, 1, 5, 6, 10, 11, 15, 16, 2, 3, 7, 8, 12, 13, 17, 18, 4, 9, 14, 19]
    assert sorted(gate_order(3, 37, 64).tolist()) == list(range(111))


def _step_by_step(model, x):
    """The unfused path: tracing makes every step a dynamic Linear, then the gates."""
    model.trace_log = []
    try:
        return model(x)
    finally:
        model.trace_log = None


@settings(max_examples=12)
@given(
    mode=st.sampled_from(["LSTM", "GRU"]),
    hidden=st.integers(1, 70),
    batch=st.integers(1, 5),
    bidirectional=st.booleans(),
    scheme=st.sampled_from(["PER_TOKEN_UINT8", "PER_TOKEN_INT8", "ONNX", "TORCH"]),
    seed=st.integers(0, 2**16),
)
def test_fused_recurrence_is_the_step_by_step_path(
    gemm_path, mode, hidden, batch, bidirectional, scheme, seed
):
    cls = nq.LSTM if mode == "LSTM" else nq.GRU
    model = nq.quantize_dynamic(cls(7, hidden, bidirectional=bidirectional, seed=seed), scheme)
    x = np.random.default_rng(seed).normal(size=(6, batch, 7)).astype(np.float32)
    fused, steps = model(x), _step_by_step(model, x)
    np.testing.assert_array_equal(fused[0], steps[0])
    for a, b in zip(
        fused[1] if mode == "LSTM" else [fused[1]], steps[1] if mode == "LSTM" else [steps[1]]
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_one_and_two_threads_give_the_same_bits(mode):
    """Large enough for the parallel twin (W_hh >= 256 KB): blocks split across threads."""
    cls = nq.LSTM if mode == "LSTM" else nq.GRU
    model = nq.quantize_dynamic(cls(32, 300, seed=1))
    x = np.random.default_rng(1).normal(size=(5, 3, 32)).astype(np.float32)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = model(x)[0]
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = model(x)[0]
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, _step_by_step(model, x)[0])
