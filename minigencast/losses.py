"""GenCast's training loss: a latitude-, level- and variable-weighted MSE times lambda(sigma).

For one example with noise level sigma, clean normalised-residual targets y and
the denoiser's estimate D = D(y + sigma eps; sigma) (docs/design.md §3.4; DeepMind's
`gencast.GenCast.loss` and `losses.weighted_mse_per_level`):

    loss_v = mean over (level, lat, lon) of  w_lat(lat) w_lev(level) (D_v - y_v)^2
    loss   = lambda(sigma) sum_v w_v loss_v,       lambda(sigma) = (sigma^2 + 1) / sigma^2

  w_lat   cell-area weights normalised to mean 1 over the latitude rows: on a grid
          with both poles, interior rows ~ cos(lat) sin(dlat/2) and pole rows
          ~ sin^2(dlat/4) (the area of the polar cap of half a row); without
          poles ~ cos(lat). At 1 deg: pole 0.00345, next row 0.0276, equator 1.5795.
  w_lev   level / mean(levels) over the variable's levels (1000 hPa weighs 20x
          50 hPa): roughly proportional to the mass of air a level represents.
  w_v     1.0, except 0.1 for the five "extra" surface variables (10 m winds, mslp,
          SST, precipitation), as DeepMind's loss.
  lambda  EDM's weighting (preconditioning.loss_weight): with sigma_data = 1 it
          turns the loss into an unweighted regression for the raw network F.

Two equivalent forms are provided:

* Stacked arrays [..., lat, lon, channel] (what the network produces), with a
  per-channel weight vector built once from the channel list:
  w_c = w_v(c) w_lev(c) / n_v(c), n_v = number of channels of variable v, so that
  sum_c w_c mean_latlon(w_lat e_c) equals the per-variable sum above. This is the
  form used in training; it works for any variable set (e.g. the toy planet).
* Per-variable dicts {name: [..., [level,] lat, lon]}, written literally as
  DeepMind's per-variable loop; it is the readable reference and the test oracle.

References:
  [1] Price et al. 2025, "Probabilistic weather forecasting with machine learning",
      Nature 637, 84-90 (arXiv:2312.15796), Supplementary sec. D.3.
  [2] DeepMind graphcast@d39de19: graphcast/gencast.py (`loss`),
      graphcast/losses.py (`weighted_mse_per_level`, `normalized_latitude_weights`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from minigencast import channel_order, geometry, preconditioning, variables

# DeepMind's per-variable weights (gencast.py): any variable not listed weighs 1.0.
DEFAULT_VARIABLE_WEIGHT = 1.0
LOW_VARIABLE_WEIGHT = 0.1


# --------------------------------------------------------------------------
# Static weights (NumPy, built once).


def level_weights(levels) -> np.ndarray:
    """w_lev = level / mean(levels): [level] float64 (pressure in any unit)."""
    levels = np.asarray(levels, np.float64)
    return levels / levels.mean()


def variable_weight(name: str, per_variable_weights: Mapping[str, float] | None = None) -> float:
    """w_v: 0.1 for the five surface extras (variables.LOW_WEIGHT_SURFACE_VARIABLES), else 1.0.

    `per_variable_weights` overrides these defaults for the variables it names.
    """
    if per_variable_weights is not None and name in per_variable_weights:
        return float(per_variable_weights[name])
    if name in variables.LOW_WEIGHT_SURFACE_VARIABLES:
        return LOW_VARIABLE_WEIGHT
    return DEFAULT_VARIABLE_WEIGHT


def channel_weights(
    channels: Sequence, per_variable_weights: Mapping[str, float] | None = None
) -> np.ndarray:
    """Per-channel weights w_c = w_v w_lev / n_v for stacked targets: [channel] float64.

    Args:
      channels: one entry per stacked target channel with attributes `variable`
        (str) and `level` (hPa or None), e.g. `channel_order.target_channels(task)`.
        A variable's level weights use the mean of *its* levels, as DeepMind's
        loss normalises by the target's `level` coordinate.
      per_variable_weights: optional overrides of `variable_weight`.
    Returns:
      w [channel] with sum_c w_c = sum_v w_v mean_levels(w_lev) = sum_v w_v.
    """
    by_variable: dict[str, list[int]] = {}
    for i, ch in enumerate(channels):
        by_variable.setdefault(ch.variable, []).append(i)
    weights = np.zeros(len(channels), np.float64)
    for name, idx in by_variable.items():
        levels = [channels[i].level for i in idx]
        w_v = variable_weight(name, per_variable_weights)
        if all(level is None for level in levels):
            w_lev = np.ones(len(idx))
        elif any(level is None for level in levels):
            raise ValueError(f"Variable {name!r} mixes channels with and without a level.")
        else:
            # Mean over the variable's distinct levels (channels may repeat a level over time).
            w_lev = np.asarray(levels, np.float64) / np.mean(sorted(set(levels)))
        weights[idx] = w_v * w_lev / len(idx)
    return weights


def task_channel_weights(task, per_variable_weights=None) -> np.ndarray:
    """`channel_weights` for the task's stacked targets (channel_order.target_channels order).

    `per_variable_weights`: {name: w_v} or (name, w_v) pairs (`TrainConfig`'s); a name the
    task does not predict, or a weight that is negative or not finite, is a ValueError.
    """
    overrides = dict(per_variable_weights or ())
    unknown = sorted(set(overrides) - set(task.target_variables))
    if unknown:
        raise ValueError(
            f"per_variable_weights names {', '.join(unknown)}: not a target variable of "
            f"this task ({', '.join(task.target_variables)})"
        )
    bad = {name: w for name, w in overrides.items() if not (np.isfinite(w) and w >= 0)}
    if bad:
        raise ValueError(f"per_variable_weights must be finite and >= 0, got {bad}")
    return channel_weights(channel_order.target_channels(task), overrides)


# --------------------------------------------------------------------------
# The loss on stacked arrays [..., lat, lon, channel].


def per_channel_mse(denoised, targets, lat_weights) -> jax.Array:
    """mean over (lat, lon) of w_lat (D - y)^2: [..., lat, lon, C] -> [..., C]."""
    lat_weights = jnp.asarray(lat_weights, denoised.dtype)
    sq = jnp.square(denoised - targets)
    n_lat, n_lon = sq.shape[-3], sq.shape[-2]
    return jnp.einsum("...ijc,i->...c", sq, lat_weights) / (n_lat * n_lon)


def weighted_loss(denoised, targets, sigma, lat_weights, chan_weights) -> jax.Array:
    """GenCast's loss per example, stacked layout: lambda(sigma) sum_c w_c mse_c.

    Args:
      denoised: D(x; sigma) [..., lat, lon, channel] (leading batch dims optional).
      targets: clean normalised targets y, same shape.
      sigma: noise level per example, shape [...] (a scalar for one example).
      lat_weights: [lat] from `geometry.latitude_weights(lat)`.
      chan_weights: [channel] from `channel_weights(...)`.
    Returns:
      loss [...]: one value per example (average over the batch yourself).
    """
    if denoised.shape != targets.shape:
        raise ValueError(f"denoised {denoised.shape} and targets {targets.shape} differ.")
    mse = per_channel_mse(denoised, targets, lat_weights)  # [..., C]
    total = jnp.einsum("...c,c->...", mse, jnp.asarray(chan_weights, mse.dtype))
    return preconditioning.loss_weight(jnp.asarray(sigma, total.dtype)) * total


def per_variable_losses(denoised, targets, lat_weights, channels) -> dict[str, jax.Array]:
    """Diagnostics: the unweighted per-variable loss_v [...] (no w_v, no lambda)."""
    mse = per_channel_mse(denoised, targets, lat_weights)
    unit = channel_weights(channels, {ch.variable: 1.0 for ch in channels})
    out: dict[str, jax.Array] = {}
    for name in dict.fromkeys(ch.variable for ch in channels):
        idx = np.array([i for i, ch in enumerate(channels) if ch.variable == name])
        out[name] = jnp.einsum("...c,c->...", mse[..., idx], jnp.asarray(unit[idx], mse.dtype))
    return out


# --------------------------------------------------------------------------
# The same loss on per-variable dicts (DeepMind's layout; the reference form).


def _along_axis(w, ndim, axis):
    """Reshapes a 1-D weight so it broadcasts along `axis` of an ndim array (explicit ranks)."""
    shape = [1] * ndim
    shape[axis] = w.shape[0]
    return w.reshape(shape)


def weighted_loss_dict(
    denoised: Mapping[str, jax.Array],
    targets: Mapping[str, jax.Array],
    sigma,
    lat,
    levels=None,
    per_variable_weights: Mapping[str, float] | None = None,
) -> jax.Array:
    """GenCast's loss per example on {name: array}; literally DeepMind's loop.

    Args:
      denoised, targets: {variable: [batch, lat, lon]} for surface variables,
        {variable: [batch, level, lat, lon]} for atmospheric ones (as many
        leading dims as sigma has, then optionally a level axis).
      sigma: [batch] (or a scalar with no batch axis).
      lat: [lat] degrees; levels: [level] hPa of the atmospheric arrays.
    Returns:
      loss [batch].
    """
    sigma = jnp.asarray(sigma)
    w_lat = jnp.asarray(geometry.latitude_weights(lat), jnp.float32)
    total = jnp.zeros(sigma.shape, jnp.float32)
    for name in targets:
        err = jnp.square(denoised[name] - targets[name])  # [B, [level,] lat, lon]
        err = err * _along_axis(w_lat, err.ndim, -2)
        if err.ndim == sigma.ndim + 3:  # has a level axis
            w_lev = jnp.asarray(level_weights(levels), err.dtype)
            err = err * _along_axis(w_lev, err.ndim, -3)
        # Plain mean over every non-batch axis (level, lat, lon).
        loss_v = jnp.mean(err.reshape(sigma.shape + (-1,)), axis=-1)
        total = total + variable_weight(name, per_variable_weights) * loss_v
    return preconditioning.loss_weight(sigma) * total
