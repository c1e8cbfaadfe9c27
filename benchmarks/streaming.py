"""Training windows streamed from disk vs held in memory: throughput and peak memory.

Part 1, the embedded toy planet (`python benchmarks/streaming.py`): windows/s of

  * the loader alone (`fetch`, no prefetch): in-memory arrays vs `TimeReader`s on the
    dataset loaded into xarray (what `minigencast train --data embedded` streams from),
    on a copy of train.nc chunked one time per chunk (as an archive should be stored),
    and on the shipped train.nc (one zlib chunk per variable: every read decompresses
    whole variables, the worst case);
  * training with the cpu preset and the quickstart recipe (prefetch 2, the loader in
    its thread): in-memory vs streamed from the time-chunked train.nc.

The two sides alternate round by round in one process, so the ratios hold on a loaded
machine. Goal: streaming >= 0.9x in-memory training throughput.

Part 2 (`--disk_gb 6 --dir /scratch`): writes a synthetic 1 deg (181 x 360) toy-task
dataset of that size as NetCDF (one time per chunk), then trains the tiny preset on it
with `minigencast train` (streaming, its default) in a child process and prints the
dataset size next to the child's peak RSS (`getrusage(RUSAGE_CHILDREN).ru_maxrss`).
Goal: the dataset >= 4x the peak RSS. Run it `nice`d; the files it writes stay in --dir.

    python benchmarks/streaming.py --rounds 3
    nice python benchmarks/streaming.py --skip_embedded --disk_gb 6 --dir /tmp/streaming
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


# ----------------------------------------------------------------------------- part 1
def _time_chunked_copy(src: str, dst: str) -> str:
    import xarray

    with xarray.open_dataset(src) as ds:
        enc = {
            v: {"chunksizes": (1,) + ds[v].shape[1:], "zlib": True, "complevel": 1}
            for v in ds.data_vars
            if "time" in ds[v].dims
        }
        ds.load().to_netcdf(dst, encoding=enc)
    return dst


def embedded(rounds: int, batches: int, steps: int, workdir: str) -> dict:
    import jax
    import numpy as np
    import xarray

    from minigencast import arrays, config, data, loader, network, noise, train

    cfg, tc = config.cpu(), config.cpu_training()
    stats = data.embedded_stats()
    path = os.path.join(data.embedded_dir(), "train.nc")
    chunked = _time_chunked_copy(path, os.path.join(workdir, "train_time_chunked.nc"))
    task = cfg.task_config
    memory = arrays.prepare(xarray.open_dataset(path).load(), task, stats)
    sources = {
        "memory": memory,
        "xarray in memory": arrays.prepare(
            xarray.open_dataset(path).load(), task, stats, streaming=True
        ),
        "disk (1 time per chunk)": arrays.prepare(
            xarray.open_dataset(chunked), task, stats, streaming=True
        ),
        "disk (shipped train.nc)": arrays.prepare(
            xarray.open_dataset(path), task, stats, streaming=True
        ),
    }
    wins, _ = loader.split_by_time(memory.times, tc.validation_fraction)

    def loader_of(d, prefetch):
        fetch = arrays.make_fetch(d.frames, d.forcings, d.static, d.layout, d.times)
        return iter(loader.WindowLoader(wins, fetch, tc.batch_size, seed=0, prefetch=prefetch))

    fetch_rate = {k: [] for k in sources}
    for _ in range(rounds):
        for name, d in sources.items():
            it = loader_of(d, 0)
            t0, done = time.perf_counter(), 0
            while done < batches and (done == 0 or time.perf_counter() - t0 < 10):
                next(it)  # (at most ~10 s per source and round)
                done += 1
            fetch_rate[name].append(done * tc.batch_size / (time.perf_counter() - t0))

    mesh = train.data_mesh()
    noise_fn = noise.noise_function(memory.lat, memory.lon)
    structure = train.replicate(network.build_structure(cfg, memory.lat, memory.lon), mesh)
    statics = (structure, noise_fn)  # the step's data arguments (train.make_example_loss)
    step = train.make_train_step(train.make_example_loss(cfg, memory.lat), tc, mesh)
    params = network.init_denoiser(jax.random.key(0), cfg, *network.channel_counts(cfg))
    state = train.replicate(train.init_train_state(params, tc), mesh)
    key = jax.random.key(1)
    state, m = step(state, statics, train.shard_batch(next(loader_of(memory, 0))[1], mesh), key)
    jax.block_until_ready(m)  # compiled
    train_rate = {k: [] for k in ("memory", "disk (1 time per chunk)")}
    for _ in range(rounds):
        for name in train_rate:
            t0 = time.perf_counter()
            it = loader_of(sources[name], 2)  # starts with an empty queue
            for _ in range(steps):
                state, m = step(state, statics, train.shard_batch(next(it)[1], mesh), key)
            jax.block_until_ready(m)
            train_rate[name].append(steps * tc.batch_size / (time.perf_counter() - t0))
    med = lambda v: float(np.median(v))  # noqa: E731
    out = {
        "fetch_windows_per_s": {k: med(v) for k, v in fetch_rate.items()},
        "train_windows_per_s": {k: med(v) for k, v in train_rate.items()},
    }
    out["train_ratio_streaming_over_memory"] = (
        out["train_windows_per_s"]["disk (1 time per chunk)"] / out["train_windows_per_s"]["memory"]
    )
    return out


# ----------------------------------------------------------------------------- part 2
def write_synthetic(path: str, size_gb: float, n_lat=181, n_lon=360, chunk=16) -> int:
    """A toy-task NetCDF dataset at 1 deg of about `size_gb`; returns its size in bytes."""
    import netCDF4
    import numpy as np

    from minigencast import variables

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import synthetic_data  # (mean, std) of each variable: plausible physical magnitudes

    levels = variables.TOY_PLANET_LEVELS
    surface = variables.TOY_PLANET_SURFACE_VARIABLES
    upper = variables.TOY_PLANET_ATMOSPHERIC_VARIABLES
    per_time = (len(surface) + len(upper) * len(levels)) * n_lat * n_lon * 4
    num_times = int(size_gb * 1e9 / per_time)
    rng = np.random.default_rng(0)
    nc = netCDF4.Dataset(path, "w")
    for dim, n in (("time", num_times), ("level", len(levels)), ("lat", n_lat), ("lon", n_lon)):
        nc.createDimension(dim, n)
    nc.createVariable("time", "i8", ("time",))[:] = np.arange(num_times) * 12
    nc["time"].units = "hours since 1990-01-01 00:00:00"
    nc.createVariable("level", "i8", ("level",))[:] = levels
    nc.createVariable("lat", "f8", ("lat",))[:] = np.linspace(-90, 90, n_lat)
    nc.createVariable("lon", "f8", ("lon",))[:] = np.arange(n_lon) * 360.0 / n_lon
    grid = (n_lat, n_lon)
    for name in ("geopotential_at_surface", "land_sea_mask"):
        nc.createVariable(name, "f4", ("lat", "lon"))[:] = rng.random(grid, np.float32)
    for name in surface + upper:
        dims = ("time", "lat", "lon") if name in surface else ("time", "level", "lat", "lon")
        shape = tuple(nc.dimensions[d].size for d in dims)
        v = nc.createVariable(name, "f4", dims, chunksizes=(1,) + shape[1:])
        for t in range(0, num_times, chunk):
            k = min(chunk, num_times - t)
            mean, std = synthetic_data.SCALE[name]
            v[t : t + k] = mean + std * rng.standard_normal((k,) + shape[1:], np.float32)
    nc.close()
    return os.path.getsize(path)


def on_disk(size_gb: float, folder: str, steps: int) -> dict:
    import xarray

    from minigencast import normalization

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "synthetic_1deg.nc")
    t0 = time.perf_counter()
    size = write_synthetic(path, size_gb)
    written = time.perf_counter() - t0
    stats_dir = os.path.join(folder, "stats")
    with xarray.open_dataset(path) as ds:
        stats = normalization.compute_stats(ds.isel(time=slice(0, 16)).load(), chunks=None)
    normalization.write_stats(stats, stats_dir)
    run_dir = os.path.join(folder, "run")
    command = [sys.executable, "-m", "minigencast.cli", "train", "--preset", "tiny"]
    command += ["--data", path, "--stats", stats_dir, "--run_dir", run_dir, "--quiet"]
    command += ["--num_steps", str(steps), "--batch_size", "4", "--warmup_steps", "1"]
    command += ["--validation_fraction", "0", "--checkpoint_every", str(steps)]
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    t0 = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    trained = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    return {
        "dataset_bytes": size,
        "peak_rss_bytes": peak,
        "dataset_over_peak_rss": size / peak,
        "steps": steps,
        "write_s": round(written, 1),
        "train_s": round(trained, 1),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, default=20, help="loader-only batches per round")
    p.add_argument("--steps", type=int, default=10, help="train steps per round")
    p.add_argument("--skip_embedded", action="store_true")
    p.add_argument("--disk_gb", type=float, default=0.0, help="part 2: dataset size (0: skip)")
    p.add_argument("--disk_steps", type=int, default=10)
    p.add_argument("--dir", default="streaming_benchmark", help="folder for the files written")
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    if not args.skip_embedded:
        print(json.dumps(embedded(args.rounds, args.batches, args.steps, args.dir), indent=1))
    if args.disk_gb > 0:
        print(json.dumps(on_disk(args.disk_gb, args.dir, args.disk_steps), indent=1))


if __name__ == "__main__":
    main()
