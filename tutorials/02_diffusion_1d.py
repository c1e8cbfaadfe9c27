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
# # 02 · Diffusion in one dimension
#
# **What you will build.** A complete diffusion model for a single number: you will noise
# samples of a known distribution, write down its *exact* denoiser, wrap it in GenCast's
# EDM preconditioning, integrate the probability-flow ODE by hand, and finally hand the
# same denoiser to `minigencast.sampler.sample` — the sampler GenCast uses for every
# 12-hour forecast step. Because every piece is one-dimensional and exact, you can check
# each claim with a histogram.
#
# **Learning goals**
#
# 1. Noising: $x = y + \sigma\,\varepsilon$, and what the noisy marginal $p_\sigma(x)$
#    looks like from $\sigma = 0.03$ to $\sigma = 80$.
# 2. The denoiser $D(x;\sigma) = \mathbb{E}[y \mid x]$ and its closed form for Gaussians
#    and mixtures of Gaussians.
# 3. EDM preconditioning $c_\text{in}, c_\text{out}, c_\text{skip}$, and why GenCast sets
#    $\sigma_\text{data} = 1$.
# 4. The probability-flow ODE $\mathrm{d}x/\mathrm{d}\sigma = (x - D(x;\sigma))/\sigma$ and
#    sampling by integrating it from $\sigma_\max = 80$ down to 0.
# 5. DPM-Solver++(2S): the second-order step GenCast uses, built by hand and checked
#    against the package.

# %%
import dataclasses
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import _style  # tutorials/_style.py: the projector-ready figure style
from minigencast import config, preconditioning, sampler

# "tiny" in CI (seconds), "tutorial" for readers (a minute or so).
SIZE = os.environ.get("MINIGENCAST_SIZE", "tutorial")
assert SIZE in ("tiny", "tutorial"), SIZE
NUM_SAMPLES = 4_000 if SIZE == "tiny" else 100_000
KEY = jax.random.key(0)
rng = np.random.default_rng(0)
print(f"size={SIZE}: {NUM_SAMPLES} samples per experiment")

# %% [markdown]
# ## 1. A data distribution and its noisy versions
#
# GenCast's targets are normalised residuals: per channel, roughly zero mean and unit
# variance (tutorial 01). Our stand-in is a two-component Gaussian mixture with unit-ish
# variance — bimodal, so that a bad sampler is easy to spot:
#
# $$p_\text{data}(y) = \tfrac12\,\mathcal N(y; -m, s^2) + \tfrac12\,\mathcal N(y; m, s^2),
# \qquad m = 0.95,\ s = 0.3,\quad \operatorname{Var}[y] = m^2 + s^2 \approx 1.$$
#
# Diffusion models corrupt data with Gaussian noise of standard deviation $\sigma$,
#
# $$x = y + \sigma\,\varepsilon,\qquad \varepsilon\sim\mathcal N(0, 1),$$
#
# so the noisy marginal is the data density convolved with $\mathcal N(0,\sigma^2)$ —
# for our mixture simply the mixture with variances $s^2 + \sigma^2$. At large $\sigma$
# every trace of the data is gone and $p_\sigma \approx \mathcal N(0, \sigma^2)$: that is
# where sampling starts.

# %%
WEIGHTS = np.array([0.5, 0.5])
MEANS = np.array([-0.95, 0.95])
STDS = np.array([0.3, 0.3])


def sample_data(rng, n):
    component = rng.choice(len(WEIGHTS), size=n, p=WEIGHTS)
    return MEANS[component] + STDS[component] * rng.standard_normal(n)


def noisy_density(x, sigma):
    """p_sigma(x): the mixture with every variance increased by sigma^2."""
    var = STDS**2 + sigma**2
    comps = np.exp(-0.5 * (x[:, None] - MEANS) ** 2 / var) / np.sqrt(2 * np.pi * var)
    return comps @ WEIGHTS


y = sample_data(rng, NUM_SAMPLES)
print(f"data mean {y.mean():+.3f}, variance {y.var():.3f}")

