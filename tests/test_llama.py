"""numbaq.models.llama: the decoder against transformers' LlamaForCausalLM and against its
own pieces (reference twins), the KV cache, ragged batches, generation and bad checkpoints.

Most tests use a tiny random Llama (2 layers, grouped-query attention) that transformers
writes to disk; the real SmolLM2 checkpoint is in ``test_llama_real.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import numbaq
from numbaq import reference as ref
from numbaq.kernels import decoder as kd
from numbaq.models import llama, llama_layers

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = 97


def _cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(directory, transformers model) of a random Llama saved as safetensors."""
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        max_position_embeddings=128,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        eos_token_id=3,
    )
    model = transformers.LlamaForCausalLM(cfg).eval()
    path = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(path)
    return path, model


@pytest.fixture(scope="module")
def ours(tiny):
    return llama.load(tiny[0])


def _hf_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor(np.asarray(ids))[None]).logits[0].numpy()


IDS = np.random.default_rng(1).integers(0, VOCAB, 40)


def test_fp32_logits_match_transformers(tiny, ours):
    """The goal's bound, cosine >= 0.99999 per token (float32 both, different sum orders)."""
    got = ours(IDS)
    want = _hf_logits(tiny[1], IDS)
    assert got.shape == (IDS.size, VOCAB) and got.dtype == np.float32
    assert _cosine(got, want).min() >= 0.99999
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_greedy_generation_matches_transformers(tiny, ours):
    prompt = IDS[:6]
    got = ours.generate(prompt, max_new_tokens=12, stop=())
    with torch.no_grad():
        out = tiny[1].generate(
            torch.tensor(prompt)[None], max_new_tokens=12, do_sample=False, eos_token_id=None
        )
    assert got.tolist() == out[0, prompt.size :].tolist()
    assert ours.stats["new_tokens"] == 12 and ours.stats["prompt_tokens"] == 6


@pytest.mark.parametrize("quantized", [False, True, "q4_1"])
def test_incremental_decode_equals_full_forward(ours, quantized):
    """Token by token through the KV cache gives the logits of one full forward: the same
    bits for the int8 model (its integer GEMM's rows are independent); the float model's
    Linears are numpy's BLAS, whose sums differ in order between 1 row and many."""
    model = _model(ours, quantized)
    full = model(IDS)
    cache = model.new_cache(1, 3)  # grows while decoding
    parts = [model.step([IDS[:5]], cache)]
    parts += [model.step([IDS[i : i + 1]], cache) for i in range(5, IDS.size)]
    _same(np.concatenate(parts), full, bool(quantized))


def _model(ours, quantized):
    """The float model, its int8 twin (True) or its 4-bit twin ("q4_1")."""
    if quantized == "q4_1":
        return llama.quantize(ours, weights="q4_1")
    return numbaq.quantize_dynamic(ours, progress=False) if quantized else ours


def _same(got, want, exact):
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("quantized", [False, True, "q4_1"])
def test_ragged_batch_is_batch_independent(ours, quantized):
    """Each sequence of a ragged batch gets the logits it gets alone, at prefill and
    decode (bit for bit when quantized, see above)."""
    quantized, model = bool(quantized), _model(ours, quantized)
    prompts = [IDS[:7], IDS[10:13], IDS[20:31]]
    cache = model.new_cache(3, 16)
    batch = model.step(prompts, cache)
    _same(batch, np.concatenate([model(p) for p in prompts]), quantized)
    nxt = model.step([IDS[:1], np.zeros(0, np.int64), IDS[2:4]], cache)
    want = [
        model(np.concatenate([prompts[0], IDS[:1]]))[-1:],
        model(np.concatenate([prompts[2], IDS[2:4]]))[-2:],
    ]
    _same(nxt, np.concatenate(want), quantized)
    last = model.step([IDS[5:6], IDS[6:8], np.zeros(0, np.int64)], cache, last_only=True)
    assert last.shape == (2, VOCAB)


@pytest.mark.parametrize("quantized", [True, "q4_1"])
def test_threads_do_not_change_bits(ours, quantized):
    numba = pytest.importorskip("numba")
    q = _model(ours, quantized)
    many = q(IDS)
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = q(IDS)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(one, many)


