"""The package's layering (issue 17), checked on the source: from the bottom up, errors, types,
the element-wise table and caches -> lang and data -> layers and graph -> cells and kernels -> runtime -> train -> the
facade (rnndsl/__init__.py, model.py) -> the application (cli). A module imports only from
its own level or below, lazily (inside a function) or not; kernels know no cells, layers or
graph; no module imports another package's private (_underscore) names; module-level imports
form no circle.

Layer kinds and cell descriptions (rnndsl/layers, rnndsl/layers/cells) only describe: the
engines (rnndsl/runtime) run them and the cell compiler (rnndsl/cells) compiles cells, so
neither is imported from below."""

from __future__ import annotations

import ast
from pathlib import Path

import rnndsl

ROOT = Path(rnndsl.__file__).resolve().parent
LEVEL = {"errors": 0, "types": 0, "elementwise": 0, "caches": 0, "lang": 1, "data": 1, "layers": 2, "graph": 2, "cells": 3, "kernels": 3,
         "runtime": 4, "train": 5, "": 6, "model": 6, "saving": 6, "interop": 6, "callbacks": 6, "distributed": 6, "optimizers": 6, "schedules": 6, "cli": 7, "__main__": 7, "app": 7}
NOT_BELOW = {"kernels": ("cells", "layers", "graph")}      # same level, but no edge this way


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(target module, imported names, at module level) of every rnndsl import in the file."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "rnndsl" or target.startswith("rnndsl."):
                names = [a.name for a in node.names]
                # `from . import x` names a module when x is one
                for n in names:
                    sub = f"{target}.{n}"
                    if (ROOT.parent / sub.replace(".", "/")).with_suffix(".py").exists() or \
                            (ROOT.parent / sub.replace(".", "/")).is_dir():
                        yield sub, [], id(node) in top
                    else:
                        yield target, [n], id(node) in top
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "rnndsl" or a.name.startswith("rnndsl."):
                    yield a.name, [], id(node) in top


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _group(part: str) -> str:
    """The facade's modules (the package root, model, saving) are one unit, as are the
    application's (cli, __main__, app)."""
    return {"": "facade", "model": "facade", "saving": "facade", "interop": "facade", "callbacks": "facade", "distributed": "facade",
            "optimizers": "facade", "schedules": "facade", "cli": "app",
            "__main__": "app"}.get(part, part)


def _edges():
    for path in sorted(ROOT.rglob("*.py")):
        src = _module_name(path)
        for target, names, at_top in _imports(path):
            yield src, target, names, at_top


def test_no_module_imports_from_above_its_level():
    found = set()
    for src, target, _, _ in _edges():
        a, b = _part(src), _part(target)
        if a == b:
            continue
        if LEVEL[b] > LEVEL[a] or b in NOT_BELOW.get(a, ()):
            found.add((src, target))
    assert not found, "imports from above their level:\n" + "\n".join(f"  {s} -> {t}" for s, t in sorted(found))


def test_no_package_imports_another_packages_private_names():
    bad = [f"{src} imports {n} from {target}" for src, target, names, _ in _edges()
           for n in names if n.startswith("_") and not n.startswith("__") and _part(src) != _part(target)]
    assert not bad, "\n".join(bad)


def test_packages_form_no_circle():
    """Between packages, counting lazy imports too (a circle across levels already fails the
    first test; this one catches a circle within a level, such as layers <-> graph)."""
    graph: dict = {}
    for src, target, _, _ in _edges():
        a, b = _group(_part(src)), _group(_part(target))
        if a != b:
            graph.setdefault(a, set()).add(b)
    circles = []

    def visit(p, trail):
        for q in sorted(graph.get(p, ())):
            if q in trail:
                circles.append(trail[trail.index(q):] + [q])
            elif len(trail) < len(graph) + 1:
                visit(q, trail + [q])

    for p in sorted(graph):
        visit(p, [p])
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def test_train_and_runtime_read_no_private_name_of_a_model_or_optimizer():
    """Training and the runtimes use Model's and the optimizers' public interfaces only."""
    found = []
    for package in ("train", "runtime"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id in ("model", "optimizer", "opt") and node.attr.startswith("_")
                        and not node.attr.startswith("__")):
                    found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.value.id}.{node.attr}")
    assert found == [], "\n".join(found)


def test_layer_kinds_only_describe_and_the_cpu_engine_runs_each_by_kind():
    """Every layer kind has one CPU runner, found by its kind; no layer kind runs itself."""
    from rnndsl.layers import REGISTRY
    from rnndsl.layers.input import INPUT
    from rnndsl.layers.state import STATE_PACK, STATE_PART
    from rnndsl.runtime.cpu import FORWARD

    internal = {STATE_PART, STATE_PACK}               # the graph's own kinds: no spec calls them
    kinds = {spec.name for spec in (*REGISTRY.values(), *internal)}
    assert kinds - set(FORWARD) == set()
    assert set(FORWARD) - kinds == set()
    for spec in {*REGISTRY.values(), INPUT, *internal}:
        for attr in ("forward", "run_cell", "kernel_forward", "kernel_backward"):
            assert not hasattr(spec, attr), f"{type(spec).__name__}.{attr}"
