"""Layer kinds: each class declares what the converters and the file format need, and the
registry (``numbaq.layers.LAYER_KINDS``) is the only list of kinds they read."""

import importlib

import numpy as np
import pytest

import numbaq as nq
from numbaq import convert, io
from numbaq.layers import LAYER_KINDS, Module, quantized_twins

RNG = np.random.default_rng(0)
W = RNG.standard_normal((6, 4)).astype(np.float32)

# One instance of every numbaq layer kind, and an input for it. A new kind fails
# test_every_kind_has_an_example until it gets one here.
EXAMPLES = {
    "Sequential": (lambda: nq.Sequential(nq.Linear(W), nq.ReLU()), (3, 4)),
    "ReLU": (nq.ReLU, (3, 4)),
    "GELU": (nq.GELU, (3, 4)),
    "Tanh": (nq.Tanh, (3, 4)),
    "Sigmoid": (nq.Sigmoid, (3, 4)),
    "Linear": (lambda: nq.Linear(W, np.ones(6), activation="gelu"), (3, 4)),
    "QuantLinear": (lambda: nq.QuantLinear.from_float(nq.Linear(W, np.ones(6))), (3, 4)),
    "LSTM": (lambda: nq.LSTM(4, 5, num_layers=2, bidirectional=True), (7, 2, 4)),
    "QuantLSTM": (lambda: nq.QuantLSTM(nq.LSTM(4, 5, batch_first=True)), (2, 7, 4)),
    "GRU": (lambda: nq.GRU(4, 5, bias=False), (7, 2, 4)),
    "QuantGRU": (lambda: nq.QuantGRU(nq.GRU(4, 5)), (7, 2, 4)),
    "LSTMCell": (lambda: nq.LSTMCell(4, 5), (2, 4)),
    "QuantLSTMCell": (lambda: nq.QuantLSTMCell(nq.LSTMCell(4, 5)), (2, 4)),
    "GRUCell": (lambda: nq.GRUCell(4, 5, bias=False), (2, 4)),
    "QuantGRUCell": (lambda: nq.QuantGRUCell(nq.GRUCell(4, 5)), (2, 4)),
}


def _numbaq_kinds():
    return {n: k for n, k in LAYER_KINDS.items() if k.__module__.startswith("numbaq.")}


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def test_every_kind_has_an_example():
    assert set(EXAMPLES) == set(_numbaq_kinds())


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_kind_round_trips_through_save_and_load(tmp_path, name):
    make, shape = EXAMPLES[name]
    layer = make()
    assert type(layer) is LAYER_KINDS[name]
    back = nq.load(nq.save(layer, tmp_path / "m.npz"))
    assert type(back) is type(layer) and repr(back) == repr(layer)
    assert back.config() == layer.config()
    for key, value in layer.parameters().items():
        np.testing.assert_array_equal(back.parameters()[key], value)
    x = RNG.standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(_first(back(x)), _first(layer(x)))


@pytest.mark.parametrize("kind", list(quantized_twins().values()), ids=lambda k: k.__name__)
def test_quantize_dynamic_finds_each_quantized_kind_by_its_float_twin(kind):
    float_layer = EXAMPLES[kind.float_twin.__name__][0]()
    assert type(nq.quantize_dynamic(float_layer)) is kind
    assert convert.QUANTIZED[kind.float_twin] == kind.from_float


def test_no_kind_table_outside_the_kinds():
    """The converters' views are what the kinds declare, nothing more."""
    kinds = _numbaq_kinds().values()
    assert quantized_twins() == {k.float_twin: k for k in kinds if k.float_twin}
    assert set(convert.DEFAULT_LAYERS) == {k.float_twin for k in kinds if k.float_twin}
    for name in ("_FLOAT_RNN", "_QUANT_RNN", "_CELLS", "_QUANT_CELLS", "_ELEMENTWISE", "_ALL"):
        assert not hasattr(io, name)


def test_a_kind_name_is_taken_once():
    with pytest.raises(TypeError, match="a layer kind named 'Linear' exists already"):

        class Linear(Module, kind=True):  # another class under a stored name
            pass

    assert LAYER_KINDS["Linear"] is nq.Linear


def test_subclasses_are_not_kinds_unless_they_say_so(tmp_path):
    class MyLinear(nq.Linear):
        pass

    assert "MyLinear" not in LAYER_KINDS
    with pytest.raises(TypeError, match="cannot store a MyLinear"):
        nq.save(MyLinear(W), tmp_path / "m.npz")


# ------------------------------------------------------------------ the torch side
def test_torch_registries_read_the_declarations():
    torch = pytest.importorskip("torch", reason="torch is not installed (optional)")
    import numbaq.torch as nqt
    from numbaq.interop import torch_twins

    twins = torch_twins()
    for kind in _numbaq_kinds().values():
        for qualified in kind.torch_twins:
            module, _, attr = qualified.rpartition(".")
            assert twins[getattr(importlib.import_module(module), attr)] is kind
    expected = {
        torch_cls: quant.__name__
        for torch_cls, float_kind in twins.items()
        for quant in [quantized_twins().get(float_kind)]
        if quant is not None
    }
    assert {t: w.numbaq_kind for t, w in nqt.LAYERS.items()} == expected
    assert set(expected) == {
        torch.nn.Linear,
        torch.nn.LSTM,
        torch.nn.GRU,
        torch.nn.LSTMCell,
        torch.nn.GRUCell,
    }
    # the old names of numbaq.torch's modules still import
    assert nqt.QuantLinear is nqt.TorchQuantLinear and nqt.QuantLSTM is nqt.TorchQuantLSTM


