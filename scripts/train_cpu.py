"""Train the CPU preset from scratch on the embedded toy planet, calibrate it, verify it.

    python scripts/train_cpu.py --run_dir runs/cpu [--copy_to data/pretrained]

1. runs `minigencast train` with the recipe below (the exact command is printed and
   appended to RUN_DIR/command.txt; an existing complete run is reused, an interrupted
   one resumed);
2. runs `minigencast calibrate-spectra` on the final checkpoint: the spectral filter's
   gains from forecasts of the training span, the spread correction's factors from
   forecasts of the run's hold-out (spectral_filter.py, spread_correction.py,
   calibration.py, docs/goals.md);
3. verifies on the held-out test split (Nov-Dec): 8-member ensembles, 5 days,
   12-hourly, from 8 init times (the skill benchmark) and from 16 (the goals'
   dispersion and spectra, as the quickstart), against persistence and the
   climatological ensemble (evaluation.evaluate_model);
4. prints the three goals, each MET or NOT MET, and writes RUN_DIR/benchmark.json; with
   --copy_to, copies the final model (model.npz, metadata.json with the filter), its
   statistics, the command and the training log there.

Goals:
  time       training + calibration within 60 minutes on the 2-core machine;
  skill      at every 12-hourly lead of 1-5 days z500 and t850 beat both baselines
             on CRPS (8 inits), and CRPS at 1, 3, 5 days is no worse than the model
             shipped before the filter (SKILL_BEFORE), with spread/skill in
             0.85-1.15 (16 inits, goals.GOALS);
  spectra    member/truth zonal power and small-scale share (goals.GOALS, 16 inits).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import sys
import time

# Runnable from a clone without installing: the repository root on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minigencast import cli, config  # noqa: E402

# The recipe is config.cpu_training() (one source): its TrainConfig fields that differ from the
# defaults become CLI flags, so a new recipe field cannot be left out of the command.
RECIPE_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(config.TrainConfig)
    if getattr(config.cpu_training(), f.name) != f.default
)
RECIPE = ["--preset", "cpu", "--data", "embedded"] + [
    word
    for f in RECIPE_FIELDS
    for word in (f"--{f}", cli.flag_text(getattr(config.cpu_training(), f)))
]


# CRPS of the model shipped before the spectral filter, on the benchmark's 8 inits x 8
# members (data/pretrained/README.md): {variable: {lead hours: CRPS}}.
SKILL_BEFORE = {
    "z500": {24: 63.4, 72: 201.2, 120: 293.6},
    "t850": {24: 0.398, 72: 1.051, 120: 1.543},
}


def training_wall_time(run_dir):
    """Seconds of training in log.csv (summed over resumed segments)."""
    with open(os.path.join(run_dir, "log.csv")) as f:
        rows = list(csv.DictReader(f))
    total, last = 0.0, 0.0
    for r in rows:
        w = float(r["wall_s"])
        if w < last:  # a resumed segment restarts the clock
            total += last
        last = w
    return total + last, int(rows[-1]["step"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run_dir", default="runs/cpu")
    p.add_argument("--num_inits", type=int, default=8, help="inits of the skill benchmark")
    p.add_argument("--goal_inits", type=int, default=16, help="inits of the goals")
    p.add_argument("--num_members", type=int, default=8)
    p.add_argument("--num_steps", type=int, default=10)
    p.add_argument("--copy_to", default=None)
    args = p.parse_args(argv)

    from minigencast import (
        data,
        evaluation,
        forecast,
        goals,
        quickstart,
        spectral_filter,
        training_state,
    )

    # The CLI's CPU setting (cli.CPU_XLA_FLAGS unless XLA_FLAGS is set), for training and
    # for the verification below alike: set before JAX's first computation.
    xla_flags = cli.use_cpu_xla_flags()

    command = ["train", *RECIPE, "--run_dir", args.run_dir]
    print(f"XLA_FLAGS={xla_flags!r} minigencast " + " ".join(command), flush=True)
    t0 = time.perf_counter()
    if cli.main(command) != 0:
        sys.exit("training failed")
    print(f"(this invocation: {time.perf_counter() - t0:.0f} s)")
    wall, steps = training_wall_time(args.run_dir)
    final = training_state.latest(os.path.join(args.run_dir, "checkpoints"))

    calibrate = ["calibrate-spectra", "--checkpoint", final, "--data", "embedded"]
    print("minigencast " + " ".join(calibrate), flush=True)
    t1 = time.perf_counter()
    if cli.main(calibrate) != 0:
        sys.exit("calibration failed")
    calibration_s = time.perf_counter() - t1

    params, cfg, metadata = forecast.load_model(final)
    test = data.load_embedded("test").load()
    t2 = time.perf_counter()
    runs = {}
    for name, inits in (("skill", args.num_inits), ("goals", args.goal_inits)):
        runs[name] = evaluation.evaluate_model(
            params,
            cfg,
            test,
            quickstart.all_data(),
            data.embedded_stats(),
            num_inits=inits,
            num_members=args.num_members,
            num_steps=args.num_steps,
            metadata=metadata,
            progress=False,
        )
    eval_s = time.perf_counter() - t2
    scores = runs["skill"][2]
    fc, _, goal_scores = runs["goals"]
    report = goals.check(
        goals.spectral_numbers(goals.zonal_spectra(fc, test)),
        goals.dispersion_numbers(goal_scores),
    )

    print(
        f"\ntraining: {steps} steps in {wall / 60:.1f} min (wall, from log.csv); "
        f"calibration {calibration_s:.0f} s; verification {eval_s:.0f} s; "
        f"{args.num_members} members x {args.num_inits} inits (skill) and x "
        f"{args.goal_inits} inits (goals)"
    )
    print(evaluation.skill_table({k: scores[k] for k in ("z500", "t850") if k in scores}))
    in_time = wall + calibration_s <= 3600
    beats = all(
        s["crps_model"] < min(s["crps_persistence"], s["crps_climatology"])
        for k in ("z500", "t850")
        for h, s in scores[k].items()
        if 24 <= int(h) <= 120
    )
    no_worse = all(
        scores[k][str(h)]["crps_model"] <= before
        for k, leads in SKILL_BEFORE.items()
        for h, before in leads.items()
    )
    skill = beats and no_worse and report["dispersion"]["met"] is True
    spectra = all(report[k]["met"] is True for k in report if k.startswith("spectra_"))
    verdict = {True: "MET", False: "NOT MET"}
    print(
        f"time: training + calibration {(wall + calibration_s) / 60:.1f} min <= 60: "
        f"{verdict[in_time]}"
    )
    print(
        f"skill and dispersion: beats both baselines {beats}, CRPS at 1/3/5 d no worse "
        f"than before {no_worse}, dispersion {report['dispersion']['met']}: "
        f"{verdict[skill]}"
    )
    print(goals.text(report, cases=f"{args.goal_inits} inits x {args.num_members} members"))
    print(f"spectra: {verdict[spectra]}")
    goal = in_time and skill and spectra
    out = {
        "training_wall_s": wall,
        "steps": steps,
        "calibration_s": calibration_s,
        "evaluation_s": eval_s,
        "num_members": args.num_members,
        "num_inits": args.num_inits,
        "goal_inits": args.goal_inits,
        "command": "minigencast " + " ".join(command),
        "xla_flags": xla_flags,
        "checkpoint": final,
        "goal_met": goal,
        "goals": {"time": in_time, "skill_and_dispersion": skill, "spectra": spectra},
        "scores": scores,
        "goal_report": report,
    }
    with open(os.path.join(args.run_dir, "benchmark.json"), "w") as f:
        json.dump(out, f, indent=1)

    if args.copy_to:
        os.makedirs(args.copy_to, exist_ok=True)
        # The model, its grid and the spectral filter's gains (which metadata.json names).
        for name in ("model.npz", "metadata.json", spectral_filter.FILE):
            shutil.copy2(os.path.join(final, name), args.copy_to)
        for name in ("log.csv", "loss_curve.png", "command.txt", "benchmark.json"):
            src = os.path.join(args.run_dir, name)
            if os.path.exists(src):
                shutil.copy2(src, args.copy_to)
        shutil.copytree(
            os.path.join(args.run_dir, "stats"),
            os.path.join(args.copy_to, "stats"),
            dirs_exist_ok=True,
        )
        print(f"copied the model and its records to {args.copy_to}")


if __name__ == "__main__":
    main()
