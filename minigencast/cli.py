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


# --------------------------------------------------------------------------- quickstart
def _add_quickstart(sub):
    p = sub.add_parser(
        "quickstart",
        help="Train (or load) a small model on the embedded dataset, forecast and verify it.",
        description=(
            "The first thing to run. On the embedded toy-planet dataset: load the CPU-preset "
            "model shipped in data/pretrained/ (--pretrained, ~2-4 min on a laptop CPU) or "
            "train it from scratch (about 55 min on 2 cores), forecast an ensemble from "
            "held-out initial conditions, score it (CRPS, RMSE, spread/skill) against "
            "persistence and climatology, and write forecast.nc, report.json and PNG figures "
            "into --out. API twin: minigencast.quickstart.quickstart()."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="quickstart_out", help="Output folder.")
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="Load the small checkpoint shipped in data/pretrained/ instead of training.",
    )
    p.add_argument("--num_samples", type=int, default=8, help="Ensemble members.")
    p.add_argument("--num_inits", type=int, default=4, help="Initialisation times verified.")
    p.add_argument("--num_steps", type=int, default=10, help="12 h steps (10 = 5 days).")
    p.add_argument("--seed", type=int, default=0, help="Ensemble seed.")
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
    import xarray

    from minigencast.data import layouts

    ds = xarray.open_zarr(spec) if spec.rstrip("/").endswith(".zarr") else xarray.open_dataset(spec)
    return layouts.to_canonical(ds), None


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
    t.add_argument("--years", type=float, default=1.0, help="Simulated years (%(default)s).")
    t.add_argument("--resolution", type=float, default=5.625, help="Grid, deg (%(default)s).")
    t.add_argument("--levels", default="250,500,850", help="Pressure levels, hPa (%(default)s).")
    t.add_argument("--seed", type=int, default=0, help="Initial-perturbation seed (%(default)s).")
    t.add_argument("--spinup-days", type=float, default=200.0, help="Spin-up days (%(default)s).")
    t.add_argument("--num-steps", type=int, default=None, help="12 h outputs (overrides --years).")
    t.set_defaults(run=_run_data_toy_planet)
    w = dsub.add_parser(
        "weatherbench",
        help="Write a canonical local zarr subset of a WeatherBench-2 ERA5 store.",
        description="API twin: minigencast.data.weatherbench.subset_to_zarr().",
    )
    w.add_argument("store", help="Path/URL of the zarr store, or 1440x721, 240x121, 64x32.")
    w.add_argument("--out", required=True, help="Output zarr path.")
    w.add_argument("--start", default=None, help="First time, e.g. 2019-01-01.")
    w.add_argument("--end", default=None, help="Last time, e.g. 2019-12-31T12.")
    w.add_argument("--task", choices=["gencast", "toy-planet"], default="gencast")
    w.add_argument("--levels", default=None, help="Comma-separated hPa (default: the task's).")
    w.add_argument("--subsample", type=int, default=1, help="Point subsampling (4: 0.25->1 deg).")
    w.set_defaults(run=_run_data_weatherbench)


def _levels(text):
    return None if text is None else tuple(int(x) for x in text.split(","))


def _task(name, levels=None):
    from minigencast import variables

    if name == "toy-planet":
        return variables.toy_planet_task(levels or variables.TOY_PLANET_LEVELS)
    return variables.gencast_task(levels or variables.PRESSURE_LEVELS_WEATHERBENCH_13)


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

    out = weatherbench.subset_to_zarr(
        args.store,
        args.out,
        _task(args.task, _levels(args.levels)),
        start=args.start,
        end=args.end,
        subsample_factor=args.subsample,
    )
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
    p.add_argument("--base-url", default=None, help="Mirror replacing DeepMind's bucket URL.")
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
    p.add_argument("dataset", help="NetCDF or zarr path (any supported layout), or 'embedded'.")
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
    import xarray

    from minigencast import data, normalization
    from minigencast.data import layouts

    if args.dataset == "embedded":
        ds = data.load_embedded("train")
    elif args.dataset.rstrip("/").endswith(".zarr"):
        ds = xarray.open_zarr(args.dataset)
    else:
        ds = xarray.open_dataset(args.dataset, chunks={})
    task = None if args.task == "all" else _task(args.task, _levels(args.levels))
    ds = layouts.to_canonical(ds, task, levels=_levels(args.levels), nan_check=False)
    for path in normalization.write_stats(normalization.compute_stats(ds), args.out):
        print(path)


# --------------------------------------------------------------------------- info
def _add_info(sub):
    p = sub.add_parser(
        "info",
        help="Print a JSON description of a configuration: graph sizes, parameters, memory.",
        description="API twin: minigencast.graphs.info(cfg, grid).",
    )
    p.add_argument("--preset", required=True, help="Preset name, e.g. gencast_1p0deg_mini.")
    p.add_argument("--grid", help="NLATxNLON, equiangular with poles (default: the preset's).")
    p.add_argument("--mesh-size", type=int, help="Icosahedral splits (default: the preset's).")
    p.add_argument("--attention-k-hop", type=int, help="Attention hops (default: the preset's).")
    p.set_defaults(run=_run_info)


def _run_info(args):
    import dataclasses
    import json

    from minigencast import config, graphs

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
    grid = None
    if args.grid:
        try:
            n_lat, n_lon = (int(v) for v in args.grid.lower().split("x"))
        except ValueError:
            raise ValueError(f"--grid must look like 181x360, got {args.grid!r}.") from None
        grid = (n_lat, n_lon)
    print(json.dumps(graphs.info(cfg, grid)))


# --------------------------------------------------------------------------- train
_TRAIN_HELP = {
    "batch_size": "windows per step (divisible by the number of devices)",
    "num_steps": "optimiser steps in total (a resumed run continues up to this)",
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
}


