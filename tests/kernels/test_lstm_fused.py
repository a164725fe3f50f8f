"""The float32 LSTM step with its gate math in the product's epilogue (kernels/cpu/lstm_fused.py):
inference against the float64 NumPy reference and the unfused float32 path, training (what it
saves for backward, and the gradients from it) against the float64 kernels."""

from pathlib import Path

import numpy as np
import pytest
from numba import njit

from rnndsl.kernels.cpu.lstm import lstm_backward, lstm_forward
from rnndsl.kernels.cpu.lstm_fused import packed_gates

from . import reference as ref
from .harness import check_table_against_rows


def _case(T, B, F, u, seed=0):
    rng = np.random.default_rng(seed)
    f32 = np.float32
    X = rng.normal(size=(T, B, F)).astype(f32)
    W = (rng.normal(size=(F, 4 * u)) * 0.5).astype(f32)
    U = (rng.normal(size=(u, 4 * u)) * 0.5).astype(f32)
    b = rng.normal(size=4 * u).astype(f32)
    h0, c0 = rng.normal(size=(B, u)).astype(f32), rng.normal(size=(B, u)).astype(f32)
    return X, W, U, b, h0, c0


@njit(error_model="numpy")
def _packed_gates(M):
    return packed_gates(M)


def test_packed_gates_layout():
    """Panel p holds [i, f, c, o] of units 8p..8p+7, zeros past u."""
    u, K = 11, 3
    M = np.arange(K * 4 * u, dtype=np.float32).reshape(K, 4 * u)
    P = _packed_gates(M)
    assert P.shape == (2, K, 32) and P.ctypes.data % 64 == 0
    for g in range(4):
        np.testing.assert_array_equal(P[0, :, 8 * g:8 * g + 8], M[:, g * u:g * u + 8])
        np.testing.assert_array_equal(P[1, :, 8 * g:8 * g + 3], M[:, g * u + 8:g * u + 11])
        assert (P[1, :, 8 * g + 3:8 * g + 8] == 0).all()


@pytest.mark.parametrize("T,B,F,u", [(3, 1, 5, 1), (4, 3, 7, 8), (5, 13, 40, 13), (3, 17, 3, 64), (2, 2, 1, 33)])
@pytest.mark.parametrize("backwards", [False, True])
@pytest.mark.parametrize("last_only", [False, True])
def test_fused_inference_matches_reference(T, B, F, u, backwards, last_only):
    """Every row block (8, 4, 2, 1), units not a multiple of 8, one unit, one feature."""
    X, W, U, b, h0, c0 = _case(T, B, F, u, seed=T * B + u)
    X64 = X.astype(np.float64)
    want, wh, wc = ref.lstm(X64 @ W.astype(np.float64) + b, U, h0, c0, backwards=backwards)
    out, hT, cT, saved = lstm_forward(None, U, h0, c0, keep=False, X=X, W=W, b_in=b,
                                      last_only=last_only, backwards=backwards)
    assert saved is None
    np.testing.assert_allclose(out, want[-1:] if last_only else want, atol=1e-5)
    np.testing.assert_allclose(hT, wh, atol=1e-5)
    np.testing.assert_allclose(cT, wc, atol=1e-5)
    # the unfused path (what a training forward runs) gives the same to rounding
    out2, hT2, cT2, _ = lstm_forward(None, U, h0, c0, keep=True, X=X, W=W, b_in=b, backwards=backwards)
    np.testing.assert_allclose(out, out2[-1:] if last_only else out2, atol=2e-6)
    np.testing.assert_allclose(cT, cT2, atol=2e-6)


