"""One time step of a stateful layer, for low-latency streaming (Model.step).

The sequence kernels are built for many steps: they take a precomputed input
projection, allocate their outputs and save what backward needs. For a single
step those fixed costs dominate, so these kernels do the whole step in one
compiled call on preallocated buffers and update the state in place:

    lstm:      z = x W + h U + b;  c = f*c + i*g;  h = o*a(c)     (gates i, f, c, o)
    gru:       reset_after: z, r = ra(xW + hU + b_in + b_rec); hh = a(x W_h + b_h + r*(h U_h + b_rh))
               otherwise:   hh = a(x W_h + (r*h) U_h + b_h);   h = z*h + (1-z)*hh
    simplernn: h = a(x W + h U + b)
    dense:     y = act(x K + b)

lstm and simplernn take their weights stacked, S = [W; U; b] (the row b only with a
bias), and compute the affine part as one product z = [x, h, 1] S: at batch 1 a step
is bound by reading the weights from cache, and one product reads them in one pass and
one BLAS call (two products and a bias pass cost more). Their buffers and states share
one flat array, `buf`, so a call passes few arguments (numba's dispatch costs time per
argument): z (B, G), xh (B, K), then each state (B, u). float32 lstm with the default
activations and units a multiple of 16 skips z: its gate math runs on the product's
registers (lstm_fused.lstm_row_step). Figures: bench/README.md, "Measurements behind the code".

NaN and inf in weights or states propagate as in float64 (activations.py, issue 15).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .activations import KERNEL_OPTIONS, SIGMOID, TANH, act_, act_row
from .lstm_fused import ROW_UNITS, lstm_row_step


@njit(inline="always")
def stacked_rows(x, S, buf, u):
    """xh = [x, h, 1] (the 1 only when S has the bias row), h being buf's first state.

    Returns xh (B, K) and buf's states part (flat), both views of buf."""
    B, F = x.shape
    K, G = S.shape
    xh = buf[B * G:B * (G + K)].reshape((B, K))
    states = buf[B * (G + K):]
    for r in range(B):
        for k in range(F):
            xh[r, k] = x[r, k]
        for k in range(u):
            xh[r, F + k] = states[r * u + k]
        for k in range(F + u, K):
            xh[r, k] = 1
    return xh, states


@njit(inline="always")
def stacked_affine(x, S, buf, u):
    """z = [x, h, 1] S. Returns z (B, G) and buf's states part (flat), both views of buf."""
    B, G = x.shape[0], S.shape[1]
    xh, states = stacked_rows(x, S, buf, u)
    z = buf[:B * G].reshape((B, G))
    np.dot(xh, S, z)
    return z, states


@njit(inline="always")
def act_inplace(a, code):
    """a = f_code(a). One array, not act_row(a, a): a loop over two views that overlap
    fails LLVM's runtime alias check and runs scalar."""
    for j in range(a.shape[0]):
        a[j] = act_(a[j], code)


@njit(**KERNEL_OPTIONS)
def lstm_step(x, S, buf, act, ract):
    """z = [x, h, 1] S;  c = f*c + i*g;  h = o*act(c), with h, c buf's two states."""
    u = S.shape[1] // 4
    B = x.shape[0]
    if act == TANH and ract == SIGMOID and u % ROW_UNITS == 0 and S.itemsize == 4:
        # the common case: the product and the gate math in one pass, z never stored
        xh, hc = stacked_rows(x, S, buf, u)
        for r in range(B):
            lstm_row_step(xh[r], S, hc[r * u:(r + 1) * u], hc[(B + r) * u:(B + r + 1) * u])
        return
    z, hc = stacked_affine(x, S, buf, u)
    for r in range(B):
        # each activation over a whole gate block: one code per loop, so it vectorises
        # (one loop over j with both codes inside does not vectorise)
        zr = z[r]
        act_inplace(zr[:2 * u], ract)
        act_inplace(zr[2 * u:3 * u], act)
        act_inplace(zr[3 * u:], ract)
        c = hc[(B + r) * u:(B + r + 1) * u]
        h = hc[r * u:(r + 1) * u]
        for j in range(u):
            cj = zr[u + j] * c[j] + zr[j] * zr[2 * u + j]
            c[j] = cj
            h[j] = cj
        act_inplace(h, act)
        for j in range(u):
            h[j] *= zr[3 * u + j]


@njit(**KERNEL_OPTIONS)
def simplernn_step(x, S, buf, act):
    """h = act([x, h, 1] S), with h buf's state."""
    u = S.shape[1]
    z, hs = stacked_affine(x, S, buf, u)
    B = x.shape[0]
    h = hs[:B * u].reshape((B, u))
    for r in range(B):
        act_row(h[r], z[r], act)


@njit(**KERNEL_OPTIONS)
def gru_step(x, K, U, b_in, b_rec, h, z, act, ract, reset_after):
    B, u = h.shape
    np.dot(x, K, z)
    if reset_after:
        rec = np.dot(h, U)
        for r in range(B):
            for j in range(u):
                zg = act_(z[r, j] + b_in[j] + rec[r, j] + b_rec[j], ract)
                rg = act_(z[r, u + j] + b_in[u + j] + rec[r, u + j] + b_rec[u + j], ract)
                hh = act_(z[r, 2 * u + j] + b_in[2 * u + j] + rg * (rec[r, 2 * u + j] + b_rec[2 * u + j]), act)
                h[r, j] = zg * h[r, j] + (1 - zg) * hh
    else:
        rec = np.dot(h, np.ascontiguousarray(U[:, : 2 * u]))
        zg = np.empty((B, u), h.dtype)
        rh = np.empty((B, u), h.dtype)
        for r in range(B):
            for j in range(u):
                zg[r, j] = act_(z[r, j] + b_in[j] + rec[r, j], ract)
                rh[r, j] = act_(z[r, u + j] + b_in[u + j] + rec[r, u + j], ract) * h[r, j]
        cand = np.dot(rh, np.ascontiguousarray(U[:, 2 * u:]))
        for r in range(B):
            for j in range(u):
                hh = act_(z[r, 2 * u + j] + b_in[2 * u + j] + cand[r, j], act)
                h[r, j] = zg[r, j] * h[r, j] + (1 - zg[r, j]) * hh


@njit(**KERNEL_OPTIONS)
def dense_step(x, K, b, y, act):
    np.dot(x, K, y)
    for r in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[r, j] += b[j]
        act_row(y[r], y[r], act)
