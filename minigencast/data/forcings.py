"""Generated forcings: year and day progress as sin/cos (docs/design.md §1.5).

Exactly DeepMind's `data_utils.add_derived_vars` (graphcast/data_utils.py@d39de19),
including its float32 casts, so the values match the reference bit for bit:

  s = seconds since 1970-01-01 (int64, from the `datetime` coordinate)
  year_progress = frac(s / 86400 / 365.24219)                      -> float32
  day_progress  = frac((s mod 86400) / 86400 + lon_rad / (2 pi))   -> float32, per lon
  <name>_sin = sin(2 pi progress), <name>_cos = cos(2 pi progress)  (in float32)

Day progress depends on longitude: it is local mean solar time, not UTC.
"""

from __future__ import annotations

import numpy as np
import xarray

SEC_PER_DAY = 86400
AVG_DAY_PER_YEAR = 365.24219  # DeepMind's data_utils.AVG_DAY_PER_YEAR

PROGRESS_FEATURES = (
    "year_progress_sin",
    "year_progress_cos",
    "day_progress_sin",
    "day_progress_cos",
)


def seconds_since_epoch(datetimes) -> np.ndarray:
    """datetime64 array (any unit) -> int64 seconds since 1970-01-01."""
    return np.asarray(datetimes).astype("datetime64[s]").astype(np.int64)


def year_progress(seconds: np.ndarray) -> np.ndarray:
    """frac(seconds / 86400 / 365.24219) as float32, shape of `seconds`."""
    years = seconds / SEC_PER_DAY / np.float64(AVG_DAY_PER_YEAR)
    return np.mod(years, 1.0).astype(np.float32)


def day_progress(seconds: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """Local day progress [..., lon] as float32 (lon in degrees, any dtype)."""
    greenwich = np.mod(seconds, SEC_PER_DAY) / SEC_PER_DAY
    offsets = np.deg2rad(lon_deg) / (2 * np.pi)
    return np.mod(greenwich[..., np.newaxis] + offsets, 1.0).astype(np.float32)


def _featurize(name, dims, progress):
    phase = progress * (2 * np.pi)  # float32, as DeepMind's featurize_progress
    return {
        f"{name}_sin": xarray.Variable(dims, np.sin(phase)),
        f"{name}_cos": xarray.Variable(dims, np.cos(phase)),
    }


def progress_features(datetimes: xarray.DataArray, lon: xarray.DataArray) -> dict:
    """The four features for a `datetime`-like DataArray (dims e.g. (time,) or (batch, time)).

    Returns {name: xarray.Variable}: year features with dims of `datetimes`,
    day features with dims of `datetimes` + ("lon",).
    """
    seconds = seconds_since_epoch(datetimes.values)
    dims = tuple(datetimes.dims)
    out = _featurize("year_progress", dims, year_progress(seconds))
    out.update(
        _featurize("day_progress", dims + tuple(lon.dims), day_progress(seconds, lon.values))
    )
    return out


def add_progress_features(ds: xarray.Dataset) -> xarray.Dataset:
    """Add the four progress features if absent (as DeepMind: never overwrite).

    Uses the `datetime` coordinate when present (DeepMind's layout), else `time`
    when it holds datetimes (canonical layout).
    """
    missing = [f for f in PROGRESS_FEATURES if f not in ds]
    if not missing:
        return ds
    if "datetime" in ds.coords:
        datetimes = ds.coords["datetime"]
    elif np.issubdtype(ds["time"].dtype, np.datetime64):
        datetimes = ds["time"]
    else:
        raise ValueError(
            "Cannot compute year/day progress: no `datetime` coordinate and `time` is not "
            "datetime64. Fix: add the valid times as a `datetime` coordinate."
        )
    feats = progress_features(datetimes, ds["lon"])
    return ds.assign({k: v for k, v in feats.items() if k in missing})