@pytest.mark.parametrize("T,B,F,u", [(3, 1, 5, 8), (4, 3, 7, 16), (5, 13, 40, 24)])
@pytest.mark.parametrize("backwards", [False, True])
@pytest.mark.parametrize("dropout", [False, True])
def test_fused_training_forward_saves_what_backward_reads(T, B, F, u, backwards, dropout):
    """keep=True with units a multiple of 8 runs the saving epilogue: its outputs, saved
    gates, h_rec (with recurrent dropout), c_prev, tanh_c and then BPTT's gradients equal the
    float64 kernels' (which run the scalar gate loops) to float32 rounding."""
    X, W, U, b, h0, c0 = _case(T, B, F, u, seed=T + u)
    rng = np.random.default_rng(u)
    rmask = (rng.random((B, u)) > 0.3).astype(np.float32) / np.float32(0.7) if dropout else None
    dout = rng.normal(size=(T, B, u)).astype(np.float32)
    res = {}
    for dt in (np.float32, np.float64):
        def c(a):
            return None if a is None else a.astype(dt)
        out, hT, cT, sv = lstm_forward(None, c(U), c(h0), c(c0), keep=True, X=c(X), W=c(W), b_in=c(b),
                                       backwards=backwards, rmask=c(rmask))
        kept = [a.copy() for a in (sv.gates, sv.h_rec, sv.c_prev, sv.tanh_c)]     # backward consumes gates
        res[dt] = (out, hT, cT, *kept, *lstm_backward(sv, c(dout)))
    for got, want in zip(res[np.float32], res[np.float64]):
        np.testing.assert_allclose(got, want, atol=2e-5 * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("u,in_loop", [(8, True), (13, True), (8, False)])   # 4u a multiple of 32 or not
def test_weight_gradients_inside_the_time_loop(forced_split, monkeypatch, u, in_loop):
    """lstm_backward(weights=True, W=W): dW = X^T dZ, db = sum dZ and dU = H^T dZ accumulated
    step by step and row range by row range (or, past MAX_LOOP_GRAD, products over all steps),
    and dX = dZ W^T after each worker's loop, equal the products over all steps, float32 and
    float64, on one thread and split."""
    import rnndsl.kernels.cpu.lstm as lstm_mod
    if not in_loop:
        monkeypatch.setattr(lstm_mod, "MAX_LOOP_GRAD", 0)
    X, W, U, b, h0, c0 = _case(5, 11, 7, u, seed=u)
    dout = np.random.default_rng(u).normal(size=(5, 11, u)).astype(np.float32)
    for dt in (np.float32, np.float64):
        def run():
            c = [a.astype(dt) for a in (U, h0, c0, X, W, b)]
            sv = lstm_forward(None, c[0], c[1], c[2], keep=True, X=c[3], W=c[4], b_in=c[5])[3]
            h_rec = sv.h_rec.copy()
            return (h_rec, *lstm_backward(sv, dout.astype(dt), weights=True, W=c[4]))
        one, split = forced_split(run)
        h_rec, dZ, dU, _, _, dW, db, dX = one
        flat = dZ.reshape(-1, 4 * u).astype(np.float64)
        tol = dict(rtol=1e-4, atol=1e-4) if dt == np.float32 else dict(rtol=1e-10, atol=1e-10)
        # with W given, the kernel also makes the input's gradient dX = dZ W^T
        np.testing.assert_allclose(dX.reshape(-1, 7), flat @ W.astype(np.float64).T, **tol)
        np.testing.assert_allclose(dW, X.reshape(-1, 7).astype(np.float64).T @ flat, **tol)
        np.testing.assert_allclose(dU, h_rec.reshape(-1, u).astype(np.float64).T @ flat, **tol)
        np.testing.assert_allclose(db, flat.sum(axis=0), **tol)
        for a, c in zip(one[1:], split[1:]):
            np.testing.assert_allclose(a, c, **tol)


def test_fused_inference_reads_strided_steps_and_splits(forced_split):
    """A time-major view of a batch-major input (rows T*F apart), read in place, and rows
    split across workers: the same as one thread on a contiguous copy."""
    X, W, U, b, h0, c0 = _case(6, 21, 9, 19)
    view = np.ascontiguousarray(X.transpose(1, 0, 2)).transpose(1, 0, 2)
    assert not view.flags.c_contiguous

    def run(x):
        return lambda: lstm_forward(None, U, h0, c0, keep=False, X=x, W=W, b_in=b)[:3]

    for one, split in [forced_split(run(view)), forced_split(run(X))]:
        for a, c in zip(one, split):
            np.testing.assert_array_equal(a, c)
    want = lstm_forward(None, U, h0, c0, keep=False, X=X, W=W, b_in=b)[:3]
    for a, c in zip(want, forced_split(run(view))[0]):
        np.testing.assert_array_equal(a, c)


def test_model_predict_float32_matches_float64():
    """Through a model: lstm(13) over a batch-major float input, last output and sequences;
    over an embedding's rows read in place, and through its projected table."""
    import rnndsl

    for spec in ("input x: float[?, 6]\noutput x | lstm(13) | dense(3)",
                 "input x: float[?, 6]\noutput x | lstm(13, seq, go_backwards=true) | lstm(5)"):
        m64 = rnndsl.compile(spec, dtype="float64", seed=3)
        m32 = rnndsl.compile(spec, dtype="float32", seed=3)
        m32.set_weights([w.astype(np.float32) for w in m64.get_weights()])
        x = np.random.default_rng(5).normal(size=(11, 9, 6))
        np.testing.assert_allclose(m32.predict(x.astype(np.float32)), m64.predict(x), atol=1e-5)
    # an embedding read in place (a vocabulary too large for the table), and through the table
    for spec, vocab in [("output x | embed(500, 6) | lstm(16, seq) | lstm(13) | dense(3)", 500),
                        ("output x | embed(9, 6) | lstm(16) | dense(3)", 9)]:
        spec = "input x: int[?]\n" + spec
        m64 = rnndsl.compile(spec, dtype="float64", seed=3)
        m32 = rnndsl.compile(spec, dtype="float32", seed=3)
        m32.set_weights([w.astype(np.float32) for w in m64.get_weights()])
        ids = np.random.default_rng(5).integers(0, vocab, (11, 9))
        np.testing.assert_allclose(m32.predict(ids), m64.predict(ids), atol=1e-5)


def test_generic_cpu_build():
    """Compiled for a generic x86-64 (NUMBA_CPU_NAME=generic: no AVX-512, so the reciprocal
    estimate is not used and the 16-wide vectors are split by LLVM), the fused step still
    matches the reference: what a machine without AVX-512 runs (tests/kernels/generic_cpu_check.py,
    run in the background from the suite's start)."""
    from background import check_case, reports_of

    check_case(reports_of(Path(__file__).parent / "generic_cpu_check.py", simulator=False), "generic cpu")


@pytest.mark.parametrize("T,B,u,V,keep", [(4, 13, 8, 5, True), (3, 9, 24, 7, True), (5, 11, 16, 3, False),
                                          (4, 6, 13, 9, False), (3, 10, 5, 4, True)])
@pytest.mark.parametrize("backwards", [False, True])
def test_table_rows_match_the_embedded_input(forced_split, T, B, u, V, keep, backwards):
    """ids and table = E W + b (an embedding read through its projected table) against X =
    E[ids] with W and b: the same outputs and gradients, the table's gradient dT giving
    dW = E^T dT and db = sum dT, float32 (the fused steps where u is a multiple of 8; the
    gate loops else) and float64, on one thread and split across workers."""
    rng = np.random.default_rng(T * B + u)
    _, W, U, b, h0, c0 = _case(T, B, 3, u, seed=V)
    E = rng.normal(size=(V, 3)).astype(np.float32)
    ids = rng.integers(0, V, (T, B))
    dout = rng.normal(size=(T, B, u)).astype(np.float32)
    for dt in (np.float32, np.float64):
        Ed, Wd, Ud, bd, h, c = (a.astype(dt) for a in (E, W, U, b, h0, c0))
        tol = dict(atol=3e-5, rtol=1e-4) if dt == np.float32 else dict(atol=1e-12, rtol=1e-12)

        def run(table):
            def go():
                kw = dict(ids=ids, table=Ed @ Wd + bd) if table else dict(X=Ed[ids], W=Wd, b_in=bd)
                out, hT, cT, sv = lstm_forward(None, Ud, h, c, keep=keep, backwards=backwards, **kw)
                if not keep:
                    return out, hT, cT
                return (out, hT, cT) + lstm_backward(sv, dout.astype(dt), weights=True)[1:]
            return go

        want = run(False)()
        for got in forced_split(run(True)):
            if keep:
                dT = got[-2]
                assert dT.shape == (V, 4 * u)
                got = got[:-2] + (Ed.T @ dT, got[-1])
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, **tol)


