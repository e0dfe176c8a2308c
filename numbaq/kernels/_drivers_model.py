"""Template: the model-level drivers of every generated ``_tiles_<path>.py``.

Real, linted source, never imported at run time: ``_gen_gemm`` copies everything below
the template header into each path's file (``plain`` included), where ``linear_f32``
and ``linear_f32_par`` are that path's own. They use only those two GEMM entry points.

* ``dynamic_linear_f32`` / ``_par``: the whole dynamic Linear in one call: quantize
  ``x`` into the uint8 lhs buffer (``kernels.quantize._quantize_lhs``), then
  ``linear_f32``.
* ``recurrence`` / ``recurrence_par``: the hidden recurrence of one LSTM or GRU layer
  direction over all time steps in one call: per step, the dynamic Linear of ``h`` and
  the fused gate update (``kernels.rnn``).

``lhs`` is the scheme's :class:`numbaq.engine.LhsParams`, one NamedTuple argument.
"""

import numpy as np

from ..config import jit
from .gemm import linear_f32, linear_f32_par
from .quantize import _quantize_lhs, _quantize_lhs_par
from .rnn import _gru_step, _lstm_step

# ---- end of template header: the generator copies what follows ----


@jit()
def dynamic_linear_f32(x, lhs, w, kq_n, n, w_scale, col_sums, bias, act, y, a_scale, a_zp):
    """Quantize ``x`` (M, K) float32 per row or per tensor, then :func:`linear_f32`.

    Fills ``a_scale``/``a_zp`` (M,) with the runtime scales and effective zero points
    and returns the status of ``kernels.quantize._lhs_status`` (0: ``y`` is valid).
    """
    m, k = x.shape
    lda = 4 * kq_n
    a = np.empty((m, lda), np.uint8)
    if lda != k:
        a[:, k:] = 0
    status = _quantize_lhs(x, lhs, a, a_scale, a_zp)
    if status == 0:
        linear_f32(
            a.reshape(a.size), lda, m, w, kq_n, n, a_scale, a_zp, w_scale, col_sums, bias, act, y
        )
    return status


@jit(parallel=True)
def dynamic_linear_f32_par(
    x, lhs, w, kq_n, n, w_scale, col_sums, bias, act, y, a_scale, a_zp, m_block, parallel_quantize
):
    """Parallel twin of :func:`dynamic_linear_f32` (the quantize step in parallel too
    when ``parallel_quantize``)."""
    m, k = x.shape
    lda = 4 * kq_n
    a = np.empty((m, lda), np.uint8)
    if lda != k:
        a[:, k:] = 0
    if parallel_quantize:
        status = _quantize_lhs_par(x, lhs, a, a_scale, a_zp)
    else:
        status = _quantize_lhs(x, lhs, a, a_scale, a_zp)
    if status == 0:
        linear_f32_par(
            a.reshape(a.size),
            lda,
            m,
            w,
            kq_n,
            n,
            a_scale,
            a_zp,
            w_scale,
            col_sums,
            bias,
            act,
            y,
            m_block,
        )
    return status


@jit()
def _recurrence_step(lstm, t, xg, h, c, h_new, c_new, hg, out):
    if lstm:
        _lstm_step(xg[t], hg, c, h_new, c_new)
        c[:] = c_new
    else:
        _gru_step(xg[t], hg, h, h_new)
    h[:] = h_new
    out[t] = h_new


@jit()
def recurrence(lstm, xg, h, c, out, reverse, lhs, w, kq_n, w_scale, col_sums, bias, a_scale, a_zp):
    """All steps of one layer direction: ``hg = dynamic_linear(h)``, then the gates.

    ``xg`` (T, B, G*H) holds the input projections (``b_ih`` included); ``h`` and ``c``
    (B, H) the initial state, updated in place (``c`` unused for a GRU); ``out`` (T, B, H)
    receives every step's ``h``. Returns 0, or the status of the first failed step.
    """
    steps, n = xg.shape[0], xg.shape[2]
    hg = np.empty((h.shape[0], n), np.float32)
    h_new = np.empty_like(h)
    c_new = np.empty_like(c)
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        status = dynamic_linear_f32(
            h, lhs, w, kq_n, n, w_scale, col_sums, bias, 0, hg, a_scale, a_zp
        )
        if status != 0:
            return status
        _recurrence_step(lstm, t, xg, h, c, h_new, c_new, hg, out)
    return 0


@jit(parallel=True)
def recurrence_par(
    lstm, xg, h, c, out, reverse, lhs, w, kq_n, w_scale, col_sums, bias, a_scale, a_zp, m_block
):
    """Parallel twin of :func:`recurrence`: each step's GEMM runs on all threads."""
    steps, n = xg.shape[0], xg.shape[2]
    hg = np.empty((h.shape[0], n), np.float32)
    h_new = np.empty_like(h)
    c_new = np.empty_like(c)
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        status = dynamic_linear_f32_par(
            h, lhs, w, kq_n, n, w_scale, col_sums, bias, 0, hg, a_scale, a_zp, m_block, False
        )
        if status != 0:
            return status
        _recurrence_step(lstm, t, xg, h, c, h_new, c_new, hg, out)
    return 0
