"""Spherical white noise: unit variance, flat spectrum, isotropy, layouts, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minigencast import noise
from minigencast import spherical_harmonics as sh

LAT = np.linspace(-90, 90, 33)
LON = np.arange(64) * 5.625
WB2_LAT = -90 + (np.arange(32) + 0.5) * 180 / 32  # WeatherBench-2 64x32: no poles


@pytest.fixture(scope="module")
def samples():
    """400 independent fields on the 33x64 grid: [lat, lon, field]."""
    noise_fn = noise.make_spherical_noise_fn(LAT, LON)
    return np.asarray(noise_fn(jax.random.key(0), jnp.zeros((33, 64, 400))), dtype=np.float64)


def _area_weights(lat):
    w = np.cos(np.deg2rad(lat))
    if lat[0] == -90:  # pole rows stand for a polar cap of half a row's width
        w[[0, -1]] = np.sin(np.deg2rad((lat[1] - lat[0]) / 4)) / 2
    return w / w.sum()


def test_mean_and_variance(samples):
    w = _area_weights(LAT)[:, None, None]
    mean = (samples * w).sum(axis=(0, 1)).mean() / 64
    variance = (samples**2 * w).sum(axis=(0, 1)).mean() / 64
    # ~L^2 = 1024 degrees of freedom per field, 400 fields: sd of the variance ~ 0.003.
    assert abs(mean) < 0.02
    assert variance == pytest.approx(1.0, abs=0.02)


def test_isotropy_polar_equals_equatorial_variance(samples):
    polar = (samples[np.abs(LAT) >= 60] ** 2).mean()
    equatorial = (samples[np.abs(LAT) <= 20] ** 2).mean()
    assert polar == pytest.approx(1.0, abs=0.05)
    assert equatorial == pytest.approx(1.0, abs=0.05)
    # Pointwise variance is 1 at every latitude (addition theorem), not only on average.
    per_row = (samples**2).mean(axis=(1, 2))
    assert np.all(np.abs(per_row - 1) < 0.15)
    # Only m = 0 survives at a pole: the pole row is one value.
    assert np.ptp(samples[0], axis=0).max() < 1e-5 and np.ptp(samples[-1], axis=0).max() < 1e-5


def test_flat_angular_power_spectrum(samples):
    basis = sh.build_basis(LAT, LON)
    power = sh.power_spectrum(basis, np.moveaxis(samples, -1, 0)).mean(axis=0)  # [L]
    big_l = basis.max_degree
    degree = np.arange(big_l)
    # Each degree is a chi-square with (2l + 1) * 400 degrees of freedom around 4 pi / L.
    tolerance = 5 * np.sqrt(2 / ((2 * degree + 1) * 400))
    np.testing.assert_array_less(np.abs(power / (4 * np.pi / big_l) - 1), tolerance)


def test_layouts_dtype_and_no_pole_grid():
    noise_fn = noise.make_spherical_noise_fn(WB2_LAT, LON)
    key = jax.random.key(1)
    single = noise_fn(key, jnp.zeros((32, 64), jnp.bfloat16))
    assert single.shape == (32, 64) and single.dtype == jnp.bfloat16
    stacked = noise_fn(key, jnp.zeros((2, 32, 64, 5)))
    assert stacked.shape == (2, 32, 64, 5) and stacked.dtype == jnp.float32
    fields = np.moveaxis(np.asarray(stacked), -1, 1).reshape(10, -1)
    assert np.abs(np.corrcoef(fields) - np.eye(10)).max() < 0.25  # independent channels
    assert np.asarray(stacked).var() == pytest.approx(1.0, abs=0.15)
    with pytest.raises(ValueError, match="lat, lon"):
        noise_fn(key, jnp.zeros((64, 32)))


def test_deterministic_and_jittable():
    noise_fn = noise.make_spherical_noise_fn(LAT, LON)
    template = jnp.zeros((33, 64, 3))
    a = noise_fn(jax.random.key(7), template)
    np.testing.assert_array_equal(a, noise_fn(jax.random.key(7), template))
    assert not np.allclose(a, noise_fn(jax.random.key(8), template))
    # The basis travels as a pytree leaf: noise_fn can be a jit *argument*.
    jitted = jax.jit(lambda fn, key, t: fn(key, t))(noise_fn, jax.random.key(7), template)
    np.testing.assert_allclose(jitted, a, atol=1e-5)
    leaves = jax.tree_util.tree_leaves(noise_fn)
    assert any(getattr(leaf, "shape", ()) == (32, 33, 32) for leaf in leaves)


def test_convenience_wrapper():
    x = noise.spherical_white_noise(jax.random.key(0), LAT, LON, shape_prefix=(4,))
    assert x.shape == (4, 33, 64)
    y = noise.spherical_white_noise(jax.random.key(0), LAT, LON, num_channels=2)
    assert y.shape == (33, 64, 2)


def test_truncated_noise_is_band_limited_with_unit_variance():
    """With truncation T the fields hold total wavenumbers l <= T only: at every latitude
    the zonal FFT (numpy, independent of the synthesis) has no power above m = T, and
    the area-mean variance is still 1."""
    t = 12
    fields = np.asarray(
        noise.make_spherical_noise_fn(LAT, LON, truncation=t)(
            jax.random.key(1), jnp.zeros((33, 64, 300))
        ),
        dtype=np.float64,
    )
    power = np.abs(np.fft.rfft(fields, axis=1)) ** 2  # [lat, m, field]
    assert power[:, t + 1 :].max() < 1e-9 * power[:, : t + 1].max()
    assert power[:, t].mean() > 1e-3 * power[:, : t + 1].mean()  # m = T itself is present
    variance = (fields**2 * _area_weights(LAT)[:, None, None]).sum(axis=(0, 1)).mean() / 64
    assert variance == pytest.approx(1.0, abs=0.03)


def test_noise_function_caches_per_truncation():
    assert noise.noise_function(LAT, LON, 12) is noise.noise_function(LAT, LON, 12)
    assert noise.noise_function(LAT, LON, 12) is not noise.noise_function(LAT, LON)
