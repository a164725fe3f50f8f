"""Schedule a cell step and emit the Python source of its numba kernels.

Schedule. Products `a @ W` are the only operations that mix units, so they
split a step into phases. A product whose left side is an input (`x @ W`)
does not depend on the recurrence: all such products of one input are hoisted
out of the time loop as one matrix product over every step, xp_k = X_k @ [W1|W2|..]
(T*B rows), done by the caller. Every other product is done per step, and the
products that share a left side are fused into one, `h @ [Uz|Ur]`:

    phase(leaf) = 0          phase(x_k @ W) = 0          phase(a @ W) = phase(a) + 1
    phase(red(a)) = phase(a) + 1       (a reduction: mean, sum, max, var over a row)
    phase(op(a, b, ...)) = max(phase(a), phase(b), ...)

A step runs phase 0's element-wise pass, then phase 1's products and passes, and
so on; an element-wise pass is one loop over the batch rows and the units,
with every operation of that phase inlined (values that another pass or the
products read go through per-step arrays, the rest stay in registers). A phase
first runs its per-row pass (reductions, each a loop over its argument's row,
and the arithmetic on their values, one per row), then its units-wide pass,
then its input-features-wide one. New states are committed after the last phase
(a padded step keeps the old row); the output is the first state or, for a cell
with `output = ...`, its own row (a padded step repeats the previous step's).

Backward (BPTT) runs the phases in reverse at every step, going back in time.
Its element-wise passes push adjoint contributions (autodiff.contributions)
from each node to its arguments (a per-row value read by a units-wide pass
gathers its adjoint as a sum over the loop; its own pass then sends a
reduction's adjoint back to the argument's row); a product's adjoint turns into the adjoint
of its left side by one matrix product with W^T per step, and into dW by one
product over all steps after the loop (done by the caller). Backward reads the
values that appear in the local derivatives and the left sides of the per-step
products; forward keeps for every step only the previous states, the sums of
products (`x @ W + h @ U + b`, written over the hoisted product's block of xp
where nothing else reads it), the per-row values and the products' left sides,
and backward's step first computes every other value it reads again from those
(rematerialisation, Plan._rematerialise: element-wise math in cache instead of
(T, B, u) arrays through memory). Adjoints that
are equal by construction are stored once (Plan._share_adjoints): in
`x @ W + h @ U + b` the per-step product reuses the hoisted product's adjoint
array and b's gradient is a column sum of it, as in the hand-written LSTM.

Conventions follow the hand-written kernels (kernels/cpu/lstm.py, gru.py):
time-major arrays; each call runs rows b0..b1 of the batch over every step
(the caller splits the batch across cores, kernels/cpu/parallel.py, and
allocates every (T, B, .) array); go_backwards; a (T, B) uint8 mask or an
empty one; a (B, u) recurrent-dropout mask (or empty) applied to the first
state wherever the step reads it (as Keras 3 does for h_tm1);
zero_output_for_mask; saved arrays of one step in inference (keep=False);
and the activations of kernels/cpu/activations.py (fast float32 tanh, exact
float64). Numbers reach the kernels as a `consts` array of the data's dtype,
so float32 code never meets a float64 constant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..elementwise import BY_NAME, KERNEL_OPS, cell_source
from .autodiff import contributions, render, values_in
from ..layers.cells.expr import ROW, U, Node

def forward_source(name: str, arg: str, number) -> str:
    """Python source of f(arg) for the CPU kernels: the argument itself for the identity, a
    call into kernels/cpu/activations.py for a kernel activation, else the row's template
    (its constants as number(c))."""
    f = BY_NAME[name]
    if f.identity:
        return arg
    return f"{name}_({arg})" if f.code is not None else f"({cell_source(f.numba, arg, number)})"


def kernel_functions() -> list[str]:
    """The names generated modules import from kernels/cpu/activations.py: the forward and
    derivative functions of every kernel activation but the identity."""
    return sorted(n for f in KERNEL_OPS if not f.identity for n in (f"{f.name}_", f"d{f.name}_"))


@dataclass
class Group:
    """Products that share a left side: one matrix product with W = [W1 | W2 | ...]."""

    index: int
    hoisted: bool
    left: Node            # an input leaf (hoisted), a previous state or an element-wise node
    weights: list[int] = field(default_factory=list)     # weight index of each column block
    nodes: list[Node] = field(default_factory=list)      # the product node of each block
    phase: int = 0

    @property
    def name(self) -> str:
        return f"xp{self.left.attr}" if self.hoisted else f"M{self.index}"


class Plan:
    """What the kernels compute, store and save, derived from a Cell's graph."""

    def __init__(self, cell, remat: bool = True):
        self.cell = cell
        # False: keep every value backward reads, sums in one chain (the kernels before
        # rematerialisation, the tests' reference)
        self.remat = remat
        self.nodes: list[Node] = cell.graph.live(cell.roots)
        self.n_states = len(cell.states)
        self.has_output = cell.output is not None       # else the output is the first state
        self.n_inputs = len(cell.inputs)
        live = {n.id for n in self.nodes}
        self.consumers: dict[int, list[Node]] = {n.id: [] for n in self.nodes}
        for n in self.nodes:
            for a in n.args:
                self.consumers[a.id].append(n)

        # products: hoisted per input, per-step groups per left side
        self.hoisted: list[Group] = []
        self.groups: list[Group] = []
        self.block: dict[int, tuple[Group, int]] = {}
        by_left: dict[tuple, Group] = {}
        for n in self.nodes:
            if n.op != "matmul":
                continue
            left = n.args[0]
            hoisted = left.op == "input"
            key = ("input", left.attr) if hoisted else ("node", left.id)
            grp = by_left.get(key)
            if grp is None:
                grp = by_left[key] = Group(0, hoisted, left)
                (self.hoisted if hoisted else self.groups).append(grp)
            self.block[n.id] = (grp, len(grp.nodes))
            grp.weights.append(n.attr)
            grp.nodes.append(n)
        self.hoisted.sort(key=lambda g: g.left.attr)
        for i, grp in enumerate(self.hoisted):
            grp.index = i
        for i, grp in enumerate(self.groups):
            grp.index = i

        # phases
        self.phase: dict[int, int] = {}
        for n in self.nodes:
            if n.op == "matmul":
                self.phase[n.id] = 0 if n.args[0].op == "input" else self.phase[n.args[0].id] + 1
            elif n.op == "reduce":
                # mixes units as a product does: its argument is complete one pass before
                self.phase[n.id] = self.phase[n.args[0].id] + 1
            elif n.args:
                self.phase[n.id] = max(self.phase[a.id] for a in n.args)
            else:
                self.phase[n.id] = 0
        for grp in self.groups:
            grp.phase = self.phase[grp.nodes[0].id]
        self.n_phases = max(self.phase.values(), default=0) + 1
        # per phase, once: the generators walk the phases, and a scan of every node or group
        # for each phase made a cell of a thousand chained products quadratic
        self.groups_in_phase: list[list[Group]] = [[] for _ in range(self.n_phases)]
        for grp in self.groups:
            self.groups_in_phase[grp.phase].append(grp)

        # leaves
        self.vecs: list[int] = sorted({n.attr for n in self.nodes if n.op == "vec"})
        self.vec_slot = {w: i for i, w in enumerate(self.vecs)}
        self.loop_inputs: list[int] = sorted({n.attr for n in self.nodes if n.op == "input"
                                              and any(c.op != "matmul" for c in self.consumers[n.id])})
        self.prevs: list[int] = sorted({n.attr for n in self.nodes if n.op == "prev"})

        self._share_adjoints()

        # what backward reads: values in the local derivatives, left sides of per-step products
        needed: set[int] = set()
        for n in self.nodes:
            if n.op in ELEMENTWISE_OPS:
                for _, term in contributions(n):
                    needed.update(v.id for v in values_in(term))
            elif n.op == "reduce" and n.attr in ("max", "var"):
                needed.add(n.args[0].id)         # the argmax, the deviations from the mean
        for grp in self.groups:
            needed.add(grp.left.id)
        self.needed = needed & live
        # the nodes the passes compute: element-wise ones and the reductions
        self.elementwise = [n for n in self.nodes if n.op in PASS_OPS]
        self.pass_of = {n.id: (self.phase[n.id], width_class(n.width)) for n in self.elementwise}
        self.reductions = [n for n in self.elementwise if n.op == "reduce"]
        # a variance's mean is its argument's mean(...) where the cell takes that too (layer norm)
        self.mean_of: dict[int, Node] = {}
        for n in self.reductions:
            if n.attr == "mean" and remat:
                self.mean_of.setdefault(n.args[0].id, n)
        # nodes read outside their own pass: by a later phase, a pass of another width in
        # their phase (one value per row read by a units-wide pass), a product or a reduction
        self.cross: set[int] = set()
        for n in self.elementwise:
            for c in self.consumers[n.id]:
                if c.op in ("matmul", "reduce") or self.pass_of[c.id] != self.pass_of[n.id]:
                    self.cross.add(n.id)
        self._rematerialise(remat)
        self.stored = {n.id for n in self.elementwise if n.op not in ROOT_OPS and (
            n.id in self.cross or (n.id in self.kept and n.id not in self.in_place))}
        kept_prev = {n.attr for n in self.nodes if n.op == "prev" and n.id in self.kept}
        self.saved_prev = [k for k in self.prevs if k in kept_prev]
        # the first state is always copied (dropped) into P0 when read; others only when saved
        self.materialized_prev = sorted(set(self.saved_prev) | ({0} if 0 in self.prevs else set()))
        self.saved_nodes = [n for n in self.elementwise if n.id in self.kept and n.id not in self.in_place]
        self.saved_groups = [g for g in self.groups if any(n.id in self.kept for n in g.nodes)]
        # saved arrays, in the order forward returns them and backward takes them
        self.saved: list[tuple] = ([("prev", k) for k in self.saved_prev]
                                   + [("node", n.id) for n in self.saved_nodes]
                                   + [("group", g.index) for g in self.saved_groups])
        self._saved_at = {key: i for i, key in enumerate(self.saved)}
        self.saved_group_ids = {g.index for g in self.saved_groups}
        self.elementwise_in_phase: list[list[Node]] = [[] for _ in range(self.n_phases)]
        for n in self.elementwise:
            self.elementwise_in_phase[self.phase[n.id]].append(n)
        self.consts: list[float] = [0.0, 1.0]
        self._const_at: dict[float, int] = {0.0: 0, 1.0: 1}
        # the width of each input, known from a weight it multiplies
        self.input_weight: dict[int, int] = {}
        for grp in self.hoisted:
            self.input_weight.setdefault(grp.left.attr, grp.weights[0])
        for grp in self.groups:
            if grp.left.width != U and grp.left.width is not None:
                self.input_weight.setdefault(grp.left.width[1], grp.weights[0])

    def _rematerialise(self, remat: bool) -> None:
        """Split what backward reads (needed) into what forward saves for every step (kept)
        and what backward computes again at each step from those (recomputed).

        Kept: the previous states, the sums of products (`x @ W + h @ U + b`: one array
        where its products would be two, and none where it goes over its hoisted block of
        xp), products read otherwise, the per-row values (reductions and the arithmetic on
        them: one number per row) and the left sides of per-step products (dU = sum_t a_t^T
        dM_t is one product after the loop). Recomputed: every other element-wise node,
        with the element-wise nodes it reads, from kept values, the inputs and the
        weights. Without remat every needed value is kept (the kernels before
        rematerialisation; the tests' reference).
        """
        lefts = {g.left.id for g in self.groups}
        # sums of products: x @ W + h @ U + b (add, sub, neg of products, vectors, numbers)
        linear: set[int] = set()
        for n in self.nodes:
            if n.op == "matmul" or (n.op in ("add", "sub", "neg") and any(a.id in linear for a in n.args)
                                    and all(a.id in linear or a.op in ("vec", "const") for a in n.args)):
                linear.add(n.id)
        demand = set(self.needed)
        self.kept: set[int] = set()
        self.recomputed: set[int] = set()
        for n in reversed(self.nodes):           # consumers before their arguments
            if n.id not in demand:
                continue
            if (remat and n.op in ELEMENTWISE_OPS and n.op not in ROOT_OPS and n.width != ROW
                    and n.id not in lefts and not (n.id in linear and n.op != "matmul")):
                self.recomputed.add(n.id)
                demand.update(a.id for a in n.args)
            else:
                self.kept.add(n.id)
        # a kept sum reading a hoisted product that nothing else reads (through sums read by
        # nothing else) is written over that product's block of xp: the block is not read
        # after its step, and the sum's (T, B, u) array is not needed (unless a product reads
        # the sum: the caller's dU = sum_t a_t^T dM_t takes its saved array)
        self.in_place: dict[int, tuple[Group, int]] = {}
        taken: set[tuple[int, int]] = set()
        for n in self.nodes:
            if not remat or n.id not in self.kept or n.id not in linear or n.op == "matmul" or n.id in lefts:
                continue
            stack = list(n.args)
            while stack:
                a = stack.pop()
                if len(self.consumers[a.id]) != 1:
                    continue
                if a.op == "matmul":
                    grp, blk = self.block[a.id]
                    if grp.hoisted and (grp.index, blk) not in taken:
                        taken.add((grp.index, blk))
                        self.in_place[n.id] = (grp, blk)
                        break
                elif a.id in linear and a.id not in self.kept:
                    stack.extend(a.args)
        # which backward passes read each value
        readers: dict[int, set] = {}
        for n in self.nodes:
            if n.op in ELEMENTWISE_OPS:
                for _, term in contributions(n):
                    for v in values_in(term):
                        readers.setdefault(v.id, set()).add(self.pass_of[n.id])
            elif n.op == "reduce" and n.attr in ("max", "var"):
                readers.setdefault(n.args[0].id, set()).add(self.pass_of[n.id])
        # inline: computed again inside the one backward pass that reads it (in registers,
        # no pass of its own), where only that pass and inline nodes of it read it; the
        # others are computed first, phase by phase (recompute_pass), and those read
        # outside that pass are held in per-step arrays
        self.inline: set[int] = set()
        for n in reversed(self.nodes):
            if n.id not in self.recomputed:
                continue
            key = self.pass_of[n.id]
            if readers.get(n.id, set()) <= {key} and all(
                    c.id in self.inline and self.pass_of[c.id] == key
                    for c in self.consumers[n.id] if c.id in self.recomputed):
                self.inline.add(n.id)
        self.held = {i for i in self.recomputed - self.inline if i in self.needed}
        for n in self.nodes:
            if n.id in self.recomputed:
                for a in n.args:
                    if a.id in self.recomputed and a.id not in self.inline and (
                            n.id in self.inline or self.pass_of[a.id] != self.pass_of[n.id]):
                        self.held.add(a.id)

    def _share_adjoints(self) -> None:
        """Find adjoints that are equal, so each is computed and stored once.

        A node whose only consumer is a sum (or a new state) with derivative 1 has the
        adjoint of that consumer: rep(n) = rep(consumer). In `x @ W + h @ U + b` the two
        products and the bias share one adjoint, as in a hand-written kernel: then the
        per-step product's adjoint is the hoisted one's array (no copy), and the bias
        gradient is a column sum of it after the loop (nothing accumulated in the loop).
        """
        rep: dict[int, int] = {}
        for n in reversed(self.nodes):
            cons = self.consumers[n.id]
            c = cons[0] if len(cons) == 1 else None
            if c is not None and (c.op in ("add",) + ROOT_OPS or
                                  (c.op == "sub" and c.args[0] is n and c.args[1] is not n)):
                rep[n.id] = rep[c.id]
            else:
                rep[n.id] = n.id
        self.rep = rep
        # where each shared adjoint is stored: (array kind, group, block)
        stored_at: dict[int, tuple] = {}
        for grp in self.hoisted:
            for blk, n in enumerate(grp.nodes):
                stored_at.setdefault(rep[n.id], ("xp", grp, blk))
        self.alias: dict[int, Group] = {}        # per-step group index -> hoisted group with its adjoint
        for grp in self.groups:
            for h in self.hoisted:
                if len(h.nodes) == len(grp.nodes) and all(rep[a.id] == rep[b.id] and
                                                          stored_at.get(rep[a.id]) == ("xp", h, blk)
                                                          for blk, (a, b) in enumerate(zip(grp.nodes, h.nodes))):
                    self.alias[grp.index] = h
                    break
            if grp.index not in self.alias:
                for blk, n in enumerate(grp.nodes):
                    stored_at.setdefault(rep[n.id], ("M", grp, blk))
        # vector weights whose gradient is a column sum of a stored adjoint
        self.vec_from: dict[int, tuple] = {}
        for n in self.nodes:
            if n.op == "vec" and rep[n.id] != n.id and rep[n.id] in stored_at:
                self.vec_from.setdefault(self.vec_slot[n.attr], stored_at[rep[n.id]])
        self.loop_vecs = [i for i in range(len(self.vecs)) if i not in self.vec_from]

    def skip_push(self, n: Node) -> bool:
        """Whether the adjoint of n is already stored through an equal one (see _share_adjoints)."""
        if n.op == "matmul":
            grp, _ = self.block[n.id]
            return not grp.hoisted and grp.index in self.alias
        if n.op == "vec":
            return self.vec_slot[n.attr] in self.vec_from
        return False

    def dM_name(self, grp: Group) -> str:
        h = self.alias.get(grp.index)
        return f"d{h.name}" if h is not None else f"dM{grp.index}"

    def saved_index(self, key) -> int:
        return self._saved_at[key]

    def saved_shape(self, key, T: int, B: int, u: int, features: list[int]) -> tuple[int, int, int]:
        kind, i = key
        if kind == "prev":
            return (T, B, u)
        if kind == "group":
            return (T, B, len(self.groups[i].nodes) * u)
        w = self.cell.graph.nodes[i].width
        if w == ROW:
            return (T, B)
        return (T, B, u if w in (U, None) else features[w[1]])

    def work(self, T: int, B: int, u: int) -> int:
        """Multiply-adds of a pass over the steps, to decide whether splitting the batch pays."""
        cols = sum(len(g.nodes) for g in self.groups) * u
        return T * B * u * (cols + 8 * len(self.elementwise))

    def const(self, value: float) -> str:
        # keyed like the list's `in` (equality: -0.0 is 0.0; a NaN is its own entry each time)
        k = self._const_at.get(value)
        if k is None:
            k = len(self.consts)
            self.consts.append(value)
            if value == value:
                self._const_at[value] = k
        return f"k{k}"

    def passes(self, phase: int) -> list[tuple[object, list[Node]]]:
        """(width, nodes) of the loops of a phase: the per-row values first (reductions and
        arithmetic on them, which the wider passes read), then units, then input features."""
        by_width: dict = {}
        for n in self.elementwise_in_phase[phase]:
            by_width.setdefault(width_class(n.width), []).append(n)
        return sorted(by_width.items(), key=lambda kv: (kv[0] != ROW, kv[0] != U, str(kv[0])))

    def const_count(self, width) -> str:
        """The name of the float count of a reduction's width (fu, fnx0, ...), made in the prologue."""
        return "fu" if width in (U, None) else f"fnx{width[1]}"