SCHEMES = ["ONNX", "TORCH", "BLOCK_Q8_0", "PER_TOKEN_INT8", "PER_TOKEN_UINT7", "SMOOTHQUANT"]


@pytest.mark.parametrize(
    "kwargs",
    [{}, *({"scheme": s} for s in SCHEMES), {"scheme": "LLM_INT8", "threshold": 0.5}]
    + [{"scheme": "BLOCK_Q8_0", "group_size": 32}, {"weight_dtype": "int4", "group_size": 32}],
)
def test_quantized_close_to_float(ours, kwargs):
    """Every scheme runs the decoder (the fused producers where the Linear is a plain int8
    one, the Linear's own forward otherwise)."""
    q = numbaq.quantize_dynamic(ours, progress=False, **kwargs)
    bound = 0.95 if kwargs.get("weight_dtype") == "int4" else 0.999  # int4: 16 levels
    assert _cosine(q(IDS), ours(IDS)).min() > bound


@pytest.mark.parametrize(
    "kwargs, hook, off",
    [
        # the decoder runs a BLOCK_Q8_0 Linear's kernel itself (to replay it): the bits of
        # the Linear's own forward
        ({"scheme": "BLOCK_Q8_0", "group_size": 32}, "block_target", False),
        # the codes RMSNorm, attention and SwiGLU write for the next Linear are the ones
        # the Linear makes itself
        ({}, "quant_target", None),
        # 4-bit gate/up pairs write SwiGLU's product in their store: the bits of the
        # Linear's own forward, then the SwiGLU pass; and its own kernel call, not replayed
        ({"weights": "q4_1"}, "swiglu_target", False),
        ({"weights": "q4_1"}, "block_target", False),
    ],
)
def test_fused_paths_equal_the_linears_own_forward(ours, monkeypatch, kwargs, hook, off):
    if kwargs.get("weights"):
        q = llama.quantize(ours, **kwargs)
        assert q.layers[0].gate_up.qweight.pairs
    else:
        q = numbaq.quantize_dynamic(ours, progress=False, **kwargs)
    fused = q(IDS), _decode_steps(q)  # a prefill, and one-row steps
    monkeypatch.setattr(llama_layers, hook, lambda linear: off)
    np.testing.assert_array_equal(fused[0], q(IDS))
    np.testing.assert_array_equal(fused[1], _decode_steps(q))


def _decode_steps(model) -> np.ndarray:
    cache = model.new_cache(1, 64)
    steps = [model.step([IDS[:4]], cache)]
    steps += [model.step([IDS[i : i + 1]], cache) for i in range(4, 12)]
    return np.concatenate(steps)


def test_q4_model_matches_the_reference_of_its_weights(tiny, ours):
    """``weights="q4_1"``: every layer Linear a Q4Linear (the head under the recipe's
    BLOCK_Q8_0); against the float reference run on the dequantized 4-bit weights, only
    the activations' 8-bit blocks differ."""
    from numbaq.layers.q4 import Q4Linear

    q = llama.quantize(ours, weights="q4_1")
    assert all(
        type(getattr(layer, n)) is Q4Linear
        for layer in q.layers
        for n in ("qkv", "o", "gate_up", "down")
    )
    params = {k: v.numpy() for k, v in tiny[1].model.state_dict().items()}
    params["lm_head.weight"] = q.lm_head.qweight.dequantize()
    for i, layer in enumerate(q.layers):
        p = f"layers.{i}."
        d = ours.config.head_dim
        qkv = layer.qkv.qweight.dequantize()
        heads, kv = ours.config.num_attention_heads * d, ours.config.num_key_value_heads * d
        params[p + "self_attn.q_proj.weight"] = qkv[:heads]
        params[p + "self_attn.k_proj.weight"] = qkv[heads : heads + kv]
        params[p + "self_attn.v_proj.weight"] = qkv[heads + kv :]
        params[p + "self_attn.o_proj.weight"] = layer.o.qweight.dequantize()
        gu = layer.gate_up.qweight.dequantize()
        params[p + "mlp.gate_proj.weight"], params[p + "mlp.up_proj.weight"] = np.split(gu, 2)
        params[p + "mlp.down_proj.weight"] = layer.down.qweight.dequantize()
    want = ref.llama_forward(params, IDS, ours.config)
    assert _cosine(q(IDS), want).min() > 0.999
    with pytest.raises(ValueError, match="weights='q4_1' fixes the layers' activations"):
        llama.quantize(ours, scheme="ONNX", weights="q4_1")
    with pytest.raises(ValueError, match="weights must be"):
        llama.quantize(ours, weights="int4")
    cfg = llama.LlamaConfig(48, 64, 1, 2, 1, 24, 10)
    rng = np.random.default_rng(0)
    shapes = {"embed_tokens.weight": (10, 48), "norm.weight": (48,), "lm_head.weight": (10, 48)}
    shapes.update({f"layers.0.{n}_layernorm.weight": (48,) for n in ("input", "post_attention")})
    for name, shape in [
        ("self_attn.q_proj", (48, 48)),
        ("self_attn.k_proj", (24, 48)),
        ("self_attn.v_proj", (24, 48)),
        ("self_attn.o_proj", (48, 48)),
        ("mlp.gate_proj", (64, 48)),
        ("mlp.up_proj", (64, 48)),
        ("mlp.down_proj", (48, 64)),
    ]:
        shapes[f"layers.0.{name}.weight"] = shape
    odd = llama.LlamaDecoder({k: rng.normal(size=v) for k, v in shapes.items()}, cfg)
    with pytest.raises(
        ValueError, match=r"layer0\.qkv: weights='q4_1' needs in_features a multiple of 32"
    ):
        llama.quantize(odd, weights="q4_1")


