"""GenCast's sampler: DPM-Solver++(2S) with EDM's stochastic churn (docs/design.md §5).

A GenCast forecast step draws one sample of the next state from the learned
conditional distribution by integrating the probability-flow ODE of EDM [2],

    dx / dsigma = (x - D(x; sigma)) / sigma,                                   (1)

from x ~ N(0, sigma_max^2 I) at sigma_max = 80 down to sigma = 0, with a
second-order solver and a little re-injected noise (churn) at high noise levels.

Noise levels (EDM eq. 5, N = num_noise_levels = 20, rho = 7):

    sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
    i = 0..N-1, and sigma_N = 0:
    80, 62.08, 47.72, ..., 0.0622, 0.03, 0.

Churn (EDM Algorithm 2, lines 4-6): at levels churn_min <= sigma_i <= churn_max
(GenCast: sigma >= 0.75, steps 0-13) the state is pushed *up* to

    sigma_hat = (1 + gamma) sigma_i,  gamma = min(S_churn / N, sqrt(2) - 1) = 0.125,
    x <- x + S_noise sqrt(sigma_hat^2 - sigma_i^2) eps',  S_noise = 1.05,

so the first network evaluation is at sigma_hat = 90 (above the training
maximum 88). The network is told sigma_hat, although the injected noise is
inflated by S_noise: EDM's heuristic against the slight loss of detail of
imperfect denoisers. Re-injecting noise lets errors made at earlier steps be
"forgotten"; it makes the sampler an SDE-like sampler rather than a pure ODE
solver.

DPM-Solver++(2S) [3] (singlestep, second order, data prediction). With
sigma(t) = t (EDM's choice; no signal scaling) and lambda = -ln sigma the exact
solution of (1) from sigma to sigma_next is

    x(sigma_next) = (sigma_next / sigma) x(sigma)
                    + sigma_next int_{lambda}^{lambda_next} e^{l} D(x(l); sigma(l)) dl.

Freezing D at one point inside the interval makes the integral exact:
sigma_next (e^{lambda_next} - e^{lambda}) D = (1 - sigma_next / sigma) D. So each
step is a convex combination of x and a denoised estimate. DPM-Solver++(2S)
evaluates D at the state x_mid predicted at the log-midpoint (r = 1/2):

    sigma_mid = sqrt(sigma_hat sigma_next)                 (geometric midpoint)
    x0        = D(x; sigma_hat)
    x_mid     = (sigma_mid / sigma_hat) x + (1 - sigma_mid / sigma_hat) x0
    x0_mid    = D(x_mid; sigma_mid)
    x_next    = (sigma_next / sigma_hat) x + (1 - sigma_next / sigma_hat) x0_mid

which is second-order accurate in the step h = lambda_next - lambda. In the
last step sigma_next = 0: sigma_mid would be 0, and D(.; 0) cannot be evaluated
(the noise encoder takes ln sigma). DeepMind's code falls back to a first-order
(Euler) step there, x_next = x0: the sample is the denoiser's estimate at
sigma_{N-1} = 0.03. Hence 2 (N - 1) + 1 = 39 denoiser calls per forecast step
(DeepMind's code makes a 40th call at sigma = 0 and throws its NaNs away; we
skip it).

The loop is a `jax.lax.scan` over the N - 1 two-evaluation steps followed by
the final one-evaluation step, so the denoiser is traced twice plus once and the
sampler compiles once, whatever N. The schedule is built with NumPy from the
(static) config and enters the scan as data.

References:
  [1] Price et al. 2025, "Probabilistic weather forecasting with machine learning",
      Nature 637, 84-90 (arXiv:2312.15796), Supplementary sec. D.2.
  [2] Karras et al. 2022, "Elucidating the design space of diffusion-based
      generative models" (EDM), arXiv:2206.00364, eq. 5 and Algorithm 2.
  [3] Lu et al. 2022, "DPM-Solver++: Fast solver for guided sampling of diffusion
      probabilistic models", arXiv:2211.01095, Algorithm 1 (2S).
  [4] DeepMind graphcast@d39de19: graphcast/dpm_solver_plus_plus_2s.py,
      graphcast/samplers_utils.py.

Tutorials: tutorials/02_diffusion_1d.py (the sampler on 1-D Gaussian data),
tutorials/07_sampling.py.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from minigencast import config as config_lib
from minigencast import noise as noise_lib

DenoiseFn = Callable[[jax.Array, jax.Array], jax.Array]
NoiseFn = Callable[[jax.Array, jax.Array], jax.Array]


def gaussian_noise(key, template: jax.Array) -> jax.Array:
    """i.i.d. N(0, 1) noise shaped and typed like `template` (the default noise_fn).

    GenCast proper uses spherical-harmonic white noise (docs/design.md §4); pass
    `noise.make_spherical_noise_fn(lat, lon)` as `noise_fn` for that.
    """
    return jax.random.normal(key, template.shape, template.dtype)


# --------------------------------------------------------------------------
# Schedule (NumPy, float64; static given the config).


def noise_levels(config: config_lib.SamplerConfig) -> np.ndarray:
    """sigma_0 > sigma_1 > ... > sigma_{N-1} = min, then sigma_N = 0: [N + 1].

    EDM eq. 5: equal steps in sigma^(1/rho) between max and min.
    """
    n = config.num_noise_levels
    inv_rho = 1.0 / config.rho
    q = np.linspace(0.0, 1.0, n)  # q_i = i / (N - 1); [0] when N = 1
    max_r, min_r = config.max_noise_level**inv_rho, config.min_noise_level**inv_rho
    sigmas = (max_r + q * (min_r - max_r)) ** config.rho
    return np.append(sigmas, 0.0)


def churn_gammas(config: config_lib.SamplerConfig) -> np.ndarray:
    """gamma_i = min(S_churn / N, sqrt(2) - 1) where churn_min <= sigma_i <= churn_max, else 0: [N].

    The cap sqrt(2) - 1 keeps sigma_hat <= sqrt(2) sigma_i, i.e. never more noise
    added than is already present (EDM sec. 4).
    """
    sigmas = noise_levels(config)[:-1]
    gamma = min(config.stochastic_churn_rate / config.num_noise_levels, np.sqrt(2.0) - 1.0)
    in_range = (sigmas >= config.churn_min_noise_level) & (sigmas <= config.churn_max_noise_level)
    return np.where(in_range, gamma, 0.0)


def churned_noise_levels(config: config_lib.SamplerConfig) -> np.ndarray:
    """sigma_hat_i = (1 + gamma_i) sigma_i: the level the denoiser is told at step i, [N]."""
    return (1.0 + churn_gammas(config)) * noise_levels(config)[:-1]


def churn_noise_std(config: config_lib.SamplerConfig) -> np.ndarray:
    """S_noise sqrt(max(sigma_hat_i^2 - sigma_i^2, 0)): std of the noise added at step i, [N].

    Clamped at 0 (an old DeepMind version could NaN here when gamma = 0).
    """
    sigmas = noise_levels(config)[:-1]
    sigma_hat = churned_noise_levels(config)
    variance = np.maximum(sigma_hat**2 - sigmas**2, 0.0)
    return config.noise_level_inflation_factor * np.sqrt(variance)


def build_schedule(config: config_lib.SamplerConfig) -> dict[str, np.ndarray]:
    """Everything a step needs, one row per step i = 0..N-1 (float64 NumPy arrays [N]).

    sigma (before churn), sigma_hat (after churn, told to D), churn_std (std of
    the added noise), sigma_next, sigma_mid = sqrt(sigma_hat sigma_next) (0 at the
    last step, where it is not used).
    """
    sigmas = noise_levels(config)
    sigma_hat = churned_noise_levels(config)
    return {
        "sigma": sigmas[:-1],
        "sigma_hat": sigma_hat,
        "churn_std": churn_noise_std(config),
        "sigma_next": sigmas[1:],
        "sigma_mid": np.sqrt(sigma_hat * sigmas[1:]),
    }


def denoiser_noise_levels(config: config_lib.SamplerConfig) -> np.ndarray:
    """The sigma of every denoiser call, in order: [2 (N - 1) + 1] (39 for GenCast)."""
    s = build_schedule(config)
    pairs = np.stack([s["sigma_hat"][:-1], s["sigma_mid"][:-1]], axis=1).reshape(-1)
    return np.append(pairs, s["sigma_hat"][-1])


def num_denoiser_calls(config: config_lib.SamplerConfig) -> int:
    """2 (N - 1) + 1: two calls per step, one in the last (Euler) step."""
    return 2 * (config.num_noise_levels - 1) + 1


# --------------------------------------------------------------------------
# The sampler.


def _churn(key, x, churn_std, source, iteration):
    """EDM Alg. 2 lines 5-6: x_hat = x + S_noise sqrt(sigma_hat^2 - sigma^2) eps'."""
    return x + churn_std.astype(x.dtype) * source.churn_noise(key, x, iteration)


