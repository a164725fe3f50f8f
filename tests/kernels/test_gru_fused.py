"""The float32 GRU step with its gate math in the product's epilogue
(kernels/cpu/gru_fused.py, gru.py's gru_fused_rows) against the plain float64
route, the general float32 kernel, and itself split across workers or reading an
embedding's rows in place; in training, what it saves and the gradients from it."""

import numpy as np
import pytest
from numba import njit

import rnndsl.kernels.cpu.gru as gru_mod
from rnndsl.kernels.cpu import paths
from rnndsl.kernels.cpu.gru import gru_backward, gru_forward
from rnndsl.kernels.cpu.gru_fused import gru_panels

from .harness import check_table_against_rows


def _case(T, B, F, u, seed):
    """Weights scaled by 1.5 / sqrt(fan-in): pre-activations of order one (few saturated gates)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T, B, F))
    W = rng.normal(size=(F, 3 * u)) * 1.5 / np.sqrt(F)
    U = rng.normal(size=(u, 3 * u)) * 1.5 / np.sqrt(u)
    b_in, b_rec = rng.normal(size=3 * u) * 0.5, rng.normal(size=3 * u) * 0.5
    h0 = rng.normal(size=(B, u)) * 0.5
    return X, W, U, b_in, b_rec, h0


@pytest.fixture
def fused_calls(monkeypatch):
    """The rows gru_fused_rows was called for (run_rows runs a Python function part by part)."""
    calls = []
    real = gru_mod.gru_fused_rows

    def spy(*args):
        calls.append(args[-2:])
        return real(*args)

    monkeypatch.setattr(gru_mod, "gru_fused_rows", spy)
    return calls


@njit(error_model="numpy")
def _gru_panels(W, U):
    return gru_panels(W, U)


def test_gru_panels_layout():
    """Panel p holds [z, r, h] of units 16p..16p+15 (W's and U's alike), zeros past u."""
    u, F = 21, 3
    W = np.arange(F * 3 * u, dtype=np.float32).reshape(F, 3 * u) + 1
    U = np.arange(u * 3 * u, dtype=np.float32).reshape(u, 3 * u) + 1
    Wq, Uq = _gru_panels(W, U)
    assert Wq.shape == (2, F, 48) and Uq.shape == (2, u, 48)
    assert Wq.ctypes.data % 64 == 0 and Uq.ctypes.data % 64 == 0
    for M, P in [(W, Wq), (U, Uq)]:
        for g in range(3):
            np.testing.assert_array_equal(P[0, :, 16 * g:16 * g + 16], M[:, g * u:g * u + 16])
            np.testing.assert_array_equal(P[1, :, 16 * g:16 * g + 5], M[:, g * u + 16:g * u + 21])
            assert (P[1, :, 16 * g + 5:16 * g + 16] == 0).all()


@pytest.mark.parametrize("u", [5, 8, 13, 64])
@pytest.mark.parametrize("B", [1, 3, 64])
def test_fused_inference_matches_the_plain_float64_route(fused_calls, u, B):
    """Random cases: T = 0, 1, 2, 7, forwards and backwards, sequences and the last output,
    a random initial state, against the plain route in float64 (the general kernel) and the
    general kernel in float32."""
    for n, (T, backwards, last_only) in enumerate((T, bw, lo) for T in (0, 1, 2, 7)
                                                  for bw in (False, True) for lo in (False, True)):
        seed = 1000 * u + 10 * B + n
        F = int(np.random.default_rng(seed).integers(1, 41))
        X, W, U, b_in, b_rec, h0 = _case(T, B, F, u, seed)
        kw = dict(backwards=backwards, last_only=last_only)
        with paths.plain_paths():
            want, want_h, _ = gru_forward(None, U, h0, b_rec=b_rec, X=X, W=W, b_in=b_in, keep=False, **kw)
        f32 = [a.astype(np.float32) for a in (X, W, U, b_in, b_rec, h0)]
        del fused_calls[:]
        out, hT, saved = gru_forward(None, f32[2], f32[5], b_rec=f32[4], X=f32[0], W=f32[1], b_in=f32[3],
                                     keep=False, **kw)
        assert saved is None and bool(fused_calls) == (T > 0), (T, backwards, last_only)
        assert out.shape == want.shape and out.dtype == np.float32
        if T > 0:           # zero steps: no output is written (the runtime gives Keras's, zero_steps)
            np.testing.assert_allclose(out, want, atol=2e-5, err_msg=f"T={T} F={F} {kw}")
        np.testing.assert_allclose(hT, want_h if T else h0, atol=2e-5, rtol=0, err_msg=f"T={T} F={F} {kw}")
        # a mask (of ones) keeps the general kernel
        unfused, unfused_h, _ = gru_forward(None, f32[2], f32[5], b_rec=f32[4], X=f32[0], W=f32[1], b_in=f32[3],
                                            keep=False, backwards=backwards, mask=np.ones((T, B)))
        if T > 0:
            np.testing.assert_allclose(out, unfused[-1:] if last_only else unfused, atol=5e-6)
        np.testing.assert_allclose(hT, unfused_h, atol=5e-6)


@pytest.mark.parametrize("T,B,F,u", [(3, 1, 5, 16), (4, 3, 7, 32), (5, 13, 40, 48), (7, 64, 3, 16)])
@pytest.mark.parametrize("backwards", [False, True])
@pytest.mark.parametrize("dropout", [False, True])
def test_fused_training_forward_saves_what_backward_reads(fused_calls, T, B, F, u, backwards, dropout):
    """keep=True with units a multiple of 16 runs the saving epilogue: its outputs, the saved
    gates, h_rec (with recurrent dropout) and Rec_h, and then BPTT's gradients, equal the
    float64 kernels' (the general kernel) to float32 rounding."""
    X, W, U, b_in, b_rec, h0 = _case(T, B, F, u, seed=T + u + B)
    rng = np.random.default_rng(u + B)
    rmask = (rng.random((B, u)) > 0.3) / 0.7 if dropout else None
    dout = rng.normal(size=(T, B, u))
    res = {}
    for dt in (np.float32, np.float64):
        def c(a):
            return None if a is None else a.astype(dt)
        del fused_calls[:]
        out, hT, sv = gru_forward(None, c(U), c(h0), b_rec=c(b_rec), X=c(X), W=c(W), b_in=c(b_in), keep=True,
                                  backwards=backwards, rmask=c(rmask))
        assert bool(fused_calls) == (dt == np.float32)
        kept = [a.copy() for a in (sv.gates, sv.h_rec, sv.aux)]
        res[dt] = (out, hT, *kept, *gru_backward(sv, c(dout)))
    names = ("out", "hT", "gates", "h_rec", "aux", "dxp", "dU", "dh0", "db_rec")
    for name, got, want in zip(names, res[np.float32], res[np.float64]):
        np.testing.assert_allclose(got, want, atol=3e-5 * max(1.0, np.abs(want).max()), err_msg=name)


