# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · The mesh and the graphs
#
# **What you will build.** The static structure GenCast's denoiser runs on: an
# icosahedral mesh refined a few times, the *grid→mesh* graph that carries the weather
# from the latitude–longitude grid onto the mesh, the *mesh→grid* graph that brings it
# back, and the *k-hop* neighbourhoods that define which mesh nodes attend to which in
# the transformer. You will draw each on the globe, rebuild the graphs by brute force,
# and check that they equal `minigencast.graphs.build_graphs`.
#
# **Learning goals**
#
# 1. Icosahedral refinement and its counts: $10\cdot4^s + 2$ nodes, $20\cdot 4^s$ faces.
# 2. Grid2Mesh: a grid point sends to every mesh node within $r = 0.6\times$ the longest
#    mesh edge.
# 3. Mesh2Grid: a grid point receives from the three corners of the mesh triangle that
#    contains it.
# 4. The k-hop attention mask $M = (A + I)^k$, and why GenCast uses it instead of
#    GraphCast's multimesh.
# 5. Structural node and edge features: what the network knows about geometry.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
from mpl_toolkits.mplot3d.art3d import Line3DCollection

import _style  # tutorials/_style.py: the projector-ready figure style
from minigencast import config, geometry, graphs, icosahedral_mesh, transformer

# "tiny" in CI (seconds), "tutorial" for readers: the embedded dataset's 5.625 deg grid.
SIZE = os.environ.get("MINIGENCAST_SIZE", "tutorial")
assert SIZE in ("tiny", "tutorial"), SIZE
CFG = config.tiny() if SIZE == "tiny" else config.cpu()
N_LAT, N_LON = CFG.grid
LAT = np.linspace(-90, 90, N_LAT)
LON = np.arange(N_LON) * 360 / N_LON
ARCH = CFG.denoiser_architecture_config
SPLITS = ARCH.mesh_size
K_HOP = ARCH.sparse_transformer_config.attention_k_hop
rng = np.random.default_rng(0)
print(
    f"size={SIZE}: grid {N_LAT}x{N_LON} ({180 / (N_LAT - 1):.3g} deg), "
    f"mesh splits {SPLITS}, k = {K_HOP}"
)

# %% [markdown]
# ## 1. The icosahedral mesh
#
# Start from a regular icosahedron: 12 vertices, 20 equilateral triangles. Split each
# triangle into four through its edge midpoints and push the midpoints out to the unit
# sphere. After $s$ splits there are
#
# $$N_m = 10\cdot 4^s + 2 \text{ nodes},\qquad 20\cdot4^s \text{ faces},\qquad 60\cdot 4^s \text{ directed edges},$$
#
# and the edges are almost equally long everywhere — no pole problem, unlike the
# lat–lon grid whose meridians converge. GenCast 1° Mini uses $s = 4$ (2,562 nodes),
# the 0.25° model $s = 6$ (40,962 nodes). DeepMind rotates the icosahedron so that a
# *face*, not a vertex, sits on each pole, and numbers the final nodes by reverse
# Cuthill–McKee, which makes the adjacency matrix banded (section 4).


# %%
def draw_mesh(ax, mesh, colour="k", lw=0.4):
    senders, receivers = icosahedral_mesh.faces_to_edges(mesh.faces)
    segments = np.stack([mesh.vertices[senders], mesh.vertices[receivers]], axis=1)
    ax.add_collection3d(Line3DCollection(segments, colors=colour, linewidths=lw))
    ax.set(xlim=(-1, 1), ylim=(-1, 1), zlim=(-1, 1))
    ax.set_box_aspect((1, 1, 1))
    ax.set_axis_off()


fig = plt.figure(figsize=(12, 3.5))
for s in range(4):
    mesh = icosahedral_mesh.build_mesh(s)
    ax = fig.add_subplot(1, 4, s + 1, projection="3d")
    draw_mesh(ax, mesh)
    ax.set_title(f"splits {s}: {len(mesh.vertices)} nodes, {len(mesh.faces)} faces")
_style.show()

