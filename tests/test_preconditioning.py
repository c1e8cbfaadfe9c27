"""Tests for minigencast.preconditioning: EDM c_*, the wrapper D, the training
noise-level distribution."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minigencast import config, preconditioning

REPO = pathlib.Path(__file__).resolve().parents[1]
# The network helper copies the parity vectors into tests/parity/; the shared folder
# beside the repository is the original.
PARITY_DIRS = [REPO / "tests" / "parity" / "open", REPO.parent / "shared" / "parity" / "open"]


def _normal(seed, shape):
    """Test data from NumPy (eager jax.random compiles per shape: seconds per test)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _parity_dir():
    for d in PARITY_DIRS:
        if (d / "intermediates.npz").exists() and (d / "params.npz").exists():
            return d
    pytest.skip("parity vectors not found in tests/parity/open or ../shared/parity/open")


# --------------------------------------------------------------------------
# EDM coefficients.


def test_c_values_match_edm_formulas():
    sigma = np.array([0.03, 0.3, 1.0, 7.5, 80.0, 90.0])
    np.testing.assert_allclose(preconditioning.c_in(sigma), 1 / np.sqrt(sigma**2 + 1), rtol=1e-6)
    np.testing.assert_allclose(
        preconditioning.c_out(sigma), sigma / np.sqrt(sigma**2 + 1), rtol=1e-6
    )
    np.testing.assert_allclose(preconditioning.c_skip(sigma), 1 / (sigma**2 + 1), rtol=1e-6)
    np.testing.assert_allclose(
        preconditioning.loss_weight(sigma), (sigma**2 + 1) / sigma**2, rtol=1e-6
    )
    # Spot values at sigma = 1: c_in = c_out = 1/sqrt(2), c_skip = 1/2, lambda = 2.
    np.testing.assert_allclose(preconditioning.c_in(1.0), 0.70710678, rtol=1e-6)
    np.testing.assert_allclose(preconditioning.c_out(1.0), 0.70710678, rtol=1e-6)
    np.testing.assert_allclose(preconditioning.c_skip(1.0), 0.5, rtol=1e-7)
    np.testing.assert_allclose(preconditioning.loss_weight(1.0), 2.0, rtol=1e-7)
    # At the first sampler evaluation sigma = 90 the network output dominates.
    np.testing.assert_allclose(preconditioning.c_skip(90.0), 1 / 8101, rtol=1e-6)


