"""Quantization dtypes, schemes and parameters: small frozen dataclasses.

A :class:`QScheme` says *how* to quantize: integer dtype, symmetric or
asymmetric, granularity, and the arithmetic rule for the scale. A
:class:`QParams` is what a scheme produced for one tensor: the ``scale`` and
``zero_point`` arrays plus the clamp range ``[qmin, qmax]``.

The affine map both describe::

    q = clip(round(x / scale) + zero_point, qmin, qmax)       (quantize)
    x_hat = (q - zero_point) * scale                          (dequantize)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

# name -> (storage dtype, qmin, qmax). 4- and 7-bit values sit in 8-bit storage.
DTYPES: dict[str, tuple[type, int, int]] = {
    "int8": (np.int8, -128, 127),
    "uint8": (np.uint8, 0, 255),
    "uint7": (np.uint8, 0, 127),
    "int4": (np.int8, -8, 7),
    "uint4": (np.uint8, 0, 15),
}

GRANULARITIES = ("tensor", "row", "column", "block")
"""Where one (scale, zero_point) pair applies. ``row`` is one per token (all leading
indices, reduced over the last axis), ``column`` one per channel of the last axis
(reduced over all leading axes), ``block`` one per ``block_size`` run of the last axis."""

RULES = ("onnx", "torch")
"""Scale arithmetic. ``onnx``: float32 math as ONNX ``DynamicQuantizeLinear``.
``torch``: PyTorch's ``ChooseQuantizationParams`` (float64 math, 0.1 for a zero
scale, a 6.1e-5 scale floor, a nudged zero point)."""

TORCH_SMALL_SCALE = np.float32(6.1e-5)
"""PyTorch's ``SMALL_SCALE_THRESHOLD``: smaller scales are raised to it."""


def _trunc_half(v: int) -> int:
    """C integer division by 2 (truncates toward zero), as torch's reduce_range."""
    return int(v / 2)


