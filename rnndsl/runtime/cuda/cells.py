"""rnn(cell(...)) on the CUDA engine: the host side of the generated kernels (cuda_codegen.py).

Forward:  xp_g = X_k @ [W | W' | ...] (+ nothing: biases are vector weights) over all
          steps, one GEMM per input; per step the phase GEMMs and kernels.
Backward: per step, from the last, the phase kernels and d(left) += dM @ W^T;
          afterwards dW = X_k^T dxp_g and (saved left side)^T dM_g, dX_k = dxp_g W^T
          (one GEMM each over all steps), vector-weight gradients as column sums.
Column blocks of the concatenated weights are split back into the cell's
weights, summed where one weight appears in several products.

Masks and dropout as on the CPU (runtime/cpu/rnn.py, rnndsl.runtime.cells): input
dropout drawn for the inputs' features joined, recurrent dropout on the first state.
"""

from __future__ import annotations

import numpy as np

from ..recurrent import dropout_masks, layer_outputs, start_state
from ...cells import cache, compiler
from ...cells.cuda_codegen import generate, phase_has_nodes, phase_has_rows, stored_nodes, unsupported
from ...layers.cells.expr import ROW

_built: dict = {}


def source(cell, dtype) -> str:
    return generate(cell, dtype)


def kernels(cell, dtype):
    """The loaded module of a cell's CUDA kernels (written through the cell cache folder)."""
    src = source(cell, dtype)
    key = cache.digest(src)
    mod = _built.get(key)
    if mod is None:
        mod = _built[key] = cache.load_module(src)
    return mod


def _time(s: int, T: int, backwards: bool) -> int:
    if s >= T:
        return -1
    return T - 1 - s if backwards else s


def _concat(eng, ws):
    if len(ws) == 1:
        return ws[0]
    rows = ws[0].shape[0]
    u = ws[0].shape[1]
    out = eng.empty((rows, u * len(ws)))
    for blk, w in enumerate(ws):
        eng.run(eng.k.put_cols, w.size, out, w, blk * u)
    return out


