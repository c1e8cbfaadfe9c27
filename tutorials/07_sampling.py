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
# # 07 · Sampling: DPM-Solver++(2S), churn, and how many steps
#
# **What you will build.** GenCast's sampler drawing whole fields on the sphere. To
# judge samples exactly we use a data distribution whose ideal denoiser is known in
# closed form: an isotropic Gaussian random field with a "weather-like" red spectrum.
# Its denoiser is a *Wiener filter* — a shrinkage of every spherical-harmonic
# coefficient — so the only error left is the sampler's. You will watch denoising
# trajectories as pictures, switch churn on and off, vary the number of steps, and
# finally rebuild the sampler loop by hand and check it against
# `minigencast.sampler.sample`.
#
# **Learning goals**
#
# 1. GenCast's schedule: 20 noise levels from 80 to 0.03 with $\rho = 7$, churn
#    $\gamma = 0.125$ at $\sigma \ge 0.75$, noise inflation $S_\text{noise} = 1.05$.
# 2. What the state $x_i$ and the denoised estimate $D(x_i;\hat\sigma_i)$ look like along
#    the way: large scales first, small scales last.
# 3. The cost–quality trade-off: $2(N-1)+1$ denoiser calls for $N$ levels.
# 4. What churn does to the samples, measured by their power spectrum.

# %%
import dataclasses
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import _style  # tutorials/_style.py: the projector-ready figure style
from minigencast import config, noise, sampler, spherical_harmonics

# "tiny" in CI (seconds), "tutorial" for readers: the embedded data's 5.625 deg grid.
SIZE = os.environ.get("MINIGENCAST_SIZE", "tutorial")
assert SIZE in ("tiny", "tutorial"), SIZE
N_LAT, N_LON = (13, 24) if SIZE == "tiny" else (33, 64)
NUM_SAMPLES = 16 if SIZE == "tiny" else 64
LAT = np.linspace(-90, 90, N_LAT)
LON = np.arange(N_LON) * 360 / N_LON
KEY = jax.random.key(0)
GENCAST = config.SamplerConfig()
print(f"size={SIZE}: grid {N_LAT}x{N_LON}, {NUM_SAMPLES} samples per experiment")

# %% [markdown]
# ## 1. The schedule
#
# `sampler.build_schedule` lays out every step $i$: the level $\sigma_i$, the churned level
# $\hat\sigma_i = (1+\gamma_i)\sigma_i$ told to the denoiser, the standard deviation of
# the noise added by churn $S_\text{noise}\sqrt{\hat\sigma_i^2 - \sigma_i^2}$, and the
# geometric midpoint $\sigma_\text{mid} = \sqrt{\hat\sigma_i\sigma_{i+1}}$ where
# DPM-Solver++(2S) evaluates its second call (tutorial 02).

# %%
sched = sampler.build_schedule(GENCAST)
fig, ax = plt.subplots(figsize=(6, 3.5))
steps = np.arange(GENCAST.num_noise_levels)
ax.plot(steps, sched["sigma"], "o-", ms=3, label="sigma_i")
ax.plot(steps, sched["sigma_hat"], "x", label="sigma_hat_i (after churn)")
ax.plot(steps[:-1], sched["sigma_mid"][:-1], ".", label="sigma_mid (2nd call)")
ax.plot(steps, np.maximum(sched["churn_std"], 1e-3), "s", ms=3, label="churn noise std")
ax.axhline(GENCAST.churn_min_noise_level, color="grey", lw=0.5)
ax.set(yscale="log", xlabel="step i", title="GenCast's sampler schedule")
ax.legend()
_style.show()
print(
    "denoiser calls:",
    sampler.num_denoiser_calls(GENCAST),
    "first at sigma =",
    sampler.denoiser_noise_levels(GENCAST)[0],
)

