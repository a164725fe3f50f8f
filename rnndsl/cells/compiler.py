"""A cell description (rnndsl.layers.cells.Cell) compiled: its schedule (codegen.Plan), the
generated kernels' source and the loaded module, each made once per cell and kept in the
cell's `compiled` slot."""

from __future__ import annotations

from .cache import load_module, module_path
from .codegen import Plan, _describe_group, expr_text, generate
from ..layers.cells.expr import U


def plan(cell) -> Plan:
    """What the kernels compute, store and save: products hoisted or fused per step."""
    p = cell.compiled.get("plan")
    if p is None:
        p = cell.compiled["plan"] = Plan(cell)
    return p


def source(cell) -> str:
    """The CPU kernels' module source: cell_forward and cell_backward."""
    s = cell.compiled.get("source")
    if s is None:
        s = cell.compiled["source"] = generate(plan(cell))
    return s


def kernels(cell):
    """The compiled module (generated source written to the cache folder and imported)."""
    return load_module(source(cell))


def describe(cell) -> str:
    """What `python -m rnndsl cell SPEC` prints: names, weights, how the step is scheduled."""
    p = plan(cell)
    out = [f"cell {cell.name}(units): inputs {', '.join(cell.inputs)}; "
           f"state{'s' if len(cell.states) > 1 else ''} {', '.join(cell.states)} "
           + (f"(the layer's output is {cell.states[0]})" if cell.output is None
              else "(the layer's output: its `output` equation)")]
    out.append("  weights, in get_weights() order:")
    width = max(len(w.name) for w in cell.weights)
    for w in cell.weights:
        if w.kind == "vector":
            shape = "(units,)"
        else:
            rows = "units" if w.rows == U else f"features of {cell.inputs[w.rows[1]]}"
            shape = f"({rows}, units)"
        out.append(f"    {w.name.ljust(width)}  {shape:<28} {w.initializer}")
    hoisted = "; ".join(_describe_group(p, g) for g in p.hoisted) or "none"
    per_step = "; ".join(f"{_describe_group(p, g)}" for g in p.groups) or "none"
    out.append(f"  input products hoisted out of the time loop: {hoisted}")
    out.append(f"  products per step: {per_step}")
    if p.reductions:
        out.append(f"  reductions per step (one value per row): "
                   f"{'; '.join(expr_text(cell, r) for r in p.reductions)}")
    out.append(f"  saved per step for backward: {len(p.saved)} array(s)"
               + (f", {len(p.in_place)} sum(s) of products kept over the input product" if p.in_place else "")
               + (f"; {len(p.recomputed)} value(s) computed again by backward" if p.recomputed else ""))
    out.append(f"  generated kernels: {module_path(source(cell))}")
    return "\n".join(out)
