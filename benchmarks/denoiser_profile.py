"""Where one denoiser call spends its time: XLA ops grouped by kind and output shape.

Builds the preset's denoiser as `benchmarks/denoiser.py --reference` runs ours
(`denoiser.hoisted_call`: random weights, float32, batch 1, static embeddings hoisted),
compiles it, makes one warm-up call, then traces one call with `jax.profiler` and sums
the duration of every XLA op (thunk) in the trace. Under `cli.CPU_XLA_FLAGS` the Eigen
matmuls do not appear in the trace, so only the other ops are counted there. Ops are
grouped by kind (every matmul, YNNPACK/oneDNN fusions included, is "dot") and output
shape, which names the part of the network: at 1 deg
Mini, [65160, 512] rows are grid nodes, [195480, 512] mesh2grid edges, [102486, 512]
grid2mesh edges, [2562, *] mesh nodes, [4, 2562, 2562] attention logits. It also prints
XLA's FLOP count of the call (`cost_analysis`).

    python benchmarks/denoiser_profile.py --preset gencast_1p0deg_mini
    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= python benchmarks/denoiser_profile.py
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

DOT_KINDS = ("dot", "ynn_fusion", "onednn", "xnn_fusion")
RUNTIME_EVENTS = ("$", "ThunkExecutor", "Pjit", "Parse", "Common", "PjRt")


def op_shapes(hlo_text: str) -> dict:
    """{instruction name: output shape} of an optimized HLO module's text."""
    shapes = {}
    for line in hlo_text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+) ", line)
        if m:
            shapes[m.group(1)] = m.group(2).split("{")[0]
    return shapes


def group_trace(trace_dir: str, shapes: dict) -> collections.Counter:
    """Microseconds per (kind, output shape) over the XLA ops of a perfetto trace."""
    path = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True))[-1]
    with gzip.open(path) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    total = collections.Counter()
    for e in events:
        if e.get("ph") != "X" or e["name"].startswith(RUNTIME_EVENTS):
            continue
        kind = re.sub(r"[.\d]+$", "", e["name"])
        kind = "dot" if kind.startswith(DOT_KINDS) else kind
        total[(kind, shapes.get(e["name"], "?"))] += e.get("dur", 0)
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="gencast_1p0deg_mini")
    parser.add_argument("--attention", default=None, help="override the attention layout")
    parser.add_argument("--top", type=int, default=25, help="rows to print")
    args = parser.parse_args(argv)

    import denoiser  # benchmarks/denoiser.py: the call that its side-by-side times
    import jax

    fwd, params, targets, structure = denoiser.hoisted_call(args.preset, args.attention)
    lowered = fwd.lower(params, targets)
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    compiled = lowered.compile()
    jax.block_until_ready(compiled(params, targets))  # warm-up
    cpu0, t0 = time.process_time(), time.perf_counter()
    jax.block_until_ready(compiled(params, targets))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
        jax.block_until_ready(compiled(params, targets))
        jax.profiler.stop_trace()
        groups = group_trace(trace_dir, op_shapes(compiled.as_text()))
    total = sum(groups.values())
    print(
        f"{args.preset}, {type(structure.attention).__name__}: {cost['flops'] / 1e9:.0f} GFLOP; "
        f"untraced call {wall:.2f} s wall, {cpu:.2f} CPU-s; traced ops {total / 1e6:.2f} s; "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; load {os.getloadavg()[0]:.1f}"
    )
    dots = sum(t for (kind, _), t in groups.items() if kind == "dot")
    print(f"all matmuls: {dots / 1e6:.2f} s ({100 * dots / total:.1f} %)")
    for (kind, shape), t in groups.most_common(args.top):
        print(f"{t / 1e3:9.0f} ms {100 * t / total:5.1f} %  {kind:28s} {shape}")


if __name__ == "__main__":
    main()
