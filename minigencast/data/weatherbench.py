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
import xarray

from minigencast.data import layouts

log = logging.getLogger(__name__)

KNOWN_STORES = {
    "1440x721": "gs://weatherbench2/datasets/era5/1959-2023_01_10-wb13-6h-1440x721_with_derived_variables.zarr",
    "240x121": "gs://weatherbench2/datasets/era5/1959-2023_01_10-6h-240x121_equiangular_with_poles_conservative.zarr",
    "64x32": "gs://weatherbench2/datasets/era5/1959-2023_01_10-6h-64x32_equiangular_conservative.zarr",
}  # fmt: skip


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
    store = KNOWN_STORES.get(store, store)
    try:
        ds = xarray.open_zarr(store, chunks={} if chunks is None else chunks)
    except Exception as e:  # noqa: BLE001
        hint = " (gs:// needs `pip install minigencast[remote]`)" if store.startswith("gs:") else ""
        raise FileNotFoundError(
            f"Could not open WeatherBench-2 store {store}: {type(e).__name__}: {e}{hint}. "
            "Offline? Copy a subset of the store to local disk and pass its path."
        ) from e
    if task is not None:
        keep = set(task.input_variables) | set(task.target_variables)
        keep |= {"total_precipitation_6hr", "total_precipitation"}
        ds = ds[[v for v in ds.data_vars if v in keep]]
    if start is not None or end is not None:
        lo = None if start is None else np.datetime64(start) - np.timedelta64(6, "h")
        ds = ds.sel(time=slice(lo, None if end is None else np.datetime64(end)))
    ds = layouts.to_canonical(
        ds, task, levels=levels, subsample_factor=subsample_factor, nan_check=False
    )
    if start is not None:
        ds = ds.sel(time=slice(np.datetime64(start), None))
    return ds


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

    Returns `out_path`. Re-running overwrites it.
    """
    ds = open_weatherbench2(
        store, task, start=start, end=end, levels=levels, subsample_factor=subsample_factor
    )
    ds = ds.chunk({d: (time_chunk if d == "time" else -1) for d in ds.dims})
    for v in ds.variables.values():
        v.encoding = {}
    ds.to_zarr(out_path, mode="w", compute=False)
    static = [v for v in ds.data_vars if "time" not in ds[v].dims]
    if static:
        ds[static].to_zarr(out_path, mode="r+")
    timed = ds.drop_vars(static)
    n = ds.sizes["time"]
    steps = range(0, n, time_chunk)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=f"writing {os.path.basename(out_path)}", unit="chunk")
    drop = [c for c in timed.coords if "time" not in timed[c].dims]
    for a in steps:
        region = {"time": slice(a, min(a + time_chunk, n))}
        timed.isel(region).drop_vars(drop).to_zarr(out_path, region=region)
    log.info("wrote %d times to %s", n, out_path)
    return out_path
