"""Benchmark one denoiser call: compile time, seconds per call, peak host memory.

Random weights and synthetic inputs (timing does not depend on their values), batch 1,
float32 unless --bfloat16. For each preset it prints graph-build time, compile time,
seconds per forward call, seconds per forward+backward (a training step's gradient), and
the process's peak resident memory (resource.getrusage; cumulative, so forward is
measured before backward). CPU-seconds per call (process time, all threads) are printed
too: on a shared machine they are a steadier figure than wall time. Each preset runs in
its own process so that peak memory is per preset.

DeepMind's reference on this class of 2-core CPU (docs/design.md §11; official d39de19 code,
Mini at 1 deg, float32, batch 1, dense attention): ~11 s per call, ~18 s compile,
4.2 GB peak RSS. Goal: <= 7.4 s per call, no more memory.

    python benchmarks/denoiser.py                     # cpu and gencast_1p0deg_mini
    python benchmarks/denoiser.py --preset cpu --attention splash_mha --repeats 5
    python benchmarks/denoiser.py --preset gencast_0p25deg --compile_only  # XLA buffer sizes
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
    compile_only: bool = False,
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

    # The structure and inputs enter as arguments (data), as in a forecast: closed over,
    # they would be baked into the program as constants.
    def forward(p, x, s, i, f, remat=False):
        return network.raw_denoiser(p, s, cfg, i, f, x, sigma, compute_dtype=dtype, remat=remat)

    data = (structure, inputs, forcings)
    fwd = jax.jit(forward)
    t0 = time.perf_counter()
    compiled = fwd.lower(params, targets, *data).compile()
    result["compile_seconds"] = time.perf_counter() - t0
    analysis = compiled.memory_analysis()
    if analysis is not None:  # XLA's buffer assignment: exact device-side need
        result["xla_temp_gb"] = analysis.temp_size_in_bytes / memory.GB
        result["xla_argument_gb"] = analysis.argument_size_in_bytes / memory.GB
    if compile_only:  # XLA's buffer sizes without running the call (0.25 deg on a small host)
        result["peak_rss_gb_after_compile"] = _rss_gb()
        return result
    cpu0 = time.process_time()
    times = _timed(lambda: compiled(params, targets, *data), repeats)
    result["forward_cpu_seconds_per_call"] = (time.process_time() - cpu0) / (repeats + 1)
    result["forward_seconds"] = times
    result["forward_seconds_median"] = float(np.median(times))
    result["peak_rss_gb_after_forward"] = _rss_gb()

    if backward:
        # Rematerialised (jax.checkpoint per GNN and transformer block), as training would.
        grad = jax.jit(jax.grad(lambda p, x, *d: jnp.mean(forward(p, x, *d, remat=True) ** 2)))
        t0 = time.perf_counter()
        compiled_grad = grad.lower(params, targets, *data).compile()
        result["compile_seconds_backward"] = time.perf_counter() - t0
        cpu0 = time.process_time()
        times = _timed(lambda: compiled_grad(params, targets, *data), max(1, repeats // 2))
        result["forward_backward_cpu_seconds_per_call"] = (time.process_time() - cpu0) / (
            max(1, repeats // 2) + 1
        )
        result["forward_backward_seconds"] = times
        result["forward_backward_seconds_median"] = float(np.median(times))
        result["peak_rss_gb_after_backward"] = _rss_gb()
    return result


# ----------------------------------------------------------------------------- side by side
def _serve(call, info: dict):
    """Child protocol: READY, then one timed call per "go" line, RESULT on "quit"."""
    import jax

    jax.block_until_ready(call())  # warm-up
    print("READY " + json.dumps(info), flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        cpu0, t0 = time.process_time(), time.perf_counter()
        jax.block_until_ready(call())
        print(f"TIME {time.perf_counter() - t0} {time.process_time() - cpu0}", flush=True)
    print("RESULT " + json.dumps({"peak_rss_gb": _rss_gb()}), flush=True)


def hoisted_call(preset: str, attention: str | None = None):
    """(jitted forward, params, noisy targets, structure) of our denoiser call: random
    weights and inputs, float32, batch 1, static embeddings hoisted
    (`network.hoist_static`, as in a forecast); `attention` overrides the layout
    (default: the preset's, dense masked attention at 1 deg Mini)."""
    import jax
    import jax.numpy as jnp

    from minigencast import config, network

    cfg = config.preset(preset)
    n_lat, n_lon = cfg.grid
    structure = network.build_structure(
        cfg, np.linspace(-90.0, 90.0, n_lat), np.arange(n_lon) * 360.0 / n_lon, None, attention
    )
    counts = network.channel_counts(cfg)
    params = jax.jit(network.init_denoiser, static_argnums=(1, 2, 3, 4))(
        jax.random.key(0), cfg, *counts
    )
    structure = network.hoist_static(params, structure)  # as forecast.run does
    rng = np.random.default_rng(0)
    inputs, targets, forcings = (
        jnp.asarray(rng.standard_normal((n_lat, n_lon, n), dtype=np.float32)) for n in counts
    )
    # Structure and inputs closed over (constants), as DeepMind's Haiku module holds its
    # graphs: the side-by-side ratios in benchmarks/README.md were measured this way.
    fwd = jax.jit(lambda p, x: network.raw_denoiser(p, structure, cfg, inputs, forcings, x, 1.0))
    return fwd, params, targets, structure


def serve_ours(preset: str, attention: str | None = None):
    """Serves our call (`hoisted_call`) to `side_by_side`."""
    fwd, params, targets, structure = hoisted_call(preset, attention)
    compiled = fwd.lower(params, targets).compile()
    info = {"impl": "minigencast", "attention_layout": type(structure.attention).__name__}
    _serve(lambda: compiled(params, targets), info)


def serve_reference():
    """DeepMind's `denoiser.Denoiser` (d39de19) for the 1 deg Mini, dense "mha", float32,
    batch 1, random weights (`hk.transform` init) and inputs; imports only the reference."""
    import haiku as hk
    import jax
    import xarray
    from graphcast import denoiser, gencast, graphcast

    task = gencast.TASK
    rng = np.random.default_rng(0)
    sizes = {"batch": 1, "lat": 181, "lon": 360, "level": len(task.pressure_levels)}

    def dataset(names, num_times):
        data = {}
        for name in names:
            if name in graphcast.STATIC_VARS:
                dims = ("lat", "lon")
            elif name in graphcast.ALL_ATMOSPHERIC_VARS:
                dims = ("batch", "time", "lat", "lon", "level")
            else:
                dims = ("batch", "time", "lat", "lon")
            shape = [num_times if d == "time" else sizes[d] for d in dims]
            data[name] = (dims, rng.standard_normal(shape, dtype=np.float32))
        coords = {
            "lat": np.linspace(-90.0, 90.0, 181),
            "lon": np.arange(360.0),
            "level": list(task.pressure_levels),
            "time": np.arange(num_times) * np.timedelta64(12, "h"),
        }
        return xarray.Dataset(data, coords=coords)

    inputs = dataset(task.input_variables, 2)
    noisy = dataset(task.target_variables, 1)
    forcings = dataset(task.forcing_variables, 1)
    sigma = xarray.DataArray(np.ones(1, np.float32), dims=("batch",))
    arch = denoiser.DenoiserArchitectureConfig(
        sparse_transformer_config=denoiser.SparseTransformerConfig(
            attention_k_hop=16, d_model=512, num_layers=16, num_heads=4,
            attention_type="mha", mask_type="full",
        ),
        mesh_size=4,
        latent_size=512,
        hidden_layers=1,
        radius_query_fraction_edge_length=0.6,
        norm_conditioning_features=("noise_level_encodings",),
        node_output_size=84,  # target channels; set by GenCast's constructor there
    )  # fmt: skip

    @hk.transform
    def fwd(i, n, s, f):
        return denoiser.Denoiser(denoiser.NoiseEncoderConfig(), arch)(i, n, s, f)

    params = jax.jit(fwd.init)(jax.random.PRNGKey(0), inputs, noisy, sigma, forcings)
    apply = jax.jit(lambda p, i, n, s, f: fwd.apply(p, None, i, n, s, f))
    compiled = apply.lower(params, inputs, noisy, sigma, forcings).compile()
    _serve(
        lambda: jax.tree_util.tree_leaves(compiled(params, inputs, noisy, sigma, forcings)),
        {"impl": "reference"},
    )


def side_by_side(
    preset: str,
    reference: str,
    reference_python: str | None,
    repeats: int,
    attention: str | None = None,
    ours_xla_flags: str | None = None,
):
    """Alternates one call of ours and one of the reference, `repeats` times each.

    The reference runs under the caller's environment (XLA's defaults unless XLA_FLAGS
    is set); ours under `ours_xla_flags` if given (e.g. `cli.CPU_XLA_FLAGS`, which the
    `minigencast` command sets), else the same environment.
    """
    python = reference_python or os.path.join(os.path.dirname(reference), "venv", "bin", "python")
    env = dict(os.environ, PYTHONPATH=os.path.abspath(reference))
    ours_env = dict(os.environ)
    if ours_xla_flags is not None:
        ours_env["XLA_FLAGS"] = ours_xla_flags
    ours_cmd = [sys.executable, __file__, "--serve", "ours", "--preset", preset]
    if attention:
        ours_cmd += ["--attention", attention]
    procs = {
        "ours": subprocess.Popen(
            ours_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ours_env,
        ),
        "reference": subprocess.Popen(
            [python, __file__, "--serve", "reference"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        ),
    }  # fmt: skip

    def read(proc, tag):
        for line in proc.stdout:
            if line.startswith(tag + " "):
                return line[len(tag) + 1 :].strip()
        raise RuntimeError(f"child exited before {tag} (return code {proc.wait()})")

    ready = {name: json.loads(read(proc, "READY")) for name, proc in procs.items()}
    times = {name: [] for name in procs}
    cpu = {name: [] for name in procs}
    for _ in range(repeats):
        for name, proc in procs.items():
            proc.stdin.write("go\n")
            proc.stdin.flush()
            wall, cpu_s = (float(v) for v in read(proc, "TIME").split())
            times[name].append(wall)
            cpu[name].append(cpu_s)
    result = {
        "preset": preset,
        "load_average_1min_at_end": os.getloadavg()[0],
        "ours_attention_layout": ready["ours"]["attention_layout"],
        "ours_xla_flags": ours_env.get("XLA_FLAGS", ""),
        "reference_xla_flags": env.get("XLA_FLAGS", ""),
    }
    for name, proc in procs.items():
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        peak = json.loads(read(proc, "RESULT"))["peak_rss_gb"]
        proc.wait()
        result[name] = {
            "forward_seconds": times[name],
            "forward_seconds_median": float(np.median(times[name])),
            "forward_cpu_seconds_median": float(np.median(cpu[name])),
            "peak_rss_gb": peak,
        }
    result["ratio_reference_over_ours_wall"] = (
        result["reference"]["forward_seconds_median"] / result["ours"]["forward_seconds_median"]
    )
    result["ratio_reference_over_ours_cpu"] = (
        result["reference"]["forward_cpu_seconds_median"]
        / result["ours"]["forward_cpu_seconds_median"]
    )
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
    parser.add_argument(
        "--reference",
        default=None,
        help="DeepMind's graphcast source folder: time it and ours alternately (1 deg Mini)",
    )
    parser.add_argument(
        "--reference_python",
        default=None,
        help="its venv's python (default: REFERENCE/../venv/bin/python)",
    )
    parser.add_argument(
        "--ours_xla_flags",
        default=None,
        help="XLA_FLAGS for our side only (e.g. the minigencast command's "
        "cli.CPU_XLA_FLAGS); default: the environment's, as for the reference",
    )
    parser.add_argument(
        "--compile_only",
        action="store_true",
        help="compile and print XLA's memory analysis (xla_temp_gb, xla_argument_gb), no call",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    presets = args.preset or ["cpu", "gencast_1p0deg_mini"]

    if args.serve == "ours":
        return serve_ours(presets[0], args.attention)
    if args.serve == "reference":
        return serve_reference()
    if args.reference:
        res = side_by_side(
            (args.preset or ["gencast_1p0deg_mini"])[0],
            args.reference,
            args.reference_python,
            args.repeats,
            args.attention,
            args.ours_xla_flags,
        )
        print(json.dumps(res, indent=1))
        return

    if args.child:
        res = run_one(
            presets[0],
            args.attention,
            args.repeats,
            not args.no_backward,
            args.bfloat16,
            args.grid_chunk,
            args.memory_budget_gb,
            args.compile_only,
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
        if args.compile_only:
            cmd.append("--compile_only")
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
        if preset == "gencast_1p0deg_mini" and not args.compile_only:
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
