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
# # 12 · A learned denoiser, at toy scale
#
# **What you will build.** Tutorials 02, 07 and 11 hand the sampler an *exact* denoiser.
# GenCast's is a network, trained on a finite budget (tutorial 06), and never exact.
# Here you train a small MLP, in seconds, on the one-dimensional mixture of tutorial 02
# with GenCast's loss and preconditioning, and compare it with the exact denoiser: its
# error at each noise level, and what that error does to the samples. That is the
# reason GenCast inflates its churn noise ($S_\text{noise} > 1$), which tutorial 07
# could only assert.
#
# **Learning goals**
#
# 1. Training a denoiser: $\min_\theta \mathbb E_{\sigma, y, \varepsilon}\,\lambda(\sigma)
#    \,\lVert D_\theta(y + \sigma\varepsilon;\sigma) - y\rVert^2$ with
#    $D_\theta = c_\text{skip}x + c_\text{out}F_\theta(c_\text{in}x, \sigma)$.
# 2. Where the learned denoiser errs: its error against $\sigma$, next to the
#    irreducible error $\mathbb E\lVert D^* - y\rVert^2$ that no network can beat.
# 3. What denoiser errors do to samples, and how the noise inflation $S_\text{noise}$
#    changes the sample's spread.

# %%
import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import _style  # tutorials/_style.py: the projector-ready figure style
from minigencast import config, preconditioning, sampler

# "tiny" in CI (seconds), "tutorial" for readers (about a minute).
SIZE = os.environ.get("MINIGENCAST_SIZE", "tutorial")
assert SIZE in ("tiny", "tutorial"), SIZE
NUM_TRAIN_STEPS = 1_500 if SIZE == "tiny" else 6_000
BATCH = 512
NUM_SAMPLES = 8_000 if SIZE == "tiny" else 100_000
KEY = jax.random.key(0)
print(f"size={SIZE}: {NUM_TRAIN_STEPS} training steps of {BATCH}, {NUM_SAMPLES} samples")

# %% [markdown]
# ## 1. Data and the exact denoiser (tutorial 02)

# %%
WEIGHTS = np.array([0.5, 0.5])
MEANS = np.array([-0.95, 0.95])
STDS = np.array([0.3, 0.3])


def sample_data(key, n):
    k_mode, k_noise = jax.random.split(key)
    mode = jax.random.bernoulli(k_mode, 0.5, (n,))
    return jnp.where(mode, MEANS[1], MEANS[0]) + STDS[0] * jax.random.normal(k_noise, (n,))


def exact_denoiser(x, sigma):
    """D*(x; sigma) = E[y | x] for the Gaussian mixture (tutorial 02); sigma scalar or like x."""
    s2 = jnp.asarray(sigma)[..., None] ** 2
    var = jnp.asarray(STDS) ** 2 + s2
    log_r = jnp.log(jnp.asarray(WEIGHTS)) - 0.5 * (x[..., None] - jnp.asarray(MEANS)) ** 2 / var
    r = jax.nn.softmax(log_r - 0.5 * jnp.log(var), axis=-1)
    shrunk = (jnp.asarray(STDS) ** 2 * x[..., None] + s2 * jnp.asarray(MEANS)) / var
    return jnp.sum(r * shrunk, axis=-1).astype(x.dtype)


# %% [markdown]
# ## 2. The network and its training
#
# $F_\theta$ is a 3-layer MLP (64 units, SiLU) of two inputs: the preconditioned sample
# $c_\text{in}(\sigma)x$ and the noise level as $\tfrac14\ln\sigma$ (EDM's
# $c_\text{noise}$; GenCast feeds $\ln\sigma$ through Fourier features, tutorial 05).
# Training follows tutorial 06 exactly, with one value per example: draw $y$, draw
# $\sigma$ from GenCast's training distribution (`preconditioning.sample_noise_levels`),
# noise, and minimise $\lambda(\sigma)(D_\theta - y)^2$ with Adam.


# %%
def init_mlp(key, sizes=(2, 64, 64, 64, 1)):
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {"w": jax.random.normal(k, (a, b)) * np.sqrt(1.0 / a), "b": jnp.zeros(b)}
        for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def raw_network(params, x_in, sigma):
    """F_theta(c_in x, sigma) for a batch x_in [n] and sigma [n] or scalar."""
    h = jnp.stack([x_in, jnp.broadcast_to(jnp.log(sigma) / 4, x_in.shape)], axis=-1)
    for layer in params[:-1]:
        h = jax.nn.silu(h @ layer["w"] + layer["b"])
    return (h @ params[-1]["w"] + params[-1]["b"])[..., 0]


