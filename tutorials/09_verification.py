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
# # 09 · Verifying an ensemble
#
# **What you will build.** The scorecard GenCast is judged by: CRPS (fair and
# traditional), the RMSE of the ensemble mean, spread/skill, rank histograms, relative
# economic value and the spatially pooled CRPS — and the persistence and climatology
# baselines every forecast must beat. To see what each score rewards, we score
# *synthetic* ensembles whose reliability we control (calibrated, under- and
# over-dispersive, spatially incoherent) against the toy planet's test data; tutorial 08
# produces real GenCast forecasts in the same layout.
#
# **Learning goals**
#
# 1. CRPS $= \mathbb E|X - y| - \tfrac12\mathbb E|X - X'|$, its ensemble estimators, and
#    why GenCast reports the *fair* one.
# 2. Spread/skill and rank histograms as reliability diagnostics.
# 3. Relative economic value for threshold events.
# 4. Why per-point scores miss spatial structure, and how pooling finds it.
# 5. Baselines: persistence and climatology.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import scipy.ndimage
import scipy.stats
import xarray as xr

import _style  # tutorials/_style.py: the projector-ready figure style
from minigencast import baselines, data, metrics

# "tiny" in CI (seconds), "tutorial" for readers.
SIZE = os.environ.get("MINIGENCAST_SIZE", "tutorial")
assert SIZE in ("tiny", "tutorial"), SIZE
NUM_MEMBERS = 8 if SIZE == "tiny" else 16
NUM_INITS = 3 if SIZE == "tiny" else 12
NUM_LEADS = 4 if SIZE == "tiny" else 10  # 12 h steps
NUM_TRIALS = 2_000 if SIZE == "tiny" else 20_000
rng = np.random.default_rng(0)
print(f"size={SIZE}: {NUM_MEMBERS} members, {NUM_INITS} initial times, {NUM_LEADS} leads")

# %% [markdown]
# ## 1. CRPS of one number
#
# For a forecast distribution with CDF $F$ and an outcome $y$,
#
# $$\text{CRPS}(F, y) = \int (F(z) - \mathbb 1[z \ge y])^2\,\mathrm dz
#   = \mathbb E|X - y| - \tfrac12\,\mathbb E|X - X'|,$$
#
# with $X, X'$ independent draws from $F$. It rewards being close (first term, *skill*)
# and penalises nothing for being spread out *per se* (second term, *spread*); it is
# *proper*: the expected score is best when $F$ is the true distribution. For
# $F = \mathcal N(\mu, s^2)$ and $z = (y-\mu)/s$:
# $\text{CRPS} = s\big[z(2\Phi(z) - 1) + 2\varphi(z) - 1/\sqrt\pi\big]$.
#
# With an $M$-member ensemble the spread term must be estimated. Dividing
# $\sum_{ij}|x_i - x_j|$ by $2M^2$ (*traditional*: the CRPS of the ensemble's empirical
# CDF) biases the score upwards by $\tfrac{1}{2M}\mathbb E|X-X'|$ ($= s/(\sqrt\pi M)$ for
# a Gaussian): small ensembles look worse. Dividing by $2M(M-1)$ (*fair*, Ferro 2014)
# is unbiased for every $M$ — so a 50-member GenCast ensemble and an 8-member one are
# compared on equal terms.


# %%
def gaussian_crps(mu, s, y):
    z = (y - mu) / s
    return s * (
        z * (2 * scipy.stats.norm.cdf(z) - 1) + 2 * scipy.stats.norm.pdf(z) - 1 / np.sqrt(np.pi)
    )


y_obs, s_true = 0.7, 1.0
exact = gaussian_crps(0.0, s_true, y_obs)
sizes = [2, 4, 8, 16, 32]
mean_scores = {"fair": [], "traditional": []}
for m in sizes:
    members = xr.DataArray(rng.standard_normal((m, NUM_TRIALS)), dims=["sample", "trial"])
    truth = xr.DataArray(np.full(NUM_TRIALS, y_obs), dims=["trial"])
    for name, fair in [("fair", True), ("traditional", False)]:
        mean_scores[name].append(float(metrics.crps(members, truth, fair=fair)))

fig, ax = plt.subplots(figsize=(5, 3.5))
for name, values in mean_scores.items():
    ax.plot(sizes, values, "o-", label=name)