@dataclass(frozen=True)
class QScheme:
    """How to quantize a tensor: dtype, symmetry, granularity and scale rule.

    Parameters
    ----------
    dtype : {"int8", "uint8", "int4", "uint4"}
        Integer type. 4-bit types and ``uint7`` ([0, 127], which the AVX2 GEMM
        multiplies with ``vpmaddubsw``) are held in 8-bit storage.
    symmetric : bool
        ``True``: the zero point is fixed (0 for signed types, the mid code for
        unsigned) and ``scale = absmax / ((qmax - qmin) / 2)``. ``False``:
        ``scale = (max - min) / (qmax - qmin)`` and the zero point moves.
    granularity : {"tensor", "row", "column", "block"}
        Where one (scale, zero_point) pair applies; see ``GRANULARITIES``.
    block_size : int or None
        Length of a block along the last axis, for ``granularity="block"``. It must
        divide the last axis.
    narrow_range : bool
        Drop the lowest code, e.g. int8 becomes [-127, 127] (symmetric around 0).
    reduce_range : bool
        Choose the scale for the 7-bit range ``[qmin/2, qmax/2]`` (PyTorch's
        ``reduce_range``: uint8 [0, 127]); values still saturate to the storage range.
    rule : {"onnx", "torch"}
        Scale arithmetic; see ``RULES``.
    reciprocal : bool
        Quantize as ``round(fma(x, 1 / scale, zero_point))``, one fused multiply-add
        (PyTorch/fbgemm), instead of ``round(x / scale) + zero_point`` (ONNX). The
        two differ by one code for about 1 value in 20000.
    name : str
        A label for ``__repr__``.

    Notes
    -----
    The range always includes 0, so 0 is represented exactly:
    :math:`\\min' = \\min(x_{min}, 0)`, :math:`\\max' = \\max(x_{max}, 0)`.

    Plain text::

        asymmetric: scale = (max' - min') / (qmax - qmin)
                    zero_point = clip(round(qmin - min' / scale), qmin, qmax)
        symmetric:  scale = max(|min'|, |max'|) / ((qmax - qmin) / 2)
                    zero_point = 0 (signed) or (qmin + qmax + 1) // 2 (unsigned)

    Zero range (an all-zero group, under ``rule="onnx"``): the range is taken as 1,
    so ``scale = 1 / (qmax - qmin)`` (asymmetric) or ``1 / ((qmax - qmin) / 2)``
    (symmetric), as ONNX does. Tiny ranges: scales are floored at ``min_scale``: the
    smallest subnormal float32 (1.4e-45) when dividing, so only a scale that would be
    0 changes and ONNX's subnormal scales are kept; the smallest normal float32
    (1.18e-38) with ``reciprocal``, so that ``1 / scale`` stays finite. Under
    ``rule="torch"`` PyTorch's own rules apply (0.1 for a zero scale, a 6.1e-5 floor).

    Examples
    --------
    >>> QScheme("int8", symmetric=True, granularity="row", narrow_range=True)
    QScheme(int8 symmetric per row, q in [-127, 127], rule=onnx, x / scale)
    """

    dtype: str = "int8"
    symmetric: bool = True
    granularity: str = "tensor"
    block_size: int | None = None
    narrow_range: bool = False
    reduce_range: bool = False
    rule: str = "onnx"
    reciprocal: bool = False
    name: str = ""

    def __post_init__(self):
        for name in ("dtype", "granularity", "rule", "name"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"QScheme: {name} must be a str, got {getattr(self, name)!r}")
        for name in ("symmetric", "narrow_range", "reduce_range", "reciprocal"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(
                    f"QScheme: {name} must be True or False, got {getattr(self, name)!r}"
                )
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"granularity must be one of {GRANULARITIES}, got {self.granularity!r}"
            )
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        if self.granularity == "block":
            if (
                isinstance(self.block_size, bool)
                or not isinstance(self.block_size, (int, np.integer))
                or self.block_size < 1
            ):
                raise ValueError(
                    f"granularity='block' needs block_size, a positive int; got {self.block_size!r}"
                )
        elif self.block_size is not None:
            raise ValueError(
                f"block_size is only used with granularity='block', not {self.granularity!r}"
            )

    @property
    def storage(self) -> type:
        """The numpy dtype that holds the quantized values."""
        return DTYPES[self.dtype][0]

    @property
    def clamp_range(self) -> tuple[int, int]:
        """``(qmin, qmax)`` that quantized values saturate to."""
        _, qmin, qmax = DTYPES[self.dtype]
        return qmin + int(self.narrow_range), qmax

    @property
    def scale_range(self) -> tuple[int, int]:
        """``(qmin, qmax)`` the scale is chosen for.

        Under ``reduce_range`` the dtype's range is halved first (as C integer division,
        like torch), then narrowed, so the zero point always lies in ``clamp_range``.
        """
        if not self.reduce_range:
            return self.clamp_range
        _, qmin, qmax = DTYPES[self.dtype]
        return _trunc_half(qmin) + int(self.narrow_range), _trunc_half(qmax)

    @property
    def min_scale(self) -> np.float32:
        """The smallest scale the ``onnx`` rule gives (see the class notes)."""
        info = np.finfo(np.float32)
        return info.tiny if self.reciprocal else info.smallest_subnormal

    def replace(self, **changes) -> QScheme:
        """A copy with some fields changed (``dataclasses.replace``).

        Parameters
        ----------
        **changes
            New values of fields, e.g. ``dtype="int4"``; leaving block granularity
            also clears ``block_size``.

        Returns
        -------
        QScheme
            The new scheme, validated like any other.

        Examples
        --------
        >>> QScheme("int8", symmetric=True).replace(granularity="row").granularity
        'row'
        """
        if "granularity" in changes and changes["granularity"] != "block":
            changes.setdefault("block_size", None)
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One line: dtype, symmetry, granularity and range.

        Returns
        -------
        str
            E.g. ``"int8 symmetric per row, q in [-128, 127], rule=onnx, x / scale"``.
        """
        where = {"tensor": "per tensor", "row": "per row", "column": "per column"}.get(
            self.granularity, f"per block of {self.block_size}"
        )
        kind = "symmetric" if self.symmetric else "asymmetric"
        qmin, qmax = self.clamp_range
        text = f"{self.dtype} {kind} {where}, q in [{qmin}, {qmax}]"
        if self.reduce_range:
            smin, smax = self.scale_range
            text += f", scale for [{smin}, {smax}]"
        division = "fma(x, 1/scale, zp)" if self.reciprocal else "x / scale"
        return f"{text}, rule={self.rule}, {division}"

    def __repr__(self) -> str:
        label = f"{self.name}: " if self.name else ""
        return f"QScheme({label}{self.describe()})"


@dataclass(frozen=True, repr=False, eq=False)
class QParams:
    """Quantization parameters of one tensor, as chosen by a :class:`QScheme`.

    Attributes
    ----------
    scale : float32 ndarray
        Shape ``()`` per tensor, ``x.shape[:-1]`` per row, ``(K,)`` per column,
        ``x.shape[:-1] + (K // block_size,)`` per block.
    zero_point : int32 ndarray
        Same shape as ``scale``.
    dtype : str
        Integer dtype name (``"int8"``, ``"uint8"``, ``"int4"``, ``"uint4"``).
    qmin, qmax : int
        The clamp range of quantized values.
    granularity : str
        ``"tensor"``, ``"row"``, ``"column"`` or ``"block"``.
    block_size : int or None
        Block length along the last axis, for ``granularity="block"``.
    scheme : QScheme or None
        The scheme that produced these parameters, if any.

    Examples
    --------
    >>> import numbaq
    >>> qp = numbaq.choose_qparams(np.array([[-1.0, 2.0]], np.float32), "ONNX")
    >>> qp.dtype, (qp.qmin, qp.qmax), qp.granularity, int(qp.zero_point)
    ('uint8', (0, 255), 'tensor', 85)
    """

    scale: np.ndarray
    zero_point: np.ndarray
    dtype: str
    qmin: int
    qmax: int
    granularity: str = "tensor"
    block_size: int | None = None
    scheme: QScheme | None = None

    def __post_init__(self):
        scale, zero_point = np.asarray(self.scale), np.asarray(self.zero_point)
        if scale.dtype.kind not in "fiu":
            raise TypeError(f"QParams: scale must be a float array, got dtype {scale.dtype}")
        if zero_point.dtype.kind not in "iu":
            raise TypeError(
                f"QParams: zero_point must be integers, got dtype {zero_point.dtype}; "
                "round it first, e.g. np.rint(zp).astype(np.int32)"
            )
        if zero_point.shape != scale.shape and zero_point.size != 1:
            raise ValueError(
                f"QParams: zero_point must have the shape of scale {scale.shape} (or be one "
                f"value), got {zero_point.shape}; it is not reshaped for you"
            )
        if not isinstance(self.dtype, str) or self.dtype not in DTYPES:
            raise ValueError(f"QParams: dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if not isinstance(self.granularity, str) or self.granularity not in GRANULARITIES:
            raise ValueError(
                f"QParams: granularity must be one of {GRANULARITIES}, got {self.granularity!r}"
            )
        if self.granularity == "block" and (
            isinstance(self.block_size, bool)
            or not isinstance(self.block_size, (int, np.integer))
            or self.block_size < 1
        ):
            raise ValueError(
                f"QParams: granularity 'block' needs block_size >= 1, got {self.block_size!r}"
            )
        scale32 = scale
        if scale.dtype != np.float32:  # not on the verbs' path (np.errstate costs 2 us)
            with np.errstate(over="ignore"):  # float64 beyond float32's range: refused next
                scale32 = scale.astype(np.float32)
            if scale.dtype.kind == "f" and np.isinf(scale32).any():
                if np.isfinite(scale[np.isinf(scale32)]).any():
                    raise ValueError(
                        "QParams: scale holds values beyond float32's range (> 3.4e38), "
                        "which would become Inf; use smaller scales"
                    )
        # frozen: set the normalised arrays once (no copy when they already are float32/int32)
        object.__setattr__(self, "scale", scale32)
        object.__setattr__(self, "zero_point", zero_point.astype(np.int32, copy=False))

    @property
    def storage(self) -> type:
        """The numpy dtype that holds the quantized values."""
        return DTYPES[self.dtype][0]

    @property
    def symmetric(self) -> bool:
        """Whether every zero point is the scheme's fixed one: 0 for signed dtypes, the
        mid code ``(qmin + qmax + 1) // 2`` (128 for uint8) for unsigned ones."""
        if self.scheme is not None:
            return self.scheme.symmetric
        fixed = 0 if DTYPES[self.dtype][1] < 0 else (self.qmin + self.qmax + 1) // 2
        return bool(np.all(self.zero_point == fixed))

    def __eq__(self, other) -> bool:
        if not isinstance(other, QParams):
            return NotImplemented
        return (
            np.array_equal(self.scale, other.scale)
            and np.array_equal(self.zero_point, other.zero_point)
            and (self.dtype, self.qmin, self.qmax, self.granularity, self.block_size)
            == (other.dtype, other.qmin, other.qmax, other.granularity, other.block_size)
        )

    __hash__ = None

    def __repr__(self) -> str:
        where = self.granularity if self.block_size is None else f"block {self.block_size}"
        head = f"QParams({self.dtype} {where}, q in [{self.qmin}, {self.qmax}]"
        if self.scale.ndim == 0:
            return f"{head}, scale={float(self.scale):.6g}, zero_point={int(self.zero_point)})"
        zp = self.zero_point
        zp_text = (
            f"zero_point={int(zp.flat[0])} (all)"
            if np.all(zp == zp.flat[0])
            else f"zero_point in [{int(zp.min())}, {int(zp.max())}]"
        )
        return (
            f"{head}, {self.scale.size} scales of shape {self.scale.shape} "
            f"in [{float(self.scale.min()):.4g}, {float(self.scale.max()):.4g}], {zp_text})"
        )
