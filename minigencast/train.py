"""Training GenCast: optimiser, data-parallel train step, and the resumable loop.

  loss (losses.py) -> gradients -> clip global norm -> AdamW (warm-up + cosine)
                   -> optional EMA of the weights (evaluation weights)

Data parallelism uses `jax.sharding`: one mesh axis "batch" over all devices (of
all processes, see multihost.py); the batch is sharded along it, parameters and
optimiser state are replicated, and XLA inserts the gradient all-reduce. On one
device the very same code runs (a mesh of one). Each process reads only its rows of
every global batch, from memory or streamed from disk (docs/scaling.md). Each example
draws its noise level and noise from `split(fold_in(key, step), batch_size)[i]`,
which depends neither on the number of devices (or processes) nor on whether the run
was resumed, so N steps in one go, N/2 + kill + resume, and 1 vs 4 devices give the
same weights (bitwise on CPU for the first two).

The train state is a plain dict pytree:
  {"params": nested dict, "opt_state": optax state, "ema_params": dict or None,
   "step": int32 scalar}

References:
  [1] Price et al. 2025 (GenCast), Nature 637; training schedule in arXiv:2312.15796
      Table D1 (1k warm-up steps then cosine decay; batch 32).
  [2] Loshchilov & Hutter 2019, "Decoupled weight decay regularization" (AdamW).
"""

from __future__ import annotations

import csv
import functools
import json
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm
import xarray
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from minigencast import (
    arrays,
    channel_order,
    forecast,
    geometry,
    loader,
    losses,
    metrics,
    multihost,
    network,
    noise,
    preconditioning,
    training_state,
)
from minigencast import config as config_lib

BATCH_AXIS = "batch"


# ----------------------------------------------------------------------------- optimiser
def learning_rate_schedule(tc: config_lib.TrainConfig) -> optax.Schedule:
    """lr(step): linear 0 -> peak over warmup_steps, then cosine to peak * final fraction.

    lr(s) = peak * s / W                                          for s < W
    lr(s) = end + (peak - end) * (1 + cos(pi * (s - W) / (N - W))) / 2   for W <= s <= N
    """
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=tc.peak_learning_rate,
        warmup_steps=tc.warmup_steps,
        decay_steps=max(tc.num_steps, tc.warmup_steps + 1),
        end_value=tc.peak_learning_rate * tc.final_learning_rate_fraction,
    )


def decay_mask(params):
    """True for the weights that weight decay shrinks: matrices, not biases (ndim >= 2)."""
    return jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)


def make_optimizer(tc: config_lib.TrainConfig) -> optax.GradientTransformation:
    """clip_by_global_norm(max_grad_norm) then AdamW with `learning_rate_schedule`.

    Decoupled weight decay w <- w - lr * weight_decay * w applies to weight matrices
    only (`decay_mask`), not to biases, as in nanoGPT.
    """
    return optax.chain(
        optax.clip_by_global_norm(tc.max_grad_norm),
        optax.adamw(
            learning_rate_schedule(tc),
            b1=tc.adam_b1,
            b2=tc.adam_b2,
            weight_decay=tc.weight_decay,
            mask=decay_mask,
        ),
    )


def init_train_state(params, tc: config_lib.TrainConfig) -> dict:
    """The train state at step 0 (EMA weights start equal to the weights)."""
    # Copies: the train step donates its state, which must not delete the caller's arrays.
    params = jax.tree_util.tree_map(jnp.array, params)
    return {
        "params": params,
        "opt_state": make_optimizer(tc).init(params),
        "ema_params": (jax.tree_util.tree_map(jnp.array, params) if tc.ema_decay > 0 else None),
        "step": jnp.zeros((), jnp.int32),
    }


def ema_update(ema, params, decay: float, step):
    """ema <- d ema + (1 - d) params with d = min(decay, (1 + step) / (10 + step)).

    The step-dependent cap (as in TensorFlow's ExponentialMovingAverage with
    num_updates) stops the first weights from dominating a short run's average.
    """
    d = jnp.minimum(decay, (1.0 + step) / (10.0 + step)).astype(jnp.float32)
    return jax.tree_util.tree_map(lambda e, p: d * e + (1.0 - d) * p, ema, params)


def evaluation_params(state: dict):
    """The weights to evaluate and save as the model: the EMA when enabled."""
    return state["ema_params"] if state.get("ema_params") is not None else state["params"]