ax.plot(
    sizes,
    [exact + s_true / (np.sqrt(np.pi) * m) for m in sizes],
    "k:",
    label="exact + s/(sqrt(pi) M)",
)
ax.axhline(exact, color="k", lw=0.8, label="exact CRPS of N(0, 1)")
ax.set(xscale="log", xlabel="ensemble size M", ylabel="mean CRPS", title=f"y = {y_obs}")
ax.set_xticks(sizes, [str(m) for m in sizes])
ax.xaxis.set_minor_formatter(plt.NullFormatter())
ax.legend()
_style.show()

# %% [markdown]
# **Check.** The fair estimate averages to the exact CRPS at every $M$; the traditional
# one to the exact value plus $s/(\sqrt\pi M)$ (tolerance: 5 Monte-Carlo standard errors).

# %%
for i, m in enumerate(sizes):
    se = 1.5 / np.sqrt(NUM_TRIALS)  # generous bound on the score's standard error
    assert abs(mean_scores["fair"][i] - exact) < 5 * se, (m, mean_scores["fair"][i], exact)
    bias = s_true / (np.sqrt(np.pi) * m)
    assert abs(mean_scores["traditional"][i] - exact - bias) < 5 * se
print(f"exact CRPS {exact:.4f}; fair estimates {np.round(mean_scores['fair'], 4)}")

# %% [markdown]
# ## 2. Ensembles on the toy planet
#
# Truth: the toy planet's test split. Forecast layout (as tutorial 08 writes it): dims
# `(sample, init_time, lead_time, lat, lon)`. We build ensembles with a known error
# structure around the truth $y$: a common error $e_0$ and member deviations $e_i$,
#
# $$x_i = y + e_0 + \lambda\,e_i,\qquad e_0, e_i \sim \text{smooth noise of std } \sigma(\tau) \propto \sqrt{\tau}.$$
#
# With $\lambda = 1$ the truth is statistically indistinguishable from a member
# (*calibrated*); $\lambda = 0.4$ is over-confident, $\lambda = 2.5$ under-confident.
# A fourth ensemble has the right spread but *pixel-wise* independent noise: right at
# every point, unrealistic as a map.

# %%
truth_ds = data.embedded_truth()
test = data.load_embedded("test")
init_times = test.time.values[2 : 2 + 2 * NUM_INITS : 2]
lead_times = np.arange(1, NUM_LEADS + 1) * np.timedelta64(12, "h")
name = "2m_temperature"
truth = truth_ds[name].load()
valid = init_times[:, None] + lead_times[None, :]
y = truth.sel(time=valid.ravel()).values.reshape(valid.shape + truth.shape[1:])
shape = (NUM_MEMBERS,) + y.shape  # [sample, init, lead, lat, lon]
lead_scale = 0.8 * np.sqrt(np.arange(1, NUM_LEADS + 1))[None, :, None, None]  # K


def smooth_noise(shape, width=2.0):
    """Unit-variance noise, smooth over a few grid cells (wrapping in longitude)."""
    e = scipy.ndimage.gaussian_filter(
        rng.standard_normal(shape), sigma=width, axes=(-2, -1), mode=("nearest", "wrap")
    )
    return e / e.std()


def as_forecast(values):
    return xr.DataArray(
        values,
        dims=["sample", "init_time", "lead_time", "lat", "lon"],
        coords={
            "sample": np.arange(values.shape[0]),
            "init_time": init_times,
            "lead_time": lead_times,
            "lat": truth.lat,
            "lon": truth.lon,
        },
        name=name,
    )


common = lead_scale * smooth_noise(y.shape)
ensembles = {
    f"lambda = {lam}": as_forecast(y + common + lam * lead_scale * smooth_noise(shape))
    for lam in [1.0, 0.4, 2.5]
}
ensembles["pixel noise"] = as_forecast(y + common + lead_scale * rng.standard_normal(shape))

fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
panels = (
    [("truth", y[0, -1])]
    + [(f"member {i}, calibrated", ensembles["lambda = 1.0"].values[i, 0, -1]) for i in range(2)]
    + [("member 0, pixel noise", ensembles["pixel noise"].values[0, 0, -1])]
)
for ax, (title, field) in zip(axes, panels, strict=True):
    mesh = ax.pcolormesh(truth.lon, truth.lat, field, vmin=240, vmax=310)
    ax.set_title(title)
fig.colorbar(mesh, ax=axes, shrink=0.8, label="K")
fig.suptitle(f"{name}, lead {NUM_LEADS * 12} h")
_style.show()

