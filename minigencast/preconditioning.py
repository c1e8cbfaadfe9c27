"""EDM preconditioning and the training noise levels.

GenCast trains a denoiser D(x; sigma) that maps a noisy normalised target
x = y + sigma eps back to an estimate of y. Following EDM [2] (Table 1, with
sigma_data = 1 because targets are normalised to unit variance), D is built
around a raw network F whose inputs and outputs all have unit scale:

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, sigma)

    c_in(sigma)   = 1 / sqrt(sigma^2 + 1)        so that Var[c_in x] = 1
    c_skip(sigma) = 1 / (sigma^2 + 1)            the optimal linear shrinkage of x
    c_out(sigma)  = sigma / sqrt(sigma^2 + 1)    so that the target of F has unit variance

(an identity check: c_skip + c_out^2 = 1). Only the noisy targets are scaled by
c_in; the conditioning (inputs, forcings) enters F unscaled (docs/design.md §3.1).

Unlike EDM's c_noise = ln(sigma)/4, GenCast hands F the raw sigma; F embeds it
itself (`noise_encoder.noise_encoder`, part of the network as in DeepMind's
`denoiser.py`).

The training loss weight lambda(sigma) = (sigma^2 + 1) / sigma^2 = 1 / c_out^2
(EDM eq. 8 with sigma_data = 1) makes the effective target of F have unit weight
at every noise level. Training noise levels are drawn from EDM's *sampling*
schedule used as a distribution: sigma^(1/rho) uniform between
sigma_min^(1/rho) and sigma_max^(1/rho) (docs/design.md §3.3).

All functions accept any sigma shape that broadcasts against x; for one sample
sigma is a scalar. sigma must be > 0: ln(0) = -inf would turn the encoder into
NaNs. On concrete values (outside `jit`) we raise a ValueError; inside `jit`
values are not known and no check is possible.

References:
  [1] Price et al. 2025, "Probabilistic weather forecasting with machine learning",
      Nature 637, 84-90 (arXiv:2312.15796), Supplementary sec. D.
  [2] Karras et al. 2022, "Elucidating the design space of diffusion-based
      generative models" (EDM), arXiv:2206.00364, Table 1 and eqs. 7-8.
  [3] DeepMind graphcast@d39de19: graphcast/gencast.py (`_c_in`, `_c_out`,
      `_c_skip`, `_loss_weighting`).

Tutorials: tutorials/02_diffusion_1d.py (EDM in one dimension), tutorials/05_denoiser.py.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from minigencast import config as config_lib

Params = dict

# --------------------------------------------------------------------------
# Input checking.


def check_positive_sigma(sigma, what: str = "sigma") -> None:
    """Raises ValueError if a *concrete* sigma has an entry <= 0 (or NaN).

    Under `jit`/`vmap`/`grad` tracing the values are unknown and the check is
    skipped (it costs nothing there). This is the guard that turns "NaNs three
    modules later" into a clear message at the public entry points.
    """
    try:
        values = np.asarray(sigma)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return
    if values.dtype == object:  # e.g. a traced value wrapped in a list
        return
    if not np.all(values > 0):
        bad = values[~(values > 0)] if values.ndim else values
        raise ValueError(
            f"{what} must be > 0 (GenCast encodes ln(sigma); sigma = 0 gives NaN), "
            f"got {np.ravel(bad)[:5].tolist()}."
        )


# --------------------------------------------------------------------------
# EDM preconditioning with sigma_data = 1 ([2] Table 1; [3] gencast.py).


def c_in(sigma):
    """c_in(sigma) = 1 / sqrt(sigma^2 + 1): scales x = y + sigma eps to unit variance."""
    return jax.lax.rsqrt(jnp.square(sigma) + 1.0)


def c_out(sigma):
    """c_out(sigma) = sigma / sqrt(sigma^2 + 1): the scale of F's contribution to D."""
    return sigma * jax.lax.rsqrt(jnp.square(sigma) + 1.0)


def c_skip(sigma):
    """c_skip(sigma) = 1 / (sigma^2 + 1): how much of the noisy x passes straight to D."""
    return 1.0 / (jnp.square(sigma) + 1.0)


def loss_weight(sigma):
    """lambda(sigma) = (sigma^2 + 1) / sigma^2 = 1 / c_out(sigma)^2 ([2] eq. 8)."""
    check_positive_sigma(sigma)
    return (jnp.square(sigma) + 1.0) / jnp.square(sigma)


RawFn = Callable[[jax.Array, jax.Array], jax.Array]


def denoise(raw_fn: RawFn, x: jax.Array, sigma) -> jax.Array:
    """D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, sigma).

    Args:
      raw_fn: the raw network F(scaled_noisy_targets, sigma) -> array like x, with
        the conditioning (params, inputs, forcings, ...) already bound, e.g.
        `lambda xs, s: network.raw_denoiser(params, structure, cfg, inputs, forcings, xs, s)`.
      x: noisy normalised targets y + sigma eps, e.g. [lat, lon, channel].
      sigma: noise level(s) > 0 broadcastable against x (a scalar for one sample).

    Returns:
      The denoised estimate of y, shaped like x.
    """
    check_positive_sigma(sigma)
    # sigma and the coefficients stay in >= float32 (the encoder takes ln sigma);
    # the network input and the result take x's dtype.
    sigma = jnp.asarray(sigma, jnp.promote_types(x.dtype, jnp.float32))
    raw = raw_fn((c_in(sigma) * x).astype(x.dtype), sigma)
    return (c_skip(sigma) * x + c_out(sigma) * raw).astype(x.dtype)


def make_denoise_fn(raw_fn: RawFn) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Returns denoise_fn(x, sigma) = D(x; sigma) for the raw network `raw_fn`.

    The result is what `sampler.sample` expects as its `denoise_fn`.
    """
    return lambda x, sigma: denoise(raw_fn, x, sigma)


# --------------------------------------------------------------------------
# Training noise levels (docs/design.md §3.3; [3] gencast.py `_sample_noise_levels`).


def noise_level_quantile(u, cfg: config_lib.NoiseConfig):
    """sigma(u) = (sigma_min^(1/rho) + u (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho.

    The inverse CDF of the training noise distribution: u ~ U[0, 1) gives a
    sample; u = 0.5 the median (4.35 with GenCast's rho 7, 0.02, 88).
    """
    rho = cfg.training_noise_level_rho
    lo = cfg.training_min_noise_level ** (1.0 / rho)
    hi = cfg.training_max_noise_level ** (1.0 / rho)
    return (lo + jnp.asarray(u) * (hi - lo)) ** rho


def sample_noise_levels(key, cfg: config_lib.NoiseConfig, shape=()) -> jax.Array:
    """Training noise levels sigma [*shape], one per example (float32, >= sigma_min)."""
    u = jax.random.uniform(key, shape, jnp.float32)
    return noise_level_quantile(u, cfg)
