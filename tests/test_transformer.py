"""transformer: the three attention layouts compute the same function; block structure."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minigencast import config, nn, transformer


def _banded_mask(n=50, seed=0):
    """A random symmetric banded mask with self loops (like an RCM-ordered k-hop mask)."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((n, n), bool)
    for i in range(n):
        width = rng.integers(1, 7)
        dense[i, max(0, i - width) : i + width + 1] = True
    dense = dense | dense.T | np.eye(n, dtype=bool)
    rows, cols = np.nonzero(dense)
    return rows, cols, dense


def _qkv(key, n, heads=3, dk=4):
    return [jax.random.normal(k, (n, heads, dk)) for k in jax.random.split(key, 3)]


def test_layouts(key):
    rows, cols, dense = _banded_mask()
    np.testing.assert_array_equal(transformer.build_attention(rows, cols, 50, "mha").mask, dense)
    for chunk in (7, 16, 50):
        win = transformer.build_attention(rows, cols, 50, "splash_mha", window_chunk_size=chunk)
        num_chunks, q, w = win.mask.shape
        assert (num_chunks, q) == (-(-50 // chunk), chunk) and w <= 50
        for i in range(50):  # the window of row i holds exactly row i of the mask
            c, r = divmod(i, chunk)
            keys = win.start[c] + np.flatnonzero(win.mask[c, r])
            np.testing.assert_array_equal(keys, np.flatnonzero(dense[i]))
    b = transformer.tri_block_size(rows, cols)
    tb = transformer.build_attention(rows, cols, 50, "triblockdiag_mha")
    assert tb.mask.shape == (-(-50 // b), b, 3 * b)
    assert tb.mask.sum() == dense.sum()


@pytest.mark.parametrize("chunk", [None, 7])  # one window, many padded windows
def test_all_attention_implementations_agree(key, chunk):
    rows, cols, dense = _banded_mask()
    q, k, v = _qkv(key, 50)
    logits = jnp.einsum("qhd,khd->hqk", q, k)
    logits = jnp.where(dense[None], logits, -jnp.inf)
    expected = jnp.einsum("hqk,khd->qhd", jax.nn.softmax(logits, -1), v)
    dense_out = transformer.attend(q, k, v, transformer.build_attention(rows, cols, 50, "mha"))
    nl = transformer.build_attention(rows, cols, 50, "splash_mha", window_chunk_size=chunk)
    nl_out = transformer.attend(q, k, v, nl)
    tb_out = transformer.attend(
        q, k, v, transformer.build_attention(rows, cols, 50, "triblockdiag_mha")
    )
    for out in (dense_out, nl_out, tb_out):
        np.testing.assert_allclose(out, expected, atol=2e-6)


def test_gradients_agree_between_layouts(key):
    rows, cols, _ = _banded_mask(30)
    q, k, v = _qkv(key, 30)
    grads = []
    for kind in transformer.ATTENTION_TYPES:
        layout = transformer.build_attention(rows, cols, 30, kind, window_chunk_size=8)
        loss = lambda q, k, v, layout=layout: jnp.sum(transformer.attend(q, k, v, layout) ** 2)  # noqa: E731
        grads.append(jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v))
    for g in grads[1:]:
        for a, b in zip(g, grads[0], strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_fresh_blocks_are_identity_maps(key):
    """Zero-initialised output projections (docs/design.md §3.4): out = final condLN(x)."""
    cfg = config.SparseTransformerConfig(
        attention_k_hop=1, d_model=16, num_layers=3, num_heads=2, ffw_hidden=32
    )
    params = transformer.init_transformer(key, cfg, cond_size=8)
    assert sorted(params) == [
        "block_00",
        "block_01",
        "block_02",
        "transformer_final_norm_conditioning",
    ]
    assert sorted(params["block_01"]) == sorted(
        [
            "mha_proj_q",
            "mha_proj_k",
            "mha_proj_v",
            "mha_final",
            "ffw_up",
            "ffw_down",
            "block_01_norm_conditioning",
            "block_01_norm_conditioning_1",
        ]
    )
    assert "b" not in params["block_00"]["mha_proj_q"]
    rows, cols, _ = _banded_mask(20)
    x = jax.random.normal(key, (20, 16))
    cond = jnp.ones(8)
    out = transformer.transformer(
        params, x, cond, transformer.build_attention(rows, cols, 20, "mha"), 2
    )
    expected = nn.conditional_layer_norm(params["transformer_final_norm_conditioning"], x, cond)
    np.testing.assert_allclose(out, expected, atol=1e-6)
