"""The data layer: from files in the wild to GenCast's canonical layout.

Modules:
  layouts      canonical layout, DeepMind example layout, automatic fixes, clear errors
  files        open NetCDF / zarr / GRIB, one file or many (bad files named)
  screening    training windows with NaN outside SST: refuse or skip and log
  forcings     year/day progress features (docs/design.md §1.5)
  windows      (inputs, targets, forcings) windows, as DeepMind's data_utils
  weatherbench WeatherBench-2 ERA5 zarr opener / subsetter
  downloads    DeepMind's public files via pooch (cache, hash pinning)
  forecasts    forecast layouts (WeatherBench-2, DeepMind rollouts) -> ours; opening files
  synthetic    a full-variable synthetic sample and a reliable synthetic forecast
  toy_planet   the embedded dataset's generator (dinosaur, Held-Suarez with seasons)

This file holds the embedded-dataset loader: `load_embedded(split)`, `embedded_truth()`
(all splits) and `embedded_stats()`. The data folder is `data/` next to the package (a
repository checkout), or $MINIGENCAST_DATA_DIR.
"""

from __future__ import annotations

import os

import numpy as np
import xarray

EMBEDDED_NAME = "toy_planet"
SPLITS = ("train", "validation", "test")


def data_dir() -> str:
    """$MINIGENCAST_DATA_DIR, else <repository>/data (the folder holding toy_planet/)."""
    env = os.environ.get("MINIGENCAST_DATA_DIR")
    if env:
        return env
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "data")


def embedded_dir() -> str:
    path = os.path.join(data_dir(), EMBEDDED_NAME)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"Embedded dataset not found at {path}. Fix: run from a repository checkout, set "
            "MINIGENCAST_DATA_DIR to the folder that holds toy_planet/, or make it with "
            "`minigencast data toy-planet --out <dir>/toy_planet` (needs the toy-planet extra)."
        )
    return path


def load_embedded(split: str = "train", chunks: dict | None = None) -> xarray.Dataset:
    """The toy-planet split in the canonical layout, lazily (dask), float32.

    Args:
      split: "train", "validation" or "test".
      chunks: dask chunks (default: the file's own chunking).
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {SPLITS}.")
    path = os.path.join(embedded_dir(), f"{split}.nc")
    ds = xarray.open_dataset(path, chunks={} if chunks is None else chunks)
    return ds.map(
        lambda da: da.astype(np.float32) if da.dtype != np.float32 else da, keep_attrs=True
    )


def embedded_stats() -> dict:
    """The four normalisation statistics of the toy planet's training split."""
    from minigencast import normalization

    return normalization.load_stats(os.path.join(embedded_dir(), "stats"))


def open_dataset(spec: str, task=None, **kwargs) -> xarray.Dataset:
    """Open anything the data layer reads, lazily, in the canonical layout.

    Args:
      spec: "embedded" / "embedded:SPLIT" (the toy planet), a `.zarr` store, a NetCDF
        or GRIB file, or a glob/folder/list of files (`files.open_path`), in any layout
        `layouts.to_canonical` reads (DeepMind, cfgrib, CDS, WeatherBench-2, canonical).
      task: optional TaskConfig (variables and levels selected, missing ones named).
      **kwargs: passed to `layouts.to_canonical` (levels, subsample_factor, nan_check).
    """
    from minigencast.data import files, layouts

    if spec.startswith("embedded"):
        split = spec.split(":", 1)[1] if ":" in spec else "train"
        ds = load_embedded(split)
    else:
        ds = files.open_path(spec)
    return layouts.to_canonical(ds, task, **kwargs)


def embedded_truth():
    """The embedded toy-planet dataset, all splits joined along time (canonical layout)."""
    parts = []
    for split in SPLITS:
        try:
            parts.append(load_embedded(split))
        except FileNotFoundError:
            continue
    if not parts:
        raise FileNotFoundError(
            "the embedded dataset is missing; generate it with `minigencast data toy-planet`."
        )
    ds = xarray.concat(parts, dim="time", data_vars="minimal", coords="minimal", compat="override")
    ds = ds.sortby("time")
    _, first = np.unique(ds["time"].values, return_index=True)
    ds = ds.isel(time=np.sort(first))
    return ds.load() if ds.nbytes < 2e9 else ds
