"""SimpleRNN, LSTM and GRU layers on the device, and their Bidirectional wrapper.

The device counterpart of runtime/cpu/recurrent.py and runtime/cpu/bidirectional.py
(the math and Keras's conventions are in layers/recurrent.py and layers/bidirectional.py;
what a layer returns and Bidirectional's merge are runtime/recurrent.py's, shared with the
CPU engine over DeviceOps). Per call:

    xp = (x * dropout mask) @ W + b          one GEMM over all T*B rows
    for each step s: Zr = h_rec[t] @ U       one GEMM (B x G)
                     cell step kernel        gates, state, output, saved values
    backward, for each step from the last:
                     cell gradient kernel    dxp[t] (and dc)
                     dHrec = dxp[t] @ U^T    one GEMM
    dU = h_rec^T @ dxp, dW = x^T @ dxp, dx = dxp @ W^T, db = column sums of dxp:
    one GEMM (or reduction) each, over all steps at once.

Dropout masks are drawn on the host by runtime/recurrent.py (as on the CPU) and copied
once per call, so both engines see the same masks.
"""

from __future__ import annotations

from ...kernels.cpu.activations import activation_code
from ..recurrent import bidirectional_outputs, dropout_masks, layer_outputs, start_state
from .device import DAct


def _time(s: int, T: int, backwards: bool) -> int:
    """Input time read at processing step s (-1 past the end)."""
    if s >= T:
        return -1
    return T - 1 - s if backwards else s


def run_cell(eng, spec, opts, W, x: DAct, ctx, init, backwards: bool, zero_out: bool):
    """Run the cell over x: (out (T, B, u) in processing order, final state tuple, backprop).

    backprop(dout, dfinal) -> (dX, weight grads [dW, dU, (db)], dinit)."""
    if opts.get("cell") is not None:                # rnn(cell(...)): the generated kernels
        from .cells import run_cell as run_generated_cell
        return run_generated_cell(eng, spec, opts, W, x, ctx, init, backwards, zero_out)
    kernel, U = W[0], W[1]
    bias = W[2] if opts["use_bias"] else None
    X = x.data
    T, B, F = X.shape
    u = opts["units"]
    gates = spec.gates
    G = gates * u
    c = eng.cells
    dmask, rmask = (None if m is None else eng.upload(m) for m in dropout_masks(opts, ctx, B, F, u, eng.dtype))
    if dmask is not None:
        X = eng.mul_bcast(X, dmask)                 # one input mask per sequence, as Keras
    rm = eng.none2 if rmask is None else rmask
    mask = eng.nomask if x.mask is None else x.mask
    reset_after = spec.name == "gru" and opts["reset_after"]
    b_in, b_rec = bias, None
    if bias is not None and reset_after:            # row 0 joins xp, row 1 sits inside r * (h U_h + b_rh)
        b_in, b_rec = bias[0], bias[1]
    xp = eng.empty((T, B, G))
    eng.gemm(eng.rows(X), kernel, eng.rows(xp), bias=b_in)
    if init is None:
        init = tuple(eng.zeros((B, u)) for _ in spec.state_names)
    a = activation_code(opts["activation"])
    ra = activation_code(opts.get("recurrent_activation", "sigmoid"))
    n = B * u
    H = eng.copy(init[0])
    out = eng.empty((T, B, u))
    h_rec = eng.empty((T, B, u))                    # h_{t-1} * rmask: each step's matmul input
    eng.run(c.drop_state, n, h_rec, _time(0, T, backwards), H, rm)
    zo = int(zero_out)

    if spec.name == "lstm":
        C = eng.copy(init[1])
        g_all, c_prev, act_c = eng.empty((T, B, G)), eng.empty((T, B, u)), eng.empty((T, B, u))
        Zr = eng.empty((B, G))
        for s in range(T):
            t = _time(s, T, backwards)
            eng.gemm(h_rec[t], U, Zr)
            eng.run(c.lstm_step, n, xp, Zr, s, t, _time(s + 1, T, backwards), mask, rm, a, ra, zo,
                    H, C, g_all, c_prev, act_c, out, h_rec)
        final = (H, C)
    elif spec.name == "simplernn":
        h_new = eng.empty((T, B, u))
        Zr = eng.empty((B, u))
        for s in range(T):
            t = _time(s, T, backwards)
            eng.gemm(h_rec[t], U, Zr)
            eng.run(c.simplernn_step, n, xp, Zr, s, t, _time(s + 1, T, backwards), mask, rm, a, zo,
                    H, h_new, out, h_rec)
        final = (H,)
    elif reset_after:
        g_all, aux = eng.empty((T, B, G)), eng.empty((T, B, u))   # aux: Rec_h = h_rec U_h + b_rh
        Rec = eng.empty((B, G))
        for s in range(T):
            t = _time(s, T, backwards)
            eng.gemm(h_rec[t], U, Rec)
            eng.run(c.gru_step_after, n, xp, Rec, eng.none if b_rec is None else b_rec, s, t,
                    _time(s + 1, T, backwards), mask, rm, a, ra, zo, H, g_all, h_rec, aux, out)
        final = (H,)
    else:
        g_all, aux = eng.empty((T, B, G)), eng.empty((T, B, u))   # aux: r * h_rec, the input of U_h
        U_zr, U_h = U[:, :2 * u], U[:, 2 * u:]
        Rzr, Rh = eng.empty((B, 2 * u)), eng.empty((B, u))
        for s in range(T):
            t = _time(s, T, backwards)
            eng.gemm(h_rec[t], U_zr, Rzr)
            eng.run(c.gru_step_before_a, n, xp, Rzr, t, ra, g_all, h_rec, aux, u)
            eng.gemm(aux[t], U_h, Rh)
            eng.run(c.gru_step_before_b, n, xp, Rh, s, t, _time(s + 1, T, backwards), mask, rm, a, zo,
                    H, g_all, h_rec, out)
        final = (H,)

    def backprop(dout, dfinal):
        dxp = eng.empty((T, B, G))
        dHc = eng.copy(dfinal[0])                   # dL/dh carried through padded steps
        dHrec = eng.empty((B, u))                   # dL/dh_rec of the step undone before
        dHd = eng.none2                             # GRU: dL/dh through z * h (and r * h)
        dU = eng.empty((u, G))
        prev = -1
        if spec.name == "lstm":
            dC = eng.copy(dfinal[1])
            for s in range(T - 1, -1, -1):
                t = _time(s, T, backwards)
                eng.run(c.lstm_back, n, s, t, prev, mask, rm, a, ra, zo, g_all, c_prev, act_c, dout,
                        dHrec, dHc, dC, dxp, eng.none2)
                eng.gemm(dxp[t], U, dHrec, tb=True)
                prev = t
            eng.gemm(eng.rows(h_rec), eng.rows(dxp), dU, ta=True)
        elif spec.name == "simplernn":
            for s in range(T - 1, -1, -1):
                t = _time(s, T, backwards)
                eng.run(c.simplernn_back, n, s, t, prev, mask, rm, a, zo, h_new, dout, dHrec, dHd, dHc, dxp)
                eng.gemm(dxp[t], U, dHrec, tb=True)
                prev = t
            eng.gemm(eng.rows(h_rec), eng.rows(dxp), dU, ta=True)
        elif reset_after:
            dHd = eng.empty((B, u))
            dRec = eng.empty((T, B, G))              # dL/dRec: dxp with the h block times r
            for s in range(T - 1, -1, -1):
                t = _time(s, T, backwards)
                eng.run(c.gru_back_after, n, s, t, prev, mask, rm, a, ra, zo, g_all, h_rec, aux, dout,
                        dHrec, dHd, dHc, dxp, dRec)
                eng.gemm(dRec[t], U, dHrec, tb=True)
                prev = t
            eng.gemm(eng.rows(h_rec), eng.rows(dRec), dU, ta=True)
        else:
            dHd = eng.empty((B, u))
            dRHd = eng.empty((B, u))
            for s in range(T - 1, -1, -1):
                t = _time(s, T, backwards)
                eng.run(c.gru_back_before_a, n, s, t, prev, mask, rm, a, ra, zo, g_all, h_rec, dout,
                        dHrec, dHd, dHc, dxp)
                eng.gemm(dxp[t][:, 2 * u:], U_h, dRHd, tb=True)    # dxp's h block is d((r h) U_h)
                eng.run(c.gru_back_before_b, n, t, mask, ra, g_all, h_rec, dRHd, dHd, dxp, u)
                eng.gemm(dxp[t][:, :2 * u], U_zr, dHrec, tb=True)
                prev = t
            dxp2 = eng.rows(dxp)
            eng.gemm(eng.rows(h_rec), dxp2[:, :2 * u], dU[:, :2 * u], ta=True)
            eng.gemm(eng.rows(aux), dxp2[:, 2 * u:], dU[:, 2 * u:], ta=True)
        dh0 = eng.empty((B, u))
        eng.run(c.finish, n, dh0, prev, mask, rm, dHrec, dHd, dHc)
        dinit = (dh0, dC) if spec.name == "lstm" else (dh0,)
        # undo xp = X @ kernel + b over all steps at once
        dxp2 = eng.rows(dxp)
        dK = eng.empty(kernel.shape)
        eng.gemm(eng.rows(X), dxp2, dK, ta=True)
        dX = eng.empty((T, B, F))
        eng.gemm(dxp2, kernel, eng.rows(dX), tb=True)
        if dmask is not None:
            dX = eng.mul_bcast(dX, dmask)            # undo X = x * dmask
        grads = [dK, dU]
        if bias is not None:
            db = eng.empty(bias.shape)
            if reset_after:
                eng.colsum(db[0], dxp2)
                eng.colsum(db[1], eng.rows(dRec))
            else:
                eng.colsum(db, dxp2)
            grads.append(db)
        return dX, grads, dinit

    return out, final, backprop


