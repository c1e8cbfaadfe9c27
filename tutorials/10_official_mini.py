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
# # 10 · (Optional) DeepMind's weights: parity and the official GenCast 1° Mini
#
# **What you will build.** The bridge to DeepMind's released GenCast: first a *parity
# check* — DeepMind's own reference code wrote a checkpoint and the outputs of its
# denoiser on fixed inputs; we load that checkpoint and reproduce the outputs — then the
# official **GenCast 1p0deg Mini <2019** checkpoint (57,492,612 weights) loaded with the
# same code, and one ensemble forecast from DeepMind's example ERA5 data.
#
# The official files are large downloads (the Mini checkpoint ~230 MB, the example data
# and statistics) and this notebook never downloads anything unless asked:
#
# * with `MINIGENCAST_OFFICIAL=1` (and the network, or the files already in the cache,
#   see `minigencast download --list`) it uses the real files;
# * otherwise — and always at tiny size, as in CI — it writes a **fake checkpoint in the
#   same format** with the package's checkpoint module (GenCast's full 84-channel task, a
#   tiny network), and forecasts from synthetic data with every GenCast variable. Every
#   line of code below is the same in both cases.
#
# **Learning goals**
#
# 1. DeepMind's `.npz` checkpoint: flat Haiku parameter names plus the stored configs.
# 2. What parity means and how it is measured (relative error per variable).
# 3. Running the released model: statistics, example data, grid, one forecast step.

# %%
import dataclasses
import os
import pathlib
import tempfile

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray

import _style  # tutorials/_style.py: the projector-ready figure style
from minigencast import (
    checkpoint,
    config,
    forecast,
    network,
    normalization,
    preconditioning,
    stacking,
)
from minigencast.data import downloads, layouts, synthetic

SIZE = os.environ.get("MINIGENCAST_SIZE", "tutorial")
assert SIZE in ("tiny", "tutorial"), SIZE
OFFICIAL = SIZE == "tutorial" and os.environ.get("MINIGENCAST_OFFICIAL") == "1"
PARITY_CASE = pathlib.Path("tests/parity/open")  # shipped with the repository
if not PARITY_CASE.exists():  # running from tutorials/ instead of the repository root
    PARITY_CASE = pathlib.Path("..") / PARITY_CASE
print(f"size={SIZE}; official files: {'yes' if OFFICIAL else 'no (fake checkpoint)'}")

# %% [markdown]
# ## 1. Parity with DeepMind's reference implementation
#
# `tests/parity/open/` holds vectors made by running DeepMind's *unmodified* GenCast code
# (graphcast @ d39de19) on CPU: a small denoiser (13×24 grid, mesh splits 2, k = 3, width
# 32, 2 blocks) with perturbed random weights, saved with DeepMind's own
# `checkpoint.dump`, synthetic inputs with every GenCast variable, noisy targets at six
# noise levels, and the reference outputs $F$ (raw network) and $D$. We load the
# checkpoint with `checkpoint.load` (strict: every key and shape must match the stored
# config) and compare.

# %%
ckpt = checkpoint.load(PARITY_CASE / "params.npz")
cfg = ckpt.config
print("description:", ckpt.description[:80], "...")
print(
    "mesh splits",
    cfg.denoiser_architecture_config.mesh_size,
    "k-hop",
    cfg.denoiser_architecture_config.sparse_transformer_config.attention_k_hop,
)
load = lambda name: xarray.load_dataset(PARITY_CASE / name)  # noqa: E731
norm_inputs, norm_forcings = load("normalised_inputs.nc"), load("normalised_forcings.nc")
noisy, expected = load("noisy_targets.nc"), load("expected_raw_output.nc")
lat, lon = norm_inputs.lat.values, norm_inputs.lon.values
inputs, _ = stacking.dataset_to_array(norm_inputs)
forcings, _ = stacking.dataset_to_array(norm_forcings, grid=(len(lat), len(lon)))
# DeepMind's own graphs for this grid (the last section compares them with ours).
reference_graphs = dict(np.load(PARITY_CASE / "graphs.npz"))
structure = network.structure_from_graphs(reference_graphs, "mha")

rel_errors = []
for i, sigma in enumerate(noisy.sigma.values):
    x, _ = stacking.dataset_to_array(noisy.isel(sigma=i, drop=True))
    raw = network.raw_denoiser_jit(
        ckpt.params,
        structure,
        cfg,
        inputs[0],
        forcings[0],
        preconditioning.c_in(jnp.float32(sigma)) * x[0],
        jnp.float32(sigma),
    )
    ref, _ = stacking.dataset_to_array(expected.isel(sigma=i, drop=True))
    err = float(np.max(np.abs(np.asarray(raw) - ref[0])) / np.max(np.abs(ref[0])))
    rel_errors.append(err)
    print(f"sigma = {sigma:6.2f}: max |F - F_ref| / max |F_ref| = {err:.1e}")
    if i == 2:  # keep one sigma for the figure
        shown = (float(sigma), np.asarray(raw).ravel(), ref[0].ravel())

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].scatter(shown[2], shown[1], s=2)
axes[0].set(
    xlabel="F, DeepMind's reference",
    ylabel="F, minigencast",
    title=f"raw network output, sigma = {shown[0]:g}",
)
axes[1].bar([f"{s:g}" for s in noisy.sigma.values], rel_errors)
axes[1].set(
    yscale="log", xlabel="sigma", ylabel="max relative error", title="parity at every noise level"
)
_style.show()

