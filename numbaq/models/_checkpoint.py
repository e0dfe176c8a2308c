"""Reading BERT checkpoints for :mod:`numbaq.models.bert`: ``config.json`` checked against
the arrays (before anything is built), ``model.safetensors`` read without torch (F32, F16,
BF16), the key prefix removed, and sentence-transformers' ``modules.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ACTIVATIONS = {
    "gelu": "gelu",
    "relu": "relu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
}
"""``hidden_act`` values supported, and the activation each runs (exact erf GELU, ReLU,
tanh GELU)."""

_REQUIRED = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
)


def validate(config: dict, params: dict) -> dict:
    """The encoder's config with defaults filled in, checked against the arrays' shapes.

    Raises ValueError naming the field (or the array) that does not fit, before anything
    is built. ``params`` has its key prefix (``bert.``) already removed.
    """
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict (config.json), got {type(config).__name__}")
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise ValueError(f"config.json: missing fields {missing}")
    cfg = dict(config)
    cfg.setdefault("layer_norm_eps", 1e-12)
    cfg.setdefault("type_vocab_size", 2)
    cfg.setdefault("hidden_act", "gelu")
    for field in (*_REQUIRED, "type_vocab_size"):
        v = cfg[field]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"config.json: {field} must be a positive int, got {v!r}")
    eps = cfg["layer_norm_eps"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise ValueError(f"config.json: layer_norm_eps must be a float in (0, 1), got {eps!r}")
    model_type = cfg.get("model_type", "bert")
    if model_type != "bert":
        raise ValueError(
            f"config.json: model_type {model_type!r} is not supported (BERT only: "
            "'bert' keys and absolute positions from 0)"
        )
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(
            "config.json: position_embedding_type "
            f"{cfg['position_embedding_type']!r} is not supported (only 'absolute')"
        )
    if cfg.get("is_decoder") or cfg.get("add_cross_attention"):
        raise ValueError(
            "config.json: decoders (is_decoder, add_cross_attention) are not supported"
        )
    if cfg["hidden_act"] not in ACTIVATIONS:
        raise ValueError(
            f"config.json: hidden_act {cfg['hidden_act']!r} is not supported; "
            f"choose from {list(ACTIVATIONS)}"
        )
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    if hidden % heads:
        raise ValueError(
            f"config.json: hidden_size ({hidden}) must be a multiple of "
            f"num_attention_heads ({heads})"
        )
    layers = cfg["num_hidden_layers"]
    hd, it = "hidden_size", "intermediate_size"
    expect = {  # array -> the config field each of its dimensions must equal
        "embeddings.word_embeddings.weight": ("vocab_size", hd),
        "embeddings.position_embeddings.weight": ("max_position_embeddings", hd),
        "embeddings.token_type_embeddings.weight": ("type_vocab_size", hd),
        "embeddings.LayerNorm.weight": (hd,),
        "embeddings.LayerNorm.bias": (hd,),
    }
    dense = {
        "attention.self.query": (hd, hd),
        "attention.self.key": (hd, hd),
        "attention.self.value": (hd, hd),
        "attention.output.dense": (hd, hd),
        "intermediate.dense": (it, hd),
        "output.dense": (hd, it),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}"
        for name, dims in dense.items():
            expect[f"{p}.{name}.weight"] = dims
            expect[f"{p}.{name}.bias"] = dims[:1]
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            expect[f"{p}.{norm}.weight"] = (hd,)
            expect[f"{p}.{norm}.bias"] = (hd,)
    absent = [k for k in expect if k not in params]
    if absent:
        raise ValueError(
            f"model.safetensors: {len(absent)} arrays the config needs are missing "
            f"(num_hidden_layers = {layers}), e.g. {absent[:3]}"
        )
    for key, dims in expect.items():
        got = tuple(np.shape(params[key]))
        if len(got) != len(dims):
            raise ValueError(
                f"model.safetensors: {key} must have {len(dims)} dimensions, got {got}"
            )
        for field, size in zip(dims, got):
            if field in cfg and cfg[field] != size:
                raise ValueError(
                    f"config.json: {field} = {cfg[field]} does not fit {key} of shape {got}"
                )
    extra = sorted(
        {
            int(k.split(".")[2])
            for k in params
            if k.startswith("encoder.layer.") and k.split(".")[2].isdigit()
        }
        - set(range(layers))
    )
    if extra:
        raise ValueError(
            f"config.json: num_hidden_layers = {layers}, but the checkpoint also has "
            f"encoder.layer.{extra[0]}"
        )
    cfg["vocab_size"] = int(np.shape(params["embeddings.word_embeddings.weight"])[0])
    return cfg


_SAFETENSORS_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BF16": "bf16",
}


def read_safetensors(path) -> dict:
    """The arrays of a ``.safetensors`` file: floats as float32 (BF16 and F16 widened),
    integers as stored. The format: an 8-byte little-endian header length, a JSON header
    ``{name: {dtype, shape, data_offsets}}``, then the data."""
    path = Path(path)
    raw = np.memmap(path, np.uint8, mode="r")
    if raw.size < 8:
        raise ValueError(f"{path.name}: not a safetensors file (too short)")
    n = int(raw[:8].view("<u8")[0])
    if n > raw.size - 8:
        raise ValueError(f"{path.name}: not a safetensors file (bad header length)")
    header = json.loads(bytes(raw[8 : 8 + n]).decode("utf-8"))
    body = raw[8 + n :]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        kind = _SAFETENSORS_DTYPES.get(entry["dtype"])
        if kind is None:
            raise ValueError(f"{path.name}: {name} has unsupported dtype {entry['dtype']}")
        lo, hi = entry["data_offsets"]
        chunk = np.asarray(body[lo:hi])
        shape = tuple(entry["shape"])
        if kind == "bf16":
            arr = (chunk.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = chunk.view(np.dtype(kind).newbyteorder("<"))
        arr = arr.reshape(shape)
        out[name] = (
            arr.astype(np.float32)
            if arr.dtype.kind == "f"
            else arr.astype(arr.dtype.newbyteorder("="))
        )
    return out


def strip_prefix(params: dict) -> dict:
    """The encoder's arrays with their key prefix (``bert.``, ``model.``, or none)
    removed; heads (``pooler.``, ``cls.``) and other models' keys dropped."""
    anchor = "embeddings.word_embeddings.weight"
    prefixes = [k[: -len(anchor)] for k in params if k.endswith(anchor)]
    if not prefixes:
        raise ValueError(f"model.safetensors: no {anchor}; not a BERT checkpoint")
    if len(prefixes) > 1:
        raise ValueError(f"model.safetensors: several encoders ({sorted(prefixes)})")
    prefix = prefixes[0]
    return {
        k[len(prefix) :]: v
        for k, v in params.items()
        if k.startswith(prefix) and k[len(prefix) :].startswith(("embeddings.", "encoder."))
    }


