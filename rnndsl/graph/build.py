"""Syntax tree -> checked layer graph.

Statements are lowered in order; every name must be defined before it is used
(so the graph is acyclic by construction). Each layer call becomes a node
whose arguments are resolved against its spec and whose output and state
ports are typed by the spec's `infer`. Problems are collected, not raised one
at a time: a node whose input is already broken is skipped quietly so one
mistake does not cascade into many.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .. import layers as _layers  # noqa: F401  (registers the layer kinds)
from ..layers.cells import CellTable, cell_scope, define_cells
from ..errors import MAX_KEPT, DiagnosticSink, Pos, did_you_mean
from ..lang import ast
from ..layers.base import REGISTRY, LayerSpec
from ..layers.input import INPUT
from ..layers.state import STATE_PACK, STATE_PART
from .graph import Graph, Node, Output, PortRef
from .sizes import check_scratch, check_sizes
from ..types import TensorType

IMPLICIT_INPUT = "x"

# Checks a spec's `train { ... }` block, reporting into the sink in source order:
# (block, sink) -> (settings, their positions). Training is rnndsl.train's business, a
# layer above the graph, so the caller hands its checker in (rnndsl.model passes
# rnndsl.train.train_block.check_train_block).
TrainChecker = Callable[[ast.TrainBlock, DiagnosticSink], "tuple[dict, dict[str, Pos]]"]


@dataclass
class Symbol:
    name: str
    ref: PortRef | None     # None when its definition had errors
    pos: Pos
    kind: str               # "input" or "binding"
    used: bool = False


class _Ctx:
    """What a spec's `infer` sees: error reporting at the node and hints about producers."""

    def __init__(self, builder: "GraphBuilder"):
        self.b = builder

    def error(self, node: Node, message: str, hint: str | None = None, at: str | None = None) -> None:
        self.b.sink.error(node.arg_pos.get(at, node.pos) if at else node.pos, message, hint)

    def fits(self, node: Node, elements: int, what: str) -> bool:
        """Whether one sample's working array of that many elements can be allocated; reported
        at the node when not (graph/sizes.py)."""
        return check_scratch(node, elements, what, self.b.sink, self.b.itemsize)

    def producer(self, node: Node, i: int) -> Node:
        return self.b.nodes[node.inputs[i].node]

    def seq_hint(self, node: Node, i: int) -> str:
        p = self.producer(node, i)
        if p.spec.recurrent:
            return (f"add `seq` (return_sequences=true) to the {p.spec.name} at line {p.pos.line} "
                    "so it returns every step")
        return "repeat(n) turns a vector into a sequence of n steps"