def test_table_ids_out_of_range_are_refused():
    _, W, U, b, h0, c0 = _case(2, 3, 3, 8)
    with pytest.raises(ValueError, match="ids must lie in 0..3"):
        lstm_forward(None, U, h0, c0, ids=np.array([[0, 1, 4], [0, 0, 0]]), table=np.zeros((4, 32), np.float32))


@pytest.mark.parametrize("body", ["lstm(16)", "lstm(16, seq, go_backwards=true) | lstm(8)"])
def test_model_through_the_table_matches_the_rows(monkeypatch, body):
    """A float32 model whose LSTM reads its embedding through the projected table: the same
    predictions, loss and gradients as reading the rows E[ids] (takes_table off)."""
    from rnndsl.runtime.cpu.lstm import LSTM

    check_table_against_rows(monkeypatch, LSTM, body)


@pytest.mark.parametrize("T,B,F,u", [(3, 5, 7, 13), (4, 9, 16, 24), (2, 1, 1, 9), (3, 2, 5, 40)])
@pytest.mark.parametrize("backwards", [False, True])
@pytest.mark.parametrize("last_only", [False, True])
@pytest.mark.parametrize("project", [False, True])
def test_inference_split_by_units_matches_split_by_rows(forced_split, monkeypatch, T, B, F, u, backwards,
                                                        last_only, project):
    """lstm_forward_columns (every worker all the rows, its own units, the steps joined) gives
    exactly what the row-split fused kernel gives, for a strided input too, and for batches
    too small to split by rows (1 and 2 rows); with the input projected for all steps first
    (project: few rows, u a multiple of 8), the same to rounding."""
    import rnndsl.kernels.cpu.lstm as lstm_mod
    from rnndsl.kernels.cpu.parallel import call_strided
    X, W, U, b, h0, c0 = _case(T, B, F, u, seed=B + u)
    view = np.ascontiguousarray(X.transpose(1, 0, 2)).transpose(1, 0, 2)

    def run():
        return lstm_forward(None, U, h0, c0, keep=False, X=view, W=W, b_in=b, last_only=last_only,
                            backwards=backwards)[:3]

    by_rows = forced_split(run)[1]
    called = []
    orig = lstm_mod.lstm_forward_columns

    def spy(*a):
        called.append((a[-1], a[5].shape[0]))
        return call_strided(orig, a, strided=(0,))      # as lstm_forward calls it

    monkeypatch.setattr(lstm_mod, "UNIT_SPLIT_BYTES", 0)
    monkeypatch.setattr(lstm_mod, "XP_MAX_ROWS", 16 if project else 0)
    monkeypatch.setattr(lstm_mod, "lstm_forward_columns", spy)
    by_units = run()
    projected = project and u % 8 == 0
    assert called and called[0][0] > 1 and called[0][1] == (T if projected else 0)
    for a, c in zip(by_units, by_rows):
        if projected:
            np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("T,B,u,V", [(4, 13, 8, 5), (3, 9, 24, 7), (5, 2, 13, 3)])
