"""The real-ERA5 recipe of docs/real-data.md, end to end, on small local stores with
WeatherBench-2's exact schema (tests/wb2_schema.py) instead of gs://weatherbench2:
subset ERA5 -> statistics -> train -> forecast -> subset IFS ENS -> evaluate."""

import os

import numpy as np
import pandas as pd
import pytest
import wb2_schema

from minigencast import cli

INITS = ["2020-01-04T00", "2020-01-04T12"]


def _run(*argv):
    assert cli.main([str(a) for a in argv]) == 0, argv


def _band_areas(lat, spacing):
    lo = np.deg2rad(np.clip(lat - spacing / 2, -90, 90))
    hi = np.deg2rad(np.clip(lat + spacing / 2, -90, 90))
    return np.sin(hi) - np.sin(lo)


@pytest.mark.slow
def test_recipe_end_to_end(tmp_path):
    era5 = wb2_schema.era5_store(str(tmp_path / "era5.zarr"), num_times=32)
    ens = wb2_schema.ifs_ens_store(str(tmp_path / "ens.zarr"), era5, inits=INITS, members=4)
    d = tmp_path
    levels = "500,700,850"
    _run("data", "weatherbench", d / "era5.zarr", "--out", d / "era5_sub.zarr",
         "--levels", levels)  # fmt: skip
    _run("stats", d / "era5_sub.zarr", "--out", d / "stats")
    _run("train", "--preset", "wb2_tiny", "--data", d / "era5_sub.zarr", "--stats", d / "stats",
         "--run_dir", d / "run", "--num_steps", 2, "--batch_size", 2, "--warmup_steps", 1,
         "--eval_every", 2, "--checkpoint_every", 2, "--quiet")  # fmt: skip
    checkpoint = d / "run" / "checkpoints" / "step_00000002"
    assert (checkpoint / "model.npz").exists()
    init_flags = [w for t in INITS for w in ("--init_time", t)]
    _run("forecast", "--checkpoint", checkpoint, "--data", d / "era5_sub.zarr", *init_flags,
         "--num_steps", 4, "--num_samples", 2, "--out", d / "fc.nc", "--quiet")  # fmt: skip
    _run("data", "weatherbench", d / "ens.zarr", "--out", d / "ens_sub.zarr",
         "--levels", levels, "--max-lead", "48h")  # fmt: skip
    _run("evaluate", "--forecast", d / "fc.nc", "--truth", d / "era5_sub.zarr",
         "--baseline", f"ifs_ens={d / 'ens_sub.zarr'}", "--figure", "crps_vs_lead",
         "--out", d / "eval")  # fmt: skip
    assert (d / "eval" / "crps_vs_lead.png").exists()
    table = pd.read_csv(d / "eval" / "scores.csv")
    assert set(table["forecast"]) == {"forecast", "ifs_ens"}
    assert np.isfinite(table["crps"]).all()
    # IFS ENS fair CRPS of t850 at 24 h, computed here from the raw WB2-schema stores.
    row = table.query("forecast == 'ifs_ens' and variable == 'temperature' and level == 850")
    got = float(row.loc[row["lead_time_h"] == 24, "crps"].iloc[0])
    lead = np.timedelta64(24, "h")
    x = ens["temperature"].sel(level=850, prediction_timedelta=lead)  # [init, member, lon, lat]
    x = x.transpose("time", "number", "latitude", "longitude").values.astype(np.float64)
    valid = np.asarray(INITS, "datetime64[ns]") + lead
    y = era5["temperature"].sel(level=850, time=valid)
    y = y.transpose("time", "latitude", "longitude").values.astype(np.float64)
    m = x.shape[1]
    skill = np.abs(x - y[:, None]).mean(1)
    spread = np.abs(x[:, :, None] - x[:, None, :]).sum((1, 2)) / (2 * m * (m - 1))
    w = _band_areas(era5["latitude"].values, 22.5)[None, :, None] * np.ones_like(skill)
    want = float(((skill - spread) * w).sum() / w.sum())
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert os.path.getsize(d / "fc.nc") > 0
