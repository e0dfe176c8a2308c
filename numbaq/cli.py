"""Command line: ``numbaq demo``, ``numbaq info``, ``numbaq generate`` (also ``python -m
numbaq ...``)."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from . import metrics, schemes
from ._torch_hint import TORCH_INSTALL
from .codes import dequantize, dynamic_quantize
from .kernels import paths
from .matmul import gemm_path, info, quantize_weight, quantized_linear
from .models import generate_cli
from .qparams import QScheme
from .roofline import median_us
from .schemes import DEFAULT_SCHEME

DEMO_SCHEMES = [
    ("per tensor, asymmetric (ONNX)", schemes.ONNX),
    ("per tensor, asymmetric 7-bit (TORCH)", schemes.TORCH),
    ("per tensor, symmetric int8", QScheme("int8", True, "tensor", narrow_range=True)),
    ("per token, asymmetric uint8", schemes.PER_TOKEN_UINT8),
    ("per token, symmetric int8", schemes.PER_TOKEN_INT8),
    ("per block of 32, symmetric (Q8_0)", schemes.BLOCK_Q8_0),
    ("per token, symmetric int4", QScheme("int4", True, "row", narrow_range=True)),
]


def realistic_activations(tokens: int = 64, hidden: int = 768, seed: int = 0) -> np.ndarray:
    """A transformer-like activation tensor, ``(tokens, hidden)`` float32.

    Gaussian values; each token has its own magnitude (log-normal, as after a residual
    add); 1% of the channels carry outliers 20x larger, as in LLM activations.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((tokens, hidden))
    x *= np.exp(rng.normal(0.0, 0.7, (tokens, 1)))
    outliers = rng.choice(hidden, max(1, hidden // 100), replace=False)
    x[:, outliers] *= 20.0
    return x.astype(np.float32)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)

    def fmt(row):
        cells = zip(row, widths)
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))

    return "\n".join([fmt(header), line, *map(fmt, rows)])


def demo(tokens: int = 64, hidden: int = 768, seed: int = 0, out=sys.stdout) -> dict:
    """Quantize one activation tensor under each scheme, then run it through a Linear.

    Returns ``{"quantization": [...], "linear": [...]}``: one dict per scheme
    (``name``, ``sqnr_db``, ``max_abs_error``, ``cosine``, ``n_scales``, ``us``) and one
    per Linear method (``name``, ``sqnr_db``, ``us``), so the numbers can be checked.
    """
    x = realistic_activations(tokens, hidden, seed)
    print(
        f"numbaq demo: dynamic quantization of a ({tokens}, {hidden}) float32 activation", file=out
    )
    print("  token magnitudes vary (log-normal), 1% of channels are x20 outliers\n", file=out)

    token = int(np.argmax(np.abs(x).max(axis=1)))
    q, qp = dynamic_quantize(x, schemes.PER_TOKEN_INT8)
    scale = float(qp.scale[token])
    print(
        f"Step by step, token {token} under PER_TOKEN_INT8 (symmetric, one scale per row):",
        file=out,
    )
    print(f"  absmax = {np.abs(x[token]).max():.4f}   scale = absmax / 127 = {scale:.6f}", file=out)
    print(f"  x[:6]      = {np.array2string(x[token, :6], precision=4)}", file=out)
    print("  q = clip(round(x / scale), -127, 127)", file=out)
    print(f"  q[:6]      = {q[token, :6]}", file=out)
    x_hat = dequantize(q, qp)
    print(
        f"  x_hat[:6]  = {np.array2string(x_hat[token, :6], precision=4)}   (x_hat = q * scale)",
        file=out,
    )
    print(
        f"  |x - x_hat| <= scale/2 = {scale / 2:.6f}: "
        f"{bool(np.all(np.abs(x[token] - x_hat[token]) <= scale / 2 * (1 + 1e-6)))}\n",
        file=out,
    )

    results, rows = [], []
    for label, scheme in DEMO_SCHEMES:
        dynamic_quantize(x, scheme)  # compile / warm the cache before timing
        times = []
        for _ in range(20):
            start = time.perf_counter()
            q, qp = dynamic_quantize(x, scheme)
            times.append(time.perf_counter() - start)
        x_hat = dequantize(q, qp)
        result = {
            "name": label,
            "scheme": scheme,
            "sqnr_db": metrics.sqnr(x, x_hat),
            "max_abs_error": metrics.max_abs_error(x, x_hat),
            "cosine": metrics.cosine(x, x_hat),
            "n_scales": int(qp.scale.size),
            "us": float(np.median(times) * 1e6),
        }
        results.append(result)
        rows.append(
            [
                label,
                scheme.dtype,
                str(result["n_scales"]),
                f"{result['sqnr_db']:.1f}",
                f"{result['max_abs_error']:.4f}",
                f"{result['cosine']:.6f}",
                f"{result['us']:.0f}",
            ]
        )
    header = ["scheme", "dtype", "scales", "SQNR dB", "max |err|", "cosine", "us"]
    print(_table(rows, header), file=out)
    print(
        "\nSQNR = 10 log10(sum x^2 / sum (x - x_hat)^2); every extra bit adds about 6 dB.", file=out
    )
    print(
        "Per-token scales follow each token's own range: the outliers of one token do not", file=out
    )
    print(
        "coarsen the grid of the others. That is what 'dynamic' buys over one fixed scale.",
        file=out,
    )
    return {"quantization": results, "linear": linear_demo(x, seed, out)}