ELEMENTWISE_OPS = ("add", "sub", "mul", "div", "neg", "func", "new", "out")
PASS_OPS = ELEMENTWISE_OPS + ("reduce",)
ROOT_OPS = ("new", "out")       # written to the step's new-state and output rows, never stored
OUT = "NO"                      # the output row's array (a cell with `output = ...`)


def width_class(width):
    """Which pass computes a node of this width: ROW, U (numbers too) or ("x", k)."""
    return U if width is None else width


class _Loop:
    """Row views (`a_b = a[b]`, `a_tb = a[t, b]`) used in one loop body over units, and the
    per-row sums it gathers (acc: the adjoint of a per-row value, summed over the loop and
    added to its array after it)."""

    def __init__(self):
        self.views: dict[str, str] = {}
        self.sums: dict[str, str] = {}         # accumulator -> the row array it is added to

    def acc(self, node_id: int) -> str:
        self.sums[f"a{node_id}"] = f"A{node_id}[b]"
        return f"a{node_id}"

    def b(self, arr: str) -> str:
        self.views[f"{arr}_b"] = f"{arr}[b]"
        return f"{arr}_b"

    def tb(self, arr: str) -> str:
        self.views[f"{arr}_tb"] = f"{arr}[t, b]"
        return f"{arr}_tb"


