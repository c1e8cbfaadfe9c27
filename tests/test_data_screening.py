"""Training windows with NaN outside SST: refused, or skipped and logged."""

import logging

import numpy as np
import pandas as pd
import pytest

from minigencast.data import screening, synthetic


@pytest.fixture
def ds():
    ds = synthetic.sample(num_times=9, levels=(500, 850), n_lat=7, n_lon=12)
    assert bool(ds["sea_surface_temperature"].isnull().any())  # NaN over land is fine
    ds["temperature"][4, 1, 3, 5] = np.nan
    ds["2m_temperature"][7, 0, 0] = np.nan
    return ds.chunk({"time": 2})


def _brute_force_bad(ds, starts, n):
    bad = []
    for s in starts:
        piece = ds.isel(time=slice(s, s + n)).drop_vars("sea_surface_temperature")
        bad.append(any(bool(np.isnan(piece[v].values).any()) for v in piece.data_vars))
    return np.asarray(bad)


def test_nan_times(ds):
    got = screening.nan_times(ds).values
    want = np.zeros(9, bool)
    want[[4, 7]] = True
    np.testing.assert_array_equal(got, want)


def test_windows_with_nan_are_refused(ds):
    starts = np.arange(7)
    with pytest.raises(ValueError) as err:
        screening.screen_windows(ds, starts, num_frames=3)
    msg = str(err.value)
    times = ds["time"].values
    assert "5 training window(s)" in msg  # starts 2, 3, 4 (time 4) and 5, 6 (time 7)
    assert f"{pd.Timestamp(times[2])} .. {pd.Timestamp(times[4])}" in msg
    assert "['temperature']" in msg


def test_windows_with_nan_are_skipped_and_logged(ds, caplog):
    starts = np.arange(7)
    with caplog.at_level(logging.WARNING):
        kept = screening.screen_windows(ds, starts, num_frames=3, on_nan="skip")
    np.testing.assert_array_equal(kept, starts[~_brute_force_bad(ds, starts, 3)])
    np.testing.assert_array_equal(kept, [0, 1])
    assert "skipped 5 of 7 windows" in caplog.text
    clean = ds.drop_vars(["temperature", "2m_temperature"])
    np.testing.assert_array_equal(screening.screen_windows(clean, starts, 3), starts)
