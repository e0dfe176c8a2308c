"""``python -m benchmarks``: every benchmark in one run, then RESULTS.md and the plots.

Each benchmark writes its own section of ``benchmarks/RESULTS.md``; ``plots`` then reads
the Linear tables back and draws ``benchmarks/gops.png`` and ``benchmarks/speedup.png``
(matplotlib, the ``plots`` extra).
"""

from . import (
    bench_linear,
    bench_lstm,
    bench_minilm,
    bench_startup,
    bench_static,
    bench_stats,
    plots,
)

for bench in (bench_stats, bench_startup, bench_linear, bench_lstm, bench_minilm, bench_static):
    print(f"== {bench.__name__}", flush=True)
    bench.main([])
plots.main()