fig, axes = plt.subplots(1, 4, figsize=(14, 3))
for ax, sigma in zip(axes, [0.03, 0.5, 2.0, 80.0], strict=True):
    x = y + sigma * rng.standard_normal(y.shape)
    lim = max(3.0, 4 * sigma)
    grid = np.linspace(-lim, lim, 400)
    ax.hist(x, bins=80, range=(-lim, lim), density=True, alpha=0.5, label="y + sigma eps")
    ax.plot(grid, noisy_density(grid, sigma), "k", lw=1, label="p_sigma(x)")
    ax.set_title(f"sigma = {sigma}")
axes[0].legend()
fig.suptitle("Noising: the data density blurred by N(0, sigma^2)")
_style.show()

# %% [markdown]
# ## 2. The ideal denoiser
#
# A denoiser trained with the squared error $\mathbb E\,\|D(y+\sigma\varepsilon;\sigma) - y\|^2$
# converges to the posterior mean $D^*(x;\sigma) = \mathbb E[y \mid x]$. For Gaussian data
# $y \sim \mathcal N(\mu, s^2)$ it is a shrinkage towards the mean:
#
# $$D^*(x;\sigma) = \frac{s^2}{s^2+\sigma^2}\,x + \frac{\sigma^2}{s^2+\sigma^2}\,\mu .$$
#
# For a mixture, each component contributes its own shrinkage, weighted by its posterior
# responsibility $r_k(x) \propto w_k\,\mathcal N(x; m_k, s_k^2+\sigma^2)$:
#
# $$D^*(x;\sigma) = \sum_k r_k(x)\,\frac{s_k^2\,x + \sigma^2 m_k}{s_k^2 + \sigma^2}.$$
#
# This exact $D^*$ plays the role of the trained network for the rest of the notebook
# (tutorial 06 trains a real one). It is written in JAX so the package's sampler can call it.


# %%
def exact_denoiser(x, sigma):
    """E[y | x] for the Gaussian mixture (WEIGHTS, MEANS, STDS): x [...], sigma scalar."""
    var = jnp.asarray(STDS) ** 2 + sigma**2  # [K]
    log_r = (
        jnp.log(jnp.asarray(WEIGHTS))
        - 0.5 * (x[..., None] - jnp.asarray(MEANS)) ** 2 / var
        - 0.5 * jnp.log(var)
    )
    r = jax.nn.softmax(log_r, axis=-1)  # responsibilities [..., K]
    shrunk = (jnp.asarray(STDS) ** 2 * x[..., None] + sigma**2 * jnp.asarray(MEANS)) / var
    return jnp.sum(r * shrunk, axis=-1).astype(x.dtype)


grid = jnp.linspace(-4, 4, 401)
fig, ax = plt.subplots(figsize=(5, 4))
for sigma in [0.05, 0.3, 1.0, 3.0, 20.0]:
    ax.plot(grid, exact_denoiser(grid, sigma), label=f"sigma = {sigma}")
ax.plot(grid, grid, "k:", lw=0.8, label="identity")
ax.set(xlabel="noisy x", ylabel="D*(x; sigma)", title="Exact denoiser of the mixture", ylim=(-2, 2))
ax.legend()
_style.show()

# %% [markdown]
# At $\sigma = 0.05$ the noise is far smaller than each mode's own width ($s = 0.3$), so
# the denoiser is almost the identity everywhere, even between the modes: it moves no
# point by more than 0.03. The snap to the nearer mode shows at $\sigma \approx 0.3$–$1$:
# between the modes the curve is much steeper than the identity (slope 3 at $x = 0$ for
# $\sigma = 0.3$), so a point at $x = 0.3$ is moved to about $0.59$ ($\sigma = 0.3$) or
# $0.56$ ($\sigma = 0.5$), more than a third of the way to the mode at $0.95$; and at
# $\sigma = 1$ a point at $1.5$ is pulled in to $0.88$, next to the mode.
# At large $\sigma$ it returns almost the data mean 0 whatever $x$ is: the noise swamps
# the signal.
#
# **Check.** Each of these sentences, measured on the curves above:

# %%
inner = jnp.linspace(-2.0, 2.0, 401)


def slope_at_zero(sigma):
    return float(jax.grad(lambda x: exact_denoiser(x[None], sigma)[0])(jnp.float32(0.0)))


