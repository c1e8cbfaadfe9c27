"""The quickstart's report, skill table and CLI; the end-to-end run is in the slow tier."""

import json
import os

import numpy as np
import pytest
import synthetic_data
import xarray

from minigencast import baselines, cli, evaluation, quickstart, safe_output

STEP = np.timedelta64(12, "h")
KEYS = {"crps_model", "crps_persistence", "crps_climatology", "rmse_model", "spread_skill"}


def _fake_forecast(truth, inits, leads, members=4, noise=1.0, seed=0):
    """Truth at the valid times plus noise: a stand-in ensemble in the forecast layout."""
    rng = np.random.default_rng(seed)
    p = baselines.persistence(truth, inits, leads)
    out = {}
    for name in p.data_vars:
        valid = truth[name].sel(time=(p["valid_time"].values.ravel())).values
        valid = valid.reshape(p[name].shape[1:])
        scale = float(truth[name].std())
        out[name] = (
            p[name].dims,
            valid[None] + noise * scale * 0.1 * rng.standard_normal((members,) + valid.shape),
        )
    coords = {k: v for k, v in p.coords.items() if k != "sample"}
    return xarray.Dataset(out, coords=dict(coords, sample=np.arange(members)))


def test_report_shape_and_skill_table():
    truth = synthetic_data.dataset(num_times=80)
    inits = evaluation.choose_init_times(truth["time"].values, 3, 4)
    leads = np.arange(1, 5) * STEP
    fc = _fake_forecast(truth, inits, leads)
    refs = {
        "persistence": baselines.persistence(truth, inits, leads),
        "climatology": baselines.climatological_ensemble(
            truth, inits, leads, num_members=4, window_days=10, exclude_days=3
        ),
    }
    scores = evaluation.score(fc, truth, refs)
    assert set(scores) == {"z500", "t850", "t2m", "msl", "u850"}
    assert set(scores["z500"]) == {"12", "24", "36", "48"}
    for per_lead in scores.values():
        for s in per_lead.values():
            assert set(s) == KEYS and all(np.isfinite(v) for v in s.values())
    # A near-perfect ensemble beats persistence and has a finite spread/skill.
    assert scores["z500"]["48"]["crps_model"] < scores["z500"]["48"]["crps_persistence"]
    json.dumps({"scores": scores})  # JSON-ready
    table = evaluation.skill_table(scores, leads_hours=(24, 48))
    assert "z500" in table and "t850" in table and len(table.splitlines()) == 1 + 5 * 2


def test_dispersion_is_judged_on_16_inits_by_default():
    import inspect

    args = cli.build_parser().parse_args(["quickstart"])
    assert args.num_inits == 16
    assert inspect.signature(quickstart.quickstart).parameters["num_inits"].default == 16


def test_init_times_have_truth_for_every_lead():
    t = synthetic_data.dataset(num_times=30)["time"].values
    inits = evaluation.choose_init_times(t, 4, 10)
    assert len(set(inits.tolist())) == 4
    assert all((i - STEP) in t and (i + 10 * STEP) in t for i in inits)
    with pytest.raises(ValueError, match="init times"):
        evaluation.choose_init_times(t, 40, 10)


