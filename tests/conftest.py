"""Shared fixtures and hypothesis strategies."""

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numbaq import config
from numbaq.kernels import paths

# Fixtures used with @given only set a config knob for the whole test: safe to share.
SHARED = [HealthCheck.function_scoped_fixture]
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, *SHARED],
)
settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=SHARED)
settings.load_profile("ci")


def _gemm_path_param(name: str):
    """A test parameter for GEMM path ``name``, skipped (naming the missing CPU features)
    where this CPU cannot run it; ``amx`` also where its self-check has not passed
    (``paths.amx_status()`` says why; on an AMX CPU the check runs here, once per machine)."""
    if name == paths.AMX:
        from numbaq import _amx

        if _amx.verdict().ok:
            return pytest.param(name)
        return pytest.param(name, marks=pytest.mark.skip(reason=f"amx: {paths.amx_status()}"))
    if not paths.supported(name):
        needs = " or ".join("+".join(sorted(s)) for s in paths.get(name).needs)
        reason = f"{name} needs {needs}, which this CPU lacks"
        return pytest.param(name, marks=pytest.mark.skip(reason=reason))
    return pytest.param(name)


GEMM_PATHS = [_gemm_path_param(name) for name in paths.PATHS]
"""Every GEMM path, ``amx`` and ``amx_emulated`` included, each skipped with its reason
where this CPU cannot run it."""

SEVEN_BIT_PATHS = [_gemm_path_param(p.name) for p in paths.SEVEN_BIT.values()]
"""The 7-bit companion paths (lhs codes in [0, 127]), skipped likewise."""


@pytest.fixture(params=GEMM_PATHS)
def gemm_path(request, monkeypatch):
    """Run a test on each GEMM path (``config.GEMM_PATH`` forced to it)."""
    monkeypatch.setattr(config, "GEMM_PATH", request.param)
    return request.param


@pytest.fixture(params=["serial", "parallel"])
def entry_point(request, monkeypatch):
    """Run a test through the serial kernels and again through the parallel twins."""
    monkeypatch.setattr(config, "PARALLEL_MIN", 10**12 if request.param == "serial" else 0)
    return request.param


@st.composite
def float_arrays(draw, min_dims=0, max_dims=3, max_side=24, last_multiple_of=1):
    """float32 arrays, 0-d to N-d, magnitudes from 1e-6 to 1e6 (one decade per array),
    with occasional all-zero, constant and single-sign tensors."""
    shape = draw(
        hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)
    )
    if last_multiple_of > 1 and shape:
        shape = shape[:-1] + (last_multiple_of * draw(st.integers(1, 3)),)
    magnitude = np.float32(10.0 ** draw(st.integers(-6, 6)))
    unit = draw(hnp.arrays(np.float32, shape, elements=st.floats(-1, 1, width=32)))
    x = np.array(unit * magnitude, np.float32)  # np.array keeps 0-d arrays as arrays
    kind = draw(st.sampled_from(["any"] * 6 + ["zero", "constant", "positive", "negative"]))
    if kind == "zero":
        x[...] = 0
    elif kind == "constant":
        x[...] = x.reshape(-1)[0]
    elif kind == "positive":
        np.abs(x, out=x)
    elif kind == "negative":
        np.negative(np.abs(x, out=x), out=x)
    return x


@functools.cache
def _onnx_node_cases():
    from onnx.backend.test.case.node import collect_testcases

    # collect_testcases runs each exporter once per process and keeps global state, so
    # collect every op type in one call and filter afterwards
    return list(collect_testcases(None))


def onnx_cases(op_type: str):
    """ONNX's published node test cases for ``op_type`` (its backend test data)."""
    return [c for c in _onnx_node_cases() if c.model.graph.node[0].op_type == op_type]
