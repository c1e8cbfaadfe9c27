"""Windowing a dataset into (inputs, targets, forcings), as DeepMind's data_utils.

`extract_inputs_targets_forcings` is a transcription of DeepMind's
`graphcast/data_utils.py@d39de19` function of the same name (DeepMind layout in,
DeepMind layout out) and is checked against its outputs in the parity folder:

  1. select pressure levels by value; add the progress features (docs/design.md §1.5);
     drop `datetime`;
  2. re-base `time` so that the last input frame is 0:
     time <- time + target_duration - time[-1];
  3. inputs = time in (-input_duration, 0] (two frames for "24h": -12 h and 0 h);
     targets = the target lead times; forcings = forcing variables at target times.

`window` cuts one such example from a canonical dataset at an initialisation
index; `windows` iterates over all valid initialisation times.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray

from minigencast.data import forcings as forcings_lib
from minigencast.data import layouts

STEP = pd.Timedelta("12h")


def _target_lead_times(target_lead_times):
    """-> (lead times to select (slice or list), duration of the target period)."""
    if isinstance(target_lead_times, slice):
        if target_lead_times.start is None:
            target_lead_times = slice(pd.Timedelta(1, "ns"), target_lead_times.stop)
        duration = pd.Timedelta(target_lead_times.stop)
        return target_lead_times, duration
    if not isinstance(target_lead_times, (list, tuple, set)):
        target_lead_times = [target_lead_times]
    lead = [pd.Timedelta(x) for x in target_lead_times]
    return lead, max(lead)


def extract_input_target_times(ds, input_duration, target_lead_times):
    """Split `ds` (time = timedelta) into inputs and targets by lead time."""
    target_lead_times, target_duration = _target_lead_times(target_lead_times)
    time = ds.coords["time"]
    ds = ds.assign_coords(time=time + target_duration - time[-1])
    targets = ds.sel(time=target_lead_times)
    eps = pd.Timedelta(1, "ns")
    inputs = ds.sel(time=slice(-pd.Timedelta(input_duration) + eps, pd.Timedelta(0)))
    return inputs, targets


def extract_inputs_targets_forcings(
    ds: xarray.Dataset,
    *,
    input_variables,
    target_variables,
    forcing_variables,
    pressure_levels,
    input_duration,
    target_lead_times,
):
    """DeepMind's function (module docstring); `ds` in DeepMind's layout.

    Returns (inputs, targets, forcings) Datasets with `time` as lead time.
    """
    ds = ds.sel(level=list(pressure_levels))
    if set(forcing_variables) & set(forcings_lib.PROGRESS_FEATURES) or set(input_variables) & set(
        forcings_lib.PROGRESS_FEATURES
    ):
        ds = forcings_lib.add_progress_features(ds)
    ds = ds.drop_vars("datetime", errors="ignore")
    inputs, targets = extract_input_target_times(ds, input_duration, target_lead_times)
    if set(forcing_variables) & set(target_variables):
        raise ValueError(
            f"Forcing variables {forcing_variables} overlap target variables "
            f"{target_variables}. Fix: a variable is either forced or predicted."
        )
    inputs = inputs[list(input_variables)]
    forcings = targets[list(forcing_variables)]
    targets = targets[list(target_variables)]
    return inputs, targets, forcings


def window(ds: xarray.Dataset, task, init_index: int, num_target_steps: int = 1):
    """One example from a canonical dataset.

    Args:
      ds: canonical dataset (time datetime64, 12 h steps).
      task: TaskConfig.
      init_index: index of the *last input frame* (t0) in `ds.time`; needs
        init_index >= 1 and init_index + num_target_steps < len(time).
      num_target_steps: number of 12 h target steps (1 for training).

    Returns:
      (inputs, targets, forcings) in DeepMind's layout (batch=1, time = lead time).
    """
    n_inputs = int(pd.Timedelta(task.input_duration) / STEP)
    lo, hi = init_index - n_inputs + 1, init_index + num_target_steps + 1
    if lo < 0 or hi > ds.sizes["time"]:
        raise ValueError(
            f"Window [{lo}, {hi}) does not fit in {ds.sizes['time']} times "
            f"(init_index={init_index}, num_target_steps={num_target_steps})."
        )
    piece = layouts.to_deepmind(ds.isel(time=slice(lo, hi)))
    return extract_inputs_targets_forcings(
        piece,
        input_variables=task.input_variables,
        target_variables=task.target_variables,
        forcing_variables=task.forcing_variables,
        pressure_levels=task.pressure_levels,
        input_duration=task.input_duration,
        target_lead_times=slice(STEP, STEP * num_target_steps),
    )


def valid_init_indices(ds: xarray.Dataset, task, num_target_steps: int = 1) -> np.ndarray:
    """All init indices for which `window` fits."""
    n_inputs = int(pd.Timedelta(task.input_duration) / STEP)
    return np.arange(n_inputs - 1, ds.sizes["time"] - num_target_steps)


def windows(ds: xarray.Dataset, task, num_target_steps: int = 1, stride: int = 1):
    """Yield (init_time, (inputs, targets, forcings)) for every valid init index."""
    for i in valid_init_indices(ds, task, num_target_steps)[::stride]:
        yield ds["time"].values[i], window(ds, task, int(i), num_target_steps)
