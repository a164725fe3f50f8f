"""A `cell` definition of the language -> a checked :class:`Cell` (expression graph, weights).

    cell NAME(units) [state(s1, s2, ...)] [inputs(x1, x2, ...)] [init(w = initializer, ...)] {
      name = expression            one equation per line (or separated by ';')
    }

Names in the equations are told apart by declaration and position:

* inputs: `x`, or the names in inputs(...); the value of that input at this step;
* states: `h`, or the names in state(...) (the first one is the layer's output
  unless an `output = ...` equation gives it). Before its equation a state name
  reads the state of the previous step; its equation gives the new state; after
  it the name reads the new value;
* output: the reserved name of the equation that gives the layer's output at this
  step, units wide, when it differs from the first state (Keras's cell returning
  (output, new states));
* results: any other name that an equation assigns; readable after its equation;
* weights: every other name. `a @ W` makes W a matrix (rows: a's width, columns:
  units); any other use makes a vector of units. Initialisers follow Keras: a
  matrix glorot_uniform, or orthogonal when its left side depends on a state; a
  vector that multiplies or divides something glorot_uniform (an element-wise
  weight, as Keras's peephole weights), any other vector zeros (a bias).

Functions are the element-wise rows of rnndsl/elementwise.py and the reductions
mean, sum, max and var (population variance) over units or an input's features,
each one value per row that broadcasts where it is used (a layer norm:
`(a - mean(a)) * rsqrt(var(a) + 0.001)`).

Problems are reported at their line and column into the DiagnosticSink.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import DiagnosticSink, LineIndex, Pos, did_you_mean
from ...types import WeightSpec
from ...lang import ast
from .expr import FUNCTIONS, REDUCTIONS, ROW, U, ExprGraph, FoldError, Node

INITIALIZER_NAMES = ("glorot_uniform", "orthogonal", "zeros", "ones", "uniform_0.05")
CLAUSES = {"state": "state", "states": "state", "input": "inputs", "inputs": "inputs", "init": "init"}
CALLABLE = FUNCTIONS + REDUCTIONS
OUTPUT = "output"           # the equation target that gives the layer's output


@dataclass
class Weight:
    name: str
    kind: str                     # "matrix" or "vector"
    pos: Pos                      # first use
    rows: object = U              # matrix: "u" or ("x", k)
    on_state: bool = False        # matrix: some left side depends on a state
    multiplies: bool = False      # vector: an operand of * or /
    init: str | None = None       # from init(...); None: the default

    @property
    def initializer(self) -> str:
        if self.init:
            return self.init
        if self.kind == "matrix":
            return "orthogonal" if self.on_state else "glorot_uniform"
        return "glorot_uniform" if self.multiplies else "zeros"


@dataclass
class Cell:
    """A checked cell: its inputs, states, weights and step graph. The layer's output is the
    `output` node where the cell has one, else the first state."""

    name: str
    inputs: list[str]
    states: list[str]
    weights: list[Weight]                  # in order of first appearance
    graph: ExprGraph
    new: list[Node]                        # per state: the "new" node holding its next value
    pos: Pos
    output: Node | None = None             # the "out" node of `output = ...`, or None
    equations: list[str] = field(default_factory=list)   # the source lines, for `rnndsl cell`
    names: dict[int, str] = field(default_factory=dict)    # node id -> the name of its equation
    # what the cell compiler (rnndsl.cells) derived from this description, kept with it so
    # that each cell is scheduled and generated once; the description itself never asks
    compiled: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def roots(self) -> list[Node]:
        """What a step computes: the new states, then the output where it is its own."""
        return self.new + ([self.output] if self.output is not None else [])

    def shape(self, w: Weight, units: int, features: list[int]) -> tuple[int, ...]:
        if w.kind == "vector":
            return (units,)
        rows = units if w.rows == U else features[w.rows[1]]
        return (rows, units)

    def weight_specs(self, units: int, features: list[int], prefix: str, trainable: bool = True) -> list[WeightSpec]:
        return [WeightSpec(f"{prefix}/{w.name}", self.shape(w, units, features), w.initializer, trainable)
                for w in self.weights]


class _Definer:
    def __init__(self, cdef: ast.CellDef, sink: DiagnosticSink):
        self.cdef = cdef
        self.sink = sink
        self.ok = True
        self.g = ExprGraph()
        self.inputs: list[str] = ["x"]
        self.input_pos: list[Pos] = [cdef.pos]
        self.states: list[str] = ["h"]
        self.state_pos: list[Pos] = [cdef.pos]
        self.states_declared = False
        self.inits: dict[str, tuple[str, Pos]] = {}
        self.weights: dict[str, Weight] = {}
        self.weight_index: dict[str, int] = {}       # position in self.weights (get_weights() order)
        self.weight_list: list[Weight] = []          # self.weights by position
        self.env: dict[str, Node] = {}               # results and new states assigned so far
        self.assigned_at: dict[str, Pos] = {}
        self.reads: dict[str, int] = {}
        self.inputs_used: set[int] = set()
        self.new: dict[int, Node] = {}
        self.output: Node | None = None

    def error(self, pos: Pos, message: str, hint: str | None = None) -> None:
        self.ok = False
        self.sink.error(pos, message, hint)

    # --- header ---------------------------------------------------------------------
    def header(self) -> None:
        head = self.cdef.head
        params = [a for a in head.args]
        if len(params) != 1 or params[0].name is not None or not _bare_name(params[0].value):
            pos = params[1].pos if len(params) > 1 else (params[0].pos if params else head.pos)
            self.error(pos, f"a cell takes one parameter, its units: cell {head.name}(units)",
                       f"write `cell {head.name}(units) {{ ... }}` and use it as rnn({head.name}(32))")
        seen: dict[str, Pos] = {}
        for clause in self.cdef.clauses:
            kind = CLAUSES.get(clause.name)
            if kind is None:
                hint = did_you_mean(clause.name, CLAUSES) or "a cell takes state(...), inputs(...) and init(...)"
                self.error(clause.pos, f"unknown cell clause {clause.name!r}", hint)
                continue
            if kind in seen:
                self.error(clause.pos, f"{clause.name}(...) is given twice (first at line {seen[kind].line})",
                           "list all the names in one clause")
                continue
            seen[kind] = clause.pos
            if kind == "init":
                self.init_clause(clause)
            else:
                names = self.name_list(clause)
                if not names:
                    continue
                if kind == "state":
                    self.states, self.state_pos = [n for n, _ in names], [p for _, p in names]
                    self.states_declared = True
                else:
                    self.inputs, self.input_pos = [n for n, _ in names], [p for _, p in names]
        for name, pos in zip(self.inputs, self.input_pos):
            if name in self.states:
                self.error(pos, f"{name!r} is both an input and a state of the cell", "give them different names")

    def name_list(self, clause: ast.Call) -> list[tuple[str, Pos]]:
        out: list[tuple[str, Pos]] = []
        listed: set[str] = set()
        for a in clause.args:
            if a.name is not None or not _bare_name(a.value):
                self.error(a.pos, f"{clause.name}(...) takes names, e.g. {clause.name}(h, c)")
                continue
            name = a.value.parts[0]
            if name in CALLABLE:
                self.error(a.pos, f"{name!r} is a function; pick another name")
                continue
            if name == OUTPUT:
                self.error(a.pos, "'output' is the name of the layer's output equation; pick another name",
                           "a cell gives an output other than its first state by `output = ...`")
                continue
            if name in listed:
                self.error(a.pos, f"{name!r} is listed twice")
                continue
            listed.add(name)
            out.append((name, a.pos))
        if not out and not clause.args:
            self.error(clause.pos, f"{clause.name}() names nothing", f"e.g. {clause.name}(h, c)")
        return out

    def init_clause(self, clause: ast.Call) -> None:
        for a in clause.args:
            if a.name is None:
                self.error(a.pos, "init takes weight = initializer, e.g. init(bf = ones)")
                continue
            v = a.value
            word = v.value if isinstance(v, ast.Str) else (v.parts[0] if _bare_name(v) else None)
            if word not in INITIALIZER_NAMES:
                hint = (did_you_mean(str(word), INITIALIZER_NAMES) if word else None) or \
                    f"initializers: {', '.join(INITIALIZER_NAMES)}"
                self.error(v.pos, f"unknown initializer {word if word else 'value'!r}", hint)
                continue
            if a.name in self.inits:
                self.error(a.pos, f"init for {a.name!r} is given twice")
                continue
            self.inits[a.name] = (word, a.pos)

    # --- body -----------------------------------------------------------------------
    def body(self) -> None:
        eqs = self.cdef.equations
        self.first_assignment = {}
        for eq in eqs:
            self.first_assignment.setdefault(eq.target, eq.pos)
        for eq in eqs:
            self.equation(eq)

    def equation(self, eq: ast.Equation) -> None:
        name = eq.target
        if name in self.inputs:
            self.error(eq.pos, f"{name!r} is an input of the cell; it cannot be assigned",
                       "give the result another name")
            return
        value = self.expr(eq.expr)
        if name in self.assigned_at:
            first = self.assigned_at[name]
            if name in self.states:
                self.error(eq.pos, f"state {name!r} is updated twice (first at line {first.line})",
                           "a state takes one new value per step; give the intermediate value another name")
            else:
                self.error(eq.pos, f"{name!r} is assigned twice (first at line {first.line})",
                           "each name is assigned once; use a new name")
            return
        self.assigned_at[name] = eq.pos
        if value is None:
            self.env[name] = None          # broken: later reads stay quiet instead of cascading
            return
        if name in self.states or name == OUTPUT:
            if value.width not in (U, None):
                what = f"state {name!r}" if name in self.states else "the output"
                hint = ("combine it with a units-wide value, e.g. `a - mean(a)` or `g * r`" if value.width == ROW
                        else "project it to units, e.g. `... @ W`")
                self.error(eq.pos, f"{what} has units features, but its new value has "
                                   f"{self.describe(value.width)}", hint)
                return
            if name == OUTPUT:
                self.output = self.g.out(value, eq.pos)
            else:
                k = self.states.index(name)
                self.new[k] = self.g.new(k, value, eq.pos)
        self.env[name] = value

    def describe(self, width) -> str:
        if width == U:
            return "units"
        if width == ROW:
            return "one value per row (a reduction)"
        return f"the features of input {self.inputs[width[1]]}"

    def expr(self, e) -> Node | None:
        if isinstance(e, ast.ENum):
            return self.g.const(e.value, e.pos)
        if isinstance(e, ast.EVar):
            return self.var(e)
        if isinstance(e, ast.EUnary):
            a = self.expr(e.operand)
            return None if a is None else self.fold_op("neg", (a,), a.width, e.pos)
        if isinstance(e, ast.ECall):
            return self.call(e)
        if e.op == "@":
            return self.matmul(e)
        a, b = self.expr(e.left), self.expr(e.right)
        if a is None or b is None:
            return None
        # a number and one value per row (a reduction) broadcast; units and features do not mix
        wide = [w for w in (a.width, b.width) if w not in (None, ROW)]
        if len(wide) == 2 and wide[0] != wide[1]:
            hint = ("project the input to units first, e.g. `x @ W`" if ("x" in (a.width[0], b.width[0]))
                    else None)
            self.error(e.pos, f"the terms of '{e.op}' do not match: the left has {self.describe(a.width)}, "
                              f"the right {self.describe(b.width)}", hint)
            return None
        if e.op in "*/":
            for side in (a, b):
                if side.op == "vec":
                    self.weight_list[side.attr].multiplies = True
        width = wide[0] if wide else (ROW if ROW in (a.width, b.width) else None)
        op = {"+": "add", "-": "sub", "*": "mul", "/": "div"}[e.op]
        return self.fold_op(op, (a, b), width, e.pos)

    def fold_op(self, op: str, args, width, pos: Pos, attr=None) -> Node | None:
        """g.op, with numbers that fold to inf or NaN reported at the expression."""
        try:
            return self.g.op(op, args, width, pos, attr)
        except FoldError as err:
            self.error(pos, f"the numbers here fold to a value that is not finite: {err}",
                       "an equation computes finite numbers: check the constants")
            return None

    def call(self, e: ast.ECall) -> Node | None:
        if e.func not in CALLABLE:
            hint = did_you_mean(e.func, CALLABLE) or f"functions: {', '.join(CALLABLE)}"
            self.error(e.name_pos, f"unknown function {e.func!r}", hint)
            for a in e.args:
                self.expr(a)
            return None
        if len(e.args) != 1:
            self.error(e.pos, f"{e.func} takes one argument, got {len(e.args)}")
            return None
        a = self.expr(e.args[0])
        if a is None:
            return None
        if e.func in REDUCTIONS:
            return self.reduction(e, a)
        if e.func == "linear":
            return a
        return self.fold_op("func", (a,), a.width, e.pos, attr=e.func)

    def reduction(self, e: ast.ECall, a: Node) -> Node | None:
        arg = e.args[0].pos
        if a.width == ROW:
            self.error(arg, f"{e.func}(...) of one value per row: its argument is reduced already",
                       f"{e.func} runs over units or an input's features, e.g. {e.func}(a) of a units-wide a")
            return None
        if not a.batched:
            self.error(arg, f"{e.func}(...) of weights or numbers alone",
                       f"reduce a value of the step (one that depends on an input or a state), e.g. "
                       f"{e.func}(x @ W + b)")
            return None
        return self.g.reduce(e.func, a, e.pos)

    def var(self, e: ast.EVar) -> Node | None:
        name = e.name
        if name in self.env:
            self.reads[name] = self.reads.get(name, 0) + 1
            return self.env[name]          # None for a result whose equation had an error
        if name in self.states:
            return self.g.prev(self.states.index(name), e.pos)
        if name in self.inputs:
            k = self.inputs.index(name)
            self.inputs_used.add(k)
            return self.g.input(k, e.pos)
        if name in self.first_assignment:
            line = self.first_assignment[name].line
            hint = ("move its equation above this line; only states can be read before their equation "
                    "(they give the previous step's value)")
            if not self.states_declared and name != OUTPUT:
                hint += f": to make {name!r} a state, declare state(h, {name})"
            self.error(e.pos, f"{name!r} is used before it is defined (line {line})", hint)
            return None
        if name in CALLABLE:
            self.error(e.pos, f"{name!r} is a function", f"call it: {name}(...)")
            return None
        w = self.weight(name, "vector", e.pos)
        if w is None:
            return None
        return self.g.vec(self.weight_index[name], e.pos)

    def weight(self, name: str, kind: str, pos: Pos) -> Weight | None:
        w = self.weights.get(name)
        if w is None:
            w = self.weights[name] = Weight(name, kind, pos)
            self.weight_index[name] = len(self.weight_list)
            self.weight_list.append(w)
            return w
        if w.kind != kind:
            first = "a matrix (after @)" if w.kind == "matrix" else "a vector"
            self.error(pos, f"weight {name!r} is {first} at line {w.pos.line}, here it is used as "
                            f"{'a matrix (after @)' if kind == 'matrix' else 'a vector'}",
                       "use two weights with different names")
            return None
        return w

    def matmul(self, e: ast.EBinary) -> Node | None:
        left = self.expr(e.left)
        r = e.right
        if not isinstance(r, ast.EVar) or r.name in self.env or r.name in self.states or \
                r.name in self.inputs or r.name in CALLABLE or r.name in self.first_assignment:
            self.error(r.pos, "the right side of @ must be a weight: a name no equation assigns",
                       "write products as `value @ W`, e.g. `x @ Wf` or `(r * h) @ U`")
            return None
        if left is None:
            return None
        if not left.batched:
            self.error(e.left.pos, "the left side of @ must depend on an input or a state",
                       "weights multiply values of the step, e.g. `x @ W` or `h @ U`")
            return None
        if left.width == ROW:
            self.error(e.left.pos, "the left side of @ is one value per row (a reduction); a product needs "
                                   "a value as wide as units or an input's features",
                       "use the reduction element-wise first, e.g. `((a - mean(a)) * r) @ W`")
            return None
        seen = r.name in self.weights
        w = self.weight(r.name, "matrix", r.pos)
        if w is None:
            return None
        if seen and w.rows != left.width:
            self.error(e.pos, f"weight {r.name!r} multiplies {self.describe(left.width)} here but "
                              f"{self.describe(w.rows)} at line {w.pos.line}",
                       "use two weights with different names")
            return None
        w.rows = left.width
        w.on_state = w.on_state or left.on_state
        if left.op == "matmul":
            # a product of a product: the inner one goes through an identity node, so the
            # kernels hold it in an array of its own (the left side of a per-step product)
            left = self.g.op("func", (left,), left.width, e.left.pos, attr="linear")
        return self.g.matmul(left, self.weight_index[r.name], e.pos)

    # --- after the body ---------------------------------------------------------------
    def finish(self) -> None:
        # "never used" findings follow from other errors often (a broken equation reads nothing),
        # so they are reported only for a body that is otherwise clean
        clean = self.ok
        for k, (name, pos) in enumerate(zip(self.states, self.state_pos)):
            if name not in self.assigned_at:
                hint = f"give it an equation, e.g. `{name} = ...`"
                if not self.states_declared:
                    hint += "; a cell's state is h unless state(...) names its states"
                self.error(pos, f"state {name!r} is never updated", hint)
        if not clean:
            return
        for name, pos in self.assigned_at.items():
            if name not in self.states and name != OUTPUT and not self.reads.get(name):
                self.error(pos, f"{name!r} is never used",
                           "use it in an equation that leads to a state, or remove the line")
        for k, (name, pos) in enumerate(zip(self.inputs, self.input_pos)):
            if k not in self.inputs_used and name not in self.states:
                self.error(pos, f"input {name!r} is never used",
                           f"use it in an equation, e.g. `{name} @ W`; inputs(...) names the cell's inputs")
        for name, (init, pos) in self.inits.items():
            w = self.weights.get(name)
            if w is None:
                if name in self.assigned_at or name in self.states or name in self.inputs:
                    self.error(pos, f"{name!r} is not a weight, so it takes no initializer")
                else:
                    hint = did_you_mean(name, self.weights) or "init(...) names weights used in the equations"
                    self.error(pos, f"weight {name!r} is never used", hint)
                continue
            w.init = init


def _bare_name(v) -> bool:
    return isinstance(v, ast.Ref) and len(v.parts) == 1


def define_cell(cdef: ast.CellDef, sink: DiagnosticSink, source: str = "") -> Cell | None:
    """The checked Cell of a definition, or None after reporting its problems into sink."""
    d = _Definer(cdef, sink)
    d.header()
    if not d.ok:
        return None
    d.body()
    d.finish()
    if not d.ok:
        return None
    weights = list(d.weights.values())
    new = [d.new[k] for k in range(len(d.states))]
    lines = []
    if source and cdef.pos.line > 0:
        index = sink.lines if sink.source is source else LineIndex(source)
        n_lines = len(index.starts)
        last = max([eq.pos.line for eq in cdef.equations] + [cdef.pos.line])
        end = last
        while end < n_lines and "}" not in (index.line(end) or ""):
            end += 1
        lines = [index.line(k) or "" for k in range(cdef.pos.line, end + 1)]
    names = {node.id: name for name, node in d.env.items() if node is not None and node.op not in
             ("const", "input", "prev", "vec") and name != OUTPUT}
    return Cell(cdef.name, d.inputs, d.states, weights, d.g, new, cdef.pos, d.output, lines, names)
