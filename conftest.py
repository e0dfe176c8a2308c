"""pytest collection rules for the whole repository (``--doctest-modules`` over numbaq/)."""

import importlib.util

# numbaq.torch (and its helpers) import PyTorch, the optional ``torch`` extra: without it,
# their doctests are not collected rather than failing to import
_TORCH_MODULES = ["numbaq/torch.py", "numbaq/_torch_support.py"]
collect_ignore = [] if importlib.util.find_spec("torch") else _TORCH_MODULES
