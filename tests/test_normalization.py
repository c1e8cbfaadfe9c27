"""Normalisation: DeepMind parity, exact inverses, statistics vs NumPy."""

import numpy as np
import pytest
import xarray
from test_data_windows import parity_file

from minigencast import config, normalization
from minigencast.data import layouts, synthetic, windows


@pytest.fixture(scope="module")
def parity():
    stats = {
        n: xarray.load_dataset(parity_file(f"{n}_by_level.nc")) for n in normalization.STATS_NAMES
    }
    load = lambda n: xarray.load_dataset(parity_file(n))
    return stats, load


def _max_rel(a, b):
    a = a.transpose(*b.dims)
    return float(np.nanmax(np.abs(a - b)) / np.nanmax(np.abs(b)))


def test_normalised_inputs_match_reference(parity):
    stats, load = parity
    got = normalization.normalize_inputs(load("inputs.nc"), stats)
    ref = load("normalised_inputs.nc")
    for name in ref.data_vars:
        np.testing.assert_allclose(got[name].values, ref[name].values, atol=2e-6, err_msg=name)
    got_f = normalization.normalize_inputs(load("forcings.nc"), stats)
    ref_f = load("normalised_forcings.nc")
    for name in ref_f.data_vars:
        np.testing.assert_allclose(got_f[name].values, ref_f[name].values, atol=2e-6)


def test_normalised_targets_match_reference(parity):
    stats, load = parity
    got = normalization.normalize_targets(load("targets.nc"), load("inputs.nc"), stats)
    ref = load("targets_normalised.nc")
    for name in ref.data_vars:
        np.testing.assert_allclose(got[name].values, ref[name].values, atol=1e-6, err_msg=name)


def test_physical_output_matches_reference(parity):
    stats, load = parity
    inputs = load("inputs.nc")
    ref = load("expected_output_physical.nc")
    got = normalization.unnormalize_targets(load("expected_output.nc"), inputs, stats)
    for name in ref.data_vars:
        a = got[name].transpose(*ref[name].dims)
        assert _max_rel(a, ref[name]) < 1e-6, name
        np.testing.assert_array_equal(a.isnull().values, ref[name].isnull().values)


def test_target_round_trip_is_exact_up_to_rounding():
    ds = synthetic.sample(num_times=3, levels=(500, 850, 1000))
    task = config.gencast_task(levels=(500, 850, 1000))
    stats = normalization.compute_stats(ds)
    inputs, targets, _ = windows.window(ds, task, 1)
    norm = normalization.normalize_targets(targets, inputs, stats)
    back = normalization.unnormalize_targets(norm, inputs, stats)
    for name in targets.data_vars:
        scale = float(np.nanmax(np.abs(targets[name].values)))
        np.testing.assert_allclose(back[name].values, targets[name].values, atol=1e-6 * scale)
    np.testing.assert_array_equal(
        back["sea_surface_temperature"].isnull().values,
        targets["sea_surface_temperature"].isnull().values,
    )
    # normalise <-> unnormalise
    x = normalization.normalize(inputs, stats)
    y = normalization.unnormalize(x, stats)
    for name in ("temperature", "2m_temperature", "day_progress_sin"):
        scale = float(np.abs(inputs[name].values).max())
        np.testing.assert_allclose(y[name].values, inputs[name].values, atol=1e-6 * scale)


