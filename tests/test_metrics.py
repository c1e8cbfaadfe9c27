"""Metrics against independent oracles (`scores`, `properscoring`), brute force and hand cases."""

import numpy as np
import pandas as pd
import properscoring
import pytest
import scores.continuous
import scores.probability
import xarray as xr

from minigencast import metrics

RTOL = 1e-6


def _grid(n_lat=7, n_lon=12):
    return np.linspace(-90, 90, n_lat), np.arange(n_lon) * 360.0 / n_lon


def _random_pair(seed=0, m=9, n_time=4, n_lat=7, n_lon=12, nan_land=False, bias=0.3):
    """Forecast [sample, time, lat, lon] and truth [time, lat, lon]; land (NaN) optional."""
    rng = np.random.default_rng(seed)
    lat, lon = _grid(n_lat, n_lon)
    coords = {"time": np.arange(n_time), "lat": lat, "lon": lon}
    truth = xr.DataArray(rng.normal(size=(n_time, n_lat, n_lon)), dims=list(coords), coords=coords)
    fc = truth.values + bias + rng.normal(size=(m, n_time, n_lat, n_lon)) * 1.3
    forecast = xr.DataArray(fc, dims=["sample", *coords], coords=coords)
    if nan_land:
        land = rng.random((n_lat, n_lon)) < 0.3
        truth = truth.where(~land)
        forecast = forecast.where(~land)
    return forecast, truth


def _w(truth):
    return metrics.area_weights(truth)


# --------------------------------------------------------------------------- weights
def test_latitude_weights_match_gencast_numbers():
    w = metrics.latitude_weights(np.linspace(-90, 90, 181))
    np.testing.assert_allclose(w.mean(), 1.0)
    # Source: graphcast/losses.py:normalized_latitude_weights at 1 deg (docs/design.md §3.4).
    np.testing.assert_allclose([w[0], w[1], w[90]], [0.00345, 0.0276, 1.5795], atol=5e-5)
    # Without poles: plain cos(lat).
    lat = np.linspace(-85, 85, 18)  # offset half a row (10 deg) from the poles
    np.testing.assert_allclose(
        metrics.latitude_weights(lat), np.cos(np.deg2rad(lat)) / np.cos(np.deg2rad(lat)).mean()
    )


def test_latitude_weights_are_cell_areas_on_global_grids():
    # Independent reference: the area of the band between latitudes a < b is
    # 2 pi (sin b - sin a); rows are bounded half-way between grid latitudes and
    # clipped at the poles (the pole rows of a grid with poles are caps).
    for lat in (np.linspace(-90, 90, 181), np.linspace(-90, 90, 33), np.arange(-87.5, 90, 5.0)):
        half = (lat[1] - lat[0]) / 2
        bounds = np.deg2rad(np.clip(np.r_[lat - half, lat[-1] + half], -90, 90))
        area = np.diff(np.sin(bounds))
        np.testing.assert_allclose(metrics.latitude_weights(lat), area / area.mean(), rtol=1e-9)
    # A regional sub-domain falls back to cos(lat).
    lat = np.array([10.0, 20.0, 30.0])
    np.testing.assert_allclose(
        metrics.latitude_weights(lat), np.cos(np.deg2rad(lat)) / np.cos(np.deg2rad(lat)).mean()
    )


def test_latitude_weights_are_cell_areas_summing_to_sphere():
    # With poles, rows are exact cell areas: sum_rows w * (area per unit weight) = 4 pi.
    lat = np.linspace(-90, 90, 33)
    w = metrics.latitude_weights(lat)
    d = np.deg2rad(180 / 32)
    band = 2 * np.pi * 2 * np.cos(np.deg2rad(lat[1:-1])) * np.sin(d / 2)  # interior row areas
    np.testing.assert_allclose(w[1:-1] / w[1:-1].sum() * band.sum(), band, rtol=1e-12)
    cap = 2 * np.pi * (1 - np.cos(d / 2))
    np.testing.assert_allclose(w[0] / w[1] * band[0], cap, rtol=1e-12)


