# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · The GenCast state: variables, levels, poles, normalisation
#
# **What you will build.** One training example of GenCast, from raw fields to the
# arrays the network eats: two input frames, a normalised residual target and the
# forcings, stacked into $[\text{lat}, \text{lon}, \text{channel}]$. We use the embedded
# *toy planet* — one simulated year of a dry Earth-like atmosphere on a 5.625° grid that
# ships with the repository — so everything runs offline. The real thing (ERA5 at 1° or
# 0.25°, 84 target channels) has the same layout with more variables and levels.
#
# **Learning goals**
#
# 1. The canonical layout: variables, pressure levels, an equiangular grid *with poles*.
# 2. Normalisation *by level*: $(x - \mu_{v,\ell})/\sigma_{v,\ell}$ for inputs.
# 3. Residual targets: GenCast predicts $(y_{t+1} - y_t)/\sigma^\Delta_{v,\ell}$, and why
#    those have unit variance.
# 4. The two-frame input $(X_{t-1}, X_t)$ and the forcings known at the target time.
# 5. How all of that becomes one array with DeepMind's channel order.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import xarray

import _style  # tutorials/_style.py: the projector-ready figure style
from minigencast import channel_order, config, data, metrics, normalization, stacking, variables
from minigencast.data import windows

# "tiny" in CI (seconds), "tutorial" for readers. Both read the same embedded data;
# tiny computes statistics over fewer time steps.
SIZE = os.environ.get("MINIGENCAST_SIZE", "tutorial")
assert SIZE in ("tiny", "tutorial"), SIZE
NUM_TIMES = 40 if SIZE == "tiny" else None  # None: the whole training split
rng = np.random.default_rng(0)
TASK = config.TOY_PLANET_TASK

ds = data.load_embedded("train")
if NUM_TIMES:
    ds = ds.isel(time=slice(0, NUM_TIMES))
ds = ds.load()
print(
    f"size={SIZE}: {ds.sizes['time']} times from {str(ds.time.values[0])[:16]} "
    f"to {str(ds.time.values[-1])[:16]}"
)
print(ds)

# %% [markdown]
# ## 1. Variables and levels
#
# The state $X_t$ of GenCast is a set of 2-D surface fields and 3-D atmospheric fields
# on pressure levels (13 levels from 50 to 1000 hPa for the real model; 250, 500 and
# 850 hPa here). Names follow ERA5/WeatherBench-2; `variables` holds units and long names.
# Two static fields (surface geopotential, land–sea mask) are inputs only.

# %%
for name, da in ds.data_vars.items():
    kind = "static" if "time" not in da.dims else ("levels" if "level" in da.dims else "surface")
    print(f"{name:26s} {kind:8s} [{variables.units(name)}]  {variables.long_name(name)}")
print("levels (hPa):", ds.level.values, " task levels:", TASK.pressure_levels)

# %%
t0 = ds.time.values[-1]
fields = [
    ("2m_temperature", None),
    ("mean_sea_level_pressure", None),
    ("geopotential", 500),
    ("u_component_of_wind", 250),
]
fig, axes = plt.subplots(2, 2, figsize=(12, 6))
for ax, (name, level) in zip(axes.ravel(), fields, strict=True):
    da = ds[name].sel(time=t0)
    if level is not None:
        da = da.sel(level=level)
    im = ax.pcolormesh(ds.lon, ds.lat, da, cmap="RdBu_r" if "wind" in name else "viridis")
    fig.colorbar(im, ax=ax, label=variables.units(name))
    ax.set_title(f"{name}" + (f" {level} hPa" if level else ""))
fig.suptitle(f"The toy planet at {str(t0)[:16]}")
_style.show()

# %% [markdown]
# ## 2. A grid with poles
#
# GenCast's grid is equiangular *including both poles*: $n_\text{lat} = 180/\Delta + 1$
# rows (181 at 1°, 33 here), latitudes ascending, longitudes from 0. A whole pole row is a
# single physical point, so scalar fields are constant along it (wind *components* are
# not: their direction depends on the longitude of the row). Because rows near the poles
# cover little area, every global average — the loss, the metrics — weights by cell area
# (tutorial 06 and 09).

