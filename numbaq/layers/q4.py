"""A Linear on 4-bit block weights: :class:`Q4Linear`.

llama.cpp's Q4_1 weights (``w = d * q + m`` per row and block of 32, codes in [0, 15],
``d`` and ``m`` in half precision), activations quantized at run time in blocks of 32
(``BLOCK_Q8_0``: symmetric int8, ``scale = absmax / 127``). A GGUF file's Q4_1 tensors
keep their values exactly; 0.625 bytes a weight, where an int8 Linear reads 1, so a
memory-bound decode step reads 0.625x the bytes.
"""

from __future__ import annotations

import numpy as np

from .. import engine, schemes
from ..checks import check_bias, check_output, layer_error
from ..weights_q4 import Q4Weight
from .linear import Linear, QuantLinearBase


class Q4Linear(QuantLinearBase):
    """A dynamically quantized Linear with 4-bit block weights (llama.cpp's Q4_1).

    Parameters
    ----------
    qweight : Q4Weight
        (N, K) weights, ``K`` a multiple of 32.
    bias : (N,) float array, optional
        Added to every output row.

    Notes
    -----
    For each row and block ``b`` of 32 input features, activation codes ``c`` and scale
    ``sa`` (``BLOCK_Q8_0``), ``ss = sa * sum(c)``; then, blocks in order,
    ``y = y + (float32(q_b . c_b) * (sa_b * d_b) + m_b * ss_b)`` and ``y + bias``, which
    is ``sum_b sa_b * (d_b q_b + m_b) . c_b``: the dequantized weights times the
    dequantized activations (:func:`numbaq.reference.q4_linear`, bit for bit).

    Not a registered layer kind yet: :func:`numbaq.save` refuses it.

    Examples
    --------
    >>> w = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
    >>> layer = Q4Linear.from_float(Linear(w))
    >>> y = layer(np.ones((1, 32), np.float32))
    >>> bool(abs(y - w.sum(axis=1)).max() < 0.1)
    True
    """

    scheme = schemes.BLOCK_Q8_0
    activation = None

    def __init__(self, qweight: Q4Weight, bias=None):
        super().__init__()
        if not isinstance(qweight, Q4Weight):
            raise TypeError(f"Q4Linear: qweight must be a Q4Weight, got {type(qweight).__name__}")
        self.qweight = qweight
        self._param("weight_q4", qweight.packed)
        self._param("weight_d", qweight.d16)
        self._param("weight_m", qweight.m16)
        self._param("bias", None if bias is None else check_bias(bias, qweight.shape[0]))
        self.trace_log: list | None = None  # numbaq.trace records its block scales

    @classmethod
    def from_float(cls, linear: Linear) -> Q4Linear:
        """Quantize a float :class:`~numbaq.layers.Linear` by llama.cpp's Q4_1 rule.

        Parameters
        ----------
        linear : Linear
            ``in_features`` a multiple of 32, no fused activation.

        Returns
        -------
        Q4Linear
            Its weights in Q4_1 blocks (:meth:`numbaq.Q4Weight.from_float`), its bias.
        """
        if getattr(linear, "activation", None) is not None:
            raise ValueError("Q4Linear: a Linear with a fused activation is not supported")
        return cls(Q4Weight.from_float(linear.weight), linear.bias)

    def _product(self, x2d: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, dict]:
        """``(y, trace record)`` for rows ``x2d`` (M, K): the blocks of 32 quantized, the
        4-bit product, ``+ bias``; refused if the output overflows float32."""
        y = np.empty((x2d.shape[0], self.out_features), np.float32)
        try:
            scale = engine.q4_linear(x2d, self.qweight, bias, y)
        except ValueError as err:
            raise layer_error(self, err) from None
        check_output(
            y,
            (x2d, self.qweight.d16.view(np.float16), self.qweight.m16.view(np.float16)),
            "the output x . weight^T + bias",
            "|x| times |weight| summed over K reaches float32's largest value: rescale x",
            self,
        )
        return y, {"scale": scale, "zero_point": np.zeros_like(scale, np.int32)}

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, weights=Q4_1 (4-bit, blocks of 32), "
            "activations=BLOCK_Q8_0"
        )
