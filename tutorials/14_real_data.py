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
# # 14 · From an ERA5 download to GenCast's inputs, step by step
#
# **What you will build.** The conversion users of DeepMind's code ask about again and
# again: a file as the Copernicus Climate Data Store (CDS) delivers ERA5 — short
# variable names, latitudes from north to south, longitudes from −180°, hourly steps
# with hourly precipitation, sea-surface temperature missing over land — turned into
# GenCast's canonical inputs, one fix at a time, each with a picture and a check. At the
# end, the package's one-call converter `data.layouts.to_canonical` must give exactly
# the step-by-step result.
#
# **Learning goals**
#
# 1. Names and units: ERA5 short names → GenCast's names; geopotential (m² s⁻²) is not
#    geopotential height (m).
# 2. Grid order: ascending latitudes (south pole first), longitudes from 0°.
# 3. Precipitation: hourly accumulations → GenCast's 12 h accumulation, 00 and 12 UTC.
# 4. The SST NaN mask over land, and how it is filled before the network sees it.
# 5. Progress features (year and local day as sin/cos) and the four normalisation
#    statistics.
#
# **The data.** This notebook builds a CDS-shaped file from the package's synthetic
# sample (`data.synthetic.sample`: every GenCast variable, plausible values, no
# physics). **The seam for a real file:** set `MINIGENCAST_ERA5_SAMPLE` to a NetCDF or
# zarr path holding hourly ERA5 in CDS layout (single and pressure levels merged) and
# every cell below runs on it instead; the checks that only hold for the synthetic land
# mask say so.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

import _style  # tutorials/_style.py: the projector-ready figure style
from minigencast import normalization, variables
from minigencast.data import forcings, layouts, synthetic

# "tiny" in CI (seconds), "tutorial" for readers (seconds too: it is all data handling).
SIZE = os.environ.get("MINIGENCAST_SIZE", "tutorial")
assert SIZE in ("tiny", "tutorial"), SIZE
REAL_SAMPLE = os.environ.get("MINIGENCAST_ERA5_SAMPLE")  # the seam: a real ERA5 file
N_LAT, N_LON = (19, 36) if SIZE == "tiny" else (33, 64)
NUM_HOURS = 49 if SIZE == "tiny" else 97  # 2 or 4 days, hourly
LEVELS = (500, 850, 1000)
ERA5_SHORT = {long: short for short, long in variables.ERA5_NAMES.items()}


def cds_like_sample():
    """A synthetic hourly ERA5 download in the CDS layout (short names, north first, -180..180)."""
    ds = synthetic.sample(num_times=NUM_HOURS, n_lat=N_LAT, n_lon=N_LON, levels=LEVELS, seed=1)
    hours = pd.date_range("2019-03-28T00:00", periods=NUM_HOURS, freq="1h").values
    ds = ds.assign_coords(time=hours)
    rng = np.random.default_rng(2)
    tp_1h = np.abs(rng.standard_normal(ds[variables.PRECIPITATION].shape)) * 1e-4  # m per hour
    ds = ds.drop_vars(variables.PRECIPITATION).assign(
        total_precipitation=(("time", "lat", "lon"), tp_1h.astype(np.float32))
    )
    ds = ds.rename({k: v for k, v in ERA5_SHORT.items() if k in ds})
    ds = ds.rename({"geopotential": "z", "time": "valid_time", "level": "pressure_level"})
    ds = ds.rename({"lat": "latitude", "lon": "longitude"}).isel(latitude=slice(None, None, -1))
    lon = ds["longitude"].values
    ds = ds.assign_coords(longitude=np.where(lon >= 180, lon - 360, lon)).sortby("longitude")
    return ds


raw = xr.open_dataset(REAL_SAMPLE).load() if REAL_SAMPLE else cds_like_sample()
print("source:", REAL_SAMPLE or "synthetic, CDS layout")
print(raw)

# %% [markdown]
# ## 1. Names and units
#
# The CDS uses ECMWF's short names (`t2m`, `msl`, `z`, `tp`, ...); GenCast and
# WeatherBench use long ones. `variables.ERA5_NAMES` is the dictionary. `z` needs care:
# on pressure levels it is `geopotential`, at the surface (single levels)
# `geopotential_at_surface`; and the coordinates `latitude`, `longitude`,
# `pressure_level`, `valid_time` become `lat`, `lon`, `level`, `time`.

