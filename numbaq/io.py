"""``save`` / ``load``: a model's structure, int8 weights, scales and schemes on disk.

Formats: ``.npz`` (numpy, always available) or ``.safetensors`` (the optional
``safetensors`` package). Both hold every array under its dotted name plus one JSON
document, ``__numbaq__``, describing the layer tree: types, constructor settings and
schemes. A round trip is bit-exact: the same arrays, the same outputs.

Integrity: the JSON document carries a SHA-256 digest of the layer tree and of every
array (name, dtype, shape and bytes). :func:`load` checks them, then checks every array
against the configuration (names, dtypes, shapes) before it builds a layer, so a
corrupt, truncated, mismatched or foreign file is refused with a ``ValueError`` that
says what is wrong, never loaded into a model that computes garbage or reads out of
bounds. Files of format 1 (before digests) still load, without the digest check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from .layers import LAYER_KINDS, Module, Sequential
from .layers.cells import CELL_CONFIG as CELL_CONFIG  # the settings stored, as before
from .layers.rnn import RNN_CONFIG as RNN_CONFIG
from .matmul import QuantizedWeight
from .qparams import QScheme

FORMAT_VERSION = 2
"""Format of the files :func:`save` writes (2: with digests). :func:`load` reads 1 and 2."""


def describe_layer(module: Module) -> dict:
    """The description :func:`save` stores for one layer (its arrays aside).

    What goes in comes from the layer's kind (:data:`numbaq.layers.LAYER_KINDS`): its
    ``config()``, its fused ``activation`` and, for a quantized kind, its activation
    ``scheme`` and the schemes of its ``qweights``.

    Parameters
    ----------
    module : Module
        One layer of a registered kind (not a container).

    Returns
    -------
    dict
        ``{"type": ..., ...}``, plain JSON values.

    Raises
    ------
    TypeError
        If ``module`` is not of a registered layer kind.

    Examples
    --------
    >>> from numbaq.layers import Linear
    >>> describe_layer(Linear(np.eye(2), activation="relu"))
    {'type': 'Linear', 'activation': 'relu'}
    """
    kind = type(module).__name__
    if LAYER_KINDS.get(kind) is not type(module):
        raise TypeError(f"save: cannot store a {kind} (custom modules are not supported)")
    node: dict = {"type": kind}
    activation = getattr(module, "activation", None)
    if activation is not None and not module.quantized:
        node["activation"] = activation
    if module.config_fields:
        node["config"] = module.config()
    if module.quantized:
        node["scheme"] = dataclasses.asdict(module.scheme)
        node["weight_schemes"] = {
            k: dataclasses.asdict(q.scheme) for k, q in module.qweights.items()
        }
        node["activation"] = activation
    return node


def _describe(module: Module, prefix: str, arrays: dict) -> dict:
    """The JSON node of ``module``; its arrays go to ``arrays`` under dotted names."""
    if isinstance(module, Sequential):
        return {
            "type": "Sequential",
            "name": prefix,
            "children": [
                _describe(child, f"{prefix}.{name}" if prefix else name, arrays)
                for name, child in module._modules.items()
            ],
        }
    node = {"name": prefix, **describe_layer(module)}
    for name, value in module._params.items():
        arrays[f"{prefix}.{name}" if prefix else name] = value
    return node


def _path(path) -> Path:
    if not isinstance(path, (str, Path)) and not hasattr(path, "__fspath__"):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def save(model: Module, path) -> Path:
    """Store ``model`` at ``path`` (``.npz`` or ``.safetensors``); returns the path.

    The layer tree, configuration and schemes go in a JSON header, every array in its
    own entry, with digests checked by :func:`load`.

    Parameters
    ----------
    model : Module
        Any tree of numbaq layers, float or quantized.
    path : str or path-like
        Where to write; the suffix chooses the format, ``.npz`` or ``.safetensors``
        (which needs the ``safetensors`` package).

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    TypeError
        If the tree holds a layer numbaq cannot store, or ``path`` is not a path.
    ValueError
        If the suffix is neither ``.npz`` nor ``.safetensors``.

    Examples
    --------
    >>> import tempfile, os
    >>> from numbaq.layers import Linear
    >>> path = save(Linear(np.eye(2)), os.path.join(tempfile.mkdtemp(), "m.npz"))
    >>> load(path)
    Linear(in_features=2, out_features=2, bias=False)
    """
    path = _path(path)
    arrays: dict[str, np.ndarray] = {}
    tree = {"format": FORMAT_VERSION, "model": _describe(model, "", arrays)}
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    tree["digest"] = _digest(tree, arrays)
    meta = json.dumps(tree)
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import save_file
        except ImportError:
            raise ImportError("saving .safetensors needs: pip install safetensors") from None
        save_file(
            arrays,
            str(path),
            metadata={"__numbaq__": meta},
        )
    elif path.suffix == ".npz":
        np.savez(path, __numbaq__=np.frombuffer(meta.encode(), np.uint8), **arrays)
    else:
        raise ValueError(f"path must end in .npz or .safetensors, got {path.name!r}")
    return path


def _digest(tree: dict, arrays: dict) -> dict:
    """SHA-256 of the layer tree (without its digest) and of each array."""
    body = {k: v for k, v in tree.items() if k != "digest"}
    tensors = {}
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(memoryview(arr.reshape(-1)).cast("B"))
        tensors[name] = h.hexdigest()
    meta = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {"meta": meta, "tensors": tensors}


def _corrupt(path, what: str) -> ValueError:
    return ValueError(
        f"{path}: {what}; the file is corrupt or was changed after numbaq.save wrote it. "
        "Save the model again"
    )


def _verify(path, tree: dict, arrays: dict) -> None:
    """Check the digests :func:`save` stored (format 2 and later)."""
    stored = tree.get("digest")
    if not isinstance(stored, dict) or not isinstance(stored.get("tensors"), dict):
        raise _corrupt(path, "the model description has no valid digest")
    actual = _digest(tree, arrays)
    if stored.get("meta") != actual["meta"]:
        raise _corrupt(path, "the model description does not match its digest")
    missing = sorted(set(stored["tensors"]) - set(arrays))
    extra = sorted(set(arrays) - set(stored["tensors"]))
    if missing or extra:
        raise _corrupt(path, f"arrays missing {missing[:5]}, unexpected {extra[:5]}")
    for name, value in actual["tensors"].items():
        if stored["tensors"][name] != value:
            raise _corrupt(path, f"array {name!r} does not match its digest")


def _params(node: dict, arrays: dict, used: set) -> dict:
    """The arrays of one layer (``<name>.<param>``), by parameter name."""
    prefix = node["name"]
    lead = f"{prefix}." if prefix else ""
    params = {}
    for k, v in arrays.items():
        if k.startswith(lead) and "." not in k[len(lead) :]:
            params[k[len(lead) :]] = v
            used.add(k)
    return params


def _expect(cond: bool, node: dict, what: str) -> None:
    if not cond:
        label = node.get("name") or "(model)" if isinstance(node, dict) else "(model)"
        raise ValueError(f"layer {label!r}: {what}")


def _check_arrays(node: dict, params: dict) -> None:
    """dtypes of a layer's arrays: int8 codes (``*_int8``), float32 everything else."""
    for name, value in params.items():
        want = np.int8 if name.endswith("_int8") else np.float32
        _expect(
            value.dtype == want,
            node,
            f"array {name!r} must be {np.dtype(want)}, got {value.dtype}",
        )


