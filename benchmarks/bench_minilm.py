"""all-MiniLM-L6-v2: numbaq fp32 and int8 against PyTorch, ONNX Runtime and OpenVINO.

Run: ``python -m benchmarks.bench_minilm`` (writes the ``minilm-<path>`` section of
RESULTS.md, ``<path>`` the GEMM path in use).
64 built-in sentences, 1 and 2 threads, medians (and minimums) over rounds in which every
runtime runs once in turn. numbaq runs ragged batches (no padding) in this process; each
peer runs in its own child process that never runs numbaq's kernels (two thread pools in
one process stalled each other here):

* PyTorch fp32 and ``quantize_dynamic`` (one padded batch, ``numbaq.models.torch_minilm``);
* ONNX Runtime: that model exported to ONNX, fp32 and ``quantize_dynamic(per_channel=True,
  weight_type=QInt8)``, length-sorted padded batches of 8 (its best setup here);
* OpenVINO: ``convert_model`` of the ONNX model, default hints, the same batches; its int8
  is NNCF's post-training ``quantize`` (static, calibrated on these same sentences).

Peers are optional (the ``bench`` extra); the report says which were skipped and why.
Cosine is each sentence's embedding against numbaq's fp32 embedding; "alone vs in batch" is
the lowest cosine between a sentence encoded alone and inside the batch. The breakdown
times numbaq's pieces with ``numbaq.models.bert.profile``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

import numbaq as nq
from numbaq import roofline
from numbaq.models import bert, minilm
from numbaq.models.sentences import SENTENCES

from ._common import Peer, machine, markdown_table, write_section


def _cos(a, b):
    return (a * b).sum(axis=1)


PEER_CHILD = r"""
import json, sys, time, warnings
from pathlib import Path
import numpy as np
warnings.simplefilter("ignore")
mode, threads, work = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
from numbaq.models import minilm
from numbaq.models.sentences import SENTENCES
from tokenizers import Tokenizer

tok = Tokenizer.from_file(str(minilm.model_dir() / "tokenizer.json"))
tok.enable_truncation(256)
lengths = [len(e.ids) for e in tok.encode_batch(SENTENCES)]
order = np.argsort(lengths, kind="stable")
tok.enable_padding()

def batches(size=8):
    for i in range(0, len(order), size):
        idx = order[i : i + size]
        enc = tok.encode_batch([SENTENCES[j] for j in idx])
        yield idx, np.array([e.ids for e in enc]), np.array([e.attention_mask for e in enc])

def sorted_encode(run):
    out = np.empty((len(SENTENCES), 384), np.float32)
    for idx, ids, mask in batches():
        out[idx] = run(ids, mask)
    return out

out, RUNS = {}, {}
if mode == "torch":
    import torch
    from numbaq.models import torch_minilm
    model, tokenizer = torch_minilm.build()
    qmodel = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    for name, m in (("torch fp32", model), ("torch int8", qmodel)):
        np.save(work / f"{name}.npy", torch_minilm.encode(m, tokenizer, SENTENCES))
        for n in threads:
            def run(m=m, n=n):
                torch.set_num_threads(n)
                torch_minilm.encode(m, tokenizer, SENTENCES)
            RUNS[(name, n)] = run
    alone = np.concatenate([torch_minilm.encode(qmodel, tokenizer, [s]) for s in SENTENCES])
    np.save(work / "torch int8 alone.npy", alone)
elif mode == "export":
    import torch
    from numbaq.models import torch_minilm
    from onnxruntime.quantization import QuantType, quantize_dynamic
    model, tokenizer = torch_minilm.build()
    _, ids, mask = next(batches())
    torch.onnx.export(
        model, (torch.tensor(ids), torch.tensor(mask)), str(work / "fp32.onnx"),
        input_names=["ids", "mask"], output_names=["emb"], opset_version=17, dynamo=False,
        dynamic_axes={"ids": {0: "b", 1: "t"}, "mask": {0: "b", 1: "t"}, "emb": {0: "b"}},
    )
    quantize_dynamic(str(work / "fp32.onnx"), str(work / "int8.onnx"), per_channel=True,
                     weight_type=QuantType.QInt8)
elif mode == "onnxruntime":
    import onnxruntime as ort
    for kind in ("fp32", "int8"):
        for n in threads:
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = n, 1
            s = ort.InferenceSession(str(work / f"{kind}.onnx"), so,
                                     providers=["CPUExecutionProvider"])
            run = lambda ids, mask, s=s: s.run(None, {"ids": ids, "mask": mask})[0]
            np.save(work / f"onnxruntime {kind}.npy", sorted_encode(run))
            RUNS[(f"onnxruntime {kind}", n)] = lambda run=run: sorted_encode(run)
