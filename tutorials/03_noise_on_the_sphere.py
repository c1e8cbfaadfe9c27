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
# # 03 · Noise on the sphere
#
# **What you will build.** The noise GenCast diffuses with. Adding i.i.d. Gaussian noise
# to every grid point — what an image diffusion model does — is *not* what GenCast does:
# on a latitude–longitude grid the points crowd together towards the poles, so i.i.d.
# pixel noise is far denser per unit area there than at the equator. GenCast instead
# samples *isotropic white noise on the sphere*: random spherical-harmonic coefficients
# with a flat angular power spectrum. You will compare the two by their maps, their power
# spectra and their statistics at a fixed physical scale, and rebuild the spherical noise
# from its formula.
#
# **Learning goals**
#
# 1. Real spherical harmonics $Y_{lm}$ and the angular power spectrum.
# 2. Spherical white noise: $c_{lm} = a_{lm}\sqrt{4\pi P_l/(2l+1)}$ with $P_l = 1/L$ gives
#    unit variance at every point (the addition theorem).
# 3. Why i.i.d. pixel noise is anisotropic and latitude-dependent at a fixed physical
#    scale, and why that matters for a denoiser.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import _style  # tutorials/_style.py: the projector-ready figure style
from minigencast import metrics, noise, spherical_harmonics

# "tiny" in CI (seconds), "tutorial" for readers (a 2.8 deg grid).
SIZE = os.environ.get("MINIGENCAST_SIZE", "tutorial")
assert SIZE in ("tiny", "tutorial"), SIZE
N_LAT, N_LON = (13, 24) if SIZE == "tiny" else (65, 128)
NUM_FIELDS = 64 if SIZE == "tiny" else 256
LAT = np.linspace(-90, 90, N_LAT)
LON = np.arange(N_LON) * 360 / N_LON
KEY = jax.random.key(0)
print(f"size={SIZE}: grid {N_LAT}x{N_LON}, {NUM_FIELDS} noise fields per statistic")

# %% [markdown]
# ## 1. Spherical harmonics and spectra
#
# Any (band-limited) field on the sphere is a sum of real spherical harmonics,
#
# $$f(\varphi, \lambda) = \sum_{l<L}\sum_{m=0}^{l} \bar P_{lm}(\sin\varphi)\,
#   \big[c_{lm}\cos m\lambda + s_{lm}\sin m\lambda\big] N_m ,$$
#
# normalised so that $\int Y_{lm}^2\,\mathrm d\Omega = 1$. The degree $l$ is a total
# wavenumber: a wavelength of about $2\pi R/l$ *in any direction*. The angular power
# spectrum $\sum_m (c_{lm}^2 + s_{lm}^2)$ tells how much variance each scale carries. On
# GenCast's grids $L = n_\text{lon}/2$ (180 at 1°).

# %%
basis = spherical_harmonics.build_basis(LAT, LON)
L = basis.max_degree
fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
for ax, (deg_l, m) in zip(axes, [(1, 0), (3, 2), (6, 6), (8, 3)], strict=True):
    c = np.zeros((L, L), np.float32)
    c[m, min(deg_l, L - 1)] = 1.0
    y = spherical_harmonics.synthesise(basis, c, np.zeros_like(c))
    top = float(np.abs(np.asarray(y)).max())
    mesh = ax.pcolormesh(LON, LAT, np.asarray(y), cmap="RdBu_r", vmin=-top, vmax=top)
    fig.colorbar(mesh, ax=ax, orientation="horizontal", shrink=0.8)
    ax.set_title(f"Y_lm, l = {min(deg_l, L - 1)}, m = {m}")
_style.show()

# %% [markdown]
# ## 2. Two kinds of noise
#
# * **Pixel noise**: $\varepsilon_{ij} \sim \mathcal N(0, 1)$ independently per grid point.
# * **Spherical white noise** (`noise.make_spherical_noise_fn`): coefficients
#   $c_{lm}, s_{lm} = a_{lm}\sqrt{4\pi P_l/(2l+1)}$, $a_{lm}\sim\mathcal N(0,1)$, with the
#   same power $P_l = 1/L$ at every degree. By the addition theorem
#   $\sum_m Y_{lm}(x)^2 = (2l+1)/4\pi$ at every point $x$, so the pointwise variance is
#   $\sum_l P_l = 1$ everywhere, and no direction or place is special.

