"""Streaming training data: windows read from disk per batch equal the in-memory ones."""

import dataclasses
import os

import jax
import numpy as np
import pytest
import synthetic_data
import test_train
import xarray

from minigencast import arrays, config, loader, normalization, train
from minigencast.data import synthetic

LEVELS = (500, 850, 1000)


def _write(ds, path, compress=False):
    """`ds` as a NetCDF file chunked one time per chunk (as a long archive would be)."""
    enc = {
        v: {"chunksizes": (1,) + ds[v].shape[1:], "zlib": compress}
        for v in ds.data_vars
        if "time" in ds[v].dims
    }
    ds.to_netcdf(path, encoding=enc)
    return path


@pytest.fixture(scope="module")
def gencast_case(tmp_path_factory):
    """The GenCast task (SST NaNs over land, precipitation) in memory and on disk."""
    task = config.gencast_task(LEVELS)
    ds = synthetic.sample(num_times=8, levels=LEVELS)
    stats = normalization.compute_stats(
        synthetic.sample(num_times=6, levels=LEVELS, seed=1), chunks=None
    )
    path = _write(ds, str(tmp_path_factory.mktemp("gencast") / "data.nc"))
    return task, ds, stats, path


def test_reader_gives_the_in_memory_arrays_bitwise(gencast_case):
    task, ds, stats, path = gencast_case
    memory = arrays.prepare(ds, task, stats)
    with xarray.open_dataset(path) as lazy:
        stream = arrays.prepare(lazy, task, stats, streaming=True)
        assert isinstance(stream.frames, arrays.TimeReader)
        assert np.isnan(memory.raw_frames).any()  # SST over land: NaN kept in raw frames
        idx = np.array([[3, 1, 1], [0, 7, 2]])  # any shape, repeats, out of order
        for name in ("frames", "raw_frames", "forcings"):
            whole = getattr(memory, name)
            reader = getattr(stream, name)
            assert reader.shape == whole.shape
            np.testing.assert_array_equal(reader[idx], whole[idx])
            np.testing.assert_array_equal(reader[2:5], whole[2:5])
            np.testing.assert_array_equal(reader[6], whole[6])
        wins = loader.split_by_time(memory.times, 0.0)[0]
        a = arrays.make_fetch(memory.frames, memory.forcings, memory.static, memory.layout)
        b = arrays.make_fetch(stream.frames, stream.forcings, stream.static, stream.layout)
        for k, v in a(wins).items():
            assert np.array_equal(v, b(wins)[k]), k


def test_nan_outside_sst_stops_training_naming_the_time_or_is_skipped(gencast_case, tmp_path):
    task, ds, stats, _ = gencast_case
    ds = ds.copy(deep=True)
    ds["2m_temperature"][5, 3, 4] = np.nan
    prep = arrays.prepare(ds, task, stats)
    fetch = arrays.make_fetch(prep.frames, prep.forcings, prep.static, prep.layout, prep.times)
    wins = loader.split_by_time(prep.times, 0.0)[0]  # centres 1..6
    fetch(wins[:3])  # times 0..4: clean (SST NaNs are filled, not an error)
    with pytest.raises(ValueError, match=r"2019-03-30T12:00:00, 2019-03-31T00:00:00 holds NaN"):
        fetch(wins[3:4])  # times 3, 4, 5: the target frame (2019-03-31T00) is bad
    kept, _ = train.drop_nan_windows(prep, wins, wins[:0], str(tmp_path))
    np.testing.assert_array_equal(kept, [w for w in wins if 5 not in w])
    logged = open(tmp_path / "skipped_windows.txt").read().splitlines()
    assert len(logged) == 3 and all("2019-03-31T00:00:00" in line for line in logged)
    fetch(kept)


def test_unreadable_part_of_a_file_is_reported_with_path_and_times(gencast_case, tmp_path):
    task, ds, stats, _ = gencast_case
    path = _write(ds, str(tmp_path / "damaged.nc"), compress=True)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:  # Corrupt compressed chunks in the middle of the file.
        f.seek(size // 2)
        f.write(b"\xff" * 4000)
    with xarray.open_dataset(path) as lazy:  # (the damage may already hit the first time)
        with pytest.raises(ValueError, match=r"damaged.nc at times 2019-\S+ \.\. 2019-\S+: "):
            prep = arrays.prepare(lazy, task, stats, streaming=True)
            for t in range(len(prep.times)):
                prep.frames[t]


# test_train's tiny GenCast set-up (a step compiles in seconds), with validation.
TC = dataclasses.replace(test_train.TC, num_steps=4, checkpoint_every=2, validation_fraction=0.2)


def _train(ds, run_dir, force=False, **overrides):
    out = train.train(
        ds,
        synthetic_data.stats(synthetic_data.dataset(num_times=24)),
        config.tiny(),
        dataclasses.replace(TC, **overrides),
        str(run_dir),
        progress=False,
        eval_members=0,
        force=force,
    )
    return jax.tree_util.tree_leaves(jax.device_get(out["state"]["params"])), out


@pytest.mark.slow
def test_streaming_training_is_bitwise_the_in_memory_one_and_resumes(tmp_path):
    """4 steps from memory == 2 streamed steps, kill, 2 more streamed steps (resumed)."""
    ds = synthetic_data.dataset(num_times=24)
    path = _write(ds, str(tmp_path / "data.nc"))
    memory, out = _train(ds, tmp_path / "memory", streaming=False)
    assert out["history"][-1]["val_loss"] == out["history"][-1]["val_loss"]  # validated
    with xarray.open_dataset(path) as lazy:
        _train(lazy, tmp_path / "stream", num_steps=2)
        # Resumes at step 2; num_steps differs from the first run's, hence force.
        streamed, _ = _train(lazy, tmp_path / "stream", force=True)
    for a, b in zip(memory, streamed, strict=True):
        assert np.array_equal(a, b)
