"""DeepMind's mesh2grid face at grid nodes where the closest face is a tie.

A grid node lying exactly on an edge shared by two mesh faces (or on a vertex) is
equally close to several faces. DeepMind's code
(graphcast/grid_mesh_connectivity.py:in_mesh_triangle_indices, graphcast@d39de19)
asks `trimesh.proximity.closest_point`, which then keeps whichever face its r-tree
lists first; no geometric rule reproduces that order. `graphs.closest_faces` flags such
nodes (`return_ties=True`) and `resolve` gives them DeepMind's face, in this order:

1. a committed table (`mesh2grid_ties.json`) for the official grids (1 deg with mesh
   splits 4 and 5, 0.25 deg with splits 6, poles included), made by
   `tests/parity/make_mesh2grid_ties.py`. The tables for float64 grid coordinates are
   DeepMind's recorded choice; those for float32 coordinates (what DeepMind's
   denoiser uses: graphcast/denoiser.py:Denoiser._init_grid_properties casts to
   float32) were computed with trimesh 5.2.0 and rtree 1.4.1 exactly as
   in_mesh_triangle_indices does (docs/parity.md);
2. trimesh and rtree, where installed (`pip install minigencast[graphs-exact]`),
   asked at the tie nodes only;
3. otherwise `closest_faces`'s rule (the higher face index), with a warning.
"""

from __future__ import annotations

import functools
import json
import pathlib
import warnings

import numpy as np

from minigencast import icosahedral_mesh

TABLE_FILE = pathlib.Path(__file__).with_name("mesh2grid_ties.json")


def table_key(lat, lon, mesh_size: int, dtype) -> str | None:
    """Key of the official grid `lat`, `lon` in the table, or None for another grid.

    Official: n_lat latitudes from -90 to 90 inclusive, n_lon longitudes i * 360 / n_lon.
    """
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    official = np.allclose(lat, np.linspace(-90, 90, lat.size), rtol=0, atol=1e-6)
    official &= np.allclose(lon, np.arange(lon.size) * 360 / lon.size, rtol=0, atol=1e-6)
    if not official:
        return None
    return f"{np.dtype(dtype).name}/{lat.size}x{lon.size}/splits{int(mesh_size)}"


@functools.lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(TABLE_FILE.read_text()) if TABLE_FILE.exists() else {}


def unbanded_mesh(mesh_size: int) -> icosahedral_mesh.TriangularMesh:
    """DeepMind's finest mesh: `mesh_size` splits, vertices before the RCM banding.

    Its faces are ours in the same order (`icosahedral_mesh.build_mesh` relabels the
    vertices only), so a face index means the same face in both.
    """
    mesh = icosahedral_mesh.base_icosahedron()
    for _ in range(mesh_size):
        mesh = icosahedral_mesh.split(mesh)
    return mesh


def banding_index(mesh_size: int) -> np.ndarray:
    """[N] banded index of each unbanded (DeepMind) mesh node."""
    perm = icosahedral_mesh.banding_permutation(unbanded_mesh(mesh_size))
    new_index = np.empty_like(perm)
    new_index[perm] = np.arange(perm.size, dtype=perm.dtype)
    return new_index


def trimesh_faces(points, mesh_size: int) -> np.ndarray:
    """trimesh's closest face for `points` [P, 3], as in_mesh_triangle_indices asks it."""
    import trimesh  # optional: minigencast[graphs-exact]

    mesh = unbanded_mesh(mesh_size)
    mesh_trimesh = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces)
    _, _, faces = trimesh.proximity.closest_point(mesh_trimesh, np.asarray(points))
    return np.asarray(faces, np.int64)


def have_trimesh() -> bool:
    """Whether trimesh and rtree (its r-tree backend) are importable."""
    try:
        import rtree  # noqa: F401
        import trimesh  # noqa: F401
    except ImportError:
        return False
    return True


def method(key: str | None) -> str:
    """How ties are resolved on a grid: "table", "trimesh" or "rule" (for cache keys)."""
    if key is not None and key in _table():
        return "table"
    return "trimesh" if have_trimesh() else "rule"


def resolve(faces, ties, points, mesh, mesh_size: int, key: str | None) -> np.ndarray:
    """`faces` with DeepMind's face at the tie nodes (see the module docstring).

    Args:
      faces: [P] closest face of each grid node (`graphs.closest_faces`).
      ties: [P] bool, where that choice is a tie.
      points: [P, 3] grid node positions.
      mesh: the (banded) `TriangularMesh` whose faces `faces` index.
      mesh_size: its number of splits.
      key: `table_key` of the grid, or None.

    Returns:
      [P] face indices.
    """
    faces = np.array(faces, np.int64)
    todo = np.flatnonzero(ties)
    entry = _table().get(key) if key is not None else None
    if entry is not None and todo.size:
        nodes = np.asarray(entry["grid_index"], np.int64)
        face_of = {tuple(sorted(f)): i for i, f in enumerate(mesh.faces.tolist())}
        banded = banding_index(mesh_size)[np.asarray(entry["mesh_nodes"], np.int64)]
        known = np.array([face_of[tuple(sorted(t))] for t in banded.tolist()], np.int64)
        faces[nodes] = known
        todo = np.setdiff1d(todo, nodes)
    if todo.size and have_trimesh():
        faces[todo] = trimesh_faces(points[todo], mesh_size)
    elif todo.size:
        warnings.warn(
            f"{todo.size} grid nodes lie exactly on an edge or vertex shared by several "
            "mesh faces; DeepMind's mesh2grid face there comes from trimesh's r-tree order. "
            "Using the higher face index instead; `pip install minigencast[graphs-exact]` "
            "(trimesh, rtree) reproduces DeepMind's choice.",
            stacklevel=3,
        )
    return faces
