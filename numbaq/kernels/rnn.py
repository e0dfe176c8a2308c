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

import numpy as np

from ..config import jit
from .mathf import _ONE, _sigmoid, _tanh


@jit(inline=True)  # inlined at the IR level: a call in the loop stops vectorization
def _lstm_unit(pi, pf, pg, po, c):
    """One LSTM unit from its four gate pre-activations and cell: ``(h', c')``."""
    c_new = _sigmoid(pf) * c + _sigmoid(pi) * _tanh(pg)
    return _sigmoid(po) * _tanh(c_new), c_new


@jit(inline=True)
def _gru_unit(xr, xz, xn, hr, hz, hn, h):
    """One GRU unit from its input and hidden projections and state: ``h'``."""
    r = _sigmoid(xr + hr)
    z = _sigmoid(xz + hz)
    return (_ONE - z) * _tanh(xn + r * hn) + z * h


@jit()
def _lstm_step(xg, hg, c, h_out, c_out):
    """One LSTM step: ``xg``, ``hg`` (B, 4H) float32; ``c`` (B, H); writes ``h_out``, ``c_out``.

    ``xg`` may be any (B, 4H) view (a time step of the whole-sequence projection). One
    block of all ``H`` units (:func:`_lstm_block`) is PyTorch's layout.
    """
    c_out[:] = c
    _lstm_block(xg, hg, 0, c.shape[1], h_out, c_out)


@jit()
def _gru_step(xg, hg, h, h_out):
    """One GRU step: ``xg``, ``hg`` (B, 3H) float32; ``h`` (B, H); writes ``h_out``."""
    h_out[:] = h
    _gru_block(xg, hg, 0, h.shape[1], h_out)


# ------------------------------------------------- blocks of units (the fused recurrence)
# The recurrence splits the hidden units into blocks, one task each: a task computes the
# hidden projection of its block's gates and updates its units. ``W_hh``'s rows are
# reordered so that a block's gates are contiguous columns of ``hg``:
#     block u0:u0+count -> columns G*u0 + [gate 0 of its units, gate 1, ...]  (G gates)
# ``xg`` keeps PyTorch's order. Every value is computed by the same operations as
# ``_lstm_step`` / ``_gru_step``, so the results are the same bits.


def gate_order(gates: int, hidden: int, unit_block: int):
    """Row order of ``W_hh`` (G*H, H) for blocks of ``unit_block`` units: column ``col`` of
    the reordered ``hg`` is row ``order[col]`` of PyTorch's layout (gate-major)."""
    order = []
    for u0 in range(0, hidden, unit_block):
        count = min(unit_block, hidden - u0)
        for g in range(gates):
            order.extend(range(g * hidden + u0, g * hidden + u0 + count))
    return np.array(order, np.int64)


@jit()
def _lstm_block(xg, hg, u0, count, h, c):
    """Units ``u0:u0+count`` of one LSTM step in place: ``hg`` (B, 4H) reordered (block at
    columns ``4 u0``), ``xg`` (B, 4H) PyTorch's order; ``h``, ``c`` (B, H).

    Written on 1-D slices: LLVM vectorizes this loop, not the one on 2-D indices (4 against
    23 us for 512 units here).
    """
    hidden, u1 = h.shape[1], u0 + count
    y0, y1, y2, y3 = 4 * u0, 4 * u0 + count, 4 * u0 + 2 * count, 4 * u0 + 3 * count
    for b in range(h.shape[0]):
        xi, xf = xg[b, u0:u1], xg[b, hidden + u0 : hidden + u1]
        xc, xo = xg[b, 2 * hidden + u0 : 2 * hidden + u1], xg[b, 3 * hidden + u0 : 3 * hidden + u1]
        yi, yf, yc, yo = hg[b, y0:y1], hg[b, y1:y2], hg[b, y2:y3], hg[b, y3 : y3 + count]
        hb, cb = h[b, u0:u1], c[b, u0:u1]
        for j in range(count):
            hb[j], cb[j] = _lstm_unit(
                xi[j] + yi[j], xf[j] + yf[j], xc[j] + yc[j], xo[j] + yo[j], cb[j]
            )


@jit()
def _gru_block(xg, hg, u0, count, h):
    """Units ``u0:u0+count`` of one GRU step in place (layout as :func:`_lstm_block`)."""
    hidden, u1 = h.shape[1], u0 + count
    y0, y1, y2 = 3 * u0, 3 * u0 + count, 3 * u0 + 2 * count
    for b in range(h.shape[0]):
        xr, xz = xg[b, u0:u1], xg[b, hidden + u0 : hidden + u1]
        xn = xg[b, 2 * hidden + u0 : 2 * hidden + u1]
        yr, yz, yn = hg[b, y0:y1], hg[b, y1:y2], hg[b, y2 : y2 + count]
        hb = h[b, u0:u1]
        for j in range(count):
            hb[j] = _gru_unit(xr[j], xz[j], xn[j], yr[j], yz[j], yn[j], hb[j])
