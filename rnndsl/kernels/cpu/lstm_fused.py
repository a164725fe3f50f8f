"""LSTM steps as vector code: the gate math in the product's epilogue, and BPTT's
pointwise step in one pass (default activations, no mask; lstm.py's kernels call these).

Forward, a step is

    Z   = x_t @ W + H_{t-1} @ U + b                        (B, 4u), gate blocks i, f, c, o
    C_t = sigmoid(Z_f) * C_{t-1} + sigmoid(Z_i) * tanh(Z_c)
    H_t = sigmoid(Z_o) * tanh(C_t)

W, U and b are packed with the gates interleaved: panel p holds the 32 columns
[i, f, c, o] of units 8p .. 8p+7 (zero past u). A register tile of the packed
product (packed.py) then ends with the four gates of 8 units for each of its rows,
and finishes the step there: C_t and H_t of those units are computed in the
registers, and Z never goes to memory (the gate loop it replaces was 12-14% of
big-lstm inference, 30% of small layers'). In training the tile also stores what
backward reads (the gates, C_{t-1}, tanh(C_t)) in lstm.py's layout. float32 only:
float64, the exact mode, keeps lstm.py's gate loops (``lstm_step_rows`` is a no-op
stub for it).

For a single row (Model.step at batch 1) packing would cost more than the step, so
``lstm_row_step`` reads the stacked S = [W; U; b] in place instead: 64 units at a time,
16 accumulators holding their four gates, then the same epilogue.

tanh is the float32 rational of activations.py, evaluated in the same order (with
FMAs and a refined reciprocal: within an ulp or two), and sigmoid(x) = 1/2 + tanh(x/2)/2
as there.

Backward, ``lstm_bptt_row`` is the pointwise part of a BPTT step for either float type
(the same operations, in the same order, as lstm.py's scalar loops).
"""

from __future__ import annotations

import numpy as np
from llvmlite import binding as llvm, ir
from numba import njit, types
from numba.core import cgutils, config
from numba.extending import intrinsic, overload

from .activations import _TANH_CLAMP, _TANH_P, _TANH_Q, KERNEL_OPTIONS, copy_rows, dropped_row
from .packed import F32, I32, I64, NB, V16, aligned_scratch, broadcast, emit_kloop, panel_base, row_stride

UNITS = NB // 4          # units per panel: the four gates of each take NB columns
_V8 = ir.VectorType(F32, UNITS)


def _splat(vt, x):
    return ir.Constant(vt, [float(np.float32(x))] * vt.count)


def _emit_tanh(builder, x):
    """The float32 rational of activations.py on a vector: x P(x^2) / Q(x^2), exactly +-1 from
    the clamp on; the polynomials by fused multiply-adds (each step rounds once: within an ulp
    of the scalar loops' result, and fewer instructions in the epilogue, where tanh takes a
    large share of a small layer's step)."""
    vt = x.type
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt, vt]), f"llvm.fma.v{vt.count}f32")
    s = builder.fmul(x, x)

    def horner(c):
        r = _splat(vt, c[4])
        for k in (3, 2, 1, 0):
            r = builder.call(fma, [r, s, _splat(vt, c[k])])
        return r

    t = builder.fmul(builder.fmul(x, horner(_TANH_P)), _emit_reciprocal(builder, horner(_TANH_Q)))
    return _saturate(builder, x, t, _TANH_CLAMP)


def _saturate(builder, x, t, c):
    """t, but exactly 1 where x >= c and -1 where x <= -c (beyond c, and at +-inf where t is
    inf/inf), as activations.py's scalar tanh: compares that are false for NaN, so a NaN x keeps
    its NaN t (llvm.minnum/maxnum on x would have returned the bound: a model with a NaN weight
    predicted plausible numbers). Two compares and two selects, as the clamp they replace."""
    one, minus = _splat(x.type, 1.0), _splat(x.type, -1.0)
    t = builder.select(builder.fcmp_ordered(">=", x, _splat(x.type, c)), one, t)
    return builder.select(builder.fcmp_ordered("<=", x, _splat(x.type, -c)), minus, t)


def _emit_sigmoid(builder, x):
    """sigmoid(x) = 1/2 + tanh(x/2)/2 on a vector, as activations.py computes it."""
    half = _splat(x.type, 0.5)
    return builder.fadd(half, builder.fmul(half, _emit_tanh(builder, builder.fmul(x, half))))