class _Src:
    def __init__(self):
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, line: str = "") -> None:
        self.lines.append(("    " * self.depth + line) if line else "")

    def indent(self, n: int = 1):
        self.depth += n

    def dedent(self, n: int = 1):
        self.depth -= n

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _offset(block: int) -> str:
    return "j" if block == 0 else f"{block} * u + j"


def _width(plan: Plan, width) -> str:
    return "u" if width in (U, None, ROW) else f"nx{width[1]}"


def _row_shape(plan: Plan, width) -> str:
    """The shape of one step's (B, width) scratch array, or (B,) for one value per row."""
    return "B" if width == ROW else f"(B, {_width(plan, width)})"


LANES = 8      # partial sums of a row's reduction


def _sum_lines(acc: str, pre: list[str], term: str, width: str) -> list[str]:
    """Lines making acc = the sum of term over j in range(width) (pre: lines before each
    term), in LANES partial sums: a float sum in one register is a chain of dependent adds
    that LLVM may not reorder (no fast-math), eight chains run at once and vectorise."""
    lines = [" = ".join(f"{acc}_{r}" for r in range(LANES)) + " = k0", "jj = 0",
             f"while jj + {LANES} <= {width}:"]
    for r in range(LANES):
        lines.append(f"    j = jj + {r}" if r else "    j = jj")
        lines += [f"    {x}" for x in pre] + [f"    {acc}_{r} += {term}"]
    lines += [f"    jj += {LANES}", f"for j in range(jj, {width}):"] + [f"    {x}" for x in pre] + [f"    {acc}_0 += {term}"]
    parts = [f"{acc}_{r}" for r in range(LANES)]
    while len(parts) > 1:                       # a fixed tree: the same order on every call
        parts = [f"({parts[k]} + {parts[k + 1]})" for k in range(0, len(parts), 2)]
    return lines + [f"{acc} = {parts[0]}"]


