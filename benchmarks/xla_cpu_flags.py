"""Time the cpu preset's train step and 12 h forecast step under different XLA_FLAGS and
LayerNorm means (`nn.mean_last_axis`: a reduction, or the matvec our CPU path uses).

XLA reads XLA_FLAGS once, when JAX creates its CPU backend, so every setting runs in its
own process. Each process builds the real train step (`train.make_train_step`, a batch
of the `scripts/train_cpu.py` recipe from the embedded toy planet) and the real 12 h
forecast step (`forecast.forecast_step`, vmapped over 8 members, the preset's sampler),
warms them up, then times `--repeats` calls of each. The table puts the settings side by
side with the ratio to the first (XLA's defaults and a plain reduction).

    python benchmarks/xla_cpu_flags.py
    python benchmarks/xla_cpu_flags.py --flags "" --means reduce matvec
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FLAGS = ("", "--xla_cpu_experimental_ynn_fusion_type=")
MEANS = ("reduce", "matvec")
NUM_MEMBERS = 8


def run_one(repeats: int, mean: str) -> dict:
    import jax

    sys.path.insert(0, ROOT)
    from minigencast import (
        arrays,
        config,
        data,
        forecast,
        loader,
        network,
        nn,
        noise,
        quickstart,
        train,
    )

    nn.mean_last_axis = {"reduce": nn.mean_last_axis_reduce, "matvec": nn.mean_last_axis_matvec}[
        mean
    ]

    cfg, tc = config.cpu(), config.cpu_training()
    d = arrays.prepare(quickstart.training_data(), cfg.task_config, data.embedded_stats())
    mesh = train.data_mesh()
    noise_fn = noise.noise_function(d.lat, d.lon)
    structure = train.replicate(network.build_structure(cfg, d.lat, d.lon), mesh)
    fetch = arrays.make_fetch(d.frames, d.forcings, d.static, d.layout)
    train_windows, _ = loader.split_by_time(d.times, tc.validation_fraction)
    batches = iter(loader.WindowLoader(train_windows, fetch, tc.batch_size, seed=0, prefetch=0))
    batch = train.shard_batch(next(batches)[1], mesh)
    params = network.init_denoiser(jax.random.key(0), cfg, *network.channel_counts(cfg))
    state = train.replicate(train.init_train_state(params, tc), mesh)
    step = train.make_train_step(train.make_example_loss(cfg, d.lat), tc, mesh)
    key = jax.random.key(1)

    def train_step():
        nonlocal state
        state, metrics = step(state, (structure, noise_fn), batch, key)
        return metrics

    t_in = d.layout.num_input_times
    members = forecast.member_keys(0, NUM_MEMBERS)
    frames, forcings = d.frames[:t_in], d.forcings[: t_in + 1]

    @jax.jit
    def ensemble_step(params, keys):
        one = lambda k: forecast.forecast_step(  # noqa: E731
            params, structure, cfg, d.layout, d.static, frames, forcings, k, noise_fn
        )
        return jax.vmap(one)(keys)

    timings = {}
    for name, fn in (
        ("train_step", train_step),
        ("forecast_step", lambda: ensemble_step(params, members)),
    ):
        for _ in range(3):  # compile + warm-up
            jax.block_until_ready(fn())
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            out = fn()
        jax.block_until_ready(out)
        timings[f"{name}_ms"] = 1e3 * (time.perf_counter() - t0) / repeats
        timings[f"{name}_cpu_ms"] = 1e3 * (time.process_time() - c0) / repeats
    return timings


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--flags", nargs="+", default=list(DEFAULT_FLAGS))
    p.add_argument("--means", nargs="+", default=list(MEANS), choices=MEANS)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(run_one(args.repeats, args.means[0])))
        return

    rows = []
    for flags in args.flags:
        for mean in args.means:
            env = dict(os.environ, XLA_FLAGS=flags)
            child = [sys.executable, __file__, "--child", "--repeats", str(args.repeats)]
            out = subprocess.run(
                [*child, "--means", mean], env=env, capture_output=True, text=True, check=True
            )
            rows.append((flags, mean, json.loads(out.stdout.strip().splitlines()[-1])))
    sys.path.insert(0, ROOT)
    from minigencast import config

    print(
        f"cpu preset, {args.repeats} calls per setting: train step (batch "
        f"{config.cpu_training().batch_size} windows) and "
        f"12 h forecast step ({NUM_MEMBERS} members); wall ms per call, CPU ms (all "
        "threads), ratio of wall time to the first setting"
    )
    head = " ".join(f"{h:>7} {'CPU':>7} {'ratio':>6}" for h in ("train", "fcst"))
    print(f"{'XLA_FLAGS':<42} {'mean':<6} {head}")
    base = rows[0][2]
    for flags, mean, r in rows:
        cells = [
            f"{r[f'{n}_ms']:7.0f} {r[f'{n}_cpu_ms']:7.0f} {r[f'{n}_ms'] / base[f'{n}_ms']:6.2f}"
            for n in ("train_step", "forecast_step")
        ]
        print(f"{flags or '(default)':<42} {mean:<6} " + " ".join(cells))


if __name__ == "__main__":
    main()
