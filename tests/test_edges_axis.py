"""An axis out of range, or not an integer, at every public verb with an axis argument:
a clear error naming the argument (``numbaq.checks.check_axis``), never numpy's
``AxisError``, an ``IndexError``, or a bool taken as 0 or 1."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numbaq as nq
from numbaq.checks import check_axis

RNG = np.random.default_rng(3)
X = RNG.standard_normal((5, 8)).astype(np.float32)
LAYER = nq.QuantLinear(nq.quantize_weight(RNG.standard_normal((4, 8)).astype(np.float32)))
SEQ = RNG.standard_normal((3, 5, 8)).astype(np.float32)
LSTM = nq.quantize_dynamic(nq.LSTM(8, 4))

# verb -> (call with the axis, its name, ndim of the array it indexes)
AXIS_VERBS = {
    "batch_independent": (lambda axis: nq.batch_independent(LAYER, X, axis), "batch_axis", 2),
    "batch_independent 3-D": (
        lambda axis: nq.batch_independent(LSTM, SEQ, batch_axis=axis),
        "batch_axis",
        3,
    ),
}


def _public_callables():
    """Every public function and class of numbaq's ``__all__`` (and the methods of its
    classes), with the names of their parameters."""
    for name in nq.__all__:
        obj = getattr(nq, name)
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if inspect.isfunction(member) and (not attr.startswith("_") or attr == "__init__"):
                    yield f"{name}.{attr}", member


def test_every_axis_argument_is_covered():
    """A new public verb with an axis argument must join AXIS_VERBS (and so the tests
    below): found by signature, so none is forgotten."""
    with_axis = {
        name
        for name, fn in _public_callables()
        for param in inspect.signature(fn).parameters
        if "axis" in param
    }
    covered = {key.split()[0] for key in AXIS_VERBS}
    assert with_axis <= covered, f"axis arguments without a test: {sorted(with_axis - covered)}"


BAD_TYPES = [True, False, np.bool_(True), 1.0, np.float64(0.0), "0", None, [0], (0,), 1 + 0j]


@pytest.mark.parametrize("verb", list(AXIS_VERBS))
@pytest.mark.parametrize("axis", BAD_TYPES, ids=repr)
def test_axis_not_an_integer(verb, axis):
    call, name, _ = AXIS_VERBS[verb]
    with pytest.raises(TypeError, match=rf"{name} must be an int"):
        call(axis)


@pytest.mark.parametrize("verb", list(AXIS_VERBS))
@given(offset=st.integers(0, 2**40), sign=st.sampled_from([-1, 1]))
def test_axis_out_of_range(verb, offset, sign):
    """Any axis outside [-ndim, ndim): -3 for 2-D, 5, 2**40, as int or numpy int."""
    call, name, ndim = AXIS_VERBS[verb]
    axis = ndim + offset if sign > 0 else -ndim - 1 - offset
    for value in (axis, np.int64(axis)):
        with pytest.raises(
            ValueError, match=rf"{name}={axis} is out of range.*\[-{ndim}, {ndim - 1}\]"
        ):
            call(value)


@pytest.mark.parametrize("verb", list(AXIS_VERBS))
def test_axis_in_range_negative_is_the_same_axis(verb):
    call, _, ndim = AXIS_VERBS[verb]
    for axis in range(ndim - 1):  # the last axis holds the features
        assert call(axis) == call(axis - ndim) == call(np.int32(axis))


@given(ndim=st.integers(1, 6), axis=st.integers(-10, 10))
def test_check_axis(ndim, axis):
    if -ndim <= axis < ndim:
        assert check_axis(axis, ndim) == axis % ndim
        assert check_axis(np.int8(axis), ndim) == axis % ndim
    else:
        with pytest.raises(ValueError, match="axis"):
            check_axis(axis, ndim)


def test_batch_independent_refuses_a_0d_batch():
    with pytest.raises(ValueError, match="batch axis"):
        nq.batch_independent(LAYER, np.float32(1.0))
    with pytest.raises(TypeError, match="model"):
        nq.batch_independent("not a model", X)