def denoised(x, sigma):
    return float(exact_denoiser(jnp.array([x], jnp.float32), sigma)[0])


assert float(jnp.max(jnp.abs(exact_denoiser(inner, 0.05) - inner))) < 0.03
assert slope_at_zero(0.05) < 1.3  # nearly the identity at sigma = 0.05 ...
for sigma in [0.3, 0.5]:  # ... a steep jump between the modes at sigma = 0.3-0.5
    assert slope_at_zero(sigma) > 2.0, sigma
    assert denoised(0.3, sigma) > 0.3 + (MEANS[1] - 0.3) / 3, sigma
assert abs(denoised(1.5, 1.0) - MEANS[1]) < 0.1  # pulled in to the mode at sigma = 1
assert float(jnp.max(jnp.abs(exact_denoiser(inner, 20.0)))) < 0.01  # the mean at large sigma
print(
    "slope of D at x = 0: "
    + ", ".join(f"sigma {s}: {slope_at_zero(s):.2f}" for s in [0.05, 0.3, 0.5, 1.0, 3.0])
)

# %% [markdown]
#
# ## 3. EDM preconditioning
#
# A neural network is happiest when its inputs and its regression targets have unit
# scale. But $x$ has variance $\sigma_\text{data}^2 + \sigma^2$, which spans
# $1$ to $6400$, and $D$ must output something of scale $\sigma_\text{data}$. EDM
# (Karras et al. 2022, Table 1) therefore writes the denoiser around a raw network $F$:
#
# $$D(x;\sigma) = c_\text{skip}(\sigma)\,x + c_\text{out}(\sigma)\,F\big(c_\text{in}(\sigma)\,x;\ \sigma\big).$$
#
# * $c_\text{in} = 1/\sqrt{\sigma^2 + \sigma_\text{data}^2}$ gives $F$ a unit-variance input;
# * $c_\text{skip} = \sigma_\text{data}^2/(\sigma^2 + \sigma_\text{data}^2)$ is the best
#   *linear* guess of $y$ from $x$ (the Gaussian shrinkage above, with $\mu = 0$);
# * $c_\text{out} = \sigma\,\sigma_\text{data}/\sqrt{\sigma^2+\sigma_\text{data}^2}$ makes
#   $F$'s regression target $(y - c_\text{skip}x)/c_\text{out}$ unit-variance.
#
# GenCast normalises its targets to unit variance, so $\sigma_\text{data} = 1$ and
# $c_\text{in} = (1+\sigma^2)^{-1/2}$, $c_\text{skip} = (1+\sigma^2)^{-1}$,
# $c_\text{out} = \sigma(1+\sigma^2)^{-1/2}$, with the identity
# $c_\text{skip} + c_\text{out}^2 = 1$. These are `preconditioning.c_in`, `c_skip`, `c_out`.

# %%
sigmas = np.geomspace(0.02, 90, 200)
fig, ax = plt.subplots(figsize=(5, 4))
for name in ["c_in", "c_skip", "c_out"]:
    ax.plot(sigmas, getattr(preconditioning, name)(sigmas), label=name)
ax.set(xscale="log", xlabel="sigma", title="EDM preconditioning, sigma_data = 1")
ax.axvline(1.0, color="grey", lw=0.5)
ax.legend()
_style.show()

# %% [markdown]
# **Why $\sigma_\text{data} = 1$ matters.** The target of $F$ is
# $(y - c_\text{skip}x)/c_\text{out}$. Its variance is exactly 1 at every $\sigma$ only
# if the data really have the variance the coefficients assume. Below we compute it for
# our data (variance ≈ 1) and for the same data in un-normalised units (×10): then the
# target's variance grows from 1 at small $\sigma$ to 100 at large $\sigma$, and the
# network would have to output values 10× larger at large $\sigma$ than at small ones —
# a badly scaled regression problem. Normalising the targets (tutorial 01) is what makes
# $\sigma_\text{data} = 1$ true.


# %%
def f_target_variance(y, sigma, rng):
    x = y + sigma * rng.standard_normal(y.shape)
    target = (y - preconditioning.c_skip(sigma) * x) / preconditioning.c_out(sigma)
    return float(np.var(target))


