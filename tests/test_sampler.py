"""Tests for minigencast.sampler: schedule numbers, call counts, and analytic checks
with the exact denoiser of Gaussian data."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minigencast import config, sampler

GENCAST = config.SamplerConfig()
NO_CHURN = dataclasses.replace(GENCAST, stochastic_churn_rate=0.0)

# The 21 noise levels of GenCast's sampler, from graphcast/samplers_utils.py:noise_schedule
# with SamplerConfig's defaults (docs/design.md §5).
SPEC_LEVELS = [80, 62.0813, 47.7190, 36.3043, 27.3149, 20.3051, 14.8974, 10.7743, 7.6708,
               5.3674, 3.6842, 2.4754, 1.6238, 1.0368, 0.6419, 0.3837, 0.2202, 0.1204,
               0.0622, 0.03, 0]  # fmt: skip


# --------------------------------------------------------------------------
# Schedule.


def test_noise_levels_match_deepmind():
    levels = sampler.noise_levels(GENCAST)
    assert levels.shape == (21,)
    # The spec rounds to 4 decimals (5.3674 is 5.36735..., 0.2202 is 0.22015...).
    np.testing.assert_allclose(levels, SPEC_LEVELS, atol=1.5e-4, rtol=0)
    assert levels[0] == 80.0 and levels[-1] == 0.0
    np.testing.assert_allclose(levels[-2], 0.03, rtol=1e-12)
    assert np.all(np.diff(levels) < 0)
    # Equal steps in sigma^(1/rho) (EDM eq. 5).
    steps = np.diff(levels[:-1] ** (1 / 7))
    np.testing.assert_allclose(steps, steps[0], rtol=1e-9)


def test_churn_values_match_deepmind():
    gammas = sampler.churn_gammas(GENCAST)
    # min(2.5 / 20, sqrt(2) - 1) = 0.125 where sigma >= 0.75: steps 0-13.
    np.testing.assert_allclose(gammas[:14], 0.125)
    np.testing.assert_array_equal(gammas[14:], 0.0)
    sigma_hat = sampler.churned_noise_levels(GENCAST)
    std = sampler.churn_noise_std(GENCAST)
    np.testing.assert_allclose(sigma_hat[0], 90.0)  # first evaluation above the training max 88
    np.testing.assert_allclose(std[0], 43.29, atol=5e-3)  # 1.05 sqrt(90^2 - 80^2)
    np.testing.assert_allclose([sigma_hat[1], std[1]], [69.84, 33.60], atol=5e-3)
    np.testing.assert_allclose([sigma_hat[13], std[13]], [1.1664, 0.5611], atol=5e-5)
    np.testing.assert_array_equal(std[14:], 0.0)
    np.testing.assert_array_equal(sigma_hat[14:], sampler.noise_levels(GENCAST)[14:-1])


def test_churn_rate_is_capped_at_sqrt2_minus_1():
    c = dataclasses.replace(GENCAST, stochastic_churn_rate=100.0)
    np.testing.assert_allclose(sampler.churn_gammas(c)[:14], np.sqrt(2) - 1)
    c = dataclasses.replace(GENCAST, churn_max_noise_level=10.0)
    gammas = sampler.churn_gammas(c)
    levels = sampler.noise_levels(c)[:-1]
    np.testing.assert_array_equal(gammas > 0, (levels >= 0.75) & (levels <= 10.0))


def test_denoiser_noise_levels_are_geometric_midpoints():
    s = sampler.denoiser_noise_levels(GENCAST)
    assert s.shape == (39,) and np.all(s > 0)
    hat = sampler.churned_noise_levels(GENCAST)
    levels = sampler.noise_levels(GENCAST)
    np.testing.assert_allclose(s[0::2], hat)
    np.testing.assert_allclose(s[1::2], np.sqrt(hat[:-1] * levels[1:-1]))
    assert s[-1] == pytest.approx(0.03)


# --------------------------------------------------------------------------
# Call counts, noise_fn, trajectory.


def _recording_denoiser(calls, fn=lambda x, s: x / (1 + s**2)):
    def denoise_fn(x, sigma):
        jax.debug.callback(lambda s: calls.append(float(s)), sigma, ordered=True)
        return fn(x, sigma)

    return denoise_fn


@pytest.mark.parametrize("n", [20, 5, 2])
def test_exactly_two_n_minus_one_denoiser_calls_never_at_zero(n):
    c = dataclasses.replace(GENCAST, num_noise_levels=n)
    calls = []
    out = sampler.sample(_recording_denoiser(calls), jax.random.key(0), jnp.zeros((3, 2)), c)
    jax.block_until_ready(out)
    assert len(calls) == 2 * (n - 1) + 1 == sampler.num_denoiser_calls(c)
    assert min(calls) > 0
    np.testing.assert_allclose(calls, sampler.denoiser_noise_levels(c), rtol=1e-6)
    if n == 20:
        assert len(calls) == 39 and calls[0] == pytest.approx(90.0)


def test_noise_fn_is_used_and_churn_adds_the_configured_std():
    """With D(x) = x every update keeps x, so x_N = sigma_0 eps_0 + sum_i std_i eps_i."""
    ones = lambda key, template: jnp.ones_like(template)
    out = sampler.sample(lambda x, s: x, jax.random.key(0), jnp.zeros((4,)), GENCAST, ones)
    expected = 80.0 + sampler.churn_noise_std(GENCAST).sum()
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_noise_is_drawn_only_for_the_start_and_churned_steps():
    draws = []

    def noise_fn(key, template):
        jax.debug.callback(lambda: draws.append(1), ordered=True)
        return jax.random.normal(key, template.shape, template.dtype)

    out = sampler.sample(lambda x, s: 0.5 * x, jax.random.key(0), jnp.zeros(3), GENCAST, noise_fn)
    jax.block_until_ready(out)
    assert len(draws) == 1 + 14  # x_0, then churn at steps 0-13 only


def test_trajectory_matches_sample_and_has_documented_shapes():
    calls = []
    denoise_fn = _recording_denoiser(calls, lambda x, s: 0.5 * x / (1 + s**2))
    key, template = jax.random.key(3), jnp.zeros((6, 5, 2))
    out = sampler.sample(denoise_fn, key, template, GENCAST)
    final, traj = sampler.sample_trajectory(denoise_fn, key, template, GENCAST)
    np.testing.assert_array_equal(out, final)
    assert traj["x"].shape == (21, 6, 5, 2) and traj["denoised"].shape == (20, 6, 5, 2)
    np.testing.assert_array_equal(traj["x"][-1], final)
    np.testing.assert_array_equal(traj["denoised"][-1], final)
    np.testing.assert_allclose(traj["sigma"], sampler.noise_levels(GENCAST), rtol=1e-6)
    # x_0 = 80 eps: its empirical std is ~80 (60 draws, ~10% standard error).
    assert 55 < float(jnp.std(traj["x"][0])) < 105


def test_sample_keeps_template_shape_and_dtype():
    t = jnp.zeros((2, 3, 4), jnp.bfloat16)
    out = sampler.sample(lambda x, s: x * 0.5, jax.random.key(0), t, GENCAST)
    assert out.shape == t.shape and out.dtype == t.dtype


def test_runs_with_spherical_noise_on_a_lat_lon_channel_template():
    """The forecaster's setting: noise.make_spherical_noise_fn on [lat, lon, channel]."""
    from minigencast import noise

    lat, lon = np.linspace(-90, 90, 13), np.arange(24) * 15.0
    noise_fn = noise.make_spherical_noise_fn(lat, lon)
    template = jnp.zeros((13, 24, 3))
    out, traj = sampler.sample_trajectory(
        lambda x, s: x / (1 + s**2), jax.random.key(0), template, GENCAST, noise_fn
    )
    assert out.shape == template.shape and np.all(np.isfinite(out))
    # Spherical noise is constant along each pole row (only m = 0 survives there).
    pole_row = np.asarray(traj["x"][0][0])  # [lon, channel]
    np.testing.assert_allclose(pole_row, np.broadcast_to(pole_row[:1], pole_row.shape), atol=1e-3)
    assert 40 < float(jnp.std(traj["x"][0])) < 120  # x_0 = 80 eps


