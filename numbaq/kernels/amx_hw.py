"""Intel AMX's tile instructions for Numba: the ``amx`` path's tile operations.

The same functions, arguments and semantics as the software twin
(:mod:`numbaq.kernels.amx_twin`), so one template (``_amx_tiles``) generates the kernels
of both paths; here each is one instruction, through LLVM's *direct-register* AMX
intrinsics (the program names the tiles and issues ``ldtilecfg`` itself):

=====================================  ============================================
numbaq                                 LLVM intrinsic
=====================================  ============================================
``ldtilecfg(state, cfg)``              ``llvm.x86.ldtilecfg(ptr cfg)``
``tilerelease(state)``                 ``llvm.x86.tilerelease()``
``tilezero(state, t)``                 ``llvm.x86.tilezero(i8 t)``
``tileloadd(state, t, src, i, ld)``    ``llvm.x86.tileloadd64(i8 t, ptr, i64 bytes)``
``tilestored(state, t, dst, i, ld)``   ``llvm.x86.tilestored64(i8 t, ptr, i64 bytes)``
``tdpbusd(state, c, a, b)``            ``llvm.x86.tdpbusd(i8 c, i8 a, i8 b)``
=====================================  ============================================

``state`` is a dummy (the registers are the CPU's) that keeps the twin's signatures;
:func:`registers` makes it and the 64-byte configuration buffer. Offsets and strides
count elements of the array indexed, as in the twin: bytes for the uint8/int8 operands
of :func:`tileloadd`, int32 values for :func:`tilestored`; the wrappers pass the address
of ``src[offset]`` and ``stride * itemsize`` bytes. Tile numbers are immediates in the
instruction: integer literals 0-7 in the caller (the typers accept nothing else).

None of these intrinsics carries memory attributes, so LLVM keeps them in program order
with each other and with ordinary loads and stores, which is the order the tiles need.

Importing this module compiles nothing, and requests Linux's permission to use the tile
data (:func:`numbaq._amx.request_permission`; idempotent, a no-op without AMX), so that a
kernel built from these operations never meets the ``SIGILL`` of a process that did not
ask. Compiling any of them for a CPU without AMX-INT8 aborts the process (an LLVM error),
and running them without the permission kills it: :func:`numbaq.kernels.paths.resolve`
takes the ``amx`` path only where :func:`numbaq._amx.verdict` says its kernels passed
their self-check in a child process.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from .._amx import request_permission
from ..config import jit

TILES = 8

_I8 = ir.IntType(8)
_I64 = ir.IntType(64)
_VOID = ir.VoidType()
_PTR = ir.IntType(8).as_pointer()
_BYTES = (types.uint8, types.int8)

request_permission()


def _declare(builder, name: str, args: list) -> ir.Function:
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VOID, args), name)


def _tile(op: str, t) -> int:
    """The tile number of literal type ``t``, or a TypingError naming ``op``."""
    if isinstance(t, types.IntegerLiteral) and 0 <= t.literal_value < TILES:
        return t.literal_value
    raise TypingError(f"{op}: a tile number must be an integer literal 0-{TILES - 1}, got {t}")


def _vector(op: str, arr, dtypes: tuple) -> None:
    """A TypingError unless ``arr`` is a 1-D C-contiguous array of one of ``dtypes``."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C"):
        raise TypingError(f"{op}: expected a 1-D contiguous array, got {arr}")
    if arr.dtype not in dtypes:
        raise TypingError(f"{op}: expected an array of {' or '.join(map(str, dtypes))}, got {arr}")


def _integer(op: str, *values) -> None:
    if not all(isinstance(v, types.Integer) for v in values):
        raise TypingError(f"{op}: offset and stride must be integers, got {values}")


def _address(context, builder, arrty, arr, index, index_ty):
    """``i8*`` to element ``index`` of the 1-D array ``arr``."""
    ary = context.make_array(arrty)(context, builder, value=arr)
    i = context.cast(builder, index, index_ty, types.intp)
    return builder.bitcast(builder.gep(ary.data, [i]), _PTR)


