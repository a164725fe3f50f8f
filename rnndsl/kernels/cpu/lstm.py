"""LSTM forward and backprop-through-time on CPU (Keras layout, gate order i, f, c, o).

Per processing step s (input time t = s, or T-1-s with go_backwards)::

    Ht_prev_r = H_{t-1} * rmask             recurrent dropout (matmul only)
    Z  = xp[t] + Ht_prev_r @ U              xp[t] = x_t @ W + b: precomputed for all steps,
                                            or computed here step by step (input_rows)
    I  = ra(Z_i)   F = ra(Z_f)   G = a(Z_c)   O = ra(Z_o)
    C_t = F * C_{t-1} + I * G
    H_t = O * a(C_t)
    out[s] = H_t

At a padded step (mask[t, b] == 0) the row keeps H_{t-1}, C_{t-1}; its
output is H_{t-1}, or zeros with zero_output_for_mask.

Shapes: xp (T,B,4u) or X (T,B,F) with W (F,4u), U (u,4u), h0/c0 (B,u).  ``a`` = activation,
``ra`` = recurrent_activation (codes in activations.py).

NaN and inf in weights or states propagate as in float64 (activations.py, issue 15).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import literally, njit, prange, types
from numba.extending import overload

from . import parallel
from .parallel import call_strided, chunks, column_sums, matmul, part_of, run_rows, sum_parts
from .activations import (
    KERNEL_OPTIONS,
    SIGMOID,
    TANH,
    act_add_row,
    act_row,
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
    stand_in,
    smallest_normal as _tiny,
    input_rows,
    table_rows,
    out_index,
    scratch_cols,
    sigmoid_,
    step_time,
    tanh_,
)
from . import buffers, paths
from .ops import embedding_input, embedding_view, gather_rows, ids_outside, table_input
from .packed import (NB, aligned_scratch, fill_panels_transposed, packed, packed_empty, packed_panels_matmul,
                     rows_matmul, tn_accumulate)
from .lstm_fused import (fill_gate_panels, gate_blocks, gate_panels, gate_panels_empty, lstm_bptt_row, lstm_bptt_units,
                         lstm_fused_rows, lstm_step_rows, state_back, state_scratch)


class LSTMSaved(NamedTuple):
    """What lstm_backward needs.  Per-step arrays are indexed by input time t."""

    U: np.ndarray        # (u, 4u) recurrent kernel
    mask: np.ndarray     # (T, B) uint8, or empty: no mask
    rmask: np.ndarray    # (B, u) scaled dropout mask, or empty: none
    activation: int
    recurrent_activation: int
    backwards: bool
    zero_output_for_mask: bool
    gates: np.ndarray    # (T, B, 4u) post-activation I, F, G, O
    h_rec: np.ndarray    # (T, B, u) H_{t-1} * rmask, the matmul input
    c_prev: np.ndarray   # (T, B, u) C_{t-1}
    tanh_c: np.ndarray   # (T, B, u) a(C_t) of the candidate C_t
    X: np.ndarray        # (T, B, F) the per-step input, or empty (xp was given); with xids, (1, V, F)
    ids: np.ndarray      # (T, B) the table rows read (the input was a table's rows), or empty
    vocab: int           # the table's rows
    xids: np.ndarray     # (T, B): x_t = X[0][xids[t]], an embedding's rows read in place; or empty


@njit(inline="always")
def infer_row(x, z, C, H, u):
    """One row of an inference step with the default activations, in one loop:
    C = sigmoid(z_f) * C + sigmoid(z_i) * tanh(z_c);  H = sigmoid(z_o) * tanh(C), z = x + z.
    Nothing is saved, so the four gates never go to memory (13-23% less time than the
    gate blocks; a loop that also stored them for backward does not vectorise)."""
    for j in range(u):
        i = sigmoid_(x[j] + z[j])
        f = sigmoid_(x[u + j] + z[u + j])
        g = tanh_(x[2 * u + j] + z[2 * u + j])
        o = sigmoid_(x[3 * u + j] + z[3 * u + j])
        c = f * C[j] + i * g
        C[j] = c
        H[j] = o * tanh_(c)


# The routes of lstm_forward_kernel, chosen by forward_route (in Python, once a call)
GENERAL, INFER_ROW, FUSED_ROWS = 0, 1, 2


@njit(**KERNEL_OPTIONS)
def lstm_forward_kernel(xp, X, W, b_in, ids, table, U, Ht, Ct, mask, rmask, act, ract, backwards,
                        zero_output, out, gates, h_rec, c_prev, tanh_c, keep, route, b0, b1):
    """Rows b0..b1 of every step. The input projection is xp, X @ W + b_in step by step
    (input_rows), or, with ids (T, B) not empty, rows of table (table_rows); Ht, Ct hold
    h0, c0 and end as hT, cT. With keep (backward will run) the saved arrays have T
    steps, else 1 (scratch, overwritten each step); out has T steps or 1 (the last output
    only). route: GENERAL or INFER_ROW (the same loop, one fused row update); the third
    route, FUSED_ROWS (the gate math in the product's epilogue), is lstm_fused.py's
    lstm_fused_rows, a kernel of its own."""
    T = xp.shape[0] if X.shape[0] == 0 else X.shape[0]
    B, G = Ht.shape[0], U.shape[1]
    u = G // 4
    dt = Ht.dtype
    by_id = ids.shape[0] > 0
    Wp, Up = packed(W), packed(U)      # for rows_matmul, packed by this worker
    XP = aligned_scratch(B, scratch_cols(G, Wp), dt)   # this step's input projection rows
    Zr = aligned_scratch(B, scratch_cols(G, Up), dt)
    Ct_new = np.empty(u, dt)
    Ht_new = np.empty(u, dt)
    fused = route == INFER_ROW
    for s in range(T):
        t = step_time(s, T, backwards)
        k = t if keep else 0
        xt = table_rows(table, ids, XP, t, b0, b1) if by_id else input_rows(xp, X, W, Wp, b_in, XP, t, b0, b1)
        for b in range(b0, b1):
            dropped_row(h_rec[k, b], Ht[b], rmask, b)
        rows_matmul(h_rec[k, b0:b1], U, Up, Zr[b0:b1])
        o = out_index(out, s)
        for b in range(b0, b1):
            if fused:
                infer_row(xt[b], Zr[b], Ct[b], Ht[b], u)
                copy_row(out[o, b], Ht[b])
                continue
            Zt = gates[k, b]
            x = xt[b]
            act_add_row(Zt[: 2 * u], x[: 2 * u], Zr[b, : 2 * u], ract)
            act_add_row(Zt[2 * u : 3 * u], x[2 * u : 3 * u], Zr[b, 2 * u : 3 * u], act)
            act_add_row(Zt[3 * u :], x[3 * u :], Zr[b, 3 * u :], ract)
            It, Ft, Gt, Ot = Zt[:u], Zt[u : 2 * u], Zt[2 * u : 3 * u], Zt[3 * u :]
            Ct_prev = Ct[b]
            copy_row(c_prev[k, b], Ct_prev)
            for j in range(u):
                Ct_new[j] = Ft[j] * Ct_prev[j] + It[j] * Gt[j]
            act_row(tanh_c[k, b], Ct_new, act)
            aC = tanh_c[k, b]
            for j in range(u):
                Ht_new[j] = Ot[j] * aC[j]
            real = is_real(mask, t, b)
            commit_row(Ct[b], Ct_new, real)
            commit_row(Ht[b], Ht_new, real)
            emit_row(out[o, b], Ht[b], real, zero_output)


@njit(inline="always")
def general_rows(t, s, b0, b1, mask, act, ract, zero_output, gates, c_prev, tanh_c, dout, dHt, dCt, dxp,
                 dpost, daC, dCt_h, tiny):
    """Rows b0..b1 of BPTT step s (input time t), the pointwise part, for any activations and
    mask: dxp[t] = dZ_t from dHt and dCt, which become dL/dH_{t-1} through C (the product
    with U^T is the caller's) and dL/dC_{t-1}."""
    u = dHt.shape[1]
    for b in range(b0, b1):
        real = is_real(mask, t, b)
        # out[s] = H_t (or zeros)
        add_output_grad_row(dHt[b], dout[s, b], real, zero_output)
        dZt = dxp[t, b]
        if not real:
            # padded: H_t = H_{t-1}, C_t = C_{t-1}; dHt, dCt pass through
            dZt[:] = 0
            continue
        Zt = gates[t, b]
        It, Ft, Gt, Ot = Zt[:u], Zt[u : 2 * u], Zt[2 * u : 3 * u], Zt[3 * u :]
        aC = tanh_c[t, b]
        Ct_prev = c_prev[t, b]
        dH = dHt[b]
        dC = dCt[b]
        # H_t = O * a(C_t)
        for j in range(u):
            dpost[3 * u + j] = dH[j] * aC[j]
            daC[j] = dH[j] * Ot[j]
        dact_row(dCt_h, daC, aC, act)
        for j in range(u):
            dc = dC[j] + dCt_h[j]
            # C_t = F * C_{t-1} + I * G
            dpost[j] = dc * Gt[j]
            dpost[u + j] = dc * Ct_prev[j]
            dpost[2 * u + j] = dc * It[j]
            dC[j] = dc * Ft[j]                      # becomes dL/dC_{t-1}
        # I, F, O = ra(Z); G = a(Z); Z = xp[t] + Ht_prev_r @ U
        dact_row(dZt[: 2 * u], dpost[: 2 * u], Zt[: 2 * u], ract)
        dact_row(dZt[2 * u : 3 * u], dpost[2 * u : 3 * u], Gt, act)
        dact_row(dZt[3 * u :], dpost[3 * u :], Ot, ract)
        flush_row(dZt, tiny)


@njit(inline="always")
def fused_rows(t, s, b0, b1, dout, dHt, dCt, dxp, c_prev, tanh_c, tiny):
    """general_rows with the default activations and no mask, as lstm_bptt_row's vector code."""
    for b in range(b0, b1):
        lstm_bptt_row(dxp[t, b], dHt[b], dCt[b], dout[s, b], c_prev[t, b], tanh_c[t, b], tiny)


def backward_rows(fused, t, s, b0, b1, mask, act, ract, zero_output, gates, c_prev, tanh_c, dout, dHt, dCt, dxp,
                  dpost, daC, dCt_h, tiny):
    """fused_rows where fused, else general_rows. With fused a constant, only the code it
    picks is compiled (a first run waits for the compiling)."""


@overload(backward_rows, jit_options=dict(error_model="numpy"), prefer_literal=True, inline="always")
def _backward_rows(fused, t, s, b0, b1, mask, act, ract, zero_output, gates, c_prev, tanh_c, dout, dHt, dCt, dxp,
                   dpost, daC, dCt_h, tiny):
    const = isinstance(fused, types.BooleanLiteral)

    def impl(fused, t, s, b0, b1, mask, act, ract, zero_output, gates, c_prev, tanh_c, dout, dHt, dCt, dxp,
             dpost, daC, dCt_h, tiny):
        if fused:
            fused_rows(t, s, b0, b1, dout, dHt, dCt, dxp, c_prev, tanh_c, tiny)
        else:
            general_rows(t, s, b0, b1, mask, act, ract, zero_output, gates, c_prev, tanh_c, dout, dHt, dCt, dxp,
                         dpost, daC, dCt_h, tiny)

    def impl_fused(fused, t, s, b0, b1, mask, act, ract, zero_output, gates, c_prev, tanh_c, dout, dHt, dCt, dxp,
                   dpost, daC, dCt_h, tiny):
        fused_rows(t, s, b0, b1, dout, dHt, dCt, dxp, c_prev, tanh_c, tiny)

    def impl_general(fused, t, s, b0, b1, mask, act, ract, zero_output, gates, c_prev, tanh_c, dout, dHt, dCt, dxp,
                     dpost, daC, dCt_h, tiny):
        general_rows(t, s, b0, b1, mask, act, ract, zero_output, gates, c_prev, tanh_c, dout, dHt, dCt, dxp,
                     dpost, daC, dCt_h, tiny)

    if not const:
        return impl
    return impl_fused if fused.literal_value else impl_general


@njit(**KERNEL_OPTIONS)
def lstm_backward_kernel(U, mask, rmask, act, ract, backwards, zero_output, gates, h_rec, c_prev, tanh_c, X, xids,
                         ids, dout, dHt, dCt, dxp, dWU_parts, dtable_parts, W, dX, tiny, fused, rows, b0, b1):
    """Rows b0..b1: fills dxp (T,B,4u); dHt, dCt hold dhT, dcT and end as dh0, dc0. Adds these
    rows' share of the weight gradients to dWU = dWU_parts[p] (F' + u + 1, 4u), p the part of
    rows 0..rows that begins at b0 (parallel.part_of): [dW; dU; db], dW only when
    F' = F (X given; F' = 0 leaves it to the caller), step by step while dZ_t is in cache
    (with xids (T, B) not empty, x_t is the rows xids[t] of X[0], an embedding's table: each
    step's rows are copied into a scratch of this worker's for X^T dZ);
    dWU with no rows: none (the caller takes products over all steps). With ids (T, B) not
    empty (the input was rows of a table), sums each row's dZ into its row of dtable =
    dtable_parts[p] (V, 4u), which this worker zeroes first (its own, pages already mapped
    where it is reused). With dX (T, B, F) not empty, also these rows of the input's gradient
    dX = dxp W^T, after the loop, while this worker's dxp rows are still in its cache.
    fused (default activations, no mask): each row's step by lstm_bptt_row's vector code;
    compiled for each value, so that only the code a model runs is compiled."""
    literally(fused)
    T, B, G = gates.shape
    u = G // 4
    dt = gates.dtype
    UT = U.T
    UTp = packed(U.T)                  # for rows_matmul, packed by this worker
    dHt_rec = aligned_scratch(B, scratch_cols(u, UTp), dt)
    dpost = np.empty(G, dt)       # dL/d(I, F, G, O) after their activations
    daC = np.empty(u, dt)         # dL/d a(C_t)
    dCt_h = np.empty(u, dt)       # dL/dC_t through H_t
    # dL/dH_{t-1} written by the product straight into dHt: no dropout mask to apply, and the
    # fused step flushes what it carries on (dZ and dC; a subnormal dH can then last one
    # step, not a hundred). The copy and flush it saves were 5% of seq2seq's backward step.
    direct = fused and rmask.shape[0] == 0
    part = part_of(b0, rows, dWU_parts.shape[0])
    dWU, dtable = dWU_parts[part], dtable_parts[part]
    if ids.shape[0] > 0:
        dtable[:, :] = 0
    dWU[:, :] = 0                      # this worker's own accumulator
    nx = dWU.shape[0] - u - 1          # rows of dW in dWU: F, or 0
    in_place = xids.shape[0] > 0 and nx > 0
    XA = aligned_scratch(B if in_place else 0, nx, dt)     # the rows of a step read in place
    XB = aligned_scratch(B if in_place else 0, nx, dt)
    pend = -1                          # a step whose weight gradients are still to add
    for s in range(T - 1, -1, -1):
        t = step_time(s, T, backwards)
        backward_rows(fused, t, s, b0, b1, mask, act, ract, zero_output, gates, c_prev, tanh_c, dout, dHt, dCt,
                      dxp, dpost, daC, dCt_h, tiny)
        # Z = ... + Ht_prev_r @ U  (padded rows of dxp are zero)
        if direct:
            rows_matmul(dxp[t, b0:b1], UT, UTp, dHt[b0:b1])
        else:
            rows_matmul(dxp[t, b0:b1], UT, UTp, dHt_rec[b0:b1])
        if ids.shape[0] > 0:
            # Z = table[ids[t]] + ...: each row's dZ goes to the table row it read
            for b in range(b0, b1):
                add_row(dtable[ids[t, b]], dxp[t, b])
        # Z = x_t @ W + Ht_prev_r @ U + b: rows of X^T dZ, H^T dZ, sum dZ, two steps a pass
        # (this one and the one kept pending), so the accumulator is read and written half
        # as often
        if dWU.shape[0] > 0 and (pend >= 0 or s == 0):
            p = pend if pend >= 0 else t
            n2 = b1 if pend >= 0 else b0          # the second pair: this step, or no rows
            if in_place:
                for b in range(b0, b1):
                    copy_row(XA[b], X[0, xids[p, b]])
                for b in range(b0, n2):
                    copy_row(XB[b], X[0, xids[t, b]])
                tn_accumulate(XA[b0:b1], dxp[p, b0:b1], XB[b0:n2], dxp[t, b0:n2], dWU[:nx])
            elif nx > 0:
                tn_accumulate(X[p, b0:b1], dxp[p, b0:b1], X[t, b0:n2], dxp[t, b0:n2], dWU[:nx])
            tn_accumulate(h_rec[p, b0:b1], dxp[p, b0:b1], h_rec[t, b0:n2], dxp[t, b0:n2], dWU[nx:nx + u])
            for b in range(b0, b1):
                add_row(dWU[nx + u], dxp[p, b])
                if pend >= 0:
                    add_row(dWU[nx + u], dxp[t, b])
            pend = -1
        elif dWU.shape[0] > 0:
            pend = t
        for b in range(b0, b1):
            if not direct and is_real(mask, t, b):
                # Ht_prev_r = H_{t-1} * rmask
                dropped_row(dHt[b], dHt_rec[b], rmask, b)
                flush_row(dHt[b], tiny)
                if not fused:                   # lstm_bptt_row flushed it already
                    flush_row(dCt[b], tiny)
    if dX.shape[0] > 0:
        # Z = x_t W + ...: dX_t = dZ_t W^T
        WT = W.T
        WTp = packed(WT)
        for t in range(T):
            rows_matmul(dxp[t, b0:b1], WT, WTp, dX[t, b0:b1])


@njit(parallel=True, **KERNEL_OPTIONS)
def lstm_forward_columns(X, xids, W, b, U, xp, Ht, Ct, backwards, out, gates, h_rec, c_prev, tanh_c, keep, Wq, Uq,
                         parts):
    """A large float32 LSTM (default activations, no mask, no recurrent dropout, per-step X):
    every worker takes all the rows and its own range of the gate-interleaved panels (units),
    one step at a time, the steps joined by the prange's end. A worker then reads only its
    share of W and U each step (by rows, each reads all of them from L3), and each panel
    serves all the rows (see UNIT_SPLIT_BYTES; figures in bench/README.md).
    The packing is split the same way. Ht, Ct hold h0, c0 and end as hT, cT; out keeps
    every step or the last. X and xids as in lstm_fused_rows. With keep (training, u a
    multiple of 8) each worker also saves its units' gates, h_rec = H_{t-1}, c_prev and
    tanh_c for lstm_backward, as lstm_fused_rows does. With xp (T, B, 4u) not empty (u a
    multiple of 8; W then has no rows), the input term of step t is xp[t] + b, xp[t] = x_t W
    projected before for all steps (the bias is added here, each worker to its units).
    Wq, Uq: packed_gates(W), packed_gates(U) made before (kept between calls), or with no
    panels: the workers pack them, each its own panels."""
    gather = xids.shape[0] > 0
    T = xids.shape[0] if gather else X.shape[0]
    B, u = Ht.shape
    by_xp = xp.shape[0] > 0
    if Uq.shape[0] == 0:
        Wq, Uq = gate_panels_empty(W), gate_panels_empty(U)
        n = Uq.shape[0]
        for p in prange(parts):
            fill_gate_panels(W, Wq, n * p // parts, n * (p + 1) // parts)
            fill_gate_panels(U, Uq, n * p // parts, n * (p + 1) // parts)
    n = Uq.shape[0]
    width = n * (NB // 4)
    bt = gate_blocks(b, width)
    row0 = np.zeros(B, np.int64)                  # the bias's row, for every row
    own = np.arange(B)
    Hs, Cs = state_scratch(Ht, Ct, 0, B, width)
    none = Cs[:0]
    last = out.shape[0] == 1
    for s in range(T):
        t = T - 1 - s if backwards else s
        cur = (s % 2) * B
        nxt = B - cur
        src, xrows = (X[0], xids[t]) if gather else (X[t], own)
        bias, brows = (xp[t], own) if by_xp else (bt, row0)
        for p in prange(parts):
            p0, p1 = n * p // parts, n * (p + 1) // parts
            j0, j1 = p0 * (NB // 4), min(p1 * (NB // 4), u)
            if by_xp:
                # + b on this worker's units of xp[t] (its tiles read no others), in cache
                for r in range(B):
                    for g in range(4):
                        for j in range(g * u + j0, g * u + j1):
                            bias[r, j] += b[j]
            if keep:
                # H_{t-1} of this worker's units (which it wrote itself the step before)
                for r in range(B):
                    h_rec[t, r, j0:j1] = Hs[cur + r, j0:j1]
                lstm_step_rows(src, xrows, Wq, Hs[cur:cur + B], Uq, bias, brows, Cs, Hs[nxt:nxt + B], gates[t],
                               c_prev[t], tanh_c[t], p0, p1)
            else:
                lstm_step_rows(src, xrows, Wq, Hs[cur:cur + B], Uq, bias, brows, Cs, Hs[nxt:nxt + B], none, none,
                               none, p0, p1)
        if not last or s == T - 1:
            copy_rows(out[0 if last else s], Hs[nxt:nxt + B, :u])
    state_back(Hs, Cs, Ht, Ct, 0, B, T)


@njit(parallel=True, **KERNEL_OPTIONS)
def lstm_backward_columns(U, backwards, c_prev, tanh_c, dout, dHt, dCt, dxp, tiny, parts):
    """BPTT of a large float32 LSTM (default activations, no mask, no recurrent dropout) split
    by units, as lstm_forward_columns: each worker all the rows and its own units j (whole
    panels of 32), one step at a time, the steps joined by the prange's end. In step s, a
    worker first takes its columns of dL/dH_t = dZ_{t+1} U^T (all of dZ_{t+1}, complete after
    the join, against its own panels of U^T: its share of U each step), then the pointwise
    step of its units (lstm_bptt_units), writing their four gate columns of dZ_t = dxp[t]
    over the saved gates. dHt, dCt hold dhT, dcT and end as dh0, dc0."""
    T, B, G = dxp.shape
    u = G // 4
    UTq = packed_empty(G, u, dxp.dtype)           # pack(U.T), each worker its own panels
    n = UTq.shape[0]
    for p in prange(parts):
        fill_panels_transposed(U, UTq, n * p // parts, n * (p + 1) // parts)
    prev = -1                                     # the step whose dZ feeds dL/dH of this one
    for s in range(T - 1, -1, -1):
        t = step_time(s, T, backwards)
        for p in prange(parts):
            q0, q1 = n * p // parts, n * (p + 1) // parts
            if prev >= 0:
                packed_panels_matmul(dxp[prev], UTq, dHt, q0, q1)
            j0, j1 = q0 * NB, min(q1 * NB, u)
            for b in range(B):
                lstm_bptt_units(dxp[t, b], dHt[b], dCt[b], dout[s, b], c_prev[t, b], tanh_c[t, b], tiny, j0, j1)
        prev = t
    if T > 0:
        for p in prange(parts):
            packed_panels_matmul(dxp[prev], UTq, dHt, n * p // parts, n * (p + 1) // parts)


def bptt_parts(F: int, u: int, itemsize: int, work: int) -> int:
    """Workers for lstm_backward_columns (as unit_parts, at most one per panel of 32 units)."""
    return min(unit_parts(F, u, itemsize, work), -(-u // NB))


# Packed weights (bytes of W and U) from which a float32 inference runs the LSTM split by
# units rather than by batch rows (lstm_forward_columns): past the core's L2 every step
# streams them from L3, all of them on each core when split by rows; below it the rows win,
# a unit split ending each step in a join of the workers (bench/README.md, "Measurements
# behind the code").
UNIT_SPLIT_BYTES = 2 << 20


# Batch rows up to which training (the forward that saves, and BPTT) is split by units past
# UNIT_SPLIT_BYTES: at batch 8 each weight byte read a step serves only 4 rows a worker when
# split by rows; at big-lstm's 128 rows the two splits ran even (bench/README.md).
TRAIN_UNIT_MAX_ROWS = 32

# Batch rows up to which lstm_forward_columns takes the input projection x_t W + b of all
# steps from one product before the loop: a step then streams U alone, not W as well, for
# only these few rows (bench/README.md, issue 22's wide workload).
XP_MAX_ROWS = 16


def unit_parts(F: int, u: int, itemsize: int, work: int) -> int:
    """Workers for lstm_forward_columns: one per core, at most one per panel of 8 units;
    1 (split by rows, or not at all) for weights that fit L2 or too little work."""
    n = -(-u // (NB // 4))
    if (F + u) * 4 * u * itemsize <= UNIT_SPLIT_BYTES or work < parallel.MIN_SPLIT_WORK:
        return 1
    return max(1, min(parallel.WORKERS, n))


def lstm_forward(xp, U, h0, c0, mask=None, rmask=None, activation="tanh",
                 recurrent_activation="sigmoid", backwards=False,
                 zero_output_for_mask=False, keep=True, X=None, W=None, b_in=None, last_only=False,
                 ids=None, table=None, xids=None, derive=None, ready=None):
    """Run an LSTM over time-major xp (T,B,4u), over X (T,B,F) projected step by step
    (xp=None; xp[t] = X[t] @ W + b_in), or over rows of a table (xp=None; xp[t, b] =
    table[ids[t, b]], table (V, 4u) = E W + b for an embedding E read at ids (T, B)).
    With xids (T, B), X is an embedding's table E (V, F) and the input x_t the rows
    E[xids[t]]: the fused step (FUSED_ROWS) reads them in place, in inference and in
    training (where saved keeps E and xids, and BPTT reads them there too); other routes
    gather them first.
    Returns (out, hT, cT, saved): out is (T,B,u), or (1,B,u) with last_only; saved is
    None with keep=False (inference: nothing kept). Float32 with the default activations, no
    mask, no recurrent dropout and packed weights past UNIT_SPLIT_BYTES runs split by units
    (lstm_forward_columns; training at up to TRAIN_UNIT_MAX_ROWS rows). derive(key, sources,
    make) -> array, in inference: where the fused routes' packed W and U may be kept between
    calls while these arrays are unchanged (RunCtx.derived); None: packed every call.
    ready: a list, in inference, that receives the call made ready to run again (RowsRun)
    where it ran by rows over a per-step X with no mask, ids or xids; else left empty."""
    W0, U0 = W, U                                     # what kept panels are made from
    if ids is not None:
        ids, table, X, W = table_input(ids, table, U, 4)
    E = None
    if xids is not None:
        E, xids, X = embedding_view(X, xids)
    inputs, U, (h0, c0), mask, rmask = prepare_forward(
        xp, 4, U, ((h0, "h0"), (c0, "c0")), mask, rmask, X, W, b_in)
    a, ra = activation_code(activation), activation_code(recurrent_activation)
    dt = h0.dtype
    u = h0.shape[1]
    route = forward_route(a, ra, mask, inputs[1], dt, u, keep, ids is not None)
    # the fused float32 step (lstm_fused.py) reads E's rows in place, by rows or by units
    if E is not None:                                 # the other routes read the rows gathered
        inputs, xids = embedding_input(inputs, E, xids, route == FUSED_ROWS, dt)
    else:
        xids = stand_in((0, 0), np.int64)
    if ids is None:
        ids, table = stand_in((0, 0), np.int64), stand_in((0, 0), dt)
    backwards, zero_output = bool(backwards), bool(zero_output_for_mask)
    T = inputs[-1]
    B, u = h0.shape
    G = 4 * u
    n = T if keep else 1
    shapes = ((1 if last_only else T, B, u), (n, B, G), (n, B, u))
    F = inputs[2].shape[0]
    # inference on the fused route: the packed W and U may be kept between calls
    kept = route == FUSED_ROWS and not keep and rmask.shape[0] == 0 and derive is not None
    Wq = Uq = stand_in((0, 0, 0), dt)                # no panels: the kernel packs W and U itself
    if kept:
        Uq = derive(("lstm U panels", id(U0)), (U0,), lambda: gate_panels(U))

    def w_panels(Wk):
        """Wk's panels, kept as W's; a Wk with no rows (the input term came another way: a
        table, or xp) has empty ones, made each call (cheap; kept under W's key they would
        collide with W's real panels when the route changes)."""
        return gate_panels(Wk) if Wk.shape[0] == 0 else \
            derive(("lstm W panels", id(W0)), (W0,), lambda: gate_panels(Wk))
    if route == FUSED_ROWS and rmask.shape[0] == 0 and F > 0 and ids.shape[0] == 0 and \
            (not keep or B <= TRAIN_UNIT_MAX_ROWS):
        parts = unit_parts(F, u, dt.itemsize, T * B * G * (u + F))
        if parts > 1:
            Wk, xpk = inputs[2], stand_in((0, B, G), dt)
            if B <= XP_MAX_ROWS and u % 8 == 0 and xids.shape[0] == 0:
                # few rows a step: x_t W + b for all steps in one product (W read once, not every step)
                xpk = buffers.empty((T, B, G), dt)
                matmul(np.ascontiguousarray(inputs[1]).reshape(T * B, F), Wk, xpk.reshape(T * B, G))
                Wk = stand_in((0, G), dt)
            if kept:
                Wq = w_panels(Wk)
            out, gates, h_rec, c_prev, tanh_c, hT, cT = _arrays(shapes, h0, c0)
            # X typed any-layout: the same code for a time-major array and a view of batch-major data
            call_strided(lstm_forward_columns, (inputs[1], xids, Wk, inputs[3], U, xpk, hT, cT, backwards, out,
                                                gates, h_rec, c_prev, tanh_c, bool(keep), Wq, Uq, parts),
                         strided=(0,))
            return out, hT, cT, _saved(keep, U, mask, rmask, a, ra, backwards, zero_output, gates, h_rec, c_prev,
                                       tanh_c, inputs[1], ids, table, xids)
    work = T * B * G * (u + F)
    if route == FUSED_ROWS:
        if kept:
            Wq = w_panels(inputs[2])
        run = RowsRun(lstm_fused_rows, (inputs[1], xids, inputs[2], inputs[3], U, ids, table, None, None, rmask,
                                        backwards, None, None, None, None, None, bool(keep), Wq, Uq), 0, 5, 7, 11,
                      shapes, work)
    else:
        run = RowsRun(lstm_forward_kernel,
                      (inputs[0], inputs[1], inputs[2], inputs[3], ids, table, U, None, None, mask, rmask, a, ra,
                       backwards, zero_output, None, None, None, None, None, bool(keep), route), 1, 4, 7, 15, shapes,
                      work)
    out, hT, cT, (gates, h_rec, c_prev, tanh_c) = run.start(inputs[1], h0, c0, ids, table.shape[0])
    # (deferred inside parallel.together(): nothing below reads what the kernel writes)
    if ready is not None and not keep and xp is None and mask.shape[0] == 0 and rmask.shape[0] == 0 and \
            xids.shape[0] == 0:
        ready.append(run)
    return out, hT, cT, _saved(keep, U, mask, rmask, a, ra, backwards, zero_output, gates, h_rec, c_prev, tanh_c,
                               inputs[1], ids, table, xids)


def _arrays(shapes, h0, c0) -> tuple:
    """A forward's outputs and step arrays (out, gates, h_rec, c_prev, tanh_c) of these
    shapes ((out), (steps, B, 4u), (steps, B, u)), and hT, cT starting as copies of h0, c0."""
    dt = h0.dtype
    out_shape, gate_shape, unit_shape = shapes
    return (buffers.empty(out_shape, dt), buffers.empty(gate_shape, dt), buffers.empty(unit_shape, dt),
            buffers.empty(unit_shape, dt), buffers.empty(unit_shape, dt), h0.copy(), c0.copy())


class RowsRun:
    """lstm_forward's run by batch rows, made ready to run again: the kernel's compiled code
    and every argument but the input (X, or a table's row ids), the state and the arrays a
    run writes. For inference repeated on inputs of the same shape and layout, at the same
    weights (the packed panels and the projected table it holds are theirs): `again` skips
    lstm_forward's checks, route choice and code lookup (runtime/cpu/recurrent.py keeps them
    per layer). Inside parallel.together() its run is deferred as lstm_forward's is.

    args: the kernel's arguments, with X at x_at, the table's row ids at ids_at (empty: X is
    the input), hT and cT at h_at and h_at + 1, and the arrays a run writes at out_at ..
    out_at + 4 (out, gates, h_rec, c_prev, tanh_c); the first run keeps them but for the
    input, the state and those arrays."""

    __slots__ = ("kernel", "args", "x_at", "ids_at", "h_at", "out_at", "shapes", "work", "parts", "entry",
                 "address", "x_sig", "h_sig", "settings", "vocab", "by_ids")

    def __init__(self, kernel, args: tuple, x_at: int, ids_at: int, h_at: int, out_at: int, shapes: tuple,
                 work: int):
        self.kernel, self.args = kernel, args
        self.x_at, self.ids_at, self.h_at, self.out_at = x_at, ids_at, h_at, out_at
        self.shapes, self.work = shapes, work
        self.entry = self.address = self.x_sig = self.h_sig = self.settings = None
        self.parts = self.vocab = 0
        self.by_ids = False             # whether its input is a table's row ids (again's ids) rather than X

    def start(self, X, h0, c0, ids, vocab: int) -> tuple:
        """The first run, on the arrays lstm_forward checked (ids: the table's row ids, or
        empty; vocab: the table's rows): (out, hT, cT, step arrays)."""
        B = h0.shape[0]
        arrays = _arrays(self.shapes, h0, c0)
        args = self._args(X, ids, arrays)
        self.by_ids = ids.shape[0] > 0
        kept = list(args)                # X stays where ids are the input (a stand-in with no columns)
        kept[self.h_at:self.h_at + 2], kept[self.out_at:self.out_at + 5] = (None,) * 2, (None,) * 5
        kept[self.ids_at if self.by_ids else self.x_at] = None
        self.args = tuple(kept)
        self.parts = len(chunks(B, self.work))
        if not hasattr(self.kernel, "overloads"):     # NUMBA_DISABLE_JIT: never run again (see fits)
            run_rows(self.kernel, args, B, self.work, defer=True)
        else:
            self.entry, self.address = parallel.compiled(self.kernel, args)
            self.x_sig = (type(X), X.dtype, X.shape, X.strides, ids.shape)
            self.h_sig = (h0.dtype, h0.shape)
            self.settings = (parallel.WORKERS, paths.plain())
            self.vocab = vocab
            parallel.run_compiled(self.entry, self.address, args, B, self.work, self.parts, defer=True)
        return arrays[0], arrays[5], arrays[6], arrays[1:5]

    def fits(self, X, h0, c0, ids=None) -> bool:
        """Whether `again` may run on these: X (None with ids: the table's row ids, a C int64
        array of rows of the table) like the first run's in type, shape and layout, as are
        h0 and c0; the workers and the route setting (paths.plain) as they were."""
        if self.entry is None or (parallel.WORKERS, paths.plain()) != self.settings or (ids is None) == self.by_ids:
            return False
        if ids is None:
            if (type(X), X.dtype, X.shape, X.strides, self.x_sig[4]) != self.x_sig:
                return False
        elif type(ids) is not np.ndarray or ids.dtype != np.int64 or ids.shape != self.x_sig[4] or \
                not ids.flags.c_contiguous or ids_outside(ids.reshape(-1), self.vocab):
            return False
        return all(type(s) is np.ndarray and (s.dtype, s.shape) == self.h_sig and s.flags.c_contiguous
                   for s in (h0, c0))

    def again(self, X, h0, c0, ids=None) -> tuple:
        """(out, hT, cT) of a run on new X (or ids), h0, c0 that fit (see fits)."""
        arrays = _arrays(self.shapes, h0, c0)
        parallel.run_compiled(self.entry, self.address, self._args(X, ids, arrays), h0.shape[0], self.work,
                              self.parts, defer=True)
        return arrays[0], arrays[5], arrays[6]

    def _args(self, X, ids, arrays) -> tuple:
        a = list(self.args)
        if X is not None:
            a[self.x_at] = X
        if ids is not None:
            a[self.ids_at] = ids
        a[self.h_at], a[self.h_at + 1] = arrays[5], arrays[6]
        a[self.out_at:self.out_at + 5] = arrays[:5]
        return tuple(a)


def _saved(keep, U, mask, rmask, a, ra, backwards, zero_output, gates, h_rec, c_prev, tanh_c, X, ids, table, xids):
    """What lstm_backward reads (None for inference)."""
    return LSTMSaved(U, mask, rmask, a, ra, backwards, zero_output,
                     gates, h_rec, c_prev, tanh_c, X, ids, table.shape[0], xids) if keep else None


def forward_route(a: int, ra: int, mask, X, dtype, u: int, keep: bool, by_id: bool) -> int:
    """lstm_forward_kernel's route: FUSED_ROWS for float32 with the default activations, no
    mask and a per-step input X (or a table's rows), where the fused step can save for
    backward (u a multiple of 8) or nothing is saved; INFER_ROW for other inference with the
    default activations and no mask; else GENERAL. GENERAL everywhere on the plain route."""
    if paths.plain() or a != TANH or ra != SIGMOID or mask.shape[0] != 0:
        return GENERAL
    if X.shape[0] != 0 and dtype == np.float32 and (u % 8 == 0 or not (keep or by_id)):
        return FUSED_ROWS
    return GENERAL if keep else INFER_ROW


# Largest [dW; dU; db] (floats) accumulated inside the time loop: it is read and written
# every step, so it must stay in the core's L2. Larger layers take products over all
# steps, which run near the machine's peak at their sizes (an accumulator past L2 inside
# the loop slows the train step: bench/README.md).
MAX_LOOP_GRAD = 160_000


def lstm_backward(saved, dout, dhT=None, dcT=None, weights=False, W=None, defer=False):
    """Gradients of the loss.  Returns (dxp, dU, dh0, dc0), and with weights (the forward
    had X, or a table) also (dW, db): the gradients of W, or of the table, and of the input
    bias (with a table: the part of it that reached the table). With W (F, 4u), the input
    kernel of a forward that took X, last of all the input's gradient dX = dxp W^T (T, B, F),
    each worker's rows after its time loop (cheaper than a separate product, whose row
    split has each core read dxp rows the other one wrote).
    For layers up to
    MAX_LOOP_GRAD they are computed inside the time loop (a worker's rows of one step at a
    time, while dZ_t is in cache: faster than products over all steps at such sizes); else
    by those products. Where the forward splits by units (float32, default activations, no
    mask or recurrent dropout, weights past UNIT_SPLIT_BYTES, up to TRAIN_UNIT_MAX_ROWS rows)
    so does BPTT (lstm_backward_columns), and the weight and input gradients are products
    over all steps.

    defer: inside parallel.together(), the time loop may wait for the block's end where what
    it writes is what this returns (the weight gradients accumulated inside the loop, in one
    accumulator: where each of the block's two calls gets one worker): the caller reads none
    of the returned arrays before the block ends (a bidirectional layer's halves run at once).

    Consumes saved: dxp is written over saved.gates (step t's gates are read only by step t
    of the backward pass, each element before its gradient replaces it), so training keeps
    no (T, B, 4u) array besides the saved activations."""
    dout, (dhT, dcT) = prepare_backward(
        saved.gates.dtype, saved.h_rec.shape, dout, ((dhT, "dhT"), (dcT, "dcT")))
    T, B, G = saved.gates.shape
    u = G // 4
    X = saved.X
    if weights and X.shape[0] == 0:
        raise ValueError("lstm_backward(weights=True) needs the forward pass to have taken X")
    nx = X.shape[2] if weights else 0
    xshape = (T, B, X.shape[2])                 # the input's shape (X itself is a table with xids)
    dxp = saved.gates
    dh0, dc0 = dhT.copy(), dcT.copy()
    by_id = saved.ids.shape[0] > 0
    want_dx = W is not None
    if want_dx:
        W = np.ascontiguousarray(W)
        if W.dtype != dxp.dtype or W.shape != (xshape[2], G) or by_id or X.shape[0] == 0:
            raise ValueError(f"W must be the ({X.shape[2]}, {G}) {dxp.dtype} input kernel of a forward that "
                             f"took X, got {W.dtype} {W.shape}")
    fused = (saved.activation == TANH and saved.recurrent_activation == SIGMOID and saved.mask.shape[0] == 0
             and not paths.plain())
    if fused and dxp.dtype == np.float32 and saved.rmask.shape[0] == 0 and not by_id and B <= TRAIN_UNIT_MAX_ROWS:
        F = X.shape[2] if X.shape[0] > 0 else 0
        parts = bptt_parts(F, u, dxp.dtype.itemsize, T * B * G * (u + F))
        if parts > 1:
            lstm_backward_columns(saved.U, saved.backwards, saved.c_prev, saved.tanh_c, dout, dh0, dc0, dxp,
                                  _tiny(dxp), parts)
            # the weight gradients, and with W the input's, by products over all steps
            res = (dxp, *_over_all_steps(saved, dxp, weights, dh0, dc0))
            if not want_dx:
                return res
            dX = buffers.empty(xshape, dxp.dtype)
            matmul(dxp.reshape(T * B, G), np.ascontiguousarray(W.T), dX.reshape(T * B, -1))
            return res + (dX,)
    work = T * B * G * (u + nx)
    in_loop = (nx + u + 1) * G <= MAX_LOOP_GRAD and not paths.plain()
    # held back only where nothing below reads what the loop writes (products over all steps
    # of dxp would), and in one part: each half of two gets one worker (or the work is too
    # small to split), so there is no sum of the parts' accumulators to make afterwards
    defer = defer and in_loop and parallel.holding() and (parallel.WORKERS // 2 <= 1 or len(chunks(B, work)) == 1)
    parts = 1 if defer else len(chunks(B, work))
    dWU = buffers.empty((parts, nx + u + 1 if in_loop else 0, G), dxp.dtype)      # zeroed by the kernel
    dtable = buffers.empty((parts, saved.vocab, G) if by_id else (parts, 0, 0), dxp.dtype)   # zeroed by the kernel
    if want_dx:
        dX = buffers.empty(xshape, dxp.dtype)
    else:
        W, dX = stand_in((0, G), dxp.dtype), stand_in((0, 0, 0), dxp.dtype)
    args = (saved.U, saved.mask, saved.rmask, saved.activation, saved.recurrent_activation, saved.backwards,
            saved.zero_output_for_mask, saved.gates, saved.h_rec, saved.c_prev, saved.tanh_c, X, saved.xids, saved.ids,
            dout, dh0, dc0, dxp, dWU, dtable, W, dX, _tiny(dxp), fused, B)
    run_rows(lstm_backward_kernel, args, B, work, parts, defer=defer)
    if parts > 1:
        sum_parts(dWU, parts)
        sum_parts(dtable, parts)
    if in_loop:
        dWU = dWU[0]                                        # the parts' sum
        res = (dWU[nx:nx + u], dh0, dc0) + ((dWU[:nx], dWU[nx + u]) if weights else ())
    else:
        res = _over_all_steps(saved, dxp, weights, dh0, dc0)
    if weights and by_id:
        res = res[:3] + (dtable[0],) + res[4:]              # dW: the table's gradient, the parts' sum
    res = (dxp,) + res
    return res + (dX,) if want_dx else res


def _over_all_steps(saved, dxp, weights, dh0, dc0) -> tuple:
    """(dU, dh0, dc0), and with weights (dW, db), the weight gradients by products over all
    steps of dZ = dxp (T, B, 4u): dU = H^T dZ, dW = X^T dZ, db = sum dZ."""
    T, B, G = dxp.shape
    dZ = dxp.reshape(T * B, G)
    res = (matmul(saved.h_rec.reshape(T * B, G // 4).T, dZ), dh0, dc0)
    if weights:
        X = saved.X
        if saved.xids.shape[0] > 0:                  # an embedding's rows, read in place so far
            X = gather_rows(X[0], saved.xids, buffers.empty((T, B, X.shape[2]), X.dtype))
        res += (matmul(X.reshape(T * B, X.shape[2]).T, dZ), column_sums(dZ))
    return res