def _check_config(node: dict, keys: tuple) -> dict:
    config = node.get("config")
    _expect(isinstance(config, dict), node, "no config")
    _expect(
        set(config) == set(keys),
        node,
        f"config must have the keys {list(keys)}, got {sorted(config)}",
    )
    return config


def build_layer(node: dict, params: dict) -> Module:
    """The layer of :func:`describe_layer`'s ``node`` on its arrays, each checked
    against the other first (names, dtypes, configuration keys).

    Parameters
    ----------
    node : dict
        A layer's description, as :func:`describe_layer` makes it.
    params : dict of str to ndarray
        The layer's arrays by parameter name (used without a copy).

    Returns
    -------
    Module
        The layer, built by its kind's ``from_saved``.

    Raises
    ------
    ValueError, TypeError
        If the description and the arrays do not make a layer of a known kind.

    Examples
    --------
    >>> build_layer({"type": "Linear"}, {"weight": np.eye(2, dtype=np.float32)})
    Linear(in_features=2, out_features=2, bias=False)
    """
    _expect(isinstance(node, dict), node, f"a layer must be a JSON object, got {node!r}")
    kind = node.get("type")
    cls = LAYER_KINDS.get(kind) if isinstance(kind, str) else None
    _expect(cls is not None and cls is not Sequential, node, f"unknown layer type {kind!r}")
    _check_arrays(node, params)
    config = _check_config(node, cls.config_fields) if cls.config_fields else {}
    if not cls.quantized:
        return cls.from_saved(config, params, activation=node.get("activation"))
    schemes_ = node.get("weight_schemes")
    _expect(isinstance(schemes_, dict) and schemes_, node, "no weight_schemes")
    _expect(isinstance(node.get("scheme"), dict), node, "no activation scheme")
    weights = {}
    for name, scheme in schemes_.items():
        _expect(isinstance(scheme, dict), node, f"weight scheme of {name!r} is not an object")
        for suffix in ("_int8", "_scale"):
            _expect(f"{name}{suffix}" in params, node, f"array {name}{suffix!r} is missing")
        weights[name] = QuantizedWeight.from_int8(
            params[f"{name}_int8"], params[f"{name}_scale"], QScheme(**scheme)
        )
    biases = {k: v for k, v in params.items() if k.startswith("bias")}
    known = {f"{w}{s}" for w in weights for s in ("_int8", "_scale")} | set(biases)
    _expect(set(params) <= known, node, f"unexpected arrays {sorted(set(params) - known)}")
    scheme = QScheme(**node["scheme"])
    return cls.from_saved(
        config, biases, weights=weights, scheme=scheme, activation=node.get("activation")
    )


