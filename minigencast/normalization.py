"""Normalisation statistics and the normalise / residual / NaN-fill pipeline.

GenCast normalises with four statistics files (docs/design.md §2.1; DeepMind's bucket
`dm_graphcast/gencast/stats/`), one Dataset each, variables with a `level` dim
for atmospheric fields and scalars otherwise:

  mean_by_level.nc           climatological mean                  ("location")
  stddev_by_level.nc         standard deviation                   ("scale")
  diffs_stddev_by_level.nc   std of the 12 h time difference      (residual scale)
  min_by_level.nc            minimum                              (SST NaN fill)

The pipeline (docs/design.md §2.2; DeepMind's NaNCleaner -> InputsAndResiduals):

  1. NaN fill:   SST NaN (land) -> min_by_level[SST], in inputs, targets, forcings
  2. inputs / forcings:   x_n = (x - mean) / std
  3. targets:   variables also in the inputs:  r_n = (y - x[t]) / diffs_std
                others (precipitation):        y_n = (y - mean) / std
  inverse:      y = r_n diffs_std + x[t]    or   y = y_n std + mean,
                then SST := NaN wherever any input frame had NaN SST.

  x[t] is the *last* input frame (time t, `time=-1`; the inputs are t - 12 h and t),
  NaN-filled like the rest; y is the target at t + 12 h.

`compute_stats` computes the same four from any canonical dataset, streamed with
dask (xarray reductions over chunks), unweighted over (time, lat, lon) like a plain
climatology. Documented choices: a field that is constant (std = 0, e.g. a flat
planet's `geopotential_at_surface`) gets std 1 so it normalises to 0 instead of
dividing by zero; static fields get no diffs_stddev entry (they are never targets).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import xarray

from minigencast import variables
from minigencast.data import forcings as forcings_lib

log = logging.getLogger(__name__)

STATS_NAMES = ("mean", "stddev", "diffs_stddev", "min")


def stats_filename(name: str) -> str:
    """'mean' -> 'mean_by_level.nc' (DeepMind's file names)."""
    return f"{name}_by_level.nc"


# --------------------------------------------------------------------------- I/O
def load_stats(directory) -> dict[str, xarray.Dataset]:
    """Read the four files (DeepMind's or ours) from a directory -> {name: Dataset}."""
    out = {}
    for name in STATS_NAMES:
        path = os.path.join(os.fspath(directory), stats_filename(name))
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{path} not found. Fix: `minigencast download stats` for DeepMind's files, "
                f"or `minigencast stats DATASET --out {directory}` to compute them."
            )
        out[name] = xarray.load_dataset(path)
    return out


