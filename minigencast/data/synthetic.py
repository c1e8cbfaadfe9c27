"""A synthetic, full-variable sample in the canonical layout, and a synthetic forecast.

All GenCast variables (5 surface inputs, 12 h precipitation, 6 atmospheric on any
levels -- 84 target channels with the 13 WeatherBench levels -- and the two static
fields) on a tiny grid with poles, with plausible values:

  T(p, lat)   ~ 288 (p/1000)^0.19 - 30 sin^2(lat), >= 190 K  (+ noise)
  Phi(p)      = g h_ISA(p) (+ a meridional gradient and noise)
  u           = westerlies 15 cos(2 lat) scaled with height; v, omega small noise
  q           = 0.015 (p/1000)^3 cos^2(lat)
  SST         = 300 - 30 sin^2(lat) over sea, NaN over land (land_sea_mask = 1)
  precip 12 h = |noise| * 1e-3 m  (>= 0)

Values are random (seeded) but not physically consistent; they exercise shapes,
names, NaN handling and statistics, nothing more.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray

from minigencast import variables


def land_mask(lat, lon) -> np.ndarray:
    """Deterministic land mask [lat, lon] in {0, 1}: 0..120E x 20S..70N, and both poles."""
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    land = (lo >= 0) & (lo <= 120) & (la >= -20) & (la <= 70)
    land |= np.abs(la) >= 80
    return land.astype(np.float32)


def sample(
    num_times: int = 3,
    n_lat: int = 13,
    n_lon: int = 24,
    levels=variables.PRESSURE_LEVELS_WEATHERBENCH_13,
    seed: int = 0,
    start: str = "2019-03-28T12:00",
) -> xarray.Dataset:
    """Return a canonical dataset (time, level, lat, lon) with every GenCast variable."""
    rng = np.random.default_rng(seed)
    lat = np.linspace(-90.0, 90.0, n_lat)
    lon = np.arange(n_lon) * 360.0 / n_lon
    times = pd.date_range(start, periods=num_times, freq="12h").values
    p = np.asarray(levels, dtype=np.float64)[:, None, None]
    s2 = np.sin(np.deg2rad(lat))[:, None] ** 2 * np.ones((1, n_lon))
    c = np.cos(np.deg2rad(lat))[:, None] * np.ones((1, n_lon))
    land = land_mask(lat, lon)
    shape3 = (num_times, len(levels), n_lat, n_lon)
    shape2 = (num_times, n_lat, n_lon)

    def noise(shape, scale):
        return rng.standard_normal(shape) * scale

    h = 44330.8 * (1.0 - (p / 1013.25) ** 0.190263)
    temp = np.maximum(288.0 * (p / 1000.0) ** 0.19 - 30.0 * s2, 190.0) + noise(shape3, 2.0)
    geo = 9.80665 * h - 2000.0 * s2 * (1000.0 / p) ** 0.3 + noise(shape3, 50.0)
    u = 15.0 * np.cos(2 * np.deg2rad(lat))[:, None] * (1000.0 / p) ** 0.3 + noise(shape3, 3.0)
    v = noise(shape3, 3.0)
    w = noise(shape3, 0.1)
    q = 0.015 * (p / 1000.0) ** 3 * c**2 + np.abs(noise(shape3, 1e-4))
    t2m = 288.0 - 40.0 * s2 + noise(shape2, 2.0)
    sst = np.where(land[None] > 0, np.nan, 300.0 - 30.0 * s2 + noise(shape2, 0.5))
    data = {
        "2m_temperature": (("time", "lat", "lon"), t2m),
        "mean_sea_level_pressure": (("time", "lat", "lon"), 101325.0 + noise(shape2, 800.0)),
        "10m_v_component_of_wind": (("time", "lat", "lon"), noise(shape2, 4.0)),
        "10m_u_component_of_wind": (("time", "lat", "lon"), noise(shape2, 5.0)),
        "sea_surface_temperature": (("time", "lat", "lon"), sst),
        variables.PRECIPITATION: (("time", "lat", "lon"), np.abs(noise(shape2, 1e-3))),
        "temperature": (("time", "level", "lat", "lon"), temp),
        "geopotential": (("time", "level", "lat", "lon"), geo),
        "u_component_of_wind": (("time", "level", "lat", "lon"), u),
        "v_component_of_wind": (("time", "level", "lat", "lon"), v),
        "vertical_velocity": (("time", "level", "lat", "lon"), w),
        "specific_humidity": (("time", "level", "lat", "lon"), q),
        "geopotential_at_surface": (("lat", "lon"), land * np.abs(noise((n_lat, n_lon), 3000.0))),
        "land_sea_mask": (("lat", "lon"), land),
    }
    ds = xarray.Dataset(
        {k: (d, np.asarray(x, dtype=np.float32)) for k, (d, x) in data.items()},
        coords={
            "time": ("time", times),
            "level": ("level", np.asarray(levels, dtype=np.int64)),
            "lat": ("lat", lat.astype(np.float32)),
            "lon": ("lon", lon.astype(np.float32)),
        },
    )
    return variables.add_cf_attrs(ds)


def forecast(truth, init_times, lead_steps, num_members=8, spread=1.0, seed=0):
    """A reliable-by-construction ensemble for demos and tests.

    Members x_i = y + s (c + e_i), with c and e_i i.i.d. N(0, 1) (c shared by the
    members) and s = spread * std(12 h change of y) * sqrt(lead step) / sqrt(2), i.e.
    errors of a random-walk size (white in space): around the ensemble centre
    y + s c the truth (offset -s c) and each member (offset s e_i) have the same law, so
    the ensemble is reliable (flat rank histogram, spread/skill 1) with error growing
    with lead time.

    Args:
      truth: canonical dataset with a regular `time` axis.
      init_times: datetime64 initialisation times present in truth.
      lead_steps: lead times in units of the truth's time step (e.g. [1, 2, 3]).
    Returns:
      Dataset (sample, init_time, lead_time, [level,] lat, lon) with `valid_time`.
    """
    rng = np.random.default_rng(seed)
    truth = truth[[v for v in truth.data_vars if "time" in truth[v].dims]]  # drop statics
    step = truth["time"].values[1] - truth["time"].values[0]
    lead = np.asarray(lead_steps) * step
    init = np.asarray(init_times, dtype=truth["time"].dtype)
    valid = init[:, None] + lead[None, :]
    sel = truth.sel(
        time=xarray.DataArray(
            valid, dims=["init_time", "lead_time"], coords={"init_time": init, "lead_time": lead}
        )
    )
    sel = sel.drop_vars("time", errors="ignore")
    out = {}
    for name, da in sel.data_vars.items():
        std = float(truth[name].diff("time").std())
        g = xarray.DataArray(np.sqrt(np.asarray(lead_steps, float)), dims=["lead_time"])
        shape = (num_members,) + da.shape
        noise = xarray.DataArray(rng.standard_normal(shape), dims=("sample",) + da.dims)
        centre = xarray.DataArray(rng.standard_normal(da.shape), dims=da.dims)
        out[name] = da + spread * std / np.sqrt(2) * g * (centre + noise)
    ds = xarray.Dataset(out).transpose("sample", "init_time", "lead_time", ...)
    return ds.assign_coords(valid_time=ds["init_time"] + ds["lead_time"])
