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
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .activations import KERNEL_OPTIONS, act_, act_row


@njit(inline="always")
def affine2(x, K, h, U, b, z, zr):
    """z = x K + h U + b (zr: scratch for h U)."""
    np.dot(x, K, z)
    np.dot(h, U, zr)
    for r in range(z.shape[0]):
        for j in range(z.shape[1]):
            z[r, j] += zr[r, j] + b[j]


@njit(**KERNEL_OPTIONS)
def lstm_step(x, K, U, b, h, c, z, zr, act, ract):
    B, u = h.shape
    affine2(x, K, h, U, b, z, zr)
    for r in range(B):
        for j in range(u):
            i = act_(z[r, j], ract)
            f = act_(z[r, u + j], ract)
            g = act_(z[r, 2 * u + j], act)
            o = act_(z[r, 3 * u + j], ract)
            c[r, j] = f * c[r, j] + i * g
            h[r, j] = o * act_(c[r, j], act)


@njit(**KERNEL_OPTIONS)
def simplernn_step(x, K, U, b, h, z, zr, act):
    affine2(x, K, h, U, b, z, zr)
    B, u = h.shape
    for r in range(B):
        for j in range(u):
            h[r, j] = act_(z[r, j], act)


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