# ----------------------------------------------------------------------------- sharding
def data_mesh(devices=None) -> Mesh:
    """A one-axis mesh ("batch") over `devices` (default: all local devices)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (BATCH_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dim split over the mesh; other dims whole."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def shard_batch(batch, mesh: Mesh, size: int | None = None):
    """Places a host batch on the mesh, sharded along its leading dim.

    With one process `batch` is the whole batch (leading dim divisible by the device
    count); with several it is this process's `process_rows(mesh, size)` of a global
    batch of `size`.
    """
    n = mesh.devices.size
    size = jax.tree_util.tree_leaves(batch)[0].shape[0] if size is None else size
    if size % n:
        raise ValueError(f"batch size {size} is not divisible by {n} devices")
    return multihost.global_batch(batch, batch_sharding(mesh), size)


def process_rows(mesh: Mesh, size: int) -> slice:
    """The rows of a global batch of `size` that this process reads."""
    return multihost.process_rows(batch_sharding(mesh), size)


def replicate(tree, mesh: Mesh):
    return jax.device_put(tree, replicated(mesh))


# ----------------------------------------------------------------------------- step
ExampleLoss = Callable  # example_loss(params, structure, example, key) -> scalar


def example_keys(key, step, batch_size: int):
    """Per-example keys [batch]: split(fold_in(key, step), batch_size)."""
    return jax.random.split(jax.random.fold_in(key, step), batch_size)


def example_losses(example_loss: ExampleLoss, params, structure, batch, keys):
    """`example_loss` of each example (vmapped): [batch]; batch leaves are [batch, ...]."""
    return jax.vmap(example_loss, in_axes=(None, None, 0, 0))(params, structure, batch, keys)


def batch_loss(example_loss: ExampleLoss, params, structure, batch, keys):
    """Mean over the batch of `example_loss`."""
    return jnp.mean(example_losses(example_loss, params, structure, batch, keys))


def make_train_step(example_loss: ExampleLoss, tc: config_lib.TrainConfig, mesh: Mesh):
    """Returns the jitted `train_step(state, structure, batch, key) -> (state, metrics)`.

    Shardings: `state` and `structure` replicated, `batch` sharded on its leading dim;
    the returned state is replicated. metrics = {"loss", "grad_norm", "learning_rate"}.
    `state` is donated (updated in place).
    """
    optimizer = make_optimizer(tc)
    schedule = learning_rate_schedule(tc)
    loss_fn = jax.checkpoint(example_loss) if tc.remat else example_loss

    def step_fn(state, structure, batch, key):
        batch_size = jax.tree_util.tree_leaves(batch)[0].shape[0]
        keys = example_keys(key, state["step"], batch_size)
        loss, grads = jax.value_and_grad(functools.partial(batch_loss, loss_fn), argnums=0)(
            state["params"], structure, batch, keys
        )
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        ema = state.get("ema_params")
        if ema is not None:
            ema = ema_update(ema, params, tc.ema_decay, state["step"])
        new_state = {
            "params": params,
            "opt_state": opt_state,
            "ema_params": ema,
            "step": state["step"] + 1,
        }
        metrics = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "learning_rate": schedule(state["step"]),
        }
        return new_state, metrics

    rep, data = replicated(mesh), batch_sharding(mesh)
    return jax.jit(
        step_fn,
        in_shardings=(rep, rep, data, rep),
        out_shardings=(rep, rep),
        donate_argnums=(0,),
    )


def make_eval_loss(example_loss: ExampleLoss, mesh: Mesh):
    """Jitted `eval_loss(params, structure, batch, keys) -> losses [batch]` (validation)."""
    rep, data = replicated(mesh), batch_sharding(mesh)
    return jax.jit(
        functools.partial(example_losses, example_loss),
        in_shardings=(rep, rep, data, rep),
        out_shardings=rep,
    )


# ----------------------------------------------------------------------------- GenCast loss
def make_example_loss(cfg, lat, per_variable_weights=()):
    """GenCast's loss for one example (docs/design.md §3.3-3.4), for `make_train_step`.

    example_loss(params, (structure, noise_fn), example, key) with example = {"inputs"
    [lat, lon, C_in], "forcings" [lat, lon, C_f], "targets" [lat, lon, C_t]}
    (arrays.make_fetch). The graphs and the noise basis (`noise_function`, 1.5 GB at
    0.25 deg) both enter as arguments: data of the compiled step, not constants.

      sigma ~ training distribution (preconditioning.sample_noise_levels)
      x     = y + sigma * eps,  eps spherical white noise per channel (noise_fn)
      loss  = lambda(sigma) sum_c w_c mean_latlon(w_lat (D(x; sigma) - y)^2)   (losses.py)

    per_variable_weights (`TrainConfig.per_variable_weights`) replace GenCast's w_v for
    the variables they name.
    """
    lat_weights = geometry.latitude_weights(lat).astype(np.float32)
    chan_weights = losses.task_channel_weights(cfg.task_config, per_variable_weights)
    chan_weights = chan_weights.astype(np.float32)

    def example_loss(params, statics, example, key):
        structure, noise_fn = statics
        k_sigma, k_noise = jax.random.split(key)
        sigma = preconditioning.sample_noise_levels(k_sigma, cfg.noise_config)
        y = example["targets"]
        x = y + sigma * noise_fn(k_noise, y)

        def raw_fn(scaled_noisy_targets, s):
            return network.raw_denoiser(
                params,
                structure,
                cfg,
                example["inputs"],
                example["forcings"],
                scaled_noisy_targets,
                s,
            )

        denoised = preconditioning.denoise(raw_fn, x, sigma)
        return losses.weighted_loss(denoised, y, sigma, lat_weights, chan_weights)

    return example_loss


# ----------------------------------------------------------------------------- the loop
LOG_FIELDS = (
    "step",
    "loss",
    "grad_norm",
    "learning_rate",
    "wall_s",
    "examples_per_s",
    "val_loss",
    "val_crps",
)


def headline_channels(task) -> list[tuple[int, str]]:
    """[(target channel index, short name)] logged during training: z500 and t850."""
    out = []
    for i, c in enumerate(channel_order.target_channels(task)):
        if (c.variable, c.level) in (("geopotential", 500), ("temperature", 850)):
            out.append((i, f"{'z' if c.variable == 'geopotential' else 't'}{c.level}"))
    return out or [(0, channel_order.target_channels(task)[0].variable)]


def validation_crps(
    params, structure, cfg, data, val_windows, noise_fn, num_members=4, num_inits=4, seed=0
):
    """Fair CRPS of 12 h forecasts at `num_inits` held-out windows: {name: value}.

    `metrics.crps`: latitude-weighted, physical units, averaged over inits; channels from
    `headline_channels`. A cheap on-line check that the sampler's ensembles are skilful.
    """
    picks = val_windows[np.linspace(0, len(val_windows) - 1, num_inits).astype(int)]
    ((_, out),) = forecast.rollout(
        params,
        structure,
        cfg,
        data.layout,
        data.static,
        data.raw_frames[picks[:, :2]],
        data.forcings[picks],
        1,
        num_members,
        noise_fn,
        seed=seed,
        chunk_steps=1,
    )  # out: [I, S, 1, lat, lon, C_t]
    truth = data.raw_frames[picks[:, 2]]  # [I, lat, lon, C_t]
    dims, lat = ("init", "lat", "lon"), {"lat": np.asarray(data.lat)}
    scores = {}
    for i, name in headline_channels(cfg.task_config):
        ens = xarray.DataArray(out[:, :, 0, ..., i], dims=("init", "sample", "lat", "lon"))
        y = xarray.DataArray(truth[..., i], dims=dims)
        scores[name] = float(metrics.crps(ens.assign_coords(lat), y.assign_coords(lat)))
    return scores


def validation_loss(eval_loss, params, structure, val_windows, fetch, batch_size, mesh, seed=0):
    """Mean GenCast loss over all validation windows; window i draws its noise level and
    noise from fold_in(key(seed + 1), i), so the value is the same for any batch size or
    device count (comparable across runs as well as over time). The last batch is padded
    by repeating its final window and the padding's losses are dropped."""
    n = len(val_windows)
    if n == 0:
        return float("nan")
    val_windows, base = np.asarray(val_windows), jax.random.key(seed + 1)
    losses, rows = [], process_rows(mesh, batch_size)
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        padded = np.concatenate([idx, np.full(batch_size - idx.size, idx[-1])])
        batch = shard_batch(fetch(val_windows[padded][rows]), mesh, batch_size)
        keys = jax.vmap(functools.partial(jax.random.fold_in, base))(padded)
        losses.append(np.asarray(eval_loss(params, structure, batch, keys))[: idx.size])
    return float(np.mean(np.concatenate(losses)))