def _bytes(context, builder, arrty, stride, stride_ty):
    """``stride`` elements of ``arrty`` in bytes, as i64."""
    s = context.cast(builder, stride, stride_ty, types.int64)
    return builder.mul(
        s, ir.Constant(_I64, context.get_abi_sizeof(context.get_data_type(arrty.dtype)))
    )


@intrinsic
def ldtilecfg(typingctx, state, cfg):
    """Load the 64-byte palette-1 configuration ``cfg`` (1-D uint8); zero every tile."""
    _vector("ldtilecfg", cfg, (types.uint8,))

    def codegen(context, builder, sig, args):
        p = _address(context, builder, sig.args[1], args[1], ir.Constant(_I64, 0), types.int64)
        builder.call(_declare(builder, "llvm.x86.ldtilecfg", [_PTR]), [p])
        return context.get_dummy_value()

    return types.none(state, cfg), codegen


@intrinsic
def tilerelease(typingctx, state):
    """Tiles back to their initial state: no configuration, all zeroed."""

    def codegen(context, builder, sig, args):
        builder.call(_declare(builder, "llvm.x86.tilerelease", []), [])
        return context.get_dummy_value()

    return types.none(state), codegen


@intrinsic(prefer_literal=True)
def tilezero(typingctx, state, t):
    """Tile ``t`` all zeros."""
    tile = _tile("tilezero", t)

    def codegen(context, builder, sig, args):
        builder.call(_declare(builder, "llvm.x86.tilezero", [_I8]), [_I8(tile)])
        return context.get_dummy_value()

    return types.none(state, t), codegen


@intrinsic(prefer_literal=True)
def tileloadd(typingctx, state, t, src, offset, stride):
    """Tile ``t`` from ``src`` (1-D uint8 or int8): row ``r`` at ``src[offset + r *
    stride]``; the configured bytes a row, the rest of the tile zeroed."""
    _vector("tileloadd", src, _BYTES)
    _integer("tileloadd", offset, stride)
    tile = _tile("tileloadd", t)

    def codegen(context, builder, sig, args):
        arrty = sig.args[2]
        p = _address(context, builder, arrty, args[2], args[3], sig.args[3])
        s = _bytes(context, builder, arrty, args[4], sig.args[4])
        builder.call(
            _declare(builder, "llvm.x86.tileloadd64", [_I8, _PTR, _I64]), [_I8(tile), p, s]
        )
        return context.get_dummy_value()

    return types.none(state, t, src, offset, stride), codegen


@intrinsic(prefer_literal=True)
def tilestored(typingctx, state, t, dst, offset, stride):
    """Tile ``t`` as int32 to ``dst`` (1-D int32): row ``r``'s values at ``dst[offset + r
    * stride]``."""
    _vector("tilestored", dst, (types.int32,))
    _integer("tilestored", offset, stride)
    tile = _tile("tilestored", t)

    def codegen(context, builder, sig, args):
        arrty = sig.args[2]
        p = _address(context, builder, arrty, args[2], args[3], sig.args[3])
        s = _bytes(context, builder, arrty, args[4], sig.args[4])
        fn = _declare(builder, "llvm.x86.tilestored64", [_I8, _PTR, _I64])
        builder.call(fn, [_I8(tile), p, s])
        return context.get_dummy_value()

    return types.none(state, t, dst, offset, stride), codegen


@intrinsic(prefer_literal=True)
def tdpbusd(typingctx, state, c, a, b):
    """``C += A . B`` in int32, wrapping: A's bytes unsigned, B's signed, B in the
    4-byte-interleaved layout (the tiles' shapes must agree, or the CPU faults)."""
    tiles = tuple(_tile("tdpbusd", x) for x in (c, a, b))

    def codegen(context, builder, sig, args):
        fn = _declare(builder, "llvm.x86.tdpbusd", [_I8, _I8, _I8])
        builder.call(fn, [_I8(x) for x in tiles])
        return context.get_dummy_value()

    return types.none(state, c, a, b), codegen


@jit(inline=True)
def registers():
    """``(state, cfg)``: a one-byte dummy ``state`` (the tiles are the CPU's registers;
    it keeps the twin's signatures) and a zeroed 64-byte configuration buffer."""
    return np.zeros(1, np.uint8), np.zeros(64, np.uint8)
