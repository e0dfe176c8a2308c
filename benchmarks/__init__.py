"""numbaq benchmarks: ``python -m benchmarks.bench_stats`` and friends."""