# %% [markdown]
# ## 2. A Gaussian random field and its exact denoiser
#
# Expand a field in real spherical harmonics $Y_{lm}$ (`spherical_harmonics`). An
# *isotropic* Gaussian field has independent coefficients whose variance depends on the
# degree $l$ only; we give it a red angular power spectrum, normalised to unit pointwise
# variance (like normalised weather): $P_\text{data}(l) \propto (1 + l/4)^{-3}$.
# GenCast's noise (`noise.make_spherical_noise_fn`, tutorial 03) is the flat-spectrum
# member of the same family, $P_\text{noise}(l) = 1/L$. Both being diagonal in the
# harmonics, the posterior mean is a per-degree shrinkage — the Wiener filter:
#
# $$\widehat{c}_{lm} = \frac{P_\text{data}(l)}{P_\text{data}(l) + \sigma^2 / L}\; c_{lm}(x).$$
#
# We build the (linear) analysis and synthesis maps as matrices once, so that
# $D^*(x;\sigma)$ is two matrix products inside the jitted sampler.

# %%
basis = spherical_harmonics.build_basis(LAT, LON)
L = basis.max_degree
m_idx, l_idx = np.meshgrid(np.arange(L), np.arange(L), indexing="ij")  # [m, l]
cos_valid = l_idx >= m_idx
sin_valid = cos_valid & (m_idx > 0)
degree = np.concatenate([l_idx[cos_valid], l_idx[sin_valid]])  # [K]
K = degree.size

# Synthesis matrix [N_g, K]: the grid values of each unit coefficient.
cos_part = np.zeros((K, L, L), np.float32)
sin_part = np.zeros((K, L, L), np.float32)
n_cos = int(cos_valid.sum())
cos_part[np.arange(n_cos), m_idx[cos_valid], l_idx[cos_valid]] = 1
sin_part[n_cos + np.arange(K - n_cos), m_idx[sin_valid], l_idx[sin_valid]] = 1
synthesis = np.asarray(spherical_harmonics.synthesise(basis, cos_part, sin_part))
synthesis = synthesis.reshape(K, -1).T  # [N_g, K]
# Analysis matrix [K, N_g]: coefficients of each unit grid field.
cos_a, sin_a = spherical_harmonics.analyse(basis, np.eye(N_LAT * N_LON).reshape(-1, N_LAT, N_LON))
analysis = np.concatenate([cos_a[:, cos_valid], sin_a[:, sin_valid]], axis=1).T  # [K, N_g]

p_data = (1 + np.arange(L) / 4.0) ** -3.0
p_data /= p_data.sum()  # unit pointwise variance (sum_l P_l = 1)
coef_std = np.sqrt(4 * np.pi * p_data[degree] / (2 * degree + 1))  # [K]
print(f"L = {L} degrees, K = {K} coefficients for {N_LAT * N_LON} grid points")

OPS = {
    "synthesis": jnp.asarray(synthesis, jnp.float32),
    "analysis": jnp.asarray(analysis, jnp.float32),
    "p_data": jnp.asarray(p_data[degree], jnp.float32),
}


def wiener_denoiser(x, sigma, ops=OPS):
    """D*(x; sigma) for the Gaussian field: x [lat, lon, C] -> [lat, lon, C]."""
    flat = x.reshape(-1, x.shape[-1])  # [N_g, C]
    coeffs = ops["analysis"] @ flat  # [K, C]
    shrink = ops["p_data"] / (ops["p_data"] + sigma**2 / L)  # [K]
    return (ops["synthesis"] @ (shrink[:, None] * coeffs)).reshape(x.shape)


def sample_data(key, num):
    a = jax.random.normal(key, (K, num)) * jnp.asarray(coef_std, jnp.float32)[:, None]
    return (OPS["synthesis"] @ a).T.reshape(num, N_LAT, N_LON)


def mean_spectrum(fields):
    """Angular power per degree, averaged over fields [n, lat, lon]."""
    return spherical_harmonics.power_spectrum(basis, np.asarray(fields)).mean(0)


truth = sample_data(KEY, NUM_SAMPLES)
noise_fn = noise.make_spherical_noise_fn(LAT, LON)

fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
y0 = truth[0][..., None]
eps = noise_fn(jax.random.key(1), y0)
for ax, sig in zip(axes, [0.0, 0.3, 1.0, 3.0], strict=True):
    x = y0 + sig * eps
    shown = x if sig == 0 else wiener_denoiser(x, sig)
    mesh = ax.pcolormesh(LON, LAT, np.asarray(shown[..., 0]), vmin=-2.5, vmax=2.5, cmap="RdBu_r")
    ax.set_title("a data sample" if sig == 0 else f"D*(y + {sig} eps)")
fig.colorbar(mesh, ax=axes, shrink=0.8)
_style.show()

# %% [markdown]
# ## 3. Denoising trajectories
#
# `sampler.sample_trajectory` returns the state $x_i$ before each step and the denoised
# estimate $D(x_i; \hat\sigma_i)$ — "the forecast if we stopped here". The top row
# shows the state divided by $\max(1, \sigma_i)$, so that it stays on the colour scale
# while the noise dominates. For the first half of the steps the denoised estimate is
# nearly blank: down to step 8 ($\hat\sigma \approx 8.6$) the Wiener filter shrinks
# every degree strongly, and the estimate stays close to the data mean, 0 (at most a
# tenth of the final large-scale power, none of the small-scale). The large scales
# appear only around step 12 ($\hat\sigma \approx 1.8$, a third to a half of their
# final power) and are in place by step 16 ($\hat\sigma \approx 0.2$); the fine detail
# lags behind them and is completed in the last few steps. The bottom row shows this
# coarse-to-fine order; the check cell below measures it.

# %%
template = jnp.zeros((N_LAT, N_LON, 1))
traj_fn = jax.jit(sampler.sample_trajectory, static_argnums=(0, 3))
final, traj = traj_fn(wiener_denoiser, jax.random.key(2), template, GENCAST, noise_fn)
show = [0, 4, 8, 12, 16, 19]
fig, axes = plt.subplots(2, len(show), figsize=(16, 4.5))
for j, i in enumerate(show):
    x_i = np.asarray(traj["x"][i][..., 0])
    axes[0, j].pcolormesh(
        LON, LAT, x_i / max(1.0, float(traj["sigma"][i])), cmap="RdBu_r", vmin=-2.5, vmax=2.5
    )
    axes[0, j].set_title(f"x_{i} / max(1, sigma_{i})\nsigma_{i} = {float(traj['sigma'][i]):.2f}")
    axes[1, j].pcolormesh(
        LON, LAT, np.asarray(traj["denoised"][i][..., 0]), cmap="RdBu_r", vmin=-2.5, vmax=2.5
    )
    axes[1, j].set_title(f"D(x_{i}; {float(traj['sigma_hat'][i]):.2f})")
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(axes[0, -1].collections[0], ax=axes, shrink=0.8, label="normalised value")
fig.suptitle("top: the state (scaled); bottom: the denoised estimate")
_style.show()

# %% [markdown]
# **Check.** The coarse-to-fine order, measured: the fraction of the final sample's
# power that the denoised estimate already carries, at the large scales ($l \le 4$) and
# at the small ones ($l \ge L/2$).


# %%
def power_fraction(field, degrees):
    spec = spherical_harmonics.power_spectrum(basis, np.asarray(field)[None, ..., 0])[0]
    final_spec = spherical_harmonics.power_spectrum(basis, np.asarray(final)[None, ..., 0])[0]
    return float(spec[degrees].sum() / final_spec[degrees].sum())


