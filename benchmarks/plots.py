"""``python -m benchmarks.plots``: an alias of ``python -m benchmarks.readme``.

The plots (``benchmarks/gops-<path>.png``, ``benchmarks/speedup-<path>.png``) are drawn
with the README's measured figures, from RESULTS.md, by :mod:`benchmarks.readme`.
"""

import sys

from .readme import main

if __name__ == "__main__":
    sys.exit(main())
