"""Generate numba.cuda kernels for a cell step from the same schedule (Plan) as the CPU kernels.

Per processing step s (input time t, next time tn, -1 past the end):

    forward:  for each phase p: the per-step products of phase p, one device GEMM each
              (M_g[t] = left[t] @ W_g); where the phase has values of one per row
              (reductions and arithmetic on them), the kernel row_p with one thread
              per batch row, each reduction a loop over the row's units, storing
              E_n[t, b]; then ONE generated kernel fwd_p with one thread per (batch
              row b, unit j) computing every units-wide node of phase p, storing each
              into E_n[t] (what backward and later phases read), committing new states
              (a padded step keeps the old ones), writing out[s] (the first state, or
              the output of `output = ...`: at a padded step the previous output, zeros
              first, as Keras) and already the next step's (dropped) previous state SP_k[tn].
    backward: for each phase p, last first: ONE generated kernel bwd_p pushing the
              adjoints of the phase's units-wide nodes to their arguments
              (autodiff.contributions), then rbwd_p (one thread per row) for its per-row
              values, then for each per-step product of phase p: d(left) += dM_g[t] @ W_g^T
              (a GEMM accumulating in place). The last phase's kernel starts the step:
              it hands the previous-state adjoints dP of the step undone before to dS
              (times the recurrent-dropout mask for the first state), adds dout[s] (to
              the output's adjoint dOa, carried back through padded steps in dOc, for a
              cell with its own output) and zeroes the step's adjoint buffers.

Every thread touches only its own (b, j) entries of the (B, u) buffers, so the
in-place updates are race-free; no shared memory, no warp intrinsics, no scalar
min/max. A per-row value's adjoint from units-wide nodes is written per thread
into C_n[b, j] and summed over j by its row kernel (no atomics); from other row
kernels it is added to A_n[b]. Adjoints of products (dxp_g, dM_g) and of vector
weights (dV, per row) accumulate in zero-initialised arrays; the weight gradients
are batched GEMMs over all steps afterwards (rnndsl/runtime/cuda/cells.py).

Supported: cells whose element-wise nodes are all `units` wide and whose inputs
are read only through products `x @ W`. `unsupported(cell)` names anything else.
"""

from __future__ import annotations

from ..elementwise import BY_NAME, cell_source
from .autodiff import contributions
from .codegen import PASS_OPS, ROOT_OPS, Plan, _describe
from .compiler import plan as compiled_plan
from ..layers.cells.expr import ROW, U



def unsupported(cell) -> str | None:
    """Why the CUDA engine cannot run this cell, or None."""
    plan = compiled_plan(cell)
    for n in plan.nodes:
        if n.op in PASS_OPS and n.width not in (U, None, ROW):
            return (f"cell {cell.name}: element-wise operations on input features "
                    f"({_describe(plan, n)}) have no CUDA kernels yet")
        if n.op == "func" and BY_NAME[n.attr].cuda_forward is None:
            return f"cell {cell.name}: function {n.attr} has no CUDA kernel"
    if plan.loop_inputs:
        return (f"cell {cell.name}: inputs read outside a product "
                f"({', '.join(cell.inputs[k] for k in plan.loop_inputs)}) have no CUDA kernels yet")
    return None


def stored_nodes(plan: Plan) -> list:
    """Values kept per step in (T, B, u) arrays E_n ((T, B) for one value per row): those
    backward reads (plan.needed) and those read by another pass, a product or a reduction
    (plan.cross)."""
    return [n for n in plan.elementwise if n.op not in ROOT_OPS and (n.id in plan.needed or n.id in plan.cross)]


def phase_has_nodes(plan: Plan, phase: int) -> bool:
    """Whether a phase has units-wide work (the last always has: the new states; empty ones
    launch nothing)."""
    return phase == plan.n_phases - 1 or any(n.width != ROW for n in plan.elementwise_in_phase[phase])


def phase_has_rows(plan: Plan, phase: int) -> bool:
    """Whether a phase has values of one per row (a row kernel)."""
    return any(n.width == ROW for n in plan.elementwise_in_phase[phase])


class _Src:
    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, line: str = "", depth: int = 0) -> None:
        self.lines.append(("    " * depth + line) if line else "")


