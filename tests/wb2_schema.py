"""Small local zarr stores with WeatherBench-2's exact schema (for tests and dry runs).

The schema follows WeatherBench-2's data guide (docs/source/data-guide.ipynb in
google-research/weatherbench2) and its regridding script (scripts/regrid.py, which
writes `.transpose(..., "longitude", "latitude")` and bare `np.linspace` coordinates):

  ERA5 (64x32, 240x121 conservative):  dims (time, level, longitude, latitude), variables
      float32 with long names; time datetime64[ns] 6-hourly; level int64 (13 levels);
      longitude float64 0..360-d; latitude float64 ascending (with or without poles),
      no coordinate attributes; 6 h precipitation `total_precipitation_6hr` and its
      derived 12 h total (NaN where the store starts); static fields (longitude, latitude).
  IFS ENS (240x121, 64x32):  dims (time = initialisation, number, prediction_timedelta,
      [level,] longitude, latitude); number int32 1..50; level int32 (500, 700, 850);
      prediction_timedelta timedelta64[ns] every 6 h from 0; precipitation as 6 h totals
      and as the total since initialisation (`total_precipitation`, 0 at lead 0).
"""

import numpy as np
import pandas as pd
import xarray

from minigencast import variables
from minigencast.data import synthetic

ERA5_LEVELS = variables.PRESSURE_LEVELS_WEATHERBENCH_13
ENS_LEVELS = (500, 700, 850)


def _grid(n_lon, n_lat, poles=True):
    lon = np.linspace(0, 360 - 360 / n_lon, n_lon)
    if poles:
        lat = np.linspace(-90, 90, n_lat)
    else:
        lat = np.linspace(-90 + 90 / n_lat, 90 - 90 / n_lat, n_lat)
    return lon, lat


def era5_store(path, *, start="2020-01-01T00", num_times=32, n_lon=16, n_lat=9, seed=0):
    """Write a WB2-schema ERA5 store at `path` (6-hourly); returns the Dataset written."""
    lon, lat = _grid(n_lon, n_lat)
    base = synthetic.sample(num_times=num_times, n_lat=n_lat, n_lon=n_lon, seed=seed)
    times = pd.date_range(start, periods=num_times, freq="6h").values.astype("datetime64[ns]")
    rng = np.random.default_rng(seed + 1)
    tp6 = (np.abs(rng.standard_normal((num_times, n_lat, n_lon))) * 5e-4).astype(np.float32)
    ds = base.drop_vars(variables.PRECIPITATION).assign_coords(time=times)
    ds["total_precipitation_6hr"] = (("time", "lat", "lon"), tp6)
    ds["total_precipitation_6hr"].attrs = {"units": "m", "long_name": "Total precipitation"}
    ds["total_precipitation_12hr"] = ds["total_precipitation_6hr"].rolling(time=2).sum()
    ds = ds.rename(lat="latitude", lon="longitude")
    ds = ds.assign_coords(
        latitude=lat, longitude=lon, level=np.asarray(ERA5_LEVELS, dtype=np.int64)
    )
    order = [d for d in ("time", "level", "longitude", "latitude")]
    ds = ds.transpose(*order, missing_dims="ignore")
    for name in ds.data_vars:
        ds[name] = ds[name].astype(np.float32)
    ds.to_zarr(path, mode="w", zarr_format=2)
    return ds


def ifs_ens_store(path, era5, *, inits, members=4, max_lead_hours=48, seed=2):
    """Write a WB2-schema IFS ENS store: members = ERA5 at the valid time + noise."""
    rng = np.random.default_rng(seed)
    inits = np.asarray(inits, "datetime64[ns]")
    leads = np.arange(0, max_lead_hours + 1, 6).astype("timedelta64[h]").astype("timedelta64[ns]")
    valid = inits[:, None] + leads[None, :]
    truth = era5.sel(level=list(ENS_LEVELS))
    names = [
        "2m_temperature",
        "mean_sea_level_pressure",
        "10m_u_component_of_wind",
        "10m_v_component_of_wind",
        "temperature",
        "geopotential",
        "u_component_of_wind",
        "v_component_of_wind",
        "specific_humidity",
        "total_precipitation_6hr",
    ]
    out = {}
    for name in names:
        da = truth[name].sel(time=xarray.DataArray(valid, dims=("time", "prediction_timedelta")))
        da = da.expand_dims(number=members, axis=1)
        scale = float(truth[name].std()) * 0.3
        noisy = da.values + rng.standard_normal(da.shape) * scale
        if name == "total_precipitation_6hr":
            noisy = np.abs(noisy)
            noisy[:, :, 0] = 0.0  # nothing has accumulated at lead 0
        out[name] = (da.dims, noisy.astype(np.float32), truth[name].attrs)
    cum = np.cumsum(out["total_precipitation_6hr"][1], axis=2)
    out["total_precipitation"] = (out["total_precipitation_6hr"][0], cum, {"units": "m"})
    ds = xarray.Dataset(
        out,
        coords={
            "time": inits,
            "number": np.arange(1, members + 1, dtype=np.int32),
            "prediction_timedelta": leads,
            "level": np.asarray(ENS_LEVELS, dtype=np.int32),
            "longitude": era5["longitude"].values,
            "latitude": era5["latitude"].values,
        },
    )
    dims = ("time", "number", "prediction_timedelta", "level", "longitude", "latitude")
    ds = ds.transpose(*dims, missing_dims="ignore")
    ds.to_zarr(path, mode="w", zarr_format=2)
    return ds
