"""WeatherBench-2 subsetter on stores with WB2's exact schema (tests/wb2_schema.py):
ERA5 (lon-lat order, derived 12 h precipitation) and IFS ENS forecasts."""

import logging

import numpy as np
import pandas as pd
import pytest
import wb2_schema
import xarray

from minigencast import config, variables
from minigencast.data import weatherbench

TASK = config.gencast_task(wb2_schema.ENS_LEVELS)
TP12 = variables.PRECIPITATION


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("wb2")
    era5 = wb2_schema.era5_store(str(root / "era5.zarr"), num_times=24)
    inits = ["2020-01-03T00", "2020-01-03T12"]
    ens = wb2_schema.ifs_ens_store(str(root / "ens.zarr"), era5, inits=inits, members=3)
    return root, era5, ens


def test_store_precipitation_12h_first_nan_time_dropped(stores, caplog):
    root, era5, _ = stores
    with caplog.at_level(logging.WARNING):
        ds = weatherbench.open_weatherbench2(str(root / "era5.zarr"), TASK)
    assert "dropped 1 leading time" in caplog.text
    # The store starts at 00 UTC: its 12 h total there is NaN, so 12 UTC comes first.
    assert pd.Timestamp(ds["time"].values[0]) == pd.Timestamp("2020-01-01T12")
    tp6 = era5["total_precipitation_6hr"].transpose("time", "latitude", "longitude").values
    np.testing.assert_allclose(ds[TP12].isel(time=0).values, tp6[1] + tp6[2], rtol=1e-6)
    assert not bool(ds[TP12].isnull().any())


def test_dry_task_keeps_the_first_time(stores):
    root, era5, _ = stores
    ds = weatherbench.open_weatherbench2(str(root / "era5.zarr"), config.TOY_PLANET_TASK)
    assert ds["time"].values[0] == era5["time"].values[0]  # 2020-01-01T00 kept
    assert TP12 not in ds


@pytest.mark.parametrize("name", ["temperature", TP12])
def test_nan_in_the_store_is_refused_when_writing(tmp_path, name):
    era5 = wb2_schema.era5_store(str(tmp_path / "era5.zarr"), num_times=12)
    bad_time = era5["time"].values[6]  # 2020-01-02T12
    patched = era5[[name]].copy(deep=True)
    patched[name].loc[{"time": bad_time}] = np.nan
    patched.drop_vars([c for c in patched.coords if c != "time"]).isel(time=[6]).to_zarr(
        tmp_path / "era5.zarr", region={"time": slice(6, 7)}
    )
    with pytest.raises(ValueError, match=rf"NaN in `{name}` at time 2020-01-02T12"):
        weatherbench.subset_to_zarr(
            str(tmp_path / "era5.zarr"), str(tmp_path / "out.zarr"), TASK, progress=False
        )


def test_ifs_ens_store_to_forecast_layout(stores, tmp_path):
    root, _, ens = stores
    out = weatherbench.subset_forecast_to_zarr(
        str(root / "ens.zarr"), str(tmp_path / "ens.zarr"), TASK, max_lead="36h", progress=False
    )
    fc = xarray.open_zarr(out).load()
    assert fc["temperature"].dims == ("sample", "init_time", "lead_time", "level", "lat", "lon")
    hours = fc["lead_time"].values / np.timedelta64(1, "h")
    assert list(hours) == [12, 24, 36] and list(fc["level"].values) == [500, 700, 850]
    np.testing.assert_array_equal(fc["sample"].values, ens["number"].values)
    want = ens["temperature"].sel(
        time="2020-01-03T12", number=2, prediction_timedelta=np.timedelta64(24, "h"), level=700
    )
    got = fc["temperature"].sel(init_time="2020-01-03T12", sample=2, level=700).isel(lead_time=1)
    np.testing.assert_array_equal(got.values, want.transpose("latitude", "longitude").values)
    # 12 h precipitation from the 6 h totals = the difference of the totals since init.
    tp6 = ens["total_precipitation_6hr"].transpose("number", "time", ..., "latitude", "longitude")
    tp6 = tp6.values  # [member, init, lead (every 6 h from 0), lat, lon]
    np.testing.assert_allclose(fc[TP12].values[:, :, 1], tp6[:, :, 3] + tp6[:, :, 4], rtol=1e-6)
    cum = ens["total_precipitation"]
    alone = weatherbench.open_weatherbench2_forecast(
        str(root / "ens.zarr"), TASK, max_lead="36h"
    ).load()
    np.testing.assert_allclose(alone[TP12].values, fc[TP12].values, rtol=1e-6)
    from_cum = weatherbench._precipitation_12h(
        cum.to_dataset().rename(prediction_timedelta="lead_time"), fc["lead_time"].values
    )
    np.testing.assert_allclose(
        from_cum.transpose("time", "number", "lead_time", "latitude", "longitude").values,
        fc[TP12].transpose("init_time", "sample", "lead_time", "lat", "lon").values,
        rtol=1e-5,
        atol=1e-9,
    )


def test_era5_store_is_not_a_forecast_store(stores):
    root, _, _ = stores
    assert not weatherbench.is_forecast_store(str(root / "era5.zarr"))
    assert weatherbench.is_forecast_store(str(root / "ens.zarr"))
    with pytest.raises(ValueError, match="forecast store"):
        weatherbench.open_weatherbench2(str(root / "ens.zarr"), TASK)
