"""PyTorch interop (optional: runs where torch is installed)."""

import warnings

import numpy as np
import pytest

import numbaq as nq
from numbaq import metrics

torch = pytest.importorskip(
    "torch",
    reason="torch is not installed; `pip install torch==2.13.0` (CPU build) runs the "
    "PyTorch interop tests",
)
from torch.ao.quantization import per_channel_dynamic_qconfig  # noqa: E402

nn = torch.nn


def _quantize_torch(module, per_channel):
    spec = {type(module): per_channel_dynamic_qconfig} if per_channel else {type(module)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # quantize_dynamic swaps children only: wrap a bare layer in a container
        return torch.ao.quantization.quantize_dynamic(nn.Sequential(module), spec, torch.qint8)


@pytest.mark.parametrize(
    "module, shape",
    [
        (nn.Linear(12, 7), (5, 12)),
        (nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3), nn.GELU()), (5, 12)),
        (nn.LSTM(6, 5, num_layers=2, bidirectional=True), (9, 3, 6)),
        (nn.GRU(6, 5, batch_first=True), (3, 9, 6)),
        (nn.LSTMCell(6, 5), (3, 6)),
        (nn.GRUCell(6, 5), (3, 6)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "",
)
def test_float_layers_match_torch(module, shape):
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x))
    expected = (expected[0] if isinstance(expected, tuple) else expected).numpy()
    out = nq.from_torch(module)(x)
    out = out[0] if isinstance(out, tuple) else out
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)  # float32 rounding


@pytest.mark.parametrize("per_channel", [False, True])
def test_torch_dynamic_linear_bit_compatible(per_channel):
    torch.manual_seed(1)
    qmodel = _quantize_torch(nn.Linear(768, 96), per_channel)
    x = torch.randn(33, 768) * 3
    with torch.no_grad():
        expected = qmodel(x).numpy()
    layer = nq.from_torch(qmodel)[0]
    assert layer.scheme is nq.schemes.TORCH
    out = layer(x.numpy())
    assert metrics.sqnr(expected, out) >= 100
    # The int32 accumulators are identical: torch's epilogue applied to numbaq's
    # accumulators lands within float32 rounding of torch's output, while one
    # accumulator off by one would move it by scale_x * scale_w.
    q, qp = nq.dynamic_quantize(x.numpy(), nq.schemes.TORCH)
    acc = (q.astype(np.int64) - int(qp.zero_point)) @ layer.qweight.q.astype(np.int64).T
    rebuilt = acc.astype(np.float32) * np.float32(qp.scale) * layer.qweight.scale + layer.bias
    step = float(qp.scale) * layer.qweight.scale.min()
    assert np.abs(rebuilt - expected).max() < 0.01 * step


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_torch_dynamic_rnn_reproduced(kind, per_channel):
    torch.manual_seed(2)
    module = getattr(nn, kind)(32, 48, num_layers=2, bidirectional=kind == "LSTM")
    qmodel = _quantize_torch(module, per_channel)
    x = torch.randn(64, 3, 32)
    with torch.no_grad():
        expected = qmodel(x)[0].numpy()
    out = nq.from_torch(qmodel)(x.numpy())[0]
    assert metrics.sqnr(expected, out) >= 100


def test_default_scheme_beats_torch_dynamic_lstm():
    """64 steps, the same float weights: numbaq's default (per-channel weights, per-token
    activations) against PyTorch's dynamic LSTM, both measured against float."""
    torch.manual_seed(3)
    lstm = nn.LSTM(64, 128)
    x = torch.randn(64, 4, 64)
    with torch.no_grad():
        reference = lstm(x)[0].numpy()
        torch_int8 = _quantize_torch(lstm, per_channel=False)(x)[0].numpy()
    ours = nq.quantize_dynamic(nq.from_torch(lstm))(x.numpy())[0]
    assert metrics.sqnr(reference, ours) > metrics.sqnr(reference, torch_int8) + 3


def test_unsupported_modules_are_refused():
    with pytest.raises(TypeError, match="cannot convert Conv1d"):
        nq.from_torch(nn.Conv1d(2, 2, 3))
    with pytest.raises(ValueError, match="exact GELU"):
        nq.from_torch(nn.GELU(approximate="tanh"))
