"""DeepMind's GenCast checkpoint container (.npz), read and written exactly (docs/design.md §9.1).

DeepMind's `checkpoint.dump` writes an uncompressed `np.savez` archive of the flattened
`gencast.CheckPoint` dataclass: nested keys joined with ":", tuples as "0", "1", ...,
fields whose value is None omitted, strings as 0-d unicode arrays, ints as int64, floats
as float64, bools as bool. Keys look like

    description, license
    params:grid2mesh_gnn/~_networks_builder/encoder_edges_grid2mesh_mlp/~/linear_0:w
    task_config:pressure_levels:0
    denoiser_architecture_config:sparse_transformer_config:attention_k_hop
    sampler_config:rho, noise_config:..., noise_encoder_config:output_sizes:1

Parameter names: our nested dicts use DeepMind's Haiku module path split on "/", with the
Haiku-internal segments "~" and "~_networks_builder" dropped (CONTRACTS.md). `to_haiku`
inserts them back by rule:

    "~_networks_builder" after a segment ending in "_gnn";
    "~" after "mesh_transformer" and after a segment that is, or ends in, "mlp".

Loading is strict: every key must be understood and used, every parameter shape must be
what the stored config implies (`network.param_shapes`); errors name the first offending
keys. An unreadable file (truncated, corrupt, not an .npz) raises `CheckpointError`, as
does a parameter holding NaN or Inf (named), which would turn every forecast into NaN.
"""

from __future__ import annotations

import dataclasses
import os
import typing
import zipfile
from typing import NamedTuple

import numpy as np

from minigencast import config as config_lib

CONFIG_FIELDS = (
    ("task_config", config_lib.TaskConfig),
    ("denoiser_architecture_config", config_lib.DenoiserArchitectureConfig),
    ("sampler_config", config_lib.SamplerConfig),
    ("noise_config", config_lib.NoiseConfig),
    ("noise_encoder_config", config_lib.NoiseEncoderConfig),
)
_NESTED = {
    (
        "denoiser_architecture_config",
        "sparse_transformer_config",
    ): config_lib.SparseTransformerConfig
}
_MAX_NAMED = 5  # How many offending keys an error message lists.


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not match its own config."""


class Checkpoint(NamedTuple):
    params: dict
    config: config_lib.GenCastConfig
    description: str
    license: str


# --------------------------------------------------------------------------
# Parameter names.


def _is_internal(segment: str) -> bool:
    return segment in ("~", "~_networks_builder")


def _after(segment: str) -> str | None:
    if segment.endswith("_gnn"):
        return "~_networks_builder"
    if segment == "mesh_transformer" or segment == "mlp" or segment.endswith("_mlp"):
        return "~"
    return None


def module_path(segments) -> str:
    """Our key path (e.g. ("grid2mesh_gnn", "encoder_edges_grid2mesh_mlp", "linear_0"))
    -> DeepMind's Haiku module path."""
    out = []
    for i, seg in enumerate(segments):
        out.append(seg)
        extra = _after(seg)
        if extra is not None and i < len(segments) - 1:
            out.append(extra)
    return "/".join(out)


def to_haiku(params: dict) -> dict:
    """Nested params -> {haiku_module_path: {param_name: array}}."""
    out = {}

    def walk(node, path):
        leaves = {k: v for k, v in node.items() if not isinstance(v, dict)}
        if leaves:
            out[module_path(path)] = leaves
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, path + (k,))

    walk(params, ())
    return out


def from_haiku(haiku_params: dict) -> dict:
    """{haiku_module_path: {param_name: array}} -> nested params (inverse of `to_haiku`).

    Raises CheckpointError for a module path that our naming rule would not produce
    (so `to_haiku(from_haiku(p)) == p` holds for everything accepted).
    """
    params: dict = {}
    for path, leaves in haiku_params.items():
        segments = tuple(s for s in path.split("/") if not _is_internal(s))
        if module_path(segments) != path:
            raise CheckpointError(f"unexpected module path {path!r}")
        node = params
        for seg in segments:
            node = node.setdefault(seg, {})
        node.update(leaves)
    return params


