"""The processor: a pre-norm transformer on the mesh, k-hop attention (docs/design.md §6.7, §7).

Block l (l = 0 .. num_layers-1), with x: [num_mesh_nodes, d_model] and the noise-level
encoding c: [cond]:

    x <- x + MHA( condLN_{l,a}(x; c) )          condLN(x; c) = (1 + s(c)) LN(x) + o(c)
    x <- x + FFN( condLN_{l,f}(x; c) )          FFN(x) = W_down gelu_tanh(W_up x + b) + b
    out = condLN_final(x; c)                    (no residual around the final norm)

MHA: q, k, v = x W_q, x W_k, x W_v (no bias), split into `num_heads` contiguous chunks of
key_size = d_model / num_heads; logits = q k^T / sqrt(key_size); node i attends to node j
only if their graph distance on the mesh is <= k (`attention_k_hop`), i.e. the mask
M = (A + I)^k of docs/design.md §6.7; softmax over keys in float32; output Linear `mha_final`.

Attention layouts (one function, three evaluations; all tested equal, and equal to
DeepMind's reference in tests/test_parity.py):

  DenseMask      `attention_type="mha"`: [H, N, N] logits with a boolean [N, N] mask.
                 Memory O(H N^2); matmul-bound, the fastest choice on CPU up to
                 ~10^4 nodes (1 deg Mini: N = 2,562; `network.build_structure` also uses
                 it for "splash_mha" on meshes up to 4,096 nodes).
  BandedWindows  `"splash_mha"` (DeepMind's TPU kernel name; here our memory-bounded
                 path for big meshes): chunks of Q consecutive queries attend to one
                 contiguous window of W <= Q + 2b keys (the RCM-ordered mask is banded),
                 sliced, not gathered: two dense matmuls per chunk (`lax.map`). Memory
                 O(H Q W); Q from the memory budget (`window_chunk`). W is 0.92 N at
                 1 deg Mini (no saving there), ~0.5 N at 0.25 deg.
  TriBlockMask   `"triblockdiag_mha"` (DeepMind's GPU path): the RCM-banded mask has
                 bandwidth < b, so query block i only sees key blocks i-1, i, i+1; logits
                 [H, b, 3b] per block, one block at a time, joint softmax over the three.

Plan and memory estimate for 0.25 deg (grid 721 x 1440 = 1,038,240 nodes; mesh splits 6:
N = 40,962; k 32: K_max = 3,169, tri-block b = 10,273; d_model 512, 4 heads; 1,618,818
grid2mesh and 3,114,720 mesh2grid edges) on one 80 GB GPU, float32, one sample:

  * attention, dense: 4 x 40,962^2 logits = 27 GB per layer, twice that with the
    softmax -> does not fit.
  * attention, banded windows (our "splash_mha"): windows of W <= Q + 20,546 keys;
    logits 3 x 4 x Q x W x 4 B per chunk (Q = 512: 0.5 GB), ~N W / N^2 = 0.5 of the
    dense FLOPs.
  * attention, tri-block: one block's logits 4 x 10,273 x 30,819 x 4 B = 5 GB at a time.
  * the grid side dominates memory; `memory.estimate` counts it, `memory.plan` chunks it
    (docs/performance.md). Measured on one H200: a 0.25 deg 12 h step with tri-block
    attention, unchunked, peaks at 34 GB of device memory.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from minigencast import nn

Params = dict
MASK_VALUE = -1e30  # DeepMind's masked-logit value (sparse_transformer.py)


# --------------------------------------------------------------------------
# Attention layouts (static structure, built once with NumPy, passed to jit as data).


class DenseMask(NamedTuple):
    """mask: bool [N, N], True where query i may attend to key j."""

    mask: jax.Array


class BandedWindows(NamedTuple):
    """Chunks of Q consecutive queries, each attending to a window of W consecutive keys.

    start: int32 [num_chunks], first key of each chunk's window; mask: bool
    [num_chunks, Q, W], True where query start_q + i may attend to key start[c] + j.
    The k-hop mask is banded after DeepMind's reverse Cuthill-McKee ordering, so a
    chunk's neighbours lie in one contiguous window: keys and values are sliced, not
    gathered, and each chunk is two dense matmuls.
    """

    start: jax.Array
    mask: jax.Array


class TriBlockMask(NamedTuple):
    """mask: bool [num_blocks, b, 3 b]: query block i's keys in blocks (i, i + 1, i - 1),
    the (diagonal, upper, lower) blocks of DeepMind's `mask_block_diags`, after
    zero-padding N to num_blocks * b."""

    mask: jax.Array


Attention = DenseMask | BandedWindows | TriBlockMask
ATTENTION_TYPES = ("mha", "splash_mha", "triblockdiag_mha")


def tri_block_size(rows: np.ndarray, cols: np.ndarray) -> int:
    """DeepMind's `get_mask_block_size`: max(lower, upper) bandwidth incl. the diagonal,
    = max |i - j| + 1 over the mask's non-zeros for a symmetric mask."""
    return int(np.max(np.abs(rows.astype(np.int64) - cols.astype(np.int64)))) + 1


