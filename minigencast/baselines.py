"""Reference forecasts every verification compares against, in the forecast layout.

All three return Datasets with dims (sample, init_time, lead_time, [level,] lat, lon)
and a valid_time coordinate, exactly like `forecast.py`'s output, so the metrics
treat them as any other (ensemble) forecast:

  persistence             x(init + lead) = x(init)                          (1 member)
  climatology             mean of the reference states at the same time of day
                          within +-window_days of the valid day of year      (1 member)
  climatological_ensemble those reference states themselves, as members     (M members)

The climatological ensemble is the probabilistic baseline of WeatherBench-2 style
CRPS comparisons (a "probabilistic climatology"); the climatological mean is the
deterministic one (its CRPS is its MAE). Reference states must not overlap the
verification period, or exclude the days around each valid time (`exclude_days`):
the embedded toy planet has a single year, so its climatology for the test season
(Nov-Dec) must draw on the test period itself, minus +-exclude_days around the
valid time (quickstart.py) -- a baseline that knows the season's statistics.
"""

from __future__ import annotations

import numpy as np
import xarray

from minigencast import forecast


def _valid_times(init_times, lead_times):
    init = np.asarray(init_times, "datetime64[ns]")
    lead = np.asarray(lead_times, "timedelta64[ns]")
    return init[:, None] + lead[None, :]  # [init, lead]


def _layout(values_by_var, template, init_times, lead_times, num_members):
    """{var: [S, init, lead, ...]} -> a forecast-layout Dataset."""
    data = {}
    for name, values in values_by_var.items():
        dims = ("sample", "init_time", "lead_time") + tuple(
            d for d in template[name].dims if d != "time"
        )
        data[name] = xarray.DataArray(values, dims=dims, attrs=template[name].attrs)
    coords = {
        "sample": np.arange(num_members),
        "init_time": np.asarray(init_times, "datetime64[ns]"),
        "lead_time": np.asarray(lead_times, "timedelta64[ns]"),
        "lat": template["lat"].values,
        "lon": template["lon"].values,
    }
    if "level" in template.dims and any("level" in v.dims for v in data.values()):
        coords["level"] = template["level"].values
    return forecast.add_cf_attributes(xarray.Dataset(data, coords=coords))


def _variables(ds, names):
    names = list(ds.data_vars) if names is None else list(names)
    return [n for n in names if "time" in ds[n].dims]


def persistence(truth: xarray.Dataset, init_times, lead_times, variables=None) -> xarray.Dataset:
    """The state at init_time repeated at every lead time (sample = 1).

    Raises ValueError when an init time is not in `truth`.
    """
    init_times = np.asarray(init_times, "datetime64[ns]")
    missing = np.setdiff1d(init_times, truth["time"].values)
    if missing.size:
        raise ValueError(f"persistence: init times {missing[:3]} are not in the data")
    out = {}
    n_lead = len(lead_times)
    for name in _variables(truth, variables):
        x = truth[name].sel(time=init_times).values  # [init, ...]
        out[name] = np.broadcast_to(x[None, :, None], (1, len(init_times), n_lead) + x.shape[1:])
    return _layout(out, truth, init_times, lead_times, 1)


def _day_of_year(times):
    t = np.asarray(times, "datetime64[ns]")
    return (t - t.astype("datetime64[Y]")) / np.timedelta64(1, "D")


def _hour(times):
    t = np.asarray(times, "datetime64[ns]")
    return ((t - t.astype("datetime64[D]")) / np.timedelta64(1, "h")).round().astype(int)


def analogue_indices(
    reference_times, valid_time, window_days: float, exclude_days: float = 0.0
) -> np.ndarray:
    """Indices of reference times at valid_time's hour within +-window_days (circular doy).

    Reference times closer than `exclude_days` to valid_time itself are left out, so a
    reference period that overlaps the verification period does not put the truth (or
    states still correlated with it) into the climatology.
    """
    ref = np.asarray(reference_times, "datetime64[ns]")
    doy_ref = _day_of_year(ref)
    doy = _day_of_year(np.asarray([valid_time]))[0]
    dist = np.abs((doy_ref - doy + 182.62) % 365.2422 - 182.62)
    same_hour = _hour(ref) == _hour(np.asarray([valid_time]))[0]
    far = np.abs(ref - np.datetime64(valid_time, "ns")) >= np.timedelta64(
        int(exclude_days * 86400), "s"
    )
    idx = np.flatnonzero(same_hour & (dist <= window_days) & far)
    if idx.size == 0:
        raise ValueError(
            f"no reference state within {window_days} days of {valid_time} at the same hour; "
            "use a longer reference period or a wider window"
        )
    return idx


def climatology(
    reference: xarray.Dataset,
    init_times,
    lead_times,
    window_days: float = 15.0,
    exclude_days: float = 0.0,
    variables=None,
) -> xarray.Dataset:
    """Climatological mean for each valid time (sample = 1)."""
    valid = _valid_times(init_times, lead_times)
    names = _variables(reference, variables)
    out = {n: [] for n in names}
    ref = {n: reference[n].values for n in names}
    for v in valid.ravel():
        idx = analogue_indices(reference["time"].values, v, window_days, exclude_days)
        for n in names:
            out[n].append(ref[n][idx].mean(0))
    shaped = {n: np.stack(out[n]).reshape((1,) + valid.shape + ref[n].shape[1:]) for n in names}
    return _layout(shaped, reference, init_times, lead_times, 1)


def climatological_ensemble(
    reference: xarray.Dataset,
    init_times,
    lead_times,
    num_members: int = 8,
    window_days: float = 15.0,
    exclude_days: float = 0.0,
    variables=None,
) -> xarray.Dataset:
    """`num_members` reference states around each valid time's day of year (sample = M).

    Members are evenly spaced through the sorted analogue list (deterministic), so
    they span the whole window and, with several years, several years.
    """
    valid = _valid_times(init_times, lead_times)
    names = _variables(reference, variables)
    ref = {n: reference[n].values for n in names}
    picks = []
    for v in valid.ravel():
        idx = analogue_indices(reference["time"].values, v, window_days, exclude_days)
        picks.append(idx[np.linspace(0, idx.size - 1, num_members).round().astype(int)])
    picks = np.stack(picks, axis=1)  # [M, init*lead]
    shaped = {}
    for n in names:
        x = ref[n][picks]  # [M, init*lead, ...]
        shaped[n] = x.reshape((num_members,) + valid.shape + x.shape[2:])
    return _layout(shaped, reference, init_times, lead_times, num_members)
