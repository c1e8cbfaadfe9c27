"""One evaluation layer: open -> forecast -> baselines -> score table -> figures.

`quickstart`, `minigencast evaluate` (`evaluate`), `scripts/train_cpu.py` and any user
script verify a forecast the same way:

  open_forecast, open_truth   a forecast file in any supported layout -> ours; a truth
                              spec ("embedded", or a file in any layout) -> canonical;
  evaluate_model              forecast the test season from spread-out init times, build
                              persistence and the climatological ensemble, score them;
  score, skill_table          the report's scores (CRPS, RMSE, spread/skill per lead) and
                              their printed table;
  evaluate                    the score table of every variable (scores.csv) and the
                              paper's figures (`figures.py` draws them).

Scores are `metrics`' (area-weighted, fair CRPS for ensembles), baselines `baselines`'.
"""

from __future__ import annotations

import os

import numpy as np

from minigencast import baselines, figures, forecast, metrics, safe_output
from minigencast.data import forecasts as forecasts_lib

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


def evaluate(forecast, truth, baselines=None, names="all", out_dir="."):
    """API twin of `minigencast evaluate`: score table (also scores.csv) and figures.

    Returns (pandas.DataFrame of CRPS/RMSE/spread-skill per forecast, variable, level and
    lead, [FigureResult, ...]). names: a list of FIGURES keys, "all", or [] for the table only.
    """
    safe_output.check_outputs(
        out_dir, ["scores.csv"] + (figures.output_files(names) if names else [])
    )
    check_same_units(forecast, truth)
    table = figures.score_table(forecast, truth, baselines)
    safe_output.claim_outputs(out_dir, ["scores.csv"])
    table.to_csv(os.path.join(out_dir, "scores.csv"), index=False)
    results = figures.run(names, forecast, truth, baselines, out_dir) if names else []
    return table, results


def open_forecast(path):
    """A forecast file (ours, WeatherBench-2's or DeepMind's rollout layout) in our layout."""
    return forecasts_lib.to_forecast_layout(forecasts_lib.open_file(path))


def open_truth(spec):
    """ "embedded" (all splits of the toy planet) or a file in any layout -> canonical."""
    if spec == "embedded":
        from minigencast import data

        return data.embedded_truth()
    truth = forecasts_lib.open_file(spec)
    if not {"time", "lat", "lon"} <= set(truth.dims):  # DeepMind / WB2 / ERA5 layouts
        from minigencast.data import layouts

        truth = layouts.to_canonical(truth, nan_check=False)
    return truth


def check_same_units(forecast, truth) -> None:
    """Raise ValueError if a variable is physically plausible in the forecast but not in
    the truth (`layouts.check_units_and_ranges` on one state of the forecast, the first and
    last times of the truth): e.g. a truth in degC labelled K scores 273 K of RMSE."""
    from minigencast.data import layouts

    first = {d: 0 for d in ("sample", "init_time", "lead_time") if d in forecast.dims}
    for name in sorted(set(forecast.data_vars) & set(truth.data_vars)):
        try:
            layouts.check_units_and_ranges(forecast[[name]].isel(first))
        except ValueError:
            continue  # not a physical field in the forecast either (e.g. anomalies)
        try:
            layouts.check_units_and_ranges(truth[[name]], values="auto")
        except ValueError as e:
            raise ValueError(f"the truth's {e}") from None