@pytest.mark.parametrize("backwards", [False, True])
@pytest.mark.parametrize("by_units", [False, True])
def test_inference_reads_embedding_rows_in_place(forced_split, monkeypatch, T, B, u, V, backwards, by_units):
    """X = E with xids (an embedding's table and its ids): the fused inference reads E's rows
    in place, split by rows or by units, exactly as from E[ids]; where it does not run
    (training, float64) the rows are gathered first, with the same results."""
    import rnndsl.kernels.cpu.lstm as lstm_mod
    if by_units:
        monkeypatch.setattr(lstm_mod, "UNIT_SPLIT_BYTES", 0)
        monkeypatch.setattr(lstm_mod, "XP_MAX_ROWS", 0)        # the steps' projections as the rows' kernel takes them
    _, W, U, b, h0, c0 = _case(T, B, 6, u, seed=V + u)
    rng = np.random.default_rng(T + B)
    E = rng.normal(size=(V, 6)).astype(np.float32)
    ids = rng.integers(0, V, (T, B))
    for dt, keep in [(np.float32, False), (np.float32, True), (np.float64, False)]:
        c = [a.astype(dt) for a in (E, W, U, b, h0, c0)]

        def run(in_place):
            def go():
                kw = dict(X=c[0], xids=ids) if in_place else dict(X=c[0][ids])
                return lstm_forward(None, c[2], c[4], c[5], W=c[1], b_in=c[3], keep=keep, backwards=backwards,
                                    **kw)[:3]
            return go

        want = run(False)()
        for got in forced_split(run(True)):
            for g, w in zip(got, want):
                # float64 goes through np.dot, whose rounding depends on the rows it is given
                np.testing.assert_allclose(g, w, rtol=0, atol=0 if dt == np.float32 else 1e-13)
    with pytest.raises(ValueError, match=f"xids must lie in 0..{V - 1}"):
        lstm_forward(None, U, h0, c0, X=E, W=W, b_in=b, keep=False, xids=np.full((T, B), V))


