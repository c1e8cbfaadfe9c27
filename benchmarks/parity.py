"""Prints the parity table: our numbers against DeepMind's reference outputs.

    python benchmarks/parity.py [--skip-slow]

Rows (docs/parity.md): one denoiser call on the case `tests/parity/open` (raw network
output F, preconditioned D, physical output; every attention layout), the whole
forecast of `tests/parity/rollout-open` with DeepMind's recorded noise replayed (on
DeepMind's graphs and on ours), and the mesh2grid graph of the official grids against
DeepMind's recorded choice (`tests/parity/deepmind-mesh2grid`). Error = worst over
variables (and noise levels / leads) of max|ours - reference| / max|reference|; the
bound is the tests' (1e-5). --skip-slow leaves out the 0.25 deg grid (~30 s).
The case folders are $MINIGENCAST_PARITY_DIR and $MINIGENCAST_ROLLOUT_PARITY_DIR.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
import test_parity  # noqa: E402  (the denoiser parity test's helpers)
import test_parity_rollout  # noqa: E402

from minigencast import graphs, icosahedral_mesh, mesh2grid_ties, parity, transformer  # noqa: E402

OFFICIAL = {"1p0deg_splits4": (181, 360, 4), "1p0deg_splits5": (181, 360, 5)}
SLOW = {"0p25deg_splits6": (721, 1440, 6)}


def denoiser_rows():
    case = test_parity.load_case()
    ref_graphs = dict(np.load(test_parity.CASE / "graphs.npz"))
    refs = {
        name: test_parity._load(f"{name}.nc")
        for name in ("expected_raw_output", "expected_output", "expected_output_physical")
    }
    for attention_type in transformer.ATTENTION_TYPES:
        raw, denoised, _ = test_parity._compute(case, ref_graphs, attention_type)
        ours = {
            "expected_raw_output": test_parity._as_dataset(raw, refs["expected_raw_output"]),
            "expected_output": test_parity._as_dataset(denoised, refs["expected_output"]),
        }
        ours["expected_output_physical"] = test_parity._physical(ours["expected_output"], case)
        for name, label in [
            ("expected_raw_output", "raw network output F"),
            ("expected_output", "denoised D"),
            ("expected_output_physical", "physical output"),
        ]:
            errors = test_parity._per_variable_errors(ours[name], refs[name])
            yield (
                f"denoiser, {label} ({attention_type})",
                test_parity.CASE.name,
                max(errors.values()),
            )


def rollout_rows():
    case = test_parity_rollout.CASE
    for which in ("case", "ours"):
        if which == "ours" and not mesh2grid_ties.have_trimesh():
            label = "whole forecast, our graphs (rule at ties, no graphs-exact extra)"
        else:
            label = f"whole forecast, {'DeepMind' if which == 'case' else 'our'} graphs"
        errors = parity.relative_errors(*parity.rollout_case(case, graphs=which))
        yield label, case.name, max(float(e.max()) for e in errors.values())


def graph_rows(grids):
    folder = ROOT / "tests" / "parity" / "deepmind-mesh2grid"
    for name, (n_lat, n_lon, splits) in grids.items():
        recorded = np.load(folder / f"{name}.npz")["mesh2grid_mesh_nodes"]
        lat, lon = np.linspace(-90, 90, n_lat), np.arange(n_lon) * 360 / n_lon
        faces = graphs.mesh2grid_faces(lat, lon, splits, dtype=np.float64)
        mesh = icosahedral_mesh.build_mesh(splits)
        unbanded = np.argsort(mesh2grid_ties.banding_index(splits))
        differ = int(np.any(unbanded[mesh.faces[faces]] != recorded, axis=1).sum())
        yield f"mesh2grid, {n_lat}x{n_lon} splits {splits}: nodes != DeepMind", name, differ


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-slow", action="store_true", help="Leave out the 0.25 deg grid.")
    args = p.parse_args()
    print("| check | case | worst relative error (graphs: differing nodes) | bound |")
    print("|---|---|---|---|")
    rows = [denoiser_rows(), rollout_rows(), graph_rows(OFFICIAL)]
    if not args.skip_slow:
        rows.append(graph_rows(SLOW))
    for group in rows:
        for label, case, value in group:
            bound = "0" if label.startswith("mesh2grid") else "1e-5"
            shown = f"{value}" if label.startswith("mesh2grid") else f"{value:.1e}"
            print(f"| {label} | `{case}` | {shown} | {bound} |", flush=True)


if __name__ == "__main__":
    main()
