"""Forecast output safety: no user file is ever deleted or replaced (docs/errors.md).

Each case goes through `forecast.run` (the API) and the `minigencast forecast` CLI:
by subprocess where the refusal comes before any model work, by `cli.main` in this
process where the same code path needs the model loaded (one JAX import, not ten).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import synthetic_data
import xarray

from minigencast import (
    channel_order,
    checkpoint,
    cli,
    forecast,
    normalization,
    safe_output,
)

STEP = np.timedelta64(12, "h")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tiny model (as model.npz), a synthetic dataset (as data.nc) and its statistics.

    Sampler and shapes as test_forecast.py's, so one pytest run compiles the rollout once.
    """
    root = tmp_path_factory.mktemp("safety")
    cfg, params = synthetic_data.tiny_model()
    ds = synthetic_data.dataset(num_times=6)
    stats = synthetic_data.stats(ds)
    (root / "ck").mkdir()
    checkpoint.save(str(root / "ck" / "model.npz"), params, cfg)
    ds.to_netcdf(root / "data.nc")
    normalization.write_stats(stats, str(root / "stats"))
    return {"root": root, "cfg": cfg, "ds": ds, "stats": stats, "params": params}


def _run(setup, out, **kw):
    s = setup
    return forecast.run(
        s["params"], s["cfg"], s["ds"], s["stats"], s["ds"]["time"].values[[1]], 1, 2,
        out=str(out), progress=False, chunk_steps=5, **kw,
    )  # fmt: skip


def _args(setup, out, *extra):
    r = setup["root"]
    return [
        "forecast", "--checkpoint", str(r / "ck"), "--data", str(r / "data.nc"),
        "--stats", str(r / "stats"), "--init_time", "2000-01-01T12", "--num_steps", "1",
        "--num_samples", "2", "--chunk_steps", "5", "--quiet", "--out", str(out), *extra,
    ]  # fmt: skip


def cli_subprocess(args, cwd=None):
    """(exit code, stderr) of `python -m minigencast.cli ARGS`."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run(
        [sys.executable, "-m", "minigencast.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return p.returncode, p.stderr


def cli_main(args, capsys):
    """(exit code, stderr) of `cli.main(ARGS)` in this process."""
    capsys.readouterr()
    try:
        rc = cli.main(args)
    except SystemExit as e:  # argparse errors
        rc = e.code
    return rc, capsys.readouterr().err


def assert_one_line_error(rc, err, *words):
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err


def _user_folder(path):
    path.mkdir()
    (path / "thesis.tex").write_text("years of work")
    return path


def _intact(path):
    return (path / "thesis.tex").read_text() == "years of work"


def _own_forecast(path, note="earlier"):
    """A small file in our forecast format (its `source` attribute is ours, and a
    forecast's sample, init_time and lead_time dimensions)."""
    dims = ("sample", "init_time", "lead_time")
    xarray.Dataset({"x": (dims, [[[1.0]]])}, attrs={"source": f"minigencast ({note})"}).to_netcdf(
        path
    )
    return path


# ----------------------------------------------------------------------------- folders
def test_out_folder_with_a_user_file_survives_the_api(setup, tmp_path):
    folder = _user_folder(tmp_path / "results")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="existing folder"):
            _run(setup, folder, overwrite=overwrite)
    assert _intact(folder)
    zarr_like = _user_folder(tmp_path / "mine.zarr")  # a folder that is not our zarr store
    with pytest.raises(FileExistsError, match="existing folder"):
        _run(setup, zarr_like, overwrite=True)
    assert _intact(zarr_like)


def test_out_folder_with_a_user_file_survives_the_cli(setup, tmp_path):
    folder = _user_folder(tmp_path / "results")
    rc, err = cli_subprocess(_args(setup, folder, "--overwrite"))
    assert_one_line_error(rc, err, "existing folder", "forecast.nc")
    assert _intact(folder)
    # `--out .` names the folder one stands in.
    rc, err = cli_subprocess(_args(setup, "."), cwd=folder)
    assert_one_line_error(rc, err, "existing folder")
    assert _intact(folder) and os.listdir(folder) == ["thesis.tex"]


