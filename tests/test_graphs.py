"""Grid2mesh / mesh2grid graphs, features and the k-hop mask (docs/design.md §6.4, §6.7, §7)."""

import json
import os
import pathlib

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph

from minigencast import (
    config,
    geometry,
    graphs,
    icosahedral_mesh,
    mesh2grid_ties,
    network,
    transformer,
)


def _parity_dir():
    candidates = [
        os.environ.get("MINIGENCAST_PARITY_DIR"),
        pathlib.Path(__file__).parent / "parity" / "open",
        pathlib.Path("/work/shared/parity/open"),
    ]
    for c in candidates:
        if c and (pathlib.Path(c) / "graphs.npz").exists():
            return pathlib.Path(c)
    pytest.skip("parity vectors (graphs.npz) not found")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGENCAST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(graphs, "_MEMORY_CACHE", {})


def _pairs(senders, receivers):
    return sorted(zip(np.asarray(senders).tolist(), np.asarray(receivers).tolist(), strict=True))


def _tied_faces(point, mesh, tol=1e-12):
    """All faces at minimal squared distance (up to rounding) from `point`, by brute force."""
    tri = mesh.vertices.astype(np.float64)[mesh.faces]
    p = np.broadcast_to(np.asarray(point, np.float64), (len(tri), 3))
    q = graphs._closest_points_on_triangles(p, tri[:, 0], tri[:, 1], tri[:, 2])
    d2 = ((p - q) ** 2).sum(-1)
    return set(np.flatnonzero(d2 <= d2.min() + tol).tolist())


