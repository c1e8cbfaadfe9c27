"""Training-state checkpoints: atomic, resumable, and loadable by DeepMind's code.

A checkpoint is a directory `<run_dir>/checkpoints/step_<NNNNNNNN>/` holding

  model.npz        the model in DeepMind's GenCast `.npz` layout (docs/design.md §9.1),
                   written by `checkpoint.save`: evaluation weights (the EMA when
                   enabled) and the five configs. Loads wherever official ones do.
  train_state.npz  everything else needed to resume bit for bit: the raw weights,
                   the optax state, the EMA weights, the step, the data-loader
                   position, the RNG key, and the configs as JSON (to refuse a
                   checkpoint from another configuration with a clear message).

Atomicity: both files are written into `step_<N>.tmp-<pid>/`, each file is fsync'ed,
then the directory is renamed to `step_<N>/` (a rename is atomic on POSIX) and the
parent directory is fsync'ed. A process killed mid-write leaves only a `.tmp-*`
directory, which `latest` ignores and `save` cleans up; the previous checkpoint is
never touched before the new one is complete. After a save, all but the newest
`keep` checkpoints are deleted.

Pytrees (optax states are nested namedtuples) are stored flat, one array per leaf,
keyed by `jax.tree_util.keystr` of the leaf's path; restoring unflattens into the
structure of a freshly initialised template and checks every key and shape.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import inspect
import json
import logging
import os
import re
import shutil
from typing import Any

import jax
import numpy as np

from minigencast import checkpoint, safe_output

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step_(\d{8})$")
# What `save` writes into a step folder. Only a folder holding nothing else is ever
# deleted (pruned or replaced), so a user's notes or a calibration's output in it stay.
CHECKPOINT_FILES = frozenset({"model.npz", "metadata.json", "train_state.npz"})
_FORMAT_VERSION = 1


class CheckpointMismatchError(ValueError):
    """A checkpoint does not belong to the configuration/data it is loaded for."""


# ----------------------------------------------------------------------------- pytrees
def flatten(tree, prefix: str) -> dict[str, np.ndarray]:
    """{"<prefix><keystr(path)>": leaf as NumPy} for every leaf of `tree`."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        out[prefix + jax.tree_util.keystr(path)] = np.asarray(leaf)
    return out


def unflatten(arrays, prefix: str, template):
    """Inverse of `flatten` given a template with the same structure (strict)."""
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    expected = [prefix + jax.tree_util.keystr(p) for p, _ in paths_leaves]
    stored = sorted(k for k in arrays if k.startswith(prefix))
    if sorted(expected) != stored:
        missing = sorted(set(expected) - set(stored))[:5]
        extra = sorted(set(stored) - set(expected))[:5]
        raise CheckpointMismatchError(
            f"checkpoint tree {prefix!r} differs from the model's: missing {missing}, "
            f"unexpected {extra}"
        )
    leaves = []
    for key, (_, ref) in zip(expected, paths_leaves, strict=True):
        value = arrays[key]
        if np.shape(value) != np.shape(ref):
            raise CheckpointMismatchError(
                f"{key}: checkpoint shape {np.shape(value)} != model shape {np.shape(ref)}"
            )
        leaves.append(jax.numpy.asarray(value, dtype=np.asarray(ref).dtype))
    return jax.tree_util.tree_unflatten(treedef, leaves)