def _real(t="t") -> str:
    return f"(mask.shape[0] == 0 or mask[{t}, b] != 0)"


ROWS = "for b in range(b0, b1):"


class _Gen:
    def __init__(self, plan: Plan):
        self.p = plan
        self.src = _Src()
        self.registers: set[int] = set()     # backward: the recomputed values the current loop holds in v<id>
        self.scratch: dict[str, str] = {}     # backward: per-row sums' rows (name -> width), made in its prologue

    # --- arguments ----------------------------------------------------------------------
    def weight_args(self, forward: bool) -> list[str]:
        p = self.p
        args = [g.name for g in p.hoisted]
        args += [f"X{k}" for k in p.loop_inputs]
        args += [(f"W{g.index}" if forward else f"WT{g.index}") for g in p.groups]
        args += [f"V{i}" for i in range(len(p.vecs))]
        return args

    def forward_args(self) -> list[str]:
        p = self.p
        return (self.weight_args(True) + [f"S{k}" for k in range(p.n_states)]
                + ["mask", "rmask", "consts", "backwards", "zero_output", "out"]
                + [self.saved_name(k) for k in p.saved] + ["b0", "b1"])

    def backward_args(self) -> list[str]:
        p = self.p
        return (self.weight_args(False) + ["mask", "rmask", "consts", "backwards", "zero_output"]
                + [self.saved_name(k) for k in p.saved] + ["dout"]
                + [f"dS{k}" for k in range(p.n_states)] + self.gradient_arrays() + ["b0", "b1"])

    def gradient_arrays(self) -> list[str]:
        p = self.p
        return ([f"d{g.name}" for g in p.hoisted] + [f"dXl{k}" for k in p.loop_inputs]
                + [f"dM{g.index}" for g in p.groups if g.index not in p.alias]
                + [f"dV{i}" for i in p.loop_vecs])

    def saved_name(self, key) -> str:
        kind, i = key
        return {"prev": "SP", "node": "SV", "group": "SM"}[kind] + str(i)

    def prologue(self) -> None:
        p, s = self.p, self.src
        s("T, B, u = out.shape" if self.forward_mode else "T, B, u = dout.shape")
        s("dt = out.dtype" if self.forward_mode else "dt = dout.dtype")
        for k in p.loop_inputs:
            s(f"nx{k} = X{k}.shape[2]")
        if p.saved and self.forward_mode:
            s(f"keep = {self.saved_name(p.saved[0])}.shape[0] == T   # else inference: saved arrays hold one step")
        s("#@CONSTS@")
        counts = sorted({p.const_count(r.args[0].width): _width(p, r.args[0].width) for r in p.reductions}.items())
        if counts:
            s("# the widths the reductions run over, as numbers of the data's type (for means)")
        for name, width in counts:
            s(f"{name} = k0")
            s(f"for j in range({width}):")
            s(f"    {name} += k1")

    # --- forward ------------------------------------------------------------------------
    def leaf(self, n: Node, loop: _Loop) -> str | None:
        """Constants, vector weights and inputs read the same in forward and backward."""
        p = self.p
        if n.op == "const":
            return p.const(n.attr)
        if n.op == "vec":
            return f"V{p.vec_slot[n.attr]}[j]"
        if n.op == "input":
            return f"{loop.tb(f'X{n.attr}')}[j]"
        return None

    def fval(self, n: Node, key, loop: _Loop) -> str:
        """How the forward pass `key` (phase, width class) reads n: its register in that pass,
        else its array (a per-row value without [j])."""
        p = self.p
        value = self.leaf(n, loop)
        if value is not None:
            return value
        if n.op == "prev":
            k = n.attr
            arr = f"P{k}" if k in p.materialized_prev else f"S{k}"
            return f"{loop.b(arr)}[j]"
        if n.op == "matmul":
            grp, blk = p.block[n.id]
            if grp.hoisted:
                return f"{loop.tb(grp.name)}[{_offset(blk)}]"
            return f"{loop.b(grp.name)}[{_offset(blk)}]"
        if not self.forward_mode and n.id in p.in_place:
            return self.in_place(n, loop)
        if p.pass_of[n.id] == key and (self.forward_mode or n.id in self.registers):
            return f"v{n.id}"
        if n.width == ROW:
            return loop.b(f"E{n.id}")
        return f"{loop.b(f'E{n.id}')}[j]"

    def fexpr(self, n: Node, key, loop: _Loop) -> str:
        a = [self.fval(x, key, loop) for x in n.args]
        op = n.op
        if op == "add":
            return f"{a[0]} + {a[1]}"
        if op == "sub":
            return f"{a[0]} - {a[1]}"
        if op == "mul":
            return f"{a[0]} * {a[1]}"
        if op == "div":
            return f"{a[0]} / {a[1]}"
        if op == "neg":
            return f"-{a[0]}"
        if op == "func":
            return forward_source(n.attr, a[0], self.p.const)
        raise AssertionError(op)  # pragma: no cover

    def _rows_head(self, loop: _Loop, skip_padded: bool) -> None:
        """The loop over the rows, a padded step's row skipped, the row's views."""
        s = self.src
        s(ROWS)
        s.indent()
        if skip_padded:
            s(f"if not {_real()}:")
            s("    continue")
        for name, expr in loop.views.items():
            s(f"{name} = {expr}")

    def emit_loop(self, width: str, loop: _Loop, body: list[str], skip_padded: bool = False) -> None:
        s = self.src
        if loop.sums and self.p.remat:
            # a per-row sum gathered in the loop would make it one chain of dependent adds, which
            # keeps the whole loop from vectorising: each j's share goes to a row (R<sum>) instead,
            # summed after the loop in partial sums
            for name in loop.sums:
                self.scratch[f"R{name}"] = width
                loop.views[f"R{name}_b"] = f"R{name}[b]"
            self._rows_head(loop, skip_padded)
            s(f"for j in range({width}):")
            s.indent()
            for name in loop.sums:
                s(f"{name} = k0")
            for line in body:
                s(line)
            for name in loop.sums:
                s(f"R{name}_b[j] = {name}")
            s.dedent()
            for name, target in loop.sums.items():
                for line in _sum_lines(f"t{name}", [], f"R{name}_b[j]", width):
                    s(line)
                s(f"{target} += t{name}")
            s.dedent()
            return
        self._rows_head(loop, skip_padded)
        for name in loop.sums:
            s(f"{name} = k0")
        s(f"for j in range({width}):")
        s.indent()
        for line in body:
            s(line)
        s.dedent()
        for name, target in loop.sums.items():
            s(f"{target} += {name}")
        s.dedent()

    def emit_rows(self, loop: _Loop, body: list[str], skip_padded: bool = False) -> None:
        """A pass over the rows only: per-row values (reductions loop over j inside)."""
        s = self.src
        self._rows_head(loop, skip_padded)
        for line in body:
            s(line)
        s.dedent()

    def reduce_forward(self, n: Node, key, loop: _Loop) -> list[str]:
        """Lines computing v<n> = mean/sum/max/var of n's argument over its width, for row b."""
        p = self.p
        a = n.args[0]
        x = self.fval(a, key, loop)
        w, cnt, i = _width(p, a.width), p.const_count(a.width), n.id
        if n.attr == "max":
            # the first of equal maxima (backward sends the adjoint to it)
            return ["j = 0", f"v{i} = {x}", f"for j in range(1, {w}):", f"    if {x} > v{i}:", f"        v{i} = {x}"]
        mean = p.mean_of.get(a.id)
        if n.attr == "var" and mean is not None and p.pass_of[mean.id] == key and mean.id < n.id:
            lines = [f"m{i} = v{mean.id}"]          # computed just before in this pass
        elif p.remat:
            lines = _sum_lines(f"s{i}", [], x, w)
        else:
            lines = [f"s{i} = k0", f"for j in range({w}):", f"    s{i} += {x}"]
        if n.attr == "sum":
            return lines + [f"v{i} = s{i}"]
        if not lines[0].startswith("m"):
            lines.append(f"m{i} = s{i} / {cnt}")
        if n.attr == "mean":
            return lines + [f"v{i} = m{i}"]
        # var: the population variance (Keras's LayerNormalization), from the deviations
        if p.remat:
            return lines + _sum_lines(f"q{i}", [f"d{i} = {x} - m{i}"], f"d{i} * d{i}", w) + [f"v{i} = q{i} / {cnt}"]
        return lines + [f"q{i} = k0", f"for j in range({w}):", f"    d{i} = {x} - m{i}", f"    q{i} += d{i} * d{i}",
                        f"v{i} = q{i} / {cnt}"]

    def reduce_backward(self, n: Node, key, loop: _Loop) -> list[str]:
        """Lines adding g<n> * d(reduction)/d(argument)_j to the argument's adjoint, for row b:
        sum 1, mean 1/n, max the indicator of the first maximum, var 2 (a_j - mean a) / n."""
        p = self.p
        a = n.args[0]
        target = self.badj(a, key, loop)
        if target is None:
            return []
        w, cnt, i = _width(p, a.width), p.const_count(a.width), n.id
        x = self.bval(a, loop) if n.attr in ("max", "var") else None      # saved for these two only
        if n.attr == "sum":
            return [f"for j in range({w}):", f"    {target} += g{i}"]
        if n.attr == "mean":
            return [f"e{i} = g{i} / {cnt}", f"for j in range({w}):", f"    {target} += e{i}"]
        if n.attr == "max":
            return ["j = 0", f"b{i} = {x}", f"i{i} = 0", f"for j in range(1, {w}):", f"    if {x} > b{i}:",
                    f"        b{i} = {x}", f"        i{i} = j", f"j = i{i}", f"{target} += g{i}"]
        mean = p.mean_of.get(a.id)
        if mean is not None and mean.id in p.kept:
            lines = [f"m{i} = {self.bval(mean, loop)}"]       # kept by forward (the same number)
        else:
            lines = [f"s{i} = k0", f"for j in range({w}):", f"    s{i} += {x}", f"m{i} = s{i} / {cnt}"]
        return lines + [f"e{i} = (g{i} + g{i}) / {cnt}", f"for j in range({w}):", f"    {target} += e{i} * ({x} - m{i})"]

    def forward_pass(self, phase: int) -> None:
        p = self.p
        for width, nodes in p.passes(phase):
            key = (phase, width)
            loop, body = _Loop(), []
            for n in nodes:
                if n.op in ROOT_OPS:
                    row = OUT if n.op == "out" else f"N{n.attr}"
                    body.append(f"{loop.b(row)}[j] = {self.fval(n.args[0], key, loop)}")
                    continue
                if n.op == "reduce":
                    body += self.reduce_forward(n, key, loop)
                else:
                    body.append(f"v{n.id} = {self.fexpr(n, key, loop)}")
                if n.id in p.stored:
                    body.append(f"E{n.id}[b] = v{n.id}" if width == ROW else f"{loop.b(f'E{n.id}')}[j] = v{n.id}")
                if n.id in p.in_place:
                    if p.saved:
                        # inference (keep=False) reads nothing back: xp stays read-only
                        body += ["if keep:", f"    {self.in_place(n, loop)} = v{n.id}"]
                    else:
                        body.append(f"{self.in_place(n, loop)} = v{n.id}")
            if width == ROW:
                self.src(f"# phase {phase}, one value per row: {', '.join(_describe(p, n) for n in nodes)}")
                self.emit_rows(loop, body)
            else:
                self.src(f"# phase {phase}: {', '.join(_describe(p, n) for n in nodes)}")
                self.emit_loop(_width(p, width), loop, body)

    def in_place(self, n: Node, loop: _Loop) -> str:
        """Where a kept sum is written over its hoisted product (Plan._rematerialise)."""
        grp, blk = self.p.in_place[n.id]
        return f"{loop.tb(grp.name)}[{_offset(blk)}]"

    def recompute_pass(self, phase: int) -> None:
        """Backward's step first computes again, phase by phase, the values it reads that
        forward did not keep (Plan._rematerialise), from the kept ones: forward's passes
        restricted to those nodes, the ones read elsewhere held in per-step arrays E<id>."""
        p = self.p
        for width, nodes in p.passes(phase):
            nodes = [n for n in nodes if n.id in p.recomputed and n.id not in p.inline]
            if not nodes:
                continue
            key = (phase, width)
            loop, body = _Loop(), []
            self.registers = {n.id for n in nodes}
            for n in nodes:
                body.append(f"v{n.id} = {self.fexpr(n, key, loop)}")
                if n.id in p.held:
                    body.append(f"{loop.b(f'E{n.id}')}[j] = v{n.id}")
            self.src(f"# phase {phase} again: {', '.join(_describe(p, n) for n in nodes)}")
            self.emit_loop(_width(p, width), loop, body, skip_padded=True)

    def saved_views(self, step: str) -> None:
        """Emit the step's views of what forward keeps: the previous states (P), the saved
        values (E) and sums (M) at index `step` of their (T, B, ...) arrays."""
        p, s = self.p, self.src
        for k in p.saved_prev:
            s(f"P{k} = SP{k}[{step}]")
        for n in p.saved_nodes:
            s(f"E{n.id} = SV{n.id}[{step}]")
        for g in p.saved_groups:
            s(f"M{g.index} = SM{g.index}[{step}]")

    def left_array(self, grp: Group) -> str:
        left = grp.left
        if left.op == "prev":
            return f"P{left.attr}" if left.attr in self.p.materialized_prev else f"S{left.attr}"
        return f"E{left.id}"

    def forward(self) -> None:
        p, s = self.p, self.src
        self.forward_mode = True
        s("@njit(**KERNEL_OPTIONS)")
        s(f"def cell_forward({', '.join(self.forward_args())}):")
        s.indent()
        s('"""Rows b0..b1 of every step. S0.. hold the initial states and end as the final ones;')
        s("out and the saved arrays are filled (see the module docstring)." + '"""')
        self.prologue()
        for g in p.groups:
            s(f"Wp{g.index} = packed(W{g.index})      # for rows_matmul, packed by this worker")
        # per-step arrays that are not saved are scratch rows (B, width) of this call
        for k in range(p.n_states):
            s(f"N{k} = np.empty((B, u), dt)")
        if p.has_output:
            s(f"{OUT} = np.empty((B, u), dt)")
        for k in p.materialized_prev:
            if k not in p.saved_prev:
                s(f"P{k} = np.empty((B, u), dt)")
        for n in p.elementwise:
            if n.id in p.stored and n.id not in p.kept or n.id in p.in_place and n.id in p.cross:
                s(f"E{n.id} = np.empty({_row_shape(p, n.width)}, dt)")
        for g in p.groups:
            if g.index not in p.saved_group_ids:
                s(f"M{g.index} = np.empty((B, {len(g.nodes)} * u), dt)")
        s("for s in range(T):")
        s.indent()
        s("t = T - 1 - s if backwards else s")
        if p.saved:
            s("k = t if keep else 0")
        self.saved_views("k")
        if p.materialized_prev:
            s("# the previous states this step reads (the first one with recurrent dropout)")
            s(ROWS)
            s.indent()
            for k in p.materialized_prev:
                s(f"S{k}_b = S{k}[b]")
                s(f"P{k}_b = P{k}[b]")
                if k == 0:
                    s("if rmask.shape[0] == 0:")
                    s("    for j in range(u):")
                    s("        P0_b[j] = S0_b[j]")
                    s("else:")
                    s("    rm_b = rmask[b]")
                    s("    for j in range(u):")
                    s("        P0_b[j] = S0_b[j] * rm_b[j]")
                else:
                    s("for j in range(u):")
                    s(f"    P{k}_b[j] = S{k}_b[j]")
            s.dedent()
        for phase in range(p.n_phases):
            for g in p.groups_in_phase[phase]:
                s(f"# {_describe_group(p, g)}")
                s(f"rows_matmul({self.left_array(g)}[b0:b1], W{g.index}, Wp{g.index}, M{g.index}[b0:b1])")
            self.forward_pass(phase)
        s("# commit the new states (a padded step keeps the old ones) and emit the output")
        s(ROWS)
        s.indent()
        s(f"real = {_real()}")
        s("if real:")
        s.indent()
        for k in range(p.n_states):
            s(f"S{k}_b = S{k}[b]")
            s(f"N{k}_b = N{k}[b]")
            s("for j in range(u):")
            s(f"    S{k}_b[j] = N{k}_b[j]")
        s.dedent()
        s("o_b = out[s, b]")
        if p.has_output:
            # as Keras: a padded step repeats the previous output (zeros before the first step)
            s("if real:")
            s(f"    {OUT}_b = {OUT}[b]")
            s("    for j in range(u):")
            s(f"        o_b[j] = {OUT}_b[j]")
            s("elif zero_output or s == 0:")
            s("    for j in range(u):")
            s("        o_b[j] = k0")
            s("else:")
            s("    p_b = out[s - 1, b]")
            s("    for j in range(u):")
            s("        o_b[j] = p_b[j]")
        else:
            s("S0_b = S0[b]")
            s("if real or not zero_output:")
            s("    for j in range(u):")
            s("        o_b[j] = S0_b[j]")
            s("else:")
            s("    for j in range(u):")
            s("        o_b[j] = k0")
        s.dedent(3)

    # --- backward -----------------------------------------------------------------------
    def bval(self, n: Node, loop: _Loop) -> str:
        p = self.p
        value = self.leaf(n, loop)
        if value is not None:
            return value
        if n.op == "prev":
            return f"{loop.tb(f'SP{n.attr}')}[j]"
        if n.op == "matmul":
            grp, blk = p.block[n.id]
            arr = grp.name if grp.hoisted else f"SM{grp.index}"
            return f"{loop.tb(arr)}[{_offset(blk)}]"
        if n.id in p.inline:
            return f"v{n.id}"
        if n.id in p.recomputed:
            return f"{loop.b(f'E{n.id}')}[j]"
        if n.id in p.in_place:
            return self.in_place(n, loop)
        if n.width == ROW:
            return loop.tb(f"SV{n.id}")
        return f"{loop.tb(f'SV{n.id}')}[j]"

    def badj(self, n: Node, key, loop: _Loop) -> str | None:
        """Where the backward pass `key` adds to n's adjoint: its register in that pass, its
        array, or, for a per-row value in a wider pass, a sum over the loop (_Loop.acc)."""
        p = self.p
        if n.op == "const" or p.skip_push(n):
            return None
        if n.op == "vec":
            return f"{loop.b(f'dV{p.vec_slot[n.attr]}')}[j]"
        if n.op == "input":
            return f"{loop.tb(f'dXl{n.attr}')}[j]"
        if n.op == "prev":
            return f"{loop.b(f'dP{n.attr}')}[j]"
        if n.op == "matmul":
            grp, blk = p.block[n.id]
            arr = f"d{grp.name}" if grp.hoisted else f"dM{grp.index}"
            return f"{loop.tb(arr)}[{_offset(blk)}]"
        if p.pass_of[n.id] == key:
            return f"g{n.id}"
        if n.width == ROW:
            return f"A{n.id}[b]" if key[1] == ROW else loop.acc(n.id)
        return f"{loop.b(f'A{n.id}')}[j]"

    def backward_pass(self, phase: int) -> None:
        p = self.p
        for width, nodes in reversed(p.passes(phase)):
            key = (phase, width)
            loop, body = _Loop(), []
            self.registers = {n.id for n in nodes if n.id in p.inline}
            for n in nodes:
                if n.id in p.inline:
                    body.append(f"v{n.id} = {self.fexpr(n, key, loop)}")
            for n in nodes:
                init = []
                if n.id in p.cross:
                    init.append(f"A{n.id}[b]" if width == ROW else f"{loop.b(f'A{n.id}')}[j]")
                if n.op == "new":
                    init.append(f"{loop.b(f'dS{n.attr}')}[j]")
                elif n.op == "out":
                    init.append(f"{loop.b('dOa')}[j]")
                body.append(f"g{n.id} = {' + '.join(init) if init else p.const(0.0)}")
            for n in reversed(nodes):
                if n.op == "reduce":
                    body += self.reduce_backward(n, key, loop)
                    continue
                for arg, term in contributions(n):
                    target = self.badj(arg, key, loop)
                    if target is None:
                        continue
                    expr = render(term, lambda v: self.bval(v, loop), lambda a: f"g{a.id}", p.const)
                    body.append(f"{target} += {expr}")
            if width == ROW:
                self.src(f"# phase {phase} backward, one value per row: "
                         f"{', '.join(_describe(p, n) for n in reversed(nodes))}")
                self.emit_rows(loop, body, skip_padded=True)
            else:
                self.src(f"# phase {phase} backward: {', '.join(_describe(p, n) for n in reversed(nodes))}")
                self.emit_loop(_width(p, width), loop, body, skip_padded=True)

    def backward(self) -> None:
        p, s = self.p, self.src
        self.forward_mode = False
        s("@njit(**KERNEL_OPTIONS)")
        s(f"def cell_backward({', '.join(self.backward_args())}):")
        s.indent()
        s('"""Rows b0..b1, back through the steps. dS0.. hold the final-state gradients and end as')
        s("the initial-state ones. The per-step gradient arrays (dxp, dXl, dM) are written step by")
        s("step, their rows zeroed first; dV (zeros on entry) is added to." + '"""')
        self.prologue()
        for g in p.groups:
            s(f"WTp{g.index} = packed(WT{g.index})    # for rows_matmul, packed by this worker")
            s(f"tmp{g.index} = np.empty((B, {_width(p, g.left.width)}), dt)")
        for n in p.elementwise:
            if n.id in p.cross:
                s(f"A{n.id} = np.empty({_row_shape(p, n.width)}, dt)")
        for k in p.prevs:
            s(f"dP{k} = np.empty((B, u), dt)")
        s("#@SCRATCH@")
        held = [n for n in p.elementwise if n.id in p.held]
        if held:
            s("# the values computed again at each step (not kept by forward) that are read across passes")
        for n in held:
            s(f"E{n.id} = np.empty({_row_shape(p, n.width)}, dt)")
        if p.has_output:
            s("dOa = np.empty((B, u), dt)     # this step's output adjoint")
            s("dOc = np.zeros((B, u), dt)     # carried back through padded steps that repeat an output")
        s("for s in range(T - 1, -1, -1):")
        s.indent()
        s("t = T - 1 - s if backwards else s")
        per_step = [f"d{g.name}" for g in p.hoisted] + [f"dXl{k}" for k in p.loop_inputs] \
            + [f"dM{g.index}" for g in p.groups if g.index not in p.alias]
        if per_step:
            s("# this step's rows of the per-step gradients start at zero, in cache, then are added to")
            for name in per_step:
                s(f"{name}[t, b0:b1] = k0")
        if p.has_output:
            s("# the output of this step: its own at a real step, at a padded one the previous")
            s("# step's repeated (or zeros), whose adjoint is carried back to it")
            s(ROWS)
            s("    do_b = dout[s, b]")
            s("    dOc_b = dOc[b]")
            s(f"    if {_real()}:")
            s("        dOa_b = dOa[b]")
            s("        for j in range(u):")
            s("            dOa_b[j] = do_b[j] + dOc_b[j]")
            s("            dOc_b[j] = k0")
            s("    elif not zero_output:")
            s("        for j in range(u):")
            s("            dOc_b[j] += do_b[j]")
        else:
            s("# the output of this step was the first state (or zeros at a masked step)")
            s(ROWS)
            s(f"    if {_real()} or not zero_output:")
            s("        dS0_b = dS0[b]")
            s("        do_b = dout[s, b]")
            s("        for j in range(u):")
            s("            dS0_b[j] += do_b[j]")
        buffers = [(f"A{n.id}", n.width) for n in p.elementwise if n.id in p.cross]
        buffers += [(f"dP{k}", U) for k in p.prevs]
        if buffers:
            s("# adjoints gathered across passes start at zero every step")
            s(ROWS)
            s.indent()
            for name, width in buffers:
                if width == ROW:
                    s(f"{name}[b] = k0")
                    continue
                s(f"{name}_b = {name}[b]")
                s(f"for j in range({_width(p, width)}):")
                s(f"    {name}_b[j] = k0")
            s.dedent()
        if p.recomputed:
            s("# what forward did not keep, computed again from what it kept (the step's views)")
            self.saved_views("t")
            for phase in range(p.n_phases):
                self.recompute_pass(phase)
        for phase in reversed(range(p.n_phases)):
            self.backward_pass(phase)
            for g in p.groups_in_phase[phase]:
                left = g.left
                target = f"dP{left.attr}" if left.op == "prev" else f"A{left.id}"
                s(f"# {_describe_group(p, g)}: its left side's adjoint gets dM @ W^T")
                s(f"rows_matmul({p.dM_name(g)}[t, b0:b1], WT{g.index}, WTp{g.index}, tmp{g.index}[b0:b1])")
                s(ROWS)
                s(f"    tmp_b = tmp{g.index}[b]")
                s(f"    tgt_b = {target}[b]")
                s(f"    for j in range({_width(p, left.width)}):")
                s("        tgt_b[j] += tmp_b[j]")
        s("# hand the adjoints of the previous states to the step before (padded rows pass theirs on)")
        s(ROWS)
        s.indent()
        s(f"if {_real()}:")
        s.indent()
        for k in range(p.n_states):
            s(f"dS{k}_b = dS{k}[b]")
            if k not in p.prevs:
                s("for j in range(u):")
                s(f"    dS{k}_b[j] = k0")
                continue
            s(f"dP{k}_b = dP{k}[b]")
            if k == 0:
                s("if rmask.shape[0] == 0:")
                s("    for j in range(u):")
                s("        dS0_b[j] = dP0_b[j]")
                s("else:")
                s("    rm_b = rmask[b]")
                s("    for j in range(u):")
                s("        dS0_b[j] = dP0_b[j] * rm_b[j]")
            else:
                s("for j in range(u):")
                s(f"    dS{k}_b[j] = dP{k}_b[j]")
        s.dedent(4)


