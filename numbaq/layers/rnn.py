"""Recurrent layers with PyTorch's API, gate order and weight names: sequences.

Float: :class:`LSTM`, :class:`GRU`. Dynamically quantized: :class:`QuantLSTM`,
:class:`QuantGRU`: int8 ``W_ih`` and ``W_hh``, activations quantized at runtime for
both projections, gates in float32. The one-step cells are in :mod:`numbaq.layers.cells`.

Over a sequence the input projection ``x W_ih^T + b_ih`` runs as one GEMM over all
``T x B`` rows; the hidden projection runs once per step. Under ``schemes.TORCH`` this is
exactly PyTorch's dynamic LSTM: one activation scale for the whole input sequence, and
the hidden state quantized anew, per tensor, at every step.
"""

from __future__ import annotations

import numpy as np

from .. import engine, schemes
from ..checks import layer_error
from ..kernels.rnn import _gru_step, _lstm_step
from ..matmul import QuantizedWeight, check_linear_scheme, linear_2d, quantize_weight
from ..ops import as_float32
from .base import Module
from .tensors import tensor_array, tensor_qweight

CHUNK_BYTES = 1 << 20
"""Input projections per chunk of steps of the fused recurrence (per-token schemes): a
chunk is projected just before its steps run, while it fits in L2 (measured on a Zen 4
core, LSTM 256 -> 512 at batch 16, 64 steps: see ``_Recurrent._fused_recurrence``)."""

GATES = {"LSTM": 4, "GRU": 3}
RNN_CONFIG = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "bidirectional")
"""The settings of a recurrent layer, as :func:`numbaq.save` stores them."""


def torch_rnn(module):
    """A torch LSTM/GRU's settings as ``RNN_CONFIG``, refusing ``proj_size``."""
    if getattr(module, "proj_size", 0):
        raise ValueError("LSTM with proj_size is not supported")
    return {k: getattr(module, k) for k in RNN_CONFIG}


def checked_input(module: Module, x, name: str) -> np.ndarray:
    """float32 ``x`` with no NaN/Inf, or a clear error naming the layer."""
    kind = type(module).__name__
    try:
        x = as_float32(x, name)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{kind}: {err}") from None
    if not np.isfinite(x).all():
        raise ValueError(
            f"{kind}: {name} contains NaN or Inf (after conversion to float32: float64 values "
            "beyond float32's range become Inf); clean or rescale it, e.g. np.nan_to_num"
        )
    return x


def state_pair(module: Module, hx):
    """An LSTM state ``(h, c)``, or a clear error."""
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise TypeError(f"{type(module).__name__}: the state must be a pair (h, c), got {hx!r:.60}")
    return hx


def _add_batch(module: Module, state, name: str):
    """An unbatched state ``(layers * directions, H)`` as ``(layers * directions, 1, H)``."""
    if state is None:
        return None
    state = np.asarray(state)
    if state.ndim != 2:
        raise ValueError(
            f"{type(module).__name__}: with an unbatched input, {name} must have shape "
            f"(num_layers * num_directions, hidden_size), got {state.shape}"
        )
    return state[:, None, :]


