"""A large cell is checked and differentiated in time linear in its size (issue 15, point 9).

The generators walk a cell phase by phase (a phase ends at each per-step product); a scan
of every node, group or saved array at each phase, or a list search per weight, made a
cell of a thousand chained products quadratic. The numba compilation of the generated
kernels is not timed here: it grows with the kernels whatever the generators do.
"""

from __future__ import annotations

import time

import rnndsl
from rnndsl.cells import compiler


def _chain(n: int) -> str:
    """n equations, each a product of the previous result: n phases, n groups, 2n weights."""
    eqs = ["  a0 = tanh(x @ W0 + h @ U0)"] + [f"  a{i} = tanh(a{i - 1} @ U{i} + x @ W{i} + b{i} * a{i - 1})"
                                             for i in range(1, n - 1)] + [f"  h = a{n - 2} + h * 0.5"]
    return "cell big(units) {\n" + "\n".join(eqs) + "\n}\ninput x: float[?, 3]\noutput x | rnn(big(4))\n"


def _states(n: int) -> str:
    """n states, each updated from its own product."""
    names = ", ".join(["h"] + [f"s{i}" for i in range(1, n)])
    eqs = [f"  s{i} = tanh(s{i} @ U{i} + x @ W{i} + s{i - 1 if i > 1 else i} * v{i})" for i in range(1, n)]
    return (f"cell big(units) state({names}) {{\n" + "\n".join(eqs + [f"  h = tanh(s{n - 1} + h @ U0)"])
            + "\n}\ninput x: float[?, 3]\noutput x | rnn(big(4))\n")


def _check_and_differentiate(text: str) -> float:
    """CPU seconds (not the wall clock, which busy neighbours stretch) to check the spec and
    derive the cell's forward and backward kernels' source."""
    t0 = time.process_time()
    m = rnndsl.compile(text)
    cell = m.graph.nodes[1].opts["cell"]
    assert "def cell_backward(" in compiler.source(cell)
    compiler.describe(cell)
    return time.process_time() - t0


def test_a_thousand_equation_cell_is_checked_and_differentiated_in_seconds():
    for make in (_chain, _states):
        took = min(_check_and_differentiate(make(1000)) for _ in range(2))
        assert took < 3.0, f"{make.__name__}: {took:.2f} s for 1,000 equations"


def test_the_time_grows_linearly_with_the_equations():
    small = min(_check_and_differentiate(_chain(500)) for _ in range(3))
    large = min(_check_and_differentiate(_chain(3000)) for _ in range(2))
    # six times the equations: quadratic passes took ~30x; linear ones stay near 6x
    assert large < 13 * small + 0.2, f"500 equations: {small:.2f} s, 3,000: {large:.2f} s"