# --------------------------------------------------------------------------
# Reading.


def _read_npz(path) -> dict:
    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not a .npz checkpoint (no zip archive: truncated or corrupt file?)"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as e:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {type(e).__name__}: {e} "
            "(truncated or corrupt file? expected DeepMind's uncompressed .npz)"
        ) from e


def _python(value: np.ndarray):
    if value.ndim != 0:
        raise CheckpointError(f"config value of shape {value.shape}, expected a scalar")
    return value.item()


def _tuple_from(d: dict, key: str):
    indices = sorted(d, key=lambda s: int(s) if s.isdigit() else -1)
    if [str(i) for i in range(len(d))] != indices:
        raise CheckpointError(f"{key}: tuple keys {sorted(d)} are not 0..{len(d) - 1}")
    return tuple(d[str(i)] for i in range(len(d)))


def _build(cls, tree: dict, prefix: tuple):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(tree) - set(fields))
    if unknown:
        raise CheckpointError(f"unknown config keys: {[':'.join(prefix + (k,)) for k in unknown]}")
    kwargs = {}
    for name, value in tree.items():
        key = prefix + (name,)
        if key in _NESTED:
            kwargs[name] = _build(_NESTED[key], value, key)
        elif isinstance(value, dict):
            kwargs[name] = _tuple_from(value, ":".join(key))
        else:
            kwargs[name] = value
        if "tuple" in str(hints[name]) and not isinstance(kwargs[name], tuple):
            raise CheckpointError(f"{':'.join(key)} should be a tuple")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise CheckpointError(f"config {':'.join(prefix)}: {e}") from e


def config_from_flat(flat: dict) -> config_lib.GenCastConfig:
    """Configs from the non-parameter keys ({"task_config:pressure_levels:0": array, ...})."""
    tree: dict = {}
    for key, value in flat.items():
        parts = key.split(":")
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise CheckpointError(f"key {key!r} clashes with a value")
        node[parts[-1]] = _python(value)
    names = [n for n, _ in CONFIG_FIELDS]
    unknown = sorted(set(tree) - set(names))
    if unknown:
        raise CheckpointError(f"unknown top-level keys: {unknown}")
    missing = [n for n in names if n not in tree]
    if missing:
        raise CheckpointError(f"checkpoint lacks configs: {missing}")
    configs = {n: _build(cls, tree[n], (n,)) for n, cls in CONFIG_FIELDS}
    return config_lib.GenCastConfig(**configs)


def check_params(params: dict, cfg) -> None:
    """Raises CheckpointError unless `params` has exactly the keys and shapes cfg implies."""
    from minigencast import network  # Local: network imports heavy modules.

    expected = {
        f"{m}:{n}": tuple(v.shape)
        for m, leaves in to_haiku(network.param_shapes(cfg)).items()
        for n, v in leaves.items()
    }
    got = {
        f"{m}:{n}": tuple(np.shape(v))
        for m, leaves in to_haiku(params).items()
        for n, v in leaves.items()
    }
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    problems = []
    if missing:
        problems.append(f"missing params {['params:' + k for k in missing[:_MAX_NAMED]]}")
    if extra:
        problems.append(f"unexpected params {['params:' + k for k in extra[:_MAX_NAMED]]}")
    if wrong:
        problems.append(
            "shape mismatch "
            + ", ".join(f"params:{k} {got[k]} (expected {expected[k]})" for k in wrong[:_MAX_NAMED])
        )
    if problems:
        counts = f"({len(missing)} missing, {len(extra)} unexpected, {len(wrong)} mis-shaped)"
        raise CheckpointError(
            "checkpoint parameters do not match its config " + counts + ": " + "; ".join(problems)
        )