elif mode == "openvino":
    import openvino as ov
    core = ov.Core()
    models = {"fp32": ov.convert_model(str(work / "fp32.onnx"))}
    try:
        import nncf
        calib = [{"ids": ids, "mask": mask} for _, ids, mask in batches()]
        models["int8"] = nncf.quantize(models["fp32"], nncf.Dataset(calib),
                                       model_type=nncf.ModelType.TRANSFORMER,
                                       subset_size=len(calib))
    except ImportError:
        out["skipped"] = "OpenVINO int8: nncf is not installed (pip install nncf)"
    for kind, model in models.items():
        for n in threads:
            c = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": n})
            run = lambda ids, mask, c=c: c({"ids": ids, "mask": mask})[0]
            np.save(work / f"openvino {kind}.npy", sorted_encode(run))
            RUNS[(f"openvino {kind}", n)] = lambda run=run: sorted_encode(run)
for fn in RUNS.values():
    fn()  # warm up
out["runs"] = [[name, n] for name, n in RUNS]
print("READY " + json.dumps(out), flush=True)
for line in sys.stdin:  # serve: one timed call per request, so runtimes take turns
    name, n = json.loads(line)
    t0 = time.perf_counter()
    RUNS[(name, n)]()
    print("TIME " + json.dumps(time.perf_counter() - t0), flush=True)
"""


def _start_peers(threads, work: Path) -> tuple[list[Peer], list[str]]:
    """The peers that are installed, started; and a line for each one skipped."""
    import importlib.util

    have = {
        m: importlib.util.find_spec(m) is not None
        for m in ("torch", "onnxruntime", "openvino", "onnx")
    }
    peers, skipped = [], []

    def start(mode):
        try:
            peer = Peer(PEER_CHILD, mode, threads, work)
        except RuntimeError as err:
            skipped.append(str(err))
            return None
        skipped.extend(peer.skipped)
        return peer

    if not have["torch"]:
        skipped.append("skipped PyTorch, ONNX Runtime, OpenVINO: pip install torch (all peers)")
        return peers, skipped
    peers.append(start("torch"))
    if have["onnx"] and have["onnxruntime"]:
        export = start("export")  # writes fp32.onnx and int8.onnx, serves nothing
        if export is not None:
            export.close()
    else:
        skipped.append("skipped the ONNX export: pip install onnx onnxruntime")
    for mode in ("onnxruntime", "openvino"):
        if not have[mode]:
            skipped.append(f"skipped {mode}: pip install {mode}")
        elif not (work / "int8.onnx").exists():
            skipped.append(f"skipped {mode}: no ONNX model (the export was skipped or failed)")
        else:
            peers.append(start(mode))
    return [p for p in peers if p is not None], skipped


def _rounds(ours: dict, peers: list, threads) -> dict:
    """``{(name, threads): [median, min] ms}``: ``REPEAT`` rounds per thread count, each
    round one call of every runtime in turn (numbaq here, the peers in their processes),
    so a busy spell on the shared machine hits them all alike."""
    calls: dict = {}
    for n in threads:
        numba.set_num_threads(n)
        with _blas_threads(n):  # numbaq fp32's matmuls are numpy's (OpenBLAS)
            for m in ours.values():
                m.encode(SENTENCES)
            for _ in range(REPEAT):
                for name, m in ours.items():
                    t0 = time.perf_counter()
                    m.encode(SENTENCES)
                    calls.setdefault((name, n), []).append(time.perf_counter() - t0)
                    time.sleep(0.3 if m is ours.get("numbaq fp32") else 0.02)  # spinning ends
                for peer in peers:
                    for name, pn in peer.runs:
                        if pn == n:
                            calls.setdefault((name, n), []).append(peer.time(name, n))
                            time.sleep(0.02)
    numba.set_num_threads(threads[-1])
    return {k: [float(np.median(v) * 1e3), float(np.min(v) * 1e3)] for k, v in calls.items()}


REPEAT = 9  # timed calls per configuration


def _blas_threads(n: int):
    """numpy's BLAS limited to ``n`` threads (threadpoolctl), or no limit without it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(n, user_api="blas")


PIECES = ("linear", "attention", "layernorm", "activation")


def _breakdown(model) -> dict:
    """Milliseconds per piece of one ``encode`` of the 64 sentences: the pieces of the
    fastest of ``REPEAT`` profiled calls (one consistent split; the machine is shared)."""
    model.encode(SENTENCES)
    runs = []
    for _ in range(REPEAT):
        with bert.profile() as times:
            t0 = time.perf_counter()
            model.encode(SENTENCES)
            total = time.perf_counter() - t0
        ms = {p: times.get(p, 0.0) * 1e3 for p in PIECES}
        ms["rest"] = total * 1e3 - sum(ms.values())
        ms["total"] = total * 1e3
        runs.append(ms)
    return min(runs, key=lambda r: r["total"])


