"""The metadata side of a GGUF file (:mod:`numbaq.models.gguf`, which re-exports all of
it): the roles of a Llama model's tensors under transformers' names, llama.cpp's row order
of the query and key weights undone, the model's hyper-parameters checked against its
tensors, and its tokenizer, built from the file's own vocabulary.
"""

from __future__ import annotations

import numpy as np

INSTALL_TOKENIZERS = "a GGUF tokenizer needs the tokenizers package: pip install tokenizers"


ROLES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "blk.{i}.attn_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "blk.{i}.attn_q.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "blk.{i}.attn_k.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "blk.{i}.attn_v.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "blk.{i}.attn_output.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "blk.{i}.ffn_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.ffn_gate.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "blk.{i}.ffn_up.weight": "model.layers.{i}.mlp.up_proj.weight",
    "blk.{i}.ffn_down.weight": "model.layers.{i}.mlp.down_proj.weight",
}
"""GGUF tensor names of a Llama model and transformers' names for them (``{i}``: the
layer). ``attn_q`` and ``attn_k`` are stored with their rows reordered
(:func:`unpermute_rows`)."""

_ROLE_BY_SUFFIX = {k.split("{i}.", 1)[1]: v for k, v in ROLES.items() if "{i}" in k}


def role(name: str) -> str:
    """transformers' name for a GGUF tensor of a Llama model.

    Parameters
    ----------
    name : str
        A GGUF tensor name, e.g. ``"blk.3.ffn_up.weight"``.

    Returns
    -------
    str
        E.g. ``"model.layers.3.mlp.up_proj.weight"`` (:data:`ROLES`).

    Raises
    ------
    ValueError
        If ``name`` is not a tensor of a Llama model.

    Examples
    --------
    >>> role("blk.3.ffn_up.weight"), role("output_norm.weight")
    ('model.layers.3.mlp.up_proj.weight', 'model.norm.weight')
    """
    if name in ROLES:
        return ROLES[name]
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit():
        if parts[2] in _ROLE_BY_SUFFIX:
            return _ROLE_BY_SUFFIX[parts[2]].format(i=int(parts[1]))
    raise ValueError(
        f"tensor {name}: not a tensor of a Llama model (numbaq.models.gguf.ROLES lists "
        "them; biases and llama3's rope_freqs are not supported)"
    )


