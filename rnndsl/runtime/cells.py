"""Calling a cell's generated kernels: the hoisted input products before, the weight gradients after.

Forward:  xp_k = X_k @ [W | W' | ...]  for each input k (all steps in one product),
          then cell_forward over the steps (which writes sums of products such as
          x @ W + h @ U over the blocks of xp they read: backward reads them there).
Backward: cell_backward gives dxp_k, the per-step product gradients dM_g, the
          vector-weight gradients and the initial-state gradients; then
          dW_k = X_k^T dxp_k and dX_k = dxp_k W_k^T (one product each), and for
          each per-step product group g with left side a_t: dU_g = sum_t a_t^T dM_g,t
          (one product over all steps). Column blocks are split back into the
          cell's weights, summed where one weight sits in several groups.

Arrays are time-major: X_k (T, B, F_k), states (B, u), out (T, B, u) in
processing order (reversed with go_backwards).

A one-input cell reading an embedding's rows X = E[ids] may be given the table
instead (``table=(E, ids)``): then xp = (E @ W)[ids], and backward sums dxp's rows
by id into dT (V, G) to take dW = E^T dT and dE = dT W^T (a TableGrad), V rows
in each product instead of T*B.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cells import compiler
from ..kernels.cpu import buffers
from ..kernels.cpu.ops import embedding_grad, gather_rows
from ..kernels.cpu.parallel import column_sums, matmul, run_rows
from .tensor import TableGrad


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1])


def _concat(ws: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(ws[0] if len(ws) == 1 else np.concatenate(ws, axis=1))


@dataclass
class CellTape:
    Xs: list
    xps: list
    loop_X: list
    hoisted_W: list
    group_W: list
    vecs: list
    consts: np.ndarray
    mask: np.ndarray
    rmask: np.ndarray
    backwards: bool
    zero_out: bool
    saved: tuple
    shapes: list
    table: tuple | None = None


def _mask_arrays(mask, rmask, T, B, u, dtype):
    if mask is None:
        mask = np.zeros((0, 0), np.uint8)
    else:
        mask = np.ascontiguousarray(np.asarray(mask) != 0, dtype=np.uint8).reshape(T, B)
    if rmask is None:
        rmask = np.zeros((0, 0), dtype)
    else:
        rmask = np.ascontiguousarray(rmask, dtype=dtype).reshape(B, u)
    return mask, rmask


def forward(cell, Xs, weights, init, mask=None, rmask=None, backwards=False, zero_out=False, keep=True,
            table=None, derive=None):
    """Run `cell` over the inputs Xs (one (T, B, F_k) array per cell input), or, with
    table=(E, ids), over the one input E[ids] (Xs is then [None]).

    weights: one array per cell.weights entry; init: one (B, u) array per state.
    keep=False (inference) saves nothing for backward. derive(key, sources, make), in
    inference: where the joined weights and the projected table E W may be kept between
    calls while their source arrays are unchanged (RunCtx.derived). Returns (out (T, B, u),
    final states, tape for backward)."""
    plan = compiler.plan(cell)
    mod = compiler.kernels(cell)
    first = Xs[0] if table is None else table[0]
    dtype = np.result_type(first.dtype, np.float32)
    T, B = Xs[0].shape[:2] if table is None else table[1].shape
    final = tuple(np.array(s, dtype=dtype, order="C", copy=True) for s in init)
    u = final[0].shape[1]
    given = weights
    weights = [np.asarray(w, dtype=dtype) for w in weights]
    mask, rmask = _mask_arrays(mask, rmask, T, B, u, dtype)

    def kept(name, k, idx, make, extra=()):
        if derive is None or keep:
            return make()
        # keyed by this layer's own weight array: layers of one cell definition share `cell`
        return derive(("cell " + name, id(given[idx[0]]), k), (*extra, *(given[i] for i in idx)), make)

    def joined(name, groups):
        return [kept(name, k, g.weights, lambda g=g: _concat([weights[i] for i in g.weights]))
                for k, g in enumerate(groups)]

    hoisted_W = joined("hoisted", plan.hoisted)
    if table is None:
        xps = [matmul(_flat(Xs[g.left.attr]), W).reshape(T, B, -1) for g, W in zip(plan.hoisted, hoisted_W)]
    else:
        E, ids = table
        xps = [gather_rows(kept("table", k, g.weights, lambda W=W: matmul(E, W), extra=(E,)), ids,
                           buffers.empty((T, B, W.shape[1]), dtype))
               for k, (g, W) in enumerate(zip(plan.hoisted, hoisted_W))]
    loop_X = [np.ascontiguousarray(Xs[k], dtype=dtype) for k in plan.loop_inputs]
    group_W = joined("group", plan.groups)
    vecs = [np.ascontiguousarray(weights[i]) for i in plan.vecs]
    consts = np.array(plan.consts, dtype=dtype)
    features = [X.shape[2] for X in Xs] if table is None else [table[0].shape[1]]
    # from the train step's pool (buffers.py): fresh arrays of this size cost their page
    # faults again every step (bench/README.md, "Measurements behind the code")
    out = buffers.empty((T, B, u), dtype)
    n = T if keep else 1
    saved = tuple(buffers.empty((n,) + plan.saved_shape(key, T, B, u, features)[1:], dtype) for key in plan.saved)
    run_rows(mod.cell_forward,
             (*xps, *loop_X, *group_W, *vecs, *final, mask, rmask, consts, bool(backwards), bool(zero_out),
              out, *saved), B, plan.work(T, B, u))
    tape = CellTape(list(Xs), xps, loop_X, hoisted_W, group_W, vecs, consts, mask, rmask,
                    bool(backwards), bool(zero_out), saved if keep else None, [w.shape for w in weights], table)
    return out, final, tape


def backward(cell, tape: CellTape, dout, dfinal):
    """Gradients: (dXs per input, dweights per cell weight, dinit per state)."""
    plan = compiler.plan(cell)
    mod = compiler.kernels(cell)
    dtype = tape.consts.dtype
    dout = buffers.read_only(np.ascontiguousarray(dout, dtype=dtype))
    T, B, u = dout.shape
    dinit = tuple(np.zeros((B, u), dtype) if d is None else np.array(d, dtype=dtype, order="C", copy=True)
                  for d in dfinal)
    group_WT = [np.ascontiguousarray(W.T) for W in tape.group_W]
    # every step's rows are zeroed by the kernel before it adds to them, in cache (a zero
    # fill of the whole array before the loop costs a pass over memory)
    dxps = [buffers.empty(xp.shape, dtype) for xp in tape.xps]
    dXl = [buffers.empty(X.shape, dtype) for X in tape.loop_X]
    dMs = {g.index: buffers.empty((T, B, len(g.nodes) * u), dtype) for g in plan.groups if g.index not in plan.alias}
    dVr = [np.zeros((B, u), dtype) for _ in plan.loop_vecs]       # per row: no race between threads
    run_rows(mod.cell_backward,
             (*tape.xps, *tape.loop_X, *group_WT, *tape.vecs, tape.mask, tape.rmask, tape.consts,
              tape.backwards, tape.zero_out, *tape.saved, dout, *dinit, *dxps, *dXl, *dMs.values(), *dVr),
             B, plan.work(T, B, u))

    grads = [np.zeros(shape, dtype) for shape in tape.shapes]
    dXs = [None] * len(tape.Xs)
    by_id = {}          # a table-fed group's dxp summed by id: the same column sums, V rows
    for g, W, dxp in zip(plan.hoisted, tape.hoisted_W, dxps):
        k = g.left.attr
        d2 = _flat(dxp)
        if tape.table is not None:
            # xp = (E @ W)[ids]: dxp's rows summed by id, then the two V-row products
            E, ids = tape.table
            dT = by_id[g.index] = embedding_grad(ids.reshape(-1), d2, E.shape[0])
            _split_add(grads, g.weights, matmul(E.T, dT), u)
            dE = matmul(dT, W.T)
            dXs[k] = TableGrad(dE if dXs[k] is None else dXs[k].dE + dE)
            continue
        _split_add(grads, g.weights, matmul(_flat(tape.Xs[k]).T, d2), u)
        dX = matmul(d2, W.T).reshape(tape.Xs[k].shape)
        dXs[k] = dX if dXs[k] is None else dXs[k] + dX
    for k, d in zip(plan.loop_inputs, dXl):
        dXs[k] = d if dXs[k] is None else dXs[k] + d
    for g in plan.groups:
        h = plan.alias.get(g.index)
        dM = dxps[h.index] if h is not None else dMs[g.index]
        left = tape.saved[plan.saved_index(_left_key(plan, g))]
        _split_add(grads, g.weights, matmul(_flat(left).T, _flat(dM)), u)
    for slot, dv in zip(plan.loop_vecs, dVr):
        grads[plan.vecs[slot]] += column_sums(dv)
    sums = {}       # column sums of each gradient array, once (a bias per block of it)
    for slot, (kind, grp, blk) in plan.vec_from.items():
        if (kind, grp.index) not in sums:
            # (the bias sums of a table-fed group over its V rows of dT, not its T*B rows of dxp)
            src = (by_id.get(grp.index, _flat(dxps[grp.index])) if kind == "xp" else _flat(dMs[grp.index]))
            sums[kind, grp.index] = column_sums(src)
        grads[plan.vecs[slot]] += sums[kind, grp.index][blk * u:(blk + 1) * u]
    for k, X in enumerate(tape.Xs):
        if dXs[k] is None:
            dXs[k] = np.zeros_like(X, dtype=dtype)
    return dXs, grads, dinit


def _left_key(plan, g):
    left = g.left
    return ("prev", left.attr) if left.op == "prev" else ("node", left.id)


def _split_add(grads, weight_ids, dW, u):
    for blk, w in enumerate(weight_ids):
        grads[w] += dW[:, blk * u:(blk + 1) * u]
