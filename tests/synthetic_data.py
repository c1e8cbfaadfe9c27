"""Small synthetic canonical datasets and statistics for the training/forecast tests.

Smooth random fields with a 12-hourly AR(1) evolution on an equiangular grid with
poles, holding the toy-planet task's variables, so tests run in seconds and do not
depend on the embedded dataset.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pandas as pd
import xarray

from minigencast import config, network, variables

SCALE = {
    "2m_temperature": (280.0, 10.0),
    "mean_sea_level_pressure": (101000.0, 800.0),
    "10m_u_component_of_wind": (0.0, 5.0),
    "10m_v_component_of_wind": (0.0, 5.0),
    "temperature": (250.0, 10.0),
    "geopotential": (50000.0, 2000.0),
    "u_component_of_wind": (5.0, 10.0),
    "v_component_of_wind": (0.0, 8.0),
}


def dataset(
    num_times=40,
    n_lat=13,
    n_lon=24,
    levels=variables.TOY_PLANET_LEVELS,
    seed=0,
    start="2000-01-01T00:00",
):
    """Canonical Dataset (time, [level,] lat, lon) with the toy-planet variables."""
    rng = np.random.default_rng(seed)
    lat = np.linspace(-90, 90, n_lat)
    lon = np.arange(n_lon) * 360.0 / n_lon
    times = pd.date_range(start, periods=num_times, freq="12h").values
    phase = np.cos(np.deg2rad(lat))[:, None] * np.cos(np.deg2rad(lon))[None]
    data = {}
    for name, (mean, std) in SCALE.items():
        shape = (
            (num_times, len(levels), n_lat, n_lon)
            if name in SCALE and name in (variables.TOY_PLANET_ATMOSPHERIC_VARIABLES)
            else (num_times, n_lat, n_lon)
        )
        x = np.zeros(shape)
        x[0] = rng.standard_normal(shape[1:])
        for t in range(1, num_times):
            x[t] = 0.9 * x[t - 1] + 0.3 * rng.standard_normal(shape[1:]) + 0.2 * np.sin(t) * phase
        dims = ("time", "level", "lat", "lon") if len(shape) == 4 else ("time", "lat", "lon")
        data[name] = (dims, (mean + std * x).astype(np.float32))
    data["geopotential_at_surface"] = (("lat", "lon"), np.zeros((n_lat, n_lon), np.float32))
    data["land_sea_mask"] = (("lat", "lon"), (phase > 0.3).astype(np.float32))
    return xarray.Dataset(
        data, coords={"time": times, "level": list(levels), "lat": lat, "lon": lon}
    )


def stats(ds):
    """DeepMind-layout statistics of `ds`: {"mean", "stddev", "diffs_stddev", "min"}."""
    dims = [d for d in ("time", "lat", "lon") if d in ds.dims]
    mean = ds.mean(dims)
    std = ds.std(dims)
    diffs = ds.diff("time").std(dims)
    # Forcings are absent from these stats: left unnormalised, as DeepMind allows.
    std = std.where(std > 0, 1.0)
    diffs = diffs.where(diffs > 0, 1.0)
    return {"mean": mean, "stddev": std, "diffs_stddev": diffs, "min": ds.min(dims)}


def tiny_model(num_noise_levels=4):
    """(cfg, params): `config.tiny()` with a short sampler and freshly initialised weights."""
    cfg = config.tiny()
    cfg = dataclasses.replace(
        cfg,
        sampler_config=dataclasses.replace(cfg.sampler_config, num_noise_levels=num_noise_levels),
    )
    return cfg, network.init_denoiser(jax.random.key(0), cfg, *network.channel_counts(cfg))


def forecast_setup(num_times=16):
    """(cfg, ds, stats, params): the tiny model with its zero-initialised output layers
    perturbed, so the network is not an identity, and a synthetic dataset."""
    cfg, params = tiny_model()
    ds = dataset(num_times=num_times)
    params = jax.tree_util.tree_map(
        lambda p: p + 0.05 * jax.random.normal(jax.random.key(1), p.shape), params
    )
    return cfg, ds, stats(ds), params