@pytest.mark.parametrize("command", ["quickstart", "train", "forecast"])
def test_cli_help_teaches(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps by terminal width
    assert "API twin" in text
    if command == "train":
        assert "--peak_learning_rate" in text and "--ema_decay" in text
    if command == "forecast":
        assert "--num_samples" in text and "--init_time" in text


def test_cli_xla_flags_default_only_when_unset(monkeypatch):
    """The CLI's CPU XLA setting fills an unset XLA_FLAGS and never overrides the user's."""
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert cli.use_cpu_xla_flags() == cli.CPU_XLA_FLAGS == os.environ["XLA_FLAGS"]
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    assert cli.use_cpu_xla_flags() == "--xla_force_host_platform_device_count=4"
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=4"


def test_cli_train_refuses_a_run_dir_of_another_config(tmp_path, capsys):
    """A checkpoint from another config -> a clear error from `minigencast train`."""
    import jax

    from minigencast import config, network, train, training_state

    ds = synthetic_data.dataset(num_times=12)
    path = tmp_path / "data.nc"
    ds.to_netcdf(path)
    stats_dir = tmp_path / "stats"
    from minigencast import normalization

    normalization.write_stats(synthetic_data.stats(ds), stats_dir)
    cfg = config.tiny()
    params = network.init_denoiser(jax.random.key(0), cfg, *network.channel_counts(cfg))
    training_state.save(
        str(tmp_path / "run" / "checkpoints"),
        step=1,
        state=train.init_train_state(params, config.TrainConfig()),
        config=cfg,
        train_config=config.TrainConfig(),
        loader_position={},
        rng_key=jax.random.key(0),
        grid={"lat": ds["lat"].values, "lon": ds["lon"].values},
    )
    code = cli.main(
        [
            "train",
            "--preset",
            "cpu",
            "--data",
            str(path),
            "--stats",
            str(stats_dir),
            "--run_dir",
            str(tmp_path / "run"),
            "--quiet",
        ]
    )
    assert code == 2
    assert "another configuration" in capsys.readouterr().err


@pytest.mark.slow
def test_quickstart_pretrained_end_to_end(tmp_path):
    out = tmp_path / "qs"
    report = quickstart.quickstart(
        out=str(out), pretrained=True, num_members=2, num_inits=1, num_steps=2, progress=False
    )
    on_disk = json.load(open(out / "report.json"))
    assert on_disk == json.loads(json.dumps(report))
    assert set(on_disk["scores"]["z500"]) == {"12", "24"}
    assert set(on_disk["scores"]["t850"]["24"]) == KEYS
    with xarray.open_dataset(out / "forecast.nc") as fc:
        assert fc.sizes["sample"] == 2 and fc.sizes["lead_time"] == 2
    assert any(f.endswith(".png") for f in os.listdir(out / "figures"))
    assert (out / "figures" / "spectra.png").exists()
    # Leads 12 and 24 h: the goals are judged at 24 h (the only lead within 1-5 days).
    assert on_disk["goals"]["lead_hours"] == [24.0]
    for key in ("spectra_k1_16", "spectra_k17_21", "spectra_share_above_k16", "dispersion"):
        assert on_disk["goals"][key]["met"] in (True, False)
    assert set(on_disk["goals"]["spectra_k1_16"]["variables"]) == {"z500", "t850", "t2m", "u850"}
    assert set(on_disk["goals"]["dispersion"]["variables"]) == {"z500", "t850"}
    # The baselines are written in the forecast layout, ready for `minigencast evaluate`.
    for name in ("persistence", "climatology"):
        with xarray.open_dataset(out / f"{name}.nc") as baseline:
            assert baseline.sizes["lead_time"] == 2 and "init_time" in baseline.dims
    # A rerun replaces its own outputs, also those of a version that kept no record.
    for folder in (out, out / "figures"):
        os.remove(folder / safe_output.OUTPUTS_RECORD)
    quickstart.quickstart(
        out=str(out), pretrained=True, num_members=2, num_inits=1, num_steps=1, progress=False
    )
    with xarray.open_dataset(out / "forecast.nc") as fc:
        assert fc.sizes["lead_time"] == 1
    assert (out / safe_output.OUTPUTS_RECORD).exists()


def test_shipped_model_is_the_cpu_preset_trained_by_the_recipe():
    """data/pretrained/ is what `scripts/train_cpu.py` (and so `quickstart` without
    --pretrained, whose TrainConfig it uses) would make today: the cpu preset, the recipe."""
    import dataclasses
    import importlib.util

    from minigencast import cli, config, forecast

    folder = quickstart.pretrained_dir()
    _, cfg, metadata = forecast.load_model(folder)
    assert dataclasses.replace(cfg, grid=None) == dataclasses.replace(config.cpu(), grid=None)
    assert (len(metadata["lat"]), len(metadata["lon"])) == config.cpu().grid

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(
        "train_cpu", os.path.join(root, "scripts", "train_cpu.py")
    )
    train_cpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_cpu)
    with open(os.path.join(folder, "command.txt")) as f:
        words = f.read().split()
    shipped = dict(zip(words[2::2], words[3::2], strict=False))  # after "minigencast train"
    args = cli.build_parser().parse_args(["train", *train_cpu.RECIPE, "--run_dir", "r"])
    fields = dataclasses.fields(config.TrainConfig)
    assert config.TrainConfig(**{f.name: getattr(args, f.name) for f in fields}) == (
        config.cpu_training()
    ), "the benchmark's command must train exactly the cpu_training recipe"
    recipe = dict(zip(train_cpu.RECIPE[::2], train_cpu.RECIPE[1::2], strict=True))
    for flag, value in recipe.items():
        try:
            assert float(shipped[flag]) == float(value), flag
        except ValueError:
            assert shipped[flag] == value, flag


def test_shipped_post_processing_was_calibrated_as_the_recipe_calibrates_today():
    """data/pretrained's filter and spread factors come from `minigencast calibrate-spectra`
    with its defaults, as scripts/train_cpu.py runs it: the gains on the training span, the
    factors on the training run's hold-out (calibration.hold_out_span)."""
    from minigencast import calibration, config, forecast

    _, _, metadata = forecast.load_model(quickstart.pretrained_dir())
    made = metadata["spectral_filter"]["calibration"]
    training, hold_out = calibration.hold_out_span(
        quickstart.training_data(), config.cpu_training().validation_fraction
    )

    def span(ds):
        return [str(ds["time"].values[i])[:16] for i in (0, -1)]

    assert made["span"] == span(training) and made["spread_span"] == span(hold_out)
    args = cli.build_parser().parse_args(["calibrate-spectra", "--checkpoint", "m"])
    assert args.spread_span == "hold-out"
    assert (made["num_inits"], made["num_members"], made["num_steps"], made["seed"]) == (
        args.num_inits, args.num_samples, args.num_steps, args.seed,
    )  # fmt: skip
