"""``quantize_dynamic``: turn a float model into a dynamically quantized one."""

from __future__ import annotations

import copy

import numpy as np  # noqa: F401  (used by the doctest)

from . import schemes
from .layers import (
    GRU,
    LSTM,
    GRUCell,
    Linear,
    LSTMCell,
    Module,
    QuantGRU,
    QuantGRUCell,
    QuantLinear,
    QuantLSTM,
    QuantLSTMCell,
)
from .ops import DEFAULT_SCHEME


def _recurrent(cls):
    def make(module, scheme, per_channel, dtype, group_size):
        return cls(module, scheme, per_channel, dtype)

    return make


QUANTIZED = {
    Linear: QuantLinear.from_float,
    LSTM: _recurrent(QuantLSTM),
    LSTMCell: _recurrent(QuantLSTMCell),
    GRU: _recurrent(QuantGRU),
    GRUCell: _recurrent(QuantGRUCell),
}
"""Float layer type -> its quantized twin (a callable ``(layer, scheme, per_channel,
dtype, group_size)``)."""

DEFAULT_LAYERS = tuple(QUANTIZED)


def quantize_dynamic(
    model: Module,
    scheme=None,
    layers=DEFAULT_LAYERS,
    exclude=(),
    per_channel: bool = True,
    weight_dtype: str = "int8",
    group_size: int | None = None,
    progress: bool | None = None,
) -> Module:
    """A copy of ``model`` whose chosen layers run dynamically quantized.

    Parameters
    ----------
    model : Module
        A float model (or a single layer). It is left untouched.
    scheme : QScheme or str, optional
        Activation scheme, default ``PER_TOKEN_UINT8`` (per token: the most accurate of
        the fast schemes, and batch-independent); ``PER_TOKEN_INT8`` with ``group_size``.
    layers : tuple of types
        Layer types to quantize (``Linear``, ``LSTM``, ``LSTMCell``, ``GRU``, ``GRUCell``).
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

    Returns
    -------
    Module

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
    if scheme is None:  # per-group weights need symmetric int8 activations
        scheme = schemes.PER_TOKEN_INT8 if group_size else DEFAULT_SCHEME
    scheme = schemes.get(scheme)
    unknown = [t for t in layers if t not in QUANTIZED]
    if unknown:
        raise ValueError(f"cannot quantize layer types {unknown}; choose from {list(QUANTIZED)}")
    exclude = set(exclude)
    names = {name for name, _ in model.named_modules()}
    missing = exclude - names
    if missing:
        raise ValueError(f"exclude names {sorted(missing)} are not in the model")
    targets = [n for n, m in model.named_modules() if type(m) in layers and n not in exclude]
    if group_size and any(type(m) is not Linear for n, m in model.named_modules() if n in targets):
        raise ValueError("group_size (per-group weights) applies to Linear layers only")
    weights = {"per_channel": per_channel, "dtype": weight_dtype, "group_size": group_size}
    bar = _progress(len(targets), progress)
    converted = _convert(model, "", tuple(layers), exclude, scheme, weights, bar)
    if bar is not None:
        bar.close()
    return converted


def _convert(module, prefix, layers, exclude, scheme, weights, bar):
    if type(module) in layers and prefix not in exclude:
        if bar is not None:
            bar.update(1)
        return QUANTIZED[type(module)](module, scheme, **weights)
    new = copy.copy(module)
    new._modules = type(module._modules)()
    new._params = type(module._params)(module._params)
    for name, child in module._modules.items():
        child_name = f"{prefix}.{name}" if prefix else name
        new._child(name, _convert(child, child_name, layers, exclude, scheme, weights, bar))
    return new


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
