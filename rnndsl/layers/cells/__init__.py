"""Custom recurrent cells as the language describes them: a `cell` definition checked into
a Cell (its inputs, states, weights and step as an expression graph).

    cell mgu(units) {
      f  = sigmoid(x @ Wf + h @ Uf + bf)
      hc = tanh(x @ Wh + (f * h) @ Uh + bh)
      h  = (1 - f) * h + f * hc
    }

define.py checks a definition and builds its step as an expression graph (expr.py) with
its weights. A cell is a description, as a layer kind is (hence its place here, beside
them: the graph builder and rnn(...) read it); compiling it into kernels is rnndsl.cells's
and running them the runtime's.
"""

from __future__ import annotations

import contextlib
import contextvars

from ...errors import DiagnosticSink
from ...lang import ast
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