def _fast_reciprocal() -> bool:
    """AVX-512's 14-bit reciprocal estimate is there to use: compiling for this machine
    (numba's default), and it has AVX-512 F and VL."""
    features = llvm.get_host_cpu_features()
    return config.CPU_NAME is None and all(features.get(f, False) for f in ("avx512f", "avx512vl"))


FAST_RECIPROCAL = _fast_reciprocal()


def _emit_reciprocal(builder, q):
    """1 / q for q = Q(x^2) in [1, 416] (|x| < 9: tanh is +-1 beyond): AVX-512's estimate (relative error < 2^-14) and one
    Newton step, r (2 - q r), which leaves ~2^-28 before rounding; a vector division where
    the estimate is missing. A vector division issues only every several cycles, which a
    small layer's step feels (bench/README.md, "Measurements behind the code")."""
    vt = q.type
    if not FAST_RECIPROCAL:
        return builder.fdiv(_splat(vt, 1.0), q)
    n = vt.count
    mask = ir.IntType(n)
    rcp = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt, mask]),
                                         f"llvm.x86.avx512.rcp14.ps.{32 * n}")
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt, vt]), f"llvm.fma.v{n}f32")
    r = builder.call(rcp, [q, ir.Constant(vt, [0.0] * n), ir.Constant(mask, (1 << n) - 1)])
    e = builder.call(fma, [builder.fneg(q), r, _splat(vt, 1.0)])     # 1 - q r
    return builder.call(fma, [r, e, r])                                # r + r (1 - q r)


def _half(builder, v, hi):
    """Lanes 0..7 (hi False) or 8..15 of a 16-lane vector."""
    lo = UNITS if hi else 0
    return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(I32, UNITS), list(range(lo, lo + UNITS))))