def check_size(kind: str, name: str, value, minimum: int = 1) -> int:
    """A positive int setting (``input_size``, ``hidden_size``, ``num_layers``), or a clear
    error."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{kind}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_flag(kind: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{kind}: {name} must be True or False, got {value!r}")
    return bool(value)


def _float_array(kind: str, name: str, value, shape: tuple) -> np.ndarray:
    """``value`` as float32 of ``shape`` with no NaN/Inf, or a clear error."""
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise TypeError(f"{kind}: {name} must be a float array, got dtype {arr.dtype}")
    arr = np.asarray(arr, np.float32)
    if arr.shape != shape:
        raise ValueError(f"{kind}: {name} must have shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{kind}: {name} contains NaN or Inf")
    return arr


class Projections(Module):
    """What float and quantized recurrent modules share: ``_project`` and its weights."""

    quantized = False

    @classmethod
    def from_float(cls, layer, scheme=None, per_channel=True, dtype="int8", group_size=None):
        """A quantized kind from its float twin: ``cls(layer, scheme, per_channel, dtype)``
        (the signature :func:`numbaq.quantize_dynamic` calls; no per-group weights)."""
        if group_size:
            raise ValueError(f"{cls.__name__} takes no group_size (per-group weights)")
        return cls(layer, scheme, per_channel, dtype)

    def _init_float(self, shapes: dict[str, tuple], params, seed: int, hidden: int):
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(hidden)
        params = params or {}
        if not isinstance(params, dict):
            raise TypeError(
                f"{type(self).__name__}: params must be a dict of arrays by name, got "
                f"{type(params).__name__}"
            )
        unknown = set(params) - set(shapes)
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown parameters {sorted(unknown)}")
        for name, shape in shapes.items():
            if name in params:
                value = _float_array(type(self).__name__, name, params[name], shape)
            else:
                value = rng.uniform(-bound, bound, shape).astype(np.float32)
            self._param(name, value)

    def _init_quant(self, float_module: Projections, scheme, per_channel: bool, weight_dtype):
        weights = {
            name: quantize_weight(value, per_channel=per_channel, dtype=weight_dtype)
            for name, value in float_module._params.items()
            if name.startswith("weight")
        }
        biases = {n: v for n, v in float_module._params.items() if n.startswith("bias")}
        self._init_int8(weights, biases, scheme)

    def _init_int8(
        self, weights: dict[str, QuantizedWeight], biases: dict, scheme, shapes: dict | None = None
    ):
        self.scheme = schemes.resolve(scheme)
        if shapes is not None:
            weights, biases = self._check_int8(weights, biases, shapes)
        for qweight in weights.values():
            check_linear_scheme(self.scheme, qweight, type(self).__name__)
        self.qweights: dict[str, QuantizedWeight] = {}
        for name, qweight in weights.items():
            self._set_qweight(name, qweight)
        for name, value in biases.items():
            self._param(name, np.asarray(value, np.float32))
        self.trace_log = None

    def _check_int8(self, weights: dict, biases: dict, shapes: dict):
        """Weights and biases made elsewhere against the shapes the configuration needs:
        the kernels trust these shapes."""
        kind = type(self).__name__
        want_w = {n for n in shapes if n.startswith("weight")}
        want_b = {n for n in shapes if n.startswith("bias")}
        if set(weights) != want_w:
            raise ValueError(f"{kind}: weights must be {sorted(want_w)}, got {sorted(weights)}")
        if set(biases) != want_b:
            raise ValueError(
                f"{kind}: biases must be {sorted(want_b)} (bias={self.bias}), got {sorted(biases)}"
            )
        for name, qweight in weights.items():
            if not isinstance(qweight, QuantizedWeight):
                raise TypeError(f"{kind}: {name} must be a QuantizedWeight, got {type(qweight)}")
            if qweight.shape != shapes[name]:
                raise ValueError(
                    f"{kind}: {name} must have shape {shapes[name]} for this configuration "
                    f"(input_size={self.input_size}, hidden_size={self.hidden_size}), "
                    f"got {qweight.shape}"
                )
        biases = {n: _float_array(kind, n, v, shapes[n]) for n, v in biases.items()}
        return weights, biases

    def _set_qweight(self, name: str, qweight: QuantizedWeight):
        self.qweights[name] = qweight
        self._param(f"{name}_int8", qweight.q)
        self._param(f"{name}_scale", qweight.scale)

    def _linear(self, x2d, qweight: QuantizedWeight, bias, name: str, y=None):
        """:func:`numbaq.matmul.linear_2d` under the layer's scheme (no activation), its
        errors the layer's own: prefixed with the layer's name, ``x`` called ``name``."""
        try:
            return linear_2d(
                x2d, qweight, qweight.zero_bias if bias is None else bias, self.scheme, 0, y
            )
        except ValueError as err:
            raise layer_error(self, err, name) from None

    def _project(self, weight: str, bias: str, x2d: np.ndarray) -> np.ndarray:
        """``x2d W^T + b`` for the named weight and bias (``b`` may be absent)."""
        b = self._params.get(bias)
        if not self.quantized:
            y = x2d @ self._params[weight].T
            return y + b if b is not None else y
        qweight = self.qweights[weight]
        name = "input" if weight.startswith("weight_ih") else "the hidden state"
        y, scale, zero_point = self._linear(x2d, qweight, b, name)
        if self.trace_log is not None:
            self.trace_log.append({"projection": weight, "scale": scale, "zero_point": zero_point})
        return y


# ------------------------------------------------------------------ sequences
class _Recurrent(Projections):
    mode = "LSTM"
    config_fields = RNN_CONFIG

    def _configure(self, input_size, hidden_size, num_layers, bias, batch_first, bidirectional):
        kind = type(self).__name__
        input_size = check_size(kind, "input_size", input_size)
        hidden_size = check_size(kind, "hidden_size", hidden_size)
        num_layers = check_size(kind, "num_layers", num_layers)
        bias, batch_first, bidirectional = (
            check_flag(kind, name, value)
            for name, value in (
                ("bias", bias),
                ("batch_first", batch_first),
                ("bidirectional", bidirectional),
            )
        )
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        shapes = {}
        g = GATES[self.mode] * hidden_size
        for layer, tag in self._tags():
            in_features = input_size if layer == 0 else hidden_size * self.num_directions
            shapes[f"weight_ih{tag}"] = (g, in_features)
            shapes[f"weight_hh{tag}"] = (g, hidden_size)
            if bias:
                shapes[f"bias_ih{tag}"] = (g,)
                shapes[f"bias_hh{tag}"] = (g,)
        return shapes

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _tags(self):
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                yield layer, f"_l{layer}{'_reverse' if direction else ''}"

    def _initial(self, state, batch: int, name: str) -> np.ndarray:
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if state is None:
            return np.zeros(shape, np.float32)
        state = checked_input(self, state, name)
        if state.shape != shape:
            raise ValueError(
                f"{type(self).__name__}: {name} must have shape (num_layers * num_directions, "
                f"batch, hidden_size) = {shape}, got {state.shape}"
            )
        return state

    def forward(self, x, hx=None):
        """Run the whole sequence.

        Parameters
        ----------
        x : (seq, batch, F), (batch, seq, F) with ``batch_first``, or (seq, F) float array
            The input sequence.
        hx : optional
            Initial state, zeros by default: ``(h_0, c_0)`` for an LSTM, ``h_0`` for a
            GRU, each (num_layers * directions, batch, H), or without the batch axis for
            an unbatched input.

        Returns
        -------
        output : float32 ndarray
            The last layer's hidden state at every step, (seq, batch, directions * H)
            (batch first, or unbatched, as the input).
        state : (h_n, c_n) or h_n
            The final state of every layer and direction, shaped as ``hx``.

        Raises
        ------
        ValueError
            If a shape does not fit the layer.
        """
        x = checked_input(self, x, "input")
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first and x.ndim == 3:
            x = x.transpose(1, 0, 2)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            order = "(batch, seq, features)" if self.batch_first else "(seq, batch, features)"
            raise ValueError(
                f"{type(self).__name__}: input must be {order} with features = "
                f"{self.input_size}, got shape {x.shape}"
            )
        steps, batch = x.shape[:2]
        if self.mode == "LSTM":
            h0, c0 = (None, None) if hx is None else state_pair(self, hx)
            if unbatched:
                h0, c0 = (_add_batch(self, s, n) for s, n in ((h0, "h_0"), (c0, "c_0")))
            h0, c0 = self._initial(h0, batch, "h_0"), self._initial(c0, batch, "c_0")
        else:
            h0 = self._initial(
                _add_batch(self, hx, "h_0") if unbatched else hx,
                batch,
                "h_0",
            )
        h_n, c_n = [], []
        layer_input = np.ascontiguousarray(x)
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                tag = f"_l{layer}{'_reverse' if direction else ''}"
                index = layer * self.num_directions + direction
                out = np.empty((steps, batch, self.hidden_size), np.float32)
                h = h0[index]
                c = c0[index] if self.mode == "LSTM" else None
                if self._fused():
                    h, c = self._fused_recurrence(tag, layer_input, h, c, out, bool(direction))
                    outputs.append(out)
                    h_n.append(h)
                    c_n.append(c)
                    continue
                xg = self._project(
                    f"weight_ih{tag}", f"bias_ih{tag}", layer_input.reshape(steps * batch, -1)
                )
                xg = xg.reshape(steps, batch, -1)
                for t in range(steps - 1, -1, -1) if direction else range(steps):
                    hg = self._project(f"weight_hh{tag}", f"bias_hh{tag}", h)
                    h_new = np.empty((batch, self.hidden_size), np.float32)
                    if self.mode == "LSTM":
                        c_new = np.empty_like(h_new)
                        _lstm_step(xg[t], hg, c, h_new, c_new)
                        c = c_new
                    else:
                        _gru_step(xg[t], hg, h, h_new)
                    out[t] = h = h_new
                outputs.append(out)
                h_n.append(h)
                c_n.append(c)
            layer_input = np.concatenate(outputs, axis=-1) if len(outputs) > 1 else outputs[0]
        output = layer_input
        h_n = np.stack(h_n)
        if unbatched:
            output, h_n = output[:, 0], h_n[:, 0]
        elif self.batch_first:
            output = output.transpose(1, 0, 2)
        if self.mode == "LSTM":
            c_n = np.stack(c_n)
            return output, (h_n, c_n[:, 0] if unbatched else c_n)
        return output, h_n

    def _fused(self) -> bool:
        """Run all steps in one kernel call: quantized, not tracing (a trace records every
        step's scales), a per-row or per-tensor activation scheme, and ``W_hh`` with one
        scale per row (per-group weights take the step-by-step path)."""
        return (
            self.quantized
            and self.trace_log is None
            and self.scheme.granularity in ("row", "tensor")
            and not any(
                w.group_size for name, w in self.qweights.items() if name.startswith("weight_hh")
            )
        )

    def _fused_recurrence(self, tag, x, h, c, out, reverse):
        """One layer direction: the input projections, then the hidden recurrence in one
        kernel call (``_tiles_*.recurrence``) per chunk of steps.

        Per-token activation scales make each step's projection independent of the
        others, so the steps run in chunks of about ``CHUNK_BYTES`` of projections, each
        projected into one reused buffer just before its recurrence (it stays in cache;
        the whole sequence's projections, 8 MB at batch 16, went through memory and cost
        page faults). Per-tensor scales need the whole sequence first: one chunk.
        """
        steps, batch = x.shape[:2]
        x2d = x.reshape(steps * batch, -1)
        w_ih = self.qweights[f"weight_ih{tag}"]
        w_hh = self.qweights[f"weight_hh{tag}"]
        bias_ih = self._params.get(f"bias_ih{tag}", w_ih.zero_bias)
        bias_hh = self._params.get(f"bias_hh{tag}", w_hh.zero_bias)
        h = np.array(h, np.float32)
        c = np.array(h if c is None else c, np.float32)
        width = w_ih.shape[0]
        chunk = steps
        if self.scheme.granularity == "row" and not w_ih.group_size:
            chunk = max(1, min(steps, CHUNK_BYTES // (4 * batch * width)))
        xg = np.empty((chunk, batch, width), np.float32)
        starts = range(0, steps, chunk)
        for t0 in reversed(starts) if reverse else starts:
            t1 = min(steps, t0 + chunk)
            rows = slice(t0 * batch, t1 * batch)
            part = xg[: t1 - t0]
            self._linear(x2d[rows], w_ih, bias_ih, "input", part.reshape(-1, width))
            args = (part, h, c, out[t0:t1], reverse, self.scheme, w_hh, bias_hh)
            engine.recurrence(self.mode == "LSTM", *args, type(self).__name__)
        return h, (c if self.mode == "LSTM" else None)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        for flag in ("bidirectional", "batch_first"):
            if getattr(self, flag):
                text += f", {flag}=True"
        if not self.bias:
            text += ", bias=False"
        if self.quantized:
            text += f", activations={self.scheme.name or self.scheme.describe()}"
        return text


class _FloatRecurrent(_Recurrent):
    """The float recurrent layers' constructor (``LSTM``, ``GRU``)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        params=None,
        seed: int = 0,
    ):
        super().__init__()
        shapes = self._configure(
            input_size, hidden_size, num_layers, bias, batch_first, bidirectional
        )
        self._init_float(shapes, params, seed, hidden_size)

    @classmethod
    def from_saved(cls, config: dict, arrays: dict, **stored):
        return cls(**config, params=arrays)

    @classmethod
    def from_torch(cls, module, scheme=None, convert=None):
        params = {k: tensor_array(v) for k, v in module.state_dict().items()}
        return cls(**torch_rnn(module), params=params)


