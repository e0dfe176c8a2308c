"""AMX on this machine: Linux's permission, and the self-check of the hardware kernels.

The ``amx`` GEMM path (:mod:`numbaq.kernels.amx_hw`) runs Intel AMX's tile instructions,
which can fail in ways no Python code can catch: compiled for a CPU without AMX-INT8 the
process aborts (an LLVM error), run without Linux's permission it dies of ``SIGILL``, and
a kernel nobody ran on the hardware may simply be wrong. So numbaq takes the path only
after a *self-check* passed in a child process (:func:`self_check`): the child requests
the permission, runs the hardware kernels (``gemm_i32``, the dequantizing Linear, the
fused dynamic Linear and the block-scaled one) on shapes with row, column and K tails
and extreme codes, and compares them bit for bit with the ``amx_emulated`` path
(numbaq's software twin of the tiles) and with numpy's int64 product.

:func:`verdict` runs that check at most once per machine and numbaq: the result is
cached on disk (:func:`cache_file`), keyed by the CPU's model name, LLVM's name for it,
and the versions of numbaq (with a digest of its kernel sources), Numba and llvmlite.
Without the CPU features it spawns nothing. Where it runs:
:func:`numbaq.kernels.paths.resolve` asks for it when ``auto`` meets an AMX CPU or
``amx`` is forced, and :func:`numbaq.info` (``numbaq info``) reports it.
"""

from __future__ import annotations

import ctypes
import datetime
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

SYS_ARCH_PRCTL = 158
"""``arch_prctl``'s system call number on x86-64 (glibc has no wrapper for these codes)."""
ARCH_GET_XCOMP_SUPP = 0x1021
ARCH_GET_XCOMP_PERM = 0x1022
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18
"""The XSAVE component of the tile data (8 KiB a thread), enabled on request since 5.16."""

TIMEOUT = 900.0
"""Seconds the self-check child may take (it compiles every kernel it runs, twice)."""

CHILD_COMMAND: tuple[str, ...] | None = None
"""The self-check child's command; ``None`` for ``python -c`` :data:`CHILD_CODE` (tests
point it at scripts that fail)."""

CHILD_CODE = "from numbaq._amx import _child_main; raise SystemExit(_child_main())"

_in_child = False  # set in the self-check child: its verdict is "checking"
_permission: bool | None = None
_verdicts: dict[str, Verdict] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Verdict:
    """Whether the ``amx`` path may run here, and why.

    Attributes
    ----------
    ok : bool
        True only when the hardware kernels passed their self-check (or in the
        self-check's own process).
    state : str
        ``"unavailable"`` (CPU features missing), ``"no-permission"`` (Linux refused the
        tile data), ``"unchecked"``, ``"passed"``, ``"failed"`` or ``"checking"``.
    reason : str
        One line, for people.

    Examples
    --------
    >>> str(Verdict(False, "unavailable", "this CPU lacks amx-int8, amx-tile"))
    'not available: this CPU lacks amx-int8, amx-tile'
    """

    ok: bool
    state: str
    reason: str

    def __str__(self) -> str:
        head = {
            "unavailable": "not available",
            "no-permission": "not available",
            "unchecked": "not yet checked",
            "passed": "self-check passed",
            "failed": "self-check failed",
            "checking": "self-check running",
        }[self.state]
        return f"{head}: {self.reason}"


# ------------------------------------------------------------------ permission
def _arch_prctl(code: int, arg) -> int:
    libc = ctypes.CDLL(None, use_errno=True)  # the process's own libc: nothing spawned
    libc.syscall.restype = ctypes.c_long
    return libc.syscall(ctypes.c_long(SYS_ARCH_PRCTL), ctypes.c_long(code), arg)


def _xcomp(code: int) -> int:
    """The XSAVE feature mask of ``ARCH_GET_XCOMP_SUPP``/``_PERM`` (0 on failure)."""
    mask = ctypes.c_uint64(0)
    return mask.value if _arch_prctl(code, ctypes.byref(mask)) == 0 else 0