# %%
for s in range(SPLITS + 2):
    mesh = icosahedral_mesh.build_mesh(s)
    lengths = icosahedral_mesh.edge_lengths(mesh)
    print(
        f"splits {s}: {len(mesh.vertices):6d} nodes  {len(mesh.faces):6d} faces  "
        f"edge {np.degrees(2 * np.arcsin(lengths.min() / 2)):5.2f}-"
        f"{np.degrees(2 * np.arcsin(lengths.max() / 2)):5.2f} deg"
    )

# %% [markdown]
# **Check.** Counts, unit norms, every node of degree 5 or 6 (the 12 original vertices
# keep degree 5), and all faces oriented counter-clockwise seen from outside.

# %%
for s in range(SPLITS + 1):
    mesh = icosahedral_mesh.build_mesh(s)
    assert mesh.vertices.shape == (10 * 4**s + 2, 3)
    assert mesh.faces.shape == (20 * 4**s, 3)
    np.testing.assert_allclose(np.linalg.norm(mesh.vertices, axis=1), 1.0, atol=1e-6)
    senders, receivers = icosahedral_mesh.faces_to_edges(mesh.faces)
    assert len(senders) == 60 * 4**s
    degree = np.bincount(receivers)
    assert sorted(np.unique(degree)) == ([5] if s == 0 else [5, 6])
    assert np.sum(degree == 5) == 12
    a, b, c = (mesh.vertices[mesh.faces[:, i]] for i in range(3))
    assert np.all(np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) > 0)
print("mesh counts, norms, degrees and orientation as expected")

# %% [markdown]
# ## 2. The grid and the two bipartite graphs
#
# The data live on an equiangular grid *including both poles* (GenCast 1°: 181×360).
# Grid node $g$ sits at $p_g = (\cos\varphi\cos\lambda,\ \cos\varphi\sin\lambda,\ \sin\varphi)$
# on the unit sphere; its index is `lat_index * n_lon + lon_index`.
#
# * **Grid2Mesh** (the encoder): $g \to m$ whenever the chord $\|p_g - p_m\| \le r$ with
#   $r = 0.6 \times$ the longest mesh edge. Every mesh node then hears from a disc of grid
#   points; near the poles, where grid points crowd together, that disc holds many more.
# * **Mesh2Grid** (the decoder): grid point $g$ receives from the three vertices of the
#   mesh triangle closest to it — exactly $3 N_g$ edges.
#
# `graphs.build_graphs` builds both (plus features and the attention mask) once with NumPy
# and caches them; the network receives them as arrays.

# %%
# float32 coordinates, as the model (`network.build_graphs`) and DeepMind's denoiser use.
LAT32, LON32 = LAT.astype(np.float32), LON.astype(np.float32)
G = graphs.build_graphs(LAT32, LON32, SPLITS, ARCH.radius_query_fraction_edge_length, K_HOP)
for name in sorted(G):
    print(f"{name:32s} {str(G[name].shape):14s} {G[name].dtype}")

# %%
mesh = icosahedral_mesh.build_mesh(SPLITS)
grid_lat, grid_lon = geometry.grid_lat_lon(LAT, LON)
g2m_s, g2m_r = G["grid2mesh_senders"], G["grid2mesh_receivers"]
m2g_s, m2g_r = G["mesh2grid_senders"], G["mesh2grid_receivers"]
in_degree = np.bincount(g2m_r, minlength=len(mesh.vertices))

fig, axes = plt.subplots(1, 2, figsize=(13, 4))
ax = axes[0]
ax.scatter(grid_lon, grid_lat, s=2, c="lightgrey")
sc = ax.scatter(G["mesh_node_lon"], G["mesh_node_lat"], s=12, c=in_degree, cmap="viridis")
fig.colorbar(sc, ax=ax, label="grid points sending to the node")
for m in [int(np.argmax(G["mesh_node_lat"])), int(np.argmin(np.abs(G["mesh_node_lat"])))]:
    senders_of_m = g2m_s[g2m_r == m]
    ax.scatter(grid_lon[senders_of_m], grid_lat[senders_of_m], s=8, c="tab:red")
    ax.scatter(G["mesh_node_lon"][m], G["mesh_node_lat"][m], s=80, marker="*", c="k")
