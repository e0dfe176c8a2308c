"""The layer graph: float layers on numpy and their dynamically quantized twins.

=================  ======================  ===========================================
float              quantized               notes
=================  ======================  ===========================================
``Linear``         ``QuantLinear``         int8 weights packed once, activations per call
``LSTMCell``       ``QuantLSTMCell``       gates i, f, g, o (PyTorch's order)
``LSTM``           ``QuantLSTM``           multi-layer, bidirectional, ``batch_first``
``GRUCell``        ``QuantGRUCell``        gates r, z, n
``GRU``            ``QuantGRU``
``Sequential``     (holds either)
``ReLU``, ``GELU``, ``Tanh``, ``Sigmoid``  elementwise
=================  ======================  ===========================================
"""

from .base import GELU, Module, ReLU, Sequential, Sigmoid, Tanh
from .cells import GRUCell, LSTMCell, QuantGRUCell, QuantLSTMCell
from .linear import Linear, QuantLinear
from .rnn import GRU, LSTM, QuantGRU, QuantLSTM

__all__ = [
    "GELU",
    "GRU",
    "LSTM",
    "GRUCell",
    "LSTMCell",
    "Linear",
    "Module",
    "QuantGRU",
    "QuantGRUCell",
    "QuantLSTM",
    "QuantLSTMCell",
    "QuantLinear",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
]
