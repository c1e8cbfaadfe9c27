"""The spread correction (eqs. (1), (2) of spread_correction.py) and its calibration."""

import numpy as np
import pytest
import synthetic_data
import xarray

from minigencast import (
    arrays,
    calibration,
    evaluation,
    forecast,
    loader,
    metrics,
    spectral_filter,
    spread_correction,
)

LAT = np.linspace(-90, 90, 9)


def test_correction_keeps_the_mean_and_scales_each_leads_spread():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3, 9, 16, 2))  # [I, S, K, lat, lon, C]
    factors = np.array([[0.5, 2.0], [1.0, 3.0], [1.5, 0.0]])  # leads 0..2 of the model
    out = spread_correction.apply(factors, x, first_step=1)  # this chunk holds leads 1..3
    np.testing.assert_allclose(out.mean(1), x.mean(1), atol=1e-12)
    dev, dev_in = out - out.mean(1, keepdims=True), x - x.mean(1, keepdims=True)
    # Lead index 1 -> factors[1], 2 -> factors[2], 3 (past the last) -> factors[2] again.
    for k, a in enumerate([factors[1], factors[2], factors[2]]):
        np.testing.assert_allclose(dev[:, :, k], a * dev_in[:, :, k], atol=1e-12)
    one_member = x[:, :1]
    np.testing.assert_array_equal(spread_correction.apply(factors, one_member, 0), one_member)


def _spread_skill(members, truth, lat):
    """metrics.spread_skill_ratio per lead and channel, cos(latitude)-weighted: [L, C]."""
    dims = ("init", "lead", "lat", "lon", "channel")
    fc = xarray.DataArray(members, dims=("sample",) + dims, coords={"lat": lat})
    tr = xarray.DataArray(truth, dims=dims, coords={"lat": lat})
    weights = np.cos(np.deg2rad(fc["lat"]))
    ratio = metrics.spread_skill_ratio(fc, tr, weights=weights, preserve_dims=["lead", "channel"])
    return ratio.transpose("lead", "channel").values


def test_spread_skill_equals_the_metrics_module_and_is_one_when_truth_is_a_member():
    rng = np.random.default_rng(1)
    members = rng.standard_normal((4, 3, 2, 9, 16, 2)) * np.array([1.0, 3.0])
    truth = rng.standard_normal((3, 2, 9, 16, 2))
    ours = spread_correction.spread_skill(members, truth, LAT)
    np.testing.assert_allclose(ours, _spread_skill(members, truth, LAT), rtol=1e-10)
    # A truth drawn from the members' distribution: the debiased ratio is 1 in expectation.
    many = rng.standard_normal((5, 400, 1, 9, 16, 1))
    ratio = spread_correction.spread_skill(many, rng.standard_normal((400, 1, 9, 16, 1)), LAT)
    assert abs(float(ratio[0, 0]) - 1) < 0.02


@pytest.fixture(scope="module")
def tiny():
    return synthetic_data.forecast_setup(num_times=12)


def _frames(fc, task, shape):
    flat = fc.stack(time=["sample", "init_time", "lead_time"]).reset_index("time", drop=True)
    return arrays.frames_from_dataset(flat, task).reshape(shape)