def sentence_transformers(path: Path):
    """``(pooling modes, normalize, max_length)`` from sentence-transformers files, or
    ``None`` where there is no ``modules.json``."""
    modules_file = path / "modules.json"
    if not modules_file.exists():
        return None
    modules = json.loads(modules_file.read_text())
    pooling, normalize = ("mean",), False
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        if kind == "Transformer":
            if module.get("path", "") not in ("", "."):
                raise ValueError(
                    f"modules.json: the Transformer module lives in {module['path']!r}; "
                    "load that directory"
                )
        elif kind == "Pooling":
            cfg = json.loads((path / module["path"] / "config.json").read_text())
            unsupported = [
                k
                for k in ("pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")
                if cfg.get(k)
            ]
            if unsupported:
                raise ValueError(f"{module['path']}/config.json: {unsupported} not supported")
            pooling = tuple(
                mode
                for mode, key in (
                    ("cls", "pooling_mode_cls_token"),
                    ("max", "pooling_mode_max_tokens"),
                    ("mean", "pooling_mode_mean_tokens"),
                    ("mean_sqrt_len", "pooling_mode_mean_sqrt_len_tokens"),
                )
                if cfg.get(key)
            )
            if not pooling:
                raise ValueError(f"{module['path']}/config.json: no pooling mode is set")
        elif kind == "Normalize":
            normalize = True
        else:
            raise ValueError(f"modules.json: module type {module.get('type')!r} is not supported")
    max_length = None
    st_file = path / "sentence_bert_config.json"
    if st_file.exists():
        max_length = json.loads(st_file.read_text()).get("max_seq_length")
    return pooling, normalize, max_length
