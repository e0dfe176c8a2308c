"""The dynamic quantized Linear, ``y = x . W^T + b``, against its peers, in one run.

Run: ``python -m benchmarks.bench_linear`` (writes the ``linear-<path>`` section of
RESULTS.md, ``<path>`` the GEMM path in use: the machines that run each path differ).

Methods: numpy fp32 (OpenBLAS), torch fp32, torch ``quantize_dynamic`` (qint8), ONNX
Runtime ``quantize_dynamic`` (QInt8 weights; runs as one DynamicQuantizeMatMul), and
numbaq ``quantized_linear`` under the ``ONNX`` and ``PER_TOKEN_INT8`` schemes with
per-channel int8 weights (GOPS and the ratios take the faster of the two), and under the
7-bit ``PER_TOKEN_UINT7`` (its own ratio to ORT: on a CPU without VNNI it runs the
exact ``vpmaddubsw`` step). Each runtime is timed on its own, one after the other, with a
pause between them: their thread pools spin and would stall each other on two cores.
Times are medians; GOPS count a multiply-add as 2 operations. SQNR is against float64.

A second table times the GEMM core alone (uint8 x int8 -> int32, numbaq's
``gemm_i32``) as a percentage of the peak of the path's dot instruction (``vpdpbusd``,
or ``vpmaddwd`` without VNNI), measured here by :func:`peak_gops` (independent chains in
registers, operands from L1).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import tempfile
import time
import warnings

import numba
import numpy as np

import numbaq as nq
from numbaq import engine, roofline
from numbaq import matmul as mm
from numbaq.kernels import gemm as kg
from numbaq.kernels import paths

from ._common import machine, markdown_table, median_us, write_section

SHAPES = [
    (1, 768, 768),
    (8, 768, 3072),
    (32, 768, 768),
    (128, 768, 768),
    (128, 768, 3072),
    (128, 3072, 768),
    (512, 1024, 4096),
]
PAUSE_S = 0.5


# ------------------------------------------------------------------ the instruction peak
def peak_gops(path: str, threads: int) -> float:
    """:func:`numbaq.roofline.peak_gops` with long runs (5M steps, the best of 20)."""
    return roofline.peak_gops(path, threads, iters=5_000_000, runs=20)


# ------------------------------------------------------------------ the methods
def _problem(shape, seed=0):
    m, k, n = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    b = (rng.standard_normal(n) * 0.1).astype(np.float32)
    exact = x.astype(np.float64) @ w.T.astype(np.float64) + b
    return x, w, b, exact


def _numpy_methods(x, w, b):
    wt = np.ascontiguousarray(w.T)
    return {"numpy fp32": lambda: x @ wt + b}


def _numbaq_methods(x, w, b):
    qw = mm.quantize_weight(w)
    return {
        f"numbaq {name}": (lambda name=name: mm.quantized_linear(x, qw, b, name))
        for name in ("ONNX", "PER_TOKEN_INT8", "PER_TOKEN_UINT7")
    }


def _torch_methods(x, w, b):
    import torch

    lin = torch.nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
        lin.bias.copy_(torch.from_numpy(b))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qmodel = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8
        )
    tx = torch.from_numpy(x)

    def run(model):
        def call():
            with torch.inference_mode():
                return model(tx).numpy()

        return call

    return {"torch fp32": run(lin), "torch quantize_dynamic": run(qmodel)}


def _ort_session(w, b, threads, tmp):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    n, k = w.shape
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["XW"]),
            helper.make_node("Add", ["XW", "B"], ["Y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
        [numpy_helper.from_array(np.ascontiguousarray(w.T), "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    src, dst = os.path.join(tmp, "f.onnx"), os.path.join(tmp, "q.onnx")
    onnx.save(model, src)
    quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(dst, options, providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def _threads(runtime: str, n: int):
    """Limit a runtime's pool to ``n`` threads for the block."""
    if runtime == "numpy":
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            yield False
            return
        with threadpool_limits(n, user_api="blas"):  # not the OpenMP pool of numba
            yield True
    elif runtime == "torch":
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield True
        finally:
            torch.set_num_threads(before)
    else:
        before = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            yield True
        finally:
            numba.set_num_threads(before)


