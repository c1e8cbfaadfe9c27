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
# # 05 · The denoiser network
#
# **What you will build.** GenCast's raw network $F$ — the thing inside
# $D(x;\sigma) = c_\text{skip}x + c_\text{out}F(c_\text{in}x;\sigma)$ — run on one sample,
# with the shape of the data printed at every stage: channel stacking, the noise-level
# encoder, the Grid2Mesh encoder, the sparse mesh transformer with noise-conditioned
# layer norms, and the Mesh2Grid decoder. You will rebuild a conditional LayerNorm and one
# masked attention layer by hand, and map the parameter tree onto DeepMind's checkpoint
# names.
#
# **Learning goals**
#
# 1. How inputs (two frames), forcings and the noisy target are stacked into one
#    $[\text{lat}, \text{lon}, C]$ array, in DeepMind's channel order.
# 2. The noise-level encoding: Fourier features of $\ln\sigma$ and an MLP.
# 3. Encoder–processor–decoder: which arrays flow where, with which shapes.
# 4. Conditional LayerNorm: how $\sigma$ steers every layer.
# 5. Masked attention over the k-hop neighbourhood, three interchangeable layouts.
# 6. The parameter tree, its size, and DeepMind's names.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import _style  # tutorials/_style.py: the projector-ready figure style
from minigencast import (
    channel_order,
    checkpoint,
    config,
    network,
    nn,
    noise_encoder,
    preconditioning,
    transformer,
)

# "tiny" in CI (seconds); "tutorial": the cpu preset that trains on the embedded data.
SIZE = os.environ.get("MINIGENCAST_SIZE", "tutorial")
assert SIZE in ("tiny", "tutorial"), SIZE
CFG = config.tiny() if SIZE == "tiny" else config.cpu()
N_LAT, N_LON = CFG.grid
LAT = np.linspace(-90, 90, N_LAT)
LON = np.arange(N_LON) * 360 / N_LON
KEY = jax.random.key(0)
ARCH = CFG.denoiser_architecture_config
ST = ARCH.sparse_transformer_config
print(
    f"size={SIZE}: grid {N_LAT}x{N_LON}, mesh splits {ARCH.mesh_size}, k = {ST.attention_k_hop}, "
    f"width {ARCH.latent_size}, {ST.num_layers} transformer blocks x {ST.num_heads} heads"
)

# %% [markdown]
# ## 1. Channels: what goes in, what comes out
#
# One GenCast step predicts the state at $t + 12\,\text{h}$ from the states at
# $t - 12\,\text{h}$ and $t$. The network sees, on every grid point,
#
# * **inputs**: each input variable at both input times (static fields once),
# * **forcings** at the target time (here: the progress of the day and the year),
# * **the noisy target** $c_\text{in}(\sigma)\,x$ (what is being denoised),
# * 3 structural features $[\sin\varphi,\cos\lambda,\sin\lambda]$ (tutorial 04).
#
# `stacking` fixes the order exactly as DeepMind's code does: variables sorted
# alphabetically, time-major then level-minor; the forcings and the noisy targets are
# interleaved alphabetically as one block. The 1° model has 176 input, 4 forcing and 84
# target channels; our toy-planet task has fewer:

# %%
task = CFG.task_config
c_in_ch, c_t_ch, c_f_ch = (
    channel_order.input_channels(task),
    channel_order.target_channels(task),
    channel_order.forcing_channels(task),
)
C_IN, C_T, C_F = network.channel_counts(CFG)
print(
    f"inputs {C_IN}, targets {C_T}, forcings {C_F}; node features {C_IN + C_F + C_T} + 3 structural"
)
print("first input channels:", [f"{c.variable}@{c.level or 'sfc'}/t{c.time}" for c in c_in_ch[:4]])
print("target channels:     ", [f"{c.variable}@{c.level or 'sfc'}" for c in c_t_ch[:5]], "...")
perm = channel_order.interleave_index(task)
block = [(c_f_ch + c_t_ch)[i].variable for i in perm]
print("forcings + noisy targets, interleaved:", block[:6], "...")
assert block == sorted(block)  # alphabetical by variable name