fig, ax = plt.subplots(figsize=(5, 4))
probe = np.geomspace(0.02, 80, 25)
for scale in [1.0, 10.0]:
    ax.plot(
        probe,
        [f_target_variance(scale * y, s, rng) for s in probe],
        "o-",
        ms=3,
        label=f"data std {scale * y.std():.1f}",
    )
ax.set(
    xscale="log",
    yscale="log",
    xlabel="sigma",
    ylabel="Var[target of F]",
    title="F's regression target",
)
ax.legend()
_style.show()

# %% [markdown]
# For standard normal data the exact denoiser *is* $c_\text{skip}\,x$, so the ideal raw
# network output is $F^* \equiv 0$. A network that outputs zeros is already the optimal
# Gaussian denoiser; training only has to learn how the data differ from a Gaussian.
#
# **Check.** The identities of the preconditioning, and $F^* = 0$ for $\mathcal N(0,1)$
# data (the exact Gaussian denoiser with $\mu = 0, s = 1$):

# %%
s = jnp.asarray(sigmas, jnp.float32)
np.testing.assert_allclose(
    preconditioning.c_skip(s) + preconditioning.c_out(s) ** 2, 1.0, rtol=1e-6
)
np.testing.assert_allclose(preconditioning.c_in(s) ** 2 * (1 + s**2), 1.0, rtol=1e-5)
x = jnp.linspace(-5, 5, 11)
for sig in [0.1, 1.0, 10.0]:
    gaussian_d = x / (1 + sig**2)  # D* for N(0, 1) data
    f_star = (gaussian_d - preconditioning.c_skip(sig) * x) / preconditioning.c_out(sig)
    np.testing.assert_allclose(f_star, 0.0, atol=1e-6)
    # ... and the package's D with a raw network F = 0 is that exact denoiser.
    d = preconditioning.denoise(lambda xs, _s: jnp.zeros_like(xs), x, sig)
    np.testing.assert_allclose(d, gaussian_d, rtol=1e-6)
print("c_skip + c_out^2 = 1, c_in^2 (1 + sigma^2) = 1, and F* = 0 for N(0, 1) data")

# %% [markdown]
# ## 4. The probability-flow ODE
#
# Sampling runs noising backwards. EDM (eq. 1 with $\sigma(t) = t$) shows that moving
# $x$ along
#
# $$\frac{\mathrm{d}x}{\mathrm{d}\sigma} = \frac{x - D(x;\sigma)}{\sigma}$$
#
# transports $p_{\sigma_\max}$ into $p_\sigma$ for every smaller $\sigma$. Starting from
# $x \sim \mathcal N(0, \sigma_\max^2)$ — indistinguishable from $p_{\sigma_\max}$ when
# $\sigma_\max = 80 \gg 1$ — and integrating to $\sigma = 0$ yields data samples.
# GenCast's $N = 20$ noise levels are equally spaced in $\sigma^{1/\rho}$, $\rho = 7$
# (EDM eq. 5):
#
# $$\sigma_i = \Big(\sigma_\max^{1/\rho} + \tfrac{i}{N-1}\big(\sigma_\min^{1/\rho} - \sigma_\max^{1/\rho}\big)\Big)^{\rho},\quad \sigma_N = 0.$$
#
# The steps shrink as $\sigma$ falls (from $80 \to 62$ at the start to $0.06 \to 0.03$ at
# the end), so *measured in $\sigma$* they crowd at small $\sigma$. Measured in
# $\log\sigma$ — the axis of this notebook's plots — they do not: the log-steps are even
# a little *longer* at the small end, and 14 of the 20 levels lie above $\sigma = 1$.
# What $\rho = 7$ buys is short absolute steps where $D$ changes fastest in $x$ (small
# $\sigma$, the details), without wasting steps at large $\sigma$, where $D$ is almost
# the constant data mean.
#
# The simplest integrator is Euler: $x_{i+1} = x_i + (\sigma_{i+1} - \sigma_i)\,(x_i - D(x_i;\sigma_i))/\sigma_i$.
# Rearranged, an Euler step is a convex combination of the state and the denoised estimate,
# $x_{i+1} = \frac{\sigma_{i+1}}{\sigma_i}x_i + \big(1 - \frac{\sigma_{i+1}}{\sigma_i}\big)D(x_i;\sigma_i)$,
# and the last step (to $\sigma = 0$) simply returns $D$.

