"""One canonical dataset layout, and conversions from the layouts found in the wild.

Canonical layout (CONTRACTS.md, used by everything downstream):

  dims   time (datetime64, regular 12 h steps), level (int hPa, ascending),
         lat (ascending, degrees), lon (degrees, from 0, ascending)
  vars   (time, [level,] lat, lon) with GenCast names; static (lat, lon)
  SST    NaN over land, kept NaN (the normaliser fills it, docs/design.md §2.2)

DeepMind's example-file layout (docs/design.md §10.1) adds a `batch` dim, has `time` as
a timedelta (0, 12 h, ...) and the valid times in a `datetime` (batch, time) coord.
WeatherBench-2 ERA5 zarr stores use `latitude`/`longitude`, 6-hourly steps and a
6 h precipitation accumulation; ERA5 NetCDF from the CDS uses short names.

`to_canonical` applies, in order, each fix below; fixes that change data order
(descending latitudes, longitudes from -180) are applied and logged; everything
that cannot be fixed safely raises a ValueError naming the problem and the fix.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray

from minigencast import variables

log = logging.getLogger(__name__)

_COORD_RENAMES = {
    "latitude": "lat",
    "longitude": "lon",
    "pressure_level": "level",
    "isobaricInhPa": "level",
    "valid_time": "time",
}
STATIC = variables.STATIC_VARIABLES


def is_deepmind_layout(ds: xarray.Dataset) -> bool:
    return "batch" in ds.dims and "datetime" in ds.coords


# --------------------------------------------------------------------------- DeepMind
def from_deepmind(ds: xarray.Dataset, batch: int = 0) -> xarray.Dataset:
    """DeepMind example layout -> canonical (one batch element; `time` := `datetime`)."""
    if "batch" in ds.dims:
        ds = ds.isel(batch=batch)
    datetimes = ds.coords["datetime"].values
    ds = ds.drop_vars("datetime").assign_coords(time=("time", datetimes))
    return ds


def to_deepmind(ds: xarray.Dataset) -> xarray.Dataset:
    """Canonical -> DeepMind example layout: batch=1, time = timedelta from the first time.

    Time-dependent variables get a leading `batch` dim; static ones keep (lat, lon).
    `from_deepmind(to_deepmind(ds))` equals `ds`.
    """
    times = ds["time"].values
    out = ds.assign_coords(time=("time", times - times[0]))
    new = {}
    for name, da in out.data_vars.items():
        new[name] = da.expand_dims("batch") if "time" in da.dims else da
    out = xarray.Dataset(new, coords=out.coords, attrs=ds.attrs)
    return out.assign_coords(datetime=(("batch", "time"), times[None]))


# --------------------------------------------------------------------------- names
def _rename(ds: xarray.Dataset) -> xarray.Dataset:
    renames = {k: v for k, v in _COORD_RENAMES.items() if k in ds.variables or k in ds.dims}
    if renames:
        ds = ds.rename(renames)
    var_renames = {}
    for name, da in ds.data_vars.items():
        if name == "z":
            var_renames[name] = "geopotential" if "level" in da.dims else "geopotential_at_surface"
        elif name in variables.ERA5_NAMES and variables.ERA5_NAMES[name] not in ds:
            var_renames[name] = variables.ERA5_NAMES[name]
    if var_renames:
        log.info("renamed ERA5 short names: %s", var_renames)
        ds = ds.rename(var_renames)
    return ds


# --------------------------------------------------------------------------- grid
def _fix_grid(ds: xarray.Dataset) -> xarray.Dataset:
    for c in ("lat", "lon"):
        if c not in ds.coords:
            raise ValueError(
                f"Dataset has no `{c}` coordinate (coords: {list(ds.coords)}). "
                "Fix: name the coordinates lat/lon (or latitude/longitude)."
            )
    lat = ds["lat"].values
    if len(lat) > 1 and lat[0] > lat[-1]:
        log.warning("latitudes are descending; reversed to ascending (-90 -> 90)")
        ds = ds.isel(lat=slice(None, None, -1))
    if np.any(np.diff(ds["lat"].values) <= 0):
        raise ValueError("Latitudes are not monotonic. Fix: sort the dataset by latitude.")
    if not np.isclose(abs(float(ds["lat"].values[0])), 90.0):
        log.warning(
            "latitudes %.3f..%.3f exclude the poles; GenCast's spherical noise and graphs "
            "assume an equiangular grid with poles (fine for data handling and statistics)",
            float(ds["lat"].values[0]),
            float(ds["lat"].values[-1]),
        )
    lon = ds["lon"].values
    if lon.min() < 0:
        log.warning("longitudes start at %.2f; wrapped to [0, 360) and re-sorted", lon.min())
        ds = ds.assign_coords(lon=np.mod(ds["lon"], 360.0).astype(ds["lon"].dtype)).sortby("lon")
    elif np.any(np.diff(lon) <= 0):
        log.warning("longitudes not ascending; sorted")
        ds = ds.sortby("lon")
    return ds


def subsample(ds: xarray.Dataset, factor: int) -> xarray.Dataset:
    """Point subsampling every `factor`-th lat and lon (0.25 -> 1 deg: factor 4).

    As DeepMind made its 1 deg data from 0.25 deg (docs/design.md §10.1, weathernext#117):
    no averaging. Keeps both poles when (n_lat - 1) is divisible by `factor`.
    """
    if (ds.sizes["lat"] - 1) % factor:
        raise ValueError(
            f"Cannot subsample {ds.sizes['lat']} latitudes by {factor} keeping both poles."
        )
    return ds.isel(lat=slice(None, None, factor), lon=slice(None, None, factor))


# --------------------------------------------------------------------------- time
def _check_regular(times, what="time") -> np.timedelta64:
    if len(times) < 2:
        return np.timedelta64(12, "h")
    diffs = np.diff(times)
    step = pd.Series(diffs).mode().iloc[0].to_timedelta64()
    bad = np.nonzero(diffs != step)[0]
    if len(bad):
        gaps = ", ".join(
            f"{pd.Timestamp(times[i])} -> {pd.Timestamp(times[i + 1])}" for i in bad[:5]
        )
        raise ValueError(
            f"Irregular {what} steps (expected every {pd.Timedelta(step)}); gaps at: {gaps}"
            f"{' ...' if len(bad) > 5 else ''}. Fix: fill or drop the gaps, or split the "
            "dataset into regular pieces (windows must not straddle a gap)."
        )
    return step


def _to_12h(ds: xarray.Dataset, step: np.timedelta64, hours=(0, 12)) -> xarray.Dataset:
    """Accumulate precipitation over 12 h and keep the 12-hourly times."""
    h12 = np.timedelta64(12, "h")
    if step == h12:
        return ds
    if step > h12 or h12 % step:
        raise ValueError(
            f"Time step {pd.Timedelta(step)} cannot be brought to 12 h. "
            "Fix: provide 1, 2, 3, 4, 6 or 12-hourly data."
        )
    n = int(h12 // step)
    source = None
    for name, hours_acc in (("total_precipitation_6hr", 6), ("total_precipitation", 1)):
        if name in ds and variables.PRECIPITATION not in ds:
            source = (name, hours_acc)
            break
    if source is not None:
        name, hours_acc = source
        if np.timedelta64(hours_acc, "h") != step:
            raise ValueError(
                f"`{name}` accumulates {hours_acc} h but the data are every {pd.Timedelta(step)}."
                " Fix: provide the accumulation that matches the time step."
            )
        # 12 h total ending at t = sum of the n accumulations ending at t, t-step, ...
        tp12 = ds[name].rolling(time=n, min_periods=n).sum()
        ds = ds.drop_vars(name).assign({variables.PRECIPITATION: tp12})
        log.info("accumulated %s over 12 h from %d steps", name, n)
    hour = pd.DatetimeIndex(ds["time"].values).hour
    keep = np.isin(hour, hours) & (pd.DatetimeIndex(ds["time"].values).minute == 0)
    ds = ds.isel(time=np.nonzero(keep)[0])
    if variables.PRECIPITATION in ds and source is not None:
        # The first kept time may lack a full 12 h window: drop it if NaN-accumulated.
        first = ds[variables.PRECIPITATION].isel(time=0)
        if first.isnull().all():
            ds = ds.isel(time=slice(1, None))
    return ds


# --------------------------------------------------------------------------- checks
def _standard_height(p_hpa):
    """International standard atmosphere height (m) of a pressure level."""
    return 44330.8 * (1.0 - (np.asarray(p_hpa, dtype=np.float64) / 1013.25) ** 0.190263)


def check_geopotential_units(da: xarray.DataArray) -> None:
    """Raise if `geopotential` looks like geopotential height (m) instead of m2 s-2."""
    units = str(da.attrs.get("units", "")).strip().lower()
    if units in ("m", "gpm", "meter", "metre", "meters", "metres", "dam"):
        raise ValueError(
            f"`geopotential` has units '{da.attrs['units']}': that is geopotential height. "
            "Fix: multiply by g = 9.80665 m s-2 (GenCast uses geopotential in m2 s-2)."
        )
    if "level" not in da.dims:
        return
    # Compare a sample's median with g*h and h of the standard atmosphere.
    sample = da.isel({d: 0 for d in da.dims if d not in ("level", "lat", "lon")})
    med = np.asarray(sample.median(("lat", "lon")).values, dtype=np.float64)
    h = _standard_height(da["level"].values)
    ok = np.isfinite(med) & (h > 50)
    if ok.any():
        err_phi = np.abs(np.log(np.abs(med[ok]) / (9.80665 * h[ok]) + 1e-12))
        err_h = np.abs(np.log(np.abs(med[ok]) / h[ok] + 1e-12))
        if np.median(err_h) < np.median(err_phi):
            raise ValueError(
                "`geopotential` values look like geopotential height in metres (e.g. "
                f"{med[ok][0]:.0f} at {int(da['level'].values[ok][0])} hPa). "
                "Fix: multiply by g = 9.80665 m s-2."
            )


def check_variables(ds: xarray.Dataset, names) -> None:
    missing = [n for n in names if n not in ds]
    if missing:
        hints = []
        for n in missing:
            short = variables.METADATA.get(n, ("", "", "", ""))[3]
            if short:
                hints.append(f"{n} (ERA5 short name '{short}')")
            else:
                hints.append(n)
        raise ValueError(
            f"Missing variable(s): {', '.join(hints)}. Present: {sorted(ds.data_vars)}. "
            "Fix: add them to the dataset, or use a task config without them "
            "(e.g. config.TOY_PLANET_TASK for a dry dataset)."
        )


def select_levels(ds: xarray.Dataset, levels) -> xarray.Dataset:
    """Select pressure levels by value (docs/design.md §1.2); raise naming missing ones."""
    if "level" not in ds.dims:  # surface-only dataset
        return ds
    have = set(int(x) for x in ds["level"].values)
    missing = [lv for lv in levels if int(lv) not in have]
    if missing:
        raise ValueError(
            f"Missing pressure level(s) {missing} hPa; the dataset has {sorted(have)}. "
            "Fix: download those levels, or use a task with levels=" + str(sorted(have))
        )
    ds = ds.sel(level=list(levels))
    return ds.assign_coords(level=ds["level"].astype(np.int64))


def check_nans(ds: xarray.Dataset) -> None:
    """Raise if any variable other than sea_surface_temperature has a NaN (computes!)."""
    bad = []
    for name, da in ds.data_vars.items():
        if name == "sea_surface_temperature":
            continue
        if np.issubdtype(da.dtype, np.floating) and bool(da.isnull().any()):
            bad.append(name)
    if bad:
        raise ValueError(
            f"NaN values in {bad}; only sea_surface_temperature may be NaN (over land). "
            "Fix: fill or drop the affected times (e.g. ds.dropna('time'))."
        )


# --------------------------------------------------------------------------- main
def to_canonical(
    ds: xarray.Dataset,
    task=None,
    *,
    levels=None,
    subsample_factor: int = 1,
    nan_check: str | bool = "auto",
    hours=(0, 12),
) -> xarray.Dataset:
    """Bring any supported layout to the canonical one (module docstring).

    Args:
      ds: DeepMind example layout, WeatherBench-2 / ERA5 layout, or canonical.
      task: a TaskConfig; if given, its variables are required and selected, and
        its pressure levels selected by value.
      levels: pressure levels to select (default: the task's, or all).
      subsample_factor: point subsampling of lat/lon (4: 0.25 deg -> 1 deg).
      nan_check: True, False or "auto" (check when the data are < 200 MB); the check
        reads all data.
      hours: UTC hours kept when going from sub-12-hourly data to 12 h steps.

    Returns:
      A lazy (if the input was lazy) canonical dataset.
    """
    if is_deepmind_layout(ds):
        ds = from_deepmind(ds)
    ds = _rename(ds)
    ds = _fix_grid(ds)
    if "time" not in ds.dims:
        raise ValueError("Dataset has no `time` dimension. Fix: add valid times as `time`.")
    if not np.issubdtype(ds["time"].dtype, np.datetime64):
        raise ValueError(
            "`time` is not datetime64 and there is no `datetime` coordinate. "
            "Fix: give valid times (DeepMind files: keep their `datetime` coordinate)."
        )
    step = _check_regular(ds["time"].values)
    ds = _to_12h(ds, step, hours)
    if subsample_factor > 1:
        ds = subsample(ds, subsample_factor)
    # Static fields: drop a time dim if a store repeats them per time.
    for name in STATIC:
        if name in ds and "time" in ds[name].dims:
            ds[name] = ds[name].isel(time=0, drop=True)
    if task is not None:
        wanted = [
            v
            for v in task.input_variables + task.target_variables
            if v not in variables.FORCING_VARIABLES
        ]
        wanted = list(dict.fromkeys(wanted))
        check_variables(ds, wanted)
        present_forcings = [f for f in variables.FORCING_VARIABLES if f in ds]
        ds = ds[wanted + present_forcings]
        levels = task.pressure_levels if levels is None else levels
    if levels is not None:
        ds = select_levels(ds, levels)
    if "geopotential" in ds:
        check_geopotential_units(ds["geopotential"])
    order = [d for d in ("time", "level", "lat", "lon") if d in ds.dims]
    ds = ds.transpose(*order, ...)
    if nan_check == "auto":
        nan_check = ds.nbytes < 200e6
    if nan_check:
        check_nans(ds)
    return variables.add_cf_attrs(ds)
