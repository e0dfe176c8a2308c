import numpy as np
import pytest

import numbaq as nq


def _model():
    rng = np.random.default_rng(0)
    return nq.Sequential(
        nq.Linear(rng.normal(size=(16, 8)).astype(np.float32), np.zeros(16)),
        nq.ReLU(),
        nq.Sequential(nq.Linear(rng.normal(size=(4, 16)).astype(np.float32))),
    )


def test_converts_a_copy_and_leaves_the_input_untouched():
    model = _model()
    before = {k: v.copy() for k, v in model.parameters().items()}
    qmodel = nq.quantize_dynamic(model)
    assert [type(m).__name__ for _, m in model.named_modules()] == [
        "Sequential",
        "Linear",
        "ReLU",
        "Sequential",
        "Linear",
    ]
    assert [type(m).__name__ for _, m in qmodel.named_modules()] == [
        "Sequential",
        "QuantLinear",
        "ReLU",
        "Sequential",
        "QuantLinear",
    ]
    for k, v in model.parameters().items():
        np.testing.assert_array_equal(v, before[k])


def test_exclude_keeps_float_and_layers_filter():
    qmodel = nq.quantize_dynamic(_model(), exclude=["2.0"])
    assert type(qmodel[2][0]) is nq.Linear and type(qmodel[0]) is nq.QuantLinear
    only_lstm = nq.quantize_dynamic(_model(), layers=(nq.LSTM,))
    assert type(only_lstm[0]) is nq.Linear


def test_options_reach_the_layers():
    qmodel = nq.quantize_dynamic(_model(), scheme="ONNX", per_channel=False, weight_dtype="int4")
    layer = qmodel[0]
    assert layer.scheme is nq.schemes.ONNX
    assert layer.qweight.scheme.granularity == "tensor" and layer.qweight.q.max() <= 7


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"exclude names \['nope'\]"):
        nq.quantize_dynamic(_model(), exclude=["nope"])
    with pytest.raises(ValueError, match="cannot quantize layer types"):
        nq.quantize_dynamic(_model(), layers=(nq.ReLU,))
    with pytest.raises(TypeError, match=r"numbaq\.from_torch"):
        nq.quantize_dynamic(object())


def test_progress_bar_is_optional():
    pytest.importorskip("tqdm", reason="tqdm is not installed (optional progress bar)")
    nq.quantize_dynamic(_model(), progress=True)


def test_int4_per_group_option():
    qmodel = nq.quantize_dynamic(_model(), weight_dtype="int4", group_size=8)
    assert qmodel[0].qweight.group_size == 8 and qmodel[0].qweight.q.max() <= 7
    assert "per group of 8" in repr(qmodel)
    with pytest.raises(ValueError, match="Linear layers only"):
        nq.quantize_dynamic(nq.LSTM(8, 4), group_size=8)
