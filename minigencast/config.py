"""Configuration dataclasses and presets.

Class and field names are DeepMind's (graphcast/gencast.py, denoiser.py,
sparse_transformer.py at commit d39de19), so a checkpoint's stored config maps
onto these classes field by field (see `checkpoint.py`). All configs are frozen;
make variants with `dataclasses.replace`. Derived sizes (channel counts, key size,
...) are functions of a config, never stored in it.

Presets are functions returning a `GenCastConfig`:

  tiny()                  seconds on a CPU; tests and CI
  cpu()                   the embedded toy-planet dataset (5.625 deg), trains on a laptop
  gencast_1p0deg_mini()   DeepMind's "GenCast 1p0deg Mini <2019" (57,492,612 weights)
  gencast_1p0deg()        DeepMind's "GenCast 1p0deg <2019"
  gencast_0p25deg()       DeepMind's "GenCast 0p25deg <2019" / Operational

References:
  [1] Price et al. 2025, "Probabilistic weather forecasting with machine learning",
      Nature 637, 84-90 (arXiv:2312.15796).
  [2] Karras et al. 2022, "Elucidating the design space of diffusion-based generative
      models" (EDM), arXiv:2206.00364.
"""

from __future__ import annotations

import dataclasses
import math

from minigencast import variables


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """What the model reads and predicts (DeepMind's `graphcast.TaskConfig`).

    Attributes:
      input_variables: names of the variables stacked as inputs (incl. forcings at
        the input times and static fields).
      target_variables: names of the predicted variables.
      forcing_variables: names of the variables known at the target time.
      pressure_levels: hPa, in the order they are stacked (ascending as DeepMind's).
      input_duration: "24h" selects the two input frames t-12h and t.
    """

    input_variables: tuple[str, ...]
    target_variables: tuple[str, ...]
    forcing_variables: tuple[str, ...]
    pressure_levels: tuple[int, ...]
    input_duration: str = "24h"


def _task(surface_inputs, surface_targets, atmospheric, levels) -> TaskConfig:
    return TaskConfig(
        input_variables=tuple(surface_inputs)
        + tuple(atmospheric)
        + variables.FORCING_VARIABLES
        + variables.STATIC_VARIABLES,
        target_variables=tuple(surface_targets) + tuple(atmospheric),
        forcing_variables=variables.FORCING_VARIABLES,
        pressure_levels=tuple(levels),
        input_duration="24h",
    )


def gencast_task(levels=variables.PRESSURE_LEVELS_WEATHERBENCH_13) -> TaskConfig:
    """GenCast's task, exactly as DeepMind's `gencast.TASK` (84 target channels, 13 levels)."""
    return _task(
        variables.SURFACE_INPUT_VARIABLES,
        variables.SURFACE_TARGET_VARIABLES,
        variables.ATMOSPHERIC_VARIABLES,
        levels,
    )


def toy_planet_task(levels=variables.TOY_PLANET_LEVELS) -> TaskConfig:
    """The embedded toy planet's dry task: no humidity, vertical velocity, precipitation, SST."""
    return _task(
        variables.TOY_PLANET_SURFACE_VARIABLES,
        variables.TOY_PLANET_SURFACE_VARIABLES,
        variables.TOY_PLANET_ATMOSPHERIC_VARIABLES,
        levels,
    )


GENCAST_TASK = gencast_task()
TOY_PLANET_TASK = toy_planet_task()


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    """DPM-Solver++(2S) with stochastic churn (docs/design.md §5; [2] Alg. 2).

    Noise levels sigma_i = (max^(1/rho) + i/(N-1) (min^(1/rho) - max^(1/rho)))^rho,
    i = 0..N-1, then 0. Churn gamma_i = min(stochastic_churn_rate / N, sqrt(2) - 1)
    where churn_min_noise_level <= sigma_i <= churn_max_noise_level, else 0; the added
    noise is inflated by noise_level_inflation_factor (EDM's S_noise).
    """

    max_noise_level: float = 80.0
    min_noise_level: float = 0.03
    num_noise_levels: int = 20
    rho: float = 7.0
    stochastic_churn_rate: float = 2.5
    churn_min_noise_level: float = 0.75
    churn_max_noise_level: float = math.inf
    noise_level_inflation_factor: float = 1.05