def test_calibration_makes_the_filtered_corrected_spread_match_the_error(tiny):
    cfg, ds, stats, params = tiny
    task = cfg.task_config
    md = {"lat": ds["lat"].values.tolist(), "lon": ds["lon"].values.tolist()}
    gains, factors = calibration.calibrate(
        params, cfg, ds, stats, md, num_inits=3, num_members=3, num_steps=2, progress=False
    )
    n = len(spectral_filter.channel_names(task))
    assert gains.shape == (2, ds.sizes["lat"], ds.sizes["lon"] // 2 + 1, n)
    assert factors.shape == (2, n) and np.all(factors >= 1)
    # Brute force (metrics.spread_skill_ratio): the raw forecast filtered with the gains has
    # ratio r; corrected with the factors, max(r, 1) at every lead and channel.
    inits = evaluation.choose_init_times(ds["time"].values, 3, 2)
    fc = forecast.run(params, cfg, ds, stats, inits, 2, 3, metadata=md, progress=False)
    shape = (3, 3, 2, ds.sizes["lat"], ds.sizes["lon"], n)
    raw = _frames(fc, task, shape)
    valid = (inits[:, None] + np.array([1, 2])[None] * np.timedelta64(12, "h")).ravel()
    truth = arrays.frames_from_dataset(ds.sel(time=valid), task).reshape(shape[1:])
    filtered = spectral_filter.filter_leads(gains, raw)
    corrected = np.moveaxis(spread_correction.apply(factors, np.moveaxis(filtered, 0, 1), 0), 1, 0)
    before = _spread_skill(filtered, truth, ds["lat"].values)
    assert np.any(before < 1)  # the case exercises the correction
    ratio = _spread_skill(corrected, truth, ds["lat"].values)
    np.testing.assert_allclose(ratio, np.maximum(before, 1.0), rtol=1e-6)


def test_factors_come_from_the_spread_span_and_the_gains_from_the_training_span(tiny):
    cfg, ds, stats, params = tiny
    task = cfg.task_config
    md = {"lat": ds["lat"].values.tolist(), "lon": ds["lon"].values.tolist()}
    train, hold = ds.isel(time=slice(0, 7)), ds.isel(time=slice(6, None))
    kw = dict(num_inits=3, num_members=3, num_steps=2, progress=False)
    gains, factors = calibration.calibrate(params, cfg, train, stats, md, spread_dataset=hold, **kw)
    n = len(spectral_filter.channel_names(task))
    shape = (3, 3, 2, ds.sizes["lat"], ds.sizes["lon"], n)
    lat, step = ds["lat"].values, np.timedelta64(12, "h")

    def raw(span):
        inits = evaluation.choose_init_times(span["time"].values, 3, 2)
        fc = forecast.run(params, cfg, span, stats, inits, 2, 3, metadata=md, progress=False)
        valid = (inits[:, None] + np.array([1, 2])[None] * step).ravel()
        truth = arrays.frames_from_dataset(span.sel(time=valid), task).reshape(shape[1:])
        return _frames(fc, task, shape), truth

    # Brute force, factors: the hold-out's raw forecast filtered with the gains has ratio r
    # (metrics.spread_skill_ratio); the factors are max(1, 1 / r) of it, not of the
    # training span's.
    members, truth = raw(hold)
    before = _spread_skill(spectral_filter.filter_leads(gains, members), truth, lat)
    np.testing.assert_allclose(factors, np.maximum(1.0, 1.0 / before), rtol=1e-6)
    _, factors_train = calibration.calibrate(params, cfg, train, stats, md, **kw)
    assert np.any(factors != 1) and not np.allclose(factors, factors_train)
    # Brute force, the loop's two first rounds: gains from the training span's members with
    # each departure from the mean scaled by the last factors (1 at first), against the
    # truth's power per lead, latitude, wavenumber and channel; factors from the hold-out.
    train_raw, hold_raw = raw(train), raw(hold)
    a = np.ones((2, n))
    for rounds in (1, 2):
        members, truth = train_raw
        mean = members.mean(0, keepdims=True)
        scaled = mean + a[None, None, :, None, None, :] * (members - mean)
        power = (np.abs(np.fft.rfft(scaled, axis=4)) ** 2).mean((0, 1))
        truth_power = (np.abs(np.fft.rfft(truth, axis=3)) ** 2).mean(0)
        g = np.minimum(1, np.sqrt(truth_power / power))
        a = np.maximum(
            1, 1 / _spread_skill(spectral_filter.filter_leads(g, hold_raw[0]), hold_raw[1], lat)
        )
        ours = calibration.post_processing(*train_raw, lat, *hold_raw, rounds=rounds)
        np.testing.assert_allclose(ours[0], g, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(ours[1], a, rtol=1e-5)


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.25, 0.3])
@pytest.mark.parametrize("num_times", [12, 41, 608])
def test_hold_out_span_targets_only_the_training_runs_validation_frames(fraction, num_times):
    times = np.datetime64("2000-01-01T00") + np.arange(num_times) * np.timedelta64(12, "h")
    ds = xarray.Dataset(coords={"time": times})
    train_windows, valid_windows = loader.split_by_time(times, fraction)
    trained = set(times[np.unique(train_windows)])
    train, hold = calibration.hold_out_span(ds, fraction)
    assert train.sizes["time"] == num_times - round(num_times * fraction)
    if not len(valid_windows):  # too short a span to hold anything out
        assert hold is None
        return
    held = hold["time"].values
    # Every target of every init the calibration can choose there (all frames after the
    # first, which is an input) is a validation frame the run never trained on ...
    inits = evaluation.choose_init_times(held, 1, 1)
    assert inits[0] == held[1] and not trained & set(held[2:])
    # ... and all of them: the hold-out reaches the end, and the frame before its first
    # target is a training frame.
    assert set(held[2:]) == set(times[np.unique(valid_windows)])
    assert held[1] in trained and held[-1] == times[-1]


def test_forecast_corrects_what_it_writes_and_the_switch_turns_it_off(tiny):
    cfg, ds, stats, params = tiny
    task = cfg.task_config
    lat, lon = ds["lat"].values, ds["lon"].values
    n = len(spectral_filter.channel_names(task))
    inits = ds["time"].values[[2, 3]]
    factors = np.array([np.full(n, 2.0), np.full(n, 0.5), np.linspace(0.1, 3, n)])

    def run(md_factors=None, use=True):
        md = {"lat": lat.tolist(), "lon": lon.tolist()}
        if md_factors is not None:
            gains = np.ones((3, lat.size, lon.size // 2 + 1, n))
            names = spectral_filter.channel_names(task)
            md["spectral_filter"] = {"channels": names, "gains": gains, "spread": md_factors}
        fc = forecast.run(
            params, cfg, ds, stats, inits, 3, 3, metadata=md, progress=False,
            use_spectral_filter=False, use_spread_correction=use,
        )  # fmt: skip
        return _frames(fc, task, (3, 2, 3, lat.size, lon.size, n))

    plain = run()
    out = run(factors)
    np.testing.assert_allclose(out.mean(0), plain.mean(0), rtol=1e-5, atol=1e-4)
    dev, dev_plain = out - out.mean(0), plain - plain.mean(0)
    tol = 1e-4 * np.abs(plain).max()
    for k in range(3):  # each lead scaled by its own factors; nothing fed back
        np.testing.assert_allclose(dev[:, :, k], factors[k] * dev_plain[:, :, k], atol=tol)
    np.testing.assert_array_equal(run(factors, use=False), plain)
    with pytest.raises(ValueError, match="recalibrate"):
        run(factors[:, :2])
