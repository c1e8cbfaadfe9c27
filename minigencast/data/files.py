"""Open dataset files of any supported format, one file or many, with clear errors.

  open_path("era5.grib")            GRIB via cfgrib/ecCodes (extra `grib`); no index file
                                    is written next to the data (indexpath="")
  open_path("store.zarr")           zarr (lazy)
  open_path("era5_2020.nc")         NetCDF (lazy)
  open_path("era5_*.nc") / a folder / a list of paths
                                    several files joined along `time`; each file is opened
                                    and its last time read, so a truncated or unreadable
                                    file is reported with its path and the time range it
                                    should cover (never a silent hole in training)

The result is in the file's own layout; `layouts.to_canonical` brings it to ours.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pandas as pd
import xarray

GRIB_SUFFIXES = (".grib", ".grib1", ".grib2", ".grb", ".grb2")


def _is_grib(path: str) -> bool:
    return path.lower().endswith(GRIB_SUFFIXES)


def open_one(path: str, chunks: dict | None = None) -> xarray.Dataset:
    """Open one NetCDF file, zarr store or GRIB file lazily (dask with `chunks`, default {}).

    Raises FileNotFoundError for a missing path and ValueError "not a NetCDF/zarr
    dataset" naming the path for an empty, text or otherwise unreadable file.
    """
    chunks = {} if chunks is None else chunks
    if "://" in path:  # a remote store (gs://...): zarr, read lazily
        return xarray.open_zarr(path, chunks=chunks)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such dataset file: {path}")
    if _is_grib(path):
        return _open_grib(path, chunks)
    try:
        if path.rstrip("/").endswith(".zarr") or os.path.isdir(path):
            return xarray.open_zarr(path, chunks=chunks)
        return xarray.open_dataset(path, chunks=chunks)
    except (ValueError, OSError, KeyError, TypeError) as e:
        reason = " ".join(str(e).split())[:200]
        raise ValueError(f"{path} is not a NetCDF/zarr dataset ({reason})") from e


def _open_grib(path: str, chunks: dict) -> xarray.Dataset:
    try:
        import cfgrib  # noqa: F401
    except ImportError as e:
        raise ValueError(
            f"Reading GRIB ({path}) needs cfgrib and ecCodes. "
            'Fix: pip install -e ".[grib]" (or convert the file to NetCDF).'
        ) from e
    return xarray.open_dataset(
        path, engine="cfgrib", chunks=chunks, backend_kwargs={"indexpath": ""}
    )


def expand_paths(spec) -> list[str]:
    """A path, a glob pattern, a folder (its *.nc, *.grib, ... files) or a list -> sorted paths."""
    if isinstance(spec, list | tuple):
        return [str(p) for p in spec]
    spec = str(spec)
    if os.path.isdir(spec) and not spec.rstrip("/").endswith(".zarr"):
        found = [
            os.path.join(spec, f)
            for f in os.listdir(spec)
            if f.lower().endswith((".nc", ".nc4", ".netcdf") + GRIB_SUFFIXES)
        ]
        if not found:
            raise FileNotFoundError(f"No NetCDF or GRIB files in folder {spec}")
        return sorted(found)
    if glob.has_magic(spec):
        found = sorted(glob.glob(spec))
        if not found:
            raise FileNotFoundError(f"No files match {spec}")
        return found
    return [spec]


def _time_range(ds: xarray.Dataset) -> tuple | None:
    for name in ("time", "valid_time"):
        if name in ds.coords and ds[name].size and np.issubdtype(ds[name].dtype, np.datetime64):
            values = np.asarray(ds[name].values).ravel()
            return pd.Timestamp(values.min()), pd.Timestamp(values.max())
    return None


def _probe(ds: xarray.Dataset) -> None:
    """Read each variable's last time (where a truncated file is short)."""
    for da in ds.data_vars.values():
        dim = next((d for d in ("time", "valid_time") if d in da.dims), None)
        da = da.isel({dim: -1}) if dim else da
        np.asarray(da.values)


def open_path(spec, chunks: dict | None = None, concat_dim: str | None = None) -> xarray.Dataset:
    """Open one file/store, or several files joined along time (module docstring).

    Args:
      spec: path (NetCDF, zarr, GRIB), glob pattern, folder, or list of paths.
      chunks: dask chunks (default: the files' own).
      concat_dim: dim to join files along (default: `time`, or `valid_time` if files
        have that dim instead).
    Raises:
      ValueError naming the bad file, its error and the time range it should have held.
    """
    paths = expand_paths(spec)
    if len(paths) == 1:
        return open_one(paths[0], chunks)
    opened, bad = [], []
    for i, path in enumerate(paths):
        try:
            ds = open_one(path, chunks)
            _probe(ds)
            opened.append((path, ds))
        except Exception as e:  # noqa: BLE001 (any reader error is reported the same way)
            bad.append((i, path, e))
    if bad:
        i, path, e = bad[0]
        ranges = {p: _time_range(d) for p, d in opened}
        before = [ranges[p][1] for p in paths[:i] if ranges.get(p)]
        after = [ranges[p][0] for p in paths[i + 1 :] if ranges.get(p)]
        span = f"{before[-1] if before else 'the start'} and {after[0] if after else 'the end'}"
        more = ""
        if len(bad) > 1:
            more = f" ({len(bad) - 1} more unreadable: {[b[1] for b in bad[1:4]]})"
        raise ValueError(
            f"Unreadable file {path} ({type(e).__name__}: {e}); it should hold the times "
            f"between {span}{more}. Fix: re-download it, or split the dataset at that gap."
        )
    first = opened[0][1]
    dim = concat_dim or ("time" if "time" in first.dims else "valid_time")
    joined = xarray.concat(
        [d for _, d in opened], dim=dim, data_vars="minimal", coords="minimal", compat="override"
    )
    return joined.sortby(dim)
