"""The fused per-step kernels of SimpleRNN, LSTM and GRU, forward and backward.

Same math, layout and conventions as kernels/cpu/{simplernn,lstm,gru}.py
(time-major, Keras gate order i,f,c,o / z,r,h, masks, go_backwards, Keras 3
recurrent dropout). One processing step s reads input time t (t = s, or
T-1-s with go_backwards). The recurrent product of a step is a GEMM launch
(gemm.py); everything else of the step is ONE launch of a kernel here with one
thread per (batch row b, unit j), each thread doing all the gates of its unit:

forward, after ``Zr = h_rec[t] @ U``:
    gates from xp[t] + Zr, the new state, the masked commit, the output
    out[s], the values backward needs (post-activation gates, c_{t-1},
    act(c_t), ...), and already the next step's dropped state
    ``h_rec[t'] = h_t * rmask`` (so no separate kernel prepares it).

backward, before ``dHrec = dZ[t] @ U^T``:
    first the gradient reaching h_t: ``(dHrec + dHd) * rmask`` from the step
    undone just before (time ``prev_t``) if that step was real, else the
    carried ``dHc`` (a padded step passes it through); plus ``dout[s]``; then
    the gate gradients ``dZ[t]`` (= dxp[t]) and, for LSTM, ``dc_{t-1}``.
    ``dHd`` is the GRU's direct term ``z * dh`` (absent for the others).

Every thread reads and writes only its own (b, j) entries of the state
buffers, so updating them in place is race-free. GRU with reset_after=false
needs ``(r * h) @ U_h`` inside the step, so its step is two GEMMs and two
kernels (A: z, r and r*h; B: the candidate and the new state), and its
backward likewise.

Launch: a 1-D grid-stride loop over B*units threads (geometry.block per block).
"Absent" optional arrays (no mask, no recurrent dropout, no bias) are
zero-length arrays, tested with ``.shape[0] == 0``, so each kernel keeps one
signature per float type.
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from numba import cuda

from . import activations


@lru_cache(maxsize=None)
def build(np_dtype: np.dtype) -> SimpleNamespace:
    A = activations.build(np_dtype)
    act, dact, ZERO = A.act, A.dact, A.ZERO

    @cuda.jit(device=True)
    def is_real(mask, t, b):
        return mask.shape[0] == 0 or mask[t, b] != 0

    @cuda.jit(device=True)
    def dropped(v, rmask, b, j):
        """v * rmask[b, j] (Keras 3 recurrent dropout), or v without dropout."""
        return v * rmask[b, j] if rmask.shape[0] > 0 else v

    @cuda.jit(device=True)
    def emit(H, out, h_rec, s, t_next, b, j, real, zero_out, rmask):
        """out[s] = the committed state (zeros at a padded step with zero_output_for_mask);
        h_rec[t_next] = the next step's dropped state."""
        h = H[b, j]
        out[s, b, j] = h if (real or not zero_out) else ZERO
        if t_next >= 0:
            h_rec[t_next, b, j] = dropped(h, rmask, b, j)

    @cuda.jit
    def drop_state(h_rec, t, H, rmask):
        """h_rec[t] = H * rmask: the first step's matmul input."""
        u = H.shape[1]
        for idx in range(cuda.grid(1), H.shape[0] * u, cuda.gridsize(1)):
            b = idx // u
            j = idx - b * u
            h_rec[t, b, j] = dropped(H[b, j], rmask, b, j)

    # --- forward steps ---------------------------------------------------------------

    @cuda.jit
    def simplernn_step(xp, Zr, s, t, t_next, mask, rmask, code, zero_out, H, h_new, out, h_rec):
        """h_t = act(xp[t] + h_rec[t] @ U)."""
        u = H.shape[1]
        for idx in range(cuda.grid(1), H.shape[0] * u, cuda.gridsize(1)):
            b = idx // u
            j = idx - b * u
            hn = act(xp[t, b, j] + Zr[b, j], code)
            h_new[t, b, j] = hn
            real = is_real(mask, t, b)
            if real:
                H[b, j] = hn
            emit(H, out, h_rec, s, t_next, b, j, real, zero_out, rmask)

    @cuda.jit
    def lstm_step(xp, Zr, s, t, t_next, mask, rmask, a_code, ra_code, zero_out,
                  H, C, gates, c_prev, act_c, out, h_rec):
        """i, f, o = ra(z), g = a(z_c); c_t = f c_{t-1} + i g; h_t = o a(c_t)."""
        u = H.shape[1]
        for idx in range(cuda.grid(1), H.shape[0] * u, cuda.gridsize(1)):
            b = idx // u
            j = idx - b * u
            i = act(xp[t, b, j] + Zr[b, j], ra_code)
            f = act(xp[t, b, u + j] + Zr[b, u + j], ra_code)
            g = act(xp[t, b, 2 * u + j] + Zr[b, 2 * u + j], a_code)
            o = act(xp[t, b, 3 * u + j] + Zr[b, 3 * u + j], ra_code)
            gates[t, b, j] = i
            gates[t, b, u + j] = f
            gates[t, b, 2 * u + j] = g
            gates[t, b, 3 * u + j] = o
            cp = C[b, j]
            c_prev[t, b, j] = cp
            cn = f * cp + i * g
            ac = act(cn, a_code)
            act_c[t, b, j] = ac
            real = is_real(mask, t, b)
            if real:
                C[b, j] = cn
                H[b, j] = o * ac
            emit(H, out, h_rec, s, t_next, b, j, real, zero_out, rmask)

    @cuda.jit
    def gru_step_after(xp, Rec, b_rec, s, t, t_next, mask, rmask, a_code, ra_code, zero_out,
                       H, gates, h_rec, aux, out):
        """reset_after: Rec = hd @ U (+ b_rec); z, r = ra(x + Rec); hh = a(x_h + r Rec_h);
        h_t = hh + z (hd - hh), hd = h_rec[t]."""
        u = H.shape[1]
        has_b = b_rec.shape[0] > 0
        for idx in range(cuda.grid(1), H.shape[0] * u, cuda.gridsize(1)):
            b = idx // u
            j = idx - b * u
            rz = Rec[b, j]
            rr = Rec[b, u + j]
            rh = Rec[b, 2 * u + j]
            if has_b:
                rz += b_rec[j]
                rr += b_rec[u + j]
                rh += b_rec[2 * u + j]
            z = act(xp[t, b, j] + rz, ra_code)
            r = act(xp[t, b, u + j] + rr, ra_code)
            aux[t, b, j] = rh
            hh = act(xp[t, b, 2 * u + j] + r * rh, a_code)
            gates[t, b, j] = z
            gates[t, b, u + j] = r
            gates[t, b, 2 * u + j] = hh
            hd = h_rec[t, b, j]
            real = is_real(mask, t, b)
            if real:
                H[b, j] = hh + z * (hd - hh)
            emit(H, out, h_rec, s, t_next, b, j, real, zero_out, rmask)

    @cuda.jit
    def gru_step_before_a(xp, Rzr, t, ra_code, gates, h_rec, aux, u):
        """reset_after=false, first half: z, r = ra(x + hd @ U_zr); aux = r * hd (the input of U_h)."""
        B = h_rec.shape[1]
        for idx in range(cuda.grid(1), B * u, cuda.gridsize(1)):
            b = idx // u
            j = idx - b * u
            z = act(xp[t, b, j] + Rzr[b, j], ra_code)
            r = act(xp[t, b, u + j] + Rzr[b, u + j], ra_code)
            gates[t, b, j] = z
            gates[t, b, u + j] = r
            aux[t, b, j] = r * h_rec[t, b, j]

    @cuda.jit
    def gru_step_before_b(xp, Rh, s, t, t_next, mask, rmask, a_code, zero_out, H, gates, h_rec, out):
        """Second half: hh = a(x_h + (r * hd) @ U_h); h_t = hh + z (hd - hh)."""
        u = H.shape[1]
        for idx in range(cuda.grid(1), H.shape[0] * u, cuda.gridsize(1)):
            b = idx // u
            j = idx - b * u
            hh = act(xp[t, b, 2 * u + j] + Rh[b, j], a_code)
            gates[t, b, 2 * u + j] = hh
            z = gates[t, b, j]
            hd = h_rec[t, b, j]
            real = is_real(mask, t, b)
            if real:
                H[b, j] = hh + z * (hd - hh)
            emit(H, out, h_rec, s, t_next, b, j, real, zero_out, rmask)

    # --- backward steps --------------------------------------------------------------

    @cuda.jit(device=True)
    def incoming(b, j, s, t, prev_t, mask, rmask, dHrec, dHd, dHc, dout, zero_out):
        """dL/dh_t for the step being undone; also left in dHc for a padded step to pass on."""
        if prev_t >= 0 and is_real(mask, prev_t, b):
            dh = dHrec[b, j]                       # h_{t} fed the step undone before (h_rec = h * rmask)
            if dHd.shape[0] > 0:
                dh += dHd[b, j]
            dh = dropped(dh, rmask, b, j)
        else:
            dh = dHc[b, j]                         # the first step undone, or a padded one: passed through
        if is_real(mask, t, b) or not zero_out:
            dh += dout[s, b, j]                    # out[s] = h_t unless zeroed
        dHc[b, j] = dh
        return dh

    @cuda.jit
    def finish(dh0, prev_t, mask, rmask, dHrec, dHd, dHc):
        """dL/dh_0 once every step is undone (the same rule as `incoming`, without an output)."""
        u = dh0.shape[1]
        for idx in range(cuda.grid(1), dh0.shape[0] * u, cuda.gridsize(1)):
            b = idx // u
            j = idx - b * u
            if is_real(mask, prev_t, b):
                dh = dHrec[b, j]
                if dHd.shape[0] > 0:
                    dh += dHd[b, j]
                dh0[b, j] = dropped(dh, rmask, b, j)
            else:
                dh0[b, j] = dHc[b, j]

    @cuda.jit
    def simplernn_back(s, t, prev_t, mask, rmask, code, zero_out, h_new, dout, dHrec, dHd, dHc, dxp):
        """dxp[t] = dh * a'(h_t)."""
        u = dHc.shape[1]
        for idx in range(cuda.grid(1), dHc.shape[0] * u, cuda.gridsize(1)):
            b = idx // u
            j = idx - b * u
            dh = incoming(b, j, s, t, prev_t, mask, rmask, dHrec, dHd, dHc, dout, zero_out)
            if is_real(mask, t, b):
                dxp[t, b, j] = dh * dact(h_new[t, b, j], code)
            else:
                dxp[t, b, j] = ZERO

    @cuda.jit
    def lstm_back(s, t, prev_t, mask, rmask, a_code, ra_code, zero_out, gates, c_prev, act_c, dout,
                  dHrec, dHc, dC, dxp, no_dHd):
        """Undo h = o a(c), c = f c_prev + i g and the gate activations; dC becomes dL/dc_{t-1}."""
        u = dHc.shape[1]
        for idx in range(cuda.grid(1), dHc.shape[0] * u, cuda.gridsize(1)):
            b = idx // u
            j = idx - b * u
            dh = incoming(b, j, s, t, prev_t, mask, rmask, dHrec, no_dHd, dHc, dout, zero_out)
            if not is_real(mask, t, b):
                for g in range(4):                 # padded: h and c pass through unchanged
                    dxp[t, b, g * u + j] = ZERO
                continue
            i = gates[t, b, j]
            f = gates[t, b, u + j]
            g = gates[t, b, 2 * u + j]
            o = gates[t, b, 3 * u + j]
            ac = act_c[t, b, j]
            dc = dC[b, j] + dh * o * dact(ac, a_code)
            dC[b, j] = dc * f
            dxp[t, b, j] = dc * g * dact(i, ra_code)
            dxp[t, b, u + j] = dc * c_prev[t, b, j] * dact(f, ra_code)
            dxp[t, b, 2 * u + j] = dc * i * dact(g, a_code)
            dxp[t, b, 3 * u + j] = dh * ac * dact(o, ra_code)

    @cuda.jit
    def gru_back_after(s, t, prev_t, mask, rmask, a_code, ra_code, zero_out, gates, h_rec, aux, dout,
                       dHrec, dHd, dHc, dxp, dRec):
        """reset_after: undo h = hh + z (hd - hh), hh = a(x_h + r Rec_h), z, r = ra(x + Rec).
        dRec (the gradient of Rec = hd @ U + b_rec) differs from dxp only in its h block."""
        u = dHc.shape[1]
        for idx in range(cuda.grid(1), dHc.shape[0] * u, cuda.gridsize(1)):
            b = idx // u
            j = idx - b * u
            dh = incoming(b, j, s, t, prev_t, mask, rmask, dHrec, dHd, dHc, dout, zero_out)
            if not is_real(mask, t, b):
                for g in range(3):
                    dxp[t, b, g * u + j] = ZERO
                    dRec[t, b, g * u + j] = ZERO
                continue
            z = gates[t, b, j]
            r = gates[t, b, u + j]
            hh = gates[t, b, 2 * u + j]
            hd = h_rec[t, b, j]
            dz = dh * (hd - hh) * dact(z, ra_code)
            dx_h = (dh - dh * z) * dact(hh, a_code)
            dr = dx_h * aux[t, b, j] * dact(r, ra_code)
            dHd[b, j] = dh * z
            dxp[t, b, j] = dz
            dxp[t, b, u + j] = dr
            dxp[t, b, 2 * u + j] = dx_h
            dRec[t, b, j] = dz
            dRec[t, b, u + j] = dr
            dRec[t, b, 2 * u + j] = dx_h * r

    @cuda.jit
    def gru_back_before_a(s, t, prev_t, mask, rmask, a_code, ra_code, zero_out, gates, h_rec, dout,
                          dHrec, dHd, dHc, dxp):
        """reset_after=false, first half: the z and hh blocks of dxp (dxp[t, :, 2u:] is also the
        gradient of (r * hd) @ U_h), and dHd = z * dh."""
        u = dHc.shape[1]
        for idx in range(cuda.grid(1), dHc.shape[0] * u, cuda.gridsize(1)):
            b = idx // u
            j = idx - b * u
            dh = incoming(b, j, s, t, prev_t, mask, rmask, dHrec, dHd, dHc, dout, zero_out)
            if not is_real(mask, t, b):
                for g in range(3):
                    dxp[t, b, g * u + j] = ZERO
                continue
            z = gates[t, b, j]
            hh = gates[t, b, 2 * u + j]
            dxp[t, b, j] = dh * (h_rec[t, b, j] - hh) * dact(z, ra_code)
            dxp[t, b, 2 * u + j] = (dh - dh * z) * dact(hh, a_code)
            dHd[b, j] = dh * z

    @cuda.jit
    def gru_back_before_b(t, mask, ra_code, gates, h_rec, dRHd, dHd, dxp, u):
        """Second half, after dRHd = dHH @ U_h^T: undo aux = r * hd, r = ra(x_r + hd @ U_r)."""
        B = dHd.shape[0]
        for idx in range(cuda.grid(1), B * u, cuda.gridsize(1)):
            b = idx // u
            j = idx - b * u
            if is_real(mask, t, b):
                r = gates[t, b, u + j]
                d = dRHd[b, j]
                dxp[t, b, u + j] = d * h_rec[t, b, j] * dact(r, ra_code)
                dHd[b, j] += d * r

    return SimpleNamespace(
        drop_state=drop_state, finish=finish,
        simplernn_step=simplernn_step, lstm_step=lstm_step, gru_step_after=gru_step_after,
        gru_step_before_a=gru_step_before_a, gru_step_before_b=gru_step_before_b,
        simplernn_back=simplernn_back, lstm_back=lstm_back, gru_back_after=gru_back_after,
        gru_back_before_a=gru_back_before_a, gru_back_before_b=gru_back_before_b)
