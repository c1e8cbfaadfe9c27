"""Multi-process training and forecasting: 2 processes x 2 CPU devices == 1 x 4.

Each side runs in fresh processes (JAX fixes its devices at start-up); the two
processes of a run meet through `jax.distributed` on a local port and use JAX's CPU
collectives (gloo). The comparison is against the same program in one process over
4 devices, a run that never crosses a process boundary.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent(f"""
    import dataclasses, json, sys
    sys.path.insert(0, {os.path.join(REPO, "tests")!r})
    coordinator, num_processes, process_id, run_dir, steps, out = sys.argv[1:]
    from minigencast import multihost
    if int(num_processes) > 1:
        multihost.initialize(coordinator, int(num_processes), int(process_id))
    import jax, numpy as np, synthetic_data
    from minigencast import config, forecast, network, train
    assert jax.device_count() == 4 and jax.process_count() == int(num_processes)
    ds = synthetic_data.dataset(num_times=24)
    stats = synthetic_data.stats(ds)
    cfg = config.tiny()
    cfg = dataclasses.replace(
        cfg, sampler_config=dataclasses.replace(cfg.sampler_config, num_noise_levels=4)
    )
    tc = config.TrainConfig(batch_size=4, num_steps=int(steps), warmup_steps=1,
                            eval_every=1000, checkpoint_every=2, keep_checkpoints=2,
                            validation_fraction=0.2)
    result = train.train(ds, stats, cfg, tc, run_dir, progress=False, eval_members=0)
    params = network.init_denoiser(jax.random.key(7), cfg, *network.channel_counts(cfg))
    members = forecast.run(params, cfg, ds, stats, ds.time.values[[3]], 1, 4, seed=1,
                           out=run_dir + "/forecast.nc", progress=False)
    if multihost.is_main():
        import xarray
        with xarray.open_dataset(members) as fc:
            t2m = fc["2m_temperature"].values
        leaves = jax.tree_util.tree_leaves(jax.device_get(result["state"]["params"]))
        json.dump({{"params": np.concatenate([np.ravel(x) for x in leaves]).tolist(),
                    "loss": [r["loss"] for r in result["history"]],
                    "val_loss": result["history"][-1]["val_loss"],
                    "members": t2m.tolist()}}, open(out, "w"))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(num_processes, run_dir, steps, out):
    """Starts the script in `num_processes` processes of 4 / num_processes CPU devices."""
    env = dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={4 // num_processes}",
        JAX_PLATFORMS="cpu",
        # Runs of the same process count share compiled programs.
        JAX_COMPILATION_CACHE_DIR=os.path.join(os.path.dirname(run_dir), "jax_cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
    )
    address = f"localhost:{_free_port()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, address, str(num_processes), str(i), run_dir]
            + [str(steps), out],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(num_processes)
    ]
    logs = [p.communicate(timeout=1200)[0].decode() for p in procs]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    return json.load(open(out))


@pytest.mark.multihost
@pytest.mark.timeout(3600)
def test_two_processes_train_and_forecast_as_one(tmp_path):
    two = _launch(2, str(tmp_path / "two"), 4, str(tmp_path / "two.json"))
    one = _launch(1, str(tmp_path / "one"), 4, str(tmp_path / "one.json"))
    # Process 0 wrote the checkpoints once (steps 2 and 4); the other process nothing.
    assert sorted(os.listdir(tmp_path / "two" / "checkpoints")) == [
        "step_00000002",
        "step_00000004",
    ]
    assert not [n for n in os.listdir(tmp_path / "two") if ".tmp-" in n]
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-6)
    np.testing.assert_allclose(two["val_loss"], one["val_loss"], rtol=1e-6)
    scale = np.abs(one["params"]).max()
    np.testing.assert_allclose(two["params"], one["params"], rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_allclose(two["members"], one["members"], rtol=1e-6)  # [4, 1, 1, lat, lon]
    assert np.std(np.asarray(one["members"])[:, 0, 0], axis=0).mean() > 0  # members differ

    # Resume with another process count: the 2-process run's step-2 checkpoint, continued
    # by one process over 4 devices to step 4, gives the uninterrupted run.
    resumed = tmp_path / "resumed"
    # (Without the first run's forecast: the resumed run writes its own, and a forecast
    # never replaces an existing file unasked.)
    shutil.copytree(tmp_path / "two", resumed, ignore=shutil.ignore_patterns("forecast.nc*"))
    shutil.rmtree(resumed / "checkpoints" / "step_00000004")
    again = _launch(1, str(resumed), 4, str(tmp_path / "resumed.json"))
    assert len(again["loss"]) == 2  # steps 3 and 4 only
    np.testing.assert_allclose(again["params"], one["params"], rtol=1e-6, atol=1e-6 * scale)


def test_process_rows_are_each_process_share_of_the_batch():
    """One process holds every row; the global batch of a 1-process mesh is the batch."""
    import jax

    from minigencast import train

    mesh = train.data_mesh()
    assert train.process_rows(mesh, 8) == slice(0, 8)
    batch = {"x": np.arange(8.0)}
    np.testing.assert_array_equal(np.asarray(train.shard_batch(batch, mesh, 8)["x"]), batch["x"])
    assert jax.process_count() == 1


def test_loader_rows_of_two_processes_make_the_global_batch():
    """Two loaders fetching rows [0, 2) and [2, 4) of each batch of 4 (with the longitude
    roll) give, stacked, the batches of one loader fetching everything."""
    from minigencast import arrays, loader

    wins = np.stack([np.arange(30), np.arange(30) + 1, np.arange(30) + 2], -1)
    lon = np.arange(8.0)

    def fetch(w):
        x = np.broadcast_to(lon[:, None] + 100 * w[:, :1, None, None], (len(w), 2, 8, 1))
        return {k: x.copy() for k in ("inputs", "forcings", "targets")}

    kw = dict(seed=3, prefetch=0, augment=arrays.roll_longitude)
    whole = iter(loader.WindowLoader(wins, fetch, 4, **kw))
    parts = [
        iter(loader.WindowLoader(wins, fetch, 4, rows=r, **kw)) for r in (slice(0, 2), slice(2, 4))
    ]
    for _ in range(9):  # crosses an epoch
        pos, ref = next(whole)
        got = [next(p) for p in parts]
        assert all(g[0] == pos for g in got)
        for k in ref:
            np.testing.assert_array_equal(np.concatenate([g[1][k] for g in got]), ref[k])
