"""Whole-forecast parity with DeepMind's code (tests/parity/rollout-open/README.md).

The case folder is $MINIGENCAST_ROLLOUT_PARITY_DIR (default: tests/parity/rollout-open):
a forecast DeepMind's code made, with every noise field its sampler drew. We run our
data path and `forecast.run` with that noise replayed and compare every variable,
member and lead: max|ours - reference| <= 1e-5 max|reference| per variable, identical
NaN masks. Every size comes from the case's files.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
import xarray

from minigencast import checkpoint, parity

pytestmark = pytest.mark.parity

CASE = pathlib.Path(
    os.environ.get(
        "MINIGENCAST_ROLLOUT_PARITY_DIR", pathlib.Path(__file__).parent / "parity" / "rollout-open"
    )
)
RTOL = 1e-5


def assert_parity(ours: xarray.Dataset, reference: xarray.Dataset) -> None:
    """Every variable within RTOL of its max |reference| at every lead; NaN masks equal."""
    try:
        errors = parity.relative_errors(ours, reference)
    except ValueError as e:  # different variables or NaN masks
        raise AssertionError(str(e)) from e
    worst = {name: float(e.max()) for name, e in errors.items()}
    bad = {name: e for name, e in worst.items() if not e <= RTOL}
    assert not bad, f"relative error above {RTOL}: {bad}"


@pytest.fixture(scope="module")
def on_case_graphs():
    return parity.rollout_case(CASE, graphs="case")


def test_recorded_noise_is_what_the_case_says(on_case_graphs):
    """Shapes of the replayed noise follow the files: members, steps, iterations."""
    _, reference = on_case_graphs
    cfg = checkpoint.load(CASE / "params.npz").config
    n_iter = cfg.sampler_config.num_noise_levels
    replay = parity.recorded_noise(CASE, cfg.task_config, n_iter)
    s, b, k = (reference.sizes[d] for d in ("sample", "batch", "time"))
    assert replay.initial.shape[:3] == (s, b, k)
    assert replay.churn.shape[:4] == (s, b, k, n_iter)
    # Unit-variance spherical white noise (loose: a few thousand values). Without churn
    # DeepMind's sampler draws none, so a case may store zeros or no file.
    assert abs(float(replay.initial.std()) - 1.0) < 0.05
    if cfg.sampler_config.stochastic_churn_rate > 0:
        assert abs(float(replay.churn.std()) - 1.0) < 0.05


def test_whole_forecast_on_deepmind_graphs(on_case_graphs):
    assert_parity(*on_case_graphs)


def test_check_fails_on_a_reference_off_by_2e_4(on_case_graphs, tmp_path):
    """The same check rejects a copy of the expected forecast scaled by 1 + 2e-4."""
    ours, reference = on_case_graphs
    path = tmp_path / "expected_forecast.nc"
    (reference * np.float32(1 + 2e-4)).to_netcdf(path)
    with pytest.raises(AssertionError, match="relative error above"):
        assert_parity(ours, xarray.load_dataset(path))
    # And one with a NaN mask moved by one point.
    shifted = reference.copy(deep=True)
    sst = shifted["sea_surface_temperature"]
    sst.values[..., 0, 0] = np.where(np.isnan(sst.values[..., 0, 0]), 290.0, np.nan)
    with pytest.raises(AssertionError, match="NaN masks differ"):
        assert_parity(ours, shifted)


def test_whole_forecast_on_our_graphs():
    """With the graphs-exact extra, our own graphs give DeepMind's forecast too.

    (Without it, a tie node may get the other face, and the forecast there is off by
    about 1e-2 after one step: `graphs.closest_faces`, docs/parity.md.)
    """
    pytest.importorskip("rtree", reason="needs the graphs-exact extra (trimesh, rtree)")
    pytest.importorskip("trimesh", reason="needs the graphs-exact extra (trimesh, rtree)")
    assert_parity(*parity.rollout_case(CASE, graphs="ours"))
