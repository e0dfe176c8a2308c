"""numbaq.torch: any PyTorch model with its Linear and recurrent layers on numbaq."""

import copy
import io
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

import numbaq as nq
from numbaq import metrics

torch = pytest.importorskip("torch", reason="numbaq.torch needs PyTorch (pip install torch)")
nqt = pytest.importorskip("numbaq.torch")
nn = torch.nn


def _ao(model, types):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in 2.13
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), types, torch.qint8)


def _run(model, *args, **kwargs):
    with torch.inference_mode():
        return model(*args, **kwargs)


class TextModel(nn.Module):
    """An embedding, a 2-layer LSTM and a head: the custom-module case of the issue."""

    def __init__(self, vocab=50, dim=32, hidden=48, classes=5):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, hidden, num_layers=2, batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, classes))

    def forward(self, ids):
        out, _ = self.lstm(self.embed(ids))
        return self.head(self.norm(out))


@pytest.fixture(scope="module")
def text_model():
    torch.manual_seed(0)
    return TextModel().eval()


def test_import_numbaq_does_not_import_torch():
    code = "import sys, numbaq; assert 'torch' not in sys.modules, 'torch was imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_without_torch_numbaq_imports_and_numbaq_torch_says_how_to_get_it():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # as if torch were not installed
        "import numbaq\n"
        "try:\n"
        "    import numbaq.torch\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "numbaq.torch needs PyTorch; the CPU build is enough: pip install torch --index-url" in (
        done.stdout
    )


def test_linear_any_leading_shape_runs_numbaq_exactly():
    torch.manual_seed(1)
    linear = nn.Linear(24, 16)
    qlinear = nqt.quantize_dynamic(linear)
    assert isinstance(qlinear, nqt.QuantLinear)
    expected_layer = nq.quantize_dynamic(nq.from_torch(linear))
    for shape in [(24,), (5, 24), (2, 3, 24), (2, 1, 3, 24)]:
        x = torch.randn(shape)
        y = _run(qlinear, x)
        assert y.shape == shape[:-1] + (16,) and y.dtype == torch.float32
        np.testing.assert_array_equal(y.numpy(), expected_layer(x.numpy()))
        assert metrics.sqnr(linear(x).detach().numpy(), y.numpy()) > 30
    with torch.no_grad():
        np.testing.assert_allclose(
            qlinear.weight, linear.weight, atol=float(linear.weight.abs().max()) / 254
        )
    assert qlinear.in_features == 24 and qlinear.out_features == 16


def test_linear_zero_copy_in_and_out():
    qlinear = nqt.quantize_dynamic(nn.Linear(32, 8))
    seen = []
    qlinear.numbaq._recorder = lambda module, args, out: seen.append((args[0], out))
    x = torch.randn(4, 32)
    y = _run(qlinear, x)
    inner_in, inner_out = seen[0]
    assert inner_in.ctypes.data == x.data_ptr()  # the numbaq layer read x's own memory
    assert y.data_ptr() == inner_out.ctypes.data  # and the tensor is its output array