@pytest.mark.parametrize("u", [5, 16])
def test_state_carried_between_calls(fused_calls, u):
    """A stateful layer's chunks: 3 steps, then 4 from the state it ended in, give what 7 steps give."""
    X, W, U, b_in, b_rec, h0 = (a.astype(np.float32) for a in _case(7, 6, 9, u, seed=u))
    run = lambda x, h: gru_forward(None, U, h, b_rec=b_rec, X=x, W=W, b_in=b_in, keep=False)  # noqa: E731
    whole, hT, _ = run(X, h0)
    first, h3, _ = run(X[:3], h0)
    second, h7, _ = run(X[3:], h3)
    assert len(fused_calls) == 3
    np.testing.assert_array_equal(np.concatenate([first, second]), whole)
    np.testing.assert_array_equal(h7, hT)


@pytest.mark.parametrize("B,u", [(21, 19), (9, 8), (2, 40)])
def test_split_rows_strided_input_and_rows_read_in_place(forced_split, fused_calls, B, u):
    """Rows split across workers, a time-major view of batch-major data read in place, and an
    embedding's rows read in place (xids): exactly what one thread gives on E[ids]."""
    X, W, U, b_in, b_rec, h0 = (a.astype(np.float32) for a in _case(5, B, 6, u, seed=B + u))
    view = np.ascontiguousarray(X.transpose(1, 0, 2)).transpose(1, 0, 2)
    assert not view.flags.c_contiguous
    rng = np.random.default_rng(u)
    E = rng.normal(size=(11, 6)).astype(np.float32)
    ids = rng.integers(0, 11, (5, B))

    def run(**inp):
        return lambda: gru_forward(None, U, h0, b_rec=b_rec, W=W, b_in=b_in, keep=False, **inp)[:2]

    want = run(X=X)()
    for one, split in [forced_split(run(X=view)), forced_split(run(X=X))]:
        for a, b, c in zip(want, one, split):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)
    want = run(X=E[ids])()
    for got in forced_split(run(X=E, xids=ids)):
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a, b)
    assert fused_calls
    # where the fused step does not run (float64), the rows are gathered first: the same to rounding
    c64 = [a.astype(np.float64) for a in (E, W, U, b_in, b_rec, h0)]
    g64 = gru_forward(None, c64[2], c64[5], b_rec=c64[4], X=c64[0], W=c64[1], b_in=c64[3], keep=False, xids=ids)
    np.testing.assert_allclose(g64[0], want[0], atol=2e-5)
    with pytest.raises(ValueError, match="xids must lie in 0..10"):
        gru_forward(None, U, h0, X=E, W=W, b_in=b_in, keep=False, xids=np.full((5, B), 11))


