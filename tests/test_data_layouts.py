"""Canonical layout: conversions, automatic fixes and clear errors on bad input."""

import logging

import numpy as np
import pandas as pd
import pytest
import xarray

from minigencast import config
from minigencast.data import layouts, synthetic

TASK = config.gencast_task(levels=(500, 850, 1000))


@pytest.fixture
def ds():
    return synthetic.sample(num_times=4, levels=(250, 500, 850, 1000))


def test_deepmind_round_trip(ds):
    dm = layouts.to_deepmind(ds)
    assert dm.sizes["batch"] == 1
    assert dm["temperature"].dims == ("batch", "time", "level", "lat", "lon")
    assert dm["land_sea_mask"].dims == ("lat", "lon")
    assert np.issubdtype(dm["time"].dtype, np.timedelta64)
    assert (dm["datetime"].values[0] == ds["time"].values).all()
    xarray.testing.assert_identical(layouts.from_deepmind(dm), ds)


def test_to_canonical_selects_levels_and_variables(ds):
    out = layouts.to_canonical(ds, TASK)
    assert list(out["level"].values) == [500, 850, 1000]
    assert out["level"].dtype == np.int64
    assert "total_precipitation_12hr" in out
    assert out["temperature"].dims == ("time", "level", "lat", "lon")


def test_deepmind_layout_is_accepted(ds):
    out = layouts.to_canonical(layouts.to_deepmind(ds), TASK)
    xarray.testing.assert_allclose(out, layouts.to_canonical(ds, TASK))


def _weatherbench_like(ds):
    """WB2-style: latitude/longitude names, descending lat, lon from -180, 6-hourly."""
    ds6 = ds.drop_vars("total_precipitation_12hr")
    t = pd.date_range("2020-01-01T00", periods=5, freq="6h").values
    ds6 = ds6.isel(time=[0, 0, 1, 1, 2]).assign_coords(time=t)
    rng = np.random.default_rng(1)
    tp6 = xarray.DataArray(
        rng.random((5, ds.sizes["lat"], ds.sizes["lon"])).astype(np.float32) * 1e-3,
        dims=("time", "lat", "lon"),
        coords={"time": t},
    )
    ds6 = ds6.assign(total_precipitation_6hr=tp6)
    ds6 = ds6.assign_coords(lon=np.where(ds6.lon >= 180, ds6.lon - 360, ds6.lon)).sortby("lon")
    ds6 = ds6.isel(lat=slice(None, None, -1)).rename(lat="latitude", lon="longitude")
    return ds6, tp6


def test_weatherbench_layout_fixes_and_accumulates(ds, caplog):
    wb, tp6 = _weatherbench_like(ds)
    with caplog.at_level(logging.WARNING):
        out = layouts.to_canonical(wb, TASK)
    assert "descending" in caplog.text and "wrapped" in caplog.text
    assert np.all(np.diff(out["lat"].values) > 0)
    assert out["lon"].values[0] == 0 and np.all(np.diff(out["lon"].values) > 0)
    # 12 h steps at 00/12 UTC; the first (incomplete) accumulation dropped.
    assert list(pd.DatetimeIndex(out.time.values).hour) == [12, 0]
    # tp6 was attached in canonical orientation; to_canonical undoes the flips.
    expected = (tp6.isel(time=1) + tp6.isel(time=2)).values  # 06 + 12 UTC -> 12 UTC
    got = out["total_precipitation_12hr"].isel(time=0).values
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(
        out["temperature"].isel(time=0).values,
        ds["temperature"].isel(time=1).sel(level=[500, 850, 1000]).values,
    )


def test_missing_variable_is_named(ds):
    with pytest.raises(ValueError, match="specific_humidity.*'q'"):
        layouts.to_canonical(ds.drop_vars("specific_humidity"), TASK)