# %%
noise_fn = noise.make_spherical_noise_fn(LAT, LON)
template = jnp.zeros((N_LAT, N_LON, NUM_FIELDS))
spherical = np.moveaxis(np.asarray(noise_fn(KEY, template)), -1, 0)  # [n, lat, lon]
pixel = np.asarray(jax.random.normal(jax.random.key(1), spherical.shape))

fig = plt.figure(figsize=(13, 5))
for j, (name, fields) in enumerate([("pixel noise", pixel), ("spherical white noise", spherical)]):
    ax = fig.add_subplot(2, 2, 1 + j)
    ax.pcolormesh(LON, LAT, fields[0], cmap="RdBu_r", vmin=-3, vmax=3)
    ax.set_title(f"{name} on the lat-lon grid")
    ax = fig.add_subplot(2, 2, 3 + j, projection="polar")
    north = LAT >= 30
    theta, r = np.meshgrid(np.radians(LON), 90 - LAT[north])
    ax.pcolormesh(theta, r, fields[0][north], cmap="RdBu_r", vmin=-3, vmax=3)
    ax.set_title("seen from above the north pole")
    ax.set_yticklabels([])
    ax.set_xticks(np.radians([0, 90, 180, 270]), ["0°", "90°E", "180°", "90°W"])
fig.colorbar(ax.collections[0], ax=fig.axes, shrink=0.8, label="noise value (both kinds)")
_style.show()

# %% [markdown]
# Seen from above the pole, pixel noise is visibly finer near the pole — the grid cells
# are tiny there — while spherical noise looks the same everywhere: isotropic.
#
# ## 3. Spectra
#
# The flat spectrum is what "white" means on the sphere. Pixel noise is white *on the
# grid*, not on the sphere: projected on the harmonics its power is not flat, and much of
# it lies at scales the grid resolves only near the poles (beyond the band limit, where the
# least-squares analysis cannot represent it).

# %%
spec_sph = spherical_harmonics.power_spectrum(basis, spherical).mean(0)
spec_pix = spherical_harmonics.power_spectrum(basis, pixel).mean(0)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(spec_sph / (4 * np.pi), "o-", ms=3, label="spherical white noise")
ax.plot(spec_pix / (4 * np.pi), "s-", ms=3, label="pixel noise")
ax.axhline(1 / L, color="k", lw=0.8, label="1 / L")
ax.set(xlabel="degree l", ylabel="power / 4 pi", yscale="log", title="angular power spectra")
ax.legend()
_style.show()

# %% [markdown]
# ## 4. Statistics at a fixed physical scale
#
# What a denoiser perceives is noise at the scale of weather systems, not per pixel.
# Average each noise field over discs of 1,000 km (or a few grid cells at tiny size)
# around every grid point, and look at the standard deviation of that average by
# latitude: for spherical noise it is the same everywhere; for pixel noise it collapses
# towards the poles, where a disc holds many more (independent) pixels. A denoiser
# trained on pixel noise would face a different signal-to-noise ratio at every latitude.

# %%
radius_km = 1000.0 if SIZE == "tutorial" else 2500.0
membership, c_lat, c_lon = metrics.build_pools(LAT, LON, radius_km)
weights = np.repeat(metrics.latitude_weights(LAT), N_LON)
pool_matrix = membership * weights[None]
pool_matrix = pool_matrix / pool_matrix.sum(1, keepdims=True)  # area-weighted disc means
stds = {}
for name, fields in [("spherical", spherical), ("pixel", pixel)]:
    pooled = fields.reshape(len(fields), -1) @ pool_matrix.T  # [n, centres]
    stds[name] = pooled.std(0).reshape(N_LAT, N_LON).mean(1)  # by latitude
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].plot(LAT, spherical.std((0, 2)), "o-", ms=3, label="spherical")
axes[0].plot(LAT, pixel.std((0, 2)), "s-", ms=3, label="pixel")
axes[0].set(xlabel="latitude", title="pointwise std", ylim=(0, 1.5))
axes[0].legend()
for name, s in stds.items():
    axes[1].plot(LAT, s, "o-", ms=3, label=name)