def _build(node: dict, arrays: dict, used: set) -> Module:
    _expect(isinstance(node, dict), node, f"a layer must be a JSON object, got {node!r}")
    _expect(isinstance(node.get("name"), str), node, "no name")
    if node.get("type") == "Sequential":
        children = node.get("children")
        _expect(isinstance(children, list), node, "Sequential without a list of children")
        return Sequential(*(_build(child, arrays, used) for child in children))
    return build_layer(node, _params(node, arrays, used))


def _read(path: Path) -> tuple[dict, str | None]:
    """``(arrays, the __numbaq__ document or None)``; any failure to parse the container
    becomes a ``ValueError``."""
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open
            from safetensors.numpy import load_file
        except ImportError:
            raise ImportError("loading .safetensors needs: pip install safetensors") from None
        try:
            arrays = load_file(str(path))
            with safe_open(str(path), "np") as f:
                meta = (f.metadata() or {}).get("__numbaq__")
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            raise
        except Exception as err:  # safetensors raises its own SafetensorError, or others
            raise ValueError(
                f"{path}: not a readable .safetensors file ({type(err).__name__}: {err}); "
                "it is truncated, corrupt, or another format"
            ) from None
        return arrays, meta
    if path.suffix != ".npz":
        raise ValueError(f"path must end in .npz or .safetensors, got {path.name!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
            arrays = {k: data[k] for k in data.files}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as err:  # zipfile.BadZipFile, zlib.error, EOFError, ValueError, ...
        raise ValueError(
            f"{path}: not a readable .npz file ({type(err).__name__}: {err}); "
            "it is truncated, corrupt, or another format"
        ) from None
    meta = arrays.pop("__numbaq__", None)
    if meta is not None:
        if meta.dtype != np.uint8 or meta.ndim != 1:
            raise ValueError(f"{path}: its __numbaq__ entry is not a numbaq model description")
        meta = meta.tobytes()
    return arrays, meta


def load(path) -> Module:
    """Load a model stored by :func:`save`.

    The file's digests are checked (a flipped bit is refused), then every array against
    the layer configuration, before any layer is built.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save` (``.npz`` or ``.safetensors``).

    Returns
    -------
    Module
        The model, bit for bit as saved (packed GEMM layouts are remade on first use).

    Raises
    ------
    ValueError
        The file is not a numbaq model, is corrupt or truncated, comes from a newer
        numbaq, or its arrays do not fit its configuration.

    Examples
    --------
    >>> import tempfile, os
    >>> from numbaq.layers import Linear
    >>> model = Linear(np.eye(2, dtype=np.float32), np.ones(2, np.float32))
    >>> loaded = load(save(model, os.path.join(tempfile.mkdtemp(), "m.safetensors")))
    >>> bool((loaded.bias == model.bias).all())
    True
    """
    path = _path(path)
    arrays, meta = _read(path)
    if meta is None:
        raise ValueError(
            f"{path}: not a numbaq model (no __numbaq__ description); numbaq.load reads "
            "files written by numbaq.save"
        )
    try:
        tree = json.loads(meta)
    except (UnicodeDecodeError, ValueError):
        raise _corrupt(path, "its model description is not valid JSON") from None
    except RecursionError:
        raise _corrupt(path, "its model description is nested too deeply") from None
    try:
        return _load_tree(path, tree, arrays)
    except RecursionError:
        raise _corrupt(path, "its model description is nested too deeply") from None


def _load_tree(path, tree, arrays) -> Module:
    """:func:`load` once the description parsed: check it, then build the model."""
    version = tree.get("format") if isinstance(tree, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _corrupt(path, f"its format field is {version!r}, not a format number")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: written in numbaq format {version}, newer than this numbaq reads "
            f"(up to {FORMAT_VERSION}); upgrade numbaq (pip install -U numbaq)"
        )
    if version >= 2:
        _verify(path, tree, arrays)
    if "model" not in tree:
        raise _corrupt(path, "its description has no model")
    used: set = set()
    try:
        model = _build(tree["model"], arrays, used)
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: arrays and configuration do not fit: {err}") from None
    unused = sorted(set(arrays) - used)
    if unused:
        raise ValueError(f"{path}: arrays that no layer uses: {unused[:5]}")
    return model
