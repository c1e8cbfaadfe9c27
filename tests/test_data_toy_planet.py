"""The toy-planet generator: numerics helpers (fast) and bit-for-bit reproducibility (slow)."""

import os

import numpy as np
import pytest

from minigencast.data import toy_planet


def test_output_grid_includes_poles():
    lat, lon = toy_planet.output_grid(5.625)
    assert lat.shape == (33,) and lon.shape == (64,)
    assert lat[0] == -90 and lat[-1] == 90 and lon[0] == 0 and lon[-1] == 360 - 5.625


def test_log_pressure_interpolation_is_exact_for_linear_profiles():
    rng = np.random.default_rng(0)
    log_p = np.sort(rng.uniform(8, 11.5, size=(6, 4, 5)), axis=0)
    values = 3.0 * log_p + 7.0
    for target in (np.log(25000.0), np.log(85000.0), np.log(110000.0)):  # incl. extrapolation
        got = toy_planet._interp_log_p(log_p, values, target)
        np.testing.assert_allclose(got, 3.0 * target + 7.0, rtol=1e-12)


def test_pole_winds_recover_a_uniform_cross_polar_flow():
    # The uniform Cartesian velocity V = (-1, 0, 0) projected on the local frames:
    # u = V.east = sin(lon), v = V.north = sin(lat) cos(lon). At the poles the frame
    # is degenerate; the ring-mean reconstruction must give u = sin(lon) and
    # v = +-cos(lon), up to the radial part lost on the ring (~cos^2(lat)/2).
    lat, lon = toy_planet.output_grid(5.625)
    lam, phi = np.deg2rad(lon)[None, :], np.deg2rad(lat)[:, None]
    u = np.sin(lam) * np.ones_like(phi)
    v = np.sin(phi) * np.cos(lam)
    u2, v2 = toy_planet._pole_winds(u.copy(), v.copy(), lat, lon)
    tol = np.cos(np.deg2rad(lat[1])) ** 2
    np.testing.assert_allclose(u2[-1], np.sin(lam[0]), atol=tol)
    np.testing.assert_allclose(v2[-1], np.cos(lam[0]), atol=tol)
    np.testing.assert_allclose(u2[0], np.sin(lam[0]), atol=tol)
    np.testing.assert_allclose(v2[0], -np.cos(lam[0]), atol=tol)
    np.testing.assert_array_equal(u2[1:-1], u[1:-1])


def test_land_mask_is_binary_and_partial():
    lat, lon = toy_planet.output_grid(5.625)
    mask = toy_planet.land_sea_mask(lat, lon)
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert 0.1 < mask.mean() < 0.4


def test_year_and_day_phase_match_the_forcings_formula():
    year, day = toy_planet._phase_at(np.datetime64("2000-01-01T12:00"))
    s = (np.datetime64("2000-01-01T12:00", "s") - np.datetime64("1970-01-01", "s")).astype(int)
    assert day == 0.5
    assert abs(year - np.mod(s / 86400 / 365.24219, 1.0)) < 1e-12


def test_too_few_steps_for_splits():
    import xarray

    ds = xarray.Dataset(coords={"time": np.arange(6)})
    with pytest.raises(ValueError, match="at least 18 steps"):
        toy_planet.split_by_time(ds)


@pytest.mark.slow
def test_short_run_is_bit_for_bit_reproducible(tmp_path, monkeypatch):
    """Same command and seed twice -> identical files (manifests equal)."""
    manifests = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        monkeypatch.chdir(tmp_path / run)
        toy_planet.generate("toy", spinup_days=1, num_steps=18, seed=3, progress=False)
        assert toy_planet.verify_manifest("toy") == []
        with open(os.path.join("toy", toy_planet.MANIFEST)) as f:
            manifests.append(f.read())
    assert manifests[0] == manifests[1]
    import xarray

    ds = xarray.load_dataset(tmp_path / "a" / "toy" / "train.nc")
    assert ds.sizes["time"] == 12 and ds.sizes["lat"] == 33
    assert 180 < float(ds["temperature"].min()) and float(ds["temperature"].max()) < 330
    # A different seed gives a different planet.
    (tmp_path / "c").mkdir()
    monkeypatch.chdir(tmp_path / "c")
    toy_planet.generate("toy", spinup_days=1, num_steps=18, seed=4, progress=False)
    with open(os.path.join("toy", toy_planet.MANIFEST)) as f:
        assert f.read() != manifests[0]


def test_spectral_truncation_is_in_the_metadata():
    """The embedded year says T21 (its dinosaur `source`); new files carry the attribute."""
    import xarray

    from minigencast import data

    assert toy_planet.spectral_truncation(data.load_embedded("test")) == 21
    assert toy_planet.spectral_truncation(xarray.Dataset(attrs={"spectral_truncation": 42})) == 42
    assert toy_planet.spectral_truncation(xarray.Dataset(attrs={"source": "ERA5"})) is None
