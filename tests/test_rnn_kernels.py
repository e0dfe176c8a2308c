"""The fused recurrent gate kernels against numbaq.reference."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from numbaq import reference as ref
from numbaq.kernels.rnn import _gru_step, _lstm_step


@given(
    batch=st.integers(1, 9),
    hidden=st.integers(1, 40),
    seed=st.integers(0, 2**31),
    scale=st.sampled_from([0.1, 1.0, 10.0]),
)
def test_lstm_step_matches_reference(batch, hidden, seed, scale):
    rng = np.random.default_rng(seed)
    xg, hg = (rng.normal(0, scale, (batch, 4 * hidden)).astype(np.float32) for _ in range(2))
    c = rng.normal(size=(batch, hidden)).astype(np.float32)
    h_out, c_out = np.empty_like(c), np.empty_like(c)
    _lstm_step(xg, hg, c, h_out, c_out)
    h_ref, c_ref = ref.lstm_cell(xg, hg, c)
    # float32 exp/tanh from libm against numpy's: a few ulps on values of size <= |c| + 1
    np.testing.assert_allclose(c_out, c_ref, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(h_out, h_ref, rtol=2e-6, atol=2e-6)


@given(batch=st.integers(1, 9), hidden=st.integers(1, 40), seed=st.integers(0, 2**31))
def test_gru_step_matches_reference(batch, hidden, seed):
    rng = np.random.default_rng(seed)
    xg, hg = (rng.normal(size=(batch, 3 * hidden)).astype(np.float32) for _ in range(2))
    h = rng.normal(size=(batch, hidden)).astype(np.float32)
    h_out = np.empty_like(h)
    _gru_step(xg, hg, h, h_out)
    np.testing.assert_allclose(h_out, ref.gru_cell(xg, hg, h), rtol=2e-6, atol=2e-6)