def _request() -> bool:
    if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    tiledata = 1 << XFEATURE_XTILEDATA
    try:
        if not _xcomp(ARCH_GET_XCOMP_SUPP) & tiledata:
            return False
        if not _xcomp(ARCH_GET_XCOMP_PERM) & tiledata:
            _arch_prctl(ARCH_REQ_XCOMP_PERM, ctypes.c_long(XFEATURE_XTILEDATA))
        return bool(_xcomp(ARCH_GET_XCOMP_PERM) & tiledata)
    except (OSError, AttributeError):  # no libc, or no syscall() in it
        return False


def request_permission() -> bool:
    """Ask Linux for the AMX tile data for this process; whether it is granted.

    ``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`` through ``syscall(2)``
    (ctypes): once per process (the answer is kept), for every thread, present and
    future. Without it the first tile instruction kills the process with ``SIGILL``.
    Never raises: False off Linux x86-64, on a kernel before 5.16 or a CPU without AMX.

    Examples
    --------
    >>> isinstance(request_permission(), bool)
    True
    """
    global _permission
    if _permission is None:
        _permission = _request()
    return _permission


# ------------------------------------------------------------------ the on-disk verdict
def cache_key() -> dict:
    """What a verdict holds for: this CPU (model name, LLVM's name) and this software."""
    import llvmlite
    import numba
    from llvmlite import binding

    from . import __version__
    from ._cache import kernel_digest
    from .matmul import cpu_model

    return {
        "cpu_model": cpu_model(),
        "llvm_cpu": numba.config.CPU_NAME or binding.get_host_cpu_name(),
        "numbaq": __version__,
        "kernels": kernel_digest()[:16],
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
    }


def cache_dir() -> Path:
    """numbaq's folder in the user's cache: ``$XDG_CACHE_HOME/numbaq`` or ``~/.cache/numbaq``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "numbaq"


def cache_file(key: dict) -> Path:
    """The file of the verdict for ``key`` (:func:`cache_key`)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"amx-self-check-{digest}.json"