def _append_log(run_dir, row):
    path = os.path.join(run_dir, "log.csv")
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
    with open(os.path.join(run_dir, "log.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")


def plot_loss_curve(run_dir) -> str | None:
    """Draws loss (and validation loss) against step from log.csv into loss_curve.png.

    Uses a bare `Figure` (no pyplot), so it neither needs a display nor changes the
    caller's matplotlib backend (e.g. inside Jupyter).
    """
    from matplotlib.figure import Figure

    path = os.path.join(run_dir, "log.csv")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    step = [int(r["step"]) for r in rows]
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.semilogy(step, [float(r["loss"]) for r in rows], lw=0.8, label="train loss")
    val = [(int(r["step"]), float(r["val_loss"])) for r in rows if r.get("val_loss")]
    if val:
        ax.semilogy(*zip(*val, strict=True), "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("GenCast loss")
    ax.legend()
    out = os.path.join(run_dir, "loss_curve.png")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return out


@training_state.exclusive_run_dir
def train(
    dataset,
    stats,
    cfg,
    tc,
    run_dir,
    *,
    init_params=None,
    progress=True,
    callback=None,
    eval_members=4,
    eval_inits=4,
    devices=None,
    force=False,
):
    """Trains (or resumes training of) a GenCast denoiser; returns the final state dict.

    With several processes (`multihost.initialize`) every process calls this with the
    same arguments; each reads only its rows of every batch, and process 0 alone writes
    into `run_dir` (a folder all processes see). A checkpoint resumes with any number
    of processes and devices.

    Args:
      dataset: canonical xarray Dataset (time, [level,] lat, lon) with the task's
        variables (progress forcings are added if absent); opened lazily from disk,
        it is read a batch at a time when `tc.streaming`.
      stats: {"mean", "stddev", "diffs_stddev", "min"} Datasets (`arrays.read_stats`).
      cfg: GenCastConfig; tc: TrainConfig.
      run_dir: output folder: checkpoints/, stats/, log.csv, log.jsonl, loss_curve.png.
        If it holds a checkpoint, training resumes from the newest one (the run then
        reproduces an uninterrupted run exactly).
      init_params: start from these weights (fine-tuning) instead of a random init.
      callback: callback(step, state, metrics) after every step (e.g. early stop).
      eval_members, eval_inits: size of the on-line validation CRPS (0 disables).
      devices: devices for data parallelism (default: all).
      force: resume even if `tc` differs from the checkpoint's settings (recorded in
        log.jsonl); otherwise that is refused (`training_state.check_resume`). One
        training at a time per run_dir (`training_state.exclusive_run_dir`).

    Returns:
      {"state", "history" (list of log rows), "checkpoint" (path of the last one)}.
    """
    main = multihost.is_main()
    os.makedirs(run_dir, exist_ok=True)
    data = arrays.prepare(dataset, cfg.task_config, stats, streaming=tc.streaming)
    grid = {"lat": data.lat, "lon": data.lon}
    example_loss = make_example_loss(cfg, data.lat, tc.per_variable_weights)  # checks names
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    last = training_state.latest(ckpt_dir)
    if last is not None:  # Refuse a run dir of another config/grid before any heavy work.
        training_state.check_compatible(last, cfg, grid)
        training_state.check_resume(last, tc, run_dir, force=force)
    if main:
        arrays.write_stats(stats, os.path.join(run_dir, "stats"))
    train_windows, val_windows = loader.split_by_time(data.times, tc.validation_fraction)
    if tc.skip_nan_windows:
        train_windows, val_windows = drop_nan_windows(
            data, train_windows, val_windows, run_dir if main else None, progress and main
        )
    if len(train_windows) == 0:
        raise ValueError("no training windows: the dataset needs 3 consecutive 12-hourly times")
    mesh = data_mesh(devices)
    if tc.batch_size % mesh.devices.size:
        raise ValueError(
            f"batch_size {tc.batch_size} must be divisible by the {mesh.devices.size} devices"
        )
    noise_fn = noise.noise_function(data.lat, data.lon, cfg.noise_config.spherical_truncation)
    statics = replicate((network.build_structure(cfg, data.lat, data.lon), noise_fn), mesh)
    structure = statics[0]
    fetch = arrays.make_fetch(data.frames, data.forcings, data.static, data.layout, data.times)

    base_key = jax.random.key(tc.seed)
    if init_params is None:
        init_params = network.init_denoiser(
            jax.random.fold_in(base_key, 1 << 30), cfg, *network.channel_counts(cfg)
        )
    state = init_train_state(init_params, tc)
    position = None
    if last is not None:
        restored = training_state.restore(last, state, cfg, grid)
        state, position = restored["state"], restored["loader_position"]
        base_key = restored["rng_key"]
    state = replicate(state, mesh)
    start = int(state["step"])

    step_fn = make_train_step(example_loss, tc, mesh)
    eval_loss = make_eval_loss(example_loss, mesh)
    batches = loader.WindowLoader(
        train_windows,
        fetch,
        tc.batch_size,
        seed=tc.seed,
        prefetch=tc.prefetch,
        position=position,
        augment=arrays.roll_longitude if tc.random_longitude_roll else None,
        rows=process_rows(mesh, tc.batch_size),
    )

    def save(step):
        # The state is replicated: process 0 writes it once; the others wait for the file.
        path = (
            None
            if not main
            else training_state.save(
                ckpt_dir,
                step=step,
                state=state,
                config=cfg,
                train_config=tc,
                loader_position=batches.position,
                rng_key=base_key,
                grid=grid,
                keep=tc.keep_checkpoints,
            )
        )
        multihost.barrier(f"checkpoint {step}")
        return path or training_state.step_dir(ckpt_dir, step)

    history, path = [], last
    t0, done_at_t0 = time.perf_counter(), start
    bar = tqdm.tqdm(
        total=tc.num_steps,
        initial=start,
        disable=not (progress and main),
        desc="train",
        dynamic_ncols=True,
    )
    iterator = iter(batches)
    try:
        for step in range(start, tc.num_steps):
            _, batch = next(iterator)
            batch = shard_batch(batch, mesh, tc.batch_size)
            state, metrics = step_fn(state, statics, batch, base_key)
            row = {k: float(v) for k, v in metrics.items()}
            wall = time.perf_counter() - t0
            row.update(
                step=step + 1,
                wall_s=round(wall, 2),
                examples_per_s=round((step + 1 - done_at_t0) * tc.batch_size / wall, 3),
            )
            is_last = step + 1 == tc.num_steps
            if len(val_windows) and ((step + 1) % tc.eval_every == 0 or is_last):
                params = evaluation_params(state)
                row["val_loss"] = validation_loss(
                    eval_loss, params, statics, val_windows, fetch, tc.batch_size, mesh
                )
                if eval_members > 1 and eval_inits > 0:
                    crps = validation_crps(
                        params,
                        structure,
                        cfg,
                        data,
                        val_windows,
                        noise_fn,
                        eval_members,
                        eval_inits,
                    )
                    row["val_crps"] = json.dumps(crps)
            if (step + 1) % tc.checkpoint_every == 0 or is_last:
                path = save(step + 1)
            if main:
                _append_log(run_dir, row)
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4g}", ex_s=f"{row['examples_per_s']:.2f}")
            bar.update(1)
            if callback is not None:
                callback(step + 1, state, row)
    finally:
        bar.close()
    if main:
        plot_loss_curve(run_dir)
    return {"state": state, "history": history, "checkpoint": path}


def drop_nan_windows(data, train_windows, val_windows, log_dir=None, progress=False):
    """(train, validation) windows without those holding NaN outside SST.

    Scans every time once (`arrays.nan_times`) and logs each window left out to
    `log_dir`/skipped_windows.txt (one line: its three times) and a count to stderr.
    """
    import sys

    bad = arrays.nan_times(data.frames, data.forcings, progress=progress)
    kept = []
    for w in (train_windows, val_windows):
        drop = bad[w].any(axis=1)
        if drop.any() and log_dir is not None:
            with open(os.path.join(log_dir, "skipped_windows.txt"), "a") as f:
                for row in w[drop]:
                    f.write(" ".join(np.datetime_as_string(data.times[row], unit="s")) + "\n")
        kept.append(w[~drop])
    n = sum(len(a) - len(b) for a, b in zip((train_windows, val_windows), kept, strict=True))
    if n and log_dir is not None:
        print(f"left out {n} windows with NaN outside SST (skipped_windows.txt)", file=sys.stderr)
    return kept[0], kept[1]