def test_geopotential_height_hint(ds):
    height = ds.assign(geopotential=ds["geopotential"] / 9.80665)
    with pytest.raises(ValueError, match="geopotential height.*9.80665"):
        layouts.to_canonical(height, TASK)
    by_units = ds.copy()
    by_units["geopotential"].attrs["units"] = "m"
    with pytest.raises(ValueError, match="geopotential height"):
        layouts.to_canonical(by_units, TASK)


def test_missing_levels_are_named(ds):
    with pytest.raises(ValueError, match=r"Missing pressure level\(s\) \[50, 100\]"):
        layouts.to_canonical(ds, config.gencast_task(levels=(50, 100, 500)))


def test_time_gap_is_reported(ds):
    gappy = ds.isel(time=[0, 1, 3])
    with pytest.raises(ValueError, match="Irregular time steps.*gaps at"):
        layouts.to_canonical(gappy, TASK)


def test_nan_outside_sst_is_rejected_but_sst_nan_kept(ds):
    out = layouts.to_canonical(ds, TASK)
    assert bool(out["sea_surface_temperature"].isnull().any())  # land kept as NaN
    bad = ds.copy(deep=True)
    bad["temperature"][0, 1, 0, 0] = np.nan  # 500 hPa
    with pytest.raises(ValueError, match=r"NaN values in \['temperature'\]"):
        layouts.to_canonical(bad, TASK)


def test_point_subsampling_keeps_poles():
    fine = synthetic.sample(num_times=2, n_lat=21, n_lon=40, levels=(500,))
    coarse = layouts.subsample(fine, 4)
    assert coarse.sizes["lat"] == 6 and coarse.sizes["lon"] == 10
    assert coarse.lat.values[0] == -90 and coarse.lat.values[-1] == 90
    np.testing.assert_array_equal(
        coarse["temperature"].values, fine["temperature"].values[..., ::4, ::4]
    )
    with pytest.raises(ValueError, match="poles"):
        layouts.subsample(fine, 3)


def test_era5_short_names_are_renamed(ds):
    era5 = ds[["2m_temperature", "geopotential", "geopotential_at_surface"]].rename(
        {"2m_temperature": "t2m", "geopotential": "z"}
    )
    era5 = era5.rename(geopotential_at_surface="zs")
    out = layouts.to_canonical(era5)
    assert "2m_temperature" in out and "geopotential" in out


def test_grid_without_poles_is_accepted_with_a_warning(caplog):
    # WeatherBench-2's 64x32 grid: latitudes +-87.1875, no poles.
    ds = synthetic.sample(num_times=2, n_lat=13, n_lon=24, levels=(500,))
    ds = ds.isel(lat=slice(1, -1))
    with caplog.at_level(logging.WARNING):
        out = layouts.to_canonical(ds)
    assert "exclude the poles" in caplog.text
    assert out.sizes["lat"] == 11


def test_other_init_hours_from_6_hourly_data(ds):
    wb, _ = _weatherbench_like(ds)
    out = layouts.to_canonical(wb, TASK, hours=(6, 18))
    assert list(pd.DatetimeIndex(out.time.values).hour) == [6, 18]


def test_hourly_era5_precipitation_is_summed_over_12_hours():
    ds = synthetic.sample(num_times=1, levels=(500,)).drop_vars("total_precipitation_12hr")
    t = pd.date_range("2020-01-01T00", periods=25, freq="1h").values
    hourly = ds.isel(time=[0] * 25).assign_coords(time=t)
    tp = np.random.default_rng(0).random((25, ds.sizes["lat"], ds.sizes["lon"])) * 1e-4
    hourly = hourly.assign(tp=(("time", "lat", "lon"), tp.astype(np.float32)))  # ERA5 short name
    out = layouts.to_canonical(hourly)
    assert list(pd.DatetimeIndex(out.time.values).hour) == [12, 0]
    np.testing.assert_allclose(
        out["total_precipitation_12hr"].isel(time=0).values, tp[1:13].sum(0), rtol=1e-5
    )
