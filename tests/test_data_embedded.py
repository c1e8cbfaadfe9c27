"""The shipped toy-planet dataset: integrity, layout, size, statistics."""

import os

import numpy as np
import pandas as pd
import pytest
import xarray

from minigencast import config, data, normalization, variables
from minigencast.data import layouts, toy_planet, windows


def test_manifest_hashes_match():
    assert toy_planet.verify_manifest(data.embedded_dir()) == []


def test_total_size_at_most_50_mb():
    total = 0
    for root, _, files in os.walk(data.embedded_dir()):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    assert total <= 50e6


def test_splits_are_canonical_contiguous_and_disjoint():
    parts = [data.load_embedded(s) for s in data.SPLITS]
    times = np.concatenate([p.time.values for p in parts])
    assert np.all(np.diff(times) == np.timedelta64(12, "h"))  # contiguous, ordered, disjoint
    assert (times[-1] - times[0]) >= np.timedelta64(364, "D")  # >= 1 simulated year
    for p in parts:
        assert p["temperature"].chunks is not None  # lazy
        assert p["temperature"].dtype == np.float32
        canon = layouts.to_canonical(p, config.TOY_PLANET_TASK)
        assert list(canon.level.values) == list(variables.TOY_PLANET_LEVELS)
        assert canon.lat.values[0] == -90 and canon.lon.values[0] == 0


def test_values_are_plausible():
    ds = data.load_embedded("validation").load()
    for name, (lo, hi) in variables.PLAUSIBLE_RANGES.items():
        if name in ds:
            assert lo <= float(ds[name].min()) and float(ds[name].max()) <= hi, name
    u250 = ds["u_component_of_wind"].sel(level=250).mean(("time", "lon"))
    assert 15 < float(u250.max()) < 60  # mid-latitude jet
    assert float(ds["geopotential_at_surface"].max()) == 0.0


def test_stats_are_those_of_the_training_split():
    # Independent of compute_stats: plain NumPy over (time, lat, lon) of the training split,
    # per level; the 12 h differences for diffs_stddev (docs/design.md §2.1).
    stored = data.embedded_stats()
    train = data.load_embedded("train")
    for name in ("temperature", "2m_temperature", "geopotential"):
        x = train[name].transpose("time", ..., "lat", "lon").values.astype(np.float64)
        axes = (0, x.ndim - 2, x.ndim - 1)
        expected = {
            "mean": x.mean(axis=axes),
            "stddev": x.std(axis=axes),
            "diffs_stddev": np.diff(x, axis=0).std(axis=axes),
            "min": x.min(axis=axes),
        }
        for stat, value in expected.items():
            got = stored[stat][name]
            if "level" in got.dims:
                got = got.sel(level=train["level"].values)
            np.testing.assert_allclose(got.values, value, rtol=1e-5, err_msg=f"{stat} {name}")


def test_a_window_normalises_to_order_one():
    ds = data.load_embedded("test")
    stats = data.embedded_stats()
    inputs, targets, _ = windows.window(ds, config.TOY_PLANET_TASK, init_index=10)
    norm = normalization.normalize_targets(targets.load(), inputs.load(), stats)
    for name in norm.data_vars:
        assert float(np.abs(norm[name]).max()) < 20, name
    assert pd.Timedelta(targets.time.values[0]) == pd.Timedelta("12h")


def test_data_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGENCAST_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="MINIGENCAST_DATA_DIR"):
        data.load_embedded("train")


def test_open_dataset_spec(tmp_path):
    ds = data.open_dataset("embedded:validation", config.TOY_PLANET_TASK)
    assert ds.sizes["time"] == data.load_embedded("validation").sizes["time"]
    path = tmp_path / "dm.nc"
    layouts.to_deepmind(ds.isel(time=slice(0, 3)).load()).to_netcdf(path)
    again = data.open_dataset(str(path), config.TOY_PLANET_TASK)
    xarray.testing.assert_allclose(again.load(), ds.isel(time=slice(0, 3)).load())
