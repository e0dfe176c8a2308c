"""``quantize_dynamic``: turn a float model into a dynamically quantized one."""

from __future__ import annotations

import numpy as np

from . import schemes
from .layers import Linear, Module, quantized_twins
from .layers.base import replace_modules
from .ops import minmax

QUANTIZED = {float_kind: kind.from_float for float_kind, kind in quantized_twins().items()}
"""Float layer type -> its quantized twin's ``from_float`` (a callable ``(layer, scheme,
per_channel, dtype, group_size)``), as the kinds declared it (``float_twin``) when numbaq
was imported; :func:`quantize_dynamic` reads the declarations themselves."""

DEFAULT_LAYERS = tuple(QUANTIZED)


def quantize_dynamic(
    model: Module,
    scheme=None,
    layers=None,
    exclude=(),
    per_channel: bool = True,
    weight_dtype: str = "int8",
    group_size: int | None = None,
    progress: bool | None = None,
    calibration=None,
    alpha: float = 0.5,
    threshold: float = 6.0,
) -> Module:
    """A copy of ``model`` whose chosen layers run dynamically quantized.

    Parameters
    ----------
    model : Module
        A float model (or a single layer). It is left untouched.
    scheme : QScheme or str, optional
        Activation scheme, default ``PER_TOKEN_UINT8`` (per token: the most accurate of
        the fast schemes, and batch-independent); ``PER_TOKEN_INT8`` with ``group_size``.
    layers : tuple of types, optional
        Layer types to quantize; default every float kind with a quantized twin
        (``Linear``, ``LSTM``, ``LSTMCell``, ``GRU``, ``GRUCell``).
    exclude : iterable of str
        Dotted names (as in ``model.named_modules()``) to keep in float.
    per_channel : bool
        Weights: one symmetric scale per output channel (default) or one per tensor.
    weight_dtype : {"int8", "int4"}
        Weight codes (int4 values in int8 storage, per channel or per tensor).
    group_size : int, optional
        Weights with one scale per group of ``group_size`` input features (int4 per group,
        e.g. ``weight_dtype="int4", group_size=32``); needs ``PER_TOKEN_INT8`` or
        ``BLOCK_Q8_0`` activations. Linear layers only.
    progress : bool, optional
        Show a tqdm bar; by default when tqdm is installed and there are over 20 layers.
    calibration, alpha, threshold : iterable, float, float, optional
        For the outlier-aware schemes (:mod:`numbaq.outliers`): ``scheme="SMOOTHQUANT"``
        smooths each Linear with migration strength ``alpha``, from the activations of the
        ``calibration`` batches (an iterable of model inputs) or, without them, from the
        weights alone; ``scheme="LLM_INT8"`` runs input channels whose ``|x|`` passes
        ``threshold`` in float. Both use per-token activations for the int8 part.

    Returns
    -------
    Module
        A copy of ``model`` with quantized twins in place of the chosen layers;
        ``model`` is left unchanged.

    Examples
    --------
    >>> from numbaq.layers import Linear, ReLU, Sequential
    >>> model = Sequential(Linear(np.eye(4)), ReLU(), Linear(np.eye(4)))
    >>> qmodel = quantize_dynamic(model, exclude=["2"])
    >>> [type(m).__name__ for m in qmodel.children()]
    ['QuantLinear', 'ReLU', 'Linear']
    """
    if not isinstance(model, Module):
        raise TypeError(
            f"model must be a numbaq Module, got {type(model).__name__}; "
            "convert a torch model first with numbaq.from_torch"
        )
    if isinstance(layers, str):  # never its characters
        raise TypeError(
            f"layers must be layer types, e.g. (numbaq.Linear, numbaq.LSTM), got the string "
            f"{layers!r}"
        )
    try:
        exclude = [exclude] if isinstance(exclude, str) else list(exclude)  # a name, not chars
        if layers is not None:
            layers = (layers,) if isinstance(layers, type) else tuple(layers)
    except TypeError:
        raise TypeError(
            "exclude must be layer names (a str or a list of str) and layers a tuple of layer "
            f"types; got exclude={exclude!r}, layers={layers!r}"
        ) from None
    if not all(isinstance(name, str) for name in exclude):
        raise TypeError(f"exclude must be layer names (str), got {list(exclude)!r}")
    if isinstance(scheme, str) and scheme.upper() in schemes.OUTLIER_SCHEMES:
        return _outlier_aware(model, scheme.upper(), exclude, calibration, alpha, threshold)
    scheme = schemes.resolve(scheme, group_size=group_size)
    twins = quantized_twins()
    layers = tuple(twins) if layers is None else layers
    unknown = [t for t in layers if t not in twins]
    if unknown:
        raise ValueError(f"cannot quantize layer types {unknown}; choose from {list(twins)}")
    exclude = set(exclude)
    names = {name for name, _ in model.named_modules()}
    missing = exclude - names
    if missing:
        raise ValueError(f"exclude names {sorted(missing)} are not in the model")
    targets = [n for n, m in model.named_modules() if type(m) in layers and n not in exclude]
    grouped = [f.__name__ for f, q in twins.items() if q.per_group_weights]
    if group_size and any(
        not twins[type(m)].per_group_weights for n, m in model.named_modules() if n in targets
    ):
        raise ValueError(
            f"group_size (per-group weights) applies to {' and '.join(grouped)} layers only"
        )
    weights = {"per_channel": per_channel, "dtype": weight_dtype, "group_size": group_size}
    bar = _progress(len(targets), progress)

    def replace(name, module):
        if type(module) not in layers or name in exclude:
            return None
        if bar is not None:
            bar.update(1)
        return twins[type(module)].from_float(module, scheme, **weights)

    converted = replace_modules(model, replace)
    if bar is not None:
        bar.close()
    return converted


def _outlier_aware(model, name, exclude, calibration, alpha, threshold):
    from .outliers import LLMInt8Linear, SmoothQuantLinear
    from .static import calibrate

    exclude = set(exclude)
    absmax = {}
    if name == "SMOOTHQUANT" and calibration is not None:
        observers = calibrate(model, calibration, observer=_ChannelAbsMax)
        absmax = {k: o.absmax for k, o in observers.items()}

    def replace(layer_name, module):
        if type(module) is not Linear or layer_name in exclude:
            return None
        if name == "LLM_INT8":
            return LLMInt8Linear(module, threshold)
        return SmoothQuantLinear(module, absmax.get(layer_name), alpha)

    return replace_modules(model, replace)


class _ChannelAbsMax:
    """A calibration observer that keeps ``max |x_j|`` per input channel."""

    def __init__(self, scheme=None):
        self.absmax = None

    def update(self, x):
        x = np.asarray(x, np.float32)
        lo, hi = minmax(x.reshape(-1, x.shape[-1]), "column")
        amax = np.maximum(-lo, hi)
        self.absmax = amax if self.absmax is None else np.maximum(self.absmax, amax)


def _progress(total: int, progress: bool | None):
    if progress is False or (progress is None and total <= 20):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress:
            raise ImportError("progress=True needs tqdm: pip install tqdm") from None
        return None
    return tqdm(total=total, desc="quantize_dynamic", unit="layer")
