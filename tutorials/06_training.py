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
# # 06 · Training the denoiser
#
# **What you will build.** GenCast's training objective, term by term — the noise-level
# distribution, the EDM loss weight $\lambda(\sigma)$, the latitude and channel weights —
# and then a short training run of a small GenCast on the toy planet with
# `minigencast.train.train`, with its loss curve. Finally you will ask the trained network
# what it has learned at each noise level.
#
# **Learning goals**
#
# 1. The training noise distribution: $\sigma^{1/\rho}$ uniform between
#    $\sigma_\min^{1/\rho}$ and $\sigma_\max^{1/\rho}$ ($\rho = 7$, 0.02 to 88).
# 2. The loss $\lambda(\sigma)\sum_c w_c\,\overline{w_\text{lat}(D(x;\sigma) - y)^2}$ with
#    $\lambda = (\sigma^2+1)/\sigma^2$, and why it is $\|F - F_\text{target}\|^2$ in disguise.
# 3. Latitude weights (cell area) and channel weights (per variable, ∝ pressure level).
# 4. Running `train.train`: batches of windows, AdamW with warm-up and cosine decay.
# 5. At large $\sigma$ the denoiser is a deterministic forecaster; at small $\sigma$ it
#    only cleans up.

# %%
import dataclasses
import os
import tempfile

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import scipy.stats

import _style  # tutorials/_style.py: the projector-ready figure style
from minigencast import (
    arrays,
    channel_order,
    config,
    data,
    geometry,
    loader,
    losses,
    network,
    noise,
    preconditioning,
    sampler,
    train,
)

# "tiny" in CI (a few training steps of the tiny preset), "tutorial" for readers
# (a few hundred steps of the cpu preset, several minutes).
SIZE = os.environ.get("MINIGENCAST_SIZE", "tutorial")
assert SIZE in ("tiny", "tutorial"), SIZE
if SIZE == "tiny":
    CFG, NUM_TIMES = config.tiny(), 40
    TC = config.TrainConfig(
        batch_size=2,
        num_steps=8,
        warmup_steps=2,
        peak_learning_rate=2e-3,
        eval_every=4,
        checkpoint_every=8,
        validation_fraction=0.2,
    )
else:
    CFG, NUM_TIMES = config.cpu(), None
    TC = config.TrainConfig(
        batch_size=8,
        num_steps=200,
        warmup_steps=20,
        peak_learning_rate=2e-3,
        weight_decay=0.01,
        eval_every=50,
        checkpoint_every=200,
        validation_fraction=0.1,
    )
TASK = CFG.task_config
KEY = jax.random.key(0)
ds = data.load_embedded("train")
if NUM_TIMES:
    ds = ds.isel(time=slice(0, NUM_TIMES))
ds = ds.load()
stats = data.embedded_stats()
print(f"size={SIZE}: {ds.sizes['time']} times, {TC.num_steps} steps of batch {TC.batch_size}")

# %% [markdown]
# ## 1. Which noise levels does the network see?
#
# Training draws one $\sigma$ per example from EDM's sampling schedule used as a
# distribution (`preconditioning.sample_noise_levels`):
#
# $$\sigma = \big(\sigma_\min^{1/\rho} + u\,(\sigma_\max^{1/\rho} - \sigma_\min^{1/\rho})\big)^\rho,\quad u\sim U[0,1).$$
#
# Half of the examples have $\sigma < 4.35$. In $\sigma$ the mass crowds at small
# values, but in $\ln\sigma$ — the axis of the left plot — the density *rises* towards
# large $\sigma$ (it is $\propto \sigma^{1/\rho}$): about two thirds of the examples have
# $\sigma > 1$. That is the proportion of the sampler's levels (tutorial 07) above 1, 14
# of 20, because both use the same spacing, uniform in $\sigma^{1/\rho}$: the network
# trains at each noise level about as often as the sampler visits it.
# $\sigma_\max = 88$ sits just below the sampler's first churned level, 90.

# %%
sigmas = np.asarray(preconditioning.sample_noise_levels(KEY, CFG.noise_config, (20_000,)))
nc = CFG.noise_config
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].hist(np.log(sigmas), bins=60, density=True)
axes[0].set(xlabel="ln sigma", title="training noise levels")
for s in [1.0, 4.35, 80.0]:
    axes[0].axvline(np.log(s), color="k", lw=0.5)
