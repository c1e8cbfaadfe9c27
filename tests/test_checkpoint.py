"""checkpoint: DeepMind's .npz container, exact round trip, strict loading, clear errors."""

import dataclasses
import json
import pathlib

import jax
import numpy as np
import pytest

from minigencast import checkpoint, config, network

PARITY = pathlib.Path(__file__).parent / "parity" / "open" / "params.npz"
MANIFEST = pathlib.Path(__file__).parent / "data" / "gencast_1p0deg_mini_param_manifest.json"


def test_round_trip_reproduces_deepmind_file_exactly(tmp_path):
    ckpt = checkpoint.load(PARITY)
    out = tmp_path / "copy.npz"
    checkpoint.save(out, ckpt.params, ckpt.config, ckpt.description, ckpt.license)
    with np.load(PARITY) as a, np.load(out) as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            assert a[k].dtype == b[k].dtype, k
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    again = checkpoint.load(out)
    assert again.config == ckpt.config
    assert again.description == ckpt.description


def test_loaded_config_values():
    cfg = checkpoint.load(PARITY).config
    assert cfg.denoiser_architecture_config.sparse_transformer_config.attention_k_hop == 3
    assert cfg.task_config.pressure_levels == (500, 850, 1000)
    assert cfg.noise_encoder_config.output_sizes == (16, 8)
    assert cfg.sampler_config.churn_max_noise_level == float("inf")
    assert cfg.denoiser_architecture_config.node_output_size is None


def test_name_mapping_on_the_mini_tree():
    manifest = json.loads(MANIFEST.read_text())["params"]
    modules = {k.split(":")[1] for k in manifest}
    fake = {m: {"w": 0} for m in modules}
    nested = checkpoint.from_haiku(fake)
    assert "~" not in json.dumps(list(nested))
    assert set(checkpoint.to_haiku(nested)) == modules
    assert nested["grid2mesh_gnn"]["encoder_edges_grid2mesh_mlp"]["linear_0"] == {"w": 0}
    assert nested["mesh_transformer"]["transformer"]["block_00"]["block_00_norm_conditioning"][
        "linear"
    ] == {"w": 0}
    assert nested["fourier_features_mlp"]["mlp"]["linear_1"] == {"w": 0}
    with pytest.raises(checkpoint.CheckpointError, match="unexpected module path"):
        checkpoint.from_haiku({"grid2mesh_gnn/encoder_edges_grid2mesh_mlp/linear_0": {"w": 0}})


def _edited(tmp_path, edit):
    with np.load(PARITY) as f:
        flat = {k: f[k] for k in f.files}
    edit(flat)
    path = tmp_path / "edited.npz"
    np.savez(path, **flat)
    return path


W = "params:mesh_transformer/~/transformer/block_01/ffw_up:w"


def test_missing_key_is_named(tmp_path):
    path = _edited(tmp_path, lambda f: f.pop(W))
    with pytest.raises(checkpoint.CheckpointError, match="missing params.*block_01/ffw_up:w"):
        checkpoint.load(path)


def test_extra_key_is_named(tmp_path):
    def edit(f):
        f["params:mesh_transformer/~/transformer/block_07/ffw_up:w"] = f[W]

    with pytest.raises(checkpoint.CheckpointError, match="unexpected params.*block_07/ffw_up"):
        checkpoint.load(_edited(tmp_path, edit))


def test_misshaped_key_is_named(tmp_path):
    def edit(f):
        f[W] = f[W][:, :-1]

    with pytest.raises(checkpoint.CheckpointError, match="shape mismatch.*block_01/ffw_up:w"):
        checkpoint.load(_edited(tmp_path, edit))


def test_unknown_config_key_is_named(tmp_path):
    def edit(f):
        f["sampler_config:bogus"] = np.asarray(1.0)

    with pytest.raises(checkpoint.CheckpointError, match="sampler_config:bogus"):
        checkpoint.load(_edited(tmp_path, edit))


def test_truncated_and_corrupt_files_fail_clearly(tmp_path):
    data = PARITY.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="truncated or corrupt"):
        checkpoint.load(truncated)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all" * 10)
    with pytest.raises(checkpoint.CheckpointError, match="truncated or corrupt"):
        checkpoint.load(garbage)
    corrupted = tmp_path / "corrupted.npz"
    corrupted.write_bytes(data[:5000] + bytes(1000) + data[6000:])
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(corrupted)


def test_save_load_fresh_tiny_parameters(tmp_path):
    cfg = config.tiny()
    params = jax.jit(network.init_denoiser, static_argnums=(1, 2, 3, 4))(
        jax.random.key(0), cfg, *network.channel_counts(cfg)
    )
    checkpoint.save(tmp_path / "tiny.npz", params, cfg, "tiny", "CC-BY-4.0")
    loaded = checkpoint.load(tmp_path / "tiny.npz")
    # The grid is not part of DeepMind's container; everything else round-trips.
    assert loaded.config == dataclasses.replace(cfg, grid=loaded.config.grid)
    for a, b in zip(
        jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(loaded.params), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_noise_truncation_round_trips_and_is_absent_when_unset(tmp_path):
    """NoiseConfig.spherical_truncation is stored only when set (DeepMind's writer omits
    None fields, and its loader reads only the fields it knows, so its files are as before)."""
    cfg = config.tiny()
    params = jax.jit(network.init_denoiser, static_argnums=(1, 2, 3, 4))(
        jax.random.key(0), cfg, *network.channel_counts(cfg)
    )
    checkpoint.save(tmp_path / "default.npz", params, cfg)
    with np.load(tmp_path / "default.npz") as f:
        assert not any("spherical_truncation" in k for k in f.files)
    truncated = dataclasses.replace(
        cfg, noise_config=dataclasses.replace(cfg.noise_config, spherical_truncation=5)
    )
    checkpoint.save(tmp_path / "t5.npz", params, truncated)
    with np.load(tmp_path / "t5.npz") as f:
        assert int(f["noise_config:spherical_truncation"]) == 5
    assert checkpoint.load(tmp_path / "t5.npz").config.noise_config.spherical_truncation == 5
