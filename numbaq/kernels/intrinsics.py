"""Scalar LLVM intrinsics the kernels need and Numba does not expose.

``f32_from_bits(i)``
    Reinterpret a 32-bit integer's bits as float32 (a bitcast, no conversion).
``fma_f32(a, b, c)``
    ``a * b + c`` rounded once (``llvm.fma.f32``), as fbgemm's ``_mm256_fmadd_ps``.
    LLVM vectorizes it to ``vfmadd`` inside loops.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def f32_from_bits(typingctx, bits):
    """Reinterpret a 32-bit integer's bits as a float32."""
    if not isinstance(bits, types.Integer) or bits.bitwidth != 32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def fma_f32(typingctx, a, b, c):
    """``a * b + c`` in float32 with a single rounding."""
    if not all(t == types.float32 for t in (a, b, c)):
        return None

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(f32, [f32, f32, f32]), "llvm.fma.f32"
        )
        return builder.call(fn, args)

    return types.float32(a, b, c), codegen
