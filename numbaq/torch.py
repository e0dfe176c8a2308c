"""numbaq inside PyTorch models (the ``torch`` extra): :func:`quantize_dynamic`.

``numbaq.torch.quantize_dynamic(model)`` returns a copy of *any* ``torch.nn.Module`` in
which every ``nn.Linear``, ``nn.LSTM``, ``nn.GRU``, ``nn.LSTMCell`` and ``nn.GRUCell``, at
any depth, is replaced by a torch module that runs numbaq's int8 kernels; everything
else (embeddings, attention, LayerNorm, your own code) stays PyTorch. It is a drop-in for
``torch.ao.quantization.quantize_dynamic``, which torch 2.13 deprecates.

The replacements (:class:`TorchQuantLinear`, :class:`TorchQuantLSTM`,
:class:`TorchQuantGRU`, :class:`TorchQuantLSTMCell`, :class:`TorchQuantGRUCell`; the
names ``QuantLinear``, ``QuantLSTM``, ... of earlier releases still import) are torch
modules: they take and return torch tensors and follow
the arguments of the layers they replace (``(..., in_features)`` for Linear;
``batch_first``, ``bidirectional``, ``num_layers``, ``hx`` and unbatched input for the
recurrent ones). Inside, each converts its weights once (:func:`numbaq.from_torch`, then
:func:`numbaq.quantize_dynamic`) and runs the numbaq layer on ``tensor.numpy()``, a
zero-copy view of a contiguous CPU float32 tensor; the result comes back with
``torch.from_numpy``, also without a copy. Which torch layers are replaced comes from the
numbaq layer kinds' declarations (a float kind's ``torch_twins``, its quantized twin);
a kind without a module here of its own runs in :class:`TorchQuantModule`.

Rules (each broken one is a clear error, never a wrong result):

* CPU tensors only (``.cpu()`` first); inference only: a layer refuses an input that
  requires grad while grad mode is on (run under ``torch.no_grad()`` or
  ``torch.inference_mode()``, or ``exclude`` the layer to keep training it).
* float32 in, float32 out. float16, bfloat16 and float64 inputs are computed in float32
  and the result cast back to the input's dtype; other dtypes are refused.
* Non-contiguous inputs are copied once to contiguous memory.
* Dropout between LSTM layers is not applied (as in ``torch.ao``'s dynamic LSTM);
  ``proj_size`` and ``PackedSequence`` inputs are not supported.

Saving: ``state_dict()`` holds each layer's int8 weights, scales and biases as buffers
and its schemes as extra state, so ``quantize_dynamic(FreshModel()).load_state_dict(sd)``
restores the outputs bit for bit; ``torch.save(model)`` and ``pickle`` also work (the
packed GEMM copies are remade on first use, not stored). ``layer.numbaq`` is the numbaq
layer itself, for :func:`numbaq.save`. :func:`numbaq.compare` and :func:`numbaq.trace`
accept these models (torch inputs; run under ``torch.inference_mode``).

Examples
--------
>>> import torch
>>> import numbaq.torch
>>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
>>> qmodel = numbaq.torch.quantize_dynamic(model, exclude=["2"])
>>> [type(m).__name__ for m in qmodel]
['TorchQuantLinear', 'ReLU', 'Linear']
>>> qmodel(torch.ones(3, 5, 8)).shape
torch.Size([3, 5, 2])
"""

from __future__ import annotations

import copy
import difflib

import numpy as np

from ._torch_hint import TORCH_INSTALL

try:
    import torch
except ImportError:  # pragma: no cover - exercised without torch only
    raise ImportError(f"numbaq.torch needs PyTorch; {TORCH_INSTALL}") from None

from . import convert, schemes
from . import layers as nql
from ._torch_support import (  # noqa: F401  (record_calls, run_inference: for numbaq.compare / trace)
    record_calls,
    run_inference,
    to_array,
    to_tensor,
)
from .interop import from_torch, torch_twins
from .io import build_layer, describe_layer

nn = torch.nn

__all__ = [
    "LAYERS",
    "TorchQuantGRU",
    "TorchQuantGRUCell",
    "TorchQuantLSTM",
    "TorchQuantLSTMCell",
    "TorchQuantLinear",
    "quantize_dynamic",
]

