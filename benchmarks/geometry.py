"""Build times and peak memory of GenCast's static structure, and the cost of noise.

For each resolution: build the graphs and the k-hop attention mask
(`graphs.build_graphs`, no cache), then load them back from the on-disk cache, and
draw one spherical white-noise sample for 84 fields ([lat, lon, 84]). Each case runs
in a fresh process, so "peak RSS" is that case's own peak resident memory.

    python benchmarks/geometry.py            # 5.625 deg, 1 deg, 0.25 deg
    python benchmarks/geometry.py --quick    # skip 0.25 deg

Wall-clock times on a shared machine depend on the load; CPU times (user + system
of this process) are printed beside them.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time

CASES = {
    # name: (n_lat, n_lon, mesh splits, attention k-hop)
    "5.625deg": (33, 64, 3, 4),  # the `cpu` preset
    "1deg": (181, 360, 4, 16),  # GenCast 1p0deg Mini
    "0.25deg": (721, 1440, 6, 32),  # GenCast 0p25deg
}


def _clock():
    t = os.times()
    return time.perf_counter(), t.user + t.system


def _since(start):
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _graphs_case(name, queue):
    import numpy as np

    from minigencast import graphs, transformer

    n_lat, n_lon, splits, k = CASES[name]
    lat, lon = np.linspace(-90, 90, n_lat), np.arange(n_lon) * (360.0 / n_lon)
    lat, lon = lat.astype(np.float32), lon.astype(np.float32)  # the model's graphs (float32)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MINIGENCAST_CACHE_DIR"] = cache
        start = _clock()
        g = graphs.build_graphs(lat, lon, splits, 0.6, k)  # miss: build and save
        build = _since(start)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        nbytes = sum(v.nbytes for v in g.values())
        graphs._MEMORY_CACHE.clear()
        del g
        start = _clock()
        g = graphs.build_graphs(lat, lon, splits, 0.6, k)  # memory-mapped load
        load = _since(start)
        start = _clock()
        total = sum(float(np.asarray(v).sum(dtype=np.float64)) for v in g.values())
        touch = _since(start)
        rows, cols = g["attention_mask_rows"], g["attention_mask_cols"]
        n = len(g["mesh_vertices"])
        start = _clock()
        idx, _ = transformer.build_attention(rows, cols, n, "splash_mha")
        neighbours = _since(start)
    queue.put(
        {
            "build": build,
            "peak_rss_gb": peak,
            "size_gb": nbytes / 1e9,
            "load": load,
            "load_and_read": (load[0] + touch[0], load[1] + touch[1]),
            "neighbour_lists": neighbours,
            "nnz": len(rows),
            "k_max": idx.shape[1],
            "checksum": total,
        }
    )


def _noise_case(name, queue):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from minigencast import noise

    n_lat, n_lon, _, _ = CASES[name]
    lat, lon = np.linspace(-90, 90, n_lat), np.arange(n_lon) * (360.0 / n_lon)
    start = _clock()
    noise_fn = noise.make_spherical_noise_fn(lat, lon)
    basis = _since(start)
    template = jnp.zeros((n_lat, n_lon, 84), jnp.float32)
    draw = jax.jit(lambda fn, key, t: fn(key, t))
    start = _clock()
    draw(noise_fn, jax.random.key(0), template).block_until_ready()
    first = _since(start)
    start = _clock()
    x = draw(noise_fn, jax.random.key(1), template).block_until_ready()
    second = _since(start)
    queue.put(
        {
            "basis": basis,
            "first_draw": first,
            "draw": second,
            "variance": float(jnp.var(x)),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        }
    )


def _run(target, name):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=target, args=(name, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def _fmt(pair):
    return f"{pair[0]:7.2f} s ({pair[1]:6.2f} s CPU)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip 0.25 deg")
    parser.add_argument("--skip-noise", action="store_true")
    args = parser.parse_args(argv)
    names = [n for n in CASES if not (args.quick and n == "0.25deg")]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    for name in names:
        n_lat, n_lon, splits, k = CASES[name]
        r = _run(_graphs_case, name)
        print(f"\n== {name}: grid {n_lat}x{n_lon}, mesh splits {splits}, k {k} ==")
        print(f"graphs + mask build   {_fmt(r['build'])}   peak RSS {r['peak_rss_gb']:.2f} GB")
        print(f"  arrays {r['size_gb']:.3f} GB, mask nnz {r['nnz']:,}, K_max {r['k_max']}")
        print(f"cache load (mmap)     {_fmt(r['load'])}")
        print(f"cache load + read all {_fmt(r['load_and_read'])}")
        print(f"neighbour lists       {_fmt(r['neighbour_lists'])}")
        if not args.skip_noise:
            r = _run(_noise_case, name)
            print(f"noise basis           {_fmt(r['basis'])}   peak RSS {r['peak_rss_gb']:.2f} GB")
            print(f"noise 84 fields, 1st  {_fmt(r['first_draw'])} (incl. compile)")
            print(f"noise 84 fields       {_fmt(r['draw'])}   variance {r['variance']:.3f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
