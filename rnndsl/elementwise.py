"""The element-wise operations: one row per function, read by the layers (which names an
option accepts), the CPU and CUDA kernels (codes, dispatch, derivatives), the cell compiler
(functions, folding, autodiff, generated CPU and CUDA source) and the NumPy dense runtime.

    name          code  f(x)                          f' through y = f(x)
    tanh          0     tanh(x)                       1 - y^2
    sigmoid       1     1 / (1 + e^-x)                y (1 - y)
    relu          2     max(x, 0)                     [y > 0]
    linear        3     x                             1
    hard_sigmoid  4     clip(x/6 + 1/2, 0, 1)         [0 < y < 1] / 6   (Keras 3)
    exp           -     e^x                           y                  (cells only)
    sqrt          -     x^(1/2)                       1 / (2 y)          (cells only)
    rsqrt         -     x^(-1/2)                      -y^3 / 2           (cells only)
    log           -     ln x                          1 / x  (through x) (cells only)
    abs           -     |x|                           sign(x) (through x) (cells only)
    softplus      -     ln(1 + e^x), as max(x, 0) + ln(1 + e^-|x|)     1 - e^-y   (cells only)
    softmax       -     e^x_i / sum_j e^x_j (rows)    dz = y (dy - sum(dy y))   (dense only)

Codes are what kernels and caches key on: they never change. A row with a code is a
kernel activation (recurrent and/or dense layers); its derivative must be written through
the output y, which is all the kernels save. A cell-only row may write it through the
input x (d_from="x"): the cell compiler then saves the input.

Templates are Python source with `{x}` (forward) or `{y}` (derivative, `{x}` when
d_from="x") for the argument, and the constants `zero`, `one`, `half`, `sixth`, which the
kernels bind to scalars of the data's float type (float32 code never meets a float64
literal) and Python to floats. A placeholder stands alone or as a call's argument, so it
may be replaced by an expression's text. A CUDA template may start with assignments,
`name = expr; ...; expr`, for values used twice.

    py      the float64 definition in Python (math): folding constants in cells, the kernels'
            bodies under NUMBA_DISABLE_JIT
    numba   the CPU kernels' forward, or None where kernels/cpu/activations.py implements
            it per float type (`impl` says how: the float32 tanh is a rational fit there)
    d       the derivative, in the CPU kernels, in Python (constants as floats) and, unless
            d_cuda is given, on CUDA
    cuda    the CUDA forward (numba's CUDA target compiles no scalar min/max), or None when
            the cell compiler has no CUDA kernel for it; defaults to numba's
    np_forward, np_backward    arrays, for dense layers: z -> y and (y, dy) -> dz

Cells call the kernels' per-row functions (`tanh_`, `dtanh_`, ...; CUDA: `act`/`dact` by
code) for rows with a code and write the templates inline for the others (`cell_source`:
the constants become the generated kernel's numbers of the data's type), which therefore
use no assignments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

RECURRENT, DENSE, CELL = "recurrent", "dense", "cell"
CONSTANTS = ("zero", "one", "half", "sixth")
PY_CONSTANTS = {"zero": 0.0, "one": 1.0, "half": 0.5, "sixth": 1.0 / 6.0}


@dataclass(frozen=True)
class Op:
    name: str
    code: int | None                  # kernel activation code; None: not a kernel activation
    uses: tuple[str, ...]             # RECURRENT, DENSE, CELL: where the name is accepted
    py: str | None = None
    numba: str | None = None
    d: str | None = None
    d_from: str = "y"
    cuda: str | None = None
    d_cuda: str | None = None
    impl: str = ""                    # what implements numba=None in kernels/cpu/activations.py
    np_forward: Callable | None = None
    np_backward: Callable | None = None
    rowwise: bool = False             # over the last axis (softmax): no kernel code, no cells

    @property
    def identity(self) -> bool:
        return self.numba == "{x}"

    @property
    def cuda_forward(self) -> str | None:
        return self.cuda if self.cuda is not None else self.numba

    @property
    def cuda_derivative(self) -> str | None:
        return self.d_cuda if self.d_cuda is not None else self.d


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


OPS = (
    Op("tanh", 0, (RECURRENT, DENSE, CELL),
       py="math.tanh({x})", numba=None, impl="float32: x P(x^2) / Q(x^2), +-1 beyond |x| >= 9; float64: tanh",
       d="one - {y} * {y}", cuda="math.tanh({x})",
       np_forward=lambda z: np.tanh(z), np_backward=lambda y, dy: dy * (1 - y * y)),
    Op("sigmoid", 1, (RECURRENT, DENSE, CELL),
       # a NaN fails the compare and gives NaN
       py="0.0 if {x} < -700.0 else 1.0 / (1.0 + math.exp(-{x}))", numba=None,
       impl="float32: 1/2 + tanh(x/2)/2 (the rational tanh); float64: 1 / (1 + exp(-x))",
       d="{y} - {y} * {y}", cuda="half + half * math.tanh(half * {x})",
       # = 1 / (1 + e^-z), without overflow
       np_forward=lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)), np_backward=lambda y, dy: dy * y * (1 - y)),
    # NaN: max(a, b) returns a unless b compares greater, so with the argument first a NaN stays NaN
    Op("relu", 2, (RECURRENT, DENSE, CELL),
       py="max({x}, 0.0)", numba="max({x}, zero)", d="one if {y} > zero else zero",
       cuda="zero if {x} <= zero else {x}",
       np_forward=lambda z: np.maximum(z, 0), np_backward=lambda y, dy: dy * (y > 0)),
    Op("linear", 3, (RECURRENT, DENSE, CELL),
       py="{x}", numba="{x}", d="one",
       np_forward=lambda z: z, np_backward=lambda y, dy: dy),
    # min/max rather than `if` on the CPU: selects keep the loop vectorisable. The clip's flat
    # parts have zero slope; its kinks count as flat.
    Op("hard_sigmoid", 4, (RECURRENT, DENSE, CELL),
       py="min(max({x} / 6.0 + 0.5, 0.0), 1.0)", numba="min(max({x} * sixth + half, zero), one)",
       d="sixth if ({y} > zero) & ({y} < one) else zero",
       cuda="h = {x} * sixth + half; zero if h < zero else (one if h > one else h)",
       d_cuda="sixth if ({y} > zero and {y} < one) else zero",
       np_forward=lambda z: np.clip(z / 6.0 + 0.5, 0.0, 1.0).astype(z.dtype, copy=False),
       np_backward=lambda y, dy: dy * ((y > 0) & (y < 1)) / 6.0),
    Op("exp", None, (CELL,), py="math.exp({x})", numba="np.exp({x})", d="{y}", cuda="math.exp({x})"),
    # below their domain: NaN (and -inf, inf at 0), as NumPy gives, where Python's math raises
    Op("sqrt", None, (CELL,), py="math.sqrt({x}) if {x} >= 0.0 else math.nan", numba="np.sqrt({x})",
       d="half / {y}", cuda="math.sqrt({x})"),
    Op("rsqrt", None, (CELL,), py="(1.0 / math.sqrt({x}) if {x} > 0.0 else math.inf) if {x} >= 0.0 else math.nan",
       numba="one / np.sqrt({x})", d="-half * {y} * {y} * {y}", cuda="one / math.sqrt({x})"),
    # y = ln x gives 1/x only as e^-y: through x, exactly
    Op("log", None, (CELL,), py="(math.log({x}) if {x} > 0.0 else -math.inf) if {x} >= 0.0 else math.nan",
       numba="np.log({x})", d="one / {x}", d_from="x", cuda="math.log({x})"),
    # |x| loses the sign its slope needs: through x; the kink counts as flat
    Op("abs", None, (CELL,), py="abs({x})", numba="abs({x})",
       d="one if {x} > zero else (-one if {x} < zero else zero)", d_from="x", cuda="abs({x})"),
    # no overflow for large x, no loss to 0 for very negative x; the slope sigmoid(x) is
    # 1 - e^-y, written with expm1 so that it keeps its digits where y is tiny
    Op("softplus", None, (CELL,), py="max({x}, 0.0) + math.log1p(math.exp(-abs({x})))",
       numba="max({x}, zero) + np.log1p(np.exp(-abs({x})))", d="-np.expm1(-{y})",
       cuda="({x} if {x} > zero else zero) + math.log1p(math.exp(-abs({x})))", d_cuda="-math.expm1(-{y})"),
    Op("softmax", None, (DENSE,), rowwise=True,
       np_forward=_softmax, np_backward=lambda y, dy: y * (dy - (dy * y).sum(axis=-1, keepdims=True))),
)

BY_NAME = {op.name: op for op in OPS}
KERNEL_OPS = tuple(sorted((op for op in OPS if op.code is not None), key=lambda op: op.code))
CODES = {op.name: op.code for op in KERNEL_OPS}


def dispatch_rows() -> tuple[tuple[Op, ...], Op]:
    """How kernels branch on the code: (rows tested in code order, the fall-through row),
    the fall-through being the identity (linear)."""
    last = next((op for op in KERNEL_OPS if op.identity), KERNEL_OPS[-1])
    return tuple(op for op in KERNEL_OPS if op is not last), last


def names(use: str) -> tuple[str, ...]:
    """The operations accepted where `use` (RECURRENT, DENSE, CELL) asks for one, in table order."""
    return tuple(op.name for op in OPS if use in op.uses)


def py_function(template: str, arg: str = "x", env: dict | None = None) -> Callable:
    """`lambda arg: template` with math, np and the constants as Python floats (or env's)."""
    import math

    scope = {"math": math, "np": np, **PY_CONSTANTS, **(env or {})}
    return eval(f"lambda {arg}: {template.format(x=arg, y=arg)}", scope)  # noqa: S307 - the table's own text


def cuda_body(template: str, arg: str) -> list[str]:
    """The lines of a CUDA template for argument name `arg`: assignments, then `return expr`."""
    *lets, last = [part.strip() for part in template.format(x=arg, y=arg).split(";")]
    return lets + [f"return {last}"]


def inlinable(template: str) -> bool:
    """Whether generated code may write the template in place, its placeholder replaced by an
    expression's text (a name or an array element): one expression, no assignments."""
    return ";" not in template


_SIMPLE_ARG = re.compile(r"^[\w.]+(\[[^\[\]]*\])?$")
_CONSTANT_WORD = re.compile(rf"\b({'|'.join(CONSTANTS)})\b")


def cell_source(template: str, arg: str, number: Callable[[float], str]) -> str:
    """A template written in place by the cell compiler: the placeholder replaced by arg (a
    name or an array element of the generated code; anything else is parenthesised), each
    constant by number(value), the kernel's own number of the data's type."""
    if not _SIMPLE_ARG.match(arg):
        arg = f"({arg})"
    return _CONSTANT_WORD.sub(lambda m: number(PY_CONSTANTS[m.group(1)]), template).format(x=arg, y=arg)


def _check() -> None:
    codes = [op.code for op in KERNEL_OPS]
    assert len(set(codes)) == len(codes), "two rows share a code"
    for op in OPS:
        assert op.uses and set(op.uses) <= {RECURRENT, DENSE, CELL}, op.name
        if DENSE in op.uses:
            assert op.np_forward is not None and op.np_backward is not None, op.name
        if op.rowwise:
            assert op.code is None and CELL not in op.uses, op.name
            continue
        assert op.py is not None and op.d is not None, op.name
        assert op.numba is not None or op.code is not None, f"{op.name}: numba=None needs a kernel implementation"
        if (RECURRENT in op.uses or DENSE in op.uses):
            assert op.code is not None and op.d_from == "y", f"{op.name}: kernels save y only"
        if op.code is None:
            assert inlinable(op.numba) and inlinable(op.d), f"{op.name}: cells write it inline"
            assert op.cuda is None or (inlinable(op.cuda) and inlinable(op.cuda_derivative)), op.name


_check()
