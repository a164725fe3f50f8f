"""attention and additive_attention on the CPU (math: layers/attention.py).

The dot scores run in a compiled kernel (kernels/cpu/attention.py) that reads the time-major
(T, B, F) inputs in place, the samples split across the workers. The other score modes, and
every mode on the plain route (paths.plain_paths: the reference the kernel is tested
against), are batched NumPy products over batch-major views (B, T, F), the outputs made
time-major again and the backward written out by hand (forward_numpy)."""

from __future__ import annotations

import numpy as np

from ...kernels.cpu import attention as kernel
from ...kernels.cpu import paths
from ..attention import MASKED_SHIFT, check_shapes, dropout_keep, score_keep
from ..tensor import Act


def _batch_major(a) -> np.ndarray:
    return a.view().transpose(1, 0, 2)


def _time_major(a) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(1, 0, 2))


def _softmax(S):
    if S.shape[-1] == 0:                        # a value of zero steps: no weights, a zero context
        return S.copy()
    e = np.exp(S - S.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def forward(node, W, ins, ctx, init_state=None):
    """The dot scores by the kernel (the weights kept for the backward in training only);
    the rest by forward_numpy."""
    if node.spec.score_mode(node.opts) != "dot" or paths.plain():
        return forward_numpy(node, W, ins, ctx, init_state)
    check_shapes(node, [a.shape for a in ins])
    q, v = ins[0], ins[1]
    has_key = len(ins) == 3
    k = ins[2] if has_key else v
    qd, vd = q.data, v.data
    kd = k.data if has_key else vd
    Tq, B, _ = qd.shape
    s = node.spec.named_weights(node.opts, W)[0]
    scale = 1.0 if s is None else s             # times 1 is exact: no scale and scale 1 agree
    drop = dropout_keep(node, ctx, (B, Tq, kd.shape[0]), qd.dtype)
    scores = node.opts["return_attention_scores"]
    C, A, P = kernel.dot_forward(qd, kd, vd, v.mask, q.mask, node.opts["use_causal_mask"], scale, MASKED_SHIFT,
                                 drop, ctx.training, scores)
    outs = {"out": Act(C, q.mask)}
    if scores:
        outs["scores"] = Act(P)

    def backprop(d):
        saved = A if A is not None else kernel.dot_forward(      # a backward after a forward not in training
            qd, kd, vd, v.mask, q.mask, node.opts["use_causal_mask"], scale, MASKED_SHIFT, drop, True, False)[1]
        dQ, dK, dV, ds = kernel.dot_backward(qd, kd, vd, q.mask, scale, drop, saved, d.get("out"), d.get("scores"),
                                             has_key)
        grads = [] if s is None else [np.asarray(ds, dtype=qd.dtype)]
        return ([dQ, dV, dK] if has_key else [dQ, dV]), grads, None

    return outs, backprop


def forward_numpy(node, W, ins, ctx, init_state=None):
    """Every score mode by NumPy (see the module's docstring)."""
    check_shapes(node, [a.shape for a in ins])
    q, v = ins[0], ins[1]
    has_key = len(ins) == 3
    Q, V = _batch_major(q), _batch_major(v)
    K = _batch_major(ins[2]) if has_key else V
    B, Tq, _ = Q.shape
    Tv = V.shape[1]
    dt = Q.dtype.type
    mode = node.spec.score_mode(node.opts)
    s, c, w = node.spec.named_weights(node.opts, W)

    R = U = Th = None
    if mode == "dot":
        R = np.matmul(Q, K.transpose(0, 2, 1))              # (B, Tq, Tv) = q_i . k_j
        S = R * s if s is not None else R
    else:
        U = Q[:, :, None, :] + K[:, None, :, :]             # (B, Tq, Tv, d) = q_i + k_j
        if mode == "concat":
            Th = np.tanh(U * s if s is not None else U)
            S = c * Th.sum(axis=-1)
        else:
            Th = np.tanh(U)
            S = (Th * w).sum(axis=-1) if w is not None else Th.sum(axis=-1)
    keep = score_keep(node, v.mask, Tq, Tv, B)
    if keep is not None:
        S = np.where(keep != 0, S, S - dt(MASKED_SHIFT))
    A = _softmax(S)
    drop = dropout_keep(node, ctx, A.shape, A.dtype)
    Ad = A * drop if drop is not None else A
    C = np.matmul(Ad, V)                                    # (B, Tq, dv)
    qm = None
    if q.mask is not None:
        qm = q.mask.T[:, :, None].astype(C.dtype)          # (B, Tq, 1): padded query steps give 0
        C *= qm
    outs = {"out": Act(_time_major(C), q.mask)}
    if node.opts["return_attention_scores"]:
        outs["scores"] = Act(_time_major(Ad))

    def backprop(d):
        dC = d.get("out")
        dAd = np.zeros_like(A)
        dV = np.zeros_like(V)
        if dC is not None:
            dC = dC.transpose(1, 0, 2)
            if qm is not None:
                dC = dC * qm
            dAd = np.matmul(dC, V.transpose(0, 2, 1))        # undo C = Ad V
            dV = np.matmul(Ad.transpose(0, 2, 1), dC)
        if d.get("scores") is not None:
            dAd = dAd + d["scores"].transpose(1, 0, 2)
        dA = dAd * drop if drop is not None else dAd
        dS = A * (dA - (dA * A).sum(axis=-1, keepdims=True))   # undo the softmax (the shift is a constant)
        grads = []
        if mode == "dot":
            dR = dS * s if s is not None else dS
            if s is not None:
                grads.append(np.asarray((dS * R).sum(), dtype=A.dtype))
            dQ = np.matmul(dR, K)
            dK = np.matmul(dR.transpose(0, 2, 1), Q)
        else:
            dS4 = dS[..., None]
            if mode == "concat":
                dTh = c * dS4
                dZ = dTh * (1 - Th * Th)                    # Z = s * U
                if s is not None:
                    grads.append(np.asarray((dZ * U).sum(), dtype=A.dtype))
                    dU = dZ * s
                else:
                    dU = dZ
                grads.append(np.asarray((dS * Th.sum(axis=-1)).sum(), dtype=A.dtype))
            else:
                if w is not None:
                    grads.append((dS4 * Th).sum(axis=(0, 1, 2)).astype(A.dtype))
                    dU = dS4 * w * (1 - Th * Th)
                else:
                    dU = dS4 * (1 - Th * Th)
            dQ = dU.sum(axis=2)
            dK = dU.sum(axis=1)
        if has_key:
            d_ins = [_time_major(dQ), _time_major(dV), _time_major(dK)]
        else:
            d_ins = [_time_major(dQ), _time_major(dV + dK)]
        return d_ins, grads, None

    return outs, backprop
