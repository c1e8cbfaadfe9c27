"""Grid conventions, unit vectors, receiver frames and edge features."""

import numpy as np
import pytest

from minigencast import geometry

LAT = np.linspace(-90, 90, 13)
LON = np.arange(24) * 15.0


def test_good_grids_pass():
    lat, lon = geometry.check_grid(LAT, LON, require_poles=True)
    assert lat.dtype == np.float64 and lon.shape == (24,)
    geometry.check_grid(-90 + (np.arange(32) + 0.5) * 180 / 32, np.arange(64) * 5.625)  # WB2


@pytest.mark.parametrize(
    "lat, lon, hint",
    [
        (LAT[::-1], LON, 'sortby("lat")'),
        (LAT, LON - 180, "% 360"),
        (LAT, np.append(LON, 360.0), "drop it"),
        (LAT, np.sort(np.append(LON, 7.5)), "i*360/n_lon"),
        (np.append(LAT[:-1], [80.0, 90.0]), LON, "evenly spaced"),
        (np.insert(LAT, 3, LAT[3]), LON, "Duplicate latitudes"),
        (LAT, np.insert(LON, 3, LON[3]), "Duplicate longitudes"),
        (LAT[[0, 2, 1, 3]], LON, "not sorted"),
    ],
)
def test_bad_grids_raise_with_a_fix(lat, lon, hint):
    with pytest.raises(ValueError, match=".*") as error:
        geometry.check_grid(lat, lon)
    assert hint in str(error.value)


def test_missing_poles_when_required():
    with pytest.raises(ValueError, match="poles"):
        geometry.check_grid(LAT[1:-1], LON, require_poles=True)


def test_unit_vectors_round_trip():
    lat, lon = geometry.grid_lat_lon(LAT[1:-1], LON)
    xyz = geometry.lat_lon_to_xyz(lat, lon)
    np.testing.assert_allclose(np.linalg.norm(xyz, axis=-1), 1, atol=1e-12)
    lat2, lon2 = geometry.xyz_to_lat_lon(xyz)
    np.testing.assert_allclose(lat2, lat, atol=1e-9)
    np.testing.assert_allclose(lon2, lon, atol=1e-9)
    # Grid node index = lat_index * n_lon + lon_index.
    assert lat[24] == LAT[2] and lon[25] == LON[1]