def test_int8_kv_cache_close(tiny):
    model8 = llama.load(tiny[0], kv_cache="int8")
    model = llama.load(tiny[0])
    assert _cosine(model8(IDS), model(IDS)).min() > 0.9999
    cache = model8.new_cache(1, 8)
    model8.step([IDS], cache)
    assert cache.layers[0][0].dtype == np.int8 and cache.nbytes < model.new_cache(1, 8).nbytes


# ------------------------------------------------------------------ pieces vs twins
def test_rms_norm_matches_reference():
    rng = np.random.default_rng(2)
    h = rng.normal(size=(5, 48)).astype(np.float32)
    delta = rng.normal(size=(5, 48)).astype(np.float32)
    w = rng.normal(size=48).astype(np.float32)
    out = np.empty_like(h)
    hh = h.copy()
    kd._add_rms_norm(hh, delta, True, w, np.float32(1e-5), out)
    np.testing.assert_array_equal(hh, h + delta)
    # float64 sum of squares in both; one rounding of the inverse: 2 ulps
    np.testing.assert_allclose(out, ref.rms_norm(h + delta, w, 1e-5), rtol=3e-7, atol=1e-7)


def test_rope_matches_reference():
    cfg = llama.LlamaConfig.from_dict(
        {
            "hidden_size": 32,
            "intermediate_size": 8,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "vocab_size": 4,
            "rope_theta": 500.0,
        }
    )
    cos, sin = llama.rope_tables(cfg, 20)
    x = np.random.default_rng(3).normal(size=(3, 32)).astype(np.float32)
    got = x.copy()
    for t, p in enumerate([0, 7, 19]):
        kd._rope_row(got, t, 0, 2, 16, cos, sin, p)
    want = ref.rope(x.reshape(3, 2, 16), np.array([0, 7, 19]), 500.0).reshape(3, 32)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)  # float32 table vs float64


