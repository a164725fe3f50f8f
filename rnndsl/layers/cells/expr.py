"""The expression graph of one cell step.

Every value the step computes is a :class:`Node` of a DAG whose leaves are the
inputs x_k at this step, the previous states s_k, the vector weights and
numbers. Matrix weights are not nodes: a product `a @ W` is one node with `a`
as its only argument and W's index as its attribute. Nodes are hash-consed
(an expression written twice is one node, so `h @ U` used in two equations is
one product) and numbers are folded.

Widths are symbolic: "u" (the cell's units), ("x", k) (the features of input
k), "row" (one value per batch row: a reduction over units or features, and
arithmetic on it, which broadcasts against units or features) or None (a
number, which broadcasts). Every node that is not a number is either batched
(it depends on an input or a state: one row per sample) or a per-unit vector
(weights and arithmetic on them only).

Roots: a "new" node per state (the value it takes at the end of the step) and,
for a cell with an `output = ...` equation, one "out" node (the layer's output
at this step; without one the output is the first state).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ...elementwise import BY_NAME, CELL, names, py_function
from ...errors import Pos

U = "u"
ROW = "row"
# op -> arity; "new" marks the value a state takes at the end of the step, "out" the output
ELEMENTWISE = ("add", "sub", "mul", "div", "neg", "func", "new", "out")
LEAVES = ("const", "input", "prev", "vec")
FUNCTIONS = names(CELL)
# reductions over units (or an input's features): one value per row; var is the population
# variance, as Keras's LayerNormalization takes it
REDUCTIONS = ("mean", "sum", "max", "var")


FOLD = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b if b != 0 else math.copysign(math.inf, a) if a else math.nan,
    "neg": lambda a: -a,
    **{f: py_function(BY_NAME[f].py) for f in FUNCTIONS},     # the float64 definitions
}


SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


class FoldError(ValueError):
    """Numbers in an equation that fold to inf or NaN (exp(1000), 1/0)."""


@dataclass(eq=False)
class Node:
    id: int
    op: str                   # one of LEAVES, ELEMENTWISE, "matmul" or "reduce"
    args: tuple["Node", ...]
    attr: Any                 # const value, input/state index, weight index, function or reduction name
    width: Any                # "u", ("x", k), "row", or None for a number
    batched: bool             # depends on an input or a state
    on_state: bool            # depends on a previous state
    pos: Pos | None = None

    @property
    def is_const(self) -> bool:
        return self.op == "const"

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Node({self.id}, {self.op}, {[a.id for a in self.args]}, {self.attr!r})"


@dataclass
class ExprGraph:
    nodes: list[Node] = field(default_factory=list)
    _keys: dict = field(default_factory=dict)

    def _add(self, op, args, attr, width, batched, on_state, pos) -> Node:
        key = (op, attr, tuple(a.id for a in args))
        if op not in ("new", "out") and key in self._keys:
            return self._keys[key]
        n = Node(len(self.nodes), op, tuple(args), attr, width, batched, on_state, pos)
        self.nodes.append(n)
        if op not in ("new", "out"):
            self._keys[key] = n
        return n

    # --- leaves ---------------------------------------------------------------------
    def const(self, value: float, pos=None) -> Node:
        return self._add("const", (), float(value), None, False, False, pos)

    def input(self, k: int, pos=None) -> Node:
        return self._add("input", (), k, ("x", k), True, False, pos)

    def prev(self, k: int, pos=None) -> Node:
        return self._add("prev", (), k, U, True, True, pos)

    def vec(self, w: int, pos=None) -> Node:
        return self._add("vec", (), w, U, False, False, pos)

    # --- operations (numbers are folded) ----------------------------------------------
    def op(self, op: str, args, width, pos=None, attr=None) -> Node:
        if all(a.is_const for a in args):
            fn = FOLD[attr if op == "func" else op]
            values = [a.attr for a in args]
            try:
                value = fn(*values)
            except (OverflowError, ValueError):
                value = math.inf
            if not math.isfinite(value):
                shown = f"{attr}({values[0]:g})" if op == "func" else (
                    f"-{values[0]:g}" if op == "neg" else f"{values[0]:g} {SYMBOLS[op]} {values[1]:g}")
                raise FoldError(f"{shown} is {'not a number' if math.isnan(value) else 'infinite'}")
            return self.const(value, pos)
        return self._add(op, args, attr, width, any(a.batched for a in args),
                         any(a.on_state for a in args), pos)

    def matmul(self, left: Node, w: int, pos=None) -> Node:
        return self._add("matmul", (left,), w, U, True, left.on_state, pos)

    def reduce(self, name: str, value: Node, pos=None) -> Node:
        """mean, sum, max or var of a batched value over its width: one value per row."""
        return self._add("reduce", (value,), name, ROW, True, value.on_state, pos)

    def new(self, k: int, value: Node, pos=None) -> Node:
        return self._add("new", (value,), k, U, True, value.on_state, pos)

    def out(self, value: Node, pos=None) -> Node:
        return self._add("out", (value,), None, U, True, value.on_state, pos)

    # --- walks ------------------------------------------------------------------------
    def live(self, roots) -> list[Node]:
        """The nodes the roots depend on, in creation (hence topological) order."""
        seen: set[int] = set()
        stack = list(roots)
        while stack:
            n = stack.pop()
            if n.id in seen:
                continue
            seen.add(n.id)
            stack.extend(n.args)
        return [n for n in self.nodes if n.id in seen]