def test_input_rules_are_clear_errors():
    linear = nn.Linear(8, 4)
    qlinear = nqt.quantize_dynamic(linear)
    x = torch.randn(3, 8)
    with pytest.raises(RuntimeError, match=r"inference only.*torch.no_grad"):
        qlinear(x.requires_grad_())
    with torch.no_grad():  # the same input without grad mode: fine
        assert qlinear(x).shape == (3, 4)
    with pytest.raises(ValueError, match=r"device meta.*cpu"):
        _run(qlinear, torch.empty(3, 8, device="meta"))
    with pytest.raises(TypeError, match=r"floating-point tensor.*int64"):
        _run(qlinear, torch.ones(3, 8, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"torch.Tensor.*ndarray"):
        _run(qlinear, np.ones((3, 8), np.float32))
    with pytest.raises(ValueError, match=r"\(\.\.\., 8\)"):
        _run(qlinear, torch.ones(3, 7))
    x64 = torch.randn(3, 8, dtype=torch.float64)
    y64 = _run(qlinear, x64)  # computed in float32, returned in the input's dtype
    assert y64.dtype == torch.float64
    np.testing.assert_array_equal(y64.float().numpy(), _run(qlinear, x64.float()).numpy())
    wide = torch.randn(8, 6)
    np.testing.assert_array_equal(
        _run(qlinear, wide.T).numpy(), _run(qlinear, wide.T.contiguous()).numpy()
    )
    assert _run(qlinear, torch.ones(0, 8)).shape == (0, 4)
    with pytest.raises(TypeError, match=r"CPU int8/float32"):
        copy.deepcopy(qlinear).half()


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"batch_first": True},
        {"num_layers": 2, "bidirectional": True},
        {"num_layers": 2, "batch_first": True, "bias": False},
    ],
)
def test_recurrent_follows_pytorch_arguments(kind, options):
    torch.manual_seed(2)
    rnn = getattr(nn, kind)(12, 20, **options).eval()
    qrnn = nqt.quantize_dynamic(rnn)
    assert type(qrnn).__name__ == f"TorchQuant{kind}"  # a torch module, by its name
    assert (qrnn.hidden_size, qrnn.num_layers) == (20, options.get("num_layers", 1))
    numbaq_rnn = nq.quantize_dynamic(nq.from_torch(rnn))
    layers = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
    x = torch.randn((3, 6, 12) if options.get("batch_first") else (6, 3, 12))
    h0 = torch.randn(layers, 3, 20)
    hx = (h0, torch.randn(layers, 3, 20)) if kind == "LSTM" else h0
    h1 = torch.randn(layers, 20)
    unbatched_hx = (h1, torch.randn(layers, 20)) if kind == "LSTM" else h1
    # batched, with states, unbatched (seq, features), unbatched with states
    cases = [(x, None), (x, hx), (x[0], None), (x[0], unbatched_hx)]
    for inp, state in cases:
        ours, ours_state = _run(qrnn, inp, state)
        ref, ref_state = _run(rnn, inp, state)
        assert ours.shape == ref.shape
        np.testing.assert_array_equal(ours.numpy(), numbaq_rnn(inp.numpy(), _np(state))[0])
        assert metrics.sqnr(ref.numpy(), ours.numpy()) > 30
        for a, b in zip(_flat(ours_state), _flat(ref_state)):
            assert a.shape == b.shape and metrics.sqnr(b.numpy(), a.numpy()) > 25


def _np(state):
    if state is None:
        return None
    return tuple(s.numpy() for s in state) if isinstance(state, tuple) else state.numpy()


def _flat(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell"])
def test_cells(kind):
    torch.manual_seed(3)
    cell = getattr(nn, kind)(10, 14)
    model = nn.Sequential(nn.Linear(10, 10), cell)  # at depth, inside a container
    qmodel = nqt.quantize_dynamic(model)
    qcell = qmodel[1]
    assert type(qcell).__name__ == f"TorchQuant{kind}" and qcell.hidden_size == 14
    x, h = torch.randn(4, 10), torch.randn(4, 14)
    state = (h, torch.randn(4, 14)) if kind == "LSTMCell" else h
    for inp, hx in [(x, None), (x, state), (x[0], None)]:
        ours, ref = _flat(_run(qcell, inp, hx)), _flat(_run(cell, inp, hx))
        for a, b in zip(ours, ref):
            assert a.shape == b.shape and metrics.sqnr(b.numpy(), a.numpy()) > 30


def test_custom_model_against_fp32_and_torch_ao(text_model):
    qmodel = nqt.quantize_dynamic(text_model)
    names = {n: type(m).__name__ for n, m in qmodel.named_modules()}
    assert names["lstm"] == "TorchQuantLSTM" and names["head.0"] == "TorchQuantLinear"
    assert names["embed"] == "Embedding" and names["norm"] == "LayerNorm"
    assert isinstance(text_model.lstm, nn.LSTM)  # the original is untouched
    ao = _ao(text_model, {nn.LSTM, nn.Linear})
    ids = torch.randint(0, 50, (8, 30))
    ref, ours, theirs = (_run(m, ids).numpy() for m in (text_model, qmodel, ao))
    ours_db, theirs_db = metrics.sqnr(ref, ours), metrics.sqnr(ref, theirs)
    assert ours_db > 30 and ours_db > theirs_db + 3, (ours_db, theirs_db)
    # per-token scales: each sequence gets the same output alone as in the batch
    np.testing.assert_array_equal(_run(qmodel, ids[2:3]).numpy(), ours[2:3])


def test_exclude_names_as_pytorch_prints_them(text_model):
    qmodel = nqt.quantize_dynamic(text_model, exclude=["head"])
    assert type(qmodel.lstm).__name__ == "TorchQuantLSTM"
    assert all(type(m) is not nqt.QuantLinear for m in qmodel.head)
    qmodel = nqt.quantize_dynamic(text_model, exclude="head.2")  # one name, as a string
    assert isinstance(qmodel.head[2], nn.Linear) and isinstance(qmodel.head[0], nqt.QuantLinear)
    with pytest.raises(ValueError, match=r"'head.3'.*did you mean 'head.2'"):
        nqt.quantize_dynamic(text_model, exclude=["head.3"])
    only_lstm = nqt.quantize_dynamic(text_model, layers=[nn.LSTM])
    assert isinstance(only_lstm.head[0], nn.Linear)
    with pytest.raises(ValueError, match=r"cannot be replaced"):
        nqt.quantize_dynamic(text_model, layers=[nn.Conv1d])


def test_bad_models_are_clear_errors():
    with pytest.raises(TypeError, match=r"numbaq model; use numbaq.quantize_dynamic"):
        nqt.quantize_dynamic(nq.Linear(np.eye(4)))
    with pytest.raises(TypeError, match=r"torch.nn.Module"):
        nqt.quantize_dynamic("model")
    with pytest.raises(ValueError, match=r"proj_size.*exclude=\['1'\]"):
        nqt.quantize_dynamic(nn.Sequential(nn.Linear(4, 4), nn.LSTM(4, 8, proj_size=2)))
    qlstm = nqt.quantize_dynamic(nn.LSTM(4, 8))
    packed = nn.utils.rnn.pack_sequence([torch.randn(3, 4), torch.randn(2, 4)])
    with pytest.raises(TypeError, match=r"PackedSequence.*pad_packed_sequence"):
        _run(qlstm, packed)


def test_shared_layers_stay_shared():
    shared = nn.Linear(6, 6)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    qmodel = nqt.quantize_dynamic(model)
    assert qmodel[0] is qmodel[2] and isinstance(qmodel[0], nqt.QuantLinear)


def test_state_dict_round_trip_is_bit_exact(text_model):
    qmodel = nqt.quantize_dynamic(text_model, scheme="PER_TOKEN_INT8")
    ids = torch.randint(0, 50, (3, 11))
    expected = _run(qmodel, ids).numpy()
    buffer = io.BytesIO()
    torch.save(qmodel.state_dict(), buffer)
    torch.manual_seed(123)  # other float weights, and another scheme, to be overwritten
    fresh = nqt.quantize_dynamic(TextModel().eval())
    assert not np.array_equal(_run(fresh, ids).numpy(), expected)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer))  # weights_only: plain types only
    assert fresh.head[0].scheme.name == "PER_TOKEN_INT8"
    np.testing.assert_array_equal(_run(fresh, ids).numpy(), expected)
    state = qmodel.state_dict()
    assert state["head.0.weight_int8"].dtype == torch.int8
    state["lstm._extra_state"] = {"type": "QuantLinear"}
    with pytest.raises(ValueError, match=r"holds a QuantLinear, not a numbaq QuantLSTM"):
        fresh.load_state_dict(state)


