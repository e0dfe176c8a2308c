"""Named activation schemes, each with its exact rules.

===================  =====  ==========  ===========  ===========  ================================
name                 dtype  symmetric   granularity  q range      scale
===================  =====  ==========  ===========  ===========  ================================
``ONNX``             uint8  no          tensor       [0, 255]     (max' - min') / 255, float32 math
``TORCH``            uint8  no          tensor       [0, 255]     (max' - min') / 127, torch rules
``PER_TOKEN_INT8``   int8   yes         row          [-127, 127]  absmax / 127
``PER_TOKEN_UINT8``  uint8  no          row          [0, 255]     (max' - min') / 255
``PER_TOKEN_UINT7``  uint7  no          row          [0, 127]     (max' - min') / 127
``BLOCK_Q8_0``       int8   yes         block of 32  [-127, 127]  absmax / 127
===================  =====  ==========  ===========  ===========  ================================

``min' = min(x_min, 0)`` and ``max' = max(x_max, 0)``: every range includes 0.

``ONNX``
    The ``DynamicQuantizeLinear`` operator: ``scale = (max' - min') / 255`` in float32
    (``1 / 255`` for an all-zero tensor), ``zero_point = round(clip(-min' / scale, 0, 255))``,
    ``q = clip(round(x / scale) + zero_point, 0, 255)``; round half to even throughout.
``TORCH``
    PyTorch's dynamic Linear activations (``quantize_per_tensor_dynamic(x, quint8,
    reduce_range=True)``): the scale is chosen for [0, 127] in float64 and rounded to
    float32; a zero scale (or one whose reciprocal overflows) becomes 0.1; scales under
    6.1e-5 are raised to it (stretching min/max by the same factor); the zero point is
    taken from whichever end (min or max) has the smaller rounding error, then nudged
    into [0, 127] and rounded; ``q = clip(round(fma(x, 1 / scale, zero_point)), 0, 255)``
    with one rounding of the fused multiply-add, as fbgemm. Values saturate to the
    storage range [0, 255], not [0, 127], as in PyTorch.
``PER_TOKEN_INT8``
    One symmetric scale per row (token): ``scale = absmax / 127``, ``zero_point = 0``,
    ``q = clip(round(x * (1 / scale)), -127, 127)``.
``PER_TOKEN_UINT8``
    One asymmetric scale per row, ONNX's float32 scale and zero point applied row by
    row, ``q = clip(round(fma(x, 1 / scale, zero_point)), 0, 255)``.
``PER_TOKEN_UINT7``
    ``PER_TOKEN_UINT8`` with 7-bit codes, ``q = clip(round(fma(x, 1 / scale, zero_point)),
    0, 127)``: one bit less (about 6 dB of activation SQNR) for the AVX2 GEMM's fastest
    exact step, ``vpmaddubsw``, which cannot saturate on codes up to 127 (1.3x the speed
    of the 8-bit path on a Zen 3 core; ``numbaq.kernels.paths.SEVEN_BIT``). On VNNI
    CPUs it runs as fast as the 8-bit schemes, with the same bits on every path.
``BLOCK_Q8_0``
    llama.cpp's Q8_0: blocks of 32 along the last axis, ``scale = absmax / 127``,
    ``q = clip(round(x * (1 / scale)), -127, 127)`` (half to even; llama.cpp rounds
    half away from zero).

numbaq's own schemes multiply by the reciprocal ``1 / scale`` (one division per group)
rather than divide every value: a float32 division costs about 5x a multiply-add here,
and it dominated the quantize pass. ``ONNX`` divides, as its specification says.
"""

from __future__ import annotations

from .qparams import QScheme

ONNX = QScheme(dtype="uint8", symmetric=False, granularity="tensor", rule="onnx", name="ONNX")
TORCH = QScheme(
    dtype="uint8",
    symmetric=False,
    granularity="tensor",
    reduce_range=True,
    rule="torch",
    reciprocal=True,
    name="TORCH",
)
PER_TOKEN_INT8 = QScheme(
    dtype="int8",
    symmetric=True,
    granularity="row",
    narrow_range=True,
    reciprocal=True,
    name="PER_TOKEN_INT8",
)
PER_TOKEN_UINT8 = QScheme(
    dtype="uint8", symmetric=False, granularity="row", reciprocal=True, name="PER_TOKEN_UINT8"
)
PER_TOKEN_UINT7 = QScheme(
    dtype="uint7", symmetric=False, granularity="row", reciprocal=True, name="PER_TOKEN_UINT7"
)
BLOCK_Q8_0 = QScheme(
    dtype="int8",
    symmetric=True,
    granularity="block",
    block_size=32,
    narrow_range=True,
    reciprocal=True,
    name="BLOCK_Q8_0",
)

