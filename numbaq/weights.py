"""Linear weights, quantized once: :class:`QuantizedWeight` and :func:`quantize_weight`.

Symmetric int8 (or int4 in int8 storage) per output channel, per tensor or per group of
input features; the packed layout for each GEMM path and the column sums for zero-point
compensation are made on first use and kept.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from .checks import FLOAT32_MAX, as_float32, output_overflow
from .codes import dynamic_quantize
from .kernels import gemm as kg
from .qparams import QScheme


@dataclass(frozen=True, eq=False, repr=False)
class QuantizedWeight:
    """Symmetric int8 weights of a Linear, ``W (N, K) ~ q * scale[:, None]``.

    Attributes
    ----------
    q : (N, K) int8
        Quantized weights (int4 values also live here).
    scale : (N,) or (N, K // group_size) float32
        One scale per output channel (repeated for a per-tensor scheme), or one per
        group of ``group_size`` input features (int4 per group).
    scheme : QScheme
        How ``q`` was made.
    col_sums : (N,) int32
        ``sum_k q[n, k]``, for zero-point compensation (see ``kernels.epilogue``).

    What the kernels derive from the weights (the packed layout of each GEMM path, block
    scales and sums, reordered copies, the engine's call records, the schemes checked
    against them) is made on first use and kept, through one small cache,
    :meth:`derived`. Make one with :func:`quantize_weight` or :meth:`from_int8`.

    Examples
    --------
    >>> qw = QuantizedWeight.from_int8(np.array([[1, -2], [3, 4]], np.int8), [0.5, 0.25])
    >>> qw.shape, qw.col_sums.tolist(), qw.dequantize().tolist()
    ((2, 2), [-1, 7], [[0.5, -1.0], [0.75, 1.0]])
    """

    q: np.ndarray
    scale: np.ndarray
    scheme: QScheme
    col_sums: np.ndarray
    _derived: dict = field(default_factory=dict)

    def __post_init__(self):
        """The kernels trust these shapes: check them however the weights were made."""
        q, scale, col_sums = self.q, self.scale, self.col_sums
        if not (isinstance(q, np.ndarray) and q.dtype == np.int8 and q.ndim == 2 and q.size):
            raise TypeError("QuantizedWeight: q must be a non-empty (N, K) int8 array")
        n, k = q.shape
        per_group = (
            isinstance(scale, np.ndarray)
            and scale.ndim == 2
            and scale.shape[0] == n
            and scale.shape[1] >= 1
            and k % scale.shape[1] == 0
        )
        if not (
            isinstance(scale, np.ndarray)
            and scale.dtype == np.float32
            and (scale.shape == (n,) or per_group)
        ):
            raise ValueError(
                f"QuantizedWeight: scale must be float32 of shape (N,) = ({n},) or "
                f"(N, K // group_size) for q of shape {q.shape}"
            )
        if not (
            isinstance(col_sums, np.ndarray)
            and col_sums.dtype == np.int32
            and col_sums.shape == (n,)
        ):
            raise ValueError(f"QuantizedWeight: col_sums must be int32 of shape ({n},)")
        if not (q.flags.c_contiguous and scale.flags.c_contiguous and col_sums.flags.c_contiguous):
            raise ValueError("QuantizedWeight: q, scale and col_sums must be C-contiguous")
        if not isinstance(self.scheme, QScheme):
            raise TypeError(
                f"QuantizedWeight: scheme must be a QScheme, got {type(self.scheme).__name__}"
            )
        check_representable(
            q,
            scale,
            "QuantizedWeight: q * scale (the weights the codes stand for)",
            "use smaller scales (rescale the weights)",
        )
        block = self.scheme.block_size
        if self.scheme.granularity == "block" and scale.ndim == 2 and k // scale.shape[1] != block:
            raise ValueError(
                f"QuantizedWeight: scale must have shape (N, K // group_size) = "
                f"({n}, {k // block if k % block == 0 else 'K // group_size'}) for weights "
                f"{q.shape} in groups of {block} (the scheme's block_size), got {scale.shape}"
            )

    @classmethod
    def from_int8(cls, q, scale, scheme: QScheme | None = None) -> QuantizedWeight:
        """Wrap weights quantized elsewhere.

        Parameters
        ----------
        q : (N, K) int8 array
            The quantized weights, one row per output feature.
        scale : scalar, (N,) or (N, K // group_size) float
            One scale for all, one per output channel, or one per group of input
            features.
        scheme : QScheme, optional
            How ``q`` was made (default: symmetric int8 per channel, named
            ``external``).

        Returns
        -------
        QuantizedWeight
            With its column sums computed.

        Raises
        ------
        TypeError
            If ``q`` is not a non-empty 2-D int8 array.
        ValueError
            If the scales do not fit ``q`` (a vector (N, 1) without a per-group scheme, a
            transposed or reshaped array: none is reshaped for you), are not positive and
            finite, or are so large that ``q * scale`` overflows float32.
        """
        q = np.asarray(q)
        if q.dtype != np.int8 or q.ndim != 2 or q.size == 0:
            raise TypeError(f"q must be a non-empty (N, K) int8 array, got {q.dtype} {q.shape}")
        scale = np.asarray(scale)
        if scale.dtype.kind != "f":
            raise TypeError(f"scale must be a float array, got dtype {scale.dtype}")
        if scheme is not None and not isinstance(scheme, QScheme):
            raise TypeError(f"scheme must be a QScheme or None, got {type(scheme).__name__}")
        n, k = q.shape
        with np.errstate(over="ignore"):  # float64 beyond float32 becomes Inf, refused below
            scale = scale.astype(np.float32, copy=False)
        if scheme is not None and scheme.granularity == "block":  # the groups are known
            groups = k // scheme.block_size if k % scheme.block_size == 0 else None
            if groups is None or scale.shape != (n, groups):
                raise ValueError(
                    f"scale must have shape (N, K // group_size) = "
                    f"({n}, {groups or 'K // group_size'}) for weights {q.shape} in groups of "
                    f"{scheme.block_size} (the scheme's block_size), got {scale.shape}"
                )
            scale = np.ascontiguousarray(scale)
        elif scale.ndim == 2 and scheme is None and scale.shape[1] == 1 and k > 1:
            raise ValueError(
                f"scale has shape {scale.shape}: one group of all K = {k} input features, "
                f"not one scale per output channel, which is shape (N,) = ({n},); pass "
                "scale.reshape(-1), or a scheme with granularity='block' and block_size=K "
                "for one group of K"
            )
        elif scale.ndim == 2 and scale.shape[0] == n and scale.shape[1] and k % scale.shape[1] == 0:
            scale = np.ascontiguousarray(scale)  # per group
        elif scale.size in (1, n) and scale.ndim <= 1:
            scale = np.broadcast_to(scale.reshape(-1), (n,)).copy()
        else:
            raise ValueError(
                f"scale has shape {scale.shape}; weights {q.shape} need one scale, one per "
                f"output channel (N,) = ({n},), or group scales (N, K // group_size) = "
                f"({n}, a divisor of {k}); a transposed or reshaped array is not taken"
            )
        if not np.all((scale > 0) & np.isfinite(scale)):
            raise ValueError(
                "scale must be positive and finite (after conversion to float32: float64 "
                "values beyond float32's range become Inf)"
            )
        scheme = scheme or QScheme("int8", symmetric=True, granularity="row", name="external")
        col_sums = q.sum(axis=1, dtype=np.int64).astype(np.int32)
        return cls(np.ascontiguousarray(q), scale, scheme, col_sums)

    @property
    def shape(self) -> tuple[int, int]:
        """``(N, K)``: output and input features."""
        return self.q.shape

    @property
    def group_size(self) -> int | None:
        """Input features per weight scale, for per-group weights; else None."""
        return self.q.shape[1] // self.scale.shape[1] if self.scale.ndim == 2 else None

    @functools.cached_property
    def zero_bias(self) -> np.ndarray:
        """``(N,)`` float32 zeros: the bias added when a Linear has none."""
        return np.zeros(self.q.shape[0], np.float32)

    def derived(self, key: tuple, make, *args):
        """The value derived from these weights under ``key``: ``make(*args)`` the first
        time, then the kept value.

        Parameters
        ----------
        key : tuple
            Names the value; its first item says what it is (``"packed"``,
            ``"block_panels"``, ``"reordered"``, ``"dynamic"``, ``"scheme checked"``).
        make : callable
            Makes the value from the weights (and ``args``).
        *args
            Passed to ``make`` (no closure to build on every call: this is on the
            path of every Linear call).

        Returns
        -------
        object
            The kept value.

        Notes
        -----
        What invalidates a derived value: only a change of ``q``, ``scale`` or
        ``col_sums`` in place, which nothing in numbaq does (the dataclass is frozen;
        the arrays are the weights' own). Change them and call :meth:`forget`. Pickling
        drops every derived value; they are made again where the weights are unpickled.

        Examples
        --------
        >>> qw = QuantizedWeight.from_int8(np.ones((2, 4), np.int8), 1.0)
        >>> qw.derived(("answer",), lambda: 42), qw.derived(("answer",), lambda: 0)
        (42, 42)
        """
        try:
            return self._derived[key]
        except KeyError:
            value = self._derived[key] = make(*args)
            return value

    def forget(self, key: tuple | None = None) -> None:
        """Drop the derived value ``key`` (one whose key went stale, as an ``id`` reused
        by another object), or every derived value (after changing the weights in place).

        Parameters
        ----------
        key : tuple, optional
            The value to drop; all of them by default.
        """
        if key is None:
            self._derived.clear()
        else:
            self._derived.pop(key, None)

    def packed(self, path: str) -> np.ndarray:
        """The weights packed for GEMM ``path`` (made once, then cached).

        Parameters
        ----------
        path : str
            A GEMM path name (see :func:`numbaq.info`).

        Returns
        -------
        (P,) int8 ndarray
            The layout that path's register tile reads: for each panel of output
            columns and each group of 4 K values, vectors of lanes, each lane holding
            one column's 4 weights (``vnni``), or K pairs (``pairs``), or row-major.
        """
        return self.derived(("packed", path), kg.pack, self.q, path)

    def block_panels(self, block: int, panel: int) -> tuple[np.ndarray, np.ndarray]:
        """The weight scale and the weight sum of each block of K and output channel, laid
        out panel by panel as the block-scaled kernels read them (made once).

        Parameters
        ----------
        block : int
            Block length along K: the group size of per-group weights, or any divisor of
            K for per-channel weights (each channel's scale repeated).
        panel : int
            Output columns per panel of the GEMM path (``PANEL``; 1 for plain).

        Returns
        -------
        scales : (P * (K // block) * panel,) float32 ndarray
            The weight scale of each block and output channel.
        sums : (P * (K // block) * panel,) int32 ndarray
            The sum of each block's int8 weights. Both flat ``[p][b][j]``: block ``b`` of
            output channel ``n = p * panel + j`` at ``(p * blocks + b) * panel + j``,
            ``P = ceil(N / panel)``; zeros past ``N``.
            Each panel's values are contiguous, so a panel's blocks stream from memory in
            order (row by row over all N, a 576 -> 49152 Linear ran at 0.44x its speed).

        Examples
        --------
        >>> qw = QuantizedWeight.from_int8(np.ones((3, 8), np.int8), 0.5)
        >>> scales, sums = qw.block_panels(4, 2)  # 2 panels x 2 blocks x 2 columns
        >>> scales.tolist(), sums.tolist()
        ([0.5, 0.5, 0.5, 0.5, 0.5, 0.0, 0.5, 0.0], [4, 4, 4, 4, 4, 0, 4, 0])
        """
        return self.derived(
            ("block_panels", block, panel), lambda: self._block_panels(block, panel)
        )

    def _block_panels(self, block: int, panel: int) -> tuple[np.ndarray, np.ndarray]:
        n, k = self.q.shape
        blocks, panels = k // block, -(-n // panel)
        scale = self.scale if self.scale.ndim == 2 else self.scale[:, None]
        sums = self.q.reshape(n, blocks, block).sum(axis=2, dtype=np.int64)
        packed = []
        for values, dtype in ((np.broadcast_to(scale, (n, blocks)), np.float32), (sums, np.int32)):
            out = np.zeros((panels * panel, blocks), dtype)
            out[:n] = values
            out = out.reshape(panels, panel, blocks).transpose(0, 2, 1)
            packed.append(np.ascontiguousarray(out).reshape(-1))
        return tuple(packed)

    def reordered(self, name: str, order: np.ndarray) -> QuantizedWeight:
        """The same weights with their rows (output channels) in ``order``: ``q[order]``,
        ``scale[order]``, ``col_sums[order]``; made once per ``name``, then cached (the
        LSTM/GRU recurrence keeps each block of hidden units' gates together)."""
        return self.derived(
            ("reordered", name),
            lambda: QuantizedWeight(
                np.ascontiguousarray(self.q[order]),
                np.ascontiguousarray(self.scale[order]),
                self.scheme,
                np.ascontiguousarray(self.col_sums[order]),
            ),
        )

    def __getstate__(self) -> dict:
        """Pickle ``q``, ``scale``, ``scheme`` and ``col_sums`` only: the packed copies
        and ``zero_bias`` are remade on first use where the weights are unpickled (a
        model sent to a cluster's workers does not carry them twice)."""
        state = {k: v for k, v in self.__dict__.items() if k != "zero_bias"}
        state["_derived"] = {}
        return state

    def dequantize(self) -> np.ndarray:
        """The float weights this stands for: ``q * scale[:, None]``, or per group
        ``q[n, k] * scale[n, k // group_size]``.

        Returns
        -------
        (N, K) float32 ndarray
            ``q`` times its output channel's (or group's) scale.

        Examples
        --------
        >>> q = np.array([[1, 2, 3, 4]], np.int8)
        >>> QuantizedWeight.from_int8(q, [[0.5, 2.0]]).dequantize().tolist()  # groups of 2
        [[0.5, 1.0, 6.0, 8.0]]
        """
        q = self.q.astype(np.float32)
        if self.scale.ndim == 1:
            return q * self.scale[:, None]
        n, k = q.shape
        groups = self.scale.shape[1]
        return (q.reshape(n, groups, k // groups) * self.scale[:, :, None]).reshape(n, k)

    @property
    def nbytes(self) -> int:
        """Bytes of int8 values and scales (the packed copies not counted)."""
        return self.q.nbytes + self.scale.nbytes

    def __repr__(self) -> str:
        n, k = self.shape
        where = "per tensor" if self.scheme.granularity == "tensor" else "per channel"
        return (
            f"QuantizedWeight({n} x {k} {self.scheme.dtype} {where}, q in "
            f"[{int(self.q.min())}, {int(self.q.max())}], scales in "
            f"[{float(self.scale.min()):.4g}, {float(self.scale.max()):.4g}], "
            f"{self.nbytes / 1e6:.2f} MB)"
        )


def quantize_weight(
    w,
    per_channel: bool = True,
    dtype: str = "int8",
    narrow_range: bool = True,
    group_size: int | None = None,
) -> QuantizedWeight:
    """Quantize Linear weights once, symmetrically: ``q = clip(round(w / scale), qmin, qmax)``.

    Parameters
    ----------
    w : (N, K) float array
        Weights as ``torch.nn.Linear`` stores them: one row per output feature.
    per_channel : bool
        One scale per output channel (row); else one for the whole tensor.
    dtype : {"int8", "int4"}
        int4 values are held in int8 storage.
    narrow_range : bool
        Use [-127, 127] (int4: [-7, 7]), so that ``-q`` is representable.
    group_size : int, optional
        One scale per output channel and group of ``group_size`` input features (the
        usual int4 layout). Such weights run through the per-block kernel and need
        symmetric int8 activations (``PER_TOKEN_INT8`` or ``BLOCK_Q8_0``).

    Returns
    -------
    QuantizedWeight
        The int8 values, their scales and column sums.

    Raises
    ------
    ValueError
        If ``w`` is not 2-D, ``dtype`` is not int8 or int4, ``group_size`` does not
        fit K, ``w`` holds NaN or Inf, or ``w`` lies so close to float32's largest value
        that its quantized values ``q * scale`` overflow float32.

    Notes
    -----
    .. math:: s_n = \\frac{\\max_k |w_{nk}|}{q_{max}},\\quad
              q_{nk} = \\mathrm{clip}(\\mathrm{round}(w_{nk} / s_n), q_{min}, q_{max})

    Plain text: ``scale[n] = max(|w[n, :]|) / qmax``, ``q = clip(round(w / scale), qmin, qmax)``.

    Examples
    --------
    >>> qw = quantize_weight(np.array([[0.5, -1.0], [2.0, 0.25]]))
    >>> qw.q.tolist(), qw.scale.tolist()
    ([[64, -127], [127, 16]], [0.007874015718698502, 0.015748031437397003])
    """
    if not isinstance(dtype, str) or dtype not in ("int8", "int4"):
        raise ValueError(f"dtype must be 'int8' or 'int4' for weights, got {dtype!r}")
    if not isinstance(per_channel, (bool, np.bool_)):
        raise TypeError(f"per_channel must be True or False, got {per_channel!r}")
    w = as_float32(w, "w")
    if w.ndim != 2:
        raise ValueError(f"w must be 2-D (N, K), got shape {w.shape}")
    if group_size is not None:
        k = w.shape[1]
        if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)):
            raise TypeError(f"group_size must be an int or None, got {group_size!r}")
        if group_size < 4 or group_size % 4 or k % group_size:
            raise ValueError(
                f"group_size={group_size} must be a multiple of 4 (the integer GEMM reads K "
                f"four values at a time) that divides K={k}, e.g. 32; or None for one "
                "scale per output channel"
            )
    granularity = "block" if group_size else ("row" if per_channel else "tensor")
    scheme = QScheme(
        dtype,
        symmetric=True,
        granularity=granularity,
        block_size=group_size,
        narrow_range=narrow_range,
        name="weights",
    )
    if not np.isfinite(w).all():  # once per weights; names w, not the verb's x
        raise ValueError(
            "w contains NaN or Inf after conversion to float32 (float64 weights beyond "
            "float32's range become Inf); clean or rescale w"
        )
    q, qp = dynamic_quantize(w, scheme)
    check_representable(
        q,
        qp.scale,
        "w quantized (q * scale)",
        "w lies within one quantization step of float32's largest value: rescale w",
    )
    return QuantizedWeight.from_int8(q, qp.scale, scheme)


def check_representable(q: np.ndarray, scale: np.ndarray, name: str, fix: str) -> None:
    """Refuse int8 weights ``q`` (N, K) whose values ``q * scale`` leave float32 (a scale
    near float32's largest value); ``scale`` (), (N,) or (N, groups). The error calls the
    values ``name`` and says ``fix``. Costs one comparison unless a scale is that large."""
    if float(scale.max()) * 128 <= FLOAT32_MAX:  # |q| <= 128: nothing can overflow
        return
    n, k = q.shape
    groups = scale.reshape(n, -1) if scale.ndim == 2 else np.broadcast_to(scale, (n,))[:, None]
    step = np.repeat(groups, k // groups.shape[1], axis=1)
    with np.errstate(over="ignore"):
        if not np.isfinite(q * step).all():
            raise output_overflow(name, fix)