# --------------------------------------------------------------------------- CRPS
def test_crps_hand_case():
    # Ensemble [1, 2, 4] vs 3: mean |x - y| = 4/3; sum_ij |x_i - x_j| = 12, so
    # traditional 4/3 - 12/18 = 2/3 and fair 4/3 - 12/12 = 1/3.
    f = xr.DataArray([1.0, 2.0, 4.0], dims=["sample"])
    y = xr.DataArray(3.0)
    assert metrics.crps(f, y, fair=False).item() == pytest.approx(2 / 3, rel=1e-12)
    assert metrics.crps(f, y, fair=True).item() == pytest.approx(1 / 3, rel=1e-12)
    skill, spread = metrics.crps_skill_spread(f, y, fair=True)
    assert (skill.item(), spread.item()) == pytest.approx((4 / 3, 1.0))


@pytest.mark.parametrize("fair", [True, False])
@pytest.mark.parametrize("nan_land", [False, True])
def test_crps_matches_scores(fair, nan_land):
    forecast, truth = _random_pair(1, nan_land=nan_land)
    method = "fair" if fair else "ecdf"
    ours = metrics.crps(forecast, truth, fair=fair, preserve_dims=["time"])
    ref = scores.probability.crps_for_ensemble(
        forecast, truth, "sample", method=method, preserve_dims=["time"], weights=_w(truth)
    )
    np.testing.assert_allclose(ours.values, ref.values, rtol=RTOL)
    # Unweighted, all dims reduced.
    ours = metrics.crps(forecast, truth, fair=fair, weights=False)
    ref = scores.probability.crps_for_ensemble(forecast, truth, "sample", method=method)
    np.testing.assert_allclose(ours.values, ref.values, rtol=RTOL)


def test_crps_matches_properscoring_pointwise():
    forecast, truth = _random_pair(2, m=17)
    ours = metrics.crps(forecast, truth, fair=False, preserve_dims=["time", "lat", "lon"])
    ref = properscoring.crps_ensemble(truth.values, np.moveaxis(forecast.values, 0, -1))
    np.testing.assert_allclose(ours.values, ref, rtol=RTOL)


@pytest.mark.parametrize("fair", [True, False])
def test_crps_equals_brute_force(fair):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(11, 50))
    y = rng.normal(size=50)
    m = x.shape[0]
    pair = np.abs(x[:, None] - x[None]).sum((0, 1))
    brute = np.abs(x - y).mean(0) - pair / (2 * (m * (m - 1) if fair else m * m))
    ours = metrics.crps(
        xr.DataArray(x, dims=["sample", "p"]),
        xr.DataArray(y, dims=["p"]),
        fair=fair,
        preserve_dims=["p"],
    )
    np.testing.assert_allclose(ours.values, brute, rtol=1e-12)


def test_crps_of_one_member_is_mae():
    forecast, truth = _random_pair(4, m=1)
    ours = metrics.crps(forecast, truth, fair=False)
    mae = scores.continuous.mae(forecast.isel(sample=0), truth, weights=_w(truth))
    np.testing.assert_allclose(ours.values, mae.values, rtol=1e-12)


def test_fair_crps_is_ensemble_size_independent_in_expectation():
    # Gaussian N(0,1) members and truth: E[fair CRPS] = 1/sqrt(pi) for every M; the
    # traditional one is biased upwards by E|X - X'| / (2M) = 1/(M sqrt(pi)).
    rng = np.random.default_rng(5)
    y = xr.DataArray(rng.normal(size=40000), dims=["p"])
    for m in (2, 5):
        f = xr.DataArray(rng.normal(size=(m, 40000)), dims=["sample", "p"])
        assert metrics.crps(f, y).item() == pytest.approx(1 / np.sqrt(np.pi), rel=0.02)
        trad = metrics.crps(f, y, fair=False).item()
        assert trad == pytest.approx((1 + 1 / m) / np.sqrt(np.pi), rel=0.02)


