"""network: the official parameter tree, and consistency (jit, vmap, attention layouts, dtype)."""

import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minigencast import channel_order, checkpoint, config, network

DATA = pathlib.Path(__file__).parent / "data"
PARITY = pathlib.Path(__file__).parent / "parity" / "open"


def test_mini_init_matches_official_parameter_tree():
    """init at the Mini config is exactly DeepMind's tree (docs/design.md §9.2), no allocation."""
    manifest = json.loads((DATA / "gencast_1p0deg_mini_param_manifest.json").read_text())
    shapes = network.param_shapes(config.gencast_1p0deg_mini())
    ours = {
        f"params:{m}:{n}": list(v.shape)
        for m, leaves in checkpoint.to_haiku(shapes).items()
        for n, v in leaves.items()
    }
    assert sorted(set(ours) - set(manifest["params"])) == []
    assert sorted(set(manifest["params"]) - set(ours)) == []
    assert ours == manifest["params"]
    assert len(checkpoint.to_haiku(shapes)) == manifest["num_modules"] == 163
    assert network.num_parameters(config.gencast_1p0deg_mini()) == 57_492_612


def test_channel_counts():
    assert network.channel_counts(config.gencast_1p0deg_mini()) == (176, 84, 4)


@pytest.fixture(scope="module")
def small():
    """The parity case's config and graphs with fresh, perturbed parameters."""
    cfg = checkpoint.load(PARITY / "params.npz").config
    graphs = dict(np.load(PARITY / "graphs.npz"))
    n_in, n_t, n_f = network.channel_counts(cfg)
    params = jax.jit(network.init_denoiser, static_argnums=(1, 2, 3, 4))(
        jax.random.key(1), cfg, n_in, n_t, n_f
    )
    # Perturb so that the zero-initialised projections do not hide the attention.
    leaves, tree = jax.tree_util.tree_flatten(params)
    rng = np.random.default_rng(0)
    params = jax.tree_util.tree_unflatten(
        tree, [p + 0.05 * rng.standard_normal(p.shape).astype(np.float32) for p in leaves]
    )
    n_lat, n_lon = 13, 24
    rng = np.random.default_rng(1)
    batch = 2
    data = [
        rng.standard_normal((batch, n_lat, n_lon, n)).astype(np.float32) for n in (n_in, n_f, n_t)
    ]
    sigma = np.array([0.5, 20.0], np.float32)
    return cfg, graphs, params, data, sigma


def _run(small, attention_type="mha", jit=True, dtype=jnp.float32, i=0):
    cfg, graphs, params, (inputs, forcings, targets), sigma = small
    structure = network.structure_from_graphs(graphs, attention_type)
    fn = network.raw_denoiser_jit if jit else network.raw_denoiser
    return fn(
        params, structure, cfg, inputs[i], forcings[i], targets[i], sigma[i], compute_dtype=dtype
    )


def test_jit_equals_eager(small):
    np.testing.assert_allclose(_run(small, jit=False), _run(small), atol=2e-5)


@pytest.mark.parametrize("attention_type", ["splash_mha", "triblockdiag_mha"])
def test_scalable_attention_equals_dense(small, attention_type):
    np.testing.assert_allclose(_run(small, attention_type), _run(small, "mha"), atol=2e-5)


def test_vmap_over_batch_equals_loop(small):
    cfg, graphs, params, (inputs, forcings, targets), sigma = small
    structure = network.structure_from_graphs(graphs, "mha")
    batched = jax.jit(
        jax.vmap(lambda i, f, t, s: network.raw_denoiser(params, structure, cfg, i, f, t, s))
    )(inputs, forcings, targets, sigma)
    for i in range(len(sigma)):
        np.testing.assert_allclose(batched[i], _run(small, i=i), atol=2e-5)


def test_bfloat16_compute_is_close(small):
    ref = _run(small)
    out = _run(small, dtype=jnp.bfloat16)
    assert out.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(out - ref)) / jnp.max(jnp.abs(ref))) < 0.1


