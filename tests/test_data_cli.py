"""The data/download/stats subcommands call the Python API (offline)."""

import pytest
import xarray

from minigencast import cli, normalization
from minigencast.data import layouts, synthetic


def test_stats_subcommand_writes_deepmind_layout(tmp_path):
    ds = synthetic.sample(num_times=4, levels=(500, 850, 1000))
    src = tmp_path / "ds.nc"
    layouts.to_deepmind(ds).to_netcdf(src)  # DeepMind's layout goes through the same reader
    out = tmp_path / "stats"
    assert cli.main(["stats", str(src), "--out", str(out), "--levels", "500,850"]) == 0
    stats = normalization.load_stats(out)
    direct = normalization.compute_stats(ds.sel(level=[500, 850]))
    xarray.testing.assert_allclose(stats["mean"], direct["mean"])
    assert list(stats["stddev"].level.values) == [500, 850]


def test_download_list_and_file_mirror(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINIGENCAST_CACHE_DIR", str(tmp_path / "cache"))
    assert cli.main(["download", "--list"]) == 0
    assert "GenCast%201p0deg%20Mini" in capsys.readouterr().out
    mirror = tmp_path / "mirror" / "stats"
    mirror.mkdir(parents=True)
    for n in ("mean", "stddev", "diffs_stddev", "min"):
        (mirror / f"{n}_by_level.nc").write_bytes(n.encode())
    base = (tmp_path / "mirror").as_uri() + "/"
    assert cli.main(["download", "stats", "--base_url", base]) == 0
    assert (tmp_path / "cache" / "stats" / "min_by_level.nc").read_bytes() == b"min"


def test_data_help():
    with pytest.raises(SystemExit) as e:
        cli.main(["data", "toy-planet", "--help"])
    assert e.value.code == 0
