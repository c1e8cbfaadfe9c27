"""Tests for minigencast.noise_encoder: Fourier features of ln(sigma) and the MLP."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import test_preconditioning

from minigencast import config, noise_encoder


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, [0.5, 0.0]])
def test_nonpositive_sigma_raises(bad):
    enc_cfg = config.NoiseEncoderConfig(num_frequencies=4, output_sizes=(8, 4))
    enc_params = noise_encoder.init_noise_encoder(jax.random.key(0), enc_cfg)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        noise_encoder.noise_encoder(enc_params, enc_cfg, jnp.asarray(bad))


def test_positive_sigma_check_is_silent_under_jit():
    enc_cfg = config.NoiseEncoderConfig(num_frequencies=4, output_sizes=(8, 4))
    enc_params = noise_encoder.init_noise_encoder(jax.random.key(0), enc_cfg)
    out = jax.jit(lambda s: noise_encoder.noise_encoder(enc_params, enc_cfg, s))(2.0)
    assert out.shape == (4,) and np.all(np.isfinite(out))


def test_fourier_features_cos_block_then_sin_block():
    v = jnp.array([0.0, np.log(3.0)])
    feats = noise_encoder.fourier_features(v, base_period=16.0, num_frequencies=32)
    assert feats.shape == (2, 64)
    k = np.arange(1, 33)
    np.testing.assert_allclose(feats[1, :32], np.cos(2 * np.pi * k / 16 * np.log(3.0)), atol=1e-5)
    np.testing.assert_allclose(feats[1, 32:], np.sin(2 * np.pi * k / 16 * np.log(3.0)), atol=1e-5)
    np.testing.assert_allclose(feats[0], np.r_[np.ones(32), np.zeros(32)], atol=1e-7)


def test_init_noise_encoder_shapes_names_and_variance():
    cfg = config.NoiseEncoderConfig()  # GenCast: 64 -> 32 -> 16
    params = noise_encoder.init_noise_encoder(jax.random.key(0), cfg)
    assert set(params) == {"mlp"} and set(params["mlp"]) == {"linear_0", "linear_1"}
    assert params["mlp"]["linear_0"]["w"].shape == (64, 32)
    assert params["mlp"]["linear_0"]["b"].shape == (32,)
    assert params["mlp"]["linear_1"]["w"].shape == (32, 16)
    assert params["mlp"]["linear_1"]["b"].shape == (16,)
    # Variance scaling 2.0, fan-in, uniform: |w| <= sqrt(6 / fan_in), Var = 2 / fan_in.
    w = np.asarray(params["mlp"]["linear_0"]["w"])
    assert np.abs(w).max() <= np.sqrt(6 / 64)
    assert np.abs(w).max() > 0.9 * np.sqrt(6 / 64)
    np.testing.assert_allclose(w.var(), 2 / 64, rtol=0.15)  # 2048 draws: ~3% std error
    assert np.all(np.asarray(params["mlp"]["linear_0"]["b"]) == 0)
    enc = noise_encoder.noise_encoder(params, cfg, jnp.array([0.03, 1.0, 80.0]))
    assert enc.shape == (3, 16)


@pytest.mark.parity
def test_noise_encoder_matches_deepmind_reference():
    d = test_preconditioning._parity_dir()
    ref = np.load(d / "intermediates.npz")
    ckpt = np.load(d / "params.npz")
    prefix = "params:fourier_features_mlp/~/mlp/~/"
    n_layers = len({k for k in ckpt if k.startswith(prefix)}) // 2
    params = {
        "mlp": {
            f"linear_{i}": {p: ckpt[f"{prefix}linear_{i}:{p}"] for p in ("w", "b")}
            for i in range(n_layers)
        }
    }
    cfg = config.NoiseEncoderConfig(
        apply_log_first=bool(ckpt["noise_encoder_config:apply_log_first"]),
        base_period=float(ckpt["noise_encoder_config:base_period"]),
        num_frequencies=int(ckpt["noise_encoder_config:num_frequencies"]),
        output_sizes=tuple(
            int(ckpt[f"noise_encoder_config:output_sizes:{i}"]) for i in range(n_layers)
        ),
    )
    sigma = ref["sigma"]  # includes 90, the first (churned) sampler evaluation
    expected = ref["noise_level_encodings"]  # [S, B, C]
    ours = noise_encoder.noise_encoder(params, cfg, sigma)  # [S, C]
    assert ours.shape == (expected.shape[0], expected.shape[2])
    for b in range(expected.shape[1]):
        np.testing.assert_allclose(ours, expected[:, b], atol=5e-6, rtol=0)
    jitted = jax.jit(lambda s: noise_encoder.noise_encoder(params, cfg, s))(sigma)
    np.testing.assert_allclose(jitted, expected[:, 0], atol=5e-6, rtol=0)
