"""GenCast's static structure: grid<->mesh graphs, features, the k-hop attention mask.

Everything here is NumPy, built once per (grid, mesh splits, k) and passed into jitted
code as data (spec sec. 6.4 and 7):

* **grid2mesh** (encoder): grid point g sends to mesh node m iff the chord
  |p_g - p_m| <= r, r = radius_query_fraction_edge_length * (longest mesh edge).
  A k-d tree over the grid answers all ball queries at once: O((N_g + N_m) log N_g).
* **mesh2grid** (decoder): grid point g receives from the 3 vertices of the mesh
  triangle closest to it (DeepMind: `trimesh.proximity.closest_point`). We compute
  it ourselves: candidate faces from a k-d tree of face centroids, a cheap "is the
  projection inside this face" test, and for the few points on a face boundary the
  exact closest point on each candidate with trimesh's tie rule (`closest_faces`).
  O(N_g (log F + K)), K = 4 (8 on boundaries) candidates.
* **features**: nodes [sin lat, cos lon, sin lon]; edges [|d|, d] / max|d| with d the
  sender minus receiver position in the receiver's local frame (`geometry.py`).
* **attention mask**: mesh node i attends to j iff their hop distance is <= k, i.e.
  the boolean pattern of (A + I)^k. We grow breadth-first rings (O(nnz * degree)),
  never a matrix power (and scipy's `csr_array ** k` would be element-wise anyway),
  and only from one node per orbit of the icosahedron's 60 rotations: the other
  balls are rotated copies (`attention_mask`).

`build_graphs` returns a dict with exactly the keys and node order of DeepMind's
graphs recorded in the parity vectors (`graphs.npz`), and caches it in memory and on
disk. The transformer consumes the mask through `attention_neighbours` (padded
neighbour lists, O(N K_max)), `dense_attention_mask` (O(N^2), small meshes) or
`tri_block_size` (DeepMind's banded GPU layout).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import tempfile

import numpy as np
import scipy.spatial

from minigencast import geometry, icosahedral_mesh

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
_CACHE_VERSION = "3"  # bump when the construction changes: old cache entries are ignored
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


def closest_faces(points, mesh, num_candidates: int = 8, chunk: int = 65536) -> np.ndarray:
    """Index of the mesh face closest to each point, reproducing trimesh's choice.

    For a point outside the convex mesh (grid points lie on the sphere, the flat
    faces inside it) the closest surface point q is unique; it lies in one face, or
    on an edge or vertex shared by several. Like `trimesh.proximity.closest_point`
    (DeepMind's tool) we rank candidate faces by squared distance and, when the two
    best are within 1e-8 of each other (and farther than 1e-8), keep the one whose
    unit normal is most aligned with p - q (the face "facing" the point). The
    arithmetic follows trimesh's operation order.

    Tie rule: grid points lying exactly on a mesh edge in a mirror plane of the mesh
    (lon = 0 or 180) are bit-exactly equidistant from two faces with identical
    alignment; trimesh then keeps whichever its r-tree listed first, which we cannot
    replay. We take the higher face index, which matches DeepMind on 3 of the 4 such
    points of the parity grid (13x24, splits 2); the 4th gets the mirror-image face.
    Both faces are equally valid; for bit-exact parity load DeepMind's graphs.

    Args:
      points: [num_points, 3].
      mesh: a `TriangularMesh`.
      num_candidates: faces tried per point (nearest centroids); 8 is ample for
        icosahedral meshes, whose faces vary in size by < 2x (checked against
        brute force in the tests).

    Returns:
      [num_points] int64 face indices.
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
        hard = np.flatnonzero(margin[np.arange(num), first] <= 1e-10)
        if hard.size:  # on or within 1e-10 of an edge: trimesh's full rule
            _, cand = tree.query(p[hard], k=k_exact)
            # Descending face index: exact ties go to the higher index (see above).
            cand = -np.sort(-cand.reshape(len(hard), k_exact), axis=1)
            chosen[hard] = _closest_faces_exact(p[hard], cand, triangles, normals)
        result[start : start + chunk] = chosen
    return result


def _closest_faces_exact(p, cand, triangles, normals):
    """trimesh's choice among candidate faces `cand` [P, k] for points p [P, 3]."""
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
    return face_best[np.arange(num), pick]


def mesh2grid_edges(grid_xyz, mesh) -> tuple[np.ndarray, np.ndarray]:
    """Each grid point receives from the 3 vertices of its closest mesh face.

    Returns:
      senders (mesh indices), receivers (grid indices): [3 * num_grid_nodes] int32,
      grid-major, in the face's vertex order.
    """
    faces = mesh.faces[closest_faces(grid_xyz, mesh)]  # [num_grid_nodes, 3]
    receivers = np.repeat(np.arange(len(grid_xyz), dtype=np.int32), 3)
    return faces.reshape(-1).astype(np.int32), receivers


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
    """COO of the k-hop mask: boolean (A + I)^k of the mesh, incl. self, spec sec. 6.7.

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


def attention_neighbours(rows, cols, num_mesh_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Padded neighbour lists of the attention mask (gather-attention layout).

    Returns:
      idx: [num_mesh_nodes, K_max] int32, the keys node i attends to (ascending);
        padding slots hold i itself.
      valid: [num_mesh_nodes, K_max] bool, False on padding.
    """
    rows = np.asarray(rows)
    if np.any(np.diff(rows) < 0):
        raise ValueError("attention mask rows must be sorted (as build_graphs returns them).")
    counts = np.bincount(rows, minlength=num_mesh_nodes)
    k_max = int(counts.max()) if counts.size else 0
    # Row i holds its counts[i] keys in the first slots; a boolean mask assignment fills
    # them in row-major order, which is exactly the order of the sorted COO.
    valid = np.arange(k_max)[None, :] < counts[:, None]
    idx = np.repeat(np.arange(num_mesh_nodes, dtype=np.int32)[:, None], k_max, axis=1)
    idx[valid] = cols
    return idx, valid


def dense_attention_mask(rows, cols, num_mesh_nodes: int) -> np.ndarray:
    """[num_mesh_nodes, num_mesh_nodes] bool mask (mask[i, j]: query i sees key j)."""
    mask = np.zeros((num_mesh_nodes, num_mesh_nodes), dtype=bool)
    mask[rows, cols] = True
    return mask


def tri_block_size(rows, cols) -> int:
    """Block size b of the tri-block-diagonal layout: 1 + the bandwidth max|i - j|.

    With the RCM order every query block of b nodes only sees its own and the two
    adjacent key blocks (spec sec. 7).
    """
    return int(np.abs(np.asarray(rows, np.int64) - cols).max()) + 1


# ----------------------------------------------------------------------------- build
def _build(lat, lon, mesh_size, radius_query_fraction_edge_length, attention_k_hop):
    # DeepMind computes all node positions from float32 lat/lon; we do the same so
    # that neighbourhoods on the radius boundary come out identical.
    grid_lat, grid_lon = geometry.grid_lat_lon(lat.astype(np.float32), lon.astype(np.float32))
    grid_xyz = geometry.lat_lon_to_xyz(grid_lat, grid_lon)
    mesh = icosahedral_mesh.build_mesh(mesh_size)
    mesh_lat, mesh_lon = geometry.xyz_to_lat_lon(mesh.vertices)
    mesh_lat, mesh_lon = mesh_lat.astype(np.float32), mesh_lon.astype(np.float32)
    mesh_senders, mesh_receivers = icosahedral_mesh.faces_to_edges(mesh.faces)

    radius = np.float32(icosahedral_mesh.max_edge_length(mesh) * radius_query_fraction_edge_length)
    g2m_s, g2m_r = grid2mesh_edges(grid_xyz, mesh.vertices, radius)
    m2g_s, m2g_r = mesh2grid_edges(grid_xyz, mesh)
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
        "grid_node_structural_features": geometry.node_structural_features(grid_lat, grid_lon),
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
    """Hash of everything the graphs depend on: grid coordinates, splits, radius, k."""
    h = hashlib.sha256(_CACHE_VERSION.encode())
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
    """All of GenCast's static graph structure for one grid and mesh (spec 6.3-6.7).

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
    lat, lon = geometry.check_grid(lat, lon)
    args = (
        lat,
        lon,
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


# ----------------------------------------------------------------------------- info
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
    g = build_graphs(
        lat,
        lon,
        arch.mesh_size,
        arch.radius_query_fraction_edge_length,
        transformer.attention_k_hop,
    )
    n_mesh = len(g["mesh_vertices"])
    rows, cols = g["attention_mask_rows"], g["attention_mask_cols"]
    per_node = np.bincount(rows, minlength=n_mesh)
    block = tri_block_size(rows, cols)
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
    from minigencast import network  # imported here: graphs.py itself stays NumPy-only

    out["parameters"] = int(network.num_parameters(cfg))
    memory = {"graphs": int(sum(np.asarray(v).nbytes for v in g.values()))}
    memory.update(
        attention_memory_bytes(n_mesh, per_node.max(), len(rows), transformer.num_heads, block)
    )
    memory["noise_basis"] = 4 * (n_lon // 2) ** 2 * n_lat
    out["memory_bytes"] = memory
    from minigencast import memory as memory_lib

    out["peak_memory_estimate_bytes"] = memory_lib.summary(cfg, g)
    return out
