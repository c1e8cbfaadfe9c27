"""The spectral filter (eq. (1) of spectral_filter.py) against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import synthetic_data

from minigencast import (
    arrays,
    calibration,
    config,
    evaluation,
    forecast,
    spectral_filter,
    spread_correction,
)

LAT = np.linspace(-90, 90, 33)
LON = np.arange(64) * 360.0 / 64


def test_identity_gains_leave_any_field_unchanged():
    x = np.random.default_rng(0).standard_normal((2, 33, 64, 3)).astype(np.float32)
    filt = spectral_filter.Filter(np.ones((2, 33, 33, 3)))
    out = spectral_filter.apply(filt, jnp.asarray(x), 1)
    np.testing.assert_allclose(np.asarray(out), x, atol=2e-6)


def test_each_latitude_wavenumber_and_channel_gets_its_own_gain():
    lon = np.deg2rad(LON)
    rows = np.arange(33)[:, None]
    waves = {k: np.cos(k * lon + 0.3 * k)[None] * (1 + rows) for k in (0, 3, 17, 32)}
    x = np.stack([sum(waves.values()), waves[3]], axis=-1)  # [lat, lon, 2]
    gains = np.ones((33, 33, 2))
    gains[:, 3, 0] = 0.5
    gains[10, 17, 0] = 0.0
    gains[:, 32, 0] = 0.25
    gains[:, 3, 1] = np.linspace(0, 1, 33)
    # Lead 0 is the identity; leads 1 and beyond (index clipped to the last) use `gains`.
    filt = spectral_filter.Filter(np.stack([np.ones_like(gains), gains]))
    np.testing.assert_allclose(
        np.asarray(spectral_filter.apply(filt, jnp.asarray(x), 0)), x, atol=1e-4
    )
    out = np.asarray(spectral_filter.apply(filt, jnp.asarray(x), 5))
    expect0 = waves[0] + 0.5 * waves[3] + waves[17] + 0.25 * waves[32]
    expect0[10] -= waves[17][10]
    np.testing.assert_allclose(out[..., 0], expect0, atol=1e-4)
    np.testing.assert_allclose(out[..., 1], np.linspace(0, 1, 33)[:, None] * waves[3], atol=1e-4)


def test_zonal_power_against_a_direct_sum():
    x = np.random.default_rng(1).standard_normal((33, 64, 2))
    k = np.arange(33)
    phase = np.exp(-2j * np.pi * np.outer(np.arange(64), k) / 64)  # [lon, K]
    direct = np.abs(np.einsum("ylc,lk->ykc", x, phase)) ** 2
    np.testing.assert_allclose(spectral_filter.zonal_power(x), direct, rtol=1e-10)


def test_gains_from_power_match_power_and_never_exceed_one():
    forecast_power = np.array([4.0, 1.0, 0.25, 0.0]).reshape(1, 4, 1)
    g = spectral_filter.gains_from_power(forecast_power, np.ones((1, 4, 1)))
    # sqrt(1/4); equal; too little power is not amplified; no forecast power.
    np.testing.assert_allclose(g[0, :, 0], [0.5, 1.0, 1.0, 1.0])


def test_model_folder_round_trip_and_checks(tmp_path):
    from minigencast import training_state

    task = config.TOY_PLANET_TASK
    n = len(spectral_filter.channel_names(task))
    gains = np.random.default_rng(2).uniform(size=(3, 33, 33, n)).astype(np.float32)
    grid = {"lat": LAT, "lon": LON}
    training_state.write_metadata(str(tmp_path), config=config.cpu(), grid=grid)
    entry = spectral_filter.save(str(tmp_path), task, gains, num_inits=1)
    training_state.update_metadata(str(tmp_path), "spectral_filter", entry)
    metadata = training_state.read_metadata(str(tmp_path))
    assert metadata["lat"] == LAT.tolist() and "gains" not in metadata["spectral_filter"]
    spectral_filter.load(str(tmp_path), metadata)
    filt = spectral_filter.from_metadata(metadata, task, LAT, LON)
    np.testing.assert_array_equal(filt.gains, gains)
    assert spectral_filter.from_metadata({}, task, LAT, LON) is None
    assert spread_correction.from_metadata(metadata, task) is None  # saved without factors
    with pytest.raises(ValueError, match="grid of 33 latitudes and 64 longitudes"):
        spectral_filter.from_metadata(metadata, task, LAT[::2], LON)
    metadata["spectral_filter"]["channels"] = metadata["spectral_filter"]["channels"][::-1]
    with pytest.raises(ValueError, match="recalibrate"):
        spectral_filter.from_metadata(metadata, task, LAT, LON)


@pytest.fixture(scope="module")
def tiny():
    return synthetic_data.forecast_setup(num_times=12)


def test_forecast_filters_what_it_writes_not_what_it_feeds_back(tiny):
    cfg, ds, stats, params = tiny
    lat, lon = ds["lat"].values, ds["lon"].values
    n = len(spectral_filter.channel_names(cfg.task_config))
    inits = ds["time"].values[[2]]

    def run(gains=None, use=True):
        md = {"lat": lat.tolist(), "lon": lon.tolist()}
        if gains is not None:
            names = spectral_filter.channel_names(cfg.task_config)
            md["spectral_filter"] = {"channels": names, "gains": gains}
        fc = forecast.run(
            params, cfg, ds, stats, inits, 3, 2, metadata=md, progress=False,
            use_spectral_filter=use,
        )  # fmt: skip
        flat = fc.stack(time=["sample", "init_time", "lead_time"]).reset_index("time", drop=True)
        return arrays.frames_from_dataset(flat, cfg.task_config).reshape(
            2, 3, lat.size, lon.size, n
        )

    plain = run()
    ones = np.ones((3, lat.size, lon.size // 2 + 1, n))
    np.testing.assert_allclose(run(ones), plain, rtol=1e-4, atol=1e-5 * np.abs(plain).max())
    # Lead 2 keeps wavenumbers k <= 3 only; leads 1 and 3 are unfiltered and equal the plain
    # forecast: the filtered lead 2 was not fed back.
    gains = ones.copy()
    gains[1, :, 4:] = 0
    out = run(gains)
    power = spectral_filter.zonal_power(out[:, 1])
    assert np.all(power[:, :, 4:].sum(2) <= 1e-9 * power.sum(2))
    np.testing.assert_allclose(
        out[:, [0, 2]], plain[:, [0, 2]], rtol=1e-4, atol=1e-5 * np.abs(plain).max()
    )
    np.testing.assert_array_equal(run(gains, use=False), plain)


def test_calibration_gains_match_the_forecasts_power_to_the_truth(tiny):
    cfg, ds, stats, params = tiny
    md = {"lat": ds["lat"].values.tolist(), "lon": ds["lon"].values.tolist()}
    inits = evaluation.choose_init_times(ds["time"].values, 2, 2)
    fc = forecast.run(params, cfg, ds, stats, inits, 2, 2, metadata=md, progress=False)
    n = len(spectral_filter.channel_names(cfg.task_config))
    flat = fc.stack(time=["sample", "init_time", "lead_time"]).reset_index("time", drop=True)
    shape = (2, 2, 2, ds.sizes["lat"], ds.sizes["lon"], n)
    members = arrays.frames_from_dataset(flat, cfg.task_config).reshape(shape)
    valid = (inits[:, None] + np.array([1, 2])[None] * np.timedelta64(12, "h")).ravel()
    truth = arrays.frames_from_dataset(ds.sel(time=valid), cfg.task_config).reshape(shape[1:])
    # One round: the gains of the raw members (spread factors still 1).
    gains, _ = calibration.post_processing(members, truth, ds["lat"].values, rounds=1)
    assert gains.shape == (2, ds.sizes["lat"], ds.sizes["lon"] // 2 + 1, n)
    assert np.all((gains >= 0) & (gains <= 1)) and np.any(gains < 1)
    # Brute force: the unfiltered forecast's power at lead 1 against the truth's.
    lead1 = fc.isel(lead_time=0).stack(time=["sample", "init_time"]).reset_index("time", drop=True)
    p_fc = np.abs(np.fft.rfft(arrays.frames_from_dataset(lead1, cfg.task_config), axis=2)) ** 2
    p_tr = np.abs(np.fft.rfft(truth[:, 0], axis=2)) ** 2
    expect = np.minimum(1, np.sqrt(p_tr.mean(0) / p_fc.mean(0)))
    np.testing.assert_allclose(gains[0], expect, rtol=1e-3, atol=1e-6)


def test_calibrate_cli_refuses_a_folder_without_a_model(tmp_path, capsys):
    from minigencast import cli

    assert cli.main(["calibrate-spectra", "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no model checkpoint" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_calibrate_folder_stores_gains_that_forecasts_then_apply(tiny, tmp_path):
    from minigencast import checkpoint, training_state

    cfg, ds, stats, params = tiny
    folder = str(tmp_path)
    checkpoint.save(f"{folder}/model.npz", jax.device_get(params), cfg)
    training_state.write_metadata(folder, config=cfg, grid={"lat": ds.lat, "lon": ds.lon})
    path = calibration.calibrate_folder(
        folder, ds, stats, hold_out_fraction=0.25, source="synthetic", num_inits=2,
        num_members=2, num_steps=2, progress=False,
    )  # fmt: skip
    _, _, metadata = forecast.load_model(folder)
    entry = metadata["spectral_filter"]
    assert path == f"{folder}/{spectral_filter.FILE}" and entry["calibration"]["num_inits"] == 2
    assert entry["calibration"]["span"][1] == str(ds.time.values[8])[:16]  # last 25 % left out
    # The spread factors' span: the validation frames (9-11) and the two inputs before them.
    assert entry["calibration"]["spread_span"] == [str(ds.time.values[i])[:16] for i in (7, 11)]
    filt = spectral_filter.from_metadata(metadata, cfg.task_config, ds.lat, ds.lon)
    assert filt.gains.shape[0] == 2 and np.all(filt.gains <= 1)
    assert entry["arrays"] == ["gains", "spread"]
    factors = spread_correction.from_metadata(metadata, cfg.task_config)
    assert factors.shape == filt.gains.shape[::3]
    # Calibrating again measures the raw model, not the post-processed one: the same arrays,
    # whatever the folder held (here factors of 3).
    entry = spectral_filter.save(folder, cfg.task_config, filt.gains, 3 * factors)
    training_state.update_metadata(folder, "spectral_filter", entry)
    calibration.calibrate_folder(
        folder, ds, stats, hold_out_fraction=0.25, num_inits=2, num_members=2, num_steps=2,
        progress=False,
    )  # fmt: skip
    _, _, again = forecast.load_model(folder)
    np.testing.assert_array_equal(again["spectral_filter"]["gains"], filt.gains)
    np.testing.assert_array_equal(again["spectral_filter"]["spread"], factors)
    # Measured on the gains' span instead, the factors differ and the entry says where.
    calibration.calibrate_folder(
        folder, ds, stats, hold_out_fraction=0.25, spread_span="training", num_inits=2,
        num_members=2, num_steps=2, progress=False,
    )  # fmt: skip
    _, _, training = forecast.load_model(folder)
    calibrated = training["spectral_filter"]["calibration"]
    assert calibrated["spread_span"] == calibrated["span"]
    assert not np.array_equal(training["spectral_filter"]["spread"], factors)
    with pytest.raises(ValueError, match="spread_span must be one of"):
        calibration.calibrate_folder(folder, ds, stats, spread_span="test", progress=False)
    # No hold-out left: the hold-out factors are refused in one line; the training span's work.
    with pytest.raises(ValueError, match="leaves no validation window"):
        calibration.calibrate_folder(folder, ds, stats, hold_out_fraction=0, progress=False)
    calibration.calibrate_folder(
        folder, ds, stats, hold_out_fraction=0, spread_span="training", num_inits=2,
        num_members=2, num_steps=2, progress=False,
    )  # fmt: skip
    _, _, everything = forecast.load_model(folder)
    assert everything["spectral_filter"]["calibration"]["span"][1] == str(ds.time.values[-1])[:16]
    # The CLI takes every span the module knows, hold-out by default, and no other.
    from minigencast import cli

    def spread_span(*words):
        args = ["calibrate-spectra", "--checkpoint", folder, *words]
        return cli.build_parser().parse_args(args).spread_span

    assert spread_span() == "hold-out"
    assert [spread_span("--spread_span", s) for s in calibration.SPREAD_SPANS] == list(
        calibration.SPREAD_SPANS
    )
    with pytest.raises(SystemExit):
        spread_span("--spread_span", "test")
