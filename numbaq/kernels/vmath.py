"""GELU on a whole float32 vector register (``f32x16`` or ``f32x8``), for the GEMM epilogue.

:func:`numbaq.kernels.mathf._gelu` is scalar code that LLVM vectorizes inside a loop; in
the epilogue's short rows (one panel, 64 columns) that loop ran at about 1 ns an element
on a Zen 4 core. :func:`_gelu_vec` is the same function on the vector the epilogue has
just dequantized, still in a register: the same float32 operations in the same order,
lane by lane, so every bit equals ``_gelu``'s (a test checks it on every float32 class).

The intrinsics here take either vector width (their types come from the argument), so
one ``_gelu_vec`` serves both; none of them uses an instruction a plain x86-64 lacks
beyond the vector width itself (``rint`` is SSE4.1's ``roundps`` / AVX-512's
``vrndscaleps``).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..config import jit
from .mathf import (
    _EXP_MAX,
    _EXP_MIN,
    _HALF,
    _INV_SQRT2,
    _LN2_HI,
    _LN2_LO,
    _LOG2E,
    _ONE,
)
from .simd import _F32Vector, _I32Vector, i32x8, i32x16

_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_INT = {16: i32x16, 8: i32x8}


def _float_vector(v) -> bool:
    return isinstance(v, _F32Vector)


def _llvm(v) -> ir.VectorType:
    return ir.VectorType(_I32 if isinstance(v, _I32Vector) else _F32, v.lanes)


@intrinsic
def vsplat(typingctx, like, x):
    """A vector of ``like``'s type with the scalar ``x`` in every lane."""
    if not (isinstance(like, (_F32Vector, _I32Vector)) and isinstance(x, types.Number)):
        return None

    def codegen(context, builder, sig, args):
        vty = _llvm(sig.args[0])
        elem = types.float32 if isinstance(sig.args[0], _F32Vector) else types.int32
        value = context.cast(builder, args[1], sig.args[1], elem)
        vec = builder.insert_element(ir.Constant(vty, None), value, _I32(0))
        mask = ir.Constant(ir.VectorType(_I32, vty.count), [0] * vty.count)
        return builder.shuffle_vector(vec, ir.Constant(vty, None), mask)

    return like(like, x), codegen


def _binary(op: str):
    @intrinsic
    def binary(typingctx, a, b):
        if not (a == b and isinstance(a, (_F32Vector, _I32Vector))):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, op)(*args)

        return a(a, b), codegen

    return binary


fadd, fsub, fmul, fdiv = (_binary(op) for op in ("fadd", "fsub", "fmul", "fdiv"))
iadd, shl = _binary("add"), _binary("shl")


def _select(predicate: str):
    """``a <predicate> b ? a : b`` lane by lane: Numba's own ``max``/``min`` of two floats."""

    @intrinsic
    def select(typingctx, a, b):
        if not (a == b and _float_vector(a)):
            return None

        def codegen(context, builder, sig, args):
            return builder.select(builder.fcmp_ordered(predicate, *args), *args)

        return a(a, b), codegen

    return select


fmax, fmin = _select(">"), _select("<")


def _unary_call(name: str):
    @intrinsic
    def unary(typingctx, a):
        if not _float_vector(a):
            return None

        def codegen(context, builder, sig, args):
            vty = _llvm(sig.args[0])
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vty, [vty]), f"llvm.{name}.v{vty.count}f32"
            )
            return builder.call(fn, args)

        return a(a), codegen

    return unary


fabs, rint = _unary_call("fabs"), _unary_call("rint")


@intrinsic
def to_int(typingctx, a):
    """float32 lanes to int32, truncating (``np.int32(x)``)."""
    if not _float_vector(a):
        return None

    def codegen(context, builder, sig, args):
        return builder.fptosi(args[0], ir.VectorType(_I32, sig.args[0].lanes))

    return _INT[a.lanes](a), codegen


@intrinsic
def from_bits(typingctx, a):
    """int32 lanes reinterpreted as float32 (a bitcast)."""
    if not isinstance(a, _I32Vector):
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.VectorType(_F32, sig.args[0].lanes))

    return _F32Vector(a.lanes)(a), codegen


@intrinsic
def negate_below(typingctx, x, y):
    """``y if x >= 0 else -y`` lane by lane (``-y`` as Numba writes it: ``-0.0 - y``)."""
    if not (x == y and _float_vector(x)):
        return None

    def codegen(context, builder, sig, args):
        vty = _llvm(sig.args[0])
        minus = builder.fsub(ir.Constant(vty, [-0.0] * vty.count), args[1])
        nonneg = builder.fcmp_ordered(">=", args[0], ir.Constant(vty, [0.0] * vty.count))
        return builder.select(nonneg, args[1], minus)

    return x(x, y), codegen


@jit(inline=True)
def _exp_vec(x):
    """:func:`numbaq.kernels.mathf._exp` on a vector, operation for operation."""
    x = fmin(fmax(x, vsplat(x, _EXP_MIN)), vsplat(x, _EXP_MAX))
    n = rint(fmul(x, vsplat(x, _LOG2E)))
    r = fsub(fsub(x, fmul(n, vsplat(x, _LN2_HI))), fmul(n, vsplat(x, _LN2_LO)))
    p = vsplat(x, np.float32(1 / 720))
    for c in (1 / 120, 1 / 24, 1 / 6, 0.5, 1.0, 1.0):
        p = fadd(fmul(p, r), vsplat(x, np.float32(c)))
    bits = shl(iadd(to_int(n), vsplat(to_int(n), 127)), vsplat(to_int(n), 23))
    return fmul(p, from_bits(bits))


@jit(inline=True)
def _erf_vec(x):
    """:func:`numbaq.kernels.mathf._erf` on a vector, operation for operation."""
    a = fmin(fabs(x), vsplat(x, np.float32(4.0)))
    one = vsplat(x, _ONE)
    t = fdiv(one, fadd(one, fmul(vsplat(x, np.float32(0.3275911)), a)))
    poly = vsplat(x, np.float32(1.061405429))
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly = fadd(vsplat(x, np.float32(c)), fmul(t, poly))
    poly = fmul(t, poly)
    minus_a = fsub(vsplat(x, np.float32(-0.0)), a)
    y = fsub(one, fmul(poly, _exp_vec(fmul(minus_a, a))))
    return negate_below(x, y)


@jit(inline=True)
def _gelu_vec(x):
    """Exact GELU, ``0.5 x (1 + erf(x / sqrt 2))``, on a float32 vector: the bits of
    :func:`numbaq.kernels.mathf._gelu` in every lane."""
    erf = _erf_vec(fmul(x, vsplat(x, _INV_SQRT2)))
    return fmul(fmul(vsplat(x, _HALF), x), fadd(vsplat(x, _ONE), erf))