def test_crps_is_lazy_with_dask_and_equal():
    forecast, truth = _random_pair(6, nan_land=True)
    lazy = metrics.crps(
        forecast.chunk({"time": 1, "sample": 3}), truth.chunk({"time": 2}), preserve_dims=["time"]
    )
    assert lazy.chunks is not None
    np.testing.assert_allclose(
        lazy.compute().values,
        metrics.crps(forecast, truth, preserve_dims=["time"]).values,
        rtol=1e-12,
    )


def test_crps_on_datasets():
    forecast, truth = _random_pair(7)
    ds_f = xr.Dataset({"a": forecast, "b": 2 * forecast})
    ds_t = xr.Dataset({"a": truth, "b": 2 * truth, "c": truth})
    out = metrics.crps(ds_f, ds_t)
    assert set(out.data_vars) == {"a", "b"}
    np.testing.assert_allclose(out["b"].item(), 2 * out["a"].item(), rtol=1e-12)


# --------------------------------------------------------------------------- bad inputs
def test_clear_errors():
    forecast, truth = _random_pair(8)
    with pytest.raises(ValueError, match="no ensemble dimension"):
        metrics.crps(forecast.isel(sample=0), truth)
    with pytest.raises(ValueError, match="at least 2 members"):
        metrics.crps(forecast.isel(sample=[0]), truth)
    other = truth.assign_coords(lat=truth.lat + 1.0)
    with pytest.raises(ValueError, match="different grids"):
        metrics.crps(forecast, other)
    with pytest.raises(ValueError, match="different grids"):
        metrics.rmse(forecast, truth.isel(lon=slice(0, 6)))
    with pytest.raises(ValueError, match="mismatched coordinates along `time`"):
        metrics.crps(forecast, truth.assign_coords(time=truth.time + 10))


def test_float32_grid_coordinates_align():
    forecast, truth = _random_pair(23)
    lat = np.linspace(-90, 90, 7)
    lat[1:-1] += 1e-3  # not exactly representable in float32 (a generic grid)
    forecast = forecast.assign_coords(lat=lat)
    truth = truth.assign_coords(lat=lat.astype(np.float32))
    f, t = metrics.align(forecast, truth)
    assert (t["lat"].values == f["lat"].values).all()
    assert np.isfinite(metrics.crps(forecast, truth).item())


def _forecast_layout(seed=9, m=6):
    """A forecast in the forecast-file layout and canonical truth with datetime `time`."""
    rng = np.random.default_rng(seed)
    lat, lon = _grid()
    times = pd.date_range("2020-01-01", periods=10, freq="12h").values
    truth = xr.DataArray(
        rng.normal(size=(10, 7, 12)),
        dims=["time", "lat", "lon"],
        coords={"time": times, "lat": lat, "lon": lon},
    )
    init = times[[0, 2]]
    lead = pd.to_timedelta([12, 24, 36], unit="h").values
    fc = rng.normal(size=(m, 2, 3, 7, 12))
    forecast = xr.DataArray(
        fc,
        dims=["sample", "init_time", "lead_time", "lat", "lon"],
        coords={"init_time": init, "lead_time": lead, "lat": lat, "lon": lon},
    )
    return forecast.assign_coords(valid_time=forecast.init_time + forecast.lead_time), truth


def test_forecast_layout_selects_truth_at_valid_times():
    forecast, truth = _forecast_layout()
    f, t = metrics.align(forecast, truth)
    assert t.dims == ("init_time", "lead_time", "lat", "lon")
    np.testing.assert_array_equal(
        t.isel(init_time=1, lead_time=2).values, truth.isel(time=2 + 3).values
    )
    out = metrics.crps(forecast, truth, preserve_dims=["lead_time"])
    assert out.dims == ("lead_time",)
    with pytest.raises(ValueError, match="mismatched times"):
        metrics.crps(forecast, truth.isel(time=slice(0, 4)))