WRAPPERS: dict[str, type] = {}
"""numbaq quantized kind name -> the torch module class that runs it (filled by the
classes below, and by :func:`wrapper` for kinds without a class of their own)."""


class TorchQuantModule(nn.Module):
    """Base of the torch modules that run a numbaq quantized layer (``numbaq_kind``).

    The buffers (int8 weights, float32 scales and biases, named as in the numbaq layer)
    are the source of truth; the numbaq layer (``.numbaq``) is rebuilt from them, with
    zero-copy views, after ``load_state_dict``, unpickling and ``.to()``. The layer's
    settings (its kind's ``config_fields``) read through as attributes. By itself it runs
    a layer of one input and one output (``forward(input)``).
    """

    numbaq_kind = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("numbaq_kind"):  # declared here, not inherited
            WRAPPERS[cls.numbaq_kind] = cls

    def __init__(self, layer: nql.Module, name: str = ""):
        super().__init__()
        if not getattr(layer, "quantized", False):
            raise TypeError(f"{type(self).__name__} wraps a numbaq quantized layer")
        if type(layer).__name__ != self.numbaq_kind:
            raise TypeError(f"{type(self).__name__} wraps a numbaq {self.numbaq_kind}, got {layer}")
        self._node = describe_layer(layer)
        for key, value in layer.parameters().items():
            self.register_buffer(key, torch.from_numpy(np.ascontiguousarray(value)))
        self.layer_name = name
        self._layer = layer
        self._rebuild()

    def __getattr__(self, name):
        layer = self.__dict__.get("_layer")
        if layer is not None and name in layer.config_fields:
            return getattr(layer, name)
        return super().__getattr__(name)

    def forward(self, input):
        """Run the numbaq layer on ``input``.

        Parameters
        ----------
        input : torch.Tensor
            On the CPU; float16, bfloat16 and float64 are computed in float32.

        Returns
        -------
        torch.Tensor
            The layer's output, of the input's dtype.
        """
        x, restore = to_array(self, input)
        return to_tensor(self._layer(x), restore)

    def _label(self) -> str:
        return (
            f"{type(self).__name__}({self.layer_name})" if self.layer_name else type(self).__name__
        )

    def _rebuild(self) -> None:
        for key, buf in self._buffers.items():
            if buf is not None and (
                buf.device.type != "cpu" or buf.dtype not in (torch.int8, torch.float32)
            ):
                raise TypeError(
                    f"{self._label()}: buffer {key} must stay a CPU int8/float32 tensor, got "
                    f"{buf.dtype} on {buf.device}; numbaq layers "
                    "run on the CPU in int8 (do not .cuda(), .half() or .double() them)"
                )
        arrays = {k: b.detach().numpy() for k, b in self._buffers.items() if b is not None}
        layer = build_layer(self._node, arrays)
        old = self.__dict__.get("_layer")
        layer.trace_log = None if old is None else old.trace_log  # a trace in progress
        self.__dict__["_layer"] = layer

    @property
    def numbaq(self) -> nql.Module:
        """The numbaq layer this module runs (numpy in, numpy out)."""
        return self._layer

    @property
    def scheme(self):
        """The activation :class:`~numbaq.QScheme`."""
        return self._layer.scheme

    @property
    def trace_log(self):
        """The numbaq layer's trace log (see :func:`numbaq.trace`)."""
        return self._layer.trace_log

    @trace_log.setter
    def trace_log(self, value):
        self._layer.trace_log = value

    # ------------------------------------------------------------- state and copies
    def get_extra_state(self) -> dict:
        """The layer's type, configuration and schemes (the arrays are buffers)."""
        return copy.deepcopy(self._node)

    def set_extra_state(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("type") != self.numbaq_kind:
            raise ValueError(
                f"{self._label()}: the state_dict holds a "
                f"{state.get('type') if isinstance(state, dict) else type(state).__name__}, "
                f"not a numbaq {self.numbaq_kind}"
            )
        self._node = copy.deepcopy(state)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._rebuild()  # new weights: new QuantizedWeight, packed again on first use

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self._rebuild()
        return out

    def __getstate__(self):
        state = super().__getstate__().copy()
        state.pop("_layer", None)  # rebuilt from the buffers: no second copy of the weights
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._rebuild()

    def extra_repr(self) -> str:
        return self._layer.extra_repr()


class TorchQuantLinear(TorchQuantModule):
    """``nn.Linear`` on numbaq's dynamic int8 kernels: ``y = x W^T + b``.

    Input ``(..., in_features)`` float tensor; output ``(..., out_features)``, same dtype.
    ``weight`` is the dequantized ``q * scale`` (float32, for code that reads it).

    Notes
    -----
    Per row of ``x``: a scale (and zero point) from its own range, int8/uint8 codes, an
    int32 GEMM with the int8 weights, then
    ``y = float32(acc - zp_x * col_sums) * (scale_x * scale_w) + b`` (see
    :class:`numbaq.QuantLinear`).

    Parameters
    ----------
    layer : numbaq.QuantLinear
        The numbaq layer to run (its arrays become this module's buffers).
    name : str
        The layer's name in the model, for error messages.

    Examples
    --------
    >>> layer = quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 3)))[0]
    >>> type(layer).__name__, layer.in_features, layer.out_features
    ('TorchQuantLinear', 4, 3)
    >>> with torch.inference_mode():
    ...     y = layer(torch.ones(2, 4))
    >>> tuple(y.shape), y.dtype
    ((2, 3), torch.float32)
    """

    numbaq_kind = "QuantLinear"

    def __init__(self, layer: nql.Module, name: str = ""):
        super().__init__(layer, name)
        if "bias" not in self._buffers:
            self.register_buffer("bias", None)  # as nn.Linear(bias=False): .bias is None

    @property
    def in_features(self) -> int:
        """Input features, ``K``."""
        return self._layer.in_features

    @property
    def out_features(self) -> int:
        """Output features, ``N``."""
        return self._layer.out_features

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weights ``q * scale``, (N, K) float32 (a new tensor each time)."""
        return torch.from_numpy(self._layer.qweight.dequantize())

    def forward(self, input):
        """``y = x W^T + b`` through numbaq's int8 kernels.

        Parameters
        ----------
        input : torch.Tensor
            ``(..., in_features)``, on the CPU; float16, bfloat16 and float64 are
            computed in float32.

        Returns
        -------
        torch.Tensor
            ``(..., out_features)``, of the input's dtype.
        """
        x, restore = to_array(self, input)
        if x.size == 0 and x.ndim and x.shape[-1] == self.in_features:
            return to_tensor(np.zeros(x.shape[:-1] + (self.out_features,), np.float32), restore)
        return to_tensor(self._layer(x), restore)


class _Stateful(TorchQuantModule):
    """What the recurrent modules and the cells share: the state ``hx`` converted to
    arrays."""

    def _state(self, hx, pair: tuple[str, str] | None, single: str):
        """``hx`` as numbaq arrays: a pair named ``pair`` (an LSTM's ``(h, c)``), or one
        array named ``single``; None stays None (zeros)."""
        if hx is None:
            return None
        if pair is None:
            return to_array(self, hx, single)[0]
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"{self._label()}: hx must be a tuple ({pair[0]}, {pair[1]})")
        return tuple(to_array(self, s, n)[0] for s, n in zip(hx, pair))


class _Recurrent(_Stateful):
    """The torch face of numbaq's ``QuantLSTM`` / ``QuantGRU``."""

    def flatten_parameters(self) -> None:
        """A no-op, as on ``torch.nn.LSTM``/``GRU`` on the CPU (cuDNN's weight layout):
        code written for torch's own modules calls it."""

    def forward(self, input, hx=None):
        """Run the sequence, as ``nn.LSTM`` / ``nn.GRU`` do.

        Parameters
        ----------
        input : torch.Tensor
            (seq, batch, input_size), (batch, seq, input_size) with ``batch_first``,
            or (seq, input_size) unbatched.
        hx : torch.Tensor or tuple of torch.Tensor, optional
            ``(h_0, c_0)`` for an LSTM, ``h_0`` for a GRU; zeros by default.

        Returns
        -------
        output : torch.Tensor
            The last layer's hidden state at every step.
        state : torch.Tensor or tuple of torch.Tensor
            ``(h_n, c_n)`` for an LSTM, ``h_n`` for a GRU.
        """
        if isinstance(input, nn.utils.rnn.PackedSequence):
            raise TypeError(
                f"{self._label()}: PackedSequence input is not supported; pad it with "
                "torch.nn.utils.rnn.pad_packed_sequence and pass the padded tensor"
            )
        x, restore = to_array(self, input)
        lstm = self._layer.mode == "LSTM"
        hx = self._state(hx, ("h_0", "c_0") if lstm else None, "h_0")
        out, state = self._layer(x, hx)
        if lstm:
            return to_tensor(out, restore), tuple(to_tensor(s, restore) for s in state)
        return to_tensor(out, restore), to_tensor(state, restore)


class TorchQuantLSTM(_Recurrent):
    """``nn.LSTM`` on numbaq's int8 kernels: ``output, (h_n, c_n) = lstm(x, (h_0, c_0))``.

    ``x`` is (seq, batch, input_size), (batch, seq, input_size) with ``batch_first``, or
    (seq, input_size) unbatched; states (num_layers * num_directions, batch, hidden_size).
    Gates i, f, g, o in float32; ``x W_ih^T`` and ``h W_hh^T`` through int8 (see
    :class:`numbaq.QuantLSTM`).

    Parameters
    ----------
    layer : numbaq.QuantLSTM
        The numbaq layer to run (its arrays become this module's buffers).
    name : str
        The layer's name in the model, for error messages.

    Examples
    --------
    >>> qlstm = quantize_dynamic(torch.nn.LSTM(6, 5, batch_first=True))
    >>> with torch.inference_mode():
    ...     out, (h, c) = qlstm(torch.randn(3, 7, 6))
    >>> type(qlstm).__name__, tuple(out.shape), tuple(c.shape)
    ('TorchQuantLSTM', (3, 7, 5), (1, 3, 5))
    """

    numbaq_kind = "QuantLSTM"


class TorchQuantGRU(_Recurrent):
    """``nn.GRU`` on numbaq's int8 kernels: ``output, h_n = gru(x, h_0)``; gates r, z, n.

    Shapes as :class:`TorchQuantLSTM`.

    Parameters
    ----------
    layer : numbaq.QuantGRU
        The numbaq layer to run (its arrays become this module's buffers).
    name : str
        The layer's name in the model, for error messages.

    Examples
    --------
    >>> qgru = quantize_dynamic(torch.nn.GRU(6, 5))
    >>> with torch.inference_mode():
    ...     out, h = qgru(torch.randn(7, 3, 6))
    >>> type(qgru).__name__, tuple(out.shape), tuple(h.shape)
    ('TorchQuantGRU', (7, 3, 5), (1, 3, 5))
    """

    numbaq_kind = "QuantGRU"


class _Cell(_Stateful):
    """The torch face of numbaq's ``QuantLSTMCell`` / ``QuantGRUCell``."""

    def forward(self, input, hx=None):
        """One step, as ``nn.LSTMCell`` / ``nn.GRUCell`` do.

        Parameters
        ----------
        input : torch.Tensor
            (batch, input_size) or (input_size,).
        hx : torch.Tensor or tuple of torch.Tensor, optional
            ``(h, c)`` for an LSTM cell, ``h`` for a GRU cell; zeros by default.

        Returns
        -------
        torch.Tensor or tuple of torch.Tensor
            The new state: ``(h', c')`` or ``h'``.
        """
        x, restore = to_array(self, input)
        hx = self._state(hx, ("h", "c") if self._layer.mode == "LSTM" else None, "hx")
        out = self._layer(x, hx)
        if isinstance(out, tuple):
            return tuple(to_tensor(s, restore) for s in out)
        return to_tensor(out, restore)


class TorchQuantLSTMCell(_Cell):
    """``nn.LSTMCell`` on numbaq's int8 kernels: ``(h', c') = cell(x, (h, c))``.

    ``x`` (batch, input_size) or (input_size,); ``h``, ``c`` (batch, hidden_size).

    Parameters
    ----------
    layer : numbaq.QuantLSTMCell
        The numbaq layer to run (its arrays become this module's buffers).
    name : str
        The layer's name in the model, for error messages.

    Examples
    --------
    >>> cell = quantize_dynamic(torch.nn.LSTMCell(6, 5))
    >>> with torch.inference_mode():
    ...     h, c = cell(torch.randn(3, 6))
    >>> type(cell).__name__, tuple(h.shape)
    ('TorchQuantLSTMCell', (3, 5))
    """

    numbaq_kind = "QuantLSTMCell"


class TorchQuantGRUCell(_Cell):
    """``nn.GRUCell`` on numbaq's int8 kernels: ``h' = cell(x, h)``.

    Parameters
    ----------
    layer : numbaq.QuantGRUCell
        The numbaq layer to run (its arrays become this module's buffers).
    name : str
        The layer's name in the model, for error messages.

    Examples
    --------
    >>> cell = quantize_dynamic(torch.nn.GRUCell(6, 5))
    >>> with torch.inference_mode():
    ...     h = cell(torch.randn(3, 6))
    >>> type(cell).__name__, tuple(h.shape)
    ('TorchQuantGRUCell', (3, 5))
    """

    numbaq_kind = "QuantGRUCell"


# The names of earlier releases (they read like numbaq.layers' own classes)
QuantModule = TorchQuantModule
QuantLinear = TorchQuantLinear
QuantLSTM = TorchQuantLSTM
QuantGRU = TorchQuantGRU
QuantLSTMCell = TorchQuantLSTMCell
QuantGRUCell = TorchQuantGRUCell


def wrapper(kind: type) -> type[TorchQuantModule]:
    """The torch module class that runs numbaq quantized layer kind ``kind``.

    A kind without a class of its own here gets a :class:`TorchQuantModule` subclass
    named ``Torch<kind>`` (made once, and reachable as ``numbaq.torch.Torch<kind>`` so
    that pickle finds it).

    Parameters
    ----------
    kind : type
        A quantized layer kind of :data:`numbaq.layers.LAYER_KINDS`.

    Returns
    -------
    type
        A :class:`TorchQuantModule` subclass.

    Examples
    --------
    >>> wrapper(nql.QuantLSTM).__name__
    'TorchQuantLSTM'
    """
    cls = WRAPPERS.get(kind.__name__)
    if cls is None:
        name = f"Torch{kind.__name__}"
        doc = f"numbaq's ``{kind.__name__}`` as a torch module (see :class:`TorchQuantModule`)."
        cls = type(name, (TorchQuantModule,), {"numbaq_kind": kind.__name__, "__doc__": doc})
        cls.__module__ = __name__
        globals()[name] = cls
    return cls


def _layers() -> dict:
    """torch layer type -> the module that replaces it: the torch twins of each float
    kind that has a quantized twin, from the kinds' declarations."""
    quantized = nql.quantized_twins()
    return {
        torch_cls: wrapper(quantized[kind])
        for torch_cls, kind in torch_twins().items()
        if kind in quantized
    }


LAYERS = _layers()
"""torch layer type -> the numbaq-backed module that replaces it (as declared by the
layer kinds when numbaq.torch was imported; :func:`quantize_dynamic` reads them anew)."""


def _convert(child, name, scheme, weights, table) -> TorchQuantModule:
    if any(p.device.type != "cpu" for p in child.parameters()):
        raise ValueError(
            f"quantize_dynamic: {name} has weights on {next(child.parameters()).device}; "
            "numbaq runs on the CPU: call model.cpu() first"
        )
    if getattr(child, "proj_size", 0):
        raise ValueError(
            f"quantize_dynamic: {name} is an LSTM with proj_size={child.proj_size}, which "
            f"numbaq does not support; keep it in float with exclude=[{name!r}]"
        )
    layer = convert.quantize_dynamic(from_torch(child), scheme, **weights)
    new = table[type(child)](layer, name)
    new.train(child.training)
    return new


def quantize_dynamic(
    module,
    scheme=None,
    exclude=(),
    layers=None,
    per_channel: bool = True,
    weight_dtype: str = "int8",
    group_size: int | None = None,
    inplace: bool = False,
):
    """A copy of a torch model whose Linear and recurrent layers run numbaq's int8 kernels.

    Parameters
    ----------
    module : torch.nn.Module
        Any model (CPU, float weights). Left untouched unless ``inplace``.
    scheme : QScheme or str, optional
        Activation scheme, default ``PER_TOKEN_UINT8`` (a scale and zero point per row,
        from the live input: batch-independent); ``"TORCH"`` reproduces
        ``torch.ao``'s activation codes. See :mod:`numbaq.schemes`.
    exclude : iterable of str
        Module names as PyTorch prints them (``model.named_modules()``, e.g.
        ``"encoder.layer.0.attention.self.query"`` or ``"pooler"``); each keeps itself
        and everything under it in float.
    layers : iterable of types, optional
        The torch layer types to replace, a subset of :data:`LAYERS` (default all:
        ``nn.Linear``, ``nn.LSTM``, ``nn.GRU``, ``nn.LSTMCell``, ``nn.GRUCell``). The
        type must match exactly, as in ``torch.ao``: subclasses such as
        ``nn.MultiheadAttention``'s ``out_proj``, whose weights the parent reads
        directly, stay as they are.
    per_channel, weight_dtype, group_size : bool, {"int8", "int4"}, int or None
        Weight quantization, as in :func:`numbaq.quantize_dynamic` (default symmetric
        int8, one scale per output channel).
    inplace : bool
        Replace the layers in ``module`` itself instead of a deep copy.

    Returns
    -------
    torch.nn.Module
        The same structure and module names, with :class:`TorchQuantLinear`,
        :class:`TorchQuantLSTM`, ... in place of the float layers.

    Examples
    --------
    >>> lstm = torch.nn.LSTM(6, 5, num_layers=2, batch_first=True)
    >>> qlstm = quantize_dynamic(lstm)
    >>> with torch.inference_mode():
    ...     out, (h, c) = qlstm(torch.randn(3, 7, 6))
    >>> type(qlstm).__name__, tuple(out.shape), tuple(h.shape)
    ('TorchQuantLSTM', (3, 7, 5), (2, 3, 5))
    """
    if isinstance(module, nql.Module):
        raise TypeError(
            "quantize_dynamic: this is a numbaq model; use numbaq.quantize_dynamic for it"
        )
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"quantize_dynamic: module must be a torch.nn.Module, got {type(module).__name__}"
        )
    if isinstance(scheme, str) and scheme.upper() in schemes.OUTLIER_SCHEMES:
        raise ValueError(
            f"quantize_dynamic: scheme {scheme!r} is not available in numbaq.torch yet; "
            "convert the model with numbaq.from_torch and use numbaq.quantize_dynamic"
        )
    scheme = schemes.resolve(scheme, group_size=group_size)
    table = _layers()
    layers = tuple(table) if layers is None else tuple(layers)
    unknown = [t for t in layers if t not in table]
    if unknown:
        raise ValueError(
            f"quantize_dynamic: layers {unknown} cannot be replaced; choose from "
            f"{[t.__name__ for t in table]}"
        )
    if isinstance(exclude, str):
        exclude = [exclude]  # one name, not its characters
    exclude = list(exclude)
    names = [name for name, _ in module.named_modules(remove_duplicate=False)]
    missing = [e for e in exclude if e not in names]
    if missing:
        hints = {e: difflib.get_close_matches(e, names, 1) for e in missing}
        raise ValueError(
            "quantize_dynamic: exclude names not in the model: "
            + ", ".join(
                f"{e!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for e, h in hints.items()
            )
            + "; names are those of model.named_modules()"
        )

    def excluded(name: str) -> bool:
        return any(name == e or name.startswith(e + ".") or e == "" for e in exclude)

    model = module if inplace else copy.deepcopy(module)
    targets = [
        (name, child)
        for name, child in model.named_modules(remove_duplicate=False)
        if type(child) in layers and not excluded(name)
    ]
    weights = {"per_channel": per_channel, "weight_dtype": weight_dtype, "group_size": group_size}
    done: dict[int, TorchQuantModule] = {}  # a layer shared by two parents stays shared
    for name, child in targets:
        if id(child) not in done:
            done[id(child)] = _convert(child, name, scheme, weights, table)
        if not name:
            return done[id(child)]
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name), attr, done[id(child)])
    return model
