"""4-bit block weights, llama.cpp's Q4_1: ``w = d * q + m`` per row and block of 32.

:class:`Q4Weight` holds the codes packed two to a byte in the layout of
:mod:`numbaq.kernels.q4`, and each block's scale ``d`` and offset ``m`` in half
precision, as GGUF files store them: 0.625 bytes a weight. A GGUF Q4_1 tensor keeps its
values exactly (:func:`numbaq.models.gguf.q4_1_weight`); float weights are quantized by
llama.cpp's own rule (:meth:`Q4Weight.from_float`, twin :func:`numbaq.reference.quantize_q4_1`).
"""

from __future__ import annotations

import functools

import numpy as np

from .checks import finite_float32
from .kernels.q4 import BLOCK, GROUP


class Q4Weight:
    """Weights ``w[n, k] = d[n, k // 32] * q[n, k] + m[n, k // 32]``, packed.

    Parameters
    ----------
    q : (N, K) integer array
        Codes in [0, 15]; ``K`` a multiple of 32.
    d, m : (N, K // 32) float
        Block scales and offsets; each must be a finite half-precision value (GGUF
        stores them so; :meth:`from_float` rounds them so).
    pairs : bool
        The rows are a gate (first N / 2) and an up projection (the rest) of SwiGLU:
        packed in pairs of 8 gate and 8 up rows, so that a group of 16 holds both inputs
        of 8 outputs of ``silu(gate) * up`` (N a multiple of 16). A layout only: every
        method here sees the rows in their given order.

    Attributes
    ----------
    shape : (int, int)
        ``(N, K)``.
    packed : (ceil(N / 16) * K * 8,) uint8
        Codes in :mod:`numbaq.kernels.q4`'s layout.
    d16, m16 : uint16 arrays
        ``d`` and ``m`` per (group of 16 rows, block, row), half-precision bits.
    d32, m32 : float32 arrays
        The same values as float32 (the portable kernel's; made on first use).
    order : (ceil(N / 16) * 16,) int64
        The row of ``q`` each packed row holds (-1: padding).

    Examples
    --------
    >>> x = np.linspace(-1, 1, 16 * 64, dtype=np.float32).reshape(16, 64)
    >>> w = Q4Weight.from_float(x)
    >>> w.shape, w.nbytes, float(abs(w.dequantize() - x).max()) < 0.003  # d / 2
    ((16, 64), 640, True)
    """

    def __init__(self, q, d, m, pairs: bool = False):
        q = np.asarray(q)
        if q.ndim != 2 or q.shape[1] % BLOCK or q.shape[0] < 1 or q.shape[1] < 1:
            raise ValueError(
                f"q: (N, K) codes with K a positive multiple of {BLOCK} needed, got shape "
                f"{q.shape}; pad K with zero columns"
            )
        if not np.issubdtype(q.dtype, np.integer) or q.min() < 0 or q.max() > 15:
            raise ValueError("q: 4-bit codes (integers in [0, 15]) needed")
        n, k = q.shape
        halves = []
        for name, v in (("d", d), ("m", m)):
            v = finite_float32(v, name)
            if v.shape != (n, k // BLOCK):
                raise ValueError(
                    f"{name}: shape (N, K // 32) = {(n, k // BLOCK)} needed, got {v.shape}"
                )
            with np.errstate(over="ignore"):  # beyond half precision: Inf, refused below
                h = v.astype(np.float16)
            if not np.array_equal(h.astype(np.float32), v):
                raise ValueError(
                    f"{name}: every value must be exact in half precision (Q4_1 stores fp16)"
                )
            halves.append(h)
        if pairs and n % GROUP:
            raise ValueError(f"q: pairs needs N (gate and up rows) a multiple of {GROUP}, got {n}")
        self.shape, self.pairs = (n, k), bool(pairs)
        groups, nb = -(-n // GROUP), k // BLOCK
        if pairs:  # [8 gate rows, the same 8 up rows] per group
            half = GROUP // 2
            self.order = np.arange(n).reshape(2, -1, half).transpose(1, 0, 2).reshape(-1)
        else:
            self.order = np.full(groups * GROUP, -1, np.int64)
            self.order[:n] = np.arange(n)
        real = self.order >= 0
        qp = np.zeros((groups * GROUP, k), np.uint8)
        qp[real] = q[self.order[real]]
        # [group, lane, block, vector j, nibble half, byte i] -> [group, block, j, lane, i]
        qp = qp.reshape(groups, GROUP, nb, 4, 2, 4)
        byte = qp[:, :, :, :, 0, :] | (qp[:, :, :, :, 1, :] << 4)
        self.packed = np.ascontiguousarray(byte.transpose(0, 2, 3, 1, 4)).reshape(-1)
        dm = []
        for h in halves:
            hp = np.zeros((groups * GROUP, nb), np.float16)
            hp[real] = h[self.order[real]]
            dm.append(np.ascontiguousarray(hp.reshape(groups, GROUP, nb).transpose(0, 2, 1)))
        self.d16, self.m16 = (v.reshape(-1).view(np.uint16) for v in dm)

    @functools.cached_property
    def zero_bias(self) -> np.ndarray:
        """``(N,)`` float32 zeros: the bias added when a Linear has none."""
        return np.zeros(self.shape[0], np.float32)

    @functools.cached_property
    def d32(self) -> np.ndarray:
        """``d16`` as float32 (made once, for the portable kernel only)."""
        return self.d16.view(np.float16).astype(np.float32)

    @functools.cached_property
    def m32(self) -> np.ndarray:
        """``m16`` as float32 (made once, for the portable kernel only)."""
        return self.m16.view(np.float16).astype(np.float32)

    @classmethod
    def from_float(cls, w, pairs: bool = False) -> Q4Weight:
        """Quantize float weights by llama.cpp's Q4_1 rule (:func:`numbaq.reference.quantize_q4_1`).

        Parameters
        ----------
        w : (N, K) float
            Finite, ``K`` a multiple of 32.
        pairs : bool
            Pack SwiGLU's gate and up rows in pairs (see the class).

        Returns
        -------
        Q4Weight
            Codes, scales and offsets as llama.cpp's ``quantize_row_q4_1_ref`` makes them.

        Examples
        --------
        >>> Q4Weight.from_float(np.zeros((3, 32), np.float32)).codes().max()
        np.uint8(0)
        """
        from .reference import quantize_q4_1

        w = finite_float32(w, "w")
        if w.ndim != 2 or w.shape[1] % BLOCK or 0 in w.shape:
            raise ValueError(
                f"w: (N, K) weights with K a positive multiple of {BLOCK} needed, got shape "
                f"{w.shape}"
            )
        return cls(*quantize_q4_1(w), pairs=pairs)

    @property
    def nbytes(self) -> int:
        """Bytes a product reads: packed codes, ``d`` and ``m`` (half precision), rows
        padded to a multiple of 16."""
        return self.packed.nbytes + self.d16.nbytes + self.m16.nbytes

    def _rows(self, packed_rows: np.ndarray) -> np.ndarray:
        """Packed rows (ceil(N / 16) * 16, ...) back in the order given."""
        out = np.empty((self.shape[0],) + packed_rows.shape[1:], packed_rows.dtype)
        real = self.order >= 0
        out[self.order[real]] = packed_rows[real]
        return out

    def _unpacked(self, v16: np.ndarray) -> np.ndarray:
        nb = self.shape[1] // BLOCK
        v = v16.view(np.float16).astype(np.float32).reshape(-1, nb, GROUP)
        return self._rows(v.transpose(0, 2, 1).reshape(-1, nb))

    def codes(self) -> np.ndarray:
        """The codes ``q``, unpacked.

        Returns
        -------
        (N, K) uint8 ndarray
            Codes in [0, 15].
        """
        k = self.shape[1]
        byte = self.packed.reshape(-1, k // BLOCK, 4, GROUP, 4).transpose(0, 3, 1, 2, 4)
        q = np.stack([byte & 0x0F, byte >> 4], axis=4)  # [group, lane, block, j, half, i]
        return self._rows(q.reshape(-1, k))

    def scales(self) -> tuple[np.ndarray, np.ndarray]:
        """The block scales and offsets.

        Returns
        -------
        tuple of two (N, K // 32) float32 ndarrays
            ``(d, m)``: ``w = d * q + m`` in each block.
        """
        return self._unpacked(self.d16), self._unpacked(self.m16)

    def dequantize(self) -> np.ndarray:
        """The weights' values.

        Returns
        -------
        (N, K) float32 ndarray
            ``d * q + m``, the product rounded, then the sum (as GGUF's dequantizer).
        """
        d, m = (np.repeat(v, BLOCK, axis=1) for v in self.scales())
        return d * self.codes().astype(np.float32) + m
