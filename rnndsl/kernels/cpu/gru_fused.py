"""The GRU step as vector code: the gate math in the product's epilogue (float32,
reset_after, default activations, no mask; gru.py's gru_fused_rows calls it). A step is
gru.py's (H the state after recurrent dropout)

    Z  = sigmoid(x_t W_z + b_in_z + H U_z + b_rec_z)     R = sigmoid(x_t W_r + ... + H U_r + ...)
    HH = tanh(x_t W_h + b_in_h + R (H U_h + b_rec_h))
    H_t = HH + Z (H_{t-1} - HH)

W and U are packed in panels of 48 columns, [z, r, h] of 16 units (``gru_panels``). A tile
of rows keeps four 16-float accumulators a row: Z_z and Z_r, which both k loops (over x_t's
features, then H_{t-1}'s units) feed, X_h, fed by the first, and Rec_h, by the second; each
starts at its bias. No multiply-add is spent on a zero block (packing the gates like the
LSTM's four, [W_h, 0] and [0, U_h], costs a third more products than the gate math
saves), and the step ends on the registers: Z, R, HH and H_t of 16 units a row, nothing
but H_t stored in inference; in training also Z, R, HH and Rec_h, which gru_backward reads.
tanh and sigmoid are lstm_fused.py's vector forms of activations.py's. The accumulators
may also start at rows of a projected embedding table (x W + b_in, read by id). BPTT's row
step (gru_bptt_row) is vector code here too.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .lstm_fused import _emit_sigmoid, _emit_tanh, fill_group_panels, group_panels_empty
from .packed import I64, V16, emit_kloop, row_stride

UNITS = 16                  # units a panel: one vector per gate
WIDTH = 3 * UNITS           # a panel's columns: z, r, h of its units


def _gru_tile(rows: int):
    """An intrinsic tile(Hn, X, Wq, Hp, Uq, bt, tab, ids, xids, Gs, AX, i0, p): rows i0..i0+rows,
    units 16p..16p+15 of one step, from rows xids[i0 + r] of X, Hp (H_{t-1}, after recurrent
    dropout), the panels of gru_panels, bt (4 ub,): gru_bias's four blocks [b_z, b_r,
    b_in_h, b_rec_h], ub >= u a multiple of 16, and rows ids[i0 + r] of tab (R, 3 ub), blocks
    [z, r, h] added to the first three (a projected embedding table x W + b_in, X then having
    no columns; or one row of zeros). H_t to Hn (not Hp: the other panels still
    read it). When Gs has rows (training), what gru_backward reads is stored too, in gru.py's
    layout: Z, R, HH to Gs (rows, 3u), Rec_h = H U_h + b_rec_h to AX (rows, u); u must then
    be a multiple of 16."""

    @intrinsic
    def tile(typingctx, Hn, X, Wq, Hp, Uq, bt, tab, ids, xids, Gs, AX, i0, p):
        sig = types.void(Hn, X, Wq, Hp, Uq, bt, tab, ids, xids, Gs, AX, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            hn, x, wq, hp, uq, bt_, tab_, ids_, xids_, gs, ax = (
                context.make_array(t)(context, builder, v) for t, v in zip(signature.args[:11], args[:11]))
            i0v, pv = args[11], args[12]
            vp = V16.as_pointer()
            x_stride, h_stride, hn_stride = row_stride(builder, x), row_stride(builder, hp), row_stride(builder, hn)
            Kx = cgutils.unpack_tuple(builder, wq.shape, 3)[1]
            Kh = cgutils.unpack_tuple(builder, uq.shape, 3)[1]
            col = builder.mul(pv, ir.Constant(I64, UNITS))
            ub = builder.sdiv(cgutils.unpack_tuple(builder, bt_.shape, 1)[0], ir.Constant(I64, 4))
            bias = [builder.load(builder.bitcast(builder.gep(bt_.data, [
                builder.add(builder.mul(ub, ir.Constant(I64, g)), col)]), vp), align=4) for g in range(4)]

            def panel(arr, K):         # &P[p, 0, 0]
                return builder.gep(arr.data, [builder.mul(builder.mul(pv, K), ir.Constant(I64, WIDTH))])

            def index(arr, r):
                k = builder.load(builder.gep(arr.data, [builder.add(i0v, ir.Constant(I64, r))]))
                return k if k.type == I64 else builder.sext(k, I64)

            # the accumulators start at the bias plus the row's table entries
            t_stride = row_stride(builder, tab_)
            tub = builder.sdiv(cgutils.unpack_tuple(builder, tab_.shape, 2)[1], ir.Constant(I64, 3))
            start = []
            for r in range(rows):
                base = builder.gep(tab_.data, [builder.mul(index(ids_, r), t_stride)])
                start.append([builder.fadd(bias[g], builder.load(builder.bitcast(builder.gep(base, [
                    builder.add(builder.mul(tub, ir.Constant(I64, g)), col)]), vp), align=4)) for g in range(3)])
            cols = [UNITS * g for g in range(3)]
            x_rows = [builder.gep(x.data, [builder.mul(index(xids_, r), x_stride)]) for r in range(rows)]
            acc = emit_kloop(builder, start, x_rows, x_stride, panel(wq, Kx), Kx,
                             p_stride=WIDTH, cols=cols)
            x_h = [a[2] for a in acc]
            h_base = builder.gep(hp.data, [builder.mul(i0v, h_stride)])
            acc = emit_kloop(builder, [[a[0], a[1], bias[3]] for a in acc], h_base, h_stride, panel(uq, Kh), Kh,
                             p_stride=WIDTH, cols=cols)

            def at(arr, stride, r, off=None):
                row = builder.add(i0v, ir.Constant(I64, r))
                c = col if off is None else builder.add(col, off)
                return builder.bitcast(builder.gep(arr.data, [builder.add(builder.mul(row, stride), c)]), vp)

            save = builder.icmp_signed("!=", cgutils.unpack_tuple(builder, gs.shape, 2)[0], ir.Constant(I64, 0))
            g_stride, a_stride = row_stride(builder, gs), row_stride(builder, ax)
            u = cgutils.unpack_tuple(builder, ax.shape, 2)[1]
            for r in range(rows):
                z = _emit_sigmoid(builder, acc[r][0])
                reset = _emit_sigmoid(builder, acc[r][1])
                hh = _emit_tanh(builder, builder.fadd(x_h[r], builder.fmul(reset, acc[r][2])))
                h_old = builder.load(at(hp, h_stride, r), align=4)
                builder.store(builder.fadd(hh, builder.fmul(z, builder.fsub(h_old, hh))), at(hn, hn_stride, r),
                              align=4)
                with builder.if_then(save):
                    for k, gate in enumerate((z, reset, hh)):
                        builder.store(gate, at(gs, g_stride, r, builder.mul(u, ir.Constant(I64, k))), align=4)
                    builder.store(acc[r][2], at(ax, a_stride, r), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


# 8 rows: 24 accumulators a k loop, with the three panel loads and a broadcast within the
# 32 vector registers (X_h waits through the second loop, in memory if need be); faster than
# 6 or 4 rows at 256 units (bench/README.md)
_gru8, _gru4, _gru2, _gru1 = _gru_tile(8), _gru_tile(4), _gru_tile(2), _gru_tile(1)


def gru_step_rows(X, xids, Wq, Hp, Uq, bt, tab, ids, Hn, Gs, AX, p0, p1):
    """One step of a few rows, panels p0..p1 (units 16 p0 .. 16 p1 - 1): Hn[:, :16 panels]
    from rows xids (rows,) of X (R, F), Hp (rows, >= u), gru_panels' Wq, Uq, bt and rows ids
    (rows,) of tab (see _gru_tile). Hn is (rows, 16 panels) scratch, and so is Hp unless u is a multiple of 16:
    the units past u stay zero. Gs, AX (rows, 3u), (rows, u): where to save the gates and
    Rec_h for backward (u a multiple of 16), or empty: nothing saved. Compiled code only."""


@overload(gru_step_rows, jit_options=dict(error_model="numpy"))
def _gru_step_rows(X, xids, Wq, Hp, Uq, bt, tab, ids, Hn, Gs, AX, p0, p1):
    if getattr(X, "dtype", None) != types.float32:
        return lambda X, xids, Wq, Hp, Uq, bt, tab, ids, Hn, Gs, AX, p0, p1: None

    def impl(X, xids, Wq, Hp, Uq, bt, tab, ids, Hn, Gs, AX, p0, p1):
        M = Hp.shape[0]
        for p in range(p0, p1):                # each panel stays in cache while all rows pass
            i0 = 0
            while i0 + 8 <= M:
                _gru8(Hn, X, Wq, Hp, Uq, bt, tab, ids, xids, Gs, AX, i0, p)
                i0 += 8
            if i0 + 4 <= M:
                _gru4(Hn, X, Wq, Hp, Uq, bt, tab, ids, xids, Gs, AX, i0, p)
                i0 += 4
            if i0 + 2 <= M:
                _gru2(Hn, X, Wq, Hp, Uq, bt, tab, ids, xids, Gs, AX, i0, p)
                i0 += 2
            if i0 < M:
                _gru1(Hn, X, Wq, Hp, Uq, bt, tab, ids, xids, Gs, AX, i0, p)
    return impl


@njit(inline="always")
def gru_panels(W, U):
    """GRU's W (F, 3u) and U (u, 3u), gate blocks [z | r | h], as panels (ceil(u/16), K, 48):
    panel p is [z, r, h] of units 16p..16p+15, zero past u; aligned like packed()."""
    u = U.shape[0]
    Wq, Uq = group_panels_empty(W, u, UNITS, 3), group_panels_empty(U, u, UNITS, 3)
    fill_group_panels(W, Wq, 0, Wq.shape[0], u, (0, 1, 2))
    fill_group_panels(U, Uq, 0, Uq.shape[0], u, (0, 1, 2))
    return Wq, Uq


@njit(inline="always")
def gru_bias(b_in, b_rec, width):
    """The tile's bias (4 width,): [b_in_z + b_rec_z, b_in_r + b_rec_r, b_in_h, b_rec_h], each
    block zero past u (b_rec_h sits inside R (H U_h + b_rec_h))."""
    u = b_in.shape[0] // 3
    out = np.zeros(4 * width, b_in.dtype)
    for j in range(u):
        out[j] = b_in[j] + b_rec[j]
        out[width + j] = b_in[u + j] + b_rec[u + j]
        out[2 * width + j] = b_in[2 * u + j]
        out[3 * width + j] = b_rec[2 * u + j]
    return out


def _bptt_block(width: int):
    """An intrinsic block(dx, drec, dhd, db, dh, dout, hd, ax, j0): units j0..j0+width-1 of one
    row of a GRU backward step (reset_after, default activations, no mask), in vectors of the
    arrays' float type, each line undoing a forward line (gru.py):

        dH  = dh + dout                                    out[s] = H_t
        dZ  = dH (Hd - HH) Z (1 - Z)                       H_t = HH + Z (Hd - HH), Z = sigmoid
        dHH = (dH - dH Z) (1 - HH^2)                       HH = tanh(x_h + R Rec_h)
        dR  = dHH Rec_h R (1 - R)                          R = sigmoid
        dRec = [dZ, dR, dHH R]    dHd = dH Z (the update's direct term)

    dx (3u) holds the saved gates Z, R, HH on entry and [dZ, dR, dHH] (dxp) on exit, each
    unit's three read before they are stored; drec (3u) gets dRec, which is also added to db
    (3u: db_rec's running sum); dhd (u) gets dHd; hd, ax: the step's saved Hd and Rec_h.
    Straight-line vector code: the scalar loops it replaces did not vectorise (dxp is the
    gates' own row, and LLVM's runtime overlap checks between the row views fail)."""

    @intrinsic
    def block(typingctx, dx, drec, dhd, db, dh, dout, hd, ax, j0):
        sig = types.void(dx, drec, dhd, db, dh, dout, hd, ax, types.intp)

        def codegen(context, builder, signature, args):
            fty = context.get_value_type(signature.args[0].dtype)
            vt = ir.VectorType(fty, width)
            vp = vt.as_pointer()
            dx_, drec_, dhd_, db_, dh_, dout_, hd_, ax_ = (context.make_array(t)(context, builder, v)
                                                          for t, v in zip(signature.args[:8], args[:8]))
            j0v = args[8]
            u = cgutils.unpack_tuple(builder, dh_.shape, 1)[0]

            def ptr(arr, off):
                return builder.bitcast(builder.gep(arr.data, [builder.add(j0v, off)]), vp)

            gate = [builder.mul(u, ir.Constant(I64, k)) for k in range(3)]
            zero = gate[0]
            ld = lambda arr, off=zero: builder.load(ptr(arr, off), align=1)    # noqa: E731
            one = ir.Constant(vt, [1.0] * width)
            mul, sub, add = builder.fmul, builder.fsub, builder.fadd
            Z, R, HH = (ld(dx_, g) for g in gate)
            dH = add(ld(dh_), ld(dout_))
            dz = mul(mul(dH, sub(ld(hd_), HH)), mul(Z, sub(one, Z)))
            dhh = mul(sub(dH, mul(dH, Z)), sub(one, mul(HH, HH)))
            dr = mul(mul(dhh, ld(ax_)), mul(R, sub(one, R)))
            for g, d, dc in zip(gate, (dz, dr, dhh), (dz, dr, mul(dhh, R))):
                builder.store(d, ptr(dx_, g), align=1)
                builder.store(dc, ptr(drec_, g), align=1)
                builder.store(add(ld(db_, g), dc), ptr(db_, g), align=1)
            builder.store(mul(dH, Z), ptr(dhd_, zero), align=1)
            return context.get_dummy_value()

        return sig, codegen

    return block


_bptt16, _bptt1 = _bptt_block(16), _bptt_block(1)


@njit(inline="always")
def gru_bptt_row(dx, drec, dhd, db, dh, dout, hd, ax):
    """One row of a GRU backward step, reset_after with the default activations and no mask
    (see _bptt_block): dx (3u) the saved gates in, dxp out; drec (3u) dRec out, added to db
    (3u); dhd (u) dH Z out. 16 units a vector, the last u % 16 one at a time."""
    u = dh.shape[0]
    j = 0
    while j + 16 <= u:
        _bptt16(dx, drec, dhd, db, dh, dout, hd, ax, j)
        j += 16
    while j < u:
        _bptt1(dx, drec, dhd, db, dh, dout, hd, ax, j)
        j += 1
