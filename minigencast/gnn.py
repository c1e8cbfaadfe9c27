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

Memory note: XLA keeps whole-grid [N_g, D] arrays alive past their phase, so with grid
nodes chunked both GNNs go grid-node chunk by chunk (`grid2mesh_by_sender`, and
`mesh2grid` with `fan_in`): only the grid latent stays whole-grid (docs/performance.md).

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


def split_first_linear(params, name, d_e: int, d_s: int, dtype):
    """(W_e, W_s, W_r, b) of the edge MLP's first Linear, split by input block."""
    first = params[f"{name}_mlp"]["linear_0"]
    w = first["w"].astype(dtype)
    return w[:d_e], w[d_e : d_e + d_s], w[d_e + d_s :], first["b"].astype(dtype)


def edge_mlp_rest(params, name, x, cond):
    """The edge MLP after its first Linear (pre-activation x), then the cond. LayerNorm."""
    mlp = params[f"{name}_mlp"]
    rest = {f"linear_{i - 1}": mlp[f"linear_{i}"] for i in range(1, len(mlp))}
    x = nn.mlp(rest, nn.swish(x)) if rest else x
    return nn.conditional_layer_norm(params[f"{name}_norm_conditioning"], x, cond)


def edge_update(params, name, edges, senders_h, receivers_h, senders, receivers, cond):
    """e' = MLPn([e, h_s[senders], h_r[receivers]]) with the first Linear factorised.

    Args:
      edges: [num_edges, latent]; senders_h: [num_sender_nodes, latent];
      receivers_h: [num_receiver_nodes, latent]; senders/receivers: [num_edges].
    Returns:
      [num_edges, latent].
    """
    w_e, w_s, w_r, b = split_first_linear(
        params, name, edges.shape[-1], senders_h.shape[-1], edges.dtype
    )
    x = (
        jnp.dot(edges, w_e)
        + jnp.dot(senders_h, w_s)[senders]
        + jnp.dot(receivers_h, w_r)[receivers]
        + nn.expand_to(b, 2)
    )
    return edge_mlp_rest(params, name, x, cond)


def aggregate(messages, receivers, num_nodes, dtype=jnp.float32):
    """a_i = sum of messages with receiver i: [num_edges, F] -> [num_nodes, F] (plain sum),
    accumulated in `dtype` (None: the messages' dtype)."""
    dtype = messages.dtype if dtype is None else dtype
    summed = jax.ops.segment_sum(messages.astype(dtype), receivers, num_segments=num_nodes)
    return summed.astype(messages.dtype)


# --------------------------------------------------------------------------
# Chunked evaluation: the same functions, a bounded number of grid nodes / edges at a time.


