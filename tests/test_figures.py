"""Every paper figure runs on a synthetic toy-planet forecast and writes a PNG."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from minigencast import baselines, config, data, figures, metrics, variables
from minigencast.data import forecasts, synthetic


def toy_truth(n_time=24, n_lat=9, n_lon=16, seed=0):
    """Canonical truth with the toy planet's variables: smooth random fields + noise."""
    rng = np.random.default_rng(seed)
    task = config.TOY_PLANET_TASK
    lat = np.linspace(-90, 90, n_lat)
    lon = np.arange(n_lon) * 360.0 / n_lon
    time = pd.date_range("2020-01-01", periods=n_time, freq="12h").values
    levels = np.array(task.pressure_levels)
    la, lo = np.deg2rad(lat)[:, None], np.deg2rad(lon)[None, :]

    def field(extra_shape):
        waves = sum(
            rng.normal(size=(n_time,) + extra_shape + (1, 1))
            * np.cos(k * lo + rng.uniform(0, 6))
            * np.cos(la)
            / k
            for k in range(1, 5)
        )
        return 10 * waves + rng.normal(size=(n_time,) + extra_shape + (n_lat, n_lon))

    data = {}
    for name in variables.TOY_PLANET_SURFACE_VARIABLES:
        data[name] = (("time", "lat", "lon"), field(()))
    for name in variables.TOY_PLANET_ATMOSPHERIC_VARIABLES:
        data[name] = (("time", "level", "lat", "lon"), field((len(levels),)))
    return xr.Dataset(data, coords={"time": time, "level": levels, "lat": lat, "lon": lon})


@pytest.fixture(scope="module")
def setup():
    truth = toy_truth()
    init = truth["time"].values[[2, 6, 10]]
    forecast = synthetic.forecast(truth, init, lead_steps=[1, 2, 4, 10], num_members=6)
    return forecast, truth


