"""Observers against reference computations; their qparams are exact."""

import numpy as np
import pytest

import numbaq as nq
from numbaq import observers as O
from numbaq import reference as ref


def _batches(seed=0, n=5):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(8, 16)) * (i + 1)).astype(np.float32) for i in range(n)]


def test_minmax_observer_is_the_global_range():
    batches = _batches()
    obs = O.MinMaxObserver()
    for b in batches:
        obs.update(b)
    allx = np.concatenate(batches)
    assert obs.range() == (float(allx.min()), float(allx.max()))
    scale, zp = ref.qparams_onnx(np.float32(allx.min()), np.float32(allx.max()), 0, 255, False)
    qp = obs.qparams()
    assert qp.scale == scale and int(qp.zero_point) == int(zp)  # bit-exact integers


def test_moving_average_matches_its_formula():
    batches = _batches(1)
    obs = O.MovingAverageMinMaxObserver(averaging_constant=0.1)
    lo, hi = float(batches[0].min()), float(batches[0].max())
    for b in batches[1:]:
        lo += 0.1 * (float(b.min()) - lo)
        hi += 0.1 * (float(b.max()) - hi)
    for b in batches:
        obs.update(b)
    np.testing.assert_allclose(obs.range(), (lo, hi), rtol=1e-12)


def test_histogram_percentile_against_numpy():
    rng = np.random.default_rng(2)
    data = [rng.normal(size=20_000).astype(np.float32) for _ in range(3)]
    obs = O.HistogramObserver(bins=4096, percentile=99.9)
    for d in data:
        obs.update(d)
    allx = np.concatenate(data)
    # one bin of resolution, plus up to one old and one new bin for each re-binning as the
    # range grew: 4 bin widths of the final range bound the error
    width = (allx.max() - allx.min()) / 4096
    lo, hi = obs.range()
    assert abs(lo - np.percentile(allx, 0.1)) < 4 * width
    assert abs(hi - np.percentile(allx, 99.9)) < 4 * width
    assert hi < allx.max()  # the tail is clipped


def test_histogram_grows_its_range():
    obs = O.HistogramObserver(bins=64, percentile=100)
    obs.update(np.array([0.0, 1.0], np.float32)).update(np.array([-5.0, 10.0], np.float32))
    assert obs.counts.sum() == 4 and obs.range() == (-5.0, 10.0)


def test_mse_observer_beats_minmax_on_heavy_tails():
    rng = np.random.default_rng(3)
    x = rng.standard_t(2, size=50_000).astype(np.float32)  # heavy tails
    mse, minmax_obs = O.MSEObserver().update(x), O.MinMaxObserver().update(x)
    err = lambda qp: nq.metrics.mse(x, nq.fake_quantize(x, qp))  # noqa: E731
    assert err(mse.qparams()) < err(minmax_obs.qparams())
    lo, hi = mse.range()
    assert lo > x.min() and hi < x.max()


def test_observer_errors_and_repr():
    with pytest.raises(ValueError, match="no batches seen"):
        O.MinMaxObserver().qparams()
    with pytest.raises(ValueError, match="averaging_constant"):
        O.MovingAverageMinMaxObserver(averaging_constant=0)
    assert repr(O.MinMaxObserver().update(np.ones(3))) == (
        "MinMaxObserver(1 batches, range [1, 1], uint8)"
    )