def learned_denoiser(params):
    """The sampler's denoise_fn(x, sigma) for these weights (the package's D from F)."""
    return lambda x, sigma: preconditioning.denoise(
        lambda xs, s: raw_network(params, xs, s), x, sigma
    )


def loss_fn(params, key):
    k_y, k_s, k_e = jax.random.split(key, 3)
    y = sample_data(k_y, BATCH)
    sigma = preconditioning.sample_noise_levels(k_s, config.NoiseConfig(), (BATCH,))
    x = y + sigma * jax.random.normal(k_e, (BATCH,))
    d = learned_denoiser(params)(x, sigma)
    return jnp.mean(preconditioning.loss_weight(sigma) * (d - y) ** 2)


schedule = optax.cosine_decay_schedule(3e-3, NUM_TRAIN_STEPS, alpha=0.01)
optimizer = optax.adam(schedule)


@jax.jit
def train(params, key):
    def step(carry, key):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, key)
        updates, opt_state = optimizer.update(grads, opt_state)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(
        step, (params, optimizer.init(params)), jax.random.split(key, NUM_TRAIN_STEPS)
    )
    return params, losses


start = time.perf_counter()
params, losses = train(init_mlp(jax.random.key(1)), jax.random.key(2))
losses = np.asarray(losses)
print(f"trained in {time.perf_counter() - start:.1f} s (with compilation)")

fig, ax = plt.subplots(figsize=(7, 3.8))
window = 50
ax.plot(np.convolve(losses, np.ones(window) / window, mode="valid"))
ax.set(yscale="log", xlabel="step", ylabel="loss (running mean)", title="training the MLP")
_style.show()

# %% [markdown]
# ## 3. Its error against the noise level
#
# For each $\sigma$, draw $x = y + \sigma\varepsilon$ and compare
#
# * the learned denoiser's **excess error** $\mathbb E\,(D_\theta - D^*)^2$, and
# * the **irreducible error** $\mathbb E\,(D^* - y)^2$: what is left even for the exact
#   denoiser, because $x$ does not determine $y$.
#
# The loss the network minimises is their sum (the cross term vanishes because $D^*$
# is the conditional mean), weighted by $\lambda(\sigma)$.

# %%
sigma_grid = np.geomspace(0.02, 80, 25)
k_y, k_e = jax.random.split(jax.random.key(3))
y_eval = sample_data(k_y, 20_000)
e_eval = jax.random.normal(k_e, (20_000,))
D_theta = learned_denoiser(params)


def errors(denoise_fn):
    excess, irreducible = [], []
    for s in sigma_grid:
        x = y_eval + s * e_eval
        d_star = exact_denoiser(x, s)
        excess.append(float(jnp.mean((denoise_fn(x, s) - d_star) ** 2)))
        irreducible.append(float(jnp.mean((d_star - y_eval) ** 2)))
    return np.array(excess), np.array(irreducible)


excess, irreducible = errors(D_theta)
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
axes[0].plot(sigma_grid, irreducible, "k-", label="irreducible E(D* - y)^2")
axes[0].plot(sigma_grid, excess, "o-", ms=4, label="learned: E(D_theta - D*)^2")
axes[0].set(xscale="log", yscale="log", xlabel="sigma", title="denoiser error")
axes[0].legend()
grid = jnp.linspace(-3, 3, 301)
for s, color in [(0.05, "tab:blue"), (0.3, "tab:orange"), (1.0, "tab:green"), (3.0, "tab:red")]:
    axes[1].plot(grid, exact_denoiser(grid, s), color=color, lw=3, alpha=0.4)
    axes[1].plot(grid, D_theta(grid, s), "--", color=color, label=f"sigma = {s}")
axes[1].set(
    xlabel="noisy x", ylabel="D(x)", title="exact (thick) vs learned (dashed)", ylim=(-2, 2)
)
axes[1].legend()
_style.show()
worst = sigma_grid[np.argmax(excess / irreducible)]
print(f"largest relative excess error at sigma = {worst:.2f}: {np.max(excess / irreducible):.3f}")

