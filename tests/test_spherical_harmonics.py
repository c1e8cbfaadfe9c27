"""Real spherical harmonics: Legendre recursion, synthesis, analysis, spectra."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minigencast import spherical_harmonics as sh

GRIDS = {
    "poles_33x64": (np.linspace(-90, 90, 33), np.arange(64) * 5.625),
    "wb2_32x64_no_poles": (-90 + (np.arange(32) + 0.5) * 180 / 32, np.arange(64) * 5.625),
}


def _random_coefficients(rng, batch, big_l):
    upper = np.arange(big_l)[None, :] >= np.arange(big_l)[:, None]  # [m, l]: l >= m
    cos_coeffs = rng.normal(size=(batch, big_l, big_l)) * upper
    sin_coeffs = rng.normal(size=(batch, big_l, big_l)) * upper
    sin_coeffs[:, 0, :] = 0
    return cos_coeffs, sin_coeffs


@pytest.mark.parametrize("big_l", [16, 128])
def test_legendre_orthonormal_under_gauss_quadrature(big_l):
    x, w = np.polynomial.legendre.leggauss(big_l + 1)
    table = sh.legendre_table(x, big_l)  # [m, x, l]
    gram = np.einsum("mil,i,mik->mlk", table, w, table)
    upper = np.arange(big_l)[None, :] >= np.arange(big_l)[:, None]
    expected = np.eye(big_l)[None] * upper[:, :, None]
    np.testing.assert_allclose(gram, expected, atol=1e-12)


def test_legendre_low_degrees_closed_form():
    x = np.linspace(-1, 1, 11)
    t = sh.legendre_table(x, 3)
    np.testing.assert_allclose(t[0, :, 0], np.sqrt(1 / 2))
    np.testing.assert_allclose(t[0, :, 1], np.sqrt(3 / 2) * x)
    np.testing.assert_allclose(t[1, :, 1], np.sqrt(3 / 4) * np.sqrt(1 - x**2))
    np.testing.assert_allclose(t[0, :, 2], np.sqrt(5 / 2) * (3 * x**2 - 1) / 2, atol=1e-14)
    np.testing.assert_allclose(t[2, :, 2], np.sqrt(15 / 16) * (1 - x**2), atol=1e-14)


@pytest.mark.slow
def test_legendre_stable_to_degree_720():
    big_l = 720
    x, w = np.polynomial.legendre.leggauss(big_l + 1)
    table = sh.legendre_table(x, big_l, dtype=np.float32)
    for m in [0, 1, 100, 500, 719]:
        block = table[m][:, m:].astype(np.float64)
        gram = block.T @ (w[:, None] * block)
        np.testing.assert_allclose(gram, np.eye(big_l - m), atol=2e-5)


def test_addition_theorem():
    # sum over m of Y_lm^2 (cos and sin parts) = (2l + 1) / (4 pi) at every latitude.
    basis = sh.build_basis(*GRIDS["poles_33x64"])
    total = (basis.legendre.astype(np.float64) ** 2).sum(axis=0)  # [lat, l]
    expected = (2 * np.arange(basis.max_degree) + 1) / (4 * np.pi)
    np.testing.assert_allclose(total, np.broadcast_to(expected, total.shape), rtol=1e-5)


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_synthesis_analysis_round_trip(grid):
    lat, lon = GRIDS[grid]
    basis = sh.build_basis(lat, lon)
    assert basis.max_degree == 32 and basis.n_lat == len(lat) and basis.n_lon == 64
    cos_coeffs, sin_coeffs = _random_coefficients(np.random.default_rng(0), 3, 32)
    field = sh.synthesise(basis, jnp.float32(cos_coeffs), jnp.float32(sin_coeffs))
    assert field.shape == (3, len(lat), 64) and field.dtype == jnp.float32
    c2, s2 = sh.analyse(basis, np.asarray(field))
    scale = np.abs(cos_coeffs).max()
    np.testing.assert_allclose(c2, cos_coeffs, atol=2e-6 * scale)
    np.testing.assert_allclose(s2, sin_coeffs, atol=2e-6 * scale)


def test_round_trip_where_m1_has_exactly_enough_latitudes():
    # As at 1 deg (181 x 360, L = 180), at 2 deg: 91 latitudes, 89 off the poles, which
    # are exactly the L - 1 = 89 unknowns of order m = 1.
    lat, lon = np.linspace(-90, 90, 91), np.arange(180) * 2.0
    basis = sh.build_basis(lat, lon)
    cos_coeffs, sin_coeffs = _random_coefficients(np.random.default_rng(2), 1, 90)
    field = sh.synthesise(basis, jnp.float32(cos_coeffs), jnp.float32(sin_coeffs))
    c2, s2 = sh.analyse(basis, np.asarray(field))
    np.testing.assert_allclose(c2, cos_coeffs, atol=1e-5)
    np.testing.assert_allclose(s2, sin_coeffs, atol=1e-5)


def test_synthesis_matches_explicit_harmonics_and_jit():
    lat, lon = GRIDS["poles_33x64"]
    basis = sh.build_basis(lat, lon)
    cos_coeffs, sin_coeffs = _random_coefficients(np.random.default_rng(1), 2, 32)
    x = np.sin(np.deg2rad(lat))
    table = sh.legendre_table(x, 32)
    m = np.arange(32)
    norm = np.where(m == 0, 1 / np.sqrt(2 * np.pi), 1 / np.sqrt(np.pi))
    lam = np.deg2rad(lon)
    cos_ml, sin_ml = np.cos(m[:, None] * lam), np.sin(m[:, None] * lam)  # [m, lon]
    expected = np.einsum("mil,bml,m,mj->bij", table, cos_coeffs, norm, cos_ml) + np.einsum(
        "mil,bml,m,mj->bij", table, sin_coeffs, norm, sin_ml
    )
    jitted = jax.jit(sh.synthesise)(basis, jnp.float32(cos_coeffs), jnp.float32(sin_coeffs))
    np.testing.assert_allclose(jitted, expected, atol=2e-5 * np.abs(expected).max())


def test_power_spectrum_of_single_harmonics():
    lat, lon = GRIDS["poles_33x64"]
    basis = sh.build_basis(lat, lon)
    cos_coeffs = np.zeros((2, 32, 32))
    sin_coeffs = np.zeros((2, 32, 32))
    cos_coeffs[0, 3, 7] = 2.0  # l = 7, m = 3, amplitude 2 -> power 4 at l = 7
    sin_coeffs[1, 10, 10] = 1.0
    field = np.asarray(sh.synthesise(basis, jnp.float32(cos_coeffs), jnp.float32(sin_coeffs)))
    power = sh.power_spectrum(basis, field)
    expected = np.zeros((2, 32))
    expected[0, 7], expected[1, 10] = 4.0, 1.0
    np.testing.assert_allclose(power, expected, atol=1e-5)
    # Parseval with unit-norm harmonics: integral of f^2 over the sphere = sum of power.
    weights = np.cos(np.deg2rad(lat))
    weights = weights / weights.sum() * 4 * np.pi / 64
    integral = (field[1] ** 2 * weights[:, None]).sum()
    assert integral == pytest.approx(1.0, rel=0.02)


def test_bad_max_degree():
    with pytest.raises(ValueError, match="max_degree"):
        sh.build_basis(*GRIDS["poles_33x64"], max_degree=40)


def test_synthesis_runs_at_highest_precision_and_cpu_results_are_unchanged(monkeypatch):
    """The Legendre matmuls ask for Precision.HIGHEST (no TF32/bf16 passes on GPU/TPU);
    on CPU that is what the default precision computes, bit for bit."""
    lat, lon = GRIDS["poles_33x64"]
    basis = sh.build_basis(lat, lon)
    cos_coeffs, sin_coeffs = (
        jnp.asarray(c, jnp.float32)
        for c in _random_coefficients(np.random.default_rng(3), 4, basis.max_degree)
    )
    jaxpr = jax.make_jaxpr(sh.synthesise)(basis, cos_coeffs, sin_coeffs).jaxpr
    dots = [e for e in jaxpr.eqns if e.primitive.name == "dot_general"]
    assert len(dots) == 2
    highest = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)
    assert all(e.params["precision"] == highest for e in dots)
    fields = np.asarray(sh.synthesise(basis, cos_coeffs, sin_coeffs))
    # The same synthesis at default precision gives the same bits on CPU.
    monkeypatch.setattr(sh, "HIGHEST", jax.lax.Precision.DEFAULT)
    default = np.asarray(sh.synthesise(basis, cos_coeffs, sin_coeffs))
    if jax.default_backend() == "cpu":
        np.testing.assert_array_equal(fields, default)
    else:  # GPU/TPU: default precision may use TF32/bf16 passes; HIGHEST stays close
        np.testing.assert_allclose(fields, default, atol=1e-2 * np.abs(fields).max())