def map_rows(fn, arrays, chunk: int | None):
    """fn over the leading axis of `arrays` (equal lengths N), `chunk` rows at a time.

    fn maps [C, ...] arrays to one [C, F] array; rows are independent. Chunks are
    sliced in place and written into one [N, F] output (`fori_loop`); the last chunk
    starts at N - chunk, recomputing a few rows, so nothing is padded or copied.
    chunk None (or >= N): one call.
    """
    n = arrays[0].shape[0]
    if chunk is None or chunk >= n:
        return fn(*arrays)
    specs = [jax.ShapeDtypeStruct((chunk,) + x.shape[1:], x.dtype) for x in arrays]
    out = jax.eval_shape(fn, *specs)

    def body(i, result):
        start = jnp.minimum(i * chunk, n - chunk)
        y = fn(*(jax.lax.dynamic_slice_in_dim(x, start, chunk) for x in arrays))
        return jax.lax.dynamic_update_slice_in_dim(result, y, start, 0)

    init = jnp.zeros((n,) + out.shape[1:], out.dtype)
    return jax.lax.fori_loop(0, -(-n // chunk), body, init)


def aggregate_chunked(message_fn, edge_arrays, receivers, num_nodes, chunk, dtype):
    """sum_e message_fn(edge rows)[e] by receiver, `chunk` edges at a time.

    A `lax.scan` carries the [num_nodes, F] sums (in `dtype`); only one chunk's
    messages are alive at a time. Padding edges get receiver `num_nodes`, dropped by
    the scatter. chunk None (or >= num_edges): `aggregate` of all messages at once.
    """
    n = receivers.shape[0]
    if chunk is None or chunk >= n:
        return aggregate(message_fn(*edge_arrays, receivers), receivers, num_nodes, dtype)
    num = -(-n // chunk)
    extra = num * chunk - n
    r_pad = jnp.pad(receivers, (0, extra), constant_values=num_nodes).reshape(num, chunk)
    xs = tuple(
        jnp.pad(x, ((0, extra),) + ((0, 0),) * (x.ndim - 1)).reshape((num, chunk) + x.shape[1:])
        for x in edge_arrays
    )

    def body(acc, args):
        *rows, r = args
        msg = message_fn(*rows, jnp.minimum(r, num_nodes - 1))
        return acc.at[r].add(msg.astype(dtype), mode="drop"), None

    out = jax.eval_shape(message_fn, *(x[0] for x in xs), jnp.zeros(chunk, r_pad.dtype))
    dtype = out.dtype if dtype is None else dtype
    acc, _ = jax.lax.scan(body, jnp.zeros((num_nodes, out.shape[-1]), dtype), xs + (r_pad,))
    return acc.astype(out.dtype)


# --------------------------------------------------------------------------
# Embedders of static inputs: LN(MLP(x)) depends only on the graphs and the weights.

STATIC_EMBEDDERS = {
    "grid2mesh_gnn": ("encoder_edges_grid2mesh", "encoder_nodes_mesh_nodes"),
    "mesh2grid_gnn": ("encoder_edges_mesh2grid",),
}


def static_embedding(params, name, x):
    """LN(MLP(x)) of the embedder `name`: its part that does not depend on sigma."""
    return nn.layer_norm(nn.mlp(params[f"{name}_mlp"], x, activation=nn.swish))


def embed(params, name, x, cond, static=None):
    """MLPn(x) = (1 + s(c)) LN(MLP(x)) + o(c); `x` is the precomputed LN(MLP(.)) of a
    static input when `static` is given (`static_embedding`)."""
    if static is None:
        return nn.mlp_with_norm(params, name, x, cond)
    return nn.norm_conditioning(params[f"{name}_norm_conditioning"], x, cond)


def aggregate_edge_messages(
    params, names, graph, first_linear, num_nodes, cond, edge_chunk, dtype, static
):
    """Sum by receiver of e' = MLPn([MLPn(edge features), h_s, h_r]), chunked.

    names: (edge embedder, edge update); graph: (edge features, senders, receivers);
    first_linear: (W_e, h_s W_s per sender node, h_r W_r per receiver node, b).
    """
    embedder, name = names
    features, senders, receivers = graph
    w_e, p_s, p_r, b = first_linear

    def messages(rows, s, r):
        e = embed(params, embedder, rows, cond, static)
        x = jnp.dot(e, w_e) + p_s[s] + p_r[r] + nn.expand_to(b, 2)
        return edge_mlp_rest(params, name, x, cond)

    edges = features if static is None else static[embedder]
    return aggregate_chunked(messages, (edges, senders), receivers, num_nodes, edge_chunk, dtype)


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


def grid2mesh(
    params,
    grid_nodes,
    mesh_nodes,
    edge_features,
    senders,
    receivers,
    cond,
    edge_chunk: int | None = None,
    node_chunk: int | None = None,
    static: dict | None = None,
    sender_chunks: tuple | None = None,
    aggregate_normalization: float | None = None,
):
    """One encoder step: grid features -> (mesh latent, grid latent) (docs/design.md §6.6).

    Args:
      params: the `grid2mesh_gnn` subtree.
      grid_nodes: [num_grid_nodes, C]  stacked data channels + 3 structural features.
      mesh_nodes: [num_mesh_nodes, C]  zeros + 3 structural features.
      edge_features: [num_edges, 4]; senders (grid index), receivers (mesh index): [num_edges].
      cond: [cond] noise-level encoding.
      edge_chunk, node_chunk: evaluate the edges / grid nodes this many at a time
        (static; None: all at once). Same function, bounded memory.
      static: optional `static_embeddings` of the edge and mesh-node embedders
        (computed once per forecast); then `edge_features` and `mesh_nodes` are unused.
      sender_chunks: (offsets [K], max_edges) when the edges are sorted by sender:
        offsets[k] is the first edge sent by grid node k * node_chunk, and no chunk of
        node_chunk grid nodes sends more than max_edges (static) edges. Then one pass
        over grid-node chunks does all grid-side work (`grid2mesh_by_sender`).
      aggregate_normalization: the checkpoint's `grid2mesh_aggregate_normalization`: each
        mesh node's sum of messages a_m is divided by it (None or 0: plain sum), as
        DeepMind's encoder does (graphcast/deep_typed_graph_net.py, `aggregate_fn`).
    Returns:
      mesh latent [num_mesh_nodes, latent], grid latent [num_grid_nodes, latent].
    """
    name = "processor_edges_0_grid2mesh"
    mesh_in = mesh_nodes if static is None else static["encoder_nodes_mesh_nodes"]
    if sender_chunks is not None:
        h_m = embed(params, "encoder_nodes_mesh_nodes", mesh_in, cond, static)
        edges = edge_features if static is None else static["encoder_edges_grid2mesh"]
        a_m, h_g = grid2mesh_by_sender(
            params,
            grid_nodes,
            h_m,
            (edges, senders, receivers),
            cond,
            node_chunk,
            sender_chunks,
            static,
        )
        return _update_mesh(params, h_m, a_m, cond, aggregate_normalization), h_g
    h_g = map_rows(
        lambda x: nn.mlp_with_norm(params, "encoder_nodes_grid_nodes", x, cond),
        (grid_nodes,),
        node_chunk,
    )
    h_m = embed(params, "encoder_nodes_mesh_nodes", mesh_in, cond, static)
    latent = h_m.shape[-1]
    w_e, w_s, w_r, b = split_first_linear(params, name, latent, latent, h_g.dtype)
    p_s = map_rows(lambda h: jnp.dot(h, w_s), (h_g,), node_chunk)  # per node, not per edge
    p_r = jnp.dot(h_m, w_r)

    # DeepMind aggregates in float32 even under bfloat16 ("f32_aggregation").
    a_m = aggregate_edge_messages(
        params,
        ("encoder_edges_grid2mesh", name),
        (edge_features, senders, receivers),
        (w_e, p_s, p_r, b),
        h_m.shape[0],
        cond,
        edge_chunk,
        jnp.float32,
        static,
    )
    h_g = map_rows(lambda h: _update_grid(params, h, cond), (h_g,), node_chunk)
    return _update_mesh(params, h_m, a_m, cond, aggregate_normalization), h_g


def _update_mesh(params, h_m, a_m, cond, aggregate_normalization=None):
    """h_m + MLPn([h_m, a_m / aggregate_normalization]): the encoder's mesh-node update."""
    # None or 0: no normalisation, as DeepMind's `if`. It divides the float32 sum before
    # casting; under bfloat16 here the already rounded sum is divided (float32: the same).
    if aggregate_normalization:
        a_m = a_m / aggregate_normalization
    return h_m + nn.mlp_with_norm(
        params, "processor_nodes_0_mesh_nodes", jnp.concatenate([h_m, a_m], -1), cond
    )


def _update_grid(params, h_g, cond):
    """h_g + MLPn(h_g): the encoder's grid-node update (grid nodes receive no edges)."""
    return h_g + nn.mlp_with_norm(params, "processor_nodes_0_grid_nodes", h_g, cond)


def grid2mesh_by_sender(params, grid_nodes, h_m, graph, cond, node_chunk, sender_chunks, static):
    """(a_m [N_m, D] float32-accumulated message sums, updated grid latent [N_g, D]) in one
    `fori_loop` over chunks of node_chunk grid nodes.

    Chunk k embeds its grid nodes h = MLPn(x), sends the messages of its edges (those
    with sender in [k C, (k+1) C), contiguous because `graph` is sorted by sender; a
    static max_edges window from offsets[k], the rest masked) into the carried mesh
    sums, and writes h + MLPn(h) into the output. Only the [N_g, D] output is
    whole-grid; the same function as the unsorted path up to summation order.
    graph: (edge features or their static embedding, senders, receivers), sorted by sender.
    """
    name = "processor_edges_0_grid2mesh"
    edges, senders, receivers = graph
    offsets, max_edges = jnp.asarray(sender_chunks[0]), sender_chunks[1]
    n, n_mesh, latent = grid_nodes.shape[0], h_m.shape[0], h_m.shape[-1]
    chunk = min(node_chunk or n, n)
    w_e, w_s, w_r, b = split_first_linear(params, name, latent, latent, h_m.dtype)
    p_r = jnp.dot(h_m, w_r)

    def pad(x, value):  # max_edges rows past the end: every window is in range
        return jnp.concatenate([x, jnp.full((max_edges,) + x.shape[1:], value, x.dtype)])

    edges, senders, receivers = pad(edges, 0), pad(senders, n), pad(receivers, n_mesh)
    out = jax.eval_shape(lambda x: _update_grid(params, x, cond), h_m[:1])

    def body(k, carry):
        acc, result = carry
        start = jnp.minimum(k * chunk, n - chunk)  # the last chunk overlaps the previous
        x = jax.lax.dynamic_slice_in_dim(grid_nodes, start, chunk)
        h = nn.mlp_with_norm(params, "encoder_nodes_grid_nodes", x, cond)
        window = [
            jax.lax.dynamic_slice_in_dim(a, offsets[k], max_edges)
            for a in (edges, senders, receivers)
        ]
        e, s, r = window
        valid = s < jnp.minimum((k + 1) * chunk, n)
        e = embed(params, "encoder_edges_grid2mesh", e, cond, static)
        x = (
            jnp.dot(e, w_e)
            + jnp.dot(h, w_s)[jnp.clip(s - start, 0, chunk - 1)]
            + p_r[jnp.minimum(r, n_mesh - 1)]
            + nn.expand_to(b, 2)
        )
        msg = edge_mlp_rest(params, name, x, cond)
        acc = acc.at[jnp.where(valid, r, n_mesh)].add(msg.astype(acc.dtype), mode="drop")
        h = _update_grid(params, h, cond)
        return acc, jax.lax.dynamic_update_slice_in_dim(result, h, start, 0)

    # DeepMind aggregates in float32 even under bfloat16 ("f32_aggregation").
    init = (jnp.zeros((n_mesh, latent), jnp.float32), jnp.zeros((n, latent), out.dtype))
    acc, h_g = jax.lax.fori_loop(0, offsets.shape[0], body, init)
    return acc.astype(h_m.dtype), h_g


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


def mesh2grid(
    params,
    mesh_latent,
    grid_latent,
    edge_features,
    senders,
    receivers,
    cond,
    edge_chunk: int | None = None,
    node_chunk: int | None = None,
    static: dict | None = None,
    fan_in: int | None = None,
):
    """One decoder step and the output MLP: -> [num_grid_nodes, num_outputs] (docs/design.md §6.8).

    Args:
      params: the `mesh2grid_gnn` subtree.
      mesh_latent: [num_mesh_nodes, latent] processor output.
      grid_latent: [num_grid_nodes, latent] grid latent of the encoder.
      edge_features: [num_edges, 4]; senders (mesh index), receivers (grid index).
      cond: [cond].
      edge_chunk, node_chunk, static: as in `grid2mesh`.
      fan_in: k when the receivers are [0]*k + [1]*k + ... (every grid node receives
        exactly k edges, sorted by receiver; DeepMind's mesh2grid: the 3 vertices of
        the containing triangle). Then grid nodes and their edges are evaluated
        together, node_chunk at a time, and `edge_chunk` is unused: only the
        [N_g, outputs] result is whole-grid.
    """
    name = "processor_edges_0_mesh2grid"
    latent = mesh_latent.shape[-1]
    w_e, w_s, w_r, b = split_first_linear(params, name, latent, latent, mesh_latent.dtype)
    p_s = jnp.dot(mesh_latent, w_s)

    def update_and_decode(g, a):
        h = g + nn.mlp_with_norm(
            params, "processor_nodes_0_grid_nodes", jnp.concatenate([g, a], -1), cond
        )
        # The decoder MLP has no LayerNorm and no conditioning.
        return nn.mlp(params["decoder_nodes_grid_nodes_mlp"], h, activation=nn.swish)

    if fan_in is not None:
        n = grid_latent.shape[0]
        edges = edge_features if static is None else static["encoder_edges_mesh2grid"]

        def per_grid_node(g, e, s):  # g [C, D], e [C, k, F], s [C, k]
            e = embed(params, "encoder_edges_mesh2grid", e.reshape(-1, e.shape[-1]), cond, static)
            x = (
                jnp.dot(e, w_e)
                + p_s[s.reshape(-1)]
                + jnp.repeat(jnp.dot(g, w_r), fan_in, axis=0)
                + nn.expand_to(b, 2)
            )
            msg = edge_mlp_rest(params, name, x, cond)
            return update_and_decode(g, msg.reshape(-1, fan_in, latent).sum(1))

        grouped = (grid_latent, edges.reshape(n, fan_in, -1), senders.reshape(n, fan_in))
        return map_rows(per_grid_node, grouped, node_chunk)

    p_r = map_rows(lambda h: jnp.dot(h, w_r), (grid_latent,), node_chunk)

    a_g = aggregate_edge_messages(
        params,
        ("encoder_edges_mesh2grid", name),
        (edge_features, senders, receivers),
        (w_e, p_s, p_r, b),
        grid_latent.shape[0],
        cond,
        edge_chunk,
        None,
        static,
    )
    return map_rows(update_and_decode, (grid_latent, a_g), node_chunk)