class LSTM(_FloatRecurrent, kind=True):
    """Multi-layer LSTM, as ``torch.nn.LSTM``: ``output, (h_n, c_n) = lstm(x, (h_0, c_0))``.

    ``x`` is (seq, batch, input_size), or (batch, seq, input_size) with ``batch_first``,
    or (seq, input_size) unbatched. Parameters ``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}`` (``_reverse`` for the backward direction); gates
    i, f, g, o. ``params`` sets them by name; the rest are drawn from
    ``U(-1/sqrt(H), 1/sqrt(H))`` with ``seed``.

    Parameters
    ----------
    input_size : int
        Features of each input step, ``F``.
    hidden_size : int
        Features of the hidden state, ``H``.
    num_layers : int
        Stacked layers; each one's output is the next one's input.
    bias : bool
        Whether the layers have ``bias_ih``/``bias_hh``.
    batch_first : bool
        Inputs and outputs are (batch, seq, features) instead of (seq, batch, features).
    bidirectional : bool
        Run a second, backward direction per layer; outputs concatenate both (``2H``).
    params : dict of str to array, optional
        Initial parameters by PyTorch's names (as ``state_dict()`` holds them).
    seed : int
        Seed of the uniform initialisation of the parameters not in ``params``.

    Examples
    --------
    >>> lstm = LSTM(3, 5, num_layers=2, bidirectional=True)
    >>> out, (h, c) = lstm(np.ones((7, 2, 3), np.float32))
    >>> out.shape, h.shape
    ((7, 2, 10), (4, 2, 5))
    """

    mode = "LSTM"
    torch_twins = ("torch.nn.LSTM",)