def unpermute_rows(w, n_head: int) -> np.ndarray:
    """Undo llama.cpp's reordering of the rows of ``attn_q`` / ``attn_k``.

    Parameters
    ----------
    w : (rows, ...) array_like
        A tensor's rows as stored, any dtype: float weights, int8 codes, block scales or
        the raw block bytes (a row permutation moves whole rows, so it is exact on
        quantized rows).
    n_head : int
        The heads these rows belong to: ``num_attention_heads`` for ``attn_q``,
        ``num_key_value_heads`` for ``attn_k``.

    Returns
    -------
    (rows, ...) ndarray
        The rows in transformers' order (a new array).

    Raises
    ------
    ValueError
        If ``rows`` is not a multiple of ``2 * n_head``.

    Notes
    -----
    transformers' rotary embedding pairs element ``j`` of a head with ``j + d / 2``; ggml's
    pairs ``2 j`` with ``2 j + 1``. So llama.cpp's converter writes head ``h``'s rows
    interleaved, ``w.reshape(n_head, 2, d / 2, ...).swapaxes(1, 2)``, and this is its
    inverse, ``w.reshape(n_head, d / 2, 2, ...).swapaxes(1, 2)`` (as transformers reads
    GGUF files).

    Examples
    --------
    >>> unpermute_rows(np.array([0, 4, 1, 5, 2, 6, 3, 7]), n_head=1).tolist()
    [0, 1, 2, 3, 4, 5, 6, 7]
    """
    w = np.asarray(w)
    if isinstance(n_head, bool) or not isinstance(n_head, (int, np.integer)) or n_head < 1:
        raise ValueError(f"n_head must be a positive int, got {n_head!r}")
    if w.ndim < 1 or w.shape[0] % (2 * n_head):
        raise ValueError(
            f"unpermute_rows: {w.shape[0] if w.ndim else 0} rows are not n_head = {n_head} "
            "heads of an even size; pass num_attention_heads for attn_q, "
            "num_key_value_heads for attn_k"
        )
    half = w.shape[0] // n_head // 2
    return w.reshape(n_head, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _parts(file_or_metadata):
    """``(metadata, tensors or None, "name: ")`` of a GGUFFile or a metadata dict."""
    if hasattr(file_or_metadata, "tensors") and hasattr(file_or_metadata, "metadata"):
        return (
            file_or_metadata.metadata,
            file_or_metadata.tensors,
            f"{file_or_metadata.path.name}: ",
        )
    if isinstance(file_or_metadata, dict):
        return file_or_metadata, None, ""
    raise TypeError(
        "pass the GGUFFile from read(path) or its metadata dict, got "
        f"{type(file_or_metadata).__name__}"
    )


def config(file) -> dict:
    """The Llama hyper-parameters of a GGUF file, under transformers' names, checked
    against every tensor.

    Parameters
    ----------
    file : GGUFFile or dict
        From :func:`read` (then every tensor's shape is checked), or its metadata.

    Returns
    -------
    dict
        ``model_type`` ("llama"), ``hidden_size``, ``intermediate_size``,
        ``num_hidden_layers``, ``num_attention_heads``, ``num_key_value_heads``,
        ``head_dim``, ``rms_norm_eps``, ``rope_theta``, ``rope_scaling`` (None or the
        file's ``{"rope_type", "factor", ...}``), ``vocab_size``,
        ``max_position_embeddings``, ``tie_word_embeddings`` (no ``output.weight``; with
        a metadata dict, False unless stated), ``hidden_act`` ("silu"),
        ``bos_token_id``, ``eos_token_id``, ``pad_token_id``, ``add_bos_token``,
        ``chat_template`` (the ids and template None where the file has none).

    Raises
    ------
    ValueError
        Naming the file and the field: ``general.architecture`` other than "llama", a
        missing or bad metadata field, a partial rotary embedding, or a tensor missing,
        unknown (:func:`role`) or of a shape the config does not fit.

    Notes
    -----
    The metadata keys, ``llama.`` + ``embedding_length``, ``feed_forward_length``,
    ``block_count``, ``attention.head_count``, ``attention.head_count_kv`` (default: the
    head count), ``attention.layer_norm_rms_epsilon``, ``rope.freq_base`` (default
    10000), ``context_length``, ``vocab_size`` (default: the vocabulary's size), and
    ``attention.key_length`` (default ``hidden_size / num_attention_heads``). Shapes
    (numpy order): ``token_embd`` and ``output`` ``(vocab_size, hidden_size)``;
    ``attn_q`` ``(heads * head_dim, hidden_size)``, ``attn_k``, ``attn_v``
    ``(kv_heads * head_dim, hidden_size)``, ``attn_output``
    ``(hidden_size, heads * head_dim)``; ``ffn_gate``, ``ffn_up``
    ``(intermediate_size, hidden_size)``, ``ffn_down`` ``(hidden_size,
    intermediate_size)``; the norms ``(hidden_size,)``.

    Examples
    --------
    >>> meta = {"general.architecture": "llama", "llama.embedding_length": 64,
    ...         "llama.feed_forward_length": 96, "llama.block_count": 2,
    ...         "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
    ...         "llama.attention.layer_norm_rms_epsilon": 1e-5, "llama.context_length": 128,
    ...         "llama.vocab_size": 100}
    >>> cfg = config(meta)
    >>> cfg["head_dim"], cfg["num_key_value_heads"], cfg["rope_theta"]
    (16, 2, 10000.0)
    """
    meta, tensors, where = _parts(file)
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise ValueError(
            f"{where}general.architecture = {arch!r} is not supported; numbaq reads "
            "'llama' (Llama 1-3, SmolLM, TinyLlama, Mistral ...)"
        )

    def field(key, kind, default=None):
        full = f"llama.{key}"
        v = meta.get(full, default)
        if v is None:
            raise ValueError(f"{where}metadata field {full} is missing")
        ok = (
            isinstance(v, int) and not isinstance(v, bool) and v >= 1
            if kind is int
            else isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
        )
        if not ok:
            kind_name = "positive int" if kind is int else "positive number"
            raise ValueError(f"{where}metadata field {full} must be a {kind_name}, got {v!r}")
        return kind(v)

    tokens = meta.get("tokenizer.ggml.tokens")
    vocab_default = len(tokens) if isinstance(tokens, list) and tokens else None
    if vocab_default is None and tensors and "token_embd.weight" in tensors:
        vocab_default = tensors["token_embd.weight"].shape[0]
    hidden = field("embedding_length", int)
    heads = field("attention.head_count", int)
    cfg = {
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": field("feed_forward_length", int),
        "num_hidden_layers": field("block_count", int),
        "num_attention_heads": heads,
        "num_key_value_heads": field("attention.head_count_kv", int, heads),
        "head_dim": None,
        "rms_norm_eps": field("attention.layer_norm_rms_epsilon", float),
        "rope_theta": field("rope.freq_base", float, 10000.0),
        "rope_scaling": None,
        "vocab_size": field("vocab_size", int, vocab_default),
        "max_position_embeddings": field("context_length", int),
        "tie_word_embeddings": tensors is not None and "output.weight" not in tensors,
        "hidden_act": "silu",
        "bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
        "pad_token_id": meta.get("tokenizer.ggml.padding_token_id"),
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        "chat_template": meta.get("tokenizer.chat_template"),
    }
    if "llama.attention.key_length" in meta:
        head_dim = field("attention.key_length", int)
    elif hidden % heads:
        raise ValueError(
            f"{where}llama.embedding_length ({hidden}) is not a multiple of "
            f"llama.attention.head_count ({heads}), and there is no llama.attention.key_length"
        )
    else:
        head_dim = hidden // heads
    cfg["head_dim"] = head_dim
    if heads % cfg["num_key_value_heads"]:
        raise ValueError(
            f"{where}llama.attention.head_count ({heads}) is not a multiple of "
            f"llama.attention.head_count_kv ({cfg['num_key_value_heads']})"
        )
    if meta.get("llama.attention.value_length", head_dim) != head_dim:
        raise ValueError(
            f"{where}llama.attention.value_length ({meta['llama.attention.value_length']}) "
            f"differs from the key length ({head_dim}); not supported"
        )
    rope_dims = meta.get("llama.rope.dimension_count", head_dim)
    if rope_dims != head_dim:
        raise ValueError(
            f"{where}llama.rope.dimension_count = {rope_dims}, but a head has {head_dim} "
            "dimensions: a partial rotary embedding is not supported"
        )
    scaling = meta.get("llama.rope.scaling.type")
    if scaling not in (None, "none"):
        cfg["rope_scaling"] = {
            "rope_type": scaling,
            **{
                k.rsplit(".", 1)[1]: v
                for k, v in meta.items()
                if k.startswith("llama.rope.scaling.") and k != "llama.rope.scaling.type"
            },
        }
    if tensors is not None:
        _check_shapes(cfg, tensors, where)
    return cfg


def _check_shapes(cfg: dict, tensors: dict, where: str) -> None:
    """Every tensor present, known and of the shape ``cfg`` says (ValueError naming the
    tensor and the field)."""
    h, v, it = "llama.embedding_length", "llama.vocab_size", "llama.feed_forward_length"
    q, kv = "llama.attention.head_count * head_dim", "llama.attention.head_count_kv * head_dim"
    sizes = {
        h: cfg["hidden_size"],
        v: cfg["vocab_size"],
        it: cfg["intermediate_size"],
        q: cfg["num_attention_heads"] * cfg["head_dim"],
        kv: cfg["num_key_value_heads"] * cfg["head_dim"],
    }
    expect = {"token_embd.weight": (v, h), "output_norm.weight": (h,)}
    if "output.weight" in tensors:
        expect["output.weight"] = (v, h)
    per_layer = {
        "attn_norm.weight": (h,),
        "attn_q.weight": (q, h),
        "attn_k.weight": (kv, h),
        "attn_v.weight": (kv, h),
        "attn_output.weight": (h, q),
        "ffn_norm.weight": (h,),
        "ffn_gate.weight": (it, h),
        "ffn_up.weight": (it, h),
        "ffn_down.weight": (h, it),
    }
    layers = cfg["num_hidden_layers"]
    for i in range(layers):
        for suffix, dims in per_layer.items():
            expect[f"blk.{i}.{suffix}"] = dims
    for name in tensors:
        try:
            role(name)
        except ValueError as exc:
            raise ValueError(f"{where}{exc}") from None
        if name.startswith("blk.") and int(name.split(".")[1]) >= layers:
            raise ValueError(
                f"{where}tensor {name}: llama.block_count = {layers}, but the file also "
                f"has layer {name.split('.')[1]}"
            )
    for name, dims in expect.items():
        if name not in tensors:
            raise ValueError(f"{where}tensor {name} is missing (llama.block_count = {layers})")
        got = tensors[name].shape
        want = tuple(sizes[d] for d in dims)
        if got != want:
            bad = next(
                (f"{d} = {sizes[d]}" for d, g in zip(dims, got) if sizes[d] != g),
                f"{len(dims)} dimensions",
            )
            raise ValueError(
                f"{where}tensor {name} has shape {got}, but the metadata says {want} "
                f"({bad} does not fit)"
            )


# ------------------------------------------------------------------ the tokenizer
_GPT2_SPLIT = ("gpt2", "default", "mpt", "olmo", "jais")
"""``tokenizer.ggml.pre`` values llama.cpp splits with the GPT-2 regex alone."""
_DIGITS_SPLIT = ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b")
"""... and with each digit apart first (``\\p{N}``), then the GPT-2 regex."""


def _bytes_to_unicode() -> dict:
    """GPT-2's byte -> printable character map of byte-level BPE vocabularies."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += range(ord("®"), ord("ÿ") + 1)
    spelled, extra = {}, 0
    for b in range(256):
        if b in keep:
            spelled[b] = chr(b)
        else:
            spelled[b] = chr(256 + extra)
            extra += 1
    return spelled


def tokenizer(file):
    """The tokenizer a GGUF file describes, as a ``tokenizers.Tokenizer``.

    Parameters
    ----------
    file : GGUFFile or dict
        From :func:`read`, or its metadata: ``tokenizer.ggml.model`` ("gpt2"),
        ``tokenizer.ggml.tokens``, ``tokenizer.ggml.merges``, and, optional,
        ``tokenizer.ggml.token_type``, ``tokenizer.ggml.pre``,
        ``tokenizer.ggml.bos_token_id``, ``tokenizer.ggml.add_bos_token``.

    Returns
    -------
    tokenizers.Tokenizer
        Byte-level BPE over the file's vocabulary and merges; its control tokens (e.g.
        ``<|im_start|>``) added as special tokens and its user-defined ones as added
        tokens, so each encodes to its one id; a byte-level decoder; BOS prepended only
        where ``tokenizer.ggml.add_bos_token`` says so.

    Raises
    ------
    ImportError
        If ``tokenizers`` is not installed.
    ValueError
        Naming the field: ``tokenizer.ggml.model`` other than "gpt2" (byte-level BPE),
        ``tokenizer.ggml.pre`` not supported, or the tokens or merges missing or bad.

    Notes
    -----
    As transformers builds a GGUF tokenizer (``integrations/gguf``), but with llama.cpp's
    split for ``tokenizer.ggml.pre``: digits one by one before the GPT-2 regex for
    "smollm" (and the StarCoder family), as SmolLM2's own ``tokenizer.json`` does;
    transformers uses the GPT-2 regex alone there, which gives the same ids on SmolLM2's
    vocabulary, which has no merges of digits. Tokens spelled outside the byte alphabet
    are respelled byte by byte; control tokens outside it are not added (a llama.cpp
    mislabel, as transformers does).

    Examples
    --------
    >>> _ = __import__("pytest").importorskip("tokenizers")
    >>> from numbaq.models.gguf_meta import _bytes_to_unicode
    >>> alphabet = [_bytes_to_unicode()[b] for b in range(256)]
    >>> meta = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt2",
    ...         "tokenizer.ggml.tokens": ["<s>", *alphabet, "hi", "Ġhi"],
    ...         "tokenizer.ggml.token_type": [3] + [1] * 258,
    ...         "tokenizer.ggml.merges": ["h i", "Ġ hi"]}
    >>> tok = tokenizer(meta)
    >>> tok.encode("<s>hi hi").ids, tok.decode(tok.encode("hi hi").ids)
    ([0, 257, 258], 'hi hi')
    """
    meta, _, where = _parts(file)
    model = meta.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise ValueError(
            f"{where}tokenizer.ggml.model = {model!r} is not supported; numbaq builds "
            "'gpt2' (byte-level BPE) tokenizers"
        )
    pre = meta.get("tokenizer.ggml.pre", "default")
    if pre not in _GPT2_SPLIT + _DIGITS_SPLIT:
        raise ValueError(
            f"{where}tokenizer.ggml.pre = {pre!r} is not supported; supported: "
            f"{list(_GPT2_SPLIT + _DIGITS_SPLIT)}"
        )
    try:
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    except ImportError as exc:
        raise ImportError(INSTALL_TOKENIZERS) from exc
    tokens = meta.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise ValueError(f"{where}tokenizer.ggml.tokens must be a non-empty list of strings")
    merges = meta.get("tokenizer.ggml.merges")
    if not isinstance(merges, list):
        raise ValueError(f"{where}tokenizer.ggml.merges is missing (byte-level BPE needs it)")
    pairs = [tuple(m.split(" ")) for m in merges]
    bad = next((i for i, p in enumerate(pairs) if len(p) != 2), None)
    if bad is not None:
        raise ValueError(
            f"{where}tokenizer.ggml.merges[{bad}] = {merges[bad]!r} is not two tokens "
            "separated by one space"
        )
    types = meta.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    if len(types) != len(tokens):
        raise ValueError(
            f"{where}tokenizer.ggml.token_type has {len(types)} entries for {len(tokens)} tokens"
        )
    spelling = _bytes_to_unicode()
    alphabet = set(spelling.values())

    def spell(token):
        if set(token) <= alphabet:
            return token
        return "".join(spelling[b] for b in token.encode("utf-8"))

    vocab = {spell(t): i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab, pairs, fuse_unk=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in _DIGITS_SPLIT:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    control = [
        AddedToken(t, special=True, normalized=False)
        for t, kind in zip(tokens, types)
        if kind == 3 and set(t) <= alphabet  # CONTROL
    ]
    user = [
        AddedToken(spell(t), special=False, normalized=False)
        for t, kind in zip(tokens, types)
        if kind == 4  # USER_DEFINED
    ]
    tok.add_special_tokens(control)
    tok.add_tokens(user)
    if tok.get_vocab_size(with_added_tokens=True) != len(vocab):
        raise ValueError(
            f"{where}tokenizer.ggml.tokens: the added tokens are not in the vocabulary"
        )
    bos = meta.get("tokenizer.ggml.bos_token_id")
    if meta.get("tokenizer.ggml.add_bos_token") and bos is not None:
        if not 0 <= bos < len(tokens):
            raise ValueError(f"{where}tokenizer.ggml.bos_token_id = {bos} is not a token id")
        name = spell(tokens[bos])
        tok.post_processor = processors.TemplateProcessing(
            single=f"{name} $A", pair=f"{name} $A {name} $B", special_tokens=[(name, bos)]
        )
    return tok
