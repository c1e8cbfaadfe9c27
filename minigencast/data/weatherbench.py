"""WeatherBench-2 ERA5: open a zarr store, subset it, write a local canonical zarr.

WeatherBench-2 [1] serves ERA5 as zarr stores (public bucket gs://weatherbench2),
6-hourly, dims (time, [level,] longitude, latitude), GenCast's variable names and
a 6 h precipitation accumulation `total_precipitation_6hr`. Known stores (at the
time of writing; reading gs:// needs the `remote` extra: gcsfs):

  KNOWN_STORES["1440x721"]  0.25 deg with poles, 13 levels
  KNOWN_STORES["240x121"]   1.5 deg with poles (conservative regridding)
  KNOWN_STORES["64x32"]     5.625 deg without poles (conservative regridding)

`open_weatherbench2` opens one lazily (dask) and returns it in the canonical layout
(`layouts.to_canonical`: lat ascending, lon from 0, 12 h steps with 12 h precipitation
accumulated from the 6 h one, levels by value, optional 0.25 -> 1 deg point
subsampling). `subset_to_zarr` writes a time range of it to a local zarr, chunk
by chunk with a tqdm progress bar, so a decade streams instead of loading.

[1] Rasp et al. 2024, "WeatherBench 2", JAMES, doi:10.1029/2023MS004019.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd
import xarray

from minigencast import variables
from minigencast.data import layouts, screening

log = logging.getLogger(__name__)

KNOWN_STORES = {
    "1440x721": "gs://weatherbench2/datasets/era5/1959-2023_01_10-wb13-6h-1440x721_with_derived_variables.zarr",
    "240x121": "gs://weatherbench2/datasets/era5/1959-2023_01_10-6h-240x121_equiangular_with_poles_conservative.zarr",
    "64x32": "gs://weatherbench2/datasets/era5/1959-2023_01_10-6h-64x32_equiangular_conservative.zarr",
    # IFS ENS (50 members, TIGGE, 2018-2022; research use only, see the store's LICENSE).
    "ifs_ens/1440x721": "gs://weatherbench2/datasets/ifs_ens/2018-2022-1440x721.zarr",
    "ifs_ens/240x121": "gs://weatherbench2/datasets/ifs_ens/2018-2022-240x121_equiangular_with_poles_conservative.zarr",
    "ifs_ens/64x32": "gs://weatherbench2/datasets/ifs_ens/2018-2022-64x32_equiangular_conservative.zarr",
}  # fmt: skip
# WeatherBench-2 forecast stores: time = initialisation, prediction_timedelta = lead,
# number = member (IFS ENS) -> our forecast layout (forecast.py).
_FORECAST_RENAMES = {
    "time": "init_time",
    "prediction_timedelta": "lead_time",
    "number": "sample",
    "realization": "sample",
    "latitude": "lat",
    "longitude": "lon",
}


def open_weatherbench2(
    store: str,
    task=None,
    *,
    start=None,
    end=None,
    levels=None,
    subsample_factor: int = 1,
    chunks: dict | None = None,
) -> xarray.Dataset:
    """Open a WB2 (or any ERA5-like) zarr store lazily in the canonical layout.

    Args:
      store: path, URL or a KNOWN_STORES key.
      task: TaskConfig whose variables/levels are selected (None: keep all).
      start, end: time range (inclusive, anything `slice` on datetimes accepts).
        `start` is moved back 6 h internally so the first 12 h accumulation is whole.
      levels: pressure levels (default: the task's).
      subsample_factor: point subsampling (4: 0.25 deg -> 1 deg as DeepMind).
      chunks: dask chunks for `open_zarr` (default: the store's own chunks).
    """
    ds = _open_store(store, chunks)
    if "prediction_timedelta" in ds.dims:
        raise ValueError(
            f"{store} is a forecast store (it has `prediction_timedelta`). "
            "Fix: use open_weatherbench2_forecast / subset_forecast_to_zarr."
        )
    if task is not None:
        ds = ds[[v for v in ds.data_vars if v in _wanted(task)]]
    if start is not None or end is not None:
        lo = None if start is None else np.datetime64(start) - np.timedelta64(6, "h")
        ds = ds.sel(time=slice(lo, None if end is None else np.datetime64(end)))
    ds = layouts.to_canonical(
        ds, task, levels=levels, subsample_factor=subsample_factor, nan_check=False
    )
    if start is not None:
        ds = ds.sel(time=slice(np.datetime64(start), None))
    return _drop_leading_nan_precipitation(ds)


def _open_store(store: str, chunks: dict | None = None) -> xarray.Dataset:
    store = KNOWN_STORES.get(store, store)
    try:
        return xarray.open_zarr(store, chunks={} if chunks is None else chunks)
    except Exception as e:  # noqa: BLE001
        hint = " (gs:// needs `pip install minigencast[remote]`)" if store.startswith("gs:") else ""
        raise FileNotFoundError(
            f"Could not open WeatherBench-2 store {store}: {type(e).__name__}: {e}{hint}. "
            "Offline? Copy a subset of the store to local disk and pass its path."
        ) from e


def _wanted(task) -> set:
    """The store variables a task needs: its own, plus the sources of the 12 h
    precipitation only when the task has precipitation (a dry task must not lose its
    first time to an accumulation it never uses)."""
    keep = set(task.input_variables) | set(task.target_variables)
    if variables.PRECIPITATION in keep:
        keep |= {"total_precipitation_6hr", "total_precipitation"}
    return keep


def _drop_leading_nan_precipitation(ds: xarray.Dataset) -> xarray.Dataset:
    """Drop leading times whose 12 h precipitation is all NaN (a store's derived 12 h
    total has no full window at its start); later NaNs are caught when writing."""
    name = variables.PRECIPITATION
    if name not in ds or "time" not in ds[name].dims:
        return ds
    n = 0
    while n < ds.sizes["time"] and bool(ds[name].isel(time=n).isnull().all()):
        n += 1
    if n:
        log.warning("dropped %d leading time(s) without a whole 12 h precipitation total", n)
        ds = ds.isel(time=slice(n, None))
    return ds


def _check_no_nan(piece: xarray.Dataset, name: str, dim: str) -> None:
    """Raise naming the variable and times if `piece[name]` (computed) has NaN (SST exempt)."""
    if name in screening.NAN_ALLOWED:
        return
    da = piece[name]
    if not np.issubdtype(da.dtype, np.floating) or not bool(da.isnull().any()):
        return
    bad = da.isnull().any([d for d in da.dims if d != dim])
    times = piece[dim].values[np.asarray(bad.values)] if dim in da.dims else []
    shown = ", ".join(str(t)[:19] for t in times[:5])
    raise ValueError(
        f"NaN in `{name}` at {dim} {shown}{' ...' if len(times) > 5 else ''}; only "
        "sea_surface_temperature may be NaN. Fix: choose a time range without them, or fill "
        "them in the store."
    )


def _write_zarr(ds: xarray.Dataset, out_path: str, dim: str, chunk: int, progress: bool):
    """Write `ds` to a new zarr in `chunk`-sized slices of `dim`, one variable at a time,
    checking each slice for NaN (`_check_no_nan`) before it is written."""
    if os.path.lexists(out_path):  # Never replace what we did not create (docs/errors.md).
        raise FileExistsError(
            f"--out {out_path} exists; the subsetter writes a new zarr store and never "
            "replaces a file or folder: choose another path or remove it yourself"
        )
    ds = ds.chunk({d: (chunk if d == dim else -1) for d in ds.dims})
    for v in ds.variables.values():
        v.encoding = {}
    ds.to_zarr(out_path, mode="w-", compute=False)
    static = [v for v in ds.data_vars if dim not in ds[v].dims]
    for name in static:
        _check_no_nan(ds[[name]].compute(), name, dim)
    if static:
        ds[static].to_zarr(out_path, mode="r+")
    timed = ds.drop_vars(static)
    drop = [c for c in timed.coords if dim not in timed[c].dims]
    n = ds.sizes[dim]
    steps = range(0, n, chunk)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=f"writing {os.path.basename(out_path)}", unit="chunk")
    for a in steps:
        region = {dim: slice(a, min(a + chunk, n))}
        for name in timed.data_vars:
            piece = timed[[name]].isel(region).drop_vars(drop, errors="ignore").compute()
            _check_no_nan(piece, name, dim)
            piece.to_zarr(out_path, region=region)
    log.info("wrote %d %s to %s", n, dim, out_path)
    return out_path


def subset_to_zarr(
    store: str,
    out_path: str,
    task=None,
    *,
    start=None,
    end=None,
    levels=None,
    subsample_factor: int = 1,
    time_chunk: int = 8,
    progress: bool = True,
) -> str:
    """Write a canonical subset of a WB2 store to a local zarr (streamed, with tqdm).

    Each slice of each variable is checked for NaN before it is written (only SST may
    be NaN; a store's own 12 h precipitation included). Returns `out_path`, which must
    not exist yet.
    """
    ds = open_weatherbench2(
        store, task, start=start, end=end, levels=levels, subsample_factor=subsample_factor
    )
    return _write_zarr(ds, out_path, "time", time_chunk, progress)


# --------------------------------------------------------------------------- forecasts
def _precipitation_12h(ds: xarray.Dataset, leads: np.ndarray) -> xarray.DataArray | None:
    """12 h precipitation ending at each lead in `leads`, from what the store has: the 12 h
    total itself, 6 h totals (sum of the two ending at L and L - 6 h), or the total since
    initialisation (difference between L and L - 12 h; the store's lead 0 holds 0)."""
    h6, h12 = np.timedelta64(6, "h"), np.timedelta64(12, "h")
    have = ds["lead_time"].values
    if variables.PRECIPITATION in ds:
        return ds[variables.PRECIPITATION].sel(lead_time=leads)
    for name, back, sign in (("total_precipitation_6hr", h6, 1), ("total_precipitation", h12, -1)):
        if name in ds and np.isin(leads - back, have).all():
            now = ds[name].sel(lead_time=leads)
            before = ds[name].sel(lead_time=leads - back).assign_coords(lead_time=leads)
            return now + sign * before
    return None


def is_forecast_store(store: str) -> bool:
    """Whether a WB2 store (path, URL or KNOWN_STORES key) holds forecasts (lead times)."""
    return "prediction_timedelta" in _open_store(store).dims


def open_weatherbench2_forecast(
    store: str,
    task=None,
    *,
    start=None,
    end=None,
    levels=None,
    max_lead=None,
    members: int | None = None,
    chunks: dict | None = None,
) -> xarray.Dataset:
    """Open a WB2 forecast store (IFS ENS, ...) lazily in our forecast layout.

    WB2 forecast stores have dims (time = initialisation, [number,] prediction_timedelta,
    [level,] latitude, longitude) in either lat/lon order (WB2 data guide). Returns
    (sample, init_time, lead_time, [level,] lat, lon) at 12 h lead multiples with the
    task's variables that the store has (IFS ENS lacks some, e.g. it has 3 levels), the
    12 h precipitation (`_precipitation_12h`), lat ascending, lon from 0, and `valid_time`.

    Args:
      store: path, URL or KNOWN_STORES key (e.g. "ifs_ens/240x121").
      task: TaskConfig whose target variables are kept (None: all variables).
      start, end: initialisation-time range (inclusive).
      levels: pressure levels (default: the task's that the store has; all if no task).
      max_lead: the longest lead kept (anything np.timedelta64 accepts, e.g. "360h").
      members: keep the first `members` ensemble members.
    """
    ds = _open_store(store, chunks)
    if "prediction_timedelta" not in ds.dims:
        raise ValueError(f"{store} is not a forecast store (no `prediction_timedelta` dim).")
    ds = ds.rename({k: v for k, v in _FORECAST_RENAMES.items() if k in ds.dims or k in ds})
    if "sample" not in ds.dims:
        ds = ds.expand_dims(sample=[0])
    if members is not None:
        ds = ds.isel(sample=slice(0, members))
    if start is not None or end is not None:
        ds = ds.sel(init_time=slice(start, end))
    h12 = np.timedelta64(12, "h")
    leads = ds["lead_time"].values
    leads = leads[(leads > np.timedelta64(0)) & (leads % h12 == np.timedelta64(0))]
    if max_lead is not None:
        limit = pd.Timedelta(max_lead).to_timedelta64()
        leads = leads[leads <= limit]
    names = list(ds.data_vars)
    if task is not None:
        names = [v for v in dict.fromkeys(task.target_variables) if v in ds]
    out = ds[[v for v in names if v != variables.PRECIPITATION]].sel(lead_time=leads)
    wants_tp = task is None or variables.PRECIPITATION in task.target_variables
    tp = _precipitation_12h(ds, leads) if wants_tp else None
    if tp is not None:
        out[variables.PRECIPITATION] = tp
    elif task is not None and wants_tp:
        log.warning("%s has no precipitation from which to make 12 h totals", store)
    if "level" in out.dims:
        if levels is None and task is not None:
            have = set(int(x) for x in out["level"].values)
            levels = [lv for lv in task.pressure_levels if int(lv) in have]
        if levels is not None:
            out = layouts.select_levels(out, levels)
        out = out.assign_coords(level=out["level"].astype(np.int64)).sortby("level")
    out = out.assign_coords(lon=np.mod(out["lon"], 360.0)).sortby(["lat", "lon"])
    out = out.assign_coords(valid_time=out["init_time"] + out["lead_time"])
    dims = ("sample", "init_time", "lead_time", "level", "lat", "lon")
    return out.transpose(*[d for d in dims if d in out.dims])


def subset_forecast_to_zarr(
    store: str,
    out_path: str,
    task=None,
    *,
    start=None,
    end=None,
    levels=None,
    max_lead=None,
    members: int | None = None,
    init_chunk: int = 1,
    progress: bool = True,
) -> str:
    """Write a WB2 forecast store's subset (`open_weatherbench2_forecast`) to a local zarr,
    `init_chunk` initialisations at a time with a progress bar; `minigencast evaluate
    --baseline NAME=out_path` reads it. Returns `out_path`."""
    ds = open_weatherbench2_forecast(
        store, task, start=start, end=end, levels=levels, max_lead=max_lead, members=members
    )
    return _write_zarr(ds, out_path, "init_time", init_chunk, progress)