# %%
no_churn = dataclasses.replace(config.SamplerConfig(), stochastic_churn_rate=0.0)
levels = sampler.noise_levels(no_churn)
print("GenCast's noise levels:", np.round(levels, 3))
# Check: short steps in sigma at the small end, but not in log sigma; 14 of 20 above 1.
positive = np.asarray(levels[:-1], np.float64)
assert np.all(np.diff(-np.diff(positive)) < 0)  # |sigma_{i+1} - sigma_i| shrinks
log_steps = -np.diff(np.log(positive))
assert log_steps[-1] > log_steps[0]  # in log sigma the last step is the longer one
assert int(np.sum(positive > 1.0)) == 14 and len(positive) == 20
print(f"log-steps {log_steps[0]:.2f} (first) to {log_steps[-1]:.2f} (last)")


def euler_by_hand(x, levels):
    for sigma, sigma_next in zip(levels[:-1], levels[1:], strict=True):
        d = exact_denoiser(x, sigma)
        x = x + (sigma_next - sigma) * (x - d) / sigma
    return x


eps = jax.random.normal(KEY, (NUM_SAMPLES,))
x_euler = euler_by_hand(levels[0] * eps, levels)
coarse = sampler.noise_levels(dataclasses.replace(no_churn, num_noise_levels=4))
x_coarse = euler_by_hand(coarse[0] * eps, coarse)

fig, ax = plt.subplots(figsize=(6, 4))
grid = np.linspace(-3, 3, 400)
ax.hist(
    np.asarray(x_euler), bins=100, range=(-3, 3), density=True, alpha=0.5, label="Euler, 20 levels"
)
ax.hist(
    np.asarray(x_coarse), bins=100, range=(-3, 3), density=True, alpha=0.5, label="Euler, 4 levels"
)
ax.plot(grid, noisy_density(grid, 0.0), "k", lw=1, label="p_data")
ax.set(title="Sampling by integrating the probability-flow ODE", xlabel="y")
ax.legend()
_style.show()

# %% [markdown]
# With only four levels Euler's sample is far too concentrated between the modes: each
# step trusts $D$ at the *start* of a long interval, where $D$ still points at the
# overall mean. More levels fix that at the price of more network calls; a higher-order
# solver fixes it more cheaply.
#
# ## 5. DPM-Solver++(2S), by hand
#
# With $\lambda = -\ln\sigma$ the ODE has the exact solution
# $x(\sigma') = \frac{\sigma'}{\sigma}x(\sigma) + \sigma'\int_\lambda^{\lambda'} e^{l} D\,\mathrm dl$.
# DPM-Solver++(2S) (Lu et al. 2022) evaluates $D$ once at the start and once at the
# geometric midpoint $\sigma_\text{mid} = \sqrt{\sigma\,\sigma'}$, and uses the midpoint
# estimate for the whole step:
#
# $$x_0 = D(x;\sigma),\quad
# x_\text{mid} = \tfrac{\sigma_\text{mid}}{\sigma}x + \big(1-\tfrac{\sigma_\text{mid}}{\sigma}\big)x_0,\quad
# x' = \tfrac{\sigma'}{\sigma}x + \big(1-\tfrac{\sigma'}{\sigma}\big)D(x_\text{mid};\sigma_\text{mid}).$$
#
# The last step ($\sigma' = 0$) is the Euler step $x' = D(x;\sigma_{N-1})$: $2(N-1)+1 = 39$
# denoiser calls for GenCast's $N = 20$. (GenCast also adds *churn* — fresh noise at high
# $\sigma$ — which tutorial 07 explores; here it is switched off.)
#
# We compare the two solvers at equal cost (number of denoiser calls) by the total
# variation distance between the sample histogram and the true density.


# %%
def dpm_solver_2s_by_hand(x, levels):
    for sigma, sigma_next in zip(levels[:-2], levels[1:-1], strict=True):
        x0 = exact_denoiser(x, sigma)
        sigma_mid = np.sqrt(sigma * sigma_next)
        x_mid = sigma_mid / sigma * x + (1 - sigma_mid / sigma) * x0
        x0_mid = exact_denoiser(x_mid, sigma_mid)
        x = sigma_next / sigma * x + (1 - sigma_next / sigma) * x0_mid
    return exact_denoiser(x, levels[-2])  # the final Euler step to sigma = 0


