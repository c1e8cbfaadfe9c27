"""The tutorial notebooks: pairs in sync (default tier) and executed at tiny size (tutorials tier).

Default tier (fast): every `tutorials/NN_topic.py` has its `.ipynb` twin with the same
cells and no stored outputs.

`pytest -m tutorials`: executes every paired `.ipynb` in a fresh Jupyter kernel with
MINIGENCAST_SIZE=tiny and MPLBACKEND=Agg, failing on the first cell that raises (each
notebook ends with check cells that assert analytic expectations and that hand-built
versions equal the package functions).
"""

from __future__ import annotations

import importlib.util
import pathlib
import time

import pytest

TUTORIALS = pathlib.Path(__file__).resolve().parent.parent / "tutorials"


def _render_module():
    spec = importlib.util.spec_from_file_location("tutorials_render", TUTORIALS / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _render_module()
SOURCES = render.sources()


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
    print(f"{py.stem}: {seconds:.1f} s ({time.perf_counter() - start:.1f} s with kernel start)")