@pytest.mark.parity
def test_parity_graphs_identical_to_deepmind():
    folder = _parity_dir()
    ref = np.load(folder / "graphs.npz")
    meta = json.loads((folder / "meta.json").read_text())
    # float32, as DeepMind's denoiser casts the grid (Denoiser._init_grid_properties).
    lat = np.asarray(meta["grid"]["lat"], np.float32)
    lon = np.asarray(meta["grid"]["lon"], np.float32)
    arch = meta["denoiser_architecture_config"]
    g = graphs.build_graphs(
        lat,
        lon,
        arch["mesh_size"],
        arch["radius_query_fraction_edge_length"],
        arch["sparse_transformer_config"]["attention_k_hop"],
    )
    assert set(g) == set(ref.files) == set(graphs.GRAPH_KEYS)
    for key in ref.files:
        assert g[key].shape == ref[key].shape, key
        assert g[key].dtype == ref[key].dtype, key
    # Mesh, mesh edges, node features, grid2mesh and mask: identical (incl. order).
    for key in [
        "mesh_vertices",
        "mesh_faces",
        "mesh_node_lat",
        "mesh_node_lon",
        "mesh_senders",
        "mesh_receivers",
        "grid2mesh_senders",
        "grid2mesh_receivers",
        "attention_mask_rows",
        "attention_mask_cols",
    ]:
        np.testing.assert_array_equal(g[key], ref[key], err_msg=key)
    for key in [
        "grid_node_structural_features",
        "mesh_node_structural_features",
        "grid2mesh_edge_features",
    ]:
        np.testing.assert_allclose(g[key], ref[key], rtol=0, atol=1e-6, err_msg=key)
    # Mesh2grid: identical except at tie nodes (grid points exactly equidistant from
    # several faces), where trimesh's choice depends on its r-tree order: with trimesh
    # installed we ask it there (identical everywhere), else the rule decides.
    ours = g["mesh2grid_senders"].reshape(-1, 3)
    theirs = ref["mesh2grid_senders"].reshape(-1, 3)
    np.testing.assert_array_equal(g["mesh2grid_receivers"], ref["mesh2grid_receivers"])
    differ = np.flatnonzero(np.any(ours != theirs, axis=1))
    mesh = icosahedral_mesh.TriangularMesh(g["mesh_vertices"], g["mesh_faces"])
    grid_lat, grid_lon = geometry.grid_lat_lon(lat, lon)
    xyz = geometry.lat_lon_to_xyz(grid_lat, grid_lon)
    _, ties = graphs.closest_faces(xyz.astype(np.float64), mesh, return_ties=True)
    if mesh2grid_ties.have_trimesh():
        assert differ.size == 0, differ
    assert np.isin(differ, np.flatnonzero(ties)).all(), (differ, np.flatnonzero(ties))
    assert ties.sum() <= max(1, len(xyz) // 20), ties.sum()  # ties are rare
    face_of = {tuple(f): i for i, f in enumerate(mesh.faces.tolist())}
    for i in differ:
        tied = _tied_faces(xyz[i], mesh)
        assert (
            len(tied) >= 2 and face_of[tuple(theirs[i])] in tied and face_of[tuple(ours[i])] in tied
        )
    same = np.repeat(np.all(ours == theirs, axis=1), 3)
    np.testing.assert_allclose(
        g["mesh2grid_edge_features"][same], ref["mesh2grid_edge_features"][same], atol=1e-6
    )
    # The graph facts recorded in meta.json.
    facts = meta["graph"]
    per_node = np.bincount(g["attention_mask_rows"])
    in_degree = np.bincount(g["grid2mesh_receivers"], minlength=len(g["mesh_vertices"]))
    assert len(g["grid_node_structural_features"]) == facts["num_grid_nodes"]
    assert len(g["mesh_vertices"]) == facts["num_mesh_nodes"]
    assert len(g["mesh_faces"]) == facts["num_mesh_faces"]
    assert len(g["mesh_senders"]) == facts["num_mesh_edges_directed"]
    assert len(g["grid2mesh_senders"]) == facts["num_grid2mesh_edges"]
    assert len(g["mesh2grid_senders"]) == facts["num_mesh2grid_edges"]
    assert len(g["attention_mask_rows"]) == facts["attention_mask_nonzeros"]
    assert per_node.mean() == pytest.approx(facts["attention_mask_neighbours_per_node_mean"])
    assert per_node.max() == facts["attention_mask_neighbours_per_node_max"]
    rows, cols = g["attention_mask_rows"], g["attention_mask_cols"]
    assert transformer.tri_block_size(rows, cols) == facts["attention_mask_tri_block_size"]
    assert in_degree.max() == facts["grid2mesh_max_in_degree"]
    assert in_degree.min() == facts["grid2mesh_min_in_degree"]
    no_edge = len(grid_lat) - len(np.unique(g["grid2mesh_senders"]))
    assert no_edge == facts["grid_nodes_without_grid2mesh_edge"]
    radius = np.float32(icosahedral_mesh.max_edge_length(mesh) * 0.6)
    assert radius == pytest.approx(facts["grid2mesh_query_radius"], abs=1e-7)


DEEPMIND_MESH2GRID = pathlib.Path(__file__).parent / "parity" / "deepmind-mesh2grid"
OFFICIAL = {
    "1p0deg_splits4": (181, 360, 4),
    "1p0deg_splits5": (181, 360, 5),
    "0p25deg_splits6": (721, 1440, 6),
}
# Every official grid; 0.25 deg (about 7 s, 1 GB) in the slow tier.
ALL_OFFICIAL = [
    "1p0deg_splits4",
    "1p0deg_splits5",
    pytest.param("0p25deg_splits6", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name", ALL_OFFICIAL)
def test_mesh2grid_equals_deepmind_on_official_grids(name):
    """DeepMind's recorded mesh2grid nodes (float64 grid coordinates) at every grid node."""
    n_lat, n_lon, splits = OFFICIAL[name]
    recorded = np.load(DEEPMIND_MESH2GRID / f"{name}.npz")["mesh2grid_mesh_nodes"]
    lat, lon = np.linspace(-90, 90, n_lat), np.arange(n_lon) * 360 / n_lon
    mesh = icosahedral_mesh.build_mesh(splits)
    faces = graphs.mesh2grid_faces(lat, lon, splits, dtype=np.float64)
    # Map our banded node numbers to DeepMind's (unbanded) ones; same vertex order per face.
    unbanded = np.argsort(mesh2grid_ties.banding_index(splits))
    np.testing.assert_array_equal(unbanded[mesh.faces[faces]], recorded)
    # The committed table holds the tie nodes only.
    _, ties = graphs.closest_faces(
        geometry.lat_lon_to_xyz(*geometry.grid_lat_lon(lat, lon)), mesh, return_ties=True
    )
    key = mesh2grid_ties.table_key(lat, lon, splits, np.float64)
    entry = json.loads(mesh2grid_ties.TABLE_FILE.read_text())[key]
    np.testing.assert_array_equal(entry["grid_index"], np.flatnonzero(ties))
    assert len(entry["grid_index"]) < len(lat) * len(lon) // 100


@pytest.mark.parametrize("name", ["1p0deg_splits4", "1p0deg_splits5"])
def test_build_graphs_on_official_grids_equal_trimesh_everywhere(name):
    """float32 coordinates, as DeepMind's denoiser: build_graphs == trimesh at every node."""
    pytest.importorskip("rtree", reason="needs the graphs-exact extra (trimesh, rtree)")
    pytest.importorskip("trimesh", reason="needs the graphs-exact extra (trimesh, rtree)")
    n_lat, n_lon, splits = OFFICIAL[name]
    lat, lon = np.linspace(-90, 90, n_lat), np.arange(n_lon) * 360 / n_lon
    lat, lon = lat.astype(np.float32), lon.astype(np.float32)
    g = graphs.build_graphs(lat, lon, splits, 0.6, 1)
    points = geometry.lat_lon_to_xyz(*geometry.grid_lat_lon(lat, lon))
    mesh = icosahedral_mesh.build_mesh(splits)
    by_trimesh = mesh.faces[mesh2grid_ties.trimesh_faces(points.astype(np.float64), splits)]
    np.testing.assert_array_equal(g["mesh2grid_senders"].reshape(-1, 3), by_trimesh)


def _recorded_mesh2grid(name):
    """DeepMind's table for grid `name` with our banded mesh numbering, [n_grid, 3]."""
    splits = OFFICIAL[name][2]
    recorded = np.load(DEEPMIND_MESH2GRID / f"{name}.npz")["mesh2grid_mesh_nodes"]
    return mesh2grid_ties.banding_index(splits)[recorded]


@pytest.mark.parametrize("name", ALL_OFFICIAL)
def test_build_graphs_in_float64_is_deepminds_table(name):
    """float64 coordinates in, DeepMind's recorded three mesh nodes out, in its order."""
    n_lat, n_lon, splits = OFFICIAL[name]
    lat, lon = np.linspace(-90, 90, n_lat), np.arange(n_lon) * 360 / n_lon
    g = graphs.build_graphs(lat, lon, splits, 0.6, 1)
    expected = _recorded_mesh2grid(name)
    np.testing.assert_array_equal(g["mesh2grid_senders"].reshape(-1, 3), expected)
    np.testing.assert_array_equal(g["mesh2grid_receivers"], np.repeat(np.arange(len(expected)), 3))


def test_model_graphs_are_the_float32_graphs():
    """network.build_graphs casts to float32 (DeepMind's denoiser); mesh2grid then moves
    off DeepMind's float64 table only where a node is within float32 rounding of an
    edge or vertex shared by both faces."""
    lat, lon = np.linspace(-90, 90, 181), np.arange(360.0)
    model = network.build_graphs(config.gencast_1p0deg_mini(), lat, lon)
    g32 = graphs.build_graphs(lat.astype(np.float32), lon.astype(np.float32), 4, 0.6, 16)
    assert model is g32  # the same cache entry: the same float32 graphs
    ours = model["mesh2grid_senders"].reshape(-1, 3)
    theirs = _recorded_mesh2grid("1p0deg_splits4")
    differ = np.flatnonzero(np.any(ours != theirs, axis=1))
    assert differ.size == 163  # trimesh on float32 vs float64 positions (docs/parity.md)
    # Both faces are (nearly) closest to the float64 position: the gap is float32 rounding.
    mesh = icosahedral_mesh.build_mesh(4)
    p = geometry.lat_lon_to_xyz(*geometry.grid_lat_lon(lat, lon))[differ]
    tri = mesh.vertices.astype(np.float64)

    def distance(face_nodes):
        a, b, c = (tri[face_nodes[:, i]] for i in range(3))
        return np.linalg.norm(p - graphs._closest_points_on_triangles(p, a, b, c), axis=1)

    gap = distance(ours[differ]) - distance(theirs[differ])
    assert np.all(np.abs(gap) <= np.finfo(np.float32).eps), gap.max()
    for a, b in zip(ours[differ], theirs[differ], strict=True):
        assert len(set(a) & set(b)) >= 1  # neighbouring faces: a shared edge or vertex


def test_ties_on_other_grids_follow_the_rule_with_a_warning(monkeypatch):
    """Without trimesh: a 33x64 grid with splits 3 has ties; the rule decides, and says so."""
    monkeypatch.setattr(mesh2grid_ties, "have_trimesh", lambda: False)
    lat, lon = np.linspace(-90, 90, 33), np.arange(64) * 5.625
    with pytest.warns(UserWarning, match=r"graphs-exact"):
        faces = graphs.mesh2grid_faces(lat, lon, 3, np.float32)
    mesh = icosahedral_mesh.build_mesh(3)
    points = geometry.lat_lon_to_xyz(
        *geometry.grid_lat_lon(lat.astype(np.float32), lon.astype(np.float32))
    )
    for p, f in zip(points, faces, strict=True):
        assert f in _tied_faces(p, mesh)


def test_ties_on_other_grids_are_asked_to_trimesh():
    """With the graphs-exact extra: trimesh's face at every node of a 33x64 grid."""
    pytest.importorskip("rtree", reason="needs the graphs-exact extra (trimesh, rtree)")
    pytest.importorskip("trimesh", reason="needs the graphs-exact extra (trimesh, rtree)")
    lat, lon = np.linspace(-90, 90, 33), np.arange(64) * 5.625
    faces = graphs.mesh2grid_faces(lat, lon, 3, np.float32)
    points = geometry.lat_lon_to_xyz(
        *geometry.grid_lat_lon(lat.astype(np.float32), lon.astype(np.float32))
    )
    np.testing.assert_array_equal(faces, mesh2grid_ties.trimesh_faces(points, 3))


@pytest.mark.parametrize("splits", [0, 1, 2, 3])
def test_closest_faces_agree_with_brute_force(splits):
    mesh = icosahedral_mesh.build_mesh(splits)
    rng = np.random.default_rng(splits)
    points = rng.normal(size=(400, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    found = graphs.closest_faces(points, mesh)
    for p, f in zip(points, found, strict=True):
        assert f in _tied_faces(p, mesh)


def test_grid2mesh_agrees_with_brute_force():
    mesh = icosahedral_mesh.build_mesh(2)
    lat, lon = geometry.grid_lat_lon(np.linspace(-90, 90, 19), np.arange(36) * 10.0)
    xyz = geometry.lat_lon_to_xyz(lat, lon)
    radius = 0.25
    senders, receivers = graphs.grid2mesh_edges(xyz, mesh.vertices, radius)
    dist = np.linalg.norm(xyz[:, None, :] - mesh.vertices[None, :, :].astype(np.float64), axis=-1)
    expected_g, expected_m = np.nonzero(dist <= radius)
    np.testing.assert_array_equal(senders, expected_g)  # grid-major, then mesh index
    np.testing.assert_array_equal(receivers, expected_m)


@pytest.mark.parametrize("splits, k", [(1, 1), (2, 3), (3, 5)])
def test_attention_mask_is_k_hop_reachability(splits, k):
    mesh = icosahedral_mesh.build_mesh(splits)
    senders, receivers = icosahedral_mesh.faces_to_edges(mesh.faces)
    n = len(mesh.vertices)
    rows, cols = graphs.attention_mask(senders, receivers, n, k, chunk=50)
    # Reference 1: hop distances by breadth-first search.
    adjacency = scipy.sparse.csr_matrix((np.ones(len(senders)), (senders, receivers)), shape=(n, n))
    hops = scipy.sparse.csgraph.shortest_path(adjacency, unweighted=True)
    np.testing.assert_array_equal(transformer.build_attention(rows, cols, n, "mha").mask, hops <= k)
    # Reference 2: (A + I)^k as a *matrix* power (csr_matrix; csr_array ** k is elementwise).
    power = (adjacency + scipy.sparse.identity(n, format="csr")) ** k
    assert isinstance(power, scipy.sparse.spmatrix)
    np.testing.assert_array_equal(power.toarray() > 0, hops <= k)
    # COO sorted by row, then column.
    key = rows.astype(np.int64) * n + cols
    assert np.all(np.diff(key) > 0)


@pytest.mark.parametrize("splits, k", [(2, 4), (3, 6)])
def test_attention_mask_symmetry_shortcut_is_exact(splits, k):
    mesh = icosahedral_mesh.build_mesh(splits)
    senders, receivers = icosahedral_mesh.faces_to_edges(mesh.faces)
    n = len(mesh.vertices)
    plain = graphs.attention_mask(senders, receivers, n, k, chunk=100)
    perms = icosahedral_mesh.rotation_symmetries(mesh)
    fast = graphs.attention_mask(senders, receivers, n, k, symmetries=perms, chunk=100)
    np.testing.assert_array_equal(fast[0], plain[0])
    np.testing.assert_array_equal(fast[1], plain[1])


def test_attention_layouts_agree():
    """Each layout, unpacked by hand into an N x N mask, is the dense k-hop mask."""
    mesh = icosahedral_mesh.build_mesh(2)
    senders, receivers = icosahedral_mesh.faces_to_edges(mesh.faces)
    n = len(mesh.vertices)
    rows, cols = graphs.attention_mask(senders, receivers, n, 3)
    dense = transformer.build_attention(rows, cols, n, "mha").mask
    np.testing.assert_array_equal(dense, dense.T)
    # Banded windows: chunk c holds queries c*Q + i and keys start[c] + j.
    q = 16
    start, window = transformer.build_attention(rows, cols, n, "splash_mha", q)
    start, window = np.asarray(start), np.asarray(window)
    rebuilt = np.zeros((n, n), bool)
    for c, (first, m) in enumerate(zip(start, window, strict=True)):
        for i, j in zip(*np.nonzero(m), strict=True):
            assert c * q + i < n and first + j < n  # padding is never attended
            rebuilt[c * q + i, first + j] = True
    np.testing.assert_array_equal(rebuilt, dense)
    # Tri-block: block i's queries attend to key blocks (i, i + 1, i - 1).
    b = transformer.tri_block_size(rows, cols)
    tri = np.asarray(transformer.build_attention(rows, cols, n, "triblockdiag_mha").mask)
    rebuilt = np.zeros((n, n), bool)
    for blk, qi, kk in zip(*np.nonzero(tri), strict=True):
        key_block = blk + (0, 1, -1)[kk // b]
        rebuilt[blk * b + qi, key_block * b + kk % b] = True
    np.testing.assert_array_equal(rebuilt, dense)


def test_one_degree_mini_facts():
    """docs/design.md §6.4 and §12 item 6 at 1 deg / splits 4 / k 16 (the Mini configuration).

    Source of every number: DeepMind's d39de19 graph construction
    (graphcast/grid_mesh_connectivity.py, graphcast/sparse_transformer.py) run at this
    configuration (docs/design.md §6.4, §6.9), i.e. its denoiser's float32 grid.
    """
    lat, lon = np.linspace(-90, 90, 181, dtype=np.float32), np.arange(360, dtype=np.float32)
    g = graphs.build_graphs(lat, lon, 4, 0.6, 16, cache=False)
    assert len(g["grid_node_structural_features"]) == 65160
    assert len(g["grid2mesh_senders"]) == 102486
    assert len(g["mesh2grid_senders"]) == 195480
    assert len(g["attention_mask_rows"]) == 1907922
    in_degree = np.bincount(g["grid2mesh_receivers"], minlength=2562)
    assert in_degree.max() == 937 and np.median(in_degree) == 30 and in_degree.min() >= 1
    assert abs(g["mesh_node_lat"][in_degree.argmax()]) == pytest.approx(87.3, abs=0.05)
    assert len(np.unique(g["grid2mesh_senders"])) == 65160  # every grid node sends
    per_node = np.bincount(g["attention_mask_rows"])
    assert per_node.mean() == pytest.approx(744.7, abs=0.05) and per_node.max() == 766
    rows, cols = g["attention_mask_rows"], g["attention_mask_cols"]
    assert transformer.tri_block_size(rows, cols) == 1297
    for key in ["grid2mesh_edge_features", "mesh2grid_edge_features"]:
        assert g[key].dtype == np.float32 and g[key][:, 0].max() == pytest.approx(1.0)


@pytest.mark.parametrize("k, nnz, mean, largest, block", [(8, 542922, 211.9, 217, 649)])
def test_mask_statistics_splits_4(k, nnz, mean, largest, block):
    mesh = icosahedral_mesh.build_mesh(4)
    senders, receivers = icosahedral_mesh.faces_to_edges(mesh.faces)
    rows, cols = graphs.attention_mask(senders, receivers, len(mesh.vertices), k)
    per_node = np.bincount(rows)
    assert len(rows) == nnz and per_node.max() == largest
    assert per_node.mean() == pytest.approx(mean, abs=0.05)
    assert transformer.tri_block_size(rows, cols) == block


@pytest.mark.slow
@pytest.mark.parametrize(
    "splits, k, nnz, largest, block",
    [(5, 16, 8182482, 817, 2577), (5, 32, 29668002, 2982, 5153), (6, 16, 33280722, 817, 5137)],
)
def test_mask_statistics_large(splits, k, nnz, largest, block):
    mesh = icosahedral_mesh.build_mesh(splits)
    senders, receivers = icosahedral_mesh.faces_to_edges(mesh.faces)
    perms = icosahedral_mesh.rotation_symmetries(mesh)
    rows, cols = graphs.attention_mask(senders, receivers, len(mesh.vertices), k, perms)
    assert len(rows) == nnz and np.bincount(rows).max() == largest
    assert transformer.tri_block_size(rows, cols) == block


@pytest.mark.slow
def test_one_degree_splits_5_facts():
    # Source: DeepMind's d39de19 construction at this configuration (docs/design.md §6.4),
    # float32 grid as its denoiser.
    lat, lon = np.linspace(-90, 90, 181, dtype=np.float32), np.arange(360, dtype=np.float32)
    g = graphs.build_graphs(lat, lon, 5, 0.6, 16, cache=False)
    assert len(g["grid2mesh_senders"]) == 101892
    assert np.bincount(g["grid2mesh_receivers"]).max() == 594
    assert len(g["mesh2grid_senders"]) == 195480


@pytest.mark.slow
def test_quarter_degree_facts():
    # Source: DeepMind's d39de19 construction at this configuration (docs/design.md §6.4, §6.9),
    # float32 grid as its denoiser (float64 coordinates give 1,618,824 grid2mesh edges).
    lat = np.linspace(-90, 90, 721, dtype=np.float32)
    lon = np.arange(1440, dtype=np.float32) * np.float32(0.25)
    g = graphs.build_graphs(lat, lon, 6, 0.6, 32, cache=False)
    assert len(g["grid2mesh_senders"]) == 1618818
    in_degree = np.bincount(g["grid2mesh_receivers"], minlength=40962)
    assert in_degree.max() == 3753 and in_degree.min() >= 1
    assert len(np.unique(g["grid2mesh_senders"])) == 1038240
    assert len(g["mesh2grid_senders"]) == 3114720
    assert len(g["attention_mask_rows"]) == 127019682
    per_node = np.bincount(g["attention_mask_rows"])
    assert per_node.mean() == pytest.approx(3100.9, abs=0.05) and per_node.max() == 3169


def test_cache_in_memory_and_on_disk(tmp_path):
    lat, lon = np.linspace(-90, 90, 7), np.arange(12) * 30.0
    first = graphs.build_graphs(lat, lon, 1, 0.6, 2)
    assert graphs.build_graphs(lat, lon, 1, 0.6, 2) is first  # memory
    assert not first["mesh_vertices"].flags.writeable
    folder = graphs.cache_dir() / graphs.cache_key(lat, lon, 1, 0.6, 2)
    assert folder.is_dir() and folder.parent == tmp_path / "cache"
    graphs._MEMORY_CACHE.clear()
    loaded = graphs.build_graphs(lat, lon, 1, 0.6, 2)  # disk
    assert loaded is not first
    for key in graphs.GRAPH_KEYS:
        np.testing.assert_array_equal(loaded[key], first[key])
    # A different k (or grid, or splits) is a different entry.
    other = graphs.build_graphs(lat, lon, 1, 0.6, 3)
    assert len(other["attention_mask_rows"]) > len(first["attention_mask_rows"])
    assert graphs.cache_key(lat, lon, 1, 0.6, 2) != graphs.cache_key(lat[:-1], lon, 1, 0.6, 2)
    # float32 coordinates are built in float32: another entry.
    lat32, lon32 = lat.astype(np.float32), lon.astype(np.float32)
    assert graphs.cache_key(lat32, lon32, 1, 0.6, 2) != graphs.cache_key(lat, lon, 1, 0.6, 2)


def test_graphs_are_built_in_the_coordinates_dtype():
    """float32 stays float32 through the grid checks; float64 and integers give float64."""
    lat, lon = np.linspace(-90, 90, 7), np.arange(12) * 30.0
    for coords, dtype in [
        ((lat.astype(np.float32), lon.astype(np.float32)), np.float32),
        ((lat, lon), np.float64),
        ((lat.astype(int), lon.astype(int)), np.float64),
        ((lat.tolist(), lon.tolist()), np.float64),
    ]:
        g = graphs.build_graphs(*coords, 1, 0.6, 2, cache=False)
        grid = geometry.grid_lat_lon(lat.astype(dtype), lon.astype(dtype))
        expected = geometry.node_structural_features(*grid)
        assert expected.dtype == dtype
        np.testing.assert_array_equal(
            g["grid_node_structural_features"], expected.astype(np.float32)
        )
        assert graphs.coordinate_dtype(*coords) == dtype
    # The two precisions really differ here (else the check above proves nothing).
    lat32, lon32 = lat.astype(np.float32), lon.astype(np.float32)
    f32 = geometry.node_structural_features(*geometry.grid_lat_lon(lat32, lon32))
    f64 = geometry.node_structural_features(*geometry.grid_lat_lon(lat, lon))
    assert np.any(f32 != f64.astype(np.float32))


def test_bad_grid_is_refused():
    with pytest.raises(ValueError, match="sortby"):
        graphs.build_graphs(np.linspace(90, -90, 7), np.arange(12) * 30.0, 1, 0.6, 2)
