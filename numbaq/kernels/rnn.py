"""Recurrent cell updates: the gate nonlinearities and the state update, fused.

The two projections come from the (quantized) Linear kernels; what is left per step is
elementwise float32 work on ``(B, G * H)`` gate pre-activations, done here in one pass.
PyTorch's gate order and equations:

LSTM (gates i, f, g, o)::

    gates = xg + hg              xg = x W_ih^T + b_ih,  hg = h W_hh^T + b_hh
    i, f, o = sigmoid(.), g = tanh(.)
    c' = f * c + i * g
    h' = o * tanh(c')

GRU (gates r, z, n)::

    r = sigmoid(xg_r + hg_r),  z = sigmoid(xg_z + hg_z)
    n = tanh(xg_n + r * hg_n)
    h' = (1 - z) * n + z * h
"""

from __future__ import annotations

from ..config import jit
from .mathf import _ONE, _sigmoid, _tanh


@jit()
def _lstm_step(xg, hg, c, h_out, c_out):
    """One LSTM step: ``xg``, ``hg`` (B, 4H) float32; ``c`` (B, H); writes ``h_out``, ``c_out``.

    ``xg`` may be any (B, 4H) view (a time step of the whole-sequence projection).
    """
    hidden = c.shape[1]
    for b in range(c.shape[0]):
        for j in range(hidden):
            i = _sigmoid(xg[b, j] + hg[b, j])
            f = _sigmoid(xg[b, hidden + j] + hg[b, hidden + j])
            g = _tanh(xg[b, 2 * hidden + j] + hg[b, 2 * hidden + j])
            o = _sigmoid(xg[b, 3 * hidden + j] + hg[b, 3 * hidden + j])
            c_new = f * c[b, j] + i * g
            c_out[b, j] = c_new
            h_out[b, j] = o * _tanh(c_new)


@jit()
def _gru_step(xg, hg, h, h_out):
    """One GRU step: ``xg``, ``hg`` (B, 3H) float32; ``h`` (B, H); writes ``h_out``."""
    hidden = h.shape[1]
    for b in range(h.shape[0]):
        for j in range(hidden):
            r = _sigmoid(xg[b, j] + hg[b, j])
            z = _sigmoid(xg[b, hidden + j] + hg[b, hidden + j])
            n = _tanh(xg[b, 2 * hidden + j] + r * hg[b, 2 * hidden + j])
            h_out[b, j] = (_ONE - z) * n + z * h[b, j]
