"""Tests for minigencast.losses: GenCast's weighted loss (docs/design.md §3.4)."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minigencast import channel_order, config, geometry, losses, preconditioning, variables

Channel = collections.namedtuple("Channel", ["variable", "level"])


def _normal(rng, shape):
    """Test data from NumPy (eager jax.random compiles per shape: seconds per test)."""
    return jnp.asarray(rng.standard_normal(shape), jnp.float32)


# --------------------------------------------------------------------------
# Static weights.


def test_level_weights_for_the_13_levels_match_deepmind():
    w = losses.level_weights(variables.PRESSURE_LEVELS_WEATHERBENCH_13)
    # Source: level / mean(levels) of graphcast/losses.py:weighted_mse_per_level, to 4
    # decimals (docs/design.md §3.4).
    deepmind = [0.1079, 0.2158, 0.3237, 0.4315, 0.5394, 0.6473, 0.8631, 1.0788, 1.2946,
            1.5104, 1.8340, 1.9958, 2.1577]  # fmt: skip
    np.testing.assert_allclose(w, deepmind, atol=1.2e-4)  # truncated, not rounded: 1.99585
    np.testing.assert_allclose(np.mean(variables.PRESSURE_LEVELS_WEATHERBENCH_13), 463.4615, 1e-6)
    np.testing.assert_allclose(w[-1] / w[0], 20.0)


def test_variable_weights():
    for name in variables.LOW_WEIGHT_SURFACE_VARIABLES:
        assert losses.variable_weight(name) == 0.1
    assert len(variables.LOW_WEIGHT_SURFACE_VARIABLES) == 5
    for name in ("2m_temperature",) + variables.ATMOSPHERIC_VARIABLES:
        assert losses.variable_weight(name) == 1.0
    assert losses.variable_weight("2m_temperature", {"2m_temperature": 0.5}) == 0.5


def _toy_channels():
    levels = variables.TOY_PLANET_LEVELS
    chans = [Channel("10m_u_component_of_wind", None), Channel("2m_temperature", None)]
    chans += [Channel("geopotential", lev) for lev in levels]
    chans += [Channel("mean_sea_level_pressure", None)]
    chans += [Channel("temperature", lev) for lev in levels]
    return chans


def test_channel_weights_divide_by_levels_and_apply_variable_weights():
    chans = _toy_channels()
    w = losses.channel_weights(chans)
    lev = np.array(variables.TOY_PLANET_LEVELS, float)
    expected = np.r_[0.1, 1.0, lev / lev.mean() / 3, 0.1, lev / lev.mean() / 3]
    np.testing.assert_allclose(w, expected)
    np.testing.assert_allclose(w.sum(), 0.1 + 1 + 1 + 0.1 + 1)
    w2 = losses.channel_weights(chans, {"temperature": 2.0})
    np.testing.assert_allclose(w2[-3:], 2 * expected[-3:])


def test_task_channel_weights_follow_stacking_order():

    for task, total in (
        (config.GENCAST_TASK, 6 + 1 + 5 * 0.1),
        (config.TOY_PLANET_TASK, 4 + 1 + 3 * 0.1),
    ):
        chans = channel_order.target_channels(task)
        w = losses.task_channel_weights(task)
        assert w.shape == (len(chans),)
        np.testing.assert_allclose(w.sum(), total)
        for c, wc in zip(chans, w, strict=True):
            lw = 1.0 if c.level is None else c.level / np.mean(task.pressure_levels)
            nv = 1 if c.level is None else len(task.pressure_levels)
            np.testing.assert_allclose(wc, losses.variable_weight(c.variable) * lw / nv)
    assert len(channel_order.target_channels(config.GENCAST_TASK)) == 84


def test_per_variable_weights_replace_only_the_variables_they_name():
    task = config.TOY_PLANET_TASK
    chans = channel_order.target_channels(task)
    base = losses.task_channel_weights(task)
    for given in ({"temperature": 2.0}, (("temperature", 2.0), ("10m_u_component_of_wind", 0))):
        named = dict(given)
        w = losses.task_channel_weights(task, given)
        for c, wc, bc in zip(chans, w, base, strict=True):
            default = losses.variable_weight(c.variable)  # 1.0, 0.1 for 10 m winds
            np.testing.assert_allclose(wc, bc * named.get(c.variable, default) / default)
    with pytest.raises(ValueError, match="not a target variable.*temperature"):
        losses.task_channel_weights(task, {"specific_humidity": 1.0})
    with pytest.raises(ValueError, match="finite and >= 0"):
        losses.task_channel_weights(task, {"temperature": -1.0})
    with pytest.raises(ValueError, match="finite and >= 0"):
        losses.task_channel_weights(task, {"temperature": float("nan")})


# --------------------------------------------------------------------------
# The loss itself.


def _random_dicts(seed, batch, levels, lat, lon):
    names_surface = ["10m_u_component_of_wind", "2m_temperature", "total_precipitation_12hr"]
    names_atmos = ["geopotential", "temperature"]
    rng = np.random.default_rng(seed)
    pred, targ = {}, {}
    for name in names_surface:
        pred[name] = _normal(rng, (batch, len(lat), len(lon)))
        targ[name] = _normal(rng, (batch, len(lat), len(lon)))
    for name in names_atmos:
        pred[name] = _normal(rng, (batch, len(levels), len(lat), len(lon)))
        targ[name] = _normal(rng, (batch, len(levels), len(lat), len(lon)))
    return pred, targ


def _stack(d, levels):
    """{name: [B, [level,] lat, lon]} -> ([B, lat, lon, C], channels)."""
    arrays, chans = [], []
    for name, a in d.items():
        if a.ndim == 4:
            arrays += [a[:, i] for i in range(a.shape[1])]
            chans += [Channel(name, lev) for lev in levels]
        else:
            arrays.append(a)
            chans.append(Channel(name, None))
    return jnp.stack(arrays, axis=-1), chans


def _numpy_reference_loss(pred, targ, sigma, lat, levels, weights=None):
    """DeepMind's per-variable loss written out in NumPy from the formula alone.

    loss = lambda(sigma) sum_v w_v mean_(level, lat, lon)(w_lat w_lev (D - y)^2), with
    w_lat the cell areas (mean 1), w_lev = level / mean(levels), w_v = weights[v] for
    the variables `weights` names, else 0.1 for the five extra surface variables and 1
    for the rest, lambda = (sigma^2 + 1) / sigma^2 (docs/design.md §3.4;
    graphcast/losses.py:weighted_mse_per_level, graphcast/gencast.py:GenCast.loss).
    """
    half = (lat[1] - lat[0]) / 2
    bounds = np.deg2rad(np.clip(np.r_[lat - half, lat[-1] + half], -90, 90))
    w_lat = np.diff(np.sin(bounds))
    w_lat = w_lat / w_lat.mean()
    w_lev = np.asarray(levels, np.float64) / np.mean(levels)
    low = {"10m_u_component_of_wind", "10m_v_component_of_wind", "mean_sea_level_pressure"}
    low |= {"sea_surface_temperature", "total_precipitation_12hr"}
    total = 0.0
    for name in pred:
        e = (np.asarray(pred[name], np.float64) - np.asarray(targ[name], np.float64)) ** 2
        e = e * w_lat[:, None]
        if e.ndim == 4:  # [B, level, lat, lon]
            e = e * w_lev[None, :, None, None]
        w_v = (weights or {}).get(name, 0.1 if name in low else 1.0)
        total = total + w_v * e.reshape(e.shape[0], -1).mean(axis=1)
    sigma = np.asarray(sigma, np.float64)
    return (sigma**2 + 1) / sigma**2 * total


def test_stacked_and_per_variable_losses_match_a_numpy_reference():
    lat, lon, levels = np.linspace(-90, 90, 7), np.arange(0, 360, 30.0), (100, 500, 850, 1000)
    pred, targ = _random_dicts(0, 3, levels, lat, lon)
    sigma = jnp.array([0.05, 1.0, 40.0])
    expected = _numpy_reference_loss(pred, targ, sigma, lat, levels)
    # jit: one compilation instead of one per eager op (jit == eager is tested below).
    per_variable_form = jax.jit(lambda p, t, s: losses.weighted_loss_dict(p, t, s, lat, levels))(
        pred, targ, sigma
    )
    np.testing.assert_allclose(per_variable_form, expected, rtol=1e-5)
    p_st, chans = _stack(pred, levels)
    t_st, _ = _stack(targ, levels)
    w_lat, w_c = geometry.latitude_weights(lat), losses.channel_weights(chans)
    ours = jax.jit(lambda p, t, s: losses.weighted_loss(p, t, s, w_lat, w_c))(p_st, t_st, sigma)
    assert ours.shape == (3,)
    np.testing.assert_allclose(ours, expected, rtol=1e-5)
    # Overridden per-variable weights: both forms against the reference written out.
    weights = {"temperature": 2.5, "10m_u_component_of_wind": 1.0}
    expected_w = _numpy_reference_loss(pred, targ, sigma, lat, levels, weights)
    w_c2 = losses.channel_weights(chans, weights)
    ours = jax.jit(lambda p, t, s: losses.weighted_loss(p, t, s, w_lat, w_c2))(p_st, t_st, sigma)
    np.testing.assert_allclose(ours, expected_w, rtol=1e-5)
    per_variable_form = jax.jit(
        lambda p, t, s: losses.weighted_loss_dict(p, t, s, lat, levels, weights)
    )(pred, targ, sigma)
    np.testing.assert_allclose(per_variable_form, expected_w, rtol=1e-5)
    # Per-variable diagnostics recombine into the total.
    per_var = jax.jit(lambda p, t: losses.per_variable_losses(p, t, w_lat, chans))(p_st, t_st)
    total = sum(losses.variable_weight(n) * v for n, v in per_var.items())
    np.testing.assert_allclose(preconditioning.loss_weight(sigma) * total, expected, rtol=1e-5)


def test_loss_hand_computed_single_pixel_channels():
    """Two rows (no poles at +-45), one lon, two surface channels: every number by hand."""
    lat = np.array([-45.0, 45.0])  # w_lat = [1, 1]
    d = jnp.array([[[1.0, 2.0]], [[0.0, 0.0]]])  # [lat=2, lon=1, C=2]
    y = jnp.zeros_like(d)
    chans = [Channel("2m_temperature", None), Channel("10m_u_component_of_wind", None)]
    loss = losses.weighted_loss(
        d, y, 1.0, geometry.latitude_weights(lat), losses.channel_weights(chans)
    )
    # mse per channel = [1/2, 4/2]; weights [1, 0.1]; lambda(1) = 2.
    np.testing.assert_allclose(loss, 2 * (0.5 + 0.1 * 2.0), rtol=1e-6)


def test_expected_loss_of_the_exact_gaussian_denoiser_matches_closed_form():
    """y_c ~ N(mu_c, s_c^2) i.i.d. per pixel; x = y + sigma eps; D = mu + s^2/(s^2+sigma^2)(x-mu).

    D - y has variance s^2 sigma^2 / (s^2 + sigma^2) (the posterior variance), the
    latitude weights average to 1, so E[loss] = sum_c w_c s_c^2 (sigma^2 + 1) / (s_c^2 + sigma^2).
    For unit-variance data this is sum_c w_c at every sigma: lambda makes the
    optimum's loss flat in sigma.
    """
    lat, lon = np.linspace(-90, 90, 19), np.arange(0, 360, 10.0)
    chans = [Channel("2m_temperature", None), Channel("mean_sea_level_pressure", None)]
    chans += [Channel("temperature", lev) for lev in (250, 500, 850)]
    mu = jnp.array([0.3, -1.0, 0.0, 2.0, 0.5]).reshape(1, 1, 1, 5)
    s = jnp.array([1.0, 0.5, 2.0, 1.0, 0.2]).reshape(1, 1, 1, 5)
    w_lat, w_c = geometry.latitude_weights(lat), losses.channel_weights(chans)
    batch = 64
    shape = (batch, lat.size, lon.size, len(chans))

    @jax.jit
    def per_example_loss(key, sigma):
        k1, k2 = jax.random.split(key)
        y = mu + s * jax.random.normal(k1, shape)
        x = y + sigma * jax.random.normal(k2, shape)
        denoised = mu + s**2 / (s**2 + sigma**2) * (x - mu)
        return losses.weighted_loss(denoised, y, jnp.full((batch,), sigma), w_lat, w_c)

    for i, sigma in enumerate((0.05, 1.0, 30.0)):
        per_example = np.asarray(per_example_loss(jax.random.key(i), sigma), np.float64)
        s2 = np.asarray(s, np.float64).ravel() ** 2
        expected = np.sum(w_c * s2 * (sigma**2 + 1) / (s2 + sigma**2))
        se = per_example.std(ddof=1) / np.sqrt(batch)
        assert abs(per_example.mean() - expected) < 5 * se, (sigma, per_example.mean(), expected)
        assert se < 0.02 * expected  # the check is sharp enough to see a 10% error


def test_loss_jit_equals_eager_and_vmap_equals_loop():
    lat = np.linspace(-90, 90, 5)
    chans = _toy_channels()
    w_lat, w_c = geometry.latitude_weights(lat), losses.channel_weights(chans)
    rng = np.random.default_rng(4)
    d = _normal(rng, (4, 5, 8, len(chans)))
    y = _normal(rng, d.shape)
    sigma = jnp.array([0.1, 0.7, 3.0, 80.0])
    f = lambda d, y, s: losses.weighted_loss(d, y, s, w_lat, w_c)
    eager = f(d, y, sigma)
    np.testing.assert_allclose(jax.jit(f)(d, y, sigma), eager, rtol=1e-6)
    f_one = jax.jit(f)
    looped = jnp.stack([f_one(d[i], y[i], sigma[i]) for i in range(4)])
    np.testing.assert_allclose(jax.vmap(f)(d, y, sigma), looped, rtol=1e-6)
    np.testing.assert_allclose(eager, looped, rtol=1e-6)


def test_loss_gradient_through_wrapper_matches_finite_differences():
    lat = np.linspace(-90, 90, 5)
    chans = [
        Channel("2m_temperature", None),
        Channel("temperature", 500),
        Channel("temperature", 850),
    ]
    w_lat, w_c = geometry.latitude_weights(lat), losses.channel_weights(chans)
    rng = np.random.default_rng(5)
    w = _normal(rng, (3, 3)) * 0.5
    y = _normal(rng, (5, 4, 3))
    sigma = 2.0
    x = y + sigma * _normal(rng, y.shape)

    def loss(w):
        denoised = preconditioning.denoise(lambda xs, s: jnp.tanh(xs @ w) * jnp.log1p(s), x, sigma)
        return losses.weighted_loss(denoised, y, sigma, w_lat, w_c)

    g = jax.grad(loss)(w)
    loss = jax.jit(loss)  # the finite differences: many evaluations, compile once
    h = 1e-2
    for idx in [(0, 0), (1, 2), (2, 1)]:
        e = jnp.zeros_like(w).at[idx].set(h)
        fd = (loss(w + e) - loss(w - e)) / (2 * h)
        np.testing.assert_allclose(g[idx], fd, rtol=3e-3, atol=1e-4)


def test_loss_rejects_nonpositive_sigma_and_shape_mismatch():
    lat = np.array([-45.0, 45.0])
    d = jnp.ones((2, 1, 1))
    chans = [Channel("2m_temperature", None)]
    w_lat, w_c = geometry.latitude_weights(lat), losses.channel_weights(chans)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        losses.weighted_loss(d, d, 0.0, w_lat, w_c)
    with pytest.raises(ValueError, match="differ"):
        losses.weighted_loss(d, jnp.ones((2, 1, 2)), 1.0, w_lat, w_c)