def config_json(obj) -> str:
    """A dataclass (or dict of them) as canonical JSON (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    return json.dumps(obj, sort_keys=True, default=str)


# ----------------------------------------------------------------------------- files
def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_metadata(folder: str, *, config, grid: dict, step: int | None = None) -> str:
    """metadata.json beside model.npz: the grid and config the model was trained for.

    DeepMind's .npz stores no grid (GenCast's weights fit any grid), so this sidecar
    is what lets `forecast` refuse data on another grid with a clear message.
    """
    metadata = {
        "step": step,
        "lat": [float(x) for x in np.asarray(grid["lat"])],
        "lon": [float(x) for x in np.asarray(grid["lon"])],
        "config": json.loads(config_json(config)),
    }
    return _write_metadata_atomically(folder, metadata)


def _write_metadata_atomically(folder: str, metadata: dict) -> str:
    """metadata.json via a temporary and one rename: a failed write keeps the old file."""
    path = os.path.join(folder, "metadata.json")
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(metadata, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_dir(folder)
    return path


def update_metadata(folder: str, key: str, value) -> str:
    """Sets one entry of an existing metadata.json, atomically (a failed write keeps the old)."""
    metadata = read_metadata(folder)
    if metadata is None:
        raise FileNotFoundError(f"no metadata.json in {folder}")
    metadata[key] = value
    return _write_metadata_atomically(folder, metadata)


def config_differences(config, recorded: dict) -> list[str]:
    """Settings where `recorded` (metadata.json's "config") disagrees with `config`.

    Only keys present in both count (an older record may lack a newer field), and not
    `grid`: the checkpoint stores no grid, metadata.json's lat/lon are the grid.
    """

    def differ(actual: dict, record: dict, prefix: str) -> list[str]:
        out = []
        for key in sorted(set(actual) & set(record) - {"grid"}):
            a, r = actual[key], record[key]
            if isinstance(a, dict) and isinstance(r, dict):
                out += differ(a, r, f"{prefix}{key}.")
            elif a != r:
                out.append(f"{prefix}{key} {a} in model.npz, {r} in metadata.json")
        return out

    return differ(json.loads(config_json(config)), recorded, "")


def read_metadata(folder: str) -> dict | None:
    path = os.path.join(folder, "metadata.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{path} is not valid JSON ({e}); restore it from where the model came from"
            ) from None


def write_npz_durably(path: str, arrays: dict[str, np.ndarray]) -> None:
    """np.savez into `path`, then flush and fsync the file."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())


def step_dir(directory: str, step: int) -> str:
    return os.path.join(directory, f"step_{step:08d}")


def list_checkpoints(directory: str) -> list[tuple[int, str]]:
    """Complete checkpoints in `directory` as [(step, path)], oldest first."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        m = _STEP_DIR.match(name)
        path = os.path.join(directory, name)
        if m and os.path.isfile(os.path.join(path, "train_state.npz")):
            found.append((int(m.group(1)), path))
    return sorted(found)


def latest(directory: str) -> str | None:
    """Path of the newest complete checkpoint, or None."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


# What `save` writes before its rename, and where a re-saved step's old folder waits
# (safe_output.move_into_place).
_STEP_TMP = re.compile(r"^step_\d{8}\.(?:tmp|old)-(\d+)$")


def _remove_stale_temporaries(directory: str) -> None:
    """Removes `save`'s own temporaries left by processes no longer running (only if they
    hold nothing but what `save` writes)."""
    for name in os.listdir(directory):
        m = _STEP_TMP.match(name)
        path = os.path.join(directory, name)
        if (
            m
            and int(m.group(1)) != os.getpid()
            and not safe_output.process_alive(int(m.group(1)))
            and _holds_only_checkpoint_files(path)
        ):
            shutil.rmtree(path, ignore_errors=True)


def save(
    directory: str,
    *,
    step: int,
    state: dict,
    config,
    train_config,
    loader_position: dict,
    rng_key,
    grid: dict,
    keep: int = 3,
    description: str = "minigencast training checkpoint",
) -> str:
    """Atomically writes the checkpoint of `step`; returns its directory.

    Args:
      directory: the checkpoints folder (created if missing).
      state: {"params", "opt_state", "ema_params" (or None), "step"} (see train.py).
      config: the GenCastConfig; train_config: the TrainConfig.
      loader_position: JSON-able dict from `loader.WindowLoader.position`.
      rng_key: the run's base PRNG key.
      grid: {"lat": [lat], "lon": [lon]} the model was trained on (checked on load).
      keep: how many checkpoints to keep (the newest).
    """
    os.makedirs(directory, exist_ok=True)
    _remove_stale_temporaries(directory)
    final = step_dir(directory, step)
    if os.path.exists(final) and not _only_our_files(final):
        raise FileExistsError(
            f"{final} exists and holds files other than {sorted(CHECKPOINT_FILES)}; move it away"
        )
    tmp = f"{final}.tmp-{os.getpid()}"
    os.makedirs(tmp)

    eval_params = state["ema_params"] if state.get("ema_params") is not None else state["params"]
    checkpoint.save(
        os.path.join(tmp, "model.npz"),
        jax.device_get(eval_params),
        config,
        description=f"{description}, step {step}",
    )
    _fsync_file(os.path.join(tmp, "model.npz"))
    write_metadata(tmp, config=config, grid=grid, step=step)
    arrays = {
        "format_version": np.asarray(_FORMAT_VERSION),
        "step": np.asarray(step, np.int64),
        "rng_key": np.asarray(jax.random.key_data(rng_key)),
        "config_json": np.asarray(config_json(config)),
        "train_config_json": np.asarray(config_json(train_config)),
        "loader_position_json": np.asarray(json.dumps(loader_position, sort_keys=True)),
        "grid:lat": np.asarray(grid["lat"], np.float64),
        "grid:lon": np.asarray(grid["lon"], np.float64),
        "has_ema": np.asarray(state.get("ema_params") is not None),
    }
    arrays.update(flatten(jax.device_get(state["params"]), "params"))
    arrays.update(flatten(jax.device_get(state["opt_state"]), "opt_state"))
    if state.get("ema_params") is not None:
        arrays.update(flatten(jax.device_get(state["ema_params"]), "ema_params"))
    write_npz_durably(os.path.join(tmp, "train_state.npz"), arrays)
    _fsync_dir(tmp)

    # Re-saving the same step (e.g. after a resume) replaces our own checkpoint (checked
    # above): the old folder is renamed aside and deleted only once the new one is in place.
    safe_output.move_into_place(tmp, final)
    _fsync_dir(directory)

    for _, old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        if _only_our_files(old):
            shutil.rmtree(old, ignore_errors=True)
        else:
            log.warning("keeping old checkpoint %s: it holds files `save` did not write", old)
    return final


def _holds_only_checkpoint_files(folder: str) -> bool:
    """Whether every entry of `folder` is one of CHECKPOINT_FILES, as a regular file."""
    if not os.path.isdir(folder) or os.path.islink(folder):
        return False
    paths = [os.path.join(folder, n) for n in os.listdir(folder)]
    return all(
        os.path.basename(p) in CHECKPOINT_FILES and os.path.isfile(p) and not os.path.islink(p)
        for p in paths
    )


def _only_our_files(folder: str) -> bool:
    """Whether `folder` is a complete checkpoint holding nothing but CHECKPOINT_FILES."""
    return _holds_only_checkpoint_files(folder) and os.path.isfile(
        os.path.join(folder, "train_state.npz")
    )


def check_compatible(path: str, config, grid: dict | None = None) -> None:
    """Raises CheckpointMismatchError unless `path` was trained for `config` and `grid`."""
    with np.load(os.path.join(path, "train_state.npz")) as z:
        stored = json.loads(str(z["config_json"]))
        lat, lon = z["grid:lat"], z["grid:lon"]
    current = json.loads(config_json(config))
    # The sampler does not enter training: a run may be resumed (or its weights sampled)
    # with other sampler settings.
    for c in (stored, current):
        c.pop("sampler_config", None)
    if stored != current:
        diff = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
        raise CheckpointMismatchError(
            f"checkpoint {path} was written for another configuration (differs in "
            f"{diff}); pass the same preset/overrides it was trained with, or start a "
            f"new run directory."
        )
    if grid is not None and (
        np.shape(lat) != np.shape(grid["lat"])
        or np.shape(lon) != np.shape(grid["lon"])
        or not np.allclose(lat, grid["lat"])
        or not np.allclose(lon, grid["lon"])
    ):
        raise CheckpointMismatchError(
            f"checkpoint {path} was trained on a {len(lat)}x{len(lon)} grid; the data are "
            f"{len(grid['lat'])}x{len(grid['lon'])} (or different coordinates)."
        )


def restore(path: str, template_state: dict, config, grid: dict | None = None) -> dict[str, Any]:
    """Loads a checkpoint written by `save` into the structure of `template_state`.

    Returns {"state", "step", "rng_key", "loader_position", "train_config"}.
    Raises CheckpointMismatchError for another config, grid or parameter tree.
    """
    check_compatible(path, config, grid)
    with np.load(os.path.join(path, "train_state.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    state = {
        "params": unflatten(arrays, "params", template_state["params"]),
        "opt_state": unflatten(arrays, "opt_state", template_state["opt_state"]),
        "ema_params": None,
        "step": jax.numpy.asarray(int(arrays["step"]), jax.numpy.int32),
    }
    if bool(arrays["has_ema"]):
        if template_state.get("ema_params") is None:
            raise CheckpointMismatchError(f"{path} has EMA weights but ema_decay is 0 now.")
        state["ema_params"] = unflatten(arrays, "ema_params", template_state["ema_params"])
    elif template_state.get("ema_params") is not None:
        raise CheckpointMismatchError(f"{path} has no EMA weights but ema_decay > 0 now.")
    return {
        "state": state,
        "step": int(arrays["step"]),
        "rng_key": jax.random.wrap_key_data(np.asarray(arrays["rng_key"])),
        "loader_position": json.loads(str(arrays["loader_position_json"])),
        "train_config": json.loads(str(arrays["train_config_json"])),
    }


# ----------------------------------------------------------------------------- resuming
# TrainConfig fields that do not change what a step computes: free to change on resume
# (remat recomputes the same numbers; test_train.py checks it).
RESUME_FREE_SETTINGS = ("eval_every", "checkpoint_every", "keep_checkpoints", "prefetch", "remat")


def check_resume(path: str, train_config, run_dir: str, force: bool = False) -> dict:
    """Refuses to resume checkpoint `path` with other training settings unless `force`.

    A resumed run reproduces the uninterrupted one only with the same batch size, seed,
    schedule and recipe; otherwise the optimiser state no longer fits (e.g. a loss that
    jumps). Returns {setting: [stored, current]}; with `force` the differences are
    logged and recorded as an event row in `<run_dir>/log.jsonl`.
    """
    with np.load(os.path.join(path, "train_state.npz")) as z:
        stored = json.loads(str(z["train_config_json"]))
        step = int(z["step"])
    current = json.loads(config_json(train_config))
    # A setting newer than the checkpoint counts as its default, which the run had.
    stored = {**json.loads(config_json(type(train_config)())), **stored}
    diff = {
        k: [stored.get(k), current.get(k)]
        for k in sorted(set(stored) | set(current))
        if k not in RESUME_FREE_SETTINGS and stored.get(k) != current.get(k)
    }
    if not diff:
        return diff
    listed = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in diff.items())
    if not force:
        raise CheckpointMismatchError(
            f"resuming {path} with other training settings ({listed}); rerun with the "
            "run's settings (see command.txt in the run folder), or pass --force to "
            "continue with the new ones knowingly"
        )
    log.warning("resuming step %d with changed settings (--force): %s", step, listed)
    with open(os.path.join(run_dir, "log.jsonl"), "a") as f:
        f.write(json.dumps({"event": "forced_resume", "at_step": step, "changed": diff}) + "\n")
    return diff


def drop_log_rows_after(run_dir: str, step: int) -> int:
    """Removes rows of log.csv / log.jsonl with step > `step` (steps to be redone).

    Rows logged after the newest checkpoint belong to steps a resumed run recomputes;
    kept, they would appear twice. Returns the number of log.csv rows dropped.
    """
    dropped = 0
    path = os.path.join(run_dir, "log.csv")
    if os.path.exists(path):
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames, list(reader)
        keep = [r for r in rows if int(r["step"]) <= step]
        dropped = len(rows) - len(keep)
        if dropped:
            with open(path + ".tmp", "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(keep)
            os.replace(path + ".tmp", path)
    path = os.path.join(run_dir, "log.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            lines = f.readlines()
        keep = [ln for ln in lines if json.loads(ln).get("step", 0) <= step]
        if len(keep) != len(lines):
            with open(path + ".tmp", "w") as f:
                f.writelines(keep)
            os.replace(path + ".tmp", path)
    return dropped


RUN_ENTRIES = ("checkpoints", "log.jsonl", "run.lock")  # what a training writes first


def check_run_dir(run_dir: str) -> None:
    """Refuse a run folder that holds files but no training run of ours (FileExistsError):
    training writes statistics and logs there, which would replace or mix with a user's."""
    if not os.path.isdir(run_dir) or not os.listdir(run_dir):
        return
    if any(os.path.exists(os.path.join(run_dir, name)) for name in RUN_ENTRIES):
        return
    command = os.path.join(run_dir, "command.txt")
    if os.path.isfile(command):
        with open(command, errors="replace") as f:
            if f.read(64).startswith("minigencast train"):
                return
    raise FileExistsError(
        f"run folder {run_dir} holds files but no training run; choose a new or empty --run_dir"
    )


def exclusive_run_dir(train_fn):
    """Decorator of `train.train(dataset, stats, cfg, tc, run_dir, ...)`.

    Refuses a folder that holds files but no run (`check_run_dir`). Holds the lock
    `<run_dir>/run.lock` (`safe_output.acquire_lock`) while training, so a second
    training in the same folder stops at once with a clear error, and first drops the
    log rows after the newest checkpoint (`drop_log_rows_after`).
    """
    signature = inspect.signature(train_fn)

    @functools.wraps(train_fn)
    def wrapper(*args, **kwargs):
        run_dir = signature.bind(*args, **kwargs).arguments["run_dir"]
        check_run_dir(run_dir)
        os.makedirs(run_dir, exist_ok=True)
        busy = (
            f"run folder {run_dir} is in use by another training (pid {{pid}}); wait for it "
            "or use another --run_dir"
        )
        if jax.process_index() != 0:  # Several processes, one run: process 0 holds it.
            return train_fn(*args, **kwargs)
        lock = safe_output.acquire_lock(os.path.join(run_dir, "run"), busy)
        try:
            last = list_checkpoints(os.path.join(run_dir, "checkpoints"))
            drop_log_rows_after(run_dir, last[-1][0] if last else 0)
            return train_fn(*args, **kwargs)
        finally:
            safe_output.release_lock(os.path.join(run_dir, "run"), lock)

    return wrapper
