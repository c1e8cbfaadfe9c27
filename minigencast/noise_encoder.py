"""The noise-level encoder: Fourier features of ln(sigma) followed by a small MLP.

GenCast hands its raw network F the noise level sigma itself (not EDM's
c_noise = ln(sigma)/4). F embeds it as

    c(sigma) = MLP([cos(2 pi f_k ln sigma), sin(2 pi f_k ln sigma)]_{k=1..K}),  f_k = k / P

and c is the conditioning vector of every conditional LayerNorm of the network. Like
DeepMind's `denoiser.FourierFeaturesMLP`, this is part of the network (the diffusion
modules never import it).

References:
  [1] Price et al. 2025, "Probabilistic weather forecasting with machine learning",
      Nature 637, 84-90 (arXiv:2312.15796), Supplementary sec. D.
  [2] DeepMind graphcast@d39de19: graphcast/denoiser.py (`FourierFeaturesMLP`).

Tutorial: tutorials/05_denoiser.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from minigencast import config as config_lib
from minigencast import nn, preconditioning

Params = dict


def fourier_features(values, base_period: float, num_frequencies: int) -> jax.Array:
    """[cos(2 pi f_k v) for k = 1..K, sin(2 pi f_k v) for k = 1..K], f_k = k / base_period.

    Args:
      values: [...] (ln sigma for GenCast).
    Returns:
      [..., 2 num_frequencies]: the cos block first, then the sin block.
    """
    values = jnp.asarray(values, jnp.float32)
    frequencies = jnp.arange(1, num_frequencies + 1, dtype=jnp.float32) / base_period
    frequencies = frequencies.reshape((1,) * values.ndim + (num_frequencies,))
    phases = 2.0 * jnp.pi * values[..., None] * frequencies  # [..., K]
    return jnp.concatenate([jnp.cos(phases), jnp.sin(phases)], axis=-1)


def init_variance_scaling_uniform(key, fan_in: int, fan_out: int, scale: float = 2.0) -> Params:
    """Linear with W ~ U[-a, a], a = sqrt(3 scale / fan_in), b = 0.

    Haiku's `VarianceScaling(scale, "fan_in", "uniform")`, the noise MLP's
    initialiser in DeepMind's denoiser (docs/design.md §3.4); Var[W] = scale / fan_in.
    """
    limit = np.sqrt(3.0 * scale / fan_in)
    w = jax.random.uniform(key, (fan_in, fan_out), jnp.float32, -limit, limit)
    return {"w": w, "b": jnp.zeros((fan_out,), jnp.float32)}


def init_noise_encoder(key, cfg: config_lib.NoiseEncoderConfig) -> Params:
    """Parameters of the noise encoder: the subtree under params["fourier_features_mlp"].

    Returns:
      {"mlp": {"linear_0": {"w": [2K, H_1], "b": [H_1]}, "linear_1": ..., ...}},
      K = cfg.num_frequencies, H = cfg.output_sizes (e.g. 64 -> 32 -> 16).
    """
    sizes = (2 * cfg.num_frequencies,) + tuple(cfg.output_sizes)
    keys = jax.random.split(key, len(sizes) - 1)
    layers = {
        f"linear_{i}": init_variance_scaling_uniform(k, fan_in, fan_out)
        for i, (k, fan_in, fan_out) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True))
    }
    return {"mlp": layers}


def noise_encoder(params: Params, cfg: config_lib.NoiseEncoderConfig, sigma) -> jax.Array:
    """Encodes noise levels: MLP(FourierFeatures(ln sigma)), GELU (tanh) between layers.

    Args:
      params: the `fourier_features_mlp` subtree ({"mlp": {"linear_0", ...}}).
      cfg: sizes, base period and whether to take ln first (GenCast: True).
      sigma: [...] noise levels, > 0.
    Returns:
      [..., cfg.output_sizes[-1]] noise-level encodings (no activation at the end).
    """
    if cfg.apply_log_first:
        preconditioning.check_positive_sigma(sigma)
        values = jnp.log(jnp.asarray(sigma, jnp.float32))
    else:
        values = jnp.asarray(sigma, jnp.float32)
    features = fourier_features(values, cfg.base_period, cfg.num_frequencies)
    return nn.mlp(params["mlp"], features, activation=nn.gelu)
