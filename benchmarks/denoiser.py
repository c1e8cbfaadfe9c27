"""Benchmark one denoiser call: compile time, seconds per call, peak host memory.

Random weights and synthetic inputs (timing does not depend on their values), batch 1,
float32 unless --bfloat16. For each preset it prints graph-build time, compile time,
seconds per forward call, seconds per forward+backward (a training step's gradient), and
the process's peak resident memory (resource.getrusage; cumulative, so forward is
measured before backward). CPU-seconds per call (process time, all threads) are printed
too: on a shared machine they are a steadier figure than wall time. Each preset runs in
its own process so that peak memory is per preset.

DeepMind's reference on this class of 2-core CPU (spec sec. 11; official d39de19 code,
Mini at 1 deg, float32, batch 1, dense attention): ~11 s per call, ~18 s compile,
4.2 GB peak RSS. Goal: <= 7.4 s per call, no more memory.

    python benchmarks/denoiser.py                     # cpu and gencast_1p0deg_mini
    python benchmarks/denoiser.py --preset cpu --attention splash_mha --repeats 5
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

REFERENCE_MINI = {"seconds_per_call": 11.0, "compile_seconds": 18.0, "peak_rss_gb": 4.2}


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: kB


def _timed(fn, repeats):
    import jax

    jax.block_until_ready(fn())  # Warm-up (first-call allocations), not timed.
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return times


def run_one(
    preset: str,
    attention: str | None,
    repeats: int,
    backward: bool,
    bf16: bool,
    grid_chunk: int | None = None,
    budget_gb: float | None = None,
) -> dict:
    import jax
    import jax.numpy as jnp

    from minigencast import config, memory, network

    cfg = config.preset(preset)
    if attention is not None:
        arch = cfg.denoiser_architecture_config
        st = dataclasses.replace(arch.sparse_transformer_config, attention_type=attention)
        cfg = dataclasses.replace(
            cfg,
            denoiser_architecture_config=dataclasses.replace(arch, sparse_transformer_config=st),
        )
    st = cfg.denoiser_architecture_config.sparse_transformer_config
    n_lat, n_lon = cfg.grid
    lat = np.linspace(-90.0, 90.0, n_lat)
    lon = np.arange(n_lon) * 360.0 / n_lon
    result = {"preset": preset, "attention_type": st.attention_type, "grid": [n_lat, n_lon]}
    result["dtype"] = "bfloat16" if bf16 else "float32"

    t0 = time.perf_counter()
    graphs = network.build_graphs(cfg, lat, lon)
    result["graph_build_seconds"] = time.perf_counter() - t0
    n_mesh = graphs["mesh_node_structural_features"].shape[0]
    layout = attention or network.attention_layout_type(st.attention_type, n_mesh)
    sizes = memory.sizes(cfg, graphs)
    budget = memory.default_budget_bytes() if budget_gb is None else budget_gb * memory.GB
    plan = memory.plan(
        sizes,
        layout,
        int(budget),
        grid_chunk=grid_chunk,
        bytes_per_activation=2 if bf16 else 4,
    )
    structure = network.build_structure(
        cfg,
        lat,
        lon,
        graphs,
        layout,
        chunks=plan.chunks,
        window_chunk_size=plan.window_chunk,
    )
    del graphs
    result["attention_layout"] = type(structure.attention).__name__
    result["chunks"] = dataclasses.asdict(plan.chunks)
    result["window_chunk"] = plan.window_chunk
    result["memory_budget_gb"] = budget / memory.GB
    result["estimated_peak_gb"] = plan.estimate["peak"] / memory.GB
    result["estimate_gb"] = {k: v / memory.GB for k, v in plan.estimate.items()}
    counts = network.channel_counts(cfg)
    params = jax.jit(network.init_denoiser, static_argnums=(1, 2, 3, 4))(
        jax.random.key(0), cfg, *counts
    )
    result["parameters"] = int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
    rng = np.random.default_rng(0)
    inputs, targets, forcings = (
        jnp.asarray(rng.standard_normal((n_lat, n_lon, n), dtype=np.float32))
        for n in (counts[0], counts[1], counts[2])
    )
    sigma = jnp.float32(1.0)
    # Record the machine load: wall times on a shared machine depend on it.
    result["load_average_1min_at_start"] = os.getloadavg()[0]
    dtype = jnp.bfloat16 if bf16 else jnp.float32

    def forward(p, x, remat=False):
        return network.raw_denoiser(
            p, structure, cfg, inputs, forcings, x, sigma, compute_dtype=dtype, remat=remat
        )

    fwd = jax.jit(forward)
    t0 = time.perf_counter()
    compiled = fwd.lower(params, targets).compile()
    result["compile_seconds"] = time.perf_counter() - t0
    cpu0 = time.process_time()
    times = _timed(lambda: compiled(params, targets), repeats)
    result["forward_cpu_seconds_per_call"] = (time.process_time() - cpu0) / (repeats + 1)
    result["forward_seconds"] = times
    result["forward_seconds_median"] = float(np.median(times))
    result["peak_rss_gb_after_forward"] = _rss_gb()

    if backward:
        # Rematerialised (jax.checkpoint per GNN and transformer block), as training would.
        grad = jax.jit(jax.grad(lambda p, x: jnp.mean(forward(p, x, remat=True) ** 2)))
        t0 = time.perf_counter()
        compiled_grad = grad.lower(params, targets).compile()
        result["compile_seconds_backward"] = time.perf_counter() - t0
        cpu0 = time.process_time()
        times = _timed(lambda: compiled_grad(params, targets), max(1, repeats // 2))
        result["forward_backward_cpu_seconds_per_call"] = (time.process_time() - cpu0) / (
            max(1, repeats // 2) + 1
        )
        result["forward_backward_seconds"] = times
        result["forward_backward_seconds_median"] = float(np.median(times))
        result["peak_rss_gb_after_backward"] = _rss_gb()
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", action="append", help="preset name (repeatable)")
    parser.add_argument("--attention", default=None, help="override attention_type")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-backward", action="store_true")
    parser.add_argument("--bfloat16", action="store_true")
    parser.add_argument("--grid_chunk", type=int, default=None, help="grid nodes/edges per chunk")
    parser.add_argument(
        "--memory_budget_gb", type=float, default=None, help="plan chunks for this budget"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    presets = args.preset or ["cpu", "gencast_1p0deg_mini"]

    if args.child:
        res = run_one(
            presets[0],
            args.attention,
            args.repeats,
            not args.no_backward,
            args.bfloat16,
            args.grid_chunk,
            args.memory_budget_gb,
        )
        print("RESULT " + json.dumps(res))
        return

    for preset in presets:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--preset",
            preset,
            "--repeats",
            str(args.repeats),
        ]
        if args.attention:
            cmd += ["--attention", args.attention]
        if args.no_backward:
            cmd.append("--no-backward")
        if args.bfloat16:
            cmd.append("--bfloat16")
        for flag in ("grid_chunk", "memory_budget_gb"):
            if getattr(args, flag) is not None:
                cmd += [f"--{flag}", str(getattr(args, flag))]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            # A negative return code is a signal: -9 is usually the out-of-memory killer.
            print(f"{preset}: failed (return code {proc.returncode})\n{proc.stderr[-3000:]}")
            continue
        res = json.loads(lines[-1][len("RESULT ") :])
        print(json.dumps(res, indent=1))
        if preset == "gencast_1p0deg_mini":
            ref = REFERENCE_MINI
            sec = res["forward_seconds_median"]
            print(
                f"Mini forward: {sec:.2f} s per call vs DeepMind ~{ref['seconds_per_call']} s "
                f"(x{ref['seconds_per_call'] / sec:.2f}; goal <= 7.4 s); "
                f"compile {res['compile_seconds']:.1f} s vs ~{ref['compile_seconds']} s; "
                f"peak RSS {res['peak_rss_gb_after_forward']:.2f} GB vs {ref['peak_rss_gb']} GB"
            )


if __name__ == "__main__":
    main()