@pytest.mark.parametrize("d", [8, 16, 40])
@pytest.mark.parametrize("kv_dtype", ["float32", "int8"])
def test_attention_matches_reference(kv_dtype, d):
    """Prefill of two sequences through the cache against causal GQA attention in numpy
    (int8 cache: against the reference on the cache's own dequantized keys and values)."""
    rng = np.random.default_rng(4)
    heads, kv_heads, lengths = 4, 2, (5, 3)
    cfg = llama.LlamaConfig(heads * d, 8, 1, heads, kv_heads, d, 10, max_position_embeddings=32)
    cache = llama.KVCache(cfg, 2, 8, kv_dtype)
    t = sum(lengths)
    qkv = rng.normal(size=(t, (heads + 2 * kv_heads) * d)).astype(np.float32)
    seq = np.repeat([0, 1], lengths)
    pos = np.concatenate([np.arange(n) for n in lengths])
    cos, sin = np.ones((32, d // 2), np.float32), np.zeros((32, d // 2), np.float32)
    out = np.empty((t, heads * d), np.float32)
    kernel = kd._attention
    kernel(qkv, seq, pos, cos, sin, heads, kv_heads, *cache.layers[0], out)
    kt, v, ks, vs = cache.layers[0]
    for s, n in enumerate(lengths):
        rows = seq == s
        q = qkv[rows, : heads * d].reshape(n, heads, d)
        kscale = ks[s, :, None, :n] if kv_dtype == "int8" else 1.0  # float32: no scales
        vscale = vs[s, :, :n, None] if kv_dtype == "int8" else 1.0
        keys = (kt[s, :, :, :n].astype(np.float32) * kscale).transpose(2, 0, 1)
        vals = (v[s, :, :n].astype(np.float32) * vscale).transpose(1, 0, 2)
        want = ref.gqa_attention(q, keys, vals).reshape(n, heads * d)
        np.testing.assert_allclose(out[rows], want, rtol=1e-5, atol=1e-5)
        if kv_dtype == "int8":  # the codes reproduce the keys within half a step
            k_in = qkv[rows, heads * d : (heads + kv_heads) * d].reshape(n, kv_heads, d)
            step = np.abs(k_in).max(axis=2, keepdims=True) / 127
            assert (np.abs(keys - k_in) <= step / 2 * (1 + 1e-6)).all()


def test_swiglu_matches_reference():
    gu = np.random.default_rng(5).normal(size=(3, 20)).astype(np.float32) * 4
    out = np.empty((3, 10), np.float32)
    kd._swiglu(gu, out)
    np.testing.assert_allclose(out, ref.swiglu(gu[:, :10], gu[:, 10:]), rtol=2e-6, atol=1e-7)


def test_whole_model_matches_reference(tiny, ours):
    """The float decoder against the plain-numpy twin of the whole forward pass."""
    params = {k: v.numpy() for k, v in tiny[1].model.state_dict().items()}
    params["lm_head.weight"] = tiny[1].lm_head.weight.detach().numpy()
    want = ref.llama_forward(params, IDS, ours.config)
    np.testing.assert_allclose(ours(IDS), want, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ generation
def test_sampling_is_seeded_and_bounded(ours):
    a = ours.generate(IDS[:4], 8, temperature=0.8, top_k=5, top_p=0.9, seed=7, stop=())
    b = ours.generate(IDS[:4], 8, temperature=0.8, top_k=5, top_p=0.9, seed=7, stop=())
    assert a.tolist() == b.tolist() and a.size == 8
    logits = ours(np.concatenate([IDS[:4], a[:-1]]))[3:]
    for row, token in zip(logits, a):  # every pick is among the 5 most likely
        assert token in np.argsort(-row)[:5]


def test_streaming_and_stop(ours):
    seen = []
    greedy = ours.generate(IDS[:4], 6, stop=())
    out = ours.generate(IDS[:4], 6, stop=[int(greedy[2])], callback=seen.append)
    assert out.tolist() == greedy[:3].tolist() == seen
    assert list(ours.stream(IDS[:4], 6, stop=())) == greedy.tolist()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": -2}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
        ({"max_new_tokens": 1.5}, "max_new_tokens"),
    ],
)
def test_bad_generation_arguments(ours, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ours.generate(IDS[:4], **{"max_new_tokens": 2, **kwargs})


@pytest.mark.parametrize(
    "ids",
    [np.array([], np.int64), np.array([1.5, 2.0]), np.array([[1, 2]]), np.array([0, VOCAB]), [-1]],
)
def test_bad_ids(ours, ids):
    with pytest.raises(ValueError, match="ids"):
        ours(ids)


def test_perplexity(ours):
    ppl = llama.perplexity(ours, IDS, window=16)
    logits = ours(IDS[:16]).astype(np.float64)
    logp = (
        logits
        - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
        - logits.max(1, keepdims=True)
    )
    first = -logp[np.arange(15), IDS[1:16]]
    assert 1 < ppl < VOCAB * 10
    assert np.isclose(llama.perplexity(ours, IDS[:16], window=16), np.exp(first.mean()))
    with pytest.raises(ValueError, match="window"):
        llama.perplexity(ours, IDS, window=1)


# ------------------------------------------------------------------ bad checkpoints
def _edited(tiny, tmp_path, **changes):
    import shutil

    path = tmp_path / "edited"
    shutil.copytree(tiny[0], path)
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(changes)
    (path / "config.json").write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"hidden_size": 48}, "hidden_size"),
        ({"intermediate_size": 95}, "intermediate_size"),
        ({"num_key_value_heads": 3}, "num_key_value_heads"),
        ({"num_hidden_layers": 3}, "layers.2"),
        ({"model_type": "gpt2"}, "model_type"),
        ({"hidden_act": "gelu"}, "hidden_act"),
        ({"vocab_size": -1}, "vocab_size"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope_scaling"),
    ],
)
def test_config_that_does_not_fit_names_the_field(tiny, tmp_path, changes, match):
    with pytest.raises(ValueError, match=match):
        llama.load(_edited(tiny, tmp_path, **changes))


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        llama.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such"):
        llama.load(tmp_path / "nothing.gguf")


