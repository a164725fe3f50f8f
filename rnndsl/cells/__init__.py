"""Custom recurrent cells written as equations in the language, compiled to numba kernels.

    cell mgu(units) {
      f  = sigmoid(x @ Wf + h @ Uf + bf)
      hc = tanh(x @ Wh + (f * h) @ Uh + bh)
      h  = (1 - f) * h + f * hc
    }
    input x: float[?, 16]
    output x | rnn(mgu(32), seq) | dense(1)

define.py checks a definition and builds its step as an expression graph
(expr.py) with its weights; autodiff.py differentiates it symbolically;
codegen.py schedules it (input products hoisted out of the time loop, per-step
products fused by left side) and emits the forward and BPTT kernels as Python
source; cache.py writes that source under a hash and imports it (numba
cache=True then works across processes). Running them is the runtime's:
rnndsl/runtime/cells.py calls the kernels. On the CUDA engine, cuda_codegen.py
emits numba.cuda kernels from the same schedule and rnndsl/runtime/cuda/cells.py
calls them (cells it cannot express there are refused by name). The layer that
runs a cell is rnndsl/layers/rnn.py.
"""

from __future__ import annotations

import contextlib
import contextvars

from ..errors import DiagnosticSink
from ..lang import ast
from .define import Cell, Weight, define_cell

__all__ = ["Cell", "CellTable", "Weight", "define_cell", "define_cells", "cell_scope", "current_cells"]

class CellTable(dict):
    """name -> Cell (None for a definition that had errors); `used` collects the names rnn(...) asked for."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.used: set[str] = set()


# The cells of the spec being built: rnn(...) resolves its cell call against them.
_CELLS: contextvars.ContextVar[CellTable] = contextvars.ContextVar("rnndsl_cells", default=CellTable())


def current_cells() -> CellTable:
    """The cells of the spec being built (an empty table outside a build)."""
    return _CELLS.get()


@contextlib.contextmanager
def cell_scope(cells: CellTable):
    token = _CELLS.set(cells)
    try:
        yield cells
    finally:
        _CELLS.reset(token)


def define_cells(spec: ast.Spec, sink: DiagnosticSink) -> CellTable:
    """Every cell definition of a parsed spec: name -> Cell, or None where it had errors."""
    cells = CellTable()
    first: dict = {}
    for s in spec.statements:
        if not isinstance(s, ast.CellDef):
            continue
        if s.name in first:
            sink.error(s.pos, f"cell {s.name!r} is already defined at line {first[s.name].line}",
                       "pick another name")
            continue
        first[s.name] = s.pos
        cells[s.name] = define_cell(s, sink, spec.source)
    return cells