# %% [markdown]
# ## 3. Skill and reliability
#
# * CRPS (fair), averaged with cell-area weights over the globe and the initial times.
# * RMSE of the ensemble mean $\bar x$.
# * Spread/skill $= \sqrt{(M+1)/M}\,\sqrt{\overline{s^2}}/\text{RMSE}$: 1 for a reliable
#   ensemble, because then $\mathbb E(\bar x - y)^2 = (1 + 1/M)\,\mathbb E s^2$.
# * Rank histogram: the rank of $y$ among the members; flat when $y$ is exchangeable with
#   them, U-shaped when the ensemble is too narrow, dome-shaped when too wide.

# %%
kw = dict(preserve_dims=["lead_time"])
scores = {
    k: {
        "crps": metrics.crps(f, truth, **kw),
        "rmse": metrics.rmse(f, truth, **kw),
        "ssr": metrics.spread_skill_ratio(f, truth, **kw),
    }
    for k, f in ensembles.items()
}
hours = lead_times / np.timedelta64(1, "h")
fig, axes = plt.subplots(1, 4, figsize=(17, 3.5))
for k, s in scores.items():
    axes[0].plot(hours, s["crps"], "o-", ms=3, label=k)
    axes[1].plot(hours, s["rmse"], "o-", ms=3, label=k)
    axes[2].plot(hours, s["ssr"], "o-", ms=3, label=k)
axes[0].set(title="CRPS (K)", xlabel="lead (h)")
axes[1].set(title="RMSE of the ensemble mean (K)", xlabel="lead (h)")
axes[2].set(title="spread / skill", xlabel="lead (h)")
axes[2].axhline(1, color="k", lw=0.5)
axes[0].legend()
for k in ["lambda = 1.0", "lambda = 0.4", "lambda = 2.5"]:
    hist = metrics.rank_histogram(ensembles[k], truth)
    axes[3].step(hist["rank"], hist, where="mid", label=k)
axes[3].axhline(1 / (NUM_MEMBERS + 1), color="k", lw=0.5)
axes[3].set(title="rank histogram", xlabel="rank of the truth")
_style.show()

# %% [markdown]
# All three smooth ensembles share the same common error $e_0$; their ensemble means
# differ only by the member noise left in a finite mean ($\lambda^2\sigma^2/M$), so the
# widest ensemble's RMSE is a little larger. The CRPS separates them clearly: both
# mis-calibrated ensembles score worse than the calibrated one, although the
# over-confident one has the best ensemble mean. The pixel-noise ensemble is as reliable
# as the calibrated one at every point: per-point
# scores cannot tell a realistic map from noise. Section 5 fixes that.
#
# ## 4. Relative economic value
#
# A user who can protect against an event (say, 2 m temperature above its local 90th
# percentile) at cost $C$, or else risks a loss $L$, acts when the forecast probability
# exceeds some $p_t$. Relative economic value compares their expense with never/always
# protecting (climatology, 0) and with a perfect forecast (1), as a function of
# $\alpha = C/L$, taking the best $p_t$. An ensemble beats its own mean (a single
# deterministic forecast) because it offers many decision thresholds.

# %%
thresholds = metrics.climatological_thresholds(truth, 0.9)
alphas = np.linspace(0.02, 0.98, 25)
fig, ax = plt.subplots(figsize=(5.5, 3.5))
calibrated = ensembles["lambda = 1.0"]
for label, fc in [
    ("ensemble (calibrated)", calibrated),
    ("ensemble (over-confident)", ensembles["lambda = 0.4"]),
    ("ensemble mean only", calibrated.mean("sample").expand_dims(sample=1)),
]:
    rev = metrics.relative_economic_value(fc.isel(lead_time=-1), truth, thresholds, alphas)
    ax.plot(alphas, rev.squeeze(), label=label)
ax.set(
    ylim=(-0.2, 1),
    xlabel="cost/loss ratio C/L",
    ylabel="REV",
    title=f"event: {name} > local 90th percentile",
)
ax.axhline(0, color="k", lw=0.5)
ax.legend()
_style.show()

# %% [markdown]
# ## 5. Pooled CRPS: scoring the map, not the pixels
#
# GenCast's paper scores *spatially pooled* fields: average (or maximum) the members and
# the truth over discs of radius $r$, then compute the CRPS. A member made of pixel noise
# averages out over a disc — its pooled spread collapses while the truth's pooled value
# keeps its uncertainty — and the score exposes it. A realistic ensemble keeps a
# realistic spread at every scale.