def run_cell_inputs(eng, spec, opts, W, xs, mask, ctx, init, backwards: bool, zero_out: bool):
    """Run the cell over the inputs xs (device (T, B, F_k) arrays): (out, final states, backprop)."""
    cell = opts["cell"]
    why = unsupported(cell)
    if why is not None:  # pragma: no cover - check_supported refuses the graph first
        from ...errors import DeviceError
        raise DeviceError(why + "; use device='cpu'")
    plan = compiler.plan(cell)
    mod = kernels(cell, eng.dtype)
    T, B = xs[0].shape[:2]
    u = opts["units"]
    widths = [x.shape[2] for x in xs]
    dmask, rmask = dropout_masks(opts, ctx, B, sum(widths), u, eng.dtype)
    if dmask is not None:
        cuts = np.cumsum([0] + widths)
        dms = [eng.upload(dmask[:, cuts[k]:cuts[k + 1]]) for k in range(len(xs))]
        xs = [eng.mul_bcast(x, m) for x, m in zip(xs, dms)]
    rm = eng.none2 if rmask is None else eng.upload(rmask)
    mk = eng.nomask if mask is None else mask
    n = B * u
    hoisted_W = [_concat(eng, [W[i] for i in g.weights]) for g in plan.hoisted]
    group_W = [_concat(eng, [W[i] for i in g.weights]) for g in plan.groups]
    xps = []
    for g, Wc in zip(plan.hoisted, hoisted_W):
        xp = eng.empty((T, B, Wc.shape[1]))
        eng.gemm(eng.rows(xs[g.left.attr]), Wc, eng.rows(xp))
        xps.append(xp)
    Ms = [eng.empty((T, B, Wc.shape[1])) for Wc in group_W]
    Vs = [W[i] for i in plan.vecs]
    SP = [eng.empty((T, B, u)) for _ in range(plan.n_states)]
    gen_enodes = stored_nodes(plan)
    E = {nd.id: eng.empty((T, B) if nd.width == ROW else (T, B, u)) for nd in gen_enodes}
    if init is None:
        S = [eng.zeros((B, u)) for _ in range(plan.n_states)]
    else:
        S = [eng.copy(a) for a in init]
    out = eng.empty((T, B, u))
    t0 = _time(0, T, backwards)
    for k in range(plan.n_states):
        eng.run(eng.cells.drop_state, n, SP[k], t0, S[k], rm if k == 0 else eng.none2)
    data = xps + Ms + Vs + SP + [E[nd.id] for nd in gen_enodes]

    def left(g, t):
        lf = g.left
        return SP[lf.attr][t] if lf.op == "prev" else E[lf.id][t]

    zo = int(zero_out)
    # each phase's products, found once (not a scan of every group at every phase and step)
    products = [[(g, group_W[g.index], Ms[g.index]) for g in plan.groups_in_phase[ph]] for ph in range(plan.n_phases)]
    for s in range(T):
        t, tn = _time(s, T, backwards), _time(s + 1, T, backwards)
        for phase in range(plan.n_phases):
            for g, Wc, M in products[phase]:
                eng.gemm(left(g, t), Wc, M[t])
            if phase_has_rows(plan, phase):
                eng.run(getattr(mod, f"row{phase}"), B, s, t, tn, mk, rm, zo, *data, *S, out)
            if phase_has_nodes(plan, phase):
                eng.run(getattr(mod, f"fwd{phase}"), n, s, t, tn, mk, rm, zo, *data, *S, out)
    final = tuple(S)

    def backprop(dout, dfinal):
        dS = [eng.zeros((B, u)) if (k >= len(dfinal) or dfinal[k] is None) else eng.copy(dfinal[k])
              for k in range(plan.n_states)]
        dP = [eng.zeros((B, u)) for _ in range(plan.n_states)]
        cross = [nd for nd in gen_enodes if nd.id in plan.cross]
        A = {nd.id: eng.zeros((B,) if nd.width == ROW else (B, u)) for nd in cross}
        # a per-row value's adjoint from the units-wide kernels, one entry per thread
        C = [eng.zeros((B, u)) for nd in cross if nd.width == ROW]
        # a cell's own output: this step's adjoint, and what padded steps carry back
        dO = [eng.zeros((B, u)), eng.zeros((B, u))] if plan.has_output else []
        dxps = [eng.zeros(xp.shape) for xp in xps]
        dMs = [eng.zeros(M.shape) for M in Ms]
        dVs = [eng.zeros((B, u)) for _ in Vs]
        grads_arrays = [dout] + dS + dP + [A[nd.id] for nd in cross] + C + dO + dxps + dMs + dVs
        prev = -1
        for s in range(T - 1, -1, -1):
            t = _time(s, T, backwards)
            for phase in range(plan.n_phases - 1, -1, -1):
                first = int(phase == plan.n_phases - 1)
                if phase_has_nodes(plan, phase):
                    eng.run(getattr(mod, f"bwd{phase}"), n, s, t, prev, first, mk, rm, zo, *data, *grads_arrays)
                if phase_has_rows(plan, phase):
                    eng.run(getattr(mod, f"rbwd{phase}"), B, s, t, prev, first, mk, rm, zo, *data, *grads_arrays)
                for g in plan.groups_in_phase[phase]:
                    lf = g.left
                    tgt = dP[lf.attr] if lf.op == "prev" else A[lf.id]
                    eng.gemm(dMs[g.index][t], group_W[g.index], tgt, tb=True, accumulate=True)
            prev = t
        eng.run(mod.handoff, n, prev, mk, rm, *dS, *dP)
        grads = [None] * len(W)

        def add_blocks(weight_ids, dWc):
            for blk, w in enumerate(weight_ids):
                if len(weight_ids) == 1:
                    part = dWc
                else:
                    part = eng.empty(W[w].shape)
                    eng.run(eng.k.take_cols, part.size, part, dWc, blk * u)
                grads[w] = part if grads[w] is None else eng.add(grads[w], part)

        dXs = [None] * len(xs)
        for g, Wc, dxp in zip(plan.hoisted, hoisted_W, dxps):
            k = g.left.attr
            d2 = eng.rows(dxp)
            dWc = eng.empty(Wc.shape)
            eng.gemm(eng.rows(xs[k]), d2, dWc, ta=True)
            add_blocks(g.weights, dWc)
            dX = eng.empty(xs[k].shape)
            eng.gemm(d2, Wc, eng.rows(dX), tb=True)
            dXs[k] = dX if dXs[k] is None else eng.add(dXs[k], dX)
        for g, Wc, dM in zip(plan.groups, group_W, dMs):
            lf = g.left
            saved = SP[lf.attr] if lf.op == "prev" else E[lf.id]
            dWc = eng.empty(Wc.shape)
            eng.gemm(eng.rows(saved), eng.rows(dM), dWc, ta=True)
            add_blocks(g.weights, dWc)
        for slot, dV in enumerate(dVs):
            w = plan.vecs[slot]
            grads[w] = eng.colsum(eng.empty(W[w].shape), dV)
        for w in range(len(W)):
            if grads[w] is None:
                grads[w] = eng.zeros(W[w].shape)
        for k, x in enumerate(xs):
            if dXs[k] is None:
                dXs[k] = eng.zeros(x.shape)
        if dmask is not None:
            dXs = [eng.mul_bcast(d, m) for d, m in zip(dXs, dms)]     # undo X = x * dmask
        return dXs, grads, tuple(dS)

    return out, final, backprop


def _joined_mask(eng, ins):
    """The inputs' masks ANDed as (device, host), as runtime/cpu/rnn.py joins a multi-input
    cell's inputs, or None."""
    masks = [a for a in ins if a.hmask is not None]
    if not masks:
        return None
    if len(masks) == 1:
        return masks[0].mask, masks[0].hmask
    h = masks[0].hmask
    for a in masks[1:]:
        h = h & a.hmask
    return eng.upload(h), h


def run_cell(eng, spec, opts, W, x, ctx, init, backwards, zero_out):
    """run_cell_inputs with the signature of every run_cell (runtime/cuda/recurrent.py, the CPU
    runners): one DAct input (bidirectional uses it); backprop returns (dX, grads, dinit)."""
    out, final, bp = run_cell_inputs(eng, spec, opts, W, [x.data], x.mask, ctx, init, backwards, zero_out)

    def backprop(dout, dfinal):
        dXs, grads, dinit = bp(dout, dfinal)
        return dXs[0], grads, dinit

    return out, final, backprop


def rnn_forward(ex, node, W, ins, ctx, init_state=None):
    """rnn(cell(...)) on the device, for one or several inputs (runtime/cpu/rnn.py's
    counterpart), then runtime/recurrent.py's layer_outputs."""
    eng = ex.eng
    o = node.opts
    mask = _joined_mask(eng, ins)
    T, B = ins[0].data.shape[:2]
    init, from_edge = start_state(node, ctx, init_state, B, o["stateful"])
    out, final, backprop_cell = run_cell_inputs(eng, node.spec, o, W, [a.data for a in ins],
                                                None if mask is None else mask[0], ctx, init,
                                                o["go_backwards"], o["zero_output_for_mask"])
    return layer_outputs(eng, node, ctx, T, out, final, mask, backprop_cell, from_edge)
