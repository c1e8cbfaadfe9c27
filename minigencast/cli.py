"""The `minigencast` command line.

Every subcommand is a thin shell around a Python function of the package (its
"API twin"), named in the subcommand's help; the CLI only parses flags and calls it.

  minigencast quickstart        train (or load) a small model, forecast, verify
  minigencast data toy-planet   generate the embedded toy-planet dataset
  minigencast download          fetch DeepMind's GenCast files (hash-pinned)
  minigencast stats             normalisation statistics of a dataset
  minigencast info              sizes and costs of a configuration
  minigencast train             train a denoiser
  minigencast forecast          roll out an ensemble forecast
  minigencast evaluate          verify a forecast; draw the paper's figures

Each subcommand lives in a pair of functions below, `_add_<name>(subparsers)` and
`_run_<name>(args)`. Imports of heavy modules happen inside `_run_*` so that
`minigencast --help` is instant.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

# XLA's CPU backend sends small matmuls and their neighbours through YNNPACK fusions by
# default; for the small models that run on a CPU here they cost time: the cpu preset's
# 12 h forecast step takes 0.66-0.77x, its train step 0.90-0.97x as long without them; 1 deg
# Mini is unchanged (benchmarks/xla_cpu_flags.py, benchmarks/denoiser.py). The CLI uses
# this setting unless XLA_FLAGS is already set; it changes speed and the last bits of
# the floats, nothing else, and no other backend reads it.
CPU_XLA_FLAGS = "--xla_cpu_experimental_ynn_fusion_type="


def use_cpu_xla_flags() -> str:
    """Sets XLA_FLAGS to CPU_XLA_FLAGS if unset; returns the XLA_FLAGS in effect.

    Takes effect only before JAX creates its CPU backend (its first computation).
    """
    return os.environ.setdefault("XLA_FLAGS", CPU_XLA_FLAGS)


# --------------------------------------------------------------------------- validation
def in_range(kind, low=None, high=None, *, low_open=False, high_open=False):
    """An argparse `type=`: `kind(text)` within [low, high] (open ends if told).

    argparse reports a failure as "argument --flag: <message>", so the error names the
    flag and the allowed range.
    """
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    noun = "an integer" if kind is int else "a number"
    allowed = f"{noun} {' and '.join(parts)}".strip()

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high or value != value or abs(value) == float("inf"):  # NaN, inf
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
        return value

    return parse


def grid_shape(text):
    """argparse `type=` for NLATxNLON (e.g. 181x360): two integers >= 2."""
    try:
        n_lat, n_lon = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NLATxNLON like 181x360, got {text!r}") from None
    if n_lat < 2 or n_lon < 2:
        raise argparse.ArgumentTypeError(f"NLAT and NLON must be integers >= 2, got {text!r}")
    return n_lat, n_lon


POSITIVE = in_range(int, 1)
NON_NEGATIVE = in_range(int, 0)
SEED = in_range(int, 0, 2**32 - 1)  # the ensemble's keys take 32-bit seeds (forecast.member_keys)


def _datetime(text):
    """argparse `type=` for a date and time such as 2000-11-15T12 (numpy datetime64)."""
    import numpy as np

    try:
        return np.datetime64(text, "ns")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a time like 2000-11-15T12, got {text!r}"
        ) from None


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), as all CLI errors."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --------------------------------------------------------------------------- quickstart
def _add_quickstart(sub):
    p = sub.add_parser(
        "quickstart",
        help="Train (or load) a small model on the embedded dataset, forecast and verify it.",
        description=(
            "The first thing to run. On the embedded toy-planet dataset: load the CPU-preset "
            "model shipped in data/pretrained/ (--pretrained) or "
            "train it from scratch (about 55 min on 2 cores), forecast an ensemble from "
            "held-out initial conditions, score it (CRPS, RMSE, spread/skill) against "
            "persistence and climatology, judge the model's goals (zonal power spectra and "
            "spread/skill at 1-5 days: MET / NOT MET), and write forecast.nc, report.json "
            "and PNG figures into --out. API twin: minigencast.quickstart.quickstart()."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="quickstart_out", help="Output folder.")
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="Load the small checkpoint shipped in data/pretrained/ instead of training.",
    )
    p.add_argument("--num_samples", type=in_range(int, 2), default=8, help="Ensemble members.")
    p.add_argument("--num_inits", type=POSITIVE, default=16, help="Initialisation times verified.")
    p.add_argument("--num_steps", type=POSITIVE, default=10, help="12 h steps (10 = 5 days).")
    p.add_argument("--seed", type=SEED, default=0, help="Ensemble seed (0 to 2^32 - 1).")
    p.set_defaults(run=_run_quickstart)


def _run_quickstart(args):
    from minigencast import quickstart

    quickstart.quickstart(
        out=args.out,
        pretrained=args.pretrained,
        num_members=args.num_samples,
        num_inits=args.num_inits,
        num_steps=args.num_steps,
        seed=args.seed,
    )


def _open_data(spec, split="train"):
    """'embedded' / 'embedded:SPLIT' or a NetCDF/zarr path -> (canonical dataset, stats or None)."""
    from minigencast import data

    if spec.startswith("embedded"):
        split = spec.split(":", 1)[1] if ":" in spec else split
        if split == "train":  # train + validation; `train` holds out the last part itself
            from minigencast import quickstart

            return quickstart.training_data(), data.embedded_stats()
        return data.load_embedded(split), data.embedded_stats()
    return data.open_dataset(spec), None


def _stats(args, default):
    from minigencast import normalization

    if getattr(args, "stats", None):
        return normalization.load_stats(args.stats)
    if default is None:
        raise ValueError(
            "--stats DIR is required for datasets other than the embedded one "
            "(compute them with `minigencast stats`)"
        )
    return default


# --------------------------------------------------------------------------- data
def _add_data(sub):
    p = sub.add_parser(
        "data",
        help="Datasets: `data toy-planet` generates the embedded dataset; "
        "`data weatherbench` subsets WeatherBench-2 ERA5 to a local zarr.",
        description="API twins: minigencast.data.toy_planet.generate(), "
        "minigencast.data.weatherbench.subset_to_zarr().",
    )
    dsub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    dsub.required = True
    t = dsub.add_parser(
        "toy-planet",
        help="Integrate the dry Held-Suarez toy planet (dinosaur) and write it.",
        description="API twin: minigencast.data.toy_planet.generate(). Needs the "
        "`toy-planet` extra (dinosaur). Writes splits, stats, manifest and data card.",
    )
    t.add_argument("--out", default="data/toy_planet", help="Output folder (%(default)s).")
    t.add_argument(
        "--years",
        type=in_range(float, 0, low_open=True),
        default=1.0,
        help="Simulated years (%(default)s).",
    )
    t.add_argument(
        "--resolution",
        type=in_range(float, 0, low_open=True),
        default=5.625,
        help="Grid, deg (%(default)s).",
    )
    t.add_argument("--levels", default="250,500,850", help="Pressure levels, hPa (%(default)s).")
    t.add_argument("--seed", type=int, default=0, help="Initial-perturbation seed (%(default)s).")
    _add_flag(
        t,
        "--spinup_days",
        type=in_range(float, 0),
        default=200.0,
        help="Spin-up days (%(default)s).",
    )
    _add_flag(
        t, "--num_steps", type=POSITIVE, default=None, help="12 h outputs (overrides --years)."
    )
    t.set_defaults(run=_run_data_toy_planet)
    w = dsub.add_parser(
        "weatherbench",
        help="Write a canonical local zarr subset of a WeatherBench-2 ERA5 or forecast store.",
        description="API twins: minigencast.data.weatherbench.subset_to_zarr() (ERA5), "
        "subset_forecast_to_zarr() (forecast stores such as IFS ENS: dims time, number, "
        "prediction_timedelta; written in the forecast layout that `evaluate --baseline` "
        "reads).",
    )
    w.add_argument(
        "store",
        help="Path/URL of the zarr store, or 1440x721, 240x121, 64x32 (ERA5), "
        "ifs_ens/240x121, ifs_ens/64x32 (IFS ENS).",
    )
    w.add_argument("--out", required=True, help="Output zarr path.")
    w.add_argument("--start", default=None, help="First time, e.g. 2019-01-01.")
    w.add_argument("--end", default=None, help="Last time, e.g. 2019-12-31T12.")
    w.add_argument("--task", choices=["gencast", "toy-planet"], default="gencast")
    w.add_argument("--levels", default=None, help="Comma-separated hPa (default: the task's).")
    w.add_argument(
        "--subsample", type=POSITIVE, default=1, help="Point subsampling (4: 0.25->1 deg)."
    )
    w.add_argument(
        "--max-lead", default=None, help="Forecast stores: longest lead kept, e.g. 360h."
    )
    w.add_argument(
        "--members", type=POSITIVE, default=None, help="Forecast stores: first N members."
    )
    w.set_defaults(run=_run_data_weatherbench)


def _add_flag(parser, flag, **kwargs):
    """One spelling for every flag, words joined by "_" (`--run_dir`, `--spinup_days`); the
    "-" spelling (`--spinup-days`) still parses, as a hidden alias."""
    parser.add_argument(flag, **kwargs)
    alias = {k: v for k, v in kwargs.items() if k == "type"}
    parser.add_argument(
        flag.replace("_", "-"),
        dest=flag[2:],
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
        **alias,
    )


def _levels(text):
    return None if text is None else tuple(int(x) for x in text.split(","))


def _task(name, levels=None):
    from minigencast import config, variables

    if name == "toy-planet":
        return config.toy_planet_task(levels or variables.TOY_PLANET_LEVELS)
    return config.gencast_task(levels or variables.PRESSURE_LEVELS_WEATHERBENCH_13)


def _run_data_toy_planet(args):
    import logging

    from minigencast.data import toy_planet

    logging.basicConfig(level=logging.INFO)
    paths = toy_planet.generate(
        args.out,
        years=args.years,
        resolution=args.resolution,
        levels=_levels(args.levels),
        seed=args.seed,
        spinup_days=args.spinup_days,
        num_steps=args.num_steps,
    )
    print("\n".join(paths))


def _run_data_weatherbench(args):
    from minigencast.data import weatherbench

    task = _task(args.task, _levels(args.levels))
    if weatherbench.is_forecast_store(args.store):
        out = weatherbench.subset_forecast_to_zarr(
            args.store,
            args.out,
            task,
            start=args.start,
            end=args.end,
            levels=_levels(args.levels),
            max_lead=args.max_lead,
            members=args.members,
        )
    else:
        out = weatherbench.subset_to_zarr(
            args.store, args.out, task, start=args.start, end=args.end,
            subsample_factor=args.subsample,
        )  # fmt: skip
    print(out)


# --------------------------------------------------------------------------- download
def _add_download(sub):
    p = sub.add_parser(
        "download",
        help="Fetch DeepMind's GenCast stats, example data and checkpoints (hash-checked).",
        description="API twin: minigencast.data.downloads.fetch_many(). Names are registry "
        "paths (see --list) or the aliases stats, example, mini. Cache: "
        "$MINIGENCAST_CACHE_DIR or the user cache dir; pins: hashes.txt there.",
    )
    p.add_argument("names", nargs="*", default=["stats"], help="What to fetch (default: stats).")
    p.add_argument("--list", action="store_true", help="List the registry, pins and URLs.")
    _add_flag(p, "--base_url", default=None, help="Mirror replacing DeepMind's bucket URL.")
    p.set_defaults(run=_run_download)


def _run_download(args):
    from minigencast.data import downloads

    if args.list:
        print(downloads.describe())
        return
    for path in downloads.fetch_many(args.names, base=args.base_url):
        print(path)


# --------------------------------------------------------------------------- stats
def _add_stats(sub):
    p = sub.add_parser(
        "stats",
        help="Compute the four normalisation-statistics files of a dataset.",
        description="API twin: minigencast.normalization.compute_stats() + write_stats(). "
        "Writes mean/stddev/diffs_stddev/min_by_level.nc in DeepMind's layout.",
    )
    p.add_argument(
        "dataset",
        help="NetCDF, zarr or GRIB path, a glob or folder of files (any supported layout), "
        "or 'embedded'.",
    )
    p.add_argument("--out", required=True, help="Output folder.")
    p.add_argument(
        "--task",
        choices=["gencast", "toy-planet", "all"],
        default="all",
        help="Select the task's variables and levels first (default: all).",
    )
    p.add_argument("--levels", default=None, help="Comma-separated hPa to select.")
    p.set_defaults(run=_run_stats)


def _run_stats(args):
    from minigencast import data, normalization, safe_output

    names = [normalization.stats_filename(n) for n in normalization.STATS_NAMES]
    safe_output.check_outputs(args.out, names)  # a model's or a user's statistics stay
    task = None if args.task == "all" else _task(args.task, _levels(args.levels))
    ds = data.open_dataset(args.dataset, task, levels=_levels(args.levels), nan_check=False)
    from dask.diagnostics import ProgressBar

    with ProgressBar(out=sys.stderr):  # the statistics are one dask computation
        stats = normalization.compute_stats(ds)
    safe_output.claim_outputs(args.out, names)
    for path in normalization.write_stats(stats, args.out):
        print(path)


# --------------------------------------------------------------------------- info
def _add_info(sub):
    p = sub.add_parser(
        "info",
        help="Print a JSON description of a configuration: graph sizes, parameters, memory.",
        description="API twin: minigencast.info.info(cfg, grid).",
    )
    p.add_argument("--preset", required=True, help="Preset name, e.g. gencast_1p0deg_mini.")
    p.add_argument(
        "--grid", type=grid_shape, help="NLATxNLON, equiangular with poles (default: the preset's)."
    )
    _add_flag(
        p, "--mesh_size", type=NON_NEGATIVE, help="Icosahedral splits (default: the preset's)."
    )
    _add_flag(
        p, "--attention_k_hop", type=NON_NEGATIVE, help="Attention hops (default: the preset's)."
    )
    p.set_defaults(run=_run_info)


def _run_info(args):
    import dataclasses
    import json

    from minigencast import config, info

    cfg = config.preset(args.preset)
    arch = cfg.denoiser_architecture_config
    if args.attention_k_hop is not None:
        transformer = dataclasses.replace(
            arch.sparse_transformer_config, attention_k_hop=args.attention_k_hop
        )
        arch = dataclasses.replace(arch, sparse_transformer_config=transformer)
    if args.mesh_size is not None:
        arch = dataclasses.replace(arch, mesh_size=args.mesh_size)
    cfg = dataclasses.replace(cfg, denoiser_architecture_config=arch)
    print(json.dumps(info.info(cfg, args.grid)))


# --------------------------------------------------------------------------- train
_TRAIN_HELP = {
    "batch_size": "windows per step (divisible by the number of devices)",
    "num_steps": "optimiser steps in total (changing it when resuming needs --force)",
    "peak_learning_rate": "AdamW learning rate after warm-up",
    "warmup_steps": "linear warm-up steps from 0 to the peak",
    "final_learning_rate_fraction": "cosine decay ends at peak * this",
    "weight_decay": "AdamW decoupled weight decay (of matrices; biases are not decayed)",
    "adam_b1": "AdamW beta1",
    "adam_b2": "AdamW beta2",
    "max_grad_norm": "clip the global gradient norm to this",
    "ema_decay": "EMA of the weights for evaluation/saving (0 = off)",
    "remat": "recompute activations in the backward pass (less memory, more time)",
    "seed": "seed of initialisation, shuffling and noise",
    "validation_fraction": "last fraction of the time span held out for validation",
    "eval_every": "steps between validation loss/CRPS",
    "checkpoint_every": "steps between checkpoints",
    "keep_checkpoints": "newest checkpoints kept",
    "prefetch": "batches prepared ahead by the loader thread",
    "random_longitude_roll": "augment: turn each window by a random number of grid columns",
    "streaming": "read each batch from --data (disk) instead of loading it all into memory",
    "skip_nan_windows": "leave out (and log) windows holding NaN outside SST instead of stopping",
    "per_variable_weights": "NAME=WEIGHT[,NAME=WEIGHT...]: the loss's weight of these target "
    "variables instead of GenCast's (1.0; 0.1 for 10 m winds, mslp, SST, precipitation)",
}


# Allowed values of TrainConfig's numbers: (low, high, low_open, high_open); None: any.
_TRAIN_RANGES = {
    "batch_size": (1, None, False, False),
    "num_steps": (1, None, False, False),
    "peak_learning_rate": (0, None, True, False),
    "warmup_steps": (0, None, False, False),
    "final_learning_rate_fraction": (0, 1, False, False),
    "weight_decay": (0, None, False, False),
    "adam_b1": (0, 1, False, True),
    "adam_b2": (0, 1, False, True),
    "max_grad_norm": (0, None, True, False),
    "ema_decay": (0, 1, False, True),
    "validation_fraction": (0, 1, False, True),
    "eval_every": (1, None, False, False),
    "checkpoint_every": (1, None, False, False),
    "keep_checkpoints": (0, None, False, False),  # 0: keep all
    "prefetch": (0, None, False, False),  # 0: no loader thread
}


def _add_config_flags(p, cls):
    import dataclasses

    for f in dataclasses.fields(cls):
        kind = {"int": int, "float": float, "bool": _bool, _PAIRS: _variable_weights}[
            f.type if isinstance(f.type, str) else f.type.__name__
        ]
        if f.name in _TRAIN_RANGES:
            low, high, low_open, high_open = _TRAIN_RANGES[f.name]
            kind = in_range(kind, low, high, low_open=low_open, high_open=high_open)
        p.add_argument(
            f"--{f.name}",
            type=kind,
            default=f.default,
            help=_TRAIN_HELP.get(f.name, "") + " (TrainConfig.%(dest)s)",
            **({"nargs": "?", "const": True} if kind is _bool else {}),  # bare --flag: true
        )


_PAIRS = "tuple[tuple[str, float], ...]"  # TrainConfig.per_variable_weights


def _variable_weights(text):
    """NAME=WEIGHT[,NAME=WEIGHT...] (empty: none) -> ((NAME, WEIGHT), ...)."""
    pairs = []
    for item in filter(None, text.split(",")):
        name, _, weight = item.partition("=")
        try:
            value = float(weight)
        except ValueError:
            value = math.nan
        if not (name.strip() and math.isfinite(value) and value >= 0):
            raise argparse.ArgumentTypeError(
                f"expected NAME=WEIGHT[,NAME=WEIGHT...] with weights >= 0, got {text!r}"
            )
        pairs.append((name.strip(), value))
    return tuple(pairs)


def flag_text(value) -> str:
    """A config value as its command-line flag reads it back (`_add_config_flags`)."""
    if isinstance(value, tuple):
        return ",".join(f"{name}={weight}" for name, weight in value)
    return str(value)


def _bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _add_multihost_flags(p):
    g = p.add_argument_group(
        "several processes (hosts)",
        "Start the same command in every process (docs/scaling.md). Unset flags fall back "
        "to $JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES, $JAX_PROCESS_ID; with none set, "
        "SLURM, Open MPI and Cloud TPU pods are detected as JAX does it, else one process.",
    )
    g.add_argument("--coordinator_address", default=None, help="host:port of process 0")
    g.add_argument("--num_processes", type=int, default=None, help="number of processes")
    g.add_argument("--process_id", type=int, default=None, help="this process, 0..N-1")


def _initialize_processes(args):
    from minigencast import multihost

    multihost.initialize(args.coordinator_address, args.num_processes, args.process_id)
    return multihost.is_main()


def _add_train(sub):
    from minigencast import config

    p = sub.add_parser(
        "train",
        help="Train a GenCast denoiser (resumes automatically from --run_dir).",
        description=(
            "Train GenCast's denoiser with its loss (docs/design.md §3.3-3.4): AdamW, linear "
            "warm-up then cosine decay, gradient clipping, optional EMA; data-parallel over "
            "all local devices. Writes --run_dir/checkpoints/step_N/{model.npz (DeepMind's "
            "format), train_state.npz}, log.csv, loss_curve.png. Running the same command "
            "again resumes from the newest checkpoint and reproduces the uninterrupted run. "
            "Example: minigencast train --preset cpu --data embedded --run_dir runs/cpu. "
            "API twin: minigencast.train.train()."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--preset",
        default="cpu",
        choices=sorted(config.PRESETS),
        help="model configuration (config.preset)",
    )
    p.add_argument(
        "--data",
        default="embedded",
        help="'embedded' (toy planet: train + validation splits, of which the last "
        "validation_fraction is held out) or a NetCDF/zarr dataset",
    )
    p.add_argument(
        "--stats",
        default=None,
        help="folder of the four *_by_level.nc statistics (default: embedded ones)",
    )
    p.add_argument("--run_dir", required=True, help="output/resume folder")
    p.add_argument(
        "--init_checkpoint", default=None, help="fine-tune from this model.npz (DeepMind's or ours)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--force",
        action="store_true",
        help="resume even with other training settings than the run's (recorded in log.jsonl)",
    )
    p.add_argument(
        "--attention",
        choices=("mha", "splash_mha", "triblockdiag_mha"),
        default=None,
        help="attention layout stored in the config (default: the preset's); all compute "
        "the same function, splash_mha evaluates densely up to 4,096 mesh nodes",
    )
    _add_config_flags(p, config.TrainConfig)
    _add_multihost_flags(p)
    p.set_defaults(run=_run_train)


def _run_train(args):
    import dataclasses
    import os
    import shlex

    main = _initialize_processes(args)
    from minigencast import checkpoint, config, train, training_state
    from minigencast.data import layouts

    cfg = config.preset(args.preset)
    if args.attention:
        arch = cfg.denoiser_architecture_config
        st = dataclasses.replace(arch.sparse_transformer_config, attention_type=args.attention)
        arch = dataclasses.replace(arch, sparse_transformer_config=st)
        cfg = dataclasses.replace(cfg, denoiser_architecture_config=arch)
    tc = config.TrainConfig(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(config.TrainConfig)}
    )
    ds, default_stats = _open_data(args.data, "train")
    stats = _stats(args, default_stats)
    layouts.check_units_and_ranges(ds, stats)
    init = None
    if args.init_checkpoint:
        ck = checkpoint.load(args.init_checkpoint)
        checkpoint.check_same_architecture(ck.config, cfg, args.init_checkpoint)
        init = ck.params
    training_state.check_run_dir(args.run_dir)  # before command.txt is written there
    os.makedirs(args.run_dir, exist_ok=True)
    # The full command with every value spelled out (defaults included): rerunning it
    # reproduces (or resumes) this run whatever the defaults become.
    words = [
        "minigencast",
        "train",
        "--preset",
        args.preset,
        "--data",
        args.data,
        "--run_dir",
        args.run_dir,
    ]
    for flag in ("stats", "init_checkpoint", "attention"):
        if getattr(args, flag):
            words += [f"--{flag}", getattr(args, flag)]
    for f in dataclasses.fields(config.TrainConfig):
        words += [f"--{f.name}", flag_text(getattr(tc, f.name))]
    if main:
        with open(os.path.join(args.run_dir, "command.txt"), "a") as f:
            f.write(" ".join(shlex.quote(w) for w in words) + "\n")
    result = train.train(
        ds,
        stats,
        cfg,
        tc,
        args.run_dir,
        init_params=init,
        progress=not args.quiet,
        force=args.force,
    )
    if main:
        print(f"final checkpoint: {result['checkpoint']}")


# --------------------------------------------------------------------------- forecast
def _add_forecast(sub):
    p = sub.add_parser(
        "forecast",
        help="Roll out an ensemble forecast from a checkpoint.",
        description=(
            "Autoregressive 12 h steps, each one conditional sample (DPM-Solver++ 2S, "
            "docs/design.md §5); members use fold_in(fold_in(key(seed), i), init time) so "
            "the first N members do not depend on the ensemble size and every init draws "
            "its own noise. "
            "Output (sample, init_time, lead_time, [level,] lat, lon) "
            "with CF attributes, written chunk by chunk to --out (.nc or .zarr). Example: "
            "minigencast forecast --checkpoint data/pretrained --data embedded:test "
            "--init_time 2000-11-15T12 --num_steps 30 --num_samples 8 --out fc.nc. "
            "API twin: minigencast.forecast.run()."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--checkpoint", required=True, help="folder with model.npz (+ metadata.json) or a .npz file"
    )
    p.add_argument(
        "--data",
        default="embedded:test",
        help="'embedded:SPLIT' or a NetCDF/zarr dataset holding the input frames",
    )
    p.add_argument(
        "--stats",
        default=None,
        help="statistics folder (default: the checkpoint's stats/ or embedded)",
    )
    p.add_argument(
        "--init_time",
        action="append",
        required=True,
        type=_datetime,
        help="time of the last input frame; repeat for several",
    )
    p.add_argument("--num_steps", type=POSITIVE, default=30, help="12 h steps (30 = 15 days)")
    p.add_argument("--num_samples", type=POSITIVE, default=8, help="ensemble members")
    p.add_argument("--seed", type=SEED, default=0, help="ensemble seed (0 to 2^32 - 1)")
    p.add_argument(
        "--chunk_steps",
        type=POSITIVE,
        default=4,
        help="steps per compiled chunk (memory ~ this, not num_steps)",
    )
    p.add_argument("--out", required=True, help="output file, .nc or .zarr")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier forecast at --out (never any other file)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_multihost_flags(p)
    _add_memory_flags(p)
    p.add_argument(
        "--members_per_batch",
        type=POSITIVE,
        default=None,
        help="(init, member) pairs run together (default: as many as fit the memory budget)",
    )
    p.add_argument(
        "--spectral_filter",
        choices=("on", "off"),
        default="on",
        help="pass every written state through the model's spectral filter, if it has one",
    )
    p.add_argument(
        "--spread_correction",
        choices=("on", "off"),
        default="on",
        help="scale the members about their mean by the model's calibrated factors, if any",
    )
    p.set_defaults(run=_run_forecast)


def _add_memory_flags(p):
    """--attention, --memory_budget_gb, --grid_chunk (docs/performance.md)."""
    from minigencast import transformer

    p.add_argument(
        "--attention",
        choices=transformer.ATTENTION_TYPES,
        default=None,
        help="attention layout (default: the checkpoint's; all compute the same function)",
    )
    p.add_argument(
        "--memory_budget_gb",
        type=in_range(float, 0, low_open=True),
        default=None,
        help="memory to plan for (default: the device's; on CPU 80%% of the RAM)",
    )
    p.add_argument(
        "--grid_chunk",
        type=POSITIVE,
        default=None,
        help="grid nodes and grid-side edges evaluated at a time (default: from the budget)",
    )


def _run_forecast(args):
    import os

    import numpy as np

    main = _initialize_processes(args)
    from minigencast import forecast, normalization, safe_output

    folder = args.checkpoint if os.path.isdir(args.checkpoint) else os.path.dirname(args.checkpoint)
    protect = [os.path.join(folder, "model.npz") if folder == args.checkpoint else args.checkpoint]
    if not args.data.startswith("embedded"):
        protect.append(args.data)
    safe_output.check_output_path(args.out, overwrite=args.overwrite, protect=protect)
    params, cfg, metadata = forecast.load_model(args.checkpoint)
    if metadata is None and main:  # DeepMind's checkpoints, or a model.npz copied alone
        print(
            f"note: {args.checkpoint} has no metadata.json beside the weights: no spectral "
            "filter or spread correction, and the data's grid is not checked"
        )
    ds, default_stats = _open_data(args.data, "test")
    for candidate in (os.path.join(folder, "stats"), os.path.join(folder, "..", "..", "stats")):
        if not args.stats and default_stats is None and os.path.isdir(candidate):
            default_stats = normalization.load_stats(candidate)
    stats = _stats(args, default_stats)
    init_times = np.asarray(args.init_time, "datetime64[ns]")
    path = forecast.run(
        params,
        cfg,
        ds,
        stats,
        init_times,
        args.num_steps,
        args.num_samples,
        seed=args.seed,
        out=args.out,
        chunk_steps=args.chunk_steps,
        metadata=metadata,
        progress=not args.quiet,
        overwrite=args.overwrite,
        protect=protect,
        members_per_batch=args.members_per_batch,
        attention=args.attention,
        memory_budget_gb=args.memory_budget_gb,
        grid_chunk=args.grid_chunk,
        use_spectral_filter=args.spectral_filter == "on",
        use_spread_correction=args.spread_correction == "on",
    )
    if main:
        print(f"wrote {path}")


# --------------------------------------------------------------------------- calibrate
def _add_calibrate_spectra(sub):
    p = sub.add_parser(
        "calibrate-spectra",
        help="Calibrate a model's spectral filter and spread correction on training data "
        "(docs/goals.md).",
        description=(
            "Forecasts from training-span init times and compares each lead's, latitude's "
            "and zonal wavenumber's power with the truth's; forecasts from init times in the "
            "left-out fraction and compares each lead's and channel's spread with the "
            "ensemble mean's error; stores the gains and spread factors "
            "in the model folder (spectral_filter.npz, described in metadata.json) "
            "(minigencast.spectral_filter, minigencast.spread_correction, "
            "minigencast.calibration). Example: "
            "minigencast calibrate-spectra --checkpoint runs/cpu/final --data embedded. "
            "Never calibrate on the data you judge the model on."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="folder with model.npz and metadata.json")
    p.add_argument(
        "--data",
        default="embedded",
        help="'embedded' (train + validation, less the training hold-out) or a dataset",
    )
    p.add_argument("--stats", default=None, help="statistics folder (default: embedded)")
    p.add_argument(
        "--hold_out_fraction",
        type=float,
        default=0.05,
        help="last fraction of --data left out (the training run's validation span)",
    )
    p.add_argument(
        "--spread_span",
        choices=("hold-out", "training"),
        default="hold-out",
        help="where the spread factors are measured: the left-out fraction (weather the "
        "model has not trained on) or the gains' training span",
    )
    p.add_argument("--num_inits", type=POSITIVE, default=16, help="inits per span")
    p.add_argument("--num_samples", type=POSITIVE, default=4, help="members per init")
    p.add_argument("--num_steps", type=POSITIVE, default=10, help="leads calibrated (12 h steps)")
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(run=_run_calibrate_spectra)


def _run_calibrate_spectra(args):
    import os

    from minigencast import calibration

    if not os.path.isdir(args.checkpoint):
        raise ValueError(f"--checkpoint must be a model folder, got {args.checkpoint!r}")
    ds, default_stats = _open_data(args.data, "train")
    path = calibration.calibrate_folder(
        args.checkpoint,
        ds,
        _stats(args, default_stats),
        hold_out_fraction=args.hold_out_fraction,
        spread_span=args.spread_span,
        source=args.data,
        num_inits=args.num_inits,
        num_members=args.num_samples,
        num_steps=args.num_steps,
        seed=args.seed,
    )
    print(f"wrote {path} and its entry in {os.path.join(args.checkpoint, 'metadata.json')}")


# --------------------------------------------------------------------------- evaluate
def _add_evaluate(sub):
    p = sub.add_parser(
        "evaluate",
        help="Verify a forecast and draw the paper's figures.",
        description="API twin: minigencast.evaluation.evaluate(). Prints a score table (CRPS, "
        "ensemble-mean RMSE, spread/skill per variable, level and lead time), writes "
        "scores.csv, one PNG per figure and numbers.json with each figure's numbers and "
        "caption. Figures: crps_vs_lead, rmse_vs_lead, scorecard, spread_skill, "
        "rank_histogram, rev, pooled_crps, spectra, maps.",
    )
    p.add_argument(
        "--forecast",
        required=True,
        help="Forecast .nc or .zarr (sample, init_time, lead_time, [level,] lat, lon).",
    )
    p.add_argument(
        "--truth",
        default="embedded",
        help="Truth .nc/.zarr in the canonical layout, "
        "or 'embedded' for the toy-planet dataset (default: %(default)s).",
    )
    p.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="A baseline forecast in the same layout (repeatable). Default: "
        "persistence derived from the truth.",
    )
    p.add_argument(
        "--figure",
        action="append",
        default=None,
        metavar="NAME",
        help="Figure to draw (repeatable), 'all' (default) or 'none' (table only).",
    )
    p.add_argument("--out", default="evaluation", help="Output folder (default: %(default)s).")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args):
    import pandas as pd

    from minigencast import evaluation, safe_output

    safe_output.check_outputs(args.out, [])  # a file named as --out: before reading anything
    forecast = evaluation.open_forecast(args.forecast)
    truth = evaluation.open_truth(args.truth)
    baselines = None
    if args.baseline:
        baselines = {}
        for item in args.baseline:
            name, sep, path = item.partition("=")
            if not sep:
                raise ValueError(f"--baseline expects NAME=PATH, got {item!r}.")
            baselines[name] = evaluation.open_forecast(path)
    names = args.figure or ["all"]
    names = [] if names == ["none"] else ("all" if "all" in names else names)
    table, results = evaluation.evaluate(forecast, truth, baselines, names, args.out)
    with pd.option_context("display.max_rows", 500, "display.width", 120):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    for r in results:
        print(f"{r.png}\n  {r.caption}")
    print(f"scores: {args.out}/scores.csv")


# --------------------------------------------------------------------------- parser
_ADDERS = [
    _add_quickstart,
    _add_data,
    _add_download,
    _add_stats,
    _add_info,
    _add_train,
    _add_forecast,
    _add_calibrate_spectra,
    _add_evaluate,
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="minigencast",
        description="GenCast, the diffusion ensemble weather forecaster, in readable JAX.",
    )
    debug = {"action": "store_true", "help": "show the traceback of an error"}
    parser.add_argument("--debug", **debug)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _ADDERS:
        add(sub)
    for p in sub.choices.values():  # Also accepted after the subcommand.
        p.add_argument("--debug", **debug, default=argparse.SUPPRESS)
    return parser


def main(argv=None) -> int:
    """Runs the CLI. An error the user can fix (bad input, a refused path, a file
    system problem) is one line on stderr and exit code 2, Ctrl-C one line and 130 (as a
    shell reports SIGINT); tracebacks only with --debug."""
    args = build_parser().parse_args(argv)
    use_cpu_xla_flags()
    try:
        args.run(args)
    except (ValueError, OSError, KeyError, MemoryError) as e:
        if args.debug:
            raise
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"minigencast {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a file being written is dropped, the earlier one kept
        if args.debug:
            raise
        resume = "; rerun the same command to resume" if args.command == "train" else ""
        print(f"minigencast {args.command}: interrupted{resume}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