def test_pickle_and_torch_save_whole_model(text_model, tmp_path):
    qmodel = nqt.quantize_dynamic(text_model)
    ids = torch.randint(0, 50, (2, 9))
    expected = _run(qmodel, ids).numpy()  # packs the weights for the GEMM
    data = pickle.dumps(qmodel)
    int8_bytes = sum(b.numel() * b.element_size() for b in qmodel.buffers())
    float_bytes = sum(p.numel() * p.element_size() for p in qmodel.parameters())
    assert len(data) < 1.2 * (int8_bytes + float_bytes) + 50_000  # no packed copies
    for copy_ in (pickle.loads(data), copy.deepcopy(qmodel)):
        np.testing.assert_array_equal(_run(copy_, ids).numpy(), expected)
    torch.save(qmodel, tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    np.testing.assert_array_equal(_run(loaded, ids).numpy(), expected)


def test_numbaq_save_of_a_layer(tmp_path):
    qlstm = nqt.quantize_dynamic(nn.LSTM(5, 7, num_layers=2))
    x = torch.randn(4, 2, 5)
    path = nq.save(qlstm.numbaq, tmp_path / "lstm.npz")
    np.testing.assert_array_equal(nq.load(path)(x.numpy())[0], _run(qlstm, x)[0].numpy())


def test_compare_and_trace_accept_torch_models(text_model):
    qmodel = nqt.quantize_dynamic(text_model)
    ids = torch.randint(0, 50, (4, 10))
    table = nq.compare(text_model, qmodel, ids)
    rows = {r["layer"]: r for r in table}
    assert rows["lstm"]["type"] == "QuantLSTM" and rows["head.0"]["type"] == "QuantLinear"
    assert rows["embed"]["sqnr_db"] == np.inf  # still float: identical
    final = metrics.sqnr(_run(text_model, ids).numpy(), _run(qmodel, ids).numpy())
    assert np.isclose(rows["(model)"]["sqnr_db"], final)
    assert rows["head.0"]["scale_min"] > 0 and 0 <= rows["head.0"]["clipped"] <= 1
    trace = nq.trace(qmodel, ids)
    assert set(trace) == {"lstm", "head.0", "head.2"}
    assert len(trace["head.0"]) == 1 and trace["head.0"][0]["scale"].shape == (40,)
    assert qmodel.head[0].trace_log is None  # switched off again


# ------------------------------------------------------------------ transformers BERT
@pytest.fixture(scope="module")
def bert():
    transformers = pytest.importorskip(
        "transformers", reason="the BertModel tests need transformers (the test extra)"
    )
    torch.manual_seed(4)
    config = transformers.BertConfig(
        vocab_size=200,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=64,
    )
    model = transformers.BertModel(config).eval()
    lengths = [16, 9, 3, 12]
    ids = torch.randint(1, 200, (len(lengths), max(lengths)))
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    ids[mask == 0] = 0  # padding
    return model, ids, mask


def _token_cosines(ref, out, mask):
    keep = mask.numpy().astype(bool)
    a, b = ref[keep], out[keep]
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_bert_padded_batch_against_fp32_and_torch_ao(bert):
    model, ids, mask = bert
    qmodel = nqt.quantize_dynamic(model)
    linears = [n for n, m in model.named_modules() if type(m) is nn.Linear]
    assert len(linears) == 2 * 6 + 1  # 6 per layer and the pooler
    assert all(isinstance(qmodel.get_submodule(n), nqt.QuantLinear) for n in linears)
    ao = _ao(model, {nn.Linear})
    ref, ours, theirs = (_run(m, ids, attention_mask=mask) for m in (model, qmodel, ao))
    cos = _token_cosines(ref.last_hidden_state.numpy(), ours.last_hidden_state.numpy(), mask)
    cos_ao = _token_cosines(ref.last_hidden_state.numpy(), theirs.last_hidden_state.numpy(), mask)
    assert cos.mean() >= 0.995 and cos.min() >= 0.98, (cos.mean(), cos.min())
    assert cos.mean() > cos_ao.mean()
    assert metrics.sqnr(ref.pooler_output.numpy(), ours.pooler_output.numpy()) > 25
    alone = _run(qmodel, ids[1:2, :9], attention_mask=mask[1:2, :9]).last_hidden_state
    # numbaq's rows do not depend on their batch-mates; torch's float attention and
    # LayerNorm differ by an ulp or so with another padded length
    np.testing.assert_allclose(alone.numpy()[0], ours.last_hidden_state.numpy()[1, :9], atol=1e-5)


def test_bert_save_load_compare(bert, tmp_path):
    transformers = pytest.importorskip("transformers", reason="needs transformers")
    model, ids, mask = bert
    qmodel = nqt.quantize_dynamic(model, exclude=["pooler"])
    assert isinstance(qmodel.pooler.dense, nn.Linear)
    expected = _run(qmodel, ids, attention_mask=mask).last_hidden_state.numpy()
    torch.save(qmodel.state_dict(), tmp_path / "bert.pt")
    fresh = nqt.quantize_dynamic(transformers.BertModel(model.config).eval(), exclude=["pooler"])
    fresh.load_state_dict(torch.load(tmp_path / "bert.pt"))
    got = _run(fresh, ids, attention_mask=mask).last_hidden_state.numpy()
    np.testing.assert_array_equal(got, expected)
    rows = {r["layer"]: r for r in nq.compare(model, qmodel, ids, attention_mask=mask)}
    query = "encoder.layer.0.attention.self.query"
    assert rows[query]["type"] == "QuantLinear" and rows[query]["sqnr_db"] > 25
    assert rows["embeddings"]["sqnr_db"] == np.inf


def test_bfloat16_models_quantize_and_run():
    """A bfloat16 model (as many checkpoints load) quantizes like its float32 copy: the
    weights go through float32 exactly (numpy has no bfloat16), and the output keeps the
    input's dtype."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    x = torch.randn(3, 16)
    want = _run(nqt.quantize_dynamic(copy.deepcopy(model)), x)
    got = _run(nqt.quantize_dynamic(model.to(torch.bfloat16)), x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16
    # bfloat16 weights are float32 weights rounded to 8 bits of mantissa: close, not equal
    assert metrics.cosine(want.numpy(), got.float().numpy()) > 0.99


def test_recurrent_modules_take_flatten_parameters():
    """Code written for torch's LSTM/GRU calls ``flatten_parameters()`` (a no-op on the
    CPU); numbaq's modules take it too and compute the same afterwards."""
    for cls in (nn.LSTM, nn.GRU):
        q = nqt.quantize_dynamic(nn.Sequential(cls(4, 3)))[0]
        x = torch.randn(5, 2, 4)
        before = _run(q, x)[0]
        assert q.flatten_parameters() is None
        torch.testing.assert_close(_run(q, x)[0], before, rtol=0, atol=0)
