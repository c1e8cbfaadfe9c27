"""Training: optimiser, loader, atomic checkpoints, exact resume, data parallelism."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap

import host_devices
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import synthetic_data

from minigencast import arrays, channel_order, config, loader, noise, train, training_state

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Small enough that a step compiles in seconds: no validation CRPS (sampler compile).
TC = config.TrainConfig(
    batch_size=4,
    num_steps=6,
    warmup_steps=2,
    eval_every=1000,
    checkpoint_every=3,
    keep_checkpoints=2,
    ema_decay=0.9,
    prefetch=2,
)


def _run_train(run_dir, tc=TC, ds=None, **kw):
    ds = synthetic_data.dataset(num_times=24) if ds is None else ds
    return train.train(
        ds,
        synthetic_data.stats(ds),
        config.tiny(),
        tc,
        run_dir,
        progress=False,
        eval_members=0,
        **kw,
    )


def _params(state):
    return jax.tree_util.tree_leaves(jax.device_get(state["params"]))


# ----------------------------------------------------------------------------- optimiser
def test_learning_rate_warmup_then_cosine():
    tc = config.TrainConfig(
        num_steps=100, warmup_steps=10, peak_learning_rate=1.0, final_learning_rate_fraction=0.1
    )
    lr = train.learning_rate_schedule(tc)
    assert float(lr(0)) == 0.0
    np.testing.assert_allclose(float(lr(5)), 0.5, rtol=1e-6)
    np.testing.assert_allclose(float(lr(10)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(float(lr(55)), 0.1 + 0.9 * 0.5, rtol=1e-5)  # half-way: mean
    np.testing.assert_allclose(float(lr(100)), 0.1, rtol=1e-5)
    assert np.all(np.diff([float(lr(s)) for s in range(10, 101)]) <= 1e-7)


def test_gradient_clipping_bounds_the_update():
    tc = config.TrainConfig(
        max_grad_norm=1.0, peak_learning_rate=1.0, warmup_steps=0, weight_decay=0.0, num_steps=10
    )
    opt = train.make_optimizer(tc)
    params = {"w": jnp.zeros(3)}
    state = opt.init(params)
    huge = {"w": jnp.array([1e6, 0.0, 0.0])}
    small = {"w": jnp.array([1.0, 0.0, 0.0])}
    # Adam normalises magnitudes, so clipped huge and unclipped unit gradients match.
    u1, _ = opt.update(huge, state, params)
    u2, _ = opt.update(small, state, params)
    np.testing.assert_allclose(u1["w"], u2["w"], rtol=1e-6)


def test_weight_decay_shrinks_matrices_not_biases():
    tc = config.TrainConfig(peak_learning_rate=0.1, warmup_steps=0, weight_decay=0.5, num_steps=10)
    opt = train.make_optimizer(tc)
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    # With zero gradients only the decay moves anything: -lr * weight_decay * w.
    updates, _ = opt.update(zero, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5, rtol=1e-6)
    np.testing.assert_array_equal(updates["b"], 0.0)


def test_ema_update_formula():
    ema = {"w": jnp.zeros(2)}
    new = train.ema_update(ema, {"w": jnp.ones(2)}, decay=0.99, step=1000)
    np.testing.assert_allclose(new["w"], 0.01, rtol=1e-5)
    # Early steps: d = (1 + step) / (10 + step) caps the decay.
    early = train.ema_update(ema, {"w": jnp.ones(2)}, decay=0.99, step=0)
    np.testing.assert_allclose(early["w"], 0.9, rtol=1e-5)


# ----------------------------------------------------------------------------- loader
def test_split_by_time_is_disjoint_and_skips_gaps():
    times = np.arange(
        np.datetime64("2000-01-01T00"), np.datetime64("2000-01-11T00"), np.timedelta64(12, "h")
    )
    times = np.delete(times, 7)  # a gap
    tr, va = loader.split_by_time(times, 0.3)
    assert len(tr) and len(va)
    t = times.astype("datetime64[s]")
    for w in np.concatenate([tr, va]):
        np.testing.assert_array_equal(np.diff(t[w]), [np.timedelta64(12, "h")] * 2)
    assert t[tr].max() < t[va].min()


def test_loader_shuffle_reproducible_and_resumable():
    wins = np.stack([np.arange(30), np.arange(30) + 1, np.arange(30) + 2], -1)
    fetch = lambda w: {"x": w.copy()}  # noqa: E731
    a = loader.WindowLoader(wins, fetch, 4, seed=3, prefetch=2)
    it = iter(a)
    first = [next(it) for _ in range(12)]  # crosses an epoch (7 batches per epoch)
    assert first[6][0] == {"epoch": 0, "batch": 7} and first[7][0] == {"epoch": 1, "batch": 1}
    b = loader.WindowLoader(wins, fetch, 4, seed=3, prefetch=0, position=first[4][0])
    it_b = iter(b)
    for k in range(5, 12):
        np.testing.assert_array_equal(next(it_b)[1]["x"], first[k][1]["x"])
    c = loader.WindowLoader(wins, fetch, 4, seed=4, prefetch=0)
    assert not np.array_equal(next(iter(c))[1]["x"], first[0][1]["x"])


def test_loader_augmentation_is_fixed_by_the_position():
    """The random longitude roll of a resumed loader repeats the uninterrupted one's."""
    wins = np.stack([np.arange(30), np.arange(30) + 1, np.arange(30) + 2], -1)
    lon = np.arange(8.0)

    def fetch(w):  # every channel holds lon + 100 * window start
        x = np.broadcast_to(lon[:, None] + 100 * w[:, :1, None, None], (len(w), 2, 8, 1))
        return {k: x.copy() for k in ("inputs", "forcings", "targets")}

    kw = dict(seed=3, augment=arrays.roll_longitude)
    it = iter(loader.WindowLoader(wins, fetch, 4, prefetch=2, **kw))
    first = [next(it) for _ in range(10)]
    resumed = iter(loader.WindowLoader(wins, fetch, 4, prefetch=0, position=first[4][0], **kw))
    for k in range(5, 10):
        after, batch = next(resumed)
        assert after == first[k][0]
        for name in batch:
            np.testing.assert_array_equal(batch[name], first[k][1][name])
    rolled = np.stack([b["inputs"][:, 0, :, 0] % 100 for _, b in first])  # [10, 4, 8]
    starts = rolled[..., 0]
    assert len(np.unique(starts)) > 1, "every window got the same roll"
    np.testing.assert_array_equal(rolled, (starts[..., None] + lon) % 8)
    for _, b in first:  # one roll per window, shared by inputs, forcings and targets
        np.testing.assert_array_equal(b["inputs"], b["targets"])
        np.testing.assert_array_equal(b["inputs"], b["forcings"])