def _step_tile(rows: int, panels: int = 1):
    """An intrinsic tile(Hn, C, X, Wq, Hp, Uq, bt, ids, xids, Gs, CP, TC, i0, p): rows
    i0..i0+rows, units 8p..8p+7 of one step (with panels=2, also units 8p+8..8p+15 of panel
    p+1: the same row loads feed twice the multiply-adds). Z's 32 columns (per panel) are

        bt[ids[r]] + X[xids[r]] @ Wq[p] + Hp[r] @ Uq[p]

    xids saying which row of X each row reads (its own, or an embedding's row read in
    place), bt being rows of four gate blocks (R, 4 ub), ub >= u a multiple of 8: the bias
    (one row, ids all zero), or a table of x W + b (an embedding's rows projected: X then
    has no columns). C is updated in place and H_t written to Hn (which must not be Hp: the
    other panels still read it). When Gs has rows (training), what backward reads is stored
    too, in lstm.py's layout:
    the gates I, F, G, O to Gs (rows of 4u, gate blocks: needs u a multiple of 8), C_{t-1} to
    CP and tanh(C_t) to TC; else those three are not touched."""
    nv = NB // 16

    @intrinsic
    def tile(typingctx, Hn, C, X, Wq, Hp, Uq, bt, ids, xids, Gs, CP, TC, i0, p):
        sig = types.void(Hn, C, X, Wq, Hp, Uq, bt, ids, xids, Gs, CP, TC, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            arrs = [context.make_array(t)(context, builder, v) for t, v in zip(signature.args[:12], args[:12])]
            hn, c, x, wq, hp, uq, bt_, ids_, xids_, gs, cp, tc = arrs
            i0v, pv = args[12], args[13]
            v8p = _V8.as_pointer()
            x_stride, h_stride = row_stride(builder, x), row_stride(builder, hp)
            c_stride, hn_stride = row_stride(builder, c), row_stride(builder, hn)
            Kx = cgutils.unpack_tuple(builder, wq.shape, 3)[1]
            Kh = cgutils.unpack_tuple(builder, uq.shape, 3)[1]
            # Z = bt[ids[r]] + X @ Wq[p] + Hp @ Uq[p]; the row of bt as [Z_i | Z_f], [Z_c | Z_o]
            cols = [builder.mul(builder.add(pv, ir.Constant(I64, j)), ir.Constant(I64, UNITS))
                    for j in range(panels)]
            ub = builder.sdiv(cgutils.unpack_tuple(builder, bt_.shape, 2)[1], ir.Constant(I64, 4))
            join = ir.Constant(ir.VectorType(I32, 16), list(range(16)))

            def index(arr, r):
                k = builder.load(builder.gep(arr.data, [builder.add(i0v, ir.Constant(I64, r))]))
                return k if k.type == I64 else builder.sext(k, I64)

            acc = []
            for r in range(rows):
                base = builder.gep(bt_.data, [builder.mul(index(ids_, r), row_stride(builder, bt_))])
                row_acc = []
                for col in cols:
                    q = [builder.load(builder.bitcast(builder.gep(base, [
                        builder.add(builder.mul(ub, ir.Constant(I64, g)), col)]), v8p), align=4) for g in range(4)]
                    row_acc += [builder.shuffle_vector(q[2 * h], q[2 * h + 1], join) for h in range(nv)]
                acc.append(row_acc)

            def panel_cols(K):         # the 16-float column groups of panels p, p+1, ... (K rows each)
                return [builder.add(builder.mul(ir.Constant(I64, j * NB), K), ir.Constant(I64, 16 * h))
                        for j in range(panels) for h in range(nv)]

            x_rows = [builder.gep(x.data, [builder.mul(index(xids_, r), x_stride)]) for r in range(rows)]
            acc = emit_kloop(builder, acc, x_rows, x_stride, panel_base(builder, wq, pv), Kx, cols=panel_cols(Kx))
            acc = emit_kloop(builder, acc, builder.gep(hp.data, [builder.mul(i0v, h_stride)]), h_stride,
                             panel_base(builder, uq, pv), Kh, cols=panel_cols(Kh))
            # the gates: acc[r] = [Z_i | Z_f], [Z_c | Z_o] of the 8 units
            scale = ir.Constant(V16, [1.0] * UNITS + [0.5] * UNITS)    # tanh(Z_c), tanh(Z_o / 2)
            shift = ir.Constant(V16, [0.0] * UNITS + [0.5] * UNITS)
            save = builder.icmp_signed("!=", cgutils.unpack_tuple(builder, gs.shape, 2)[0], ir.Constant(I64, 0))
            g_stride, cp_stride, tc_stride = row_stride(builder, gs), row_stride(builder, cp), row_stride(builder, tc)
            u = builder.sdiv(cgutils.unpack_tuple(builder, gs.shape, 2)[1], ir.Constant(I64, 4))

            def at(arr, stride, row, col, off=None):
                k = builder.add(builder.mul(row, stride), col if off is None else builder.add(col, off))
                return builder.bitcast(builder.gep(arr.data, [k]), v8p)

            def gates_and_c(r, j):          # the gates and C_t of units 8p..8p+7 (p = panel j) of row r
                row, col = builder.add(i0v, ir.Constant(I64, r)), cols[j]
                s0 = _emit_sigmoid(builder, acc[r][2 * j])                      # sigmoid(Z_i), sigmoid(Z_f)
                t1 = _emit_tanh(builder, builder.fmul(acc[r][2 * j + 1], scale))
                y1 = builder.fadd(shift, builder.fmul(scale, t1))              # tanh(Z_c), sigmoid(Z_o)
                i_, f_ = _half(builder, s0, False), _half(builder, s0, True)
                g_, o_ = _half(builder, y1, False), _half(builder, y1, True)
                c_ptr = at(c, c_stride, row, col)
                c_old = builder.load(c_ptr, align=4)
                c_new = builder.fadd(builder.fmul(f_, c_old), builder.fmul(i_, g_))
                builder.store(c_new, c_ptr, align=4)
                return row, col, (i_, f_, g_, o_), c_old, c_new

            def tanh_pairs(cs):             # tanh of 8-lane vectors, two a 16-lane tanh (lane for lane the same)
                out = []
                for k in range(0, len(cs) - 1, 2):
                    t = _emit_tanh(builder, builder.shuffle_vector(cs[k], cs[k + 1], join))
                    out += [_half(builder, t, False), _half(builder, t, True)]
                return out + [_emit_tanh(builder, cs[-1])] * (len(cs) % 2)

            items = [(r, j) for r in range(rows) for j in range(panels)]
            with builder.if_else(save) as (training, inference):
                # training: the gates, C_{t-1} and tanh(C_t) stored as they come, two rows at a
                # time (one in the two-panel tile, whose 24 accumulators leave no registers
                # for a second row's: big-lstm's train step slowed 4-13% when it spilled)
                with training:
                    per = 2 if panels == 1 else 1
                    for k in range(0, len(items), per):
                        done = [gates_and_c(*rj) for rj in items[k:k + per]]
                        for (row, col, gates, c_old, _), tanh_c in zip(done, tanh_pairs([d[4] for d in done])):
                            builder.store(builder.fmul(gates[3], tanh_c), at(hn, hn_stride, row, col), align=4)
                            for g, gate in enumerate(gates):
                                off = builder.mul(u, ir.Constant(I64, g))
                                builder.store(gate, at(gs, g_stride, row, col, off), align=4)
                            builder.store(c_old, at(cp, cp_stride, row, col), align=4)
                            builder.store(tanh_c, at(tc, tc_stride, row, col), align=4)
                # inference: every tile's C_t first, then their tanh two at a time and H_t (only
                # o and C_t stay live: independent tiles in flight, 5% off a small layer's step)
                with inference:
                    done = [gates_and_c(*rj) for rj in items]
                    for (row, col, gates, _, _), tanh_c in zip(done, tanh_pairs([d[4] for d in done])):
                        builder.store(builder.fmul(gates[3], tanh_c), at(hn, hn_stride, row, col), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


_step8, _step4, _step2, _step1 = _step_tile(8), _step_tile(4), _step_tile(2), _step_tile(1)
_pair6 = _step_tile(6, 2)
PAIR_MIN_K = 512         # k-loop length (input features + units) from which _pair6 is used

ROW_UNITS = 16           # units a vector: lstm_row_step needs a multiple of this


def _row_units(vecs: int):
    """An intrinsic tile(xh, S, h, c, j): units n j .. n j + n - 1 (n = 16 vecs) of one row
    against the stacked, unpacked S = [W; U; b] (Keras gate blocks, rows 64-byte aligned):
    z = xh @ S[:, gate columns] in 4 vecs vectors (the gate blocks u apart), then c, h of
    those units as in _step_tile."""
    n = ROW_UNITS * vecs

    @intrinsic
    def tile(typingctx, xh, S, h, c, j):
        sig = types.void(xh, S, h, c, types.intp)

        def codegen(context, builder, signature, args):
            xa, sa, ha, ca = (context.make_array(t)(context, builder, v)
                              for t, v in zip(signature.args[:4], args[:4]))
            v16p = V16.as_pointer()
            K, G = cgutils.unpack_tuple(builder, sa.shape, 2)
            u = builder.sdiv(G, ir.Constant(I64, 4))
            col = builder.mul(args[4], ir.Constant(I64, n))
            cols = [builder.add(builder.mul(u, ir.Constant(I64, g)), ir.Constant(I64, ROW_UNITS * v))
                    for g in range(4) for v in range(vecs)]
            zero = ir.Constant(V16, [0.0] * 16)
            z, = emit_kloop(builder, [[zero] * (4 * vecs)], xa.data, ir.Constant(I64, 0),
                            builder.gep(sa.data, [col]), K, row_stride(builder, sa), cols)

            for v in range(vecs):
                zi, zf, zc, zo = (z[g * vecs + v] for g in range(4))
                at = builder.add(col, ir.Constant(I64, ROW_UNITS * v))
                c_ptr = builder.bitcast(builder.gep(ca.data, [at]), v16p)
                c_new = builder.fadd(builder.fmul(_emit_sigmoid(builder, zf), builder.load(c_ptr, align=4)),
                                     builder.fmul(_emit_sigmoid(builder, zi), _emit_tanh(builder, zc)))
                builder.store(c_new, c_ptr, align=4)
                h_ptr = builder.bitcast(builder.gep(ha.data, [at]), v16p)
                builder.store(builder.fmul(_emit_sigmoid(builder, zo), _emit_tanh(builder, c_new)), h_ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


_row64, _row16 = _row_units(4), _row_units(1)


def lstm_row_step(xh, S, h, c):
    """One row of a step with the default activations: z = xh @ S; c = f*c + i*g; h = o*tanh(c),
    S = [W; U; b] unpacked (Keras layout, units a multiple of 16, float32). xh is a copy of
    [x, h, 1], so h is written as it goes. A batch-1 step reads all of S once from L2 and
    keeps z in registers (Model.step). Compiled code only."""


@overload(lstm_row_step, jit_options=dict(error_model="numpy"))
def _lstm_row_step(xh, S, h, c):
    if getattr(xh, "dtype", None) != types.float32:
        return lambda xh, S, h, c: None

    def impl(xh, S, h, c):
        n64 = h.shape[0] // 64
        for j in range(n64):
            _row64(xh, S, h, c, j)
        for j in range(4 * n64, h.shape[0] // ROW_UNITS):
            _row16(xh, S, h, c, j)
    return impl


def lstm_step_rows(X, xids, Wq, Hp, Uq, bt, ids, C, Hn, Gs, CP, TC, p0, p1):
    """One step of a few rows, panels p0..p1 (units 8 p0 .. 8 p1 - 1): C, Hn[:, :8 panels]
    from rows xids (rows,) of X (R, F), Hp (rows, >= u), the interleaved packing
    (``packed_gates``) and rows ids (rows,) of bt (R, 4 ub): the padded bias
    (``gate_blocks``) or a projected embedding table (see _step_tile). C and Hn
    are (rows, 8 panels) scratch: the units past u stay zero. Gs, CP, TC (rows, 4u), (rows,
    u), (rows, u): where to save the gates, C_{t-1} and tanh(C_t) for backward (u a multiple
    of 8), or empty: nothing saved. Compiled code only."""


@overload(lstm_step_rows, jit_options=dict(error_model="numpy"))
def _lstm_step_rows(X, xids, Wq, Hp, Uq, bt, ids, C, Hn, Gs, CP, TC, p0, p1):
    if getattr(X, "dtype", None) != types.float32:
        return lambda X, xids, Wq, Hp, Uq, bt, ids, C, Hn, Gs, CP, TC, p0, p1: None

    def impl(X, xids, Wq, Hp, Uq, bt, ids, C, Hn, Gs, CP, TC, p0, p1):
        M = Hp.shape[0]
        p = p0
        # long k loops: two panels a tile, 6 rows x 64 columns (24 accumulators: each row's
        # broadcast feeds 4 FMAs, not 2: faster on long loops). Short ones keep 8 x 32
        # (there 6-row tiles and their remainders cost more than they gain)
        while p + 2 <= p1 and Wq.shape[1] + Uq.shape[1] >= PAIR_MIN_K:
            i0 = 0
            while i0 + 6 <= M:
                _pair6(Hn, C, X, Wq, Hp, Uq, bt, ids, xids, Gs, CP, TC, i0, p)
                i0 += 6
            for q in range(p, p + 2):
                _last_rows(Hn, C, X, Wq, Hp, Uq, bt, ids, xids, Gs, CP, TC, i0, q, M)
            p += 2
        for p in range(p, p1):                # each panel stays in cache while all rows pass
            i0 = 0
            while i0 + 8 <= M:
                _step8(Hn, C, X, Wq, Hp, Uq, bt, ids, xids, Gs, CP, TC, i0, p)
                i0 += 8
            _last_rows(Hn, C, X, Wq, Hp, Uq, bt, ids, xids, Gs, CP, TC, i0, p, M)
    return impl


@njit(inline="always", error_model="numpy")
def _last_rows(Hn, C, X, Wq, Hp, Uq, bt, ids, xids, Gs, CP, TC, i0, p, M):
    """Rows i0..M (fewer than 8) of panel p, in tiles of 4, 2 and 1 rows."""
    if i0 + 4 <= M:
        _step4(Hn, C, X, Wq, Hp, Uq, bt, ids, xids, Gs, CP, TC, i0, p)
        i0 += 4
    if i0 + 2 <= M:
        _step2(Hn, C, X, Wq, Hp, Uq, bt, ids, xids, Gs, CP, TC, i0, p)
        i0 += 2
    if i0 < M:
        _step1(Hn, C, X, Wq, Hp, Uq, bt, ids, xids, Gs, CP, TC, i0, p)


@njit(inline="always")
def gate_blocks(b, ub):
    """The bias b (4u,) as one row of four gate blocks of ub >= u columns, zero past u."""
    u = b.shape[0] // 4
    out = np.zeros((1, 4 * ub), b.dtype)
    for g in range(4):
        for j in range(u):
            out[0, g * ub + j] = b[g * u + j]
    return out


@njit(inline="always")
def packed_gates(M):
    """M (K, 4u) in gate blocks [i | f | c | o] as panels (ceil(u/8), K, 32): panel p is
    [i, f, c, o] of units 8p..8p+7, zero past u; aligned like packed()."""
    P = gate_panels_empty(M)
    fill_gate_panels(M, P, 0, P.shape[0])
    return P


@njit(**KERNEL_OPTIONS)
def gate_panels(M):
    """packed_gates(M), called from Python: panels made once and kept (lstm_forward's derive)."""
    return packed_gates(M)


@njit(inline="always")
def gate_panels_empty(M):
    """The uninitialised (ceil(u/8), K, 32) panels of packed_gates(M)."""
    return group_panels_empty(M, M.shape[1] // 4, UNITS, 4)


@njit(inline="always")
def group_panels_empty(M, u, units, groups):
    """Uninitialised (ceil(u/units), K, groups units) panels for M (K, g u), aligned like packed()."""
    K = M.shape[0]
    n = (u + units - 1) // units
    return aligned_scratch(n * K, groups * units, M.dtype).reshape((n, K, groups * units))


@intrinsic
def _copy_units(typingctx, dst, di, src, si):
    """dst.flat[di : di + 8] = src.flat[si : si + 8] (C-contiguous arrays of one float type):
    one vector move, where numba's loop copied element by element."""
    sig = types.void(dst, types.intp, src, types.intp)

    def codegen(context, builder, signature, args):
        d = context.make_array(signature.args[0])(context, builder, args[0])
        s = context.make_array(signature.args[2])(context, builder, args[2])
        vt = ir.VectorType(d.data.type.pointee, UNITS).as_pointer()
        v = builder.load(builder.bitcast(builder.gep(s.data, [args[3]]), vt), align=4)
        builder.store(v, builder.bitcast(builder.gep(d.data, [args[1]]), vt), align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always")
def fill_gate_panels(M, P, p0, p1):
    """Panels p0..p1 of packed_gates(M) into P."""
    fill_group_panels(M, P, p0, p1, M.shape[1] // 4, (0, 1, 2, 3))


@njit(inline="always")
def fill_group_panels(M, P, p0, p1, u, groups):
    """Panels p0..p1 of M (K, g u), gate blocks of u columns, into P (panels, K, n units):
    panel p holds, for each gate block groups[q] in turn, its units n p .. n p + n - 1
    (n a multiple of 8); zero past u."""
    K, G = M.shape
    n = P.shape[2] // len(groups)
    flat = M.flags.c_contiguous and P.flags.c_contiguous
    full = min(p1, max(p0, u // n)) if flat else p0      # panels p0..full: n units each, copied in runs
    for p in range(full, p1):             # (the last panel of u % n units: zero past u)
        m = min(n, u - p * n)
        P[p] = 0
        for k in range(K):
            for q in range(len(groups)):
                for j in range(m):
                    P[p, k, q * n + j] = M[k, groups[q] * u + p * n + j]
    # whole unit runs copied at once (faster than the loop above), each row of M once for all
    # the panels: panel by panel, the reads strode a row of M apart (a TLB miss each)
    for k in range(K):
        for p in range(p0, full):
            for q in range(len(groups)):
                for j in range(0, n, UNITS):
                    _copy_units(P, (p * K + k) * P.shape[2] + q * n + j, M, k * G + groups[q] * u + p * n + j)


@njit(**KERNEL_OPTIONS)
def lstm_fused_rows(X, xids, W, b, U, ids, table, Ht, Ct, rmask, backwards, out, gates, h_rec, c_prev, tanh_c,
                    keep, Wq, Uq, b0, b1):
    """Rows b0..b1 of an LSTM run, one fused step per time step (float32, default activations,
    no mask). The input term of Z is x_t W + b from a per-step input X (T, B, F), or, with
    xids (T, B) not empty, from the rows xids[t, b] of X[0] (an embedding's table, read in
    place: inference only), or, with ids (T, B) not empty, row ids[t, b] of table (V, 4u) =
    E W + b (u a multiple of 8; X has no columns). Ht, Ct hold h0, c0 and end as hT, cT;
    out keeps every step, or one row (the last output). With keep (training; gates of T
    steps, u a multiple of 8) the step saves what lstm_backward_kernel reads: gates, h_rec = H_{t-1} *
    rmask (the product's input), c_prev, tanh_c; else gates is a 1-step scratch and nothing
    is saved. Wq, Uq: packed_gates(W), packed_gates(U) made before (kept between calls), or
    with no panels: each worker packs them itself. A kernel of its own (lstm.py's
    FUSED_ROWS route), so that a model that takes only this route compiles only this code."""
    gather = xids.shape[0] > 0
    T = xids.shape[0] if gather else X.shape[0]
    u = Ht.shape[1]
    M = b1 - b0
    own = np.arange(M)                            # each row reads its own row of X[t, b0:b1]
    if Uq.shape[0] == 0:
        Wq, Uq = packed_gates(W), packed_gates(U)
    width = Uq.shape[0] * UNITS
    by_id = ids.shape[0] > 0
    bt = table if by_id else gate_blocks(b, width)
    row0 = np.zeros(M, ids.dtype)                 # the bias's row, for every row
    Hs, Cs = state_scratch(Ht, Ct, b0, b1, width)
    none = Cs[:0]
    last = out.shape[0] == 1
    for s in range(T):
        t = T - 1 - s if backwards else s
        cur = (s % 2) * M
        nxt = M - cur
        rows = ids[t, b0:b1] if by_id else row0
        src, xrows = (X[0], xids[t, b0:b1]) if gather else (X[t, b0:b1], own)
        if keep:
            for r in range(M):
                dropped_row(h_rec[t, b0 + r], Hs[cur + r, :u], rmask, b0 + r)
            lstm_step_rows(src, xrows, Wq, h_rec[t, b0:b1], Uq, bt, rows, Cs, Hs[nxt:nxt + M],
                           gates[t, b0:b1], c_prev[t, b0:b1], tanh_c[t, b0:b1], 0, Uq.shape[0])
        else:
            lstm_step_rows(src, xrows, Wq, Hs[cur:cur + M], Uq, bt, rows, Cs, Hs[nxt:nxt + M],
                           none, none, none, 0, Uq.shape[0])
        if not last or s == T - 1:
            copy_rows(out[0 if last else s, b0:b1], Hs[nxt:nxt + M, :u])
    state_back(Hs, Cs, Ht, Ct, b0, b1, T)


@njit(inline="always")
def state_scratch(Ht, Ct, b0, b1, width):
    """The fused steps' state for rows b0..b1 (M rows), units padded to width: Hs (2M,
    width), H_{t-1} and H_t swapping halves each step, the first holding h0; Cs (M, width)
    holding c0, updated in place. Zero past u."""
    M, u = b1 - b0, Ht.shape[1]
    Hs = aligned_scratch(2 * M, width, Ht.dtype)
    Cs = aligned_scratch(M, width, Ht.dtype)
    Hs[:] = 0
    Cs[:] = 0
    copy_rows(Hs[:M, :u], Ht[b0:b1])
    copy_rows(Cs[:, :u], Ct[b0:b1])
    return Hs, Cs


@njit(inline="always")
def state_back(Hs, Cs, Ht, Ct, b0, b1, T):
    """hT, cT of rows b0..b1 from state_scratch's arrays after T steps."""
    M, u = b1 - b0, Ht.shape[1]
    fin = (T % 2) * M
    copy_rows(Ht[b0:b1], Hs[fin:fin + M, :u])
    copy_rows(Ct[b0:b1], Cs[:, :u])


def _bptt_block(width: int):
    """An intrinsic block(dz, dh, dc, dout, cp, tc, tiny, j0): units j0..j0+width-1 of one row
    of an LSTM backward step (default activations, no mask), in vectors of the arrays' float
    type, each line undoing a forward line (lstm.py):

        dH  = dh + dout                          out[s] = H_t
        dO  = dH * tanh(C_t)                     H_t = O * tanh(C_t)
        dc' = dc + dH * O * (1 - tanh(C_t)^2)
        dI, dF, dG = dc' G, dc' C_{t-1}, dc' I   C_t = F C_{t-1} + I G
        dc  = dc' F                              (becomes dL/dC_{t-1})
        dz  = dI I(1-I) | dF F(1-F) | dG (1-G^2) | dO O(1-O)     I, F, O = sigmoid(Z); G = tanh(Z)

    dz holds the saved gates I, F, G, O on entry (lstm_backward writes dZ over them); each
    unit's four are read before its dZ is stored. dz and dc below tiny are flushed to zero
    (flush_row). Straight-line vector code: the scalar loops it replaces did not vectorise
    (LLVM's runtime overlap checks between eight row views fail)."""

    @intrinsic
    def block(typingctx, dz, dh, dc, dout, cp, tc, tiny, j0):
        sig = types.void(dz, dh, dc, dout, cp, tc, tiny, types.intp)

        def codegen(context, builder, signature, args):
            fty = context.get_value_type(signature.args[0].dtype)
            vt = ir.VectorType(fty, width)
            vp = vt.as_pointer()
            a = [context.make_array(t)(context, builder, v) for t, v in zip(signature.args[:6], args[:6])]
            dz_, dh_, dc_, dout_, cp_, tc_ = a
            j0v = args[7]
            u = cgutils.unpack_tuple(builder, dh_.shape, 1)[0]

            def ptr(arr, off):
                return builder.bitcast(builder.gep(arr.data, [builder.add(j0v, off)]), vp)

            zero = ir.Constant(I64, 0)
            gate = [builder.mul(u, ir.Constant(I64, k)) for k in range(4)]
            ld = lambda arr, off=zero: builder.load(ptr(arr, off), align=1)    # noqa: E731
            one = ir.Constant(vt, [1.0] * width)
            tiny_v = broadcast(builder, args[6], vt)
            zv = ir.Constant(vt, [0.0] * width)
            fabs = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt]),
                                                  f"llvm.fabs.v{width}{'f32' if fty == F32 else 'f64'}")

            def flush(v):           # to zero below tiny; NaN stays NaN (as flush_row's v * 0: the
                # compare is false for it), so that a broken weight's gradient is not made finite
                return builder.select(builder.fcmp_ordered("<", builder.call(fabs, [v]), tiny_v), zv, v)

            I, F, G, O = (ld(dz_, g) for g in gate)
            aC, Cp = ld(tc_), ld(cp_)
            dH = builder.fadd(ld(dh_), ld(dout_))
            dpo = builder.fmul(dH, aC)
            dch = builder.fmul(builder.fmul(dH, O), builder.fsub(one, builder.fmul(aC, aC)))
            dc = builder.fadd(ld(dc_), dch)
            dzs = (builder.fmul(builder.fmul(dc, G), builder.fsub(I, builder.fmul(I, I))),
                   builder.fmul(builder.fmul(dc, Cp), builder.fsub(F, builder.fmul(F, F))),
                   builder.fmul(builder.fmul(dc, I), builder.fsub(one, builder.fmul(G, G))),
                   builder.fmul(dpo, builder.fsub(O, builder.fmul(O, O))))
            for g, d in zip(gate, dzs):
                builder.store(flush(d), ptr(dz_, g), align=1)
            builder.store(flush(builder.fmul(dc, F)), ptr(dc_, zero), align=1)
            return context.get_dummy_value()

        return sig, codegen

    return block


_bptt16, _bptt1 = _bptt_block(16), _bptt_block(1)


@njit(inline="always")
def lstm_bptt_row(dz, dh, dc, dout, cp, tc, tiny):
    """One row of an LSTM backward step with the default activations and no mask (see
    _bptt_block): dz (4u) the saved gates in, dZ out; dc (u) dL/dC_t in, dL/dC_{t-1} out.
    16 units a vector, the last u % 16 one at a time."""
    lstm_bptt_units(dz, dh, dc, dout, cp, tc, tiny, 0, dh.shape[0])


@njit(inline="always")
def lstm_bptt_units(dz, dh, dc, dout, cp, tc, tiny, j0, j1):
    """lstm_bptt_row for units j0..j1 only (a worker's share when BPTT is split by units)."""
    j = j0
    while j + 16 <= j1:
        _bptt16(dz, dh, dc, dout, cp, tc, tiny, j)
        j += 16
    while j < j1:
        _bptt1(dz, dh, dc, dout, cp, tc, tiny, j)
        j += 1