ax.set(
    title="Grid2Mesh: in-degree of each mesh node (red: two examples)", xlabel="lon", ylabel="lat"
)
ax = axes[1]
for g in [int(rng.integers(len(grid_lat))), len(grid_lat) // 2 + N_LON // 3, N_LON + 1]:
    corners = m2g_s[m2g_r == g]
    ax.scatter(G["mesh_node_lon"][corners], G["mesh_node_lat"][corners], s=40, marker="^")
    ax.scatter(grid_lon[g], grid_lat[g], s=40, c="k", marker="x")
ax.scatter(G["mesh_node_lon"], G["mesh_node_lat"], s=3, c="lightgrey", zorder=0)
ax.set(
    title="Mesh2Grid: three grid points (x) and their three mesh corners",
    xlabel="lon",
    ylabel="lat",
)
_style.show()
print(
    f"grid2mesh: {len(g2m_s)} edges, mesh in-degree {in_degree.min()}-{in_degree.max()}; "
    f"mesh2grid: {len(m2g_s)} = 3 x {len(grid_lat)} edges"
)

# %% [markdown]
# **Check, by brute force.** Grid2Mesh is "every pair within the radius": compute all
# $N_g \times N_m$ chord lengths and compare. Mesh2Grid: each grid point has exactly three
# senders, they are the corners of one mesh face, and the grid point's direction lies
# inside that spherical triangle (non-negative barycentric coordinates, up to rounding
# for points on an edge).

# %%
# Positions from float32 lat/lon and a float32 radius, as DeepMind's code: on this grid
# some grid points sit exactly on the radius, and only the same rounding decides alike.
grid_xyz = geometry.lat_lon_to_xyz(*geometry.grid_lat_lon(LAT32, LON32))
radius = np.float32(ARCH.radius_query_fraction_edge_length * icosahedral_mesh.max_edge_length(mesh))
diff = grid_xyz[:, None, :].astype(np.float64) - G["mesh_vertices"][None].astype(np.float64)
chord = np.linalg.norm(diff, axis=-1)  # float64 distances between float32 points, as scipy
brute_g, brute_m = np.nonzero(chord <= float(radius))
assert set(zip(brute_g, brute_m, strict=True)) == set(zip(g2m_s, g2m_r, strict=True))
assert np.all(np.bincount(g2m_s, minlength=len(grid_xyz)) >= 1)  # every grid point sends

corners = m2g_s.reshape(-1, 3)
assert np.array_equal(m2g_r.reshape(-1, 3), np.repeat(np.arange(len(grid_xyz))[:, None], 3, 1))
faces = {tuple(sorted(f)) for f in G["mesh_faces"]}
assert all(tuple(sorted(c)) in faces for c in corners)
tri = G["mesh_vertices"][corners]  # [N_g, 3 corners, 3 xyz]
barycentric = np.linalg.solve(np.transpose(tri, (0, 2, 1)), grid_xyz[..., None])[..., 0]
assert np.all(barycentric > -1e-5), barycentric.min()
print("grid2mesh == brute-force radius query; mesh2grid corners are containing faces")

# %% [markdown]
# ## 3. What the network knows about geometry
#
# GenCast has no positional encoding. Geometry enters only through *structural features*:
#
# * every node (grid and mesh): $[\sin\varphi,\ \cos\lambda,\ \sin\lambda]$;
# * every Grid2Mesh/Mesh2Grid edge: the sender's position relative to the receiver, in a
#   frame rotated so that the receiver sits at $(1, 0, 0)$:
#   $d = R_r p_s - R_r p_r$, features $[\|d\|, d_x, d_y, d_z] / \max\|d\|$.
#
# The rotation makes an edge look the same wherever on the globe it is: a message "from
# 2° to the north" has the same features at every receiver (up to the grid's own
# anisotropy), so the network can learn local operators that work everywhere.

# %%
feats = G["grid2mesh_edge_features"]
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].scatter(feats[:, 3], feats[:, 2], s=1, c=feats[:, 0], cmap="magma")
axes[0].set(
    xlabel="d_z (north)",
    ylabel="d_y (east)",
    title="grid2mesh edges in receiver frames",
    aspect="equal",
)
axes[1].hist(feats[:, 0], bins=40)
axes[1].set(xlabel="|d| / max |d|", title="edge lengths")
_style.show()