# ------------------------------------------------------------------ replayed decode steps
@pytest.mark.parametrize(
    "kwargs", [{}, {"scheme": "BLOCK_Q8_0", "group_size": 32}, {"weights": "q4_1"}]
)
def test_replayed_steps_equal_the_step_by_step_path(ours, kwargs):
    """A decode step replays the kernel calls recorded on the first one (the same
    buffers, new ids and positions): the bits of the path that runs layer by layer,
    which a profile() forces."""
    from numbaq.models.bert_layers import profile

    q = (
        _model(ours, "q4_1")
        if kwargs.get("weights")
        else numbaq.quantize_dynamic(ours, progress=False, **kwargs)
    )
    replayed, plain = q.new_cache(1, 64), q.new_cache(1, 64)
    got = [q.step([IDS[:4]], replayed)] + [q.step([IDS[i : i + 1]], replayed) for i in range(4, 20)]
    with profile():
        want = [q.step([IDS[:4]], plain)] + [q.step([IDS[i : i + 1]], plain) for i in range(4, 20)]
    assert any(plan.calls for plan in replayed.plans.values())
    assert not plain.plans
    np.testing.assert_array_equal(np.concatenate(got), np.concatenate(want))


def test_a_trace_sees_every_decode_step(ours):
    """While numbaq.trace watches the layers (their ``trace_log`` set), steps are not
    replayed: every Linear call is recorded, after a plan was made as well."""
    q = numbaq.quantize_dynamic(ours, progress=False)
    cache = q.new_cache(1, 16)
    for i in range(4):  # the second step records a plan, the others replay it
        q.step([IDS[i : i + 1]], cache)
    log: list = []
    q.layer0.qkv.trace_log = log
    try:
        for i in range(4, 7):
            q.step([IDS[i : i + 1]], cache)
    finally:
        q.layer0.qkv.trace_log = None
    assert len(log) == 3


def test_float_model_never_replays(ours):
    cache = ours.new_cache(1, 16)
    ours.step([IDS[:3]], cache)
    ours.step([IDS[3:4]], cache)
    assert all(not plan.calls for plan in cache.plans.values()) or not cache.plans


@pytest.mark.parametrize("quantized", [False, True])
def test_generate_batch_equals_generate_alone(ours, quantized):
    """Ragged prompts generated together: each gets the greedy ids it gets alone (bit for
    bit logits when int8; the float model's BLAS sums could in principle tie-break
    differently, which these prompts do not hit), and sequences stop on their own."""
    model = numbaq.quantize_dynamic(ours, progress=False) if quantized else ours
    prompts = [IDS[:5], IDS[7:9], IDS[12:23]]
    alone = [model.generate(p, 6, stop=()) for p in prompts]
    together = model.generate_batch(prompts, 6, stop=())
    assert [a.tolist() for a in together] == [a.tolist() for a in alone]
    stop = int(alone[1][1])  # the second sequence stops after two tokens
    stopped = model.generate_batch(prompts, 6, stop=[stop])
    assert stopped[1].tolist() == alone[1][:2].tolist()
    sampled = model.generate_batch(prompts, 4, temperature=0.7, seed=3, stop=())
    assert (
        sampled[2].tolist()
        == model.generate(prompts[2], 4, temperature=0.7, seed=5, stop=()).tolist()
    )


