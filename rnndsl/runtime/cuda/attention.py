"""attention and additive_attention on the device, as on the CPU (runtime/cpu/attention.py;
the math: layers/attention.py): the scores, the masked softmax, the dropout and the
context by the kernels of kernels/cuda/attention.py and the row softmax of ops.py. The
kept scores and the dropout are decided on the host (runtime/attention.py) and uploaded."""

from __future__ import annotations

from ...kernels.cuda import attention as kernels
from ..attention import check_shapes, dropout_keep, score_keep
from .device import DAct

MODES = {"dot": 0, "concat": 1, "additive": 2}


def attention_forward(ex, node, W, ins, ctx, init_state=None):
    eng = ex.eng
    k = kernels.build(eng.dtype)
    check_shapes(node, [a.data.shape for a in ins])
    q, v = ins[0], ins[1]
    has_key = len(ins) == 3
    key = ins[2] if has_key else v
    Tq, B, d = q.data.shape
    Tv, dv = v.data.shape[0], v.data.shape[2]
    mode_name = node.spec.score_mode(node.opts)
    mode = MODES[mode_name]
    s, c, w = node.spec.named_weights(node.opts, W)
    sw = eng.none if s is None else eng.flat(s)
    cw = eng.none if c is None else eng.flat(c)
    wv = eng.none if w is None else w
    Q, K, V = eng.flat(q.data), eng.flat(key.data), eng.flat(v.data)
    n = B * Tq * Tv

    keep = score_keep(node, v.hmask, Tq, Tv, B)
    keep = eng.nomask.reshape(0) if keep is None else eng.upload(keep.reshape(-1))
    A = eng.empty((B * Tq, Tv))                                  # the scores, then softmax in place
    R = eng.empty(n) if mode == 0 and s is not None else eng.none
    eng.run(k.scores, n, eng.flat(A), R, Q, K, sw, cw, wv, keep, mode, B, Tq, Tv, d)
    if Tv > 0:                                                   # (a value of zero steps: a zero context)
        eng.run(eng.k.softmax_rows, B * Tq, A)
    drop = dropout_keep(node, ctx, (B, Tq, Tv), eng.dtype)
    drop = None if drop is None else eng.upload(drop.reshape(-1))
    Ad = eng.flat(A) if drop is None else eng.mul(eng.flat(A), drop)
    qmask = eng.nomask.reshape(0) if q.mask is None else eng.flat(q.mask)
    C = eng.empty((Tq, B, dv))
    eng.run(k.context, C.size, eng.flat(C), Ad, V, qmask, B, Tq, Tv, dv)
    outs = {"out": DAct(C, q.mask, q.hmask)}
    if node.opts["return_attention_scores"]:
        scores = eng.empty((Tq, B, Tv))                          # (B, Tq, Tv) -> time-major
        eng.run(eng.k.rows_to_steps, n, eng.flat(scores), Ad, Tq, B, Tv)
        outs["scores"] = DAct(scores)

    def backprop(d_out):
        dC, dsc = d_out.get("out"), d_out.get("scores")
        dCf = eng.none if dC is None else eng.flat(dC)
        if dsc is not None:                                      # time-major -> (B, Tq, Tv)
            rows = eng.empty(n)
            eng.run(eng.k.steps_to_rows, n, rows, eng.flat(dsc), Tq, B, Tv)
            dsc = rows
        dAd = eng.empty(n)
        eng.run(k.d_weights, n, dAd, dCf, V, qmask, eng.none if dsc is None else dsc, B, Tq, Tv, dv)
        dV = eng.zeros((Tv, B, dv))
        if dC is not None:
            eng.run(k.d_value, dV.size, eng.flat(dV), Ad, dCf, qmask, B, Tq, Tv, dv)
        dA = dAd if drop is None else eng.mul(dAd, drop)
        dS = eng.empty((B * Tq, Tv))
        eng.run(eng.k.softmax_back_rows, B * Tq, dS, A, dA.reshape(B * Tq, Tv))
        dSf = eng.flat(dS)
        dQ, dK = eng.empty((Tq, B, d)), eng.empty((Tv, B, d))
        eng.run(k.d_query, dQ.size, eng.flat(dQ), dSf, Q, K, sw, cw, wv, mode, B, Tq, Tv, d)
        eng.run(k.d_key, dK.size, eng.flat(dK), dSf, Q, K, sw, cw, wv, mode, B, Tq, Tv, d)
        grads = []
        if W:
            P1, P2 = eng.empty((B * d, 1)), (eng.empty((B * d, 1)) if mode == 1 else eng.none)
            eng.run(k.weight_parts, B * d, eng.flat(P1), eng.flat(P2) if mode == 1 else P2, dSf, Q, K, sw, cw,
                    mode, B, Tq, Tv, d)

            def total(P):                                        # a scalar weight's gradient, shape ()
                return eng.colsum(eng.empty(1), P).reshape(())

            if mode == 0:
                grads = [total(P1)]
            elif mode == 1:
                grads = ([total(P2)] if s is not None else []) + [total(P1)]
            else:
                grads = [eng.colsum(eng.empty(d), P1.reshape(B, d))]
        if has_key:
            return [dQ, dV, dK], grads, None
        return [dQ, eng.add(dV, dK)], grads, None

    return outs, backprop