# --------------------------------------------------------------------------
# Consistency.


def _nonlinear_denoiser(x, sigma):
    """A smooth, nonlinear stand-in for a trained D (not a valid posterior mean)."""
    return jnp.tanh(x / jnp.sqrt(1.0 + sigma**2)) * 0.8 + 0.1 * jnp.sin(x)


def test_jit_equals_eager():
    key, template = jax.random.key(1), jnp.zeros((4, 3))
    eager = sampler.sample(_nonlinear_denoiser, key, template, GENCAST)
    f = jax.jit(functools.partial(sampler.sample, _nonlinear_denoiser, config=GENCAST))
    np.testing.assert_allclose(f(key, template), eager, rtol=1e-5, atol=1e-6)


def test_vmap_over_keys_equals_loop():
    keys = jax.random.split(jax.random.key(2), 3)
    template = jnp.zeros((4, 3))
    run = jax.jit(lambda k: sampler.sample(_nonlinear_denoiser, k, template, GENCAST))
    batched = jax.vmap(run)(keys)
    looped = jnp.stack([run(k) for k in keys])
    np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-6)
    assert not np.allclose(batched[0], batched[1])  # different keys, different samples


def _k_diffusion_dpmpp_2s(denoise, x, sigmas):
    """DPM-Solver++(2S) written as k-diffusion's `sample_dpmpp_2s_ancestral` (eta = 0).

    Exponential-integrator form in t = -ln(sigma), h = t_next - t, r = 1/2:
      x_2 = (sigma(s)/sigma(t)) x - expm1(-r h) D(x, sigma(t)),   s = t + r h
      x   = (sigma(t_next)/sigma(t)) x - expm1(-h) D(x_2, sigma(s))
    and a plain Euler step x = D(x, sigma) when sigma_next = 0. Float64 NumPy.
    """
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        denoised = denoise(x, sigma)
        if sigma_next == 0:
            x = denoised  # Euler: x + (0 - sigma) (x - denoised) / sigma
            continue
        t, t_next = -np.log(sigma), -np.log(sigma_next)
        h = t_next - t
        s = t + 0.5 * h
        x_2 = (np.exp(-s) / np.exp(-t)) * x - np.expm1(-0.5 * h) * denoised
        denoised_2 = denoise(x_2, np.exp(-s))
        x = (np.exp(-t_next) / np.exp(-t)) * x - np.expm1(-h) * denoised_2
    return x


