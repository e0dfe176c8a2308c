"""The fused LSTM/GRU recurrence (numbaq.engine.recurrence): blocks of hidden units, each
its gates' columns of the hidden projection and its units' update, split across threads.
It must give the bits of the step-by-step path (a dynamic Linear of h, then the gates),
on every GEMM path, for any number of blocks, hidden size (tails) and batch."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbaq as nq
from numbaq import config, engine
from numbaq.kernels.rnn import gate_order


def test_gate_order_keeps_each_blocks_gates_together():
    order = gate_order(4, 5, 2)  # blocks of units [0, 1], [2, 3], [4]
    assert order.tolist() == [0, 1, 5, 6, 10, 11, 15, 16, 2, 3, 7, 8, 12, 13, 17, 18, 4, 9, 14, 19]
    assert sorted(gate_order(3, 37, 64).tolist()) == list(range(111))
    assert gate_order(4, 6, 6).tolist() == list(range(24))  # one block: PyTorch's order


def _step_by_step(model, x):
    """The unfused path: tracing makes every step a dynamic Linear, then the gates."""
    model.trace_log = []
    try:
        return model(x)
    finally:
        model.trace_log = None


def _flat(result):
    out, state = result
    return [out, *(state if isinstance(state, tuple) else (state,))]


@settings(max_examples=15)
@given(
    mode=st.sampled_from(["LSTM", "GRU"]),
    hidden=st.integers(1, 70),
    batch=st.integers(1, 5),
    bidirectional=st.booleans(),
    scheme=st.sampled_from(
        ["PER_TOKEN_UINT8", "PER_TOKEN_INT8", "PER_TOKEN_UINT7", "ONNX", "TORCH"]
    ),
    tasks=st.sampled_from([1, 2, 5]),
    seed=st.integers(0, 2**16),
)
def test_fused_recurrence_is_the_step_by_step_path(
    gemm_path, monkeypatch, mode, hidden, batch, bidirectional, scheme, tasks, seed
):
    """``tasks`` blocks (forced: every step is "large"), more than the threads for 5."""
    cls = nq.LSTM if mode == "LSTM" else nq.GRU
    model = nq.quantize_dynamic(cls(7, hidden, bidirectional=bidirectional, seed=seed), scheme)
    x = np.random.default_rng(seed).normal(size=(6, batch, 7)).astype(np.float32)
    path, module = engine._scheme_kernels(nq.schemes.get(scheme))  # 7-bit: the companion
    calls = []
    with monkeypatch.context() as patch:
        patch.setattr(config, "GEMM_PARALLEL_MIN", 0)
        patch.setattr(config, "num_threads", lambda: tasks)
        parallel = module.recurrence_par
        patch.setattr(module, "recurrence_par", lambda *a: calls.append(a[-1]) or parallel(*a))
        fused = model(x)
    steps = _step_by_step(model, x)
    for a, b in zip(_flat(fused), _flat(steps), strict=True):
        np.testing.assert_array_equal(a, b)
    unit_block = engine._unit_block(path, 4 if mode == "LSTM" else 3, hidden, tasks)
    assert bool(calls) == (unit_block < hidden)  # the parallel twin ran, on several blocks


def test_per_group_hidden_weights_take_the_step_by_step_path():
    """The fused kernels take one scale per row of W_hh; per-group W_hh runs step by step."""
    lstm = nq.LSTM(8, 8, seed=2)
    names = ("weight_ih_l0", "weight_hh_l0")
    weights = {n: nq.quantize_weight(lstm._params[n], group_size=4) for n in names}
    biases = {n: lstm._params[n] for n in ("bias_ih_l0", "bias_hh_l0")}
    config_ = dict(input_size=8, hidden_size=8, num_layers=1, bias=True, batch_first=False)
    config_["bidirectional"] = False
    model = nq.QuantLSTM.from_int8(config_, weights, biases, "PER_TOKEN_INT8")
    x = np.random.default_rng(2).normal(size=(3, 2, 8)).astype(np.float32)
    for a, b in zip(_flat(model(x)), _flat(_step_by_step(model, x)), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_one_and_two_threads_give_the_same_bits(mode):
    """Large enough for the parallel twin by default (W_hh >= 256 KB)."""
    cls = nq.LSTM if mode == "LSTM" else nq.GRU
    model = nq.quantize_dynamic(cls(32, 300, seed=1))
    x = np.random.default_rng(1).normal(size=(5, 3, 32)).astype(np.float32)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = model(x)[0]
        numba.set_num_threads(2)
        two = model(x)[0]
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, _step_by_step(model, x)[0])


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("scheme", ["PER_TOKEN_UINT8", "ONNX"])
@given(
    steps=st.integers(1, 9),
    batch=st.integers(1, 5),
    chunk_steps=st.integers(1, 10),
    bidirectional=st.booleans(),
    seed=st.integers(0, 2**31),
)
@settings(max_examples=12, deadline=None)
def test_chunked_projections_give_the_bits_of_one_chunk(
    monkeypatch, mode, scheme, steps, batch, chunk_steps, bidirectional, seed
):
    """Per-token schemes project the input chunk by chunk of steps, each just before its
    recurrence (``layers.rnn.CHUNK_BYTES``), in reverse order for the reverse direction;
    the bits equal those of the step-by-step path whatever the chunk size (per-tensor
    schemes take one chunk: their scale needs every step)."""
    from numbaq.layers import rnn

    cls = nq.LSTM if mode == "LSTM" else nq.GRU
    model = nq.quantize_dynamic(
        cls(24, 20, num_layers=2, bidirectional=bidirectional, seed=seed % 1000), scheme=scheme
    )
    x = np.random.default_rng(seed).standard_normal((steps, batch, 24)).astype(np.float32)
    width = (4 if mode == "LSTM" else 3) * 20
    monkeypatch.setattr(rnn, "CHUNK_BYTES", chunk_steps * 4 * batch * width)
    out, state = model(x)
    ref_out, ref_state = _step_by_step(model, x)
    np.testing.assert_array_equal(out, ref_out)
    for got, want in zip(
        state if mode == "LSTM" else [state], ref_state if mode == "LSTM" else [ref_state]
    ):
        np.testing.assert_array_equal(got, want)