# %% [markdown]
# **Check.** Node features are $[\sin\varphi, \cos\lambda, \sin\lambda]$ of the grid, the
# rotation $R$ sends each node to $(1,0,0)$, and edge lengths are normalised to at most 1.

# %%
np.testing.assert_allclose(
    G["grid_node_structural_features"],
    np.stack(
        [np.sin(np.radians(grid_lat)), np.cos(np.radians(grid_lon)), np.sin(np.radians(grid_lon))],
        axis=-1,
    ),
    atol=1e-6,
)
rot = geometry.local_frame_rotations(grid_lat, grid_lon)
np.testing.assert_allclose(
    np.einsum("nij,nj->ni", rot, grid_xyz), [[1, 0, 0]] * len(grid_xyz), atol=1e-6
)
assert np.isclose(feats[:, 0].max(), 1.0) and np.all(feats[:, 0] >= 0)  # 0: coincident nodes
np.testing.assert_allclose(np.linalg.norm(feats[:, 1:], axis=1), feats[:, 0], rtol=1e-5)
print("structural features as specified")

# %% [markdown]
# ## 4. The k-hop attention neighbourhood
#
# GraphCast passed messages over a *multimesh* (the edges of all refinement levels at
# once) to reach far in few steps. GenCast instead runs a transformer on the finest mesh
# and lets node $i$ attend to node $j$ iff their hop distance on the mesh is at most $k$:
#
# $$M = (A + I)^k \ne 0,$$
#
# with $A$ the mesh adjacency (16 hops for 1° Mini, 32 for 0.25°). Because the node order
# is RCM-banded, $M$ is a band matrix — which is what DeepMind's tri-block-diagonal GPU
# attention exploits.

# %%
rows, cols = G["attention_mask_rows"], G["attention_mask_cols"]
num_mesh = len(G["mesh_vertices"])
mask = transformer.build_attention(rows, cols, num_mesh, "mha").mask
centre = int(np.argmin(np.abs(G["mesh_node_lat"])))  # a node near the equator

fig = plt.figure(figsize=(12, 4))
ax = fig.add_subplot(1, 3, 1)
ax.spy(mask, markersize=0.3)
ax.set_title(f"k = {K_HOP} mask, RCM order\n(band width {transformer.tri_block_size(rows, cols)})")
ax = fig.add_subplot(1, 3, 2, projection="3d")
draw_mesh(ax, mesh, colour="lightgrey", lw=0.3)
hops = np.full(num_mesh, -1)
adjacency = np.zeros((num_mesh, num_mesh), bool)
adjacency[G["mesh_senders"], G["mesh_receivers"]] = True
reach = np.zeros(num_mesh, bool)
reach[centre] = True
for k in range(K_HOP + 1):
    hops[(hops < 0) & reach] = k
    reach = reach | adjacency[reach].any(axis=0)
v = G["mesh_vertices"]
sc = ax.scatter(
    v[hops >= 0, 0], v[hops >= 0, 1], v[hops >= 0, 2], c=hops[hops >= 0], cmap="plasma", s=8
)
ax.set_title(f"hop distance from one node (<= {K_HOP})")
ax.view_init(elev=G["mesh_node_lat"][centre], azim=G["mesh_node_lon"][centre])
ax = fig.add_subplot(1, 3, 3)
for s_ in range(max(1, SPLITS - 1), SPLITS + 2):
    m_ = icosahedral_mesh.build_mesh(s_)
    snd, rcv = icosahedral_mesh.faces_to_edges(m_.faces)
    counts = []
    for k in range(1, 9):
        r_, _ = graphs.attention_mask(snd, rcv, len(m_.vertices), k)
        counts.append(np.bincount(r_).mean())
    ax.plot(range(1, 9), counts, "o-", label=f"splits {s_}")