# --------------------------------------------------------------------------- RMSE, spread/skill
@pytest.mark.parametrize("nan_land", [False, True])
def test_rmse_matches_scores(nan_land):
    forecast, truth = _random_pair(10, nan_land=nan_land)
    ours = metrics.rmse(forecast, truth, preserve_dims=["time"])
    ref = scores.continuous.rmse(
        forecast.mean("sample"), truth, preserve_dims=["time"], weights=_w(truth)
    )
    np.testing.assert_allclose(ours.values, ref.values, rtol=RTOL)


def test_debiased_rmse_and_spread_against_numpy():
    forecast, truth = _random_pair(11, m=5)
    x, y = forecast.values, truth.values
    w = np.broadcast_to(metrics.latitude_weights(truth.lat.values)[None, :, None], y.shape)
    m = x.shape[0]
    se = (x.mean(0) - y) ** 2 - x.var(0, ddof=1) / m
    ours = metrics.rmse(forecast, truth, debiased=True)
    np.testing.assert_allclose(ours.item(), np.sqrt((w * se).sum() / w.sum()), rtol=1e-12)
    spread = np.sqrt((w * x.var(0, ddof=1)).sum() / w.sum())
    np.testing.assert_allclose(metrics.spread(forecast).item(), spread, rtol=1e-12)
    ssr = np.sqrt((m + 1) / m * (w * x.var(0, ddof=1)).sum() / (w * (x.mean(0) - y) ** 2).sum())
    np.testing.assert_allclose(metrics.spread_skill_ratio(forecast, truth).item(), ssr, rtol=1e-12)


def test_reliable_ensemble_has_unit_spread_skill_and_flat_rank_histogram():
    # Truth and members drawn from the same distribution (random per-point centre).
    rng = np.random.default_rng(12)
    m, n = 7, 200000
    centre = rng.normal(size=n) * 3
    members = centre + rng.normal(size=(m, n))
    truth = centre + rng.normal(size=n)
    f = xr.DataArray(members, dims=["sample", "p"])
    y = xr.DataArray(truth, dims=["p"])
    assert metrics.spread_skill_ratio(f, y).item() == pytest.approx(1.0, abs=0.01)
    hist = metrics.rank_histogram(f, y)
    assert hist.dims == ("rank",) and hist.sizes["rank"] == m + 1
    np.testing.assert_allclose(hist.sum(), 1.0)
    np.testing.assert_allclose(hist.values, 1 / (m + 1), atol=0.004)
    # An under-dispersed ensemble (half the spread) is U-shaped and has ratio < 1.
    f_narrow = centre + 0.5 * (members - centre)
    f_narrow = xr.DataArray(f_narrow, dims=["sample", "p"])
    assert metrics.spread_skill_ratio(f_narrow, y).item() < 0.7
    h = metrics.rank_histogram(f_narrow, y).values
    assert h[0] > 2 / (m + 1) and h[-1] > 2 / (m + 1)


# --------------------------------------------------------------------------- rank histogram
@pytest.mark.filterwarnings("ignore:Encountered a NaN:UserWarning")
@pytest.mark.parametrize("nan_land", [False, True])
def test_rank_histogram_matches_scores_including_ties(nan_land):
    forecast, truth = _random_pair(13, m=5, nan_land=nan_land)
    # Round to create ties between members and the truth.
    forecast, truth = forecast.round(0), truth.round(0)
    ours = metrics.rank_histogram(forecast, truth, preserve_dims=["time"])
    ref = scores.probability.rank_histogram(
        forecast, truth, "sample", preserve_dims=["time"], weights=_w(truth)
    )
    np.testing.assert_allclose(ours.transpose(*ref.dims).values, ref.values, rtol=RTOL)