# %% [markdown]
# **Check.** Agreement to float32 rounding (the reference's own run-to-run differences
# are of the same order): checkpoint format, channel order, noise encoding and every
# layer agree with DeepMind's code. (Here the network runs on the graphs DeepMind's code
# built; the last section compares them with ours.)

# %%
assert max(rel_errors) < 1e-4, rel_errors

# %% [markdown]
# ## 2. The Mini checkpoint
#
# DeepMind's files are `.npz` archives of flat keys, `params:<haiku module path>:<name>`
# for the weights and `task_config:...`, `denoiser_architecture_config:...`, ... for the
# configs, plus a description and the licence. `checkpoint.load` rebuilds the nested
# parameter dict of tutorial 05 and a `GenCastConfig`; `checkpoint.save` writes the same
# layout.

# %%
if OFFICIAL:
    mini_path = downloads.fetch("params/GenCast 1p0deg Mini <2019.npz")
else:
    mini = config.gencast_1p0deg_mini()
    arch = mini.denoiser_architecture_config
    small = dataclasses.replace(
        mini,
        denoiser_architecture_config=dataclasses.replace(
            arch,
            mesh_size=1,
            latent_size=16,
            sparse_transformer_config=dataclasses.replace(
                arch.sparse_transformer_config,
                attention_k_hop=2,
                d_model=16,
                num_layers=2,
                ffw_hidden=32,
                attention_type="mha",
            ),
        ),
        noise_encoder_config=config.NoiseEncoderConfig(num_frequencies=8, output_sizes=(16, 8)),
    )
    fake_params = network.init_denoiser(jax.random.key(0), small, *network.channel_counts(small))
    mini_path = os.path.join(tempfile.mkdtemp(), "GenCast fake Mini.npz")
    checkpoint.save(
        mini_path,
        fake_params,
        small,
        description="A fake checkpoint in DeepMind's layout (tutorial 10).",
        license="CC0 (random weights)",
    )
mini_ckpt = checkpoint.load(mini_path)
MINI = mini_ckpt.config
n_weights = sum(int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(mini_ckpt.params))
with np.load(mini_path) as f:
    keys = list(f.keys())
print(f"{os.path.basename(mini_path)}: {len(keys)} arrays, {n_weights:,} weights")
print("first keys:", [k for k in keys if k.startswith("params")][:2])
print(
    "task:",
    len(MINI.task_config.target_variables),
    "target variables on",
    len(MINI.task_config.pressure_levels),
    "levels;",
    network.channel_counts(MINI),
    "(input, target, forcing) channels",
)

# %% [markdown]
# ## 3. One forecast
#
# DeepMind's example data (`source-era5_date-2019-03-29_res-1.0_levels-13_steps-01.nc`)
# come in their layout (`batch`, `time` as lead time, a `datetime` coordinate);
# `layouts.from_deepmind` converts them to our canonical layout. Statistics are
# DeepMind's `*_by_level.nc` files. On a laptop CPU one 1° Mini step is 39 network calls
# on 65,160 grid nodes: minutes per member (it is seconds on a GPU). The fake case uses
# synthetic data on a 13×24 grid with all 84 target channels.

# %%
if OFFICIAL:
    example = xarray.load_dataset(
        downloads.fetch("dataset/source-era5_date-2019-03-29_res-1.0_levels-13_steps-01.nc")
    )
    dataset = layouts.from_deepmind(example)
    for name in normalization.STATS_NAMES:
        downloads.fetch(f"stats/{normalization.stats_filename(name)}")
    stats = normalization.load_stats(os.path.join(downloads.cache_dir(), "stats"))
    members = 1
else:
    dataset = synthetic.sample(
        num_times=3, n_lat=13, n_lon=24, levels=config.GENCAST_TASK.pressure_levels
    )
    stats = normalization.compute_stats(dataset)
    members = 2
init_time = dataset.time.values[1]
fc = forecast.run(mini_ckpt.params, MINI, dataset, stats, [init_time], 1, members, progress=False)
print(fc)
field = fc["2m_temperature"].isel(init_time=0, lead_time=0)
fig, axes = plt.subplots(1, members, figsize=(6 * members, 3.6), squeeze=False)
t_min, t_max = float(field.min()), float(field.max())
for i, ax in enumerate(axes[0]):
    mesh = ax.pcolormesh(
        fc.lon, fc.lat, field.isel(sample=i), cmap="viridis", vmin=t_min, vmax=t_max
    )
    ax.set_title(f"2 m temperature\nmember {i}, +12 h")