axes[1].hist(sigmas ** (1 / nc.training_noise_level_rho), bins=60, density=True)
axes[1].set(xlabel="sigma^(1/rho)", title="uniform by construction")
_style.show()
# Check: median 4.35; two thirds above sigma = 1, like the sampler's 14 of 20 levels.
sampler_levels = np.asarray(sampler.noise_levels(config.SamplerConfig()))[:-1]  # GenCast's
above = float(np.mean(sigmas > 1.0))
assert abs(np.median(sigmas) - 4.35) < 0.2, np.median(sigmas)
assert abs(above - np.mean(sampler_levels > 1.0)) < 0.05, above
log_midpoint = np.sqrt(nc.training_min_noise_level * nc.training_max_noise_level)
assert np.mean(sigmas > log_midpoint) > 0.6  # in ln sigma: most mass in the upper half
print(
    f"median sigma {np.median(sigmas):.2f}; above 1: {above:.0%} of training, "
    f"{int(np.sum(sampler_levels > 1))}/{len(sampler_levels)} sampler levels"
)

# %% [markdown]
# ## 2. The loss and its weights
#
# For one example with normalised residual target $y$ and noise $\varepsilon$ (spherical
# white noise per channel, tutorial 03), $x = y + \sigma\varepsilon$ and
#
# $$\mathcal L = \lambda(\sigma)\sum_c w_c \frac{1}{N_\text{lat}N_\text{lon}}\sum_{i,j} w_\text{lat}(i)\,\big(D(x;\sigma) - y\big)_{ijc}^2,
# \qquad \lambda(\sigma) = \frac{\sigma^2 + 1}{\sigma^2} = \frac{1}{c_\text{out}^2}.$$
#
# Because $D - y = c_\text{out}\,(F - F_\text{target})$ with
# $F_\text{target} = (y - c_\text{skip}x)/c_\text{out}$, the weight $\lambda$ turns the loss
# into a plain squared error on $F$ whose target has unit variance at *every* $\sigma$
# (tutorial 02): no noise level dominates the gradient.
#
# * $w_\text{lat}$: proportional to the area of each grid cell, mean 1 (the pole rows
#   cover a sliver, $\propto \sin^2(\Delta/4)$).
# * $w_c$: per variable $w_v$ (1, or 0.1 for some surface variables in GenCast), spread
#   over its levels in proportion to pressure (upper levels, with less mass, count less).

# %%
lat = ds.lat.values
lat_w = geometry.latitude_weights(lat)
channels = channel_order.target_channels(TASK)
chan_w = losses.task_channel_weights(TASK)
fig, axes = plt.subplots(1, 3, figsize=(16, max(4.0, 0.3 * len(channels) + 1.0)))
axes[0].plot(lat, lat_w, "o-", ms=3)
axes[0].set(xlabel="latitude", title="latitude weights (mean 1)")
axes[1].barh(
    [f"{c.variable[:12]}{'@' + str(c.level) if c.level else ''}" for c in channels], chan_w
)
axes[1].invert_yaxis()  # channels in stacking order, top to bottom
axes[1].set(title="channel weights")
s_grid = np.geomspace(0.02, 88, 200)
axes[2].plot(s_grid, preconditioning.loss_weight(s_grid), label="lambda(sigma)")
axes[2].plot(
    s_grid,
    preconditioning.loss_weight(s_grid) * preconditioning.c_out(s_grid) ** 2,
    label="lambda c_out^2 = 1",
)
axes[2].set(xscale="log", yscale="log", xlabel="sigma", title="loss weight")
axes[2].legend()
_style.show()

# %% [markdown]
# **Check.** The training levels follow the quantile function (Kolmogorov–Smirnov test
# on $\sigma^{1/\rho}$, median $4.35$ for GenCast's 0.02/88/7), the latitude weights
# average 1, and $\lambda(\sigma)\,(D - y)^2 = (F - F_\text{target})^2$ pointwise.