OUTLIER_SCHEMES = ("SMOOTHQUANT", "LLM_INT8")
"""Outlier-aware schemes: names for :func:`numbaq.quantize_dynamic`, which replace each
Linear with a :class:`numbaq.outliers.SmoothQuantLinear` (SmoothQuant-style smoothing
folded into the weights, migration strength ``alpha``) or an
:class:`numbaq.outliers.LLMInt8Linear` (input channels with ``|x| > threshold`` in float,
the rest int8). Their int8 part uses per-token activations."""

SCHEMES: dict[str, QScheme] = {
    s.name: s for s in (ONNX, TORCH, PER_TOKEN_INT8, PER_TOKEN_UINT8, PER_TOKEN_UINT7, BLOCK_Q8_0)
}
"""Every named scheme, by name."""


DEFAULT_SCHEME = PER_TOKEN_UINT8
"""The scheme used when none is given: asymmetric uint8, one scale and zero point per
token. It is as fast as symmetric int8 here (the int8 path pays the same zero-point
correction for its +128 shift) and uses all 256 codes on one-sided activations (after a
ReLU or GELU): on all-MiniLM-L6-v2 the lowest cosine to fp32 over 64 sentences is 0.988,
against 0.969 for ``PER_TOKEN_INT8``."""

GROUP_DEFAULT = PER_TOKEN_INT8
"""The default for per-group weights: the per-group kernel takes symmetric int8
activations (each group's int32 sum is scaled on its own, with no zero point)."""

TORCH_INTEROP_DEFAULT = TORCH
"""The default of :func:`numbaq.from_torch`: a module torch already quantized keeps
torch's own activation rule, so the converted model computes what torch's did."""

OBSERVER_DEFAULT = ONNX
"""The default of the static observers (:mod:`numbaq.observers`): one calibrated
per-tensor uint8 scale and zero point, as ONNX's static QDQ quantization."""


def resolve(scheme=None, *, default: QScheme | None = None, group_size=None) -> QScheme:
    """The activation scheme to use: ``scheme`` if given, else the default that applies.

    Every place that takes an optional scheme resolves it here: ``default`` where the
    caller has a deliberate exception (:data:`TORCH_INTEROP_DEFAULT`,
    :data:`OBSERVER_DEFAULT`), else :data:`GROUP_DEFAULT` for per-group weights
    (``group_size``), else :data:`DEFAULT_SCHEME`.

    Parameters
    ----------
    scheme : QScheme or str, optional
        A scheme or a scheme name (see :func:`get`).
    default : QScheme, optional
        The caller's own default, one of the exceptions named in this module.
    group_size : int, optional
        The weights' group size, when they are per-group.

    Returns
    -------
    QScheme
        The scheme the caller quantizes its activations with.

    Examples
    --------
    >>> resolve().name, resolve(group_size=32).name, resolve("onnx").name
    ('PER_TOKEN_UINT8', 'PER_TOKEN_INT8', 'ONNX')
    """
    if scheme is not None:
        return get(scheme)
    if default is not None:
        return default
    return GROUP_DEFAULT if group_size else DEFAULT_SCHEME


def get(scheme) -> QScheme:
    """Return a :class:`QScheme` from a scheme or a scheme name (case-insensitive).

    Parameters
    ----------
    scheme : QScheme or str
        A scheme (returned as is) or the name of one in :data:`SCHEMES`.

    Returns
    -------
    QScheme
        The scheme.

    Raises
    ------
    ValueError
        If the name is not a known scheme (the message lists them).

    Examples
    --------
    >>> get("per_token_int8").granularity
    'row'
    """
    if isinstance(scheme, QScheme):
        return scheme
    if isinstance(scheme, str):
        found = SCHEMES.get(scheme.upper())
        if found is not None:
            return found
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {sorted(SCHEMES)}")
    raise TypeError(
        f"scheme must be a QScheme or one of the names {sorted(SCHEMES)}, "
        f"got {type(scheme).__name__}"
    )
