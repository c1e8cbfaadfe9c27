"""What a configuration's structure costs: graph sizes, attention statistics, memory.

`info(cfg, grid)` is the API twin of `minigencast info`: it builds the graphs of a
configuration (NumPy only, cached) and reports their sizes, the attention-mask
statistics, memory estimates in bytes and the number of network parameters. It sits
above both `graphs` and `network`, which stay independent of each other.
"""

from __future__ import annotations

import numpy as np

from minigencast import icosahedral_mesh, network
from minigencast import memory as memory_lib
from minigencast import transformer as transformer_lib


def attention_memory_bytes(num_mesh_nodes, k_max, nnz, num_heads, tri_block) -> dict[str, int]:
    """Memory of the mask layouts and of one layer's float32 attention logits.

    Returns a dict of byte counts: the COO mask (2 int32 per non-zero), the dense
    boolean mask N^2, the neighbour lists N K_max (int32 index + bool valid), and the
    logits of one attention layer for one sample: dense H N^2, gather H N K_max,
    tri-block-diagonal H * 3 b * (N rounded up to b).
    """
    n, h = int(num_mesh_nodes), int(num_heads)
    padded = -(-n // tri_block) * tri_block
    return {
        "mask_coo": 8 * int(nnz),
        "mask_dense": n * n,
        "neighbour_lists": 5 * n * int(k_max),
        "logits_dense_per_layer": 4 * h * n * n,
        "logits_gather_per_layer": 4 * h * n * int(k_max),
        "logits_triblock_per_layer": 4 * h * padded * 3 * int(tri_block),
    }


def info(cfg, grid=None) -> dict:
    """What a configuration's structure costs: the twin of `minigencast info`.

    Args:
      cfg: a `config.GenCastConfig`.
      grid: (n_lat, n_lon) of an equiangular grid with poles; default `cfg.grid`.

    Returns:
      A JSON-serialisable dict: grid and graph sizes, attention-mask statistics,
      memory estimates in bytes and the number of parameters.
    """
    n_lat, n_lon = grid if grid is not None else cfg.grid
    lat = np.linspace(-90, 90, n_lat)
    lon = np.arange(n_lon) * (360.0 / n_lon)
    arch = cfg.denoiser_architecture_config
    transformer = arch.sparse_transformer_config
    g = network.build_graphs(cfg, lat, lon)  # the model's (float32) graphs
    n_mesh = len(g["mesh_vertices"])
    rows, cols = g["attention_mask_rows"], g["attention_mask_cols"]
    per_node = np.bincount(rows, minlength=n_mesh)
    block = transformer_lib.tri_block_size(rows, cols)
    g2m_in = np.bincount(g["grid2mesh_receivers"], minlength=n_mesh)
    max_edge = icosahedral_mesh.max_edge_length(
        icosahedral_mesh.TriangularMesh(g["mesh_vertices"], g["mesh_faces"])
    )
    out = {
        "grid": [int(n_lat), int(n_lon)],
        "grid_nodes": int(n_lat * n_lon),
        "mesh_size": int(arch.mesh_size),
        "attention_k_hop": int(transformer.attention_k_hop),
        "mesh_nodes": int(n_mesh),
        "mesh_faces": int(len(g["mesh_faces"])),
        "mesh_edges": int(len(g["mesh_senders"])),
        "mesh_max_edge_length": float(max_edge),
        "grid2mesh_radius": float(np.float32(max_edge * arch.radius_query_fraction_edge_length)),
        "grid2mesh_edges": int(len(g["grid2mesh_senders"])),
        "grid2mesh_max_in_degree": int(g2m_in.max()),
        "mesh2grid_edges": int(len(g["mesh2grid_senders"])),
        "attention_mask_nonzeros": int(len(rows)),
        "attention_neighbours_mean": float(per_node.mean()),
        "attention_neighbours_max": int(per_node.max()),
        "attention_tri_block_size": int(block),
    }
    out["parameters"] = int(network.num_parameters(cfg))
    memory = {"graphs": int(sum(np.asarray(v).nbytes for v in g.values()))}
    memory.update(
        attention_memory_bytes(n_mesh, per_node.max(), len(rows), transformer.num_heads, block)
    )
    memory["noise_basis"] = 4 * (n_lon // 2) ** 2 * n_lat
    out["memory_bytes"] = memory
    out["peak_memory_estimate_bytes"] = memory_lib.summary(cfg, g)
    return out