axes[1].set(xlabel="latitude", title=f"std of the mean over {radius_km:.0f} km discs")
axes[1].legend()
_style.show()

# %% [markdown]
# **Check.** Spherical noise has unit pointwise variance at every latitude (poles
# included) and a flat spectrum; its disc averages vary little with latitude, whereas
# pixel noise's do (by a large factor between equator and pole).

# %%
se = np.sqrt(2 / (NUM_FIELDS * N_LON))  # rough standard error of a row's variance
assert np.all(np.abs(spherical.var((0, 2))[1:-1] - 1) < 6 * se + 0.05), spherical.var((0, 2))
assert abs(spherical.var() - 1) < 0.05
assert np.all(np.abs(spec_sph / (4 * np.pi) * L - 1) < 0.35), spec_sph / (4 * np.pi) * L
equator, near_pole = N_LAT // 2, 1
ratio_pix = stds["pixel"][equator] / stds["pixel"][near_pole]
ratio_sph = stds["spherical"][equator] / stds["spherical"][near_pole]
assert ratio_pix > 1.5 * ratio_sph, (ratio_pix, ratio_sph)
print(f"equator/pole ratio of disc-mean std: pixel {ratio_pix:.2f}, spherical {ratio_sph:.2f}")

# %% [markdown]
# ## Exercises
#
# 1. Verify the addition theorem numerically: $\sum_m Y_{lm}^2 = (2l+1)/4\pi$ at every
#    latitude, using `basis.legendre` (which holds $\bar P_{lm}(\sin\varphi) N_m$).
# 2. How many pixels does a 1,000 km disc hold at the equator and next to the pole on the
#    1° grid? Relate to the ratio printed above.
# 3. GenCast uses $L = n_\text{lon}/2$. What would change with $L = n_\text{lon}/4$?
#
# <details><summary>Solutions</summary>
#
# 1. For $m > 0$ each $m$ contributes the $\cos$ and the $\sin$ harmonic, whose squares sum
#    to $\bar P_{lm}^2 N_m^2$: `(basis.legendre[0, :, l]**2 + (basis.legendre[1:l+1, :, l]**2).sum(0))`
#    equals `(2 * l + 1) / (4 * np.pi)` at every latitude.
# 2. `membership.sum(1)` on the 1° grid: ~250 pixels at the equator, thousands near the
#    pole; the std of a mean of $n$ independent pixels scales as $1/\sqrt n$.
# 3. The noise would be smoother (no power at the smallest resolved scales): the finest
#    scales of the targets would never be noised, so the denoiser would never learn to
#    generate them.
#
# </details>
#
# ## Where this lives in the package
#
# | concept | module |
# |---|---|
# | Legendre tables, synthesis, analysis, power spectrum | `minigencast/spherical_harmonics.py` |
# | spherical white noise, `make_spherical_noise_fn` (what the sampler and the loss use) | `minigencast/noise.py` |
# | the sampler's `noise_fn` argument | `minigencast/sampler.py` (tutorial 07) |
# | noising targets in the training loss | `minigencast/train.py` (tutorial 06) |
#
# The last check: spherical noise built by hand from its formula — coefficients
# $a_{lm}\sqrt{4\pi/(L(2l+1))}$ for $l \ge m$, synthesised — equals `noise.spherical_noise`
# (same key, same convention: one key for the cosine and one for the sine coefficients).

# %%
key_cos, key_sin = jax.random.split(jax.random.key(7))
deg = np.arange(L)
scale = np.where(deg[None, :] >= deg[:, None], np.sqrt(4 * np.pi / (L * (2 * deg + 1)))[None], 0)
cos_c = jax.random.normal(key_cos, (L, L)) * scale
sin_c = jax.random.normal(key_sin, (L, L)) * scale
by_hand = spherical_harmonics.synthesise(basis, cos_c, sin_c)
packaged = noise.spherical_noise(jax.random.key(7), jnp.zeros((N_LAT, N_LON)), basis)
np.testing.assert_allclose(by_hand, packaged, rtol=1e-5, atol=1e-5)
print("spherical white noise by hand == noise.spherical_noise")