# ----------------------------------------------------------------------------- inputs
def test_inputs_are_refused_as_outputs(setup, tmp_path):
    r = setup["root"]
    data, model = r / "data.nc", r / "ck" / "model.npz"
    before = data.read_bytes(), model.read_bytes()
    # API: the dataset's own file (xarray records it) is protected automatically.
    with xarray.open_dataset(data) as opened:
        with pytest.raises(ValueError, match="input"):
            forecast.run(
                setup["params"], setup["cfg"], opened, setup["stats"],
                opened["time"].values[[1]], 1, 2, out=str(data), overwrite=True, progress=False,
            )  # fmt: skip
    with pytest.raises(ValueError, match="input"):
        _run(setup, model, overwrite=True, protect=[str(model)])
    # CLI: --data and --checkpoint (folder or file) are protected.
    rc, err = cli_subprocess(_args(setup, data, "--overwrite"))
    assert_one_line_error(rc, err, "input", str(data))
    rc, err = cli_subprocess(_args(setup, model, "--overwrite"))
    assert_one_line_error(rc, err, "input")
    assert (data.read_bytes(), model.read_bytes()) == before


def test_foreign_file_is_never_replaced(setup, tmp_path, capsys):
    notes = tmp_path / "notes.nc"
    notes.write_text("not a forecast")
    with pytest.raises(FileExistsError, match="not a minigencast forecast"):
        _run(setup, notes, overwrite=True)
    rc, err = cli_main(_args(setup, notes, "--overwrite"), capsys)
    assert_one_line_error(rc, err, "not a minigencast forecast")
    assert notes.read_text() == "not a forecast"
    rc, err = cli_main(_args(setup, tmp_path / "fc.txt"), capsys)
    assert_one_line_error(rc, err, ".nc or .zarr")


# ----------------------------------------------------------------------------- overwrite
def test_earlier_forecast_is_replaced_only_with_overwrite(setup, tmp_path, capsys):
    path = _own_forecast(tmp_path / "fc.nc")
    earlier = path.read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        _run(setup, path)
    rc, err = cli_main(_args(setup, path), capsys)
    assert_one_line_error(rc, err, "--overwrite")
    assert path.read_bytes() == earlier
    # A writer killed by SIGKILL leaves its temporary file and lock file behind.
    script = textwrap.dedent(
        f"""
        import os, numpy as np, xarray
        from minigencast import forecast
        t = xarray.Dataset({{"x": (("sample", "init_time", "lead_time", "lat", "lon"),
                                   np.zeros((1, 1, 1, 2, 2), np.float32))}},
                           attrs={{"source": "minigencast (as every forecast's)"}})
        w = forecast.ForecastWriter({str(path)!r}, t, overwrite=True)
        os.kill(os.getpid(), 9)
        """
    )
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    killed = subprocess.run([sys.executable, "-c", script], env=env, timeout=300)
    assert killed.returncode == -9
    orphans = [n for n in os.listdir(tmp_path) if ".tmp-" in n]
    assert len(orphans) == 1 and os.path.exists(f"{path}.lock")
    live = tmp_path / "fc.nc.tmp-1"  # pid 1 runs: not an orphan, not ours to delete
    live.write_text("someone's")
    # With --overwrite the CLI forecasts, replaces our file and removes the dead orphan.
    rc, err = cli_main(_args(setup, path, "--overwrite"), capsys)
    assert rc == 0, err
    assert sorted(os.listdir(tmp_path)) == ["fc.nc", "fc.nc.tmp-1"]
    with xarray.open_dataset(path) as fc:
        assert fc.sizes["sample"] == 2 and fc.attrs["source"].startswith("minigencast")
        assert np.isfinite(fc["2m_temperature"].values).all()
    # The API twin too.
    assert _run(setup, path, overwrite=True) == str(path)
    assert sorted(os.listdir(tmp_path)) == ["fc.nc", "fc.nc.tmp-1"]


def _dead_pid():
    import multiprocessing

    dead = multiprocessing.Process(target=int)
    dead.start()
    dead.join()
    return dead.pid


