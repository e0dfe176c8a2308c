"""Static quantization beside dynamic: calibrate once, then fixed activation scales.

::

    observers = calibrate(model, batches)                 # float model, calibration data
    smodel = quantize_static(model, observers)            # Linear -> StaticQuantLinear

A :class:`StaticQuantLinear` quantizes its input with the scale and zero point fixed at
calibration, so no runtime statistics are computed; values outside the calibrated range
clip, and the layer counts them (``clipped`` of ``seen``). Static and dynamic layers mix
in one model: run :func:`numbaq.quantize_dynamic` on the result to quantize the rest.
"""

from __future__ import annotations

import threading

import numpy as np

from . import engine
from . import matmul as mm
from .checks import check_finite
from .codes import check_qparams
from .kernels import quantize as kq
from .layers import Linear, Module, QuantLinearBase
from .layers.base import replace_modules
from .matmul import QuantizedWeight, quantize_weight
from .observers import OBSERVERS, Observer
from .qparams import QParams


def calibrate(
    model: Module, batches, observer="minmax", scheme=None, layers=(Linear,), **options
) -> dict[str, Observer]:
    """Run ``model`` on each calibration batch and observe every chosen layer's input.

    Parameters
    ----------
    model : Module
        The float model.
    batches : iterable of inputs
        Calibration data; each item is passed to ``model``.
    observer : str or Observer class
        ``"minmax"``, ``"moving_average"``, ``"histogram"``, ``"mse"`` or a class.
    scheme : QScheme or str, optional
        Activation dtype and symmetry for the observers (default ``ONNX``: uint8).
    layers : tuple of types
        The layer types whose inputs are observed (default: :class:`numbaq.Linear`).
    **options
        Passed to the observer class, e.g. ``percentile=99.9`` for ``"histogram"``.

    Returns
    -------
    dict
        ``{layer name: observer}``.

    Examples
    --------
    >>> from numbaq.layers import Linear, ReLU, Sequential
    >>> model = Sequential(Linear(np.eye(2, dtype=np.float32)), ReLU())
    >>> observers = calibrate(model, [np.array([[-1.0, 3.0]], np.float32)])
    >>> observers["0"].range()
    (-1.0, 3.0)
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a numbaq Module, got {type(model).__name__}")
    if isinstance(observer, str) and observer not in OBSERVERS:
        raise ValueError(f"unknown observer {observer!r}; choose one of {sorted(OBSERVERS)}")
    cls = OBSERVERS[observer] if isinstance(observer, str) else observer
    if not callable(cls):
        raise TypeError(f"observer must be one of {sorted(OBSERVERS)} or a class, got {observer!r}")
    if not hasattr(batches, "__iter__"):
        raise TypeError(
            f"batches must be an iterable of model inputs, got {type(batches).__name__}"
        )
    targets = {name: m for name, m in model.named_modules() if type(m) in layers}
    observers = {name: cls(scheme, **options) for name in targets}
    names = {id(m): name for name, m in targets.items()}

    caller = threading.get_ident()

    def record(module, args, out):
        if threading.get_ident() == caller:  # only the calibration batches of this call
            observers[names[id(module)]].update(args[0])

    for module in targets.values():
        module._recorder = record
    try:
        for batch in batches:
            model(batch)
    finally:
        for module in targets.values():
            module._recorder = None
    return observers


class StaticQuantLinear(QuantLinearBase):
    """A Linear with int8 weights and *fixed* activation qparams (static quantization).

    Notes
    -----
    ``y = float32(acc - zp_x * col_sums[n]) * (scale_x * scale_w[n]) + bias[n]`` with
    ``acc = q_x . q_w^T`` and ``q_x = clip(round(x / scale_x) + zp_x, qmin, qmax)`` for
    the calibrated ``scale_x``, ``zp_x``, in one kernel pass that also counts the values that
    fell outside the calibrated range (``clipped``, over ``seen`` values).

    Parameters
    ----------
    qweight : QuantizedWeight
        The int8 weights (N, K).
    bias : (N,) float array or None
        Added to every output row.
    act_qparams : QParams
        Per-tensor activation parameters, e.g. from an observer's ``qparams()``.

    Examples
    --------
    >>> import numbaq
    >>> qp = numbaq.qparams_from_minmax(np.float32(-1), np.float32(1), "ONNX")
    >>> layer = StaticQuantLinear(numbaq.quantize_weight(np.eye(2, dtype=np.float32)), None, qp)
    >>> layer(np.array([[0.5, 3.0]], np.float32)).round(2).tolist(), layer.clipped
    ([[0.5, 1.0]], 1)
    """

    def __init__(self, qweight: QuantizedWeight, bias, act_qparams: QParams):
        super().__init__()
        self.activation = None  # from_float takes the float Linear's
        if not isinstance(qweight, QuantizedWeight):
            raise TypeError(
                f"StaticQuantLinear: qweight must be a QuantizedWeight, got {type(qweight)}"
            )
        if not isinstance(act_qparams, QParams):
            raise TypeError(
                f"StaticQuantLinear: act_qparams must be a QParams, got {type(act_qparams)}"
            )
        if np.ndim(act_qparams.scale) != 0:
            raise ValueError("StaticQuantLinear: activation qparams must be per tensor")
        try:
            check_qparams(act_qparams, ())
            mm.check_k(
                qweight.shape[1], act_qparams.qmax - act_qparams.qmin, 128, "static activations"
            )
        except ValueError as err:
            raise ValueError(f"StaticQuantLinear: {err}") from None
        self.act_qparams = act_qparams
        self.scheme = act_qparams.scheme
        self._set_weights(qweight, bias)
        self.clipped = 0
        self.seen = 0

    @classmethod
    def from_float(
        cls, linear: Linear, act_qparams: QParams, per_channel: bool = True, dtype: str = "int8"
    ) -> StaticQuantLinear:
        layer = cls(quantize_weight(linear.weight, per_channel, dtype), linear.bias, act_qparams)
        layer.activation = getattr(linear, "activation", None)  # in the epilogue
        return layer

    def _product(self, x2d, bias):
        """Quantize ``x2d`` with the calibrated parameters (values outside the range clip,
        counted in ``clipped``), then the int8 GEMM."""
        check_finite(x2d, "StaticQuantLinear: input")  # the fixed-scale kernel clips NaN
        qp = self.act_qparams
        m, k = x2d.shape
        signed = qp.storage is np.int8
        a = engine.lhs_buffer(m, k)
        reciprocal = bool(qp.scheme is not None and qp.scheme.reciprocal)
        self.clipped += int(
            kq._quantize_lhs_static(
                np.ascontiguousarray(x2d),
                np.float32(qp.scale),
                int(qp.zero_point),
                qp.qmin,
                qp.qmax,
                reciprocal,
                signed,
                a,
            )
        )
        self.seen += x2d.size
        scale = np.full(m, qp.scale, np.float32)
        zero_point = np.full(m, int(qp.zero_point), np.int32)
        y = np.empty((m, self.out_features), np.float32)
        act = mm.ACTIVATIONS[self.activation]
        engine.linear(a, scale, zero_point, signed, self.qweight, bias, act, y, qp.qmax)
        return y, {"scale": scale, "zero_point": zero_point}

    def extra_repr(self) -> str:
        qp = self.act_qparams
        return (
            f"in_features={self.qweight.shape[1]}, out_features={self.qweight.shape[0]}, "
            f"static scale={float(qp.scale):.4g}, zero_point={int(qp.zero_point)}, "
            f"clipped {self.clipped}/{self.seen}"
        )


def quantize_static(
    model: Module, observers: dict, per_channel: bool = True, weight_dtype: str = "int8"
) -> Module:
    """A copy of ``model`` whose observed Linear layers use fixed activation qparams.

    Parameters
    ----------
    model : Module
        The float model that was calibrated.
    observers : dict
        ``{layer name: observer}`` from :func:`calibrate`.
    per_channel : bool
        One weight scale per output channel; else one per tensor.
    weight_dtype : {"int8", "int4"}
        Weight dtype, as in :func:`numbaq.quantize_weight`.

    Returns
    -------
    Module
        A copy with a :class:`StaticQuantLinear` in place of each observed Linear;
        ``model`` is left unchanged.

    Examples
    --------
    >>> from numbaq.layers import Linear
    >>> model = Linear(np.eye(4, dtype=np.float32))
    >>> static = quantize_static(model, calibrate(model, [np.ones((2, 4), np.float32)]))
    >>> static(np.full((1, 4), 2.0, np.float32)).tolist()  # 2 > calibrated max 1: clips
    [[1.0, 1.0, 1.0, 1.0]]
    """

    if not isinstance(observers, dict):
        raise TypeError(
            f"observers must be the dict that calibrate returns, got {type(observers).__name__}"
        )

    def replace(name, module):
        if name in observers and type(module) is Linear:
            return StaticQuantLinear.from_float(
                module, observers[name].qparams(), per_channel, weight_dtype
            )
        return None

    return replace_modules(model, replace)
