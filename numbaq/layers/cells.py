"""Recurrent cells with PyTorch's API, gate order and weight names: one step.

Float: :class:`LSTMCell`, :class:`GRUCell`. Dynamically quantized: :class:`QuantLSTMCell`,
:class:`QuantGRUCell`: int8 ``W_ih`` and ``W_hh``, activations quantized at runtime for
both projections, gates in float32 (one fused kernel, ``kernels.rnn``). The sequences
(:class:`~numbaq.layers.rnn.LSTM`, ...) are in :mod:`numbaq.layers.rnn`, whose
projections and argument checks the cells share.
"""

from __future__ import annotations

import numpy as np

from ..kernels.rnn import _gru_step, _lstm_step
from .base import Module
from .rnn import GATES, Projections, check_flag, check_size, checked_input, state_pair
from .tensors import tensor_array

CELL_CONFIG = ("input_size", "hidden_size", "bias")
"""The settings of a recurrent cell, as :func:`numbaq.save` stores them."""


class _Cell(Projections):
    mode = "LSTM"
    config_fields = CELL_CONFIG

    def _configure(self, input_size: int, hidden_size: int, bias: bool):
        kind = type(self).__name__
        input_size = check_size(kind, "input_size", input_size)
        hidden_size = check_size(kind, "hidden_size", hidden_size)
        bias = check_flag(kind, "bias", bias)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        g = GATES[self.mode] * hidden_size
        shapes = {"weight_ih": (g, input_size), "weight_hh": (g, hidden_size)}
        if bias:
            shapes.update(bias_ih=(g,), bias_hh=(g,))
        return shapes

    def _state(self, state, batch: int, name: str, unbatched: bool = False) -> np.ndarray:
        if state is None:
            return np.zeros((batch, self.hidden_size), np.float32)
        state = checked_input(self, state, name)
        if unbatched and state.shape == (self.hidden_size,):  # as torch: (H,) with input (F,)
            state = state.reshape(1, -1)
        if state.shape != (batch, self.hidden_size):
            raise ValueError(
                f"{type(self).__name__}: {name} must have shape (batch, hidden_size) = "
                f"({batch}, {self.hidden_size}), got {state.shape}"
            )
        return state

    def forward(self, x, hx=None):
        """One step.

        Parameters
        ----------
        x : (batch, F) or (F,) float array
            The input (unbatched: one vector).
        hx : optional
            The state, zeros by default: ``(h, c)`` for an LSTM cell, ``h`` for a GRU
            cell, each (batch, H) or (H,).

        Returns
        -------
        (h', c') or h'
            The new state, float32, shaped as the input's batch.

        Raises
        ------
        ValueError
            If a shape does not fit ``input_size`` / ``hidden_size``.
        """
        x = checked_input(self, x, "input")
        unbatched = x.ndim == 1
        x = x.reshape(1, -1) if unbatched else x
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__}: input must have shape (batch, {self.input_size}) or "
                f"({self.input_size},), got {x.shape}"
            )
        batch = x.shape[0]
        xg = self._project("weight_ih", "bias_ih", x)
        if self.mode == "LSTM":
            h, c = (None, None) if hx is None else state_pair(self, hx)
            h, c = self._state(h, batch, "h", unbatched), self._state(c, batch, "c", unbatched)
            hg = self._project("weight_hh", "bias_hh", h)
            h_new, c_new = np.empty_like(h), np.empty_like(c)
            _lstm_step(xg, hg, c, h_new, c_new)
            return (h_new[0], c_new[0]) if unbatched else (h_new, c_new)
        h = self._state(hx, batch, "h", unbatched)
        h_new = np.empty_like(h)
        _gru_step(xg, self._project("weight_hh", "bias_hh", h), h, h_new)
        return h_new[0] if unbatched else h_new

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}, bias={self.bias}"
        if self.quantized:
            text += f", activations={self.scheme.name or self.scheme.describe()}"
        return text


class _FloatCell(_Cell):
    """The float cells' constructor (``LSTMCell``, ``GRUCell``)."""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, params=None, seed: int = 0
    ):
        super().__init__()
        self._init_float(self._configure(input_size, hidden_size, bias), params, seed, hidden_size)

    @classmethod
    def from_saved(cls, config: dict, arrays: dict, **stored):
        return cls(**config, params=arrays)

    @classmethod
    def from_torch(cls, module, scheme=None, convert=None):
        params = {k: tensor_array(v) for k, v in module.state_dict().items()}
        return cls(module.input_size, module.hidden_size, module.bias, params=params)


