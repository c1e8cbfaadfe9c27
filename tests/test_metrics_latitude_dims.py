"""Area weights whatever the latitude dim is called, on a real ERA5 ensemble
(cfgrib's sample, tests/data/real/: 10 members `number`, dims `latitude`/`longitude`)."""

import os

import numpy as np
import properscoring
import pytest
import xarray as xr

from minigencast import metrics

ERA5_NC = os.path.join(os.path.dirname(__file__), "data", "real", "era5-levels-members-3times.nc")


@pytest.fixture(scope="module")
def era5():
    """Members 1..9 as the forecast, the control (member 0) as the truth: ERA5's names."""
    t = xr.open_dataset(ERA5_NC)["t"].load().drop_vars(["step", "valid_time"])
    return t.isel(number=slice(1, None)), t.isel(number=0, drop=True)


def _band_areas(lat_deg, spacing):
    """Exact area of each latitude band [lat - d/2, lat + d/2] clipped at the poles (/ 2 pi)."""
    lo = np.deg2rad(np.clip(lat_deg - spacing / 2, -90, 90))
    hi = np.deg2rad(np.clip(lat_deg + spacing / 2, -90, 90))
    return np.sin(hi) - np.sin(lo)


def _independent_weighted_crps(fc, truth):
    x = np.moveaxis(fc.values, 0, -1)  # [..., members]
    point = properscoring.crps_ensemble(truth.values, x)  # traditional CRPS per point
    w = _band_areas(truth["latitude"].values, 3.0)
    w = w[:, None] * np.ones(truth.sizes["longitude"])  # [latitude, longitude]
    w = np.broadcast_to(w, point.shape)
    return float((point * w).sum() / w.sum()), float(point.mean())


def test_crps_over_latitude_is_the_area_weighted_mean(era5):
    fc, truth = era5
    assert fc.dims[-2:] == ("latitude", "longitude") and fc["latitude"].values[0] == 90
    want, unweighted = _independent_weighted_crps(fc, truth)
    got = float(metrics.crps(fc, truth, ensemble_dim="number", fair=False))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert abs(want - unweighted) > 1e-3 * want  # the weighting matters here
    plain = float(metrics.crps(fc, truth, ensemble_dim="number", fair=False, weights=False))
    np.testing.assert_allclose(plain, unweighted, rtol=1e-5)


def test_same_score_whatever_the_latitude_dim_is_called(era5):
    fc, truth = era5
    ref = float(metrics.crps(fc, truth, ensemble_dim="number"))
    ours = float(
        metrics.crps(
            fc.rename(latitude="lat", longitude="lon"),
            truth.rename(latitude="lat", longitude="lon"),
            ensemble_dim="number",
        )
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-6)
    # A dim the caller names.
    fc_y, truth_y = fc.rename(latitude="y"), truth.rename(latitude="y")
    for da in (fc_y, truth_y):
        da["y"].attrs = {}
    named = float(metrics.crps(fc_y, truth_y, ensemble_dim="number", weights="y"))
    np.testing.assert_allclose(named, ref, rtol=1e-6)
    # Recognised from CF attributes without being named.
    fc_y["y"].attrs["standard_name"] = "latitude"
    np.testing.assert_allclose(
        float(metrics.crps(fc_y, truth_y, ensemble_dim="number")), ref, rtol=1e-6
    )
    with pytest.raises(ValueError, match="names no reduced dim"):
        metrics.crps(fc_y, truth_y, ensemble_dim="number", weights="lat")


def test_rmse_and_spread_weight_latitude_too(era5):
    fc, truth = era5
    mean = fc.mean("number")
    se = ((mean - truth) ** 2).values
    w = np.broadcast_to(_band_areas(truth["latitude"].values, 3.0)[:, None], se.shape[-2:])
    w = np.broadcast_to(w, se.shape)
    want = np.sqrt((se * w).sum() / w.sum())
    got = float(metrics.rmse(fc, truth, ensemble_dim="number", debiased=False))
    np.testing.assert_allclose(got, want, rtol=1e-5)
