"""WeatherBench-2 opener/subsetter on a local zarr store in WB2's layout."""

import numpy as np
import pandas as pd
import pytest
import xarray

from minigencast import config
from minigencast.data import synthetic, weatherbench

LEVELS = (500, 850)


def _wb2_store(path):
    """Write a tiny store in WB2's layout: 6-hourly, latitude/longitude, descending lat."""
    base = synthetic.sample(num_times=9, levels=(250, 500, 850), n_lat=7, n_lon=12)
    times = pd.date_range("2020-01-01T00", periods=9, freq="6h").values
    ds = base.drop_vars("total_precipitation_12hr").assign_coords(time=times)
    rng = np.random.default_rng(0)
    tp6 = rng.random((9, 7, 12)).astype(np.float32) * 1e-3
    ds["total_precipitation_6hr"] = (("time", "lat", "lon"), tp6)
    ds = ds.isel(lat=slice(None, None, -1)).rename(lat="latitude", lon="longitude")
    ds = ds.transpose("time", "level", "longitude", "latitude")
    ds.to_zarr(path, mode="w")
    return base, tp6


def test_open_and_subset(tmp_path):
    store = str(tmp_path / "wb2.zarr")
    base, tp6 = _wb2_store(store)
    task = config.gencast_task(levels=LEVELS)
    ds = weatherbench.open_weatherbench2(store, task, start="2020-01-01T12", end="2020-01-02T12")
    assert ds["temperature"].chunks is not None  # lazy (dask)
    assert list(pd.DatetimeIndex(ds.time.values).hour) == [12, 0, 12]
    assert list(ds.level.values) == [500, 850]
    assert np.all(np.diff(ds.lat.values) > 0)
    # 12 h total ending 2020-01-01T12 = 6 h accumulations ending 06 and 12 UTC.
    np.testing.assert_allclose(
        ds["total_precipitation_12hr"].isel(time=0).values, tp6[1] + tp6[2], rtol=1e-6
    )
    out = weatherbench.subset_to_zarr(
        store,
        str(tmp_path / "out.zarr"),
        task,
        start="2020-01-01T12",
        end="2020-01-02T12",
        time_chunk=2,
        progress=False,
    )
    back = xarray.open_zarr(out)
    xarray.testing.assert_allclose(back.load(), ds.load())
    assert back["temperature"].dims == ("time", "level", "lat", "lon")
    # An existing folder (a user's) is refused and left as it was.
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="never replaces"):
        weatherbench.subset_to_zarr(store, str(user), task, progress=False)
    assert [p.name for p in user.iterdir()] == ["thesis.tex"]