@dataclasses.dataclass(frozen=True)
class NoiseConfig:
    """Training noise-level distribution (docs/design.md §3.3), and the noise's band limit.

    sigma = (min^(1/rho) + u (max^(1/rho) - min^(1/rho)))^rho, u ~ U[0, 1).

    spherical_truncation: triangular truncation T of every noise field, in training and
    in the sampler alike: total wavenumbers l <= T (`noise.spherical_noise`). None is
    GenCast's l < n_lon / 2, i.e. every wavenumber the grid holds. Data that are
    themselves band-limited (the toy planet is T21, its `spectral_truncation`
    attribute) want noise no wider than the data, else the noise puts power where the
    data have none. Not one of DeepMind's fields: stored in the checkpoint only when
    set, and ignored by DeepMind's loader (it reads the fields it knows).
    """

    training_noise_level_rho: float = 7.0
    training_max_noise_level: float = 88.0
    training_min_noise_level: float = 0.02
    spherical_truncation: int | None = None


@dataclasses.dataclass(frozen=True)
class NoiseEncoderConfig:
    """Fourier features of ln(sigma) followed by an MLP (docs/design.md §3.2)."""

    apply_log_first: bool = True
    base_period: float = 16.0
    num_frequencies: int = 32
    output_sizes: tuple[int, ...] = (32, 16)


@dataclasses.dataclass(frozen=True)
class SparseTransformerConfig:
    """The mesh transformer (docs/design.md §6.1, §6.7, §7).

    attention_type is DeepMind's stored field: "splash_mha" (TPU kernel; here it
    selects our memory-efficient path), "triblockdiag_mha" or "mha" (dense). All
    compute the same function and share the same parameters. The block_* fields
    only tile DeepMind's TPU kernel; they are kept so checkpoints round-trip.
    """

    attention_k_hop: int
    d_model: int
    num_layers: int = 16
    num_heads: int = 4
    attention_type: str = "splash_mha"
    mask_type: str = "lazy"
    block_q: int = 1024
    block_kv: int = 512
    block_kv_compute: int = 256
    block_q_dkv: int = 512
    block_kv_dkv: int = 1024
    block_kv_dkv_compute: int = 1024
    ffw_winit_final_mult: float = 0.0
    attn_winit_final_mult: float = 0.0
    ffw_hidden: int = 2048
    name: str | None = None


@dataclasses.dataclass(frozen=True)
class DenoiserArchitectureConfig:
    """Encoder-processor-decoder sizes (docs/design.md §6.1)."""

    sparse_transformer_config: SparseTransformerConfig
    mesh_size: int
    latent_size: int = 512
    hidden_layers: int = 1
    radius_query_fraction_edge_length: float = 0.6
    norm_conditioning_features: tuple[str, ...] = ("noise_level_encodings",)
    grid2mesh_aggregate_normalization: float | None = None
    node_output_size: int | None = None


