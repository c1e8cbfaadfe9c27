"""Benchmark: a calibrated model on an independent toy-planet year, made with another seed.

    python benchmarks/unseen_year.py [MODEL ...] [--seed 1 --year_dir runs/toy_planet_seed1]

The shipped model is trained, calibrated and chosen on the embedded year (seed 0); the
issue that set its goals asks that it also hold on a year nobody has seen. This script
makes such a year with the same dynamical core and settings as the embedded one, only
the seed of the initial surface-pressure perturbation changed
(`minigencast.data.toy_planet.generate`, the `toy-planet` extra; about 10 min on 2
cores, reused if --year_dir already holds it), then makes the quickstart's forecast on
that year's test season (Nov-Dec, 16 inits x 8 members, 5 days, 12-hourly) with each
MODEL (default data/pretrained; its filter and correction on, its own normalisation
statistics), and prints the skill against persistence and the climatological ensemble
(drawn from that year's own states), the mean CRPS over the leads 1-5 days, spread/skill,
and the goals (goals.py, docs/goals.md), as `hold_out.py` does. About 15 min per model.
A report, not a tuning set: no recipe choice is made on it.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

import xarray

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from anywhere
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from hold_out import evaluate  # noqa: E402

from minigencast import cli, data, normalization, quickstart  # noqa: E402
from minigencast.data import toy_planet  # noqa: E402


def load_year(year_dir: str, seed: int) -> dict:
    """{split: Dataset} of the toy-planet year in `year_dir`, generated first if absent."""
    paths = {s: os.path.join(year_dir, f"{s}.nc") for s in data.SPLITS}
    if not all(os.path.exists(p) for p in paths.values()):
        if os.path.exists(year_dir) and os.listdir(year_dir):
            sys.exit(f"error: {year_dir} exists but holds no complete toy-planet year")
        toy_planet.generate(year_dir, seed=seed)
    return {s: data.open_dataset(p).load() for s, p in paths.items()}


def model_stats(model: str) -> dict:
    """The statistics a model folder was trained with (`stats/` beside it), else the
    embedded ones."""
    folder = os.path.join(model, "stats")
    return normalization.load_stats(folder) if os.path.isdir(folder) else data.embedded_stats()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", default=[str(quickstart.pretrained_dir())])
    p.add_argument("--seed", type=int, default=1, help="toy-planet seed (the embedded one is 0)")
    p.add_argument("--year_dir", default=None, help="default: runs/toy_planet_seed<SEED>")
    p.add_argument("--inits", type=int, default=16)
    p.add_argument("--members", type=int, default=8)
    args = p.parse_args()
    if args.seed == 0:
        p.error("--seed 0 is the embedded year the model was trained on; choose another")
    cli.use_cpu_xla_flags()
    year = load_year(args.year_dir or f"runs/toy_planet_seed{args.seed}", args.seed)
    pool = xarray.concat(
        [year[s] for s in data.SPLITS], "time", data_vars="minimal", coords="minimal"
    )
    cases = f"toy planet seed {args.seed}, test season, {args.inits} inits x {args.members}"
    for model in args.models:
        stats = model_stats(model)
        evaluate(model, year["test"], pool, stats, args.inits, args.members, cases)


if __name__ == "__main__":
    main()