def _dpm_solver_2s_step(denoise_fn, x, sigma_hat, sigma_mid, sigma_next):
    """One DPM-Solver++(2S) step from sigma_hat to sigma_next (two calls to D).

    Returns (x_next, x0) with x0 = D(x; sigma_hat), the first denoised estimate.
    """
    x0 = denoise_fn(x, sigma_hat)
    # Exponential-integrator step to the log-midpoint with D frozen at x0 (first order).
    ratio_mid = sigma_mid / sigma_hat
    x_mid = (ratio_mid * x + (1.0 - ratio_mid) * x0).astype(x.dtype)
    # The midpoint estimate D(x_mid; sigma_mid) makes the full step second order.
    x0_mid = denoise_fn(x_mid, sigma_mid)
    ratio_next = sigma_next / sigma_hat
    x_next = ratio_next * x + (1.0 - ratio_next) * x0_mid
    # Keep the state's dtype whatever precision the denoiser returns (a scan carry).
    return x_next.astype(x.dtype), x0.astype(x.dtype)


def _run(denoise_fn, key, template, config, noise_fn, record):
    """The sampler loop; returns (sample, trajectory or None)."""
    source = noise_lib.as_source(gaussian_noise if noise_fn is None else noise_fn)
    template = jnp.asarray(template)
    # The state and schedule are kept in at least float32 (a bfloat16 sigma of 0.03
    # would be 0.030029); the sample is cast to the template's dtype at the end.
    dtype = jnp.promote_types(template.dtype, jnp.float32)
    schedule = build_schedule(config)
    sched = {k: jnp.asarray(v, dtype) for k, v in schedule.items()}
    n = config.num_noise_levels
    keys = jax.random.split(key, n + 1)
    init_key, step_keys = keys[0], keys[1:]  # [N] step keys: one per step's churn
    state_template = jnp.zeros(template.shape, dtype)

    # x_0 = sigma_0 eps: the sampler starts from pure noise around zero (the
    # normalised residual's prior mean), as DeepMind's code does.
    x = sched["sigma"][0] * source.initial_noise(init_key, state_template).astype(dtype)
    x_init = x

    def churn(key, x, churn_std, iteration):
        # lax.cond runs one branch, so steps without churn (14-19 for GenCast) draw
        # no noise; the schedule is not batched, so under vmap it stays a cond.
        return jax.lax.cond(
            churn_std > 0,
            lambda x: _churn(key, x, churn_std, source, iteration),
            lambda x: x,
            x,
        )

    def body(x, step):
        x = churn(step["key"], x, step["churn_std"], step["iteration"])
        x_next, x0 = _dpm_solver_2s_step(
            denoise_fn, x, step["sigma_hat"], step["sigma_mid"], step["sigma_next"]
        )
        return x_next, ((x_next, x0) if record else None)

    leading = {k: v[:-1] for k, v in sched.items()}
    leading["key"] = step_keys[:-1]
    leading["iteration"] = jnp.arange(n - 1)
    x, recorded = jax.lax.scan(body, x, leading)

    # Last step, sigma_next = 0: churn if configured, then Euler to 0, i.e.
    # x_N = x + (0 - sigma_hat) (x - D(x; sigma_hat)) / sigma_hat = D(x; sigma_hat).
    if schedule["churn_std"][-1] > 0:
        x = _churn(step_keys[-1], x, sched["churn_std"][-1], source, n - 1)
    x_final = denoise_fn(x, sched["sigma_hat"][-1]).astype(template.dtype)
    if not record:
        return x_final, None

    states, denoised = recorded
    trajectory = {
        # States at sigma_0 (before churn), sigma_1, ..., sigma_{N-1}, and the sample.
        "x": jnp.concatenate([x_init[None], states, x_final[None].astype(dtype)], axis=0),
        # D(x; sigma_hat_i) at every step: what a forecast would be if stopped there.
        "denoised": jnp.concatenate([denoised, x_final[None].astype(dtype)], axis=0),
        "sigma": jnp.asarray(noise_levels(config), dtype),
        "sigma_hat": sched["sigma_hat"],
    }
    return x_final, trajectory