def _describe(p: Plan, n: Node) -> str:
    cell = p.cell
    if n.op == "new":
        return f"new {cell.states[n.attr]}"
    if n.op == "out":
        return "output"
    if n.op == "reduce":
        return f"{n.attr}#{n.id}"
    return f"{n.op}{'(' + n.attr + ')' if n.op == 'func' else ''}#{n.id}"


def _describe_group(p: Plan, g: Group) -> str:
    cell = p.cell
    return f"{expr_text(cell, g.left, 3)} @ [{' | '.join(cell.weights[w].name for w in g.weights)}]"


_PRECEDENCE = {"add": 1, "sub": 1, "mul": 2, "div": 2, "matmul": 2, "neg": 3}
_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def expr_text(cell, n: Node, outer: int = 0) -> str:
    """The node as an expression of the cell's names (results by their equation's name)."""
    name = cell.names.get(n.id)
    if name is not None:
        return name
    if n.op == "const":
        return f"{n.attr:g}"
    if n.op == "input":
        return cell.inputs[n.attr]
    if n.op == "prev":
        return cell.states[n.attr]
    if n.op == "vec":
        return cell.weights[n.attr].name
    if n.op == "func":
        inner = expr_text(cell, n.args[0])
        return inner if BY_NAME[n.attr].identity else f"{n.attr}({inner})"
    if n.op == "reduce":
        return f"{n.attr}({expr_text(cell, n.args[0])})"
    prec = _PRECEDENCE.get(n.op, 0)
    if n.op == "matmul":
        text = f"{expr_text(cell, n.args[0], 3)} @ {cell.weights[n.attr].name}"
    elif n.op == "neg":
        text = f"-{expr_text(cell, n.args[0], prec)}"
    else:
        a, b = n.args
        text = f"{expr_text(cell, a, prec)} {_SYMBOL[n.op]} {expr_text(cell, b, prec + 1)}"
    return f"({text})" if prec < outer else text


