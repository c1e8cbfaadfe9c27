"""Ensemble verification on xarray: the scores GenCast is judged by.

Every metric takes a forecast ensemble (dims `sample`, and e.g. `init_time`,
`lead_time`, [`level`,] `lat`, `lon`) and a truth (the canonical layout with a
`time` dim, or the forecast's own layout without `sample`), aligns them, computes
a per-point score and reduces it with a cell-area-weighted mean over named dims.
Inputs may be DataArrays or Datasets (scored per variable), NumPy- or dask-backed
(dask stays lazy; call `.compute()`). NaNs (SST over land) drop out of the means.

Scores (M = ensemble size, x_i members, y truth, x_(i) sorted members):
  CRPS    = skill - spread,  skill = mean_i |x_i - y|,
            spread = sum_ij |x_i - x_j| / (2 M^2)        (traditional, the ECDF's CRPS)
                   = sum_ij |x_i - x_j| / (2 M (M - 1))  (fair: unbiased, M-independent [2])
            with sum_ij |x_i - x_j| = 2 sum_i (2i - M - 1) x_(i)  (O(M log M) by sorting)
  RMSE    = sqrt(wmean((xbar - y)^2)); debiased: sqrt(wmean((xbar - y)^2 - s^2 / M)),
            s^2 the unbiased ensemble variance: the RMSE of an infinite ensemble's mean [1].
  spread/skill = sqrt((M + 1) / M) * sqrt(wmean(s^2)) / RMSE   (1 when reliable [3])
  rank histogram, Brier score (fair or not) for threshold exceedance, relative economic
  value (Richardson's cost/loss model [4]), spatially pooled CRPS [1], power spectra.

wmean is a weighted mean over `reduce_dims` (all dims by default) with GenCast's loss
latitude weights (docs/design.md §3.4), skipping NaNs. The latitude dim may be called `lat`,
`latitude` or anything the caller names (`weights="y"`); `weights=False` is unweighted.
Any ensemble dim name works (`ensemble_dim=`, e.g. WeatherBench-2's `number`).

References:
  [1] Price et al. 2025, "Probabilistic weather forecasting with machine learning",
      Nature 637, doi:10.1038/s41586-024-08252-9 (Supplementary: metrics).
  [2] Ferro 2014, "Fair scores for ensemble forecasts", QJRMS 140.
  [3] Fortin et al. 2014, "Why should ensemble spread match the RMSE of the ensemble
      mean?", J. Hydrometeorology 15.
  [4] Richardson 2000, "Skill and relative economic value of the ECMWF ensemble
      prediction system", QJRMS 126.
  [5] Rasp et al. 2024, "WeatherBench 2", JAMES (metrics.py: CRPS as skill - spread/2).
Plots: minigencast/plotting.py; paper figures: minigencast/figures.py.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import xarray as xr

from minigencast import geometry

EARTH_RADIUS_KM = 6371.0


# --------------------------------------------------------------------------- weights
def latitude_weights(lat) -> np.ndarray:
    """GenCast's loss latitude weights (docs/design.md §3.4), normalised to mean 1.

    For global equiangular grids this is `geometry.latitude_weights` (one definition for
    the loss and the scores): with both poles (spacing D)
      w(lat) ∝ cos(lat) sin(D/2) for interior rows, sin^2(D/4) for the two pole rows
    (each row's cell area), and w ∝ cos(lat) for grids offset half a row from the poles.
    Regional or irregular latitude sets (a verification sub-domain) get w ∝ cos(lat).

    Args:
      lat: [lat] latitudes in degrees.
    Returns:
      [lat] float64 weights with mean 1 (1 deg: pole 0.00345, equator 1.5795).
    """
    lat = np.asarray(lat, dtype=np.float64)
    try:
        return geometry.latitude_weights(lat)
    except ValueError:  # not a global equiangular grid
        w = np.cos(np.deg2rad(lat))
        return w / w.mean()


def area_weights(data, lat_dim: str = "lat") -> xr.DataArray:
    """Latitude weights of `data`'s latitude coordinate `lat_dim` as a DataArray [lat_dim]."""
    return xr.DataArray(
        latitude_weights(data[lat_dim].values), dims=[lat_dim], coords={lat_dim: data[lat_dim]}
    )


# Names of a latitude dimension recognised without being told (ours, ERA5/WeatherBench-2).
LATITUDE_DIMS = ("lat", "latitude")


def latitude_dim(data, dims) -> str | None:
    """The latitude dimension among `dims`: `lat`, `latitude`, or one whose coordinate is
    CF latitude (standard_name "latitude" or units "degrees_north"); None if there is none."""
    for d in dims:
        if d in LATITUDE_DIMS:
            return d
    for d in dims:
        attrs = data[d].attrs if d in data.coords else {}
        if attrs.get("standard_name") == "latitude" or attrs.get("units") == "degrees_north":
            return d
    return None


# --------------------------------------------------------------------------- alignment
def _check_same_grid(a, b):
    for dim in ("lat", "lon", "level", "latitude", "longitude"):
        if dim in a.dims and dim in b.dims:
            va, vb = np.asarray(a[dim].values), np.asarray(b[dim].values)
            if va.shape != vb.shape or not np.allclose(va, vb):
                raise ValueError(
                    f"forecast and truth are on different grids: `{dim}` has {va.size} values "
                    f"[{va.min()}..{va.max()}] in the forecast and {vb.size} "
                    f"[{vb.min()}..{vb.max()}] in the truth; regrid one of them first."
                )


def valid_times(forecast) -> xr.DataArray:
    """The forecast's valid times: its `valid_time` coord or `init_time + lead_time`."""
    if "valid_time" in forecast.coords:
        return forecast["valid_time"]
    return forecast["init_time"] + forecast["lead_time"]


def align(forecast, truth, ensemble_dim: str | None = "sample"):
    """Check and align a forecast with its truth.

    Args:
      forecast: DataArray/Dataset with `ensemble_dim` (unless None).
      truth: canonical (`time`, [level], lat, lon) or the forecast's layout without
        `ensemble_dim`. Canonical truth is selected at the forecast's valid times.
    Returns:
      (forecast, truth) with identical coordinates on shared dims; Datasets keep the
      forecast's variables.
    Raises:
      ValueError: missing ensemble dim, different grids, mismatched times/coords,
        variables missing from the truth.
    """
    if ensemble_dim is not None and ensemble_dim not in forecast.dims:
        raise ValueError(
            f"the forecast has no ensemble dimension `{ensemble_dim}` "
            f"(dims: {tuple(forecast.dims)}); pass ensemble_dim= the name of the member dimension."
        )
    if ensemble_dim is not None and ensemble_dim in truth.dims:
        raise ValueError(
            f"the truth must not have the ensemble dimension `{ensemble_dim}`; score members "
            f"against one truth (e.g. `truth.isel({ensemble_dim}=0, drop=True)`)."
        )
    _check_same_grid(forecast, truth)
    if isinstance(forecast, xr.Dataset) and isinstance(truth, xr.Dataset):
        missing = [v for v in forecast.data_vars if v not in truth.data_vars]
        if missing:
            raise ValueError(
                f"the truth lacks the forecast variables {missing}; select the shared ones, "
                "e.g. `forecast[[v for v in forecast.data_vars if v in truth]]`."
            )
        truth = truth[list(forecast.data_vars)]
    if "time" in truth.dims and "time" not in forecast.dims:
        if "valid_time" not in forecast.coords and not (
            "init_time" in forecast.coords and "lead_time" in forecast.coords
        ):
            raise ValueError(
                "mismatched times: the truth has a `time` dim but the forecast has neither "
                "`time` nor `valid_time`/`init_time` + `lead_time` coordinates."
            )
        vt = valid_times(forecast)
        wanted = np.asarray(vt.values).ravel()
        have = np.isin(wanted, truth["time"].values)
        if not have.all():
            raise ValueError(
                f"mismatched times: {int((~have).sum())} of {wanted.size} forecast valid times "
                f"(e.g. {wanted[~have][0]}) are not in the truth, which covers "
                f"{truth['time'].values[0]}..{truth['time'].values[-1]}."
            )
        truth = truth.sel(time=vt.drop_vars([c for c in vt.coords if c not in vt.dims]))
        truth = truth.drop_vars("time", errors="ignore")
    grid = {"lat", "lon", "level", "latitude", "longitude"}
    for dim in (set(forecast.dims) & set(truth.dims)) - grid:
        a, b = forecast[dim].values, truth[dim].values
        if a.shape != b.shape or not (a == b).all():
            raise ValueError(
                f"mismatched coordinates along `{dim}` between forecast ({a.size} values) and "
                f"truth ({b.size} values); select the common ones, e.g. "
                "`xr.align(forecast, truth, join='inner')`."
            )
    truth = truth.assign_coords({d: forecast[d] for d in truth.dims if d in forecast.coords})
    return forecast, truth


# --------------------------------------------------------------------------- reduction
def _resolve_dims(data, reduce_dims, preserve_dims):
    dims = list(data.dims)
    if reduce_dims is not None and preserve_dims is not None:
        raise ValueError("give at most one of reduce_dims and preserve_dims.")
    if reduce_dims is not None:
        reduce_dims = [reduce_dims] if isinstance(reduce_dims, str) else list(reduce_dims)
        unknown = [d for d in reduce_dims if d not in dims]
        if unknown:
            raise ValueError(f"cannot reduce over {unknown}: not dims of the score {tuple(dims)}.")
        return reduce_dims
    if preserve_dims is not None:
        preserve_dims = [preserve_dims] if isinstance(preserve_dims, str) else list(preserve_dims)
        return [d for d in dims if d not in preserve_dims]
    return dims


def weighted_mean(score, weights=None, reduce_dims=None, preserve_dims=None):
    """NaN-skipping weighted mean of a per-point score over dims.

    sum(w s) / sum(w [s not NaN]). weights: None = area (latitude) weights when a
    latitude dim is reduced, whatever it is called (`latitude_dim`); a str = the name of
    the latitude dim to area-weight; False = unweighted (only when asked for); else a
    DataArray broadcast against `score`.
    """
    dims = _resolve_dims(score, reduce_dims, preserve_dims)
    if isinstance(score, xr.Dataset):  # per variable, over the dims each one has
        return score.map(lambda da: weighted_mean(da, weights, [d for d in dims if d in da.dims]))
    if not dims:
        return score
    if isinstance(weights, str):
        if weights not in dims:
            raise ValueError(
                f"weights={weights!r} names no reduced dim (reducing over {dims}); pass the "
                "latitude dim's name, None to detect it, or False for an unweighted mean."
            )
        weights = area_weights(score, weights)
    elif weights is None:
        lat_dim = latitude_dim(score, dims)
        weights = False if lat_dim is None else area_weights(score, lat_dim)
    if weights is False:
        return score.mean(dims, skipna=True)
    return score.weighted(weights.fillna(0)).mean(dims, skipna=True)


# --------------------------------------------------------------------------- CRPS
def _crps_terms(x, y, block_elements=2**18):
    """Per-point sum_i |x_i - y| and sum_ij |x_i - x_j| of members x [..., M], truth y [...].

    Uses sum_ij |x_i - x_j| = 2 sum_i (2i - M - 1) x_(i) on the sorted members (i = 1..M),
    with x shifted by y first (pairwise differences are shift-invariant; the shift keeps
    float32 inputs accurate), in float64 and in cache-sized blocks.
    """
    m = x.shape[-1]
    shape = np.broadcast_shapes(x.shape[:-1], np.shape(y))
    x = np.broadcast_to(x, shape + (m,)).reshape(-1, m)
    y = np.broadcast_to(y, shape).reshape(-1)
    coef = 2.0 * np.arange(1, m + 1) - m - 1
    abs_sum = np.empty(y.size)
    pair_sum = np.empty(y.size)
    step = max(1, block_elements // m)
    for start in range(0, y.size, step):
        sl = slice(start, start + step)
        d = np.sort(x[sl], axis=-1).astype(np.float64) - y[sl, None]
        abs_sum[sl] = np.abs(d).sum(-1)
        pair_sum[sl] = 2.0 * (d @ coef)
    return abs_sum.reshape(shape), pair_sum.reshape(shape)


def crps_skill_spread(
    forecast,
    truth,
    ensemble_dim="sample",
    fair=True,
    weights=None,
    reduce_dims=None,
    preserve_dims=None,
):
    """The two CRPS terms, reduced: (skill, spread) with CRPS = skill - spread.

    skill = mean_i |x_i - y|; spread = sum_ij |x_i - x_j| / (2 K), K = M(M-1) if fair
    else M^2. A point where the truth or any member is NaN is NaN in both terms and
    drops out of the mean (`scores` instead drops the NaN members and scores the rest).
    """
    forecast, truth = align(forecast, truth, ensemble_dim)
    m = forecast.sizes[ensemble_dim]
    if fair and m < 2:
        raise ValueError(
            f"fair CRPS needs an ensemble of at least 2 members (`{ensemble_dim}` has {m}); "
            "use fair=False (for one member the traditional CRPS is the MAE)."
        )
    k = m * (m - 1) if fair else m * m
    if hasattr(forecast, "chunks") and forecast.chunks:
        forecast = forecast.chunk({ensemble_dim: -1})
    abs_sum, pair_sum = xr.apply_ufunc(
        _crps_terms,
        forecast,
        truth,
        input_core_dims=[[ensemble_dim], []],
        output_core_dims=[[], []],
        dask="parallelized",
        output_dtypes=[np.float64, np.float64],
    )
    skill, spread = abs_sum / m, pair_sum / (2.0 * k)
    return (
        weighted_mean(skill, weights, reduce_dims, preserve_dims),
        weighted_mean(spread, weights, reduce_dims, preserve_dims),
    )


def crps(
    forecast,
    truth,
    ensemble_dim="sample",
    fair=True,
    weights=None,
    reduce_dims=None,
    preserve_dims=None,
):
    """Continuous ranked probability score of an ensemble, area-weighted mean.

    CRPS = mean_i |x_i - y| - sum_ij |x_i - x_j| / (2 K), K = M(M-1) (fair) or M^2
    (traditional), computed by sorting in O(M log M). Lower is better.

    Args:
      forecast: [sample, ...] DataArray or Dataset.
      truth: canonical truth or [...] in the forecast's layout.
      fair: the unbiased (ensemble-size independent) estimate; needs M >= 2.
      weights: None = area weights when a latitude dim (`lat`, `latitude`, CF latitude)
        is reduced; a str names the latitude dim; False = none; or a DataArray.
      reduce_dims / preserve_dims: dims to average over / keep (default: all reduced).
    """
    skill, spread = crps_skill_spread(
        forecast, truth, ensemble_dim, fair, weights, reduce_dims, preserve_dims
    )
    return skill - spread


# --------------------------------------------------------------------------- RMSE, spread
def rmse(
    forecast,
    truth,
    ensemble_dim="sample",
    debiased=False,
    weights=None,
    reduce_dims=None,
    preserve_dims=None,
):
    """RMSE of the ensemble mean: sqrt(wmean((xbar - y)^2)).

    debiased=True subtracts the finite-ensemble term s^2/M (s^2 the unbiased member
    variance) inside the mean, estimating the RMSE of an infinite ensemble's mean
    (GenCast Supplementary); clipped at 0. The sqrt is taken after the mean over all
    `reduce_dims` (include `init_time` there to average MSE over forecasts).
    """
    forecast, truth = align(forecast, truth, ensemble_dim)
    m = forecast.sizes[ensemble_dim]
    se = (forecast.mean(ensemble_dim, skipna=False) - truth) ** 2
    if debiased:
        if m < 2:
            raise ValueError("the debiased RMSE needs an ensemble of at least 2 members.")
        se = se - forecast.var(ensemble_dim, ddof=1, skipna=False) / m
    mse = weighted_mean(se, weights, reduce_dims, preserve_dims)
    return np.sqrt(mse.clip(min=0) if debiased else mse)


def spread(forecast, ensemble_dim="sample", weights=None, reduce_dims=None, preserve_dims=None):
    """Ensemble spread sqrt(wmean(s^2)), s^2 the unbiased (ddof=1) member variance."""
    var = forecast.var(ensemble_dim, ddof=1, skipna=False)
    return np.sqrt(weighted_mean(var, weights, reduce_dims, preserve_dims))


def spread_skill_ratio(
    forecast, truth, ensemble_dim="sample", weights=None, reduce_dims=None, preserve_dims=None
):
    """Debiased spread/skill ratio sqrt((M+1)/M) * spread / RMSE(ensemble mean).

    For a reliable ensemble (truth exchangeable with the members)
    E[(xbar - y)^2] = (1 + 1/M) E[s^2], so the ratio is 1; < 1 means under-dispersion.
    Points where the truth is NaN are dropped from both terms.
    """
    forecast, truth = align(forecast, truth, ensemble_dim)
    m = forecast.sizes[ensemble_dim]
    if m < 2:
        raise ValueError("the spread/skill ratio needs an ensemble of at least 2 members.")
    var = forecast.var(ensemble_dim, ddof=1, skipna=False).where(truth.notnull())
    se = (forecast.mean(ensemble_dim, skipna=False) - truth) ** 2
    ratio = weighted_mean(var, weights, reduce_dims, preserve_dims) / weighted_mean(
        se, weights, reduce_dims, preserve_dims
    )
    return np.sqrt((m + 1) / m * ratio)


# --------------------------------------------------------------------------- rank histogram
def rank_histogram(
    forecast, truth, ensemble_dim="sample", weights=None, reduce_dims=None, preserve_dims=None
):
    """Relative frequency of the truth's rank among the members, new dim `rank` (1..M+1).

    A truth below all members has rank 1, above all rank M+1; ties with n members
    share their n+1 ranks equally (so a reliable ensemble's histogram is flat).
    A point with any NaN member or NaN truth is skipped.
    """
    forecast, truth = align(forecast, truth, ensemble_dim)
    m = forecast.sizes[ensemble_dim]
    below = (forecast < truth).sum(ensemble_dim)
    ties = (forecast == truth).sum(ensemble_dim)
    valid = truth.notnull() & forecast.notnull().all(ensemble_dim)
    share = (1.0 / (ties + 1.0)).where(valid)
    dims = _resolve_dims(share, reduce_dims, preserve_dims)
    # One pass per rank r: the truth takes ranks below+1 .. below+ties+1 (no [rank, ...]
    # array of the data's full size is ever formed).
    freq = [
        weighted_mean(
            share.where((below + 1 <= r) & (r <= below + ties + 1), 0.0).where(valid), weights, dims
        )
        for r in range(1, m + 2)
    ]
    rank = xr.DataArray(np.arange(1, m + 2), dims=["rank"], name="rank")
    return xr.concat(freq, dim=rank).assign_coords(rank=rank.values)


# --------------------------------------------------------------------------- Brier, REV
def climatological_thresholds(truth, quantiles, dims=("time",)):
    """Per-point climatological quantiles of `truth` over `dims`, new dim `quantile`.

    E.g. quantiles=(0.99,) over a year of truth gives each grid point its own 99th
    percentile: the extreme-event thresholds of GenCast's Brier and REV figures.
    """
    # skipna only when needed: NumPy's nanquantile loops in Python over points.
    skipna = bool(truth.isnull().any()) if isinstance(truth, xr.DataArray) else True
    return truth.quantile(list(np.atleast_1d(quantiles)), dim=list(dims), skipna=skipna)


def event_probability(forecast, thresholds, ensemble_dim="sample", above=True):
    """Fraction of members with x >= threshold (above) or x <= threshold (below)."""
    hit = forecast >= thresholds if above else forecast <= thresholds
    return hit.mean(ensemble_dim).where(forecast.notnull().all(ensemble_dim))


def _event(truth, thresholds, above):
    hit = truth >= thresholds if above else truth <= thresholds
    return hit.astype(float).where(truth.notnull())


def brier_score(
    forecast,
    truth,
    thresholds,
    ensemble_dim="sample",
    fair=False,
    above=True,
    weights=None,
    reduce_dims=None,
    preserve_dims=None,
):
    """Brier score of the ensemble's event probability p = i/M against the event o.

    BS = wmean((p - o)^2), or with fair=True wmean((p - o)^2 - i(M - i)/(M^2 (M - 1)))
    (Ferro 2014). `thresholds` broadcast against the truth (e.g. from
    `climatological_thresholds`, dim `quantile`); that dim is kept.
    """
    forecast, truth = align(forecast, truth, ensemble_dim)
    m = forecast.sizes[ensemble_dim]
    p = event_probability(forecast, thresholds, ensemble_dim, above)
    o = _event(truth, thresholds, above)
    bs = (p - o) ** 2
    if fair:
        if m < 2:
            raise ValueError("the fair Brier score needs an ensemble of at least 2 members.")
        bs = bs - p * (1 - p) / (m - 1)  # = i(M - i) / (M^2 (M - 1))
    keep = set(getattr(thresholds, "dims", ())) - set(truth.dims)
    return weighted_mean(
        bs, weights, [d for d in _resolve_dims(bs, reduce_dims, preserve_dims) if d not in keep]
    )


def brier_skill_score(
    forecast,
    truth,
    thresholds,
    reference=None,
    ensemble_dim="sample",
    above=True,
    weights=None,
    reduce_dims=None,
    preserve_dims=None,
):
    """BSS = 1 - BS / BS_ref. reference: another ensemble forecast, or None for the
    climatological base rate (the weighted event frequency over the reduced dims)."""
    kw = dict(
        ensemble_dim=ensemble_dim,
        above=above,
        weights=weights,
        reduce_dims=reduce_dims,
        preserve_dims=preserve_dims,
    )
    bs = brier_score(forecast, truth, thresholds, **kw)
    if reference is not None:
        ref = brier_score(reference, truth, thresholds, **kw)
    else:
        _, t = align(forecast, truth, ensemble_dim)
        o = _event(t, thresholds, above)
        keep = set(getattr(thresholds, "dims", ())) - set(t.dims)
        dims = [d for d in _resolve_dims(o, reduce_dims, preserve_dims) if d not in keep]
        base = weighted_mean(o, weights, dims)
        ref = weighted_mean((o - base) ** 2, weights, dims)
    return 1 - bs / ref


def relative_economic_value(
    forecast,
    truth,
    thresholds,
    cost_loss_ratios,
    probability_thresholds=None,
    ensemble_dim="sample",
    above=True,
    weights=None,
    reduce_dims=None,
    preserve_dims=None,
    envelope=True,
):
    """Relative economic value in Richardson's cost/loss model, new dim `cost_loss_ratio`.

    A user protects (cost C) when the forecast probability p >= p_t, else risks a loss L
    if the event happens. With hit rate H, false-alarm rate F and base rate s (weighted
    over the reduced dims) and alpha = C/L, the mean expenses per unit L are
      E_clim = min(alpha, s), E_perfect = alpha s,
      E_fc   = F alpha (1 - s) - H s (1 - alpha) + s,
      REV    = (E_clim - E_fc) / (E_clim - E_perfect)
    (1 for a perfect forecast, 0 for climatology). envelope=True takes the max over the
    probability thresholds p_t (default k/M, k = 1..M); else dim `probability_threshold`.
    """
    forecast, truth = align(forecast, truth, ensemble_dim)
    m = forecast.sizes[ensemble_dim]
    if probability_thresholds is None:
        probability_thresholds = np.arange(1, m + 1) / m
    pt = xr.DataArray(np.asarray(probability_thresholds, float), dims=["probability_threshold"])
    pt = pt.assign_coords(probability_threshold=pt)
    alpha = xr.DataArray(np.asarray(cost_loss_ratios, float), dims=["cost_loss_ratio"])
    alpha = alpha.assign_coords(cost_loss_ratio=alpha)
    p = event_probability(forecast, thresholds, ensemble_dim, above)
    o = _event(truth, thresholds, above)
    valid = p.notnull() & o.notnull()
    o = o.where(valid)
    # Small tolerance: p = k/M is computed as a mean and may sit a rounding error below k/M.
    warn = (p >= pt - 1e-9).astype(float).where(valid)
    keep = set(getattr(thresholds, "dims", ())) - set(truth.dims)
    dims = [d for d in _resolve_dims(o, reduce_dims, preserve_dims) if d not in keep]
    s = weighted_mean(o, weights, dims)
    hits = weighted_mean(warn * o, weights, dims)
    false_alarms = weighted_mean(warn * (1 - o), weights, dims)
    h = hits / s
    f = false_alarms / (1 - s)
    e_clim = np.minimum(alpha, s)
    e_fc = f * alpha * (1 - s) - h * s * (1 - alpha) + s
    rev = (e_clim - e_fc) / (e_clim - alpha * s)
    return rev.max("probability_threshold") if envelope else rev


# --------------------------------------------------------------------------- pooled CRPS
def great_circle_km(lat1, lon1, lat2, lon2):
    """Great-circle distance (km) between points given in degrees (broadcasting)."""
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dl = np.deg2rad(np.asarray(lon2) - np.asarray(lon1))
    c = np.sin(p1) * np.sin(p2) + np.cos(p1) * np.cos(p2) * np.cos(dl)
    return EARTH_RADIUS_KM * np.arccos(np.clip(c, -1.0, 1.0))


def build_pools(lat, lon, radius_km, centre_stride=1):
    """Neighbourhoods: grid points within `radius_km` of each centre.

    Centres are the grid points (every `centre_stride`-th lat and lon). Returns
    (membership [n_centres, n_lat*n_lon] bool, centre_lat [n_centres], centre_lon [n_centres]).
    """
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    glat, glon = np.meshgrid(lat, lon, indexing="ij")
    clat, clon = np.meshgrid(lat[::centre_stride], lon[::centre_stride], indexing="ij")
    clat, clon = clat.ravel(), clon.ravel()
    # Within the radius <=> the unit vectors' dot product >= cos(radius / R).
    c, g = _unit_vectors(clat, clon), _unit_vectors(glat.ravel(), glon.ravel())
    dot = c[:, 0:1] * g[None, :, 0] + c[:, 1:2] * g[None, :, 1] + c[:, 2:3] * g[None, :, 2]
    return dot >= np.cos(radius_km / EARTH_RADIUS_KM) - 1e-12, clat, clon


def _unit_vectors(lat, lon):
    la, lo = np.deg2rad(lat), np.deg2rad(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def pool(field, membership, centre_lat, centre_lon, pooling="average"):
    """Pool a [..., lat, lon] field over neighbourhoods -> [..., centre].

    average: cell-area-weighted mean over the pool; max: maximum. NaN cells (a fixed
    land mask for SST) are left out of their pools; an all-NaN pool is NaN.
    """
    w = latitude_weights(field["lat"].values)
    flat = field.stack(point=("lat", "lon")).transpose(..., "point")
    n_lon = field.sizes["lon"]
    if pooling == "average":
        # Row c of `mat`: the pool's cell-area weights, normalised to sum 1. Built sparse
        # (a dense float64 copy of `membership` would be 8x its size).
        mat = scipy.sparse.csr_matrix(membership).multiply(np.repeat(w, n_lon)[None]).tocsr()
        mat = scipy.sparse.diags(1.0 / np.asarray(mat.sum(axis=1)).ravel()) @ mat

        def f(x):
            x2 = x.reshape(-1, x.shape[-1])
            valid = np.isfinite(x2)
            total = (mat @ np.where(valid, x2, 0.0).T).T
            weight = (mat @ valid.T.astype(np.float64)).T
            with np.errstate(invalid="ignore", divide="ignore"):
                out = np.where(weight > 0, total / weight, np.nan)
            return out.reshape(x.shape[:-1] + (mat.shape[0],))
    elif pooling == "max":
        # Padded neighbour table [n_centres, K_max]; padding repeats the centre's first
        # member, which leaves the max unchanged.
        counts = membership.sum(1)
        order = np.argsort(~membership, axis=1, kind="stable")[:, : counts.max()]
        pad = np.arange(order.shape[1])[None] >= counts[:, None]
        idx = np.where(pad, order[:, :1], order)
        block = max(1, 2**22 // idx.size)

        def f(x):
            x2 = x.reshape(-1, x.shape[-1])
            x2 = np.where(np.isnan(x2), -np.inf, x2)
            out = np.concatenate(
                [x2[s : s + block][:, idx].max(-1) for s in range(0, x2.shape[0], block)]
            )
            out[out == -np.inf] = np.nan
            return out.reshape(x.shape[:-1] + (idx.shape[0],))
    else:
        raise ValueError(f"pooling must be 'average' or 'max', not {pooling!r}.")
    out = xr.apply_ufunc(
        f,
        flat.drop_vars(["point", "lat", "lon"]),
        input_core_dims=[["point"]],
        output_core_dims=[["centre"]],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"centre": membership.shape[0]}},
    )
    return out.assign_coords(lat=("centre", centre_lat), lon=("centre", centre_lon))


def pooled_crps(
    forecast,
    truth,
    radius_km,
    pooling="average",
    ensemble_dim="sample",
    fair=True,
    centre_stride=1,
    weights=None,
    reduce_dims=None,
    preserve_dims=None,
):
    """CRPS of spatially pooled fields, new dim `radius_km` (GenCast Supplementary).

    Members and truth are pooled over discs of each radius around every centre (average-
    or max-pooling), then scored with the CRPS; centres are weighted by their cell area.
    Pooling tests the joint spatial structure of members, which per-point CRPS ignores.
    """
    forecast, truth = align(forecast, truth, ensemble_dim)
    results = []
    for r in np.atleast_1d(radius_km):
        mem, clat, clon = build_pools(forecast["lat"], forecast["lon"], float(r), centre_stride)
        pf = pool(forecast, mem, clat, clon, pooling)
        pt = pool(truth, mem, clat, clon, pooling)
        w = weights
        if w is None:  # each centre weighs as its own grid cell
            w_lat = latitude_weights(forecast["lat"].values)[::centre_stride]
            w = xr.DataArray(np.repeat(w_lat, mem.shape[0] // w_lat.size), dims=["centre"])
        dims = _resolve_dims(truth, reduce_dims, preserve_dims)
        dims = sorted({"centre" if d in ("lat", "lon") else d for d in dims})
        score = crps(pf, pt, ensemble_dim, fair, w, dims, None)
        results.append(score.drop_vars(["lat", "lon"], errors="ignore"))
    return xr.concat(results, dim=xr.DataArray(np.atleast_1d(radius_km), dims=["radius_km"]))


# --------------------------------------------------------------------------- spectra
def power_spectrum(field, kind="zonal", lat_range=None, weights=None, max_degree=None):
    """Power spectrum of a [..., lat, lon] field: zonal or spherical.

    kind="zonal" (new dim `zonal_wavenumber`): at each latitude X_k = rfft(x)_k / n_lon
    and P_k = c_k |X_k|^2, c_k = 2 except for k = 0 and the Nyquist wavenumber (c = 1),
    so sum_k P_k = mean_lon(x^2) (Parseval); then the area-weighted mean over latitudes
    in `lat_range` (deg, inclusive). Latitude rows with NaNs are skipped.

    kind="spherical" (new dim `degree`, total wavenumber l < L, L = n_lon // 2 or
    `max_degree`): P_l = sum_m (c_lm^2 + s_lm^2) / (4 pi) from the geometry helper's
    real spherical-harmonic analysis (spherical_harmonics.py), so sum_l P_l is the
    area-mean of x^2 for band-limited fields. Needs a global grid; a NaN makes the
    field's spectrum NaN.
    """
    if kind == "spherical":
        if lat_range is not None or weights is not None:
            raise ValueError(
                "a spherical spectrum is global: lat_range and weights apply to kind='zonal' "
                "only; drop them, or use kind='zonal' for a latitude band."
            )
        return _spherical_spectrum(field, max_degree)
    if kind != "zonal":
        raise ValueError(f"power_spectrum kind must be 'zonal' or 'spherical', not {kind!r}.")
    if lat_range is not None:
        field = field.sel(lat=slice(*lat_range))
    n = field.sizes["lon"]

    def f(x):
        p = np.abs(np.fft.rfft(x, axis=-1) / n) ** 2
        c = np.full(p.shape[-1], 2.0)
        c[0] = 1.0
        if n % 2 == 0:
            c[-1] = 1.0
        return p * c

    spec = xr.apply_ufunc(
        f,
        field,
        input_core_dims=[["lon"]],
        output_core_dims=[["zonal_wavenumber"]],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"zonal_wavenumber": n // 2 + 1}},
    ).drop_vars("lon", errors="ignore")
    spec = spec.assign_coords(zonal_wavenumber=np.arange(n // 2 + 1))
    return weighted_mean(spec, weights, reduce_dims=["lat"])


def _spherical_spectrum(field, max_degree=None):
    from minigencast import spherical_harmonics  # imported here: it imports JAX

    basis = spherical_harmonics.build_basis(field["lat"].values, field["lon"].values, max_degree)

    def f(x):
        return spherical_harmonics.power_spectrum(basis, x) / (4 * np.pi)

    spec = xr.apply_ufunc(
        f,
        field,
        input_core_dims=[["lat", "lon"]],
        output_core_dims=[["degree"]],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"degree": basis.max_degree}},
    )
    return spec.assign_coords(degree=np.arange(basis.max_degree))


# --------------------------------------------------------------------------- scorecards
def scorecard(score, reference_score):
    """Relative difference (score - reference) / reference: < 0 means `score` is better
    for lower-is-better scores (CRPS, RMSE). The paper colours -20%..+20% blue..red."""
    return (score - reference_score) / reference_score
