"""``save`` / ``load``: a model's structure, int8 weights, scales and schemes on disk.

Formats: ``.npz`` (numpy, always available) or ``.safetensors`` (the optional
``safetensors`` package). Both hold every array under its dotted name plus one JSON
document, ``__numbaq__``, describing the layer tree: types, constructor settings and
schemes. A round trip is bit-exact: the same arrays, the same outputs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from .layers import (
    GELU,
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
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)
from .matmul import QuantizedWeight
from .qparams import QScheme

FORMAT_VERSION = 1
_FLOAT_RNN = {"LSTM": LSTM, "GRU": GRU}
_QUANT_RNN = {"QuantLSTM": QuantLSTM, "QuantGRU": QuantGRU}
_CELLS = {"LSTMCell": LSTMCell, "GRUCell": GRUCell}
_QUANT_CELLS = {"QuantLSTMCell": QuantLSTMCell, "QuantGRUCell": QuantGRUCell}
_ELEMENTWISE = {"ReLU": ReLU, "GELU": GELU, "Tanh": Tanh, "Sigmoid": Sigmoid}
_ALL = {"Linear", "QuantLinear", *_FLOAT_RNN, *_QUANT_RNN, *_CELLS, *_QUANT_CELLS, *_ELEMENTWISE}


_RNN_CONFIG = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "bidirectional")
_CELL_CONFIG = ("input_size", "hidden_size", "bias")


def _describe(module: Module, prefix: str, arrays: dict) -> dict:
    """The JSON node of ``module``; its arrays go to ``arrays`` under dotted names."""
    kind = type(module).__name__
    node: dict = {"type": kind, "name": prefix}
    if isinstance(module, Sequential):
        node["children"] = [
            _describe(child, f"{prefix}.{name}" if prefix else name, arrays)
            for name, child in module._modules.items()
        ]
        return node
    if kind not in _ALL:
        raise TypeError(f"save: cannot store a {kind} (custom modules are not supported)")
    for name, value in module._params.items():
        arrays[f"{prefix}.{name}" if prefix else name] = value
    if kind in _FLOAT_RNN or kind in _QUANT_RNN:
        node["config"] = {k: getattr(module, k) for k in _RNN_CONFIG}
    elif kind in _CELLS or kind in _QUANT_CELLS:
        node["config"] = {k: getattr(module, k) for k in _CELL_CONFIG}
    if module.quantized:
        qweights = {"weight": module.qweight} if kind == "QuantLinear" else module.qweights
        node["scheme"] = dataclasses.asdict(module.scheme)
        node["weight_schemes"] = {k: dataclasses.asdict(q.scheme) for k, q in qweights.items()}
        node["activation"] = getattr(module, "activation", None)
    return node


def save(model: Module, path) -> Path:
    """Store ``model`` at ``path`` (``.npz`` or ``.safetensors``); returns the path.

    Examples
    --------
    >>> import tempfile, os
    >>> from numbaq.layers import Linear
    >>> path = save(Linear(np.eye(2)), os.path.join(tempfile.mkdtemp(), "m.npz"))
    >>> load(path)
    Linear(in_features=2, out_features=2, bias=False)
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    tree = {"format": FORMAT_VERSION, "model": _describe(model, "", arrays)}
    meta = json.dumps(tree)
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import save_file
        except ImportError:
            raise ImportError("saving .safetensors needs: pip install safetensors") from None
        save_file(
            {k: np.ascontiguousarray(v) for k, v in arrays.items()},
            str(path),
            metadata={"__numbaq__": meta},
        )
    elif path.suffix == ".npz":
        np.savez(path, __numbaq__=np.frombuffer(meta.encode(), np.uint8), **arrays)
    else:
        raise ValueError(f"path must end in .npz or .safetensors, got {path.name!r}")
    return path


def _build(node: dict, arrays: dict) -> Module:
    kind, prefix = node["type"], node["name"]
    if kind == "Sequential":
        return Sequential(*(_build(child, arrays) for child in node["children"]))
    if kind in _ELEMENTWISE:
        return _ELEMENTWISE[kind]()
    lead = f"{prefix}." if prefix else ""
    params = {
        k[len(lead) :]: v
        for k, v in arrays.items()
        if k.startswith(lead) and "." not in k[len(lead) :]
    }
    if kind == "Linear":
        return Linear(params["weight"], params.get("bias"))
    if kind in _FLOAT_RNN:
        return _FLOAT_RNN[kind](**node["config"], params=params)
    if kind in _CELLS:
        return _CELLS[kind](**node["config"], params=params)
    weights = {
        name: QuantizedWeight.from_int8(
            params[f"{name}_int8"], params[f"{name}_scale"], QScheme(**scheme)
        )
        for name, scheme in node["weight_schemes"].items()
    }
    biases = {k: v for k, v in params.items() if k.startswith("bias")}
    scheme = QScheme(**node["scheme"])
    if kind == "QuantLinear":
        return QuantLinear(weights["weight"], biases.get("bias"), scheme, node["activation"])
    if kind in _QUANT_RNN:
        return _QUANT_RNN[kind].from_int8(node["config"], weights, biases, scheme)
    config = node["config"]
    return _QUANT_CELLS[kind].from_int8(
        config["input_size"], config["hidden_size"], weights, biases, scheme
    )


def load(path) -> Module:
    """Load a model stored by :func:`save`."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open
            from safetensors.numpy import load_file
        except ImportError:
            raise ImportError("loading .safetensors needs: pip install safetensors") from None
        arrays = load_file(str(path))
        with safe_open(str(path), "np") as f:
            meta = f.metadata()["__numbaq__"]
    else:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        meta = arrays.pop("__numbaq__").tobytes().decode()
    tree = json.loads(meta)
    if tree.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported numbaq format {tree.get('format')!r}")
    return _build(tree["model"], arrays)