class LSTMCell(_FloatCell, kind=True):
    """One LSTM step, as ``torch.nn.LSTMCell``: ``(h', c') = cell(x, (h, c))``.

    Parameters ``weight_ih`` (4H, F), ``weight_hh`` (4H, H), ``bias_ih``, ``bias_hh`` (4H,);
    gates i, f, g, o. ``params`` sets them by name; others are drawn from
    ``U(-1/sqrt(H), 1/sqrt(H))`` with ``seed``.

    Parameters
    ----------
    input_size : int
        Features of the input, ``F``.
    hidden_size : int
        Features of the hidden state, ``H``.
    bias : bool
        Whether the cell has ``bias_ih``/``bias_hh``.
    params : dict of str to array, optional
        Initial parameters by PyTorch's names.
    seed : int
        Seed of the uniform initialisation of the parameters not in ``params``.

    Examples
    --------
    >>> cell = LSTMCell(3, 4)
    >>> h, c = cell(np.ones((2, 3), np.float32))
    >>> h.shape, c.shape
    ((2, 4), (2, 4))
    """

    mode = "LSTM"
    torch_twins = ("torch.nn.LSTMCell",)


class GRUCell(_FloatCell, kind=True):
    """One GRU step, as ``torch.nn.GRUCell``: ``h' = cell(x, h)``; gates r, z, n.

    Parameters
    ----------
    input_size : int
        Features of the input, ``F``.
    hidden_size : int
        Features of the hidden state, ``H``.
    bias : bool
        Whether the cell has ``bias_ih``/``bias_hh``.
    params : dict of str to array, optional
        Initial parameters by PyTorch's names.
    seed : int
        Seed of the uniform initialisation of the parameters not in ``params``.

    Examples
    --------
    >>> GRUCell(3, 4)(np.ones((2, 3), np.float32)).shape
    (2, 4)
    """

    mode = "GRU"
    torch_twins = ("torch.nn.GRUCell",)


class _QuantCell(_Cell):
    quantized = True

    def __init__(
        self, cell: _Cell, scheme=None, per_channel: bool = True, weight_dtype: str = "int8"
    ):
        super().__init__()
        if not isinstance(cell, _Cell) or type(cell).mode != self.mode or cell.quantized:
            raise TypeError(f"{type(self).__name__} wraps a float {self.mode}Cell")
        self._configure(cell.input_size, cell.hidden_size, cell.bias)
        self._init_quant(cell, scheme, per_channel, weight_dtype)

    @classmethod
    def from_int8(
        cls,
        input_size: int,
        hidden_size: int,
        weights: dict,
        biases: dict,
        scheme=None,
        bias: bool | None = None,
    ):
        """Build from int8 weights made elsewhere (``weight_ih``/``weight_hh`` as
        :class:`QuantizedWeight`) and float biases (``bias_ih``/``bias_hh``); their
        shapes are checked against ``input_size`` and ``hidden_size``. ``bias`` defaults
        to whether ``biases`` has any."""
        cell = cls.__new__(cls)
        Module.__init__(cell)
        shapes = cell._configure(input_size, hidden_size, bool(biases) if bias is None else bias)
        cell._init_int8(weights, biases, scheme, shapes)
        return cell

    @classmethod
    def from_saved(cls, config, arrays, weights=None, scheme=None, activation=None):
        return cls.from_int8(
            config["input_size"], config["hidden_size"], weights, arrays, scheme, config["bias"]
        )


class QuantLSTMCell(_QuantCell, kind=True):
    """:class:`LSTMCell` with int8 ``W_ih``, ``W_hh`` and dynamic activation quantization.

    Parameters
    ----------
    cell : LSTMCell
        The float layer to quantize (left unchanged).
    scheme : QScheme or str, optional
        Activation scheme of the input and hidden-state projections (default
        ``PER_TOKEN_UINT8``).
    per_channel : bool
        One weight scale per output channel (gate row); else one per tensor.
    weight_dtype : {"int8", "int4"}
        Weight dtype, as in :func:`numbaq.quantize_weight`.

    Examples
    --------
    >>> cell = LSTMCell(3, 4)
    >>> h, c = QuantLSTMCell(cell)(np.ones((2, 3), np.float32))
    >>> float(np.abs(h - cell(np.ones((2, 3), np.float32))[0]).max()) < 0.01
    True
    """

    mode = "LSTM"
    float_twin = LSTMCell


class QuantGRUCell(_QuantCell, kind=True):
    """:class:`GRUCell` with int8 ``W_ih``, ``W_hh`` and dynamic activation quantization.

    Parameters
    ----------
    cell : GRUCell
        The float layer to quantize (left unchanged).
    scheme : QScheme or str, optional
        Activation scheme of the input and hidden-state projections (default
        ``PER_TOKEN_UINT8``).
    per_channel : bool
        One weight scale per output channel (gate row); else one per tensor.
    weight_dtype : {"int8", "int4"}
        Weight dtype, as in :func:`numbaq.quantize_weight`.

    Examples
    --------
    >>> cell = GRUCell(3, 4)
    >>> h = QuantGRUCell(cell)(np.ones((2, 3), np.float32))
    >>> float(np.abs(h - cell(np.ones((2, 3), np.float32))).max()) < 0.01
    True
    """

    mode = "GRU"
    float_twin = GRUCell