def test_gradients_are_finite(small):
    cfg, graphs, params, (inputs, forcings, targets), sigma = small
    structure = network.structure_from_graphs(graphs, "splash_mha")

    def loss(p):
        out = network.raw_denoiser(p, structure, cfg, inputs[0], forcings[0], targets[0], sigma[0])
        return jnp.mean(out**2)

    grads = jax.jit(jax.grad(loss))(params)
    norms = [float(jnp.abs(g).max()) for g in jax.tree_util.tree_leaves(grads)]
    assert all(np.isfinite(norms)) and max(norms) > 0


def test_remat_gradients_equal_plain_gradients(small):
    cfg, graphs, params, (inputs, forcings, targets), sigma = small
    structure = network.structure_from_graphs(graphs, "mha")

    def loss(p, remat):
        out = network.raw_denoiser(
            p, structure, cfg, inputs[0], forcings[0], targets[0], sigma[0], remat=remat
        )
        return jnp.mean(out**2)

    plain = jax.jit(jax.grad(lambda p: loss(p, False)))(params)
    remat = jax.jit(jax.grad(lambda p: loss(p, True)))(params)
    for a, b in zip(
        jax.tree_util.tree_leaves(plain), jax.tree_util.tree_leaves(remat), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_mismatched_channels_raise(small):
    cfg, graphs, params, (inputs, forcings, targets), sigma = small
    structure = network.structure_from_graphs(graphs, "mha")
    with pytest.raises(ValueError, match="forcing"):
        network.raw_denoiser(
            params, structure, cfg, inputs[0], forcings[0, ..., :2], targets[0], 1.0
        )


def test_num_parameters_for_other_task():
    cfg = config.gencast_1p0deg_mini()
    toy = dataclasses.replace(cfg, task_config=config.tiny().task_config)
    assert network.num_parameters(cfg, task=toy.task_config) == network.num_parameters(toy)
    assert network.num_parameters(toy) < 57_492_612
    assert len(channel_order.target_channels(toy.task_config)) == 16


def test_graph_layout_is_decided_from_the_graphs(small):
    """Constant fan-in (DeepMind's 3 vertices per grid node) enables the grouped decoder,
    in any edge order; one grid node with a 4th edge disables it. The sender-sorted
    chunk offsets bound every chunk's edges."""
    _, graphs, *_ = small
    order = np.random.default_rng(0).permutation(len(graphs["mesh2grid_receivers"]))
    shuffled = {k: (v[order] if k.startswith("mesh2grid_") else v) for k, v in graphs.items()}
    s = network.structure_from_graphs(shuffled, "mha", chunks=network.Chunks(grid_nodes=7))
    assert s.layout.mesh2grid_fan_in == 3
    np.testing.assert_array_equal(np.diff(s.mesh2grid_receivers) >= 0, True)
    senders = s.grid2mesh_senders
    assert np.all(np.diff(senders) >= 0)
    n = s.grid_node_features.shape[0]
    starts = np.arange(0, n, 7)
    np.testing.assert_array_equal(s.grid2mesh_chunk_offsets, np.searchsorted(senders, starts))
    counts = [np.sum((senders >= a) & (senders < a + 7)) for a in starts]
    assert s.layout.grid2mesh_chunk_edges == max(counts)
    extra = {k: graphs[k] for k in graphs}
    for k in ("mesh2grid_senders", "mesh2grid_receivers", "mesh2grid_edge_features"):
        extra[k] = np.concatenate([graphs[k], graphs[k][:1]])
    assert network.structure_from_graphs(extra, "mha").layout.mesh2grid_fan_in is None


def test_grid_node_chunked_gradients_equal_general_gradients(small):
    """Gradients (e.g. a training step under a memory budget) through the grid-node-chunked
    GNNs, with remat, equal those of the general GNNs."""
    cfg, graphs, params, (inputs, forcings, targets), sigma = small
    structure = network.structure_from_graphs(graphs, "mha", chunks=network.Chunks(100, 64, 64))
    general = structure._replace(layout=network.GraphLayout())

    def loss(p, s):
        out = network.raw_denoiser(
            p, s, cfg, inputs[0], forcings[0], targets[0], sigma[0], remat=True
        )
        return jnp.mean(out**2)

    grad = jax.jit(jax.grad(loss))
    for a, b in zip(
        jax.tree_util.tree_leaves(grad(params, structure)),
        jax.tree_util.tree_leaves(grad(params, general)),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
