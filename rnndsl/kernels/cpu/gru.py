"""GRU forward and backprop-through-time on CPU (Keras layout, gate order z, r, h).

Per processing step s (input time t = s, or T-1-s with go_backwards), with
U = [U_z | U_r | U_h] and xp[t] = [x_z | x_r | x_h] (= x @ W + input bias)::

    Hd = H_{t-1} * rmask       Keras 3 overwrites h_tm1 with the dropped one, so
                               Hd is used everywhere below, not only in matmuls

  reset_after=True (Keras default; b_rec = Keras bias row 1, zeros if unused):
    Rec = Hd @ U + b_rec
    Z = ra(x_z + Rec_z)   R = ra(x_r + Rec_r)   HH = a(x_h + R * Rec_h)

  reset_after=False (the whole bias is already in xp):
    Z = ra(x_z + Hd @ U_z)   R = ra(x_r + Hd @ U_r)   HH = a(x_h + (R * Hd) @ U_h)

    H_t = Z * Hd + (1 - Z) * HH = HH + Z * (Hd - HH)
    out[s] = H_t

At a padded step (mask[t, b] == 0) the row keeps H_{t-1} (undropped); its
output is H_{t-1}, or zeros with zero_output_for_mask.

Shapes: xp (T,B,3u), U (u,3u), h0 (B,u), b_rec (3u,).  ``a`` = activation,
``ra`` = recurrent_activation (codes in activations.py).

Float32 with reset_after, the default activations and no mask (in training, units a
multiple of 16) runs gru_fused_rows (the gate math in the product's epilogue: gru_fused.py).
BPTT with reset_after, the default activations and no mask runs each row's step as
gru_fused.py's vector code (gru_bptt_row), either dtype.

NaN and inf in weights or states propagate as in float64 (activations.py, issue 15).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from .parallel import chunks, column_sums, matmul, part_of, run_rows, sum_parts
from .activations import (
    KERNEL_OPTIONS,
    SIGMOID,
    TANH,
    act_add_row,
    add_row,
    activation_code,
    add_output_grad_row,
    commit_row,
    copy_row,
    copy_rows,
    flush_row,
    dact_row,
    dropped_row,
    emit_row,
    is_real,
    prepare_backward,
    prepare_forward,
    smallest_normal as _tiny,
    stand_in,
    input_rows,
    out_index,
    scratch_cols,
    step_time,
    table_rows,
)
from . import buffers, paths
from .gru_fused import UNITS, gru_bias, gru_bptt_row, gru_panels, gru_step_rows
from .ops import embedding_input, embedding_view, sum_rows_by_id, table_input
from .packed import aligned_scratch, packed, rows_matmul, tn_accumulate


class GRUSaved(NamedTuple):
    """What gru_backward needs.  Per-step arrays are indexed by input time t."""

    U: np.ndarray        # (u, 3u) recurrent kernel
    mask: np.ndarray     # (T, B) uint8, or empty: no mask
    rmask: np.ndarray    # (B, u) scaled dropout mask, or empty: none
    activation: int
    recurrent_activation: int
    reset_after: bool
    backwards: bool
    zero_output_for_mask: bool
    gates: np.ndarray    # (T, B, 3u) post-activation Z, R, HH (gru_backward writes dxp over them)
    h_rec: np.ndarray    # (T, B, u) Hd = H_{t-1} * rmask
    aux: np.ndarray      # (T, B, u) reset_after: Rec_h = Hd @ U_h + b_rec_h;
                         #           otherwise:   R * Hd, the input of U_h
    ids: np.ndarray      # (T, B) the table rows read (the input was a table's rows), or empty
    vocab: int | None    # the table's rows, or None: the input was not a table's rows


@njit(**KERNEL_OPTIONS)
def gru_forward_kernel(xp, X, W, b_in, ids, table, U, Ht, b_rec, mask, rmask, act, ract, reset_after,
                       backwards, zero_output, out, gates, h_rec, aux, b0, b1):
    """Rows b0..b1 of every step; the input projection is xp, or X @ W + b_in step by
    step (input_rows), or, with ids (T, B) not empty, rows of table (table_rows); Ht holds
    h0 and ends as hT. The saved arrays have T steps when
    backward will run, else 1 (scratch); out has T steps or 1 (the last output only)."""
    T = xp.shape[0] if X.shape[0] == 0 else X.shape[0]
    B, G = Ht.shape[0], U.shape[1]
    u = G // 3
    dt = Ht.dtype
    keep = gates.shape[0] == T
    by_id = ids.shape[0] > 0
    # Contiguous column blocks of U (np.dot wants contiguous operands); only reset_after=false
    # multiplies by the blocks separately, so only it pays for the copies.
    if reset_after:
        U_zr = U[:0, :0].copy()
        U_h = U[:0, :0].copy()
    else:
        U_zr = np.ascontiguousarray(U[:, : 2 * u])
        U_h = np.ascontiguousarray(U[:, 2 * u :])
    # reset_after: Rec = Hd @ U + b_rec in one product; otherwise Hd @ U_zr
    # and (R * Hd) @ U_h land in separate contiguous buffers.
    # W, U packed for rows_matmul, by this worker (only reset_after multiplies by all of U)
    Wp = packed(W)
    Up = packed(U) if reset_after else packed(U[:0])
    XP = aligned_scratch(B, scratch_cols(G, Wp), dt)   # this step's input projection rows
    Rec = aligned_scratch(B, scratch_cols(G, Up), dt)
    Rec_zr = np.empty((B, 2 * u), dt)
    Rec_h = np.empty((B, u), dt)
    RRec_h = np.empty(u, dt)      # R * Rec_h (reset_after)
    Ht_new = np.empty(u, dt)
    for s in range(T):
        t = step_time(s, T, backwards)
        k = t if keep else 0
        xt = table_rows(table, ids, XP, t, b0, b1) if by_id else input_rows(xp, X, W, Wp, b_in, XP, t, b0, b1)
        for b in range(b0, b1):
            dropped_row(h_rec[k, b], Ht[b], rmask, b)
        Hd = h_rec[k]
        if reset_after:
            rows_matmul(Hd[b0:b1], U, Up, Rec[b0:b1])
            for b in range(b0, b1):
                add_row(Rec[b, :G], b_rec)
        else:
            np.dot(Hd[b0:b1], U_zr, Rec_zr[b0:b1])
        for b in range(b0, b1):
            rec_zr = Rec[b, : 2 * u] if reset_after else Rec_zr[b]
            act_add_row(gates[k, b, : 2 * u], xt[b, : 2 * u], rec_zr, ract)
            Rt = gates[k, b, u : 2 * u]
            if reset_after:
                copy_row(aux[k, b], Rec[b, 2 * u :])
            else:
                for j in range(u):
                    aux[k, b, j] = Rt[j] * Hd[b, j]
        if not reset_after:
            np.dot(aux[k, b0:b1], U_h, Rec_h[b0:b1])
        o = out_index(out, s)
        for b in range(b0, b1):
            Zt, Rt, HHt = gates[k, b, :u], gates[k, b, u : 2 * u], gates[k, b, 2 * u :]
            if reset_after:
                for j in range(u):
                    RRec_h[j] = Rt[j] * aux[k, b, j]
                act_add_row(HHt, xt[b, 2 * u :], RRec_h, act)
            else:
                act_add_row(HHt, xt[b, 2 * u :], Rec_h[b], act)
            for j in range(u):
                Ht_new[j] = HHt[j] + Zt[j] * (Hd[b, j] - HHt[j])
            real = is_real(mask, t, b)
            commit_row(Ht[b], Ht_new, real)
            emit_row(out[o, b], Ht[b], real, zero_output)


@njit(**KERNEL_OPTIONS)
def gru_fused_rows(X, xids, W, b_in, b_rec, ids, table, U, Ht, rmask, backwards, out, gates, h_rec, aux, keep,
                   b0, b1):
    """Rows b0..b1 of a GRU run (float32, reset_after, default activations, no mask), one
    fused step per time step (gru_fused.py): x_t W and H_{t-1} U
    in one register tile per 16 units, the gate math on its registers. The input x_t is
    X[t] (T, B, F), or, with xids (T, B) not empty, the rows xids[t, b] of X[0] (an
    embedding's table, read in place); with ids (T, B) not empty, x_t W + b_in is row
    ids[t, b] of table (V, 3 ub), blocks [z, r, h] of ub = u rounded up to 16 columns (X
    then has no columns). Ht holds h0 and ends as hT; out keeps every step,
    or one row (the last output). With keep (training; u a multiple of 16) the step saves
    what gru_backward reads: gates, h_rec = H_{t-1} * rmask (the product's input, and the
    H_{t-1} of the update), aux = Rec_h; else nothing is saved and rmask is empty."""
    gather = xids.shape[0] > 0
    T = xids.shape[0] if gather else X.shape[0]
    u = Ht.shape[1]
    M = b1 - b0
    own = np.arange(M)                            # each row reads its own row of X[t, b0:b1]
    Wq, Uq = gru_panels(W, U)
    width = Uq.shape[0] * UNITS
    bt = gru_bias(b_in, b_rec, width)
    by_id = ids.shape[0] > 0
    # the step's table rows copied side by side first (read in place, the tile's loads of
    # rows scattered over the table missed the cache: slower than x_t W), or one row of zeros
    tab = aligned_scratch(M, table.shape[1], Ht.dtype) if by_id else np.zeros((1, 3 * width), Ht.dtype)
    row0 = np.zeros(M, np.int64)
    # H_{t-1} and H_t, swapping halves each step; zero past u
    Hs = aligned_scratch(2 * M, width, Ht.dtype)
    Hs[:] = 0
    copy_rows(Hs[:M, :u], Ht[b0:b1])
    none = Hs[:0]
    last = out.shape[0] == 1
    for s in range(T):
        t = T - 1 - s if backwards else s
        cur = (s % 2) * M
        nxt = M - cur
        src, xrows = (X[0], xids[t, b0:b1]) if gather else (X[t, b0:b1], own)
        if by_id:
            for r in range(M):
                copy_row(tab[r], table[ids[t, b0 + r]])
        rows = own if by_id else row0
        if keep:
            for r in range(M):
                dropped_row(h_rec[t, b0 + r], Hs[cur + r, :u], rmask, b0 + r)
            gru_step_rows(src, xrows, Wq, h_rec[t, b0:b1], Uq, bt, tab, rows, Hs[nxt:nxt + M], gates[t, b0:b1],
                          aux[t, b0:b1], 0, Uq.shape[0])
        else:
            gru_step_rows(src, xrows, Wq, Hs[cur:cur + M], Uq, bt, tab, rows, Hs[nxt:nxt + M], none, none, 0,
                          Uq.shape[0])
        if not last or s == T - 1:
            copy_rows(out[0 if last else s, b0:b1], Hs[nxt:nxt + M, :u])
    fin = (T % 2) * M
    copy_rows(Ht[b0:b1], Hs[fin:fin + M, :u])


def fused_route(a: int, ra: int, reset_after: bool, mask, rmask, X, dtype, u: int, keep: bool) -> bool:
    """Whether gru_forward runs gru_fused_rows: float32 with reset_after, the default
    activations, no mask and a per-step input X, in inference without recurrent dropout or
    in training (saving for backward) with u a multiple of 16; never on the plain route."""
    return (not paths.plain() and reset_after and a == TANH and ra == SIGMOID and mask.shape[0] == 0
            and X.shape[0] != 0 and dtype == np.float32
            and (u % UNITS == 0 if keep else rmask.shape[0] == 0))


@njit(**KERNEL_OPTIONS)
def gru_backward_kernel(U, mask, rmask, act, ract, reset_after, backwards, zero_output,
                        gates, h_rec, aux, dout, dHt, dxp, dRec, dZR, dHH, dUb_parts, tiny, rows, b0, b1):
    """Rows b0..b1: fills dxp (T,B,3u) and the matmul-output gradients (reset_after: dRec
    (T,B,3u), or with dUb_parts (parts, u + 1, 3u) not empty, these rows' share of
    [dU; db_rec] added to dUb_parts[p] two steps a pass while dRec_t is in cache, p the part of
    rows 0..rows that begins at b0, and dRec not kept; otherwise dZR (T,B,2u), dHH
    (T,B,u)); dHt holds dhT and ends as dh0. dxp may be `gates` itself: a row's gates are
    read before its gradient is written over them, element by element."""
    T, B, G = gates.shape
    u = G // 3
    dt = gates.dtype
    U_zr_T = np.ascontiguousarray(U[:, : 2 * u]).T
    U_h_T = np.ascontiguousarray(U[:, 2 * u :]).T
    UT = U.T
    dHd = np.empty((B, u), dt)    # dL/dHd through the Z * Hd term (and R * Hd)
    # reset_after=false multiplies by U's blocks with np.dot, which wants the exact width
    UTp = packed(U.T) if reset_after else packed(U[:0].T)     # U^T packed for rows_matmul
    dHt_rec = aligned_scratch(B, scratch_cols(u, UTp) if reset_after else u, dt)
    # this step's dRec rows, and the step before's: dU takes two steps a pass (one read and
    # write of the accumulator for both)
    dRec2 = np.empty((2, B, G if reset_after else 0), dt)
    held = -1                     # the step whose dRec waits for its pair, or none
    in_loop = dUb_parts.shape[1] > 0
    dUb = dUb_parts[part_of(b0, rows, dUb_parts.shape[0])]
    if in_loop:
        dUb[:, :] = 0                  # this worker's own accumulator
    dRHd = np.empty((B, u), dt)
    dpost = np.empty(G, dt)       # dL/d(Z, R, HH) after their activations
    # the default activations without a mask: each row's step as gru_bptt_row's vector code,
    # db_rec's sum (or, not in_loop, a scratch row) taken on the way
    vector = reset_after and act == TANH and ract == SIGMOID and mask.shape[0] == 0
    db_rec = dUb[u] if in_loop else np.zeros(G, dt)
    for s in range(T - 1, -1, -1):
        t = step_time(s, T, backwards)
        dRec_t = dRec2[s % 2]
        for b in range(b0, b1):
            if vector:
                gru_bptt_row(dxp[t, b], dRec_t[b], dHd[b], db_rec, dHt[b], dout[s, b], h_rec[t, b], aux[t, b])
                continue
            real = is_real(mask, t, b)
            # out[s] = H_t (or zeros)
            add_output_grad_row(dHt[b], dout[s, b], real, zero_output)
            dXt = dxp[t, b]
            if not real:
                # padded: H_t = H_{t-1}; dHt passes through
                dXt[:] = 0
                if reset_after:
                    dRec_t[b] = 0
                else:
                    dHH[t, b] = 0
                continue
            Zt, Rt, HHt = gates[t, b, :u], gates[t, b, u : 2 * u], gates[t, b, 2 * u :]
            Hd = h_rec[t, b]
            dH = dHt[b]
            # H_t = HH + Z * (Hd - HH)
            for j in range(u):
                dpost[j] = dH[j] * (Hd[j] - HHt[j])
                dpost[2 * u + j] = dH[j] - dH[j] * Zt[j]
                dHd[b, j] = dH[j] * Zt[j]
            # Z = ra(x_z + ...), HH = a(x_h + ...)
            dact_row(dXt[:u], dpost[:u], Zt, ract)
            dact_row(dXt[2 * u :], dpost[2 * u :], HHt, act)
            if reset_after:
                # HH pre-activation = x_h + R * Rec_h
                Rec_h = aux[t, b]
                for j in range(u):
                    dpost[u + j] = dXt[2 * u + j] * Rec_h[j]
                    dRec_t[b, 2 * u + j] = dXt[2 * u + j] * Rt[j]
                # R = ra(x_r + Rec_r)
                dact_row(dXt[u : 2 * u], dpost[u : 2 * u], Rt, ract)
                # Rec_z, Rec_r enter Z, R exactly like x_z, x_r
                copy_row(dRec_t[b, : 2 * u], dXt[: 2 * u])
            else:
                # HH pre-activation = x_h + (R * Hd) @ U_h
                copy_row(dHH[t, b], dXt[2 * u :])
        if reset_after:
            # Rec = Hd @ U + b_rec
            rows_matmul(dRec_t[b0:b1], UT, UTp, dHt_rec[b0:b1])
            if in_loop:                 # dU += Hd_t^T dRec_t, db_rec += sum dRec_t
                if held < 0 and s > 0:
                    held = t
                else:
                    two = b1 if held >= 0 else b0
                    tn_accumulate(h_rec[t, b0:b1], dRec_t[b0:b1], h_rec[max(held, 0), b0:two],
                                  dRec2[1 - s % 2, b0:two], dUb[:u])
                    held = -1
                if not vector:
                    for b in range(b0, b1):
                        add_row(dUb[u], dRec_t[b])
            else:
                for b in range(b0, b1):
                    copy_row(dRec[t, b], dRec_t[b])
        else:
            # (R * Hd) @ U_h
            np.dot(dHH[t, b0:b1], U_h_T, dRHd[b0:b1])
            for b in range(b0, b1):
                if is_real(mask, t, b):
                    Zt, Rt = gates[t, b, :u], gates[t, b, u : 2 * u]
                    Hd = h_rec[t, b]
                    dXt = dxp[t, b]
                    # R * Hd
                    for j in range(u):
                        dpost[u + j] = dRHd[b, j] * Hd[j]
                        dHd[b, j] += dRHd[b, j] * Rt[j]
                    # R = ra(x_r + Hd @ U_r)
                    dact_row(dXt[u : 2 * u], dpost[u : 2 * u], Rt, ract)
                copy_row(dZR[t, b], dxp[t, b, : 2 * u])
            # Hd @ U_zr
            np.dot(dZR[t, b0:b1], U_zr_T, dHt_rec[b0:b1])
        for b in range(b0, b1):
            if is_real(mask, t, b):
                for j in range(u):
                    dHt_rec[b, j] += dHd[b, j]
                # Hd = H_{t-1} * rmask
                dropped_row(dHt[b], dHt_rec[b], rmask, b)
                flush_row(dHt[b], tiny)


def gru_forward(xp, U, h0, b_rec=None, reset_after=True, mask=None, rmask=None,
                activation="tanh", recurrent_activation="sigmoid", backwards=False,
                zero_output_for_mask=False, keep=True, X=None, W=None, b_in=None, last_only=False,
                xids=None, ids=None, table=None):
    """Run a GRU over time-major xp (T,B,3u), over X (T,B,F) projected step by step
    (xp=None; xp[t] = X[t] @ W + b_in), or over rows of a table (xp=None; xp[t, b] =
    table[ids[t, b]], table (V, 3u) = E W + b_in for an embedding E read at ids (T, B)).
    With xids (T, B), X is an embedding's table E (V, F) and the input x_t the rows
    E[xids[t]]: the fused inference reads them in place, other paths gather them first.
    Returns (out, hT, saved): out is (T,B,u), or (1,B,u) with last_only; saved is None
    with keep=False (inference)."""
    if ids is not None:
        ids, table, X, W = table_input(ids, table, U, 3)
    E = None
    if xids is not None:
        E, xids, X = embedding_view(X, xids)
    inputs, U, (h0,), mask, rmask = prepare_forward(xp, 3, U, ((h0, "h0"),), mask, rmask, X, W, b_in)
    T = inputs[-1]
    B, u = h0.shape
    G = 3 * u
    dt = h0.dtype
    reset_after = bool(reset_after)
    if b_rec is None:
        b_rec = np.zeros(G, dt)
    elif not reset_after:
        raise ValueError("b_rec is only used with reset_after=True; "
                         "with reset_after=False put the whole bias in xp")
    else:
        b_rec = np.ascontiguousarray(b_rec, dtype=dt)
        if b_rec.shape != (G,):
            raise ValueError(f"b_rec has shape {b_rec.shape}, expected {(G,)}")
    a, ra = activation_code(activation), activation_code(recurrent_activation)
    backwards, zero_output = bool(backwards), bool(zero_output_for_mask)
    fused = fused_route(a, ra, reset_after, mask, rmask, inputs[1], dt, u, keep)
    if E is not None:                                 # the fused step reads the rows in place
        inputs, xids = embedding_input(inputs, E, xids, fused, dt)
    vocab = None if ids is None else table.shape[0]
    if ids is None:
        ids, table = stand_in((0, 0), np.int64), stand_in((0, 0), dt)
    out = buffers.empty((1 if last_only else T, B, u), dt)
    n = T if keep else 1
    if fused:
        hT = h0.copy()
        xids = np.zeros((0, 0), np.int64) if xids is None else xids
        n = T if keep else 0
        ub = -(-u // UNITS) * UNITS
        if vocab is not None and ub != u:             # the tile reads 16 units a gate block
            padded = np.zeros((vocab, 3, ub), dt)
            padded[:, :, :u] = table.reshape(vocab, 3, u)
            table = padded.reshape(vocab, 3 * ub)
        gates, h_rec, aux = buffers.empty((n, B, G), dt), buffers.empty((n, B, u), dt), buffers.empty((n, B, u), dt)
        run_rows(gru_fused_rows, (inputs[1], xids, inputs[2], inputs[3], b_rec, ids, table, U, hT, rmask, backwards,
                                  out, gates, h_rec, aux, bool(keep)), B, T * B * G * (u + inputs[2].shape[0]))
    else:
        gates, h_rec, aux = buffers.empty((n, B, G), dt), buffers.empty((n, B, u), dt), buffers.empty((n, B, u), dt)
        hT = h0.copy()
        run_rows(gru_forward_kernel,
                 (*inputs[:-1], ids, table, U, hT, b_rec, mask, rmask, a, ra, reset_after, backwards, zero_output,
                  out, gates, h_rec, aux), B, T * B * G * (u + inputs[2].shape[0]))
    saved = GRUSaved(U, mask, rmask, a, ra, reset_after, backwards, zero_output,
                     gates, h_rec, aux, ids, vocab) if keep else None
    return out, hT, saved


# Largest [dU; db_rec] (floats) accumulated inside the time loop. Its own bound, above
# LSTM's: a GRU's accumulator holds no dW, and at u = 256 (197k floats, 0.8 MB, beside
# U's 0.8 MB in a 2 MB L2) the in-loop sums are faster than keeping dRec (T, B, 3u) for
# products over all steps, and that array is the train step's largest (bench/README.md).
MAX_LOOP_GRAD = 200_000


def gru_backward(saved, dout, dhT=None):
    """Gradients of the loss.  Returns (dxp, dU, dh0, db_rec); db_rec (3u,) is
    the gradient of the recurrent bias with reset_after, None otherwise. When the forward
    read a table's rows (ids), also (dtable, db_in): the table's gradient (V, 3u), each row
    the sum of dxp over the steps and samples that read it, and its column sums, the
    gradient of the bias inside the table."""
    dout, (dhT,) = prepare_backward(saved.h_rec.dtype, saved.h_rec.shape, dout,
                                    ((dhT, "dhT"),))
    T, B, G = saved.gates.shape
    u = G // 3
    dt = saved.gates.dtype
    ra_ = saved.reset_after
    # dxp takes the place of the saved gates (read before each is overwritten): one (T, B, 3u)
    # array less at the train step's peak. The saved gates are spent: backward runs once.
    dxp = saved.gates
    parts = len(chunks(B, T * B * G * u))
    # reset_after: [dU; db_rec] inside the time loop up to MAX_LOOP_GRAD, as LSTM's (no
    # (T, B, 3u) dRec kept, no product after the loop); larger layers keep dRec for products
    # over all steps, as the plain route does
    in_loop = ra_ and (u + 1) * G <= MAX_LOOP_GRAD and not paths.plain()
    dUb = buffers.empty((parts, u + 1 if in_loop else 0, G), dt)      # zeroed by the kernel
    # dL/d(matmul outputs), contiguous for the per-step and the final products:
    # reset_after: dRec for Hd @ U + b_rec; otherwise dZR for Hd @ U_zr and dHH for (R * Hd) @ U_h.
    dRec = buffers.empty((T if ra_ and not in_loop else 0, B, G), dt)
    dZR = buffers.empty((0 if ra_ else T, B, 2 * u), dt)
    dHH = buffers.empty((0 if ra_ else T, B, u), dt)
    dh0 = dhT.copy()
    run_rows(gru_backward_kernel,
             (saved.U, saved.mask, saved.rmask, saved.activation, saved.recurrent_activation, ra_,
              saved.backwards, saved.zero_output_for_mask, saved.gates, saved.h_rec, saved.aux, dout,
              dh0, dxp, dRec, dZR, dHH, dUb, _tiny(dxp), B), B, 0, parts)
    table = ()
    if saved.vocab is not None:
        # xp[t, b] = table[ids[t, b]]: each row's gradient goes to the row it read, after the
        # loop (summed inside it, the scattered updates of a table past L2 pushed U and
        # [dU; db_rec] out of the cache)
        dtable = sum_rows_by_id(saved.ids.reshape(-1), dxp.reshape(T * B, G), buffers.empty((saved.vocab, G), dt))
        table = (dtable, column_sums(dtable))
    if in_loop:
        if parts > 1:
            sum_parts(dUb, parts)
        return (dxp, dUb[0, :u], dh0, dUb[0, u]) + table
    # dU = sum_t (matmul input)^T (its output gradient): one product per block over all steps
    H = saved.h_rec.reshape(T * B, u).T
    if ra_:
        dRec2 = dRec.reshape(T * B, G)
        return (dxp, matmul(H, dRec2), dh0, column_sums(dRec2)) + table
    dU = np.empty((u, G), dt)
    dU[:, : 2 * u] = matmul(H, dZR.reshape(T * B, 2 * u))
    dU[:, 2 * u :] = matmul(saved.aux.reshape(T * B, u).T, dHH.reshape(T * B, u))
    return (dxp, dU, dh0, None) + table
