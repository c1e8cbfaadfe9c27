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
# # 11 · The bridge to diffusion theory
#
# **What you will build.** The theory behind tutorial 02, derived rather than asserted,
# on the same one-dimensional mixture whose every quantity is exact: the *score*
# $\nabla_x\log p_\sigma(x)$ and Tweedie's formula linking it to the denoiser; the
# probability-flow ODE from the heat equation; churn as a Langevin-like correction; the
# dictionary between the DDPM notation most courses use and EDM's, which GenCast uses;
# and the picture of the whole process that opens the EDM paper, plus an animation.
#
# **Learning goals**
#
# 1. Tweedie's formula $\nabla_x\log p_\sigma(x) = \big(D(x;\sigma) - x\big)/\sigma^2$:
#    a denoiser *is* a score model.
# 2. The probability-flow ODE $\mathrm dx/\mathrm d\sigma = (x - D(x;\sigma))/\sigma$
#    derived from the heat equation, and checked as a continuity equation.
# 3. Churn: add noise (exactly $p_\sigma \to p_{\hat\sigma}$), then step down; why this
#    acts like Langevin dynamics that pull samples back to $p_\sigma$.
# 4. DDPM ($\bar\alpha_t$, $\varepsilon$-prediction) ↔ EDM ($\sigma$, $D$,
#    $c_\text{skip}, c_\text{out}, c_\text{in}$).
#
# Karras et al. 2022 ("EDM", arXiv:2206.00364) sections 2–4 and Appendix B; Song et
# al. 2021 (arXiv:2011.13456) for the score-SDE view; Efron 2011 for Tweedie's formula.

# %%
import base64
import os
import tempfile

import jax
import jax.numpy as jnp
import matplotlib.animation
import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np
from IPython import display

import _style  # tutorials/_style.py: the projector-ready figure style
from minigencast import config, preconditioning, sampler

# "tiny" in CI (seconds), "tutorial" for readers (well under a minute).
SIZE = os.environ.get("MINIGENCAST_SIZE", "tutorial")
assert SIZE in ("tiny", "tutorial"), SIZE
NUM_SAMPLES = 4_000 if SIZE == "tiny" else 40_000
NUM_FRAMES = 12 if SIZE == "tiny" else 40
KEY = jax.random.key(0)
jax.config.update("jax_enable_x64", True)  # finite differences below need float64
print(f"size={SIZE}: {NUM_SAMPLES} samples, {NUM_FRAMES} animation frames")

# %% [markdown]
# ## 1. The data, its noisy marginals, and the exact denoiser
#
# The mixture of tutorial 02: $p_\text{data} = \sum_k w_k\,\mathcal N(m_k, s_k^2)$ with
# modes at $\pm 0.95$, $s = 0.3$. Noising $x = y + \sigma\varepsilon$ convolves each
# component with $\mathcal N(0, \sigma^2)$, so $p_\sigma = \sum_k w_k\,\mathcal N(m_k,
# s_k^2 + \sigma^2)$ — everything below is in closed form.

# %%
WEIGHTS = np.array([0.5, 0.5])
MEANS = np.array([-0.95, 0.95])
STDS = np.array([0.3, 0.3])


def log_density(x, sigma):
    """log p_sigma(x) of the noisy mixture, x [...] (any float dtype), sigma scalar."""
    var = jnp.asarray(STDS) ** 2 + sigma**2
    log_terms = (
        jnp.log(jnp.asarray(WEIGHTS))
        - 0.5 * (x[..., None] - jnp.asarray(MEANS)) ** 2 / var
        - 0.5 * jnp.log(2 * jnp.pi * var)
    )
    return jax.scipy.special.logsumexp(log_terms, axis=-1)


def exact_denoiser(x, sigma):
    """D*(x; sigma) = E[y | x]: responsibilities times the per-component Gaussian shrinkage."""
    var = jnp.asarray(STDS) ** 2 + sigma**2
    log_r = jnp.log(jnp.asarray(WEIGHTS)) - 0.5 * (x[..., None] - jnp.asarray(MEANS)) ** 2 / var
    r = jax.nn.softmax(log_r - 0.5 * jnp.log(var), axis=-1)
    shrunk = (jnp.asarray(STDS) ** 2 * x[..., None] + sigma**2 * jnp.asarray(MEANS)) / var
    return jnp.sum(r * shrunk, axis=-1)