def test_other_options_keep_the_general_kernel(fused_calls):
    """reset_after=False, a mask, recurrent dropout, other activations, training and the plain
    route do not take the fused step."""
    X, W, U, b_in, b_rec, h0 = (a.astype(np.float32) for a in _case(3, 4, 5, 8, seed=3))
    base = dict(X=X, W=W, b_in=b_in, keep=False)
    for kw in [dict(reset_after=False), dict(b_rec=b_rec, mask=np.ones((3, 4))), dict(rmask=np.ones((4, 8))),
               dict(activation="relu"), dict(recurrent_activation="hard_sigmoid"), dict(keep=True)]:
        gru_forward(None, U, h0, **{**base, **kw})
    with paths.plain_paths():
        gru_forward(None, U, h0, b_rec=b_rec, **base)
    assert not fused_calls
    gru_forward(None, U, h0, b_rec=b_rec, **base)
    assert fused_calls


def test_model_predict_float32_matches_float64():
    """Through models: GRU layers (sequences, go_backwards, the last output, stateful chunks)
    in float32 against the same weights in float64."""
    import rnndsl

    for spec in ("input x: float[?, 6]\noutput x | gru(13, seq) | gru(8, go_backwards=true) | dense(3)",
                 "input x: int[?]\noutput x | embed(50, 6) | gru(16, seq) | gru(5) | dense(3)"):
        m64 = rnndsl.compile(spec, dtype="float64", seed=3)
        m32 = rnndsl.compile(spec, dtype="float32", seed=3)
        m32.set_weights([w.astype(np.float32) for w in m64.get_weights()])
        rng = np.random.default_rng(5)
        x = rng.integers(0, 50, (9, 11)) if "int" in spec else rng.normal(size=(9, 11, 6))
        x32 = x if "int" in spec else x.astype(np.float32)
        np.testing.assert_allclose(m32.predict(x32), m64.predict(x), atol=2e-5)


