"""Symbolic reverse-mode differentiation of a cell step.

Each operation n = op(a, b) has local derivatives, written as terms over the
forward values (Val), numbers, and function derivatives expressed through the
function's output y = f(z), so the backward pass never needs a pre-activation:

    n = a + b     dn/da = 1            dn/db = 1
    n = a - b     dn/da = 1            dn/db = -1
    n = -a        dn/da = -1
    n = a * b     dn/da = b            dn/db = a
    n = a / b     dn/da = 1 / b        dn/db = -n / b
    n = f(a)      dn/da = f'(y), y = n (or f'(a) for a row with d_from="x"):
                  the derivatives of rnndsl/elementwise.py (sigmoid y(1 - y), tanh 1 - y^2, ...)
    new state     dn/da = 1            (and the output of `output = a`)

The chain rule gives each argument's adjoint as a sum over its consumers,
adj(a) = sum_n adj(n) * dn/da; `contributions` lists those products, one per
(consumer, argument) edge. A product `a @ W` is not an element-wise node: its
adjoint flows back as adj(a) += adj(n) @ W^T and dW += a^T adj(n), which the
code generator emits as matrix products (dW over all steps at once). Nor is a
reduction r = red(a) over the units (or features) j of a row: it adds
adj(r) * dr/da_j to every a_j, which the code generator writes as a loop:

    r = sum(a)    dr/da_j = 1
    r = mean(a)   dr/da_j = 1 / n
    r = max(a)    dr/da_j = [j is the first index of the maximum]
    r = var(a)    dr/da_j = 2 (a_j - mean(a)) / n      (the population variance)

Where a per-row value meets a units-wide one (`a - mean(a)`), its partials are
the element-wise ones above, and its adjoint sums them over the units.

Terms are tuples: ("val", node), ("adj", node), ("num", c), ("mul", s, t),
("div", s, t), ("neg", t), ("dfn", name, t).
"""

from __future__ import annotations

from ..elementwise import BY_NAME, cell_source
from ..layers.cells.expr import Node

ONE = ("num", 1.0)


def mul(s, t):
    if s == ONE:
        return t
    if t == ONE:
        return s
    if t == ("num", -1.0):
        return neg(s)
    if s == ("num", -1.0):
        return neg(t)
    return ("mul", s, t)


def neg(t):
    if t[0] == "neg":
        return t[1]
    if t[0] == "num":
        return ("num", -t[1])
    return ("neg", t)


def val(n: Node):
    return ("num", n.attr) if n.op == "const" else ("val", n)


def local_partials(n: Node) -> list[tuple[Node, tuple]]:
    """(argument, dn/d argument) for each argument that is not a number."""
    op, args = n.op, n.args
    if op in ("add", "new", "out"):
        out = [(a, ONE) for a in args]
    elif op == "sub":
        out = [(args[0], ONE), (args[1], ("num", -1.0))]
    elif op == "neg":
        out = [(args[0], ("num", -1.0))]
    elif op == "mul":
        a, b = args
        out = [(a, val(b)), (b, val(a))]
    elif op == "div":
        a, b = args
        out = [(a, ("div", ONE, val(b))), (b, neg(("div", ("val", n), val(b))))]
    elif op == "func":
        f = BY_NAME[n.attr]
        out = [(args[0], ONE if f.identity else ("dfn", n.attr, val(args[0]) if f.d_from == "x" else ("val", n)))]
    else:  # pragma: no cover - leaves, products and reductions have no element-wise partials
        raise AssertionError(op)
    return [(a, d) for a, d in out if a.op != "const"]


def contributions(n: Node) -> list[tuple[Node, tuple]]:
    """(argument, adj(n) * dn/d argument): what n adds to each argument's adjoint."""
    return [(a, mul(("adj", n), d)) for a, d in local_partials(n)]


def values_in(term) -> list[Node]:
    """The forward values a term reads."""
    if term[0] == "val":
        return [term[1]]
    if term[0] in ("adj", "num"):
        return []
    return [v for t in term[1:] if isinstance(t, tuple) for v in values_in(t)]


def derivative_source(name: str, arg: str, number) -> str:
    """Python source of f'(arg) for the CPU kernels: a call into kernels/cpu/activations.py
    for a kernel activation, the row's template written in place otherwise (its constants
    as number(c))."""
    f = BY_NAME[name]
    return f"d{name}_({arg})" if f.code is not None else f"({cell_source(f.d, arg, number)})"


def render(term, value, adjoint, number) -> str:
    """Python source of a term; value(node), adjoint(node) and number(c) give the leaves."""
    kind = term[0]
    if kind == "val":
        return value(term[1])
    if kind == "adj":
        return adjoint(term[1])
    if kind == "num":
        return number(term[1])
    if kind == "neg":
        return f"-({render(term[1], value, adjoint, number)})"
    if kind == "mul":
        return f"{_paren(term[1], value, adjoint, number)} * {_paren(term[2], value, adjoint, number)}"
    if kind == "div":
        return f"{_paren(term[1], value, adjoint, number)} / {_paren(term[2], value, adjoint, number)}"
    if kind == "dfn":
        return derivative_source(term[1], render(term[2], value, adjoint, number), number)
    raise AssertionError(kind)  # pragma: no cover


def _paren(term, value, adjoint, number) -> str:
    text = render(term, value, adjoint, number)
    return f"({text})" if term[0] in ("mul", "div", "neg") else text
