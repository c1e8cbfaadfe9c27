"""Spread correction: each member's departure from the ensemble mean scaled per lead and channel.

At lead n, every member m of the written forecast of channel c becomes

    x'_m = xbar + a_{n,c} (x_m - xbar),      xbar = (1/M) sum_m x_m                      (1)

so the ensemble mean (and with it the RMSE of the mean) is unchanged and the spread is
multiplied by a_{n,c}. The factors come from forecasts started in the training run's
hold-out, weather the network never trained on (`calibration.calibrate`), as the inverse
of their debiased spread/skill ratio where that is below 1:

    a_{n,c} = max(1, RMSE_{n,c}(xbar) / (sqrt((M+1)/M) spread_{n,c}))                      (2)

with spread^2 the members' variance (ddof 1) and both terms cos(latitude)-weighted over
the globe and pooled over the inits (`spread_skill`, `metrics.spread_skill_ratio`). It is
the rescaling of members about their mean that makes an ensemble's spread match its error
(Johnson & Bowler 2009, "On the reliability and calibration of ensemble forecasts", Mon.
Wea. Rev. 137, 1717-1720), per lead and channel, as the spectral filter is per lead.

Why (docs/goals.md): the shipped CPU model's spread/skill falls with lead, 1.14 at 1 day
to 0.91 at 4 days on its training span, 1.07 to 0.90 on the hold-out and 0.98 to 0.82 in
the test season; one churn inflation cannot make it flat. Forecasts of states the network
trained on overstate spread/skill (their errors are smaller), so the factors are measured
on the hold-out: with training-span factors z500 fell under 0.85 at about 3 days on two
of four unseen Novembers-Decembers. It only widens (a >= 1): narrowing the short leads,
too wide on October's hold-out, cost CRPS at 1 day there, and they are not too wide in
winter. The correction acts on written states only: the rollout feeds the network its raw
output. GenCast has no such step (Price et al. 2025, Fig. 2: its spread/skill is close to
1 without one); it is off unless a model folder carries factors (stored with the
spectral filter's gains, `spectral_filter.FILE`).
"""

from __future__ import annotations

import numpy as np

from minigencast import spectral_filter


def apply(factors, outputs, first_step: int, in_place: bool = False):
    """Eq. (1) on outputs [I, S, K, lat, lon, C] whose leads start at 0-based `first_step`.

    factors: [leads, C]; leads past the calibrated ones use the last lead's factors.
    in_place: overwrite `outputs` (a NumPy array) instead of returning a new array, so
    that a forecast chunk is never held twice on the host.
    """
    outputs = np.asarray(outputs)
    if outputs.shape[1] < 2:
        return outputs
    leads = np.minimum(first_step + np.arange(outputs.shape[2]), len(factors) - 1)
    a = np.asarray(factors, outputs.dtype)[leads][:, None, None, :]  # [K, 1, 1, C]
    mean = outputs.mean(axis=1, keepdims=True)
    x = outputs if in_place else outputs.copy()
    x -= mean
    x *= a
    x += mean
    return x


def spread_skill(members, truth, lat) -> np.ndarray:
    """Debiased spread/skill per lead and channel: members [S, I, L, lat, lon, C],
    truth [I, L, lat, lon, C] -> [L, C] (the ratio that eq. (2) inverts)."""
    m = members.shape[0]
    w = np.cos(np.deg2rad(np.asarray(lat, np.float64)))[:, None, None]
    variance = (members.var(axis=0, ddof=1) * w).sum(axis=(0, 2, 3))
    error = ((members.mean(axis=0) - truth) ** 2 * w).sum(axis=(0, 2, 3))
    return np.sqrt((m + 1) / m * variance / error)


def from_metadata(metadata, task) -> np.ndarray | None:
    """The factors [leads, C] of a loaded model's metadata, or None if it carries none."""
    entry = (metadata or {}).get("spectral_filter")
    if entry is None or entry.get("spread") is None:
        return None
    factors = np.asarray(entry["spread"], np.float32)
    if factors.shape[-1] != len(spectral_filter.channel_names(task)):
        raise ValueError(
            "the model's spread correction is for other channels than the task's; "
            "recalibrate it (minigencast calibrate-spectra)"
        )
    return factors