@dataclasses.dataclass(frozen=True)
class GenCastConfig:
    """Everything a GenCast checkpoint stores, plus the grid a preset is meant for.

    The first five fields are the configs of DeepMind's `gencast.CheckPoint`.
    `grid` is (n_lat, n_lon) of an equiangular grid including both poles; the data
    decide the grid at run time, this is only the preset's default.
    """

    task_config: TaskConfig
    denoiser_architecture_config: DenoiserArchitectureConfig
    sampler_config: SamplerConfig = SamplerConfig()
    noise_config: NoiseConfig = NoiseConfig()
    noise_encoder_config: NoiseEncoderConfig = NoiseEncoderConfig()
    grid: tuple[int, int] = (181, 360)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimiser, schedule and loop of `train.train` (not part of DeepMind's checkpoints).

    Learning rate: linear warm-up 0 -> peak_learning_rate over warmup_steps, then
    cosine decay to peak_learning_rate * final_learning_rate_fraction at num_steps
    (GenCast: 1k warm-up steps then cosine decay, docs/design.md §3.4). AdamW after
    clipping the global gradient norm to max_grad_norm. ema_decay > 0 keeps an
    exponential moving average of the weights, used for evaluation and saved as
    the model part of checkpoints. random_longitude_roll turns every training window
    about the polar axis by a random number of grid columns (`arrays.roll_longitude`):
    data augmentation for a small dataset (GenCast does not use it). streaming reads
    each batch from the dataset (lazily opened, e.g. from disk) instead of holding it
    all in memory, with the same windows in the same order (docs/scaling.md).
    skip_nan_windows leaves out (and logs) windows holding NaN outside SST, after a
    scan of the data; without it such a window stops training with an error.
    per_variable_weights: (name, w_v) pairs that replace the loss's per-variable weight
    w_v (`losses.variable_weight`: GenCast's 1.0, 0.1 for the five surface extras) for
    the target variables they name; () is GenCast's loss.
    """

    batch_size: int = 8
    num_steps: int = 2000
    peak_learning_rate: float = 1e-3
    warmup_steps: int = 100
    final_learning_rate_fraction: float = 0.01
    weight_decay: float = 0.1
    adam_b1: float = 0.9
    adam_b2: float = 0.95
    max_grad_norm: float = 1.0
    ema_decay: float = 0.0
    remat: bool = False
    seed: int = 0
    validation_fraction: float = 0.15
    eval_every: int = 250
    checkpoint_every: int = 250
    keep_checkpoints: int = 3
    prefetch: int = 2
    random_longitude_roll: bool = False
    streaming: bool = True
    skip_nan_windows: bool = False
    per_variable_weights: tuple[tuple[str, float], ...] = ()


# --------------------------------------------------------------------------
# Presets.


def _architecture(
    mesh_size, k_hop, width, layers, heads, ffw, attention_type="splash_mha"
) -> DenoiserArchitectureConfig:
    return DenoiserArchitectureConfig(
        sparse_transformer_config=SparseTransformerConfig(
            attention_k_hop=k_hop,
            d_model=width,
            num_layers=layers,
            num_heads=heads,
            ffw_hidden=ffw,
            attention_type=attention_type,
        ),
        mesh_size=mesh_size,
        latent_size=width,
    )


def tiny() -> GenCastConfig:
    """A few thousand weights on a 15 deg grid: for tests and CI (seconds)."""
    return GenCastConfig(
        task_config=TOY_PLANET_TASK,
        denoiser_architecture_config=_architecture(
            mesh_size=1, k_hop=2, width=16, layers=2, heads=2, ffw=32, attention_type="mha"
        ),
        noise_encoder_config=NoiseEncoderConfig(num_frequencies=8, output_sizes=(16, 8)),
        grid=(13, 24),
    )


def cpu() -> GenCastConfig:
    """The embedded toy-planet dataset (5.625 deg, 33x64 with poles) on a laptop CPU.

    Sized so that training to skill takes under an hour on 2 cores and the quickstart's
    ensemble forecast a minute or two: mesh splits 2 (162 nodes, ~15 deg, i.e. 2.7x the
    grid spacing, as GenCast Mini's 4x), k = 2 hops (~30 deg attention radius, like
    0p25deg's 32 hops of ~1 deg), width 96, 4 layers. The sampler keeps GenCast's 20
    noise levels; its churn noise is inflated by 1.4 instead of GenCast's 1.05, because
    with 1.05 this small model's ensembles are under-dispersive (1.3 before the spectral
    filter, which removes spread-carrying small-scale noise). How each of these was
    chosen, with the measurements: data/pretrained/README.md.
    """
    return GenCastConfig(
        task_config=TOY_PLANET_TASK,
        denoiser_architecture_config=_architecture(
            mesh_size=2, k_hop=2, width=96, layers=4, heads=4, ffw=192, attention_type="mha"
        ),
        sampler_config=SamplerConfig(noise_level_inflation_factor=1.4),
        noise_encoder_config=NoiseEncoderConfig(num_frequencies=16, output_sizes=(32, 16)),
        grid=(33, 64),
    )


# WeatherBench-2's IFS ENS stores hold these pressure levels only (WB2 data guide).
IFS_ENS_LEVELS = (500, 700, 850)


def wb2_tiny() -> GenCastConfig:
    """`tiny`'s network with GenCast's full variable set at IFS ENS's levels: for tests
    of the real-ERA5 recipe (docs/real-data.md) on small WeatherBench-2-schema stores."""
    base = tiny()
    return dataclasses.replace(base, task_config=gencast_task(IFS_ENS_LEVELS))


def wb2_cpu() -> GenCastConfig:
    """`cpu`'s network with GenCast's full variable set at IFS ENS's levels (500, 700,
    850 hPa) and GenCast's sampler settings, so forecasts verify against WeatherBench-2's
    IFS ENS at every level:
    the real-ERA5 recipe at 64x32 or 240x121 (docs/real-data.md). The grid comes from
    the data; `grid` is WeatherBench-2's 240x121 (1.5 deg with poles)."""
    return dataclasses.replace(
        cpu(),
        task_config=gencast_task(IFS_ENS_LEVELS),
        sampler_config=SamplerConfig(),  # GenCast's churn; cpu's 1.4 is tuned to the toy planet
        grid=(121, 240),
    )


def cpu_training() -> TrainConfig:
    """The training recipe of data/pretrained/ and of `quickstart` without --pretrained:
    `cpu()` on the embedded toy planet, under an hour on 2 cores. How each value was
    chosen: data/pretrained/README.md. Temperature weighs 1.5 in the loss (GenCast's
    w_v = 1, `losses.variable_weight`): it sharpened t850 at 1 day by 2-5 % on every span
    measured, and was shipped on 2026-12-06 by a rule decided on a year nobody had read
    (docs/goals.md, "Temperature weighed 1.5, shipped")."""
    return TrainConfig(
        batch_size=4,
        num_steps=12000,
        peak_learning_rate=2e-3,
        warmup_steps=50,
        weight_decay=0.1,
        ema_decay=0.99,
        validation_fraction=0.05,
        eval_every=3000,
        checkpoint_every=500,
        random_longitude_roll=True,
        per_variable_weights=(("temperature", 1.5),),
    )


def _deepmind(mesh_size: int, attention_k_hop: int, grid: tuple[int, int]) -> GenCastConfig:
    """The released GenCast models share widths: 512 latent, 16 blocks, 4 heads, 2048 FFN."""
    return GenCastConfig(
        task_config=GENCAST_TASK,
        denoiser_architecture_config=_architecture(
            mesh_size=mesh_size, k_hop=attention_k_hop, width=512, layers=16, heads=4, ffw=2048
        ),
        grid=grid,
    )


def gencast_1p0deg_mini() -> GenCastConfig:
    """DeepMind's "GenCast 1p0deg Mini <2019": splits 4, k 16 (docs/design.md §6.9)."""
    return _deepmind(mesh_size=4, attention_k_hop=16, grid=(181, 360))


def gencast_1p0deg() -> GenCastConfig:
    """DeepMind's "GenCast 1p0deg <2019": splits 5; k 16 is not confirmed (docs/design.md §6.9)."""
    return _deepmind(mesh_size=5, attention_k_hop=16, grid=(181, 360))


def gencast_0p25deg() -> GenCastConfig:
    """DeepMind's "GenCast 0p25deg <2019" (and Operational): splits 6, k 32 ([1])."""
    return _deepmind(mesh_size=6, attention_k_hop=32, grid=(721, 1440))


PRESETS = {
    "tiny": tiny,
    "cpu": cpu,
    "wb2_tiny": wb2_tiny,
    "wb2_cpu": wb2_cpu,
    "gencast_1p0deg_mini": gencast_1p0deg_mini,
    "gencast_1p0deg": gencast_1p0deg,
    "gencast_0p25deg": gencast_0p25deg,
}


def preset(name: str) -> GenCastConfig:
    """Returns the preset called `name` (one of `PRESETS`)."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.") from None
