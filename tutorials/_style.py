"""One figure style for every tutorial notebook, checked before each figure is shown.

Projector-ready: every text at least MIN_FONT_PT points, a colorbar for every map, no
two tick labels of an axis overlapping. `show(fig)` asserts these three rules and then
displays the figure, so a notebook that breaks them fails in the tutorial tier
(`pytest -m tutorials`) instead of at the lecture.

Importing this module sets the rcParams and, inside a Jupyter kernel whose backend is
non-interactive (CI exports MPLBACKEND=Agg), switches to the inline backend so that
figures become image/png outputs of the cell that draws them.
"""

from __future__ import annotations

import sys

import matplotlib

MIN_FONT_PT = 12.0

RC = {
    "font.size": 13,
    "axes.titlesize": 13,
    "axes.labelsize": 13,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 12,
    "legend.title_fontsize": 12,
    "figure.titlesize": 14,
    "figure.dpi": 80,  # inline and HTML images; 12 pt stays 12 pt
    "savefig.dpi": 80,
    "figure.constrained_layout.use": True,
    "axes.grid": False,
    "lines.linewidth": 2.0,
    "image.cmap": "viridis",
}


def _in_kernel() -> bool:
    shell = sys.modules.get("IPython")
    shell = shell.get_ipython() if shell is not None else None
    return shell is not None and hasattr(shell, "kernel")


def setup() -> None:
    """The rcParams above; the inline backend inside a Jupyter kernel."""
    if _in_kernel() and matplotlib.get_backend().lower() in ("agg", "pdf", "svg", "template"):
        matplotlib.use("module://matplotlib_inline.backend_inline")
    matplotlib.rcParams.update(RC)


setup()

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def _texts(fig):
    """Every visible, non-empty text artist of the figure (ticks, labels, titles, legends)."""
    return [
        t
        for t in fig.findobj(matplotlib.text.Text)
        if t.get_visible() and t.get_text().strip() and (t.axes is None or t.axes.get_visible())
    ]


def small_texts(fig, min_pt=MIN_FONT_PT) -> list[str]:
    """Texts smaller than min_pt points, as 'text (size pt)'."""
    return [
        f"{t.get_text()!r} ({t.get_fontsize():.0f} pt)"
        for t in _texts(fig)
        if t.get_fontsize() < min_pt - 1e-6
    ]


def maps_without_colorbar(fig) -> list[str]:
    """Colour-mapped images/meshes/contour fills with no colorbar of the same colours.

    A colorbar shared by several panels counts for each panel drawn with the same
    colormap and limits.
    """
    bars = []
    for ax in fig.axes:
        cb = getattr(ax, "_colorbar", None)
        if cb is not None:
            bars.append((cb.cmap.name, tuple(float(v) for v in cb.mappable.get_clim())))
    missing = []
    for ax in fig.axes:
        if not ax.get_visible() or getattr(ax, "_colorbar", None) is not None:
            continue
        mappables = list(ax.images) + [
            c for c in ax.collections if isinstance(c, matplotlib.collections.QuadMesh)
        ]
        mappables += [
            c for c in ax.collections if isinstance(c, matplotlib.contour.ContourSet) and c.filled
        ]
        for m in mappables:
            if m.colorbar is not None or getattr(m, "_no_colorbar", False):
                continue
            key = (m.get_cmap().name, tuple(float(v) for v in m.get_clim()))
            if key not in bars:
                missing.append(f"panel {ax.get_title()!r}")
    return missing


def overlapping_tick_labels(fig) -> list[str]:
    """Pairs of neighbouring tick labels of one axis whose boxes overlap on screen."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            boxes = [
                (t.get_text(), t.get_window_extent(renderer))
                for t in axis.get_ticklabels(which="both")
                if t.get_visible() and t.get_text().strip()
            ]
            boxes.sort(key=lambda tb: (tb[1].x0, tb[1].y0))
            for (ta, a), (tb, b) in zip(boxes, boxes[1:], strict=False):
                if a.overlaps(b) and a.width > 0 and b.width > 0:
                    found.append(f"{name} ticks {ta!r} and {tb!r} in {ax.get_title()!r}")
    return found


def problems(fig) -> list[str]:
    """Every breach of the three rules (fonts, colorbars, tick labels)."""
    out = [f"text under {MIN_FONT_PT:.0f} pt: {s}" for s in small_texts(fig)]
    out += [f"map without colorbar: {s}" for s in maps_without_colorbar(fig)]
    out += [f"overlapping tick labels: {s}" for s in overlapping_tick_labels(fig)]
    return out


def no_colorbar(mappable):
    """Marks an image that is not a map of values (a mask, a picture): no colorbar needed."""
    mappable._no_colorbar = True
    return mappable


def show(fig=None) -> None:
    """Asserts the projector rules for `fig` (default: the current figure), then shows it."""
    fig = plt.gcf() if fig is None else fig
    found = problems(fig)
    assert not found, "figure not projector-ready:\n  " + "\n  ".join(found)
    plt.show()
