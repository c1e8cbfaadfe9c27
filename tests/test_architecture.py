"""The package's layers, held by a test: no import cycles, no import against the layers.

Every `import` and `from ... import` of every module is read with `ast`, at module level
and inside functions alike (a function-level import is still a dependency; it only hides
a cycle from the interpreter). The layers, from the bottom:

    sphere      geometry, icosahedral_mesh, graphs, spherical_harmonics, noise
    diffusion   preconditioning, sampler, losses
    network     nn, gnn, transformer, noise_encoder, network
    training    loader, training_state, train
    forecasting forecast, spectral_filter, spread_correction, calibration
    scoring     metrics, plotting
    cli         cli (imported by nothing)

Forbidden: diffusion -> network; sphere -> network, training, forecasting; scoring ->
network, diffusion, training, forecasting; anything -> cli. And no cycle among the
package's modules.
"""

import ast
import pathlib

import pytest

PACKAGE = "minigencast"
ROOT = pathlib.Path(__file__).resolve().parents[1] / PACKAGE


def _group(*names):
    return frozenset(f"{PACKAGE}.{n}" for n in names)


SPHERE = _group("geometry", "icosahedral_mesh", "graphs", "spherical_harmonics", "noise")
DIFFUSION = _group("preconditioning", "sampler", "losses")
NETWORK = _group("nn", "gnn", "transformer", "noise_encoder", "network")
TRAINING = _group("loader", "training_state", "train")
FORECASTING = _group("forecast", "spectral_filter", "spread_correction", "calibration")
SCORING = _group("metrics", "plotting")
CLI = _group("cli")

# (importers, imported, why): a module of `importers` may import none of `imported`.
RULES = (
    (DIFFUSION, NETWORK, "the diffusion modules work with any denoiser"),
    (SPHERE, NETWORK | TRAINING | FORECASTING, "the sphere modules sit below the model"),
    (SCORING, NETWORK | DIFFUSION | TRAINING | FORECASTING, "scores only read forecasts"),
)


def module_sources(root: pathlib.Path = ROOT) -> dict[str, str]:
    """{dotted module name: source text} of every module of the package."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path.read_text()
    return out


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """{module: package modules it imports anywhere in its source} (no self-edges).

    `from minigencast import data` names the module `minigencast.data`; `from
    minigencast.data import layouts` names `minigencast.data.layouts` (a symbol
    imported from a module names the module). Relative imports are resolved.
    """
    graph = {}
    for name, source in sources.items():
        is_package = f"{name}.__init__" not in sources and any(
            other.startswith(name + ".") for other in sources
        )
        package = name if is_package else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in sources else base)
        graph[name] = {t for t in targets if t in sources and t != name}
    return graph


def forbidden_imports(graph: dict[str, set[str]]) -> list[str]:
    """One line per import that breaks a layer rule or imports the CLI."""
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if target in CLI:
                found.append(f"{module} imports {target}: nothing imports the CLI")
            for importers, imported, why in RULES:
                if module in importers and target in imported:
                    found.append(f"{module} imports {target}: {why}")
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(components)


# --------------------------------------------------------------------------
# The package as it is.


def test_every_layer_module_exists():
    # A renamed module must be renamed here too, or its rules would silently lapse.
    sources = module_sources()
    groups = SPHERE | DIFFUSION | NETWORK | TRAINING | FORECASTING | SCORING | CLI
    assert sorted(groups - set(sources)) == []


def test_no_import_breaks_the_layers():
    assert forbidden_imports(import_graph(module_sources())) == []


def test_no_import_cycles():
    assert import_cycles(import_graph(module_sources())) == []


# --------------------------------------------------------------------------
# The checker itself fails when it should.


def _with(sources, module, extra):
    changed = dict(sources)
    changed[module] = sources[module] + "\n\n" + extra + "\n"
    return changed


@pytest.mark.parametrize(
    ("module", "extra", "expected"),
    [
        (
            "minigencast.preconditioning",
            "def f():\n    from minigencast import nn",
            "minigencast.preconditioning imports minigencast.nn",
        ),
        (
            "minigencast.graphs",
            "import minigencast.network",
            "minigencast.graphs imports minigencast.network",
        ),
        (
            "minigencast.metrics",
            "def f():\n    from minigencast import forecast as fc",
            "minigencast.metrics imports minigencast.forecast",
        ),
        (
            "minigencast.data.layouts",
            "def f():\n    from .. import cli",
            "minigencast.data.layouts imports minigencast.cli",
        ),
    ],
)
def test_an_injected_forbidden_import_is_found(module, extra, expected):
    sources = module_sources()
    found = forbidden_imports(import_graph(_with(sources, module, extra)))
    assert any(line.startswith(expected + ":") for line in found), found


def test_an_injected_cycle_is_found():
    sources = module_sources()
    # geometry <- graphs already; a function-level import back closes a cycle.
    changed = _with(sources, "minigencast.geometry", "def f():\n    from minigencast import graphs")
    cycles = import_cycles(import_graph(changed))
    assert any({"minigencast.geometry", "minigencast.graphs"} <= set(c) for c in cycles)


def test_checker_on_a_synthetic_module_map():
    graph = {
        "minigencast.sampler": {"minigencast.network"},
        "minigencast.network": {"minigencast.nn"},
        "minigencast.nn": set(),
        "minigencast.a": {"minigencast.b"},
        "minigencast.b": {"minigencast.c"},
        "minigencast.c": {"minigencast.a"},
    }
    assert forbidden_imports(graph) == [
        "minigencast.sampler imports minigencast.network: "
        "the diffusion modules work with any denoiser"
    ]
    assert import_cycles(graph) == [["minigencast.a", "minigencast.b", "minigencast.c"]]