class GRU(_FloatRecurrent, kind=True):
    """Multi-layer GRU, as ``torch.nn.GRU``: ``output, h_n = gru(x, h_0)``; gates r, z, n.

    Shapes and parameter names as :class:`LSTM` (``3H`` gate rows instead of ``4H``).

    Parameters
    ----------
    input_size : int
        Features of each input step, ``F``.
    hidden_size : int
        Features of the hidden state, ``H``.
    num_layers : int
        Stacked layers; each one's output is the next one's input.
    bias : bool
        Whether the layers have ``bias_ih``/``bias_hh``.
    batch_first : bool
        Inputs and outputs are (batch, seq, features) instead of (seq, batch, features).
    bidirectional : bool
        Run a second, backward direction per layer; outputs concatenate both (``2H``).
    params : dict of str to array, optional
        Initial parameters by PyTorch's names (as ``state_dict()`` holds them).
    seed : int
        Seed of the uniform initialisation of the parameters not in ``params``.

    Examples
    --------
    >>> gru = GRU(3, 5, batch_first=True)
    >>> out, h = gru(np.ones((2, 7, 3), np.float32))
    >>> out.shape, h.shape
    ((2, 7, 5), (1, 2, 5))
    """

    mode = "GRU"
    torch_twins = ("torch.nn.GRU",)