def test_edm_identities():
    """sigma_data = 1: c_skip + c_out^2 = 1, c_in^2 (sigma^2 + 1) = 1, lambda c_out^2 = 1."""
    sigma = jnp.geomspace(1e-3, 1e3, 50)
    c_skip, c_out, c_in = (
        f(sigma) for f in (preconditioning.c_skip, preconditioning.c_out, preconditioning.c_in)
    )
    np.testing.assert_allclose(c_skip + c_out**2, 1.0, rtol=1e-6)
    np.testing.assert_allclose(c_in**2 * (sigma**2 + 1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(preconditioning.loss_weight(sigma) * c_out**2, 1.0, rtol=1e-5)


def test_c_skip_is_optimal_linear_shrinkage():
    """For y ~ N(0, 1) the MMSE denoiser is x / (sigma^2 + 1) = c_skip x: F's ideal output is 0."""
    y = _normal(1, (200_000,))
    eps = _normal(2, (200_000,))
    for sigma in (0.1, 1.0, 10.0):
        x = y + sigma * eps
        slope = jnp.sum(x * y) / jnp.sum(x * x)  # least-squares regression of y on x
        np.testing.assert_allclose(slope, preconditioning.c_skip(sigma), atol=0.01)


def test_denoise_wrapper_formula_and_scaling():
    x = _normal(2, (5, 7, 3))
    seen = {}

    def raw_fn(xs, sigma):
        seen["xs"], seen["sigma"] = xs, sigma
        return jnp.tanh(xs) + sigma

    sigma = 2.5
    out = preconditioning.denoise(raw_fn, x, sigma)
    c_in = 1 / np.sqrt(sigma**2 + 1)
    np.testing.assert_allclose(seen["xs"], c_in * x, rtol=1e-6)
    np.testing.assert_allclose(seen["sigma"], sigma)
    expected = x / (sigma**2 + 1) + sigma * c_in * (np.tanh(c_in * x) + sigma)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    denoise_fn = preconditioning.make_denoise_fn(raw_fn)
    np.testing.assert_allclose(denoise_fn(x, sigma), out, rtol=1e-6)


def _small_network(seed):
    """A 2-layer per-channel MLP F(xs, sigma) with sigma entering through ln sigma."""
    params = {"w1": _normal(seed, (4, 8)) * 0.5, "w2": _normal(seed + 1, (8, 4)) * 0.5}

    def raw(params, xs, sigma):
        h = jnp.tanh(xs @ params["w1"] + jnp.log(sigma))
        return h @ params["w2"]

    return params, raw


def test_gradient_through_wrapper_matches_finite_differences():
    params, raw = _small_network(3)
    x = _normal(4, (6, 4))
    y = _normal(5, (6, 4))
    sigma = 1.7

    def loss(p):
        d = preconditioning.denoise(lambda xs, s: raw(p, xs, s), x, sigma)
        return preconditioning.loss_weight(sigma) * jnp.mean((d - y) ** 2)

    grads = jax.grad(loss)(params)
    loss = jax.jit(loss)  # the finite differences: many evaluations, compile once
    h = 1e-2
    for name in ("w1", "w2"):
        for idx in [(0, 0), (1, 3), (3, 2)]:
            bump = jnp.zeros_like(params[name]).at[idx].set(h)
            plus = loss({**params, name: params[name] + bump})
            minus = loss({**params, name: params[name] - bump})
            fd = (plus - minus) / (2 * h)  # central difference, O(h^2) error
            np.testing.assert_allclose(grads[name][idx], fd, rtol=2e-3, atol=2e-4)
    # The gradient with respect to x is also finite and non-zero.
    gx = jax.grad(
        lambda x: jnp.sum(preconditioning.denoise(lambda xs, s: raw(params, xs, s), x, sigma))
    )(x)
    assert np.all(np.isfinite(gx)) and np.any(gx != 0)


def test_denoise_keeps_low_precision_dtype_but_tells_the_network_float32_sigma():
    seen = {}

    def raw_fn(xs, sigma):
        seen["xs"], seen["sigma"] = xs.dtype, sigma.dtype
        return xs

    out = preconditioning.denoise(raw_fn, jnp.ones((2, 3), jnp.bfloat16), 0.03)
    assert out.dtype == jnp.bfloat16 and seen["xs"] == jnp.bfloat16
    assert seen["sigma"] == jnp.float32


def test_wrapper_jit_equals_eager_and_vmap_equals_loop():
    params, raw = _small_network(6)
    xs = _normal(7, (3, 6, 4))
    sigmas = jnp.array([0.05, 1.0, 60.0])
    f = lambda x, s: preconditioning.denoise(lambda a, b: raw(params, a, b), x, s)
    eager = jnp.stack([f(xs[i], sigmas[i]) for i in range(3)])
    np.testing.assert_allclose(jax.vmap(jax.jit(f))(xs, sigmas), eager, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.jit(f)(xs[1], sigmas[1]), eager[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, [0.5, 0.0]])
def test_nonpositive_sigma_raises(bad):
    x = jnp.ones((2, 3))
    with pytest.raises(ValueError, match="sigma must be > 0"):
        preconditioning.denoise(lambda xs, s: xs, x, bad)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        preconditioning.loss_weight(np.asarray(bad))


@pytest.mark.parity
def test_denoise_matches_deepminds_preconditioned_output():
    """D = c_skip x + c_out F with the reference's own F and x (expected_output.nc)."""
    xarray = pytest.importorskip("xarray")
    d = _parity_dir()
    noisy = xarray.load_dataset(d / "noisy_targets.nc")
    raw = xarray.load_dataset(d / "expected_raw_output.nc")
    expected = xarray.load_dataset(d / "expected_output.nc")
    for i, sigma in enumerate(noisy.sigma.values):
        for name in expected.data_vars:
            x = jnp.asarray(noisy[name].isel(sigma=i).values)
            f_ref = jnp.asarray(raw[name].isel(sigma=i).values)
            ours = preconditioning.denoise(lambda xs, s, f=f_ref: f, x, float(sigma))
            ref = expected[name].isel(sigma=i).values
            np.testing.assert_allclose(ours, ref, atol=2e-5 * np.abs(ref).max(), rtol=0)


# --------------------------------------------------------------------------
# Training noise levels.


def test_training_noise_quantiles_match_deepmind():
    cfg = config.NoiseConfig()
    q = preconditioning.noise_level_quantile(np.array([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]), cfg)
    # Source: the quantiles of graphcast/gencast.py:_sample_noise_levels's law with
    # NoiseConfig's defaults (docs/design.md §3.3).
    np.testing.assert_allclose(q, [0.02, 0.086, 0.489, 4.35, 22.97, 53.0, 88.0], rtol=5e-3)


def test_training_noise_samples_follow_the_rho_law():
    """sigma^(1/rho) is uniform on [min^(1/rho), max^(1/rho)]; empirical quantiles match."""
    cfg = config.NoiseConfig()
    n = 200_000
    sigma = np.asarray(preconditioning.sample_noise_levels(jax.random.key(8), cfg, (n,)))
    assert sigma.shape == (n,) and sigma.dtype == np.float32
    assert sigma.min() >= 0.02 * (1 - 1e-6) and sigma.max() <= 88.0 * (1 + 1e-6)
    t = sigma ** (1 / 7)
    lo, hi = 0.02 ** (1 / 7), 88 ** (1 / 7)
    u = (t - lo) / (hi - lo)
    # Kolmogorov-Smirnov distance to U[0, 1]; 1.63/sqrt(n) is the 1% critical value.
    u = np.sort(u)
    ks = np.max(np.abs(u - (np.arange(1, n + 1) - 0.5) / n))
    assert ks < 1.63 / np.sqrt(n)
    np.testing.assert_allclose(np.quantile(sigma, [0.1, 0.5, 0.9]), [0.086, 4.35, 53.0], rtol=0.03)


def test_training_noise_levels_are_independent_per_example():
    cfg = config.NoiseConfig()
    s = preconditioning.sample_noise_levels(jax.random.key(9), cfg, (4,))
    assert len(np.unique(np.asarray(s))) == 4