def window_chunk(num_nodes: int, num_heads: int, bandwidth: int, budget_bytes: float) -> int:
    """Queries per `BandedWindows` chunk whose logits (~3 live copies of [H, Q, W] float32,
    W <= Q + 2 bandwidth) fit `budget_bytes`; a power of two >= 16, at most num_nodes."""
    q = 16
    while q < num_nodes and 3 * 4 * num_heads * (2 * q) * (2 * q + 2 * bandwidth) <= budget_bytes:
        q *= 2
    return min(q, num_nodes)


def banded_windows(rows, cols, num_nodes: int, chunk: int) -> BandedWindows:
    """`BandedWindows` of the COO mask for chunks of `chunk` queries (static NumPy work)."""
    num_chunks = -(-num_nodes // chunk)
    chunk_of = rows // chunk
    lo = np.full(num_chunks, num_nodes, np.int64)
    hi = np.zeros(num_chunks, np.int64)
    np.minimum.at(lo, chunk_of, cols)
    np.maximum.at(hi, chunk_of, cols)
    width = int(np.max(hi - lo + 1))
    start = np.clip(np.minimum(lo, num_nodes - width), 0, None)
    mask = np.zeros((num_chunks, chunk, width), bool)
    mask[chunk_of, rows % chunk, cols - start[chunk_of]] = True
    return BandedWindows(start.astype(np.int32), mask)


def build_attention(
    rows, cols, num_nodes: int, attention_type: str, window_chunk_size: int | None = None
) -> Attention:
    """The attention layout for `attention_type` from the COO mask (rows, cols) incl. self.

    `window_chunk_size`: queries per chunk of the "splash_mha" windows (default: all
    rows in one window, i.e. dense over the band; see `window_chunk`).
    """
    rows = np.asarray(rows, np.int64)
    cols = np.asarray(cols, np.int64)
    if attention_type == "mha":
        mask = np.zeros((num_nodes, num_nodes), bool)
        mask[rows, cols] = True
        return DenseMask(mask)
    if attention_type == "splash_mha":
        return banded_windows(rows, cols, num_nodes, window_chunk_size or num_nodes)
    if attention_type == "triblockdiag_mha":
        b = tri_block_size(rows, cols)
        num_blocks = -(-num_nodes // b)
        mask = np.zeros((num_blocks, b, 3, b), bool)
        q_block, q_in = rows // b, rows % b
        k_block, k_in = cols // b, cols % b
        which = np.select(
            [k_block == q_block, k_block == q_block + 1, k_block == q_block - 1], [0, 1, 2], -1
        )
        if np.any(which < 0):
            raise ValueError("mask is not tri-block-diagonal for its own block size")
        mask[q_block, q_in, which, k_in] = True
        return TriBlockMask(mask.reshape(num_blocks, b, 3 * b))
    raise ValueError(f"attention_type must be one of {ATTENTION_TYPES}, got {attention_type!r}")


# --------------------------------------------------------------------------
# Parameters.


def init_block(
    key,
    name: str,
    d_model: int,
    num_heads: int,
    ffw_hidden: int,
    num_layers: int,
    cond_size: int,
    attn_winit_final_mult=0.0,
    ffw_winit_final_mult=0.0,
) -> Params:
    """One block; DeepMind's init (docs/design.md §3.4): VarianceScaling(2 / num_layers) for q, k,
    v and ffw_up, VarianceScaling(final_mult / num_layers) (default 0: identity blocks) for
    mha_final and ffw_down, zero biases, conditioning Linears ~0."""
    ks = jax.random.split(key, 8)
    vs = lambda k, shape, mult: nn.variance_scaling(k, shape, mult / num_layers)  # noqa: E731
    del num_heads  # Heads only change a reshape, not the parameters.
    return {
        "mha_proj_q": {"w": vs(ks[0], (d_model, d_model), 2.0)},
        "mha_proj_k": {"w": vs(ks[1], (d_model, d_model), 2.0)},
        "mha_proj_v": {"w": vs(ks[2], (d_model, d_model), 2.0)},
        "mha_final": {
            "w": vs(ks[3], (d_model, d_model), attn_winit_final_mult),
            "b": jnp.zeros((d_model,), jnp.float32),
        },
        "ffw_up": {
            "w": vs(ks[4], (d_model, ffw_hidden), 2.0),
            "b": jnp.zeros((ffw_hidden,), jnp.float32),
        },
        "ffw_down": {
            "w": vs(ks[5], (ffw_hidden, d_model), ffw_winit_final_mult),
            "b": jnp.zeros((d_model,), jnp.float32),
        },
        f"{name}_norm_conditioning": nn.init_norm_conditioning(ks[6], cond_size, d_model),
        f"{name}_norm_conditioning_1": nn.init_norm_conditioning(ks[7], cond_size, d_model),
    }


def init_transformer(key, cfg, cond_size: int) -> Params:
    """Parameters of `mesh_transformer/~/transformer` for a `SparseTransformerConfig`."""
    keys = jax.random.split(key, cfg.num_layers + 1)
    params = {
        f"block_{i:02d}": init_block(
            keys[i],
            f"block_{i:02d}",
            cfg.d_model,
            cfg.num_heads,
            cfg.ffw_hidden,
            cfg.num_layers,
            cond_size,
            cfg.attn_winit_final_mult,
            cfg.ffw_winit_final_mult,
        )
        for i in range(cfg.num_layers)
    }
    params["transformer_final_norm_conditioning"] = nn.init_norm_conditioning(
        keys[-1], cond_size, cfg.d_model
    )
    return params


# --------------------------------------------------------------------------
# Attention evaluations: q, k, v [N, H, key_size] -> [N, H, key_size].


def _softmax_f32(logits):
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


def dense_attention(q, k, v, mask: DenseMask):
    """Full [H, N, N] logits, masked with -1e30 (DeepMind's `mha`)."""
    logits = jnp.einsum("qhd,khd->hqk", q, k)
    logits = jnp.where(mask.mask[None], logits, MASK_VALUE)
    weights = _softmax_f32(logits).astype(v.dtype)
    return jnp.einsum("hqk,khd->qhd", weights, v)


def window_attention(q, k, v, windows: BandedWindows):
    """Attention over banded windows, one chunk of queries at a time (`lax.map`).

    Chunk c: logits [H, Q, W] = q_c k[start_c : start_c + W]^T, masked; memory
    O(H Q W) instead of O(H N^2), FLOPs N W instead of N^2 per head.
    """
    n, heads, dk = q.shape
    num_chunks, chunk, width = windows.mask.shape
    pad = num_chunks * chunk - n
    q_pad = jnp.pad(q, ((0, pad), (0, 0), (0, 0))).reshape(num_chunks, chunk, heads, dk)

    def one_chunk(args):
        q_c, start, mask_c = args  # [Q, H, dk], [], [Q, W]
        k_c = jax.lax.dynamic_slice_in_dim(k, start, width)
        v_c = jax.lax.dynamic_slice_in_dim(v, start, width)
        return dense_attention(q_c, k_c, v_c, DenseMask(mask_c))

    if num_chunks == 1:
        out = one_chunk((q_pad[0], windows.start[0], windows.mask[0]))[None]
    else:
        out = jax.lax.map(one_chunk, (q_pad, windows.start, windows.mask))
    return out.reshape(num_chunks * chunk, heads, dk)[:n]


def triblock_attention(q, k, v, blocks: TriBlockMask):
    """Tri-block-diagonal attention (DeepMind's `triblockdiag_mha`), one query block at a
    time (`lax.map`): logits [H, b, 3b] per block, the joint softmax over its three key
    blocks."""
    n, heads, dk = q.shape
    num_blocks, b, _ = blocks.mask.shape
    pad = num_blocks * b - n

    def blocked(x):  # [N, H, dk] -> [num_blocks, b, H, dk]
        return jnp.pad(x, ((0, pad), (0, 0), (0, 0))).reshape(num_blocks, b, heads, dk)

    qb, kb, vb = blocked(q), blocked(k), blocked(v)
    # Keys/values padded by one empty block on each side: block i sees i-1, i, i+1.
    kb = jnp.pad(kb, ((1, 1), (0, 0), (0, 0), (0, 0)))
    vb = jnp.pad(vb, ((1, 1), (0, 0), (0, 0), (0, 0)))

    def one_block(args):
        i, q_i, mask_i = args  # [], [b, H, dk], [b, 3b]
        # Key blocks (diagonal, upper, lower) = padded blocks i + 1, i + 2, i.
        k3 = jnp.concatenate([kb[i + 1], kb[i + 2], kb[i]], axis=0)
        v3 = jnp.concatenate([vb[i + 1], vb[i + 2], vb[i]], axis=0)
        return dense_attention(q_i, k3, v3, DenseMask(mask_i))

    out = jax.lax.map(one_block, (jnp.arange(num_blocks), qb, blocks.mask))
    return out.reshape(num_blocks * b, heads, dk)[:n]


def attend(q, k, v, attention: Attention):
    """Dispatches on the layout's type (static under jit)."""
    if isinstance(attention, DenseMask):
        return dense_attention(q, k, v, attention)
    if isinstance(attention, BandedWindows):
        return window_attention(q, k, v, attention)
    if isinstance(attention, TriBlockMask):
        return triblock_attention(q, k, v, attention)
    raise TypeError(f"unknown attention layout {type(attention).__name__}")


# --------------------------------------------------------------------------
# The transformer.


def mha(params: Params, x, attention: Attention, num_heads: int):
    """Masked multi-head self-attention: x [N, D] -> [N, D]."""
    n, d = x.shape
    key_size = d // num_heads
    q = nn.linear(params["mha_proj_q"], x).reshape(n, num_heads, key_size)
    k = nn.linear(params["mha_proj_k"], x).reshape(n, num_heads, key_size)
    v = nn.linear(params["mha_proj_v"], x).reshape(n, num_heads, key_size)
    q = q * jnp.asarray(key_size**-0.5, q.dtype)
    out = attend(q, k, v, attention).reshape(n, num_heads * key_size)
    return nn.linear(params["mha_final"], out)


def ffw(params: Params, x):
    """Linear -> GELU (tanh approximation) -> Linear."""
    return nn.linear(params["ffw_down"], nn.gelu(nn.linear(params["ffw_up"], x)))


def block(params: Params, name: str, x, cond, attention: Attention, num_heads: int):
    """One pre-norm block with conditional LayerNorms."""
    h = nn.conditional_layer_norm(params[f"{name}_norm_conditioning"], x, cond)
    x = x + mha(params, h, attention, num_heads)
    h = nn.conditional_layer_norm(params[f"{name}_norm_conditioning_1"], x, cond)
    return x + ffw(params, h)


def _scan_blocks(params: Params, num_layers: int, x, cond, attention, num_heads: int):
    """All blocks as one `lax.scan` over stacked block parameters, each block
    rematerialised: the backward pass then recomputes one block at a time (on XLA:CPU an
    unrolled loop of checkpointed blocks is rescheduled and keeps every block's attention
    matrices alive: 7 GB for the Mini's 16 blocks instead of ~0.5 GB)."""
    generic = []
    for i in range(num_layers):
        name = f"block_{i:02d}"
        b = dict(params[name])
        b["attn_norm"] = b.pop(f"{name}_norm_conditioning")
        b["ffw_norm"] = b.pop(f"{name}_norm_conditioning_1")
        generic.append(b)
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *generic)

    @jax.checkpoint
    def body(x, p):
        h = nn.conditional_layer_norm(p["attn_norm"], x, cond)
        x = x + mha(p, h, attention, num_heads)
        h = nn.conditional_layer_norm(p["ffw_norm"], x, cond)
        return x + ffw(p, h), None

    x, _ = jax.lax.scan(body, x, stacked)
    return x


def transformer(params: Params, x, cond, attention: Attention, num_heads: int, remat=False):
    """The whole processor: x [N, D], cond [C] -> [N, D] (after the final cond-LN).

    `num_heads` must be static (it shapes a reshape); the number of blocks is read from
    the parameters. `remat=True` runs the blocks as a scan of rematerialised blocks
    (`_scan_blocks`): same values, far less memory for gradients (training).
    """
    num_layers = sum(1 for key in params if key.startswith("block_"))
    if remat:
        x = _scan_blocks(params, num_layers, x, cond, attention, num_heads)
    else:
        for i in range(num_layers):
            x = block(params[f"block_{i:02d}"], f"block_{i:02d}", x, cond, attention, num_heads)
    return nn.conditional_layer_norm(params["transformer_final_norm_conditioning"], x, cond)
