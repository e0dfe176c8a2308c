"""The registry of integer GEMM paths, and the choice of one from the CPU's features.

One table, read by the generator (``_gen_gemm``: tile shape, instruction, layout), by
:func:`numbaq.info` (what runs here and why) and by the dispatcher
(:mod:`numbaq.engine`: packing, task sizes). Paths, fastest first:

=========  ==================================  ===================================
path       instruction                          needs
=========  ==================================  ===================================
amx        ``tdpbusd`` (16 x 64-byte tiles)     amx-tile, amx-int8, avx512f, avx512bw,
                                                and a passed self-check (below)
vnni512    ``vpdpbusd zmm`` (64 MAC / instr)    avx512vnni, avx512bw, avx512f
vnni256    ``vpdpbusd ymm``                     avx512vnni + avx512vl, or avxvnni
avx512bw   ``vpmaddwd zmm`` on int16-widened    avx512bw, avx512f
avx2       ``vpmaddwd ymm`` on int16-widened    avx2
plain      plain Numba loops                    nothing
=========  ==================================  ===================================

``SEVEN_BIT`` adds a *companion* to a path, taken instead of it for lhs codes in
[0, 127] (the ``uint7`` schemes): ``avx2u7``, ``vpmaddubsw ymm``, which would saturate
on 8-bit codes but is exact and 1.3x faster on these.

The path is chosen in Python from the CPU's features *before* any kernel that uses
it compiles: compiling ``vpdpbusd`` for a CPU without VNNI aborts the process
(an LLVM error, not a Python exception). Features come from ``NUMBA_CPU_FEATURES``
when set (so an older CPU can be emulated), else from llvmlite's host query.

AMX (``tdpbusd`` on 16 x 64-byte tiles): its kernels are generated from one template
(``_amx_tiles``) for two sets of tile operations. ``amx`` runs the instructions
(``amx_hw``); besides the features it needs Linux's permission and can fail in ways no
Python code catches (``SIGILL``, an LLVM abort), so ``auto`` takes it, and forcing it
works, only where :func:`numbaq._amx.verdict` says its kernels passed their self-check in
a child process (once per machine, cached on disk); :func:`amx_status` says why not
otherwise. ``amx_emulated`` runs the same kernels on numbaq's software twin of the
instructions (``amx_twin``) on any CPU, is never chosen by ``auto`` and runs every
exactness test.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numba


@dataclass(frozen=True)
class GemmPath:
    """One integer GEMM path: what it needs and the shape of its register tile.

    Attributes
    ----------
    name : str
        ``NUMBAQ_GEMM_PATH`` value and the suffix of its kernel module ``_tiles_<name>``.
    needs : tuple of frozenset of str
        LLVM CPU feature sets; any one of them suffices.
    instruction : str
        What multiplies, for people (``info()``, generated headers).
    lanes, mr, nr : int
        int32 lanes per vector; rows and vectors of the register tile (``MR x NR``).
    dot : str or None
        The ``kernels.simd`` dot intrinsic family (``dpbusd``, ``pmaddwd``); None for plain.
    layout : str
        Packed weights: ``vnni`` (4 K values per lane), ``pairs`` (K pairs, for
        ``vpmaddwd``) or ``rows`` (row-major, plain).
    lhs_max : int
        The largest lhs code the dot step is exact for: 255, or 127 for a 7-bit path.
    tile : str
        What the generator writes for the path: ``simd`` register tiles of vectors, or
        ``amx`` tiles (the template ``_amx_tiles``, its operations from ``ops``).
    ops : str
        For ``amx`` tiles, the module of the tile operations: ``amx_twin`` (the software
        twin) or ``amx_hw`` (the instructions).
    auto : bool
        Whether ``auto`` may choose the path (never for the twin: it is for tests).
    """

    name: str
    needs: tuple[frozenset[str], ...]
    instruction: str
    lanes: int = 1
    mr: int = 1
    nr: int = 1
    dot: str | None = None
    layout: str = "rows"
    lhs_max: int = 255
    tile: str = "simd"
    ops: str = ""
    auto: bool = True

    @property
    def panel(self) -> int:
        """Output columns per packed weight panel (``NR * LANES``)."""
        return self.nr * self.lanes

    @property
    def simd(self) -> bool:
        """Whether the path has generated register tiles (every path but ``plain``)."""
        return self.dot is not None

    def __repr__(self) -> str:
        return f"GemmPath({self.name!r}: {self.instruction}, tile {self.mr}x{self.panel})"


def _needs(*sets) -> tuple[frozenset[str], ...]:
    return tuple(frozenset(s) for s in sets)


AMX_NEEDS = frozenset({"amx-tile", "amx-int8"})
"""LLVM features of Intel AMX-INT8 (``tdpbusd``); see :func:`amx_status`."""

AMX = "amx"
"""The path of the AMX instructions: taken only after its self-check (:func:`available`)."""


PATHS: dict[str, GemmPath] = {
    p.name: p
    for p in (
        GemmPath(
            "amx",
            _needs(AMX_NEEDS | {"avx512f", "avx512bw"}),
            "AMX-INT8 (tdpbusd on 16 x 64-byte tiles)",
            16,
            16,
            4,
            "tdpbusd",
            "vnni",
            tile="amx",
            ops="amx_hw",
        ),
        GemmPath(
            "vnni512",
            _needs({"avx512vnni", "avx512bw", "avx512f"}),
            "AVX512-VNNI (vpdpbusd zmm)",
            16,
            6,
            4,
            "dpbusd",
            "vnni",
        ),
        GemmPath(
            "vnni256",
            _needs({"avx512vnni", "avx512vl"}, {"avxvnni"}),
            "AVX512-VNNI + VL (vpdpbusd ymm)",
            8,
            6,
            4,
            "dpbusd",
            "vnni",
        ),
        GemmPath(
            "avx512bw",
            _needs({"avx512bw", "avx512f"}),
            "AVX-512BW (vpmaddwd zmm, int16 widening)",
            16,
            4,
            4,
            "pmaddwd",
            "pairs",
        ),
        GemmPath(
            "avx2",
            _needs({"avx2"}),
            "AVX2 (vpmaddwd ymm, int16 widening)",
            8,
            2,
            3,
            "pmaddwd",
            "pairs",
        ),
        GemmPath("plain", _needs(set()), "plain Numba loops"),
        GemmPath(
            "amx_emulated",
            _needs(set()),
            "AMX tdpbusd, emulated (numbaq's twin of the tile instructions; for tests)",
            16,
            16,
            4,
            "tdpbusd",
            "vnni",
            tile="amx",
            ops="amx_twin",
            auto=False,
        ),
    )
}
"""Every path numbaq has a kernel for, fastest first (``auto`` takes the first one the
CPU runs among those with ``auto``; ``amx`` only after its self-check passed)."""

SEVEN_BIT: dict[str, GemmPath] = {
    "avx2": GemmPath(
        "avx2u7",
        _needs({"avx2"}),
        "AVX2 (vpmaddubsw ymm, 7-bit activations)",
        8,
        2,
        4,
        "pmaddubsw",
        "vnni",
        lhs_max=127,
    ),
}
"""The 7-bit companion of a path: taken instead of it for lhs codes in [0, 127] (the
``uint7`` schemes), where ``vpmaddubsw`` cannot saturate. Without VNNI it is the fastest
exact int8 step: 160-180 against 120-130 GOPS for ``avx2`` on a Zen 3 core. Never
chosen by ``auto`` nor forced: it is wrong for codes above 127."""


BY_NAME: dict[str, GemmPath] = {**PATHS, **{p.name: p for p in SEVEN_BIT.values()}}
"""Every path and 7-bit companion, by name: what the generator writes a module for."""


def get(name: str) -> GemmPath:
    """The :class:`GemmPath` called ``name``, a path or a 7-bit companion."""
    if name not in BY_NAME:
        raise ValueError(f"unknown GEMM path {name!r}; known: {tuple(BY_NAME)}")
    return BY_NAME[name]


def for_lhs(path: str, lhs_max: int) -> str:
    """The path to run for lhs codes in ``[0, lhs_max]``: ``path``'s 7-bit companion
    where it has one and the codes fit it, else ``path``.

    Examples
    --------
    >>> for_lhs("avx2", 127), for_lhs("avx2", 255), for_lhs("vnni512", 127)
    ('avx2u7', 'avx2', 'vnni512')
    """
    companion = SEVEN_BIT.get(path)
    return companion.name if companion is not None and lhs_max <= companion.lhs_max else path


@cache
def cpu_features() -> frozenset[str]:
    """CPU features LLVM compiles for: ``NUMBA_CPU_FEATURES`` if set, else the host's."""
    override = numba.config.CPU_FEATURES
    if override:
        return frozenset(f[1:] for f in override.split(",") if f.startswith("+"))
    from llvmlite import binding

    return frozenset(k for k, v in binding.get_host_cpu_features().items() if v)


