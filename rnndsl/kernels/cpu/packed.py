"""Small-row matrix products against a weight matrix packed once per call: C = A @ U.

The time loops multiply a few rows (a worker's share of the batch) by the same U at
every step. OpenBLAS repacks U on every such call and runs far below its peak at these
shapes; here U is packed once into column panels P[jt] = U[:, 32 jt : 32 jt + 32]
(K, 32), zero-padded to a multiple of 32 columns, and a register-tiled kernel keeps
an 8 x 32 block of C in sixteen 16-wide vector registers while it walks K:

    for each panel jt, for each block of 8 rows i:
        acc[8, 32] = 0
        for k in range(K): acc += A[i:i+8, k, None] * P[jt, k, :]     (16 FMAs)
        C[i:i+8, 32 jt : 32 jt + 32] = acc

(remainder rows in blocks of 4, 2, 1). How it compares with OpenBLAS: bench/README.md,
"Measurements behind the code".

numba cannot be made to keep such a block in registers from Python source (the
accumulators go through memory), so the kernel is an @intrinsic that
emits the LLVM vector IR directly. float32 only: float64 (the exact mode used by
the tests) goes through np.dot, chosen at compile time by the overload below.
C may have exactly N columns; with room for the padded ones (``padded_width``) the
last panel is stored directly instead of through a scratch block.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

NB = 32          # columns per panel: two 16-wide vectors
_LANES = 16


def padded_width(n: int, dtype) -> int:
    """Columns C needs for n output columns: a multiple of NB for float32."""
    return -(-n // NB) * NB if np.dtype(dtype) == np.float32 else n


def aligned_empty(shape, dtype, align=64):
    """np.empty with the data at a multiple of `align` bytes. NumPy aligns to 16: a matrix
    off by 16 or 48 bytes from a cache line makes every AVX-512 load of a row span two
    lines, which slows both the packed products and the batch-1 steps."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(n + align, np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + n].view(dtype).reshape(shape)


def pack(U: np.ndarray) -> np.ndarray:
    """U (K, N) as panels (ceil(N/NB), K, NB), zero-padded and cache-line aligned;
    float64: an empty stand-in. From Python (tests, the bench); the kernels call
    ``packed``, which this runs."""
    return _pack(U)


@njit(inline="always")
def aligned_scratch(rows, cols, dt):
    """np.empty((rows, cols), dt) inside compiled code, its data 64-byte aligned (see
    aligned_empty): the product's output rows then start on cache lines."""
    raw = np.empty(rows * cols + 64, dt)
    off = ((-raw.ctypes.data) % 64) // raw.itemsize
    return raw[off:off + rows * cols].reshape((rows, cols))


F32, I32, I64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
V16 = ir.VectorType(F32, _LANES)


def broadcast(builder, x, vt):
    """IR: the scalar x in every lane of a vector of type vt."""
    undef = ir.Constant(vt, ir.Undefined)
    lanes = ir.Constant(ir.VectorType(I32, vt.count), [0] * vt.count)
    return builder.shuffle_vector(builder.insert_element(undef, x, ir.Constant(I32, 0)), undef, lanes)


def row_stride(builder, arr):
    """An array struct's first stride, in floats."""
    return builder.sdiv(cgutils.unpack_tuple(builder, arr.strides, arr.strides.type.count)[0],
                        ir.Constant(I64, 4))


def panel_base(builder, pa, jt):
    """&P[jt, 0, 0] of a packed (panels, K, NB) array struct."""
    pK = cgutils.unpack_tuple(builder, pa.shape, 3)[1]
    return builder.gep(pa.data, [builder.mul(builder.mul(jt, pK), ir.Constant(I64, NB))])


UNROLL = 4       # k steps per loop iteration: fewer address updates per FMA


