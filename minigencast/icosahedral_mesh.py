"""The icosahedral mesh GenCast's transformer runs on (docs/design.md §6.3).

Start from a regular icosahedron (12 vertices, 20 triangles), split every triangle into
four by its edge midpoints, push the new vertices out to the unit sphere, repeat
`splits` times:

    nodes = 10 * 4**s + 2,   faces = 20 * 4**s,   directed edges = 60 * 4**s

GenCast (unlike GraphCast) uses only the finest mesh. To reproduce DeepMind's graphs
index for index we follow their construction exactly:

1. the base icosahedron's vertex and face order, rotated so that a *face* (not a
   vertex) sits at each pole;
2. the midpoint numbering (new vertices in order of first use, faces in order);
3. a reverse Cuthill-McKee (RCM) relabelling of the final vertices, which makes the
   adjacency - and hence the k-hop attention mask - banded. The model is
   permutation-equivariant; the order only matters for the tri-block-diagonal
   attention and for comparing with DeepMind's arrays.

Arithmetic is float32 where DeepMind's is (vertex positions are stored as float32).

Reference: graphcast/icosahedral_mesh.py and gencast denoiser's banding permutation
(google-deepmind/graphcast @ d39de19).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph


class TriangularMesh(NamedTuple):
    """A triangle mesh on the unit sphere.

    Attributes:
      vertices: [num_vertices, 3] float32 unit vectors.
      faces: [num_faces, 3] int32 vertex indices, counter-clockwise seen from outside.
    """

    vertices: np.ndarray
    faces: np.ndarray


# Faces of the base icosahedron in DeepMind's order (counter-clockwise from outside).
_ICOSAHEDRON_FACES = (
    (0, 1, 2), (0, 6, 1), (8, 0, 2), (8, 4, 0), (3, 8, 2),
    (3, 2, 7), (7, 2, 1), (0, 4, 6), (4, 11, 6), (6, 11, 5),
    (1, 5, 7), (4, 10, 11), (4, 8, 10), (10, 8, 3), (10, 3, 9),
    (11, 10, 9), (11, 9, 5), (5, 9, 7), (9, 3, 7), (1, 6, 5),
)  # fmt: skip


def base_icosahedron() -> TriangularMesh:
    """The 12-vertex icosahedron in DeepMind's orientation (docs/design.md §6.3, step 1).

    Vertices are the cyclic permutations of (+-1, +-phi, 0), phi = (1 + sqrt 5) / 2,
    scaled to unit length and rotated about the y axis by
    alpha = (pi - 2 arcsin(phi / sqrt 3)) / 2 so that two opposite faces are
    parallel to the equator (one face at each pole).
    """
    phi = (1 + np.sqrt(5)) / 2
    vertices = []
    for c1 in (1.0, -1.0):
        for c2 in (phi, -phi):
            vertices += [(c1, c2, 0.0), (0.0, c1, c2), (c2, 0.0, c1)]
    # Scaled in place, so the unit vectors are rounded to float32 before the rotation
    # (as in DeepMind's code; it matters for bit-identical vertices).
    vertices = np.array(vertices, dtype=np.float32)
    vertices /= np.linalg.norm([1.0, phi])
    angle_between_faces = 2 * np.arcsin(phi / np.sqrt(3))
    alpha = (np.pi - angle_between_faces) / 2
    # Row vectors times R_y(alpha), i.e. each vertex is rotated by -alpha about y.
    r_y = np.array(
        [[np.cos(alpha), 0, np.sin(alpha)], [0, 1, 0], [-np.sin(alpha), 0, np.cos(alpha)]]
    )
    vertices = vertices @ r_y
    return TriangularMesh(vertices.astype(np.float32), np.array(_ICOSAHEDRON_FACES, np.int32))


def split(mesh: TriangularMesh) -> TriangularMesh:
    """One 4-way refinement (docs/design.md §6.3, step 2).

    Face (a, b, c) gets midpoints ab, bc, ca (mean of the parents, renormalised, in
    float32) and becomes the four faces (a, ab, ca), (ab, b, bc), (ca, bc, c),
    (ab, bc, ca). A midpoint is shared by the two faces of its edge; new vertices are
    numbered after the old ones, in order of first use while walking the faces.
    """
    v, f = mesh.vertices, mesh.faces
    num_old = v.shape[0]
    # [num_faces, 3, 2]: the parent pairs (a,b), (b,c), (c,a) of each face's midpoints.
    pairs = np.stack([f, np.roll(f, -1, axis=1)], axis=-1)
    key = pairs.min(-1).astype(np.int64) * num_old + pairs.max(-1)  # [num_faces, 3]
    unique_keys, first_use, inverse = np.unique(key.ravel(), return_index=True, return_inverse=True)
    # Number the midpoints in order of first use, not in order of their keys.
    order = np.argsort(first_use, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    mid = (num_old + rank[inverse]).reshape(key.shape).astype(np.int32)  # [num_faces, 3]

    parents = pairs.reshape(-1, 2)[first_use[order]]
    midpoints = (v[parents[:, 0]] + v[parents[:, 1]]) / np.float32(2)
    # |m| via a batched dot product: it sums in the same order as DeepMind's per-vertex
    # `np.linalg.norm` (a BLAS dot), so the float32 vertices come out bit-identical.
    squared_norm = midpoints[:, None, :] @ midpoints[:, :, None]  # [num_new, 1, 1]
    midpoints /= np.sqrt(squared_norm[:, 0])

    a, b, c = f[:, 0], f[:, 1], f[:, 2]
    ab, bc, ca = mid[:, 0], mid[:, 1], mid[:, 2]
    new_faces = np.stack(
        [
            np.stack([a, ab, ca], -1),
            np.stack([ab, b, bc], -1),
            np.stack([ca, bc, c], -1),
            np.stack([ab, bc, ca], -1),
        ],
        axis=1,
    ).reshape(-1, 3)
    vertices = np.concatenate([v, midpoints.astype(np.float32)], axis=0)
    return TriangularMesh(vertices, new_faces.astype(np.int32))


def faces_to_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges of a closed triangle mesh (docs/design.md §6.3, step 4).

    Face (a, b, c) gives a->b, b->c, c->a; all first edges, then all second, then all
    third. On a closed mesh every undirected edge appears once in each direction.

    Returns:
      senders, receivers: [3 * num_faces] int32.
    """
    senders = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    receivers = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    return senders, receivers