class CudaGen:
    def __init__(self, plan: Plan):
        self.p = plan
        self.consts: list[float] = [0.0, 1.0]
        self._const_at: dict[float, int] = {0.0: 0, 1.0: 1}
        self.enodes = stored_nodes(plan)
        self.stored = {n.id for n in self.enodes}

    # --- names --------------------------------------------------------------------------
    def const(self, v: float) -> str:
        k = self._const_at.get(v)
        if k is None:
            k = len(self.consts)
            self.consts.append(v)
            if v == v:
                self._const_at[v] = k
        return f"K{k}"

    def data_args(self) -> list[str]:
        p = self.p
        return ([f"xp{g.index}" for g in p.hoisted] + [f"M{g.index}" for g in p.groups]
                + [f"V{i}" for i in range(len(p.vecs))] + [f"SP{k}" for k in range(p.n_states)]
                + [f"E{n.id}" for n in self.enodes])

    def forward_args(self) -> list[str]:
        return (["s", "t", "tn", "mask", "rmask", "zero_out"] + self.data_args()
                + [f"S{k}" for k in range(self.p.n_states)] + ["out"])

    def backward_args(self) -> list[str]:
        p = self.p
        return (["s", "t", "prev", "first", "mask", "rmask", "zero_out"] + self.data_args() + ["dout"]
                + [f"dS{k}" for k in range(p.n_states)] + [f"dP{k}" for k in range(p.n_states)]
                + [f"A{n.id}" for n in self.cross()] + [f"C{n.id}" for n in self.cross_rows()]
                + (["dOa", "dOc"] if p.has_output else [])
                + [f"dxp{g.index}" for g in p.hoisted]
                + [f"dM{g.index}" for g in p.groups] + [f"dV{i}" for i in range(len(p.vecs))])

    def handoff_args(self) -> list[str]:
        n = self.p.n_states
        return ["prev", "mask", "rmask"] + [f"dS{k}" for k in range(n)] + [f"dP{k}" for k in range(n)]

    def cross(self):
        """Stored values whose adjoint is gathered across kernels: A_n, (B, u) or (B,)."""
        return [n for n in self.enodes if n.id in self.p.cross]

    def cross_rows(self):
        """Per-row values among them, whose adjoint from units-wide kernels goes to C_n (B, u)."""
        return [n for n in self.cross() if n.width == ROW]

    @staticmethod
    def off(blk: int) -> str:
        return "j" if blk == 0 else f"{blk} * u + j"

    # --- values -------------------------------------------------------------------------
    def val(self, n, key) -> str:
        """How the forward kernel of pass `key` (phase, width class; None: backward) reads n."""
        p = self.p
        if n.op == "const":
            return self.const(n.attr)
        if n.op == "vec":
            return f"V{p.vec_slot[n.attr]}[j]"
        if n.op == "prev":
            return f"SP{n.attr}[t, b, j]"
        if n.op == "matmul":
            grp, blk = p.block[n.id]
            return f"{'xp' if grp.hoisted else 'M'}{grp.index}[t, b, {self.off(blk)}]"
        if n.op == "input":  # pragma: no cover - refused by unsupported()
            raise AssertionError("input read outside a product")
        if key is not None and p.pass_of[n.id] == key:
            return f"v{n.id}"
        if n.width == ROW:
            return f"E{n.id}[t, b]"
        return f"E{n.id}[t, b, j]"

    def fexpr(self, n, key) -> str:
        a = [self.val(x, key) for x in n.args]
        op = n.op
        if op in ("add", "sub", "mul", "div"):
            return f"({a[0]}) {dict(add='+', sub='-', mul='*', div='/')[op]} ({a[1]})"
        if op == "neg":
            return f"-({a[0]})"
        if op == "func":
            f = BY_NAME[n.attr]
            if f.identity:
                return a[0]
            # a kernel activation through the device dispatch, any other row in place
            return f"act({a[0]}, {f.code})" if f.code is not None else f"({cell_source(f.cuda_forward, a[0], self.const)})"
        raise AssertionError(op)  # pragma: no cover

    def term(self, t) -> str:
        kind = t[0]
        if kind == "val":
            return self.val(t[1], None)
        if kind == "adj":
            return f"g{t[1].id}"
        if kind == "num":
            return self.const(t[1])
        if kind == "neg":
            return f"-({self.term(t[1])})"
        if kind == "mul":
            return f"({self.term(t[1])}) * ({self.term(t[2])})"
        if kind == "div":
            return f"({self.term(t[1])}) / ({self.term(t[2])})"
        if kind == "dfn":
            f, y = BY_NAME[t[1]], self.term(t[2])
            return f"dact({y}, {f.code})" if f.code is not None else f"({cell_source(f.cuda_derivative, y, self.const)})"
        raise AssertionError(kind)  # pragma: no cover

    def target(self, n, key) -> str | None:
        """Where the backward kernel of pass `key` adds to n's adjoint."""
        p = self.p
        if n.op == "const":
            return None
        if n.op == "vec":
            return f"dV{p.vec_slot[n.attr]}[b, j]"
        if n.op == "prev":
            return f"dP{n.attr}[b, j]"
        if n.op == "matmul":
            grp, blk = p.block[n.id]
            return f"{'dxp' if grp.hoisted else 'dM'}{grp.index}[t, b, {self.off(blk)}]"
        if p.pass_of[n.id] == key:
            return f"g{n.id}"
        if n.width == ROW:
            return f"A{n.id}[b]" if key[1] == ROW else f"C{n.id}[b, j]"
        return f"A{n.id}[b, j]"

    # --- kernels ------------------------------------------------------------------------
    def loop_head(self, s: _Src, ref: str) -> None:
        s(f"u = {ref}.shape[1]", 1)
        s(f"for idx in range(cuda.grid(1), {ref}.shape[0] * u, cuda.gridsize(1)):", 1)
        s("b = idx // u", 2)
        s("j = idx - b * u", 2)

    def row_head(self, s: _Src, ref: str, reductions) -> None:
        """A loop over the batch rows, one thread each, with the units as a number (for means)."""
        s(f"u = {ref}.shape[1]", 1)
        s(f"for b in range(cuda.grid(1), {ref}.shape[0], cuda.gridsize(1)):", 1)
        if any(r.attr in ("mean", "var") for r in reductions):
            s("fu = K0", 2)
            s("for j in range(u):", 2)
            s("fu += K1", 3)

    def row_forward(self, s: _Src, n, key) -> None:
        """v<n> = mean/sum/max/var of n's argument over the row's units (as the CPU's)."""
        a, i = n.args[0], n.id
        x = self.val(a, key)
        if n.attr == "max":
            for line in ("j = 0", f"v{i} = {x}", "for j in range(1, u):", f"    if {x} > v{i}:", f"        v{i} = {x}"):
                s(line, 2)
            return
        for line in (f"s{i} = K0", "for j in range(u):", f"    s{i} += {x}"):
            s(line, 2)
        if n.attr == "sum":
            s(f"v{i} = s{i}", 2)
            return
        s(f"m{i} = s{i} / fu", 2)
        if n.attr == "mean":
            s(f"v{i} = m{i}", 2)
            return
        for line in (f"q{i} = K0", "for j in range(u):", f"    d{i} = {x} - m{i}", f"    q{i} += d{i} * d{i}",
                     f"v{i} = q{i} / fu"):
            s(line, 2)

    def row_kernel(self, s: _Src, phase: int) -> None:
        p = self.p
        key = (phase, ROW)
        nodes = [n for n in p.elementwise_in_phase[phase] if n.width == ROW]
        s("@cuda.jit")
        s(f"def row{phase}({', '.join(self.forward_args())}):")
        s(f'"""Phase {phase}, one value per row: {", ".join(_describe(p, n) for n in nodes)}."""', 1)
        self.row_head(s, "S0", [n for n in nodes if n.op == "reduce"])
        for n in nodes:
            if n.op == "reduce":
                self.row_forward(s, n, key)
            else:
                s(f"v{n.id} = {self.fexpr(n, key)}", 2)
            if n.id in self.stored:
                s(f"E{n.id}[t, b] = v{n.id}", 2)
        s()

    def forward_kernel(self, s: _Src, phase: int) -> None:
        p = self.p
        key = (phase, U)
        nodes = [n for n in p.elementwise_in_phase[phase] if n.width != ROW]
        s("@cuda.jit")
        s(f"def fwd{phase}({', '.join(self.forward_args())}):")
        s(f'"""Phase {phase}: {", ".join(_describe(p, n) for n in nodes) or "nothing"}."""', 1)
        self.loop_head(s, "S0")
        s("real = mask.shape[0] == 0 or mask[t, b] != 0", 2)
        for n in nodes:
            if n.op == "out":
                # as Keras: a padded step repeats the previous output (zeros before the first)
                s(f"ov = {self.val(n.args[0], key)}", 2)
                s("if real:", 2)
                s("out[s, b, j] = ov", 3)
                s("elif zero_out or s == 0:", 2)
                s("out[s, b, j] = K0", 3)
                s("else:", 2)
                s("out[s, b, j] = out[s - 1, b, j]", 3)
                continue
            if n.op == "new":
                k = n.attr
                s("if real:", 2)
                s(f"S{k}[b, j] = {self.val(n.args[0], key)}", 3)
                s(f"nv = S{k}[b, j]", 2)
                if k == 0 and not p.has_output:
                    s("out[s, b, j] = nv if (real or not zero_out) else K0", 2)
                s("if tn >= 0:", 2)
                s(f"SP{k}[tn, b, j] = nv * rmask[b, j] if rmask.shape[0] > 0 else nv" if k == 0
                  else f"SP{k}[tn, b, j] = nv", 3)
                continue
            s(f"v{n.id} = {self.fexpr(n, key)}", 2)
            if n.id in self.stored:
                s(f"E{n.id}[t, b, j] = v{n.id}", 2)
        s()

    def backward_kernel(self, s: _Src, phase: int) -> None:
        p = self.p
        key = (phase, U)
        nodes = [n for n in p.elementwise_in_phase[phase] if n.width != ROW]
        s("@cuda.jit")
        s(f"def bwd{phase}({', '.join(self.backward_args())}):")
        s(f'"""Phase {phase} backward: {", ".join(_describe(p, n) for n in reversed(nodes)) or "nothing"}."""', 1)
        self.loop_head(s, "dS0")
        s("real = mask.shape[0] == 0 or mask[t, b] != 0", 2)
        s("if first:", 2)
        s("# hand the previous-state adjoints of the step undone before to dS, start this step", 3)
        s("if prev >= 0 and (mask.shape[0] == 0 or mask[prev, b] != 0):", 3)
        for k in range(p.n_states):
            if k == 0:
                s("dS0[b, j] = dP0[b, j] * rmask[b, j] if rmask.shape[0] > 0 else dP0[b, j]", 4)
            else:
                s(f"dS{k}[b, j] = dP{k}[b, j]", 4)
        if p.has_output:
            s("if real:", 3)
            s("dOa[b, j] = dout[s, b, j] + dOc[b, j]", 4)
            s("dOc[b, j] = K0", 4)
            s("elif not zero_out:", 3)
            s("dOc[b, j] += dout[s, b, j]", 4)
        else:
            s("if real or not zero_out:", 3)
            s("dS0[b, j] += dout[s, b, j]", 4)
        for k in range(p.n_states):
            s(f"dP{k}[b, j] = K0", 3)
        for n in self.cross():
            if n.width == ROW:
                s(f"C{n.id}[b, j] = K0", 3)
                s("if j == 0:", 3)
                s(f"A{n.id}[b] = K0", 4)
            else:
                s(f"A{n.id}[b, j] = K0", 3)
        s("if real:", 2)
        if not nodes:
            s("pass", 3)
        for n in nodes:
            init = []
            if n.id in p.cross:
                init.append(f"A{n.id}[b, j]")
            if n.op == "new":
                init.append(f"dS{n.attr}[b, j]")
            elif n.op == "out":
                init.append("dOa[b, j]")
            s(f"g{n.id} = {' + '.join(init) if init else self.const(0.0)}", 3)
        for n in reversed(nodes):
            for arg, term in contributions(n):
                tgt = self.target(arg, key)
                if tgt is not None:
                    s(f"{tgt} += {self.term(term)}", 3)
        s()

    def row_backward(self, s: _Src, n, key) -> None:
        """g<n> * d(reduction)/d(argument)_j added to the argument's adjoint (as the CPU's)."""
        a, i = n.args[0], n.id
        tgt = self.target(a, key)
        if tgt is None:
            return
        x = self.val(a, None)
        if n.attr == "sum":
            lines = ["for j in range(u):", f"    {tgt} += g{i}"]
        elif n.attr == "mean":
            lines = [f"e{i} = g{i} / fu", "for j in range(u):", f"    {tgt} += e{i}"]
        elif n.attr == "max":
            lines = ["j = 0", f"b{i} = {x}", f"i{i} = 0", "for j in range(1, u):", f"    if {x} > b{i}:",
                     f"        b{i} = {x}", f"        i{i} = j", f"j = i{i}", f"{tgt} += g{i}"]
        else:
            lines = [f"s{i} = K0", "for j in range(u):", f"    s{i} += {x}", f"m{i} = s{i} / fu",
                     f"e{i} = (g{i} + g{i}) / fu", "for j in range(u):", f"    {tgt} += e{i} * ({x} - m{i})"]
        for line in lines:
            s(line, 2)

    def row_backward_kernel(self, s: _Src, phase: int) -> None:
        p = self.p
        key = (phase, ROW)
        nodes = [n for n in p.elementwise_in_phase[phase] if n.width == ROW]
        s("@cuda.jit")
        s(f"def rbwd{phase}({', '.join(self.backward_args())}):")
        s(f'"""Phase {phase} backward, one value per row: {", ".join(_describe(p, n) for n in reversed(nodes))}."""', 1)
        self.row_head(s, "dS0", [n for n in nodes if n.op == "reduce"])
        s("if mask.shape[0] != 0 and mask[t, b] == 0:", 2)
        s("continue", 3)
        for n in nodes:
            if n.id in p.cross:
                s(f"g{n.id} = A{n.id}[b]", 2)
                s("for j in range(u):", 2)
                s(f"g{n.id} += C{n.id}[b, j]", 3)
            else:
                s(f"g{n.id} = {self.const(0.0)}", 2)
        for n in reversed(nodes):
            if n.op == "reduce":
                self.row_backward(s, n, key)
                continue
            for arg, term in contributions(n):
                tgt = self.target(arg, key)
                if tgt is not None:
                    s(f"{tgt} += {self.term(term)}", 2)
        s()

    def handoff_kernel(self, s: _Src) -> None:
        p = self.p
        s("@cuda.jit")
        s(f"def handoff({', '.join(self.handoff_args())}):")
        s('"""After the last step undone: dS = the adjoints of the initial states."""', 1)
        self.loop_head(s, "dS0")
        s("if prev >= 0 and (mask.shape[0] == 0 or mask[prev, b] != 0):", 2)
        for k in range(p.n_states):
            if k == 0:
                s("dS0[b, j] = dP0[b, j] * rmask[b, j] if rmask.shape[0] > 0 else dP0[b, j]", 3)
            else:
                s(f"dS{k}[b, j] = dP{k}[b, j]", 3)
        s()


