"""One canonical dataset layout, and conversions from the layouts found in the wild.

Canonical layout (CONTRACTS.md, used by everything downstream):

  dims   time (datetime64, regular 12 h steps), level (int hPa, ascending),
         lat (ascending, degrees), lon (degrees, from 0, ascending)
  vars   (time, [level,] lat, lon) with GenCast names; static (lat, lon)
  SST    NaN over land, kept NaN (the normaliser fills it, docs/design.md §2.2)

DeepMind's example-file layout (docs/design.md §10.1) adds a `batch` dim, has `time` as
a timedelta (0, 12 h, ...) and the valid times in a `datetime` (batch, time) coord.
WeatherBench-2 ERA5 zarr stores use `latitude`/`longitude` (in either axis order),
6-hourly steps and a 6 h precipitation accumulation; ERA5 NetCDF from the CDS uses
short names, and since 2024 `valid_time`/`pressure_level` with scalar `number` and
`expver` (before 2024: `time`/`level`, and an `expver` dim when ERA5T is mixed in);
cfgrib reads GRIB with `time` = reference time, `step`, `valid_time`, `isobaricInhPa`
and an ensemble dim `number`. `normalise_source` and `_check_ensemble`/`_fix_levels`
handle these: levels become ascending int hPa, and an ensemble dim is an error unless
the caller keeps it with `ensemble_dim=`.

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


# --------------------------------------------------------------------------- sources
# Dims that name ensemble members in the layouts we read (cfgrib/CDS `number`,
# WeatherBench-2/CF `realization`, ours `sample`).
ENSEMBLE_DIMS = ("number", "realization", "member", "ensemble", "sample")
# Scalar bookkeeping coordinates that cfgrib and the CDS attach (nothing downstream reads them).
_SCALAR_COORDS = ("number", "step", "surface", "expver", "heightAboveGround", "meanSea")


def _from_cfgrib(ds: xarray.Dataset) -> xarray.Dataset:
    """cfgrib/ecCodes layout -> one `time` dim of valid times.

    cfgrib [1] names the reference (initial) time `time`, the lead `step` and their sum
    `valid_time`. Analyses (ERA5: step 0) have `valid_time` along `time`; forecasts and
    accumulations have `time` x `step`, stacked here into one valid-time axis (which must
    then be unique). [1] github.com/ecmwf/cfgrib, README "Dataset / Variable / Coordinate".
    """
    if "valid_time" not in ds.coords or "time" not in ds.variables:
        return ds
    vt = ds["valid_time"]
    if "step" in ds.dims:
        keep = [d for d in ("time", "step") if d in ds.dims]
        ds = ds.stack(_valid=keep)
        times = ds["valid_time"].values
        ds = ds.drop_vars(["_valid", "time", "step", "valid_time"], errors="ignore")
        ds = ds.assign_coords(_valid=("_valid", times)).rename(_valid="time")
        if len(np.unique(times)) != len(times):
            raise ValueError(
                "cfgrib dataset: (time, step) give repeated valid times. Fix: select one "
                "`step` per valid time (e.g. ds.isel(step=0)) before converting."
            )
        return ds.sortby("time")
    if vt.dims == ("time",):
        ds = ds.drop_vars("step", errors="ignore").swap_dims(time="valid_time")
        return ds.drop_vars("time").rename(valid_time="time")
    if vt.ndim == 0 and "time" not in ds.dims:  # one field: a time dim of length 1
        ds = ds.drop_vars(["time", "step"], errors="ignore").rename(valid_time="time")
        return ds.expand_dims("time")
    return ds


def _from_cds(ds: xarray.Dataset) -> xarray.Dataset:
    """CDS NetCDF -> single experiment version, no bookkeeping coordinates.

    Pre-2024 CDS files that mix ERA5 and ERA5T have an `expver` dim (1, 5) where each
    time is valid in exactly one; they are merged. The 2024 CDS converter writes
    `valid_time`, `pressure_level`, a scalar `number` and `expver` per time (ECMWF,
    "GRIB to netCDF conversion on new CDS and ADS systems"); the renames handle the names.
    """
    if "expver" in ds.dims:
        merged = ds.isel(expver=0, drop=True)
        for i in range(1, ds.sizes["expver"]):
            merged = merged.combine_first(ds.isel(expver=i, drop=True))
        log.info("merged %d ERA5/ERA5T experiment versions (`expver`)", ds.sizes["expver"])
        ds = merged
    drop = [c for c in _SCALAR_COORDS if c in ds.coords and c not in ds.dims]
    return ds.drop_vars(drop)


def _check_ensemble(ds: xarray.Dataset, ensemble_dim: str | None) -> xarray.Dataset:
    """A single state is expected: refuse an ensemble dim unless the caller names it."""
    known = {"time", "level", "lat", "lon", "batch", "datetime"}
    if ensemble_dim is not None:
        if ensemble_dim not in ds.dims:
            raise ValueError(
                f"ensemble_dim={ensemble_dim!r} is not a dim of the dataset "
                f"(dims: {dict(ds.sizes)})."
            )
        known.add(ensemble_dim)
    bounds = {c.attrs["bounds"] for c in ds.variables.values() if "bounds" in c.attrs}
    ds = ds.drop_vars([b for b in bounds if b in ds.variables])  # CF cell bounds (time_bnds)
    used = dict.fromkeys(d for da in ds.data_vars.values() for d in da.dims)
    extra = [d for d in used if d not in known]
    for d in extra:
        if ds.sizes[d] == 1 and d in ENSEMBLE_DIMS + ("expver",):
            ds = ds.isel({d: 0}, drop=True)
            continue
        if d in ENSEMBLE_DIMS:
            what, fix = "an ensemble dimension", "select one member"
        else:
            what, fix = "an extra dimension", "select one value"
        raise ValueError(
            f"The dataset has {what} `{d}` ({ds.sizes[d]} values) where a single state is "
            f"expected. Fix: {fix}, e.g. ds.isel({d}=0), or, if it holds ensemble members, "
            f"pass ensemble_dim={d!r} to keep the members."
        )
    return ds


def _fix_levels(ds: xarray.Dataset) -> xarray.Dataset:
    """Pressure levels ascending, as int64 hPa (cfgrib and the 2024 CDS give float, descending)."""
    if "level" not in ds.dims:
        return ds
    values = np.asarray(ds["level"].values, dtype=np.float64)
    if str(ds["level"].attrs.get("units", "")).strip() == "Pa":
        values = values / 100.0
    if not np.allclose(values, np.round(values)):
        raise ValueError(
            f"Pressure levels {values.tolist()} are not whole hPa. Fix: give levels in hPa "
            "(GenCast's are 50..1000 hPa)."
        )
    attrs = {k: v for k, v in ds["level"].attrs.items() if k != "stored_direction"}
    ds = ds.assign_coords(level=("level", np.round(values).astype(np.int64), attrs))
    ds["level"].attrs["units"] = "hPa"
    if len(values) > 1 and np.any(np.diff(ds["level"].values) <= 0):
        ds = ds.sortby("level")
    return ds


def normalise_source(ds: xarray.Dataset) -> xarray.Dataset:
    """Source-layout fixes applied before renaming: DeepMind, cfgrib, CDS, Pa levels."""
    if is_deepmind_layout(ds):
        ds = from_deepmind(ds)
    ds = _from_cfgrib(ds)
    ds = _from_cds(ds)
    if "isobaricInPa" in ds.dims:
        ds = ds.rename(isobaricInPa="level")
        ds["level"].attrs["units"] = "Pa"
    return ds


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
    back = np.nonzero(diffs <= np.timedelta64(0))[0]
    if len(back):
        i = back[0]
        raise ValueError(
            f"{what} is not increasing: {pd.Timestamp(times[i])} -> "
            f"{pd.Timestamp(times[i + 1])}. Fix: ds.sortby('{what}') and drop repeated times."
        )
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


# Units found in the wild that are not GenCast's: (spellings, fix).
WRONG_UNITS = {
    "temperature": (("degc", "c", "°c", "deg_c", "celsius", "degrees_celsius"), "add 273.15"),
    "pressure": (("hpa", "mbar", "mb"), "multiply by 100 (hPa -> Pa)"),
}


def check_units_and_ranges(ds: xarray.Dataset, stats=None, values: bool | str = True) -> None:
    """Raise if a variable's units are not GenCast's or its values are implausible.

    Units are checked where given (`units` attribute: degC -> "add 273.15"). Values of
    the first and last time (cheap for lazy data) are compared with the physical
    ranges `variables.PLAUSIBLE_RANGES` widened by 10 % of their span on each side
    (temperature 150-350 K -> 130-370 K), and,
    with `stats` (DeepMind-layout statistics), with the statistics' min per level:
    a value below min - 5 stddev is implausible for data the statistics describe.
    That also catches a mislabelled file (degC values labelled K). `values=False`
    checks the units only (reads no data); "auto" reads the two times only if they are
    under 200 MB (e.g. not a remote 0.25 deg store).
    """
    for name, da in ds.data_vars.items():
        units = str(da.attrs.get("units", "")).strip().lower()
        kind = "temperature" if "temperature" in name else "pressure" if "pressure" in name else ""
        if kind and units in WRONG_UNITS[kind][0]:
            raise ValueError(
                f"`{name}` has units '{da.attrs['units']}'; GenCast uses "
                f"{'K' if kind == 'temperature' else 'Pa'}. Fix: {WRONG_UNITS[kind][1]} and set "
                f"units to '{'K' if kind == 'temperature' else 'Pa'}'."
            )
    sample = ds.isel(time=[0, -1]) if "time" in ds.dims else ds
    if values == "auto":
        values = sample.nbytes < 200e6
        if not values:
            log.info("values not range-checked (%.0f MB to read)", sample.nbytes / 1e6)
    for name, da in sample.data_vars.items() if values else ():
        if not np.issubdtype(da.dtype, np.floating):
            continue
        low, high = variables.PLAUSIBLE_RANGES.get(name, (-np.inf, np.inf))
        if np.isfinite(high - low):  # typical values: widen by 10 % of the span each side
            low, high = low - 0.1 * (high - low), high + 0.1 * (high - low)
        floor = xarray.DataArray(low)
        if stats is not None and name in stats["min"] and name in stats["stddev"]:
            bound = stats["min"][name] - 5 * stats["stddev"][name]
            floor = xarray.where(bound > low, bound, low)
        values = da.load()
        if bool(values.isnull().all()):
            continue
        reduce = [d for d in da.dims if d != "level"]
        vmin, vmax = values.min(reduce, skipna=True), values.max(reduce, skipna=True)
        if bool((vmin < floor).any()) or bool((vmax > high).any()):
            units = da.attrs.get("units", "?")
            raise ValueError(
                f"`{name}` spans {float(vmin.min()):.6g} .. {float(vmax.max()):.6g} {units}, "
                f"outside the plausible {float(floor.min()):.6g} .. {high:.6g} (another unit "
                "or a wrong scale?). Fix: convert it to GenCast's SI units (K, Pa, m s-1, "
                "kg kg-1, m)."
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
        height = [h for h in ("geopotential_height", "gh") if h in ds]
        if "geopotential" in missing and height:
            raise ValueError(
                f"Missing variable `geopotential`, but `{height[0]}` is present: GenCast "
                "uses geopotential (m2 s-2). Fix: multiply it by g = 9.80665 m s-2 and "
                "rename it to `geopotential`."
            )
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
    ensemble_dim: str | None = None,
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
      ensemble_dim: the name of an ensemble (member) dim to keep, placed first; without
        it an ensemble dim is an error (a single state is expected).

    Units and the values of the first and last time are checked for plausibility
    (`check_units_and_ranges`; values only when those two times are < 200 MB).

    Returns:
      A lazy (if the input was lazy) canonical dataset.
    """
    ds = normalise_source(ds)
    ds = _rename(ds)
    ds = _check_ensemble(ds, ensemble_dim)
    ds = _fix_levels(ds)
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
    check_units_and_ranges(ds, values="auto")  # not a remote 0.25 deg store's values
    order = [d for d in (ensemble_dim, "time", "level", "lat", "lon") if d in ds.dims]
    ds = ds.transpose(*order, ...)
    if nan_check == "auto":
        nan_check = ds.nbytes < 200e6
    if nan_check:
        check_nans(ds)
    return variables.add_cf_attrs(ds)