# %% [markdown]
# ## 2. The score and Tweedie's formula
#
# The **score** of a density is $\nabla_x \log p(x)$: an arrow pointing uphill, towards
# more probable $x$. Score-based models (Song & Ermon 2019; Song et al. 2021) learn it
# at every noise level. EDM and GenCast learn a *denoiser* instead. They are the same
# thing. Differentiate $p_\sigma(x) = \int p_\text{data}(y)\,\mathcal N(x; y, \sigma^2)\,\mathrm dy$
# under the integral, using $\nabla_x \mathcal N(x; y, \sigma^2) = \mathcal N(x; y, \sigma^2)\,(y - x)/\sigma^2$:
#
# $$\nabla_x p_\sigma(x) = \int p_\text{data}(y)\,\mathcal N(x; y,\sigma^2)\,\frac{y - x}{\sigma^2}\,\mathrm dy
# \quad\Rightarrow\quad
# \nabla_x \log p_\sigma(x) = \frac{\mathbb E[y \mid x] - x}{\sigma^2} = \frac{D(x;\sigma) - x}{\sigma^2}.$$
#
# (Divide by $p_\sigma(x)$ and recognise the posterior $p(y\mid x)$.) This is
# **Tweedie's formula**. A network trained to denoise with the squared error of
# tutorial 06 estimates $\mathbb E[y\mid x]$, hence the score; and
# $\varepsilon$-prediction (section 5) estimates $-\sigma\nabla\log p_\sigma$.
#
# Below, the score computed two independent ways: by automatic differentiation of
# $\log p_\sigma$, and from the denoiser through Tweedie.

# %%
grid = jnp.linspace(-3.0, 3.0, 601)
score_autodiff = {
    s: jax.vmap(jax.grad(lambda x, s=s: log_density(x, s)))(grid) for s in [0.1, 0.3, 1.0, 3.0]
}
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
for s, score in score_autodiff.items():
    axes[0].plot(grid, jnp.exp(log_density(grid, s)), label=f"sigma = {s}")
    tweedie = (exact_denoiser(grid, s) - grid) / s**2
    axes[1].plot(grid, s * score, label=f"sigma = {s}")
    axes[1].plot(grid[::40], s * tweedie[::40], "k.", ms=5)
axes[0].set(xlabel="x", ylabel="p_sigma(x)", title="noisy densities")
axes[1].set(
    xlabel="x",
    ylabel="sigma * score",
    title="score (lines: autodiff; dots: Tweedie)",
    ylim=(-4, 4),
)
axes[0].legend()
_style.show()

# %% [markdown]
# The score points towards the modes, and at small $\sigma$ it is steep between them.
# (We plot $\sigma\times$score, the quantity $\varepsilon$-prediction learns up to sign,
# because the score itself grows like $1/\sigma$.)
#
# **Check.** Tweedie's formula, against autodiff, at every grid point and noise level:

# %%
for s, score in score_autodiff.items():
    tweedie = (exact_denoiser(grid, s) - grid) / s**2
    np.testing.assert_allclose(tweedie, score, rtol=1e-8, atol=1e-8 / s**2)
print("grad log p_sigma == (D - x) / sigma^2 at sigma =", list(score_autodiff))