def mask_of(x):
    """The (device, host) mask pair of a DAct, as the shared plumbing takes it, or None."""
    return None if x.hmask is None else (x.mask, x.hmask)


def recurrent_forward(ex, node, W, ins, ctx, init_state=None):
    """A built-in recurrent layer on the device: its cell, then runtime/recurrent.py's
    layer_outputs."""
    eng = ex.eng
    o = node.opts
    x = ins[0]
    T, B, _ = x.data.shape
    init, from_edge = start_state(node, ctx, init_state, B, o["stateful"])
    out, final, backprop_cell = run_cell(eng, node.spec, o, W, x, ctx, init, o["go_backwards"],
                                         o["zero_output_for_mask"])

    def cell_backprop(dout, dfinal):
        dX, grads, dinit = backprop_cell(dout, dfinal)
        return [dX], grads, dinit

    return layer_outputs(eng, node, ctx, T, out, final, mask_of(x), cell_backprop, from_edge)


def bidirectional_forward(ex, node, W, ins, ctx, init_state=None):
    """Bidirectional on the device: two cell runs, then runtime/recurrent.py's merge."""
    eng = ex.eng
    inner = node.spec.inner(node)
    x = ins[0]
    T, B, _ = x.data.shape
    half = len(W) // 2

    def run_half(k, init, backwards, zero_out):
        return run_cell(eng, inner.spec, inner.opts, W[:half] if k == 0 else W[half:], x, ctx, init, backwards,
                        zero_out)

    return bidirectional_outputs(eng, node, ctx, init_state, T, B, mask_of(x), run_half)