# ------------------------------------------------------------------ a kind of one's own
try:
    import torch as _torch

    class TorchDense(_torch.nn.Module):
        """A torch layer numbaq has no kind for, until the toy kind below declares it."""

        def __init__(self, weight, gain):
            super().__init__()
            self.weight = _torch.nn.Parameter(_torch.from_numpy(weight))
            self.gain = gain

        def forward(self, x):
            return self.gain * (x @ self.weight.T)

except ImportError:  # pragma: no cover - without torch
    TorchDense = None


@pytest.fixture
def toy_kinds():
    """A float kind ``ToyDense`` (``y = gain * x W^T``) and its dynamically quantized twin,
    declared as a new layer kind would be, with no numbaq module edited; unregistered
    after the test."""

    class ToyDense(Module, kind=True):
        config_fields = ("gain",)
        torch_twins = (f"{__name__}.TorchDense",)

        def __init__(self, weight, gain=1.0):
            super().__init__()
            self._param("weight", np.asarray(weight, np.float32))
            self.gain = gain

        def forward(self, x):
            return np.float32(self.gain) * (np.asarray(x, np.float32) @ self.weight.T)

        @classmethod
        def from_saved(cls, config, arrays, **stored):
            return cls(arrays["weight"], **config)

        @classmethod
        def from_torch(cls, module, scheme=None, convert=None):
            return cls(module.weight.detach().numpy().copy(), module.gain)

    class QuantToyDense(Module, kind=True):
        quantized = True
        float_twin = ToyDense
        config_fields = ("gain",)

        def __init__(self, qweight, scheme=None, gain=1.0):
            super().__init__()
            self.qweights = {"weight": qweight}
            self.scheme = nq.schemes.resolve(scheme)
            self._param("weight_int8", qweight.q)
            self._param("weight_scale", qweight.scale)
            self.gain = gain
            self.trace_log = None

        def forward(self, x):
            y = nq.quantized_linear(x, self.qweights["weight"], scheme=self.scheme)
            return np.float32(self.gain) * y

        @classmethod
        def from_float(cls, layer, scheme=None, per_channel=True, dtype="int8", group_size=None):
            qweight = nq.quantize_weight(layer.weight, per_channel=per_channel, dtype=dtype)
            return cls(qweight, scheme, layer.gain)

        @classmethod
        def from_saved(cls, config, arrays, weights=None, scheme=None, activation=None):
            return cls(weights["weight"], scheme, **config)

    yield ToyDense, QuantToyDense
    for name in ("ToyDense", "QuantToyDense"):
        LAYER_KINDS.pop(name, None)


def test_a_new_kind_is_picked_up_by_convert_save_and_load(tmp_path, toy_kinds):
    ToyDense, QuantToyDense = toy_kinds
    model = nq.Sequential(ToyDense(W, gain=0.5), nq.ReLU())
    qmodel = nq.quantize_dynamic(model, scheme="PER_TOKEN_INT8")
    assert [type(m) for m in qmodel.children()] == [QuantToyDense, nq.ReLU]
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    assert nq.metrics.sqnr(model(x), qmodel(x)) > 30
    for m in (model, qmodel):
        back = nq.load(nq.save(m, tmp_path / "m.npz"))
        assert [type(c) for c in back.children()] == [type(c) for c in m.children()]
        assert back[0].gain == 0.5
        np.testing.assert_array_equal(back(x), m(x))
    assert nq.load(tmp_path / "m.npz")[0].scheme == qmodel[0].scheme


def test_a_new_kind_is_picked_up_by_from_torch_and_numbaq_torch(tmp_path, toy_kinds):
    torch = pytest.importorskip("torch", reason="torch is not installed (optional)")
    import numbaq.torch as nqt

    ToyDense, QuantToyDense = toy_kinds
    net = torch.nn.Sequential(TorchDense(W, 0.5), torch.nn.ReLU())
    model = nq.from_torch(net)
    assert type(model[0]) is ToyDense and model[0].gain == 0.5
    qnet = nqt.quantize_dynamic(net)
    wrapper = qnet[0]
    assert type(wrapper).__name__ == "TorchQuantToyDense" and wrapper.gain == 0.5
    assert type(wrapper.numbaq) is QuantToyDense
    x = torch.from_numpy(RNG.standard_normal((3, 4)).astype(np.float32))
    with torch.inference_mode():
        got = qnet(x).numpy()
        fresh = nqt.quantize_dynamic(net)
        fresh.load_state_dict(qnet.state_dict())
        np.testing.assert_array_equal(fresh(x).numpy(), got)
    np.testing.assert_array_equal(got, nq.quantize_dynamic(model)(x.numpy()))
