"""Forecasting: compile-once chunked rollout, ensembles, output files, bad input."""

import dataclasses
import os

import jax
import numpy as np
import pytest
import synthetic_data
import xarray

from minigencast import (
    arrays,
    channel_order,
    checkpoint,
    config,
    forecast,
    network,
    noise,
    train,
    training_state,
)

STEP = np.timedelta64(12, "h")


@pytest.fixture(scope="module")
def setup():
    return synthetic_data.forecast_setup(num_times=16)


def _rollout(setup, num_steps=10, members=2, chunk=5, members_per_batch=None):
    cfg, ds, stats, params = setup
    data = arrays.prepare(ds, cfg.task_config, stats)
    structure = network.build_structure(cfg, data.lat, data.lon)
    noise_fn = noise.noise_function(data.lat, data.lon)
    forcings = data.forcings[None, : 2 + num_steps]
    return forecast.rollout(
        params,
        structure,
        cfg,
        data.layout,
        data.static,
        data.raw_frames[None, :2],
        forcings,
        num_steps,
        members,
        noise_fn,
        chunk_steps=chunk,
        members_per_batch=members_per_batch,
    )


def test_a_short_forecast_computes_no_padding_steps(setup, monkeypatch):
    """num_steps below chunk_steps: one chunk of num_steps steps, not chunk_steps (a
    1-step forecast cost 4 steps with the default chunk before)."""
    calls = []
    real = forecast.rollout_chunk

    def counting(*args, **kw):
        calls.append(len(args[-2][2]))  # (member, init, steps): the chunk's step indices
        return real(*args, **kw)

    monkeypatch.setattr(forecast, "rollout_chunk", counting)
    chunks = [out.shape[2] for _, out in _rollout(setup, num_steps=2, members=1, chunk=4)]
    assert chunks == [2] and calls == [2]


def test_rollout_compiles_once_and_memory_is_flat(setup):
    before = forecast.rollout_chunk._cache_size()
    live = []
    outs = []
    for _, out in _rollout(setup, num_steps=10):
        assert out.shape[:3] == (1, 2, 5)  # only this chunk is held
        outs.append(out)
        live.append(sum(a.nbytes for a in jax.live_arrays()))
    assert forecast.rollout_chunk._cache_size() == before + 1
    assert live[0] == live[-1]  # device memory does not grow with the steps done
    # A shorter forecast (padded last chunk) reuses the same program.
    short = [o for _, o in _rollout(setup, num_steps=7)]
    assert forecast.rollout_chunk._cache_size() == before + 1
    assert [o.shape[2] for o in short] == [5, 2]
    # Same keys, same start: the first 7 steps agree with the 10-step run.
    np.testing.assert_array_equal(np.concatenate(short, 2), np.concatenate(outs, 2)[:, :, :7])
    full = np.concatenate(outs, 2)
    assert np.isfinite(full).all()
    assert not np.array_equal(full[:, 0], full[:, 1])  # members differ


def test_members_in_groups_equal_all_at_once(setup):
    """3 members in groups of 2 (the last padded): one program, the same forecast."""
    before = forecast.rollout_chunk._cache_size()
    together = np.concatenate([o for _, o in _rollout(setup, 4, members=3, chunk=2)], 2)
    grouped = np.concatenate(
        [o for _, o in _rollout(setup, 4, members=3, chunk=2, members_per_batch=2)], 2
    )
    assert forecast.rollout_chunk._cache_size() == before + 2  # group sizes 3 and 2
    assert grouped.shape == together.shape == (1, 3, 4) + grouped.shape[3:]
    # Batch size changes float rounding only (as in the 1 vs 4 devices test below).
    np.testing.assert_allclose(grouped, together, rtol=1e-4, atol=1e-4)


def test_groups_wait_on_the_host_between_chunks(setup):
    """4 members in groups of 1: between its calls each group's carry (T_in frames) waits
    on the host, so the device holds at most the last group's, not all four."""
    cfg, ds, stats, params = setup
    state = arrays.prepare(ds, cfg.task_config, stats).raw_frames[None, :2].shape[1:]

    def carries_on_device():
        return sum(a.shape[-len(state) :] == state for a in jax.live_arrays())

    for _, out in _rollout(setup, 6, members=4, chunk=3, members_per_batch=1):
        assert out.shape[:3] == (1, 4, 3)
        assert carries_on_device() <= 1


