"""The packed small-row product (kernels/cpu/packed.py) and the float32 backward passes
that use it, against NumPy and against the float64 kernels (which use np.dot)."""

import numpy as np
import pytest
from numba import njit

from rnndsl.kernels.cpu.packed import pack, packed, padded_width, rows_matmul, tn_accumulate

from .harness import GRU, GRU_RESET_AFTER, LSTM, SIMPLERNN, cast, loss_weights, make_inputs, make_mask, make_rmask


@njit(error_model="numpy")
def _rows(A, U, P, C, b0, b1):
    rows_matmul(A[b0:b1], U, P, C[b0:b1])


@njit(error_model="numpy")
def _tn(A1, B1, A2, B2, C):
    tn_accumulate(A1, B1, A2, B2, C)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("M", [1, 3, 7, 12, 13, 23, 29, 64])
@pytest.mark.parametrize("N,K2", [(32, 5), (64, 0), (40, 3)])
def test_tn_accumulate_matches_numpy(dtype, M, N, K2):
    """C += A1^T B1 + A2^T B2: the 12-row tiles and every remainder (8, 4, 2, 1), a second
    pair with no rows, N not a multiple of 32 (np.dot); A read from a wider array in place."""
    rng = np.random.default_rng(M * 10 + N + K2)
    A1, A2 = rng.normal(size=(9, M + 3))[:, 1:M + 1], rng.normal(size=(K2, M + 3))[:, 1:M + 1]
    B1, B2 = rng.normal(size=(9, N)), rng.normal(size=(K2, N))
    A1, A2, B1, B2 = (a.astype(dtype) for a in (A1, A2, B1, B2))
    C = rng.normal(size=(M, N)).astype(dtype)
    want = C.astype(np.float64) + A1.T.astype(np.float64) @ B1 + A2.T.astype(np.float64) @ B2
    _tn(A1, B1, A2, B2, C)
    np.testing.assert_allclose(C, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("M,K,N", [(1, 3, 4), (3, 5, 12), (7, 17, 33), (13, 64, 256), (32, 128, 512),
                                   (9, 40, 64), (5, 0, 8)])
def test_rows_matmul_matches_numpy(dtype, M, K, N):
    """Every row remainder (8, 4, 2, 1 blocks), padded columns, an output of exactly N columns
    (the last panel through a scratch block), K = 0, a row range of a larger output whose
    other rows stay untouched."""
    rng = np.random.default_rng(M * 100 + K)
    A = rng.normal(size=(M + 2, K)).astype(dtype)
    U = rng.normal(size=(K, N)).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for width in {padded_width(N, dtype), N}:       # room for the padded panel, or exactly N columns
        C = np.full((M + 2, width), 7, dtype)
        _rows(A, U, pack(U), C, 1, M + 1)
        np.testing.assert_allclose(C[1:M + 1, :N], A[1:M + 1].astype(np.float64) @ U, rtol=tol, atol=tol * 10)
        assert (C[0] == 7).all() and (C[M + 1] == 7).all()


def test_pack_layout():
    U = np.arange(3 * 40, dtype=np.float32).reshape(3, 40)
    P = pack(U)
    assert P.shape == (2, 3, 32)
    np.testing.assert_array_equal(P[0], U[:, :32])
    np.testing.assert_array_equal(P[1, :, :8], U[:, 32:])
    assert (P[1, :, 8:] == 0).all()
    assert pack(U.astype(np.float64)).shape[0] == 0


@pytest.mark.parametrize("cell", [SIMPLERNN, LSTM, GRU, GRU_RESET_AFTER], ids=["simplernn", "lstm", "gru", "gru_reset_after"])
@pytest.mark.parametrize("opts", [{}, {"masked": True, "backwards": True, "dropout": True}], ids=["plain", "options"])
def test_float32_backward_matches_float64(cell, opts):
    """float32 forward + BPTT (packed products) against float64 (np.dot), 11 rows, 37 units."""
    p = make_inputs(cell, T=6, B=11, u=37, scale=0.5)
    T, B, _ = p["xp"].shape
    u = p["U"].shape[0]
    opts = dict(opts)
    if opts.pop("masked", False):
        opts["mask"] = make_mask(T, B)
    if opts.pop("dropout", False):
        opts["rmask"] = make_rmask(B, u)
    R_out, R_finals = loss_weights((T, B, u), len(cell.states))
    p32 = cast(p, np.float32)
    p64 = cast(p32, np.float64)
    results = []
    for q, dt in ((p32, np.float32), (p64, np.float64)):
        o = {k: (np.asarray(v, dt) if k == "rmask" else v) for k, v in opts.items()}
        out, finals, saved = cell.run(q, o)
        results.append((out, cell.grads(saved, R_out.astype(dt), [r.astype(dt) for r in R_finals])))
    (out32, g32), (out64, g64) = results
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)
    for name in cell.params + cell.states:
        a, b = np.asarray(g32[name], np.float64), g64[name]
        assert np.abs(a - b).max() <= 1e-4 * max(np.abs(b).max(), 1.0), name


@njit(error_model="numpy")
def _packed_in_compiled_code(U):
    return packed(U)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape", [(5, 70), (64, 33), (37, 96), (1, 1)])
def test_packed_in_compiled_code_equals_pack(dtype, shape):
    """packed(U) and packed(U.T) (a transpose: read through fill_panels_transposed) in
    compiled code: the panels pack() makes of a C copy, zeros past the last column."""
    U = np.random.default_rng(1).normal(size=shape).astype(dtype)
    np.testing.assert_array_equal(_packed_in_compiled_code(U), pack(U))
    np.testing.assert_array_equal(_packed_in_compiled_code(U.T), pack(np.ascontiguousarray(U.T)))
