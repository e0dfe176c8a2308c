"""SIMD vectors of int32 for Numba, and the dot-product steps of the integer GEMM.

Numba has no vector types, so this module registers two: ``i32x16`` (a zmm
register, ``<16 x i32>``) and ``i32x8`` (ymm, ``<8 x i32>``). Locals of these
types become registers after LLVM's mem2reg, so a micro-kernel written as plain
Numba Python with a fixed set of vector locals compiles to a register tile.

Each 32-bit lane of a weight vector holds 4 consecutive K values (int8) of one
output column; an activation vector holds the same 4 uint8 values in every lane
(a 4-byte broadcast). One dot step adds, per lane::

    acc[lane] += a[0]*w[lane,0] + a[1]*w[lane,1] + a[2]*w[lane,2] + a[3]*w[lane,3]

Intrinsics, for ``W`` in (16, 8) lanes:

``zero{W}()``, ``load{W}(arr, i)``, ``bcast{W}(arr, i)``, ``store{W}(arr, i, v)``
    ``load``/``bcast`` read bytes at element index ``i`` of a 1-D int8/uint8 array;
    ``store`` writes ``v`` at element ``i`` of a 1-D int32 array.
``dpbusd{W}(acc, a, w)``
    The step above in one VNNI instruction (``vpdpbusd``; u8 x s8, int32 wrap).
    Compiling it for a CPU without AVX512-VNNI aborts the process, so
    :mod:`numbaq.kernels.gemm` only ever compiles it after checking the CPU.
``pmaddwd{W}(acc, a, w)``
    The same step without VNNI, exact: bytes widened to int16, then two
    ``vpmaddwd`` (AVX-512BW for 16 lanes, AVX2 for 8). It expects the weights in the
    *pairs* layout: the first half of the vector holds K values 0,1 of every lane,
    the second half K values 2,3.
``pmaddubsw8(acc, a, w)``
    The same step for lhs codes up to 127 (AVX2): ``vpmaddubsw`` then ``vpmaddwd`` by
    ones, with no widening; exact in that range, and 1.3x the speed of ``pmaddwd8``.

For the dequantizing epilogue of a full panel, one vector of columns at a time
(``f32x16``/``f32x8`` are float vectors):

``loadi{W}(arr, i)``, ``loadf{W}(arr, i)``, ``storef{W}(arr, i, v)``
    Vector load of a 1-D int32 / float32 array (``loadf`` also reads int8 codes,
    widened exactly to float32), vector store of float32.
``splati{W}(x)``, ``splatf{W}(x)``
    A scalar in every lane.
``isub{W}``, ``imul{W}``, ``tofloat{W}``, ``fmul{W}``, ``fadd{W}``
    Lane-wise int32 subtract and multiply (wrapping), int32 -> float32 conversion,
    float32 multiply and add (IEEE, one rounding each, never fused).

For 4-bit weights (:mod:`numbaq.kernels.q4`), ``W`` in (16, 8):

``and{W}(a, b)``, ``shr{W}(a, n)``
    Lane-wise bitwise and, and logical shift right by ``n`` bits (a scalar).
``loadh{W}(arr, i)``
    ``W`` IEEE half-precision values (a 1-D uint16 array of their bits) widened exactly
    to float32.

For the decoder's attention (:mod:`numbaq.kernels.decoder`), whose bits no other path
has to match: ``ffma16(a, b, c)``, the fused ``a * b + c``, and ``fmax16(a, b)``.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

_I8 = ir.IntType(8)
_I16 = ir.IntType(16)
_I32 = ir.IntType(32)


_F32 = ir.FloatType()


class _I32Vector(types.Type):
    def __init__(self, lanes: int):
        self.lanes = lanes
        super().__init__(name=f"i32x{lanes}")


class _F32Vector(types.Type):
    def __init__(self, lanes: int):
        self.lanes = lanes
        super().__init__(name=f"f32x{lanes}")


@register_model(_I32Vector)
class _I32VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(_I32, fe_type.lanes))


@register_model(_F32Vector)
class _F32VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(_F32, fe_type.lanes))


i32x16 = _I32Vector(16)
i32x8 = _I32Vector(8)
f32x16 = _F32Vector(16)
f32x8 = _F32Vector(8)


def _pointer(context, builder, arrty, arr, index):
    """Address of element ``index`` of a 1-D array."""
    ary = context.make_array(arrty)(context, builder, value=arr)
    return builder.gep(ary.data, [index])


def _declare(builder, name, ret, args):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, args), name)


def _is_byte_array(arr):
    return isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype.bitwidth == 8


def _make(lanes: int, vty):
    llvm_vty = ir.VectorType(_I32, lanes)
    bits = 32 * lanes

    @intrinsic
    def zero(typingctx):
        def codegen(context, builder, sig, args):
            return ir.Constant(llvm_vty, None)

        return vty(), codegen

    @intrinsic
    def load(typingctx, arr, index):
        if not (_is_byte_array(arr) and isinstance(index, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            ptr = _pointer(context, builder, sig.args[0], args[0], args[1])
            return builder.load(builder.bitcast(ptr, llvm_vty.as_pointer()), align=1)

        return vty(arr, index), codegen

    @intrinsic
    def bcast(typingctx, arr, index):
        if not (_is_byte_array(arr) and isinstance(index, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            ptr = _pointer(context, builder, sig.args[0], args[0], args[1])
            word = builder.load(builder.bitcast(ptr, _I32.as_pointer()), align=1)
            vec = builder.insert_element(ir.Constant(llvm_vty, None), word, _I32(0))
            mask = ir.Constant(ir.VectorType(_I32, lanes), [0] * lanes)
            return builder.shuffle_vector(vec, ir.Constant(llvm_vty, None), mask)

        return vty(arr, index), codegen

    @intrinsic
    def store(typingctx, arr, index, vec):
        if not (isinstance(arr, types.Array) and arr.dtype == types.int32 and vec == vty):
            return None

        def codegen(context, builder, sig, args):
            ptr = _pointer(context, builder, sig.args[0], args[0], args[1])
            builder.store(args[2], builder.bitcast(ptr, llvm_vty.as_pointer()), align=1)
            return context.get_dummy_value()

        return types.none(arr, index, vec), codegen

    @intrinsic
    def dpbusd(typingctx, acc, a, w):
        if not (acc == a == w == vty):
            return None

        def codegen(context, builder, sig, args):
            fn = _declare(builder, f"llvm.x86.avx512.vpdpbusd.{bits}", llvm_vty, [llvm_vty] * 3)
            return builder.call(fn, args)

        return vty(acc, a, w), codegen

    @intrinsic
    def pmaddwd(typingctx, acc, a, w):
        if not (acc == a == w == vty):
            return None

        def codegen(context, builder, sig, args):
            acc_v, a_v, w_v = args
            i16v = ir.VectorType(_I16, 2 * lanes)
            name = "llvm.x86.avx512.pmaddw.d.512" if lanes == 16 else "llvm.x86.avx2.pmadd.wd"
            madd = _declare(builder, name, llvm_vty, [i16v, i16v])
            splat = lambda c: ir.Constant(llvm_vty, [c] * lanes)  # noqa: E731
            # activations: every lane holds bytes a0 a1 a2 a3 (uint8); widen to the
            # int16 pairs (a0, a1) and (a2, a3), zero-extended
            a01 = builder.or_(
                builder.and_(a_v, splat(0xFF)),
                builder.shl(builder.and_(a_v, splat(0xFF00)), splat(8)),
            )
            a23 = builder.or_(
                builder.and_(builder.lshr(a_v, splat(16)), splat(0xFF)),
                builder.shl(builder.lshr(a_v, splat(24)), splat(16)),
            )
            # weights (pairs layout): low half = K values 0,1 of each lane, high = 2,3
            w_bytes = builder.bitcast(w_v, ir.VectorType(_I8, 4 * lanes))
            halves = []
            for h in range(2):
                idx = ir.Constant(
                    ir.VectorType(_I32, 2 * lanes), list(range(h * 2 * lanes, (h + 1) * 2 * lanes))
                )
                half = builder.shuffle_vector(w_bytes, w_bytes, idx)
                halves.append(builder.sext(half, i16v))
            lo = builder.call(madd, [builder.bitcast(a01, i16v), halves[0]])
            hi = builder.call(madd, [builder.bitcast(a23, i16v), halves[1]])
            return builder.add(acc_v, builder.add(lo, hi))

        return vty(acc, a, w), codegen

    return zero, load, bcast, store, dpbusd, pmaddwd


@intrinsic
def pmaddubsw8(typingctx, acc, a, w):
    """``acc + vpmaddwd(vpmaddubsw(a, w), 1)``: the dot step of the 7-bit path.

    ``vpmaddubsw`` multiplies uint8 ``a`` by int8 ``w`` and adds adjacent pairs into
    int16 *with saturation*; ``vpmaddwd`` by ones adds the pairs of a lane into int32.
    Exact only while every pair fits int16: for lhs codes ``a <= 127`` the largest is
    ``127 * 128 * 2 = 32512 < 32767`` (the ``uint7`` schemes). Weights: ``vnni`` layout.
    """
    if not (acc == a == w == i32x8):
        return None

    def codegen(context, builder, sig, args):
        acc_v, a_v, w_v = args
        b32, h16 = ir.VectorType(_I8, 32), ir.VectorType(_I16, 16)
        maddubs = _declare(builder, "llvm.x86.avx2.pmadd.ub.sw", h16, [b32, b32])
        madd = _declare(builder, "llvm.x86.avx2.pmadd.wd", ir.VectorType(_I32, 8), [h16, h16])
        pairs = builder.call(maddubs, [builder.bitcast(a_v, b32), builder.bitcast(w_v, b32)])
        return builder.add(acc_v, builder.call(madd, [pairs, ir.Constant(h16, [1] * 16)]))

    return i32x8(acc, a, w), codegen


def _make_prefetch(write: int):
    @intrinsic
    def prefetch_(typingctx, arr, index):
        ok = isinstance(arr, types.Array) and arr.ndim == 1
        if not (ok and isinstance(index, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            ptr = _pointer(context, builder, sig.args[0], args[0], args[1])
            i8p = _I8.as_pointer()
            fn = _declare(builder, "llvm.prefetch.p0", ir.VoidType(), [i8p, _I32, _I32, _I32])
            builder.call(fn, [builder.bitcast(ptr, i8p), _I32(write), _I32(3), _I32(1)])
            return context.get_dummy_value()

        return types.none(arr, index), codegen

    return prefetch_


prefetchw = _make_prefetch(1)
"""``prefetchw(arr, i)``: hint that element ``i`` of a 1-D array will be written soon."""
prefetch = _make_prefetch(0)
"""``prefetch(arr, i)``: hint that element ``i`` of a 1-D array will be read soon (a
prefetch never faults, even past the array's end)."""


def _make_epilogue(lanes: int, ity, fty):
    """Vector ops the in-register epilogue needs (see module notes)."""
    ivec = ir.VectorType(_I32, lanes)
    fvec = ir.VectorType(_F32, lanes)

    def vector_load(dtype, vty, llvm_vty):
        widen = dtype == types.float32  # int8 arrays too, widened exactly to float32

        @intrinsic
        def load(typingctx, arr, index):
            ok = isinstance(arr, types.Array) and arr.ndim == 1
            ok = ok and (arr.dtype == dtype or (widen and arr.dtype == types.int8))
            if not (ok and isinstance(index, types.Integer)):
                return None

            def codegen(context, builder, sig, args):
                ptr = _pointer(context, builder, sig.args[0], args[0], args[1])
                if sig.args[0].dtype != types.int8:
                    return builder.load(builder.bitcast(ptr, llvm_vty.as_pointer()), align=4)
                codes = ir.VectorType(_I8, lanes)
                return builder.sitofp(
                    builder.load(builder.bitcast(ptr, codes.as_pointer()), align=1), fvec
                )

            return vty(arr, index), codegen

        return load

    @intrinsic
    def storef(typingctx, arr, index, vec):
        if not (isinstance(arr, types.Array) and arr.dtype == types.float32 and vec == fty):
            return None

        def codegen(context, builder, sig, args):
            ptr = _pointer(context, builder, sig.args[0], args[0], args[1])
            builder.store(args[2], builder.bitcast(ptr, fvec.as_pointer()), align=4)
            return context.get_dummy_value()

        return types.none(arr, index, vec), codegen

    def splat(scalar_ty, vty, llvm_vty, elem):
        @intrinsic
        def splat_(typingctx, x):
            if not isinstance(x, scalar_ty):
                return None

            def codegen(context, builder, sig, args):
                value = context.cast(builder, args[0], sig.args[0], elem)
                vec = builder.insert_element(ir.Constant(llvm_vty, None), value, _I32(0))
                mask = ir.Constant(ir.VectorType(_I32, lanes), [0] * lanes)
                return builder.shuffle_vector(vec, ir.Constant(llvm_vty, None), mask)

            return vty(x), codegen

        return splat_

    def binary(vty, op):
        @intrinsic
        def binary_(typingctx, a, b):
            if not (a == b == vty):
                return None

            def codegen(context, builder, sig, args):
                return getattr(builder, op)(*args)

            return vty(a, b), codegen

        return binary_

    @intrinsic
    def tofloat(typingctx, v):
        if v != ity:
            return None

        def codegen(context, builder, sig, args):
            return builder.sitofp(args[0], fvec)

        return fty(v), codegen

    return (
        vector_load(types.int32, ity, ivec),
        vector_load(types.float32, fty, fvec),
        storef,
        splat(types.Integer, ity, ivec, types.int32),
        splat((types.Float, types.Integer), fty, fvec, types.float32),
        binary(ity, "sub"),
        binary(ity, "mul"),
        tofloat,
        binary(fty, "fmul"),
        binary(fty, "fadd"),
    )


zero16, load16, bcast16, store16, dpbusd16, pmaddwd16 = _make(16, i32x16)
zero8, load8, bcast8, store8, dpbusd8, pmaddwd8 = _make(8, i32x8)
(loadi16, loadf16, storef16, splati16, splatf16, isub16, imul16, tofloat16, fmul16, fadd16) = (
    _make_epilogue(16, i32x16, f32x16)
)
(loadi8, loadf8, storef8, splati8, splatf8, isub8, imul8, tofloat8, fmul8, fadd8) = _make_epilogue(
    8, i32x8, f32x8
)


def _make_nibbles(lanes: int, ity, fty):
    """``and``, ``shr`` and ``loadh`` for ``lanes`` lanes (module notes)."""
    ivec = ir.VectorType(_I32, lanes)

    @intrinsic
    def and_(typingctx, a, b):
        if not (a == b == ity):
            return None

        def codegen(context, builder, sig, args):
            return builder.and_(*args)

        return ity(a, b), codegen

    @intrinsic
    def shr(typingctx, a, n):
        if not (a == ity and isinstance(n, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            count = context.cast(builder, args[1], sig.args[1], types.int32)
            vec = builder.insert_element(ir.Constant(ivec, None), count, _I32(0))
            splat = builder.shuffle_vector(vec, vec, ir.Constant(ivec, [0] * lanes))
            return builder.lshr(args[0], splat)

        return ity(a, n), codegen

    @intrinsic
    def loadh(typingctx, arr, index):
        ok = isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == types.uint16
        if not (ok and isinstance(index, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            ptr = _pointer(context, builder, sig.args[0], args[0], args[1])
            halves = ir.VectorType(ir.HalfType(), lanes)
            vec = builder.load(builder.bitcast(ptr, halves.as_pointer()), align=2)
            return builder.fpext(vec, ir.VectorType(_F32, lanes))

        return fty(arr, index), codegen

    return and_, shr, loadh


and16, shr16, loadh16 = _make_nibbles(16, i32x16, f32x16)
and8, shr8, loadh8 = _make_nibbles(8, i32x8, f32x8)


_F32V16 = ir.VectorType(_F32, 16)


@intrinsic
def ffma16(typingctx, a, b, c):
    """``a * b + c`` lane-wise with one rounding (``vfmadd``), three ``f32x16``."""
    if not (a == b == c == f32x16):
        return None

    def codegen(context, builder, sig, args):
        fn = _declare(builder, "llvm.fma.v16f32", _F32V16, [_F32V16] * 3)
        return builder.call(fn, args)

    return f32x16(a, b, c), codegen


@intrinsic
def fmax16(typingctx, a, b):
    """Lane-wise maximum of two ``f32x16`` (``maxnum``: a NaN lane takes the other value)."""
    if not (a == b == f32x16):
        return None

    def codegen(context, builder, sig, args):
        fn = _declare(builder, "llvm.maxnum.v16f32", _F32V16, [_F32V16] * 2)
        return builder.call(fn, args)

    return f32x16(a, b), codegen