# %%
radii = [500.0, 1000.0, 2000.0] if SIZE == "tiny" else [250.0, 500.0, 1000.0, 2000.0, 4000.0]
fig, ax = plt.subplots(figsize=(5.5, 3.5))
pooled = {}
for k in ["lambda = 1.0", "pixel noise"]:
    fc = ensembles[k].isel(lead_time=-1)
    pooled[k] = metrics.pooled_crps(fc, truth, radii, centre_stride=2, preserve_dims=["radius_km"])
    ax.plot(radii, pooled[k], "o-", label=k)
ax.set_xscale("log")
ax.set_xticks(radii, [f"{r:.0f}" for r in radii])
ax.minorticks_off()
ax.set(
    xlabel="pool radius (km)",
    ylabel="pooled CRPS (K)",
    title=f"average pooling, lead {NUM_LEADS * 12} h",
)
ax.legend()
_style.show()

# %% [markdown]
# ## 6. Baselines
#
# Every skill claim needs a reference. *Persistence* forecasts the initial state for
# every lead; *climatology* the average state of the same time of year; a
# *climatological ensemble* samples states of the same season as members. (The toy
# planet has a single year, so "climatology" here is built from nearby days of the same
# year, excluding a week around the valid time — a generous baseline.)

# %%
persistence = baselines.persistence(truth_ds[[name]], init_times, lead_times)[name]
clim_ens = baselines.climatological_ensemble(
    truth_ds[[name]].load(),
    init_times,
    lead_times,
    num_members=NUM_MEMBERS,
    window_days=20,
    exclude_days=4,
)[name]
ref = {
    "persistence": metrics.crps(persistence, truth, fair=False, **kw),
    "climatological ensemble": metrics.crps(clim_ens, truth, **kw),
}
fig, ax = plt.subplots(figsize=(5.5, 3.5))
ax.plot(hours, scores["lambda = 1.0"]["crps"], "o-", label="synthetic calibrated ensemble")
for k, v in ref.items():
    ax.plot(hours, v, "s--", label=k)
ax.set(xlabel="lead (h)", ylabel="CRPS (K)", title=name)
ax.legend()
_style.show()
print(
    "CRPS skill vs climatology (1 - CRPS/CRPS_clim) at the last lead: "
    f"{1 - float(scores['lambda = 1.0']['crps'][-1] / ref['climatological ensemble'][-1]):.2f}"
)

# %% [markdown]
# **Check.** Reliability diagnostics behave as designed: spread/skill ≈ 1 and a flat rank
# histogram for $\lambda = 1$, < 1 and U-shaped for $\lambda = 0.4$, > 1 for
# $\lambda = 2.5$. The under-confident $\lambda = 2.5$ ensemble has the worst CRPS at
# every lead — its members scatter 2.5 times too far, and the CRPS charges for that
# spread — then the over-confident one, then the calibrated one, although all three
# share the common error. The Gaussian CRPS predicts this order: a forecast
# $\mathcal N(\mu, s^2)$ whose error $y - \mu$ is $\mathcal N(0, \sigma^2)$ scores on
# average $\sqrt{2(s^2+\sigma^2)/\pi} - s/\sqrt\pi$, which is $0.56\sigma$ at
# $s = \sigma$, $0.63\sigma$ at $s = 0.4\sigma$ and $0.74\sigma$ at $s = 2.5\sigma$.
# Pooling penalises the pixel-noise ensemble at large radii.

# %%
ssr = {k: float(s["ssr"].mean()) for k, s in scores.items()}
assert 0.8 < ssr["lambda = 1.0"] < 1.25, ssr
assert ssr["lambda = 0.4"] < 0.8 < 1.25 < ssr["lambda = 2.5"], ssr
flat = metrics.rank_histogram(ensembles["lambda = 1.0"], truth)
u_shape = metrics.rank_histogram(ensembles["lambda = 0.4"], truth)
np.testing.assert_allclose(float(flat.sum()), 1.0, rtol=1e-6)
assert float(u_shape[0] + u_shape[-1]) > 2 * float(flat[0] + flat[-1])
crps_lead = {k: s["crps"].values for k, s in scores.items()}
assert np.all(crps_lead["lambda = 2.5"] > crps_lead["lambda = 0.4"]), crps_lead  # every lead
assert np.all(crps_lead["lambda = 0.4"] > crps_lead["lambda = 1.0"]), crps_lead
assert float(pooled["pixel noise"][-1]) > float(pooled["lambda = 1.0"][-1])
print("spread/skill", {k: round(v, 2) for k, v in ssr.items()})

