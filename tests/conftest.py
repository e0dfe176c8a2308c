"""Shared fixtures and hypothesis strategies."""

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numbaq import config

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile("ci")


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
