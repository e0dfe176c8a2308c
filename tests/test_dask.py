"""Scale-out: quantized models pickle, and examples/dask_embed.py runs on a LocalCluster."""

import importlib.util
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numbaq as nq

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dask_embed.py"


def _example():
    spec = importlib.util.spec_from_file_location("dask_embed", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("scheme", ["PER_TOKEN_UINT8", "PER_TOKEN_INT8", "BLOCK_Q8_0"])
def test_quantized_model_pickles_bit_exact(scheme):
    rng = np.random.default_rng(0)
    model = nq.Sequential(
        nq.Linear(rng.standard_normal((64, 32)), rng.standard_normal(64)),
        nq.GELU(),
        nq.LSTM(64, 32, num_layers=2, batch_first=True),
    )
    qmodel = nq.quantize_dynamic(nq.Sequential(model[0], model[1]), scheme=scheme)
    qlstm = nq.quantize_dynamic(model[2], scheme=scheme)
    x = rng.standard_normal((3, 7, 32)).astype(np.float32)
    expected = qlstm(qmodel(x))[0]  # packs the weights on first use
    data = pickle.dumps((qmodel, qlstm))
    assert len(data) < 1.1 * (qmodel.nbytes + qlstm.nbytes) + 20_000  # packed copies left out
    qmodel2, qlstm2 = pickle.loads(data)
    assert qmodel[0].qweight._derived and qmodel2[0].qweight._derived == {}  # remade on use
    np.testing.assert_array_equal(qlstm2(qmodel2(x))[0], expected)


def test_minilm_pickles_bit_exact():
    from numbaq.models import minilm

    if not minilm.available():
        pytest.skip(f"all-MiniLM-L6-v2 is not installed ({minilm.INSTALL})")
    qmodel = nq.quantize_dynamic(minilm.load(), progress=False)
    sentences = ["A man is eating food.", "Hi"]
    expected = qmodel.encode(sentences)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(qmodel)).encode(sentences), expected)


def test_partitions_cover_the_corpus_in_order():
    example = _example()
    sentences = example.corpus(70)
    assert len(set(sentences)) == 70
    parts = example.partitions(sentences, 16)
    assert len(parts) == 16 and all(parts) and [s for part in parts for s in part] == sentences
    assert example.partitions(sentences[:3], 16) == [[s] for s in sentences[:3]]


def test_dask_embed_on_two_processes_matches_local():
    pytest.importorskip("distributed", reason='the Dask test needs pip install "dask[distributed]"')
    from dask.distributed import Client

    example = _example()
    _, model = example.build_model()
    sentences = example.corpus(96)
    reference = example.embed_local(model, sentences, 6)
    with example.local_cluster(2) as cluster, Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        embeddings = example.embed_dask(client, model, sentences, 6)
    assert embeddings.shape == reference.shape and embeddings.dtype == np.float32
    np.testing.assert_array_equal(embeddings, reference)  # bit for bit


def test_example_script_runs(tmp_path):
    pytest.importorskip("distributed", reason='the Dask test needs pip install "dask[distributed]"')
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--workers", "2", "--sentences", "48", "--partitions", "4"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 worker processes" in done.stdout and "identical to local: True" in done.stdout
