"""Benchmark: the shipped model's spectra and dispersion with band-limited sampler noise.

    python benchmarks/noise_band.py [--bands none 21 16 12] [--inits 8 --members 8]

For each band T (`config.NoiseConfig.spherical_truncation`; "none" is GenCast's
l < n_lon / 2, what the model was trained with) it forecasts 5 days from init times spread
over the training run's hold-out (the last 5 % of the embedded train + validation span,
15-30 October, which no model trained on) with the shipped weights, changing only the
sampler's noise, and prints the goals' numbers (`goals.py`, docs/goals.md): member/truth
zonal power R_k for k = 1-16 and 17-21, the share of power above k = 16, the ensemble
mean's R_k at the last lead, and spread/skill at 1-5 days. docs/goals.md shows the table
this prints (8 inits x 8 members: ~6 min per band on 2 cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from anywhere
from minigencast import (  # noqa: E402
    calibration,
    cli,
    data,
    evaluation,
    forecast,
    goals,
    quickstart,
)

NUM_STEPS = 10  # 5 days
HOLD_OUT = 0.05  # config.cpu_training().validation_fraction


def hold_out():
    """The last 5 % of the embedded train + validation span (and the two frames before),
    where the recipe's calibration measures the spread factors (calibration.hold_out_span)."""
    return calibration.hold_out_span(quickstart.training_data(), HOLD_OUT)[1]


def run_band(params, cfg, truth, stats, metadata, band, num_inits, num_members) -> dict:
    noise_config = dataclasses.replace(cfg.noise_config, spherical_truncation=band)
    cfg = dataclasses.replace(cfg, noise_config=noise_config)
    init_times = evaluation.choose_init_times(truth["time"].values, num_inits, NUM_STEPS)
    fc = forecast.run(
        params, cfg, truth, stats, init_times, NUM_STEPS, num_members, metadata=metadata
    )
    spectral = goals.spectral_numbers(goals.zonal_spectra(fc, truth))
    mean = goals.zonal_spectra(fc.mean("sample").expand_dims(sample=1), truth)
    last = {
        short: float((s["members"] / s["truth"]).isel(lead_time=-1).sel(zonal_wavenumber=20))
        for short, s in mean.items()
    }
    dispersion = goals.dispersion_numbers(evaluation.score(fc, truth, {}))
    return {"spectral": spectral, "ensemble_mean_R20_last_lead": last, "dispersion": dispersion}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bands", nargs="+", default=["none", "21", "16", "12"])
    p.add_argument("--inits", type=int, default=8)
    p.add_argument("--members", type=int, default=8)
    args = p.parse_args()
    cli.use_cpu_xla_flags()
    params, cfg, metadata = forecast.load_model(quickstart.pretrained_dir())
    truth, stats = hold_out(), data.embedded_stats()
    print("band  var   R_k k=1-16     R_k k=17-21     share>16 (truth)    mean R_20  spr/skill")
    for band in args.bands:
        t = None if band == "none" else int(band)
        r = run_band(params, cfg, truth, stats, metadata, t, args.inits, args.members)
        for short, s in r["spectral"].items():
            lo, hi = s["ratio_k1_16"]
            lo2, hi2 = s["ratio_k17_21"] or (np.nan, np.nan)
            ss = r["dispersion"].get(short, {}).get("spread_skill")
            print(
                f"{band:>4}  {short:<5} {lo:5.2f}-{hi:<8.3g} {lo2:6.3g}-{hi2:<8.3g} "
                f"{s['share_above_k16']:8.2%} ({s['truth_share_above_k16']:.3%}) "
                f"{r['ensemble_mean_R20_last_lead'][short]:9.3g}  "
                + (f"{ss[0]:.2f}-{ss[1]:.2f}" if ss else "")
            )


if __name__ == "__main__":
    main()
