"""The layer graph: float layers on numpy and their dynamically quantized twins.

=================  ======================  ===========================================
float              quantized               notes
=================  ======================  ===========================================
``Linear``         ``QuantLinear``         int8 weights packed once, activations per call
``LSTMCell``       ``QuantLSTMCell``       gates i, f, g, o (PyTorch's order)
``LSTM``           ``QuantLSTM``           multi-layer, bidirectional, ``batch_first``
``GRUCell``        ``QuantGRUCell``        gates r, z, n
``GRU``            ``QuantGRU``
``Linear``         ``Q4Linear``            4-bit block weights (llama.cpp's Q4_1), 0.625 bytes
                                           a weight; not a registered kind (no ``save``)
``Sequential``     (holds either)
``ReLU``, ``GELU``, ``Tanh``, ``Sigmoid``  elementwise
=================  ======================  ===========================================

Each of these is a *layer kind* (``class X(Module, kind=True)``, in :data:`LAYER_KINDS`)
that declares its float twin, its PyTorch twins, its stored settings and how it is
rebuilt (see :class:`Module`). Adding a kind is one module in this folder: every module
here is imported with the package, so its kinds are registered.
"""

import importlib
import pkgutil

from .base import GELU, LAYER_KINDS, Module, ReLU, Sequential, Sigmoid, Tanh, quantized_twins
from .cells import GRUCell, LSTMCell, QuantGRUCell, QuantLSTMCell
from .linear import Linear, QuantLinear, QuantLinearBase
from .q4 import Q4Linear
from .rnn import GRU, LSTM, QuantGRU, QuantLSTM

for _module in pkgutil.iter_modules(__path__):  # the other modules' kinds register too
    importlib.import_module(f"{__name__}.{_module.name}")
del _module

__all__ = [
    "GELU",
    "GRU",
    "LAYER_KINDS",
    "LSTM",
    "GRUCell",
    "LSTMCell",
    "Linear",
    "Module",
    "Q4Linear",
    "QuantGRU",
    "QuantGRUCell",
    "QuantLSTM",
    "QuantLSTMCell",
    "QuantLinear",
    "QuantLinearBase",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "quantized_twins",
]
