"""How to install PyTorch, for the errors of the parts of numbaq that need it."""

TORCH_INSTALL = (
    "the CPU build is enough: pip install torch --index-url "
    "https://download.pytorch.org/whl/cpu (a plain `pip install torch` from PyPI takes the "
    "CUDA build on Linux, several GB)"
)
"""The install hint of every ``ImportError`` for a missing PyTorch."""
