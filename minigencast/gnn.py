"""The encoder (grid2mesh) and decoder (mesh2grid) GNNs of GenCast (docs/design.md §6.6, §6.8).

Both are one step of a typed interaction network [1] on a bipartite graph with sum
aggregation, DeepMind's `DeepTypedGraphNet` with `num_message_passing_steps=1`:

  embed:      e = MLPn(edge features)            (and node embedders in the encoder)
  edge step:  e' = MLPn([e, h_sender[s], h_receiver[r]])
  aggregate:  a_i = sum_{edges with receiver i} e'          (segment sum, no normalisation)
  node step:  h_i <- h_i + MLPn([h_i, a_i])

where MLPn is the "MLP with norm" of `nn.mlp_with_norm`: Linear -> swish -> Linear ->
LayerNorm -> conditional scale/offset from the noise-level encoding. Parameter names are
those of DeepMind's checkpoints (`encoder_edges_grid2mesh_mlp`, ...), see docs/design.md §9.2.

One sample at a time: node features [num_nodes, channel], edge features [num_edges, 4],
senders/receivers [num_edges] int32, cond [C] (the noise-level encoding).

Efficiency note: the first Linear of the edge MLP acts on the concatenation
[e, h_s, h_r]; we split its weight into the three row blocks W_e, W_s, W_r and compute
h_s W_s and h_r W_r once per *node* before gathering them onto edges. The result is the
same function (up to float rounding) with ~2/3 fewer multiply-adds in that layer: the
grid-side edge MLPs dominate the cost of a GenCast call (docs/design.md §11).

References:
  [1] Battaglia et al. 2018, "Relational inductive biases, deep learning, and graph
      networks", arXiv:1806.01261.
  [2] Lam et al. 2023, "Learning skillful medium-range global weather forecasting"
      (GraphCast), Science 382, 1416-1421.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from minigencast import nn

Params = dict


def _mlp_sizes(fan_in: int, latent: int, hidden_layers: int, fan_out: int | None = None):
    return [fan_in] + [latent] * hidden_layers + [latent if fan_out is None else fan_out]


def _init_many(key, specs, cond_size, hidden_layers, latent) -> Params:
    keys = jax.random.split(key, len(specs))
    params = {}
    for k, (name, fan_in) in zip(keys, specs, strict=False):
        params.update(
            nn.init_mlp_with_norm(k, name, _mlp_sizes(fan_in, latent, hidden_layers), cond_size)
        )
    return params


# --------------------------------------------------------------------------
# Shared message-passing pieces.


def edge_update(params, name, edges, senders_h, receivers_h, senders, receivers, cond):
    """e' = MLPn([e, h_s[senders], h_r[receivers]]) with the first Linear factorised.

    Args:
      edges: [num_edges, latent]; senders_h: [num_sender_nodes, latent];
      receivers_h: [num_receiver_nodes, latent]; senders/receivers: [num_edges].
    Returns:
      [num_edges, latent].
    """
    mlp = params[f"{name}_mlp"]
    first = mlp["linear_0"]
    w = first["w"].astype(edges.dtype)
    d_e, d_s = edges.shape[-1], senders_h.shape[-1]
    w_e, w_s, w_r = w[:d_e], w[d_e : d_e + d_s], w[d_e + d_s :]
    x = (
        jnp.dot(edges, w_e)
        + jnp.dot(senders_h, w_s)[senders]
        + jnp.dot(receivers_h, w_r)[receivers]
        + nn.expand_to(first["b"].astype(edges.dtype), 2)
    )
    rest = {f"linear_{i - 1}": mlp[f"linear_{i}"] for i in range(1, len(mlp))}
    x = nn.mlp(rest, nn.swish(x)) if rest else x
    return nn.conditional_layer_norm(params[f"{name}_norm_conditioning"], x, cond)


def aggregate(messages, receivers, num_nodes, dtype=jnp.float32):
    """a_i = sum of messages with receiver i: [num_edges, F] -> [num_nodes, F] (plain sum)."""
    summed = jax.ops.segment_sum(messages.astype(dtype), receivers, num_segments=num_nodes)
    return summed.astype(messages.dtype)


# --------------------------------------------------------------------------
# Grid2Mesh (encoder).


def init_grid2mesh(
    key, num_node_features: int, latent: int, cond_size: int, hidden_layers: int = 1
) -> Params:
    """Parameters of `grid2mesh_gnn` (with the Haiku-internal `~_networks_builder` dropped).

    num_node_features: data channels + 3 structural features (DeepMind's 267 at 13 levels);
    the mesh node embedder has the same input width (its data part is all zeros).
    """
    specs = [
        ("encoder_edges_grid2mesh", 4),
        ("encoder_nodes_grid_nodes", num_node_features),
        ("encoder_nodes_mesh_nodes", num_node_features),
        ("processor_edges_0_grid2mesh", 3 * latent),
        ("processor_nodes_0_grid_nodes", latent),
        ("processor_nodes_0_mesh_nodes", 2 * latent),
    ]
    return _init_many(key, specs, cond_size, hidden_layers, latent)


def grid2mesh(params, grid_nodes, mesh_nodes, edge_features, senders, receivers, cond):
    """One encoder step: grid features -> (mesh latent, grid latent) (docs/design.md §6.6).

    Args:
      params: the `grid2mesh_gnn` subtree.
      grid_nodes: [num_grid_nodes, C]  stacked data channels + 3 structural features.
      mesh_nodes: [num_mesh_nodes, C]  zeros + 3 structural features.
      edge_features: [num_edges, 4]; senders (grid index), receivers (mesh index): [num_edges].
      cond: [cond] noise-level encoding.
    Returns:
      mesh latent [num_mesh_nodes, latent], grid latent [num_grid_nodes, latent].
    """
    e = nn.mlp_with_norm(params, "encoder_edges_grid2mesh", edge_features, cond)
    h_g = nn.mlp_with_norm(params, "encoder_nodes_grid_nodes", grid_nodes, cond)
    h_m = nn.mlp_with_norm(params, "encoder_nodes_mesh_nodes", mesh_nodes, cond)
    e_new = edge_update(
        params, "processor_edges_0_grid2mesh", e, h_g, h_m, senders, receivers, cond
    )
    # DeepMind aggregates in float32 even under bfloat16 ("f32_aggregation").
    a_m = aggregate(e_new, receivers, h_m.shape[0], dtype=jnp.float32)
    h_m = h_m + nn.mlp_with_norm(
        params, "processor_nodes_0_mesh_nodes", jnp.concatenate([h_m, a_m], -1), cond
    )
    h_g = h_g + nn.mlp_with_norm(params, "processor_nodes_0_grid_nodes", h_g, cond)
    return h_m, h_g


# --------------------------------------------------------------------------
# Mesh2Grid (decoder).


def init_mesh2grid(
    key, latent: int, num_outputs: int, cond_size: int, hidden_layers: int = 1
) -> Params:
    """Parameters of `mesh2grid_gnn`, incl. the unused mesh-node update (docs/design.md §6.8)."""
    k_gnn, k_dec = jax.random.split(key)
    specs = [
        ("encoder_edges_mesh2grid", 4),
        ("processor_edges_0_mesh2grid", 3 * latent),
        ("processor_nodes_0_grid_nodes", 2 * latent),
        # Exists in DeepMind's graph and checkpoints; its output is never used.
        ("processor_nodes_0_mesh_nodes", latent),
    ]
    params = _init_many(k_gnn, specs, cond_size, hidden_layers, latent)
    params["decoder_nodes_grid_nodes_mlp"] = nn.init_mlp(
        k_dec, _mlp_sizes(latent, latent, hidden_layers, num_outputs)
    )
    return params


def mesh2grid(params, mesh_latent, grid_latent, edge_features, senders, receivers, cond):
    """One decoder step and the output MLP: -> [num_grid_nodes, num_outputs] (docs/design.md §6.8).

    Args:
      params: the `mesh2grid_gnn` subtree.
      mesh_latent: [num_mesh_nodes, latent] processor output.
      grid_latent: [num_grid_nodes, latent] grid latent of the encoder.
      edge_features: [num_edges, 4]; senders (mesh index), receivers (grid index).
      cond: [cond].
    """
    e = nn.mlp_with_norm(params, "encoder_edges_mesh2grid", edge_features, cond)
    e_new = edge_update(
        params, "processor_edges_0_mesh2grid", e, mesh_latent, grid_latent, senders, receivers, cond
    )
    a_g = aggregate(e_new, receivers, grid_latent.shape[0], dtype=e_new.dtype)
    h_g = grid_latent + nn.mlp_with_norm(
        params, "processor_nodes_0_grid_nodes", jnp.concatenate([grid_latent, a_g], -1), cond
    )
    # The decoder MLP has no LayerNorm and no conditioning.
    return nn.mlp(params["decoder_nodes_grid_nodes_mlp"], h_g, activation=nn.swish)