def emit_kloop(builder, acc, a_base, a_stride, p_base, K, p_stride=NB, cols=None, a_kstride=1):
    """IR for acc[r][q] += A[r, k] * P[k, cols[q] : cols[q] + 16] over k < K, for the rows of
    acc (lists of vectors of 16 floats, one per entry of cols), A[r, k] at a_base + r *
    a_stride + k a_kstride (or, a_base a list, at a_base[r] + k a_kstride: rows gathered
    from anywhere) and P's row k at p_base + p_stride k. cols defaults to a packed panel's
    (0, 16). Returns the new accumulators (acc itself when K == 0)."""
    if cols is None:
        cols = [_LANES * q for q in range(NB // _LANES)]
    cols = [ir.Constant(I64, c) if isinstance(c, int) else c for c in cols]
    if isinstance(p_stride, int):
        p_stride = ir.Constant(I64, p_stride)
    if isinstance(a_kstride, int):
        a_kstride = ir.Constant(I64, a_kstride)
    if isinstance(a_base, list):
        rowp = a_base
    else:
        rowp = [builder.gep(a_base, [builder.mul(ir.Constant(I64, r), a_stride)]) for r in range(len(acc))]
    k_main = builder.and_(K, ir.Constant(I64, -UNROLL))
    acc = _emit_loop(builder, acc, rowp, a_kstride, p_base, p_stride, cols, ir.Constant(I64, 0), k_main, UNROLL)
    return _emit_loop(builder, acc, rowp, a_kstride, p_base, p_stride, cols, k_main, K, 1)


def _emit_loop(builder, acc, rowp, a_kstride, p_base, p_stride, cols, k0, k1, unroll):
    """The k loop from k0 to k1 (a multiple of unroll apart), unroll steps per iteration."""
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(V16, [V16, V16, V16]),
                                         "llvm.fma.v16f32")
    vptr = V16.as_pointer()
    pre = builder.basic_block
    loop = builder.function.append_basic_block("kloop")
    done = builder.function.append_basic_block("kloop.done")
    builder.cbranch(builder.icmp_signed("<", k0, k1), loop, done)
    builder.position_at_end(loop)
    k = builder.phi(I64)
    k.add_incoming(k0, pre)
    cur = [[builder.phi(V16) for _ in row] for row in acc]
    for row, old in zip(cur, acc):
        for p, a in zip(row, old):
            p.add_incoming(a, pre)
    new = cur
    for d in range(unroll):
        kd = builder.add(k, ir.Constant(I64, d))
        bk = builder.gep(p_base, [builder.mul(kd, p_stride)])
        b = [builder.load(builder.bitcast(builder.gep(bk, [c]), vptr), align=4) for c in cols]
        step = []
        for r, row in enumerate(new):
            a = builder.load(builder.gep(rowp[r], [builder.mul(kd, a_kstride)]))
            av = broadcast(builder, a, V16)
            step.append([builder.call(fma, [av, bq, aq]) for bq, aq in zip(b, row)])
        new = step
    kn = builder.add(k, ir.Constant(I64, unroll))
    tail = builder.basic_block
    k.add_incoming(kn, tail)
    for row, nrow in zip(cur, new):
        for p, n in zip(row, nrow):
            p.add_incoming(n, tail)
    builder.cbranch(builder.icmp_signed("<", kn, k1), loop, done)
    builder.position_at_end(done)
    out = []
    for old, nrow in zip(acc, new):
        res = []
        for a, n in zip(old, nrow):
            p = builder.phi(V16)
            p.add_incoming(a, pre)
            p.add_incoming(n, tail)
            res.append(p)
        out.append(res)
    return out


def _tile(rows: int):
    """An intrinsic tile(C, A, P, i0, jt, cj): C[i0:i0+rows, NB cj : NB cj + NB] = A[i0:i0+rows] @ P[jt]."""
    nv = NB // _LANES

    @intrinsic
    def tile(typingctx, C, A, P, i0, jt, cj):
        sig = types.void(C, A, P, types.intp, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            Cv, Av, Pv, i0v, jtv, cjv = args
            ca = context.make_array(signature.args[0])(context, builder, Cv)
            aa = context.make_array(signature.args[1])(context, builder, Av)
            pa = context.make_array(signature.args[2])(context, builder, Pv)
            c_stride, a_stride = row_stride(builder, ca), row_stride(builder, aa)
            K = cgutils.unpack_tuple(builder, aa.shape, 2)[1]
            a_base = builder.gep(aa.data, [builder.mul(i0v, a_stride)])                 # &A[i0, 0]
            c_base = builder.gep(ca.data, [builder.add(builder.mul(i0v, c_stride),
                                                       builder.mul(cjv, ir.Constant(I64, NB)))])
            zero = ir.Constant(V16, [0.0] * _LANES)
            acc = emit_kloop(builder, [[zero] * nv for _ in range(rows)], a_base, a_stride,
                             panel_base(builder, pa, jtv), K)
            vptr = V16.as_pointer()
            for r in range(rows):
                for q in range(nv):
                    off = builder.add(builder.mul(ir.Constant(I64, r), c_stride), ir.Constant(I64, _LANES * q))
                    builder.store(acc[r][q], builder.bitcast(builder.gep(c_base, [off]), vptr), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


_tile8, _tile4, _tile2, _tile1 = _tile(8), _tile(4), _tile(2), _tile(1)


@njit(inline="always")
def _panel(A, P, C, jt, cj):
    """C[:, NB cj : NB cj + NB] = A @ P[jt], the rows in blocks of 8, 4, 2, 1."""
    M = A.shape[0]
    i0 = 0
    while i0 + 8 <= M:
        _tile8(C, A, P, i0, jt, cj)
        i0 += 8
    if i0 + 4 <= M:
        _tile4(C, A, P, i0, jt, cj)
        i0 += 4
    if i0 + 2 <= M:
        _tile2(C, A, P, i0, jt, cj)
        i0 += 2
    if i0 < M:
        _tile1(C, A, P, i0, jt, cj)


@njit(inline="always")
def _packed_matmul(A, P, C):
    packed_panels_matmul(A, P, C, 0, P.shape[0])


@njit(inline="always")
def packed_panels_matmul(A, P, C, j0, j1):
    """C[:, NB j0 : NB j1] = A @ (U's columns NB j0 .. NB j1), P = pack(U) (float32), C having
    exactly U's N columns or room for the padded ones (a worker's own columns of a product)."""
    full = min(j1, C.shape[1] // NB)       # panels C has room for
    for jt in range(j0, full):             # each panel stays in L1 while all rows pass over it
        _panel(A, P, C, jt, jt)
    if j0 <= full < j1:                    # the last, partial panel: through a scratch block
        M = A.shape[0]
        tmp = aligned_scratch(M, NB, C.dtype)
        _panel(A, P, tmp, full, 0)
        rest = C.shape[1] - full * NB
        for i in range(M):
            for j in range(rest):
                C[i, full * NB + j] = tmp[i, j]


@njit(inline="always")
def packed_empty(K, N, dt):
    """The uninitialised (ceil(N/NB), K, NB) panels of pack() for a (K, N) matrix."""
    nt = (N + NB - 1) // NB
    return aligned_scratch(nt * K, NB, dt).reshape((nt, K, NB))


@njit(inline="always")
def fill_panels_transposed(M, P, j0, j1):
    """Panels j0..j1 of pack(M.T) into P, for M (N, K) C-contiguous, zero past N: each panel
    row P[jt, k] written whole from the panel's 32 rows of M, whose cache lines stay in L1
    from one k to the next (faster than M.T's columns read one at a time: bench/README.md)."""
    N, K = M.shape
    for jt in range(j0, j1):
        c0 = jt * NB
        m = min(NB, N - c0)
        for k in range(K):
            for j in range(m):
                P[jt, k, j] = M[c0 + j, k]
            for j in range(m, NB):
                P[jt, k, j] = 0


def packed(U):
    """pack(U) inside compiled code (each worker packs its own copy: no Python per call)."""


@overload(packed, jit_options=dict(error_model="numpy"))
def _packed(U):
    if getattr(U, "dtype", None) == types.float32 and U.layout == "F":
        def impl(U):            # a transpose (BPTT's U^T): read as its C-ordered source's rows
            K, N = U.shape
            P = packed_empty(K, N, np.float32)
            fill_panels_transposed(U.T, P, 0, P.shape[0])
            return P
    elif getattr(U, "dtype", None) == types.float32:
        def impl(U):
            K, N = U.shape
            nt = (N + NB - 1) // NB
            P = aligned_scratch(nt * K, NB, np.float32).reshape((nt, K, NB))
            full = N // NB
            # U's rows read once each, in order (panel by panel they are read a row apart: a
            # TLB miss a read on wide matrices, 1.7x slower at 1024 x 4096)
            for k in range(K):
                for jt in range(full):
                    for j in range(NB):
                        P[jt, k, j] = U[k, jt * NB + j]
            for jt in range(full, nt):          # the last, partial panel: zero past N
                for k in range(K):
                    for j in range(NB):
                        c = jt * NB + j
                        P[jt, k, j] = U[k, c] if c < N else np.float32(0)
            return P
    else:
        def impl(U):
            return np.empty((0, 0, NB), U.dtype)
    return impl


@njit(cache=True, error_model="numpy")
def _pack(U):
    return packed(U)


def rows_matmul(A, U, P, C):
    """C[:, :N] = A @ U (A: a few rows, any row stride, unit stride along K); P = pack(U).
    Compiled code only."""


@overload(rows_matmul, jit_options=dict(error_model="numpy"))
def _rows_matmul(A, U, P, C):
    if getattr(A, "dtype", None) == types.float32:
        def impl(A, U, P, C):
            _packed_matmul(A, P, C)
    else:
        def impl(A, U, P, C):
            np.dot(np.ascontiguousarray(A), U, C)    # a copy only for strided rows
    return impl


def _tn_tile(rows: int):
    """An intrinsic tile(C, A1, B1, A2, B2, i0, j0): C[i0:i0+rows, j0:j0+NB] += A1[:, i0:i0+rows]^T
    @ B1[:, j0:j0+NB] + the same of A2, B2; A (K, M) and B (K, N) read in place (A2, B2 may
    have no rows). Meant for a small K (a worker's rows of one or two steps: B's NB columns
    then stay in L1 across the row blocks); over thousands of rows the strided reads of B
    make it slower than BLAS. Two pairs a pass halve the reads and writes of C."""
    nv = NB // _LANES

    @intrinsic
    def tile(typingctx, C, A1, B1, A2, B2, i0, j0):
        sig = types.void(C, A1, B1, A2, B2, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            ca, a1, b1, a2, b2 = (context.make_array(t)(context, builder, v)
                                  for t, v in zip(signature.args[:5], args[:5]))
            i0v, j0v = args[5], args[6]
            c_stride = row_stride(builder, ca)
            vptr = V16.as_pointer()
            c_base = builder.gep(ca.data, [builder.add(builder.mul(i0v, c_stride), j0v)])
            ptrs = [[builder.bitcast(builder.gep(c_base, [builder.add(builder.mul(ir.Constant(I64, r), c_stride),
                                                                        ir.Constant(I64, _LANES * q))]), vptr)
                     for q in range(nv)] for r in range(rows)]
            acc = [[builder.load(p, align=4) for p in row] for row in ptrs]
            for aa, ba in ((a1, b1), (a2, b2)):
                K = cgutils.unpack_tuple(builder, aa.shape, 2)[0]
                acc = emit_kloop(builder, acc, builder.gep(aa.data, [i0v]), ir.Constant(I64, 1),
                                 builder.gep(ba.data, [j0v]), K, p_stride=row_stride(builder, ba),
                                 a_kstride=row_stride(builder, aa))
            for row, prow in zip(acc, ptrs):
                for v, p in zip(row, prow):
                    builder.store(v, p, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


# 12 rows a tile: 24 accumulators, each k's two B loads feeding 24 FMAs (8 rows: 16)
_tn12, _tn8, _tn4, _tn2, _tn1 = _tn_tile(12), _tn_tile(8), _tn_tile(4), _tn_tile(2), _tn_tile(1)


def tn_accumulate(A1, B1, A2, B2, C):
    """C += A1^T @ B1 + A2^T @ B2 for A (K, M), B (K, N) with unit inner strides (A2, B2 may
    have no rows): the tiles when float32 and N is a multiple of NB, else np.dot. Compiled
    code only."""


@overload(tn_accumulate, jit_options=dict(error_model="numpy"))
def _tn_accumulate(A1, B1, A2, B2, C):
    if getattr(A1, "dtype", None) == types.float32:
        def impl(A1, B1, A2, B2, C):
            M = A1.shape[1]
            if B1.shape[1] % NB:
                C += np.dot(np.ascontiguousarray(A1.T), B1) + np.dot(np.ascontiguousarray(A2.T), B2)
                return
            for j0 in range(0, B1.shape[1], NB):
                i0 = 0
                while i0 + 12 <= M:
                    _tn12(C, A1, B1, A2, B2, i0, j0)
                    i0 += 12
                if i0 + 8 <= M:
                    _tn8(C, A1, B1, A2, B2, i0, j0)
                    i0 += 8
                if i0 + 4 <= M:
                    _tn4(C, A1, B1, A2, B2, i0, j0)
                    i0 += 4
                if i0 + 2 <= M:
                    _tn2(C, A1, B1, A2, B2, i0, j0)
                    i0 += 2
                if i0 < M:
                    _tn1(C, A1, B1, A2, B2, i0, j0)
    else:
        def impl(A1, B1, A2, B2, C):
            C += np.dot(np.ascontiguousarray(A1.T), B1) + np.dot(np.ascontiguousarray(A2.T), B2)
    return impl
