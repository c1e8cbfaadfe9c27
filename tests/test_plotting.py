"""Plot helpers: headless PNGs, and scorecard colours that mean what they say."""

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib import colormaps

from minigencast import plotting

LEAD = pd.to_timedelta([12, 24, 48], unit="h").values


def _png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def _relative(values):
    return xr.Dataset(
        {
            "2m_temperature": ("lead_time", np.asarray(values[0], float)),
            "geopotential": (("level", "lead_time"), np.asarray(values[1:], float)),
        },
        coords={"lead_time": LEAD, "level": [500, 850][: len(values) - 1]},
    )


def test_scorecard_colours_red_worse_blue_better(tmp_path):
    rel = _relative([[0.3, -0.3, 0.0], [0.1, -0.1, 0.2]])
    fig = plotting.scorecard({"CRPS": rel}, tmp_path / "s.png")
    assert _png(tmp_path / "s.png")
    im = fig.axes[0].images[0]
    rgba = im.to_rgba(im.get_array())
    # +30% saturates red, -30% saturates blue, 0 is white-ish.
    cmap = colormaps[plotting.SCORECARD_CMAP]
    np.testing.assert_allclose(rgba[0, 0], cmap(1.0), atol=1e-6)
    np.testing.assert_allclose(rgba[0, 1], cmap(0.0), atol=1e-6)
    assert rgba[0, 0][0] > rgba[0, 0][2] and rgba[0, 1][2] > rgba[0, 1][0]
    assert rgba[0, 2][:3].min() > 0.9
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["2m_temperature", "geopotential 500"]


def test_scorecard_scale_from_the_data_does_not_saturate(tmp_path):
    # The limit is the 95th percentile of |values| rounded up to 1, 2, 2.5 or 5 x 10^n.
    assert plotting.scorecard_limit([0.03, -0.02, 0.01]) == 0.05
    assert plotting.scorecard_limit([-0.6] * 20 + [5.0]) == 1.0  # one outlier saturates
    assert plotting.scorecard_limit([0.2, -0.25]) == 0.25
    assert plotting.scorecard_limit([np.nan, 0.0]) == plotting.SCORECARD_LIMIT
    small = _relative([[0.03, -0.03, 0.0], [0.01, -0.01, 0.02]])
    worse = _relative([[0.6, 0.5, 0.4], [0.3, 0.2, 0.1]])
    fig = plotting.scorecard(
        {"CRPS vs a": small, "RMSE vs a": small, "CRPS vs b": worse, "RMSE vs b": worse},
        tmp_path / "s.png",
        limit=None,
        ncols=2,
    )
    assert _png(tmp_path / "s.png")
    cmap = colormaps[plotting.SCORECARD_CMAP]
    im = fig.axes[0].images[0]
    assert im.norm.vmax == 0.05  # +-3% is 60% of the way to the end of its row's scale
    np.testing.assert_allclose(im.to_rgba(im.get_array())[0, 1], cmap(0.5 - 0.3), atol=1e-6)
    assert fig.axes[2].images[0].norm.vmax == 1.0  # the other row, its own scale
    assert [t.get_text() for t in fig.axes[0].texts][:3] == ["3", "-3", "0"]  # percent


def test_other_plots_write_pngs(tmp_path):
    rel = _relative([[1.0, 2.0, 3.0], [2.0, 3.0, 4.0]])
    plotting.lines_vs_lead({"a": rel, "b": rel * 1.1}, tmp_path / "l.png", reference_line=1)
    rank = xr.DataArray(np.full(5, 0.2), dims=["rank"], coords={"rank": np.arange(1, 6)})
    plotting.rank_histograms({"x": rank, "y": rank}, tmp_path / "r.png")
    alpha = xr.DataArray(np.linspace(0.01, 0.9, 5), dims=["cost_loss_ratio"])
    rev = xr.DataArray(
        np.linspace(0, 0.5, 5), dims=["cost_loss_ratio"], coords={"cost_loss_ratio": alpha}
    )
    plotting.rev_curves({"event": {"f": rev}}, tmp_path / "v.png")
    pooled = xr.DataArray([1.0, 0.8], dims=["radius_km"], coords={"radius_km": [0.0, 500.0]})
    plotting.pooled_crps_vs_size({"avg": {"f": pooled}}, tmp_path / "p.png")
    k = np.arange(9)
    spec = xr.DataArray(
        np.exp(-k)[None].repeat(3, 0),
        dims=["sample", "zonal_wavenumber"],
        coords={"zonal_wavenumber": k},
    )
    plotting.power_spectra(spec, spec.isel(sample=0), spec.mean("sample"), tmp_path / "k.png")
    lat, lon = np.linspace(-90, 90, 5), np.arange(8) * 45.0
    members = xr.DataArray(
        np.random.default_rng(0).normal(size=(5, 5, 8)),
        dims=["sample", "lat", "lon"],
        coords={"lat": lat, "lon": lon},
    )
    plotting.member_maps(
        members, members.isel(sample=0), (members > 0).mean("sample"), tmp_path / "m.png"
    )
    for name in "lrvpkm":
        assert _png(tmp_path / f"{name}.png")


def test_panel_grids_show_one_axis_per_panel():
    rank = xr.DataArray(np.full(5, 0.2), dims=["rank"], coords={"rank": np.arange(1, 6)})
    fig = plotting.rank_histograms({f"h{i}": rank for i in range(5)})  # 2 rows of 4
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 8 and len(visible) == 5
    assert [ax.get_title() for ax in visible] == [f"h{i}" for i in range(5)]
    rel = _relative([[1.0, 2.0, 3.0], [2.0, 3.0, 4.0], [3.0, 4.0, 5.0]])  # 3 panels, 1 row
    fig = plotting.lines_vs_lead({"a": rel})
    assert len(fig.axes) == 3 and all(ax.get_visible() for ax in fig.axes)