def write_stats(stats: dict, directory) -> list[str]:
    """Write the four Datasets in DeepMind's layout; returns the paths."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name in STATS_NAMES:
        path = os.path.join(os.fspath(directory), stats_filename(name))
        stats[name].to_netcdf(path)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- compute
def _check_12_hourly(ds: xarray.Dataset) -> None:
    """diffs_stddev is the std of the *12 h* change: refuse other time steps."""
    if "time" not in ds.dims:
        return
    if ds.sizes["time"] < 2:
        raise ValueError(
            f"compute_stats needs at least two 12-hourly times (diffs_stddev is the std of "
            f"the 12 h change); the dataset has {ds.sizes['time']}"
        )
    steps = np.unique(np.diff(ds["time"].values))
    if steps.size != 1 or steps[0] != np.timedelta64(12, "h"):
        raise ValueError(
            f"compute_stats needs regular 12 h steps (diffs_stddev is the std of the 12 h "
            f"change); got steps {[str(x) for x in steps[:3]]}. Fix: bring the dataset to "
            "the canonical layout first, `minigencast.data.layouts.to_canonical(ds)` (it "
            "keeps 00/12 UTC and accumulates precipitation to 12 h)."
        )


def compute_stats(ds: xarray.Dataset, chunks: int | str | None = "auto") -> dict:
    """The four statistics of a canonical dataset (streamed over `time` chunks).

    Args:
      ds: canonical layout (time, [level,] lat, lon) or DeepMind's (with `batch`);
        progress features are added from the valid times if absent; static fields
        (lat, lon) included.
      chunks: time chunk size used to stream an in-memory `ds` through dask; "auto":
        64 when it is larger than 256 MB, else plain NumPy. Dask-backed (lazily
        opened) datasets are always streamed with their own chunks.

    Returns:
      {"mean", "stddev", "diffs_stddev", "min"}: Datasets with (level,) or scalar
      float32 variables, `level` coord as int64 -- the layout of DeepMind's files.
    """
    _check_12_hourly(ds)
    if "datetime" in ds.coords or (
        "time" in ds.dims and np.issubdtype(ds["time"].dtype, np.datetime64)
    ):
        ds = forcings_lib.add_progress_features(ds)
    in_memory = not any(v.chunks for v in ds.data_vars.values())
    if chunks == "auto":
        chunks = 64 if ds.nbytes > 256e6 else None
    if chunks and "time" in ds.dims and in_memory:
        ds = ds.chunk({"time": chunks})
    # DeepMind's layout: `batch` is reduced too; time differences stay within a batch element.
    reduce = [d for d in ("batch", "time", "lat", "lon") if d in ds.dims]
    mean, std, mins, diffs = {}, {}, {}, {}
    for name, da in ds.data_vars.items():
        dims = [d for d in reduce if d in da.dims]
        da = da.astype(np.float64)
        mean[name] = da.mean(dims, skipna=True)
        std[name] = da.std(dims, skipna=True)
        mins[name] = da.min(dims, skipna=True)
        if "time" in da.dims:
            d = da.diff("time")
            diffs[name] = d.std([x for x in dims if x in d.dims], skipna=True)
    import dask

    (mean, std, mins, diffs) = dask.compute(mean, std, mins, diffs)

    def to_ds(values, floor=False):
        out = {}
        for name, v in values.items():
            v = v.astype(np.float32)
            if floor and bool((v == 0).any()):
                log.warning("%s is constant: stddev set to 1 (normalises to 0)", name)
                v = xarray.where(v == 0, np.float32(1.0), v)
            out[name] = v.drop_vars([c for c in v.coords if c != "level"])
        res = xarray.Dataset(out)
        if "level" in res.coords:
            res = res.assign_coords(level=res["level"].astype(np.int64))
        return res

    return {
        "mean": to_ds(mean),
        "stddev": to_ds(std, floor=True),
        "diffs_stddev": to_ds(diffs, floor=True),
        "min": to_ds(mins),
    }


# --------------------------------------------------------------------------- pipeline
def _stat(stats_ds: xarray.Dataset, name: str, da: xarray.DataArray):
    s = stats_ds[name]
    if "level" in s.dims:
        if "level" in da.dims:
            missing = sorted(set(da["level"].values.tolist()) - set(s["level"].values.tolist()))
            if missing:
                raise ValueError(
                    f"The statistics of {name} lack level(s) {missing} hPa (they have "
                    f"{s['level'].values.tolist()}). Fix: use statistics computed on these "
                    "levels (`minigencast stats`) or select levels the statistics cover."
                )
            s = s.sel(level=da["level"].values)
        else:
            raise ValueError(f"Statistic for {name} has a level dim but the data do not.")
    return s


def fill_nans(
    ds: xarray.Dataset, min_stats: xarray.Dataset, variable: str = variables.SST
) -> xarray.Dataset:
    """Replace NaNs of `variable` by its scalar minimum (DeepMind's NaNCleaner)."""
    if variable not in ds:
        return ds
    fill = _stat(min_stats, variable, ds[variable])
    return ds.assign({variable: ds[variable].fillna(fill.astype(ds[variable].dtype))})


def normalize(ds: xarray.Dataset, stats: dict) -> xarray.Dataset:
    """(x - mean) / std for every variable present in the stats (others untouched, warned)."""
    out = {}
    for name, da in ds.data_vars.items():
        if name not in stats["mean"] or name not in stats["stddev"]:
            log.warning("no normalisation statistics for %s; left unnormalised", name)
            out[name] = da
            continue
        m, s = _stat(stats["mean"], name, da), _stat(stats["stddev"], name, da)
        out[name] = ((da - m) / s).astype(da.dtype)
    return ds.assign(out)


def unnormalize(ds: xarray.Dataset, stats: dict) -> xarray.Dataset:
    """Inverse of `normalize`: x_n * std + mean."""
    out = {}
    for name, da in ds.data_vars.items():
        if name not in stats["mean"] or name not in stats["stddev"]:
            out[name] = da
            continue
        m, s = _stat(stats["mean"], name, da), _stat(stats["stddev"], name, da)
        out[name] = (da * s + m).astype(da.dtype)
    return ds.assign(out)


def normalize_inputs(inputs: xarray.Dataset, stats: dict) -> xarray.Dataset:
    """NaN fill then (x - mean)/std: the conditioning as the network sees it."""
    return normalize(fill_nans(inputs, stats["min"]), stats)


def _last_input(inputs, name):
    return inputs[name].isel(time=-1, drop=True)


def normalize_targets(targets: xarray.Dataset, inputs: xarray.Dataset, stats: dict):
    """Targets -> normalised residuals (docs/design.md §2.2 step 3), NaN-filled."""
    targets = fill_nans(targets, stats["min"])
    inputs = fill_nans(inputs, stats["min"])
    out = {}
    for name, y in targets.data_vars.items():
        if name in inputs:
            d = _stat(stats["diffs_stddev"], name, y)
            out[name] = ((y - _last_input(inputs, name)) / d).astype(y.dtype)
        else:
            m, s = _stat(stats["mean"], name, y), _stat(stats["stddev"], name, y)
            out[name] = ((y - m) / s).astype(y.dtype)
    return targets.assign(out)


def unnormalize_targets(norm: xarray.Dataset, inputs: xarray.Dataset, stats: dict):
    """Inverse of `normalize_targets`, re-inserting SST NaNs where inputs had them."""
    filled = fill_nans(inputs, stats["min"])
    out = {}
    for name, y in norm.data_vars.items():
        if name in inputs:
            d = _stat(stats["diffs_stddev"], name, y)
            out[name] = (y * d + _last_input(filled, name)).astype(y.dtype)
        else:
            m, s = _stat(stats["mean"], name, y), _stat(stats["stddev"], name, y)
            out[name] = (y * s + m).astype(y.dtype)
    res = norm.assign(out)
    sst = variables.SST
    if sst in res and sst in inputs:
        land = inputs[sst].isnull().any("time")
        res[sst] = res[sst].where(~land)
    return res


# --------------------------------------------------------------------------- vectors
def channel_vectors(stats: dict, channels) -> dict[str, np.ndarray]:
    """Per-channel statistics for stacked arrays [..., channel] (float32 [C] each).

    Args:
      stats: {"mean", "stddev", "diffs_stddev", "min"} Datasets.
      channels: sequence of (variable, level) pairs or objects with `.variable`
        and `.level` (channel_order.Channel); level None for surface/static/forcings.

    Returns:
      {"mean", "stddev", "diffs_stddev", "min"} -> np.float32 [C]; NaN where a
      statistic is absent (e.g. diffs_stddev of a static field).
    """
    out = {name: [] for name in STATS_NAMES}
    for ch in channels:
        var, level = (ch.variable, ch.level) if hasattr(ch, "variable") else ch
        for name in STATS_NAMES:
            ds = stats[name]
            if var not in ds:
                out[name].append(np.nan)
                continue
            da = ds[var]
            if "level" in da.dims:
                if level is None:
                    raise ValueError(f"{var} has levels in the {name} stats; give a level.")
                da = da.sel(level=level)
            out[name].append(float(da.values))
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}