def linear_demo(x: np.ndarray, seed: int = 0, out=sys.stdout) -> list[dict]:
    """The same activations through a dynamically quantized Linear (int8 weights).

    Returns one dict per method with ``sqnr_db`` against float64 and ``us``.
    """
    hidden = x.shape[1]
    rng = np.random.default_rng(seed + 1)
    w = (rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)).astype(np.float32)
    b = (rng.standard_normal(hidden) * 0.1).astype(np.float32)
    exact = x.astype(np.float64) @ w.T.astype(np.float64) + b
    qw = quantize_weight(w)
    path, reason = gemm_path()
    print(
        f"\nThe dynamic Linear y = x W^T + b, W ({hidden}, {hidden}) int8 per channel "
        f"({qw.nbytes / 1e6:.2f} MB; fp32 {w.nbytes / 1e6:.2f} MB)",
        file=out,
    )
    print(f"  integer GEMM path: {path} ({reason})\n", file=out)
    wt = np.ascontiguousarray(w.T)
    methods = [("numpy fp32", lambda: x @ wt + b)]
    methods += [
        (f"numbaq int8, {name}", lambda name=name: quantized_linear(x, qw, b, name))
        for name in ("ONNX", "TORCH", "PER_TOKEN_INT8", "BLOCK_Q8_0")
    ]
    results, rows = [], []
    for label, fn in methods:
        result = {"name": label, "sqnr_db": metrics.sqnr(exact, fn()), "us": median_us(fn)}
        results.append(result)
        rows.append([label, f"{result['sqnr_db']:.1f}", f"{result['us']:.0f}"])
    print(_table(rows, ["method", "SQNR dB", "us"]), file=out)
    return results


def _steps(total: int):
    """A tqdm bar when tqdm is installed, else a plain counter on stderr."""
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="numbaq demo", unit="step", file=sys.stderr)
    except ImportError:

        class _Plain:
            n = 0

            def update(self, k=1):
                self.n += k
                print(f"  step {self.n}/{total}", file=sys.stderr)

            def set_postfix_str(self, text):
                print(f"  {text}", file=sys.stderr)

            def close(self):
                pass

        return _Plain()