# %% [markdown]
# ## 2. Parameters and structure
#
# `network.init_denoiser` returns a nested dict whose keys are DeepMind's module names;
# `network.build_structure` builds the graphs of tutorial 04 as arrays, to be passed into
# jitted code as data. Freshly initialised GenCast is deliberately dull: the last layer
# of every attention and feed-forward block starts at zero, and every conditional
# LayerNorm starts as a plain LayerNorm. To see the machinery move, we also make a copy
# with random weights everywhere (what a trained network would roughly look like).

# %%
params = network.init_denoiser(KEY, CFG, C_IN, C_T, C_F)
structure = network.build_structure(CFG, LAT, LON)


def randomise(params, seed=1, scale=0.3):
    """A copy of params with every leaf ~ N(0, scale^2 / fan_in) (NumPy: fast)."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda p: jnp.asarray(
            scale * rng.standard_normal(p.shape) / np.sqrt(p.shape[0]), jnp.float32
        ),
        params,
    )


params_random = randomise(params)


def show_tree(tree, depth=0, max_depth=3):
    for name, value in tree.items():
        if isinstance(value, dict):
            n = sum(int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(value))
            print("  " * depth + f"{name}  ({n:,} weights)")
            if depth + 1 < max_depth:
                show_tree(value, depth + 1, max_depth)
        else:
            print("  " * depth + f"{name} {tuple(value.shape)}")


show_tree({k: params[k] for k in ["fourier_features_mlp", "grid2mesh_gnn"]}, max_depth=2)
print("...")

# %% [markdown]
# ## 3. The noise-level encoder
#
# $F$ is told the noise level. GenCast encodes $v = \ln\sigma$ with Fourier features
# $[\cos(2\pi k v/16), \sin(2\pi k v/16)]_{k=1..K}$ and a two-layer MLP; the resulting
# vector $c$ (16 numbers for GenCast) conditions every LayerNorm of the network:
#
# $$\text{condLN}(h; c) = \text{LN}(h)\,\big(1 + s(c)\big) + o(c),\qquad [s, o] = W c + b.$$

# %%
sigmas = np.geomspace(0.02, 90, 200)
enc = noise_encoder.noise_encoder(
    params["fourier_features_mlp"], CFG.noise_encoder_config, jnp.asarray(sigmas)
)
fig, ax = plt.subplots(figsize=(7, 3))
im = ax.imshow(
    np.asarray(enc).T,
    aspect="auto",
    cmap="RdBu_r",
    extent=(np.log(sigmas[0]), np.log(sigmas[-1]), enc.shape[1] - 0.5, -0.5),
)
ax.set(xlabel="ln sigma", ylabel="encoding channel", title="noise-level encodings c(sigma) at init")
fig.colorbar(im)
_style.show()

# %% [markdown]
# ## 4. One forward pass, shape by shape
#
# We feed standard-normal inputs (normalised data look like that, tutorial 01), a noisy
# target at $\sigma = 2$, and ask for every intermediate array:

# %%
k1, k2, k3, k4 = jax.random.split(jax.random.key(2), 4)
inputs = jax.random.normal(k1, (N_LAT, N_LON, C_IN))
forcings = jax.random.normal(k2, (N_LAT, N_LON, C_F))
y = jax.random.normal(k3, (N_LAT, N_LON, C_T))  # a "clean" normalised target
sigma = 2.0
x = y + sigma * jax.random.normal(k4, y.shape)  # the noisy target
F, inter = network.raw_denoiser_jit(
    params_random,
    structure,
    CFG,
    inputs,
    forcings,
    preconditioning.c_in(sigma) * x,
    sigma,
    return_intermediates=True,
)
n_g, n_m = N_LAT * N_LON, structure.mesh_node_features.shape[0]
print(f"N_g = {n_g} grid nodes, N_m = {n_m} mesh nodes, latent D = {ARCH.latent_size}")
for name, value in inter.items():
    print(f"  {name:26s} {str(value.shape):16s}")
print(f"  {'F (reshaped)':26s} {str(F.shape):16s}")

# %% [markdown]
# Reading the shapes top to bottom:
#
# 1. `grid_node_features` $[N_g, C_\text{in} + C_f + C_t]$: the stacked channels.
# 2. `noise_level_encodings` $[16]$ (here smaller): $c(\sigma)$.
# 3. **Grid2Mesh** embeds grid nodes, mesh nodes (zeros + structural features) and edges
#    into $D$ dimensions, computes one message per edge, *sums* messages at each mesh
#    node, and updates both node sets with residual MLPs: mesh latent $[N_m, D]$ and grid
#    latent $[N_g, D]$.
# 4. **Processor**: $L$ pre-norm transformer blocks on the mesh latent; each block is
#    $h \leftarrow h + \text{MHA}(\text{condLN}(h))$, $h \leftarrow h + \text{FFN}(\text{condLN}(h))$,
#    with attention restricted to the k-hop mask; a final condLN. Output $[N_m, D]$.
# 5. **Mesh2Grid** sends mesh latents to the grid along the decoder edges, updates the
#    grid latent, and a final MLP (no norm) maps $D \to C_t$: $F$ $[N_g, C_t]$, reshaped
#    to $[\text{lat}, \text{lon}, C_t]$.

# %%
D = network.denoiser(params_random, structure, CFG, inputs, forcings, x, sigma)  # jitted
fig, axes = plt.subplots(1, 4, figsize=(15, 3))
channel = 2  # 2m_temperature in the toy-planet target order
panels = [
    ("clean target y", y),
    ("noisy x, sigma = 2", x),
    ("F (random weights)", F),
    ("D = c_skip x + c_out F", D),
]
for ax, (title, field) in zip(axes, panels, strict=True):
    field = field[..., channel]
    im = ax.imshow(np.asarray(field), origin="lower", extent=(0, 360, -90, 90), cmap="RdBu_r")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.7)
fig.suptitle(c_t_ch[channel].variable)
_style.show()

# %% [markdown]
# ## 5. Inside a block, by hand
#
# **Conditional LayerNorm.** LayerNorm without learnable scale/offset, then a scale and
# offset computed from $c$. `nn.init_norm_conditioning` starts $W, b$ at ~0, so at
# initialisation it is a plain LayerNorm; training teaches it to behave differently at
# different noise levels.

# %%
block0 = params_random["mesh_transformer"]["transformer"]["block_00"]
h = inter["grid2mesh_mesh_latent"]  # [N_m, D]
c = inter["noise_level_encodings"]  # [C]
norm_params = block0["block_00_norm_conditioning"]["linear"]
mean = h.mean(-1, keepdims=True)
ln = (h - mean) / jnp.sqrt(((h - mean) ** 2).mean(-1, keepdims=True) + 1e-5)
s_and_o = c @ norm_params["w"] + norm_params["b"]
d = h.shape[-1]
by_hand = ln * (1 + s_and_o[:d]) + s_and_o[d:]
np.testing.assert_allclose(
    by_hand,
    nn.conditional_layer_norm(block0["block_00_norm_conditioning"], h, c),
    rtol=1e-4,
    atol=1e-4,
)
print("conditional LayerNorm by hand == nn.conditional_layer_norm")

# %% [markdown]
# **Masked multi-head attention.** With $H$ heads of size $d_k = D/H$:
# $q = hW_q,\ k = hW_k,\ v = hW_v$; per head, logits $q_i\cdot k_j/\sqrt{d_k}$ where
# $M_{ij}$ (k-hop mask) and $-\infty$ elsewhere; softmax over $j$; weighted sum of $v$;
# concatenate heads; output projection `mha_final`.

# %%
G = network.build_graphs(CFG, LAT, LON)  # cached: the arrays build_structure used
mask = transformer.build_attention(
    G["attention_mask_rows"], G["attention_mask_cols"], n_m, "mha"
).mask
heads, dk = ST.num_heads, d // ST.num_heads
q = (by_hand @ block0["mha_proj_q"]["w"]).reshape(n_m, heads, dk)
k = (by_hand @ block0["mha_proj_k"]["w"]).reshape(n_m, heads, dk)
v = (by_hand @ block0["mha_proj_v"]["w"]).reshape(n_m, heads, dk)
logits = np.einsum("ihd,jhd->hij", q, k) / np.sqrt(dk)
logits = np.where(mask[None], logits, -np.inf)
weights = np.exp(logits - logits.max(-1, keepdims=True))
weights /= weights.sum(-1, keepdims=True)
attn = np.einsum("hij,jhd->ihd", weights, v).reshape(n_m, d)
attn = attn @ block0["mha_final"]["w"] + block0["mha_final"]["b"]
mha_pkg = transformer.mha(block0, by_hand, structure.attention, ST.num_heads)
np.testing.assert_allclose(attn, mha_pkg, rtol=2e-3, atol=2e-4)
print(
    f"masked attention by hand == transformer.mha; each query sees "
    f"{mask.sum(1).min()}-{mask.sum(1).max()} of {n_m} keys"
)

fig, ax = plt.subplots(figsize=(6, 5))
image = ax.imshow(weights[0][: min(n_m, 120), : min(n_m, 120)], cmap="magma")
fig.colorbar(image, ax=ax, label="attention weight")
ax.set(title="head 0 attention weights\n(first nodes)", xlabel="key j", ylabel="query i")
_style.show()

# %% [markdown]
# **Three layouts, one function.** Dense masked attention (`"mha"`, $O(N_m^2)$ memory),
# neighbour lists (`"splash_mha"`: our gather over the $\le K$ keys of each node,
# $O(N_m K)$), and DeepMind's tri-block-diagonal GPU layout (`"triblockdiag_mha"`, which
# relies on the banded RCM order) compute the same $F$ with the same parameters.

# %%
outputs = {}
for attention_type in ["mha", "splash_mha", "triblockdiag_mha"]:
    st = network.build_structure(CFG, LAT, LON, attention_type=attention_type)
    outputs[attention_type] = network.raw_denoiser_jit(
        params_random, st, CFG, inputs, forcings, preconditioning.c_in(sigma) * x, sigma
    )
for name, out in outputs.items():
    err = float(jnp.max(jnp.abs(out - outputs["mha"])))
    print(f"{name:18s} max |F - F_dense| = {err:.2e}")
    np.testing.assert_allclose(out, outputs["mha"], rtol=1e-4, atol=1e-4)

# %% [markdown]
# ## 6. Parameters and DeepMind's names
#
# `checkpoint.to_haiku` turns the nested dict into DeepMind's flat Haiku module paths —
# the only renaming between our tree and the official `.npz` files (no transposes).
# The same code builds the official configurations; `network.num_parameters` counts
# without allocating anything (`jax.eval_shape`).

# %%
haiku = checkpoint.to_haiku(params)
for path in list(haiku)[:3] + [p for p in haiku if "block_00" in p][:3]:
    print(f"{path:90s} {[tuple(a.shape) for a in haiku[path].values()]}")
print(f"... {len(haiku)} modules")

presets = ["tiny", "cpu", "gencast_1p0deg_mini", "gencast_0p25deg"]
counts = {name: network.num_parameters(config.preset(name)) for name in presets}
for name, count in counts.items():
    print(f"{name:22s} {count:>12,d} weights")

mini = config.gencast_1p0deg_mini()
shapes = network.param_shapes(mini)
per_module = {
    k: sum(int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(shapes[k])) for k in shapes
}
fig, ax = plt.subplots(figsize=(6, 2.5))
ax.barh(list(per_module), list(per_module.values()))
ax.set(xscale="log", xlabel="weights", title="GenCast 1 deg Mini, by module")
_style.show()

# %% [markdown]
# **Check.** The Mini count matches DeepMind's checkpoint (57,492,612 weights, spec
# sec. 9.2), the Haiku renaming round-trips, and one transformer block holds
# $4D^2$ attention weights $+\,D$ bias $+\,2 D\,d_\text{ffw} + d_\text{ffw} + D$ FFN
# weights $+$ two condLNs of $(c+1)\cdot 2D$.

# %%
assert counts["gencast_1p0deg_mini"] == 57_492_612
back = checkpoint.from_haiku(haiku)
assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(params)
width, ffw_hidden, cond_size = (
    ARCH.latent_size,
    ST.ffw_hidden,
    CFG.noise_encoder_config.output_sizes[-1],
)
expected_block = (
    4 * width * width
    + width
    + 2 * width * ffw_hidden
    + ffw_hidden
    + width
    + 2 * (cond_size + 1) * 2 * width
)
actual_block = sum(int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(block0))
assert actual_block == expected_block, (actual_block, expected_block)
print(f"one block: {actual_block:,} weights as counted by hand")

# %% [markdown]
# ## Exercises
#
# 1. Verify that the *fresh* network's transformer is the identity up to the final
#    conditional LayerNorm (hint: `mha_final` and `ffw_down` start at zero). Why is
#    that a sensible initialisation for a residual network?
# 2. Rotate the inputs by one grid column in longitude (`jnp.roll(..., 1, axis=1)`).
#    Is $F$ rotated too? Why not exactly?
# 3. Where would you cut to halve memory at 0.25°: the attention layout, bfloat16
#    (`compute_dtype=jnp.bfloat16`), or fewer mesh splits?
#
# <details><summary>Solutions</summary>
#
# 1. `inter0 = network.raw_denoiser(params, structure, CFG, ..., return_intermediates=True)[1]`,
#    then compare `inter0["processor_output"]` with `nn.conditional_layer_norm(
#    params["mesh_transformer"]["transformer"]["transformer_final_norm_conditioning"],
#    inter0["grid2mesh_mesh_latent"], inter0["noise_level_encodings"])`. Zero-initialised
#    residual branches make a deep network start shallow: gradients flow through the
#    skip connections and each block learns a small correction.
# 2. Not exactly: the mesh is not invariant under a rotation by $360/n_\text{lon}$ degrees
#    (the icosahedron has only a few rotational symmetries), and the structural features
#    carry absolute longitude. The network can learn an approximately equivariant map.
# 3. The neighbour-list layout avoids the $O(N_m^2)$ logits entirely (dense attention at
#    0.25° would need $1.7\cdot10^9$ logits per head); bfloat16 halves activations; fewer
#    splits change the model (and its weights).
#
# </details>
#
# ## Where this lives in the package
#
# | concept | module |
# |---|---|
# | channel order, interleaving, Dataset ↔ array | `minigencast/stacking.py` |
# | noise-level encoder, $c_\text{in}, c_\text{out}, c_\text{skip}$ | `minigencast/preconditioning.py` |
# | Linear, MLP, LayerNorm, conditional LayerNorm | `minigencast/nn.py` |
# | Grid2Mesh / Mesh2Grid message passing | `minigencast/gnn.py` |
# | attention layouts, transformer blocks | `minigencast/transformer.py` |
# | `init_denoiser`, `build_structure`, `raw_denoiser`, `denoiser` | `minigencast/network.py` |
# | DeepMind's names and `.npz` files | `minigencast/checkpoint.py` (tutorial 10) |
#
# The last check: $D$ built by hand from the package's $F$ and the preconditioning
# equals the jitted `network.denoiser`.

# %%
D_by_hand = preconditioning.c_skip(sigma) * x + preconditioning.c_out(sigma) * F
np.testing.assert_allclose(D_by_hand, D, rtol=1e-4, atol=1e-4)
print("c_skip x + c_out F == network.denoiser")