def banding_permutation(mesh: TriangularMesh) -> np.ndarray:
    """Reverse Cuthill-McKee order of the mesh vertices (docs/design.md §6.3, step 5).

    Returns:
      perm: [num_vertices] with new vertex i = old vertex perm[i].
    """
    senders, receivers = faces_to_edges(mesh.faces)
    n = mesh.vertices.shape[0]
    adjacency = scipy.sparse.csr_matrix((np.ones_like(senders), (senders, receivers)), shape=(n, n))
    return scipy.sparse.csgraph.reverse_cuthill_mckee(adjacency, symmetric_mode=True)


def permute(mesh: TriangularMesh, perm: np.ndarray) -> TriangularMesh:
    """Relabels vertices: new vertex i = old vertex perm[i]; face order unchanged."""
    new_index = np.empty_like(perm)
    new_index[perm] = np.arange(perm.size, dtype=perm.dtype)
    return TriangularMesh(mesh.vertices[perm], new_index[mesh.faces].astype(np.int32))


def build_mesh(splits: int) -> TriangularMesh:
    """GenCast's mesh: `splits` refinements of the base icosahedron, RCM-banded."""
    if splits < 0:
        raise ValueError(f"splits must be >= 0, got {splits}.")
    mesh = base_icosahedron()
    for _ in range(splits):
        mesh = split(mesh)
    return permute(mesh, banding_permutation(mesh))


def edge_lengths(mesh: TriangularMesh) -> np.ndarray:
    """Chord length of every directed edge, [3 * num_faces] float32."""
    senders, receivers = faces_to_edges(mesh.faces)
    return np.linalg.norm(mesh.vertices[senders] - mesh.vertices[receivers], axis=-1)


def max_edge_length(mesh: TriangularMesh) -> np.float32:
    """Longest chord of the mesh; sets GenCast's grid2mesh radius (docs/design.md §6.4)."""
    return edge_lengths(mesh).max()


def num_nodes(splits: int) -> int:
    """10 * 4**splits + 2 (Euler: V - E + F = 2 with E = 3F/2, F = 20 * 4**splits)."""
    return 10 * 4**splits + 2


def _axis_rotation(axis, angle) -> np.ndarray:
    """Rodrigues: the 3x3 rotation by `angle` about the unit vector `axis`."""
    x, y, z = axis / np.linalg.norm(axis)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def rotation_symmetries(mesh: TriangularMesh) -> np.ndarray | None:
    """The 60 rotations of the icosahedron, as permutations of the mesh vertices.

    The icosahedron's rotation group is generated by a 5-fold turn about a vertex and
    a 3-fold turn about a face centre. Refinement is geometric (normalised midpoints),
    so every such rotation maps the refined mesh onto itself: vertex v goes to vertex
    perm[g, v]. Used to compute k-hop neighbourhoods for 1/60 of the nodes only.

    Returns:
      perm: [60, num_vertices] int32, each row a graph automorphism of the mesh; or
      None if the vertices are not symmetric (e.g. a mesh built differently).
    """
    import scipy.spatial

    base = base_icosahedron()
    v = base.vertices.astype(np.float64)
    generators = [
        _axis_rotation(v[0], 2 * np.pi / 5),
        _axis_rotation(v[base.faces[0]].mean(axis=0), 2 * np.pi / 3),
    ]

    def key(r):  # rounded, with -0.0 folded into 0.0
        return (np.round(r, 6) + 0.0).tobytes()

    group = {key(np.eye(3)): np.eye(3)}
    frontier = [np.eye(3)]
    while frontier:  # closure of the generators under multiplication
        new = []
        for g in frontier:
            for h in generators:
                gh = h @ g
                if key(gh) not in group:
                    group[key(gh)] = gh
                    new.append(gh)
        frontier = new
    if len(group) != 60:
        return None
    vertices = mesh.vertices.astype(np.float64)
    tree = scipy.spatial.cKDTree(vertices)
    senders, receivers = faces_to_edges(mesh.faces)
    n = len(vertices)
    edges = np.sort(senders.astype(np.int64) * n + receivers)
    perms = []
    for rotation in group.values():
        distance, perm = tree.query(vertices @ rotation.T)
        if distance.max() > 1e-5:
            return None
        mapped = np.sort(perm[senders].astype(np.int64) * n + perm[receivers])
        if not np.array_equal(mapped, edges):  # must map edges onto edges
            return None
        perms.append(perm)
    return np.stack(perms).astype(np.int32)
