"""Whole-forecast parity: replay a forecast DeepMind's code made, noise included.

A rollout case (`tests/parity/rollout-open/`, layout in its README.md) holds a
checkpoint, a source dataset, the graphs DeepMind's code built, every noise field its
sampler drew, and the forecast it produced (`expected_forecast.nc`). `rollout_case`
runs our data path and `forecast.run` on the same weights, inputs and graphs with that
noise replayed (`noise.RecordedNoise`); `relative_errors` compares with the reference
per variable, max|ours - reference| / max|reference| (docs/parity.md).

Every size (grid, mesh, widths, members, steps, sampler iterations) comes from the
case's files.

Reference: DeepMind graphcast@d39de19, graphcast/rollout.py:chunked_prediction and
graphcast/dpm_solver_plus_plus_2s.py:Sampler (the noise order: in iteration i, the
initial field (used at i = 0), then the churn field).
"""

from __future__ import annotations

import pathlib

import numpy as np
import xarray

from minigencast import channel_order, checkpoint, forecast, noise, normalization, stacking
from minigencast.data import layouts


def _stacked(ds: xarray.Dataset, task) -> np.ndarray:
    """(sample, batch, [time = 1,] [level,] lat, lon) target fields -> [S, B, lat, lon, C_t]."""
    array, channels = stacking.dataset_to_array(ds.squeeze("time", drop=True))
    got = [(c.variable, c.level) for c in channels]
    want = [(c.variable, c.level) for c in channel_order.target_channels(task)]
    if got != want:
        raise ValueError(f"recorded noise has channels {got}, the model's targets are {want}")
    return array


def recorded_noise(folder, task, num_iterations: int | None = None) -> noise.RecordedNoise:
    """The case's noise as a source bound by (member, init = batch index, step).

    A case whose sampler has no churn (stochastic_churn_rate 0: DeepMind's sampler then
    draws no churn noise) may leave out `noise_churn.nc`; its churn fields are then zeros,
    num_iterations (the sampler's noise levels) of them per step.

    Returns:
      `noise.RecordedNoise` with initial [S, B, K, lat, lon, C_t] and churn
      [S, B, K, N, lat, lon, C_t] (K rollout steps, N sampler iterations).
    """
    folder = pathlib.Path(folder)
    initial = xarray.load_dataset(folder / "noise_initial.nc")
    steps = range(initial.sizes["step"])
    init = np.stack([_stacked(initial.isel(step=k), task) for k in steps], axis=2)
    if not (folder / "noise_churn.nc").exists():
        if num_iterations is None:
            raise FileNotFoundError(f"{folder / 'noise_churn.nc'} is missing")
        churn = np.zeros(init.shape[:3] + (num_iterations,) + init.shape[3:], init.dtype)
        return noise.RecordedNoise(init, churn)
    churn = xarray.load_dataset(folder / "noise_churn.nc")
    iterations = range(churn.sizes["iteration"])
    per_step = [
        np.stack([_stacked(churn.isel(step=k, iteration=i), task) for i in iterations], axis=2)
        for k in steps
    ]
    return noise.RecordedNoise(init, np.stack(per_step, axis=2))


def rollout_case(folder, graphs: str = "case") -> tuple[xarray.Dataset, xarray.Dataset]:
    """(ours, reference): the case's forecast by `forecast.run` with the noise replayed.

    Args:
      folder: a rollout case folder.
      graphs: "case" builds the model on the case's graphs.npz (DeepMind's), "ours" on
        `graphs.build_graphs` for the case's grid.

    Returns:
      Both forecasts in the reference layout (sample, batch, time, [level,] lat, lon),
      physical units, SST NaN over land.
    """
    folder = pathlib.Path(folder)
    ckpt = checkpoint.load(folder / "params.npz")
    cfg = ckpt.config
    source = xarray.load_dataset(folder / "source_dataset.nc")
    stats = normalization.load_stats(folder)
    reference = xarray.load_dataset(folder / "expected_forecast.nc")
    model_graphs = dict(np.load(folder / "graphs.npz")) if graphs == "case" else None
    replay = recorded_noise(folder, cfg.task_config, cfg.sampler_config.num_noise_levels)
    t_in = channel_order.num_input_times(cfg.task_config)
    batches = []
    for b in range(reference.sizes["batch"]):
        dataset = layouts.from_deepmind(source, batch=b)
        ours = forecast.run(
            ckpt.params,
            cfg,
            dataset,
            stats,
            dataset["time"].values[t_in - 1 : t_in],
            reference.sizes["time"],
            reference.sizes["sample"],
            progress=False,
            check_inputs=False,  # a case's inputs may be synthetic: numbers are compared
            graphs=model_graphs,
            noise_source=noise.RecordedNoise(
                replay.initial[:, b : b + 1], replay.churn[:, b : b + 1]
            ),
        )
        batches.append(ours.isel(init_time=0, drop=True).drop_vars("valid_time"))
    ours = xarray.concat(batches, dim="batch").rename(lead_time="time")
    ours = ours.assign_coords(time=reference["time"].values)
    return ours.transpose(*reference.dims), reference


def relative_errors(ours: xarray.Dataset, reference: xarray.Dataset) -> dict[str, np.ndarray]:
    """{variable: [time] max|ours - ref| / max|ref| over all other dims}, NaN-aware.

    Raises:
      ValueError: if the variables or the NaN masks differ.
    """
    if sorted(ours.data_vars) != sorted(reference.data_vars):
        raise ValueError(f"variables differ: {sorted(ours.data_vars)} vs {sorted(reference)}")
    out = {}
    for name in sorted(reference.data_vars):
        ref = reference[name]
        a = ours[name].transpose(*ref.dims).values
        r = ref.values
        if not np.array_equal(np.isnan(a), np.isnan(r)):
            raise ValueError(f"{name}: NaN masks differ")
        time_axis = ref.dims.index("time")
        other = tuple(i for i in range(r.ndim) if i != time_axis)
        scale = np.nanmax(np.abs(r))
        out[name] = np.nanmax(np.abs(a - r), axis=other) / scale
    return out
