"""Neural-network building blocks as pure functions over plain dict parameters.

Every layer is a pair `init_<layer>(key, ...) -> params` and `<layer>(params, x)`.
Parameter names follow Haiku's, as in DeepMind's checkpoints: a Linear owns `w`
[in, out] and (optionally) `b` [out]; an MLP owns `linear_0`, `linear_1`, ...

Initialisers are Haiku's defaults (docs/design.md §3.4): a Linear's weights come from a
normal with std 1/sqrt(fan_in) truncated at +-2 std, biases are zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

Params = dict


def truncated_normal(key, shape, std, dtype=jnp.float32) -> jax.Array:
    """std * N(0, 1) truncated to [-2, 2] (Haiku's `TruncatedNormal(stddev=std)`)."""
    return std * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)


def init_linear(key, fan_in: int, fan_out: int, with_bias: bool = True, std=None) -> Params:
    """Haiku's default Linear initialisation; `std` overrides 1/sqrt(fan_in)."""
    std = 1.0 / jnp.sqrt(fan_in) if std is None else std
    params = {"w": truncated_normal(key, (fan_in, fan_out), std)}
    if with_bias:
        params["b"] = jnp.zeros((fan_out,), jnp.float32)
    return params


def linear(params: Params, x: jax.Array) -> jax.Array:
    """y = x W + b, x: [..., in] -> [..., out]."""
    y = jnp.dot(x, params["w"].astype(x.dtype))
    if "b" in params:
        y = y + expand_to(params["b"].astype(x.dtype), y.ndim)
    return y


def expand_to(v: jax.Array, ndim: int) -> jax.Array:
    """Prepends unit axes to `v` up to `ndim` (explicit broadcasting over leading axes,
    so the code runs under `jax_numpy_rank_promotion="raise"`)."""
    return jnp.reshape(v, (1,) * (ndim - v.ndim) + v.shape)


def swish(x: jax.Array) -> jax.Array:
    """x * sigmoid(x) (a.k.a. SiLU): the activation of GenCast's GNN MLPs."""
    return jax.nn.silu(x)


def gelu(x: jax.Array) -> jax.Array:
    """GELU with the tanh approximation (JAX's default, used by DeepMind)."""
    return jax.nn.gelu(x, approximate=True)


def init_mlp(key, sizes: Sequence[int]) -> Params:
    """MLP with layer sizes [in, h_1, ..., out]: Linears `linear_0` ... `linear_{n-1}`."""
    keys = jax.random.split(key, len(sizes) - 1)
    return {
        f"linear_{i}": init_linear(k, fan_in, fan_out)
        for i, (k, fan_in, fan_out) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=False))
    }


def mlp(params: Params, x: jax.Array, activation: Callable = swish) -> jax.Array:
    """Linear -> activation -> ... -> Linear (no activation after the last Linear)."""
    n = len(params)
    for i in range(n):
        x = linear(params[f"linear_{i}"], x)
        if i < n - 1:
            x = activation(x)
    return x


def mean_last_axis_reduce(x: jax.Array) -> jax.Array:
    return jnp.mean(x, axis=-1, keepdims=True)


def mean_last_axis_matvec(x: jax.Array) -> jax.Array:
    return jnp.dot(x, jnp.full((x.shape[-1], 1), 1.0 / x.shape[-1], x.dtype))


def mean_last_axis(x: jax.Array) -> jax.Array:
    """mean(x, axis=-1, keepdims=True); on CPU as the matrix-vector product x @ (1/d).

    XLA's CPU backend splits a reduction over a short axis into a reduce-window tree that
    runs slower than a matvec. With the flags `minigencast` sets (`cli.CPU_XLA_FLAGS`) the
    cpu preset's train step takes 0.82-0.91x the time (0.93-0.96x in the whole
    `minigencast train` loop) and its 12 h forecast step 0.90-0.98x; under XLA's default
    flags the train step is slower (1.07-1.26x) and the forecast step faster (0.75-0.90x)
    (`benchmarks/xla_cpu_flags.py`, two runs). Same value up to float rounding on every
    platform.
    """
    return jax.lax.platform_dependent(x, cpu=mean_last_axis_matvec, default=mean_last_axis_reduce)