# %% [markdown]
# ## 3. The probability-flow ODE, derived
#
# Think of the noise level as time. As $\sigma$ grows by $\mathrm d\sigma$, the sample
# $x = y + \sigma\varepsilon$ receives independent Gaussian noise of variance
# $\mathrm d(\sigma^2) = 2\sigma\,\mathrm d\sigma$. Adding noise of variance $2\sigma\,\mathrm d\sigma$
# to a density is a step of the heat equation:
#
# $$\frac{\partial p_\sigma}{\partial\sigma} = \sigma\,\nabla^2 p_\sigma
# = \nabla\cdot\big(\sigma\,p_\sigma\nabla\log p_\sigma\big),$$
#
# using $\nabla p = p\,\nabla\log p$. Now write it as a **continuity equation**,
# $\partial_\sigma p + \nabla\cdot(p\,v) = 0$: the density changes *as if* every sample
# moved with the velocity
#
# $$v(x, \sigma) = -\sigma\,\nabla_x\log p_\sigma(x) = -\sigma\,\frac{D(x;\sigma) - x}{\sigma^2} = \frac{x - D(x;\sigma)}{\sigma}.$$
#
# So samples following $\mathrm dx/\mathrm d\sigma = (x - D(x;\sigma))/\sigma$ have
# density $p_\sigma$ at every $\sigma$, in both directions: integrate it *downwards*
# from $\sigma_\max$, starting at $\mathcal N(0, \sigma_\max^2) \approx p_{\sigma_\max}$,
# and you end at $p_\text{data}$. No randomness is needed after the start: this is the
# **probability-flow ODE** (Song et al. 2021, eq. 13; EDM eq. 1 with $\sigma(t) = t$),
# the ODE tutorial 02 integrates. Where noise would *spread* mass, the flow *carries* it
# outwards; run backwards, it carries mass into the modes.
#
# **Check.** Both equations on a grid of $(x, \sigma)$, by finite differences of the
# closed-form density: the heat equation, and the continuity equation with
# $v = (x - D)/\sigma$ taken from the *denoiser*.

# %%
x = jnp.linspace(-4.0, 4.0, 2001)
h_x, h_s = float(x[1] - x[0]), 1e-4
for s in [0.2, 0.5, 1.0, 2.0]:
    p = jnp.exp(log_density(x, s))
    dp_ds = (jnp.exp(log_density(x, s + h_s)) - jnp.exp(log_density(x, s - h_s))) / (2 * h_s)
    laplacian = jnp.gradient(jnp.gradient(p, h_x), h_x)
    flux = p * (x - exact_denoiser(x, s)) / s  # p v
    inner = slice(10, -10)
    scale = float(jnp.max(jnp.abs(dp_ds)))
    np.testing.assert_allclose(dp_ds[inner], s * laplacian[inner], atol=2e-3 * scale)
    np.testing.assert_allclose(dp_ds[inner], -jnp.gradient(flux, h_x)[inner], atol=2e-3 * scale)
print("d p/d sigma = sigma * laplacian(p) = -div(p (x - D)/sigma) at sigma = 0.2, 0.5, 1, 2")

# %% [markdown]
# ## 4. Trajectories: the picture that opens the EDM paper
#
# EDM's Figure 1 draws the noisy densities as a background, with $\sigma$ running along
# the horizontal axis, and sample paths on top. Here: the exact $p_\sigma(x)$ (colour)
# for $\sigma$ from 20 down to 0.02, ODE paths (white) integrated with many small
# DPM-Solver++(2S) steps of the package (churn off), and paths of the stochastic sampler
# (churn on, black), which wander because churn re-injects noise.


# %%
def trajectories(cfg, key, num):
    """States x_i before each step (i = 0..N-1) and the final sample, [N+1, num]."""
    final, traj = sampler.sample_trajectory(exact_denoiser, key, jnp.zeros(num), cfg)
    return np.concatenate([np.asarray(traj["x"]), np.asarray(final)[None]]), np.asarray(
        traj["sigma"]
    )


fine = config.SamplerConfig(
    max_noise_level=20.0,
    min_noise_level=0.02,
    num_noise_levels=60,
    stochastic_churn_rate=0.0,
)
churned = config.SamplerConfig(
    max_noise_level=20.0,
    min_noise_level=0.02,
    num_noise_levels=60,
    stochastic_churn_rate=10.0,  # strong churn, to make its random walk visible
    churn_max_noise_level=20.0,
)
ode_paths, ode_sigmas = trajectories(fine, jax.random.key(1), 24)
sde_paths, sde_sigmas = trajectories(churned, jax.random.key(2), 6)
sig_axis = np.geomspace(20.0, 0.015, 300)  # to the left edge, where the samples are drawn
xs = np.linspace(-3.5, 3.5, 281)
density = np.exp(np.asarray(jax.vmap(lambda s: log_density(jnp.asarray(xs), s))(sig_axis)))