def test_local_frames_map_each_node_to_x_axis():
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-90, 90, 50), rng.uniform(0, 360, 50)
    rot = geometry.local_frame_rotations(lat, lon)
    np.testing.assert_allclose(
        rot @ np.swapaxes(rot, 1, 2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(rot), 1, atol=1e-12)
    own = np.einsum("nij,nj->ni", rot, geometry.lat_lon_to_xyz(lat, lon))
    np.testing.assert_allclose(own, np.tile([1.0, 0, 0], (50, 1)), atol=1e-12)
    # A point slightly north of the receiver has +z, slightly east has +y.
    north = np.einsum("nij,nj->ni", rot, geometry.lat_lon_to_xyz(np.minimum(lat + 0.1, 90), lon))
    east = np.einsum("nij,nj->ni", rot, geometry.lat_lon_to_xyz(lat, lon + 0.1))
    assert np.all(north[lat < 89.9, 2] > 0) and np.all(east[:, 1] > 0)


def test_edge_features_match_the_matrix_form():
    rng = np.random.default_rng(1)
    s_lat, s_lon = rng.uniform(-90, 90, 30), rng.uniform(0, 360, 30)
    r_lat, r_lon = rng.uniform(-90, 90, 20), rng.uniform(0, 360, 20)
    senders, receivers = rng.integers(0, 30, 100), rng.integers(0, 20, 100)
    features = geometry.relative_edge_features(s_lat, s_lon, r_lat, r_lon, senders, receivers)
    rot = geometry.local_frame_rotations(r_lat, r_lon)[receivers]
    d = np.einsum("eij,ej->ei", rot, geometry.lat_lon_to_xyz(s_lat, s_lon)[senders]) - np.einsum(
        "eij,ej->ei", rot, geometry.lat_lon_to_xyz(r_lat, r_lon)[receivers]
    )
    length = np.linalg.norm(d, axis=-1, keepdims=True)
    expected = np.concatenate([length, d], -1) / length.max()
    np.testing.assert_allclose(features, expected, atol=1e-12)
    assert features[:, 0].max() == pytest.approx(1.0)


def test_node_features():
    f = geometry.node_structural_features(
        np.array([-90.0, 0.0, 30.0]), np.array([0.0, 90.0, 180.0])
    )
    np.testing.assert_allclose(f, [[-1, 1, 0], [0, 0, 1], [0.5, -1, 0]], atol=1e-12)


def test_edge_features_accurate_for_short_float32_edges():
    # DeepMind: float32 positions, rotated and subtracted in float64. Short edges (0.25 deg
    # grids) must not lose accuracy to a float32 subtraction.
    rng = np.random.default_rng(2)
    r_lat = rng.uniform(-80, 80, 200).astype(np.float32)
    r_lon = rng.uniform(0, 360, 200).astype(np.float32)
    s_lat = (r_lat + rng.uniform(-0.5, 0.5, 200)).astype(np.float32)
    s_lon = (r_lon + rng.uniform(-0.5, 0.5, 200)).astype(np.float32)
    idx = np.arange(200)
    features = geometry.relative_edge_features(s_lat, s_lon, r_lat, r_lon, idx, idx)
    rot = geometry.local_frame_rotations(r_lat, r_lon)
    p_s = geometry.lat_lon_to_xyz(s_lat, s_lon).astype(np.float64)
    p_r = geometry.lat_lon_to_xyz(r_lat, r_lon).astype(np.float64)
    d = np.einsum("eij,ej->ei", rot, p_s) - np.einsum("eij,ej->ei", rot, p_r)
    length = np.linalg.norm(d, axis=-1, keepdims=True)
    expected = np.concatenate([length, d], -1) / length.max()
    np.testing.assert_allclose(features, expected, atol=1e-9)


# --------------------------------------------------------------------------
# Latitude weights.


def test_latitude_weights_at_one_degree_match_deepmind():
    lat = np.linspace(-90, 90, 181)
    w = geometry.latitude_weights(lat)
    # Source: graphcast/losses.py:normalized_latitude_weights at 1 deg (docs/design.md §3.4).
    np.testing.assert_allclose(w[[0, -1]], 0.00345, atol=5e-6)
    np.testing.assert_allclose(w[[1, -2]], 0.0276, atol=5e-5)
    np.testing.assert_allclose(w[90], 1.5795, atol=5e-5)
    np.testing.assert_allclose(w.mean(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(w, w[::-1], rtol=1e-12)
    # Descending latitudes give the same weights, reversed.
    np.testing.assert_allclose(geometry.latitude_weights(lat[::-1]), w[::-1], rtol=1e-12)


@pytest.mark.parametrize("n_lat", [13, 33, 181, 721])
def test_latitude_weights_with_poles_are_exact_cell_areas(n_lat):
    """Area of the band between latitudes a < b is 2 pi (sin b - sin a); rows are
    bounded half-way between grid latitudes, the pole rows are caps."""
    lat = np.linspace(-90, 90, n_lat)
    edges = np.deg2rad(np.clip(np.r_[lat[0], (lat[:-1] + lat[1:]) / 2, lat[-1]], -90, 90))
    area = np.diff(np.sin(edges))
    np.testing.assert_allclose(geometry.latitude_weights(lat), area / area.mean(), rtol=1e-9)


def test_latitude_weights_without_poles_are_cosine():
    lat = np.arange(-89.5, 90, 1.0)
    w = geometry.latitude_weights(lat)
    np.testing.assert_allclose(w, np.cos(np.deg2rad(lat)) / np.cos(np.deg2rad(lat)).mean())
    # These are exact cell areas too: sin(lat + d/2) - sin(lat - d/2) = 2 cos(lat) sin(d/2).
    edges = np.deg2rad(np.arange(-90, 90.5, 1.0))
    area = np.diff(np.sin(edges))
    np.testing.assert_allclose(w, area / area.mean(), rtol=1e-9)


@pytest.mark.parametrize(
    "lat",
    [np.array([-90, -45, 0, 30, 90.0]), np.arange(-80.0, 81, 10), np.array([0.0, 90.0, 45.0])],
)
def test_latitude_weights_reject_bad_grids(lat):
    with pytest.raises(ValueError):
        geometry.latitude_weights(lat)