def test_model_training_float32_matches_float64(fused_calls):
    """Through a model: the loss and every gradient of GRU layers of 16 and 32 units (the
    fused step saving for backward) in float32 against the same weights in float64."""
    import rnndsl

    spec = "input x: float[?, 6]\noutput x | gru(32, seq) | gru(16, go_backwards=true) | dense(3)"
    m64 = rnndsl.compile(spec, dtype="float64", seed=3)
    m32 = rnndsl.compile(spec, dtype="float32", seed=3)
    m32.set_weights([w.astype(np.float32) for w in m64.get_weights()])
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(9, 11, 6)), np.arange(9) % 3
    l32, g32 = m32.loss_and_gradients(x.astype(np.float32), y)
    assert len(fused_calls) == 2
    l64, g64 = m64.loss_and_gradients(x, y)
    np.testing.assert_allclose(l32, l64, rtol=1e-5)
    for a, b in zip(g32, g64):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)


def test_training_forward_split_across_workers(forced_split, fused_calls):
    """keep=True with rows split across workers: the outputs and saved arrays one thread gives."""
    X, W, U, b_in, b_rec, h0 = (a.astype(np.float32) for a in _case(4, 21, 5, 32, seed=2))
    rmask = ((np.random.default_rng(2).random((21, 32)) > 0.3) / 0.7).astype(np.float32)

    def run():
        out, hT, sv = gru_forward(None, U, h0, b_rec=b_rec, X=X, W=W, b_in=b_in, keep=True, rmask=rmask)
        return out, hT, sv.gates, sv.h_rec, sv.aux

    one, split = forced_split(run)
    assert len(fused_calls) > 2                        # one call, then the split's parts
    for a, b in zip(one, split):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("u,in_loop", [(5, True), (16, True), (16, False)])
def test_recurrent_gradients_inside_the_time_loop(forced_split, monkeypatch, u, in_loop):
    """reset_after: [dU; db_rec] summed step by step and row range by row range inside the
    time loop (up to MAX_LOOP_GRAD), or past it from dRec kept for products over all steps,
    equal the plain float64 route's on one thread and split, float32 and float64."""
    X, W, U, b_in, b_rec, h0 = _case(5, 11, 7, u, seed=u + 40)
    dout = np.random.default_rng(u).normal(size=(5, 11, u))

    def run(dt):
        def go():
            c = [a.astype(dt) for a in (U, h0, b_rec, X, W, b_in)]
            sv = gru_forward(None, c[0], c[1], b_rec=c[2], X=c[3], W=c[4], b_in=c[5], keep=True)[2]
            return gru_backward(sv, dout.astype(dt))
        return go

    with paths.plain_paths():
        want = run(np.float64)()
    if not in_loop:
        monkeypatch.setattr(gru_mod, "MAX_LOOP_GRAD", 0)
    for dt, tol in ((np.float32, 3e-5), (np.float64, 1e-12)):
        for got in forced_split(run(dt)):
            for name, g, w in zip(("dxp", "dU", "dh0", "db_rec"), got, want):
                np.testing.assert_allclose(g, w, atol=tol * max(1.0, np.abs(w).max()), err_msg=name)


def _table_case(T, B, u, V, seed):
    rng = np.random.default_rng(seed)
    _, W, U, b_in, b_rec, h0 = _case(T, B, 3, u, seed)
    E = rng.normal(size=(V, 3))
    ids = rng.integers(0, V, (T, B))
    return E, ids, W, U, b_in, b_rec, h0, rng.normal(size=(T, B, u))


@pytest.mark.parametrize("T,B,u,V", [(4, 13, 16, 5), (3, 9, 32, 7), (5, 11, 13, 3), (2, 6, 8, 9), (1, 10, 5, 4),
                                     (0, 3, 16, 4)])
@pytest.mark.parametrize("opts", [dict(), dict(backwards=True), dict(last_only=True), dict(mask=True),
                                  dict(rmask=True), dict(reset_after=False)])