# %% [markdown]
# ## Exercises
#
# 1. Score the calibrated ensemble with `fair=False` for $M = 2$ and $M = 16$ members.
#    Which changes, and by how much, compared with `fair=True`?
# 2. Make the common error $e_0$ larger. What happens to the CRPS, the RMSE, and
#    spread/skill of the calibrated ensemble?
# 3. Use max-pooling (`pooling="max"`) on the pixel-noise ensemble. Why does its
#    pooled CRPS now grow with radius even faster?
#
# <details><summary>Solutions</summary>
#
# 1. `metrics.crps(calibrated.isel(sample=slice(0, 2)), truth, fair=False)` is larger
#    than the fair score by about half the mean member distance divided by $M$; at
#    $M = 16$ the difference is 8× smaller. The fair scores of both sizes agree.
# 2. Both CRPS and RMSE grow (the ensemble mean is further off), but the member spread
#    does not: it is $\lambda e_i$, which does not involve $e_0$. So spread/skill falls
#    below 1 and the rank histogram turns U-shaped — the truth is no longer exchangeable
#    with the members. The last cell of this notebook checks this with $e_0$ doubled.
# 3. The maximum of many independent pixels is biased high and has small spread: the
#    members' pooled maxima all sit above the truth's.
#
# </details>
#
# ## Where this lives in the package
#
# | concept | module |
# |---|---|
# | CRPS, RMSE, spread/skill, rank histograms, Brier, REV, pooled CRPS, spectra | `minigencast/metrics.py` |
# | persistence, climatology, climatological ensemble | `minigencast/baselines.py` |
# | plots and the paper's figures (`minigencast evaluate`) | `minigencast/plotting.py`, `minigencast/figures.py` |
#
# The last check: CRPS by brute force over all member pairs (both estimators), the
# ensemble-mean RMSE and the rank histogram by hand, against the package.

# %%
fc = calibrated.isel(init_time=0, lead_time=0).values  # [M, lat, lon]
obs = y[0, 0]
w = metrics.latitude_weights(truth.lat.values)[:, None] * np.ones_like(obs)
w = w / w.sum()
skill = np.abs(fc - obs).mean(0)
pairs = np.abs(fc[:, None] - fc[None, :]).sum((0, 1))
m = NUM_MEMBERS
by_hand = {
    True: (w * (skill - pairs / (2 * m * (m - 1)))).sum(),
    False: (w * (skill - pairs / (2 * m * m))).sum(),
}
one = calibrated.isel(init_time=[0], lead_time=[0])
for fair in (True, False):
    np.testing.assert_allclose(float(metrics.crps(one, truth, fair=fair)), by_hand[fair], rtol=1e-6)
rmse_hand = np.sqrt((w * (fc.mean(0) - obs) ** 2).sum())
np.testing.assert_allclose(float(metrics.rmse(one, truth)), rmse_hand, rtol=1e-6)
ranks = (fc < obs).sum(0)  # 0..M (no ties with continuous data)
hist_hand = np.array([(w * (ranks == r)).sum() for r in range(m + 1)])
np.testing.assert_allclose(metrics.rank_histogram(one, truth).values, hist_hand, atol=1e-9)
print("brute-force CRPS (fair and traditional), RMSE and rank histogram == metrics")

# %% [markdown]
# And exercise 2's answer: doubling the common error $e_0$ leaves the member spread
# unchanged, raises the RMSE, and so lowers spread/skill below 1.

# %%
doubled = as_forecast(y + 2 * common + lead_scale * smooth_noise(shape))
ssr_doubled = float(metrics.spread_skill_ratio(doubled, truth, **kw).mean())
spread_ratio = float(
    metrics.spread(doubled, **kw).mean() / metrics.spread(ensembles["lambda = 1.0"], **kw).mean()
)
assert abs(spread_ratio - 1) < 0.1, spread_ratio  # the spread does not grow with e_0
assert float(metrics.rmse(doubled, truth, **kw).mean()) > 1.5 * float(
    scores["lambda = 1.0"]["rmse"].mean()
)
assert ssr_doubled < 0.8 * ssr["lambda = 1.0"], (ssr_doubled, ssr)
print(f"spread/skill with e_0 doubled: {ssr_doubled:.2f} (calibrated: {ssr['lambda = 1.0']:.2f})")