class GraphBuilder:
    def __init__(self, spec: ast.Spec, itemsize: int = 4, check_train: TrainChecker | None = None):
        self.spec = spec
        self.itemsize = itemsize
        self.check_train = check_train
        self.sink = DiagnosticSink(spec.source, spec.file)
        self.nodes: list[Node] = []
        self.symbols: dict[str, Symbol] = {}
        self.outputs: list[Output] = []
        self.output_names: set[str] = set()
        self.implicit_taken = False            # a pipeline has read the implicit input
        self._bound_at: dict[str, ast.Binding] | None = None
        self.names: dict[str, Pos] = {}
        self.counters: dict[str, int] = {}
        self.ctx = _Ctx(self)
        self.train: dict = {}
        self.train_pos: dict = {}
        self.pending_binding: str | None = None
        self.cells: CellTable = CellTable()

    # --- entry --------------------------------------------------------------------------
    def build(self) -> Graph:
        # cell definitions are declarations, like inputs: usable anywhere in the file
        self.cells = self.collect_cells()
        with cell_scope(self.cells):
            return self._build()

    def collect_cells(self) -> CellTable:
        cells = define_cells(self.spec, self.sink)
        for s in self.spec.statements:
            if isinstance(s, ast.CellDef) and s.name in REGISTRY:
                self.sink.error(s.pos, f"{s.name!r} is a layer; a cell needs another name",
                                f"e.g. cell my{s.name}(units) {{ ... }}")
                cells[s.name] = None
        return cells

    def unused_cells(self) -> None:
        for s in self.spec.statements:
            if isinstance(s, ast.CellDef) and s.name not in self.cells.used and s.name not in REGISTRY:
                self.sink.error(s.pos, f"cell {s.name!r} is never used",
                                f"run it with rnn({s.name}(32)), or remove it")

    def _build(self) -> Graph:
        stmts = self.spec.statements
        decls = [s for s in stmts if isinstance(s, ast.InputDecl)]
        for d in decls:
            self.declare_input(d)
        if not decls:
            self.implicit_input(stmts)
        for s in stmts:
            if isinstance(s, ast.Binding):
                self.binding(s)
            elif isinstance(s, ast.Output):
                self.output(s)
            elif isinstance(s, ast.TrainBlock):
                if self.train_pos:
                    self.sink.error(s.pos, "a spec has one train block", "merge the two blocks")
                if self.check_train is None:
                    self.sink.error(s.pos, "this spec has a train block, and nothing here checks one",
                                    "compile it with rnndsl.compile, which knows the train settings")
                    continue
                self.train, self.train_pos = self.check_train(s, self.sink)
        if not self.outputs and not self.sink.count:
            pos = stmts[-1].pos if stmts else Pos(self.spec.file, 1, 1)
            self.sink.error(pos, "the spec has no output",
                            "add `output name | ...`, or end with a pipeline that is not bound to a name")
        self.unused_cells()
        for sym in self.symbols.values():
            if not sym.used and sym.ref is not None:
                what = "input" if sym.kind == "input" else "name"
                self.sink.error(sym.pos, f"{what} {sym.name!r} is never used",
                                f"use it in a pipeline (`{sym.name} | ...`) or remove it")
        if not self.sink.count:
            check_sizes(self.nodes, self.sink, self.itemsize)
        self.sink.raise_if_any()
        inputs = [n.id for n in self.nodes if n.spec is INPUT]
        return Graph(self.nodes, inputs, self.outputs, self.train, self.train_pos,
                     self.spec.source, self.spec.file)

    # --- inputs -------------------------------------------------------------------------
    def declare_input(self, d: ast.InputDecl) -> None:
        if not self.define(d.name, d.pos):
            return
        t = self.input_type(d)
        ref = None
        if t is not None:
            keys = ["steps", "features"] if t.seq and not t.is_tokens and len(d.dims) == 2 else (
                ["steps"] if t.seq else ["features"])
            node = self.add_node(INPUT, d.name, {}, [], d.pos, dict(zip(keys, d.dim_pos)))
            node.outputs["out"] = t
            ref = PortRef(node.id)
        self.symbols[d.name] = Symbol(d.name, ref, d.pos, "input")

    def input_type(self, d: ast.InputDecl) -> TensorType | None:
        dims = d.dims
        for k, v in enumerate(dims):
            if v is not None and v < 1:
                pos = d.dim_pos[k] if k < len(d.dim_pos) else d.type_pos
                self.sink.error(pos, f"a dimension must be at least 1, got {v}")
                return None
        if d.dtype == "int":
            if len(dims) != 1:
                self.sink.error(d.type_pos, f"int[...] takes one dimension (steps), got {len(dims)}",
                                "token ids are `int[steps]`, e.g. `int[?]`; feature sequences are `float[steps, features]`")
                return None
            return TensorType(True, None, dims[0], dtype="int")
        if d.dtype == "float":
            if len(dims) == 2:
                if dims[1] is None:
                    self.sink.error(d.type_pos, "the feature size of a float input must be a number, not ?",
                                    "e.g. `float[?, 28]`: ? steps of 28 features")
                    return None
                return TensorType(True, dims[1], dims[0])
            if len(dims) == 1 and dims[0] is not None:
                return TensorType(False, dims[0])
            self.sink.error(d.type_pos, f"float[...] takes [steps, features] or [features], got {len(dims)} dimensions",
                            "e.g. `float[?, 28]`")
            return None
        hint = did_you_mean(d.dtype, ("int", "float")) or "inputs are int[steps] or float[steps, features]"
        self.sink.error(d.type_pos, f"unknown input type {d.dtype!r}", hint)
        return None

    def implicit_input(self, stmts) -> None:
        """A spec with no `input` that starts with embed(...) reads token ids, int[?]."""
        for s in stmts:
            if isinstance(s, (ast.Binding, ast.Output)):
                first = s.pipeline.stages[0]
                if isinstance(first, ast.Call) and REGISTRY.get(first.name) is REGISTRY["embed"]:
                    node = self.add_node(INPUT, IMPLICIT_INPUT, {}, [], first.pos)
                    node.outputs["out"] = TensorType(True, None, None, dtype="int")
                    self.symbols[IMPLICIT_INPUT] = Symbol(IMPLICIT_INPUT, PortRef(node.id), first.pos, "input", True)
                    self.implicit = PortRef(node.id)
                return

    implicit: PortRef | None = None

    # --- statements ---------------------------------------------------------------------
    def define(self, name: str, pos: Pos) -> bool:
        if name in self.symbols:
            first = self.symbols[name].pos
            self.sink.error(pos, f"{name!r} is already defined at line {first.line}",
                            "pick another name")
            return False
        return True

    def binding(self, s: ast.Binding) -> None:
        ok = self.define(s.name, s.pos)
        self.pending_binding = s.name
        ref = self.pipeline(s.pipeline, s.name)
        if ok:
            self.symbols[s.name] = Symbol(s.name, ref, s.pos, "binding")

    def output(self, s: ast.Output) -> None:
        self.pending_binding = None
        stages = s.pipeline.stages
        if len(stages) == 1 and isinstance(stages[0], ast.Ref) and stages[0].port == "state":
            self.state_outputs(s, stages[0])
            return
        if s.names is not None:
            self.sink.error(s.name_pos[1], "several names go with a state's parts, as in `output h, c = enc.state`",
                            "name one output: `output y = ...`")
            return
        ref = self.pipeline(s.pipeline, s.name)
        if ref is None:
            return
        name = s.name
        if name is None:
            stages = s.pipeline.stages
            name = str(stages[0]) if len(stages) == 1 and isinstance(stages[0], ast.Ref) else self.nodes[ref.node].name
        if name in self.output_names:
            self.sink.error(s.pos, f"output {name!r} is defined twice", "name outputs: `output y2 = ...`")
            return
        if ref.port == "state":
            self.sink.error(s.pos, "an output is a sequence or a vector, not a state",
                            "states go to initial_state=; output the layer itself")
            return
        self.outputs.append(Output(name, ref, s.pos))
        self.output_names.add(name)

    def state_outputs(self, s: ast.Output, r: ast.Ref) -> None:
        """`output enc.state` / `output h, c = enc.state`: each part of the state a model output
        (a state_part node each), named by the names given, else <name>_<part>."""
        ref = self.resolve_ref(r, "state")
        if ref is None:
            return
        state = self.nodes[ref.node].state
        names = s.names or ([s.name] if s.name else None)
        if names is not None and len(names) != len(state.parts):
            self.sink.error(r.pos, f"{r} has {len(state.parts)} part(s) {state}, "
                            f"but {len(names)} name(s) are given",
                            f"name each part: output {', '.join(n for n, _ in state.parts)} = {r}")
            return
        names = names or [f"{r.name}_{part}" for part, _ in state.parts]
        for k, ((part, units), name) in enumerate(zip(state.parts, names)):
            if name in self.output_names:
                self.sink.error(s.pos, f"output {name!r} is defined twice", "name outputs: `output y2 = ...`")
                continue
            node = self.add_node(STATE_PART, self.node_name(STATE_PART, {}, None, r.pos), {"part": k},
                                 [ref], r.pos)
            node.outputs["out"] = TensorType(False, units)        # (batch, units)
            self.outputs.append(Output(name, PortRef(node.id), s.pos))
            self.output_names.add(name)

    def state_pack(self, value: ast.ListValue, pos: Pos) -> PortRef | None:
        """initial_state=[h0, c0]: a state_pack node of those vectors (typed by state_edge,
        against the layer the state goes to)."""
        refs, broken = [], False
        for item in value.items:
            ref = self.resolve_ref(item, "out")
            if ref is None:
                broken = True
                continue
            t = self.nodes[ref.node].outputs.get(ref.port)
            if t is None:
                broken = True
            elif t.seq or t.is_tokens:
                self.sink.error(item.pos, f"a state's part is a vector (batch, units), but {item} is {t.describe()}",
                                "declare it as `input h0: float[units]`, or pass a layer's state: enc.state")
                broken = True
            refs.append(ref)
        if broken:
            return None
        node = self.add_node(STATE_PACK, self.node_name(STATE_PACK, {}, None, pos), {}, refs, pos)
        return PortRef(node.id, "state")

    # --- pipelines ------------------------------------------------------------------------
    def pipeline(self, p: ast.Pipeline, bind_name: str | None) -> PortRef | None:
        cur: PortRef | None = None
        broken = False
        last = len(p.stages) - 1
        for i, stage in enumerate(p.stages):
            if isinstance(stage, ast.Ref):
                if i > 0:
                    self.sink.error(stage.pos, f"the name {stage} can only start a pipeline",
                                    f"did you mean a layer call such as {stage}(...)? To join branches use concat(a, b)"
                                    if stage.port is None else "to join branches use concat(a, b) or add(a, b)")
                    broken = True
                    continue
                cur = self.resolve_ref(stage, "out")
                broken = cur is None
                continue
            spec = REGISTRY.get(stage.name)
            if spec is None and stage.name in self.cells:
                self.cells.used.add(stage.name)
                self.sink.error(stage.pos, f"{stage.name} is a cell, not a layer",
                                f"run it in a recurrent layer: rnn({stage.name}(...))")
                broken = True
                continue
            if spec is None:
                hint = did_you_mean(stage.name, REGISTRY) or f"layers: {', '.join(sorted(set(s.name for s in REGISTRY.values())))}"
                self.sink.error(stage.pos, f"unknown layer {stage.name!r}", hint)
                broken = True
                continue
            name_hint = bind_name if i == last else None
            cur, broken = self.layer(spec, stage, cur, broken, i == 0, name_hint)
        return None if broken else cur

    def layer(self, spec: LayerSpec, call: ast.Call, cur, broken: bool, first: bool, name_hint):
        n_errors = self.sink.count
        opts, arg_pos, refs = spec.resolve(call, self.sink.error)
        broken = broken or self.sink.count > n_errors
        inputs: list[PortRef] = []
        if cur is not None:
            inputs.append(cur)
        elif first and not spec.fan_in:
            if self.implicit is not None and not self.implicit_taken:
                inputs.append(self.implicit)
                self.implicit_taken = True
            else:
                decl = [s for s in self.symbols.values() if s.kind == "input"]
                hint = (f"start it with an input: `{decl[0].name} | {call.name}(...)`" if decl else
                        "declare an input first, e.g. `input x: float[?, 28]`, then `x | ...`")
                self.sink.error(call.pos, f"{call.name}(...) has no input", hint)
                return None, True
        for r in refs:
            ref = self.resolve_ref(r, "out")
            if ref is None:
                broken = True
            else:
                arg_pos[f"in:{len(inputs)}"] = r.pos       # where a fan-in layer's k-th input is named
                inputs.append(ref)
        init = opts.get("initial_state")
        if isinstance(init, ast.ListValue):     # its vectors packed first: a node comes after its inputs
            init = self.state_pack(init, arg_pos.get("initial_state", call.pos))
            broken = broken or init is None
        node = self.add_node(spec, self.node_name(spec, opts, name_hint, call.pos), opts, inputs, call.pos, arg_pos)
        if init is not None:
            node.initial_state = self.state_edge(node, init)
            broken = broken or node.initial_state is None
        if broken or any(not self.nodes[r.node].outputs.get(r.port) for r in inputs):
            return PortRef(node.id), True
        ins = [self.nodes[r.node].outputs[r.port] for r in inputs]
        n_errors = self.sink.count
        spec.infer(node, ins, self.ctx)
        if self.sink.count > n_errors or not node.outputs:
            return PortRef(node.id), True
        if "out" not in node.outputs:   # bidirectional(merge_mode=none): only .forward / .backward
            return PortRef(node.id, "forward"), False
        return PortRef(node.id), False

    def resolve_ref(self, r: ast.Ref, want: str) -> PortRef | None:
        sym = self.symbols.get(r.name)
        if sym is None:
            if self._bound_at is None:       # each name's first binding, found once
                self._bound_at = {}
                for s in self.spec.statements:
                    if isinstance(s, ast.Binding):
                        self._bound_at.setdefault(s.name, s)
            later = self._bound_at.get(r.name)
            if self.pending_binding == r.name:
                self.sink.error(r.pos, f"{r.name!r} refers to itself", "a pipeline cannot feed into itself (a cycle)")
            elif later is not None:
                self.sink.error(r.pos, f"{r.name!r} is used before it is defined (line {later.pos.line})",
                                "move its definition above this line")
            else:
                # (no hint once the errors kept are full: with thousands of names, each
                # suggestion costs a search)
                hint = (did_you_mean(r.name, self.symbols) if self.sink.count < MAX_KEPT else None) \
                    or "define it with `name = ...` or `input name: ...`"
                self.sink.error(r.pos, f"unknown name {r.name!r}", hint)
            return None
        sym.used = True
        if sym.ref is None:
            return None
        node = self.nodes[sym.ref.node]
        port = r.port
        if port is None:
            if "out" not in node.outputs and node.outputs:
                self.sink.error(r.pos, f"{r.name} has two outputs (merge_mode=none)",
                                f"use {r.name}.forward or {r.name}.backward")
                return None
            if want == "state":
                self.sink.error(r.pos, f"initial_state takes a state port, not the output of {r.name}",
                                f"write {r.name}.state (and give its layer `state`)")
                return None
            return PortRef(sym.ref.node, "out")
        if port == "state":
            if want != "state":
                self.sink.error(r.pos, f"{r} is a state; it can only go to initial_state= or be output as it is",
                                f"pipe the output instead: `{r.name} | ...`, or `output {r}` for its parts")
                return None
            if node.state is None:
                if node.spec.recurrent:
                    hint = f"add `state` (return_state=true) to the {node.spec.name} at line {node.pos.line}"
                else:
                    hint = f"{r.name} is a {node.spec.name}; only recurrent layers have a state"
                self.sink.error(r.pos, f"{r.name} has no state port", hint)
                return None
            return PortRef(sym.ref.node, "state")
        if port != "out" and port in node.outputs:           # b.forward, b.backward, a.scores
            return PortRef(sym.ref.node, port)
        ports = ["state"] if node.spec.recurrent else []
        ports += [p for p in node.outputs if p != "out"]
        hint = did_you_mean(port, ports) or (f"{r.name} has: {', '.join(ports)}" if ports else None)
        self.sink.error(r.pos, f"{r.name} has no port {port!r}", hint)
        return None

    def state_edge(self, node: Node, value) -> PortRef | None:
        pos = node.arg_pos.get("initial_state", node.pos)
        if isinstance(value, PortRef):          # a state_pack of vectors: typed by the layer it feeds
            return self.packed_state(node, value, pos)
        ref = self.resolve_ref(value, "state")
        if ref is None:
            return None
        got = self.nodes[ref.node].state
        want = node.spec.takes_state(node)
        if want is None:
            return None
        if not got.fits(want):
            src = self.nodes[ref.node]
            self.sink.error(pos, f"{node.spec.name}({want.parts[0][1]}) takes a state {want}, but {value} is "
                                 f"{got} from {src.spec.name} at line {src.pos.line}",
                            _state_hint(got, want))
            return None
        return ref

    def packed_state(self, node: Node, ref: PortRef, pos: Pos) -> PortRef | None:
        want = node.spec.takes_state(node)
        if want is None:
            return None
        pack = self.nodes[ref.node]
        widths = [self.nodes[r.node].outputs[r.port].features for r in pack.inputs]
        if len(widths) != len(want.parts) or any(w != u for w, (_, u) in zip(widths, want.parts)):
            got = ", ".join(f"({w})" for w in widths)
            self.sink.error(pos, f"{node.spec.name}({want.parts[0][1]}) takes a state {want}: "
                                 f"{len(want.parts)} vector(s) of those widths, but gets {got}",
                            f"give [{', '.join(f'{n}' for n, _ in want.parts)}] as vectors of "
                            f"{', '.join(str(u) for _, u in want.parts)} features")
            return None
        pack.state = want
        return ref

    # --- nodes ----------------------------------------------------------------------------
    def node_name(self, spec: LayerSpec, opts, name_hint, pos) -> str:
        name = opts.get("name") or name_hint
        if name and name not in self.names:
            self.names[name] = pos
            return name
        if opts.get("name"):
            self.sink.error(pos, f"layer name {name!r} is used twice", "names of layers must be unique")
        base = spec.keras_name
        while True:
            k = self.counters.get(base, 0)
            self.counters[base] = k + 1
            candidate = base if k == 0 else f"{base}_{k}"
            if candidate not in self.names:
                self.names[candidate] = pos
                return candidate

    def add_node(self, spec, name, opts, inputs, pos, arg_pos=None) -> Node:
        node = Node(len(self.nodes), spec, name, opts, inputs, pos, arg_pos or {})
        self.nodes.append(node)
        if spec is INPUT:
            self.names[name] = pos
        return node


def _state_hint(got, want) -> str:
    if len(got.parts) != len(want.parts):
        return (f"a {got.cell} state has {len(got.parts)} part(s) and this layer needs {len(want.parts)}: "
                "pass state between layers of the same kind (lstm to lstm, gru to gru)")
    got_names, want_names = [n for n, _ in got.parts], [n for n, _ in want.parts]
    hints = []
    if got_names != want_names:
        hints.append(f"the states are named differently ({', '.join(got_names)} against {', '.join(want_names)}): "
                     f"a state passes between states of the same names, so declare the cell with "
                     f"state({', '.join(got_names)})")
    if got.sizes != want.sizes:
        hints.append(f"make the units match: both layers need {got.sizes[0]} units, or both {want.sizes[0]}")
    return "; ".join(hints)


def build_graph(spec: ast.Spec, itemsize: int = 4, check_train: TrainChecker | None = None) -> Graph:
    """The checked graph of a parsed spec; itemsize (4 for float32) sizes the memory check;
    check_train checks a train block (without one, a train block is an error)."""
    return GraphBuilder(spec, itemsize, check_train).build()
