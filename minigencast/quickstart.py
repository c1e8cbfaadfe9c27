"""`minigencast quickstart`: train (or load) a small GenCast, forecast, verify, report.

On the embedded toy-planet dataset (data/toy_planet, see its data card):

  1. the model: the CPU-preset checkpoint shipped in data/pretrained/ (--pretrained),
     or trained here from scratch with `train.train` on the training split, then its
     spectral filter and spread correction calibrated (`calibration.calibrate_folder`);
  2. an ensemble forecast (sample, init_time, lead_time, ...) from several
     initialisation times of the held-out test split, 12-hourly to 5 days;
  3. verification against the test-split truth and three baselines built from the
     training split only (persistence, climatological mean, climatological ensemble):
     CRPS (fair for ensembles; for one member it is the MAE), ensemble-mean RMSE
     and the spread/skill ratio (1 = reliable), area-weighted;
  4. the goals of the shipped model (`goals.py`): zonal power spectra of members
     against the truth and spread/skill at 1-5 days, each MET or NOT MET;
  5. figures (PNG), the forecast (NetCDF), `report.json`, a printed skill table and the
     goals.

report.json is {"scores": {VARIABLE: {LEAD_HOURS: {"crps_model", "crps_persistence",
"crps_climatology", "rmse_model", "spread_skill"}}}} with VARIABLE e.g. "z500",
"t850" and LEAD_HOURS strings ("24"); "crps_climatology" is the climatological
ensemble's (the probabilistic climatology); "goals" is `goals.check`'s
{GOAL: {"goal", "met", "variables": {VARIABLE: {"value", "met"}}}, "lead_hours",
"all_met"} with GOAL "spectra_k1_16", "spectra_k17_21", "spectra_share_above_k16" and
"dispersion". Dispersion is judged on the default 16 init times.
"""

from __future__ import annotations

import json
import os
import time

from minigencast import calibration, config, evaluation, forecast, goals, safe_output, train

FIGURES = ["crps_vs_lead", "spread_skill", "maps", "spectra"]  # drawn into OUT/figures
NETCDF_OUTPUTS = ("forecast.nc", "persistence.nc", "climatology.nc")  # written into OUT


def written_by_earlier_quickstart(out: str) -> bool:
    """Whether `out` is a whole quickstart output from a version that kept no record of
    its files (`safe_output.OUTPUTS_RECORD`): its three NetCDF files are our forecasts
    (`safe_output.is_own_forecast`) and report.json holds just "scores" and "goals".
    Such a folder is replaced on a rerun, as it was before the record existed."""
    try:
        with open(os.path.join(out, "report.json")) as f:
            report = json.load(f)
    except (OSError, ValueError):
        return False
    return (
        isinstance(report, dict)
        and set(report) == {"scores", "goals"}
        and all(safe_output.is_own_forecast(os.path.join(out, n)) for n in NETCDF_OUTPUTS)
    )


def repo_data_dir() -> str:
    """data/ of the repository (or $MINIGENCAST_DATA_DIR)."""
    default = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
    return os.environ.get("MINIGENCAST_DATA_DIR", default)


def pretrained_dir() -> str:
    return os.path.join(repo_data_dir(), "pretrained")


def training_data():
    """The embedded train + validation splits (the last part is held out by `train`)."""
    import xarray

    from minigencast import data

    return xarray.concat(
        [data.load_embedded(s).load() for s in ("train", "validation")],
        dim="time",
        data_vars="minimal",
        coords="minimal",
        compat="override",
    )


def all_data():
    """All splits of the embedded dataset (the climatology's reference pool)."""
    import xarray

    from minigencast import data

    return xarray.concat(
        [data.load_embedded(s).load() for s in ("train", "validation", "test")],
        dim="time",
        data_vars="minimal",
        coords="minimal",
        compat="override",
    )


def quickstart(
    out: str = "quickstart_out",
    pretrained: bool = False,
    num_members: int = 8,
    num_inits: int = 16,
    num_steps: int = 10,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Runs the quick start end to end; returns the report dict (also in report.json)."""
    from minigencast import data, figures

    t0 = time.perf_counter()
    # Before any work: a rerun replaces its own outputs, never a user's file of these names.
    names = [*NETCDF_OUTPUTS, "report.json"]
    fig_dir, fig_names = os.path.join(out, "figures"), figures.output_files(FIGURES)
    earlier = written_by_earlier_quickstart(out)
    safe_output.check_outputs(out, names, earlier=earlier)
    safe_output.check_outputs(fig_dir, fig_names, earlier=earlier)
    os.makedirs(out, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise PermissionError(f"output folder {out} is not writable")
    train_ds = training_data()
    test = data.load_embedded("test").load()
    reference = all_data()
    stats = data.embedded_stats()

    if pretrained:
        model_dir = pretrained_dir()
        print(f"Loading the pretrained CPU-preset model from {model_dir}")
    else:
        run_dir = os.path.join(out, "training_run")
        print(
            f"Training the CPU preset on the embedded dataset into {run_dir} "
            f"({config.cpu_training().num_steps} steps)"
        )
        result = train.train(
            train_ds, stats, config.cpu(), config.cpu_training(), run_dir, progress=progress
        )
        model_dir = result["checkpoint"]
        # As scripts/train_cpu.py does: the spectral filter measured on the training span,
        # the spread correction on the training run's hold-out (docs/goals.md).
        print(f"Calibrating its post-processing on the training data into {model_dir}")
        calibration.calibrate_folder(
            model_dir,
            train_ds,
            stats,
            hold_out_fraction=config.cpu_training().validation_fraction,
            source="embedded",
            progress=progress,
        )
    params, cfg, metadata = forecast.load_model(model_dir)

    print(f"Forecasting {num_members} members x {num_inits} init times x {num_steps} steps")
    fc, refs, scores = evaluation.evaluate_model(
        params,
        cfg,
        test,
        reference,
        stats,
        num_inits=num_inits,
        num_members=num_members,
        num_steps=num_steps,
        seed=seed,
        progress=progress,
        metadata=metadata,
    )
    safe_output.claim_outputs(out, names, earlier=earlier)
    safe_output.claim_outputs(fig_dir, fig_names, earlier=earlier)
    fc.to_netcdf(os.path.join(out, "forecast.nc"))
    for name, baseline in refs.items():  # for `minigencast evaluate --baseline NAME=PATH`
        baseline.to_netcdf(os.path.join(out, f"{name}.nc"))

    spectral = goals.spectral_numbers(goals.zonal_spectra(fc, test))
    report = {"scores": scores, "goals": goals.check(spectral, goals.dispersion_numbers(scores))}
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    figures.run(FIGURES, fc, test, refs, fig_dir)
    print()
    print(evaluation.skill_table(scores))
    print()
    print(goals.text(report["goals"], cases=f"{num_inits} init times x {num_members} members"))
    print(
        f"\nWrote {out}/report.json, forecast.nc, {', '.join(f'{n}.nc' for n in refs)} and "
        f"figures/ in "
        f"{time.perf_counter() - t0:.0f} s."
    )
    return report
