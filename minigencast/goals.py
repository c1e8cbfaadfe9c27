"""The shipped model's goals: ensembles that look like weather and are well dispersed.

One place for the thresholds and the MET / NOT MET logic, used by `minigencast
quickstart`, the `spectra` figure (figures.py) and `scripts/train_cpu.py`. Judged at
every lead from 1 to 5 days that the forecast has (`Goals.lead_hours`):

  spectra     zonal power spectra P_k (metrics.power_spectrum: area-weighted mean over
              latitudes within +-60 deg of |rfft_k|^2 / n_lon^2, doubled for 0 < k <
              n_lon / 2) of every member and of the truth, averaged over init times
              (members: the mean over members of each member's spectrum). Goals:
              R_k = P_k(members) / P_k(truth) in [0.5, 2] for k = 1..16 and in
              [0.25, 4] for k = 17..21; the share of the eddy power (k >= 1) above
              k = 16, S = sum_{k>16} P_k / sum_{k>=1} P_k, of the members at most 3x the
              truth's, at every lead.
  dispersion  spread/skill (metrics.spread_skill_ratio, debiased) in [0.85, 1.15] at
              every 12-hourly lead, for z500 and t850.

Why: GenCast's members keep ERA5's power at all resolved scales (Price et al. 2025,
Fig. 3 and Supplementary "Spectra"), and its spread/skill is close to 1 at all leads
(ibid., Fig. 2 and Supplementary "Spread/skill"). The toy planet's truth is truncated at
T21, so above k = 21 it has almost no power and no ratio is judged there.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from minigencast import metrics

# The goals' variables: short name -> (variable, level or None), as in the report.
VARIABLES = {
    "z500": ("geopotential", 500),
    "t850": ("temperature", 850),
    "t2m": ("2m_temperature", None),
    "u850": ("u_component_of_wind", 850),
}


@dataclasses.dataclass(frozen=True)
class Goals:
    """Thresholds of the goals (the defaults are the shipped model's)."""

    lead_hours: tuple = (24, 120)  # judged at every lead in this range (inclusive)
    lat_range: tuple = (-60.0, 60.0)  # spectra over these latitudes (deg, inclusive)
    spectra_variables: tuple = ("z500", "t850", "t2m", "u850")
    # ((k_min, k_max), (ratio_min, ratio_max)): member/truth power bounds per band.
    ratio_bands: tuple = (((1, 16), (0.5, 2.0)), ((17, 21), (0.25, 4.0)))
    share_above_k: int = 16  # small scales: k > share_above_k
    max_share_factor: float = 3.0  # members' small-scale share <= this x the truth's
    dispersion_variables: tuple = ("z500", "t850")
    spread_skill_range: tuple = (0.85, 1.15)


GOALS = Goals()


def _band_key(band):
    return f"k{band[0]}_{band[1]}"


def _lead_hours(lead_time):
    return np.asarray(lead_time) / np.timedelta64(1, "h")


def in_goal_leads(hours, goals=GOALS):
    """Which lead times (hours) the goals are judged at: those within `goals.lead_hours`."""
    lo, hi = goals.lead_hours
    return (np.asarray(hours, float) >= lo) & (np.asarray(hours, float) <= hi)


def _select(ds, name, level):
    da = ds[name]
    return da.sel(level=level, drop=True) if level is not None else da


def latitude_band(field, goals=GOALS):
    """`field` at the latitudes within `goals.lat_range` (either latitude order)."""
    lat = field["lat"].values
    return field.isel(lat=(lat >= goals.lat_range[0]) & (lat <= goals.lat_range[1]))


def zonal_spectra(forecast, truth, goals=GOALS) -> dict:
    """{short: Dataset(members, truth) [lead_time, zonal_wavenumber]} per goal variable.

    forecast: Dataset (sample, init_time, lead_time, [level,] lat, lon); truth: canonical.
    members = mean over members and inits of each member's spectrum; truth = mean over
    inits of the truth's spectrum at the valid times. Variables absent are skipped.
    """
    out = {}
    for short in goals.spectra_variables:
        name, level = VARIABLES[short]
        levels = forecast["level"].values if "level" in forecast.dims else []
        if name not in forecast.data_vars or (level is not None and level not in levels):
            continue
        fc, t = metrics.align(_select(forecast, name, level), _select(truth, name, level))
        members = metrics.power_spectrum(latitude_band(fc, goals)).mean(["sample", "init_time"])
        truth_spec = metrics.power_spectrum(latitude_band(t, goals)).mean("init_time")
        out[short] = xr.Dataset({"members": members, "truth": truth_spec}).compute()
    return out


def spectral_numbers(spectra, goals=GOALS) -> dict:
    """The spectra goals' numbers per variable, over the leads within `goals.lead_hours`.

    Returns {short: {"lead_hours": [...], "ratio_k1_16": [min, max] of R_k over the
    band's k and the leads (None when the grid lacks the band), ..., "share_above_k16":
    max over leads of the members' share S, "truth_share_above_k16": the truth's max,
    "share_factor": max over leads of S(members) / S(truth)}}; {} without a lead in range.
    """
    out = {}
    for short, spec in spectra.items():
        hours = _lead_hours(spec["lead_time"].values)
        keep = in_goal_leads(hours, goals)
        if not keep.any():
            continue
        spec = spec.isel(lead_time=keep)
        k = spec["zonal_wavenumber"].values
        ratio = (spec["members"] / spec["truth"]).values  # [lead, k]
        row = {"lead_hours": [float(h) for h in hours[keep]]}
        for band, _ in goals.ratio_bands:
            cols = (k >= band[0]) & (k <= band[1])
            r = ratio[:, cols]
            row[f"ratio_{_band_key(band)}"] = [float(r.min()), float(r.max())] if r.size else None
        eddy, small = k >= 1, k > goals.share_above_k
        share = {
            name: spec[name].values[:, small].sum(-1) / spec[name].values[:, eddy].sum(-1)
            for name in ("members", "truth")
        }
        key = f"above_k{goals.share_above_k}"
        judged = small.any()
        row[f"share_{key}"] = float(share["members"].max()) if judged else None
        row[f"truth_share_{key}"] = float(share["truth"].max()) if judged else None
        row["share_factor"] = float((share["members"] / share["truth"]).max()) if judged else None
        out[short] = row
    return out


def dispersion_numbers(scores, goals=GOALS) -> dict:
    """{short: {"lead_hours": [...], "spread_skill": [min, max]}} from `evaluation.score`'s
    scores ({short: {lead_hours: {"spread_skill": ...}}}), over the leads in range."""
    out = {}
    for short in goals.dispersion_variables:
        per_lead = scores.get(short, {})
        hours = sorted(float(h) for h in per_lead if in_goal_leads(float(h), goals))
        if not hours:
            continue
        ssr = [per_lead[f"{h:g}"]["spread_skill"] for h in hours]
        out[short] = {"lead_hours": hours, "spread_skill": [float(min(ssr)), float(max(ssr))]}
    return out


def _judge(values, within):
    """{"goal": bounds, "met": all judged variables met (None if none), per variable}."""
    per = {}
    for short, v in values.items():
        if v is not None:
            per[short] = {"value": v, "met": bool(within(v))}
    met = all(p["met"] for p in per.values()) if per else None
    return {"met": met, "variables": per}


def check(spectral, dispersion, goals=GOALS) -> dict:
    """MET / NOT MET per goal: {goal key: {"goal", "met", "variables": {short: {"value",
    "met"}}}} plus "all_met" (True only when every goal was judged and met).

    `met` is None for a goal that could not be judged (no lead in range, or a grid too
    coarse for the band); `spectral` and `dispersion` as returned by `spectral_numbers`
    and `dispersion_numbers`.
    """
    out = {}
    for band, (lo, hi) in goals.ratio_bands:
        key = _band_key(band)
        res = _judge({s: n[f"ratio_{key}"] for s, n in spectral.items()}, _within(lo, hi))
        out[f"spectra_{key}"] = {
            "goal": f"member/truth power at k = {band[0]}-{band[1]} in [{lo:g}, {hi:g}]"
        } | res
    key = f"above_k{goals.share_above_k}"
    res = _judge(
        {s: n["share_factor"] for s, n in spectral.items()},
        lambda factor: factor <= goals.max_share_factor,
    )
    for short, v in res["variables"].items():
        v["share"] = spectral[short][f"share_{key}"]
        v["truth_share"] = spectral[short][f"truth_share_{key}"]
    out[f"spectra_share_{key}"] = {
        "goal": f"member share of power above k = {goals.share_above_k} at most "
        f"{goals.max_share_factor:g}x the truth's"
    } | res
    lo, hi = goals.spread_skill_range
    res = _judge({s: n["spread_skill"] for s, n in dispersion.items()}, _within(lo, hi))
    out["dispersion"] = {"goal": f"spread/skill in [{lo:g}, {hi:g}]"} | res
    leads = [n["lead_hours"] for n in (*spectral.values(), *dispersion.values())]
    out["lead_hours"] = sorted({h for hs in leads for h in hs})
    out["all_met"] = all(g["met"] is True for k, g in out.items() if isinstance(g, dict))
    return out


def _within(lo, hi):
    """A [min, max] range lies within [lo, hi]."""
    return lambda v: lo <= v[0] and v[1] <= hi


def verdict(flag):
    """MET / NOT MET / not judged for a goal's `met` (True / False / None)."""
    return {True: "MET", False: "NOT MET", None: "not judged"}[flag]


def text(report, goals=GOALS, cases="") -> str:
    """The printed block: per goal and variable the numbers and MET / NOT MET.

    cases: what was verified, e.g. "16 init times x 8 members", for the heading."""
    hours = report["lead_hours"]
    span = f"{hours[0]:g}-{hours[-1]:g} h ({len(hours)} leads)" if hours else "no lead in range"
    span += f", {cases}" if cases else ""
    lat = f"{abs(goals.lat_range[0]):g}" if -goals.lat_range[0] == goals.lat_range[1] else ""
    lines = [f"Goals at leads of 1-5 days: {span}"]
    where = f"latitudes within +-{lat} deg" if lat else f"latitudes {goals.lat_range}"
    lines.append(f"  zonal power spectra, members / truth, {where}:")
    for key, goal in report.items():
        if not isinstance(goal, dict):
            continue
        if key == "dispersion":
            lines.append("  dispersion:")
        lines.append(f"    {goal['goal']}: {verdict(goal['met'])}")
        for short, v in goal["variables"].items():
            if "share" in v:
                number = (
                    f"{100 * v['share']:.3g} % (truth {100 * v['truth_share']:.3g} %), "
                    f"{v['value']:.3g}x"
                )
            else:
                number = f"{v['value'][0]:.3g}-{v['value'][1]:.3g}"
            lines.append(f"      {short:>5} {number:<34} {verdict(v['met'])}")
    lines.append(f"  all goals: {'MET' if report['all_met'] else 'NOT MET'}")
    return "\n".join(lines)
