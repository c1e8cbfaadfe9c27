"""GenCast's static structure: grid<->mesh graphs, features, the k-hop attention mask.

Everything here is NumPy, built once per (grid, mesh splits, k) and passed into jitted
code as data (docs/design.md §6.4 and §7):

* **grid2mesh** (encoder): grid point g sends to mesh node m iff the chord
  |p_g - p_m| <= r, r = radius_query_fraction_edge_length * (longest mesh edge).
  A k-d tree over the grid answers all ball queries at once: O((N_g + N_m) log N_g).
* **mesh2grid** (decoder): grid point g receives from the 3 vertices of the mesh
  triangle closest to it (DeepMind: `trimesh.proximity.closest_point`). We compute
  it ourselves: candidate faces from a k-d tree of face centroids, a cheap "is the
  projection inside this face" test, and for the few points on a face boundary the
  exact closest point on each candidate with trimesh's tie rule (`closest_faces`).
  O(N_g (log F + K)), K = 4 (8 on boundaries) candidates. At exact ties DeepMind's
  face comes from `mesh2grid_ties.py` (a table, or trimesh where installed).
* **features**: nodes [sin lat, cos lon, sin lon]; edges [|d|, d] / max|d| with d the
  sender minus receiver position in the receiver's local frame (`geometry.py`).
* **attention mask**: mesh node i attends to j iff their hop distance is <= k, i.e.
  the boolean pattern of (A + I)^k. We grow breadth-first rings (O(nnz * degree)),
  never a matrix power (and scipy's `csr_array ** k` would be element-wise anyway),
  and only from one node per orbit of the icosahedron's 60 rotations: the other
  balls are rotated copies (`attention_mask`).

`build_graphs` returns a dict with exactly the keys and node order of DeepMind's
graphs recorded in the parity vectors (`graphs.npz`), and caches it in memory and on
disk. `transformer.build_attention` turns the mask into the layout the attention
runs on: padded neighbour lists (O(N K_max)), a dense mask (O(N^2), small meshes) or
DeepMind's banded tri-block layout (docs/design.md §7).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import tempfile

import numpy as np
import scipy.spatial

from minigencast import geometry, icosahedral_mesh, mesh2grid_ties

GRAPH_KEYS = (
    "mesh_vertices",
    "mesh_faces",
    "mesh_node_lat",
    "mesh_node_lon",
    "mesh_senders",
    "mesh_receivers",
    "grid_node_structural_features",
    "mesh_node_structural_features",
    "grid2mesh_senders",
    "grid2mesh_receivers",
    "grid2mesh_edge_features",
    "mesh2grid_senders",
    "mesh2grid_receivers",
    "mesh2grid_edge_features",
    "attention_mask_rows",
    "attention_mask_cols",
)
_CACHE_VERSION = "5"  # bump when the construction changes: old cache entries are ignored
_MEMORY_CACHE: dict[str, dict[str, np.ndarray]] = {}


# ----------------------------------------------------------------------------- grid2mesh
def grid2mesh_edges(grid_xyz, mesh_vertices, radius) -> tuple[np.ndarray, np.ndarray]:
    """All (grid, mesh) pairs with chord distance <= radius.

    Args:
      grid_xyz: [num_grid_nodes, 3] unit vectors.
      mesh_vertices: [num_mesh_nodes, 3] unit vectors.
      radius: chord length.

    Returns:
      senders (grid indices), receivers (mesh indices): [num_edges] int32, grouped by
      grid node in grid order and, within a grid node, by ascending mesh index (the
      order of DeepMind's `cKDTree.query_ball_point`).
    """
    grid_tree = scipy.spatial.cKDTree(grid_xyz)
    mesh_tree = scipy.spatial.cKDTree(mesh_vertices)
    # A dual-tree search returns all close pairs as one array (no per-point lists).
    pairs = grid_tree.sparse_distance_matrix(mesh_tree, float(radius), output_type="ndarray")
    num_mesh = len(mesh_vertices)
    order = np.argsort(pairs["i"].astype(np.int64) * num_mesh + pairs["j"], kind="stable")
    return pairs["i"][order].astype(np.int32), pairs["j"][order].astype(np.int32)


# ----------------------------------------------------------------------------- mesh2grid
_TOL_ZERO = 1e-13  # trimesh's tol.zero: 100 x float64 resolution
_TOL_MERGE = 1e-8  # trimesh's tol.merge


def _row_dot(u, v):
    """Row-wise dot product of [M, 3] arrays, summed as a BLAS matrix-vector product.

    (u * v) @ ones is how trimesh sums; the same order gives bit-identical distances,
    which decides the rare exact ties below.
    """
    return np.dot(u * v, np.ones(3))


def _closest_points_on_triangles(p, a, b, c):
    """Closest point to p on triangle (a, b, c); all [M, 3] float64.

    Ericson, "Real-Time Collision Detection" (2005), sec. 5.1.5: classify p by the
    Voronoi regions of the triangle (vertex A, vertex B, edge AB, vertex C, edge AC,
    edge BC, interior; the first region that matches wins), with trimesh's 1e-13
    slack in the region tests.
    """
    tol = _TOL_ZERO
    ab, ac, ap, bp, cp = b - a, c - a, p - a, p - b, p - c
    d1, d2 = _row_dot(ab, ap), _row_dot(ac, ap)
    d3, d4 = _row_dot(ab, bp), _row_dot(ac, bp)
    d5, d6 = _row_dot(ab, cp), _row_dot(ac, cp)
    va, vb, vc = (d3 * d6) - (d5 * d4), (d5 * d2) - (d1 * d6), (d1 * d4) - (d3 * d2)
    regions = [
        (d1 < tol) & (d2 < tol),  # vertex A
        (d3 > -tol) & (d4 <= d3),  # vertex B
        (vc < tol) & (d1 > -tol) & (d3 < tol),  # edge AB
        (d6 > -tol) & (d5 <= d6),  # vertex C
        (vb < tol) & (d2 > -tol) & (d6 < tol),  # edge AC
        (va < tol) & ((d4 - d3) > -tol) & ((d5 - d6) > -tol),  # edge BC
    ]
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1.0 / (va + vb + vc)
        d43 = d4 - d3
        candidates = [
            a,
            b,
            a + (d1 / (d1 - d3))[:, None] * ab,
            c,
            a + (d2 / (d2 - d6))[:, None] * ac,
            b + (d43 / (d43 + (d5 - d6)))[:, None] * (c - b),
        ]
        q = a + (ab * (vb * denom)[:, None]) + (ac * (vc * denom)[:, None])  # interior
    # Apply from the last region to the first, so that the first match wins.
    for in_region, point in zip(regions[::-1], candidates[::-1], strict=True):
        q = np.where(in_region[:, None], point, q)
    return q


def closest_faces(
    points, mesh, num_candidates: int = 8, chunk: int = 65536, return_ties: bool = False
):
    """Index of the mesh face closest to each point, reproducing trimesh's choice.

    For a point outside the convex mesh (grid points lie on the sphere, the flat
    faces inside it) the closest surface point q is unique; it lies in one face, or
    on an edge or vertex shared by several. Like `trimesh.proximity.closest_point`
    (DeepMind's tool) we rank candidate faces by squared distance and, when the two
    best are within 1e-8 of each other (and farther than 1e-8), keep the one whose
    unit normal is most aligned with p - q (the face "facing" the point). The
    arithmetic follows trimesh's operation order.

    Ties: grid points lying exactly on a mesh edge in a mirror plane of the mesh are
    bit-exactly equidistant from two faces with identical alignment (or from three or
    more faces around a vertex); trimesh then keeps whichever its r-tree listed first,
    which this rule cannot replay. We take the higher face index and report the point
    as a tie (`mesh2grid_ties.resolve` then gives DeepMind's face where it is known).

    Args:
      points: [num_points, 3].
      mesh: a `TriangularMesh`.
      num_candidates: faces tried per point (nearest centroids); 8 is ample for
        icosahedral meshes, whose faces vary in size by < 2x (checked against
        brute force in the tests).

    Returns:
      [num_points] int64 face indices; with `return_ties`, also [num_points] bool, True
      where the choice depends on trimesh's candidate order.
    """
    points = np.asarray(points, dtype=np.float64)
    triangles = mesh.vertices.astype(np.float64)[mesh.faces]  # [F, 3, 3]
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    # Unit normals as trimesh computes them: (b - a) x (c - b), times 1 / |n|.
    normals = np.cross(b - a, c - b)
    normals = normals * (1.0 / np.sqrt(_row_dot(normals, normals)))[:, None]
    # Fast path. If p lies outside the plane of face f and its orthogonal projection
    # onto that plane falls strictly inside f, then f holds the closest point of the
    # whole (convex) mesh: the plane separates p from the mesh. The
    # projection is inside iff the three "edge functions" e_ab(p) = (n x (b - a)).(p - a),
    # e_bc, e_ca are all positive; each is one dot product with a per-face vector.
    edge_normals = np.stack(
        [np.cross(normals, b - a), np.cross(normals, c - b), np.cross(normals, a - c)], 1
    )
    edge_offsets = (edge_normals * np.stack([a, b, c], 1)).sum(-1)  # [F, 3]
    plane_offsets = (normals * a).sum(-1)  # [F]
    tree = scipy.spatial.cKDTree(triangles.mean(axis=1))
    k_fast, k_exact = min(4, len(triangles)), min(num_candidates, len(triangles))
    result = np.empty(len(points), dtype=np.int64)
    ties = np.zeros(len(points), dtype=bool)
    for start in range(0, len(points), chunk):
        p = points[start : start + chunk]
        num = len(p)
        _, cand = tree.query(p, k=k_fast)
        cand = cand.reshape(num, k_fast)
        # [P, k, 3, 3] @ [P, 1, 3, 1]: the 3 edge functions of each candidate face.
        inside = (edge_normals[cand] @ p[:, None, :, None])[..., 0] - edge_offsets[cand]
        # ... and p must lie on the outer side of f's plane (n . (p - a) > 0).
        height = (normals[cand] @ p[:, :, None])[..., 0] - plane_offsets[cand]
        margin = np.minimum(inside.min(axis=2), height)  # [P, k]
        first = margin.argmax(axis=1)
        chosen = cand[np.arange(num), first]
        hard = np.flatnonzero(margin[np.arange(num), first] <= 1e-7)
        if hard.size:  # on or near (1e-7) an edge: trimesh's full rule
            _, cand = tree.query(p[hard], k=k_exact)
            # Descending face index: exact ties go to the higher index (see above).
            cand = -np.sort(-cand.reshape(len(hard), k_exact), axis=1)
            chosen[hard], tied = _closest_faces_exact(p[hard], cand, triangles, normals)
            ties[start + hard] = tied
        result[start : start + chunk] = chosen
    return (result, ties) if return_ties else result


def _closest_faces_exact(p, cand, triangles, normals):
    """trimesh's choice among candidate faces `cand` [P, k] for points p [P, 3].

    Returns (faces [P], ties [P] bool): a tie is a point where that choice depends on
    the candidates' order: the closest faces are equally close and trimesh does not
    compare alignments (squared distance <= 1e-8), or it compares two faces whose
    alignments are equal (to 1e-9), or which two it compares is itself a tie.
    """
    num, k = cand.shape
    tri = triangles[cand.reshape(-1)]  # [P * k, 3, 3]
    pp = np.repeat(p, k, axis=0)
    v = pp - _closest_points_on_triangles(pp, tri[:, 0], tri[:, 1], tri[:, 2])
    dist2 = _row_dot(v, v).reshape(num, k)
    best2 = np.argsort(dist2, axis=1, kind="stable")[:, :2]  # [P, 2]
    rows = np.arange(num)[:, None]
    d_best = dist2[rows, best2]
    face_best = cand[rows, best2]
    ambiguous = (np.ptp(d_best, axis=1) < _TOL_MERGE) & np.all(d_best > _TOL_MERGE, axis=1)
    unit = v.reshape(num, k, 3)[rows, best2] / (d_best**0.5)[..., None]
    alignment = (normals[face_best] * unit).sum(axis=2)  # [P, 2]
    pick = np.where(ambiguous, np.argmax(alignment, axis=1), 0)
    # Order-dependent: the first two (or, when ambiguous, the second and third) are
    # equally close (to 1e-12 relative), or the alignments of the two are equal.
    close = 1e-12 * d_best[:, :1]
    first_tied = np.sum(dist2 <= d_best[:, :1] + close, axis=1) >= 2
    second_tied = np.sum(dist2 <= d_best[:, 1:] + close, axis=1) >= 3
    aligned = np.abs(alignment[:, 0] - alignment[:, 1]) <= 1e-9
    tied = np.where(ambiguous, second_tied | aligned, first_tied)
    return face_best[np.arange(num), pick], tied


def coordinate_dtype(lat, lon) -> np.dtype:
    """The floating dtype graphs are built in: that of (lat, lon) if float32/float64, else float64.

    DeepMind's graph functions (graphcast/grid_mesh_connectivity.py,
    `radius_query_indices`, `in_mesh_triangle_indices`) compute in the precision of the
    coordinates they are given; its denoiser passes float32 ones
    (graphcast/denoiser.py:Denoiser._init_grid_properties).
    """
    dtype = np.result_type(np.asarray(lat), np.asarray(lon))
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)


def mesh2grid_faces(lat, lon, mesh_size: int, dtype=None) -> np.ndarray:
    """[n_lat * n_lon] DeepMind's mesh2grid face of every grid node (banded mesh).

    Positions come from lat, lon cast to `dtype` (default `coordinate_dtype(lat, lon)`);
    float64 gives DeepMind's recorded tables, float32 what its denoiser builds. Ties
    are resolved by `mesh2grid_ties.resolve`.
    """
    dtype = coordinate_dtype(lat, lon) if dtype is None else np.dtype(dtype)
    lat, lon = np.asarray(lat).astype(dtype), np.asarray(lon).astype(dtype)
    grid_xyz = geometry.lat_lon_to_xyz(*geometry.grid_lat_lon(lat, lon)).astype(np.float64)
    mesh = icosahedral_mesh.build_mesh(mesh_size)
    faces, ties = closest_faces(grid_xyz, mesh, return_ties=True)
    key = mesh2grid_ties.table_key(lat, lon, mesh_size, dtype)
    return mesh2grid_ties.resolve(faces, ties, grid_xyz, mesh, mesh_size, key)


# ----------------------------------------------------------------------------- attention
def _neighbour_table(senders, receivers, num_nodes) -> np.ndarray:
    """[num_nodes, max_degree] senders of each node's incoming edges, padded with itself."""
    order = np.argsort(receivers, kind="stable")
    counts = np.bincount(receivers, minlength=num_nodes)
    width = counts.max()
    table = np.repeat(np.arange(num_nodes)[:, None], width, axis=1)
    slot = np.arange(len(receivers)) - np.repeat(np.cumsum(counts) - counts, counts)
    table[receivers[order], slot] = senders[order]
    return table


def _k_hop_balls(table, sources, k_hop: int, chunk: int = 1024):
    """Sorted k-hop balls of `sources` in the graph with neighbour `table`.

    Breadth-first rings, for a block of `chunk` sources at a time: the ring at
    distance d+1 is every neighbour of the ring at distance d not seen before. A dense
    [chunk, num_nodes] "seen" bitmap makes the membership test O(1); reading it back
    row by row gives the members already sorted.

    Returns:
      counts: [num_sources] ball sizes; members: [sum(counts)] int32, per source ascending.
    """
    n = len(table)
    counts, members = [], []
    for start in range(0, len(sources), chunk):
        block = np.asarray(sources[start : start + chunk])
        c = len(block)
        seen = np.zeros(c * n, dtype=bool)
        stamp = np.zeros(c * n, dtype=np.int32)
        frontier = np.arange(c, dtype=np.int64) * n + block  # flat (row, node) indices
        seen[frontier] = True
        for _ in range(k_hop):
            row_base = frontier - frontier % n
            candidates = (row_base[:, None] + table[frontier % n]).reshape(-1)
            candidates = candidates[~seen[candidates]]
            # De-duplicate without sorting: the last writer of each slot keeps it.
            ticket = np.arange(len(candidates), dtype=np.int32)
            stamp[candidates] = ticket
            frontier = candidates[stamp[candidates] == ticket]
            seen[frontier] = True
        flat = np.flatnonzero(seen)
        counts.append(np.bincount(flat // n, minlength=c))
        members.append((flat % n).astype(np.int32))
    return np.concatenate(counts), np.concatenate(members)


def attention_mask(
    senders, receivers, num_nodes: int, k_hop: int, symmetries=None, chunk: int = 1024
):
    """COO of the k-hop mask: boolean (A + I)^k of the mesh, incl. self, docs/design.md §6.7.

    Node i attends to j iff their hop distance is <= k: the k-hop ball of i, grown
    ring by ring (`_k_hop_balls`), O(nnz * degree).

    Symmetry shortcut: given the mesh's rotation symmetries as vertex permutations
    (`icosahedral_mesh.rotation_symmetries`, 60 of them), balls are only grown from
    one node per orbit; the ball of node v = g(r) is g applied to the ball of r.
    That is ~60x less breadth-first search, which dominates at 0.25 deg.

    Args:
      senders, receivers: [num_edges] the directed mesh edges (both directions).
      num_nodes: number of mesh nodes.
      k_hop: attention radius in hops.
      symmetries: optional [G, num_nodes] automorphisms of the graph.

    Returns:
      rows, cols: [nnz] int32, sorted by row then column.
    """
    table = _neighbour_table(np.asarray(senders), np.asarray(receivers), num_nodes)
    n = num_nodes
    if symmetries is None:
        counts, cols = _k_hop_balls(table, np.arange(n), k_hop, chunk)
        return np.repeat(np.arange(n, dtype=np.int32), counts), cols
    perms = np.asarray(symmetries)
    representative = perms.min(axis=0)  # smallest node of each orbit
    reps, rep_index = np.unique(representative, return_inverse=True)
    # For node v, a symmetry g with g(rep(v)) = v, i.e. g^-1(v) = rep(v).
    inverse = np.argsort(perms, axis=1)
    g_of = np.argmax(inverse == representative[None, :], axis=0)  # [n]
    ball_counts, ball_members = _k_hop_balls(table, reps, k_hop, chunk)
    ball_start = np.cumsum(ball_counts) - ball_counts
    counts = ball_counts[rep_index]  # [n]: v's ball is as large as its representative's
    row_start = np.cumsum(counts) - counts
    cols = np.empty(counts.sum(), dtype=np.int32)
    orbit_order = np.argsort(rep_index, kind="stable")
    orbit_bounds = np.searchsorted(rep_index[orbit_order], np.arange(len(reps) + 1))
    for r in range(len(reps)):
        orbit = orbit_order[orbit_bounds[r] : orbit_bounds[r + 1]]  # nodes v with rep(v) = r
        ball = ball_members[ball_start[r] : ball_start[r] + ball_counts[r]]
        rotated = np.sort(perms[g_of[orbit][:, None], ball[None, :]], axis=1)  # [orbit, ball]
        cols[row_start[orbit][:, None] + np.arange(len(ball))] = rotated
    return np.repeat(np.arange(n, dtype=np.int32), counts), cols


# ----------------------------------------------------------------------------- build
def _build(lat, lon, mesh_size, radius_query_fraction_edge_length, attention_k_hop):
    # Grid positions in the dtype of lat/lon (float32 for the model: network.build_graphs),
    # as in DeepMind's grid_mesh_connectivity; ties and radius-boundary neighbourhoods
    # depend on it.
    grid_lat, grid_lon = geometry.grid_lat_lon(lat, lon)
    grid_xyz = geometry.lat_lon_to_xyz(grid_lat, grid_lon)
    mesh = icosahedral_mesh.build_mesh(mesh_size)
    mesh_lat, mesh_lon = geometry.xyz_to_lat_lon(mesh.vertices)
    mesh_lat, mesh_lon = mesh_lat.astype(np.float32), mesh_lon.astype(np.float32)
    mesh_senders, mesh_receivers = icosahedral_mesh.faces_to_edges(mesh.faces)

    radius = np.float32(icosahedral_mesh.max_edge_length(mesh) * radius_query_fraction_edge_length)
    g2m_s, g2m_r = grid2mesh_edges(grid_xyz, mesh.vertices, radius)
    faces = mesh.faces[mesh2grid_faces(lat, lon, mesh_size, lat.dtype)]  # [num_grid_nodes, 3]
    m2g_s = faces.reshape(-1).astype(np.int32)
    m2g_r = np.repeat(np.arange(len(grid_xyz), dtype=np.int32), 3)
    rows, cols = attention_mask(
        mesh_senders,
        mesh_receivers,
        len(mesh.vertices),
        attention_k_hop,
        symmetries=icosahedral_mesh.rotation_symmetries(mesh),
    )
    return {
        "mesh_vertices": mesh.vertices,
        "mesh_faces": mesh.faces,
        "mesh_node_lat": mesh_lat,
        "mesh_node_lon": mesh_lon,
        "mesh_senders": mesh_senders.astype(np.int32),
        "mesh_receivers": mesh_receivers.astype(np.int32),
        "grid_node_structural_features": geometry.node_structural_features(
            grid_lat, grid_lon
        ).astype(np.float32),
        "mesh_node_structural_features": geometry.node_structural_features(mesh_lat, mesh_lon),
        "grid2mesh_senders": g2m_s,
        "grid2mesh_receivers": g2m_r,
        "grid2mesh_edge_features": geometry.relative_edge_features(
            grid_lat, grid_lon, mesh_lat, mesh_lon, g2m_s, g2m_r
        ).astype(np.float32),
        "mesh2grid_senders": m2g_s,
        "mesh2grid_receivers": m2g_r,
        "mesh2grid_edge_features": geometry.relative_edge_features(
            mesh_lat, mesh_lon, grid_lat, grid_lon, m2g_s, m2g_r
        ).astype(np.float32),
        "attention_mask_rows": rows,
        "attention_mask_cols": cols,
    }


def cache_dir() -> pathlib.Path:
    """$MINIGENCAST_CACHE_DIR, else $XDG_CACHE_HOME/minigencast, else ~/.cache/minigencast."""
    if os.environ.get("MINIGENCAST_CACHE_DIR"):
        return pathlib.Path(os.environ["MINIGENCAST_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "minigencast"


def cache_key(lat, lon, mesh_size, radius_query_fraction_edge_length, attention_k_hop) -> str:
    """Hash of everything the graphs depend on: grid coordinates and their dtype, splits,
    radius, k."""
    dtype = coordinate_dtype(lat, lon)
    h = hashlib.sha256(f"{_CACHE_VERSION}|{dtype.name}".encode())
    # Ties are resolved by the table, trimesh or the rule: each gets its own entry.
    key = mesh2grid_ties.table_key(lat, lon, mesh_size, dtype)
    h.update(mesh2grid_ties.method(key).encode())
    h.update(np.ascontiguousarray(lat, np.float64).tobytes())
    h.update(b"|")
    h.update(np.ascontiguousarray(lon, np.float64).tobytes())
    h.update(
        repr(
            (int(mesh_size), float(radius_query_fraction_edge_length), int(attention_k_hop))
        ).encode()
    )
    return f"graphs_{len(lat)}x{len(lon)}_s{mesh_size}_k{attention_k_hop}_{h.hexdigest()[:16]}"


def _load(folder: pathlib.Path):
    if not all((folder / f"{k}.npy").exists() for k in GRAPH_KEYS):
        return None
    # Memory-mapped: "loading" 0.25 deg graphs costs milliseconds; pages are read on use.
    return {k: np.load(folder / f"{k}.npy", mmap_mode="r") for k in GRAPH_KEYS}


def _save(folder: pathlib.Path, graphs) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Write into a temporary folder and rename it: readers never see half a cache entry.
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    for k in GRAPH_KEYS:
        np.save(tmp / f"{k}.npy", graphs[k])
    try:
        tmp.rename(folder)
    except OSError:  # another process won the race; keep theirs
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()


def build_graphs(
    lat,
    lon,
    mesh_size: int,
    radius_query_fraction_edge_length: float = 0.6,
    attention_k_hop: int = 16,
    *,
    cache: bool = True,
) -> dict[str, np.ndarray]:
    """All of GenCast's static graph structure for one grid and mesh (docs/design.md §6.3-6.7).

    Like DeepMind's graph functions (graphcast/grid_mesh_connectivity.py), grid
    positions, the radius query, the mesh2grid faces (ties included) and the features
    are computed in `coordinate_dtype(lat, lon)`: float64 gives DeepMind's recorded
    mesh2grid tables, float32 the graphs its denoiser builds (which casts first:
    `network.build_graphs` does the same). Returned features are float32.

    Args:
      lat: [n_lat] ascending latitudes (degrees); lon: [n_lon] longitudes i*360/n_lon.
      mesh_size: number of icosahedral splits (4 for Mini, 5 for 1p0deg, 6 for 0p25deg).
      radius_query_fraction_edge_length: grid2mesh radius in units of the longest edge.
      attention_k_hop: the transformer attends within this many mesh hops.
      cache: reuse results from memory and from `cache_dir()` (built on a miss).

    Returns:
      dict with the keys of `GRAPH_KEYS` (the parity `graphs.npz` layout); grid node
      index = lat_index * n_lon + lon_index. Cached arrays are read-only.
    """
    dtype = coordinate_dtype(lat, lon)
    lat, lon = geometry.check_grid(lat, lon)  # float64: exact for float32 coordinates
    args = (
        lat.astype(dtype),
        lon.astype(dtype),
        int(mesh_size),
        float(radius_query_fraction_edge_length),
        int(attention_k_hop),
    )
    if not cache:
        return _build(*args)
    key = cache_key(*args)
    if key in _MEMORY_CACHE:
        return _MEMORY_CACHE[key]
    folder = cache_dir() / key
    graphs = _load(folder)
    if graphs is None:
        graphs = _build(*args)
        try:
            _save(folder, graphs)
        except OSError:
            pass  # a read-only cache location is not an error; we just rebuild next time
        for v in graphs.values():
            v.flags.writeable = False
    _MEMORY_CACHE[key] = graphs
    return graphs
