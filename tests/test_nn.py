"""nn: linear, LayerNorm, conditional LayerNorm, MLP with norm, initialisers."""

import jax
import jax.numpy as jnp
import numpy as np

from minigencast import nn


def test_layer_norm_has_zero_mean_unit_variance(key):
    x = 3.0 + 2.0 * jax.random.normal(key, (5, 64))
    y = nn.layer_norm(x)
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(-1), 1.0, atol=1e-3)


def test_conditional_layer_norm_formula(key):
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.normal(k1, (7, 6))
    cond = jax.random.normal(k2, (4,))
    params = {"linear": {"w": jax.random.normal(k3, (4, 12)), "b": jnp.arange(12.0)}}
    so = cond @ params["linear"]["w"] + params["linear"]["b"]
    expected = nn.layer_norm(x) * (1 + so[None, :6]) + so[None, 6:]  # [scale - 1 | offset]
    np.testing.assert_allclose(
        nn.conditional_layer_norm(params, x, cond), expected, rtol=1e-5, atol=1e-5
    )


def test_fresh_conditioning_is_plain_layer_norm(key):
    params = nn.init_norm_conditioning(key, 8, 16)
    assert params["linear"]["w"].shape == (8, 32)
    assert float(jnp.abs(params["linear"]["w"]).max()) < 1e-7  # std 1e-8 (docs/design.md §3.4)
    x = jax.random.normal(key, (3, 16))
    np.testing.assert_allclose(
        nn.conditional_layer_norm(params, x, jnp.ones(8)), nn.layer_norm(x), atol=1e-6
    )


def test_mlp_with_norm_names_and_output(key):
    params = nn.init_mlp_with_norm(key, "encoder_edges_grid2mesh", [4, 32, 32], cond_size=8)
    assert set(params) == {
        "encoder_edges_grid2mesh_mlp",
        "encoder_edges_grid2mesh_norm_conditioning",
    }
    assert set(params["encoder_edges_grid2mesh_mlp"]) == {"linear_0", "linear_1"}
    x = jax.random.normal(key, (10, 4))
    y = nn.mlp_with_norm(params, "encoder_edges_grid2mesh", x, jnp.zeros(8))
    expected = nn.layer_norm(nn.mlp(params["encoder_edges_grid2mesh_mlp"], x))
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_variance_scaling_std(key):
    w = nn.variance_scaling(key, (512, 512), 2.0 / 16)
    assert abs(float(w.std()) - np.sqrt(2.0 / 16 / 512)) < 0.02 * np.sqrt(2.0 / 16 / 512)
    assert float(jnp.abs(nn.variance_scaling(key, (8, 8), 0.0)).max()) == 0.0


def test_linear_broadcasts_explicitly(key):
    params = nn.init_linear(key, 3, 5)
    params["b"] = jnp.arange(5.0)
    x = jnp.ones((2, 4, 3))
    np.testing.assert_allclose(
        nn.linear(params, x), x @ params["w"] + params["b"][None, None], rtol=1e-6
    )


def test_mean_last_axis_matvec_and_reduce_agree(key):
    x = 3.0 + jax.random.normal(key, (5, 7, 96))
    expected = np.mean(np.asarray(x, np.float64), axis=-1, keepdims=True)
    for fn in (nn.mean_last_axis, nn.mean_last_axis_matvec, nn.mean_last_axis_reduce):
        np.testing.assert_allclose(jax.jit(fn)(x), expected, rtol=1e-6)
    # Differentiable like a reduction (the platform switch is traced through grad and vmap).
    g = jax.grad(lambda v: jnp.sum(jax.vmap(nn.layer_norm)(v) ** 3))(x)
    g_ref = jax.grad(
        lambda v: jnp.sum(
            ((v - v.mean(-1, keepdims=True)) / jnp.sqrt(v.var(-1, keepdims=True) + 1e-5)) ** 3
        )
    )(x)
    np.testing.assert_allclose(g, g_ref, rtol=2e-4, atol=2e-4)
