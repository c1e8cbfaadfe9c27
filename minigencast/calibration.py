"""Calibrating the written-state post-processing on training data: the spectral filter's
gains (`spectral_filter.py`, eq. (2)) and the spread correction's factors
(`spread_correction.py`, eq. (2)).

    forecast num_steps from num_inits training-span inits, num_members each, raw;
    a = 1
    repeat ROUNDS times:
        g[n] = min(1, sqrt(E_truth[n] / E_forecast[n])), E = zonal power per channel,
            latitude and wavenumber of the spread-corrected members (factors a) and of the
            truth at the same valid times, averaged over members and inits;
        a[n] = max(1, 1 / spread/skill of the filtered members (gains g)), per channel

The two steps commute on the written states (the filter is linear and the same for every
member; the correction mixes members, not scales), and each changes what the other
measures only a little, so a few rounds settle them. One forecast pass suffices: both act
on the written states only, so neither changes the rollout it is measured on. The data
must be ones the model trained on (or any data set aside for it), never the data it is
judged on. `minigencast calibrate-spectra` is the command; `scripts/train_cpu.py` runs
it after training, so the recipe makes the shipped post-processing too.
"""

from __future__ import annotations

import os

import numpy as np

from minigencast import (
    arrays,
    evaluation,
    forecast,
    spectral_filter,
    spread_correction,
    training_state,
)

STEP = np.timedelta64(12, "h")
ROUNDS = 3  # the CPU model's factors moved by < 0.5 % in the third round (docs/goals.md)


def lead_power(frames) -> np.ndarray:
    """Mean zonal power over axis 0 of frames [N, ..., lat, lon, C]: [..., lat, K, C]."""
    return spectral_filter.zonal_power(frames).mean(axis=0)


def post_processing(members, truth, lat, rounds: int = ROUNDS):
    """(gains [L, lat, K, C], spread factors [L, C]) from raw members [S, I, L, lat, lon, C]
    and the truth [I, L, lat, lon, C] at the same valid times (the module's loop)."""
    members = np.asarray(members, np.float64)
    truth_power = lead_power(truth)
    factors = np.ones((members.shape[2], members.shape[-1]))
    for _ in range(rounds):
        corrected = spread_correction.apply(factors, np.moveaxis(members, 0, 1), 0)
        power = lead_power(corrected.reshape((-1,) + corrected.shape[2:]))
        gains = spectral_filter.gains_from_power(power, truth_power)
        filtered = spectral_filter.filter_leads(gains, members)
        factors = np.maximum(1.0, 1.0 / spread_correction.spread_skill(filtered, truth, lat))
    return gains, factors


def calibrate(
    params,
    cfg,
    dataset,
    stats,
    metadata,
    *,
    num_inits: int = 16,
    num_members: int = 4,
    num_steps: int = 10,
    seed: int = 0,
    progress: bool = True,
):
    """(gains [num_steps, lat, K, C], spread factors [num_steps, C]) (`post_processing`).

    Args:
      params, cfg, metadata: the model (`forecast.load_model`).
      dataset: canonical Dataset of the calibration span (training data).
      stats: the model's normalisation statistics.
    """
    task = cfg.task_config
    init_times = evaluation.choose_init_times(dataset["time"].values, num_inits, num_steps)
    fc = forecast.run(
        params, cfg, dataset, stats, init_times, num_steps, num_members, seed=seed,
        metadata=metadata, progress=progress, use_spectral_filter=False,
        use_spread_correction=False,
    )  # fmt: skip
    # [sample * init, lead, lat, lon, C] and the truth [init, lead, lat, lon, C].
    flat = fc.stack(time=["sample", "init_time", "lead_time"]).reset_index("time", drop=True)
    frames = arrays.frames_from_dataset(flat, task)
    frames = frames.reshape((num_members, num_inits, num_steps) + frames.shape[1:])
    valid = (init_times[:, None] + np.arange(1, num_steps + 1)[None] * STEP).ravel()
    truth = arrays.frames_from_dataset(dataset.sel(time=valid), task)
    truth = truth.reshape((num_inits, num_steps) + truth.shape[1:])
    return post_processing(frames, truth, fc["lat"].values)


def calibrate_folder(
    folder,
    dataset,
    stats,
    *,
    hold_out_fraction: float = 0.05,
    source: str = "",
    num_inits: int = 16,
    num_members: int = 4,
    num_steps: int = 10,
    seed: int = 0,
    progress: bool = True,
) -> str:
    """Calibrates the model in `folder` on `dataset` less its last `hold_out_fraction`
    (the training run's validation span) and stores the gains and spread factors there:
    FILE and metadata.json's entry, which records `source` and the settings. Returns FILE's
    path."""
    params, cfg, metadata = forecast.load_model(folder)
    if metadata is None:
        raise ValueError(f"{folder} has no metadata.json (the grid the model is for)")
    n = dataset.sizes["time"]
    dataset = dataset.isel(time=slice(0, n - int(round(n * hold_out_fraction))))
    settings = dict(num_inits=num_inits, num_members=num_members, num_steps=num_steps, seed=seed)
    gains, spread = calibrate(params, cfg, dataset, stats, metadata, progress=progress, **settings)
    times = dataset["time"].values
    span = [str(times[0])[:16], str(times[-1])[:16]]
    entry = spectral_filter.save(
        folder, cfg.task_config, gains, spread, data=source, span=span, **settings
    )
    training_state.update_metadata(folder, "spectral_filter", entry)
    return os.path.join(folder, spectral_filter.FILE)
