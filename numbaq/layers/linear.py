"""Linear layers: float :class:`Linear` and dynamically quantized :class:`QuantLinear`.

:class:`QuantLinearBase` holds what every int8 Linear shares (here and in
:mod:`numbaq.static` and :mod:`numbaq.outliers`): int8 weights, the bias, and one
``forward`` that checks the input, runs the subclass's int8 product and records the
runtime scales for :func:`numbaq.trace`.
"""

from __future__ import annotations

import numpy as np

from .. import schemes
from ..checks import check_bias, check_output, layer_error, layer_input
from ..matmul import ACTIVATIONS, QuantizedWeight, check_linear_scheme, linear_2d, quantize_weight
from .base import Module
from .tensors import tensor_array, tensor_qweight


def activate(y: np.ndarray, activation: str) -> np.ndarray:
    """``y`` (float32, C-contiguous) with ReLU (in place) or exact GELU applied."""
    if activation == "relu":
        return np.maximum(y, np.float32(0), out=y)
    from ..kernels.mathf import _gelu_array

    out = np.empty_like(y)  # not in place: LLVM's overlap check then takes the scalar loop
    _gelu_array(y.reshape(-1), out.reshape(-1))  # (measured 18 ms in place, 1.2 ms not)
    return out


def check_float_output(layer, y: np.ndarray, x, weight: np.ndarray) -> None:
    """Refuse a float product ``y = x . weight^T (+ bias)`` that overflowed float32 from
    finite ``x`` and ``weight`` (:func:`numbaq.checks.check_output`), naming ``layer``:
    the float :class:`Linear`, and the float part of the outlier Linears."""
    check_output(
        y,
        (x, weight),  # x as the caller gave it: float64 beyond float32's range is refused
        "the output x . weight^T + bias",
        "|x| times |weight| summed over K reaches float32's largest value: rescale x "
        "(or the weight)",
        layer,
    )


class Linear(Module, kind=True):
    """``y = x W^T + b`` in float32, as ``torch.nn.Linear``.

    Parameters
    ----------
    weight : (N, K) float array
        One row per output feature, as ``torch.nn.Linear.weight``; stored as float32.
    bias : (N,) float array, optional
        Added to every output row.
    activation : {None, "relu", "gelu"}
        Applied to the output in the same call (exact GELU, erf to 5e-7); kept by
        :meth:`QuantLinear.from_float`, which fuses it into the GEMM epilogue.

    Examples
    --------
    >>> Linear(np.array([[1.0, 2.0]]), np.array([0.5]))(np.array([[3.0, 4.0]])).tolist()
    [[11.5]]
    """

    torch_twins = ("torch.nn.Linear",)

    def __init__(self, weight, bias=None, activation=None):
        super().__init__()
        weight = np.asarray(weight)
        if weight.dtype.kind not in "fiu":
            raise TypeError(f"Linear: weight must be a float array, got dtype {weight.dtype}")
        weight = weight.astype(np.float32, copy=False)
        if weight.ndim != 2:
            raise ValueError(
                f"Linear: weight must be (out_features, in_features), got {weight.shape}"
            )
        if weight.size == 0 or not np.isfinite(weight).all():
            raise ValueError(
                f"Linear: weight must be non-empty and finite (no NaN/Inf), got shape "
                f"{weight.shape}"
            )
        if not isinstance(activation, (str, type(None))) or activation not in ACTIVATIONS:
            raise ValueError(f"Linear: activation must be one of {list(ACTIVATIONS)}")
        self._param("weight", weight)
        self._param("bias", None if bias is None else check_bias(bias, weight.shape[0]))
        self.activation = activation

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def forward(self, x):
        """``y = x W^T + b`` (then the activation), in float32.

        Parameters
        ----------
        x : (..., K) float array
            Inputs; float16 and float64 are converted to float32.

        Returns
        -------
        (..., N) float32 ndarray
            The outputs.

        Raises
        ------
        ValueError
            If the last axis of ``x`` is not K, or the output overflows float32 from
            finite ``x`` (float64 beyond float32's range included; NaN or Inf in ``x``
            pass through, as in float arithmetic).
        """
        given = x
        x = layer_input(self, x, self.in_features)
        y = x @ self.weight.T
        if self.bias is not None:
            y += self.bias  # y is a fresh float32 array
        check_float_output(self, y, given, self.weight)  # before the activation hides Inf
        if self.activation is not None:
            y = activate(np.ascontiguousarray(y, np.float32), self.activation)
        return y

    def extra_repr(self) -> str:
        act = f", activation={self.activation!r}" if self.activation is not None else ""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}{act}"
        )

    @classmethod
    def from_saved(cls, config: dict, arrays: dict, activation=None, **stored) -> Linear:
        if set(arrays) not in ({"weight"}, {"weight", "bias"}):
            raise ValueError(f"Linear: arrays {sorted(arrays)}, not ['weight'] (and 'bias')")
        return cls(arrays["weight"], arrays.get("bias"), activation or None)

    @classmethod
    def from_torch(cls, module, scheme=None, convert=None) -> Linear:
        return cls(tensor_array(module.weight), tensor_array(module.bias))