# %%
lo, hi = nc.training_min_noise_level, nc.training_max_noise_level
r = nc.training_noise_level_rho
u = (sigmas ** (1 / r) - lo ** (1 / r)) / (hi ** (1 / r) - lo ** (1 / r))
assert scipy.stats.kstest(u, "uniform").pvalue > 1e-3
np.testing.assert_allclose(float(preconditioning.noise_level_quantile(0.5, nc)), 4.35, atol=0.01)
np.testing.assert_allclose(lat_w.mean(), 1.0, rtol=1e-6)
rng = np.random.default_rng(0)
y_, eps_, f_ = rng.standard_normal((3, 1000)).astype(np.float32)
for s in [0.05, 1.0, 30.0]:
    x_ = y_ + s * eps_
    d_ = preconditioning.denoise(lambda xs, _s: jnp.asarray(f_), jnp.asarray(x_), s)
    f_target = (y_ - preconditioning.c_skip(s) * x_) / preconditioning.c_out(s)
    np.testing.assert_allclose(
        preconditioning.loss_weight(s) * (d_ - y_) ** 2, (f_ - f_target) ** 2, rtol=2e-3, atol=1e-3
    )
print("sigma distribution, latitude weights and lambda (D - y)^2 = (F - F_target)^2 verified")

# %% [markdown]
# ## 3. A short training run
#
# `train.train(dataset, stats, cfg, train_config, run_dir)` does everything: it turns the
# dataset into windows (two input frames + one target, `arrays.prepare`), splits them by
# time into training and validation, and runs AdamW with linear warm-up and cosine decay
# on the loss above (one $\sigma$ and one noise draw per example), logging to `log.csv`
# and writing resumable checkpoints in DeepMind's `.npz` layout. Here it runs for
# minutes; GenCast trained for days on TPUs.

# %%
run_dir = tempfile.mkdtemp(prefix="minigencast-06-")
result = train.train(ds, stats, CFG, TC, run_dir, progress=False, eval_members=0)
history = result["history"]
params = train.evaluation_params(result["state"])
steps = [h["step"] for h in history]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].semilogy(steps, [h["loss"] for h in history], lw=0.8, label="training loss (per batch)")
val = [(h["step"], h["val_loss"]) for h in history if "val_loss" in h]
axes[0].semilogy(*zip(*val, strict=True), "o-", label="validation loss")
axes[0].set(xlabel="step", title="GenCast loss")
axes[0].legend()
axes[1].plot(steps, [h["learning_rate"] for h in history])
axes[1].set(xlabel="step", title="learning rate (warm-up, cosine)")
_style.show()
print(f"{len(history)} steps in {history[-1]['wall_s']:.0f} s; checkpoint {result['checkpoint']}")

# %% [markdown]
# The per-batch loss is noisy because every example draws its own $\sigma$ and the loss
# depends strongly on $\sigma$. The validation loss (fixed noise draws) is the curve to
# watch.
#
# ## 4. What has the network learned at each noise level?
#
# Evaluate the loss at fixed $\sigma$ on validation windows, for the trained network and
# for the baseline $F \equiv 0$, i.e. $D = c_\text{skip}\,x$ — the exact denoiser if the
# residuals were white $\mathcal N(0, 1)$ noise (tutorial 02). Where the trained network
# beats the baseline it has learned something about the weather:
#
# * at large $\sigma$, $x$ carries almost no information about $y$; the best $D$ is
#   $\mathbb E[y \mid \text{inputs}]$ — a *deterministic forecast* of the 12 h change;
# * at small $\sigma$, $x$ already is $y$ up to a little noise; there is little to learn.

# %%
data_arrays = arrays.prepare(ds, TASK, stats)
_, val_windows = loader.split_by_time(data_arrays.times, TC.validation_fraction)
fetch = arrays.make_fetch(
    data_arrays.frames, data_arrays.forcings, data_arrays.static, data_arrays.layout
)
batch = fetch(val_windows[: min(len(val_windows), 8)])
structure = network.build_structure(CFG, data_arrays.lat, data_arrays.lon)
noise_fn = noise.make_spherical_noise_fn(data_arrays.lat, data_arrays.lon)
lat_w32, chan_w32 = lat_w.astype(np.float32), chan_w.astype(np.float32)