fig, ax = plt.subplots(figsize=(11, 5))
mesh = ax.pcolormesh(sig_axis, xs, np.log10(density.T + 1e-6), cmap="magma", vmin=-3, vmax=0.2)
fig.colorbar(mesh, ax=ax, label="log10 p_sigma(x)")
plot_sig = np.append(ode_sigmas, 0.015)  # the final sample (sigma = 0) drawn at the left edge
ax.plot(plot_sig, ode_paths, color="white", lw=1.0, alpha=0.8)
ax.plot(np.append(sde_sigmas, 0.015), sde_paths, color="black", lw=1.2)
ax.set(
    xscale="log",
    xlim=(20.0, 0.015),
    ylim=(-3.5, 3.5),
    xlabel="noise level sigma (sampling runs from left to right)",
    ylabel="x",
    title="probability flow (white) and churned sampler (black) over p_sigma",
)
ax.set_xticks([20, 5, 1, 0.2, 0.05], ["20", "5", "1", "0.2", "0.05"])
ax.xaxis.set_minor_formatter(plt.NullFormatter())
_style.show()

# %% [markdown]
# Every white path is a deterministic function of its starting point: near
# $\sigma = 20$ the paths run straight (the density is one broad Gaussian), they split
# between the modes around $\sigma \approx 1$, and they end inside a mode. The paths
# never cross: an ODE's solutions cannot.
#
# **Check.** The fine ODE paths end in the data's modes with the data's spread, and the
# ODE maps starting points *monotonically* (no crossing): order in, order out.

# %%
start, end = ode_paths[0], ode_paths[-1]
order = np.argsort(start)
assert np.all(np.diff(end[order]) >= -1e-6), "ODE paths crossed"
many, _ = trajectories(fine, jax.random.key(3), NUM_SAMPLES)
end_many = many[-1]
assert abs(np.mean(end_many > 0) - 0.5) < 5 * 0.5 / np.sqrt(NUM_SAMPLES)
near_mode_std = np.std(np.abs(end_many) - 0.95)
assert abs(near_mode_std - 0.3) < 0.03, near_mode_std
print(
    f"ODE samples: {np.mean(end_many > 0):.3f} above 0, spread about the modes {near_mode_std:.3f}"
)

# %% [markdown]
# ## 5. An animation of denoising
#
# The same flow as a movie: a cloud of samples (histogram) moves from
# $\mathcal N(0, \sigma_\max^2)$ to the data, with the denoised estimate $D(x;\sigma)$
# shown as well. The GIF is written to a temporary folder and shown inline.

# %%
anim_cfg = config.SamplerConfig(
    max_noise_level=20.0,
    min_noise_level=0.02,
    num_noise_levels=NUM_FRAMES,
    stochastic_churn_rate=0.0,
)
anim_paths, anim_sigmas = trajectories(anim_cfg, jax.random.key(4), NUM_SAMPLES)
anim_fig = matplotlib.figure.Figure(figsize=(6, 3.6), dpi=60)
anim_ax = anim_fig.subplots()
bins = np.linspace(-3.5, 3.5, 71)


def draw_frame(i):
    anim_ax.clear()
    sigma = anim_sigmas[i] if i < len(anim_sigmas) else 0.0
    anim_ax.hist(anim_paths[i], bins=bins, density=True, color="tab:blue", alpha=0.6, label="x")
    if sigma > 0:
        denoised = np.asarray(exact_denoiser(jnp.asarray(anim_paths[i]), sigma))
        anim_ax.hist(denoised, bins=bins, density=True, histtype="step", color="k", label="D(x)")
    anim_ax.plot(xs, np.exp(np.asarray(log_density(jnp.asarray(xs), 0.0))), "r", lw=1)
    anim_ax.set(ylim=(0, 1.6), xlim=(-3.5, 3.5), title=f"sigma = {sigma:.2f}")
    anim_ax.legend(loc="upper right")


