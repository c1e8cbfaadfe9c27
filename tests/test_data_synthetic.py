"""The synthetic full-variable sample."""

import numpy as np

from minigencast import config, variables
from minigencast.data import layouts, synthetic


def test_all_84_channels_present_and_plausible():
    ds = synthetic.sample(num_times=3)
    task = config.GENCAST_TASK
    canon = layouts.to_canonical(ds, task)  # raises on missing vars/levels, NaN outside SST
    n = sum(canon[v].sizes.get("level", 1) for v in task.target_variables)
    assert n == 84
    for name, (lo, hi) in variables.PLAUSIBLE_RANGES.items():
        assert lo <= float(ds[name].min()) and float(ds[name].max()) <= hi, name


def test_sst_nan_exactly_over_land_and_precip_nonnegative():
    ds = synthetic.sample(num_times=2, seed=5)
    land = ds["land_sea_mask"].values > 0.5
    sst_nan = ds["sea_surface_temperature"].isnull().values
    assert land.any() and (~land).any()
    np.testing.assert_array_equal(sst_nan, np.broadcast_to(land, sst_nan.shape))
    assert float(ds["total_precipitation_12hr"].min()) >= 0


def test_seeded():
    a, b = synthetic.sample(seed=1), synthetic.sample(seed=1)
    c = synthetic.sample(seed=2)
    assert a.identical(b) and not a["temperature"].equals(c["temperature"])