class _QuantRecurrent(_Recurrent):
    quantized = True

    def __init__(
        self, rnn: _Recurrent, scheme=None, per_channel: bool = True, weight_dtype: str = "int8"
    ):
        super().__init__()
        if not isinstance(rnn, _Recurrent) or type(rnn).mode != self.mode or rnn.quantized:
            raise TypeError(f"{type(self).__name__} wraps a float {self.mode}")
        self._configure(
            rnn.input_size,
            rnn.hidden_size,
            rnn.num_layers,
            rnn.bias,
            rnn.batch_first,
            rnn.bidirectional,
        )
        self._init_quant(rnn, scheme, per_channel, weight_dtype)

    @classmethod
    def from_int8(cls, config: dict, weights: dict, biases: dict, scheme=None):
        """Build from int8 weights made elsewhere: ``config`` holds ``input_size``,
        ``hidden_size``, ``num_layers``, ``bias``, ``batch_first``, ``bidirectional``;
        ``weights`` maps ``weight_ih_l0``... to :class:`QuantizedWeight`."""
        rnn = cls.__new__(cls)
        Module.__init__(rnn)
        if not isinstance(config, dict) or set(config) != set(RNN_CONFIG):
            raise ValueError(f"{cls.__name__}: config must have the keys {list(RNN_CONFIG)}")
        shapes = rnn._configure(**config)
        rnn._init_int8(weights, biases, scheme, shapes)
        return rnn

    @classmethod
    def from_saved(cls, config, arrays, weights=None, scheme=None, activation=None):
        return cls.from_int8(config, weights, arrays, scheme)

    @classmethod
    def from_torch(cls, module, scheme=None, convert=None):
        config = torch_rnn(module)
        weights = {k: tensor_qweight(v) for k, v in module.get_weight().items()}
        biases = {k: tensor_array(v) for k, v in module.get_bias().items() if v is not None}
        return cls.from_int8(config, weights, biases, scheme)


