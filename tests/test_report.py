import numpy as np

import numbaq as nq


def _pair(scheme="PER_TOKEN_INT8"):
    rng = np.random.default_rng(0)
    model = nq.Sequential(
        nq.Linear(rng.normal(size=(32, 16)).astype(np.float32), np.zeros(32)),
        nq.ReLU(),
        nq.Linear(rng.normal(size=(8, 32)).astype(np.float32)),
    )
    return model, nq.quantize_dynamic(model, scheme=scheme)


def test_compare_rows_are_the_real_errors():
    model, qmodel = _pair()
    x = np.random.default_rng(1).normal(size=(12, 16)).astype(np.float32)
    table = nq.compare(model, qmodel, x)
    rows = {r["layer"]: r for r in table}
    assert set(rows) == {"(model)", "0", "1", "2"}
    assert np.isclose(rows["(model)"]["sqnr_db"], nq.metrics.sqnr(model(x), qmodel(x)))
    assert rows["0"]["clipped"] == 0.0 and rows["0"]["scale_min"] > 0
    assert "<table>" in table._repr_html_() and "QuantLinear" in repr(table)


def test_trace_follows_the_input():
    _, qmodel = _pair()
    x = np.random.default_rng(2).normal(size=(3, 16)).astype(np.float32)
    small, large = nq.trace(qmodel, x), nq.trace(qmodel, x * 100)
    np.testing.assert_allclose(large["0"][0]["scale"], small["0"][0]["scale"] * 100, rtol=1e-6)
    assert len(small["0"][0]["scale"]) == 3  # one runtime scale per token
    assert "2: 1 calls" in repr(small)


def test_trace_of_an_lstm_counts_every_step():
    qlstm = nq.quantize_dynamic(nq.LSTM(4, 6))
    log = nq.trace(qlstm, np.ones((9, 2, 4), np.float32))[""]
    projections = [c["projection"] for c in log]
    assert projections.count("weight_ih_l0") == 1 and projections.count("weight_hh_l0") == 9


def test_batch_independence_check():
    _, qmodel = _pair()
    _, onnx_model = _pair("ONNX")
    x = (np.random.default_rng(3).normal(size=(4, 16)) * [[1], [10], [0.1], [5]]).astype(np.float32)
    # per-token int8 is independent bit for bit; one per-tensor scale is not. (The float
    # model need not be either: OpenBLAS picks other kernels for M=1 than for M=4.)
    assert nq.batch_independent(qmodel, x)
    assert not nq.batch_independent(onnx_model, x)


def test_compare_counts_clipping_per_block_too():
    """``clipped`` is a number for every granularity (per block: each block is a row of
    its scales), 0 where the scale covers the range (absmax schemes), never NaN."""
    from numbaq.layers import Linear

    rng = np.random.default_rng(0)
    model = Linear(rng.standard_normal((8, 64)).astype(np.float32))
    x = rng.standard_normal((3, 64)).astype(np.float32)
    for scheme in ("BLOCK_Q8_0", "PER_TOKEN_INT8", "ONNX", "TORCH"):
        row = nq.compare(model, nq.quantize_dynamic(model, scheme=scheme), x)[0]
        assert row["clipped"] == 0.0, (scheme, row["clipped"])


def test_compare_says_so_when_the_weights_differ():
    """A quantized model compared with a float model it was not made from: a warning names
    the layers, rather than an error table that silently measures different weights. Its
    own quantized copies (any scheme, per-group and int4 weights) raise no warning."""
    import warnings

    import pytest

    from numbaq.layers import Linear, ReLU, Sequential

    rng = np.random.default_rng(0)

    def net():
        return Sequential(
            Linear(rng.standard_normal((32, 64)).astype(np.float32)),
            ReLU(),
            Linear(rng.standard_normal((4, 32)).astype(np.float32)),
        )

    model, other = net(), net()
    x = rng.standard_normal((3, 64)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kwargs in ({}, {"scheme": "BLOCK_Q8_0"}, {"group_size": 32, "weight_dtype": "int4"}):
            nq.compare(model, nq.quantize_dynamic(model, **kwargs), x)
    with pytest.warns(UserWarning, match=r"weights of \['0', '2'\] are not a quantization"):
        nq.compare(model, nq.quantize_dynamic(other), x)


class _Sqrt(nq.layers.Module):
    """A float layer that gives NaN for negative input (kept as is by quantize_dynamic)."""

    def forward(self, x):
        with np.errstate(invalid="ignore"):
            return np.sqrt(x)


class _Huge(nq.layers.Module):
    def forward(self, x):
        with np.errstate(over="ignore"):
            return np.asarray(x, np.float32) * np.float32(1e38)


def test_compare_names_the_layer_whose_output_is_not_finite():
    """A non-finite layer output is a ValueError in compare's own terms: which model, the
    first such layer in call order and its type, never the metrics' "reference contains
    NaN or Inf" (nor a NaN row)."""
    import pytest

    rng = np.random.default_rng(0)
    linear = nq.Linear(rng.normal(size=(6, 4)).astype(np.float32))
    model = nq.Sequential(linear, _Sqrt(), nq.ReLU())
    x = rng.normal(size=(3, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=r"^compare: float_model's output at layer '1' \(_Sqrt\)"):
        nq.compare(model, nq.quantize_dynamic(model), x)
    try:
        nq.compare(model, nq.quantize_dynamic(model), x)
    except ValueError as err:
        assert "is not finite" in str(err) and "reference" not in str(err)
    # only the quantized model's output is not finite: it is named instead
    quant = nq.Sequential(nq.quantize_dynamic(linear), _Huge(), nq.ReLU())
    plain = nq.Sequential(linear, nq.ReLU(), nq.ReLU())
    with pytest.raises(ValueError, match=r"^compare: quant_model's output at layer '1' \(_Huge\)"):
        nq.compare(plain, quant, x * 1e3)
    # finite outputs: the rows as before
    assert len(nq.compare(plain, nq.quantize_dynamic(plain), x)) == 4