# %%
lat = ds.lat.values
weights = metrics.latitude_weights(lat)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].plot(lat, weights, "o-", ms=3)
axes[0].set(xlabel="latitude", ylabel="weight (mean 1)", title="cell-area weights of the rows")
pole_spread = {
    n: float(ds[n].isel(lat=-1).std("lon").max())
    for n in ["temperature", "geopotential", "2m_temperature", "u_component_of_wind"]
}
axes[1].bar(list(pole_spread), list(pole_spread.values()))
axes[1].set(yscale="symlog", title="max spread along the north-pole row")
axes[1].tick_params(axis="x", labelsize=7)
_style.show()

# %% [markdown]
# ## 3. Normalisation by level
#
# Fields differ by orders of magnitude (geopotential ~$10^5$ m²/s², winds ~10 m/s), and
# the same variable differs between levels. GenCast normalises each (variable, level)
# with its climatological mean and standard deviation, computed over time and space:
#
# $$\tilde x_{v,\ell} = \frac{x_{v,\ell} - \mu_{v,\ell}}{\sigma_{v,\ell}}.$$
#
# The toy planet ships the statistics of its training split in DeepMind's file layout
# (`mean_by_level.nc`, `stddev_by_level.nc`, `diffs_stddev_by_level.nc`, `min_by_level.nc`).

# %%
stats = data.embedded_stats()
for name in ["temperature", "geopotential", "u_component_of_wind"]:
    print(
        f"{name:22s} mean {np.round(stats['mean'][name].values, 1)}  "
        f"std {np.round(stats['stddev'][name].values, 1)}"
    )

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for level in TASK.pressure_levels:
    z = ds["geopotential"].sel(level=level).values.ravel()
    axes[0].hist(z, bins=60, alpha=0.5, label=f"{level} hPa")
    zn = (z - stats["mean"]["geopotential"].sel(level=level).item()) / stats["stddev"][
        "geopotential"
    ].sel(level=level).item()
    axes[1].hist(zn, bins=60, alpha=0.5, label=f"{level} hPa")
axes[0].set(title="geopotential (m2 s-2)")
axes[1].set(title="normalised by level")
axes[0].legend()
_style.show()

# %% [markdown]
# ## 4. Residual targets
#
# GenCast does not predict $X_{t+1}$ but the *change* over 12 hours, normalised by the
# standard deviation of 12-hour differences $\sigma^\Delta_{v,\ell}$:
#
# $$Y = \frac{X_{t+1} - X_t}{\sigma^\Delta_{v,\ell}}.$$
#
# Slow, large-scale fields change little in 12 h compared with their climatological
# range, so $\sigma^\Delta \ll \sigma$: predicting the residual on its own scale gives the
# network a unit-variance target — exactly the $\sigma_\text{data} = 1$ that the EDM
# preconditioning of tutorial 02 assumes.

# %%
channels = channel_order.target_channels(TASK)
labels, ratios = [], []
for ch in channels:
    sel = {} if ch.level is None else {"level": ch.level}
    labels.append(
        f"{ch.variable.replace('_component_of_wind', '')}" + (f"@{ch.level}" if ch.level else "")
    )
    ratios.append(
        stats["diffs_stddev"][ch.variable].sel(sel).item()
        / stats["stddev"][ch.variable].sel(sel).item()
    )
fig, ax = plt.subplots(figsize=(9, 0.32 * len(labels) + 1.2))
ax.barh(labels, ratios)
ax.invert_yaxis()  # channels in stacking order, top to bottom
ax.set(xlabel="sigma_diff / sigma", title="12 h change relative to climatological spread")
_style.show()

