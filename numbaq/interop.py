"""PyTorch interop (optional extra ``torch``): :func:`from_torch`.

Converts ``nn.Linear``, ``nn.LSTM``, ``nn.LSTMCell``, ``nn.GRU``, ``nn.GRUCell``,
``nn.Sequential`` and ``nn.ReLU``/``GELU``/``Tanh``/``Sigmoid`` to float numbaq layers, and
PyTorch's *dynamically quantized* ``Linear``, ``LSTM`` and ``GRU`` (from
``torch.ao.quantization.quantize_dynamic``) to numbaq's quantized layers, taking their
int8 weights and scales as they are. With ``scheme=numbaq.schemes.TORCH`` (the default
for those) a converted model reproduces PyTorch's output: the same 7-bit activation
codes, the same int32 accumulators, float outputs within float32 rounding.

Which torch classes convert, and how, each layer kind declares itself (``torch_twins``
and ``from_torch`` in :mod:`numbaq.layers`): :func:`torch_twins` collects them.
"""

from __future__ import annotations

import importlib

from . import schemes
from ._torch_hint import TORCH_INSTALL
from .layers import LAYER_KINDS, Module


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError(f"numbaq.from_torch needs PyTorch; {TORCH_INSTALL}") from None
    return torch


def _resolve(qualified: str):
    """The class a qualified name (``"torch.nn.Linear"``) names, or None where this
    torch has none."""
    module, _, name = qualified.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def torch_twins() -> dict[type, type[Module]]:
    """``{torch class: numbaq layer kind}``, from the ``torch_twins`` each kind declares.

    Imports PyTorch (and the torch modules the names live in).

    Returns
    -------
    dict of type to type
        Every torch class that :func:`from_torch` converts, with the kind it becomes.

    Raises
    ------
    ImportError
        If PyTorch is not installed.

    Examples
    --------
    >>> import pytest
    >>> torch = pytest.importorskip("torch")  # PyTorch is optional
    >>> torch_twins()[torch.nn.Linear].__name__
    'Linear'
    """
    _torch()
    twins = {}
    for kind in LAYER_KINDS.values():
        for name in kind.torch_twins:
            cls = _resolve(name)
            if cls is not None:
                twins[cls] = kind
    return twins


def _kind_of(module, twins: dict):
    """The kind whose torch twin ``module`` is an instance of (the nearest class of its
    MRO; a subclass only where the kind takes subclasses), or None."""
    for base in type(module).__mro__:
        kind = twins.get(base)
        if kind is not None and (base is type(module) or kind.torch_subclasses):
            return kind
    return None


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
    >>> import numpy as np, pytest
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
    twins = torch_twins()
    scheme = schemes.resolve(scheme, default=schemes.TORCH_INTEROP_DEFAULT)
    kind = _kind_of(module, twins)
    if kind is None:
        names = [k.__name__ for k in dict.fromkeys(twins.values()) if not k.quantized]
        raise TypeError(
            f"cannot convert {type(module).__name__}; supported: {', '.join(names)} and their "
            "dynamically quantized forms"
        )
    return kind.from_torch(module, scheme, lambda child: from_torch(child, scheme))