# --------------------------------------------------------------------------- Brier
@pytest.mark.parametrize("fair", [True, False])
@pytest.mark.parametrize("nan_land", [False, True])
def test_brier_matches_scores(fair, nan_land):
    forecast, truth = _random_pair(14, m=8, nan_land=nan_land)
    ours = metrics.brier_score(forecast, truth, 0.5, fair=fair, preserve_dims=["time"])
    ref = scores.probability.brier_score_for_ensemble(
        forecast,
        truth,
        "sample",
        0.5,
        preserve_dims=["time"],
        weights=_w(truth),
        fair_correction=fair,
    )
    np.testing.assert_allclose(ours.values, np.squeeze(ref.values), rtol=RTOL)


def test_brier_with_climatological_thresholds_and_skill():
    forecast, truth = _random_pair(15, m=8, n_time=30, bias=0.0)
    thr = metrics.climatological_thresholds(truth, [0.1, 0.9], dims=["time"])
    assert thr.dims == ("quantile", "lat", "lon")
    np.testing.assert_allclose(thr.sel(quantile=0.9).values, np.quantile(truth.values, 0.9, axis=0))
    bs = metrics.brier_score(forecast, truth, thr.sel(quantile=0.9))
    ref = (
        (
            (
                metrics.event_probability(forecast, thr.sel(quantile=0.9))
                - (truth >= thr.sel(quantile=0.9))
            )
            ** 2
        )
        .weighted(_w(truth))
        .mean()
    )
    np.testing.assert_allclose(bs.item(), ref.item(), rtol=1e-12)
    # Upper-threshold events: exceedance; the quantile dim is kept.
    assert metrics.brier_score(forecast, truth, thr).dims == ("quantile",)
    # A perfect forecast has BSS 1; the climatological base rate itself BSS 0.
    perfect = truth.expand_dims(sample=3)
    assert metrics.brier_skill_score(perfect, truth, thr).values == pytest.approx([1, 1])
    assert metrics.brier_skill_score(forecast, truth, thr.sel(quantile=0.9)).item() < 1
    # Against a reference ensemble: itself gives 0, the perfect forecast's BS is 0 so a
    # reference of climatological members loses to it (BSS = 1).
    same = metrics.brier_skill_score(forecast, truth, thr, reference=forecast)
    np.testing.assert_allclose(same.values, 0.0, atol=1e-12)
    vs = metrics.brier_skill_score(perfect, truth, thr, reference=forecast)
    np.testing.assert_allclose(vs.values, 1.0)


# --------------------------------------------------------------------------- REV
def test_rev_matches_scores():
    forecast, truth = _random_pair(16, m=10, n_time=20, bias=0.0)
    thr = 1.0
    pts = np.arange(1, 11) / 10
    alphas = np.linspace(0.02, 0.98, 13)
    ours = metrics.relative_economic_value(
        forecast, truth, thr, alphas, pts, envelope=False, weights=False
    )
    prob = metrics.event_probability(forecast, thr)
    obs = (truth >= thr).astype(float)
    kw = dict(cost_loss_ratios=alphas, probability_thresholds=pts - 1e-9)
    ref = scores.probability.relative_economic_value(prob, obs, **kw)
    np.testing.assert_allclose(
        ours.transpose("cost_loss_ratio", "probability_threshold").values,
        ref.transpose("cost_loss_ratio", "probability_threshold").values,
        rtol=RTOL,
    )
    env = metrics.relative_economic_value(forecast, truth, thr, alphas, pts, weights=False)
    ref = scores.probability.relative_economic_value(prob, obs, generate_maximum_rev=True, **kw)
    np.testing.assert_allclose(env.values, ref["maximum"].values, rtol=RTOL)
    # Weighted: scores with the same latitude weights.
    env = metrics.relative_economic_value(forecast, truth, thr, alphas, pts)
    ref = scores.probability.relative_economic_value(
        prob, obs, generate_maximum_rev=True, weights=_w(truth), **kw
    )
    np.testing.assert_allclose(env.values, ref["maximum"].values, rtol=RTOL)


