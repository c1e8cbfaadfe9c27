"""Forecast datasets: other layouts to ours, and opening forecast or truth files.

Our forecast layout is (sample, init_time, lead_time, [level,] lat, lon) with a
`valid_time` (init_time, lead_time) coordinate; `forecast.run` writes it and the scores
and figures read it. `to_forecast_layout` converts WeatherBench-2's and DeepMind's rollout
layouts to it; `open_file` opens a NetCDF file or a zarr store.
"""

from __future__ import annotations

from minigencast.data import files

# Dimension names of other forecast layouts -> ours (WeatherBench-2, CF, ECMWF).
_FORECAST_RENAMES = {
    "latitude": "lat",
    "longitude": "lon",
    "prediction_timedelta": "lead_time",
    "number": "sample",
    "realization": "sample",
    "member": "sample",
}


def to_forecast_layout(ds):
    """Any supported forecast layout -> (sample, init_time, lead_time, [level,] lat, lon).

    Accepts ours (unchanged), WeatherBench-2's (time = init, prediction_timedelta, number,
    latitude, longitude), and DeepMind's rollout output (sample, batch, time = lead
    timedelta, `datetime` (batch, time) valid-time coord). A forecast without an ensemble
    dim gets `sample` of size 1. Latitudes ascending, longitudes 0..360; adds `valid_time`.
    """
    ds = ds.rename({k: v for k, v in _FORECAST_RENAMES.items() if k in ds.dims})
    if "batch" in ds.dims and "datetime" in ds.coords and "time" in ds.dims:  # DeepMind
        ds = ds.rename(time="lead_time")
        init = (ds["datetime"] - ds["lead_time"]).isel(lead_time=0).values
        ds = ds.assign_coords(init_time=("batch", init)).swap_dims(batch="init_time")
        ds = ds.drop_vars([v for v in ("datetime", "batch") if v in ds.coords])
    elif "lead_time" in ds.dims and "time" in ds.dims:  # WeatherBench-2: time = init
        ds = ds.rename(time="init_time")
    missing = [d for d in ("init_time", "lead_time", "lat", "lon") if d not in ds.dims]
    if missing:
        raise ValueError(f"not a forecast layout: no {missing} dims (dims: {dict(ds.sizes)}).")
    if "sample" not in ds.dims:
        ds = ds.expand_dims(sample=[0])
    ds = ds.assign_coords(lon=ds["lon"] % 360).sortby(["lat", "lon"])
    ds = ds.drop_vars("valid_time", errors="ignore")
    ds = ds.assign_coords(valid_time=ds["init_time"] + ds["lead_time"])
    return ds.transpose("sample", "init_time", "lead_time", ...)


def open_file(path, load_below_bytes=2e9):
    """Open a forecast or truth file (`files.open_path`: NetCDF, zarr, GRIB, or several
    files); load it into memory when smaller than `load_below_bytes` (each figure re-reads
    a lazy dataset), else keep it lazy (dask)."""
    ds = files.open_path(path)
    return ds.load() if ds.nbytes < load_below_bytes else ds
