"""The tutorial notebooks: pairs in sync (default tier) and executed at tiny size (tutorials tier).

Default tier (fast): every `tutorials/NN_topic.py` has its `.ipynb` twin with the same
cells and no stored outputs.

`pytest -m tutorials`: executes every paired `.ipynb` in a fresh Jupyter kernel with
MINIGENCAST_SIZE=tiny and MPLBACKEND=Agg, failing on the first cell that raises (each
notebook ends with check cells that assert analytic expectations and that hand-built
versions equal the package functions, and every figure passes `_style.show`'s projector
rules), and on any cell that draws a figure but leaves no image/png output.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import time

import nbformat
import pytest

TUTORIALS = pathlib.Path(__file__).resolve().parent.parent / "tutorials"


def _render_module():
    spec = importlib.util.spec_from_file_location("tutorials_render", TUTORIALS / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _render_module()
SOURCES = render.sources()


def _style_module():
    sys.path.insert(0, str(TUTORIALS))
    try:
        import _style
    finally:
        sys.path.remove(str(TUTORIALS))
    return _style


def test_there_are_tutorials():
    assert len(SOURCES) >= 1
    names = [p.stem for p in SOURCES]
    assert names == sorted(names)
    # Every .ipynb has a .py source (no orphan notebooks).
    orphans = {p.stem for p in TUTORIALS.glob("[0-9][0-9]_*.ipynb")} - set(names)
    assert not orphans, f"notebooks without a .py source: {sorted(orphans)}"


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_pair_in_sync_without_outputs(py):
    assert render.drift(py) == []


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_source_has_no_magics_and_picks_size(py):
    text = py.read_text(encoding="utf-8")
    code_lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert not [ln for ln in code_lines if ln.lstrip().startswith(("%", "!"))], "magics"
    assert 'os.environ.get("MINIGENCAST_SIZE"' in text


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_source_shows_figures_through_the_style_checks(py):
    text = py.read_text(encoding="utf-8")
    assert "import _style" in text
    assert "plt.show(" not in text, "use _style.show(), which checks the projector rules"


def test_missing_figure_image_is_caught():
    plot = nbformat.v4.new_code_cell("fig, ax = plt.subplots()\nax.plot([0, 1])\n_style.show()")
    text = nbformat.v4.new_code_cell("print(1)")
    nb = nbformat.v4.new_notebook(cells=[text, plot])
    assert render.figure_cells_without_image(nb) == [
        "cell 1 ('fig, ax = plt.subplots()') shows no image"
    ]
    plot.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBOR"})]
    assert render.figure_cells_without_image(nb) == []
    # Defining a helper that shows figures draws nothing; calling it must show an image.
    helper = nbformat.v4.new_code_cell("def show_png(name):\n    display.display(name)")
    call = nbformat.v4.new_code_cell('show_png("spectra")')
    nb.cells += [helper, call]
    assert render.figure_cells_without_image(nb) == [
        "cell 3 ('show_png(\"spectra\")') shows no image"
    ]


def test_style_rules_catch_small_fonts_bare_maps_and_crowded_ticks(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    style = _style_module()
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    image = axes[0].imshow(np.arange(16.0).reshape(4, 4))
    axes[1].plot([0, 1])
    assert style.problems(fig) == ["map without colorbar: panel ''"]
    fig.colorbar(image, ax=axes[0])
    assert style.problems(fig) == []
    axes[1].set_title("small", fontsize=8)
    axes[1].set_xticks(np.linspace(0, 1, 6), [f"{v:.6f}" for v in np.linspace(0, 1, 6)])
    found = style.problems(fig)
    assert "text under 12 pt: 'small' (8 pt)" in found
    assert any(p.startswith("overlapping tick labels: x ticks") for p in found)
    plt.close(fig)


def test_drift_detects_a_changed_cell(tmp_path):
    py = tmp_path / "01_demo.py"
    py.write_text("# %% [markdown]\n# # Demo\n\n# %%\nx = 1\n", encoding="utf-8")
    render.sync(py)
    assert render.drift(py) == []
    py.write_text("# %% [markdown]\n# # Demo\n\n# %%\nx = 2\n", encoding="utf-8")
    assert render.drift(py) and "differs" in render.drift(py)[0]


@pytest.mark.tutorials
@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_notebook_executes_at_tiny_size(py, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    start = time.perf_counter()
    nb, seconds = render.execute(py.with_suffix(".ipynb"), size="tiny", timeout=600)
    assert any(c.cell_type == "code" and c.get("outputs") is not None for c in nb.cells)
    # Every cell that draws a figure shows it as an image (MPLBACKEND=Agg shows none).
    assert render.figure_cells_without_image(nb) == []
    assert any(render.PLOTTING.search(c.source) for c in nb.cells if c.cell_type == "code")
    print(f"{py.stem}: {seconds:.1f} s ({time.perf_counter() - start:.1f} s with kernel start)")


def test_published_pages_drop_the_mermaid_loader_only_without_diagrams(tmp_path):
    """A real exporter page, styles shared as `to_html` does: no diagram, no loader; a
    diagram keeps it."""
    import nbconvert

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title")])
    page, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    page = render.share_styles(page, tmp_path)
    assert "mermaid" in page  # nbconvert's loader, inline in every page
    assert "mermaid" not in render.drop_unused_mermaid(page)
    assert "<title>" in render.drop_unused_mermaid(page)
    diagram = page.replace("<main>", '<main><div class="jp-Mermaid"><pre class="mermaid">')
    assert render.drop_unused_mermaid(diagram) == diagram