def test_longitude_roll_is_a_rotation_of_the_planet():
    """A window turned by k columns sees the local solar time of the turned planet.

    day_progress(t, lon) rolled by k columns == day_progress(t - k dlon / 360 day, lon):
    the rolled forcings are those of the same planet k columns further west in time.
    """
    from minigencast.data import forcings

    lon = np.arange(0.0, 360.0, 5.625)
    t = np.array([3 * 86400 + 5 * 3600])
    k = 5
    rolled = np.roll(forcings.day_progress(t, lon), k, axis=-1)
    shifted = forcings.day_progress(t - k * 5.625 / 360 * 86400, lon)
    np.testing.assert_allclose(rolled, shifted, atol=1e-6)

    example = {"inputs": np.arange(2 * 3 * 8 * 2.0).reshape(2, 3, 8, 2)}
    out = arrays.roll_longitude(example, np.random.default_rng(0))["inputs"]
    for b in range(2):
        s = int(np.argmax(out[b, 0, :, 0] == example["inputs"][b, 0, 0, 0]))
        np.testing.assert_array_equal(out[b], np.roll(example["inputs"][b], s, axis=-2))


def test_loader_surfaces_worker_errors():
    def bad(w):
        raise RuntimeError("disk on fire")

    wins = np.zeros((8, 3), int)
    with pytest.raises(RuntimeError, match="disk on fire"):
        next(iter(loader.WindowLoader(wins, bad, 2, prefetch=2)))


