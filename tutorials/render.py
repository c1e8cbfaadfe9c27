"""Render, sync and check the tutorial notebooks.

The sources are the jupytext `py:percent` files `tutorials/NN_topic.py`; each has a
paired `NN_topic.ipynb` committed WITHOUT outputs. This script

    python tutorials/render.py                 # execute every notebook (tutorial size),
                                               # write HTML with outputs to tutorials/_build/
    python tutorials/render.py 02 07           # only the notebooks whose names start so
    python tutorials/render.py --size tiny     # the CI size (MINIGENCAST_SIZE=tiny)
    python tutorials/render.py --sync          # rewrite the .ipynb files from the .py sources
    python tutorials/render.py --check         # exit 1 if a pair drifted or has outputs
    python tutorials/render.py --out docs/tutorials   # publish: HTML + index.html there

Rendering executes the .ipynb (after checking that it matches its .py source) with
nbclient in a fresh Jupyter kernel whose working directory is the repository root, and
prints the wall time of each notebook and the size of the HTML written. The kernel draws
with the inline backend whatever MPLBACKEND says; a cell that draws a figure but shows
no image is reported and makes the exit status 1 (`figure_cells_without_image`).
Needs `jupytext`, `nbclient`, `nbconvert` (`pip install -e ".[test]"` installs them).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys
import time

import jupytext
import nbformat

TUTORIALS = pathlib.Path(__file__).resolve().parent
REPO = TUTORIALS.parent
BUILD = TUTORIALS / "_build"
SIZES = ("tiny", "tutorial")
# The kernel draws with the inline backend even where MPLBACKEND=Agg (CI), so every
# figure becomes an image/png output of the cell that shows it.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
# A code cell that creates or shows a figure (pyplot, `_style.show`, or a notebook's
# `show_png` helper for the package's PNG figures, but not its definition); it must
# leave an image/png output.
PLOTTING = re.compile(
    r"(?<!def )\b(plt\.(subplots|figure|subplot_mosaic|show)|_style\.show|show_png)\("
)


def sources(prefixes=()) -> list[pathlib.Path]:
    """The notebook sources tutorials/NN_*.py in order (optionally filtered by prefix)."""
    paths = sorted(p for p in TUTORIALS.glob("[0-9][0-9]_*.py"))
    if prefixes:
        paths = [p for p in paths if any(p.name.startswith(s) for s in prefixes)]
    return paths


def notebook_from_source(py: pathlib.Path) -> nbformat.NotebookNode:
    """The notebook jupytext makes of a py:percent source (no outputs)."""
    return jupytext.read(py, fmt="py:percent")


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def drift(py: pathlib.Path) -> list[str]:
    """Problems of one pair: missing .ipynb, cells that differ from the .py, stored outputs."""
    ipynb = py.with_suffix(".ipynb")
    if not ipynb.exists():
        return [f"{ipynb.name} is missing (run: python tutorials/render.py --sync)"]
    problems = []
    paired = nbformat.read(ipynb, as_version=4)
    want, have = _cells(notebook_from_source(py)), _cells(paired)
    if want != have:
        first = next(
            (i for i, (a, b) in enumerate(zip(want, have, strict=False)) if a != b),
            min(len(want), len(have)),
        )
        problems.append(
            f"{ipynb.name} differs from {py.name} (first at cell {first}; "
            f"{len(want)} vs {len(have)} cells): run python tutorials/render.py --sync"
        )
    for i, cell in enumerate(paired.cells):
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"{ipynb.name} cell {i} has stored outputs; commit it without")
    return problems


def sync(py: pathlib.Path) -> pathlib.Path:
    """Writes the paired .ipynb (no outputs) from the .py source."""
    nb = notebook_from_source(py)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:03d}"  # deterministic ids: re-syncing an unchanged source is a no-op
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    ipynb = py.with_suffix(".ipynb")
    jupytext.write(nb, ipynb, fmt="ipynb")
    return ipynb


def execute(ipynb: pathlib.Path, size: str = "tutorial", timeout: int = 900):
    """Runs a notebook in a fresh kernel at MINIGENCAST_SIZE=size; returns (nb, seconds).

    Raises nbclient's CellExecutionError on the first failing cell.
    """
    import nbclient

    nb = nbformat.read(ipynb, as_version=4)
    env = {
        "MINIGENCAST_SIZE": size,
        "MPLBACKEND": INLINE_BACKEND,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO), str(TUTORIALS), os.environ.get("PYTHONPATH")])
        ),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        client = nbclient.NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(REPO)}},
        )
        start = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - start
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb, seconds


def figure_cells_without_image(nb) -> list[str]:
    """Code cells that create or show a figure (PLOTTING) but have no image/png output."""
    missing = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not PLOTTING.search(cell.source):
            continue
        if not any("image/png" in out.get("data", {}) for out in cell.get("outputs", [])):
            first = cell.source.strip().splitlines()[0][:60]
            missing.append(f"cell {i} ({first!r}) shows no image")
    return missing


def write_index(out_dir: pathlib.Path, size: str, rows) -> pathlib.Path:
    """index.html linking every rendered notebook with its wall time, size and the conditions.

    rows: [(stem, seconds, bytes)] of this run; they update `times.json` in out_dir, so
    a partial re-render keeps the other notebooks' entries.
    """
    import html
    import json
    import platform

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    record = out_dir / "times.json"
    times = json.loads(record.read_text()) if record.exists() else {}
    for stem, seconds, nbytes in rows:
        times[stem] = {
            "seconds": round(seconds, 1),
            "bytes": nbytes,
            "size": size,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average": round(load, 1),
            "cpus": os.cpu_count(),
        }
    record.write_text(json.dumps(dict(sorted(times.items())), indent=1) + "\n")
    items = "\n".join(
        f'<li><a href="{stem}.html">{html.escape(stem)}</a>: {t["seconds"]:.0f} s at '
        f"{t['size']} size, {t['bytes'] / 1e6:.1f} MB (rendered {t['date']}, "
        f"{t['cpus']} CPU cores, load average {t['load_average']})</li>"
        for stem, t in sorted(times.items())
    )
    page = (
        "<!doctype html><meta charset='utf-8'><title>minigencast tutorials</title>\n"
        "<h1>minigencast tutorials, executed</h1>\n"
        "<p>Rendered by <code>python tutorials/render.py --out docs/tutorials</code> on "
        f"{html.escape(platform.platform())}. Sources: <code>tutorials/NN_topic.py</code>; "
        "times are wall times including the kernel's JAX start-up and compilation.</p>\n"
        f"<ul>\n{items}\n</ul>\n"
    )
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


STYLE_SHEET = "nbconvert.css"


def share_styles(page: str, folder: pathlib.Path) -> str:
    """Moves nbconvert's inline <style> blocks (the same ~260 kB in every page) into one
    STYLE_SHEET beside the pages, linked from each: the published folder stays small."""
    blocks = re.findall(r"<style[^>]*>.*?</style>\n?", page, flags=re.S)
    if not blocks:
        return page
    css = "\n".join(re.sub(r"^<style[^>]*>|</style>\n?$", "", b) for b in blocks)
    (folder / STYLE_SHEET).write_text(css, encoding="utf-8")
    page = page.replace(blocks[0], f'<link rel="stylesheet" href="{STYLE_SHEET}"/>\n', 1)
    for b in blocks[1:]:
        page = page.replace(b, "", 1)
    return page


def drop_unused_mermaid(page: str) -> str:
    """Removes nbconvert's inline mermaid loader (~420 lines of JavaScript in every page)
    from a page that has no mermaid diagram (`<pre class="mermaid">`): no tutorial draws one."""
    if '<pre class="mermaid">' in page:
        return page
    loader = (
        r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded".*?</script>\s*'
        r"(<!-- End of mermaid configuration -->)?"
    )
    return re.sub(loader, "", page, count=1, flags=re.S)


def to_html(nb, out: pathlib.Path) -> pathlib.Path:
    import nbconvert

    body, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(drop_unused_mermaid(share_styles(body, out.parent)), encoding="utf-8")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="name prefixes, e.g. 02 07 (default: all)")
    parser.add_argument(
        "--size", choices=SIZES, default=os.environ.get("MINIGENCAST_SIZE", "tutorial")
    )
    parser.add_argument("--sync", action="store_true", help="rewrite .ipynb from .py sources")
    parser.add_argument("--check", action="store_true", help="fail if a pair drifted")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument(
        "--out", type=pathlib.Path, default=BUILD, help=f"HTML folder (default {BUILD})"
    )
    args = parser.parse_args(argv)

    paths = sources(args.notebooks)
    if not paths:
        print("no notebooks match", args.notebooks, file=sys.stderr)
        return 1
    if args.sync:
        for py in paths:
            print("wrote", sync(py).relative_to(REPO))
        return 0
    problems = [p for py in paths for p in drift(py)]
    if problems or args.check:
        print("\n".join(problems) or "all pairs in sync, no outputs stored")
        return 1 if problems else 0

    import nbclient.exceptions

    total, rows, missing, failed = 0.0, [], 0, []
    out_dir = args.out.resolve()
    for py in paths:
        try:
            nb, seconds = execute(py.with_suffix(".ipynb"), args.size, args.timeout)
        except (nbclient.exceptions.CellExecutionError, TimeoutError) as error:
            failed.append(py.stem)
            print(f"{py.stem}: FAILED\n{str(error)[-3000:]}", file=sys.stderr, flush=True)
            continue
        total += seconds
        for problem in figure_cells_without_image(nb):
            missing += 1
            print(f"{py.stem}: {problem}", file=sys.stderr)
        out = to_html(nb, out_dir / py.with_suffix(".html").name)
        rows.append((py.stem, seconds, out.stat().st_size))
        write_index(out_dir, args.size, rows[-1:])  # after each notebook: a crash keeps them
        print(f"{py.stem:32s} {seconds:7.1f} s  {rows[-1][2] / 1e6:5.1f} MB -> {out}", flush=True)
    size = sum(r[2] for r in rows)
    print(f"{'total (' + args.size + ')':32s} {total:7.1f} s  {size / 1e6:5.1f} MB")
    if failed:
        print("failed:", " ".join(failed), file=sys.stderr)
    return 1 if missing or failed else 0


if __name__ == "__main__":
    sys.exit(main())