def _roofline(model, threads: int) -> str:
    """The roofline view of the int8 model's Linears on ``threads`` threads
    (:func:`numbaq.models.bert.roofline`): each kind of Linear's time in the model, split
    into the activation quantize, the int32 core, the epilogue and the rest, summed over
    the layers, and the share of the GEMM path's measured peak."""
    numba.set_num_threads(threads)
    rows = bert.roofline(model, SENTENCES, repeat=REPEAT)
    kinds: dict = {}
    for r in rows:
        kinds.setdefault(r["name"].split(".", 1)[1], []).append(r)
    peak = rows[0]["peak_gops"]
    table = []
    for name, group in [*kinds.items(), ("all", rows)]:
        first = group[0]
        ops = sum(2 * r["m"] * r["k"] * r["n"] for r in group)
        us = {p: sum(r[f"{p}_us"] for r in group) for p in (*roofline.PIECES, "total")}
        shape = f"{first['m']} x {first['k']} -> {first['n']}" if name != "all" else "-"
        act = (first["activation"] or "-") if name != "all" else "-"
        gops = ops / us["total"] / 1e3
        table.append(
            [name, len(group), shape, act, *(f"{us[p] / 1e3:.2f}" for p in us)]
            + [f"{gops:.0f}", f"{100 * gops / peak:.0f}%"]
        )
    header = ["Linear", "calls", "M x K -> N", "activation", "quantize ms", "core ms"]
    header += ["epilogue ms", "rest ms", "total ms", "GOPS", "% of peak"]
    return "\n".join(
        [
            f"The Linears inside the int8 model, {threads} thread{'s' if threads > 1 else ''}: "
            "each kind's time in the encoder",
            f"(mean of {REPEAT} profiled encodes), split by `numbaq.models.bert.roofline` into "
            "the activation",
            "quantize (0 where the LayerNorm before writes the codes), the int32 core, the "
            "dequantizing epilogue",
            "(with GELU) and the rest (each piece timed alone on the layer's shape and weights; "
            "rest = in-model",
            f"minus the pieces: cold caches, fresh outputs, Python). Peak: {peak:.0f} GOPS "
            f"(`vpdpbusd` register tile, {threads} thread{'s' if threads > 1 else ''}).",
            "",
            markdown_table(header, table),
        ]
    )