def test_compute_stats_matches_numpy():
    ds = synthetic.sample(num_times=5, levels=(500, 850, 1000), seed=3)
    stats = normalization.compute_stats(ds, chunks=2)  # several dask chunks
    t = ds["temperature"].values.astype(np.float64)  # (time, level, lat, lon)
    np.testing.assert_allclose(stats["mean"]["temperature"].values, t.mean((0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(stats["stddev"]["temperature"].values, t.std((0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(
        stats["diffs_stddev"]["temperature"].values, np.diff(t, axis=0).std((0, 2, 3)), rtol=1e-5
    )
    np.testing.assert_allclose(stats["min"]["temperature"].values, t.min((0, 2, 3)), rtol=1e-6)
    sst = ds["sea_surface_temperature"].values.astype(np.float64)
    np.testing.assert_allclose(stats["mean"]["sea_surface_temperature"], np.nanmean(sst), rtol=1e-6)
    np.testing.assert_allclose(stats["min"]["sea_surface_temperature"], np.nanmin(sst), rtol=1e-6)
    assert stats["mean"]["temperature"].dims == ("level",)
    assert stats["mean"]["2m_temperature"].dims == ()
    assert "year_progress_sin" in stats["stddev"]
    assert "land_sea_mask" not in stats["diffs_stddev"]  # static: never a target


def test_constant_field_gets_unit_stddev():
    ds = synthetic.sample(num_times=3, levels=(500,))
    ds["geopotential_at_surface"] = ds["geopotential_at_surface"] * 0
    stats = normalization.compute_stats(ds)
    assert float(stats["stddev"]["geopotential_at_surface"]) == 1.0
    out = normalization.normalize(ds[["geopotential_at_surface"]], stats)
    assert np.all(np.isfinite(out["geopotential_at_surface"].values))


def test_written_stats_load_through_deepmind_reader(tmp_path, parity):
    ds = synthetic.sample(num_times=4, levels=(500, 850, 1000))
    stats = normalization.compute_stats(ds)
    normalization.write_stats(stats, tmp_path)
    again = normalization.load_stats(tmp_path)
    theirs, _ = parity
    for name in normalization.STATS_NAMES:
        xarray.testing.assert_identical(again[name], stats[name])
        # Same layout as DeepMind's files: per-level float32 vectors and scalars.
        for var in ("temperature", "2m_temperature"):
            assert again[name][var].dims == theirs[name][var].dims[: again[name][var].ndim]
            assert again[name][var].dtype == theirs[name][var].dtype
    with pytest.raises(FileNotFoundError, match="minigencast download stats"):
        normalization.load_stats(tmp_path / "nowhere")


def test_channel_vectors(parity):
    stats, _ = parity
    channels = [("temperature", 500), ("2m_temperature", None), ("land_sea_mask", None)]
    vec = normalization.channel_vectors(stats, channels)
    assert vec["mean"].shape == (3,) and vec["mean"].dtype == np.float32
    assert vec["mean"][0] == stats["mean"]["temperature"].sel(level=500).values
    assert vec["stddev"][1] == stats["stddev"]["2m_temperature"].values
    with pytest.raises(ValueError, match="give a level"):
        normalization.channel_vectors(stats, [("temperature", None)])


def test_deepmind_layout_input_to_stats_matches_canonical():
    ds = synthetic.sample(num_times=3, levels=(500,))
    a = normalization.compute_stats(ds)
    b = normalization.compute_stats(layouts.to_canonical(layouts.to_deepmind(ds)))
    xarray.testing.assert_allclose(a["mean"], b["mean"])


def test_stats_of_deepmind_layout_reduce_batch_too():
    ds = synthetic.sample(num_times=4, levels=(500,))
    a = normalization.compute_stats(ds)
    b = normalization.compute_stats(layouts.to_deepmind(ds))
    for name in normalization.STATS_NAMES:
        xarray.testing.assert_allclose(a[name], b[name], rtol=1e-6)


def test_stats_missing_a_level_give_a_clear_error():
    ds = synthetic.sample(num_times=2, levels=(500, 850))
    stats = normalization.compute_stats(ds.sel(level=[500]))
    with pytest.raises(ValueError, match=r"lack level\(s\) \[850\]"):
        normalization.normalize(ds[["temperature"]], stats)


def test_stats_refuse_steps_other_than_12_hours():
    ds = synthetic.sample(num_times=4, levels=(500,))
    six_hourly = ds.assign_coords(time=ds["time"].values[0] + np.arange(4) * np.timedelta64(6, "h"))
    with pytest.raises(ValueError, match="12 h steps.*to_canonical"):
        normalization.compute_stats(six_hourly)
    with pytest.raises(ValueError, match="12 h steps"):  # a gap
        normalization.compute_stats(ds.isel(time=[0, 1, 3]))