def test_rev_of_perfect_forecast_is_one_and_of_climatology_zero():
    forecast, truth = _random_pair(17, m=10, n_time=20)
    alphas = np.linspace(0.05, 0.95, 19)
    thr = 0.8
    perfect = truth.expand_dims(sample=10)
    rev = metrics.relative_economic_value(perfect, truth, thr, alphas)
    np.testing.assert_allclose(rev.values, 1.0, rtol=1e-12)
    # Climatology: every point forecasts the base rate s (here s = 0.3 exactly: 3 of 10
    # members above) and the truth has base rate 0.3 too.
    rng = np.random.default_rng(0)
    obs = xr.DataArray((rng.permutation(1000) < 300).astype(float) * 2, dims=["p"])
    clim = xr.DataArray(
        np.repeat(np.r_[np.zeros(7), 2 * np.ones(3)][:, None], 1000, 1), dims=["sample", "p"]
    )
    rev = metrics.relative_economic_value(clim, obs, 1.0, alphas)
    np.testing.assert_allclose(rev.values, 0.0, atol=1e-12)


# --------------------------------------------------------------------------- pooled CRPS
@pytest.mark.parametrize("nan_land", [False, True])
def test_pooled_crps_against_brute_force(nan_land):
    forecast, truth = _random_pair(18, m=4, n_time=2, n_lat=9, n_lon=16, nan_land=nan_land)
    lat, lon = truth.lat.values, truth.lon.values
    r = 2500.0
    for pooling in ("average", "max"):
        ours = metrics.pooled_crps(
            forecast, truth, [r], pooling=pooling, weights=False, preserve_dims=["time"]
        )
        # Brute force: loop over centres, pool with explicit distances.
        w = metrics.latitude_weights(lat)
        vals = []
        for la in lat:
            for lo in lon:
                d = metrics.great_circle_km(la, lo, lat[:, None], lon[None, :])
                mask = (d <= r) & np.isfinite(truth.values[0])  # land cells left out
                if not mask.any():
                    continue  # an all-land pool is NaN and drops out of the mean
                if pooling == "average":
                    ww = w[:, None] * mask
                    pf = np.nansum(forecast.values * ww, (-2, -1)) / ww.sum()
                    pt = np.nansum(truth.values * ww, (-2, -1)) / ww.sum()
                else:
                    pf = forecast.values[..., mask].max(-1)
                    pt = truth.values[..., mask].max(-1)
                m = pf.shape[0]
                pair = np.abs(pf[:, None] - pf[None]).sum((0, 1))
                vals.append(np.abs(pf - pt).mean(0) - pair / (2 * m * (m - 1)))
        brute = np.mean(vals, axis=0)
        np.testing.assert_allclose(ours.sel(radius_km=r).values, brute, rtol=1e-10)


def test_pooled_crps_zero_radius_is_pointwise_crps():
    # Without pole rows (at a pole all longitudes are the same point, distance 0).
    forecast, truth = _random_pair(19, m=5)
    forecast, truth = forecast.isel(lat=slice(1, -1)), truth.isel(lat=slice(1, -1))
    out = metrics.pooled_crps(forecast, truth, [0.0, 3000.0])
    assert out.dims == ("radius_km",)
    np.testing.assert_allclose(
        out.sel(radius_km=0.0).item(), metrics.crps(forecast, truth).item(), rtol=1e-10
    )


# --------------------------------------------------------------------------- spectra
def test_zonal_power_spectrum_parseval_and_sine():
    lat, lon = _grid(9, 32)
    rng = np.random.default_rng(20)
    x = xr.DataArray(rng.normal(size=(9, 32)), dims=["lat", "lon"], coords={"lat": lat, "lon": lon})
    spec = metrics.power_spectrum(x)
    w = metrics.latitude_weights(lat)
    np.testing.assert_allclose(spec.sum().item(), (w * (x.values**2).mean(1)).sum() / w.sum())
    sine = 3 * np.sin(np.deg2rad(lon) * 5) + 0 * lat[:, None]
    s = metrics.power_spectrum(
        xr.DataArray(sine, dims=["lat", "lon"], coords={"lat": lat, "lon": lon})
    )
    assert int(s.argmax("zonal_wavenumber")) == 5
    np.testing.assert_allclose(s.sel(zonal_wavenumber=5).item(), 4.5)  # mean of (3 sin)^2


