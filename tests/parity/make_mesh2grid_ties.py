"""Builds minigencast/mesh2grid_ties.json: DeepMind's face at the tie nodes of the official grids.

    python tests/parity/make_mesh2grid_ties.py [DEEPMIND_MESH2GRID_DIR]

DEEPMIND_MESH2GRID_DIR (default tests/parity/deepmind-mesh2grid) holds DeepMind's
recorded mesh2grid choice for every node of the 1 deg (splits 4, 5) and 0.25 deg
(splits 6) grids, for float64 grid coordinates (README.md there). For each grid:

* float64: the tie nodes that `graphs.closest_faces` flags get DeepMind's recorded mesh
  nodes; everywhere else our choice must already equal DeepMind's (checked here);
* float32 (the coordinates DeepMind's denoiser uses): the tie nodes get trimesh's answer
  (`mesh2grid_ties.trimesh_faces`, trimesh and rtree required, the versions of DeepMind's
  reference install); checked first to give DeepMind's recorded faces at the float64 ties.

Mesh nodes are stored in DeepMind's (unbanded) numbering, grid index = lat * n_lon + lon.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

from minigencast import geometry, graphs, mesh2grid_ties

HERE = pathlib.Path(__file__).parent
GRIDS = {"1p0deg_splits4": (181, 360, 4), "1p0deg_splits5": (181, 360, 5)}
GRIDS["0p25deg_splits6"] = (721, 1440, 6)


def ties(n_lat, n_lon, splits, dtype):
    lat = np.linspace(-90, 90, n_lat).astype(dtype)
    lon = (np.arange(n_lon) * 360 / n_lon).astype(dtype)
    points = geometry.lat_lon_to_xyz(*geometry.grid_lat_lon(lat, lon)).astype(np.float64)
    mesh = mesh2grid_ties.unbanded_mesh(splits)  # DeepMind's numbering, same faces
    faces, tied = graphs.closest_faces(points, mesh, return_ties=True)
    return lat, lon, points, mesh, faces, np.flatnonzero(tied)


def main(folder: pathlib.Path) -> None:
    table = {}
    for name, (n_lat, n_lon, splits) in GRIDS.items():
        recorded = np.load(folder / f"{name}.npz")["mesh2grid_mesh_nodes"]
        lat, lon, points, mesh, faces, nodes = ties(n_lat, n_lon, splits, np.float64)
        differ = np.flatnonzero(np.any(mesh.faces[faces] != recorded, axis=1))
        assert np.isin(differ, nodes).all(), f"{name}: non-tie nodes differ"
        by_trimesh = mesh.faces[mesh2grid_ties.trimesh_faces(points[nodes], splits)]
        assert np.array_equal(by_trimesh, recorded[nodes]), f"{name}: trimesh != DeepMind"
        key = mesh2grid_ties.table_key(lat, lon, splits, np.float64)
        table[key] = {"grid_index": nodes.tolist(), "mesh_nodes": recorded[nodes].tolist()}
        print(f"{key}: {len(nodes)} ties, {len(differ)} differ from the rule")
        lat, lon, points, mesh, faces, nodes = ties(n_lat, n_lon, splits, np.float32)
        chosen = mesh.faces[mesh2grid_ties.trimesh_faces(points[nodes], splits)]
        key = mesh2grid_ties.table_key(lat, lon, splits, np.float32)
        table[key] = {"grid_index": nodes.tolist(), "mesh_nodes": chosen.tolist()}
        print(f"{key}: {len(nodes)} ties (trimesh)")
    text = json.dumps(table, separators=(",", ":"), sort_keys=True)
    mesh2grid_ties.TABLE_FILE.write_text(text + "\n")
    print(f"wrote {mesh2grid_ties.TABLE_FILE} ({len(text)} bytes)")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "deepmind-mesh2grid")