# %% [markdown]
# The network learns most of the job: its excess error stays well below the
# irreducible error at every $\sigma$. It is *relatively* worst where $D^*$ is most
# nonlinear — the snap between the modes at intermediate $\sigma$ (tutorial 02) — and
# where the irreducible error is tiny (small $\sigma$), so that any imprecision shows.
#
# **Check.** The loss went down, to within 5% of the exact denoiser's loss (the lowest
# possible); the learned denoiser beats the best *linear* denoiser
# (the Gaussian shrinkage $c_\text{skip}x$ scaled for the data's variance, i.e. what an
# untrained $F = 0$ gives) at every $\sigma$ where the two differ; its excess error is
# below the irreducible one everywhere.

# %%
var_data = float(np.sum(WEIGHTS * (MEANS**2 + STDS**2)))
linear_excess, _ = errors(lambda x, s: var_data * x / (var_data + s**2))
# The lowest possible loss: the exact denoiser's, on 200 batches of the same distribution.
k_y, k_s, k_e = jax.random.split(jax.random.key(6), 3)
y_m = sample_data(k_y, 200 * BATCH)
s_m = preconditioning.sample_noise_levels(k_s, config.NoiseConfig(), (200 * BATCH,))
x_m = y_m + s_m * jax.random.normal(k_e, y_m.shape)
optimal = float(jnp.mean(preconditioning.loss_weight(s_m) * (exact_denoiser(x_m, s_m) - y_m) ** 2))
final = float(losses[-200:].mean())
print(
    f"loss: first 200 steps {losses[:200].mean():.4f}, last 200 {final:.4f}, exact D* {optimal:.4f}"
)
assert final < losses[:200].mean() and final < 1.05 * optimal
assert np.all(excess < irreducible), excess / irreducible
differ = linear_excess > 1e-3
assert np.all(excess[differ] < linear_excess[differ])
print(f"excess/irreducible error at most {np.max(excess / irreducible):.3f}")

# %% [markdown]
# ## 4. What the error does to samples
#
# Now sample with GenCast's sampler (20 levels, DPM-Solver++(2S), churn) from three
# denoisers: the exact one, the learned one, and a deliberately **over-smoothing**
# version of the learned one that denoises as if the noise were 20% larger than it is,
# $D_\text{smooth}(x;\sigma) = D_\theta(x; 1.2\sigma)$. Removing too much noise is
# the error a network makes when it regresses towards the mean — what GenCast's network
# does at the small scales it learns last (tutorial 06), and why its members come out
# too alike. We measure the samples' standard deviation (the data's:
# $\sqrt{\sum_k w_k(m_k^2 + s_k^2)} = 0.996$) while varying the churn noise inflation
# $S_\text{noise}$.

# %%
sample_fn = jax.jit(sampler.sample, static_argnums=(0, 3))
DATA_STD = float(np.sqrt(np.sum(WEIGHTS * (MEANS**2 + STDS**2))))


def smooth_denoiser(x, sigma):
    return D_theta(x, 1.2 * sigma)


def sample_with(denoise_fn, inflation):
    cfg = dataclasses.replace(config.SamplerConfig(), noise_level_inflation_factor=inflation)
    return np.asarray(sample_fn(denoise_fn, jax.random.key(4), jnp.zeros(NUM_SAMPLES), cfg))


denoisers = {"exact": exact_denoiser, "learned": D_theta, "over-smoothing": smooth_denoiser}
inflations = [1.0, 1.05, 1.15, 1.3]
stds = {
    (name, f): float(sample_with(fn, f).std()) for name, fn in denoisers.items() for f in inflations
}
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
hist_grid = np.linspace(-2.5, 2.5, 101)
for name, fn in denoisers.items():
    axes[0].hist(
        sample_with(fn, 1.05), bins=hist_grid, density=True, histtype="step", lw=2, label=name
    )
axes[0].set(xlabel="y", title="samples, S_noise = 1.05")
axes[0].legend()
for name in denoisers:
    axes[1].plot(inflations, [stds[(name, f)] for f in inflations], "o-", label=name)
axes[1].axhline(DATA_STD, color="k", lw=1, label=f"data: {DATA_STD:.3f}")
axes[1].set(xlabel="S_noise (churn noise inflation)", ylabel="sample std", title="inflation widens")
axes[1].legend()
_style.show()
for name in denoisers:
    print(f"{name:15s}", {f: round(stds[(name, f)], 3) for f in inflations})
side = "wider" if stds[("learned", 1.05)] > stds[("exact", 1.05)] else "narrower"
print(f"at S_noise = 1.05 the learned denoiser's samples are {side} than the exact denoiser's")

