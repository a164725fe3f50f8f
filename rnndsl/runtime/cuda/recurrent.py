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
from .cells import run_cell as run_generated_cell
from .device import DAct


def _time(s: int, T: int, backwards: bool) -> int:
    """Input time read at processing step s (-1 past the end)."""
    if s >= T:
        return -1
    return T - 1 - s if backwards else s


class _Run:
    """One call's arrays and settings, what every kind's step loops read."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def time(self, s: int) -> int:
        return _time(s, self.T, self.backwards)


def _recurrent_grad(r, dZ):
    """dU = h_rec^T dZ over all steps at once (dZ: the gradient of h_rec U, (T, B, G))."""
    dU = r.eng.empty((r.u, r.G))
    r.eng.gemm(r.eng.rows(r.h_rec), r.eng.rows(dZ), dU, ta=True)
    return dU


class _LSTMSteps:
    """z = xp_t + h_rec U: one GEMM and one fused gate kernel a step; backward the gate
    gradients (with dc carried) and dh_rec = dz U^T."""

    def forward(self, r):
        eng, c = r.eng, r.eng.cells
        r.C = eng.copy(r.init[1])
        r.g_all, r.c_prev, r.act_c = eng.empty((r.T, r.B, r.G)), eng.empty((r.T, r.B, r.u)), eng.empty((r.T, r.B, r.u))
        Zr = eng.empty((r.B, r.G))
        for s in range(r.T):
            t = r.time(s)
            eng.gemm(r.h_rec[t], r.U, Zr)
            eng.run(c.lstm_step, r.n, r.xp, Zr, s, t, r.time(s + 1), r.mask, r.rm, r.a, r.ra, r.zo,
                    r.H, r.C, r.g_all, r.c_prev, r.act_c, r.out, r.h_rec)
        return (r.H, r.C)

    def backward(self, r, dxp, dHrec, dHc, dfinal):
        """(dU, dHd, dRec, the state gradients after dh)."""
        eng, c = r.eng, r.eng.cells
        dC = eng.copy(dfinal[1])
        prev = -1
        for s in range(r.T - 1, -1, -1):
            t = r.time(s)
            eng.run(c.lstm_back, r.n, s, t, prev, r.mask, r.rm, r.a, r.ra, r.zo, r.g_all, r.c_prev, r.act_c,
                    r.dout, dHrec, dHc, dC, dxp, eng.none2)
            eng.gemm(dxp[t], r.U, dHrec, tb=True)
            prev = t
        return _recurrent_grad(r, dxp), eng.none2, None, prev, (dC,)


class _SimpleRNNSteps:
    """h = act(xp_t + h_rec U): one GEMM and one kernel a step."""

    def forward(self, r):
        eng, c = r.eng, r.eng.cells
        r.h_new = eng.empty((r.T, r.B, r.u))
        Zr = eng.empty((r.B, r.u))
        for s in range(r.T):
            t = r.time(s)
            eng.gemm(r.h_rec[t], r.U, Zr)
            eng.run(c.simplernn_step, r.n, r.xp, Zr, s, t, r.time(s + 1), r.mask, r.rm, r.a, r.zo,
                    r.H, r.h_new, r.out, r.h_rec)
        return (r.H,)

    def backward(self, r, dxp, dHrec, dHc, dfinal):
        eng, c = r.eng, r.eng.cells
        dHd = eng.none2
        prev = -1
        for s in range(r.T - 1, -1, -1):
            t = r.time(s)
            eng.run(c.simplernn_back, r.n, s, t, prev, r.mask, r.rm, r.a, r.zo, r.h_new, r.dout, dHrec, dHd, dHc, dxp)
            eng.gemm(dxp[t], r.U, dHrec, tb=True)
            prev = t
        return _recurrent_grad(r, dxp), dHd, None, prev, ()


class _GRUAfterSteps:
    """reset_after (Keras's default): Rec = h_rec U + b_rec in one GEMM, the candidate reads
    r * Rec_h; aux keeps Rec_h for backward."""

    def forward(self, r):
        eng, c = r.eng, r.eng.cells
        r.g_all, r.aux = eng.empty((r.T, r.B, r.G)), eng.empty((r.T, r.B, r.u))
        Rec = eng.empty((r.B, r.G))
        for s in range(r.T):
            t = r.time(s)
            eng.gemm(r.h_rec[t], r.U, Rec)
            eng.run(c.gru_step_after, r.n, r.xp, Rec, eng.none if r.b_rec is None else r.b_rec, s, t,
                    r.time(s + 1), r.mask, r.rm, r.a, r.ra, r.zo, r.H, r.g_all, r.h_rec, r.aux, r.out)
        return (r.H,)

    def backward(self, r, dxp, dHrec, dHc, dfinal):
        eng, c = r.eng, r.eng.cells
        dHd = eng.empty((r.B, r.u))
        dRec = eng.empty((r.T, r.B, r.G))              # dL/dRec: dxp with the h block times r
        prev = -1
        for s in range(r.T - 1, -1, -1):
            t = r.time(s)
            eng.run(c.gru_back_after, r.n, s, t, prev, r.mask, r.rm, r.a, r.ra, r.zo, r.g_all, r.h_rec, r.aux,
                    r.dout, dHrec, dHd, dHc, dxp, dRec)
            eng.gemm(dRec[t], r.U, dHrec, tb=True)
            prev = t
        return _recurrent_grad(r, dRec), dHd, dRec, prev, ()


class _GRUBeforeSteps:
    """reset_before: the z and r blocks by one GEMM, then (r * h_rec) U_h by a second; aux
    keeps r * h_rec, the input of U_h."""

    def forward(self, r):
        eng, c = r.eng, r.eng.cells
        u = r.u
        r.g_all, r.aux = eng.empty((r.T, r.B, r.G)), eng.empty((r.T, r.B, u))
        r.U_zr, r.U_h = r.U[:, :2 * u], r.U[:, 2 * u:]
        Rzr, Rh = eng.empty((r.B, 2 * u)), eng.empty((r.B, u))
        for s in range(r.T):
            t = r.time(s)
            eng.gemm(r.h_rec[t], r.U_zr, Rzr)
            eng.run(c.gru_step_before_a, r.n, r.xp, Rzr, t, r.ra, r.g_all, r.h_rec, r.aux, u)
            eng.gemm(r.aux[t], r.U_h, Rh)
            eng.run(c.gru_step_before_b, r.n, r.xp, Rh, s, t, r.time(s + 1), r.mask, r.rm, r.a, r.zo,
                    r.H, r.g_all, r.h_rec, r.out)
        return (r.H,)

    def backward(self, r, dxp, dHrec, dHc, dfinal):
        eng, c = r.eng, r.eng.cells
        u = r.u
        dHd = eng.empty((r.B, u))
        dRHd = eng.empty((r.B, u))
        prev = -1
        for s in range(r.T - 1, -1, -1):
            t = r.time(s)
            eng.run(c.gru_back_before_a, r.n, s, t, prev, r.mask, r.rm, r.a, r.ra, r.zo, r.g_all, r.h_rec, r.dout,
                    dHrec, dHd, dHc, dxp)
            eng.gemm(dxp[t][:, 2 * u:], r.U_h, dRHd, tb=True)    # dxp's h block is d((r h) U_h)
            eng.run(c.gru_back_before_b, r.n, t, r.mask, r.ra, r.g_all, r.h_rec, dRHd, dHd, dxp, u)
            eng.gemm(dxp[t][:, :2 * u], r.U_zr, dHrec, tb=True)
            prev = t
        dU = eng.empty((u, r.G))
        dxp2 = eng.rows(dxp)
        eng.gemm(eng.rows(r.h_rec), dxp2[:, :2 * u], dU[:, :2 * u], ta=True)
        eng.gemm(eng.rows(r.aux), dxp2[:, 2 * u:], dU[:, 2 * u:], ta=True)
        return dU, dHd, None, prev, ()


# the step loops of each built-in recurrent kind (GRU: by reset_after)
STEPS = {"lstm": _LSTMSteps(), "simplernn": _SimpleRNNSteps(), ("gru", True): _GRUAfterSteps(),
         ("gru", False): _GRUBeforeSteps()}


def steps_for(spec, opts):
    return STEPS[(spec.name, bool(opts["reset_after"]))] if spec.name == "gru" else STEPS[spec.name]


def run_cell(eng, spec, opts, W, x: DAct, ctx, init, backwards: bool, zero_out: bool):
    """Run the cell over x: (out (T, B, u) in processing order, final state tuple, backprop).

    backprop(dout, dfinal) -> (dX, weight grads [dW, dU, (db)], dinit)."""
    if opts.get("cell") is not None:                # rnn(cell(...)): the generated kernels
        return run_generated_cell(eng, spec, opts, W, x, ctx, init, backwards, zero_out)
    steps = steps_for(spec, opts)
    kernel, U = W[0], W[1]
    bias = W[2] if opts["use_bias"] else None
    X = x.data
    T, B, F = X.shape
    u = opts["units"]
    G = spec.gates * u
    dmask, rmask = (None if m is None else eng.upload(m) for m in dropout_masks(opts, ctx, B, F, u, eng.dtype))
    if dmask is not None:
        X = eng.mul_bcast(X, dmask)                 # one input mask per sequence, as Keras
    reset_after = spec.name == "gru" and opts["reset_after"]
    b_in, b_rec = bias, None
    if bias is not None and reset_after:            # row 0 joins xp, row 1 sits inside r * (h U_h + b_rh)
        b_in, b_rec = bias[0], bias[1]
    xp = eng.empty((T, B, G))
    eng.gemm(eng.rows(X), kernel, eng.rows(xp), bias=b_in)
    if init is None:
        init = tuple(eng.zeros((B, u)) for _ in spec.state_names)
    r = _Run(eng=eng, T=T, B=B, u=u, G=G, U=U, xp=xp, init=init, b_rec=b_rec, backwards=backwards,
             mask=eng.nomask if x.mask is None else x.mask, rm=eng.none2 if rmask is None else rmask,
             a=activation_code(opts["activation"]), ra=activation_code(opts.get("recurrent_activation", "sigmoid")),
             zo=int(zero_out), n=B * u, H=eng.copy(init[0]), out=eng.empty((T, B, u)),
             h_rec=eng.empty((T, B, u)))            # h_rec: h_{t-1} * rmask, each step's matmul input
    eng.run(eng.cells.drop_state, r.n, r.h_rec, r.time(0), r.H, r.rm)
    final = steps.forward(r)

    def backprop(dout, dfinal):
        r.dout = dout
        dxp = eng.empty((T, B, G))
        dHc = eng.copy(dfinal[0])                   # dL/dh carried through padded steps
        dHrec = eng.empty((B, u))                   # dL/dh_rec of the step undone before
        dU, dHd, dRec, prev, rest = steps.backward(r, dxp, dHrec, dHc, dfinal)
        dh0 = eng.empty((B, u))
        eng.run(eng.cells.finish, r.n, dh0, prev, r.mask, r.rm, dHrec, dHd, dHc)
        dinit = (dh0,) + rest
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
            if dRec is not None:                     # reset_after: the recurrent bias row from dRec
                eng.colsum(db[0], dxp2)
                eng.colsum(db[1], eng.rows(dRec))
            else:
                eng.colsum(db, dxp2)
            grads.append(db)
        return dX, grads, dinit

    return r.out, final, backprop


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
    halves = (node.spec.inner(node), node.spec.backward(node))
    x = ins[0]
    T, B, _ = x.data.shape
    n = halves[0].n_weights

    def run_half(k, init, backwards, zero_out):
        half = halves[k]
        return run_cell(eng, half.spec, half.opts, W[:n] if k == 0 else W[n:], x, ctx, init, backwards, zero_out)

    return bidirectional_outputs(eng, node, ctx, init_state, T, B, mask_of(x), run_half)
