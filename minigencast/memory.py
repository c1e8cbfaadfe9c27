"""Peak-memory estimate of a GenCast denoiser call or forecast step, and a memory plan.

The estimate adds up the arrays alive at the worst moment of one denoiser call
(`network.raw_denoiser`) for one sample, phase by phase:

  base        weights (4 B each), the static `Structure` (twice: the host's numpy
              arrays and the call's device copy), the runtime itself
  inputs      the grid inputs [N_g, C_in + C_f + C_t] (argument + stacked copy)
  encoder     unchunked: grid latent h_g and its sender projection h_g W_s [N_g, D]
              each, plus the edge work (~5 [E, D] float32) or grid-node work;
              grid nodes chunked (C at a time, `gnn.grid2mesh_by_sender`): only the
              output grid latent [N_g, D] is whole-grid, plus per chunk h, h W_s [C, D]
              and the larger of the node work and its ~C E/N_g edges' work
  processor   grid latent [N_g, D] (kept for the decoder) plus one layer's attention
              (~3 copies of its float32 logits: logits, mask select, softmax)
  decoder     unchunked: grid latent, h_g W_r and the aggregated messages [N_g, D]
              each, plus the edge or node work; chunked (`gnn.mesh2grid`'s `fan_in`):
              the grid latent plus per chunk h W_r, the sums [C, D] and the larger of
              the node work and its C E/N_g (3 C) edges' work
  peak        base + inputs + max(encoder, processor, decoder), times the samples
              run together (members_per_batch) for everything but base

A forecast step adds per member the sampler's state (~8 [N_g, C_t] arrays: x, the
denoised estimates of both DPM-Solver stages, noise, frames). Per-tensor constants
were checked against measured peak RSS on this CPU (docs/performance.md,
benchmarks/README.md): the estimate must stay within 25 % of what is measured.

`plan` turns a budget into chunk sizes and a `members_per_batch`, or raises
`MemoryBudgetError` before anything is compiled, naming the flags that help.
"""

from __future__ import annotations

import dataclasses
import os
from typing import NamedTuple

import numpy as np

GB = 1e9
# Resident memory of the runtime: Python with JAX's CPU client and the package imported
# (0.25 GB) plus XLA's compiler (the cpu preset's denoiser call peaks at 0.62 GB).
RUNTIME_BYTES = int(0.6 * GB)
EDGE_TENSORS = 5  # live [edges, D] float32 tensors of one edge MLP evaluation
ATTENTION_COPIES = 3  # live float32 logits-sized tensors of one attention evaluation
SAMPLER_GRIDS = 8  # live [N_g, C_t] float32 arrays of the sampler per member


class MemoryBudgetError(ValueError):
    """A configuration whose estimated peak memory exceeds the budget."""


class Sizes(NamedTuple):
    """The sizes that set a denoiser call's memory (from the graphs and the config)."""

    grid_nodes: int
    mesh_nodes: int
    grid2mesh_edges: int
    mesh2grid_edges: int
    node_features: int  # C_in + C_f + C_t + 3 structural
    targets: int  # C_t
    latent: int  # D
    num_heads: int
    ffw_hidden: int
    tri_block: int  # bandwidth b of the RCM-ordered k-hop mask
    parameters: int
    structure_bytes: int


def sizes(cfg, graphs: dict) -> Sizes:
    """`Sizes` of cfg on `graphs` (`graphs.build_graphs` output)."""
    from minigencast import network, transformer

    arch = cfg.denoiser_architecture_config
    st = arch.sparse_transformer_config
    c_in, c_t, c_f = network.channel_counts(cfg)
    rows, cols = graphs["attention_mask_rows"], graphs["attention_mask_cols"]
    keys = [
        k for k in graphs if k.startswith(("grid2mesh_", "mesh2grid_", "grid_node", "mesh_node"))
    ]
    return Sizes(
        grid_nodes=int(graphs["grid_node_structural_features"].shape[0]),
        mesh_nodes=int(graphs["mesh_node_structural_features"].shape[0]),
        grid2mesh_edges=int(graphs["grid2mesh_senders"].shape[0]),
        mesh2grid_edges=int(graphs["mesh2grid_senders"].shape[0]),
        node_features=c_in + c_f + c_t + network.NUM_STRUCTURAL_FEATURES,
        targets=c_t,
        latent=arch.latent_size,
        num_heads=st.num_heads,
        ffw_hidden=st.ffw_hidden,
        tri_block=transformer.tri_block_size(rows, cols),
        parameters=network.num_parameters(cfg),
        structure_bytes=int(sum(np.asarray(graphs[k]).nbytes for k in keys)),
    )