@jax.jit
def losses_at(params, sigma, key):
    """Mean loss of the network and of F = 0 over the batch, at one sigma."""
    y = jnp.asarray(batch["targets"])
    x = y + sigma * noise_fn(key, y)
    d = jax.vmap(lambda i, f, xx: network.denoiser(params, structure, CFG, i, f, xx, sigma))(
        jnp.asarray(batch["inputs"]), jnp.asarray(batch["forcings"]), x
    )
    d0 = preconditioning.c_skip(sigma) * x
    return (
        losses.weighted_loss(d, y, sigma, lat_w32, chan_w32).mean(),
        losses.weighted_loss(d0, y, sigma, lat_w32, chan_w32).mean(),
    )


probe = np.geomspace(0.05, 80, 7 if SIZE == "tiny" else 12)
trained, zero = np.array([losses_at(params, s, jax.random.key(9)) for s in probe]).T
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(probe, trained, "o-", label="trained network")
ax.plot(probe, zero, "s--", label="F = 0 (D = c_skip x)")
ax.set(xscale="log", xlabel="sigma", ylabel="loss at fixed sigma", title="validation windows")
ax.legend()
_style.show()

# %% [markdown]
# ## Exercises
#
# 1. Train twice as long (or with `ema_decay=0.99`). Where in $\sigma$ does the validation
#    loss improve most?
# 2. Give `2m_temperature` ten times more weight with `losses.channel_weights(channels,
#    {"2m_temperature": 10.0})`. What would you expect for the other variables' skill?
# 3. Why does the loss of the $F = 0$ baseline approach a constant at large $\sigma$?
#
# <details><summary>Solutions</summary>
#
# 1. `dataclasses.replace(TC, num_steps=2 * TC.num_steps)` and compare the curves of
#    section 4: the large-$\sigma$ end (the forecast of the mean change) keeps improving
#    the longest; the small-$\sigma$ end is easy from the start.
# 2. A larger share of the network's capacity goes to 2 m temperature; the others get
#    slightly worse. The total weight is what GenCast's per-variable weights balance.
# 3. For $\sigma \to \infty$, $c_\text{skip} x \to 0$ and $\lambda \to 1$, so the loss tends
#    to $\sum_c w_c\,\overline{w_\text{lat}\,y_c^2}$: the channel weights times the variance
#    of the (roughly unit-variance) residual targets — a constant, about $\sum_v w_v$.
#
# </details>
#
# ## Where this lives in the package
#
# | concept | module |
# |---|---|
# | $\lambda(\sigma)$, training noise levels, $D$ from $F$ | `minigencast/preconditioning.py` |
# | latitude and channel weights, the weighted loss | `minigencast/losses.py` |
# | windows, normalisation and residuals as arrays | `minigencast/arrays.py`, `minigencast/loader.py` |
# | optimiser, train step, loop, logs, checkpoints | `minigencast/train.py`, `minigencast/training_state.py` |
# | `TrainConfig` | `minigencast/config.py` |
# | `minigencast train` (the same from the command line) | `minigencast/cli.py` |
#
# **Check, and the last one.** Training reduced the validation loss; the trained network
# beats $F = 0$ at large $\sigma$ (tutorial size only — a few tiny steps learn little);
# and GenCast's loss for one example built by hand — draw $\sigma$, noise the target with
# spherical noise, denoise, weight — equals `train.make_example_loss` with the same key.

# %%
if SIZE == "tutorial":
    assert val[-1][1] < val[0][1], val
    assert trained[-1] < zero[-1], (trained, zero)
example = {k: jnp.asarray(v[0]) for k, v in batch.items()}
key = jax.random.key(11)
k_sigma, k_noise = jax.random.split(key)
sigma = preconditioning.sample_noise_levels(k_sigma, CFG.noise_config)
x = example["targets"] + sigma * noise_fn(k_noise, example["targets"])
d = network.denoiser(params, structure, CFG, example["inputs"], example["forcings"], x, sigma)
by_hand = preconditioning.loss_weight(sigma) * jnp.sum(
    chan_w32 * jnp.mean(lat_w32[:, None, None] * (d - example["targets"]) ** 2, axis=(0, 1))
)
packaged = train.make_example_loss(CFG, data_arrays.lat)(
    params, (structure, noise_fn), example, key
)
np.testing.assert_allclose(by_hand, packaged, rtol=1e-4)
print(f"loss by hand {float(by_hand):.4f} == train.make_example_loss {float(packaged):.4f}")
assert dataclasses.is_dataclass(TC)