TORCH_CHILD = r"""
import json, sys, time, warnings
import numpy as np
import torch
from numbaq.models import torch_minilm
warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in torch 2.13
args = json.loads(sys.stdin.read())
torch.set_num_threads(args["threads"])
model, tokenizer = torch_minilm.build()
qmodel = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
encode = lambda m: torch_minilm.encode(m, tokenizer, args["sentences"])
reference, embeddings = encode(model), encode(qmodel)
times = {"fp32": [], "int8": []}
for _ in range(args["repeat"]):
    for name, m in (("fp32", model), ("int8", qmodel)):
        start = time.perf_counter(); encode(m); times[name].append(time.perf_counter() - start)
cosine = (reference * embeddings).sum(axis=1)
print(json.dumps({"times": times, "cosine_mean": float(cosine.mean()),
                  "cosine_min": float(cosine.min())}))
"""


def _torch_peer(sentences: list[str], repeat: int, threads: int) -> dict | None:
    """PyTorch's fp32 model and its ``quantize_dynamic`` (qint8 Linear) on the same
    weights and sentences (one padded batch), timed in a child process (a torch and a
    Numba thread pool in one process stall each other); None without torch."""
    import importlib.util
    import json
    import subprocess

    if importlib.util.find_spec("torch") is None:
        return None
    request = {"sentences": sentences, "repeat": repeat, "threads": threads}
    done = subprocess.run(
        [sys.executable, "-c", TORCH_CHILD],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode:
        lines = done.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def faster(ratio: float) -> str:
    """``"2.00x faster"`` for a time ratio of 2, ``"2.00x slower"`` for 0.5."""
    return f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"


def _threads(n: int) -> str:
    return f"{n} thread{'s' if n != 1 else ''}"


def _spread(times: list[float]) -> str:
    ms = np.asarray(times) * 1e3
    return f"{ms.min():.1f}-{ms.max():.1f}"


def model_demo(
    sentences=None, scheme=None, repeat: int = 7, out=sys.stdout, torch: bool | None = None
) -> dict:
    """Encode sentences with all-MiniLM-L6-v2 in fp32 and dynamically quantized int8.

    fp32 and int8 are timed in turn, ``repeat`` times each, and reported as medians (the
    machine may be shared: one pair of runs can be far off). With PyTorch installed (or
    ``torch=True``), PyTorch's fp32 model and ``quantize_dynamic`` on the same weights
    are timed too, in a child process, with the same number of threads.

    Returns ``{"fp32_ms", "int8_ms", "speedup", "speedup_range", "cosine_mean",
    "cosine_min", "fp32_mb", "int8_mb", "scheme", "torch"}`` (``torch``: None, or a dict
    with ``fp32_ms``, ``int8_ms``, ``cosine_mean``, ``cosine_min``, or ``error``) and
    prints them as a table.
    """
    import numba

    from .convert import quantize_dynamic
    from .models import minilm
    from .models.sentences import SENTENCES

    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    sentences = list(SENTENCES if sentences is None else sentences)
    scheme = schemes.resolve(scheme)
    machine = info()
    spec = paths.get(machine["gemm_path"])
    # Without VNNI, exact 8-bit products run at fp32's FMA width (vpmaddwd): the 7-bit
    # scheme's vpmaddubsw path is the fast one there, so it is timed beside the default.
    seven_bit = (
        spec.dot != "dpbusd" and machine["gemm_path_7bit"] != spec.name and scheme is DEFAULT_SCHEME
    )
    bar = _steps(3 + repeat + (torch is not False))
    bar.set_postfix_str("loading all-MiniLM-L6-v2")
    model = minilm.load()
    bar.update()
    bar.set_postfix_str(f"quantizing 24 Linear layers, QKV fused ({scheme.name or 'custom'})")
    qmodel = quantize_dynamic(model, scheme=scheme, progress=False)
    models = {"fp32": model, "int8": qmodel}
    if seven_bit:
        models["7-bit"] = quantize_dynamic(model, scheme="PER_TOKEN_UINT7", progress=False)
    bar.update()
    bar.set_postfix_str("first encode (compiles the kernels once; cached on disk after)")
    encoded = {name: m.encode(sentences) for name, m in models.items()}
    reference, embeddings = encoded["fp32"], encoded["int8"]
    bar.update()
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeat):  # in turn, so that a busy moment hits both alike
        bar.set_postfix_str(f"timing {', '.join(models)} in turn")
        for name, m in models.items():
            start = time.perf_counter()
            m.encode(sentences)
            times[name].append(time.perf_counter() - start)
        bar.update()
    peer = None
    if torch is not False:
        bar.set_postfix_str("PyTorch fp32 and quantize_dynamic (child process)")
        peer = _torch_peer(sentences, repeat, numba.get_num_threads())
        if peer is None and torch:
            raise ImportError(f"model_demo(torch=True) needs PyTorch; {TORCH_INSTALL}")
        bar.update()
    bar.close()
    cosine = (reference * embeddings).sum(axis=1)
    ratios = np.asarray(times["fp32"]) / np.asarray(times["int8"])

    def weights(m):
        return (
            sum(v.nbytes for k, v in m.parameters().items() if "layer" in k and "norm" not in k)
            / 1e6
        )

    result = {
        "sentences": len(sentences),
        "repeat": repeat,
        "fp32_ms": float(np.median(times["fp32"]) * 1e3),
        "int8_ms": float(np.median(times["int8"]) * 1e3),
        # the median of the rounds' ratios: each round times fp32 and int8 back to back,
        # so a slow spell of a shared machine cancels out of its ratio
        "speedup": float(np.median(ratios)),
        "speedup_range": (float(ratios.min()), float(ratios.max())),
        "cosine_mean": float(cosine.mean()),
        "cosine_min": float(cosine.min()),
        "fp32_mb": weights(model),
        "int8_mb": weights(qmodel),
        "scheme": scheme.name or scheme.describe(),
        "cpu": f"{machine['cpu_model']} ({machine['cpu']})",
        "gemm_path": machine["gemm_path"],
        "threads": numba.get_num_threads(),
        "torch": None,
    }
    print(
        f"\nall-MiniLM-L6-v2 on {len(sentences)} sentences (ragged batch, no padding), "
        f"int8 scheme {result['scheme']} with per-channel int8 weights; "
        f"{_threads(numba.get_num_threads())}, median of {repeat} runs each\n"
        f"CPU: {result['cpu']}; GEMM path {spec.name}: {spec.instruction}; "
        f"{_threads(result['threads'])}\n",
        file=out,
    )
    rows = [
        [
            "fp32 (numbaq, numpy)",
            f"{result['fp32_ms']:.1f}",
            _spread(times["fp32"]),
            "1.000000",
            "1.000000",
            f"{result['fp32_mb']:.1f}",
        ],
        [
            "int8 (numbaq)",
            f"{result['int8_ms']:.1f}",
            _spread(times["int8"]),
            f"{result['cosine_mean']:.6f}",
            f"{result['cosine_min']:.6f}",
            f"{result['int8_mb']:.1f}",
        ],
    ]
    if seven_bit:
        cos7 = (reference * encoded["7-bit"]).sum(axis=1)
        result["7bit_ms"] = float(np.median(times["7-bit"]) * 1e3)
        rows.append(
            ["int8 (numbaq, 7-bit PER_TOKEN_UINT7)", f"{result['7bit_ms']:.1f}"]
            + [_spread(times["7-bit"]), f"{cos7.mean():.6f}", f"{cos7.min():.6f}"]
            + [f"{result['int8_mb']:.1f}"]
        )
    if peer is not None and "error" not in peer:
        result["torch"] = {
            "fp32_ms": float(np.median(peer["times"]["fp32"]) * 1e3),
            "int8_ms": float(np.median(peer["times"]["int8"]) * 1e3),
            "cosine_mean": peer["cosine_mean"],
            "cosine_min": peer["cosine_min"],
        }
        rows.append(
            ["fp32 (PyTorch)", f"{result['torch']['fp32_ms']:.1f}", _spread(peer["times"]["fp32"])]
            + ["1.000000", "1.000000", f"{result['fp32_mb']:.1f}"]
        )
        rows.append(
            [
                "int8 (PyTorch quantize_dynamic)",
                f"{result['torch']['int8_ms']:.1f}",
                _spread(peer["times"]["int8"]),
                f"{peer['cosine_mean']:.6f}",
                f"{peer['cosine_min']:.6f}",
                f"{result['int8_mb']:.1f}",
            ]
        )
    elif peer is not None:
        result["torch"] = {"error": peer["error"]}
    header = ["model", "ms (median)", "range ms", "cosine mean", "cosine min", "Linear weights MB"]
    print(_table(rows, header), file=out)
    low, high = result["speedup_range"]
    print(
        f"\nint8 is {faster(result['speedup'])} than fp32 here (median of the {repeat} "
        "rounds' ratios; "
        f"run by run {low:.2f}x to {high:.2f}x).\nCosine is against the fp32 embedding of "
        "the same sentence, within each framework.",
        file=out,
    )
    if seven_bit:
        print(
            f"No VNNI on the {spec.name} path: exact 8-bit products run on {spec.instruction}, the "
            "width of fp32's FMA, so int8 cannot beat fp32's arithmetic here. The 7-bit "
            f"scheme (codes 0..127) runs {paths.get(machine['gemm_path_7bit']).instruction}: "
            f"{faster(result['fp32_ms'] / result['7bit_ms'])} than fp32.",
            file=out,
        )
    if result["torch"] is not None and "error" not in result["torch"]:
        t = result["torch"]
        print(
            f"numbaq int8 is {faster(t['int8_ms'] / result['int8_ms'])} than PyTorch's "
            f"quantize_dynamic on the same weights ({t['int8_ms']:.1f} ms; PyTorch runs one "
            "padded batch, in a child process).",
            file=out,
        )
    elif result["torch"] is not None:
        print(f"PyTorch's quantize_dynamic did not run: {result['torch']['error']}", file=out)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="numbaq", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser(
        "demo", help="all-MiniLM-L6-v2 in fp32 and int8 (or, without it, the quantization math)"
    )
    p_demo.add_argument("--scheme", default=None, help="activation scheme, e.g. BLOCK_Q8_0")
    p_demo.add_argument("--threads", type=int, default=None, help="Numba threads to use")
    p_demo.add_argument("--sentences", default=None, help="a text file, one sentence a line")
    p_demo.add_argument("--synthetic", action="store_true", help="the synthetic demo only")
    p_demo.add_argument("--tokens", type=int, default=64, help="synthetic demo: tokens")
    p_demo.add_argument("--hidden", type=int, default=768, help="synthetic demo: features")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--repeat", type=int, default=7, help="timed runs of each model")
    p_demo.add_argument(
        "--no-torch", action="store_true", help="skip PyTorch's quantize_dynamic beside numbaq's"
    )
    sub.add_parser("info", help="CPU features, GEMM path and threads")
    generate_cli.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "generate":
        return generate_cli.run(args)
    if args.command == "info":
        from .matmul import info

        for key, value in info().items():
            print(f"{key}: {value}")
        return 0
    if args.threads is not None:
        import numba

        numba.set_num_threads(args.threads)
    if args.scheme is not None:
        schemes.get(args.scheme)  # a clear error for an unknown name, before any work
    from .models import minilm

    if args.synthetic or not minilm.available():
        if not args.synthetic:
            print(f"numbaq demo: {minilm.INSTALL}.\nRunning the synthetic demo instead.\n")
        demo(args.tokens, args.hidden, args.seed)
        return 0
    sentences = None
    if args.sentences:
        with open(args.sentences, encoding="utf-8") as f:
            sentences = [line.strip() for line in f if line.strip()]
        if not sentences:
            parser.error(f"--sentences {args.sentences}: no sentences in the file")
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    model_demo(sentences, args.scheme, args.repeat, torch=False if args.no_torch else None)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
