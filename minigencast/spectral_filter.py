"""The spectral filter: per-wavenumber gains on the written forecast, calibrated on training data.

Every latitude row of a forecast state x_c (channel c) at lead n is Fourier transformed
over longitude and each zonal wavenumber k = 0..n_lon/2 scaled by its own gain:

    x'_c(lat, .) = irfft_k[ g_{n,c,lat,k} rfft(x_c(lat, .))_k ]                         (1)

g = 1 is the identity. This is the Fourier filter of grid-point models (a polar filter with
gains per latitude, e.g. Williamson & Laprise 2000, "Numerical approximations for global
atmospheric GCMs", sec. 4), here with gains that are *measured*, not prescribed, one set
per lead, as statistical post-processing is calibrated per lead.

Why (docs/goals.md): data made by a spectral model with hyperdiffusion (the toy planet,
T21) hold almost no power at small scales, and a small network cannot write them that
cleanly: every error it makes there is power where the data have none, and it grows from
step to step. The filter acts on the states the forecast *writes*; the rollout itself
feeds the network its raw output, so the model's dynamics, and with them its spread, are
untouched. (Feeding the filtered state back was tried: gains measured on the unfiltered
rollout then over-damp it, spread/skill fell to 0.4-0.6, and letting the gains recover
made the rounds oscillate, 10-150x too much power.) The gains come from forecasts started
at training-span initial times, compared with the truth at the same valid times:

    g_{n,c,lat,k} = min(1, sqrt(E_truth[n,c,lat,k] / E_forecast[n,c,lat,k]))            (2)

with E = |rfft(x_c(lat, .))_k|^2 averaged over inits and members at lead n
(`zonal_power`, `calibration.calibrate`). Gains are <= 1: the filter removes power the
data do not have and never invents any. Leads beyond the calibrated ones use the last
lead's gains. Wind components are filtered like every other field: on a lat/lon grid they
are smooth along each row, which a per-degree (spherical-harmonic) filter would not respect
near the poles. GenCast itself has no such step (Price et al. 2025 keep ERA5's power with
a 0.25 deg model); here it is off unless a model folder carries gains.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from minigencast import channel_order

FILE = "spectral_filter.npz"  # beside model.npz: gains and spread factors; in metadata.json


class Filter(NamedTuple):
    """Gains g of eq. (1): [leads, lat, n_lon // 2 + 1, C] (a pytree of one array)."""

    gains: np.ndarray


def apply(filt: Filter, x, step):
    """Eq. (1) at 0-based lead index `step` (traced int) on states x [..., lat, lon, C]."""
    spectrum = jnp.fft.rfft(x, axis=-2)  # [..., lat, K, C]
    gains = jnp.asarray(filt.gains, x.dtype)
    gains = gains[jnp.minimum(step, gains.shape[0] - 1)]
    gains = gains.reshape((1,) * (spectrum.ndim - 3) + gains.shape)
    return jnp.fft.irfft(spectrum * gains, n=x.shape[-2], axis=-2).astype(x.dtype)


def filter_leads(gains, x) -> np.ndarray:
    """Eq. (1) in NumPy on x [..., leads, lat, lon, C], lead n with gains[n] [lat, K, C]."""
    x = np.asarray(x, np.float64)
    return np.fft.irfft(np.fft.rfft(x, axis=-2) * gains, n=x.shape[-2], axis=-2)


def zonal_power(x) -> np.ndarray:
    """|rfft_k|^2 per latitude of states x [..., lat, lon, C] -> [..., lat, K, C] (NumPy)."""
    return np.abs(np.fft.rfft(np.asarray(x, np.float64), axis=-2)) ** 2


def gains_from_power(forecast_power, truth_power) -> np.ndarray:
    """Eq. (2) from mean powers [..., lat, K, C]; 1 where the forecast has no power."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(forecast_power > 0, truth_power / forecast_power, 1.0)
    return np.minimum(1.0, np.sqrt(ratio))


def channel_names(task) -> list[str]:
    """Names of the target channels, in the network's order: "variable" or "variable@level"."""
    return [
        c.variable if c.level is None else f"{c.variable}@{c.level}"
        for c in channel_order.target_channels(task)
    ]


def save(folder: str, task, gains, spread=None, **calibration) -> dict:
    """Writes FILE into a model folder (atomically): the gains and, if given, the spread
    correction's factors [leads, C] (`spread_correction.py`); returns metadata.json's entry."""
    path = os.path.join(folder, FILE)
    tmp = f"{path}.tmp-{os.getpid()}.npz"
    arrays = {"gains": np.asarray(gains, np.float32)}
    if spread is not None:
        arrays["spread"] = np.asarray(spread, np.float32)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    entry = {"file": FILE, "channels": channel_names(task), "arrays": sorted(arrays)}
    return {**entry, "calibration": calibration}


def load(folder: str, metadata) -> None:
    """Adds the arrays of FILE (gains, spread factors if any) to metadata.json's entry, if it
    names one (`forecast.load_model`)."""
    entry = (metadata or {}).get("spectral_filter")
    if entry is None:
        return
    path = os.path.join(folder, entry["file"])
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} is missing, and {folder}/metadata.json names it; copy it back, "
            "recalibrate (minigencast calibrate-spectra), or remove the entry"
        )
    with np.load(path) as f:
        entry.update({name: f[name] for name in f.files})


def from_metadata(metadata, task, lat, lon) -> Filter | None:
    """The filter of a loaded model's metadata (None if none), checked against task and grid."""
    entry = (metadata or {}).get("spectral_filter")
    if entry is None:
        return None
    gains = np.asarray(entry["gains"], np.float32)
    names = channel_names(task)
    if entry["channels"] != names or gains.shape[-1] != len(names):
        raise ValueError(
            "the model's spectral filter is for other channels than the task's "
            f"({names[:3]}...); recalibrate it (minigencast calibrate-spectra)"
        )
    if gains.shape[1:3] != (np.size(lat), np.size(lon) // 2 + 1):
        raise ValueError(
            f"the model's spectral filter is for a grid of {gains.shape[1]} latitudes and "
            f"{2 * (gains.shape[2] - 1)} longitudes, the data have {np.size(lat)}x{np.size(lon)}"
        )
    return Filter(gains)