anim = matplotlib.animation.FuncAnimation(anim_fig, draw_frame, frames=len(anim_paths))
gif_path = os.path.join(tempfile.mkdtemp(prefix="minigencast_"), "11_denoising.gif")
anim.save(gif_path, writer=matplotlib.animation.PillowWriter(fps=6))
with open(gif_path, "rb") as f:
    gif = f.read()
display.display(display.HTML(f'<img src="data:image/gif;base64,{base64.b64encode(gif).decode()}">'))
print(f"{gif_path}: {len(gif) / 1e3:.0f} kB, {len(anim_paths)} frames")
assert gif[:6] in (b"GIF87a", b"GIF89a") and len(gif) > 1000

# %% [markdown]
# ## 6. Churn: a Langevin-like correction
#
# **Langevin dynamics** at a fixed noise level,
#
# $$x \leftarrow x + \tfrac{\eta}{2}\,\nabla\log p_\sigma(x) + \sqrt{\eta}\,z,\qquad z\sim\mathcal N(0,1),$$
#
# leave $p_\sigma$ invariant and pull *any* starting distribution towards it: the score
# term drifts samples uphill, the noise keeps them from collapsing onto the modes. With
# Tweedie, the score is $(D - x)/\sigma^2$, so Langevin needs only the denoiser.
#
# EDM's stochastic sampler (Algorithm 2), which GenCast uses, does something
# cheaper at each step $i$ with $\sigma_i$ in the churn range:
#
# 1. **add noise**: $\hat\sigma = (1 + \gamma)\sigma_i$,
#    $\hat x = x + \sqrt{\hat\sigma^2 - \sigma_i^2}\,z$ — exactly maps $p_{\sigma_i}$ to
#    $p_{\hat\sigma}$ (Gaussian variances add);
# 2. **ODE step** from $\hat\sigma$ down to $\sigma_{i+1}$.
#
# Going up by noise and coming down along the flow is, to first order in $\gamma$,
# the ODE step plus a Langevin step (EDM eq. 6: the SDE
# $\mathrm dx = -\dot\sigma\sigma\nabla\log p\,\mathrm dt - \beta\sigma^2\nabla\log p\,\mathrm dt + \sqrt{2\beta}\,\sigma\,\mathrm d\omega$
# splits into the probability flow and a Langevin term of strength $\beta$). The
# Langevin part forgets errors made earlier — a wrong starting distribution,
# discretisation error — but uses the same denoiser, so it cannot fix errors *of* the
# denoiser: with a denoiser that over-smooths it even compounds them, which is why
# GenCast inflates the added noise by $S_\text{noise} > 1$ (tutorial 12).
#
# Below: Langevin at $\sigma = 0.5$, started from a wrong distribution (every sample at
# $x = 2.5$), with the score taken from the denoiser; and one churn "up" step, checked
# to map $p_{\sigma}$ onto $p_{\hat\sigma}$.

# %%
sigma_l, eta, num_langevin = 0.5, 0.02, 400 if SIZE == "tiny" else 1000


def langevin(key, x, sigma, eta, num):
    def step(x, key):
        score = (exact_denoiser(x, sigma) - x) / sigma**2
        return x + 0.5 * eta * score + jnp.sqrt(eta) * jax.random.normal(key, x.shape), None

    x, _ = jax.lax.scan(step, x, jax.random.split(key, num))
    return x


def tv_to(samples, sigma):
    """Total variation distance between a histogram of samples and p_sigma."""
    hist, edges = np.histogram(np.asarray(samples), bins=60, range=(-4, 4), density=True)
    centres = 0.5 * (edges[1:] + edges[:-1])
    true = np.exp(np.asarray(log_density(jnp.asarray(centres), sigma)))
    return 0.5 * float(np.sum(np.abs(hist - true)) * (edges[1] - edges[0]))