def test_leftovers_are_cleared_only_if_ours(setup, tmp_path):
    """A dead writer's `.tmp-`/`.old-` names are not proof: a user's file or folder with
    such a name stays; an `.old-` forecast whose target is gone is moved back, not lost."""
    path = tmp_path / "fc.nc"
    pid = _dead_pid()
    users_file = tmp_path / f"fc.nc.tmp-{pid}"
    users_file.write_text("a user's notes")
    users_folder = tmp_path / f"fc.zarr.tmp-{pid}"
    users_folder.mkdir()
    (users_folder / "thesis.tex").write_text("chapter 1")
    assert _run(setup, path) == str(path)
    assert users_file.read_text() == "a user's notes"
    assert _run(setup, tmp_path / "fc.zarr") == str(tmp_path / "fc.zarr")
    assert (users_folder / "thesis.tex").read_text() == "chapter 1"
    # A store of ours with a user's file added is not ours to delete as a whole.
    (users_folder / "thesis.tex").rename(tmp_path / "fc.zarr" / "thesis.tex")
    with pytest.raises(FileExistsError):
        _run(setup, tmp_path / "fc.zarr", overwrite=True)
    (tmp_path / "fc.zarr" / "thesis.tex").rename(users_folder / "thesis.tex")
    # move_into_place killed between its two renames: the earlier store is only at .old-.
    zarr_path = tmp_path / "fc.zarr"
    zarr_path.rename(tmp_path / f"fc.zarr.old-{pid}")
    assert safe_output.remove_orphans(str(zarr_path)) == [f"fc.zarr.old-{pid}"]
    assert safe_output.is_own_forecast(str(zarr_path))
    # This process's own temporary name, held by something not ours: refused, kept.
    mine = tmp_path / f"fc.nc.tmp-{os.getpid()}"
    mine.write_text("not ours")
    with pytest.raises(FileExistsError, match="not a minigencast forecast"):
        _run(setup, path, overwrite=True)
    assert mine.read_text() == "not ours"
    assert safe_output.is_own_forecast(str(path))


def test_concurrent_writers_are_refused(setup, tmp_path, capsys):
    path = tmp_path / "fc.zarr"
    template = forecast.chunk_to_dataset(
        np.zeros((1, 2, 1, 13, 24, len(channel_order.target_channels(setup["cfg"].task_config)))),
        setup["cfg"].task_config,
        setup["ds"]["time"].values[[1]],
        [np.timedelta64(12, "h")],
        setup["ds"]["lat"].values,
        setup["ds"]["lon"].values,
    )
    first = forecast.ForecastWriter(str(path), template)
    try:
        with pytest.raises(BlockingIOError, match=f"another forecast \\(pid {os.getpid()}\\)"):
            _run(setup, path)
        rc, err = cli_main(_args(setup, path), capsys)
        assert_one_line_error(rc, err, "being written by another forecast")
    finally:
        first.close()
    assert is_zarr_forecast(path)
    assert sorted(os.listdir(tmp_path)) == ["fc.zarr"]  # no lock, no temporary left
    # Our own zarr store is replaced (with --overwrite) like a file.
    assert _run(setup, path, overwrite=True) == str(path)
    assert sorted(os.listdir(tmp_path)) == ["fc.zarr"]


def test_file_appearing_during_the_forecast_is_kept(setup, tmp_path):
    path = tmp_path / "fc.nc"
    template = xarray.Dataset(
        {"x": (("sample", "init_time", "lead_time", "lat"), np.zeros((1, 1, 1, 2), np.float32))},
        coords={"init_time": [np.datetime64("2000-01-01", "ns")], "lead_time": [STEP]},
    )
    writer = forecast.ForecastWriter(str(path), forecast.add_cf_attributes(template))
    path.write_text("saved by the user meanwhile")
    with pytest.raises(FileExistsError, match="not a minigencast forecast.*kept at"):
        writer.close()
    assert path.read_text() == "saved by the user meanwhile"
    (kept,) = [n for n in os.listdir(tmp_path) if n != "fc.nc"]
    assert kept == f"fc.kept-{os.getpid()}.nc"
    assert safe_output.is_own_forecast(str(tmp_path / kept))


def is_zarr_forecast(path):
    return safe_output.is_own_forecast(str(path))


def test_ctrl_c_mid_write_keeps_the_earlier_forecast(setup, tmp_path, capsys, monkeypatch):
    """Ctrl-C after a chunk reached the temporary file: one line, exit code 130, the
    earlier forecast byte for byte, no temporary or lock left."""
    path = tmp_path / "fc.nc"
    _run(setup, path)
    earlier = path.read_bytes()
    write = forecast.ForecastWriter.write

    def write_then_ctrl_c(self, chunk, lead_index):
        write(self, chunk, lead_index)
        assert os.path.exists(self.tmp)
        raise KeyboardInterrupt

    monkeypatch.setattr(forecast.ForecastWriter, "write", write_then_ctrl_c)
    rc, err = cli_main(_args(setup, path, "--overwrite"), capsys)
    assert rc == 130 and err.strip() == "minigencast forecast: interrupted", err
    assert path.read_bytes() == earlier
    assert os.listdir(tmp_path) == ["fc.nc"]


