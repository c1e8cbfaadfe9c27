"""`minigencast quickstart`: train (or load) a small GenCast, forecast, verify, report.

On the embedded toy-planet dataset (data/toy_planet, see its data card):

  1. the model: the CPU-preset checkpoint shipped in data/pretrained/ (--pretrained),
     or trained here from scratch with `train.train` on the training split;
  2. an ensemble forecast (sample, init_time, lead_time, ...) from several
     initialisation times of the held-out test split, 12-hourly to 5 days;
  3. verification against the test-split truth and three baselines built from the
     training split only (persistence, climatological mean, climatological ensemble):
     CRPS (fair for ensembles; for one member it is the MAE), ensemble-mean RMSE
     and the spread/skill ratio (1 = reliable), area-weighted;
  4. figures (PNG), the forecast (NetCDF), `report.json` and a printed skill table.

report.json is {"scores": {VARIABLE: {LEAD_HOURS: {"crps_model", "crps_persistence",
"crps_climatology", "rmse_model", "spread_skill"}}}} with VARIABLE e.g. "z500",
"t850" and LEAD_HOURS strings ("24"); "crps_climatology" is the climatological
ensemble's (the probabilistic climatology).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from minigencast import baselines, config, forecast, metrics, train

# The variables of the report: short name -> (variable, level or None).
REPORT_VARIABLES = {
    "z500": ("geopotential", 500),
    "t850": ("temperature", 850),
    "t2m": ("2m_temperature", None),
    "msl": ("mean_sea_level_pressure", None),
    "u850": ("u_component_of_wind", 850),
}

# Climatology: same time of day, +-15 days of the valid day of year, from all splits of
# the single simulated year, excluding +-5 days around the valid time itself.
CLIMATOLOGY_WINDOW_DAYS = 15.0
CLIMATOLOGY_EXCLUDE_DAYS = 5.0

# The recipe of data/pretrained/ and of `quickstart` without --pretrained.
QUICKSTART_TRAIN = config.TrainConfig(
    batch_size=4,
    num_steps=12000,
    peak_learning_rate=2e-3,
    warmup_steps=50,
    weight_decay=0.1,
    ema_decay=0.99,
    validation_fraction=0.05,
    eval_every=3000,
    checkpoint_every=500,
    random_longitude_roll=True,
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


def choose_init_times(times, num_inits: int, num_steps: int) -> np.ndarray:
    """`num_inits` init times spread evenly over `times`, each with truth to +num_steps."""
    times = np.asarray(times, "datetime64[ns]")
    step = np.timedelta64(12, "h")
    ok = [
        i
        for i in range(1, len(times))
        if times[i] - step in times and times[i] + num_steps * step in times
    ]
    if len(ok) < num_inits:
        raise ValueError(f"only {len(ok)} init times have {num_steps} steps of truth")
    picks = np.linspace(0, len(ok) - 1, num_inits).round().astype(int)
    return times[np.asarray(ok)[picks]]


def _select(ds, name, level):
    da = ds[name]
    return da.sel(level=level) if level is not None else da


def score(fc, truth, references: dict, variables=REPORT_VARIABLES) -> dict:
    """The report's scores: {short: {lead_hours: {...}}}.

    Args:
      fc: the model forecast (sample >= 2); truth: canonical dataset.
      references: {"persistence": ds, "climatology": ds} baselines in forecast layout.
    """
    out = {}
    keep = ["lead_time"]
    for short, (name, level) in variables.items():
        if name not in fc:
            continue
        f, t = _select(fc, name, level), _select(truth, name, level)
        rows = {
            "crps_model": metrics.crps(f, t, fair=True, preserve_dims=keep),
            "rmse_model": metrics.rmse(f, t, preserve_dims=keep),
            "spread_skill": metrics.spread_skill_ratio(f, t, preserve_dims=keep),
        }
        for ref_name, ref in references.items():
            r = _select(ref, name, level)
            rows[f"crps_{ref_name}"] = metrics.crps(
                r, t, fair=r.sizes["sample"] >= 2, preserve_dims=keep
            )
        hours = (fc["lead_time"].values / np.timedelta64(1, "h")).astype(int)
        out[short] = {
            str(h): {k: float(np.asarray(v.values)[i]) for k, v in sorted(rows.items())}
            for i, h in enumerate(hours)
        }
    return out


def skill_table(scores: dict, leads_hours=(24, 72, 120)) -> str:
    """Plain-text table of CRPS (model / persistence / climatology) and spread/skill."""
    lines = [
        f"{'variable':>8} {'lead':>5} {'CRPS model':>11} {'persist.':>10} {'climat.':>10} "
        f"{'RMSE':>9} {'spr/skill':>9}  beats both",
    ]
    for short, per_lead in scores.items():
        for h in leads_hours:
            s = per_lead.get(str(h))
            if s is None:
                continue
            beats = s["crps_model"] < min(s["crps_persistence"], s["crps_climatology"])
            lines.append(
                f"{short:>8} {h // 24:>4}d {s['crps_model']:>11.4g} {s['crps_persistence']:>10.4g} "
                f"{s['crps_climatology']:>10.4g} {s['rmse_model']:>9.4g} "
                f"{s['spread_skill']:>9.3f}  {'yes' if beats else 'no'}"
            )
    return "\n".join(lines)


def evaluate_model(
    params,
    cfg,
    test,
    reference,
    stats,
    *,
    num_inits,
    num_members,
    num_steps,
    seed=0,
    progress=True,
    metadata=None,
    climatology_members=None,
):
    """Forecasts + baselines + scores on the test split: (forecast, refs, scores).

    `reference` is the climatology's pool of states (here all splits); states within
    CLIMATOLOGY_EXCLUDE_DAYS of a valid time are excluded.
    """
    init_times = choose_init_times(test["time"].values, num_inits, num_steps)
    fc = forecast.run(
        params,
        cfg,
        test,
        stats,
        init_times,
        num_steps,
        num_members,
        seed=seed,
        metadata=metadata,
        progress=progress,
        chunk_steps=num_steps,
    )
    lead_times = fc["lead_time"].values
    refs = {
        "persistence": baselines.persistence(test, init_times, lead_times),
        "climatology": baselines.climatological_ensemble(
            reference,
            init_times,
            lead_times,
            num_members=climatology_members or num_members,
            window_days=CLIMATOLOGY_WINDOW_DAYS,
            exclude_days=CLIMATOLOGY_EXCLUDE_DAYS,
        ),
    }
    return fc, refs, score(fc, test, refs)


def quickstart(
    out: str = "quickstart_out",
    pretrained: bool = False,
    num_members: int = 8,
    num_inits: int = 4,
    num_steps: int = 10,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Runs the quick start end to end; returns the report dict (also in report.json)."""
    from minigencast import data, figures

    t0 = time.perf_counter()
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
            f"({QUICKSTART_TRAIN.num_steps} steps)"
        )
        result = train.train(
            train_ds, stats, config.cpu(), QUICKSTART_TRAIN, run_dir, progress=progress
        )
        model_dir = result["checkpoint"]
    params, cfg, metadata = forecast.load_model(model_dir)

    print(f"Forecasting {num_members} members x {num_inits} init times x {num_steps} steps")
    fc, refs, scores = evaluate_model(
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
    fc.to_netcdf(os.path.join(out, "forecast.nc"))
    for name, baseline in refs.items():  # for `minigencast evaluate --baseline NAME=PATH`
        baseline.to_netcdf(os.path.join(out, f"{name}.nc"))

    report = {"scores": scores}
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    fig_dir = os.path.join(out, "figures")
    os.makedirs(fig_dir, exist_ok=True)
    for name in ("crps_vs_lead", "spread_skill", "maps"):
        figures.FIGURES[name](fc, test, refs, fig_dir)
    print()
    print(skill_table(scores))
    print(
        f"\nWrote {out}/report.json, forecast.nc, {', '.join(f'{n}.nc' for n in refs)} and "
        f"figures/ in "
        f"{time.perf_counter() - t0:.0f} s."
    )
    return report