def tv_distance(x):
    """Total variation distance between the histogram of x and p_data (0 = perfect)."""
    hist, edges = np.histogram(np.asarray(x), bins=60, range=(-3, 3), density=True)
    centres = 0.5 * (edges[1:] + edges[:-1])
    return 0.5 * float(np.sum(np.abs(hist - noisy_density(centres, 0.0)))) * (edges[1] - edges[0])


x_dpm = dpm_solver_2s_by_hand(levels[0] * eps, levels)
rows = []
for n in [2, 3, 4, 6, 10, 20]:
    lv = sampler.noise_levels(dataclasses.replace(no_churn, num_noise_levels=n))
    rows.append(
        (
            n,
            tv_distance(euler_by_hand(lv[0] * eps, lv)),
            2 * (n - 1) + 1,
            tv_distance(dpm_solver_2s_by_hand(lv[0] * eps, lv)),
        )
    )
rows = np.array(rows)
fig, ax = plt.subplots(figsize=(5, 4))
ax.plot(rows[:, 0], rows[:, 1], "o-", label="Euler")
ax.plot(rows[:, 2], rows[:, 3], "s-", label="DPM-Solver++(2S)")
ax.set(
    xscale="log",
    yscale="log",
    xlabel="denoiser calls",
    ylabel="TV distance to p_data",
    title="Cost vs quality, no churn",
)
ax.set_xticks([2, 5, 10, 20, 40], ["2", "5", "10", "20", "40"])
ax.xaxis.set_minor_formatter(plt.NullFormatter())
ax.legend()
_style.show()
print(
    f"std of the samples: Euler 20 levels {float(x_euler.std()):.3f}, "
    f"Euler 4 levels {float(x_coarse.std()):.3f}, 2S 20 levels {float(x_dpm.std()):.3f}, "
    f"data {float(np.sqrt(np.sum(WEIGHTS * (MEANS**2 + STDS**2)))):.3f}"
)

# %% [markdown]
# ## 6. The package's sampler
#
# `sampler.sample(denoise_fn, key, template, config, noise_fn=None)` is the same loop
# as one `jax.lax.scan`, with GenCast's churn. It takes any `denoise_fn(x, sigma)`; the
# template fixes the shape (here one vector of independent 1-D samples, because our
# denoiser acts elementwise).

# %%
gencast_sampler = config.SamplerConfig()
sample_fn = jax.jit(sampler.sample, static_argnums=(0, 3))
x_pkg = sample_fn(exact_denoiser, KEY, jnp.zeros(NUM_SAMPLES), gencast_sampler)

fig, ax = plt.subplots(figsize=(6, 4))
ax.hist(
    np.asarray(x_pkg),
    bins=100,
    range=(-3, 3),
    density=True,
    alpha=0.5,
    label="sampler.sample (with churn)",
)
ax.plot(grid, noisy_density(grid, 0.0), "k", lw=1, label="p_data")
ax.set(title="GenCast's sampler on the exact mixture denoiser", xlabel="y")
ax.legend()
_style.show()

# %% [markdown]
# **Check.** With the exact denoiser of a Gaussian $\mathcal N(\mu, s^2)$ the sampler
# must reproduce $\mu$ and $s$ (up to Monte-Carlo error $\approx s/\sqrt n$), and on the
# mixture it must put half the mass on each mode with the right spread. The spread is
# only checked to 5%: 20 levels are not an exact integration (without churn the sample
# comes out ~2% too narrow), and GenCast's churn inflates the re-injected noise by
# $S_\text{noise} = 1.05$, which makes it ~3% too wide (measured with 400 000 samples;
# try `noise_level_inflation_factor=1.0`).

# %%
mu, s_true = 0.5, 0.7


def mode_std(x):
    """Spread of the samples around their nearer mode (true value: s = 0.3)."""
    return float(np.std(np.abs(np.asarray(x)) - 0.95))