def layer_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
    """LayerNorm over the last axis without learnable scale/offset (docs/design.md §6.5).

    (x - mean) / sqrt(var + eps), var = mean((x - mean)^2), computed in float32.
    """
    dtype = x.dtype
    x = x.astype(jnp.float32)
    mean = mean_last_axis(x)
    var = mean_last_axis(jnp.square(x - mean))
    return ((x - mean) * jax.lax.rsqrt(var + eps)).astype(dtype)


def variance_scaling(key, shape, scale: float, dtype=jnp.float32) -> jax.Array:
    """Haiku's `VarianceScaling(scale)` (fan_in, truncated normal) for a [in, out] weight.

    std = sqrt(scale / fan_in) / 0.87962566..., the constant undoing the variance lost
    by truncating a unit normal at +-2. `scale == 0` gives zeros (DeepMind's zero-init
    of the last Linear of every attention and FFN, docs/design.md §3.4).
    """
    std = (scale / shape[0]) ** 0.5 / 0.87962566103423978
    return truncated_normal(key, shape, std, dtype)


# --------------------------------------------------------------------------
# Conditional LayerNorm (DeepMind's `LinearNormConditioning`, docs/design.md §6.5).


def init_norm_conditioning(key, cond_size: int, features: int) -> Params:
    """{"linear": Linear(cond_size -> 2 features)}, initialised to ~0 (std 1e-8).

    Starting near zero makes the conditional LayerNorm start as a plain LayerNorm
    (scale 1, offset 0), DeepMind's `TruncatedNormal(stddev=1e-8)` (docs/design.md §3.4).
    """
    return {"linear": init_linear(key, cond_size, 2 * features, std=1e-8)}


def norm_conditioning(params: Params, x: jax.Array, cond: jax.Array) -> jax.Array:
    """y = x (1 + s) + o with [s | o] = Linear(cond) (no LayerNorm here).

    Args:
      params: {"linear": {"w": [C, 2F], "b": [2F]}}; the output's first F entries
        are (scale - 1), the last F the offset.
      x: [..., F].
      cond: [C] (one sample's noise-level encoding), broadcast over x's leading axes.
    """
    features = x.shape[-1]
    scale_minus_one_and_offset = linear(params["linear"], cond.astype(x.dtype))
    s = expand_to(scale_minus_one_and_offset[:features], x.ndim)
    o = expand_to(scale_minus_one_and_offset[features:], x.ndim)
    return x * (1 + s) + o


def conditional_layer_norm(params: Params, x: jax.Array, cond: jax.Array) -> jax.Array:
    """(1 + s) LN(x) + o with [s | o] = Linear(cond): x [..., F], cond [C] -> [..., F]."""
    return norm_conditioning(params, layer_norm(x), cond)


# --------------------------------------------------------------------------
# "MLP with norm": GenCast's GNN MLPs (docs/design.md §6.5).


def init_mlp_with_norm(key, name: str, sizes: Sequence[int], cond_size: int) -> Params:
    """Parameters of an MLP followed by a conditional LayerNorm, Haiku-named.

    Returns {f"{name}_mlp": MLP(sizes), f"{name}_norm_conditioning": {"linear": ...}}
    — the two sibling modules of DeepMind's checkpoints (e.g. `encoder_edges_grid2mesh_mlp`
    and `encoder_edges_grid2mesh_norm_conditioning`).
    """
    k_mlp, k_norm = jax.random.split(key)
    return {
        f"{name}_mlp": init_mlp(k_mlp, sizes),
        f"{name}_norm_conditioning": init_norm_conditioning(k_norm, cond_size, sizes[-1]),
    }


def mlp_with_norm(params: Params, name: str, x: jax.Array, cond: jax.Array) -> jax.Array:
    """MLP (swish) -> LayerNorm -> conditional scale/offset: x [..., in] -> [..., out].

    `params` is the dict holding the `f"{name}_mlp"` and `f"{name}_norm_conditioning"`
    entries (e.g. the whole `grid2mesh_gnn` subtree).
    """
    y = mlp(params[f"{name}_mlp"], x, activation=swish)
    return conditional_layer_norm(params[f"{name}_norm_conditioning"], y, cond)
