"""Points on the unit sphere: lat/lon <-> unit vectors, local frames, grid checks.

GenCast works on two sets of points on the sphere: the regular lat/lon grid of the
data and the vertices of an icosahedral mesh (`icosahedral_mesh.py`). Everything
geometric (which grid point talks to which mesh node, the edge features) is computed
from unit vectors in 3-D, the same way DeepMind's `model_utils.py` does it:

    theta = colatitude = 90 deg - lat,   phi = longitude
    p = (cos phi sin theta, sin phi sin theta, cos theta)          (1)

Edge features are expressed in the *receiver's local frame*: the rotation

    R = R_y(pi/2 - theta_r) R_z(-phi_r)                              (2)

first turns the receiver to longitude 0 and then tilts it to the equator, so the
receiver lands on (1, 0, 0); the relative position R p_s - R p_r then reads
"how far north / east of the receiver is the sender" in its y/z components.

Grid convention of the whole package: latitudes ascending (south to north), longitudes
`i * 360 / n_lon` starting at 0. `check_grid` enforces it with errors that say how to
fix the data, because a flipped axis would otherwise give a silently wrong graph.

See docs/design.md §6.3-6.4 and the tutorial on the mesh and graphs.
"""

from __future__ import annotations

import numpy as np


def check_grid(lat, lon, *, require_poles: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Checks and returns a regular lat/lon grid in the package convention.

    Args:
      lat: [n_lat] latitudes in degrees, strictly ascending, within [-90, 90].
      lon: [n_lon] longitudes in degrees, `i * 360 / n_lon`, i = 0..n_lon-1.
      require_poles: also require lat[0] = -90 and lat[-1] = 90.

    Returns:
      (lat, lon) as float64 NumPy arrays.

    Raises:
      ValueError: with a hint on how to fix the dataset.
    """
    lat = np.asarray(lat, dtype=np.float64).reshape(-1)
    lon = np.asarray(lon, dtype=np.float64).reshape(-1)
    if lat.size < 2 or lon.size < 2:
        raise ValueError(
            f"A grid needs at least 2 latitudes and 2 longitudes, got {lat.size}x{lon.size}."
        )
    if not np.all(np.isfinite(lat)) or not np.all(np.isfinite(lon)):
        raise ValueError("Grid coordinates contain NaN or inf.")
    if np.any(np.abs(lat) > 90 + 1e-9):
        raise ValueError(f"Latitudes must lie in [-90, 90]; got range [{lat.min()}, {lat.max()}].")
    dlat = np.diff(lat)
    if np.any(dlat == 0):
        raise ValueError("Duplicate latitudes; drop them, e.g. `ds.drop_duplicates('lat')`.")
    if np.all(dlat < 0):
        raise ValueError(
            "Latitudes are descending (north to south); minigencast expects them ascending. "
            'Fix with `ds = ds.sortby("lat")` (or `ds.isel(lat=slice(None, None, -1))`).'
        )
    if np.any(dlat < 0):
        raise ValueError('Latitudes are not sorted; fix with `ds = ds.sortby("lat")`.')
    if not np.allclose(dlat, dlat[0], rtol=0, atol=1e-4 * abs(dlat[0])):
        raise ValueError(
            "Latitudes are not evenly spaced (Gaussian or irregular grid); regrid to an "
            "equiangular grid first, e.g. `ds.interp(lat=np.linspace(-90, 90, n_lat))`."
        )
    if require_poles and (abs(lat[0] + 90) > 1e-6 or abs(lat[-1] - 90) > 1e-6):
        raise ValueError(f"This grid must include both poles; got lat from {lat[0]} to {lat[-1]}.")
    dlon = np.diff(lon)
    if np.any(dlon == 0):
        raise ValueError("Duplicate longitudes; drop them, e.g. `ds.drop_duplicates('lon')`.")
    if lon[0] < 0:
        raise ValueError(
            f"Longitudes start at {lon[0]}; minigencast expects 0..360 starting at 0. Fix with "
            '`ds = ds.assign_coords(lon=ds.lon % 360).sortby("lon")`.'
        )
    if np.any(dlon < 0):
        raise ValueError('Longitudes are not ascending; fix with `ds = ds.sortby("lon")`.')
    expected = np.arange(lon.size) * (360.0 / lon.size)
    if not np.allclose(lon, expected, rtol=0, atol=1e-4 * 360.0 / lon.size):
        if abs(lon[-1] - lon[0] - 360) < 1e-6:
            hint = (
                "the last longitude repeats the first (360 = 0); "
                "drop it with `ds.isel(lon=slice(0, -1))`."
            )
        else:
            hint = "they must be exactly i*360/n_lon, starting at 0, covering the whole circle."
        raise ValueError(f"Longitudes are not a regular global grid from 0: {hint}")
    return lat, lon


def lat_lon_to_xyz(lat_deg, lon_deg) -> np.ndarray:
    """Unit vectors of points given in degrees, eq. (1).

    Args:
      lat_deg, lon_deg: broadcastable arrays of latitude and longitude in degrees.

    Returns:
      [..., 3] unit vectors in the dtype of the inputs (float32 stays float32, as in
      DeepMind's code, which matters for bit-exact neighbourhoods).
    """
    lat_deg = np.asarray(lat_deg)
    lon_deg = np.asarray(lon_deg)
    phi = np.deg2rad(lon_deg)
    theta = np.deg2rad(90 - lat_deg)
    return np.stack(
        np.broadcast_arrays(
            np.cos(phi) * np.sin(theta), np.sin(phi) * np.sin(theta), np.cos(theta)
        ),
        axis=-1,
    )


def xyz_to_lat_lon(xyz) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `lat_lon_to_xyz` for unit vectors: lat in [-90, 90], lon in [0, 360)."""
    xyz = np.asarray(xyz)
    phi = np.arctan2(xyz[..., 1], xyz[..., 0])
    theta = np.arccos(np.clip(xyz[..., 2], -1, 1))
    return 90 - np.rad2deg(theta), np.mod(np.rad2deg(phi), 360)


def grid_lat_lon(lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude of every grid node, [n_lat * n_lon] each, lat-major.

    Grid node index = lat_index * n_lon + lon_index (DeepMind's `np.meshgrid` order).
    """
    lon_2d, lat_2d = np.meshgrid(np.asarray(lon), np.asarray(lat))
    return lat_2d.reshape(-1), lon_2d.reshape(-1)


def node_structural_features(lat_deg, lon_deg) -> np.ndarray:
    """GenCast's 3 structural node features [sin lat, cos lon, sin lon] (docs/design.md §6.4).

    Computed in the input dtype (DeepMind casts node lat/lon to float32 first).

    Returns:
      [num_nodes, 3].
    """
    phi = np.deg2rad(np.asarray(lon_deg))
    theta = np.deg2rad(90 - np.asarray(lat_deg))
    return np.stack([np.cos(theta), np.cos(phi), np.sin(phi)], axis=-1)


def local_frame_rotations(lat_deg, lon_deg) -> np.ndarray:
    """Rotation matrices R = R_y(pi/2 - theta) R_z(-phi) of eq. (2), in float64.

    R maps the node's own unit vector to (1, 0, 0): longitude to 0 first, then the
    latitude to 0. (DeepMind builds the same matrix with
    `scipy.spatial.transform.Rotation.from_euler("zy", [-phi, pi/2 - theta])`.)

    Returns:
      [num_nodes, 3, 3] float64.
    """
    phi = np.deg2rad(np.asarray(lon_deg)).astype(np.float64)
    theta = np.deg2rad(90 - np.asarray(lat_deg)).astype(np.float64)
    a, b = -phi, np.pi / 2 - theta
    ca, sa, cb, sb = np.cos(a), np.sin(a), np.cos(b), np.sin(b)
    zero, one = np.zeros_like(a), np.ones_like(a)
    r_z = np.stack([ca, -sa, zero, sa, ca, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    r_y = np.stack([cb, zero, sb, zero, one, zero, -sb, zero, cb], -1).reshape(-1, 3, 3)
    return r_y @ r_z


def relative_edge_features(
    sender_lat, sender_lon, receiver_lat, receiver_lon, senders, receivers
) -> np.ndarray:
    """The 4 structural edge features of GenCast (docs/design.md §6.4), in float64.

        d = R_r p_s - R_r p_r        (receiver frame, eq. 2; 3-D, not projected)
        features = [|d|, d_x, d_y, d_z] / Z,   Z = max over this graph's edges of |d|

    Args:
      sender_lat, sender_lon: [num_sender_nodes] degrees (float32 for DeepMind parity).
      receiver_lat, receiver_lon: [num_receiver_nodes] degrees.
      senders, receivers: [num_edges] node indices.

    Returns:
      [num_edges, 4] float64.
    """
    # R (p_s - p_r) = R p_s - R p_r: rotate the difference with the two elementary
    # rotations of eq. (2), applied per edge from the receiver's angles (cheaper than
    # gathering a 3x3 matrix per edge; `local_frame_rotations` is the matrix form).
    # Positions are rounded like DeepMind's (float32 in, float32 out) and then, as in
    # DeepMind's code, combined in float64 (a float32 difference is off by ~1e-8).
    p_s = lat_lon_to_xyz(sender_lat, sender_lon).astype(np.float64)
    p_r = lat_lon_to_xyz(receiver_lat, receiver_lon).astype(np.float64)
    diff = p_s[senders] - p_r[receivers]
    phi = np.deg2rad(np.asarray(receiver_lon)).astype(np.float64)[receivers]
    theta = np.deg2rad(90 - np.asarray(receiver_lat)).astype(np.float64)[receivers]
    cos_p, sin_p = np.cos(phi), np.sin(phi)
    cos_b, sin_b = np.sin(theta), np.cos(theta)  # b = pi/2 - theta
    x = cos_p * diff[:, 0] + sin_p * diff[:, 1]  # R_z(-phi)
    y = -sin_p * diff[:, 0] + cos_p * diff[:, 1]
    z = diff[:, 2]
    d = np.stack([cos_b * x + sin_b * z, y, -sin_b * x + cos_b * z], axis=-1)  # R_y(b)
    length = np.sqrt((d * d).sum(-1, keepdims=True))
    z_max = length.max() if length.size else 1.0
    return np.concatenate([length, d], axis=-1) / z_max


# --------------------------------------------------------------------------- latitude weights
def latitude_weights(lat) -> np.ndarray:
    """Cell-area weights of equiangular latitude rows, mean 1: [lat] float64.

    Args:
      lat: [lat] degrees, equally spaced (either order). Either including both
        poles (-90 and 90) or offset by half a row from them.
    Raises:
      ValueError for unequal spacing or a grid that is neither of the two kinds.
    """
    lat = np.asarray(lat, np.float64)
    if lat.ndim != 1 or lat.size < 2:
        raise ValueError(f"lat must be a 1-D array of at least 2 rows, got shape {lat.shape}.")
    steps = np.diff(lat)
    delta = abs(steps[0])
    if not np.allclose(np.abs(steps), delta, rtol=1e-5):
        raise ValueError(
            "Latitudes must be equally spaced for the loss weights; regrid to an equiangular "
            "grid first, e.g. `ds.interp(lat=np.linspace(-90, 90, n_lat))`."
        )
    has_poles = np.isclose(np.abs(lat).max(), 90.0)
    if has_poles:
        if not (np.isclose(lat.max(), 90.0) and np.isclose(lat.min(), -90.0)):
            raise ValueError(
                f"A grid with one pole must include both poles (got {lat.min()}..{lat.max()}); "
                "use a global grid from -90 to 90."
            )
        # Row i covers [lat - d/2, lat + d/2]; its area ~ cos(lat) sin(d/2). A pole
        # row only covers the cap of angular radius d/2: area ~ 1 - cos(d/2) = 2 sin^2(d/4).
        # (Both are half the true areas; only ratios matter.)
        weights = np.cos(np.deg2rad(lat)) * np.sin(np.deg2rad(delta / 2))
        pole = np.isclose(np.abs(lat), 90.0)
        weights[pole] = np.sin(np.deg2rad(delta / 4)) ** 2
    else:
        if not (np.isclose(lat.max(), 90 - delta / 2) and np.isclose(lat.min(), -90 + delta / 2)):
            raise ValueError(
                "Latitudes without poles must run from -90 + d/2 to 90 - d/2 "
                f"(d = {delta}); got {lat.min()}..{lat.max()}."
            )
        weights = np.cos(np.deg2rad(lat))
    return weights / weights.mean()