x_wrong = jnp.full((NUM_SAMPLES,), 2.5)
stages = {0: x_wrong}
for n in [10, 50, num_langevin]:
    stages[n] = langevin(jax.random.key(5), x_wrong, sigma_l, eta, n)
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for n, xl in stages.items():
    if n:
        axes[0].hist(
            np.asarray(xl), bins=80, range=(-3, 3.5), density=True, alpha=0.45, label=f"{n} steps"
        )
axes[0].plot(xs, np.exp(np.asarray(log_density(jnp.asarray(xs), sigma_l))), "k", label="p_sigma")
axes[0].set(xlabel="x", title=f"Langevin at sigma = {sigma_l} from x = 2.5")
axes[0].legend()
x_sigma = jnp.where(
    jax.random.bernoulli(jax.random.key(6), 0.5, (NUM_SAMPLES,)), 0.95, -0.95
) + jnp.sqrt(0.3**2 + sigma_l**2) * jax.random.normal(
    jax.random.key(7), (NUM_SAMPLES,)
)  # exact samples of p_sigma
sigma_hat = 1.5 * sigma_l
x_hat = x_sigma + jnp.sqrt(sigma_hat**2 - sigma_l**2) * jax.random.normal(
    jax.random.key(8), x_sigma.shape
)
axes[1].hist(
    np.asarray(x_hat), bins=80, range=(-4, 4), density=True, alpha=0.5, label="x + churn noise"
)
axes[1].plot(
    xs, np.exp(np.asarray(log_density(jnp.asarray(xs), sigma_hat))), "k", label="p_sigma_hat"
)
axes[1].set(xlabel="x", title=f"churn up: sigma {sigma_l} -> {sigma_hat}")
axes[1].legend()
_style.show()
tv = {n: tv_to(xl, sigma_l) for n, xl in stages.items() if n}
print("TV distance to p_sigma after", {n: round(v, 3) for n, v in tv.items()})

# %% [markdown]
# **Check.** Langevin forgets the wrong start (the distance to $p_\sigma$ falls with the
# number of steps, to Monte-Carlo level), and the churn step is exact.

# %%
mc_level = np.sqrt(60 / NUM_SAMPLES)  # a few times the histogram noise of the TV estimate
assert tv[10] > tv[50] > tv[num_langevin], tv
assert tv[num_langevin] < mc_level, (tv, mc_level)
assert tv_to(x_hat, sigma_hat) < mc_level
print(
    f"Langevin TV {tv[num_langevin]:.3f} and churn TV {tv_to(x_hat, sigma_hat):.3f} < {mc_level:.3f}"
)

