"""Calibrating the written-state post-processing: the spectral filter's gains
(`spectral_filter.py`, eq. (2)) on the training span and the spread correction's factors
(`spread_correction.py`, eq. (2)) on the training run's hold-out.

    forecast num_steps from num_inits training-span inits, num_members each, raw;
    forecast the same from num_inits hold-out inits (targets the network never trained on);
    a = 1
    repeat ROUNDS times:
        g[n] = min(1, sqrt(E_truth[n] / E_forecast[n])), E = zonal power per channel,
            latitude and wavenumber of the spread-corrected training-span members
            (factors a) and of the truth at the same valid times, averaged over members
            and inits;
        a[n] = max(1, 1 / spread/skill of the filtered hold-out members (gains g)),
            per channel

The two steps commute on the written states (the filter is linear and the same for every
member; the correction mixes members, not scales), and each changes what the other
measures only a little, so a few rounds settle them. One forecast pass per span suffices:
both act on the written states only, so neither changes the rollout it is measured on.

Why two spans: the gains need the whole annual cycle (the truth's power moves with the
season), which only the training span has. The factors need errors like the ones the
model makes on weather it has not seen: on states it trained on its errors are smaller
and spread/skill is overstated (for the shipped CPU model at 3 days z500 0.92 on the
training span against 0.88 on the hold-out, and lower still on unseen winters;
docs/goals.md, "Spread factors from the hold-out"). Neither span may be data the model is
judged on. `minigencast calibrate-spectra` is the command; `scripts/train_cpu.py` runs it
after training, so the recipe makes the shipped post-processing too.
"""

from __future__ import annotations

import os

import numpy as np

from minigencast import (
    arrays,
    evaluation,
    forecast,
    loader,
    spectral_filter,
    spread_correction,
    training_state,
)

STEP = np.timedelta64(12, "h")
SPREAD_SPANS = ("hold-out", "training")  # where the spread factors are measured
ROUNDS = 3  # the CPU model's factors moved by < 0.5 % in the third round (docs/goals.md)


def lead_power(frames) -> np.ndarray:
    """Mean zonal power over axis 0 of frames [N, ..., lat, lon, C]: [..., lat, K, C]."""
    return spectral_filter.zonal_power(frames).mean(axis=0)


def post_processing(members, truth, lat, spread_members=None, spread_truth=None, rounds=ROUNDS):
    """(gains [L, lat, K, C], spread factors [L, C]) from raw members [S, I, L, lat, lon, C]
    and the truth [I, L, lat, lon, C] at the same valid times (the module's loop); the
    factors from `spread_members` and `spread_truth` (the hold-out's, same layout) if given,
    else from `members` and `truth`."""
    members = np.asarray(members, np.float64)
    if spread_members is None:
        spread_members, spread_truth = members, truth
    spread_members = np.asarray(spread_members, np.float64)
    truth_power = lead_power(truth)
    factors = np.ones((members.shape[2], members.shape[-1]))
    for _ in range(rounds):
        corrected = spread_correction.apply(factors, np.moveaxis(members, 0, 1), 0)
        power = lead_power(corrected.reshape((-1,) + corrected.shape[2:]))
        gains = spectral_filter.gains_from_power(power, truth_power)
        filtered = spectral_filter.filter_leads(gains, spread_members)
        ratio = spread_correction.spread_skill(filtered, spread_truth, lat)
        factors = np.maximum(1.0, 1.0 / ratio)
    return gains, factors


def hold_out_span(dataset, fraction: float):
    """(training span, hold-out span) of `dataset`: all but its last `fraction` of frames,
    and the frames from the training run's validation split on (`loader.split_by_time`,
    whose windows the run never trains on) with the two frames before them, so that the
    first init's inputs exist and every target is a validation frame; None if `fraction`
    leaves no validation window."""
    n = dataset.sizes["time"]
    training = dataset.isel(time=slice(0, n - int(round(n * fraction))))
    _, validation = loader.split_by_time(dataset["time"].values, fraction)
    if not len(validation):
        return training, None
    return training, dataset.isel(time=slice(max(int(validation.min()) - 2, 0), None))