def _available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def run(shapes, threads, repeat):
    """Times ``{(shape, threads): {method: us}}`` and SQNR ``{shape: {method: dB}}``."""
    times: dict = {}
    sqnr: dict = {}
    problems = {shape: _problem(shape) for shape in shapes}
    runtimes = [("numpy", _numpy_methods), ("numbaq", _numbaq_methods)]
    if _available("torch"):
        runtimes.append(("torch", _torch_methods))
    for runtime, make in runtimes:
        for n in threads:
            with _threads(runtime, n):
                for shape in shapes:
                    x, w, b, exact = problems[shape]
                    for name, fn in make(x, w, b).items():
                        times.setdefault((shape, n), {})[name] = median_us(fn, repeat=repeat)
                        sqnr.setdefault(shape, {})[name] = nq.metrics.sqnr(exact, fn())
        time.sleep(PAUSE_S)
    if _available("onnxruntime"):
        with tempfile.TemporaryDirectory() as tmp:
            for n in threads:
                for shape in shapes:
                    x, w, b, exact = problems[shape]
                    session = _ort_session(w, b, n, tmp)
                    fn = lambda session=session, x=x: session.run(None, {"X": x})[0]  # noqa: E731
                    times[(shape, n)]["ORT dynamic QInt8"] = median_us(fn, repeat=repeat)
                    sqnr[shape]["ORT dynamic QInt8"] = nq.metrics.sqnr(exact, fn())
                    del session
        time.sleep(PAUSE_S)
    return times, sqnr


def exactness(m: int = 64, k: int = 768, n: int = 768) -> list[list[str]]:
    """Rows ``[operands, runtime, outputs wrong, largest error]``: the int32 product of
    uint8 x int8 operands from ONNX Runtime's ``MatMulInteger`` (one node, this CPU's
    MLAS kernel) and from numbaq's GEMM core, against numpy's exact int64 product.

    Operands: the full ranges (uniform codes), and the codes of a dynamic Linear
    (``ONNX`` activations of a Gaussian ``x``, per-channel weights of a Gaussian ``W``).
    """
    rng = np.random.default_rng(2)
    x = rng.standard_normal((m, k)).astype(np.float32)
    q, _, _ = nq.dynamic_quantize_linear(x)
    cases = {
        "uniform uint8 x int8": (
            rng.integers(0, 256, (m, k), dtype=np.uint8),
            rng.integers(-128, 128, (n, k), dtype=np.int8),
        ),
        "a Linear's codes": (q, mm.quantize_weight(rng.standard_normal((n, k))).q),
    }
    rows = []
    for name, (a, w) in cases.items():
        exact = a.astype(np.int64) @ w.T.astype(np.int64)
        results = {"numbaq": nq.matmul_integer(a, np.ascontiguousarray(w.T))}
        if _available("onnxruntime"):
            results["ONNX Runtime"] = _ort_matmul_integer(a, np.ascontiguousarray(w.T))
        for runtime, got in results.items():
            err = np.abs(got.astype(np.int64) - exact)
            rows.append([name, runtime, f"{100 * (err > 0).mean():.1f}%", f"{err.max()}"])
    return rows


def _ort_matmul_integer(a, b):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])],
        "mmi",
        [
            helper.make_tensor_value_info("A", TensorProto.UINT8, list(a.shape)),
            helper.make_tensor_value_info("B", TensorProto.INT8, list(b.shape)),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [a.shape[0], b.shape[1]])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"A": a, "B": b})[0]


def _core_call(path, m, k, n):
    """A call of the int32 GEMM core through ``numbaq.engine`` on random operands (lhs
    codes up to the path's ``lhs_max``: 127 for a 7-bit companion)."""
    rng = np.random.default_rng(1)
    lhs_max = paths.get(path).lhs_max
    a, _ = engine.shift_lhs(rng.integers(0, lhs_max + 1, (m, k), dtype=np.uint8))
    packed = kg.pack(rng.integers(-127, 128, (n, k), dtype=np.int8), path)
    c = np.empty((m, n), np.int32)
    return lambda: engine.gemm_i32(a, packed, n, c, path=path)


def gemm_core(shapes, threads, repeat):
    """``{(shape, threads): us}`` of numbaq's int32 GEMM core on pre-quantized operands."""
    path, _ = mm.gemm_path()
    out = {}
    for n_threads in threads:
        with _threads("numbaq", n_threads):
            for m, k, n in shapes:
                out[((m, k, n), n_threads)] = median_us(_core_call(path, m, k, n), repeat=repeat)
    return path, out


