"""Layouts found in the wild: cfgrib/ecCodes GRIB, CDS NetCDF (pre-2024 and 2024),
WeatherBench-2 in both axis orders, ensemble dims. Real samples: tests/data/real/."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray

from minigencast.data import files, layouts, synthetic

REAL = os.path.join(os.path.dirname(__file__), "data", "real")
ERA5_GRIB = os.path.join(REAL, "era5-levels-members-3times.grib")
ERA5_NC = os.path.join(REAL, "era5-levels-members-3times.nc")
EARTHKIT_GRIB = os.path.join(REAL, "pl_regular_ll.grib")


def _grib_fields(path):
    """Every message of a GRIB file read with ecCodes directly (not through cfgrib):
    {(shortName, level, number, valid datetime64): [lat, lon] array, lat north -> south}."""
    eccodes = pytest.importorskip("eccodes")
    out = {}
    with open(path, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            date, time = eccodes.codes_get(h, "validityDate"), eccodes.codes_get(h, "validityTime")
            when = np.datetime64(pd.Timestamp(f"{date} {time:04d}"), "ns")
            key = (
                eccodes.codes_get(h, "shortName"),
                eccodes.codes_get(h, "level"),
                eccodes.codes_get(h, "number"),
                when,
            )
            shape = (eccodes.codes_get(h, "Nj"), eccodes.codes_get(h, "Ni"))
            out[key] = eccodes.codes_get_values(h).reshape(shape)
            eccodes.codes_release(h)
    return out


def _open_grib(path):
    pytest.importorskip("cfgrib")
    return files.open_path(path)


def test_cfgrib_era5_sample_to_canonical():
    raw = _open_grib(ERA5_GRIB)
    assert {"number", "time", "isobaricInhPa", "step", "valid_time"} <= set(raw.variables)
    out = layouts.to_canonical(raw.isel(number=3))
    assert out["temperature"].dims == ("time", "level", "lat", "lon")
    assert out["level"].dtype == np.int64 and list(out["level"].values) == [500, 850]
    assert np.all(np.diff(out["lat"].values) > 0) and out["lat"].values[0] == -90
    assert list(pd.DatetimeIndex(out["time"].values).hour) == [0, 12, 0]
    # Compare with the messages decoded by ecCodes itself.
    fields = _grib_fields(ERA5_GRIB)
    for t in out["time"].values:
        for level in (500, 850):
            want_t = fields[("t", level, 3, t)][::-1]  # GRIB rows run north -> south
            got_t = out["temperature"].sel(time=t, level=level).values
            np.testing.assert_array_equal(got_t, want_t.astype(np.float32))
            want_z = fields[("z", level, 3, t)][::-1]
            np.testing.assert_array_equal(
                out["geopotential"].sel(time=t, level=level).values, want_z.astype(np.float32)
            )


def test_cfgrib_sample_netcdf_copy_gives_the_same_canonical_data():
    """The same sample converted to NetCDF by cfgrib (readable without ecCodes)."""
    from_nc = layouts.to_canonical(files.open_path(ERA5_NC), ensemble_dim="number")
    assert from_nc["temperature"].dims == ("number", "time", "level", "lat", "lon")
    assert list(from_nc["level"].values) == [500, 850]
    assert from_nc["time"].dtype == "datetime64[ns]" and from_nc.sizes["time"] == 3
    from_grib = layouts.to_canonical(_open_grib(ERA5_GRIB), ensemble_dim="number")
    xarray.testing.assert_equal(from_nc.load(), from_grib.load())


@pytest.mark.parametrize("path", [ERA5_NC, ERA5_GRIB])
def test_ensemble_dim_is_an_error_naming_the_fix(path):
    ds = files.open_path(path) if path.endswith(".nc") else _open_grib(path)
    fix = r"ensemble dimension `number`.*one member.*isel\(number=0\).*ensemble_dim='number'"
    with pytest.raises(ValueError, match=fix):
        layouts.to_canonical(ds)


def test_stats_on_the_ensemble_sample_fails_about_number(tmp_path):
    pytest.importorskip("cfgrib")
    out = tmp_path / "stats"
    res = subprocess.run(
        [sys.executable, "-m", "minigencast.cli", "stats", ERA5_GRIB, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "`number`" in lines[0] and "ensemble_dim" in lines[0]
    assert not out.exists()
    assert sorted(os.listdir(REAL)) == sorted(  # cfgrib wrote no index file next to the data
        ["README.md", os.path.basename(ERA5_GRIB), os.path.basename(ERA5_NC), "pl_regular_ll.grib"]
    )


def test_earthkit_sample_time_by_step_is_stacked_into_valid_times():
    """earthkit-data's sample: 4 reference times x steps 0 h, 6 h -> 8 valid times, 6-hourly."""
    raw = _open_grib(EARTHKIT_GRIB)
    assert {"time", "step"} <= set(raw.dims)
    out = layouts.to_canonical(raw)
    assert list(out["level"].values) == [300, 400, 500, 700, 850, 1000]
    want = raw["valid_time"].values.ravel()
    want = np.sort(want[pd.DatetimeIndex(want).hour % 12 == 0])
    np.testing.assert_array_equal(out["time"].values, want)
    fields = _grib_fields(EARTHKIT_GRIB)
    t = out["time"].values[1]  # 12 UTC: reference time 12 UTC, step 0
    np.testing.assert_array_equal(
        out["u_component_of_wind"].sel(time=t, level=850).values,
        fields[("u", 850, 0, t)][::-1].astype(np.float32),
    )


