"""Benchmark: a calibrated model's scores on the training run's hold-out.

    python benchmarks/hold_out.py [MODEL ...] [--inits 20 --members 8]

MODEL is a checkpoint folder or data/pretrained (the default), each with its spectral
filter and spread correction, as `minigencast forecast` uses them. For each it forecasts
5 days, 12-hourly, from init times spread over the hold-out (the last 5 % of the embedded
train + validation span, 15-30 October, which the recipe never trains on;
noise_band.hold_out), and prints the fair CRPS at 1-5 days against persistence and the
climatological ensemble, the mean CRPS over the 12-hourly leads 1-5 days, at how many of
those leads the model beats both baselines, spread/skill, and the goals' spectral numbers
(goals.py, docs/goals.md). This is where recipe choices are decided, before the test
season is read (data/pretrained/README.md). Since 2026-12-06 the calibration measures the
spread factors on this span (calibration.hold_out_span), so its spread/skill is near 1 by
construction; judge dispersion on an unseen year (unseen_year.py). 20 inits x 8 members:
about 10 min per model on 2 cores.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from anywhere
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from noise_band import NUM_STEPS, hold_out  # noqa: E402

from minigencast import cli, data, evaluation, forecast, goals, quickstart  # noqa: E402


def evaluate(model, truth, pool, stats, num_inits, num_members, cases):
    """Forecast `truth`'s init times with MODEL (its filter and correction on), print the
    skill table, the mean CRPS and spread/skill over the leads 1-5 days, and the goals."""
    params, cfg, metadata = forecast.load_model(model)
    fc, _, scores = evaluation.evaluate_model(
        params,
        cfg,
        truth,
        pool,
        stats,
        num_inits=num_inits,
        num_members=num_members,
        num_steps=NUM_STEPS,
        metadata=metadata,
        progress=False,
    )
    print(f"\n{model}: {cases}")
    scores = {k: scores[k] for k in ("z500", "t850") if k in scores}
    print(evaluation.skill_table(scores))
    for short, per_lead in scores.items():
        leads = [h for h in per_lead if goals.in_goal_leads(float(h))]
        crps = [per_lead[h]["crps_model"] for h in leads]
        ssr = [per_lead[h]["spread_skill"] for h in leads]
        beats = sum(
            per_lead[h]["crps_model"]
            < min(per_lead[h]["crps_persistence"], per_lead[h]["crps_climatology"])
            for h in leads
        )
        print(
            f"{short}: mean CRPS over {len(leads)} leads {np.mean(crps):.4g}, "
            f"spread/skill {min(ssr):.3f}-{max(ssr):.3f}, "
            f"better than both baselines at {beats} of the {len(leads)} leads"
        )
    report = goals.check(
        goals.spectral_numbers(goals.zonal_spectra(fc, truth)),
        goals.dispersion_numbers(scores),
    )
    print(goals.text(report, cases=cases))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", default=[str(quickstart.pretrained_dir())])
    p.add_argument("--inits", type=int, default=20)
    p.add_argument("--members", type=int, default=8)
    args = p.parse_args()
    cli.use_cpu_xla_flags()
    truth, pool = hold_out().load(), quickstart.all_data()
    cases = f"hold-out, {args.inits} inits x {args.members} members"
    for model in args.models:
        evaluate(model, truth, pool, data.embedded_stats(), args.inits, args.members, cases)


if __name__ == "__main__":
    main()