# %% [markdown]
# ## 7. DDPM and EDM: one dictionary
#
# DDPM (Ho et al. 2020) noises with a variance-*preserving* scaling,
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\varepsilon$, and trains a
# network $\varepsilon_\theta(x_t, t)$ to predict the noise. Divide by $\sqrt{\bar\alpha_t}$:
#
# $$\frac{x_t}{\sqrt{\bar\alpha_t}} = x_0 + \sigma_t\,\varepsilon,\qquad \sigma_t = \sqrt{\frac{1 - \bar\alpha_t}{\bar\alpha_t}}.$$
#
# That is EDM's variance-*exploding* $x = y + \sigma\varepsilon$. Every DDPM quantity
# has an EDM twin (EDM Table 1 lists the "VP" column):
#
# | DDPM (Ho et al.) | EDM / GenCast | relation |
# |---|---|---|
# | step $t = 1..T$, schedule $\beta_t$ | noise level $\sigma$ | $\sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}$ |
# | $\bar\alpha_t = \prod_{s\le t}(1-\beta_s)$ | — | $\bar\alpha = 1/(1+\sigma^2)$ |
# | $x_t$ (unit variance) | $x = x_t/\sqrt{\bar\alpha_t}$ (variance $1 + \sigma^2$) | $c_\text{in}(\sigma) = 1/\sqrt{1+\sigma^2} = \sqrt{\bar\alpha}$ undoes the scaling |
# | $x_0$ | $y$ (the normalised residual in GenCast) | |
# | $\varepsilon_\theta(x_t, t)$ | $D(x;\sigma)$ | $D = x - \sigma\,\varepsilon_\theta$, $\varepsilon_\theta = (x - D)/\sigma$ |
# | $\varepsilon$-prediction: $c_\text{skip} = 1$, $c_\text{out} = -\sigma$ | GenCast: $c_\text{skip} = \frac{1}{1+\sigma^2}$, $c_\text{out} = \frac{\sigma}{\sqrt{1+\sigma^2}}$ | both write $D = c_\text{skip}x + c_\text{out}F$ |
# | loss $\lVert\varepsilon - \varepsilon_\theta\rVert^2$ | $\lambda(\sigma)\lVert D - y\rVert^2$, $\lambda = 1/c_\text{out}^2$ | $\lVert D - y\rVert^2 = \sigma^2\lVert\varepsilon_\theta - \varepsilon\rVert^2$ |
# | score $-\varepsilon_\theta/\sqrt{1-\bar\alpha_t}$ (of $x_t$) | $(D - x)/\sigma^2$ (of $x$) | Tweedie, section 2 |
# | ancestral sampling, $T = 1000$ steps | DPM-Solver++(2S), 20 levels, churn | tutorial 02, 07 |
# | $T \to \infty$: VP-SDE | $\sigma(t) = t$: VE probability-flow ODE | section 3 |
#
# GenCast's preconditioning *mixes* the two extremes: at small $\sigma$,
# $c_\text{skip}\to 1$ and $F$ predicts (scaled) noise; at large $\sigma$,
# $c_\text{skip} \to 0$ and $F$ predicts the data itself, so neither target blows up.
#
# **Check.** Take DDPM's linear schedule ($\beta$ from $10^{-4}$ to $0.02$, $T = 1000$);
# rescaled DDPM noising equals EDM noising with $\sigma_t$; the exact $\varepsilon$-prediction
# recovers the exact denoiser; the two losses agree up to $\sigma^2$.