def read_cached(key: dict) -> Verdict | None:
    """The verdict stored for ``key``; None if there is none, or the file is unreadable,
    malformed or for another key (then the check runs again and replaces it)."""
    try:
        data = json.loads(cache_file(key).read_text())
        if data["key"] == key and data["state"] in ("passed", "failed"):
            return Verdict(data["state"] == "passed", data["state"], str(data["reason"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def write_cached(key: dict, verdict: Verdict) -> None:
    """Store ``verdict`` for ``key``, atomically; a cache that cannot be written is skipped."""
    path = cache_file(key)
    data = {
        "key": key,
        "state": verdict.state,
        "reason": verdict.reason,
        "checked": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass


# ------------------------------------------------------------------ the check
def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def self_check(command=None, timeout: float = TIMEOUT) -> Verdict:
    """Run the self-check in a child process: ``"passed"`` only if it exits with 0.

    Parameters
    ----------
    command : sequence of str, optional
        The child's command; default :data:`CHILD_COMMAND`, else ``python -c``
        :data:`CHILD_CODE`. It runs with ``NUMBAQ_CACHE=0`` (it compiles everything it
        runs, here) and this numbaq first on ``PYTHONPATH``.
    timeout : float
        Seconds before the child is killed (a failed verdict).

    Returns
    -------
    Verdict
        ``"passed"`` with the child's last line, or ``"failed"`` with its exit status or
        signal and the last line it wrote.
    """
    if command is None:
        command = CHILD_COMMAND or (sys.executable, "-c", CHILD_CODE)
    env = dict(os.environ, NUMBAQ_CACHE="0")
    env.pop("NUMBAQ_GEMM_PATH", None)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))
    try:
        proc = subprocess.run(
            list(command), env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return Verdict(False, "failed", f"the self-check child ran past {timeout:.0f} s")
    except OSError as e:
        return Verdict(False, "failed", f"the self-check child could not start: {e}")
    if proc.returncode == 0:
        return Verdict(True, "passed", _last_line(proc.stdout))
    last = _last_line(proc.stderr) if proc.stderr.strip() else _last_line(proc.stdout)
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        return Verdict(False, "failed", f"the self-check child was killed by {name}: {last}")
    return Verdict(
        False, "failed", f"the self-check child exited with status {proc.returncode}: {last}"
    )


def verdict(features=None, *, run: bool = True, recheck: bool = False, command=None) -> Verdict:
    """Whether the ``amx`` path may run on this machine, checking it at most once.

    In order: the CPU features the path needs (none missing, or ``"unavailable"``, and
    nothing spawned); Linux's permission (:func:`request_permission`, or
    ``"no-permission"``); the verdict kept in this process or on disk
    (:func:`read_cached`); else, with ``run``, :func:`self_check`, whose verdict is
    stored.

    Parameters
    ----------
    features : frozenset of str, optional
        LLVM CPU features; default :func:`numbaq.kernels.paths.cpu_features`.
    run : bool
        Run the check if there is no verdict yet; else answer ``"unchecked"``.
    recheck : bool
        Run the check again even if a verdict is stored, and replace it.
    command : sequence of str, optional
        The child's command (tests; see :func:`self_check`).

    Returns
    -------
    Verdict

    Examples
    --------
    >>> verdict(frozenset({"avx2"}))
    Verdict(ok=False, state='unavailable', reason='this CPU lacks amx-int8, amx-tile')
    """
    from .kernels import paths

    features = paths.cpu_features() if features is None else frozenset(features)
    missing = sorted(paths.AMX_NEEDS - features)
    if missing:
        return Verdict(False, "unavailable", f"this CPU lacks {', '.join(missing)}")
    missing = sorted(paths.get("amx").needs[0] - features)
    if missing:
        reason = f"this CPU has AMX-INT8 but lacks {', '.join(missing)}, which the amx path needs"
        return Verdict(False, "unavailable", reason)
    if _in_child:
        return Verdict(True, "checking", "this process is numbaq's AMX self-check")
    if not request_permission():
        return Verdict(
            False,
            "no-permission",
            "Linux refused the AMX tile data (arch_prctl ARCH_REQ_XCOMP_PERM, XTILEDATA): "
            "a kernel before 5.16, or AMX disabled",
        )
    key = cache_key()
    name = cache_file(key).name
    with _lock:
        found = None if recheck else _verdicts.get(name) or read_cached(key)
        if found is None:
            if not run:
                return Verdict(
                    False,
                    "unchecked",
                    "this CPU has AMX-INT8; numbaq's self-check of its AMX kernels runs on "
                    "first use (gemm path auto or amx, numbaq.info())",
                )
            found = self_check(command)
            write_cached(key, found)
        _verdicts[name] = found
    return found


# ------------------------------------------------------------------ the child
def _bits(x):
    """float32 arrays compared bit for bit (NaNs included)."""
    import numpy as np

    return np.ascontiguousarray(x).view(np.int32 if x.dtype == np.float32 else x.dtype)


def _compare() -> tuple[list[str], int]:
    """Every comparison of the self-check: ``(mismatches, cases)``."""
    import numpy as np

    from . import config, engine, quantize_weight, quantized_linear
    from .kernels import epilogue as ke
    from .kernels import gemm as kg

    rng = np.random.default_rng(20240501)
    bad: list[str] = []
    cases = 0

    def check(what, got, want):
        nonlocal cases
        cases += 1
        if got.shape != want.shape or not np.array_equal(_bits(got), _bits(want)):
            differ = "shape" if got.shape != want.shape else int((_bits(got) != _bits(want)).sum())
            bad.append(f"{what}: {differ} values differ")

    def on(path, fn):
        config.GEMM_PATH = path
        return fn()

    for m in (1, 2, 15, 16, 17, 33, 40):
        for k, n in ((100, 70), (772, 130), (64, 64), (3, 1)):
            for extreme in (False, True):
                if extreme:  # the largest products: 255 * -128 and 255 * 127
                    a = rng.choice(np.array([0, 255], np.uint8), (m, k))
                    a[0] = 255
                    w = rng.choice(np.array([-128, 127], np.int8), (n, k))
                else:
                    a = rng.integers(0, 256, (m, k), dtype=np.uint8)
                    w = rng.integers(-128, 128, (n, k), dtype=np.int8)
                buf, _ = engine.shift_lhs(a)
                want = (a.astype(np.int64) @ w.astype(np.int64).T).astype(np.int32)
                for path in ("amx", "amx_emulated"):
                    out = np.full((m, n), -1, np.int32)
                    engine.gemm_i32(buf, kg.pack(w, path), n, out, path=path, block=0)
                    check(f"gemm_i32 {path} M={m} K={k} N={n} extreme={extreme}", out, want)
                if (m, k) == (40, 772):  # the parallel driver: a tile config per task
                    out = np.full((m, n), -1, np.int32)
                    engine.gemm_i32(buf, kg.pack(w, "amx"), n, out, path="amx", block=16)
                    check(f"gemm_i32_par amx M={m} K={k} N={n} extreme={extreme}", out, want)

    for m, k, n in ((1, 100, 70), (17, 772, 130), (33, 96, 64), (5, 768, 130)):
        x = rng.standard_normal((m, k)).astype(np.float32)
        x[0, :5] = [30.0, -30.0, 0.0, 1e-3, 7.0]
        qweight = quantize_weight(rng.standard_normal((n, k)).astype(np.float32))
        bias = rng.standard_normal(n).astype(np.float32)
        a, _ = engine.shift_lhs(rng.integers(0, 256, (m, k), dtype=np.uint8))
        a_scale = rng.uniform(1e-3, 1, m).astype(np.float32)
        a_zp = rng.integers(0, 256, m).astype(np.int32)
        for act in (ke.ACT_NONE, ke.ACT_GELU):

            def linear(act=act, a=a, a_scale=a_scale, a_zp=a_zp, qweight=qweight, bias=bias):
                y = np.full((a.shape[0], qweight.shape[0]), np.nan, np.float32)
                engine.linear(a, a_scale, a_zp, False, qweight, bias, act, y)
                return y

            check(
                f"linear_f32 M={m} K={k} N={n} act={act}",
                on("amx", linear),
                on("amx_emulated", linear),
            )
        for scheme in (None, "BLOCK_Q8_0") if k % 32 == 0 else (None,):

            def dynamic(x=x, qweight=qweight, bias=bias, scheme=scheme):
                return quantized_linear(x, qweight, bias, scheme)

            label = f"quantized_linear {scheme or 'default'} M={m} K={k} N={n}"
            check(label, on("amx", dynamic), on("amx_emulated", dynamic))
    return bad, cases


def _child_main() -> int:
    """The self-check child: 0 if every hardware result matched, 1 if one did not, 3
    without the permission; one line on stdout (passed) or stderr (failed)."""
    global _in_child
    _in_child = True
    try:  # a crash is a verdict, not a core file in the user's folder
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass
    if not request_permission():
        print("Linux refused the AMX tile data (arch_prctl)", file=sys.stderr)
        return 3
    bad, cases = _compare()
    if bad:
        print(f"{len(bad)} of {cases} comparisons differ; first: {bad[0]}", file=sys.stderr)
        return 1
    print(
        f"the amx path's gemm_i32, linear_f32, quantized_linear (default and BLOCK_Q8_0) "
        f"matched amx_emulated and numpy's int64 product bit for bit ({cases} cases)"
    )
    return 0