def test_table_rows_match_the_plain_route(forced_split, fused_calls, T, B, u, V, opts):
    """ids and table = E W + b_in (an embedding read through its projected table) against the
    plain float64 route on X = E[ids]: the same outputs, and in training the same gradients,
    the table's gradient dT giving dW = E^T dT and db_in = sum dT; float32 (the fused step
    where u is a multiple of 16, its table padded to 16 units a gate in inference where it
    is not; the general kernel with a mask or reset_after=False) and float64, on one thread
    and split across workers, with masks, recurrent dropout, go_backwards."""
    E, ids, W, U, b_in, b_rec, h0, dout = _table_case(T, B, u, V, seed=T * B + u + len(opts))
    rng = np.random.default_rng(u)
    kw = dict(backwards=opts.get("backwards", False), last_only=opts.get("last_only", False),
              reset_after=opts.get("reset_after", True))
    if opts.get("mask"):
        kw["mask"] = rng.random((T, B)) > 0.3
    rmask = (rng.random((B, u)) > 0.3) / 0.7 if opts.get("rmask") else None
    if not kw["reset_after"]:
        b_rec = None
    d_out = dout[-1:] if kw["last_only"] else dout
    for keep in (False, True):
        if keep and kw["last_only"]:
            continue
        rm = rmask if keep else None
        with paths.plain_paths():
            out, hT, sv = gru_forward(None, U, h0, b_rec=b_rec, X=E[ids], W=W, b_in=b_in, keep=keep, rmask=rm, **kw)
            want = (out, hT)
            if keep:
                dxp, dU, dh0, db_rec = gru_backward(sv, d_out)
                dxp2 = dxp.reshape(T * B, 3 * u)
                want += (dU, dh0, db_rec, E[ids].reshape(T * B, 3).T @ dxp2, dxp2.sum(axis=0))
        for dt, tol in ((np.float32, 3e-5), (np.float64, 1e-12)):
            def c(a):
                return None if a is None else np.asarray(a).astype(dt)

            def run():
                out, hT, sv = gru_forward(None, c(U), c(h0), b_rec=c(b_rec), ids=ids, table=c(E @ W + b_in),
                                          keep=keep, rmask=c(rm), **kw)
                if not keep:
                    return out, hT
                dxp, dU, dh0, db_rec, dT, db_in = gru_backward(sv, c(d_out))
                assert dT.shape == (V, 3 * u)
                return out, hT, dU, dh0, db_rec, c(E).T @ dT, db_in

            del fused_calls[:]
            for got in forced_split(run):
                for name, g, w in zip(("out", "hT", "dU", "dh0", "db_rec", "dW", "db_in"), got, want):
                    if w is None:
                        assert g is None
                        continue
                    if name == "out" and T == 0:     # zero steps write no output (see zero_steps)
                        continue
                    np.testing.assert_allclose(g, w, atol=tol * max(1.0, np.abs(w).max(initial=0)),
                                               err_msg=f"{name} {dt.__name__} keep={keep}")
            fused = (dt == np.float32 and T > 0 and "mask" not in kw and kw["reset_after"]
                     and (u % 16 == 0 if keep else True))
            assert bool(fused_calls) == fused, (dt, keep)


def test_table_gradient_matches_finite_differences():
    """float64: dT from gru_backward against central differences of sum(out * dout) in the
    table's entries (every entry of the rows read, and one row no id reads: zero)."""
    E, ids, W, U, b_in, b_rec, h0, dout = _table_case(3, 4, 5, 4, seed=7)
    ids[ids == 3] = 0
    table = E @ W + b_in

    def loss(tab):
        out, _, _ = gru_forward(None, U, h0, b_rec=b_rec, ids=ids, table=tab, keep=False)
        return float((out * dout).sum())

    _, _, sv = gru_forward(None, U, h0, b_rec=b_rec, ids=ids, table=table, keep=True)
    dT = gru_backward(sv, dout)[4]
    num = np.zeros_like(table)
    eps = 1e-6
    for i in np.ndindex(*table.shape):
        tp, tm = table.copy(), table.copy()
        tp[i] += eps
        tm[i] -= eps
        num[i] = (loss(tp) - loss(tm)) / (2 * eps)
    assert (dT[3] == 0).all()
    np.testing.assert_allclose(dT, num, atol=1e-7, rtol=1e-6)