def gaussian_denoiser(x, sigma):
    return (s_true**2 * x + sigma**2 * mu) / (s_true**2 + sigma**2)


x_gauss = np.asarray(
    sample_fn(gaussian_denoiser, jax.random.key(1), jnp.zeros(NUM_SAMPLES), gencast_sampler)
)
tol = 5 * s_true / np.sqrt(NUM_SAMPLES)
assert abs(x_gauss.mean() - mu) < tol, x_gauss.mean()
assert abs(x_gauss.std() - s_true) < 0.05 * s_true, x_gauss.std()
assert abs(float(np.mean(np.asarray(x_pkg) > 0)) - 0.5) < 5 * 0.5 / np.sqrt(NUM_SAMPLES)
assert abs(mode_std(x_pkg) - 0.3) < 0.03, mode_std(x_pkg)
print(f"Gaussian: mean {x_gauss.mean():.3f} (mu {mu}), std {x_gauss.std():.3f} (s {s_true})")

# %% [markdown]
# ## Exercises
#
# 1. Set `num_noise_levels=4` in the package sampler (with and without churn). Which of
#    Euler and DPM-Solver++(2S) suffers more from few steps, and why?
# 2. Replace `STDS` by `[0.05, 0.05]` (very sharp modes). What happens to the sample
#    near $x=0$ with 20 levels? How does it change with $\rho = 1$ instead of 7?
# 3. Show that for $\mathcal N(0, s^2)$ data with $s \ne 1$, $F^*$ is not zero. Plot it.
#
# <details><summary>Solutions</summary>
#
# 1. `sampler.sample(exact_denoiser, KEY, jnp.zeros(n), dataclasses.replace(cfg,
#    num_noise_levels=4))` for `cfg` = `no_churn` and `config.SamplerConfig()`, then
#    `tv_distance`. Euler suffers more: it evaluates $D$ only at the start of each long
#    interval, where $D$ still points towards the overall mean, so samples end up between
#    the modes; the 2S step looks at $D$ half-way, where the modes are already visible.
#    Churn re-injects noise and lets later steps correct earlier mistakes.
# 2. Sharp modes make $D$ a near step function at small $\sigma$, so the last few steps
#    must be short. With $\rho = 1$ (uniform steps in $\sigma$) almost all steps lie at
#    large $\sigma$ and the small-$\sigma$ end is crossed in one jump: compare
#    `tv_distance` for $\rho = 1$ and $\rho = 7$. $\rho = 7$ spends the steps where the
#    detail forms.
# 3. $D^* = s^2x/(s^2+\sigma^2)$, so
#    $F^* = (D^* - c_\text{skip}x)/c_\text{out} = \frac{x}{c_\text{out}}\big(\frac{s^2}{s^2+\sigma^2} - \frac{1}{1+\sigma^2}\big)$,
#    non-zero unless $s = 1$: `plt.plot(grid, (s**2 * grid / (s**2 + sig**2) - preconditioning.c_skip(sig) * grid) / preconditioning.c_out(sig))`.
#
# </details>
#
# ## Where this lives in the package
#
# | concept | module |
# |---|---|
# | $c_\text{in}, c_\text{out}, c_\text{skip}$, $D = c_\text{skip}x + c_\text{out}F$, loss weight | `minigencast/preconditioning.py` |
# | noise levels, churn, DPM-Solver++(2S), `sample`, `sample_trajectory` | `minigencast/sampler.py` |
# | `SamplerConfig` (80, 0.03, 20, ρ = 7, churn 2.5, 1.05) | `minigencast/config.py` |
#
# The last check: the hand-built DPM-Solver++(2S) of section 5 equals the package's
# sampler without churn (we hand it the same initial noise through `noise_fn`; with churn
# off, the noise drawn at each step is multiplied by 0).

# %%
fixed_noise = lambda key, template: eps.astype(template.dtype)  # noqa: E731
x_pkg_no_churn = sampler.sample(
    exact_denoiser, KEY, jnp.zeros(NUM_SAMPLES), no_churn, noise_fn=fixed_noise
)
np.testing.assert_allclose(x_pkg_no_churn, x_dpm, rtol=1e-4, atol=1e-4)
print("hand-built DPM-Solver++(2S) == sampler.sample (no churn)")