class QuantLinearBase(Module):
    """What the int8 Linears share: int8 weights, a bias, and one ``forward``.

    ``forward`` checks the input against ``in_features``, flattens it to rows, runs
    :meth:`_product` (each subclass's int8 product: dynamic, static, smoothed or split),
    records its runtime scales for :func:`numbaq.trace` and restores the leading axes.
    Subclasses call :meth:`_set_weights` and set ``scheme``, ``activation`` and, where
    their product differs from the dynamic one, override :meth:`_product`.
    """

    quantized = True

    def _set_weights(self, qweight: QuantizedWeight, bias) -> None:
        """Keep ``qweight`` and register ``weight_int8``, ``weight_scale``, ``bias``."""
        self.qweight = qweight
        self._param("weight_int8", qweight.q)
        self._param("weight_scale", qweight.scale)
        self._param("bias", None if bias is None else check_bias(bias, qweight.shape[0]))
        self.trace_log: list | None = None

    @property
    def qweights(self) -> dict[str, QuantizedWeight]:
        """``{"weight": qweight}``: the int8 weights by name, as :func:`numbaq.save`
        stores them."""
        return {"weight": self.qweight}

    @property
    def in_features(self) -> int:
        """Input features, ``K``."""
        return self.qweight.shape[1]

    @property
    def out_features(self) -> int:
        """Output features, ``N``."""
        return self.qweight.shape[0]

    def forward(self, x):
        """The int8 Linear: quantize ``x``, int8 GEMM, dequantize (the activation fused).

        Parameters
        ----------
        x : (..., K) float array
            Inputs; float16 and float64 are converted to float32.

        Returns
        -------
        (..., N) float32 ndarray
            The outputs (after the fused activation, if any).

        Raises
        ------
        ValueError
            If the last axis of ``x`` is not K, or ``x`` holds NaN or Inf.
        """
        x = layer_input(self, x, self.in_features)
        bias = self.qweight.zero_bias if self.bias is None else self.bias
        y, record = self._product(x.reshape(-1, self.in_features), bias)
        if self.trace_log is not None:
            self.trace_log.append(record)
        return y.reshape(x.shape[:-1] + (self.out_features,))

    def _product(self, x2d: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, dict]:
        """``(y, trace record)`` for rows ``x2d`` (M, K): the dynamic int8 product, the
        activation scale and zero point from each row's own range (or the scheme's)."""
        try:
            y, scale, zero_point = linear_2d(
                x2d, self.qweight, bias, self.scheme, ACTIVATIONS[self.activation]
            )
        except ValueError as err:
            raise layer_error(self, err) from None
        return y, {"scale": scale, "zero_point": zero_point}


class QuantLinear(QuantLinearBase, kind=True):
    """A dynamically quantized Linear: int8 weights packed once, activations quantized
    from their own range on every call.

    Parameters
    ----------
    qweight : QuantizedWeight
        (N, K) int8 weights and their scales.
    bias : (N,) float array, optional
        Added to every output row.
    scheme : QScheme or str
        Activation scheme (default ``PER_TOKEN_UINT8``).
    activation : {None, "relu", "gelu"}
        Fused into the epilogue.

    Notes
    -----
    ``y = float32(acc - zp_x[m] * col_sums[n]) * (scale_x[m] * scale_w[n]) + bias[n]`` with
    ``acc = q_x . q_w^T`` in int32; see :func:`numbaq.quantized_linear`. While a
    :func:`numbaq.trace` is active, each call appends its runtime ``scale`` and
    ``zero_point`` to ``self.trace_log``.

    Examples
    --------
    >>> w = np.array([[1.0, -2.0], [0.5, 4.0]], np.float32)
    >>> layer = QuantLinear.from_float(Linear(w))
    >>> layer(np.array([[1.0, 1.0]], np.float32)).astype(float).round(1).tolist()
    [[-1.0, 4.5]]
    """

    float_twin = Linear
    per_group_weights = True
    torch_twins = ("torch.ao.nn.quantized.dynamic.Linear",)

    def __init__(self, qweight: QuantizedWeight, bias=None, scheme=None, activation=None):
        super().__init__()
        if not isinstance(qweight, QuantizedWeight):
            raise TypeError(f"QuantLinear: qweight must be a QuantizedWeight, got {type(qweight)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"QuantLinear: activation must be one of {list(ACTIVATIONS)}")
        self.scheme = schemes.resolve(scheme)
        check_linear_scheme(self.scheme, qweight, "QuantLinear")
        self.activation = activation
        self._set_weights(qweight, bias)

    @classmethod
    def from_float(
        cls,
        linear: Linear,
        scheme=None,
        per_channel: bool = True,
        dtype: str = "int8",
        group_size: int | None = None,
    ) -> QuantLinear:
        """Quantize a float :class:`Linear`'s weights (symmetric, per channel by default;
        ``group_size`` for one scale per group of input features)."""
        qweight = quantize_weight(
            linear.weight, per_channel=per_channel, dtype=dtype, group_size=group_size
        )
        return cls(qweight, linear.bias, scheme, getattr(linear, "activation", None))

    def extra_repr(self) -> str:
        granularity = {"row": "per channel", "tensor": "per tensor"}.get(
            self.qweight.scheme.granularity, f"per group of {self.qweight.group_size}"
        )
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, weights={self.qweight.scheme.dtype} {granularity}, "
            f"activations={self.scheme.name or self.scheme.describe()}"
        )

    @classmethod
    def from_saved(cls, config, arrays, weights=None, scheme=None, activation=None):
        if set(weights) != {"weight"} or not set(arrays) <= {"bias"}:
            raise ValueError(
                f"QuantLinear: weights {sorted(weights)} and biases {sorted(arrays)}, not "
                "['weight'] and ['bias'] or none"
            )
        return cls(weights["weight"], arrays.get("bias"), scheme, activation)

    @classmethod
    def from_torch(cls, module, scheme=None, convert=None) -> QuantLinear:
        return cls(tensor_qweight(module.weight()), tensor_array(module.bias()), scheme)