def raw_forecast(
    params, cfg, dataset, stats, metadata, *, num_inits, num_members, num_steps, seed, progress
):
    """Raw members [S, I, L, lat, lon, C] (no filter, no correction) from `num_inits` inits
    spread over `dataset`, and the truth [I, L, lat, lon, C] at their valid times."""
    task = cfg.task_config
    init_times = evaluation.choose_init_times(dataset["time"].values, num_inits, num_steps)
    fc = forecast.run(
        params, cfg, dataset, stats, init_times, num_steps, num_members, seed=seed,
        metadata=metadata, progress=progress, use_spectral_filter=False,
        use_spread_correction=False,
    )  # fmt: skip
    flat = fc.stack(time=["sample", "init_time", "lead_time"]).reset_index("time", drop=True)
    frames = arrays.frames_from_dataset(flat, task)
    frames = frames.reshape((num_members, num_inits, num_steps) + frames.shape[1:])
    valid = (init_times[:, None] + np.arange(1, num_steps + 1)[None] * STEP).ravel()
    truth = arrays.frames_from_dataset(dataset.sel(time=valid), task)
    return frames, truth.reshape((num_inits, num_steps) + truth.shape[1:])


def calibrate(
    params,
    cfg,
    dataset,
    stats,
    metadata,
    *,
    spread_dataset=None,
    num_inits: int = 16,
    num_members: int = 4,
    num_steps: int = 10,
    seed: int = 0,
    progress: bool = True,
):
    """(gains [num_steps, lat, K, C], spread factors [num_steps, C]) (`post_processing`).

    Args:
      params, cfg, metadata: the model (`forecast.load_model`).
      dataset: canonical Dataset of the gains' span (training data).
      stats: the model's normalisation statistics.
      spread_dataset: the factors' span (the hold-out, `hold_out_span`); None: `dataset`.
    """
    settings = dict(num_inits=num_inits, num_members=num_members, num_steps=num_steps,
                    seed=seed, progress=progress)  # fmt: skip
    members, truth = raw_forecast(params, cfg, dataset, stats, metadata, **settings)
    spread = None, None
    if spread_dataset is not None:
        spread = raw_forecast(params, cfg, spread_dataset, stats, metadata, **settings)
    return post_processing(members, truth, dataset["lat"].values, *spread)


def calibrate_folder(
    folder,
    dataset,
    stats,
    *,
    hold_out_fraction: float = 0.05,
    spread_span: str = "hold-out",
    source: str = "",
    num_inits: int = 16,
    num_members: int = 4,
    num_steps: int = 10,
    seed: int = 0,
    progress: bool = True,
) -> str:
    """Calibrates the model in `folder`: the gains on `dataset` less its last
    `hold_out_fraction` (the training run's validation span), the spread factors on that
    hold-out (`spread_span="hold-out"`) or on the same span as the gains ("training"), and
    stores them there: FILE and metadata.json's entry, which records `source`, the spans
    and the settings. Returns FILE's path."""
    if spread_span not in SPREAD_SPANS:
        raise ValueError(f"spread_span must be one of {SPREAD_SPANS}, got {spread_span!r}")
    params, cfg, metadata = forecast.load_model(folder)
    if metadata is None:
        raise ValueError(f"{folder} has no metadata.json (the grid the model is for)")
    dataset, hold_out = hold_out_span(dataset, hold_out_fraction)
    if spread_span == "training":
        hold_out = None
    elif hold_out is None:
        raise ValueError(
            f"hold-out fraction {hold_out_fraction} leaves no validation window for the "
            "spread factors; raise it or measure them on the training span (--spread_span "
            "training)"
        )
    settings = dict(num_inits=num_inits, num_members=num_members, num_steps=num_steps, seed=seed)
    gains, spread = calibrate(
        params, cfg, dataset, stats, metadata, spread_dataset=hold_out, progress=progress,
        **settings,
    )  # fmt: skip

    def span(ds):
        times = ds["time"].values
        return [str(times[0])[:16], str(times[-1])[:16]]

    spans = dict(span=span(dataset), spread_span=span(dataset if hold_out is None else hold_out))
    entry = spectral_filter.save(
        folder, cfg.task_config, gains, spread, data=source, **spans, **settings
    )
    training_state.update_metadata(folder, "spectral_filter", entry)
    return os.path.join(folder, spectral_filter.FILE)