HEADER = '''"""Generated by rnndsl from `cell {name}` ({states}; inputs {inputs}). Do not edit.

{equations}

cell_forward({fargs})
cell_backward({bargs})

Constants k0, k1, ...: {consts}
Products hoisted out of the time loop (the caller computes them over all steps):
{hoisted}
Products per step (fused by left side):
{groups}
Saved for backward (T, B, width) each: {saved}
Kept over their product's block of xp: {in_place}
Computed again by backward at each step: {recomputed}
Gradients after the loop (the caller): dW of a hoisted product = X^T dxp, dW of a
per-step product = (its saved left side)^T dM, over all steps at once.{shared}
"""

import numpy as np
from numba import njit

# elementwise.py, activations.py and packed.py {activations}: numba's cache checks only this file, so their hash is part of the name
from rnndsl.kernels.cpu.activations import (
    KERNEL_OPTIONS, {functions},
)
from rnndsl.kernels.cpu.packed import packed, rows_matmul

'''


def generate(plan: Plan) -> str:
    """The module source: cell_forward and cell_backward, numba-compiled with cache=True."""
    gen = _Gen(plan)
    gen.forward()
    fwd_lines = gen.src.lines
    gen.src = _Src()
    gen.src()
    gen.src()
    gen.backward()
    body = "\n".join(fwd_lines + gen.src.lines)
    consts = "\n".join(f"    k{i} = consts[{i}]" for i in range(len(plan.consts)))
    body = body.replace("    #@CONSTS@", consts)
    scratch = "\n".join(f"    {name} = np.empty((B, {w}), dt)" for name, w in gen.scratch.items())
    body = body.replace("    #@SCRATCH@\n", scratch + "\n" if scratch else "")
    cell = plan.cell
    shared = []
    for gi, h in plan.alias.items():
        shared.append(f"{_describe_group(plan, plan.groups[gi])} shares its adjoint with {_describe_group(plan, h)} (dM = d{h.name})")
    for slot, (kind, grp, blk) in plan.vec_from.items():
        arr = f"d{grp.name}" if kind == "xp" else f"dM{grp.index}"
        shared.append(f"d{cell.weights[plan.vecs[slot]].name} = column sum of {arr} block {blk}")
    lines = [line.rstrip() for line in cell.equations]
    indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
    header = HEADER.format(
        activations=_activations_digest(),
        functions=", ".join(kernel_functions()),
        name=cell.name,
        states=("states " if len(cell.states) > 1 else "state ") + ", ".join(cell.states),
        inputs=", ".join(cell.inputs),
        equations="\n".join("    " + line[indent:] for line in lines),
        fargs=", ".join(gen.forward_args()),
        bargs=", ".join(gen.backward_args()),
        consts=", ".join(repr(c) for c in plan.consts),
        hoisted="\n".join(f"    {_describe_group(plan, g)}" for g in plan.hoisted) or "    (none)",
        groups="\n".join(f"    phase {g.phase}: {_describe_group(plan, g)}" for g in plan.groups) or "    (none)",
        saved=", ".join(gen.saved_name(k) for k in plan.saved) or "nothing",
        in_place=", ".join(f"#{i} in {g.name} block {blk}" for i, (g, blk) in plan.in_place.items()) or "nothing",
        recomputed=", ".join(_describe(plan, n) for n in plan.elementwise if n.id in plan.recomputed) or "nothing",
        shared="".join(f"\n  {x}" for x in shared) and ("\nShared adjoints:" + "".join(f"\n    {x}" for x in shared)),
    )
    return header + body


def _activations_digest() -> str:
    """A hash of the helpers the kernels inline (the element-wise table, activations, packed
    products): editing them changes every generated module."""
    import hashlib

    from .. import elementwise
    from ..kernels.cpu import activations, packed

    h = hashlib.sha256()
    for mod in (elementwise, activations, packed):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:16]