def test_over_budget_fails_before_compiling_or_writing(setup, tmp_path, monkeypatch, capsys):
    from minigencast import cli, memory

    cfg, ds, stats, params = setup
    monkeypatch.setattr(forecast, "rollout", lambda *a, **k: pytest.fail("computed anyway"))
    path = tmp_path / "fc.nc"
    with pytest.raises(memory.MemoryBudgetError, match="--members_per_batch"):
        forecast.run(
            params,
            cfg,
            ds,
            stats,
            ds["time"].values[[1]],
            2,
            2,
            out=str(path),
            progress=False,
            memory_budget_gb=0.01,
        )
    assert not path.exists()
    ckpt = tmp_path / "model.npz"
    checkpoint.save(str(ckpt), params, cfg)
    ds.to_netcdf(tmp_path / "data.nc")
    (tmp_path / "stats").mkdir()
    for name, d in stats.items():
        d.to_netcdf(tmp_path / "stats" / f"{name}_by_level.nc")
    argv = ["forecast", "--checkpoint", str(ckpt), "--data", str(tmp_path / "data.nc")]
    argv += ["--stats", str(tmp_path / "stats")]
    argv += ["--init_time", str(ds["time"].values[1]), "--num_steps", "2", "--quiet"]
    argv += ["--out", str(path), "--memory_budget_gb", "0.01", "--attention", "mha"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "estimated peak memory" in err and "budget of 0.0 GB" in err
    assert not path.exists()


def test_member_keys_do_not_depend_on_ensemble_size():
    a = jax.random.key_data(forecast.member_keys(3, 2))
    b = jax.random.key_data(forecast.member_keys(3, 5))
    np.testing.assert_array_equal(a, b[:2])
    np.testing.assert_array_equal(
        a[1], jax.random.key_data(jax.random.fold_in(jax.random.key(3), 1))
    )


def test_member_keys_fold_in_the_init_time():
    inits = np.array(["2020-01-01T00", "2020-01-01T12", "1950-06-01T00"], "datetime64[ns]")
    per_init = jax.random.key_data(forecast.member_keys(3, 2, inits))  # [I, S]
    assert per_init.shape[:2] == (3, 2)
    # fold_in(fold_in(key(3), member), minutes since 1970 mod 2^32), by hand.
    minutes = (inits.astype("datetime64[m]").astype(np.int64) % 2**32).astype(np.uint32)
    for i, m in enumerate(minutes):
        for s in range(2):
            want = jax.random.fold_in(jax.random.fold_in(jax.random.key(3), s), m)
            np.testing.assert_array_equal(per_init[i, s], jax.random.key_data(want))
    # The first members do not depend on the ensemble size, nor on the other inits.
    more = jax.random.key_data(forecast.member_keys(3, 5, inits[1:]))
    np.testing.assert_array_equal(per_init[1:], more[:, :2])


def test_identical_inputs_at_two_inits_give_different_members(setup):
    """Noise is drawn per init time: the same frames and forcings at two inits differ."""
    cfg, ds, stats, params = setup
    data = arrays.prepare(ds, cfg.task_config, stats)
    structure = network.build_structure(cfg, data.lat, data.lon)
    frames = np.repeat(data.raw_frames[None, :2], 2, axis=0)
    forcings = np.repeat(data.forcings[None, :3], 2, axis=0)
    inits = data.times[[1, 3]]

    def run(init_times):
        ((_, out),) = forecast.rollout(
            params,
            structure,
            cfg,
            data.layout,
            data.static,
            frames,
            forcings,
            1,
            2,
            noise.noise_function(data.lat, data.lon),
            chunk_steps=1,
            init_times=init_times,
        )
        return out

    per_init = run(inits)
    assert np.isfinite(per_init).all()
    assert not np.allclose(per_init[0], per_init[1])
    same = run(None)  # without init times, member i has one key at every init
    np.testing.assert_array_equal(same[0], same[1])


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_run_writes_cf_files_equal_to_memory(setup, tmp_path, suffix):
    cfg, ds, stats, params = setup
    inits = ds["time"].values[[1]]
    mem = forecast.run(params, cfg, ds, stats, inits, 10, 2, chunk_steps=5, progress=False)
    assert mem["geopotential"].dims == ("sample", "init_time", "lead_time", "level", "lat", "lon")
    assert mem["2m_temperature"].dims == ("sample", "init_time", "lead_time", "lat", "lon")
    np.testing.assert_array_equal(mem["lead_time"].values, np.arange(1, 11) * STEP)
    np.testing.assert_array_equal(mem["valid_time"].values[0], inits[0] + np.arange(1, 11) * STEP)
    assert mem.attrs["Conventions"] == "CF-1.8"
    assert mem["lat"].attrs["units"] == "degrees_north"
    path = str(tmp_path / f"fc{suffix}")
    assert (
        forecast.run(params, cfg, ds, stats, inits, 10, 2, chunk_steps=5, out=path, progress=False)
        == path
    )
    opened = xarray.open_zarr(path) if suffix == ".zarr" else xarray.open_dataset(path)
    with opened as disk:
        for name in mem.data_vars:
            np.testing.assert_allclose(
                disk[name].transpose(*mem[name].dims).values, mem[name].values, rtol=1e-6
            )
        np.testing.assert_array_equal(disk["lead_time"].values, mem["lead_time"].values)
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_the_writer_never_holds_the_whole_forecast(setup, tmp_path, suffix, monkeypatch):
    """The file is laid out from a lazy template: a 15-day, 8-member 0.25 deg forecast's
    (78 GB of values) opens at once, and `forecast.run` hands the writer a lazy one."""
    import dask.array

    task = config.gencast_task()
    shape = (1, 8, 30, 721, 1440, len(channel_order.target_channels(task)))
    template = forecast.forecast_template(
        shape, task, np.array(["2020-01-01"], "datetime64[ns]"), np.arange(1, 31) * STEP,
        np.linspace(-90, 90, 721), np.arange(1440) * 0.25,
    )  # fmt: skip
    assert template.nbytes > 70e9 and template.sizes["lead_time"] == 30
    assert all(isinstance(v.data, dask.array.Array) for v in template.data_vars.values())
    forecast.ForecastWriter(str(tmp_path / f"big{suffix}"), template).abort()
    assert os.listdir(tmp_path) == []

    seen, init = [], forecast.ForecastWriter.__init__

    def spy(self, path, template, **kw):
        seen.append(template)
        init(self, path, template, **kw)

    monkeypatch.setattr(forecast.ForecastWriter, "__init__", spy)
    cfg, ds, stats, params = setup
    out = str(tmp_path / f"fc{suffix}")
    forecast.run(params, cfg, ds, stats, ds["time"].values[[1]], 2, 2, out=out, progress=False)
    assert all(isinstance(v.data, dask.array.Array) for v in seen[0].data_vars.values())


@pytest.mark.parametrize("members_per_batch", [None, 1])
@pytest.mark.parametrize("out", [None, "fc.zarr"])
def test_the_host_holds_one_chunk_at_a_time(setup, tmp_path, monkeypatch, out, members_per_batch):
    """Every chunk the rollout returns is freed before the next one is computed: before,
    the caller's loop and the rollout both held the last chunk while JAX made the next
    (`python benchmarks/forecast_memory.py --run`). The forcings reach the step one row of
    longitudes per time, not one per latitude (the progress features)."""
    import gc
    import weakref

    class Owned(np.ndarray):  # owns its memory, so every view keeps it alive
        pass

    chunks, windows, start = [], [], [0]
    gather, step = forecast.multihost.gather, forecast.rollout_chunk

    def owned_gather(x):
        value = np.asarray(gather(x))
        owned = Owned(value.shape, value.dtype)
        owned[...] = value
        chunks.append((start[0], weakref.ref(owned)))
        return owned

    def checked_step(*args, **kw):
        windows.append(args[6].shape)
        start[0] = int(args[9][2][0])  # the chunk's first step
        gc.collect()
        held = [s for s, r in chunks if s < start[0] and r() is not None]
        assert not held, f"chunk {held} still held when chunk {start[0]} is computed"
        return step(*args, **kw)

    monkeypatch.setattr(forecast.multihost, "gather", owned_gather)
    monkeypatch.setattr(forecast, "rollout_chunk", checked_step)
    cfg, ds, stats, params = setup
    path = None if out is None else str(tmp_path / out)
    forecast.run(
        params, cfg, ds, stats, ds["time"].values[[1, 2]], 6, 2, chunk_steps=2, out=path,
        members_per_batch=members_per_batch, progress=False,
    )  # fmt: skip
    assert len(windows) == 3 * (1 if members_per_batch is None else 4)
    assert all(w[-3] == 1 for w in windows)  # [pairs, K, T_in + 1, lat = 1, lon, C_f]


def test_forcings_one_row_per_time_give_the_same_forecast(setup):
    cfg, ds, stats, params = setup
    data = arrays.prepare(ds, cfg.task_config, stats)
    structure = network.build_structure(cfg, data.lat, data.lon)
    noise_fn = noise.noise_function(data.lat, data.lon)
    forcings = np.broadcast_to(data.forcings[None, :6], (1, 6) + data.forcings.shape[1:])
    runs = [
        list(forecast.rollout(params, structure, cfg, data.layout, data.static,
                              data.raw_frames[None, :2], f, 4, 2, noise_fn, chunk_steps=2))
        for f in (np.ascontiguousarray(forcings), forcings[:, :, :1])
    ]  # fmt: skip
    for (_, full), (_, row) in zip(*runs, strict=True):
        np.testing.assert_array_equal(full, row)


def test_failed_forecast_keeps_previous_output(setup, tmp_path, monkeypatch):
    cfg, ds, stats, params = setup
    path = tmp_path / "fc.nc"
    dims = ("sample", "init_time", "lead_time")  # a forecast's, as `safe_output` checks
    earlier = xarray.Dataset({"x": (dims, [[[1.0]]])}, attrs={"source": "minigencast (earlier)"})
    earlier.to_netcdf(path)
    earlier = path.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("interrupted")
        yield  # pragma: no cover

    monkeypatch.setattr(forecast, "rollout", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        forecast.run(
            params,
            cfg,
            ds,
            stats,
            ds["time"].values[[1]],
            2,
            2,
            out=str(path),
            progress=False,
            overwrite=True,
        )
    assert path.read_bytes() == earlier
    assert os.listdir(tmp_path) == ["fc.nc"]


def test_unwritable_output_is_refused_before_computing(setup, tmp_path, monkeypatch):
    cfg, ds, stats, params = setup
    monkeypatch.setattr(forecast, "rollout", lambda *a, **k: pytest.fail("computed anyway"))

    def run(target):
        forecast.run(
            params, cfg, ds, stats, ds["time"].values[[1]], 2, 2, out=str(target), progress=False
        )

    # A folder that cannot be created, for any user (root included): its parent is a file.
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(PermissionError, match="cannot create output folder"):
        run(blocker / "sub" / "fc.nc")
    assert blocker.read_text() == "not a folder"
    # A folder that exists but is read-only (permissions are not enforced for root).
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):
            with pytest.raises(PermissionError, match="is not writable"):
                run(locked / "fc.nc")
            assert os.listdir(locked) == []
    finally:
        locked.chmod(0o700)


def test_bad_inputs_give_clear_errors(setup, tmp_path):
    cfg, ds, stats, params = setup
    # Gaps: the init needs t - 12 h.
    gappy = ds.isel(time=[0, 2, 3, 4])
    with pytest.raises(ValueError, match="input frame"):
        forecast.run(params, cfg, gappy, stats, gappy["time"].values[[1]], 2, 2, progress=False)
    # Another grid than the checkpoint's.
    meta = {"lat": list(np.linspace(-90, 90, 33)), "lon": list(np.arange(64) * 5.625)}
    with pytest.raises(ValueError, match="grid"):
        forecast.run(
            params, cfg, ds, stats, ds["time"].values[[1]], 2, 2, metadata=meta, progress=False
        )
    # Variables the model predicts are missing from the data.
    with pytest.raises(ValueError, match="geopotential"):
        forecast.run(
            params,
            cfg,
            ds.drop_vars("geopotential"),
            stats,
            ds["time"].values[[1]],
            2,
            2,
            progress=False,
        )
    # Levels the model uses are missing.
    with pytest.raises(ValueError, match="levels"):
        forecast.run(
            params, cfg, ds.isel(level=[0, 1]), stats, ds["time"].values[[1]], 2, 2, progress=False
        )
    # A checkpoint whose weights do not fit its config (e.g. from another preset).
    bad = tmp_path / "model.npz"
    checkpoint.save(str(bad), params, config.cpu())
    with pytest.raises(checkpoint.CheckpointError):
        forecast.load_model(str(bad))


def test_load_model_reads_our_checkpoints(setup, tmp_path):
    cfg, ds, stats, params = setup
    state = train.init_train_state(params, config.TrainConfig())
    d = training_state.save(
        str(tmp_path),
        step=1,
        state=state,
        config=cfg,
        train_config=config.TrainConfig(),
        loader_position={},
        rng_key=jax.random.key(0),
        grid={"lat": ds["lat"].values, "lon": ds["lon"].values},
    )
    p2, cfg2, meta = forecast.load_model(d)
    assert cfg2.task_config == cfg.task_config
    assert cfg2.sampler_config == cfg.sampler_config
    np.testing.assert_array_equal(meta["lat"], ds["lat"].values)
    forecast.check_grid_matches(meta, ds["lat"].values, ds["lon"].values)


def test_layout_never_feeds_back_target_only_variables():
    from minigencast import normalization, variables
    from minigencast.data import synthetic

    levels = (500, 850)
    task = config.gencast_task(levels)
    ds = synthetic.sample(num_times=4, levels=levels)
    stats = normalization.compute_stats(ds, chunks=None)
    layout = arrays.build_layout(task, stats)
    targets = channel_order.target_channels(task)
    precip = [i for i, c in enumerate(targets) if c.variable == variables.PRECIPITATION]
    n_block = len(targets) + len(channel_order.forcing_channels(task))
    sources = {int(i) % n_block for i in layout.input_index if i < 2 * n_block}
    assert precip and not set(precip) & sources
    assert not layout.is_residual[precip].any()
    sst = [i for i, c in enumerate(targets) if c.variable == "sea_surface_temperature"]
    assert layout.nan_fillable[sst].all() and layout.nan_fillable.sum() == 1
    # Residual round trip, and SST NaNs filled before use.
    prep = arrays.prepare(ds, task, stats)
    assert np.isnan(prep.raw_frames[..., sst]).any() and not np.isnan(prep.frames).any()
    r = arrays.to_residual(np, prep.frames[2], prep.frames[1], layout)
    back = arrays.from_residual(np, r, prep.frames[1], layout)
    np.testing.assert_allclose(back, prep.frames[2], rtol=1e-5, atol=1e-3)


@pytest.mark.slow
def test_sst_nans_reinserted_in_gencast_task_rollout():
    from minigencast import normalization
    from minigencast.data import synthetic

    levels = (500, 850)
    base = config.tiny()
    cfg = dataclasses.replace(
        base,
        task_config=config.gencast_task(levels),
        sampler_config=dataclasses.replace(base.sampler_config, num_noise_levels=3),
    )
    ds = synthetic.sample(num_times=4, levels=levels)
    stats = normalization.compute_stats(ds, chunks=None)
    params = network.init_denoiser(jax.random.key(0), cfg, *network.channel_counts(cfg))
    fc = forecast.run(
        params, cfg, ds, stats, ds["time"].values[[1]], 3, 2, chunk_steps=3, progress=False
    )
    land = np.isnan(ds["sea_surface_temperature"].values[:2]).any(0)
    sst = fc["sea_surface_temperature"].values  # [S, I, L, lat, lon]
    assert np.isnan(sst[..., land]).all() and np.isfinite(sst[..., ~land]).all()
    assert np.isfinite(fc["total_precipitation_12hr"].values).all()


@pytest.mark.slow
def test_members_sharded_over_four_devices_match_one_device(tmp_path):
    import json
    import textwrap

    import host_devices

    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {os.path.join(host_devices.REPO, "tests")!r})
        import jax, numpy as np, test_forecast
        assert len(jax.devices()) == int(sys.argv[1])
        s = test_forecast.setup.__wrapped__()
        assert (forecast_mesh := test_forecast.forecast.sample_mesh(4)) is not None or \\
            len(jax.devices()) == 1
        out = np.concatenate([o for _, o in test_forecast._rollout(s, 4, members=4, chunk=2)], 2)
        # 8 members in groups of 4: sharded groups whose carries wait on the host.
        grouped = test_forecast._rollout(s, 4, members=8, chunk=2, members_per_batch=4)
        out8 = np.concatenate([o for _, o in grouped], 2)
        print(json.dumps(out[:, :, :, :3, :3, :2].ravel().tolist()
                         + out8[:, :, :, :3, :3, :2].ravel().tolist()))
    """)
    res = {n: np.asarray(json.loads(host_devices.run(script, n, n))) for n in (1, 4)}
    np.testing.assert_allclose(res[1], res[4], rtol=1e-4, atol=1e-4)
