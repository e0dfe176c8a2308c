"""`numbaq demo` runs, and its numbers say what the demo claims."""

import io
import subprocess
import sys

import numpy as np

from numbaq import cli, metrics
from numbaq import reference as ref


def test_demo_results_are_the_real_errors():
    out = io.StringIO()
    report = cli.demo(tokens=16, hidden=256, seed=1, out=out)
    results = report["quantization"]
    x = cli.realistic_activations(16, 256, seed=1)
    by_name = {r["name"]: r for r in results}
    for r in results:  # each printed SQNR is recomputed here from the numpy reference
        q, scale, zp = ref.dynamic_quantize(x, r["scheme"])
        g, _ = ref.groups(q, r["scheme"].granularity, r["scheme"].block_size)
        x_hat = ref.ungroup(
            ref.dequantize(g, scale.reshape(-1, 1), zp.reshape(-1, 1)),
            x.shape,
            r["scheme"].granularity,
        )
        assert np.isclose(r["sqnr_db"], metrics.sqnr(x, x_hat))
        assert f"{r['sqnr_db']:.1f}" in out.getvalue()
    # the point of the demo: per-token scales beat one scale for the tensor
    assert (
        by_name["per token, symmetric int8"]["sqnr_db"]
        > by_name["per tensor, symmetric int8"]["sqnr_db"] + 3
    )
    assert by_name["per token, symmetric int4"]["sqnr_db"] < 20
    linear = {r["name"]: r for r in report["linear"]}
    assert linear["numpy fp32"]["sqnr_db"] > 100  # float32 rounding only
    assert 25 < linear["numbaq int8, PER_TOKEN_INT8"]["sqnr_db"] < 60
    assert (
        linear["numbaq int8, PER_TOKEN_INT8"]["sqnr_db"] > linear["numbaq int8, TORCH"]["sqnr_db"]
    )


def test_python_dash_m_numbaq_demo():
    done = subprocess.run(
        [sys.executable, "-m", "numbaq", "demo", "--tokens", "8", "--hidden", "64"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "SQNR dB" in done.stdout and "PER_TOKEN_INT8" in done.stdout
