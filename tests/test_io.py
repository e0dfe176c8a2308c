import numpy as np
import pytest

import numbaq as nq


def _models():
    rng = np.random.default_rng(0)
    mlp = nq.Sequential(
        nq.Linear(rng.normal(size=(8, 4)).astype(np.float32), np.ones(8)),
        nq.GELU(),
        nq.Linear(rng.normal(size=(3, 8)).astype(np.float32)),
    )
    lstm = nq.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True)
    return {
        "mlp": (mlp, (6, 4)),
        "qmlp": (nq.quantize_dynamic(mlp, scheme="ONNX", per_channel=False), (6, 4)),
        "lstm": (lstm, (2, 7, 4)),
        "qlstm": (nq.quantize_dynamic(lstm, scheme="TORCH"), (2, 7, 4)),
        "qgru": (nq.quantize_dynamic(nq.GRU(4, 3)), (7, 2, 4)),
        "int4 groups": (nq.quantize_dynamic(mlp, weight_dtype="int4", group_size=4), (6, 4)),
        "cell": (nq.quantize_dynamic(nq.LSTMCell(4, 6)), (2, 4)),
    }


def _first(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("name", list(_models()))
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_round_trip_is_bit_exact(tmp_path, name, suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors", reason="safetensors is not installed (optional)")
    model, shape = _models()[name]
    back = nq.load(nq.save(model, tmp_path / f"m{suffix}"))
    assert repr(back) == repr(model)
    for key, value in model.parameters().items():
        np.testing.assert_array_equal(back.parameters()[key], value)
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    np.testing.assert_array_equal(_first(back(x)), _first(model(x)))


def test_bad_paths_and_modules(tmp_path):
    with pytest.raises(ValueError, match=r"\.npz or \.safetensors"):
        nq.save(nq.ReLU(), tmp_path / "m.pt")

    class Custom(nq.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="cannot store a Custom"):
        nq.save(Custom(), tmp_path / "m.npz")