# %%
renames = {k: v for k, v in variables.ERA5_NAMES.items() if k in raw}
if "z" in raw:
    renames["z"] = (
        "geopotential" if "pressure_level" in raw["z"].dims else "geopotential_at_surface"
    )
coords = {"latitude": "lat", "longitude": "lon", "pressure_level": "level", "valid_time": "time"}
step1 = raw.rename(renames).rename({k: v for k, v in coords.items() if k in raw.variables})
units = {"total_precipitation": "m (per input step)"}  # becomes total_precipitation_12hr
rows = [(k, v, units.get(v) or variables.units(v)) for k, v in renames.items()]
print(pd.DataFrame(rows, columns=["ERA5", "GenCast", "units"]).to_string(index=False))

# %% [markdown]
# **Units.** ERA5's `z` is geopotential $\Phi = g\,h$ in m² s⁻²; some sources deliver
# geopotential *height* $h$ in metres, 9.8 times smaller. A model fed heights would see
# values far outside its statistics. The package refuses them with a clear message:

# %%
height = step1["geopotential"] / 9.80665
try:
    layouts.check_geopotential_units(height)
    raise AssertionError("geopotential height was not detected")
except ValueError as error:
    print("ValueError:", str(error)[:300])
layouts.check_geopotential_units(step1["geopotential"])  # the real thing passes
fig, ax = plt.subplots(figsize=(8, 4))
levels = step1["level"].values
ax.plot(step1["geopotential"].mean(["time", "lat", "lon"]), levels, "o-", label="Phi (m2 s-2)")
ax.plot(height.mean(["time", "lat", "lon"]), levels, "s--", label="Phi / g (m)")
ax.set(xscale="log", ylim=(1050, 400), ylabel="pressure (hPa)", title="geopotential vs height")
ax.legend()
_style.show()

# %% [markdown]
# ## 2. Grid order: latitudes ascending, longitudes from 0°
#
# ERA5 arrives with latitudes from +90 to −90 and, from the CDS, longitudes from −180;
# GenCast's grid (and DeepMind's example files) run latitudes from −90 to +90 and
# longitudes from 0. Reordering is a relabelling of the same values, but code that
# assumes an order (graphs, spherical harmonics, the latitude weights) silently breaks
# if it is skipped. Below, the array as stored (row 0 at the bottom): the raw file has
# the north pole in row 0.

# %%
step2 = step1.isel(lat=slice(None, None, -1)) if step1.lat[0] > step1.lat[-1] else step1
step2 = step2.assign_coords(lon=np.mod(step2["lon"], 360.0)).sortby("lon")
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
for ax, (title, ds) in zip(
    axes, [("raw: row 0 = lat 90", step1), ("canonical: row 0 = lat -90", step2)], strict=True
):
    image = ax.imshow(
        ds["2m_temperature"].isel(time=0).values, origin="lower", aspect="auto", cmap="RdYlBu_r"
    )
    ax.set(title=title, xlabel="column index", ylabel="row index")
fig.colorbar(image, ax=axes, label="2 m temperature (K)")
_style.show()

# %% [markdown]
# **Check.** Latitudes ascend from a pole, longitudes start at 0, and the values moved
# with their coordinates: the field at any (lat, lon) is the same before and after.

# %%
assert np.all(np.diff(step2.lat.values) > 0) and np.all(np.diff(step2.lon.values) > 0)
assert 0.0 <= float(step2.lon[0]) < float(step2.lon[1] - step2.lon[0])
for la, lo in [
    (step2.lat.values[0], 0.0),
    (step2.lat.values[-1], 180.0),
    (step2.lat.values[3], 270.0),
]:
    raw_lon = lo if lo < 180 else lo - 360
    before = step1["2m_temperature"].isel(time=0).sel(lat=la, lon=raw_lon, method="nearest")
    after = step2["2m_temperature"].isel(time=0).sel(lat=la, lon=lo, method="nearest")
    assert float(before) == float(after)
print(
    f"lat {float(step2.lat[0])} .. {float(step2.lat[-1])}, lon {float(step2.lon[0])} .. {float(step2.lon[-1])}"
)