def known_features() -> frozenset[str]:
    """Every CPU feature some path (or AMX) needs: what ``info()`` lists."""
    return frozenset().union(AMX_NEEDS, *(s for p in PATHS.values() for s in p.needs))


def supported(path: str, features: frozenset[str] | None = None) -> bool:
    """Whether the CPU (or ``features``) can run ``path``."""
    features = cpu_features() if features is None else features
    return any(need <= features for need in get(path).needs)


def _amx_ok(features: frozenset[str]) -> bool:
    """Whether the ``amx`` path may run: features, permission and a passed self-check
    (:func:`numbaq._amx.verdict`; it runs the check once per machine, only on a CPU
    with the features)."""
    from .. import _amx

    return supported(AMX, features) and _amx.verdict(features).ok


def available(features: frozenset[str] | None = None) -> list[str]:
    """The paths this CPU (or ``features``) runs, fastest first (``amx`` only after its
    self-check passed; ``amx_emulated`` last: it runs everywhere, slowly, and is never
    chosen by ``auto``)."""
    features = cpu_features() if features is None else features
    return [p for p in PATHS if supported(p, features) and (p != AMX or _amx_ok(features))]


def amx_status(features: frozenset[str] | None = None, run: bool = True) -> str:
    """Whether the ``amx`` path runs here, or why not, in one line: the CPU features it
    lacks, Linux's permission refused, or its self-check passed, failed (and why) or not
    yet run.

    Parameters
    ----------
    features : frozenset of str, optional
        LLVM CPU features; default :func:`cpu_features`.
    run : bool
        Run the self-check if it has not run on this machine (only where the features
        and the permission are there; see :func:`numbaq._amx.verdict`).

    Examples
    --------
    >>> amx_status(frozenset({"avx512vnni", "avx512bw", "avx512f"}))
    'not available: this CPU lacks amx-int8, amx-tile'
    """
    from .. import _amx

    return str(_amx.verdict(features, run=run))


