"""Neural-network building blocks as pure functions over plain dict parameters.

Every layer is a pair `init_<layer>(key, ...) -> params` and `<layer>(params, x)`.
Parameter names follow Haiku's, as in DeepMind's checkpoints: a Linear owns `w`
[in, out] and (optionally) `b` [out]; an MLP owns `linear_0`, `linear_1`, ...

Initialisers are Haiku's defaults (spec sec. 3.4): a Linear's weights come from a
normal with std 1/sqrt(fan_in) truncated at +-2 std, biases are zero.
"""

from __future__ import annotations

from typing import Callable, Sequence

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
        y = y + params["b"].astype(x.dtype)
    return y


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
        for i, (k, fan_in, fan_out) in enumerate(zip(keys, sizes[:-1], sizes[1:]))
    }


def mlp(params: Params, x: jax.Array, activation: Callable = swish) -> jax.Array:
    """Linear -> activation -> ... -> Linear (no activation after the last Linear)."""
    n = len(params)
    for i in range(n):
        x = linear(params[f"linear_{i}"], x)
        if i < n - 1:
            x = activation(x)
    return x


def layer_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
    """LayerNorm over the last axis without learnable scale/offset (spec sec. 6.5).

    (x - mean) / sqrt(var + eps), var = mean((x - mean)^2), computed in float32.
    """
    dtype = x.dtype
    x = x.astype(jnp.float32)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return ((x - mean) * jax.lax.rsqrt(var + eps)).astype(dtype)