def test_a_full_disk_is_one_line_and_keeps_the_earlier_forecast(
    setup, tmp_path, capsys, monkeypatch
):
    """netCDF4 reports a full disk as RuntimeError("NetCDF: HDF error") when a chunk is
    flushed: one line naming the file and the free space, the earlier file kept, no
    temporary or lock left."""
    path = tmp_path / "fc.nc"
    _run(setup, path)
    earlier = path.read_bytes()

    class FullDisk:  # the real file, whose flushes fail
        def __init__(self, nc):
            self.nc = nc

        def __getitem__(self, name):
            return self.nc[name]

        def sync(self):
            raise RuntimeError("NetCDF: HDF error")

        def close(self):
            self.nc.close()

    open_netcdf = forecast.ForecastWriter._open_netcdf

    def open_then_fill(self, template):
        open_netcdf(self, template)
        self._nc = FullDisk(self._nc)

    monkeypatch.setattr(forecast.ForecastWriter, "_open_netcdf", open_then_fill)
    rc, err = cli_main(_args(setup, path, "--overwrite"), capsys)
    assert_one_line_error(rc, err, f"writing {path} failed (NetCDF: HDF error;", "MB free")
    assert path.read_bytes() == earlier
    assert os.listdir(tmp_path) == ["fc.nc"]


def test_a_failed_forecast_leaves_no_folders_it_made(setup, tmp_path, capsys, monkeypatch):
    """--out new/a/b/fc.nc: a refusal creates nothing; a failure while writing takes back
    the folders the writer made (only empty ones); a success keeps them."""
    path = tmp_path / "new" / "a" / "b" / "fc.nc"
    args = _args(setup, path)
    bad_init = [a if a != "2000-01-01T12" else "1999-01-01T12" for a in args]
    rc, err = cli_main(bad_init, capsys)
    assert rc == 2 and not (tmp_path / "new").exists(), err
    write = forecast.ForecastWriter.write

    def write_then_fail(self, chunk, lead_index):
        write(self, chunk, lead_index)
        raise OSError("the disk went away")

    monkeypatch.setattr(forecast.ForecastWriter, "write", write_then_fail)
    rc, err = cli_main(args, capsys)
    assert_one_line_error(rc, err, "the disk went away")
    assert os.listdir(tmp_path) == []
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "mine.txt").write_text("mine")  # a folder that existed stays
    rc, err = cli_main(args, capsys)
    assert os.listdir(tmp_path / "new") == ["mine.txt"]
    monkeypatch.setattr(forecast.ForecastWriter, "write", write)
    rc, err = cli_main(args, capsys)
    assert rc == 0 and path.exists(), err


def test_a_checkpoint_without_metadata_says_what_it_lacks(setup, tmp_path, capsys):
    """A bare model.npz (DeepMind's, or ours copied without metadata.json) forecasts, and
    says on stdout that it runs without filter or spread correction (before: silently)."""
    capsys.readouterr()
    assert cli.main(_args(setup, tmp_path / "fc.nc")) == 0
    out = capsys.readouterr().out
    assert "has no metadata.json beside the weights: no spectral filter" in out, out


