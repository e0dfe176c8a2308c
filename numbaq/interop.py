"""PyTorch interop (optional extra ``torch``): :func:`from_torch`.

Converts ``nn.Linear``, ``nn.LSTM``, ``nn.LSTMCell``, ``nn.GRU``, ``nn.GRUCell``,
``nn.Sequential`` and ``nn.ReLU``/``GELU``/``Tanh``/``Sigmoid`` to float numbaq layers, and
PyTorch's *dynamically quantized* ``Linear``, ``LSTM`` and ``GRU`` (from
``torch.ao.quantization.quantize_dynamic``) to numbaq's quantized layers, taking their
int8 weights and scales as they are. With ``scheme=numbaq.schemes.TORCH`` (the default
for those) a converted model reproduces PyTorch's output: the same 7-bit activation
codes, the same int32 accumulators, float outputs within float32 rounding.
"""

from __future__ import annotations

import numpy as np

from . import schemes
from ._torch_hint import TORCH_INSTALL
from .layers import (
    GELU,
    GRU,
    LSTM,
    GRUCell,
    Linear,
    LSTMCell,
    Module,
    QuantGRU,
    QuantLinear,
    QuantLSTM,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)
from .matmul import QuantizedWeight
from .qparams import QScheme


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError(f"numbaq.from_torch needs PyTorch; {TORCH_INSTALL}") from None
    return torch


def _numpy(t) -> np.ndarray:
    """A float tensor's values as float32 numpy (bfloat16 has no numpy dtype: through
    float32 first, exactly)."""
    t = t.detach().cpu()
    if t.is_floating_point():
        t = t.float()
    return t.numpy().astype(np.float32)


def _qweight(qtensor) -> QuantizedWeight:
    """A torch qint8 weight (per tensor or per channel, symmetric) as a QuantizedWeight."""
    torch = _torch()
    per_channel = qtensor.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
    if per_channel:
        if qtensor.q_per_channel_axis() != 0:
            raise ValueError("per-channel torch weights must be quantized along axis 0")
        scale = qtensor.q_per_channel_scales().numpy()
        zero_point = qtensor.q_per_channel_zero_points().numpy()
    else:
        scale, zero_point = qtensor.q_scale(), qtensor.q_zero_point()
    if np.any(np.asarray(zero_point) != 0):
        raise ValueError("numbaq needs symmetric int8 weights (zero point 0)")
    scheme = QScheme("int8", True, "row" if per_channel else "tensor", name="torch weights")
    return QuantizedWeight.from_int8(qtensor.int_repr().numpy(), scale, scheme)


def _rnn_config(module) -> dict:
    return {
        "input_size": module.input_size,
        "hidden_size": module.hidden_size,
        "num_layers": module.num_layers,
        "bias": module.bias,
        "batch_first": module.batch_first,
        "bidirectional": module.bidirectional,
    }


def from_torch(module, scheme=None) -> Module:
    """Convert a PyTorch module to numbaq.

    Parameters
    ----------
    module : torch.nn.Module
        Float layers, containers, or PyTorch dynamically quantized layers.
    scheme : QScheme or str, optional
        Activation scheme of the converted *quantized* layers; default
        ``schemes.TORCH``, which reproduces PyTorch's dynamic quantization.

    Returns
    -------
    Module
        The numbaq layers, with PyTorch's module names; float weights are copied.

    Raises
    ------
    ImportError
        If PyTorch is not installed.
    TypeError
        If the tree holds a module numbaq has no layer for.

    Examples
    --------
    >>> import pytest
    >>> torch = pytest.importorskip("torch")  # PyTorch is optional
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    >>> model = from_torch(net)
    >>> model
    Sequential(
      (0): Linear(in_features=4, out_features=3, bias=True)
      (1): ReLU()
    )
    >>> x = np.ones((2, 4), np.float32)
    >>> bool(np.allclose(model(x), net(torch.from_numpy(x)).detach().numpy(), atol=1e-6))
    True
    """
    torch = _torch()
    nn = torch.nn
    qdyn = torch.ao.nn.quantized.dynamic
    scheme = schemes.resolve(scheme, default=schemes.TORCH_INTEROP_DEFAULT)
    if isinstance(module, qdyn.Linear):
        return QuantLinear(_qweight(module.weight()), _bias_of(module.bias()), scheme)
    if isinstance(module, (qdyn.LSTM, qdyn.GRU)):
        if getattr(module, "proj_size", 0):
            raise ValueError("LSTM with proj_size is not supported")
        cls = QuantLSTM if isinstance(module, qdyn.LSTM) else QuantGRU
        weights = {k: _qweight(v) for k, v in module.get_weight().items()}
        biases = {k: _numpy(v) for k, v in module.get_bias().items() if v is not None}
        return cls.from_int8(_rnn_config(module), weights, biases, scheme)
    if isinstance(module, nn.Linear):
        return Linear(_numpy(module.weight), _bias_of(module.bias))
    if isinstance(module, (nn.LSTM, nn.GRU)):
        if getattr(module, "proj_size", 0):
            raise ValueError("LSTM with proj_size is not supported")
        cls = LSTM if isinstance(module, nn.LSTM) else GRU
        params = {k: _numpy(v) for k, v in module.state_dict().items()}
        return cls(**_rnn_config(module), params=params)
    if isinstance(module, (nn.LSTMCell, nn.GRUCell)):
        cls = LSTMCell if isinstance(module, nn.LSTMCell) else GRUCell
        params = {k: _numpy(v) for k, v in module.state_dict().items()}
        return cls(module.input_size, module.hidden_size, module.bias, params=params)
    if isinstance(module, nn.Sequential):
        return Sequential(*(from_torch(child, scheme) for child in module))
    elementwise = {nn.ReLU: ReLU, nn.Tanh: Tanh, nn.Sigmoid: Sigmoid}
    if type(module) in elementwise:
        return elementwise[type(module)]()
    if isinstance(module, nn.GELU):
        if module.approximate != "none":
            raise ValueError("only the exact GELU (approximate='none') is supported")
        return GELU()
    raise TypeError(
        f"cannot convert {type(module).__name__}; supported: Linear, LSTM, LSTMCell, GRU, "
        "GRUCell, Sequential, ReLU, GELU, Tanh, Sigmoid and their dynamically quantized forms"
    )


def _bias_of(bias):
    return None if bias is None else _numpy(bias)