@pytest.mark.parametrize("B,u,keep", [(13, 16, False), (5, 24, False), (8, 13, False),
                                      (13, 16, True), (5, 24, True)])     # saving needs u % 8 == 0
def test_long_inputs_take_two_panels_a_tile(B, u, keep):
    """Inputs + units >= PAIR_MIN_K: the step runs 6-row tiles over two panels (remainder rows
    and an odd last panel by the one-panel tiles); outputs, and in training the saved gates,
    c_{t-1} and tanh c_t, equal the float64 kernels' to float32 rounding."""
    from rnndsl.kernels.cpu.lstm_fused import PAIR_MIN_K
    T, F = 3, PAIR_MIN_K
    X, W, U, b, h0, c0 = _case(T, B, F, u, seed=B + u)
    W *= np.float32(0.05)
    res = {}
    for dt in (np.float32, np.float64):
        c = [a.astype(dt) for a in (X, W, U, b, h0, c0)]
        out, hT, cT, sv = lstm_forward(None, c[2], c[4], c[5], X=c[0], W=c[1], b_in=c[3], keep=keep)
        res[dt] = (out, hT, cT) + ((sv.gates, sv.c_prev, sv.tanh_c) if keep else ())
    for got, want in zip(res[np.float32], res[np.float64]):
        np.testing.assert_allclose(got, want, atol=2e-5)