def test_unwritable_folder_is_one_line(setup, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        target = "/proc/minigencast/fc.nc" if os.access(locked, os.W_OK) else locked / "fc.nc"
        rc, err = cli_main(_args(setup, target), capsys)
        assert_one_line_error(rc, err, "output folder")
    finally:
        locked.chmod(0o700)


# ----------------------------------------------------------------------------- found by an audit
def test_a_user_file_named_like_our_lock_is_kept(setup, tmp_path, capsys):
    """`<out>.lock` that holds no process id is not ours: refused, not emptied or deleted."""
    lock = tmp_path / "fc.nc.lock"
    lock.write_text("my notes")
    rc, err = cli_main(_args(setup, tmp_path / "fc.nc"), capsys)
    assert_one_line_error(rc, err, "not a minigencast lock")
    assert lock.read_text() == "my notes"
    assert not (tmp_path / "fc.nc").exists()


def test_a_file_derived_from_a_forecast_is_not_ours(setup, tmp_path, capsys):
    """xarray copies our `source` attribute into derived files (an ensemble mean has no
    `sample`): --overwrite does not replace them."""
    derived = tmp_path / "ensemble_mean.nc"
    _own_forecast(tmp_path / "fc.nc")
    xarray.open_dataset(tmp_path / "fc.nc").mean("sample").to_netcdf(derived)
    earlier = derived.read_bytes()
    rc, err = cli_main(_args(setup, derived, "--overwrite"), capsys)
    assert_one_line_error(rc, err, "not a minigencast forecast")
    assert derived.read_bytes() == earlier


def test_folder_commands_replace_only_their_own_outputs(tmp_path):
    """quickstart, evaluate, figures and stats write named files into a folder: a user's
    file of such a name is refused (one line, file intact); a rerun replaces its own."""
    folder = _user_folder(tmp_path / "out")
    (folder / "scores.csv").write_text("my scores")
    with pytest.raises(FileExistsError, match="scores.csv, not written by minigencast"):
        safe_output.claim_outputs(folder, ["numbers.json", "scores.csv"])
    assert (folder / "scores.csv").read_text() == "my scores" and _intact(folder)
    safe_output.claim_outputs(folder, ["numbers.json"])
    (folder / "numbers.json").write_text("{}")
    safe_output.claim_outputs(folder, ["numbers.json"])  # a rerun: its own file
    stats = tmp_path / "model_stats"
    stats.mkdir()
    (stats / "mean_by_level.nc").write_text("a model's statistics")
    rc, err = cli_subprocess(["stats", "embedded", "--out", str(stats)])
    assert_one_line_error(rc, err, "not written by minigencast")
    assert (stats / "mean_by_level.nc").read_text() == "a model's statistics"


def test_quickstart_output_of_an_earlier_version_is_replaced(tmp_path):
    """A quickstart folder written before outputs were recorded (three forecasts of ours
    and our report.json) is a rerun's to replace; a look-alike with a user's report is
    not, and once a folder has a record only the record counts."""
    from minigencast import figures, quickstart

    def earlier_folder(path, report):
        path.mkdir()
        for name in quickstart.NETCDF_OUTPUTS:
            _own_forecast(path / name)
        (path / "report.json").write_text(json.dumps(report))
        (path / "figures").mkdir()
        for name in figures.output_files(quickstart.FIGURES):
            (path / "figures" / name).write_text("an earlier figure")
        return path

    names = [*quickstart.NETCDF_OUTPUTS, "report.json"]
    out = earlier_folder(tmp_path / "qs", {"scores": {}, "goals": {}})
    assert quickstart.written_by_earlier_quickstart(str(out))
    safe_output.claim_outputs(out, names, earlier=True)
    safe_output.check_outputs(out / "figures", ["maps.png"], earlier=True)
    assert safe_output.check_outputs(out, names) >= set(names)  # recorded now

    mine = earlier_folder(tmp_path / "mine", {"scores": {}, "goals": {}, "notes": "mine"})
    assert not quickstart.written_by_earlier_quickstart(str(mine))
    with pytest.raises(FileExistsError, match="not written by minigencast"):
        safe_output.check_outputs(mine, names)
    (mine / "figures" / "numbers.json").unlink()
    safe_output.claim_outputs(mine / "figures", ["numbers.json"])  # a record, no maps.png
    with pytest.raises(FileExistsError, match="maps.png, not written by minigencast"):
        safe_output.check_outputs(mine / "figures", ["maps.png"], earlier=True)


def test_training_into_a_folder_of_user_files_is_refused(tmp_path):
    folder = _user_folder(tmp_path / "myrun")
    (folder / "log.csv").write_text("my,log\n")
    rc, err = cli_subprocess(
        ["train", "--preset", "tiny", "--data", "embedded", "--num_steps", "1",
         "--run_dir", str(folder), "--quiet"]
    )  # fmt: skip
    assert_one_line_error(rc, err, "holds files but no training run")
    assert (folder / "log.csv").read_text() == "my,log\n" and _intact(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["log.csv", "thesis.tex"]