def _add_config_flags(p, cls):
    import dataclasses

    for f in dataclasses.fields(cls):
        kind = {"int": int, "float": float, "bool": _bool}[
            f.type if isinstance(f.type, str) else f.type.__name__
        ]
        p.add_argument(
            f"--{f.name}",
            type=kind,
            default=f.default,
            help=_TRAIN_HELP.get(f.name, "") + " (TrainConfig.%(dest)s)",
        )


def _bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _add_train(sub):
    from minigencast import config

    p = sub.add_parser(
        "train",
        help="Train a GenCast denoiser (resumes automatically from --run_dir).",
        description=(
            "Train GenCast's denoiser with its loss (spec sec. 3.3-3.4): AdamW, linear "
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
        "--attention",
        choices=("mha", "splash_mha", "triblockdiag_mha"),
        default=None,
        help="attention layout stored in the config (default: the preset's); all compute "
        "the same function, splash_mha evaluates densely up to 4,096 mesh nodes",
    )
    _add_config_flags(p, config.TrainConfig)
    p.set_defaults(run=_run_train)


def _run_train(args):
    import dataclasses
    import os
    import shlex

    from minigencast import checkpoint, config, train

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
    init = None
    if args.init_checkpoint:
        ck = checkpoint.load(args.init_checkpoint)
        if ck.config.task_config != cfg.task_config:
            raise ValueError(f"{args.init_checkpoint} was trained for another task config")
        init = ck.params
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
        words += [f"--{f.name}", str(getattr(tc, f.name))]
    with open(os.path.join(args.run_dir, "command.txt"), "a") as f:
        f.write(" ".join(shlex.quote(w) for w in words) + "\n")
    result = train.train(
        ds, stats, cfg, tc, args.run_dir, init_params=init, progress=not args.quiet
    )
    print(f"final checkpoint: {result['checkpoint']}")


# --------------------------------------------------------------------------- forecast
def _add_forecast(sub):
    p = sub.add_parser(
        "forecast",
        help="Roll out an ensemble forecast from a checkpoint.",
        description=(
            "Autoregressive 12 h steps, each one conditional sample (DPM-Solver++ 2S, spec "
            "sec. 5); members use fold_in(key(seed), i) so the first N members do not depend "
            "on the ensemble size. Output (sample, init_time, lead_time, [level,] lat, lon) "
            "with CF attributes, written chunk by chunk to --out (.nc or .zarr). Example: "
            "minigencast forecast --checkpoint data/pretrained --data embedded:test "
            "--init_time 2001-03-01T12 --num_steps 30 --num_samples 8 --out fc.nc. "
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
        help="time of the last input frame; repeat for several",
    )
    p.add_argument("--num_steps", type=int, default=30, help="12 h steps (30 = 15 days)")
    p.add_argument("--num_samples", type=int, default=8, help="ensemble members")
    p.add_argument("--seed", type=int, default=0, help="ensemble seed")
    p.add_argument(
        "--chunk_steps",
        type=int,
        default=4,
        help="steps per compiled chunk (memory ~ this, not num_steps)",
    )
    p.add_argument("--out", required=True, help="output file, .nc or .zarr")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_memory_flags(p)
    p.add_argument(
        "--members_per_batch",
        type=_positive(int),
        default=None,
        help="(init, member) pairs run together (default: as many as fit the memory budget)",
    )
    p.set_defaults(run=_run_forecast)


def _positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
        return value

    return parse


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
        type=_positive(float),
        default=None,
        help="memory to plan for (default: the device's; on CPU 80%% of the RAM)",
    )
    p.add_argument(
        "--grid_chunk",
        type=_positive(int),
        default=None,
        help="grid nodes and grid-side edges evaluated at a time (default: from the budget)",
    )


def _run_forecast(args):
    import os

    import numpy as np

    from minigencast import forecast, normalization

    params, cfg, metadata = forecast.load_model(args.checkpoint)
    ds, default_stats = _open_data(args.data, "test")
    folder = args.checkpoint if os.path.isdir(args.checkpoint) else os.path.dirname(args.checkpoint)
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
        members_per_batch=args.members_per_batch,
        attention=args.attention,
        memory_budget_gb=args.memory_budget_gb,
        grid_chunk=args.grid_chunk,
    )
    print(f"wrote {path}")


# --------------------------------------------------------------------------- evaluate
def _add_evaluate(sub):
    p = sub.add_parser(
        "evaluate",
        help="Verify a forecast and draw the paper's figures.",
        description="API twin: minigencast.figures.evaluate(). Prints a score table (CRPS, "
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

    from minigencast import figures

    forecast = figures.to_forecast_layout(figures.open_dataset(args.forecast))
    if args.truth == "embedded":
        truth = figures.embedded_truth()
    else:
        truth = figures.open_dataset(args.truth)
        if not {"time", "lat", "lon"} <= set(truth.dims):  # DeepMind / WB2 / ERA5 layouts
            from minigencast.data import layouts

            truth = layouts.to_canonical(truth, nan_check=False)
    baselines = None
    if args.baseline:
        baselines = {}
        for item in args.baseline:
            name, sep, path = item.partition("=")
            if not sep:
                raise ValueError(f"--baseline expects NAME=PATH, got {item!r}.")
            baselines[name] = figures.to_forecast_layout(figures.open_dataset(path))
    names = args.figure or ["all"]
    names = [] if names == ["none"] else ("all" if "all" in names else names)
    table, results = figures.evaluate(forecast, truth, baselines, names, args.out)
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
    _add_evaluate,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minigencast",
        description="GenCast, the diffusion ensemble weather forecaster, in readable JAX.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _ADDERS:
        add(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    use_cpu_xla_flags()
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"minigencast {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