def test_spherical_power_spectrum_of_a_single_harmonic():
    # Y_20 ∝ P_2(sin lat) = (3 sin^2 - 1) / 2: all power at degree 2; total = area-mean x^2.
    lat, lon = np.linspace(-90, 90, 33), np.arange(64) * 360 / 64
    s = np.sin(np.deg2rad(lat))[:, None] + 0 * lon
    x = xr.DataArray(
        np.stack([(3 * s**2 - 1) / 2, 2.0 + 0 * s]),
        dims=["sample", "lat", "lon"],
        coords={"lat": lat, "lon": lon},
    )
    spec = metrics.power_spectrum(x, kind="spherical")
    assert spec.dims == ("sample", "degree") and spec.sizes["degree"] == 32
    assert (
        int(spec.isel(sample=0).argmax("degree")) == 2
        and int(spec.isel(sample=1).argmax("degree")) == 0
    )
    exact = [0.2, 4.0]  # mean over the sphere of P_2(sin lat)^2 = 1/5, and of 2^2
    np.testing.assert_allclose(spec.sum("degree").values, exact, rtol=1e-5)
    np.testing.assert_allclose(spec.isel(sample=0).drop_sel(degree=2).values, 0, atol=1e-9)
    with pytest.raises(ValueError, match="kind='zonal'"):  # not silently ignored
        metrics.power_spectrum(x, kind="spherical", lat_range=(-30, 30))


def test_scorecard_relative_difference():
    a = xr.DataArray([1.0, 2.0], dims=["lead_time"])
    b = xr.DataArray([2.0, 2.0], dims=["lead_time"])
    np.testing.assert_allclose(metrics.scorecard(a, b).values, [-0.5, 0.0])


def test_custom_weights_match_scores():
    forecast, truth = _random_pair(21, nan_land=True)
    w = xr.DataArray(np.random.default_rng(0).random((7, 12)), dims=["lat", "lon"])
    ours = metrics.crps(forecast, truth, weights=w, preserve_dims=["time"])
    ref = scores.probability.crps_for_ensemble(
        forecast, truth, "sample", method="fair", preserve_dims=["time"], weights=w
    )
    np.testing.assert_allclose(ours.values, ref.values, rtol=RTOL)


def test_every_metric_stays_lazy_with_dask():
    forecast, truth = _random_pair(22, m=6, nan_land=True)
    lazy_f, lazy_t = forecast.chunk({"time": 2}), truth.chunk({"time": 2})
    calls = {
        "rmse": lambda f, t: metrics.rmse(f, t, preserve_dims=["time"]),
        "rmse_debiased": lambda f, t: metrics.rmse(f, t, debiased=True),
        "ssr": lambda f, t: metrics.spread_skill_ratio(f, t),
        "rank": lambda f, t: metrics.rank_histogram(f, t),
        "brier": lambda f, t: metrics.brier_score(f, t, 0.5, fair=True),
        "rev": lambda f, t: metrics.relative_economic_value(f, t, 0.5, [0.1, 0.3, 0.5]),
        "pooled_avg": lambda f, t: metrics.pooled_crps(f, t, [0.0, 2000.0]),
        "pooled_max": lambda f, t: metrics.pooled_crps(f, t, [2000.0], pooling="max"),
        "spectrum": lambda f, t: metrics.power_spectrum(f),
    }
    for name, fn in calls.items():
        lazy = fn(lazy_f, lazy_t)
        assert lazy.chunks is not None, name
        np.testing.assert_allclose(
            lazy.compute().values, fn(forecast, truth).values, rtol=1e-12, err_msg=name
        )