def gemm_paths(shapes, repeat):
    """``{(path, shape): us}``: every GEMM path this CPU runs, and their 7-bit companions
    (on codes up to 127), on one thread. The plain path and the AMX twin
    (``amx_emulated``, a curiosity: scalar code standing in for the tile instructions)
    are timed 3 times."""
    out = {}
    runs = paths.available()
    runs += [paths.SEVEN_BIT[p].name for p in runs if p in paths.SEVEN_BIT]
    with _threads("numbaq", 1):
        for path in runs:
            for m, k, n in shapes:
                out[(path, (m, k, n))] = median_us(
                    _core_call(path, m, k, n),
                    repeat=3 if path in ("plain", "amx_emulated") else repeat,
                )
    return out


BLOCK_SHAPES = [(1, 576, 1536), (256, 576, 1536), (1, 1536, 576), (256, 1536, 576), (1, 576, 49152)]
"""SmolLM2-135M's Linears (hidden 576, MLP 1536, vocabulary 49152), at decode (M = 1) and
prefill (M = 256)."""


def block_scales(threads, repeat) -> list[list[str]]:
    """Rows of the ``BLOCK_Q8_0`` Linear (scales per block of 32, in the tiles) against
    the default per-token scheme on the same per-channel weights."""
    rows = []
    for n in threads:
        with _threads("numbaq", n):
            for m, k, n_out in BLOCK_SHAPES:
                x, w, b, _ = _problem((m, k, n_out))
                qw = nq.quantize_weight(w)
                us = {
                    scheme: median_us(
                        functools.partial(nq.quantized_linear, x, qw, b, scheme),
                        repeat=max(3, repeat // (1 + n_out // 4096)),
                    )
                    for scheme in ("PER_TOKEN_UINT8", "BLOCK_Q8_0")
                }
                default, block = us["PER_TOKEN_UINT8"], us["BLOCK_Q8_0"]
                shape = f"{m},{k},{n_out}"
                rows.append([shape, n, f"{default:.0f}", f"{block:.0f}", f"{default / block:.2f}x"])
    return rows


def report(times, sqnr, core, peak, threads, path, by_path=None, exact=None, blocks=None) -> str:
    lines = [
        "## Dynamic quantized Linear (`y = x . W^T + b`)",
        "",
        "Command: `python -m benchmarks.bench_linear`. Median µs per call, all methods in one",
        f"run, each runtime timed on its own. Machine: {machine()}. numbaq GEMM path: `{path}`.",
        "Ratios are peer time / numbaq time (above 1: numbaq is faster).",
    ]
    for n in threads:
        header = [
            "M, K, N",
            "numpy fp32",
            "torch fp32",
            "torch qdyn",
            "ORT qdyn",
            "numbaq ONNX",
            "numbaq PER_TOKEN",
            "GOPS",
            "vs torch qdyn",
            "vs ORT",
            "numbaq UINT7",
            "UINT7 vs ORT",
        ]
        rows = []
        for shape in sorted({s for s, t in times if t == n}, key=SHAPES.index):
            t = times[(shape, n)]
            best = min(t["numbaq ONNX"], t["numbaq PER_TOKEN_INT8"])
            ops = 2 * shape[0] * shape[1] * shape[2]
            cell = lambda name, t=t: f"{t[name]:.0f}" if name in t else "-"  # noqa: E731
            ratio = lambda name, t=t, best=best: (  # noqa: E731
                f"{t[name] / best:.2f}x" if name in t else "-"
            )
            rows.append(
                [
                    ",".join(map(str, shape)),
                    cell("numpy fp32"),
                    cell("torch fp32"),
                    cell("torch quantize_dynamic"),
                    cell("ORT dynamic QInt8"),
                    cell("numbaq ONNX"),
                    cell("numbaq PER_TOKEN_INT8"),
                    f"{ops / best / 1e3:.0f}",
                    ratio("torch quantize_dynamic"),
                    ratio("ORT dynamic QInt8"),
                    cell("numbaq PER_TOKEN_UINT7"),
                    ratio("ORT dynamic QInt8", best=t["numbaq PER_TOKEN_UINT7"]),
                ]
            )
        lines += ["", f"### {n} thread{'s' if n > 1 else ''}", "", markdown_table(header, rows)]
    names = sorted({name for s in sqnr.values() for name in s})
    rows = [
        [",".join(map(str, s)), *(f"{sqnr[s].get(nm, float('nan')):.1f}" for nm in names)]
        for s in sorted(sqnr, key=SHAPES.index)
    ]
    lines += ["", "### SQNR against float64 (dB)", "", markdown_table(["M, K, N", *names], rows)]
    if core:
        lines += [
            "",
            "### GEMM core alone (uint8 x int8 -> int32), against the measured instruction peak",
            "",
            "Peak: "
            + ", ".join(
                f"{peak[n]:.0f} GOPS on {n} thread{'s' if n > 1 else ''}" for n in sorted(peak)
            )
            + f" (`peak_gops`: {paths.PATHS[path].instruction} on the path's register tile).",
            "",
        ]
        rows = []
        for (shape, n), us in sorted(core.items(), key=lambda i: (i[0][1], SHAPES.index(i[0][0]))):
            gops = 2 * shape[0] * shape[1] * shape[2] / us / 1e3
            rows.append(
                [
                    ",".join(map(str, shape)),
                    n,
                    f"{us:.0f}",
                    f"{gops:.0f}",
                    f"{100 * gops / peak[n]:.0f}%",
                ]
            )
        lines.append(markdown_table(["M, K, N", "threads", "µs", "GOPS", "% of peak"], rows))
    if exact:
        lines += [
            "",
            "### Exactness of the int32 product (64 x 768 x 768)",
            "",
            "Outputs that differ from numpy's int64 product. ONNX Runtime's `MatMulInteger`"
            " on this CPU; numbaq's GEMM core on the path above.",
            "",
            markdown_table(["operands", "runtime", "outputs wrong", "largest error"], exact),
        ]
    if blocks:
        lines += [
            "",
            "### Block scales (`BLOCK_Q8_0`) against the default scheme",
            "",
            "Per-channel int8 weights; `BLOCK_Q8_0` quantizes each block of 32 activations on"
            " its own and applies its scale to the block's int32 sum inside the tiles. µs;"
            " speed = default time / block time. Shapes: SmolLM2-135M's Linears.",
            "",
            markdown_table(
                ["M, K, N", "threads", "PER_TOKEN_UINT8", "BLOCK_Q8_0", "speed vs default"], blocks
            ),
        ]
    if by_path:
        shapes = sorted({s for _, s in by_path}, key=SHAPES.index)
        header = ["path", *(f"{','.join(map(str, s))} GOPS" for s in shapes)]
        rows = []
        for p in dict.fromkeys(p for p, _ in by_path):
            rows.append(
                [p, *(f"{2 * s[0] * s[1] * s[2] / by_path[(p, s)] / 1e3:.0f}" for s in shapes)]
            )
        lines += [
            "",
            "### Every GEMM path on one thread (int32 core)",
            "",
            "`numbaq.config.GEMM_PATH` forces one; `auto` takes the first the CPU runs."
            " A 7-bit companion (`avx2u7`) runs the `uint7` schemes' codes, up to 127.",
            "",
            markdown_table(header, rows),
        ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="three shapes, fewer repeats")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    shapes = [SHAPES[0], SHAPES[2], SHAPES[4]] if args.quick else SHAPES
    repeat = 20 if args.quick else 50
    threads = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})
    nq.warmup()
    path, _ = mm.gemm_path()
    peak, core = {}, {}
    if paths.PATHS[path].simd and paths.PATHS[path].tile == "simd":
        for n in threads:
            with _threads("numbaq", n):
                peak[n] = peak_gops(path, n)
        path, core = gemm_core(shapes, threads, repeat)
    by_path = gemm_paths([SHAPES[2], SHAPES[4]], repeat)
    time.sleep(PAUSE_S)
    times, sqnr = run(shapes, threads, repeat)
    blocks = block_scales(threads, repeat)
    text = report(times, sqnr, core, peak, threads, path, by_path, exactness(), blocks)
    print(text)
    if not args.no_write:  # one section per GEMM path: the machines differ
        write_section(f"linear-{path}", text)


if __name__ == "__main__":
    main()