def check_finite(flat: dict, path) -> None:
    """Raises CheckpointError naming the first parameters that hold NaN or Inf."""
    bad = []
    for key, value in flat.items():
        if key.startswith("params:") and np.issubdtype(value.dtype, np.floating):
            finite = np.isfinite(value)
            if not finite.all():
                bad.append(f"{key} ({value.size - int(finite.sum())} of {value.size} NaN/Inf)")
    if bad:
        raise CheckpointError(
            f"{path}: non-finite weights in {', '.join(bad[:_MAX_NAMED])}"
            f"{' ...' if len(bad) > _MAX_NAMED else ''}; the checkpoint is unusable "
            "(a diverged training?): use an earlier one"
        )


def check_same_architecture(stored, cfg, path) -> None:
    """Raises CheckpointError unless the weights of config `stored` fit config `cfg`.

    Compares everything that decides parameter shapes (task channels, denoiser
    architecture, noise encoder), e.g. before fine-tuning a checkpoint with a preset.
    """
    names = ("task_config", "denoiser_architecture_config", "noise_encoder_config")
    a = {n: dataclasses.asdict(getattr(stored, n)) for n in names}
    b = {n: dataclasses.asdict(getattr(cfg, n)) for n in names}

    def leaves(tree, prefix=""):
        for k, v in tree.items():
            if isinstance(v, dict):
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    ours, theirs = dict(leaves(a)), dict(leaves(b))
    diff = [k for k in ours if ours[k] != theirs.get(k)]
    if diff:
        shown = "; ".join(f"{k}: checkpoint {ours[k]}, preset {theirs.get(k)}" for k in diff[:5])
        raise CheckpointError(
            f"{path} has another architecture than the preset ({len(diff)} settings differ: "
            f"{shown}{' ...' if len(diff) > 5 else ''}); pick the preset it was trained with"
        )


def load(path, strict: bool = True) -> Checkpoint:
    """Reads DeepMind's .npz checkpoint: params (nested dict of float32 NumPy arrays) and
    configs. With `strict`, checks every parameter key and shape against the config."""
    flat = _read_npz(path)
    for k in ("description", "license"):
        if k not in flat:
            raise CheckpointError(f"{path}: missing key {k!r}")
    haiku: dict = {}
    rest = {}
    for key, value in flat.items():
        if key in ("description", "license"):
            continue
        if key.startswith("params:"):
            parts = key.split(":")
            if len(parts) != 3:
                raise CheckpointError(f"malformed parameter key {key!r}")
            haiku.setdefault(parts[1], {})[parts[2]] = value
        else:
            rest[key] = value
    check_finite(flat, path)
    params = from_haiku(haiku)
    cfg = config_from_flat(rest)
    if strict:
        check_params(params, cfg)
    return Checkpoint(params, cfg, str(flat["description"].item()), str(flat["license"].item()))


# --------------------------------------------------------------------------
# Writing.


def _flatten_value(value, key: str, out: dict) -> None:
    if value is None:
        return
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            _flatten_value(getattr(value, f.name), f"{key}:{f.name}", out)
    elif isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            _flatten_value(v, f"{key}:{i}", out)
    elif isinstance(value, (bool, np.bool_)):
        out[key] = np.asarray(value, np.bool_)
    elif isinstance(value, (int, np.integer)):
        out[key] = np.asarray(value, np.int64)
    elif isinstance(value, (float, np.floating)):
        out[key] = np.asarray(value, np.float64)
    elif isinstance(value, str):
        out[key] = np.asarray(value)
    else:
        raise TypeError(f"cannot store {key} of type {type(value).__name__}")


def to_flat(params: dict, cfg, description: str = "", license: str = "") -> dict:
    """The {key: array} dict DeepMind's `checkpoint.dump` would write."""
    flat = {"description": np.asarray(description), "license": np.asarray(license)}
    for module, leaves in to_haiku(params).items():
        for name, value in leaves.items():
            flat[f"params:{module}:{name}"] = np.asarray(value)
    for name, _ in CONFIG_FIELDS:
        _flatten_value(getattr(cfg, name), name, flat)
    return flat


def save(path, params: dict, cfg, description: str = "", license: str = "") -> None:
    """Writes params and configs as DeepMind's uncompressed .npz (loadable by their code)."""
    with open(path, "wb") as f:
        np.savez(f, **to_flat(params, cfg, description, license))