class QuantLSTM(_QuantRecurrent, kind=True):
    """:class:`LSTM` with int8 weights and dynamic activation quantization.

    Build it from a float LSTM: ``QuantLSTM(lstm, scheme="PER_TOKEN_INT8")``.

    Parameters
    ----------
    rnn : LSTM
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
    >>> lstm = LSTM(3, 5)
    >>> x = np.ones((7, 2, 3), np.float32)
    >>> out, (h, c) = QuantLSTM(lstm)(x)
    >>> out.shape, float(np.abs(out - lstm(x)[0]).max()) < 0.01
    ((7, 2, 5), True)
    """

    mode = "LSTM"
    float_twin = LSTM
    torch_twins = ("torch.ao.nn.quantized.dynamic.LSTM",)


class QuantGRU(_QuantRecurrent, kind=True):
    """:class:`GRU` with int8 weights and dynamic activation quantization.

    Parameters
    ----------
    rnn : GRU
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
    >>> gru = GRU(3, 5)
    >>> x = np.ones((7, 2, 3), np.float32)
    >>> out, h = QuantGRU(gru)(x)
    >>> out.shape, float(np.abs(out - gru(x)[0]).max()) < 0.01
    ((7, 2, 5), True)
    """

    mode = "GRU"
    float_twin = GRU
    torch_twins = ("torch.ao.nn.quantized.dynamic.GRU",)