def test_generate_batch_bad_prompts(ours):
    with pytest.raises(TypeError, match="prompts"):
        ours.generate_batch(IDS[:4])
    with pytest.raises(ValueError, match=r"prompts\[1\]"):
        ours.generate_batch([IDS[:4], np.array([VOCAB])])


def test_a_cache_must_fit_the_model(ours, tiny):
    """The kernels trust the cache's shapes: a cache of another config is refused."""
    other = llama.LlamaConfig.from_dict({**tiny[1].config.to_dict(), "num_key_value_heads": 4})
    with pytest.raises(ValueError, match="cache"):
        ours.step([IDS[:3]], llama.KVCache(other, 1, 8))
    with pytest.raises(ValueError, match="cache"):
        ours.step([IDS[:3]], "not a cache")
    with pytest.raises(TypeError, match="ids"):
        ours.step(IDS[:3], ours.new_cache(1, 8))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch": 0}, "batch"),
        ({"batch": -2}, "batch"),
        ({"capacity": -1}, "capacity"),
        ({"batch": 1.5}, "batch"),
        ({"dtype": "int4"}, "kv_cache"),
    ],
)
def test_bad_cache_arguments(ours, kwargs, match):
    args = {"batch": 1, "capacity": 8, "dtype": "float32", **kwargs}
    with pytest.raises(ValueError, match=match):
        llama.KVCache(ours.config, args["batch"], args["capacity"], args["dtype"])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_are_refused(tiny, bad):
    params = {k: v.numpy().copy() for k, v in tiny[1].model.state_dict().items()}
    params["lm_head.weight"] = tiny[1].lm_head.weight.detach().numpy()
    params["layers.1.mlp.up_proj.weight"][3, 5] = bad
    with pytest.raises(ValueError, match="up_proj"):
        llama.LlamaDecoder(params, llama.LlamaConfig.from_dict(tiny[1].config.to_dict()))


@pytest.mark.parametrize("quantized", [True, "q4_1"])
def test_the_decoder_on_every_gemm_path(ours, gemm_path, quantized):
    """The decoder's int8 Linears (fused producers, replayed steps) on each GEMM path this
    CPU runs (others skip, naming the missing feature), and its 4-bit ones (the
    ``vpdpbusd`` kernel on vnni512 and amx, the portable one elsewhere): the integer
    products are exact, so every path gives the bits of the plain loops."""
    from numbaq import config

    q = _model(ours, quantized)
    cache = q.new_cache(1, 16)
    got = [q.step([IDS[:4]], cache)] + [q.step([IDS[i : i + 1]], cache) for i in range(4, 8)]
    original = config.GEMM_PATH
    config.GEMM_PATH = "plain"
    try:
        cache = q.new_cache(1, 16)
        want = [q.step([IDS[:4]], cache)] + [q.step([IDS[i : i + 1]], cache) for i in range(4, 8)]
    finally:
        config.GEMM_PATH = original
    np.testing.assert_array_equal(np.concatenate(got), np.concatenate(want))


@pytest.mark.parametrize("kv_dtype", ["float32", "int8"])
def test_parallel_attention_equals_serial(kv_dtype):
    """The parallel kernels (rows in a balanced order over threads) give the serial bits."""
    rng = np.random.default_rng(6)
    heads, kv_heads, d, lengths = 4, 2, 32, (37, 5, 20)
    cfg = llama.LlamaConfig(heads * d, 8, 1, heads, kv_heads, d, 10, max_position_embeddings=64)
    qkv = rng.normal(size=(sum(lengths), (heads + 2 * kv_heads) * d)).astype(np.float32)
    seq = np.repeat(np.arange(3), lengths)
    pos = np.concatenate([np.arange(n) for n in lengths])
    cos, sin = llama.rope_tables(cfg, 64)
    outs = []
    for kernel in (kd._attention, kd._attention_par):
        cache = llama.KVCache(cfg, 3, 40, kv_dtype)
        out = np.empty((qkv.shape[0], heads * d), np.float32)
        kernel(qkv.copy(), seq, pos, cos, sin, heads, kv_heads, *cache.layers[0], out)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
