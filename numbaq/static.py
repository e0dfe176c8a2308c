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

import numba
import numpy as np

from . import config
from . import matmul as mm
from .convert import replace_modules
from .kernels import gemm as kg
from .kernels import quantize as kq
from .layers import Linear, Module
from .layers.linear import _input
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

    Returns
    -------
    dict
        ``{layer name: observer}``.
    """
    cls = OBSERVERS[observer] if isinstance(observer, str) else observer
    targets = {name: m for name, m in model.named_modules() if type(m) in layers}
    observers = {name: cls(scheme, **options) for name in targets}
    names = {id(m): name for name, m in targets.items()}

    def record(module, args, out):
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


class StaticQuantLinear(Module):
    """A Linear with int8 weights and *fixed* activation qparams (static quantization).

    Notes
    -----
    ``y = float32(acc - zp_x * col_sums[n]) * (scale_x * scale_w[n]) + bias[n]`` with
    ``acc = q_x . q_w^T`` and ``q_x = clip(round(x / scale_x) + zp_x, qmin, qmax)`` for
    the calibrated ``scale_x``, ``zp_x``, in one kernel pass that also counts the values that
    fell outside the calibrated range (``clipped``, over ``seen`` values).
    """

    quantized = True

    def __init__(self, qweight: QuantizedWeight, bias, act_qparams: QParams):
        super().__init__()
        if act_qparams.scale.ndim != 0:
            raise ValueError("StaticQuantLinear: activation qparams must be per tensor")
        self.qweight = qweight
        self.act_qparams = act_qparams
        self.scheme = act_qparams.scheme
        self._param("weight_int8", qweight.q)
        self._param("weight_scale", qweight.scale)
        self._param("bias", None if bias is None else mm._bias(bias, qweight.shape[0]))
        self.clipped = 0
        self.seen = 0
        self.trace_log = None

    @classmethod
    def from_float(
        cls, linear: Linear, act_qparams: QParams, per_channel: bool = True, dtype: str = "int8"
    ) -> StaticQuantLinear:
        return cls(quantize_weight(linear.weight, per_channel, dtype), linear.bias, act_qparams)

    def forward(self, x):
        n, k = self.qweight.shape
        x = _input(self, x, k)
        x2d = x.reshape(-1, k)
        qp = self.act_qparams
        m = x2d.shape[0]
        signed = qp.storage is np.int8
        a = np.empty((m, 4 * -(-k // 4)), np.uint8)
        if a.shape[1] != k:
            a[:, k:] = 0
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
        zero_point = np.full(m, int(qp.zero_point) + (128 if signed else 0), np.int32)
        if self.trace_log is not None:
            self.trace_log.append(
                {"scale": scale, "zero_point": zero_point - (128 if signed else 0)}
            )
        y = np.empty((m, n), np.float32)
        path, mod = mm._kernels(config.GEMM_PATH)
        bias = self.qweight.zero_bias if self.bias is None else self.bias
        args = (
            a.reshape(-1),
            a.shape[1],
            m,
            self.qweight.packed(path),
            a.shape[1] // 4,
            n,
            scale,
            zero_point,
            self.qweight.scale,
            self.qweight.col_sums,
            bias,
            0,
            y,
        )
        if mm._parallel(m, n, k):
            mod.linear_f32_par(*args, kg.m_block(m, n, path, numba.get_num_threads()))
        else:
            mod.linear_f32(*args)
        return y.reshape(x.shape[:-1] + (n,))

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

    Examples
    --------
    >>> from numbaq.layers import Linear
    >>> model = Linear(np.eye(4, dtype=np.float32))
    >>> static = quantize_static(model, calibrate(model, [np.ones((2, 4), np.float32)]))
    >>> static(np.full((1, 4), 2.0, np.float32)).tolist()  # 2 > calibrated max 1: clips
    [[1.0, 1.0, 1.0, 1.0]]
    """

    def replace(name, module):
        if name in observers and type(module) is Linear:
            return StaticQuantLinear.from_float(
                module, observers[name].qparams(), per_channel, weight_dtype
            )
        return None

    return replace_modules(model, replace)
