"""Time a 12 h GenCast forecast step on an accelerator and read its peak device memory.

One step is one conditional sample: DPM-Solver++(2S) over GenCast's 20 noise levels,
39 denoiser calls, spherical white noise (the forecast's own `sampler.sample`), for
every ensemble member. Random weights and inputs (timing and memory do not depend on
their values). Members run `members_per_batch` at a time (`jax.vmap`), the group size
and grid-side chunks coming from `memory.plan` for the device's memory limit unless
given. Each preset runs in its own process, so the peak memory is per preset.

Prints one JSON object per preset: graph-build, compile and per-step seconds, the
device's peak memory (`jax.devices()[0].memory_stats()["peak_bytes_in_use"]`), and
the estimate of `memory.estimate` beside it. Needs only jax, numpy, scipy and this
package (no data files, no network).

    python benchmarks/gpu.py                                   # 1 deg Mini x8, 0.25 deg x1
    python benchmarks/gpu.py --preset gencast_0p25deg --members 2 --steps 2
    python benchmarks/gpu.py --preset tiny --members 2         # CPU smoke test
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

# (preset, members, steps) run by default: well under 8 minutes on one H200.
DEFAULT_RUNS = (("gencast_1p0deg_mini", 8, 2), ("gencast_0p25deg", 1, 1))


def run_one(
    preset: str,
    members: int,
    steps: int,
    attention: str,
    members_per_batch: int | None,
    grid_chunk: int | None,
    budget_gb: float | None,
    bf16: bool,
    noise_levels: int | None = None,
) -> dict:
    import jax
    import jax.numpy as jnp

    from minigencast import config, memory, network, noise, preconditioning, sampler

    cfg = config.preset(preset)
    if noise_levels is not None:  # fewer denoiser calls per step (CPU runs): 2 (n - 1) + 1
        sc = dataclasses.replace(cfg.sampler_config, num_noise_levels=noise_levels)
        cfg = dataclasses.replace(cfg, sampler_config=sc)
    n_lat, n_lon = cfg.grid
    lat = np.linspace(-90.0, 90.0, n_lat)
    lon = np.arange(n_lon) * 360.0 / n_lon
    device = jax.devices()[0]
    out = {
        "preset": preset,
        "grid": [n_lat, n_lon],
        "attention_type": attention,
        "members": members,
        "dtype": "bfloat16" if bf16 else "float32",
        "device": f"{device.platform}:{device.device_kind}",
        "jax": jax.__version__,
        "denoiser_calls_per_step": sampler.num_denoiser_calls(cfg.sampler_config),
    }
    t0 = time.perf_counter()
    graphs = network.build_graphs(cfg, lat, lon)
    out["graph_build_seconds"] = time.perf_counter() - t0
    sizes = memory.sizes(cfg, graphs)
    budget = memory.default_budget_bytes() if budget_gb is None else budget_gb * memory.GB
    plan = memory.plan(
        sizes,
        attention,
        int(budget),
        num_samples=members,
        members_per_batch=members_per_batch,
        grid_chunk=grid_chunk,
        bytes_per_activation=2 if bf16 else 4,
        forecast=True,
    )
    structure = network.build_structure(
        cfg, lat, lon, graphs, attention, plan.chunks, plan.window_chunk
    )
    del graphs
    m = plan.members_per_batch
    out.update(
        members_per_batch=m,
        chunks=dataclasses.asdict(plan.chunks),
        window_chunk=plan.window_chunk,
        memory_budget_gb=budget / memory.GB,
        estimated_peak_gb=plan.estimate["peak"] / memory.GB,
    )
    t0 = time.perf_counter()
    noise_fn = noise.make_spherical_noise_fn(lat, lon)
    out["noise_basis_seconds"] = time.perf_counter() - t0
    structure = jax.device_put(structure)
    c_in, c_t, c_f = network.channel_counts(cfg)
    params = jax.jit(network.init_denoiser, static_argnums=(1, 2, 3, 4))(
        jax.random.key(0), cfg, c_in, c_t, c_f
    )
    rng = np.random.default_rng(0)
    inputs = jnp.asarray(rng.standard_normal((n_lat, n_lon, c_in), dtype=np.float32))
    forcings = jnp.asarray(rng.standard_normal((n_lat, n_lon, c_f), dtype=np.float32))
    dtype = jnp.bfloat16 if bf16 else jnp.float32

    @jax.jit
    def step(params, structure, inputs, forcings, keys, noise_fn):
        def one(key):
            def raw_fn(x, sigma):
                return network.raw_denoiser(
                    params, structure, cfg, inputs, forcings, x, sigma, compute_dtype=dtype
                )

            template = jnp.zeros((n_lat, n_lon, c_t), jnp.float32)
            denoise = preconditioning.make_denoise_fn(raw_fn)
            return sampler.sample(denoise, key, template, cfg.sampler_config, noise_fn)

        return jax.vmap(one)(keys)

    num_groups = -(-members // m)
    keys = jax.random.split(jax.random.key(1), num_groups * m).reshape(num_groups, m)
    t0 = time.perf_counter()
    compiled = step.lower(params, structure, inputs, forcings, keys[0], noise_fn).compile()
    out["compile_seconds"] = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        for g in range(num_groups):  # the last group is padded to m members
            jax.block_until_ready(compiled(params, structure, inputs, forcings, keys[g], noise_fn))
        times.append(time.perf_counter() - t0)
    out["step_seconds"] = times
    out["seconds_per_step_median"] = float(np.median(times))
    out["seconds_per_denoiser_call_per_member"] = out["seconds_per_step_median"] / (
        out["denoiser_calls_per_step"] * num_groups * m
    )
    stats = device.memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    out["peak_device_memory_gb"] = None if peak is None else peak / memory.GB
    out["device_bytes_limit_gb"] = stats.get("bytes_limit", 0) / memory.GB or None
    out["peak_host_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", action="append", help="preset (repeatable)")
    parser.add_argument("--members", type=int, default=None, help="ensemble members")
    parser.add_argument("--steps", type=int, default=None, help="timed 12 h steps")
    parser.add_argument("--attention", default="triblockdiag_mha")
    parser.add_argument("--members_per_batch", type=int, default=None)
    parser.add_argument("--grid_chunk", type=int, default=None)
    parser.add_argument("--memory_budget_gb", type=float, default=None)
    parser.add_argument("--bfloat16", action="store_true")
    parser.add_argument(
        "--noise_levels", type=int, default=None, help="sampler levels (default GenCast's 20)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = {p: (m, s) for p, m, s in DEFAULT_RUNS}
    presets = args.preset or [p for p, _, _ in DEFAULT_RUNS]

    if args.child:
        res = run_one(
            presets[0],
            args.members,
            args.steps,
            args.attention,
            args.members_per_batch,
            args.grid_chunk,
            args.memory_budget_gb,
            args.bfloat16,
            args.noise_levels,
        )
        print("RESULT " + json.dumps(res), flush=True)
        return 0

    failures = 0
    for preset in presets:
        members, steps = defaults.get(preset, (2, 1))
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--preset", preset]
        cmd += ["--members", str(args.members or members), "--steps", str(args.steps or steps)]
        cmd += ["--attention", args.attention]
        for flag in ("members_per_batch", "grid_chunk", "memory_budget_gb", "noise_levels"):
            if getattr(args, flag) is not None:
                cmd += [f"--{flag}", str(getattr(args, flag))]
        if args.bfloat16:
            cmd.append("--bfloat16")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            failures += 1
            print(json.dumps({"preset": preset, "failed": proc.returncode}))
            print(proc.stderr[-3000:], file=sys.stderr)
            continue
        print(lines[-1][len("RESULT ") :], flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
