"""Figures for ensemble verification, drawn like the GenCast paper's.

Pure drawing: every function takes already-computed xarray scores (see
minigencast/metrics.py), returns a `matplotlib.figure.Figure` and, given `path`,
writes a PNG. Figures are built with `matplotlib.figure.Figure` and the Agg canvas,
never pyplot, so they work headless and never touch the global backend.

Paper-figure assembly (which scores, which variables, captions) lives in
minigencast/figures.py.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colors
from matplotlib.figure import Figure

# Lower-is-better scores: red = worse than the reference, blue = better, saturating at
# +-20% as in the paper's scorecards.
SCORECARD_LIMIT = 0.2
SCORECARD_CMAP = "RdBu_r"


def _save(fig, path):
    if path is not None:
        fig.savefig(path, dpi=fig.dpi)
    return fig


def _lead_hours(lead):
    lead = np.asarray(lead)
    if np.issubdtype(lead.dtype, np.timedelta64):
        return lead / np.timedelta64(1, "h")
    return lead.astype(float)


def _lead_days(lead):
    return _lead_hours(lead) / 24.0


def _panel_grid(n, max_cols, width, height):
    """A figure with n panels, at most `max_cols` per row, each width x height inches.

    Returns (fig, axes) with axes a flat array; axes beyond the n-th are hidden.
    """
    ncol = min(max_cols, n)
    nrow = int(np.ceil(n / ncol))
    fig = Figure(figsize=(width * ncol, height * nrow), dpi=100)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def _rows(ds):
    """(label, DataArray without level) for every (variable, level) of a Dataset."""
    rows = []
    for name, da in ds.data_vars.items():
        if "level" in da.dims:
            for lev in da["level"].values:
                rows.append((f"{name} {int(lev)}", da.sel(level=lev, drop=True)))
        else:
            rows.append((name, da))
    return rows


def scorecard_limit(values, quantile=0.95):
    """A symmetric colour limit from the data: the `quantile` of |values| rounded up to
    1, 2, 2.5 or 5 x 10^n (so +-3% and +-60% differences both fill the scale)."""
    a = np.abs(np.asarray(values, float))
    a = a[np.isfinite(a)]
    if not a.size or a.max() == 0:
        return SCORECARD_LIMIT
    q = float(np.quantile(a, quantile)) or float(a.max())
    decade = 10.0 ** np.floor(np.log10(q))
    return float(min(m * decade for m in (1, 2, 2.5, 5, 10) if m * decade >= q * (1 - 1e-9)))


def scorecard(relative, path=None, title="", limit=SCORECARD_LIMIT, ncols=None):
    """Heat maps of relative score differences: rows (variable, level), columns lead time.

    Args:
      relative: Dataset of (score - reference) / reference per variable, dims
        (lead_time, [level]) — e.g. `metrics.scorecard(crps_a, crps_b)` — or
        {panel title: such a Dataset} for side-by-side cards (CRPS, RMSE).
      limit: colour saturation (0.2 = +-20%, as in the paper); None: set per row of
        panels from the data (`scorecard_limit`), with the percentages written in cells.
        Blue < 0 (better), red > 0 (worse).
      ncols: panels per row (default: all in one row); each row gets its own colourbar.
    """
    panels = relative if isinstance(relative, dict) else {"": relative}
    first = next(iter(panels.values()))
    rows = _rows(first)
    lead = first["lead_time"].values
    ncols = ncols or len(panels)
    nrows = int(np.ceil(len(panels) / ncols))
    annotate = limit is None
    cell_w, cell_h = (0.55, 0.3) if annotate else (0.35, 0.28)
    fig = Figure(
        figsize=(
            3.0 + (1.2 + cell_w * len(lead)) * ncols,
            0.9 + (0.4 + cell_h * len(rows)) * nrows,
        ),
        dpi=100,
        layout="constrained",
    )
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    items = list(panels.items())
    for r in range(nrows):
        row = items[r * ncols : (r + 1) * ncols]
        grids = [
            np.stack([da.transpose("lead_time").values for _, da in _rows(ds)]) for _, ds in row
        ]
        lim = scorecard_limit(np.concatenate([g.ravel() for g in grids])) if annotate else limit
        norm = colors.Normalize(-lim, lim)
        for c, ((panel_title, _), grid) in enumerate(zip(row, grids, strict=True)):
            ax = axes[r, c]
            im = ax.imshow(
                grid, cmap=SCORECARD_CMAP, norm=norm, aspect="auto", interpolation="nearest"
            )
            ax.set_yticks(
                range(len(rows)), [label for label, _ in rows] if c == 0 else [], fontsize=7
            )
            ax.set_xticks(range(len(lead)), [f"{d:g}" for d in _lead_days(lead)], fontsize=7)
            ax.set_xlabel("lead time (days)", fontsize=8)
            ax.set_title(panel_title, fontsize=9)
            if annotate:
                for (i, j), v in np.ndenumerate(grid):
                    dark = abs(v) > 0.6 * lim
                    ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                            color="w" if dark else "k")  # fmt: skip
        cb = fig.colorbar(im, ax=list(axes[r, : len(row)]), extend="both")
        cb.set_label("relative difference" + (" (%)" if annotate else "") + ", blue: better")
        if annotate:
            cb.ax.yaxis.set_major_formatter(lambda x, _: f"{100 * x:g}")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def lines_vs_lead(scores, path=None, ylabel="", title="", reference_line=None, max_panels=6):
    """Score vs lead time, one panel per (variable, level), one line per forecast.

    Args:
      scores: {forecast name: Dataset of per-variable DataArrays (lead_time, [level])}.
      reference_line: draw a dashed horizontal line at this value (1 for spread/skill).
    """
    names = list(scores)
    rows = _rows(scores[names[0]])[:max_panels]
    fig, axes = _panel_grid(len(rows), 3, 3.2, 2.4)
    for ax, (label, _) in zip(axes, rows, strict=False):
        for name in names:
            da = dict(_rows(scores[name])).get(label)
            if da is not None:
                ax.plot(_lead_days(da["lead_time"].values), da.values, marker=".", label=name)
        if reference_line is not None:
            ax.axhline(reference_line, color="k", ls="--", lw=0.8)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("lead time (days)", fontsize=7)
        ax.set_ylabel(ylabel, fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def rank_histograms(hists, path=None, title=""):
    """Bar charts of rank histograms, one panel per entry.

    Args:
      hists: {label: DataArray [rank]} relative frequencies; the flat line 1/(M+1) is drawn.
    """
    fig, axes = _panel_grid(len(hists), 4, 2.8, 2.2)
    for ax, (label, h) in zip(axes, hists.items(), strict=False):
        ax.bar(h["rank"].values, h.values, width=1.0, color="tab:blue", edgecolor="white")
        ax.axhline(1.0 / h.sizes["rank"], color="k", ls="--", lw=0.8)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("rank of truth", fontsize=7)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def rev_curves(panels, path=None, title=""):
    """Relative economic value vs cost/loss ratio.

    Args:
      panels: {panel title: {forecast name: DataArray [cost_loss_ratio]}}.
    """
    fig, axes = _panel_grid(len(panels), 4, 3.0, 2.5)
    for ax, (label, curves) in zip(axes, panels.items(), strict=False):
        for name, rev in curves.items():
            ax.plot(rev["cost_loss_ratio"].values, rev.values, label=name)
        ax.set_xscale("log")
        ax.set_ylim(-0.05, 1.0)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("cost/loss ratio", fontsize=7)
        ax.set_ylabel("REV", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(hspace=0.55, wspace=0.35, top=0.85, bottom=0.15)
    return _save(fig, path)


def pooled_crps_vs_size(curves, path=None, title=""):
    """Pooled CRPS vs pool radius.

    Args:
      curves: {panel title: {line name: DataArray [radius_km]}}.
    """
    fig, axes = _panel_grid(len(curves), len(curves), 3.2, 2.6)
    for ax, (label, lines) in zip(axes, curves.items(), strict=False):
        for name, da in lines.items():
            ax.plot(da["radius_km"].values, da.values, marker="o", label=name)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("pool radius (km)", fontsize=7)
        ax.set_ylabel("CRPS", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def power_spectra(
    members, truth, ensemble_mean=None, path=None, title="", ratios=None, bands=(), ratio_title=""
):
    """Zonal power spectra of members (thin grey) vs truth (black), log-log; optionally a
    second panel of member/truth power ratios against k with goal bands.

    Args:
      members: DataArray [sample, zonal_wavenumber]; truth: [zonal_wavenumber];
      ensemble_mean: optional [zonal_wavenumber] (the blurred mean loses small scales).
      ratios: optional {label: DataArray [zonal_wavenumber]} member/truth power ratios;
      bands: ((k_min, k_max), (ratio_min, ratio_max)) goal boxes drawn on the ratio panel.
    """
    size = 13  # readable when projected
    fig = Figure(figsize=(13.0, 5.2) if ratios else (6.5, 5.2), dpi=100)
    axes = fig.subplots(1, 2 if ratios else 1, squeeze=False).ravel()
    ax = axes[0]
    k = members["zonal_wavenumber"].values
    keep = k > 0
    for i in range(members.sizes["sample"]):
        lab = "members" if i == 0 else None
        ax.loglog(k[keep], members.isel(sample=i).values[keep], color="0.6", lw=0.8, label=lab)
    ax.loglog(k[keep], truth.values[keep], color="k", lw=2.0, label="truth")
    if ensemble_mean is not None:
        ax.loglog(k[keep], ensemble_mean.values[keep], color="tab:red", lw=1.5, label="ens. mean")
    ax.set_xlabel("zonal wavenumber k", fontsize=size)
    ax.set_ylabel("power", fontsize=size)
    ax.legend(fontsize=size - 1)
    ax.set_title(title, fontsize=size)
    ax.tick_params(labelsize=size - 1)
    if ratios:
        ax = axes[1]
        for i, ((k_lo, k_hi), (r_lo, r_hi)) in enumerate(bands):
            ax.fill_between(
                [k_lo - 0.5, k_hi + 0.5],
                r_lo,
                r_hi,
                color="tab:green",
                alpha=0.15,
                lw=0,
                label="goal" if i == 0 else None,
            )
            ax.hlines([r_lo, r_hi], k_lo - 0.5, k_hi + 0.5, color="tab:green", lw=1.2)
        for label, r in ratios.items():
            kr = r["zonal_wavenumber"].values
            ax.semilogy(kr[kr > 0], r.values[kr > 0], marker=".", lw=1.5, label=label)
        ax.axhline(1.0, color="k", ls="--", lw=0.8)
        ax.set_xlabel("zonal wavenumber k", fontsize=size)
        ax.set_ylabel("member / truth power", fontsize=size)
        ax.legend(fontsize=size - 1)
        ax.set_title(ratio_title, fontsize=size)
        ax.tick_params(labelsize=size - 1)
    fig.tight_layout()
    return _save(fig, path)


def member_maps(members, truth, probability, path=None, title="", probability_label=""):
    """Maps of a few members, the ensemble mean, the truth and an event-probability map.

    Args:
      members: DataArray [sample, lat, lon] (the first 4 are drawn);
      truth: [lat, lon]; probability: [lat, lon] in [0, 1].
    """
    shown = members.isel(sample=slice(0, 4))
    panels = [(f"member {i}", shown.isel(sample=i)) for i in range(shown.sizes["sample"])]
    panels += [("ensemble mean", members.mean("sample")), ("truth", truth)]
    vmin = float(min(p.min() for _, p in panels))
    vmax = float(max(p.max() for _, p in panels))
    ncol = 4
    nrow = int(np.ceil((len(panels) + 1) / ncol))
    fig = Figure(figsize=(3.0 * ncol, 1.8 * nrow), dpi=100)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    lon, lat = truth["lon"].values, truth["lat"].values
    for ax, (label, field) in zip(axes, panels, strict=False):
        im = ax.pcolormesh(
            lon,
            lat,
            field.transpose("lat", "lon").values,
            vmin=vmin,
            vmax=vmax,
            shading="nearest",
            cmap="viridis",
        )
        ax.set_title(label, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes[: len(panels)]), shrink=0.8)
    ax = axes[len(panels)]
    im = ax.pcolormesh(
        lon,
        lat,
        probability.transpose("lat", "lon").values,
        vmin=0,
        vmax=1,
        shading="nearest",
        cmap="Reds",
    )
    ax.set_title(probability_label or "event probability", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, shrink=0.8)
    for ax in axes[len(panels) + 1 :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)