def test_fetch_matches_the_data_layers_pipeline():
    """Our array windows equal data.windows + normalization + stacking (GenCast task, SST NaNs)."""
    from minigencast import normalization, stacking
    from minigencast.data import synthetic
    from minigencast.data import windows as dwin

    levels = (500, 850, 1000)
    task = config.gencast_task(levels)
    ds = synthetic.sample(num_times=4, levels=levels)
    stats = normalization.compute_stats(
        synthetic.sample(num_times=6, levels=levels, seed=1), chunks=None
    )
    prep = arrays.prepare(ds, task, stats)
    fetch = arrays.make_fetch(prep.frames, prep.forcings, prep.static, prep.layout)
    ex = fetch(np.array([[0, 1, 2]]))
    inputs, targets, forcings = dwin.window(ds, task, 1, 1)
    ref_in, ch = stacking.dataset_to_array(normalization.normalize_inputs(inputs, stats))
    ref_t, _ = stacking.dataset_to_array(normalization.normalize_targets(targets, inputs, stats))
    ref_f, _ = stacking.dataset_to_array(
        normalization.normalize_inputs(forcings, stats), grid=ref_in.shape[-3:-1]
    )
    assert tuple(ch) == channel_order.input_channels(task)
    assert not np.isnan(ex["inputs"]).any() and not np.isnan(ex["targets"]).any()
    np.testing.assert_allclose(ex["inputs"], ref_in.reshape(ex["inputs"].shape), atol=1e-5)
    np.testing.assert_allclose(ex["targets"], ref_t.reshape(ex["targets"].shape), atol=1e-5)
    np.testing.assert_allclose(ex["forcings"], ref_f.reshape(ex["forcings"].shape), atol=1e-6)


# ----------------------------------------------------------------------------- checkpoints
def _tiny_state(tc=TC, seed=0):
    params = {"a": {"w": jax.random.normal(jax.random.key(seed), (3, 2))}}
    return train.init_train_state(params, tc)


def _save(directory, step, state, cfg=None, lat=(0.0, 1.0), keep=2):
    return training_state.save(
        directory,
        step=step,
        state=state,
        config=cfg or config.tiny(),
        train_config=TC,
        loader_position={"epoch": 0, "batch": step},
        rng_key=jax.random.key(0),
        grid={"lat": np.asarray(lat), "lon": np.asarray([0.0])},
        keep=keep,
    )


def test_save_removes_only_its_own_dead_temporaries(tmp_path):
    """A crashed save's `step_*.tmp-<dead pid>` / `.old-<dead pid>` go; a live writer's and
    a user's stay."""
    import multiprocessing

    dead = multiprocessing.Process(target=int)
    dead.start()
    dead.join()
    for name in (
        f"step_00000007.tmp-{dead.pid}",
        f"step_00000006.old-{dead.pid}",
        "step_00000007.tmp-1",
        "notes.tmp-1234",
    ):
        (tmp_path / name).mkdir()
    (tmp_path / f"step_00000007.tmp-{dead.pid}" / "model.npz").write_bytes(b"partial")
    (tmp_path / "step_00000002").mkdir()  # a user's folder where a checkpoint would go
    users = tmp_path / f"step_00000005.tmp-{dead.pid}"  # our name, but a user's file in it
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    _save(str(tmp_path), 1, _tiny_state())
    assert sorted(os.listdir(tmp_path)) == [
        "notes.tmp-1234",
        "step_00000001",
        "step_00000002",
        f"step_00000005.tmp-{dead.pid}",
        "step_00000007.tmp-1",
    ]
    assert (users / "notes.txt").read_text() == "mine"
    with pytest.raises(FileExistsError, match="holds files other than"):
        _save(str(tmp_path), 2, _tiny_state())
    assert os.listdir(tmp_path / "step_00000002") == []
    assert not [n for n in os.listdir(tmp_path) if n.startswith("step_00000002.tmp-")]