# %% [markdown]
# ## 5. One example: two input frames, a target, forcings
#
# An example is a window of three consecutive times: inputs at $t-12\,\text{h}$ and $t$,
# target at $t + 12\,\text{h}$. `data.windows.window(ds, task, i)` cuts it around time
# index $i$ (the last input frame) in DeepMind's layout (`time` becomes the lead time).
# The *forcings* are known functions of time: the progress of the year and of the local
# day (which depends on longitude), as sines and cosines.

# %%
index = ds.sizes["time"] // 2
inputs, targets, forcings = windows.window(ds, TASK, index)
print("inputs times :", inputs.time.values.astype("timedelta64[h]"))
print("target times :", targets.time.values.astype("timedelta64[h]"))
print("forcings     :", list(forcings.data_vars))

fig, axes = plt.subplots(1, 2, figsize=(11, 3))
axes[0].plot(forcings.lon, forcings["day_progress_sin"].isel(batch=0, time=0), label="sin")
axes[0].plot(forcings.lon, forcings["day_progress_cos"].isel(batch=0, time=0), label="cos")
axes[0].set(xlabel="longitude", title="day progress at the target time (local solar time)")
axes[0].legend()
progress = data.forcings.year_progress(data.forcings.seconds_since_epoch(ds.time.values))
days = (ds.time.values - ds.time.values[0]) / np.timedelta64(1, "D")
axes[1].plot(days, np.sin(2 * np.pi * progress), label="sin")
axes[1].plot(days, np.cos(2 * np.pi * progress), label="cos")
axes[1].set(title="year progress", xlabel=f"days since {str(ds.time.values[0])[:10]}")
axes[1].legend()
_style.show()

# %% [markdown]
# ## 6. Into the network's layout
#
# Inputs are normalised by level (and forcings too), targets become normalised residuals;
# then `stacking.dataset_to_array` lays every (variable, time, level) out as one channel,
# in DeepMind's order: variables sorted alphabetically, time-major, level-minor. The
# network (tutorial 05) sees `[lat, lon, channel]`.

# %%
norm_inputs = normalization.normalize_inputs(inputs, stats).compute()
norm_targets = normalization.normalize_targets(targets, inputs, stats).compute()
x_in, in_channels = stacking.dataset_to_array(norm_inputs)
y_t, t_channels = stacking.dataset_to_array(norm_targets)
print("inputs  ", x_in.shape, "e.g.", in_channels[0])
print("targets ", y_t.shape, "e.g.", t_channels[3])

fig, axes = plt.subplots(1, 3, figsize=(14, 3))
t2m = [i for i, c in enumerate(t_channels) if c.variable == "2m_temperature"][0]
panels = [
    ("2m_temperature at t (K)", inputs["2m_temperature"].isel(batch=0, time=-1)),
    ("at t + 12 h (K)", targets["2m_temperature"].isel(batch=0, time=0)),
    ("normalised residual target", y_t[0, ..., t2m]),
]
for ax, (title, field) in zip(axes, panels, strict=True):
    im = ax.pcolormesh(
        ds.lon, ds.lat, np.asarray(field), cmap="RdBu_r" if "residual" in title else "viridis"
    )
    fig.colorbar(im, ax=ax)
    ax.set_title(title)
_style.show()

# %% [markdown]
# **Check.** Over the data, normalised inputs have mean ≈ 0 and standard deviation ≈ 1 per
# (variable, level), and so do residual targets (their mean is ≈ 0 because 12-hour changes
# average out). Channels come in `channel_order.input_channels` order. With the full training
# split the numbers are those the statistics were computed on; at tiny size (a few
# weeks) they only roughly agree, hence the loose tolerance.

# %%
norm_all = normalization.normalize(ds[list(TASK.target_variables)], stats)
residual = ds[list(TASK.target_variables)].diff("time") / stats["diffs_stddev"]
tol = 0.05 if NUM_TIMES is None else 0.6
for name in TASK.target_variables:
    std_x = norm_all[name].std(["time", "lat", "lon"]).values
    std_r = residual[name].std(["time", "lat", "lon"]).values
    assert np.all(np.abs(std_x - 1) < tol), (name, std_x)
    assert np.all(np.abs(std_r - 1) < tol), (name, std_r)
