"""The GenCast paper's verification figures, one function each, at any resolution.

Every figure function has the signature

    fig(forecast, truth, baselines=None, out_dir=".") -> FigureResult

forecast: Dataset (sample, init_time, lead_time, [level,] lat, lon) as written by
minigencast/forecast.py; truth: the canonical dataset (time, [level,] lat, lon);
baselines: {name: forecast-layout Dataset} (see minigencast/baselines.py). Without
baselines, `baselines.persistence` of the truth is used when the truth covers the
initialisation times. A FigureResult holds the PNG path, the plotted numbers (plain
floats, JSON-ready) and a caption saying what the paper shows beside our result.

One-member forecasts (persistence) are scored with the traditional CRPS, which for
M = 1 is the MAE; ensembles with the fair CRPS.

`FIGURES` maps names to functions; `minigencast evaluate --figure NAME|all` runs them.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pandas as pd
import xarray as xr

from minigencast import baselines as baselines_lib
from minigencast import goals, metrics, plotting, safe_output

# (variable, level) pairs shown in line plots, in the paper's order of prominence; the
# ones present in the data are used, else the first variables.
HEADLINE = (
    ("geopotential", 500),
    ("temperature", 850),
    ("2m_temperature", None),
    ("mean_sea_level_pressure", None),
    ("10m_u_component_of_wind", None),
    ("u_component_of_wind", 850),
    ("specific_humidity", 700),
)

PAPER = "Price et al. 2025 (Nature 637), 0.25 deg, 2019 test year, vs ECMWF ENS"


@dataclasses.dataclass(frozen=True)
class FigureResult:
    name: str
    png: str
    numbers: dict
    caption: str


# --------------------------------------------------------------------------- helpers
def _common(forecast, truth):
    names = [v for v in forecast.data_vars if v in truth.data_vars]
    if not names:
        raise ValueError(
            f"forecast and truth share no variables (forecast: {list(forecast.data_vars)}, "
            f"truth: {list(truth.data_vars)})."
        )
    return forecast[names], truth[names]


def headline(ds, max_items=4):
    """The (variable, level) pairs to show: HEADLINE entries present in `ds`, else the first."""
    out = []
    for name, level in HEADLINE:
        if name in ds.data_vars:
            has_level = "level" in ds[name].dims
            if level is None and not has_level:
                out.append((name, None))
            elif level is not None and has_level and level in ds["level"].values:
                out.append((name, level))
    if not out:
        for name in ds.data_vars:
            lev = ds["level"].values[0] if "level" in ds[name].dims else None
            out.append((name, None if lev is None else int(lev)))
    return out[:max_items]


def _select(ds, name, level):
    da = ds[name]
    return da.sel(level=level, drop=True) if level is not None else da


def _label(name, level):
    return name if level is None else f"{name} {level}"


def _with_baselines(forecast, truth, baselines):
    out = {"forecast": forecast}
    if baselines is None:  # persistence from the truth, when it covers the init times
        try:
            p = baselines_lib.persistence(
                truth,
                forecast["init_time"].values,
                forecast["lead_time"].values,
                list(forecast.data_vars),
            )
        except (ValueError, KeyError):
            p = None
        baselines = {} if p is None else {"persistence": p}
    for name, b in baselines.items():
        out[name] = _common(b, truth)[0]
    return out


def _crps(fc, truth, **kw):
    return metrics.crps(fc, truth, fair=fc.sizes["sample"] >= 2, **kw)


def _headline_scores(scores, forecast):
    """{run: Dataset of per-lead scores} -> {run: Dataset of the headline (variable, level)s}."""
    show = headline(forecast)
    return {
        n: xr.Dataset({_label(v, lv): _select(s, v, lv) for v, lv in show})
        for n, s in scores.items()
    }


def _per_lead(fn, fc, truth, **kw):
    keep = ["lead_time"] + (["level"] if "level" in fc.dims else [])
    return fn(fc, truth, preserve_dims=keep, **kw).compute()


def _numbers(ds):
    out = {}
    for label, da in plotting._rows(ds):
        out[label] = [float(v) for v in np.atleast_1d(da.values)]
    return out


def _versus(sub):
    """'forecast better than <baseline> on k/n (variable, lead) points' for each baseline."""
    ours = np.concatenate([np.ravel(d.values) for d in sub["forecast"].data_vars.values()])
    parts = []
    for name, ds in sub.items():
        if name != "forecast":
            theirs = np.concatenate([np.ravel(d.values) for d in ds.data_vars.values()])
            parts.append(f"lower than {name} on {(ours < theirs).sum()}/{ours.size}")
    return "; ".join(parts) or "no baseline"


def nearest_lead(forecast, days):
    """The forecast lead time closest to `days`."""
    hours = plotting._lead_hours(forecast["lead_time"].values)
    return forecast["lead_time"].values[int(np.argmin(abs(hours - 24 * days)))]


def _path(out_dir, name):
    safe_output.claim_outputs(out_dir, [f"{name}.png"])  # never a user's file of that name
    return os.path.join(out_dir, f"{name}.png")


def _lead_label(lead):
    return f"{plotting._lead_hours(np.asarray([lead]))[0] / 24:g} d"


# --------------------------------------------------------------------------- figures
def crps_vs_lead(forecast, truth, baselines=None, out_dir="."):
    """CRPS vs lead time for the headline variables, forecast against baselines."""
    forecast, truth = _common(forecast, truth)
    runs = _with_baselines(forecast, truth, baselines)
    scores = {n: _per_lead(_crps, f, truth) for n, f in runs.items()}
    sub = _headline_scores(scores, forecast)
    path = _path(out_dir, "crps_vs_lead")
    plotting.lines_vs_lead(sub, path, ylabel="CRPS", title="CRPS vs lead time (lower is better)")
    numbers = {n: _numbers(s) for n, s in sub.items()}
    caption = (
        f"Paper ({PAPER}): GenCast's CRPS beats ENS on 97.2% of 1320 targets (99.8% beyond "
        f"36 h lead). Here, forecast CRPS of the shown (variable, lead) points: {_versus(sub)}."
    )
    return FigureResult("crps_vs_lead", path, numbers, caption)


def rmse_vs_lead(forecast, truth, baselines=None, out_dir="."):
    """Ensemble-mean RMSE vs lead time, forecast against baselines."""
    forecast, truth = _common(forecast, truth)
    runs = _with_baselines(forecast, truth, baselines)
    scores = {n: _per_lead(metrics.rmse, f, truth) for n, f in runs.items()}
    sub = _headline_scores(scores, forecast)
    path = _path(out_dir, "rmse_vs_lead")
    plotting.lines_vs_lead(sub, path, ylabel="RMSE", title="Ensemble-mean RMSE vs lead time")
    caption = (
        f"Paper ({PAPER}): GenCast's ensemble-mean RMSE is better than ENS's on most targets, "
        f"above all beyond a few days. Here, forecast RMSE of the shown (variable, lead) "
        f"points: {_versus(sub)}."
    )
    return FigureResult("rmse_vs_lead", path, {n: _numbers(s) for n, s in sub.items()}, caption)


def scorecard(forecast, truth, baselines=None, out_dir="."):
    """Scorecards: relative CRPS and RMSE difference of the forecast vs every baseline.

    One row of cards (CRPS, RMSE) per baseline (e.g. persistence and climatology), each
    row on its own symmetric colour scale set from its data (`plotting.scorecard_limit`)
    with the percentages in the cells: the paper's fixed +-20% would saturate here.
    """
    forecast, truth = _common(forecast, truth)
    runs = _with_baselines(forecast, truth, baselines)
    names = [n for n in runs if n != "forecast"]
    if not names:
        raise ValueError("the scorecard needs a baseline (or a truth covering the init times).")
    ours = {
        "CRPS": _per_lead(_crps, forecast, truth),
        "RMSE": _per_lead(metrics.rmse, forecast, truth),
    }
    panels, numbers = {}, {}
    for name in names:
        theirs = {
            "CRPS": _per_lead(_crps, runs[name], truth),
            "RMSE": _per_lead(metrics.rmse, runs[name], truth),
        }
        rel = {k: metrics.scorecard(ours[k], theirs[k]) for k in ours}
        panels |= {f"{k} vs {name}": v for k, v in rel.items()}
        better = {
            k: float(
                (np.concatenate([np.ravel(d.values) for d in v.data_vars.values()]) < 0).mean()
            )
            for k, v in rel.items()
        }
        numbers[name] = {k: _numbers(v) for k, v in rel.items()} | {"fraction_better": better}
    path = _path(out_dir, "scorecard")
    plotting.scorecard(
        panels, path, title="forecast vs baselines (blue: forecast better)", limit=None, ncols=2
    )
    here = "; ".join(
        f"vs {n}: forecast better on {100 * v['fraction_better']['CRPS']:.0f}% of (variable, "
        f"level, lead) targets for CRPS, {100 * v['fraction_better']['RMSE']:.0f}% for RMSE"
        for n, v in numbers.items()
    )
    caption = (
        f"Paper ({PAPER}): scorecards are blue (GenCast better) on 97.2% of targets for CRPS. "
        f"Here {here}."
    )
    return FigureResult("scorecard", path, numbers, caption)


def spread_skill(forecast, truth, baselines=None, out_dir="."):
    """Debiased spread/skill ratio vs lead time (1 = calibrated)."""
    forecast, truth = _common(forecast, truth)
    runs = {
        n: f
        for n, f in _with_baselines(forecast, truth, baselines).items()
        if f.sizes["sample"] >= 2
    }
    scores = {n: _per_lead(metrics.spread_skill_ratio, f, truth) for n, f in runs.items()}
    sub = _headline_scores(scores, forecast)
    path = _path(out_dir, "spread_skill")
    plotting.lines_vs_lead(
        sub, path, ylabel="spread/skill", title="Spread/skill ratio", reference_line=1.0
    )
    mean = float(np.mean([np.mean(v) for v in _numbers(sub["forecast"]).values()]))
    caption = (
        f"Paper ({PAPER}): GenCast is well calibrated, spread/skill ratios close to 1 "
        f"across lead times. Here: mean ratio {mean:.2f}."
    )
    return FigureResult("spread_skill", path, {n: _numbers(s) for n, s in sub.items()}, caption)


def rank_histogram(forecast, truth, baselines=None, out_dir="."):
    """Rank histograms of the headline variables at about 1 and 5 days."""
    forecast, truth = _common(forecast, truth)
    hists, numbers = {}, {}
    leads = sorted({nearest_lead(forecast, 1), nearest_lead(forecast, 5)})
    for v, lv in headline(forecast):
        for lead in leads:
            fc = _select(forecast, v, lv).sel(lead_time=lead)
            h = metrics.rank_histogram(fc, _select(truth, v, lv)).compute()
            label = f"{_label(v, lv)}, {_lead_label(lead)}"
            hists[label] = h
            numbers[label] = [float(x) for x in h.values]
    path = _path(out_dir, "rank_histogram")
    plotting.rank_histograms(hists, path, title="Rank histograms (flat = reliable)")
    dev = max(float(np.abs(np.array(x) * len(x) - 1).max()) for x in numbers.values())
    caption = (
        f"Paper ({PAPER}): GenCast's rank histograms are close to flat (reliable). "
        f"Here: largest relative deviation from flat {dev:.2f}."
    )
    return FigureResult("rank_histogram", path, numbers, caption)


def _events(forecast, truth):
    """Extreme events (label, forecast field, truth field, quantile, above)."""
    ev = []
    if "2m_temperature" in forecast.data_vars:
        f, t = forecast["2m_temperature"], truth["2m_temperature"]
        ev += [
            ("2m_temperature > 99th pct", f, t, 0.99, True),
            ("2m_temperature < 1st pct", f, t, 0.01, False),
        ]
    u, v = "10m_u_component_of_wind", "10m_v_component_of_wind"
    if u in forecast.data_vars and v in forecast.data_vars:
        speed = np.hypot(forecast[u], forecast[v])
        ev.append(("10m wind speed > 99th pct", speed, np.hypot(truth[u], truth[v]), 0.99, True))
    if "mean_sea_level_pressure" in forecast.data_vars:
        ev.append(
            (
                "mslp < 1st pct",
                forecast["mean_sea_level_pressure"],
                truth["mean_sea_level_pressure"],
                0.01,
                False,
            )
        )
    if not ev:
        ((name, level),) = headline(forecast, 1)
        ev.append(
            (
                f"{_label(name, level)} > 99th pct",
                _select(forecast, name, level),
                _select(truth, name, level),
                0.99,
                True,
            )
        )
    return ev


def rev(forecast, truth, baselines=None, out_dir="."):
    """Relative economic value of extreme events at about 1 and 5 days.

    Thresholds are each grid point's climatological quantile of the truth over all its
    times (the paper uses 99.99th/0.01th percentiles of 2m temperature and MSLP and the
    99.9th of wind speed from 1979-2018 ERA5; with little data we use 99th/1st).
    """
    forecast, truth = _common(forecast, truth)
    runs = _with_baselines(forecast, truth, baselines)
    alphas = np.geomspace(1e-3, 0.9, 25)
    panels, numbers = {}, {}
    leads = sorted({nearest_lead(forecast, 1), nearest_lead(forecast, 5)})
    for label, f, t, q, above in _events(forecast, truth):
        thr = metrics.climatological_thresholds(t, [q], dims=["time"]).squeeze(
            "quantile", drop=True
        )
        for lead in leads:
            key = f"{label}, {_lead_label(lead)}"
            curves = {}
            for name, run in runs.items():
                fr = f if name == "forecast" else _event_field(run, label, f.name)
                curves[name] = metrics.relative_economic_value(
                    fr.sel(lead_time=lead), t, thr, alphas, above=above
                ).compute()
            panels[key] = curves
            numbers[key] = {n: [float(x) for x in c.values] for n, c in curves.items()}
    path = _path(out_dir, "rev")
    plotting.rev_curves(panels, path, title="Relative economic value of extremes")
    best = {k: float(np.nanmax(v["forecast"])) for k, v in numbers.items()}
    caption = (
        f"Paper ({PAPER}): GenCast's REV envelope is above ENS's for extreme heat, cold, high "
        "wind and low pressure across most cost/loss ratios and lead times. Here: peak REV "
        + "; ".join(f"{k}: {v:.2f}" for k, v in best.items())
    )
    return FigureResult("rev", path, numbers | {"cost_loss_ratio": alphas.tolist()}, caption)


def _event_field(run, label, name):
    if label.startswith("10m wind speed"):
        return np.hypot(run["10m_u_component_of_wind"], run["10m_v_component_of_wind"])
    if name in run.data_vars:
        return run[name]
    ((v, lv),) = [(v, lv) for v, lv in headline(run, 99) if _label(v, lv) in label][:1]
    return _select(run, v, lv)


def pooled_crps(forecast, truth, baselines=None, out_dir=".", radii_km=None):
    """Average- and max-pooled CRPS vs pool radius for the first headline variable."""
    forecast, truth = _common(forecast, truth)
    runs = {n: f for n, f in _with_baselines(forecast, truth, baselines).items()}
    ((v, lv),) = headline(forecast, 1)
    n_lat, n_lon = forecast.sizes["lat"], forecast.sizes["lon"]
    dx = 2 * np.pi * metrics.EARTH_RADIUS_KM / n_lon
    if radii_km is None:
        radii_km = [0.0] + [float(np.round(dx * k, -1)) for k in (1, 2, 4, 8)]
    stride = max(1, int(np.ceil(np.sqrt(n_lat * n_lon / 600))))
    curves, numbers = {}, {}
    for pooling in ("average", "max"):
        lines = {}
        for name, run in runs.items():
            fc = _select(run, v, lv)
            lines[name] = metrics.pooled_crps(
                fc,
                _select(truth, v, lv),
                radii_km,
                pooling=pooling,
                fair=fc.sizes["sample"] >= 2,
                centre_stride=stride,
            ).compute()
        curves[f"{pooling}-pooled {_label(v, lv)}"] = lines
        numbers[pooling] = {n: [float(x) for x in c.values] for n, c in lines.items()}
    path = _path(out_dir, "pooled_crps")
    plotting.pooled_crps_vs_size(curves, path, title="Spatially pooled CRPS")
    caption = (
        f"Paper ({PAPER}): GenCast beats ENS in average- and max-pooled CRPS across the pool "
        "sizes tested, so its members have realistic joint spatial structure. Here "
        f"({n_lat}x{n_lon} grid, radii {radii_km} km), pools where the forecast's CRPS is "
        "lower: " + _pooled_versus(numbers) + "."
    )
    return FigureResult("pooled_crps", path, numbers | {"radius_km": list(radii_km)}, caption)


def _pooled_versus(numbers):
    parts = []
    for pooling, lines in numbers.items():
        ours = np.array(lines["forecast"])
        for name, vals in lines.items():
            if name != "forecast":
                parts.append(f"{pooling} vs {name} {(ours < np.array(vals)).sum()}/{ours.size}")
    return ", ".join(parts) or "no baseline"


def spectra(forecast, truth, baselines=None, out_dir="."):
    """Zonal power spectra at the last lead, and member/truth power against the goals.

    Left: members, ensemble mean and truth of the first headline variable at the last
    lead. Right: member/truth power ratio against k of each goal variable at the last lead
    of 1-5 days, with the goal bands. Spectra over latitudes within +-60 deg; numbers and
    MET / NOT MET from `goals` (the quickstart's).
    """
    forecast, truth = _common(forecast, truth)
    ((v, lv),) = headline(forecast, 1)
    lead = forecast["lead_time"].values[-1]
    fc = goals.latitude_band(_select(forecast, v, lv).sel(lead_time=lead))
    _, t = metrics.align(fc, goals.latitude_band(_select(truth, v, lv)))
    members = metrics.power_spectrum(fc).mean("init_time").compute()
    truth_spec = metrics.power_spectrum(t).mean("init_time").compute()
    mean_spec = metrics.power_spectrum(fc.mean("sample")).mean("init_time").compute()
    spec = goals.zonal_spectra(forecast, truth)
    goal_numbers = goals.spectral_numbers(spec)
    ratios, ratio_lead = {}, lead
    for short, s in spec.items():
        hours = plotting._lead_hours(s["lead_time"].values)
        in_range = goals.in_goal_leads(hours)
        ratio_lead = s["lead_time"].values[np.flatnonzero(in_range)[-1] if in_range.any() else -1]
        ratios[short] = (s["members"] / s["truth"]).sel(lead_time=ratio_lead)
    path = _path(out_dir, "spectra")
    plotting.power_spectra(
        members,
        truth_spec,
        mean_spec,
        path,
        title=f"{_label(v, lv)}, lead {_lead_label(lead)}, |lat| ≤ 60°",
        ratios=ratios,
        bands=goals.GOALS.ratio_bands,
        ratio_title=f"member / truth power, lead {_lead_label(ratio_lead)}",
    )
    hi = members["zonal_wavenumber"] >= members.sizes["zonal_wavenumber"] // 2
    ratio = float((members.where(hi).sum() / members.sizes["sample"]) / truth_spec.where(hi).sum())
    judged = goals.check(goal_numbers, {})
    verdicts = ", ".join(
        f"{key} {goals.verdict(g['met'])}" for key, g in judged.items() if key.startswith("spectra")
    )
    caption = (
        f"Paper ({PAPER}): GenCast's individual members keep ERA5's power at all resolved "
        "scales (sharp samples), unlike the smooth ensemble mean. Here: member/truth power "
        f"in the upper half of zonal wavenumbers = {ratio:.2f}; goals at 1-5 days: {verdicts}."
    )
    numbers = {
        "members_mean": [float(x) for x in members.mean("sample").values],
        "truth": [float(x) for x in truth_spec.values],
        "ensemble_mean": [float(x) for x in mean_spec.values],
        "small_scale_power_ratio": ratio,
        "goals": goal_numbers,
    }
    return FigureResult("spectra", path, numbers, caption)


def maps(forecast, truth, baselines=None, out_dir="."):
    """Member maps, ensemble mean, truth and the probability of exceeding the 90th pct."""
    forecast, truth = _common(forecast, truth)
    ((v, lv),) = headline(forecast, 1)
    lead = nearest_lead(forecast, 5)
    fc = _select(forecast, v, lv).sel(lead_time=lead).isel(init_time=0)
    _, t = metrics.align(fc, _select(truth, v, lv))
    thr = metrics.climatological_thresholds(_select(truth, v, lv), [0.9]).squeeze(
        "quantile", drop=True
    )
    prob = metrics.event_probability(fc, thr).compute()
    path = _path(out_dir, "maps")
    plotting.member_maps(
        fc.compute(),
        t.compute(),
        prob,
        path,
        title=f"{_label(v, lv)}, init {str(fc['init_time'].values)[:13]}, lead {_lead_label(lead)}",
        probability_label="P(> climatological 90th pct)",
    )
    bs = float(metrics.brier_score(fc, t, thr).compute())
    caption = (
        f"Paper ({PAPER}): GenCast members are sharp, realistic weather states while the "
        "ensemble mean blurs; probabilities come from member counts. Here: Brier score of "
        f"the 90th-percentile exceedance map {bs:.3f}."
    )
    return FigureResult("maps", path, {"brier_score_p90": bs}, caption)


FIGURES = {
    "crps_vs_lead": crps_vs_lead,
    "rmse_vs_lead": rmse_vs_lead,
    "scorecard": scorecard,
    "spread_skill": spread_skill,
    "rank_histogram": rank_histogram,
    "rev": rev,
    "pooled_crps": pooled_crps,
    "spectra": spectra,
    "maps": maps,
}


# --------------------------------------------------------------------------- tables, runner
def score_table(forecast, truth, baselines=None) -> pd.DataFrame:
    """CRPS, ensemble-mean RMSE and spread/skill per (forecast, variable, level, lead)."""
    forecast, truth = _common(forecast, truth)
    rows = []
    for name, run in _with_baselines(forecast, truth, baselines).items():
        c = _per_lead(_crps, run, truth)
        r = _per_lead(metrics.rmse, run, truth)
        s = _per_lead(metrics.spread_skill_ratio, run, truth) if run.sizes["sample"] > 1 else None
        for var in c.data_vars:
            levels = c[var]["level"].values if "level" in c[var].dims else [None]
            for lev in levels:
                sel = {} if lev is None else {"level": lev}
                for i, lead in enumerate(c["lead_time"].values):
                    rows.append(
                        {
                            "forecast": name,
                            "variable": var,
                            "level": None if lev is None else int(lev),
                            "lead_time_h": float(plotting._lead_hours(np.asarray([lead]))[0]),
                            "crps": float(c[var].sel(sel).values[i]),
                            "rmse": float(r[var].sel(sel).values[i]),
                            "spread_skill": None if s is None else float(s[var].sel(sel).values[i]),
                        }
                    )
    table = pd.DataFrame(rows)
    if len(table):
        table["level"] = table["level"].astype("Int64")  # <NA> for surface variables
    return table


def _figure_names(names) -> list[str]:
    """The FIGURES keys `names` stands for ("all" or a list of keys); unknown ones refused."""
    if names == "all" or names == ["all"]:
        return list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; choose from {list(FIGURES)} or 'all'.")
    return list(names)


def output_files(names) -> list[str]:
    """The files `run(names, ...)` writes into its folder."""
    return ["numbers.json"] + [f"{n}.png" for n in _figure_names(names)]


def run(names, forecast, truth, baselines=None, out_dir="."):
    """Draw the named figures (or "all"); write numbers.json; return the FigureResults."""
    names = _figure_names(names)
    safe_output.check_outputs(out_dir, output_files(names))  # before drawing any
    results = [FIGURES[n](forecast, truth, baselines, out_dir) for n in names]
    safe_output.claim_outputs(out_dir, ["numbers.json"])
    with open(os.path.join(out_dir, "numbers.json"), "w") as f:
        json.dump(
            {r.name: {"png": r.png, "caption": r.caption, "numbers": r.numbers} for r in results},
            f,
            indent=1,
        )
    return results