def test_checkpoint_never_replaces_a_folder_that_is_not_ours(tmp_path):
    theirs = tmp_path / "step_00000001"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds files other than"):
        _save(str(tmp_path), 1, _tiny_state())
    assert (theirs / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000001"]  # no temporary left


def test_checkpoint_pruning_and_resaving_keep_a_users_files(tmp_path):
    """A checkpoint folder where the user put a file is neither pruned nor replaced."""
    d = str(tmp_path)
    _save(d, 1, _tiny_state(), keep=1)
    (tmp_path / "step_00000001" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds files other than"):
        _save(d, 1, _tiny_state(seed=1), keep=1)
    _save(d, 2, _tiny_state(), keep=1)  # would prune step 1
    assert (tmp_path / "step_00000001" / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(d)) == ["step_00000001", "step_00000002"]
    _save(d, 3, _tiny_state(), keep=1)  # prunes step 2, ours alone
    assert sorted(os.listdir(d)) == ["step_00000001", "step_00000003"]


def test_resaving_a_step_replaces_it_and_leaves_no_temporary(tmp_path):
    d = str(tmp_path)
    _save(d, 1, _tiny_state())
    _save(d, 1, _tiny_state(seed=1))  # e.g. after a resume
    assert sorted(os.listdir(d)) == ["step_00000001"]
    grid = {"lat": np.asarray([0.0, 1.0]), "lon": np.asarray([0.0])}
    r = training_state.restore(training_state.latest(d), _tiny_state(), config.tiny(), grid)
    for a, b in zip(
        jax.tree_util.tree_leaves(r["state"]["params"]),
        jax.tree_util.tree_leaves(_tiny_state(seed=1)["params"]),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_roundtrip_keep_last_and_mismatch(tmp_path):
    d = str(tmp_path)
    state = _tiny_state()
    for step in (1, 2, 3):
        _save(d, step, state)
    assert [s for s, _ in training_state.list_checkpoints(d)] == [2, 3]
    grid = {"lat": np.asarray([0.0, 1.0]), "lon": np.asarray([0.0])}
    r = training_state.restore(training_state.latest(d), _tiny_state(seed=1), config.tiny(), grid)
    assert r["step"] == 3 and r["loader_position"] == {"epoch": 0, "batch": 3}
    assert int(r["state"]["step"]) == 3
    for part in ("params", "opt_state", "ema_params"):
        for a, b in zip(
            jax.tree_util.tree_leaves(r["state"][part]),
            jax.tree_util.tree_leaves(state[part]),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
    resampled = dataclasses.replace(
        config.tiny(), sampler_config=config.SamplerConfig(noise_level_inflation_factor=1.4)
    )
    training_state.check_compatible(training_state.latest(d), resampled, grid)  # no error
    other = dataclasses.replace(config.tiny(), grid=(33, 64))
    with pytest.raises(training_state.CheckpointMismatchError, match="another configuration"):
        training_state.restore(training_state.latest(d), state, other, grid)
    with pytest.raises(training_state.CheckpointMismatchError, match="grid"):
        training_state.restore(
            training_state.latest(d),
            state,
            config.tiny(),
            {"lat": np.asarray([0.0, 2.0]), "lon": np.asarray([0.0])},
        )
    bigger = train.init_train_state({"a": {"w": jnp.zeros((4, 2))}}, TC)
    with pytest.raises(training_state.CheckpointMismatchError, match="shape"):
        training_state.restore(training_state.latest(d), bigger, config.tiny(), grid)


@pytest.mark.slow
def test_model_part_is_deepmind_npz(tmp_path):
    from minigencast import checkpoint, network

    cfg = config.tiny()
    params = network.init_denoiser(jax.random.key(0), cfg, *network.channel_counts(cfg))
    state = train.init_train_state(params, TC)
    path = _save(str(tmp_path), 5, state, cfg)
    ck = checkpoint.load(os.path.join(path, "model.npz"))  # strict: every key and shape
    assert ck.config.task_config == cfg.task_config
    # EMA weights are the model part.
    for a, b in zip(
        jax.tree_util.tree_leaves(ck.params),
        jax.tree_util.tree_leaves(state["ema_params"]),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    assert json.load(open(os.path.join(path, "metadata.json")))["lat"] == [0.0, 1.0]


def test_kill_during_checkpoint_write_keeps_previous(tmp_path):
    """SIGKILL inside the second save: step 1 survives, the debris is ignored and cleaned."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {os.path.join(REPO, "tests")!r})
        import test_train
        from minigencast import training_state
        d = {str(tmp_path)!r}
        state = test_train._tiny_state()
        test_train._save(d, 1, state)
        real = training_state.write_npz_durably
        def dying(path, arrays):
            with open(path, "wb") as f:
                f.write(b"partial")
            os.kill(os.getpid(), signal.SIGKILL)
        training_state.write_npz_durably = dying
        test_train._save(d, 2, state)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    names = os.listdir(tmp_path)
    assert any(".tmp-" in n for n in names)  # the interrupted write's leftovers
    assert training_state.latest(str(tmp_path)).endswith("step_00000001")
    _save(str(tmp_path), 2, _tiny_state())
    assert not any(".tmp-" in n for n in os.listdir(tmp_path))
    assert training_state.latest(str(tmp_path)).endswith("step_00000002")


# ----------------------------------------------------------------------------- exact resume
class _Stop(Exception):
    pass


@pytest.mark.slow
def test_interrupted_run_resumes_bitwise(tmp_path):
    """6 steps in one go == interrupted at step 4 (checkpoint at 3) + resume."""
    ds = synthetic_data.dataset(num_times=24)
    tc = dataclasses.replace(TC, random_longitude_roll=True)  # augmentation resumes too
    full = _run_train(str(tmp_path / "full"), tc=tc, ds=ds)
    assert [r["step"] for r in full["history"]] == list(range(1, 7))

    def stop_at_4(step, state, row):
        if step == 4:
            raise _Stop

    with pytest.raises(_Stop):
        _run_train(str(tmp_path / "cut"), tc=tc, ds=ds, callback=stop_at_4)
    assert training_state.latest(str(tmp_path / "cut") + "/checkpoints").endswith("step_00000003")
    resumed = _run_train(str(tmp_path / "cut"), tc=tc, ds=ds)
    assert [r["step"] for r in resumed["history"]] == [4, 5, 6]
    for a, b in zip(_params(full["state"]), _params(resumed["state"]), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        [r["loss"] for r in full["history"][3:]], [r["loss"] for r in resumed["history"]]
    )


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_is_bitwise(tmp_path):
    """A real SIGKILL between checkpoints, then `minigencast train` resumes it exactly."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {os.path.join(REPO, "tests")!r})
        import test_train
        def kill(step, state, row):
            if step == 5:
                os.kill(os.getpid(), signal.SIGKILL)
        test_train._run_train(sys.argv[1], callback=kill if sys.argv[2] == "kill" else None)
    """)
    run = lambda d, mode: subprocess.run(  # noqa: E731
        [sys.executable, "-c", script, str(d), mode], cwd=REPO, capture_output=True
    )
    assert run(tmp_path / "a", "kill").returncode == -signal.SIGKILL
    assert run(tmp_path / "a", "resume").returncode == 0
    assert run(tmp_path / "b", "full").returncode == 0
    za = np.load(tmp_path / "a" / "checkpoints" / "step_00000006" / "train_state.npz")
    zb = np.load(tmp_path / "b" / "checkpoints" / "step_00000006" / "train_state.npz")
    keys = [k for k in za.files if k.startswith(("params", "opt_state", "ema_params"))]
    assert keys and sorted(keys) == sorted(
        k for k in zb.files if k.startswith(("params", "opt_state", "ema_params"))
    )
    for k in keys:
        np.testing.assert_array_equal(za[k], zb[k], err_msg=k)


# ----------------------------------------------------------------------------- devices
@pytest.mark.slow
def test_one_and_four_devices_give_the_same_training(tmp_path):
    """Same losses and weights with the batch sharded over 4 (forced host) devices (GenCast)."""
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {os.path.join(REPO, "tests")!r})
        import dataclasses, jax, numpy as np, test_train
        assert len(jax.devices()) == int(sys.argv[2]), jax.devices()
        tc = dataclasses.replace(test_train.TC, num_steps=2, checkpoint_every=2)
        out = test_train._run_train(sys.argv[1], tc=tc)
        leaves = test_train._params(out["state"])
        json.dump({{"loss": [r["loss"] for r in out["history"]],
                   "params": [np.asarray(x).ravel()[:50].tolist() for x in leaves]}},
                  open(sys.argv[1] + ".json", "w"))
    """)
    results = {}
    for n in (1, 4):
        d = tmp_path / f"dev{n}"
        host_devices.run(script, n, d, n)
        results[n] = json.load(open(str(d) + ".json"))
    np.testing.assert_allclose(results[1]["loss"], results[4]["loss"], rtol=1e-5)
    for a, b in zip(results[1]["params"], results[4]["params"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_dataset_with_gaps_trains_on_complete_windows_only(tmp_path):
    ds = synthetic_data.dataset(num_times=24)
    ds = ds.isel(time=[i for i in range(24) if i not in (5, 11, 17)])
    prep = arrays.prepare(ds, config.tiny().task_config, synthetic_data.stats(ds))
    tr, va = loader.split_by_time(prep.times, 0.15)
    t = prep.times
    assert all((np.diff(t[w]) == np.timedelta64(12, "h")).all() for w in tr)
    few = ds.isel(time=[0, 2, 4, 6, 8, 10])  # 24 h apart: no window at all
    with pytest.raises(ValueError, match="no training windows"):
        _run_train(str(tmp_path), ds=few)


# ----------------------------------------------------------------------------- fast twins
# The GenCast-level tests above compile the tiny denoiser's gradient (tens of seconds);
# these twins run the same machinery (make_train_step, sharding, loader, checkpoints)
# on a small quadratic model so the default tier checks it in seconds.
def _toy_problem(batch_size=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 3, 5)).astype(np.float32)
    y = (x @ rng.standard_normal((5, 2))).astype(np.float32)
    wins = np.stack([np.arange(40)] * 3, -1)
    fetch = lambda w: {"x": x[w[:, 0]], "y": y[w[:, 0]]}  # noqa: E731

    def example_loss(params, structure, ex, key):
        noise = 0.1 * jax.random.normal(key, ex["y"].shape)
        pred = ex["x"] @ params["lin"]["w"] + params["lin"]["b"][None]
        return jnp.mean((pred - ex["y"] - noise) ** 2)

    params = {"lin": {"w": jnp.zeros((5, 2)), "b": jnp.zeros(2)}}
    return wins, fetch, example_loss, params


def _toy_steps(tc, state, start, stop, position, directory=None):
    wins, fetch, example_loss, _ = _toy_problem(tc.batch_size)
    mesh = train.data_mesh()
    step_fn = train.make_train_step(example_loss, tc, mesh)
    batches = iter(
        loader.WindowLoader(
            wins, fetch, tc.batch_size, seed=tc.seed, prefetch=tc.prefetch, position=position
        )
    )
    state = train.replicate(state, mesh)
    losses = []
    for _ in range(start, stop):
        pos, batch = next(batches)
        state, m = step_fn(state, {}, train.shard_batch(batch, mesh), jax.random.key(tc.seed))
        losses.append(float(m["loss"]))
    if directory is not None:
        _save_toy(directory, stop, state, pos)
    return state, losses, pos


def _save_toy(directory, step, state, pos):
    training_state.save(
        directory,
        step=step,
        state=state,
        config=config.tiny(),
        train_config=TC,
        loader_position=pos,
        rng_key=jax.random.key(0),
        grid={"lat": np.zeros(1), "lon": np.zeros(1)},
        keep=2,
    )


def test_toy_resume_from_checkpoint_is_bitwise(tmp_path, monkeypatch):
    # checkpoint.save needs real GenCast params for model.npz; the toy stores only train_state.
    monkeypatch.setattr(
        training_state.checkpoint, "save", lambda path, *a, **k: open(path, "wb").close()
    )
    tc = dataclasses.replace(TC, num_steps=12, prefetch=2)
    _, _, _, params = _toy_problem()
    full, full_losses, _ = _toy_steps(tc, train.init_train_state(params, tc), 0, 12, None)
    d = str(tmp_path)
    _toy_steps(tc, train.init_train_state(params, tc), 0, 5, None, directory=d)
    r = training_state.restore(
        training_state.latest(d),
        train.init_train_state(params, tc),
        config.tiny(),
        {"lat": np.zeros(1), "lon": np.zeros(1)},
    )
    resumed, resumed_losses, _ = _toy_steps(tc, r["state"], 5, 12, r["loader_position"])
    assert full_losses[5:] == resumed_losses
    for part in ("params", "opt_state", "ema_params"):
        for a, b in zip(
            jax.tree_util.tree_leaves(jax.device_get(full[part])),
            jax.tree_util.tree_leaves(jax.device_get(resumed[part])),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
    assert full_losses[-1] < full_losses[0]


def test_toy_one_and_four_devices_agree(tmp_path):
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {os.path.join(REPO, "tests")!r})
        import dataclasses, jax, numpy as np, test_train
        assert len(jax.devices()) == int(sys.argv[1])
        tc = dataclasses.replace(test_train.TC, num_steps=8, batch_size=8)
        _, _, _, params = test_train._toy_problem()
        state, losses, _ = test_train._toy_steps(tc, test_train.train.init_train_state(params, tc),
                                                 0, 8, None)
        print(json.dumps({{"loss": losses,
                          "w": np.asarray(state["params"]["lin"]["w"]).ravel().tolist()}}))
    """)
    out = {n: json.loads(host_devices.run(script, n, n)) for n in (1, 4)}
    np.testing.assert_allclose(out[1]["loss"], out[4]["loss"], rtol=1e-6)
    np.testing.assert_allclose(out[1]["w"], out[4]["w"], rtol=1e-5, atol=1e-7)


def test_validation_loss_is_the_same_for_any_batch_size():
    wins, fetch, example_loss, params = _toy_problem()
    params = jax.tree_util.tree_map(lambda p: p + 0.3, params)
    mesh = train.data_mesh()
    eval_loss = train.make_eval_loss(example_loss, mesh)
    values = [
        train.validation_loss(eval_loss, params, {}, wins, fetch, b, mesh) for b in (3, 4, 8, 40)
    ]
    # Window by window, each with its own key fold_in(key(1), i).
    base = jax.random.key(1)
    direct = [
        float(
            example_loss(
                params,
                {},
                jax.tree_util.tree_map(lambda a: a[0], fetch(wins[i : i + 1])),
                jax.random.fold_in(base, i),
            )
        )
        for i in range(len(wins))
    ]
    np.testing.assert_allclose(values, np.mean(direct), rtol=1e-5)
    other_seed = train.validation_loss(eval_loss, params, {}, wins, fetch, 4, mesh, seed=5)
    assert abs(other_seed - values[0]) > 1e-6


def test_remat_switch_changes_memory_not_results():
    tc = dataclasses.replace(TC, num_steps=3)
    _, _, _, params = _toy_problem()
    plain, plain_losses, _ = _toy_steps(tc, train.init_train_state(params, tc), 0, 3, None)
    tc_r = dataclasses.replace(tc, remat=True)
    remat, remat_losses, _ = _toy_steps(tc_r, train.init_train_state(params, tc_r), 0, 3, None)
    np.testing.assert_allclose(plain_losses, remat_losses, rtol=1e-6)
    np.testing.assert_allclose(
        plain["params"]["lin"]["w"], remat["params"]["lin"]["w"], rtol=1e-5, atol=1e-7
    )


def test_validation_crps_is_the_fair_crps_of_the_picked_windows(monkeypatch):
    """validation_crps against a brute-force O(M^2) fair CRPS with exact cell-area weights."""
    import types

    cfg = config.cpu()
    n_lat, n_lon, n_t, n_c, members = (
        5,
        8,
        12,
        len(channel_order.target_channels(cfg.task_config)),
        3,
    )
    rng = np.random.default_rng(0)
    lat = np.linspace(-90, 90, n_lat)
    data = types.SimpleNamespace(
        lat=lat,
        layout=None,
        static=None,
        raw_frames=rng.standard_normal((n_t, n_lat, n_lon, n_c)),
        forcings=np.zeros((n_t, 1)),
    )
    val_windows = np.stack([np.arange(n_t - 2), np.arange(1, n_t - 1), np.arange(2, n_t)], axis=1)
    ensemble = rng.standard_normal((2, members, 1, n_lat, n_lon, n_c))
    seen = {}

    def fake_rollout(params, structure, cfg, layout, static, frames, forcings, steps, m, *a, **k):
        seen["frames"], seen["members"] = frames, m
        return [(None, ensemble)]

    monkeypatch.setattr(train.forecast, "rollout", fake_rollout)
    scores = train.validation_crps(None, None, cfg, data, val_windows, None, members, num_inits=2)
    # Two inits spread evenly over the validation windows: the first and the last.
    np.testing.assert_array_equal(seen["frames"], data.raw_frames[[[0, 1], [n_t - 3, n_t - 2]]])
    assert seen["members"] == members
    truth = data.raw_frames[[2, n_t - 1]]
    bounds = np.deg2rad(np.clip(np.r_[lat - 22.5, 112.5], -90, 90))
    area = np.diff(np.sin(bounds))
    area = area / area.mean()
    assert set(scores) == {"z500", "t850"}
    for i, name in train.headline_channels(cfg.task_config):
        x, y = ensemble[:, :, 0, ..., i], truth[..., i]  # [I, M, lat, lon], [I, lat, lon]
        skill = np.mean([np.abs(x[:, a] - y) for a in range(members)], axis=0)
        pairs = [np.abs(x[:, a] - x[:, b]) for a in range(members) for b in range(members)]
        crps = skill - np.sum(pairs, axis=0) / (2 * members * (members - 1))
        expected = np.mean(crps * area[:, None])
        np.testing.assert_allclose(scores[name], expected, rtol=1e-10)


def test_noise_basis_enters_the_train_step_as_data():
    """The spherical-noise basis is an argument of the compiled step, not a constant."""
    import re

    from minigencast import network

    cfg = config.tiny()
    ds = synthetic_data.dataset(num_times=4)
    data = arrays.prepare(ds, cfg.task_config, synthetic_data.stats(ds))
    noise_fn = noise.noise_function(data.lat, data.lon)
    basis_size = max(leaf.size for leaf in jax.tree_util.tree_leaves(noise_fn))
    statics = (network.build_structure(cfg, data.lat, data.lon), noise_fn)
    fetch = arrays.make_fetch(data.frames, data.forcings, data.static, data.layout)
    batch = fetch(np.array([[0, 1, 2]]))
    params = network.init_denoiser(jax.random.key(0), cfg, *network.channel_counts(cfg))
    step = train.make_train_step(train.make_example_loss(cfg, data.lat), TC, train.data_mesh())
    text = step.lower(train.init_train_state(params, TC), statics, batch, jax.random.key(0))
    sizes = [
        int(np.prod([int(d) for d in shape.split("x")]))
        for shape in re.findall(r"constant dense<.*?> : tensor<([0-9x]+)x", text.as_text())
    ]
    assert max(sizes, default=0) < basis_size
