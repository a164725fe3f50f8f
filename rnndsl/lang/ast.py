"""The syntax tree of a .rnn spec. Every node carries its source position."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ..errors import Pos, clip


@dataclass
class Num:
    value: int | float
    pos: Pos


@dataclass
class Str:
    value: str
    pos: Pos


@dataclass
class Bool:
    value: bool
    pos: Pos


@dataclass
class Ref:
    """`name` or `name.port` (e.g. `enc.state`)."""

    parts: list[str]
    pos: Pos

    @property
    def name(self) -> str:
        return self.parts[0]

    @property
    def port(self) -> str | None:
        return ".".join(self.parts[1:]) or None

    def __str__(self) -> str:
        return ".".join(self.parts)


@dataclass
class Arg:
    """A positional (`name is None`) or keyword argument."""

    name: str | None
    value: "Value"
    pos: Pos


@dataclass
class Call:
    """`name(args...)`: a layer, an optimizer, a data source."""

    name: str
    args: list[Arg]
    pos: Pos


@dataclass
class ListValue:
    items: list["Value"]
    pos: Pos


Value = Union[Num, Str, Bool, Ref, Call, ListValue]
Stage = Union[Call, Ref]


@dataclass
class Pipeline:
    stages: list[Stage]
    pos: Pos


@dataclass
class InputDecl:
    name: str
    dtype: str            # "int" or "float"
    dims: list[int | None]  # None for `?`
    pos: Pos
    type_pos: Pos
    dim_pos: list[Pos] = field(default_factory=list)   # where each dimension is written


@dataclass
class Binding:
    name: str
    pipeline: Pipeline
    pos: Pos


@dataclass
class Output:
    name: str | None
    pipeline: Pipeline
    pos: Pos
    names: list[str] | None = None       # output h, c = enc.state: one name per state part
    name_pos: list[Pos] | None = None


@dataclass
class Setting:
    name: str
    value: Value
    pos: Pos


@dataclass
class TrainBlock:
    settings: list[Setting]
    pos: Pos


# --- custom cells -------------------------------------------------------------------


@dataclass
class ENum:
    """A number in a cell equation."""

    value: float
    pos: Pos


@dataclass
class EVar:
    """A name in a cell equation: an input, a state, an earlier result or a weight."""

    name: str
    pos: Pos


@dataclass
class ECall:
    """`sigmoid(expr)`: a function applied element-wise."""

    func: str
    args: list["Expr"]
    pos: Pos          # the whole call
    name_pos: Pos     # the function's name


@dataclass
class EUnary:
    op: str           # "-"
    operand: "Expr"
    pos: Pos


@dataclass
class EBinary:
    op: str           # "+", "-", "*", "/", "@"
    left: "Expr"
    right: "Expr"
    pos: Pos          # the whole expression


Expr = Union[ENum, EVar, ECall, EUnary, EBinary]


@dataclass
class Equation:
    """`target = expr`, one line of a cell body."""

    target: str
    expr: Expr
    pos: Pos          # the target name


@dataclass
class CellDef:
    """`cell name(units) clause(...)* { equations }`.

    `head` is the call `name(units)`; `clauses` are the calls after it, such as
    `state(h, c)`, `inputs(x1, x2)` and `init(bf = ones)`.
    """

    head: Call
    clauses: list[Call]
    equations: list[Equation]
    pos: Pos

    @property
    def name(self) -> str:
        return self.head.name


Statement = Union[InputDecl, Binding, Output, TrainBlock, CellDef]


@dataclass
class Spec:
    statements: list[Statement]
    file: str = "<spec>"
    source: str = ""
    extra: dict = field(default_factory=dict)


def plain(value: Value):
    """The Python value of a literal (lists recursively); refs and calls as they are."""
    if isinstance(value, (Num, Str, Bool)):
        return value.value
    if isinstance(value, ListValue):
        return [plain(v) for v in value.items]
    return value


def describe(value) -> str:
    """A value as a message names it: 'the string "x"', 'the number 3', 'the call f(...)'."""
    if isinstance(value, Str):
        return f'the string "{clip(value.value)}"'
    if isinstance(value, Bool):
        return "true" if value.value else "false"
    if isinstance(value, Num):
        return f"the number {value.value}"
    if isinstance(value, Ref):
        return f"the name {clip(str(value))}"
    if isinstance(value, Call):
        return f"the call {clip(value.name)}(...)"
    return "a list"
