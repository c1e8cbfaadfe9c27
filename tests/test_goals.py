"""The goals' numbers against a direct FFT, and MET / NOT MET on forecasts built to pass or fail."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from minigencast import goals

N_LAT, N_LON = 19, 48  # 10-deg rows with poles; k up to 24 covers both goal bands
STEP = np.timedelta64(12, "h")


def red_truth(n_time=16, seed=0):
    """Canonical truth of the goal variables: random waves with power ~ k^-3 up to k = 24."""
    rng = np.random.default_rng(seed)
    lat = np.linspace(-90, 90, N_LAT)
    lon = np.arange(N_LON) * 360.0 / N_LON
    la, lo = np.deg2rad(lat)[:, None], np.deg2rad(lon)[None, :]

    def field(*extra):
        out = np.zeros((n_time, *extra, N_LAT, N_LON))
        for k in range(1, 25):
            amp = rng.normal(size=(n_time, *extra, 1, 1)) * k**-1.5
            phase = rng.uniform(0, 2 * np.pi, size=(n_time, *extra, N_LAT, 1))
            out += amp * np.cos(k * lo + phase) * np.cos(la)
        return 10 + out

    times = pd.date_range("2020-01-01", periods=n_time, freq="12h").values
    lev = ("time", "level", "lat", "lon")
    return xr.Dataset(
        {
            "geopotential": (lev, field(2)),
            "temperature": (lev, field(2)),
            "u_component_of_wind": (lev, field(2)),
            "2m_temperature": (("time", "lat", "lon"), field()),
        },
        coords={"time": times, "level": [500, 850], "lat": lat, "lon": lon},
    )


def at_valid_times(truth, name, inits, lead):
    """[init, lead, (level,) lat, lon] NumPy array of the truth at init + lead."""
    return np.stack([np.stack([truth[name].sel(time=i + lt).values for lt in lead]) for i in inits])


def make_forecast(truth, members_fn, inits=(1, 3), lead_steps=(1, 2, 4), num_members=3):
    """Forecast layout whose member m is members_fn(truth at the valid times, m)."""
    init = truth["time"].values[list(inits)]
    lead = np.asarray(lead_steps) * STEP
    out = {}
    for name, da in truth.data_vars.items():
        x = at_valid_times(truth, name, init, lead)
        members = np.stack([members_fn(x, m) for m in range(num_members)])
        out[name] = (("sample", "init_time", "lead_time", *da.dims[1:]), members)
    ds = xr.Dataset(
        out,
        coords={
            "sample": np.arange(num_members),
            "init_time": init,
            "lead_time": lead,
            "level": truth["level"],
            "lat": truth["lat"],
            "lon": truth["lon"],
        },
    )
    return ds.assign_coords(valid_time=ds["init_time"] + ds["lead_time"])


def _direct_spectra(x):
    """[..., lat, lon] -> [..., k] zonal power by a full complex FFT, one-sided, averaged
    over |lat| <= 60 with cos(lat) weights (a regional band's cell areas)."""
    lat = np.linspace(-90, 90, N_LAT)
    band = np.abs(lat) <= 60
    c = np.fft.fft(x[..., band, :], axis=-1) / N_LON
    p = np.abs(c) ** 2
    half = N_LON // 2
    one_sided = np.concatenate(
        [p[..., :1], p[..., 1:half] + p[..., :half:-1], p[..., half : half + 1]], axis=-1
    )
    w = np.cos(np.deg2rad(lat[band]))
    return np.einsum("...lk,l->...k", one_sided, w / w.sum())


def test_spectral_numbers_match_a_direct_fft():
    truth = red_truth()
    rng = np.random.default_rng(1)
    fc = make_forecast(truth, lambda x, m: x + 0.05 * rng.standard_normal(x.shape))
    numbers = goals.spectral_numbers(goals.zonal_spectra(fc, truth))
    assert set(numbers) == {"z500", "t850", "t2m", "u850"}
    for short, name, level in [("z500", "geopotential", 0), ("t2m", "2m_temperature", None)]:
        x = fc[name].values  # [sample, init, lead, (level,) lat, lon]
        y = at_valid_times(truth, name, fc["init_time"].values, fc["lead_time"].values)
        if level is not None:
            x, y = x[:, :, :, level], y[:, :, level]
        members = _direct_spectra(x).mean((0, 1))[1:]  # [lead, k], leads 24 and 48 h
        tr = _direct_spectra(y).mean(0)[1:]
        r = members / tr
        got = numbers[short]
        assert got["lead_hours"] == [24.0, 48.0]  # 12 h is outside 1-5 days
        np.testing.assert_allclose(got["ratio_k1_16"], [r[:, 1:17].min(), r[:, 1:17].max()])
        np.testing.assert_allclose(got["ratio_k17_21"], [r[:, 17:22].min(), r[:, 17:22].max()])
        share_m = members[:, 17:].sum(-1) / members[:, 1:].sum(-1)
        share_t = tr[:, 17:].sum(-1) / tr[:, 1:].sum(-1)
        np.testing.assert_allclose(got["share_above_k16"], share_m.max())
        np.testing.assert_allclose(got["truth_share_above_k16"], share_t.max())
        np.testing.assert_allclose(got["share_factor"], (share_m / share_t).max())


def test_a_copy_of_the_truth_meets_the_goals_and_small_scale_noise_fails_them():
    truth = red_truth(seed=2)
    copy = make_forecast(truth, lambda x, m: x)
    # A wrong but spectrally perfect forecast: the truth rotated in longitude.
    rotated = make_forecast(truth, lambda x, m: np.roll(x, 5 * (m + 1), axis=-1))
    rng = np.random.default_rng(3)

    def small_scale_noise(x, m):  # white noise kept at k >= 17 only
        c = np.fft.rfft(rng.standard_normal(x.shape), axis=-1)
        c[..., :17] = 0
        return x + 0.1 * np.fft.irfft(c, n=N_LON, axis=-1)

    noisy = make_forecast(truth, small_scale_noise)
    for fc, met in [(copy, True), (rotated, True), (noisy, False)]:
        report = goals.check(goals.spectral_numbers(goals.zonal_spectra(fc, truth)), {})
        assert report["spectra_k1_16"]["met"] is True  # no noise at k <= 16
        assert report["spectra_k17_21"]["met"] is met
        assert report["spectra_share_above_k16"]["met"] is met
        assert report["dispersion"]["met"] is None and report["all_met"] is False
    numbers = goals.spectral_numbers(goals.zonal_spectra(copy, truth))
    np.testing.assert_allclose(numbers["z500"]["ratio_k17_21"], [1.0, 1.0])
    assert numbers["z500"]["share_factor"] == pytest.approx(1.0)


def _scores(ratios):
    return {"z500": {str(h): {"spread_skill": r} for h, r in ratios.items()}}


def test_dispersion_goal_at_every_lead_of_one_to_five_days():
    good = _scores({12: 0.5, 24: 0.86, 60: 1.0, 120: 1.14, 132: 3.0})  # 12, 132 h: not judged
    numbers = goals.dispersion_numbers(good)
    assert numbers == {"z500": {"lead_hours": [24.0, 60.0, 120.0], "spread_skill": [0.86, 1.14]}}
    assert goals.check({}, numbers)["dispersion"]["met"] is True
    bad = goals.check({}, goals.dispersion_numbers(_scores({24: 1.0, 36: 0.84, 48: 1.0})))
    assert bad["dispersion"]["met"] is False
    assert bad["dispersion"]["variables"]["z500"] == {"value": [0.84, 1.0], "met": False}


def test_report_is_json_and_the_text_says_met_or_not(capsys):
    truth = red_truth(seed=4)
    fc = make_forecast(truth, lambda x, m: x)
    dispersion = goals.dispersion_numbers(
        {"z500": {"24": {"spread_skill": 1.0}}, "t850": {"24": {"spread_skill": 1.2}}}
    )
    report = goals.check(goals.spectral_numbers(goals.zonal_spectra(fc, truth)), dispersion)
    assert json.loads(json.dumps(report)) == report
    assert set(report) == {
        "spectra_k1_16",
        "spectra_k17_21",
        "spectra_share_above_k16",
        "dispersion",
        "lead_hours",
        "all_met",
    }
    text = goals.text(report)
    assert "NOT MET" in text and "t850" in text and "all goals: NOT MET" in text
    assert "3 init times" in goals.text(report, cases="3 init times")
    # No lead within 1-5 days: nothing is judged, nothing is claimed.
    short = make_forecast(truth, lambda x, m: x, lead_steps=(1,))
    empty = goals.check(goals.spectral_numbers(goals.zonal_spectra(short, truth)), {})
    assert empty["spectra_k1_16"]["met"] is None and not empty["all_met"]
    assert "no lead in range" in goals.text(empty)


def test_spectra_figure_reports_the_goal_numbers(tmp_path):
    from minigencast import figures

    truth = red_truth(seed=5)
    fc = make_forecast(truth, lambda x, m: np.roll(x, 3 * (m + 1), axis=-1))
    res = figures.spectra(fc, truth, None, str(tmp_path))
    assert res.numbers["goals"] == goals.spectral_numbers(goals.zonal_spectra(fc, truth))
    assert "spectra_k17_21 MET" in res.caption
    with open(res.png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_variables_or_levels_the_forecast_lacks_are_skipped():
    truth = red_truth(seed=6).sel(level=[500])
    fc = make_forecast(truth, lambda x, m: x).drop_vars("2m_temperature")
    assert set(goals.zonal_spectra(fc, truth)) == {"z500"}  # no t850, u850 (850 hPa) or t2m