def sample(
    denoise_fn: DenoiseFn,
    key: jax.Array,
    template: jax.Array,
    config: config_lib.SamplerConfig,
    noise_fn: NoiseFn | None = None,
) -> jax.Array:
    """Draws one sample by DPM-Solver++(2S) with stochastic churn (docs/design.md §5).

    Args:
      denoise_fn: D(x, sigma) -> denoised x, for x like `template` and a scalar
        sigma > 0 (e.g. `preconditioning.make_denoise_fn(raw_fn)`). Called
        2 (N - 1) + 1 times (39 for GenCast), never at sigma = 0.
      key: PRNG key; `init_key, *step_keys = jax.random.split(key, N + 1)`: the
        initial noise uses init_key, the churn noise of step i uses step_keys[i].
      template: array whose shape and dtype the sample takes (its values are
        unused), e.g. [lat, lon, channel] for one GenCast state.
      config: the schedule and churn settings (static: read with NumPy).
      noise_fn: noise_fn(key, template) -> unit-variance noise like template, or a
        noise source (`noise.KeyedNoise`, `noise.RecordedNoise`): iteration i's churn
        field is `source.churn_noise(step_keys[i], x, i)`, the initial one
        `source.initial_noise(init_key, template)`. Default i.i.d. Gaussian; GenCast
        uses spherical white noise.

    Returns:
      The sample, shaped and typed like `template` (the loop itself runs in at
      least float32). Traceable: wrap in `jax.jit` (with `config` static) and
      `jax.vmap` over keys for an ensemble. Noise is drawn 1 + (number of churned
      steps) times (15 for GenCast).
    """
    return _run(denoise_fn, key, template, config, noise_fn, record=False)[0]


def sample_trajectory(
    denoise_fn: DenoiseFn,
    key: jax.Array,
    template: jax.Array,
    config: config_lib.SamplerConfig,
    noise_fn: NoiseFn | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Like `sample`, plus the whole path for plots (same key -> same sample).

    Returns:
      (sample, trajectory) with trajectory
        "x":         [N + 1, *template.shape] states at sigma_0..sigma_{N-1} (before
                     churn), then the sample (sigma_N = 0);
        "denoised":  [N, *template.shape] D(x; sigma_hat_i) at each step (the last
                     one is the sample);
        "sigma":     [N + 1] noise levels incl. the final 0;
        "sigma_hat": [N] churned levels told to the denoiser.
      all in at least float32. Memory: 2N + 1 copies of the template.
    """
    return _run(denoise_fn, key, template, config, noise_fn, record=True)
