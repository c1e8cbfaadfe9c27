"""The icosahedral mesh: counts, geometry invariants, DeepMind's exact vertex order."""

import numpy as np
import pytest

from minigencast import icosahedral_mesh

# docs/design.md §6.3 table: splits -> (nodes, faces, directed edges, max edge chord, max edge deg)
SPEC_TABLE = {
    0: (12, 20, 60, 1.051462, 63.43),
    1: (42, 80, 240, 0.618034, 36.00),
    2: (162, 320, 960, 0.324920, 18.70),
    3: (642, 1280, 3840, 0.164647, 9.44),
    4: (2562, 5120, 15360, 0.082604, 4.73),
    5: (10242, 20480, 61440, 0.041337, 2.37),
    6: (40962, 81920, 245760, 0.020673, 1.18),
}


@pytest.mark.parametrize("splits", sorted(SPEC_TABLE))
def test_counts_and_max_edge_lengths_match_deepmind(splits):
    nodes, faces, edges, chord, degrees = SPEC_TABLE[splits]
    mesh = icosahedral_mesh.build_mesh(splits)
    senders, _ = icosahedral_mesh.faces_to_edges(mesh.faces)
    assert len(mesh.vertices) == nodes == icosahedral_mesh.num_nodes(splits)
    assert len(mesh.faces) == faces
    assert len(senders) == edges
    max_edge = icosahedral_mesh.max_edge_length(mesh)
    assert max_edge == pytest.approx(chord, abs=1e-6)
    assert np.degrees(2 * np.arcsin(max_edge / 2)) == pytest.approx(degrees, abs=0.006)


@pytest.mark.parametrize("splits", [0, 1, 3])
def test_geometry_invariants(splits):
    mesh = icosahedral_mesh.build_mesh(splits)
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int32
    np.testing.assert_allclose(np.linalg.norm(mesh.vertices, axis=1), 1, atol=1e-6)
    # Faces are counter-clockwise seen from outside: normals point away from the centre.
    tri = mesh.vertices[mesh.faces].astype(np.float64)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert np.all((normals * tri.mean(axis=1)).sum(-1) > 0)
    # Every undirected edge appears once in each direction; degrees are 5 (12 nodes) or 6.
    senders, receivers = icosahedral_mesh.faces_to_edges(mesh.faces)
    pairs = set(zip(senders.tolist(), receivers.tolist(), strict=True))
    assert len(pairs) == len(senders)
    assert all((r, s) in pairs for s, r in pairs)
    degree = np.bincount(senders)
    assert (degree == 5).sum() == 12 and np.all((degree == 5) | (degree == 6))


def test_split_keeps_parent_vertices_first():
    coarse = icosahedral_mesh.base_icosahedron()
    for _ in range(3):
        fine = icosahedral_mesh.split(coarse)
        np.testing.assert_array_equal(fine.vertices[: len(coarse.vertices)], coarse.vertices)
        coarse = fine


def test_faces_at_the_poles():
    # DeepMind rotates the icosahedron so a face, not a vertex, sits at each pole.
    assert np.abs(icosahedral_mesh.base_icosahedron().vertices[:, 2]).max() == pytest.approx(
        0.7947, abs=1e-4
    )
    assert np.abs(icosahedral_mesh.build_mesh(6).vertices[:, 2]).max() == pytest.approx(
        0.99993, abs=1e-5
    )


def test_banding_permutation_regression_values():
    # docs/design.md §6.3, step 5 (splits 4).
    mesh = icosahedral_mesh.build_mesh(4)
    np.testing.assert_array_equal(
        mesh.vertices[0], np.float32([-0.49112344, -0.8506508, -0.18759246])
    )
    np.testing.assert_array_equal(mesh.faces[0], [2561, 2560, 2559])


def test_banding_reduces_bandwidth():
    mesh = icosahedral_mesh.base_icosahedron()
    for _ in range(3):
        mesh = icosahedral_mesh.split(mesh)
    banded = icosahedral_mesh.permute(mesh, icosahedral_mesh.banding_permutation(mesh))
    s0, r0 = icosahedral_mesh.faces_to_edges(mesh.faces)
    s1, r1 = icosahedral_mesh.faces_to_edges(banded.faces)
    assert np.abs(s1 - r1).max() < np.abs(s0 - r0).max() / 4


@pytest.mark.parametrize("splits", [0, 2, 3])
def test_rotation_symmetries_are_automorphisms(splits):
    mesh = icosahedral_mesh.build_mesh(splits)
    perms = icosahedral_mesh.rotation_symmetries(mesh)
    assert perms.shape == (60, len(mesh.vertices))
    assert len({p.tobytes() for p in perms}) == 60  # 60 distinct symmetries
    assert np.all(np.sort(perms, axis=1) == np.arange(len(mesh.vertices)))  # permutations
    senders, receivers = icosahedral_mesh.faces_to_edges(mesh.faces)
    edges = set(zip(senders.tolist(), receivers.tolist(), strict=True))
    p = perms[17]
    assert {(p[s], p[r]) for s, r in edges} == edges


def test_rotation_symmetries_reject_asymmetric_meshes():
    mesh = icosahedral_mesh.build_mesh(1)
    vertices = mesh.vertices.copy()
    vertices[5] = vertices[5] * 0.9 + vertices[6] * 0.1  # nudge one vertex
    assert icosahedral_mesh.rotation_symmetries(mesh._replace(vertices=vertices)) is None