def test_table_ids_out_of_range_are_refused():
    _, _, W, U, b_in, b_rec, h0, _ = _table_case(2, 3, 8, 4, seed=1)
    with pytest.raises(ValueError, match="ids must lie in 0..3"):
        gru_forward(None, U, h0, ids=np.array([[0, 1, 4], [0, 0, 0]]), table=np.zeros((4, 24), np.float32))
    with pytest.raises(ValueError, match="3\\*units"):
        gru_forward(None, U, h0, ids=np.zeros((2, 3)), table=np.zeros((4, 32)))


@pytest.mark.parametrize("body", ["gru(16)", "gru(16, seq, go_backwards=true) | simplernn(5)",
                                  "gru(13, seq) | gru(8)"])
def test_model_through_the_table_matches_the_rows(monkeypatch, body):
    """A float32 model whose GRU reads its embedding through the projected table: the same
    predictions, loss and gradients as reading the rows E[ids] (takes_table off), and as the
    float64 plain route."""
    from rnndsl.runtime.cpu.gru import GRU

    check_table_against_rows(monkeypatch, GRU, body, plain64=True)


@pytest.mark.parametrize("u", [5, 13, 16, 37])
@pytest.mark.parametrize("T", [0, 1, 2, 6])
def test_vector_backward_step_matches_the_plain_route(forced_split, monkeypatch, u, T):
    """BPTT's row step as gru_bptt_row's vector code (reset_after, default activations, no
    mask: 16 units a vector, the rest one at a time) against the plain float64 route, float32
    and float64, forwards and backwards, with recurrent dropout and a final-state gradient,
    [dU; db_rec] in the loop or from dRec kept, one thread and split; a mask keeps the loops."""
    B = 7
    X, W, U, b_in, b_rec, h0 = _case(T, B, 4, u, seed=u * 10 + T)
    rng = np.random.default_rng(u + T)
    dout, dhT = rng.normal(size=(T, B, u)), rng.normal(size=(B, u))
    rmask = (rng.random((B, u)) > 0.3) / 0.7
    for backwards, rm, in_loop in ((False, None, True), (True, rmask, True), (False, rmask, False)):
        def run(dt, mask=None):
            def go():
                c = [None if a is None else a.astype(dt) for a in (U, h0, b_rec, X, W, b_in, rm, dout, dhT)]
                sv = gru_forward(None, c[0], c[1], b_rec=c[2], X=c[3], W=c[4], b_in=c[5], keep=True, rmask=c[6],
                                 backwards=backwards, mask=mask)[2]
                return gru_backward(sv, c[7], c[8])
            return go

        with paths.plain_paths():
            want = run(np.float64)()
        monkeypatch.setattr(gru_mod, "MAX_LOOP_GRAD", gru_mod.MAX_LOOP_GRAD if in_loop else 0)
        cases = [(np.float32, None, 3e-5), (np.float64, None, 1e-12), (np.float64, np.ones((T, B)), 1e-12)]
        for dt, mask, tol in cases:
            for got in forced_split(run(dt, mask)):
                for name, g, w in zip(("dxp", "dU", "dh0", "db_rec"), got, want):
                    np.testing.assert_allclose(g, w, atol=tol * max(1.0, np.abs(w).max(initial=0)),
                                               err_msg=f"{name} {dt.__name__} backwards={backwards}")