@pytest.mark.parametrize("T,B,F,u", [(3, 5, 7, 40), (2, 1, 3, 37), (1, 9, 2, 72), (0, 2, 3, 40)])
@pytest.mark.parametrize("backwards,project", [(False, False), (True, False), (False, True), (True, True)])
def test_training_split_by_units_matches_split_by_rows(forced_split, monkeypatch, T, B, F, u, backwards, project):
    """Past UNIT_SPLIT_BYTES a float32 training forward (lstm_forward_columns with keep) and
    its BPTT (lstm_backward_columns: each worker its panels of U^T, partial last panel, fewer
    panels than workers) split by units: outputs, saved arrays, dZ, dh0 and dc0 exactly as
    split by rows (the same tiles and sums), the weight and input gradients (products after the
    loop) to rounding; all of it as the float64 kernels give to float32 rounding. u = 37: the
    forward keeps the rows (saving needs u % 8 == 0), the backward still splits; T = 0: no steps.
    project: the input projected for all steps first (XP_MAX_ROWS), the same to rounding."""
    import rnndsl.kernels.cpu.lstm as lstm_mod
    X, W, U, b, h0, c0 = _case(T, B, F, u, seed=T + B + u)
    rng = np.random.default_rng(u)
    dout, dhT, dcT = (rng.normal(size=s).astype(np.float32) for s in ((T, B, u), (B, u), (B, u)))

    def run(dt=np.float32):
        c = [a.astype(dt) for a in (U, h0, c0, X, W, b, dout, dhT, dcT)]
        out, hT, cT, sv = lstm_forward(None, c[0], c[1], c[2], keep=True, X=c[3], W=c[4], b_in=c[5],
                                       backwards=backwards)
        kept = [a.copy() for a in (sv.gates, sv.h_rec, sv.c_prev, sv.tanh_c)]     # backward consumes gates
        grads = lstm_backward(sv, c[6], c[7], c[8], weights=T > 0, W=c[4] if T > 0 else None)
        return (out, hT, cT, *kept, *grads)

    by_rows = forced_split(run)[1]
    called = {}
    for name in ("lstm_forward_columns", "lstm_backward_columns"):
        orig = getattr(lstm_mod, name)

        def spy(*a, orig=orig, name=name):
            called[name] = a[-1]
            if name == "lstm_forward_columns":
                called["projected"] = a[5].shape[0]
            return orig(*a)
        monkeypatch.setattr(lstm_mod, name, spy)
    monkeypatch.setattr(lstm_mod, "UNIT_SPLIT_BYTES", 0)
    monkeypatch.setattr(lstm_mod, "XP_MAX_ROWS", 16 if project else 0)
    by_units = run()
    assert called.get("lstm_backward_columns", 0) == min(3, -(-u // 32))
    assert called.get("lstm_forward_columns", 0) == (0 if u % 8 or T == 0 else min(3, -(-u // 8)))
    assert called.get("projected", 0) == (T if project and "lstm_forward_columns" in called else 0)
    exact = 0 if project and "projected" in called else 10     # out, hT, cT, 4 saved, dZ, dh0/dc0 after dU
    for i, (a, c) in enumerate(zip(by_units, by_rows)):
        if i < exact and i != 8:
            np.testing.assert_array_equal(a, c)
        else:
            np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)
    want = run(np.float64)
    for got, w in zip(by_units, want):
        np.testing.assert_allclose(got, w, atol=2e-5 * max(1.0, np.abs(w).max() if w.size else 0))


@pytest.mark.parametrize("T,B,F,u", [(3, 5, 7, 13), (4, 9, 16, 24), (2, 1, 1, 8), (3, 2, 5, 40)])
@pytest.mark.parametrize("route", ["rows", "units", "units projected", "table", "rows in place"])
def test_kept_panels_give_what_packing_each_call_gives(forced_split, monkeypatch, T, B, F, u, route):
    """Inference with the packed W and U made once and kept (derive) against packing them in
    the kernel every call: the same arithmetic, so the same bits; each kept array is made
    once however many calls read it."""
    import rnndsl.kernels.cpu.lstm as lstm_mod

    X, W, U, b, h0, c0 = _case(T, B, F, u, seed=T + u)
    rng = np.random.default_rng(u)
    kw = dict(X=X, W=W, b_in=b)
    if route == "table":
        kw = dict(ids=rng.integers(0, 6, (T, B)), table=rng.normal(size=(6, 4 * u)).astype(np.float32))
    elif route == "rows in place":
        kw = dict(X=rng.normal(size=(6, F)).astype(np.float32), W=W, b_in=b, xids=rng.integers(0, 6, (T, B)))
    if route.startswith("units"):
        monkeypatch.setattr(lstm_mod, "UNIT_SPLIT_BYTES", 0)
        monkeypatch.setattr(lstm_mod, "XP_MAX_ROWS", 16 if route == "units projected" else 0)
    made = {}

    def derive(key, sources, make):
        if key not in made:
            made[key] = [make(), 0]
        made[key][1] += 1
        return made[key][0]

    def run(derive=None):
        return lstm_forward(None, U, h0, c0, keep=False, derive=derive, **kw)[:3]

    def calls():
        made.clear()                                     # the route may differ: make them again
        out = run(), run(derive), run(derive)
        return out, sorted(n for _, n in made.values())

    fused = not (route == "table" and u % 8)            # the fused route (packed gates) is taken
    for (want, *kept), counts in forced_split(calls):    # one thread, then every call split
        for got in kept:
            for a, c in zip(got, want):
                np.testing.assert_array_equal(a, c)
        # U's panels (and W's where the route reads them packed) made once, read by both calls
        assert counts in ([[2], [2, 2]] if fused else [[]])


@pytest.mark.parametrize("T,B,u,V", [(0, 5, 8, 4), (1, 3, 8, 5), (2, 13, 16, 7), (5, 9, 24, 3), (4, 6, 13, 5)])
@pytest.mark.parametrize("backwards", [False, True])
@pytest.mark.parametrize("grads", ["in_loop", "over_all_steps", "by_units"])
def test_training_reads_embedding_rows_in_place(forced_split, monkeypatch, T, B, u, V, backwards, grads):
    """Training over an embedding's rows (X = E with xids): the saving forward reads them in
    place (units a multiple of 8; 13 units gather them first), saved keeps E and the ids, and
    BPTT takes X^T dZ from them (in the time loop, a step's rows copied to a scratch, or by a
    product over all steps, or after the unit split, from rows gathered then). Outputs, states
    and every gradient (dZ, dU, dh0, dc0, dW, db, dX) equal those from E[ids] to the bit, on
    one thread and split, with and without recurrent dropout; and the float64 kernels' to
    float32 rounding."""
    import rnndsl.kernels.cpu.lstm as lstm_mod
    if grads == "over_all_steps":
        monkeypatch.setattr(lstm_mod, "MAX_LOOP_GRAD", 0)
    elif grads == "by_units":
        monkeypatch.setattr(lstm_mod, "UNIT_SPLIT_BYTES", 0)
        monkeypatch.setattr(lstm_mod, "XP_MAX_ROWS", 0)        # the steps' projections as the rows' kernel takes them
    _, W, U, b, h0, c0 = _case(T, B, 6, u, seed=V + u + T)
    rng = np.random.default_rng(T + B + u)
    E = rng.normal(size=(V, 6)).astype(np.float32)
    ids = rng.integers(0, V, (T, B))
    dout = rng.normal(size=(T, B, u)).astype(np.float32)
    dhT, dcT = rng.normal(size=(B, u)).astype(np.float32), rng.normal(size=(B, u)).astype(np.float32)
    for dropout in (False, True):
        rmask = (rng.random((B, u)) > 0.3).astype(np.float32) / np.float32(0.7) if dropout else None

        def run(in_place, dt=np.float32):
            c = [a.astype(dt) for a in (E, W, U, b, h0, c0, dout, dhT, dcT)]

            def go():
                kw = dict(X=c[0], xids=ids) if in_place else dict(X=c[0][ids])
                out, hT, cT, sv = lstm_forward(None, c[2], c[4], c[5], W=c[1], b_in=c[3], keep=True, rmask=rmask,
                                               backwards=backwards, **kw)
                assert (sv.xids.shape[0] > 0) == (in_place and dt == np.float32 and u % 8 == 0 and T > 0)
                if T == 0:              # no steps: nothing to take gradients of (the runtime's zero_steps)
                    return out, hT, cT
                return (out, hT, cT) + tuple(lstm_backward(sv, c[6], c[7], c[8], weights=True, W=c[1]))
            return go

        for got, want in forced_split(lambda: (run(True)(), run(False)())):    # each on the same split
            assert len(got) == len(want) == (3 if T == 0 else 10)
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)
        for g, w in zip(want, run(False, np.float64)()):
            np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-4)