HEADER = '''"""Generated by rnndsl from `cell {name}` for numba.cuda ({dtype}). Do not edit.

{equations}

Per step: phase kernels fwd0..fwd{last} (one thread per (batch row, unit)), each after the
device GEMMs of its per-step products and its per-row kernel row<p> (one thread per row),
if any; backward: bwd{last}..bwd0, each followed by rbwd<p> and d(left) += dM @ W^T;
handoff after the last step undone.
fwd*({fargs})
bwd*({bargs})
"""

import math

import numpy as np
from numba import cuda

from rnndsl.kernels.cuda.activations import build as _build

_A = _build(np.dtype("{dtype}"))
act, dact = _A.act, _A.dact
_ty = np.dtype("{dtype}").type
'''


def generate(cell, dtype) -> str:
    """The CUDA module source of a cell for one float type."""
    import numpy as np

    dtype = np.dtype(dtype).name
    p = compiled_plan(cell)
    gen = CudaGen(p)
    body = _Src()
    phases = [ph for ph in range(p.n_phases) if phase_has_nodes(p, ph)]
    row_phases = [ph for ph in range(p.n_phases) if phase_has_rows(p, ph)]
    for phase in row_phases:
        gen.row_kernel(body, phase)
    for phase in phases:
        gen.forward_kernel(body, phase)
    for phase in phases:
        gen.backward_kernel(body, phase)
    for phase in row_phases:
        gen.row_backward_kernel(body, phase)
    gen.handoff_kernel(body)
    lines = [line.rstrip() for line in cell.equations]
    indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
    head = HEADER.format(name=cell.name, dtype=dtype, last=p.n_phases - 1,
                         equations="\n".join("    " + line[indent:] for line in lines),
                         fargs=", ".join(gen.forward_args()), bargs=", ".join(gen.backward_args()))
    consts = "".join(f"K{i} = _ty(float({repr(c)!r}))\n" for i, c in enumerate(gen.consts))
    return head + consts + "\n\n" + "\n".join(body.lines) + "\n"