# --------------------------------------------------------------------------- CDS NetCDF
@pytest.fixture
def base():
    return synthetic.sample(num_times=4, levels=(500, 850, 1000), n_lat=7, n_lon=12)


def _short(ds):
    return ds[["temperature", "2m_temperature", "geopotential"]].rename(
        {"temperature": "t", "2m_temperature": "t2m", "geopotential": "z"}
    )


def test_cds_pre2024_netcdf(tmp_path, base):
    """time (hours since 1900, int), level int32, latitude descending, int16-packed short
    names, and an `expver` dim (ERA5 = 1, ERA5T = 5) where each time is in one only."""
    ds = _short(base).isel(lat=slice(None, None, -1)).rename(lat="latitude", lon="longitude")
    ds = ds.assign_coords(level=ds["level"].astype(np.int32))
    era5 = ds.where(ds["time"] < base["time"].values[2])
    era5t = ds.where(ds["time"] >= base["time"].values[2])
    ds = xarray.concat([era5, era5t], dim=pd.Index(np.int32([1, 5]), name="expver"))
    ds = ds.transpose("time", "expver", ...)
    packed = {"dtype": "int16", "scale_factor": 0.01, "add_offset": 0.0, "_FillValue": -32767}
    enc = {"t": packed, "t2m": packed, "z": {"dtype": "float32"}}
    enc["time"] = {"units": "hours since 1900-01-01 00:00:00.0", "dtype": "int32"}
    path = tmp_path / "cds_old.nc"
    ds.to_netcdf(path, encoding=enc)
    out = layouts.to_canonical(files.open_path(str(path)))
    assert out["temperature"].dims == ("time", "level", "lat", "lon")
    assert list(out["level"].values) == [500, 850, 1000] and out["level"].dtype == np.int64
    assert not bool(out["temperature"].isnull().any())
    np.testing.assert_allclose(out["temperature"].values, base["temperature"].values, atol=0.006)
    np.testing.assert_allclose(out["geopotential"].values, base["geopotential"].values, rtol=1e-6)


def test_cds_2024_netcdf(tmp_path, base):
    """valid_time, pressure_level (float, descending), scalar `number`, `expver` per time."""
    ds = _short(base).isel(lat=slice(None, None, -1), level=slice(None, None, -1))
    ds = ds.rename(lat="latitude", lon="longitude", time="valid_time", level="pressure_level")
    ds = ds.assign_coords(
        pressure_level=ds["pressure_level"].astype(np.float64),
        number=np.int64(0),
        expver=("valid_time", np.array(["0001"] * 4)),
    )
    path = tmp_path / "cds_2024.nc"
    ds.to_netcdf(path)
    out = layouts.to_canonical(files.open_path(str(path)))
    assert list(out["level"].values) == [500, 850, 1000] and out["level"].dtype == np.int64
    assert set(out.coords) == {"time", "level", "lat", "lon"}
    np.testing.assert_allclose(out["temperature"].values, base["temperature"].values, rtol=1e-6)


@pytest.mark.parametrize("order", [("longitude", "latitude"), ("latitude", "longitude")])
def test_weatherbench2_both_axis_orders(base, order):
    ds = base.rename(lat="latitude", lon="longitude").transpose("time", "level", *order)
    out = layouts.to_canonical(ds)
    assert out["temperature"].dims == ("time", "level", "lat", "lon")
    np.testing.assert_array_equal(out["temperature"].values, base["temperature"].values)


def test_levels_sorted_ascending_as_int(base):
    ds = base.isel(level=[2, 0, 1]).assign_coords(level=lambda d: d["level"].astype(float))
    out = layouts.to_canonical(ds)
    assert out["level"].dtype == np.int64 and list(out["level"].values) == [500, 850, 1000]
    np.testing.assert_array_equal(out["temperature"].values, base["temperature"].values)
    with pytest.raises(ValueError, match="whole hPa"):
        layouts.to_canonical(base.assign_coords(level=[500.5, 850.0, 1000.0]))


def test_other_extra_dim_is_named_but_cell_bounds_are_not(base):
    ds = base.expand_dims(height=[2.0, 10.0])
    with pytest.raises(ValueError, match="extra dimension `height`"):
        layouts.to_canonical(ds)
    times = base["time"].values
    bnds = xarray.DataArray(np.stack([times, times], -1), dims=("time", "bnds"))
    ds = base.assign(time_bnds=bnds)
    ds["time"].attrs["bounds"] = "time_bnds"
    out = layouts.to_canonical(ds)
    assert "bnds" not in out.dims and "time_bnds" not in out


def test_truncated_file_in_a_multi_file_dataset_is_named(tmp_path, base):
    times = pd.date_range("2020-01-01", periods=12, freq="12h").values
    parts = [base.assign_coords(time=times[i : i + 4]) for i in (0, 4, 8)]
    for folder in ("good", "bad"):
        (tmp_path / folder).mkdir()
        for i, part in enumerate(parts):
            part.to_netcdf(tmp_path / folder / f"part{i}.nc")
    whole = layouts.to_canonical(files.open_path(str(tmp_path / "good" / "part*.nc")))
    np.testing.assert_array_equal(whole["time"].values, times)
    bad = tmp_path / "bad" / "part1.nc"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as err:
        files.open_path(str(tmp_path / "bad"))
    msg = str(err.value)
    assert str(bad) in msg
    assert str(pd.Timestamp(times[3])) in msg and str(pd.Timestamp(times[8])) in msg