# %% [markdown]
# Read the right panel from left to right. With the exact denoiser the sample's
# standard deviation is about 1% short of the data's at $S_\text{noise} = 1$ (20 steps
# are not an exact integration, tutorial 02), right at GenCast's 1.05, and too wide
# beyond. The over-smoothing denoiser makes samples that are **too narrow**: each
# denoising step removes a little too much, and the errors of 20 steps add up.
# Inflating the churn noise widens every sample, so an $S_\text{noise}$ well above 1
# brings the over-smoothing sampler's spread back to the data's. This is what noise
# inflation is for; GenCast uses 1.05, and the shipped model of this repository needs
# 1.3 (tutorial 08, tutorial 13).
#
# The small MLP of this notebook does not necessarily over-smooth: the line printed
# above says on which side of the exact denoiser its samples fall here. Inflation
# widens in every case, so it helps only a denoiser that errs towards the mean. It is
# one number for the whole sampler, tuned against verification (spread/skill,
# tutorial 09), not a correction of the network.
#
# **Check.** The measured order: inflation widens the samples of every denoiser; the
# over-smoothing denoiser is narrower than the learned one; the inflation in the tried
# range that brings it closest to the data is above GenCast's 1.05, while the exact
# denoiser is within 1.5% of the data at 1.05.

# %%
for name in denoisers:
    widths = [stds[(name, f)] for f in inflations]
    assert np.all(np.diff(widths) > 0), (name, widths)
assert stds[("over-smoothing", 1.0)] < stds[("learned", 1.0)] - 0.02, stds
best = min(inflations, key=lambda f: abs(stds[("over-smoothing", f)] - DATA_STD))
assert best > 1.05, best
assert abs(stds[("exact", 1.05)] - DATA_STD) < 0.015 * DATA_STD, stds[("exact", 1.05)]
print(f"over-smoothing denoiser: std closest to the data's at S_noise = {best}")

# %% [markdown]
# ## Exercises
#
# 1. Train for a tenth of the steps. Where in $\sigma$ does the excess error grow most,
#    and what happens to the samples?
# 2. Replace the $\lambda(\sigma)$ weight by 1. Which noise levels does the network now
#    neglect, and why?
# 3. Make the over-smoothing stronger ($1.5\sigma$ instead of $1.2\sigma$). Which
#    $S_\text{noise}$ now restores the spread, and does the shape come back too?
#
# <details><summary>Solutions</summary>
#
# 1. Set `NUM_TRAIN_STEPS = NUM_TRAIN_STEPS // 10` and rerun: the excess error grows
#    most at intermediate $\sigma$, where $D^*$ is most nonlinear; the samples put mass
#    between the modes.
# 2. Without $\lambda$ the loss is $\mathbb E(D - y)^2$, which is about 1 at large
#    $\sigma$ and tiny at small $\sigma$: the network neglects the small noise levels,
#    where the fine detail is made (tutorial 06).
# 3. A larger $S_\text{noise}$ (extend `inflations`); the standard deviation comes back,
#    but the shape need not: compare the histograms with the data's density — inflation
#    adds the same noise everywhere, it does not know where the denoiser erred.
#
# </details>
#
# ## Where this lives in the package
#
# | concept | module |
# |---|---|
# | $D = c_\text{skip}x + c_\text{out}F$, $\lambda(\sigma)$, training $\sigma$ | `minigencast/preconditioning.py` |
# | the real $F$ (GenCast's network) and its training | `minigencast/network.py`, `minigencast/train.py` (tutorials 05, 06) |
# | `noise_level_inflation_factor` ($S_\text{noise}$) | `minigencast/config.py`, `minigencast/sampler.py` |
#
# The last check: the training loss of section 2, computed by hand for one batch,
# equals $\lVert F_\theta - F_\text{target}\rVert^2$ with
# $F_\text{target} = (y - c_\text{skip}x)/c_\text{out}$ (tutorial 06's identity).

# %%
k_y, k_s, k_e = jax.random.split(jax.random.key(5), 3)
y_b = sample_data(k_y, BATCH)
s_b = preconditioning.sample_noise_levels(k_s, config.NoiseConfig(), (BATCH,))
x_b = y_b + s_b * jax.random.normal(k_e, (BATCH,))
f_target = (y_b - preconditioning.c_skip(s_b) * x_b) / preconditioning.c_out(s_b)
f_theta = raw_network(params, preconditioning.c_in(s_b) * x_b, s_b)
np.testing.assert_allclose(
    float(loss_fn(params, jax.random.key(5))), float(jnp.mean((f_theta - f_target) ** 2)), rtol=1e-4
)
print("lambda(sigma) (D - y)^2 == (F - F_target)^2")
