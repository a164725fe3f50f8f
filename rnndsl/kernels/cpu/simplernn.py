"""SimpleRNN forward and backprop-through-time on CPU (Keras layout).

Per processing step s (input time t = s, or T-1-s with go_backwards)::

    Ht_prev_r = H_{t-1} * rmask         recurrent dropout (Keras 3: prev_output * mask)
    H_t = a(xp[t] + Ht_prev_r @ U)      xp[t] = x_t @ W + b: precomputed for all steps,
                                        or computed here step by step (input_rows)
    out[s] = H_t

At a padded step (mask[t, b] == 0) the row keeps H_{t-1}; its output is
H_{t-1}, or zeros with zero_output_for_mask.

Shapes: xp (T,B,u), U (u,u), h0 (B,u).  ``a`` = activation (codes in
activations.py).

NaN and inf in weights or states propagate as in float64 (activations.py, issue 15).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from .parallel import matmul, run_rows
from .activations import (
    KERNEL_OPTIONS,
    act_add_row,
    activation_code,
    add_output_grad_row,
    commit_row,
    flush_row,
    dact_row,
    dropped_row,
    emit_row,
    is_real,
    prepare_backward,
    prepare_forward,
    smallest_normal as _tiny,
    input_rows,
    out_index,
    scratch_cols,
    step_time,
)
from . import buffers
from .packed import aligned_scratch, packed, rows_matmul


class SimpleRNNSaved(NamedTuple):
    """What simplernn_backward needs.  Per-step arrays are indexed by input time t."""

    U: np.ndarray        # (u, u) recurrent kernel
    mask: np.ndarray     # (T, B) uint8, or empty: no mask
    rmask: np.ndarray    # (B, u) scaled dropout mask, or empty: none
    activation: int
    backwards: bool
    zero_output_for_mask: bool
    h_rec: np.ndarray    # (T, B, u) H_{t-1} * rmask, the matmul input
    h_new: np.ndarray    # (T, B, u) candidate H_t = a(...) (also at padded steps)


@njit(**KERNEL_OPTIONS)
def simplernn_forward_kernel(xp, X, W, b_in, U, Ht, mask, rmask, act, backwards, zero_output,
                             out, h_rec, h_new, b0, b1):
    """Rows b0..b1 of every step; the input projection is xp, or X @ W + b_in step by
    step (input_rows); Ht holds h0 and ends as hT. The saved arrays have T steps when
    backward will run, else 1 (scratch); out has T steps or 1 (the last output only)."""
    T = xp.shape[0] if X.shape[0] == 0 else X.shape[0]
    B, u = Ht.shape
    dt = Ht.dtype
    keep = h_new.shape[0] == T
    Wp, Up = packed(W), packed(U)      # for rows_matmul, packed by this worker
    XP = aligned_scratch(B, scratch_cols(u, Wp), dt)   # this step's input projection rows
    Zr = aligned_scratch(B, scratch_cols(u, Up), dt)
    for s in range(T):
        t = step_time(s, T, backwards)
        k = t if keep else 0
        xt = input_rows(xp, X, W, Wp, b_in, XP, t, b0, b1)
        for b in range(b0, b1):
            dropped_row(h_rec[k, b], Ht[b], rmask, b)
        rows_matmul(h_rec[k, b0:b1], U, Up, Zr[b0:b1])
        o = out_index(out, s)
        for b in range(b0, b1):
            act_add_row(h_new[k, b], xt[b], Zr[b], act)
            real = is_real(mask, t, b)
            commit_row(Ht[b], h_new[k, b], real)
            emit_row(out[o, b], Ht[b], real, zero_output)


@njit(**KERNEL_OPTIONS)
def simplernn_backward_kernel(U, mask, rmask, act, backwards, zero_output,
                              h_rec, h_new, dout, dHt, dxp, tiny, b0, b1):
    """Rows b0..b1: fills dxp (T,B,u); dHt holds dhT and ends as dh0."""
    T, B, u = h_new.shape
    dt = h_new.dtype
    UTp = packed(U.T)                  # for rows_matmul, packed by this worker
    dHt_rec = aligned_scratch(B, scratch_cols(u, UTp), dt)
    UT = U.T
    for s in range(T - 1, -1, -1):
        t = step_time(s, T, backwards)
        for b in range(b0, b1):
            real = is_real(mask, t, b)
            # out[s] = H_t (or zeros)
            add_output_grad_row(dHt[b], dout[s, b], real, zero_output)
            if real:
                # H_t = a(Z_t)
                dact_row(dxp[t, b], dHt[b], h_new[t, b], act)
                flush_row(dxp[t, b], tiny)
            else:
                # padded: H_t = H_{t-1}; dHt passes through
                dxp[t, b] = 0
        # Z_t = xp[t] + Ht_prev_r @ U  (padded rows of dxp are zero)
        rows_matmul(dxp[t, b0:b1], UT, UTp, dHt_rec[b0:b1])
        for b in range(b0, b1):
            if is_real(mask, t, b):
                # Ht_prev_r = H_{t-1} * rmask
                dropped_row(dHt[b], dHt_rec[b], rmask, b)
                flush_row(dHt[b], tiny)


def simplernn_forward(xp, U, h0, mask=None, rmask=None, activation="tanh",
                      backwards=False, zero_output_for_mask=False, keep=True,
                      X=None, W=None, b_in=None, last_only=False):
    """Run a SimpleRNN over time-major xp (T,B,u), or over X (T,B,F) projected step by
    step (xp=None; xp[t] = X[t] @ W + b_in). Returns (out, hT, saved): out is (T,B,u),
    or (1,B,u) with last_only; saved is None with keep=False (inference)."""
    inputs, U, (h0,), mask, rmask = prepare_forward(xp, 1, U, ((h0, "h0"),), mask, rmask, X, W, b_in)
    a = activation_code(activation)
    backwards, zero_output = bool(backwards), bool(zero_output_for_mask)
    T = inputs[-1]
    B, u = h0.shape
    n = T if keep else 1
    dt = h0.dtype
    out = buffers.empty((1 if last_only else T, B, u), dt)
    h_rec, h_new = buffers.empty((n, B, u), dt), buffers.empty((n, B, u), dt)
    hT = h0.copy()
    run_rows(simplernn_forward_kernel,
             (*inputs[:-1], U, hT, mask, rmask, a, backwards, zero_output, out, h_rec, h_new),
             B, T * B * u * (u + inputs[2].shape[0]))
    saved = SimpleRNNSaved(U, mask, rmask, a, backwards, zero_output, h_rec, h_new) if keep else None
    return out, hT, saved


def simplernn_backward(saved, dout, dhT=None):
    """Gradients of the loss.  Returns (dxp, dU, dh0).

    Consumes saved: dxp is written over saved.h_new (step t's h_new is read only by step t
    of the backward pass, each element before its gradient replaces it)."""
    dout, (dhT,) = prepare_backward(saved.h_new.dtype, saved.h_new.shape, dout,
                                    ((dhT, "dhT"),))
    T, B, u = saved.h_new.shape
    dxp = saved.h_new
    dh0 = dhT.copy()
    run_rows(simplernn_backward_kernel,
             (saved.U, saved.mask, saved.rmask, saved.activation, saved.backwards,
              saved.zero_output_for_mask, saved.h_rec, saved.h_new, dout, dh0, dxp, _tiny(dxp)),
             B, T * B * u * u)
    # dU = sum_t Ht_prev_r^T dZ_t, one matmul over all steps
    dU = matmul(saved.h_rec.reshape(T * B, u).T, dxp.reshape(T * B, u))
    return dxp, dU, dh0