def main(argv=None):
    global REPEAT
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--no-peers", action="store_true", help="numbaq only")
    parser.add_argument("--repeat", type=int, default=REPEAT, help="timed rounds")
    args = parser.parse_args(argv)
    REPEAT = args.repeat
    if not minilm.available():
        print(f"skipped: {minilm.INSTALL}")
        return
    model = minilm.load()
    qmodel = nq.quantize_dynamic(model, progress=False)
    qattn = nq.quantize_dynamic(model, progress=False)
    qattn.attention = "int8"
    # fp32 last: its numpy matmuls leave OpenBLAS threads spinning for a while, which
    # slowed the next runtime's parallel kernels (measured: numbaq int8 on 2 threads 75 ms
    # right after numbaq fp32, 50-60 ms otherwise)
    q7 = nq.quantize_dynamic(model, scheme="PER_TOKEN_UINT7", progress=False)
    ours = {
        "numbaq int8": qmodel,
        "numbaq int8, int8 attention": qattn,
        "numbaq uint7": q7,  # 7-bit activations: the exact vpmaddubsw step without VNNI
        "numbaq fp32": model,
    }
    reference = model.encode(SENTENCES)
    embeddings = {name: m.encode(SENTENCES) for name, m in ours.items()}
    time.sleep(0.3)
    threads = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})
    pieces: dict = {}
    for n in threads:
        numba.set_num_threads(n)
        with _blas_threads(n):  # numbaq fp32's matmuls are numpy's (OpenBLAS)
            for name in ("numbaq int8", "numbaq fp32"):
                pieces[(name, n)] = _breakdown(ours[name])
        time.sleep(0.3)
    rooflines = [_roofline(qmodel, n) for n in threads]
    numba.set_num_threads(threads[-1])
    alone = {
        name: np.concatenate([ours[name].encode([s]) for s in SENTENCES])
        for name in ("numbaq int8", "numbaq int8, int8 attention")
    }
    rows_acc = []
    for name in ("numbaq int8", "numbaq int8, int8 attention"):
        cos = _cos(reference, embeddings[name])
        rows_acc.append(
            [
                f"{name} ({nq.DEFAULT_SCHEME.name})",
                f"{cos.mean():.4f}",
                f"{cos.min():.4f}",
                f"{_cos(alone[name], embeddings[name]).min():.6f}",
            ]
        )
    cos = _cos(reference, minilm.load(attention="int8").encode(SENTENCES))
    rows_acc.append(["numbaq fp32, int8 attention", f"{cos.mean():.5f}", f"{cos.min():.5f}", "-"])
    cos = _cos(reference, embeddings["numbaq uint7"])
    rows_acc.append(
        ["numbaq uint7 (PER_TOKEN_UINT7)", f"{cos.mean():.4f}", f"{cos.min():.4f}", "-"]
    )
    for scheme in ("PER_TOKEN_INT8", "BLOCK_Q8_0"):
        emb = nq.quantize_dynamic(model, scheme=scheme, progress=False).encode(SENTENCES)
        cos = _cos(reference, emb)
        rows_acc.append([f"numbaq int8 ({scheme})", f"{cos.mean():.4f}", f"{cos.min():.4f}", "-"])
    skipped: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        peers = []
        if args.no_peers:
            skipped.append("skipped all peers (--no-peers)")
        else:
            peers, skipped = _start_peers(threads, work)
        try:
            times = _rounds(ours, peers, threads)
        finally:
            for peer in peers:
                peer.close()
        for peer in peers:
            for name in sorted({name for name, _ in peer.runs}):
                emb = np.load(work / f"{name}.npy")
                cos = _cos(reference, emb)
                alone_file = work / f"{name} alone.npy"
                batch = (
                    f"{_cos(np.load(alone_file), emb).min():.6f}" if alone_file.exists() else "-"
                )
                rows_acc.append([name, f"{cos.mean():.4f}", f"{cos.min():.4f}", batch])
    order = [
        "numbaq fp32",
        "numbaq int8",
        "numbaq int8, int8 attention",
        "numbaq uint7",
        "torch fp32",
        "torch int8",
        "onnxruntime fp32",
        "onnxruntime int8",
        "openvino fp32",
        "openvino int8",
    ]
    names = sorted({k for k, _ in times}, key=order.index)
    tables = []
    for stat, label in ((0, "median"), (1, "min")):
        rows = [[n, *(f"{times[(name, n)][stat]:.1f}" for name in names)] for n in threads]
        for n in threads:
            ours_ms = times[("numbaq int8", n)][stat]
            rows.append(
                [
                    f"{n}: {label} / numbaq int8",
                    *(f"{times[(name, n)][stat] / ours_ms:.2f}x" for name in names),
                ]
            )
        tables.append(markdown_table([f"threads ({label} ms)", *names], rows))
    piece_rows = [
        [
            p,
            *(
                f"{pieces[(name, n)][p]:.1f}"
                for name in ("numbaq fp32", "numbaq int8")
                for n in threads
            ),
        ]
        for p in (*PIECES, "rest", "total")
    ]
    piece_header = ["piece", *(f"{name}, {n} thr" for name in ("fp32", "int8") for n in threads)]
    lengths = [len(i) for i in model.tokenize(SENTENCES)]
    padding = 1 - sum(lengths) / (len(lengths) * max(lengths))
    text = "\n".join(
        [
            "## all-MiniLM-L6-v2, 64 sentences",
            "",
            "Command: `python -m benchmarks.bench_minilm`. Median ms to encode all 64 sentences",
            f"(tokenization included) over {REPEAT} rounds; each round times one call of every",
            "runtime in turn (numbaq in this process, each peer in its own child process), so",
            "a busy spell of the shared machine hits them alike.",
            "ONNX Runtime and OpenVINO run the PyTorch model exported to ONNX in length-sorted",
            "padded batches of 8; PyTorch runs one padded batch. OpenVINO int8 is NNCF's static",
            f"quantization calibrated on these sentences. Machine: {machine()}.",
            f"A padded batch of these sentences is {100 * padding:.0f}% padding; numbaq's ragged",
            "batches skip it. The machine is shared: compare within a run.",
            "",
            tables[0],
            "",
            f"The fastest of the {REPEAT} calls (the least disturbed; the machine is shared):",
            "",
            tables[1],
            "",
            *(f"- {s}" for s in skipped),
            "",
            "Where numbaq's time goes (ms, the fastest profiled encode of the 64 sentences,",
            "`numbaq.models.bert.profile`; layernorm includes the fused quantization of the next",
            "int8 Linear's input; rest = tokenization, embeddings, pooling, Python):",
            "",
            markdown_table(piece_header, piece_rows),
            "",
            *(line for r in rooflines for line in (r, "")),
            "Cosine to numbaq's fp32 embedding of the same sentence:",
            "",
            markdown_table(["model", "mean", "min", "alone vs in batch (min)"], rows_acc),
        ]
    )
    print(text)
    if not args.no_write:  # one section per GEMM path: the machines differ
        write_section(f"minilm-{nq.gemm_path()[0]}", text)


if __name__ == "__main__":
    main()