# %% [markdown]
# ## 3. Precipitation: hourly → 12 hours
#
# GenCast predicts `total_precipitation_12hr`, the precipitation accumulated over the
# 12 h *ending* at the valid time, on steps at 00 and 12 UTC. The CDS gives `tp`
# accumulated over the hour ending at each time (WeatherBench-2 over 6 h). So: sum the
# $n = 12\,\text{h}/\Delta t$ accumulations ending at $t, t - \Delta t, \dots$, then keep
# 00 and 12 UTC. The first kept time needs 12 h of history; where it lacks them the
# package drops it.

# %%
step_h = int((step2.time.values[1] - step2.time.values[0]) / np.timedelta64(1, "h"))
n = 12 // step_h
tp = step2["total_precipitation"]
tp12 = tp.rolling(time=n, min_periods=n).sum()
keep = np.isin(pd.DatetimeIndex(step2.time.values).hour, [0, 12])
step3 = (
    step2.drop_vars("total_precipitation")
    .assign({variables.PRECIPITATION: tp12})
    .isel(time=np.nonzero(keep)[0])
)
if bool(step3[variables.PRECIPITATION].isel(time=0).isnull().all()):
    step3 = step3.isel(time=slice(1, None))  # no full 12 h window before the first time
point = {"lat": float(step3.lat[N_LAT // 2]), "lon": float(step3.lon[N_LON // 3])}
fig, ax = plt.subplots(figsize=(11, 4))
t0 = tp.time.values[0]
ax.bar(
    (tp.time.values - t0) / np.timedelta64(1, "h"),
    1e3 * tp.sel(point).values,
    width=0.9 * step_h,
    label=f"tp, {step_h} h (mm)",
)
ax.step(
    (step3.time.values - t0) / np.timedelta64(1, "h"),
    1e3 * step3[variables.PRECIPITATION].sel(point).values,
    where="pre",
    color="k",
    lw=2,
    label="12 h accumulation (mm)",
)
ax.set(
    ylabel="mm",
    xlabel=f"hours since {str(t0)[:13]} UTC",
    title=f"precipitation at lat {point['lat']:.0f}, lon {point['lon']:.0f}",
)
ax.legend()
_style.show()

# %% [markdown]
# **Check.** Every 12 h value is the sum of the hourly values of the 12 hours ending at
# its time, summed here with plain NumPy; the steps are 12 h apart at 00 and 12 UTC.

# %%
tp_np = tp.values  # [time, lat, lon]
times = tp.time.values
for i, t in enumerate(step3.time.values):
    j = int(np.nonzero(times == t)[0][0])
    np.testing.assert_allclose(
        step3[variables.PRECIPITATION].values[i], tp_np[j - n + 1 : j + 1].sum(0), rtol=1e-5
    )
assert set(pd.DatetimeIndex(step3.time.values).hour) <= {0, 12}
assert np.all(np.diff(step3.time.values) == np.timedelta64(12, "h"))
print(f"{step3.sizes['time']} times of 12 h from {tp.sizes['time']} hourly ones")

# %% [markdown]
# ## 4. Sea-surface temperature: NaN over land
#
# ERA5's SST is undefined over land and stored as NaN, and GenCast keeps the NaNs in
# its data (every other variable must be complete: `layouts.check_nans`). Before the
# network sees them, the normaliser replaces them by the *minimum* SST of the training
# statistics (DeepMind's `NaNCleaner`, `normalization.fill_nans`): a value inside the
# variable's range that marks "no sea".

# %%
sst = step3["sea_surface_temperature"].isel(time=0)
land = step3["land_sea_mask"] > 0.5
layouts.check_nans(step3)  # only SST may hold NaNs
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
mesh = axes[0].pcolormesh(step3.lon, step3.lat, sst, cmap="RdYlBu_r")
fig.colorbar(mesh, ax=axes[0], label="SST (K), white = NaN")
axes[0].set(title="SST as stored", xlabel="lon", ylabel="lat")
stats_partial = normalization.compute_stats(step3[["sea_surface_temperature"]])
filled = normalization.fill_nans(step3[["sea_surface_temperature"]], stats_partial["min"])
mesh = axes[1].pcolormesh(
    step3.lon, step3.lat, filled["sea_surface_temperature"].isel(time=0), cmap="RdYlBu_r"
)
fig.colorbar(mesh, ax=axes[1], label="SST (K)")
axes[1].set(title="after fill_nans (land = minimum SST)", xlabel="lon")
_style.show()

# %% [markdown]
# **Check.** The NaNs lie over land (for the synthetic sample: exactly where
# `land_sea_mask` is 1; a real file also has NaNs over some lakes and sea ice, so
# there the agreement is printed, not asserted), and filling puts the minimum SST there
# and nowhere else.

# %%
nan_mask = sst.isnull()
agreement = float((nan_mask == land).mean())
print(f"SST NaN mask agrees with land_sea_mask > 0.5 on {agreement:.1%} of the grid")
if not REAL_SAMPLE:
    assert agreement == 1.0
sst_min = float(stats_partial["min"]["sea_surface_temperature"])
np.testing.assert_allclose(
    float(np.nanmin(step3["sea_surface_temperature"].values)), sst_min, rtol=1e-6
)
after = filled["sea_surface_temperature"].isel(time=0).values
assert np.all(after[nan_mask.values] == np.float32(sst_min))
np.testing.assert_array_equal(after[~nan_mask.values], sst.values[~nan_mask.values])

# %% [markdown]
# ## 5. Progress features
#
# GenCast is told the time of year and the local time of day as four inputs it cannot
# get from the state: with $s$ the seconds since 1970-01-01,
#
# $$\text{year} = \operatorname{frac}\!\Big(\frac{s}{86400 \cdot 365.24219}\Big),\qquad
# \text{day}(\lambda) = \operatorname{frac}\!\Big(\frac{s}{86400} + \frac{\lambda}{360°}\Big),$$
#
# each as $\sin(2\pi\,\cdot)$ and $\cos(2\pi\,\cdot)$ (DeepMind's
# `data_utils.featurize_progress`). Day progress depends on longitude: it is local solar
# time. `data.forcings.add_progress_features` adds them (never overwriting).

# %%
step5 = forcings.add_progress_features(step3)
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
for i in range(min(3, step5.sizes["time"])):
    t = pd.Timestamp(step5.time.values[i])
    axes[0].plot(step5.lon, step5["day_progress_sin"].isel(time=i), label=f"{t:%d %b %H} UTC")
axes[0].set(xlabel="longitude", ylabel="sin(2 pi day progress)", title="local time of day")
axes[0].legend()
days = (step5.time.values - step5.time.values[0]) / np.timedelta64(1, "D")
axes[1].plot(days, step5["year_progress_sin"], "o-", label="sin")
axes[1].plot(days, step5["year_progress_cos"], "s-", label="cos")
axes[1].set(
    title="year progress", ylabel="value", xlabel=f"days since {str(step5.time.values[0])[:13]}"
)
axes[1].legend()
_style.show()

# %% [markdown]
# **Check.** The features by hand, from the formula above.

# %%
seconds = (step5.time.values - np.datetime64("1970-01-01T00:00:00")) / np.timedelta64(1, "s")
year = np.mod(seconds / 86400 / 365.24219, 1.0)
day = np.mod(seconds[:, None] / 86400 + step5.lon.values[None, :] / 360.0, 1.0)
np.testing.assert_allclose(step5["year_progress_sin"], np.sin(2 * np.pi * year), atol=1e-5)
np.testing.assert_allclose(step5["year_progress_cos"], np.cos(2 * np.pi * year), atol=1e-5)
np.testing.assert_allclose(step5["day_progress_sin"], np.sin(2 * np.pi * day), atol=1e-5)
np.testing.assert_allclose(step5["day_progress_cos"], np.cos(2 * np.pi * day), atol=1e-5)
print("progress features == sin/cos of the formulas")

# %% [markdown]
# ## 6. The normalisation statistics
#
# GenCast normalises every input by its mean and standard deviation, and its targets —
# the 12 h *changes* — by the standard deviation of the changes (`diffs_stddev`,
# tutorial 01); `min` fills the SST NaNs. `normalization.compute_stats` computes the
# four in DeepMind's file layout: one number per variable and level, averaged over
# time, latitude and longitude without area weights (as DeepMind's files are), NaNs
# skipped. For real use, compute them over years of data, not the few days here.

# %%
stats = normalization.compute_stats(step5)
ratio = {
    (name + (f"@{lev}" if lev is not None else "")): float(
        stats["diffs_stddev"][name].sel(level=lev) / stats["stddev"][name].sel(level=lev)
        if lev is not None
        else stats["diffs_stddev"][name] / stats["stddev"][name]
    )
    for name in sorted(stats["diffs_stddev"].data_vars)
    if "progress" not in name
    for lev in (
        stats["diffs_stddev"][name]["level"].values
        if "level" in stats["diffs_stddev"][name].dims
        else [None]
    )
}
fig, ax = plt.subplots(figsize=(9, 0.32 * len(ratio) + 1.5))
ax.barh(list(ratio), list(ratio.values()))
ax.invert_yaxis()
ax.set(xlabel="diffs_stddev / stddev", title="12 h change relative to spread (synthetic: noise)")
_style.show()

# %% [markdown]
# On the synthetic sample, the fields that are pure noise (10 m and upper-air $v$,
# $\omega$, mean sea-level pressure, precipitation) have ratios near $\sqrt2$: independent
# from one time to the next, a change has twice the variance of a value. Fields made of a
# fixed latitude profile plus a little noise (temperatures, geopotential) have small
# ratios: the profile counts in the spread but cancels in the change. Real weather is
# persistent and has ratios well below 1 (tutorial 01 shows the toy planet's).
#
# **Check.** The statistics by hand with NumPy (`nanmean`, `nanstd` over every axis
# but the level, differences along time) for two variables.

# %%
for name in ["2m_temperature", "temperature", "sea_surface_temperature"]:
    values = step5[name].values.astype(np.float64)
    axes_ = tuple(i for i, d in enumerate(step5[name].dims) if d != "level")
    np.testing.assert_allclose(
        stats["mean"][name].values, np.nanmean(values, axis=axes_), rtol=1e-5
    )
    np.testing.assert_allclose(
        stats["stddev"][name].values, np.nanstd(values, axis=axes_), rtol=1e-4
    )
    diffs = np.diff(values, axis=0)
    np.testing.assert_allclose(
        stats["diffs_stddev"][name].values, np.nanstd(diffs, axis=axes_), rtol=1e-4
    )
    np.testing.assert_allclose(stats["min"][name].values, np.nanmin(values, axis=axes_), rtol=1e-6)
print("mean, stddev, diffs_stddev, min == NumPy by hand")
if not REAL_SAMPLE:  # the synthetic sample's construction, read back from the ratios
    assert abs(ratio["10m_v_component_of_wind"] - np.sqrt(2)) < 0.1, ratio
    assert ratio["geopotential@500"] < 0.3, ratio

# %% [markdown]
# ## Exercises
#
# 1. Give `to_canonical` 3-hourly data (`raw.isel(valid_time=slice(None, None, 3))`).
#    What does it say, and why?
# 2. Drop one hour from the middle of `raw`. Which step refuses, and what does the
#    message suggest?
# 3. Convert the result to DeepMind's example layout with `layouts.to_deepmind` and
#    back with `layouts.from_deepmind`. What changes in the `time` coordinate?
#
# <details><summary>Solutions</summary>
#
# 1. It refuses: `tp` accumulates over 1 h but the data are every 3 h, so a 12 h sum of
#    the kept values would miss two hours out of three. Provide 3-hourly accumulations.
# 2. The regularity check: "Irregular time steps ... gaps at ...", suggesting to fill or
#    drop the gap or split the data — a window must not straddle a gap.
# 3. `time` becomes the lead from the first time (0, 12 h, ...) and the dates move to
#    a `datetime` coordinate with a `batch` dimension; `from_deepmind` restores them.
#
# </details>
#
# ## Where this lives in the package
#
# | concept | module |
# |---|---|
# | names, grid order, 12 h precipitation, checks, `to_canonical` | `minigencast/data/layouts.py` |
# | ERA5 short names, units | `minigencast/variables.py` |
# | progress features | `minigencast/data/forcings.py` |
# | statistics, NaN fill, normalisation | `minigencast/normalization.py` |
# | the same from the command line | `minigencast data ...`, `minigencast stats` (`minigencast/cli.py`) |
#
# The last check: the package's one call, `layouts.to_canonical(raw)`, gives exactly the
# step-by-step dataset of sections 1–3 (values, coordinates, variables).

# %%
canonical = layouts.to_canonical(raw)
mine = step3[list(canonical.data_vars)].transpose(*canonical.dims)
for name in canonical.data_vars:
    np.testing.assert_allclose(
        canonical[name].values, mine[name].transpose(*canonical[name].dims).values, rtol=1e-6
    )
for c in ["time", "level", "lat", "lon"]:
    np.testing.assert_array_equal(canonical[c].values, mine[c].values)
assert set(canonical.data_vars) == set(step3.data_vars)
print(f"to_canonical(raw) == the step-by-step result: {len(canonical.data_vars)} variables")