large, small = np.arange(0, 5), np.arange(L // 2, L)
frac = {
    i: (power_fraction(traj["denoised"][i], large), power_fraction(traj["denoised"][i], small))
    for i in range(GENCAST.num_noise_levels)
}
for i in [4, 8, 12, 16, 19]:
    print(
        f"step {i:2d} (sigma_hat {float(traj['sigma_hat'][i]):6.2f}): "
        f"large scales {frac[i][0]:.2f}, small scales {frac[i][1]:.2f} of the final power"
    )
assert frac[4][0] < 0.02 and frac[8][0] < 0.15 and frac[8][1] < 0.01  # faint until step 8 ...
assert frac[12][0] > 0.25 and frac[12][0] > 3 * frac[12][1]  # ... large scales first ...
assert frac[16][0] > 0.9 and frac[16][1] < frac[16][0]  # ... complete by step 16 ...
assert frac[19][1] > 0.95  # ... and the fine detail last

# %% [markdown]
# ## 4. Steps, churn and quality
#
# We draw an ensemble with each sampler variant (`jax.vmap` over keys) and compare its
# mean angular power spectrum with $P_\text{data}$. An exact sampler reproduces it at
# every degree. Too few steps do not blur the samples: with $N = 5$ they lose power at
# *every* scale (a spectral ratio of about 0.6 from $l = 2$ up to the largest degree):
# the samples are too faint, not too smooth. Churn changes how errors made at early
# steps are forgotten.


# %%
def ensemble(cfg, key, num=NUM_SAMPLES):
    keys = jax.random.split(key, num)
    draw = jax.vmap(lambda k: sampler.sample(wiener_denoiser, k, template, cfg, noise_fn))
    return np.asarray(jax.jit(draw)(keys))[..., 0]


variants = {}
for n in [5, 20] if SIZE == "tiny" else [5, 10, 20]:
    for churn in [0.0, GENCAST.stochastic_churn_rate]:
        cfg = dataclasses.replace(GENCAST, num_noise_levels=n, stochastic_churn_rate=churn)
        variants[(n, churn)] = ensemble(cfg, jax.random.key(3))
true_spec = mean_spectrum(truth)
ls = np.arange(L)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
axes[0].plot(ls, p_data, "k", lw=2, label="P_data (exact)")
axes[0].plot(ls, true_spec / (4 * np.pi), "k:", label="data samples")
ratios = {}
for (n, churn), fields in variants.items():
    spec = mean_spectrum(fields) / (4 * np.pi)  # E[power_l] = 4 pi P_l for unit-norm Y_lm
    ratios[(n, churn)] = spec / p_data
    style = "-" if churn else "--"
    axes[0].plot(ls, spec, style, label=f"N={n}, churn {churn}")
    axes[1].plot(ls, spec / p_data, style, label=f"N={n}, churn {churn}")
axes[0].set(yscale="log", xlabel="degree l", title="angular power spectrum / 4 pi")
axes[1].axhline(1, color="k", lw=0.5)
axes[1].set(xlabel="degree l", ylabel="sampled / exact", title="spectral ratio")
axes[0].legend(fontsize=12, ncols=2)
_style.show()
for (n, churn), fields in variants.items():
    print(
        f"N = {n:2d} ({sampler.num_denoiser_calls(dataclasses.replace(GENCAST, num_noise_levels=n)):2d}"
        f" calls), churn {churn}: pointwise std {fields.std():.3f} (exact 1.000)"
    )

# %% [markdown]
# **Check.** With GenCast's settings (20 levels, churn) the samples have the data's
# spectrum to within Monte-Carlo noise at the large scales (on average over degrees) and unit pointwise variance
# within a few percent (churn's $S_\text{noise} = 1.05$ inflates slightly, tutorial 02).
# The noise function is the one GenCast uses: unit variance, flat spectrum.

# %%
gencast_fields = variants[(20, GENCAST.stochastic_churn_rate)]
assert abs(gencast_fields.std() - 1.0) < 0.1, gencast_fields.std()
# Too few steps (N = 5): too little power at every scale (large and small alike), not blur.
few = ratios[(5, 0.0)][2:]
half = len(few) // 2
print(
    f"N = 5, no churn: spectral ratio {few[:half].mean():.2f} (large), {few[half:].mean():.2f} (small)"
)
assert few[:half].mean() < 0.8 and few[half:].mean() < 0.8
assert abs(few[:half].mean() - few[half:].mean()) < 0.2
assert abs(ratios[(20, GENCAST.stochastic_churn_rate)][: L // 2].mean() - 1) < 0.25
flat = mean_spectrum(noise_fn(jax.random.key(4), jnp.zeros((N_LAT, N_LON, 32))).transpose(2, 0, 1))
assert np.all(np.abs(flat / flat.mean() - 1) < 0.5)
print(f"pointwise std {gencast_fields.std():.3f}; mean spectral ratio at large scales within 25%")

# %% [markdown]
# ## Exercises
#
# 1. Plot the pointwise standard deviation of the samples against $N$ for
#    `noise_level_inflation_factor` 1.0 and 1.05. Which error does the inflation
#    compensate for in a *trained* network, and why does it over-compensate here?
# 2. Set `max_noise_level=10`. Where does it go wrong, and why is 80 so much larger than
#    the data's unit variance?
# 3. Use i.i.d. pixel noise (`noise_fn=None`) with the Wiener denoiser. What happens near
#    the poles? (Tutorial 03.)
#
# <details><summary>Solutions</summary>
#
# 1. `ensemble(dataclasses.replace(GENCAST, num_noise_levels=n,
#    noise_level_inflation_factor=f), key).std()`. A trained denoiser slightly
#    over-smooths (it regresses to the mean); adding a bit more noise than announced
#    restores detail. Our denoiser is exact, so the extra noise is just extra variance.
# 2. The initial state $\sigma_\max\varepsilon$ must be indistinguishable from a sample of
#    $p_{\sigma_\max}$ (data + noise). With $\sigma_\max = 10$ the data's unit variance is
#    still 1% of the total: the samples come out with too little variance at large scales.
# 3. Pixel noise has far more independent values per unit area near the poles and
#    power above the band limit; the Wiener filter (built for spherical noise) removes the
#    wrong amount there, and the samples' variance becomes latitude-dependent.
#
# </details>
#
# ## Where this lives in the package
#
# | concept | module |
# |---|---|
# | schedule, churn, DPM-Solver++(2S), `sample`, `sample_trajectory` | `minigencast/sampler.py` |
# | `SamplerConfig` | `minigencast/config.py` |
# | spherical white noise, SH synthesis/analysis/spectra | `minigencast/noise.py`, `minigencast/spherical_harmonics.py` |
# | the real denoiser $D$ the sampler calls in GenCast | `minigencast/network.py` (tutorial 05), `forecast.py` (tutorial 08) |
#
# The last check: the sampler loop written out by hand — initial noise, churn, two
# denoiser calls per step, the final Euler step — with the key-splitting convention the
# sampler documents (`split(key, N + 1)`: the initial noise, then one churn key per step)
# equals `sampler.sample` with churn on.


# %%
def sample_by_hand(denoise, key, template, cfg, noise_fn):
    s = sampler.build_schedule(cfg)
    init_key, *step_keys = jax.random.split(key, cfg.num_noise_levels + 1)
    x = s["sigma"][0] * noise_fn(init_key, template)
    for i in range(cfg.num_noise_levels):
        x = x + s["churn_std"][i] * noise_fn(step_keys[i], template)  # churn
        sigma_hat, sigma_next = s["sigma_hat"][i], s["sigma_next"][i]
        if sigma_next == 0:
            return denoise(x, sigma_hat)  # Euler step to sigma = 0
        x0 = denoise(x, sigma_hat)
        sigma_mid = s["sigma_mid"][i]
        x_mid = sigma_mid / sigma_hat * x + (1 - sigma_mid / sigma_hat) * x0
        x0_mid = denoise(x_mid, sigma_mid)
        x = sigma_next / sigma_hat * x + (1 - sigma_next / sigma_hat) * x0_mid
    return x


by_hand = sample_by_hand(wiener_denoiser, jax.random.key(5), template, GENCAST, noise_fn)
packaged = sampler.sample(wiener_denoiser, jax.random.key(5), template, GENCAST, noise_fn)
np.testing.assert_allclose(by_hand, packaged, rtol=1e-3, atol=1e-3)
print("hand-written DPM-Solver++(2S) with churn == sampler.sample")
