"""Screen training windows for NaN outside sea-surface temperature.

SST is NaN over land by design (the normaliser fills it); a NaN in any other variable
is missing data. A training window of `num_frames` consecutive times (GenCast: the two
inputs and the target, 3 frames) that contains one is refused, or, when the caller
asks, skipped and logged:

  bad = nan_times(ds)                      # [time] bool, one dask pass over the data
  keep = screen_windows(ds, starts, 3, on_nan="skip")

`starts` index the window's first frame in `ds.time`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray

log = logging.getLogger(__name__)

NAN_ALLOWED = ("sea_surface_temperature",)


def nan_times(ds: xarray.Dataset, allowed=NAN_ALLOWED) -> xarray.DataArray:
    """[time] bool: does any variable other than `allowed` have a NaN at that time."""
    flags = []
    for name, da in ds.data_vars.items():
        if name in allowed or "time" not in da.dims or not np.issubdtype(da.dtype, np.floating):
            continue
        flags.append(da.isnull().any([d for d in da.dims if d != "time"]).rename(name))
    if not flags:
        return xarray.zeros_like(ds["time"], dtype=bool)
    return xarray.merge(flags).to_array("variable").any("variable").compute()


def _variables_with_nan(ds, times, allowed):
    piece = ds.isel(time=times)
    return [
        n
        for n, da in piece.data_vars.items()
        if n not in allowed
        and "time" in da.dims
        and np.issubdtype(da.dtype, np.floating)
        and bool(da.isnull().any())
    ]


def screen_windows(
    ds: xarray.Dataset,
    starts,
    num_frames: int = 3,
    on_nan: str = "raise",
    allowed=NAN_ALLOWED,
) -> np.ndarray:
    """The window starts whose `num_frames` frames are free of NaN outside `allowed`.

    Args:
      ds: canonical dataset.
      starts: [N] int, index of each window's first frame in `ds.time`.
      num_frames: frames per window (inputs + targets; GenCast training: 3).
      on_nan: "raise" (default): ValueError naming the first bad window, its times and
        variables; "skip": drop the bad windows and log them.
    Returns:
      [M] int, the kept starts (all of them unless on_nan="skip").
    """
    if on_nan not in ("raise", "skip"):
        raise ValueError(f"on_nan must be 'raise' or 'skip', got {on_nan!r}.")
    starts = np.asarray(starts, dtype=np.int64)
    bad_t = np.asarray(nan_times(ds, allowed).values)
    cum = np.concatenate([[0], np.cumsum(bad_t)])
    ends = np.minimum(starts + num_frames, bad_t.size)
    bad_w = cum[ends] - cum[starts] > 0
    if not bad_w.any():
        return starts
    times = ds["time"].values
    first = int(starts[bad_w][0])
    frames = list(range(first, first + num_frames))
    names = _variables_with_nan(ds, frames, allowed)
    where = f"{pd.Timestamp(times[first])} .. {pd.Timestamp(times[frames[-1]])}"
    if on_nan == "raise":
        raise ValueError(
            f"{int(bad_w.sum())} training window(s) contain NaN outside SST; the first spans "
            f"{where} (NaN in {names}). Fix: fill or drop those times, or skip such "
            "windows (on_nan='skip')."
        )
    for s in starts[bad_w]:
        log.warning(
            "skipped window %s .. %s: NaN outside SST",
            pd.Timestamp(times[s]),
            pd.Timestamp(times[min(s + num_frames, len(times)) - 1]),
        )
    log.warning("skipped %d of %d windows with NaN outside SST", int(bad_w.sum()), starts.size)
    return starts[~bad_w]