def attention_bytes(s: Sizes, attention_type: str, window_chunk: int | None) -> dict:
    """(layout bytes, one layer's transient bytes) of an attention layout, one sample."""
    n, h, b = s.mesh_nodes, s.num_heads, s.tri_block
    if attention_type == "mha":
        layout, logits = n * n, h * n * n
    elif attention_type == "splash_mha":
        q = min(window_chunk or n, n)
        width = min(n, q + 2 * (b - 1))
        layout, logits = -(-n // q) * q * width, h * q * width
    elif attention_type == "triblockdiag_mha":
        layout, logits = -(-n // b) * b * 3 * b, h * b * 3 * b
    else:
        raise ValueError(f"unknown attention_type {attention_type!r}")
    return {"layout": layout, "transient": ATTENTION_COPIES * 4 * logits}


def estimate(
    s: Sizes,
    attention_type: str,
    chunks=None,
    window_chunk: int | None = None,
    members: int = 1,
    bytes_per_activation: int = 4,
    forecast: bool = False,
) -> dict:
    """Peak bytes of `members` denoiser calls run together, by phase (see module doc).

    chunks: a `network.Chunks` (None: no chunking). Returns a dict of byte counts,
    "peak" the total.
    """
    n_g, d, a = s.grid_nodes, s.latent, bytes_per_activation
    grid_nodes = chunks and chunks.grid_nodes
    g2m = (chunks and chunks.grid2mesh_edges) or s.grid2mesh_edges
    m2g = (chunks and chunks.mesh2grid_edges) or s.mesh2grid_edges
    node_rows = min(grid_nodes or n_g, n_g)
    att = attention_bytes(s, attention_type, window_chunk)
    grid_latent = n_g * d * a
    edge_work = lambda edges: EDGE_TENSORS * edges * d * 4  # noqa: E731
    if grid_nodes:  # grid-node-chunked GNNs (`network.GraphLayout`)
        node_work = node_rows * (s.node_features + 3 * d) * 4
        chunk_nodes = 2 * node_rows * d * a
        per_chunk = lambda edges: -(-node_rows * edges // n_g)  # noqa: E731
        encoder = chunk_nodes + max(edge_work(per_chunk(s.grid2mesh_edges)), node_work)
        decoder = chunk_nodes + max(edge_work(per_chunk(s.mesh2grid_edges)), node_work)
        encoder, decoder = grid_latent + encoder, grid_latent + decoder
    else:
        encoder = 2 * grid_latent + edge_work(min(g2m, s.grid2mesh_edges))
        decoder = 3 * grid_latent + edge_work(min(m2g, s.mesh2grid_edges))
    per_sample = {
        "inputs": 2 * n_g * s.node_features * 4,
        "encoder": encoder,
        "processor": grid_latent + att["transient"] + s.mesh_nodes * (4 * d + 2 * s.ffw_hidden) * 4,
        "decoder": decoder,
    }
    out = {
        # The structure twice: host (numpy) arrays and their copy made for the call.
        "base": RUNTIME_BYTES + 4 * s.parameters + 2 * (s.structure_bytes + att["layout"]),
        "inputs": members * per_sample["inputs"],
    }
    for phase in ("encoder", "processor", "decoder"):
        out[phase] = members * per_sample[phase]
    out["sampler"] = members * SAMPLER_GRIDS * n_g * s.targets * 4 if forecast else 0
    out["peak"] = (
        out["base"]
        + out["inputs"]
        + out["sampler"]
        + max(out["encoder"], out["processor"], out["decoder"])
    )
    return {k: int(v) for k, v in out.items()}


def hoisted_bytes(s: Sizes) -> int:
    """Bytes of `network.hoist_static`'s embeddings: (E_g2m + E_m2g + N_m) D float32."""
    return 4 * s.latent * (s.grid2mesh_edges + s.mesh2grid_edges + s.mesh_nodes)


def default_budget_bytes() -> int:
    """This process's first device's memory limit (XLA's statistics), else 80 % of the host RAM."""
    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return int(0.8 * host_bytes())


def host_bytes() -> int:
    """This machine's RAM."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_host_outputs(
    num_pairs: int,
    num_inits: int,
    num_input_times: int,
    state_bytes: int,
    chunk_steps: int,
    chunk_copies: int = 1,
    returned_steps: int = 0,
) -> None:
    """Raise `MemoryBudgetError` if a forecast's host arrays cannot fit the RAM.

    Per (init, member) pair the host holds `chunk_copies` copies of a chunk's
    `chunk_steps` output states (2 with a spread correction: the chunk as JAX returns
    it and its corrected copy), the `returned_steps` states of a forecast returned in
    memory (0 when it is written to a file) and its T_in carried frames
    (`forecast.rollout`); per init, its T_in input frames twice (read, and with SST's
    NaNs filled). The forcings are one row of longitudes per time
    (`forecast.forcing_windows`), too few to count:

        (pairs x (chunk_copies chunk_steps + returned_steps + T_in) + inits x 2 T_in)
        x state_bytes
    """
    per_pair = chunk_copies * chunk_steps + returned_steps + num_input_times
    need = (num_pairs * per_pair + num_inits * 2 * num_input_times) * state_bytes
    if need > host_bytes():
        if returned_steps:
            fix = ", or write it to a file (out=)"
        else:
            fix = ", or a smaller --chunk_steps" if chunk_steps > 1 else ""
        raise MemoryBudgetError(
            f"the forecast would hold {need / GB:.1f} GB on the host ({num_pairs} (init, member) "
            f"pairs x {per_pair} states, plus the input frames), more than its "
            f"{host_bytes() / GB:.1f} GB of RAM; use fewer members or init times{fix}"
        )


def _pow2_at_most(x: float, lo: int = 64) -> int:
    return max(lo, 1 << int(np.floor(np.log2(max(x, 1)))))


@dataclasses.dataclass(frozen=True)
class Plan:
    """Chunk sizes and group size chosen for a budget, with the resulting estimate."""

    chunks: object  # network.Chunks
    window_chunk: int | None
    members_per_batch: int
    estimate: dict
    budget: int


def plan(
    s: Sizes,
    attention_type: str,
    budget: int,
    num_samples: int = 1,
    members_per_batch: int | None = None,
    grid_chunk: int | None = None,
    bytes_per_activation: int = 4,
    forecast: bool = False,
) -> Plan:
    """The largest groups and chunks that fit `budget` bytes, or `MemoryBudgetError`.

    Unchunked if it fits; otherwise grid nodes and grid-side edges are cut so that one
    chunk's work uses ~1/16 of the budget (or `grid_chunk` of each, if given), and
    the "splash_mha" windows likewise. members_per_batch: given, or as many of the
    `num_samples` as fit.
    """
    from minigencast import network, transformer

    def est(chunks, window, m):
        return estimate(s, attention_type, chunks, window, m, bytes_per_activation, forecast)

    def choose(m):
        if grid_chunk is not None:
            chunks = network.Chunks(grid_chunk, grid_chunk, grid_chunk)
        elif est(None, None, m)["peak"] <= budget:
            return network.Chunks(), None
        else:
            share = budget / (16 * m)
            edges = _pow2_at_most(share / (EDGE_TENSORS * s.latent * 4))
            # A chunk of grid nodes also carries its edges' work (`estimate`).
            fan = max(s.grid2mesh_edges, s.mesh2grid_edges) / s.grid_nodes
            per_node = max(s.node_features + 3 * s.latent, fan * EDGE_TENSORS * s.latent)
            nodes = _pow2_at_most(share / (4 * per_node))
            chunks = network.Chunks(nodes, edges, edges)
        window = None
        if attention_type == "splash_mha":
            window = transformer.window_chunk(
                s.mesh_nodes, s.num_heads, s.tri_block, budget / (16 * m)
            )
        return chunks, window

    def fits(m):
        chunks, window = choose(m)
        e = est(chunks, window, m)
        return e["peak"] <= budget, (chunks, window, e)

    if members_per_batch:
        m = members_per_batch
    else:  # the largest group that fits, by bisection (the estimate grows with m)
        m, high = 1, num_samples
        while m < high:
            mid = (m + high + 1) // 2
            m, high = (mid, high) if fits(mid)[0] else (m, mid - 1)
    _, (chunks, window, e) = fits(m)
    if e["peak"] > budget:
        raise MemoryBudgetError(
            f"estimated peak memory {e['peak'] / GB:.1f} GB ({m} member(s) per batch, "
            f"attention {attention_type}) exceeds the memory budget of {budget / GB:.1f} GB; "
            "use --members_per_batch 1, a smaller --grid_chunk, --attention splash_mha, "
            "or a larger --memory_budget_gb"
        )
    return Plan(chunks, window, m, e, budget)


def summary(cfg, graphs: dict) -> dict:
    """Estimated peak bytes of one denoiser call and of one forecast member (no chunking,
    float32) for every attention layout: the `minigencast info` entry."""
    from minigencast import transformer

    s = sizes(cfg, graphs)
    return {
        a: {
            "denoiser_call": estimate(s, a)["peak"],
            "forecast_member": estimate(s, a, forecast=True)["peak"],
        }
        for a in transformer.ATTENTION_TYPES
    }
