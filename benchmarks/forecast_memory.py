"""Host memory of a forecast: the file's layout, and the arrays `forecast.run` holds.

1. The layout. `ForecastWriter` lays out the whole file (dims, coordinates, attributes)
   before the first step. Built from `np.zeros` of the forecast's size and copied per
   variable (the earlier way, `forecast.chunk_to_dataset` on a NumPy array), that costs
   the whole forecast in host memory; `forecast.forecast_template` builds it from lazy
   dask zeros that are never computed. Each case runs in a child process and prints its
   peak RSS before and after building the layout and opening the writer
   (`getrusage(RUSAGE_SELF).ru_maxrss`).

2. `--run`: the whole `forecast.run` (a 1 deg, 84-channel forecast to a .zarr file and in
   memory, with a spread correction as the shipped model has), in this tree and, with
   `--baseline REF`, in a temporary `git worktree` of REF, each in its own process. The
   network step is replaced by a stub that returns the carried frame K times (the same
   [P, K, lat, lon, C] chunk JAX would return), so only what the forecast holds around it
   is measured: the rollout's copies of the chunk, the forcings, the spread correction,
   the Dataset and the writer. Prints the peak RSS above the RSS before the call
   (/proc/self/status VmRSS, polled every 5 ms), in GB and in units of one chunk's
   outputs. On a CPU the chunk JAX returns is itself host memory (one unit); on a GPU
   it is device memory.

    python benchmarks/forecast_memory.py            # 1 deg, 8 members x 10 steps, both ways
    python benchmarks/forecast_memory.py --quarter  # adds 0.25 deg, 8 x 30 steps, lazy only
    python benchmarks/forecast_memory.py --run [--baseline c7e051b]

(The NumPy way at 0.25 deg, 78 GB, is not run: it would not fit this machine.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile

from forecast_speed import checkout  # this folder is on the path when run as a script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import json, resource, sys
import numpy as np
from minigencast import channel_order, config, forecast

way, n_lat, n_lon, members, steps, out = sys.argv[1:]
n_lat, n_lon, members, steps = int(n_lat), int(n_lon), int(members), int(steps)
task = config.gencast_task()
shape = (1, members, steps, n_lat, n_lon, len(channel_order.target_channels(task)))
args = (task, np.array(["2020-01-01"], "datetime64[ns]"),
        np.arange(1, steps + 1) * np.timedelta64(12, "h"),
        np.linspace(-90, 90, n_lat), np.arange(n_lon) * 360 / n_lon)
gb = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
before = gb()
if way == "numpy":
    template = forecast.chunk_to_dataset(np.zeros(shape, np.float32), *args)
else:
    template = forecast.forecast_template(shape, *args)
forecast.ForecastWriter(out, template).abort()
print(json.dumps({"forecast_gb": np.prod(shape) * 4 / 2**30, "before": before, "after": gb()}))
"""


RUN_CHILD = """
import dataclasses, json, sys, threading, time
import jax, jax.numpy as jnp, numpy as np
from minigencast import config, forecast, network, normalization
from minigencast.data import synthetic

members, inits, steps, chunk, where = sys.argv[1:]
members, inits, steps, chunk = int(members), int(inits), int(steps), int(chunk)
cfg = config.tiny()
cfg = dataclasses.replace(cfg, task_config=config.gencast_task(), grid=(181, 360))
ds = synthetic.sample(num_times=inits + 1, n_lat=181, n_lon=360)
stats = normalization.compute_stats(ds, chunks=None)
params = network.init_denoiser(jax.random.key(0), cfg, *network.channel_counts(cfg))
n_channels = ds.sizes["level"] * 6 + 6
metadata = {"lat": ds.lat.values.tolist(), "lon": ds.lon.values.tolist(),
            "spectral_filter": {"spread": np.full((10, n_channels), 1.1).tolist()}}

@jax.jit
def step(frames, keys, win):
    return frames, keys, jnp.repeat(frames[:, -1:], win.shape[1], axis=1) + 0.0

forecast.rollout_chunk = lambda params, structure, layout, static, frames, keys, win, *a, **k: (
    step(frames, keys, win))

def rss():
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("VmRSS")) / 2**20

peak, done = [0.0], threading.Event()
def poll():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.005)
before = rss()
thread = threading.Thread(target=poll, daemon=True)
thread.start()
result = forecast.run(params, cfg, ds, stats, ds.time.values[1:1 + inits], steps, members,
                      chunk_steps=chunk, metadata=metadata, use_spectral_filter=False,
                      progress=False, out=None if where == "memory" else where)
done.set()
thread.join()
chunk_gb = members * inits * chunk * 181 * 360 * n_channels * 4 / 2**30
print(json.dumps({"peak_gb": peak[0] - before, "chunk_gb": chunk_gb}))
"""


def child(code: str, args, tree: str = ROOT) -> dict:
    env = dict(os.environ, PYTHONPATH=tree + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        env=env, cwd=tree, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        sys.exit(f"forecast_memory.py: a child failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(way: str, n_lat: int, n_lon: int, members: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        return child(CHILD, [way, n_lat, n_lon, members, steps, os.path.join(d, "fc.nc")])


def measure_run(trees: dict, members=16, inits=1, steps=8, chunk=4) -> None:
    """The whole forecast.run with a stub network step, per tree and output."""
    print(f"\n1 deg, 84 channels, {inits} init x {members} members x {steps} steps, "
          f"chunks of {chunk} steps, stub network step, spread correction on")  # fmt: skip
    print(f"{'tree':12} {'output':8} {'chunk GB':>9} {'peak above start GB':>20} {'in chunks':>10}")
    for name, tree in trees.items():
        for where in ("zarr", "memory"):
            with tempfile.TemporaryDirectory() as d:
                out = os.path.join(d, "fc.zarr") if where == "zarr" else "memory"
                r = child(RUN_CHILD, [members, inits, steps, chunk, out], tree)
            print(f"{name:12} {where:8} {r['chunk_gb']:9.2f} {r['peak_gb']:20.2f} "
                  f"{r['peak_gb'] / r['chunk_gb']:10.2f}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quarter", action="store_true", help="also 0.25 deg, 8 x 30 steps")
    p.add_argument("--run", action="store_true", help="the whole forecast.run (stub network)")
    p.add_argument("--baseline", help="with --run: also measure this commit")
    args = p.parse_args()
    if args.run:
        with contextlib.ExitStack() as stack:
            trees = {"this tree": ROOT}
            if args.baseline:
                tmp = stack.enter_context(tempfile.TemporaryDirectory())
                trees[args.baseline] = stack.enter_context(checkout(args.baseline, f"{tmp}/tree"))
            measure_run(trees)
        return
    cases = [("1 deg, 8 x 10", way, 181, 360, 8, 10) for way in ("numpy", "lazy")]
    if args.quarter:
        cases.append(("0.25 deg, 8 x 30", "lazy", 721, 1440, 8, 30))
    print(f"{'case':18} {'layout':8} {'forecast GB':>12} {'peak RSS GB before':>19} {'after':>7}")
    for name, way, *size in cases:
        r = measure(way, *size)
        print(f"{name:18} {way:8} {r['forecast_gb']:12.2f} {r['before']:19.2f} {r['after']:7.2f}")


if __name__ == "__main__":
    main()