@pytest.mark.parametrize("name", list(figures.FIGURES))
def test_figure_writes_png_and_numbers(setup, tmp_path, name):
    forecast, truth = setup
    result = figures.FIGURES[name](forecast, truth, None, str(tmp_path))
    assert result.name == name
    with open(result.png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "Paper" in result.caption and "Here" in result.caption
    json.dumps(result.numbers)  # plain, JSON-ready numbers
    assert result.numbers


def test_synthetic_forecast_is_reliable():
    truth = toy_truth(n_time=60, seed=1)
    init = truth["time"].values[2:40:2]
    fc = synthetic.forecast(truth, init, [1, 2, 3], num_members=9, seed=3)
    ssr = metrics.spread_skill_ratio(fc, truth).compute()
    for v in ssr.data_vars:
        assert ssr[v].item() == pytest.approx(1.0, abs=0.1)
    hist = metrics.rank_histogram(fc["2m_temperature"], truth["2m_temperature"]).values
    np.testing.assert_allclose(hist, 0.1, atol=0.02)


def test_synthetic_forecast_error_grows_as_sqrt_of_the_lead_step():
    truth = toy_truth(n_time=60, seed=1)
    init = truth["time"].values[2:40:2]
    steps = [1, 4, 9]  # not 1, 2, 3: the growth must follow the step, not the list index
    fc = synthetic.forecast(truth, init, steps, num_members=9, seed=3)
    name = "2m_temperature"
    s = float(truth[name].diff("time").std()) / np.sqrt(2)
    member_error = (fc[name] - fc[name].mean("sample")).std(["sample", "init_time", "lat", "lon"])
    # Members scatter around their centre with std s sqrt(step) (ddof: 9 members).
    np.testing.assert_allclose(member_error.values * np.sqrt(9 / 8), s * np.sqrt(steps), rtol=0.05)


def test_scorecard_fraction_better_against_a_worse_baseline(setup, tmp_path):
    forecast, truth = setup
    worse = forecast + 5.0 * xr.ones_like(forecast)
    res = figures.scorecard(forecast, truth, {"worse": worse}, str(tmp_path))
    assert res.numbers["worse"]["fraction_better"]["CRPS"] == 1.0
    assert res.numbers["worse"]["fraction_better"]["RMSE"] == 1.0
    res = figures.scorecard(worse, truth, {"better": forecast}, str(tmp_path))
    assert res.numbers["better"]["fraction_better"]["CRPS"] == 0.0


def test_scorecard_against_persistence_and_climatology(setup, tmp_path):
    forecast, truth = setup
    init, lead = forecast["init_time"].values, forecast["lead_time"].values
    refs = {
        "persistence": baselines.persistence(truth, init, lead),
        "climatology": baselines.climatological_ensemble(
            truth, init, lead, num_members=4, window_days=5, exclude_days=1
        ),
    }
    res = figures.scorecard(forecast, truth, refs, str(tmp_path))
    with open(res.png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert set(res.numbers) == {"persistence", "climatology"}
    assert "vs persistence" in res.caption and "vs climatology" in res.caption
    # Each card is (CRPS - CRPS_ref) / CRPS_ref of that reference, from metrics directly.
    name = "2m_temperature"
    ours = metrics.crps(forecast[name], truth[name], preserve_dims=["lead_time"]).values
    for ref_name, ref in refs.items():
        theirs = metrics.crps(
            ref[name], truth[name], fair=ref.sizes["sample"] > 1, preserve_dims=["lead_time"]
        ).values
        np.testing.assert_allclose(
            res.numbers[ref_name]["CRPS"][name], (ours - theirs) / theirs, rtol=1e-9
        )


def test_score_table_and_run_all(setup, tmp_path):
    forecast, truth = setup
    table = figures.score_table(forecast, truth)
    assert set(table["forecast"]) == {"forecast", "persistence"}
    n_channels = (
        variables.num_target_channels(config.TOY_PLANET_TASK)
        if hasattr(variables, "num_target_channels")
        else 16
    )
    assert len(table) == 2 * n_channels * forecast.sizes["lead_time"]
    direct = metrics.crps(
        forecast["2m_temperature"], truth["2m_temperature"], preserve_dims=["lead_time"]
    ).values
    got = table.query("forecast == 'forecast' and variable == '2m_temperature'")["crps"].values
    np.testing.assert_allclose(got, direct, rtol=1e-12)
    results = figures.run(["scorecard", "spectra"], forecast, truth, None, str(tmp_path))
    assert [r.name for r in results] == ["scorecard", "spectra"]
    saved = json.loads((tmp_path / "numbers.json").read_text())
    assert set(saved) == {"scorecard", "spectra"}
    with pytest.raises(ValueError, match="unknown figure"):
        figures.run(["nope"], forecast, truth, None, str(tmp_path))


def test_embedded_grid_size(tmp_path):
    # The embedded dataset's 33 x 64 grid.
    truth = toy_truth(n_time=16, n_lat=33, n_lon=64, seed=2)
    fc = synthetic.forecast(truth, truth["time"].values[[2, 4]], [1, 2], num_members=4)
    for name in ("pooled_crps", "maps", "rev"):
        res = figures.FIGURES[name](fc, truth, None, str(tmp_path))
        assert res.png.endswith(f"{name}.png")


def test_cli_evaluate(setup, tmp_path, capsys):
    from minigencast import cli

    forecast, truth = setup
    forecast.to_netcdf(tmp_path / "fc.nc")
    truth.to_netcdf(tmp_path / "truth.nc")
    out = tmp_path / "out"
    argv = [
        "evaluate",
        "--forecast",
        str(tmp_path / "fc.nc"),
        "--truth",
        str(tmp_path / "truth.nc"),
        "--figure",
        "scorecard",
        "--figure",
        "spectra",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "crps" in printed and "2m_temperature" in printed
    assert (out / "scorecard.png").exists() and (out / "spectra.png").exists()
    table = pd.read_csv(out / "scores.csv")
    assert {"forecast", "variable", "level", "lead_time_h", "crps", "rmse"} <= set(table.columns)
    # Bad input: a truth on another grid is a clear error (exit code 2).
    truth.isel(lon=slice(0, 8)).to_netcdf(tmp_path / "other.nc")
    argv[4] = str(tmp_path / "other.nc")
    assert cli.main(argv) == 2
    assert "different grids" in capsys.readouterr().err


def test_embedded_truth_joins_splits(tmp_path, monkeypatch):
    # A stand-in for the embedded dataset: three split files under toy_planet/.
    truth = toy_truth(n_time=20, seed=4)
    folder = tmp_path / "toy_planet"
    folder.mkdir()
    truth.isel(time=slice(0, 10)).to_netcdf(folder / "train.nc")
    truth.isel(time=slice(10, 15)).to_netcdf(folder / "validation.nc")
    truth.isel(time=slice(14, 20)).to_netcdf(folder / "test.nc")  # one duplicated time
    monkeypatch.setenv("MINIGENCAST_DATA_DIR", str(tmp_path))
    joined = data.embedded_truth()
    np.testing.assert_array_equal(joined["time"].values, truth["time"].values)
    xr.testing.assert_allclose(joined.compute(), truth.astype(np.float32), rtol=1e-6)


def test_to_forecast_layout_from_weatherbench_and_deepmind(setup):
    forecast, _ = setup
    ours = forecast.drop_vars("valid_time")
    # WeatherBench-2: time = init, prediction_timedelta, number, latitude (descending).
    wb2 = ours.rename(
        sample="number",
        init_time="time",
        lead_time="prediction_timedelta",
        lat="latitude",
        lon="longitude",
    ).isel(latitude=slice(None, None, -1))
    back = forecasts.to_forecast_layout(wb2)
    xr.testing.assert_identical(back.drop_vars("valid_time"), ours)
    # DeepMind rollout: (sample, batch, time = lead) with a datetime (batch, time) coord.
    dm = ours.rename(init_time="batch", lead_time="time").drop_vars("batch")
    dm = dm.assign_coords(datetime=(("batch", "time"), forecast["valid_time"].values))
    back = forecasts.to_forecast_layout(dm)
    xr.testing.assert_identical(back.drop_vars("valid_time"), ours)
    np.testing.assert_array_equal(back["valid_time"].values, forecast["valid_time"].values)
    with pytest.raises(ValueError, match="not a forecast layout"):
        forecasts.to_forecast_layout(ours.isel(init_time=0, drop=True))


def test_cli_on_the_embedded_dataset(tmp_path, capsys):
    # The real embedded toy planet (33 x 64, 250/500/850 hPa) as truth, via --truth embedded.
    from minigencast import cli

    truth = data.embedded_truth()
    assert (truth.sizes["lat"], truth.sizes["lon"]) == (33, 64)
    init = truth["time"].values[[-20, -12]]
    fc = synthetic.forecast(truth, init, [1, 2, 10], num_members=4, seed=5)
    assert set(fc.data_vars) == set(config.TOY_PLANET_TASK.target_variables)
    fc.to_netcdf(tmp_path / "fc.nc")
    argv = [
        "evaluate",
        "--forecast",
        str(tmp_path / "fc.nc"),
        "--truth",
        "embedded",
        "--figure",
        "rev",
        "--figure",
        "spread_skill",
        "--out",
        str(tmp_path / "out"),
    ]
    assert cli.main(argv) == 0
    assert (tmp_path / "out" / "rev.png").exists()
    table = pd.read_csv(tmp_path / "out" / "scores.csv")
    ours = table[table["forecast"] == "forecast"]
    assert len(ours) == 16 * 3  # 16 target channels x 3 lead times
    assert (ours["crps"] < table[table["forecast"] == "persistence"]["crps"].values).mean() > 0.5


def _brute_force_scores(forecast, truth, name, level=None):
    """Fair CRPS, ensemble-mean RMSE and spread/skill per lead, in plain NumPy.

    Independent of `metrics`: O(M^2) pairwise CRPS, cell-area latitude weights from the
    band areas 2 pi (sin b - sin a), truth looked up at each valid time; means over
    (init, lat, lon), the RMSE's and spread's square roots taken after the mean.
    """
    fc, tr = forecast[name], truth[name]
    if level is not None:
        fc, tr = fc.sel(level=level), tr.sel(level=level)
    x = fc.transpose("sample", "init_time", "lead_time", "lat", "lon").values
    valid = forecast["valid_time"].values  # [init, lead]
    times = list(truth["time"].values)
    y = tr.values[[[times.index(v) for v in row] for row in valid]]  # [init, lead, lat, lon]
    lat = truth["lat"].values
    half = (lat[1] - lat[0]) / 2
    area = np.diff(np.sin(np.deg2rad(np.clip(np.r_[lat - half, lat[-1] + half], -90, 90))))
    w = (area / area.mean())[None, None, :, None] * np.ones_like(y)

    def wmean(a):  # over init, lat, lon -> [lead]
        return (a * w).sum((0, 2, 3)) / w.sum((0, 2, 3))

    m = x.shape[0]
    skill = np.mean([np.abs(x[i] - y) for i in range(m)], axis=0)
    pairs = sum(np.abs(x[i] - x[j]) for i in range(m) for j in range(m))
    crps = wmean(skill - pairs / (2 * m * (m - 1)))
    mse = wmean((x.mean(0) - y) ** 2)
    spread = wmean(x.var(0, ddof=1))
    return crps, np.sqrt(mse), np.sqrt((m + 1) / m * spread / mse)


@pytest.mark.parametrize(("label", "name", "level"), [
    ("2m_temperature", "2m_temperature", None),
    ("geopotential 500", "geopotential", 500),
])  # fmt: skip
def test_plotted_numbers_are_the_independently_computed_scores(setup, tmp_path, label, name, level):
    forecast, truth = setup
    crps, rmse, ssr = _brute_force_scores(forecast, truth, name, level)
    plotted = {
        fig: figures.FIGURES[fig](forecast, truth, None, str(tmp_path)).numbers["forecast"][label]
        for fig in ("crps_vs_lead", "rmse_vs_lead", "spread_skill")
    }
    np.testing.assert_allclose(plotted["crps_vs_lead"], crps, rtol=1e-9)
    np.testing.assert_allclose(plotted["rmse_vs_lead"], rmse, rtol=1e-9)
    np.testing.assert_allclose(plotted["spread_skill"], ssr, rtol=1e-9)