fig.colorbar(mesh, ax=axes[0], shrink=0.8, label="K")
_style.show()

# %% [markdown]
# **Check.** The checkpoint round-trips exactly (weights and config), the Mini layout
# has DeepMind's module structure, and the forecast has every GenCast target variable,
# finite where it should be (sea-surface temperature is NaN over land by design).

# %%
again = os.path.join(tempfile.mkdtemp(), "again.npz")
checkpoint.save(again, mini_ckpt.params, MINI, mini_ckpt.description, mini_ckpt.license)
reloaded = checkpoint.load(again)
assert reloaded.config == MINI
jax.tree_util.tree_map(np.testing.assert_array_equal, reloaded.params, mini_ckpt.params)
assert set(mini_ckpt.params) == {
    "fourier_features_mlp",
    "grid2mesh_gnn",
    "mesh_transformer",
    "mesh2grid_gnn",
}
assert set(fc.data_vars) == set(MINI.task_config.target_variables)
for name in fc.data_vars:
    values = fc[name].values
    assert np.isfinite(values).all() or name == "sea_surface_temperature", name
if OFFICIAL:
    assert n_weights == 57_492_612
print("checkpoint round trip, module structure and forecast variables as expected")

# %% [markdown]
# ## Exercises
#
# 1. Run the parity loop with `network.build_structure(cfg, lat, lon, attention_type=...)`
#    for `"splash_mha"` and `"triblockdiag_mha"`. Do the errors change?
# 2. Which keys of the checkpoint are *not* parameters? Print them with their values.
#
# <details><summary>Solutions</summary>
#
# 1. They stay at float32 rounding: the three layouts compute the same function
#    (tutorial 05) and the stored `attention_type` does not affect the parameters.
# 2. `[k for k in keys if not k.startswith("params")]`: the five configs field by field,
#    `description` and `license` (read with `np.load(mini_path)[k]`).
#
# </details>
#
# ## Where this lives in the package
#
# | concept | module |
# |---|---|
# | DeepMind's `.npz` format, strict loading, saving, Haiku names | `minigencast/checkpoint.py` |
# | downloads with caching and hash pins | `minigencast/data/downloads.py` (`minigencast download`) |
# | DeepMind's data layout ↔ canonical | `minigencast/data/layouts.py` |
# | parity tests (every attention type, intermediates, graphs) | `tests/test_parity.py`, `tests/parity/` |
# | forecasting with any checkpoint | `minigencast/forecast.py` (`minigencast forecast --checkpoint ...`) |
#
# The last check: the graphs our model builds from the data's grid (`network.build_graphs`:
# float32 coordinates, as DeepMind's denoiser) equal those DeepMind's code built for the parity case, index for index — except where a grid
# point lies exactly on the edge between two mesh triangles (here: on the equator). There
# the mesh2grid "containing triangle" is a tie that DeepMind's `trimesh` breaks one way;
# we check that any differing grid point lies in *both* triangles, so either choice is a
# valid containing face.

# %%
ours = network.build_graphs(cfg, lat, lon)  # the model's graphs: float32 grid, as DeepMind's
for name in [
    "mesh_vertices",
    "mesh_senders",
    "mesh_receivers",
    "grid2mesh_senders",
    "grid2mesh_receivers",
    "attention_mask_rows",
    "attention_mask_cols",
]:
    np.testing.assert_array_equal(ours[name], reference_graphs[name], err_msg=name)
ours_faces = ours["mesh2grid_senders"].reshape(-1, 3)
ref_faces = reference_graphs["mesh2grid_senders"].reshape(-1, 3)
differ = np.flatnonzero(np.any(ours_faces != ref_faces, axis=1))
grid_lat, grid_lon = np.meshgrid(lat, lon, indexing="ij")
points = np.stack(
    [
        np.cos(np.radians(grid_lat)) * np.cos(np.radians(grid_lon)),
        np.cos(np.radians(grid_lat)) * np.sin(np.radians(grid_lon)),
        np.sin(np.radians(grid_lat)),
    ],
    axis=-1,
).reshape(-1, 3)
vertices = ours["mesh_vertices"].astype(np.float64)
for g in differ:
    for face in (ours_faces[g], ref_faces[g]):
        weights = np.linalg.solve(vertices[face].T, points[g])  # barycentric (unnormalised)
        assert np.all(weights > -1e-6), (g, face, weights)
print(
    f"graphs == DeepMind's, up to {len(differ)} tie(s) on triangle edges "
    f"(grid points {differ.tolist()}), each inside both candidate faces"
)