def resolve(requested: str = "auto", features: frozenset[str] | None = None):
    """``(path, reason)``: the path to run for a request of ``"auto"`` or a path name.

    Raises ``ValueError`` for an unknown name or a path this CPU cannot run (it would
    abort the process when compiled), and for ``amx`` where its self-check has not
    passed (:func:`amx_status` says why).

    Examples
    --------
    >>> resolve("auto", frozenset({"avx2"}))
    ('avx2', 'fastest path this CPU supports (avx2)')
    """
    features = cpu_features() if features is None else features
    if requested == AMX and not _amx_ok(features):
        raise ValueError(
            f"gemm path 'amx': {amx_status(features)}; it can run {available(features)}"
        )
    if requested != "auto":
        if requested not in PATHS:
            raise ValueError(
                f"gemm path must be 'auto' or one of {tuple(PATHS)}, got {requested!r}"
            )
        if not supported(requested, features):
            needs = " or ".join(sorted(map(str, map(sorted, PATHS[requested].needs))))
            raise ValueError(
                f"gemm path {requested!r} needs CPU features {needs}, which this CPU lacks; "
                f"it can run {available(features)}"
            )
        return requested, "forced by numbaq.config.GEMM_PATH"
    path = next(p for p in available(features) if PATHS[p].auto)
    if path == "plain":
        return path, "no AVX2, AVX-512BW or VNNI on this CPU"
    used = ", ".join(sorted(features & known_features()))
    if path == AMX:
        return path, f"fastest path this CPU supports ({used}); its AMX self-check passed"
    return path, f"fastest path this CPU supports ({used})"