ax.plot(range(1, 9), [1 + 3 * k * (k + 1) for k in range(1, 9)], "k:", label="1 + 3k(k+1)")
ax.set(xlabel="k", ylabel="keys per query", yscale="log", title="neighbourhood size")
ax.legend()
_style.show()

# %% [markdown]
# On a hexagonal lattice the $k$-hop ball holds $1 + 3k(k+1)$ nodes; the mesh is hexagonal
# except at the 12 pentagons, so the curves follow it until the ball wraps around a small
# sphere. For the 0.25° model ($s = 6$, $k = 32$) that is ~3,000 keys per query instead of
# 40,962: the cost of attention grows with $N_m K$ rather than $N_m^2$.
#
# **Check, by hand.** The boolean matrix power $(A + I)^k$ equals the package's mask.

# %%
reach = np.eye(num_mesh, dtype=bool) | adjacency
power = np.eye(num_mesh, dtype=bool)
for _ in range(K_HOP):
    power = (power.astype(np.int32) @ reach.astype(np.int32)) > 0
assert np.array_equal(power, mask)
assert np.array_equal(power, power.T)
print(f"(A + I)^{K_HOP} == graphs.build_graphs' attention mask ({mask.sum()} entries)")

# %% [markdown]
# ## Exercises
#
# 1. How many grid2mesh edges would GenCast 1° Mini have (181×360 grid, $s = 4$, $r = 0.6$)?
#    Guess from the area of a spherical cap before computing it.
# 2. Why does every grid point need at least one grid2mesh edge, and every mesh node at
#    least one? What goes wrong with $r = 0.3\times$ the longest edge?
# 3. Permute the mesh nodes randomly: which of the three attention implementations gets
#    slower, and why does the network's output not change?
#
# <details><summary>Solutions</summary>
#
# 1. A cap of chord radius $r$ covers a fraction $r^2/4$ of the sphere; with
#    $r = 0.6 \times 0.0826 = 0.0496$ each mesh node collects ≈ $65{,}160 \cdot r^2/4 \approx 40$
#    grid points on average, so ≈ $2{,}562 \cdot 40 \approx 100{,}000$ edges. The spec
#    lists 102,486: `graphs.build_graphs(np.linspace(-90, 90, 181), np.arange(360.), 4, 0.6, 16)`
#    (takes a while).
# 2. A grid point with no edge would be invisible to the network (its input ignored); a
#    mesh node with none would start from structural features only. With $r = 0.3\times$,
#    some grid points between mesh nodes fall outside every cap: count them with
#    `np.bincount(senders, minlength=N_g) == 0`.
# 3. The tri-block-diagonal attention: its block size is the mask's band width, which
#    the RCM order keeps small; a random order makes the band (almost) the full matrix.
#    Dense and neighbour-list attention do not care. The network is a function of the
#    graph, not of node numbering: permuting nodes permutes intermediate arrays only.
#
# </details>
#
# ## Where this lives in the package
#
# | concept | module |
# |---|---|
# | icosahedron, splits, RCM banding, edge lengths | `minigencast/icosahedral_mesh.py` |
# | lat/lon ↔ xyz, local frames, structural features | `minigencast/geometry.py` |
# | grid2mesh, mesh2grid, k-hop mask, neighbour lists, caching | `minigencast/graphs.py` |
# | using them inside the network (`build_structure`) | `minigencast/network.py`, tutorial 05 |
#
# The last check: the mesh the graphs were built on is `icosahedral_mesh.build_mesh`,
# node for node, and its lat/lon are those of `geometry.xyz_to_lat_lon`.

# %%
np.testing.assert_array_equal(G["mesh_vertices"], mesh.vertices)
np.testing.assert_array_equal(G["mesh_faces"], mesh.faces)
lat_m, lon_m = geometry.xyz_to_lat_lon(mesh.vertices.astype(np.float64))
np.testing.assert_allclose(G["mesh_node_lat"], lat_m, atol=1e-4)
print("graphs.build_graphs uses icosahedral_mesh.build_mesh node for node")