# %%
betas = np.linspace(1e-4, 0.02, 1000)
alpha_bar = np.cumprod(1 - betas)
sigma_t = np.sqrt((1 - alpha_bar) / alpha_bar)
print(
    f"DDPM linear schedule: sigma_t from {sigma_t[0]:.4f} (t = 1) to {sigma_t[-1]:.0f} (t = T); "
    f"GenCast's sigma_max = 80 is alpha_bar = {1 / (1 + 80**2):.1e}"
)
rng = np.random.default_rng(0)
y = np.where(rng.random(NUM_SAMPLES) < 0.5, -0.95, 0.95) + 0.3 * rng.standard_normal(NUM_SAMPLES)
eps = rng.standard_normal(NUM_SAMPLES)
for t in [10, 300, 999]:
    x_t = np.sqrt(alpha_bar[t]) * y + np.sqrt(1 - alpha_bar[t]) * eps  # DDPM
    x_edm = y + sigma_t[t] * eps  # EDM
    np.testing.assert_allclose(x_t / np.sqrt(alpha_bar[t]), x_edm, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(
        np.asarray(preconditioning.c_in(sigma_t[t])), np.sqrt(alpha_bar[t]), rtol=1e-6
    )
    d_star = np.asarray(exact_denoiser(jnp.asarray(x_edm), sigma_t[t]))
    eps_star = (x_edm - d_star) / sigma_t[t]  # the optimal eps-prediction
    np.testing.assert_allclose(x_edm - sigma_t[t] * eps_star, d_star, rtol=1e-9, atol=1e-9)
    # Tweedie for x_t: score_t = -eps*/sqrt(1 - alpha_bar) = grad log p(x_t).
    score_xt = jax.vmap(
        jax.grad(lambda v, t=t: log_density(v / np.sqrt(alpha_bar[t]), sigma_t[t]))
    )(jnp.asarray(x_t))
    np.testing.assert_allclose(
        score_xt, -eps_star / np.sqrt(1 - alpha_bar[t]), rtol=1e-6, atol=1e-8
    )
    loss_edm = np.mean((d_star - y) ** 2)
    loss_ddpm = np.mean((eps_star - eps) ** 2)
    np.testing.assert_allclose(loss_edm, sigma_t[t] ** 2 * loss_ddpm, rtol=1e-9)
print("DDPM <-> EDM: noising, c_in, eps-prediction, score of x_t and losses agree")

# %% [markdown]
# ## Exercises
#
# 1. Use Tweedie to turn the exact denoiser into a score, and sample $p_\text{data}$ with
#    *annealed* Langevin dynamics (Song & Ermon 2019): 100 Langevin steps at each of 10
#    levels from $\sigma = 3$ down to $0.05$. Compare its histogram and cost with the
#    package sampler's 39 denoiser calls.
# 2. Why can an ODE sampler not produce a sample that the flow map does not reach —
#    and why does that not matter here?
# 3. For DDPM's cosine schedule (Nichol & Dhariwal 2021),
#    $\bar\alpha_t = \cos^2\!\big(\tfrac{t/T + 0.008}{1.008}\tfrac\pi2\big)$, plot
#    $\sigma_t$ on a log axis against $t$ and compare it with GenCast's 20 levels.
#
# <details><summary>Solutions</summary>
#
# 1. For each level run `langevin(key, x, sigma, eta=0.1 * sigma**2, num=100)`, feeding
#    the result into the next level. It needs 1000 denoiser calls to reach a TV distance
#    the package sampler reaches with 39: the ODE moves samples along the flow, Langevin
#    only diffuses towards equilibrium.
# 2. The flow map from $\sigma_\max$ to 0 is a bijection onto the support it transports
#    $p_{\sigma_\max}$ to; with an exact denoiser that is $p_\text{data}$ by section 3.
#    The errors come from the finite steps and from the denoiser, not from the
#    determinism.
# 3. `ab = np.cos((np.arange(1, 1001) / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2;
#    plt.semilogy(np.sqrt((1 - ab) / ab))`. The cosine schedule spends its steps
#    almost uniformly in $\log\sigma$ over the middle range, like $\rho = 7$, but reaches
#    $\sigma \sim 10^4$ at $t = T$; GenCast stops at 80, enough for unit-variance data.
#
# </details>
#
# ## Where this lives in the package
#
# | concept | module |
# |---|---|
# | $D = c_\text{skip}x + c_\text{out}F$, $c_\text{in}$, $\lambda(\sigma)$ | `minigencast/preconditioning.py` |
# | schedule, churn ($\gamma$, $S_\text{noise}$), DPM-Solver++(2S), `sample_trajectory` | `minigencast/sampler.py` |
# | `SamplerConfig` (the churn range and inflation) | `minigencast/config.py` |
#
# The last check: the package sampler's first churned step, written out from the
# description in section 6 (noise up to $\hat\sigma$, then the 2S step down), equals
# `sampler.sample_trajectory`'s second state.

# %%
cfg = config.SamplerConfig()
sched = sampler.build_schedule(cfg)
key_init, key_churn0 = jax.random.split(jax.random.key(9), cfg.num_noise_levels + 1)[:2]
x0 = sched["sigma"][0] * jax.random.normal(key_init, (256,))
x_hat0 = x0 + sched["churn_std"][0] * jax.random.normal(key_churn0, (256,))
s_hat, s_mid, s_next = sched["sigma_hat"][0], sched["sigma_mid"][0], sched["sigma_next"][0]
x_mid = s_mid / s_hat * x_hat0 + (1 - s_mid / s_hat) * exact_denoiser(x_hat0, s_hat)
x1 = s_next / s_hat * x_hat0 + (1 - s_next / s_hat) * exact_denoiser(x_mid, s_mid)
np.testing.assert_allclose(
    float(sched["churn_std"][0]),
    cfg.noise_level_inflation_factor * np.sqrt(float(s_hat) ** 2 - float(sched["sigma"][0]) ** 2),
    rtol=1e-6,
)
_, traj = sampler.sample_trajectory(exact_denoiser, jax.random.key(9), jnp.zeros(256), cfg)
np.testing.assert_allclose(traj["x"][1], x1, rtol=1e-4, atol=1e-4)
print("churn up, then DPM-Solver++(2S) down == the package sampler's first step")
