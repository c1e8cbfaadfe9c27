"""gnn: the factorised edge update equals DeepMind's concatenation MLP; sum aggregation."""

import jax
import jax.numpy as jnp
import numpy as np

from minigencast import gnn, nn


def _perturbed(params, key, scale=0.3):
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [p + scale * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys, strict=True)]
    )


def test_factorised_edge_update_equals_concatenation(key):
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    d, cond_size = 8, 4
    params = _perturbed(
        nn.init_mlp_with_norm(k1, "processor_edges_0_x", [3 * d, d, d], cond_size), k2
    )
    edges = jax.random.normal(k3, (30, d))
    senders_h = jax.random.normal(k4, (11, d))
    receivers_h = jax.random.normal(k5, (7, d))
    senders = jnp.arange(30) % 11
    receivers = (jnp.arange(30) * 3) % 7
    cond = jnp.linspace(-1.0, 1.0, cond_size)
    ours = gnn.edge_update(
        params, "processor_edges_0_x", edges, senders_h, receivers_h, senders, receivers, cond
    )
    concat = jnp.concatenate([edges, senders_h[senders], receivers_h[receivers]], -1)
    expected = nn.mlp_with_norm(params, "processor_edges_0_x", concat, cond)
    np.testing.assert_allclose(ours, expected, atol=2e-5)


def test_aggregate_is_a_plain_sum(key):
    messages = jax.random.normal(key, (12, 3))
    receivers = jnp.array([0, 2, 2, 4, 0, 0, 1, 1, 4, 4, 4, 2])
    expected = np.zeros((6, 3))
    for m, r in zip(np.asarray(messages), np.asarray(receivers), strict=True):
        expected[r] += m
    np.testing.assert_allclose(gnn.aggregate(messages, receivers, 6), expected, atol=1e-6)


def test_parameter_shapes_follow_deepmind(key):
    g2m = gnn.init_grid2mesh(key, num_node_features=87, latent=32, cond_size=8)
    assert g2m["encoder_nodes_grid_nodes_mlp"]["linear_0"]["w"].shape == (87, 32)
    assert g2m["processor_edges_0_grid2mesh_mlp"]["linear_0"]["w"].shape == (96, 32)
    assert g2m["processor_nodes_0_mesh_nodes_mlp"]["linear_0"]["w"].shape == (64, 32)
    assert g2m["processor_nodes_0_grid_nodes_norm_conditioning"]["linear"]["w"].shape == (8, 64)
    m2g = gnn.init_mesh2grid(key, latent=32, num_outputs=24, cond_size=8)
    assert m2g["decoder_nodes_grid_nodes_mlp"]["linear_1"]["w"].shape == (32, 24)
    assert "decoder_nodes_grid_nodes_norm_conditioning" not in m2g
    assert len(g2m) == 12 and len(m2g) == 9