def test_matches_independent_k_diffusion_form_without_churn():
    eps0 = np.asarray(jax.random.normal(jax.random.key(4), (50,)), np.float64)
    fixed = lambda key, template: jnp.asarray(eps0, template.dtype)
    ours = sampler.sample(_nonlinear_denoiser, jax.random.key(0), jnp.zeros((50,)), NO_CHURN, fixed)
    np_denoise = lambda x, s: np.tanh(x / np.sqrt(1 + s**2)) * 0.8 + 0.1 * np.sin(x)
    levels = (80 ** (1 / 7) + np.linspace(0, 1, 20) * (0.03 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    reference = _k_diffusion_dpmpp_2s(np_denoise, 80.0 * eps0, np.append(levels, 0.0))
    np.testing.assert_allclose(ours, reference, rtol=2e-5, atol=2e-5)


# --------------------------------------------------------------------------
# Analytic: data y ~ N(mu, s^2) per component, exact denoiser D = mu + s^2/(s^2+sigma^2)(x - mu).


def _gaussian_denoiser(mu, s):
    def denoise_fn(x, sigma):
        return mu + s**2 / (s**2 + sigma**2) * (x - mu)

    return denoise_fn


def _closed_form_moments(mu, s, cfg):
    """Exact mean and variance of the sampler's output with the exact Gaussian denoiser.

    Recomputed from the spec (not from sampler's helpers). With z = x - mu every
    step is z <- A z (+ independent churn noise), and D - mu = k(sigma) z with
    k = s^2 / (s^2 + sigma^2), so
      churn:   Var z += (S_noise^2) (sigma_hat^2 - sigma^2)
      2S step: A = q_n + (1 - q_n) k(sigma_mid) (q_m + (1 - q_m) k(sigma_hat)),
               q_m = sigma_mid / sigma_hat, q_n = sigma_next / sigma_hat
      last:    A = k(sigma_hat_{N-1})
    starting from z_0 = sigma_0 eps - mu (mean -mu, variance sigma_0^2).
    """
    n = cfg.num_noise_levels
    q = np.linspace(0, 1, n)
    hi, lo = cfg.max_noise_level ** (1 / cfg.rho), cfg.min_noise_level ** (1 / cfg.rho)
    levels = np.append((hi + q * (lo - hi)) ** cfg.rho, 0.0)
    k = lambda sigma: s**2 / (s**2 + sigma**2)
    mean_z, var_z = -mu, levels[0] ** 2 * np.ones_like(s)
    for i in range(n):
        sigma, sigma_next = levels[i], levels[i + 1]
        churn = cfg.churn_min_noise_level <= sigma <= cfg.churn_max_noise_level
        gamma = min(cfg.stochastic_churn_rate / n, np.sqrt(2) - 1) if churn else 0.0
        sigma_hat = sigma * (1 + gamma)
        var_z = var_z + cfg.noise_level_inflation_factor**2 * (sigma_hat**2 - sigma**2)
        if sigma_next == 0:
            a = k(sigma_hat)
        else:
            sigma_mid = np.sqrt(sigma_hat * sigma_next)
            q_m, q_n = sigma_mid / sigma_hat, sigma_next / sigma_hat
            a = q_n + (1 - q_n) * k(sigma_mid) * (q_m + (1 - q_m) * k(sigma_hat))
        mean_z, var_z = a * mean_z, a**2 * var_z
    return mu + mean_z, var_z


MU = np.array([0.5, -1.0, 2.0, 0.0, 3.0])
S = np.array([0.3, 1.0, 2.0, 0.05, 0.5])


@pytest.mark.parametrize("cfg", [GENCAST, NO_CHURN], ids=["churn", "no_churn"])
def test_gaussian_data_mean_and_variance_match_closed_form(cfg):
    n = 100_000
    denoise_fn = _gaussian_denoiser(jnp.asarray(MU[None], jnp.float32), jnp.asarray(S[None]))
    template = jnp.zeros((n, MU.size), jnp.float32)
    out = np.asarray(sampler.sample(denoise_fn, jax.random.key(5), template, cfg), np.float64)
    mean, var = out.mean(0), out.var(0, ddof=1)
    exp_mean, exp_var = _closed_form_moments(MU, S, cfg)
    # Standard errors of the sample mean and variance of n Gaussian draws.
    se_mean, se_var = np.sqrt(exp_var / n), exp_var * np.sqrt(2 / (n - 1))
    np.testing.assert_array_less(np.abs(mean - exp_mean), 5 * se_mean)
    np.testing.assert_array_less(np.abs(var - exp_var), 5 * se_var)
    # Against the data distribution itself: the sampler's bias is what the closed
    # form says, plus Monte Carlo error. Its sources: 20 second-order steps
    # (variance 2-4% low without churn), the 1.05 noise inflation (with churn the
    # variance ends 5-6% high), the start from zero mean (mean off by ~mu s/80) and
    # the last Euler step at sigma = 0.03 (variance x0.78 for s = 0.05 ~ sigma_min).
    bias = np.abs(exp_var - S**2)
    np.testing.assert_array_less(np.abs(var - S**2), bias + 5 * se_var)
    np.testing.assert_array_less(np.abs(mean - MU), np.abs(exp_mean - MU) + 5 * se_mean)
    wide = S >= 0.3
    np.testing.assert_array_less(bias[wide], 0.07 * S[wide] ** 2)
    np.testing.assert_array_less(np.abs(exp_mean - MU), 0.03 * np.abs(MU) + 1e-12)


def test_gaussian_moments_are_sensitive_to_inflation():
    """The test above can fail: ignoring S_noise = 1.05 shifts the predicted variance
    of the narrowest component by many standard errors."""
    n = 100_000
    _, var_gencast = _closed_form_moments(MU, S, GENCAST)
    _, var_no_inflation = _closed_form_moments(
        MU, S, dataclasses.replace(GENCAST, noise_level_inflation_factor=1.0)
    )
    se_var = var_gencast * np.sqrt(2 / (n - 1))
    assert np.max(np.abs(var_gencast - var_no_inflation) / se_var) > 10


def test_without_churn_converges_to_the_probability_flow_ode():
    """dx/dsigma = (x - D)/sigma has, for Gaussian data, the solution
    x(sigma) - mu = (x(sigma_max) - mu) sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_max^2).
    The sampler (churn off) integrates it from 80 to sigma_min = 0.03 and then takes
    the Euler step D(x; 0.03); its error must shrink ~N^-2 (a second-order solver).
    """
    mu, s = np.array([0.5, -1.0, 2.0]), np.array([0.3, 1.0, 2.0])
    eps0 = np.array([1.0, -0.7, 0.4])
    sigma_max, sigma_min = 80.0, 0.03
    ode = (sigma_max * eps0 - mu) * np.sqrt(s**2 + sigma_min**2) / np.sqrt(s**2 + sigma_max**2)
    exact = mu + s**2 / (s**2 + sigma_min**2) * ode
    errors = []
    with jax.enable_x64(True):
        denoise_fn = _gaussian_denoiser(jnp.asarray(mu), jnp.asarray(s))
        fixed = lambda key, template: jnp.asarray(eps0, template.dtype)
        for n in (10, 20, 40, 80):
            cfg = dataclasses.replace(NO_CHURN, num_noise_levels=n)
            out = sampler.sample(
                denoise_fn, jax.random.key(0), jnp.zeros(3, jnp.float64), cfg, fixed
            )
            errors.append(np.max(np.abs(np.asarray(out) - exact)))
    errors = np.array(errors)
    assert np.all(np.diff(errors) < 0)
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all(orders > 1.5), orders
    assert errors[-1] < 1e-3
