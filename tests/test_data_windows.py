"""Windowing and generated forcings against DeepMind's reference outputs."""

import os

import numpy as np
import pandas as pd
import pytest
import xarray

from minigencast import config, variables
from minigencast.data import forcings, layouts, synthetic, windows

_HERE = os.path.dirname(__file__)
_CANDIDATES = [os.path.join(_HERE, "parity", "open"), "/work/shared/parity/open"]


def parity_file(name):
    for d in _CANDIDATES:
        path = os.path.join(d, name)
        if os.path.exists(path):
            return path
    pytest.skip(f"parity file {name} not available")


def _task_for(ds):
    return config.gencast_task(levels=tuple(int(x) for x in ds.level.values))


def test_extract_matches_deepmind_reference():
    src = xarray.load_dataset(parity_file("source_dataset.nc"))
    task = _task_for(src)
    got = windows.extract_inputs_targets_forcings(
        src,
        input_variables=task.input_variables,
        target_variables=task.target_variables,
        forcing_variables=task.forcing_variables,
        pressure_levels=task.pressure_levels,
        input_duration="24h",
        target_lead_times=slice("12h", "12h"),
    )
    for mine, name in zip(got, ("inputs.nc", "targets.nc", "forcings.nc"), strict=True):
        ref = xarray.load_dataset(parity_file(name))
        assert list(mine.data_vars) == list(ref.data_vars)
        # Bitwise, including the float32 progress features.
        xarray.testing.assert_identical(mine.drop_attrs(), ref.drop_attrs())


def test_window_on_canonical_equals_reference():
    src = xarray.load_dataset(parity_file("source_dataset.nc"))
    canonical = layouts.from_deepmind(src)
    inputs, targets, forc = windows.window(canonical, _task_for(src), init_index=1)
    ref = xarray.load_dataset(parity_file("inputs.nc"))
    xarray.testing.assert_identical(inputs.drop_attrs(), ref.drop_attrs())
    assert list(targets.time.values) == [pd.Timedelta("12h")]
    assert list(forc.data_vars) == list(variables.FORCING_VARIABLES)


def test_progress_features_formula():
    t = np.array(["2019-03-29T06:00", "2020-07-01T18:00"], dtype="datetime64[ns]")
    lon = np.array([0.0, 90.0, 270.0], dtype=np.float32)
    s = forcings.seconds_since_epoch(t)
    yp = forcings.year_progress(s)
    dp = forcings.day_progress(s, lon)
    assert yp.dtype == np.float32 and dp.shape == (2, 3)
    expected_y = np.mod(s / 86400 / 365.24219, 1.0)
    np.testing.assert_allclose(yp, expected_y, atol=1e-6)
    # 06 UTC at 90E is 12 local: day progress 0.5; at 270E it is 0 (midnight).
    np.testing.assert_allclose(dp[0], [0.25, 0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(dp[1], [0.75, 0.0, 0.5], atol=1e-6)


def test_windows_iterate_all_valid_inits():
    ds = synthetic.sample(num_times=6, levels=(500, 850, 1000))
    task = config.gencast_task(levels=(500, 850, 1000))
    idx = windows.valid_init_indices(ds, task, num_target_steps=2)
    assert list(idx) == [1, 2, 3]
    items = list(windows.windows(ds, task, num_target_steps=2))
    assert len(items) == 3
    init_time, (inputs, targets, forc) = items[0]
    assert init_time == ds.time.values[1]
    assert inputs.sizes["time"] == 2 and targets.sizes["time"] == 2
    np.testing.assert_array_equal(targets["temperature"].values[0, 1], ds["temperature"].values[3])
    with pytest.raises(ValueError, match="does not fit"):
        windows.window(ds, task, init_index=0)