assert in_channels == channel_order.input_channels(TASK)
assert t_channels == channel_order.target_channels(TASK)
print("normalised fields and residuals have unit scale; channel order as stacking says")

# %% [markdown]
# ## Exercises
#
# 1. Which target channel changes least in 12 h relative to its spread? Why would
#    predicting the full state (not the residual) be harder for it?
# 2. Compute the area-weighted global mean of 2 m temperature through the year with
#    `metrics.latitude_weights`. How different is the unweighted mean, and why?
# 3. The grid has 33 rows. How many distinct physical points does it have?
#
# <details><summary>Solutions</summary>
#
# 1. The geopotential (upper levels): $\sigma^\Delta/\sigma$ is smallest. A network
#    predicting $X_{t+1}$ directly must reproduce a field of spread $\sigma$ to an accuracy
#    far below $\sigma^\Delta$: almost all of its output would be copying $X_t$.
# 2. `(ds["2m_temperature"] * xarray.DataArray(metrics.latitude_weights(ds.lat), dims="lat",
#    coords={"lat": ds.lat})).mean(["lat", "lon"])`. The unweighted mean counts the cold
#    polar rows as much as the tropics, although they cover far less area: it is colder.
# 3. $31 \times 64 + 2 = 1986$: each pole row is one point.
#
# </details>
#
# ## Where this lives in the package
#
# | concept | module |
# |---|---|
# | variable names, units, task configs | `minigencast/variables.py`, `minigencast/config.py` |
# | the embedded dataset, canonical and DeepMind layouts | `minigencast/data/__init__.py`, `minigencast/data/layouts.py` |
# | windows of (inputs, targets, forcings) | `minigencast/data/windows.py` |
# | progress forcings | `minigencast/data/forcings.py` |
# | statistics, normalisation, residuals and their inverse | `minigencast/normalization.py` |
# | channel order, Dataset ↔ array | `minigencast/stacking.py` |
# | the same pipeline on arrays, for training and rollouts | `minigencast/arrays.py` (tutorials 06, 08) |
#
# The last check: normalisation and residuals by hand equal the package's, the inverse
# recovers the target exactly, and the statistics recomputed by hand from this data equal
# `normalization.compute_stats`.

# %%
mean, std, dstd = stats["mean"], stats["stddev"], stats["diffs_stddev"]
by_hand_in = (inputs["temperature"] - mean["temperature"]) / std["temperature"]
np.testing.assert_allclose(by_hand_in, norm_inputs["temperature"], rtol=1e-5, atol=1e-5)
by_hand_res = (targets["geopotential"] - inputs["geopotential"].isel(time=-1, drop=True)) / dstd[
    "geopotential"
]
np.testing.assert_allclose(by_hand_res, norm_targets["geopotential"], rtol=1e-4, atol=1e-4)
back = normalization.unnormalize_targets(norm_targets, inputs, stats)
for name in TASK.target_variables:
    np.testing.assert_allclose(back[name], targets[name], rtol=1e-5, atol=1e-4)

small = ds.isel(time=slice(0, 20))
computed = normalization.compute_stats(small)
sub = small["temperature"]
np.testing.assert_allclose(
    computed["mean"]["temperature"], sub.mean(["time", "lat", "lon"]), rtol=1e-5
)
np.testing.assert_allclose(
    computed["stddev"]["temperature"], sub.std(["time", "lat", "lon"]), rtol=1e-4
)
np.testing.assert_allclose(
    computed["diffs_stddev"]["temperature"], sub.diff("time").std(["time", "lat", "lon"]), rtol=1e-4
)
print("hand-built normalisation, residuals and statistics == the package's")
assert isinstance(ds, xarray.Dataset)
