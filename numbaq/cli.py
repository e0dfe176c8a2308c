"""Command line: ``numbaq demo`` (also ``python -m numbaq demo``)."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from . import metrics, schemes
from .matmul import gemm_path, quantize_weight, quantized_linear
from .ops import dequantize, dynamic_quantize
from .qparams import QScheme

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


def _median_us(fn, repeat: int = 30) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e6)


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
        result = {"name": label, "sqnr_db": metrics.sqnr(exact, fn()), "us": _median_us(fn)}
        results.append(result)
        rows.append([label, f"{result['sqnr_db']:.1f}", f"{result['us']:.0f}"])
    print(_table(rows, ["method", "SQNR dB", "us"]), file=out)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="numbaq", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="show the quantization math on a realistic tensor")
    p_demo.add_argument("--tokens", type=int, default=64)
    p_demo.add_argument("--hidden", type=int, default=768)
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--threads", type=int, default=None, help="Numba threads to use")
    args = parser.parse_args(argv)
    if args.threads is not None:
        import numba

        numba.set_num_threads(args.threads)
    if args.command == "demo":
        demo(args.tokens, args.hidden, args.seed)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
