"""The batch-split (multi-core) path gives exactly what one thread gives."""

import numpy as np
import pytest
from numba import literally, njit

from rnndsl.kernels.cpu import gru_backward, gru_forward, lstm_backward, lstm_forward, parallel
from rnndsl.kernels.cpu import simplernn_backward, simplernn_forward

from conftest import split_everything


def _inputs(G, u, B=7, T=4, seed=0):
    r = np.random.default_rng(seed)
    xp = r.normal(size=(T, B, G * u))
    U = r.normal(0, 0.5, size=(u, G * u))
    mask = (r.random((T, B)) > 0.3).astype(np.uint8)
    rmask = (r.random((B, u)) > 0.2) / 0.8
    return xp, U, mask, rmask, r.normal(size=(T, B, u)), r.normal(size=(B, u))


def _same(a, b):
    for x, y in zip(a, b):
        if x is None:
            assert y is None
        else:
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)


def test_lstm_split(forced_split):
    xp, U, mask, rmask, dout, h0 = _inputs(4, 3)

    def run():
        out, hT, cT, saved = lstm_forward(xp, U, h0, h0 * 0.5, mask=mask, rmask=rmask, backwards=True)
        return (out, hT, cT) + tuple(lstm_backward(saved, dout, h0, h0))
    _same(*forced_split(run))


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_split(forced_split, reset_after):
    xp, U, mask, rmask, dout, h0 = _inputs(3, 3)
    b_rec = np.linspace(-1, 1, 9) if reset_after else None

    def run():
        out, hT, saved = gru_forward(xp, U, h0, b_rec=b_rec, reset_after=reset_after, mask=mask, rmask=rmask)
        return (out, hT) + tuple(gru_backward(saved, dout, h0))
    _same(*forced_split(run))


def test_simplernn_split(forced_split):
    xp, U, mask, rmask, dout, h0 = _inputs(1, 3)

    def run():
        out, hT, saved = simplernn_forward(xp, U, h0, mask=mask, rmask=rmask, zero_output_for_mask=True)
        return (out, hT) + tuple(simplernn_backward(saved, dout, h0))
    _same(*forced_split(run))


def test_inference_keeps_nothing_and_matches():
    xp, U, mask, rmask, dout, h0 = _inputs(4, 3)
    out, hT, cT, saved = lstm_forward(xp, U, h0, h0, mask=mask)
    out2, hT2, cT2, none = lstm_forward(xp, U, h0, h0, mask=mask, keep=False)
    assert none is None
    _same((out, hT, cT), (out2, hT2, cT2))


@pytest.mark.parametrize("cell", ["lstm", "simplernn"])
def test_long_sequence_gradients_stay_out_of_the_subnormal_range(cell):
    """A gradient decaying back through many steps is flushed to zero before it turns
    subnormal (subnormal float32 arithmetic is ~100x slower on x86)."""
    r = np.random.default_rng(0)
    T, B, u = 600, 2, 4
    G = 4 if cell == "lstm" else 1
    xp = r.normal(size=(T, B, G * u)).astype(np.float32)
    U = (r.normal(size=(u, G * u)) * 0.1).astype(np.float32)
    h0 = np.zeros((B, u), np.float32)
    dout = np.zeros((T, B, u), np.float32)
    dout[-1] = 1.0
    if cell == "lstm":
        _, _, _, saved = lstm_forward(xp, U, h0, h0)
        dxp = lstm_backward(saved, dout)[0]
    else:
        _, _, saved = simplernn_forward(xp, U, h0)
        dxp = simplernn_backward(saved, dout)[0]
    tiny = np.finfo(np.float32).tiny
    assert np.all((np.abs(dxp) >= tiny) | (dxp == 0))
    assert (dxp == 0).any() and np.abs(dxp[-1]).max() > 1e-3     # it did decay, and the recent steps are intact


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
def test_matmul_split_paths(monkeypatch, dtype):
    """matmul's row split (C array on the left), shared-dimension split (X^T dZ: partial
    products summed, by BLAS or by the TN tile) and the strided fallback give a @ b."""
    split_everything(monkeypatch)
    r = np.random.default_rng(2)
    X, D, W = (r.normal(size=s).astype(dtype) for s in ((301, 7), (301, 13), (13, 5)))
    tol = 1e-4 if dtype == np.float32 else 1e-12
    W2 = r.normal(size=(13, 70)).astype(dtype)          # >= 32 columns: float32 takes the packed product
    D2 = r.normal(size=(301, 64)).astype(dtype)         # X^T D2: float32 takes the TN tile, 128 rows a pass
    for a, b in ((X.T, D), (D, W), (D, np.asfortranarray(W)), (D[:, ::2], W[::2]), (D, W2), (D, W2.T.copy().T),
                 (X.T, D2), (D2.T, D2)):
        np.testing.assert_allclose(parallel.matmul(a, b), a.astype(np.float64) @ b, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
def test_matmul_transposed_split_by_output_rows(monkeypatch, dtype):
    """An X^T dZ past TN_MAX_OUT with a short shared dimension: out's rows split (each worker
    BLAS on a copy of its columns of X), no more parts than out has rows; a longer shared dimension keeps the partial sums."""
    split_everything(monkeypatch)
    monkeypatch.setattr(parallel, "TN_MAX_OUT", 0)
    calls = []
    orig = parallel._transposed_rows
    monkeypatch.setattr(parallel, "_transposed_rows", lambda *a: (calls.append(a[-1]), orig(*a)))
    r = np.random.default_rng(4)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for K, M, N in ((37, 9, 40), (11, 2, 33), (7, 2, 5)):
        X, D = r.normal(size=(K, M)).astype(dtype), r.normal(size=(K, N)).astype(dtype)
        np.testing.assert_allclose(parallel.matmul(X.T, D), X.astype(np.float64).T @ D, rtol=tol, atol=tol)
    assert calls == [3, 2, 2]
    monkeypatch.setattr(parallel, "TN_ROWS_MAX_K", 10)
    X, D = r.normal(size=(37, 9)).astype(dtype), r.normal(size=(37, 40)).astype(dtype)
    np.testing.assert_allclose(parallel.matmul(X.T, D), X.astype(np.float64).T @ D, rtol=tol, atol=tol)
    assert len(calls) == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
def test_column_sums(dtype):
    a = np.random.default_rng(3).normal(size=(301, 13)).astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for x in (a, a[::2], a.T.copy().T):
        np.testing.assert_allclose(parallel.column_sums(x), x.astype(np.float64).sum(axis=0), rtol=tol, atol=tol)


@njit
def _scaled_rows(x, out, scale, flip, b0, b1):
    literally(flip)
    for b in range(b0, b1):
        for j in range(x.shape[1]):
            out[b, j] = (-x[b, j] if flip else x[b, j]) * scale


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_split_rows_runs_the_code_compiled_for_these_types_and_constants(monkeypatch, dtype):
    """split_rows calls a kernel by the address compiled for exactly these argument types, and for
    each value of an argument the kernel compiles per value (numba.literally)."""
    split_everything(monkeypatch)
    x = np.arange(21, dtype=dtype).reshape(7, 3) - 10
    seen = set()
    for flip in (False, True, False):
        out = np.zeros_like(x)
        args = (x, out, 2.5, flip)
        parallel.run_rows(_scaled_rows, args, 7, 10 ** 9)
        np.testing.assert_array_equal(out, (-x if flip else x) * dtype(2.5))
        seen.add(parallel.compiled(_scaled_rows, args)[1])
    assert len(seen) == 2


def test_part_of_inverts_the_row_split():
    for rows in range(1, 40):
        for parts in range(1, min(rows, 9) + 1):
            for p in range(parts):
                assert parallel.part_of(rows * p // parts, rows, parts) == p


@njit(nogil=True)
def _mixed(a32, ids, flags, m3, strided, ro, scale32, k32, u8, yes, n, out, b0, b1):
    for b in range(b0, b1):
        out[b] = (a32[b] * scale32 + ids[b, 1] + flags[b] + m3[b, 1, 2] + strided[b] + ro[b] + k32 + u8 + n
                  + (1.0 if yes else -1.0))


@njit(nogil=True)
def _with_complex(x, z, out, b0, b1):
    for b in range(b0, b1):
        out[b] = x[b] + z.imag


def test_packed_arguments_reach_the_kernel_as_a_direct_call_gives_them(monkeypatch):
    """The fixed-signature driver (packed_call.py) hands the kernel every argument type a kernel
    takes, arrays of any rank, layout and dtype among them, exactly as a direct call does; an
    argument type it does not pack takes the per-signature driver."""
    from rnndsl.kernels.cpu.packed_call import Packer

    split_everything(monkeypatch)
    rng = np.random.default_rng(0)
    R = 13
    ro = rng.normal(size=R)
    ro.flags.writeable = False
    args = (rng.normal(size=R).astype(np.float32), rng.integers(0, 9, (R, 3)), (rng.random(R) > 0.5).astype(np.uint8),
            rng.normal(size=(R, 2, 3)), rng.normal(size=2 * R)[::2], ro, np.float32(1.5), np.int32(-7), np.uint8(200),
            False, 3)
    want = np.zeros(R)
    _mixed(*args, want, 0, R)
    got = np.zeros(R)
    parallel.run_rows(_mixed, args + (got,), R, 10 ** 9, parts=3)
    np.testing.assert_array_equal(got, want)
    entry, address = parallel.compiled(_mixed, args + (got,))
    assert isinstance(parallel._packers[address], Packer)
    out = np.zeros(R)
    parallel.run_rows(_with_complex, (args[5], 1 + 2j, out), R, 10 ** 9, parts=2)
    np.testing.assert_array_equal(out, args[5] + 2.0)
    assert parallel._packers[parallel.compiled(_with_complex, (args[5], 1 + 2j, out))[1]] is None


def test_together_runs_the_deferred_calls_at_its_end(monkeypatch):
    """Inside together(), run_rows(..., defer=True) waits for the block's end, where the held calls
    run at once, each on its share of the workers; a call without defer, or inside in_order(),
    runs as it is made; a block that raises runs none of its held calls."""
    split_everything(monkeypatch)
    x = np.arange(21.0).reshape(7, 3) - 10
    outs = [np.zeros_like(x) for _ in range(4)]
    with parallel.together():
        parallel.run_rows(_scaled_rows, (x, outs[0], 2.0, False), 7, 10 ** 9, defer=True)
        parallel.run_rows(_scaled_rows, (x, outs[1], 3.0, True), 7, 10 ** 9, defer=True)
        assert not outs[0].any() and not outs[1].any()          # held back
        parallel.run_rows(_scaled_rows, (x, outs[2], 4.0, False), 7, 10 ** 9)
        np.testing.assert_array_equal(outs[2], x * 4.0)           # not deferrable: ran at once
        with parallel.in_order():
            parallel.run_rows(_scaled_rows, (x, outs[3], 5.0, False), 7, 10 ** 9, defer=True)
            np.testing.assert_array_equal(outs[3], x * 5.0)
    np.testing.assert_array_equal(outs[0], x * 2.0)
    np.testing.assert_array_equal(outs[1], -x * 3.0)

    held = np.zeros_like(x)
    with pytest.raises(KeyError):
        with parallel.together():
            parallel.run_rows(_scaled_rows, (x, held, 2.0, False), 7, 10 ** 9, defer=True)
            raise KeyError("x")
    assert not held.any()
    after = np.zeros_like(x)                                      # the block is over: no longer held
    parallel.run_rows(_scaled_rows, (x, after, 2.0, False), 7, 10 ** 9, defer=True)
    np.testing.assert_array_equal(after, x * 2.0)


BIDIRECTIONAL_SPECS = [
    # the first layer reads the model input (no dX), the second's kernel makes its dX
    "input x: float[5, 10]\noutput x | bilstm(16, seq) | bidirectional(lstm(8), merge_mode=\"sum\") | dense(3)\n",
    # input dropout: the second's dX is multiplied by the mask after the kernel, so it runs at once
    "input x: float[5, 10]\noutput x | bilstm(16, seq) | bilstm(8, dropout=0.3) | dense(3)\n",
    # an embedding's rows read in place (the LSTM's kernel makes their gradient); a GRU runs at once
    "input x: int[5]\noutput x | embed(7, 6) | bilstm(16, seq) | bigru(8) | dense(3)\n",
]


@pytest.mark.parametrize("workers", [2, 3, 4])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spec", BIDIRECTIONAL_SPECS)
def test_bidirectional_halves_at_once_equal_one_after_the_other(monkeypatch, spec, dtype, workers):
    """A bidirectional layer's halves run together (parallel.together) give what they give run
    one after the other, each split by rows, in inference and in training (concat and sum):
    forward, and backward where each half's time loop waits for the block's end (one worker
    a half: its weight gradients in one accumulator) or runs at once (its outputs read inside
    the block: input dropout; or more workers than two a half)."""
    import contextlib

    import rnndsl
    from rnndsl.runtime.cpu.ops import CpuOps

    split_everything(monkeypatch)
    monkeypatch.setattr(parallel, "WORKERS", workers)
    r = np.random.default_rng(0)
    x = r.integers(0, 7, size=(11, 5)) if "int" in spec else r.normal(size=(11, 5, 10)).astype(dtype)
    y = r.normal(size=(11, 3)).astype(dtype)
    got, held = {}, []
    run_together = parallel._run_together
    monkeypatch.setattr(parallel, "_run_together", lambda calls: (held.append(len(calls)), run_together(calls)))
    for mode in ("together", "in turn"):
        if mode == "in turn":
            monkeypatch.setattr(CpuOps, "together", staticmethod(contextlib.nullcontext))
        m = rnndsl.compile(spec, dtype=dtype, seed=3)
        loss, grads = m.loss_and_gradients(x, y, loss="mse")
        got[mode] = [m.predict_on_batch(x), np.float64(loss)] + [g for g in grads if g is not None]
    # two halves held back in the LSTMs' forwards, and in the backward of those whose outputs
    # are read only after the block
    lstms, backward_held = {0: (2, 2), 1: (2, 1), 2: (1, 1)}[BIDIRECTIONAL_SPECS.index(spec)]
    if workers >= 4:            # two workers a half: its backward runs at once, split by rows
        backward_held = 0
    assert held.count(2) == 2 * lstms + backward_held      # training's forward and backward, predict's forward
    tol = dict(rtol=1e-6, atol=1e-7) if dtype == "float32" else dict(rtol=1e-13, atol=1e-14)
    for a, b in zip(got["together"], got["in turn"]):
        np.testing.assert_allclose(a, b, **tol)


def test_bidirectional_halves_of_two_layers_run_their_backward_in_turn(monkeypatch):
    """With a backward_layer (another kind, or the same kind configured apart) the halves'
    BPTT is not held back together: one held alone would run on a single worker. Their
    forwards still are (each is split as it would be alone)."""
    import rnndsl
    from rnndsl.kernels.cpu import paths

    split_everything(monkeypatch)
    monkeypatch.setattr(parallel, "WORKERS", 2)
    held = []
    run_together = parallel._run_together
    monkeypatch.setattr(parallel, "_run_together", lambda calls: (held.append(len(calls)), run_together(calls)))
    r = np.random.default_rng(1)
    x, y = r.normal(size=(9, 4, 5)), r.normal(size=(9, 3))
    for back in ("gru(6, go_backwards=true)", "lstm(6, go_backwards=true, use_bias=false)"):
        spec = f"input x: float[4, 5]\noutput x | bidirectional(lstm(6), backward_layer={back}) | dense(3)\n"
        m = rnndsl.compile(spec, dtype="float64", seed=2)
        held.clear()
        m.loss_and_gradients(x, y, loss="mse")
        assert len(held) == 1, held               # the forward's block only (two LSTM halves or one)
        with paths.plain_paths():
            want = m.loss_and_gradients(x, y, loss="mse")
        got = m.loss_and_gradients(x, y, loss="mse")
        for a, b in zip(got[1], want[1]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_bidirectional_halves_at_once_keep_a_chunked_layer_in_order(monkeypatch):
    """Inference of a last-output-only layer over wide inputs runs chunk after chunk, each from
    the state the one before ended in (in_order inside together): equal to the plain route."""
    import rnndsl
    from rnndsl.kernels.cpu import paths
    from rnndsl.runtime.cpu import recurrent

    split_everything(monkeypatch)
    monkeypatch.setattr(recurrent, "PER_STEP_MAX_FEATURES", 2)
    monkeypatch.setattr(recurrent, "CHUNK_ROWS", 8)          # 2 steps of 4 rows a chunk
    x = np.random.default_rng(1).normal(size=(4, 9, 6))
    spec = "input x: float[?, 6]\noutput x | bilstm(5) | dense(2)\n"
    got = rnndsl.compile(spec, dtype="float64", seed=2).predict_on_batch(x)
    with paths.plain_paths():
        want = rnndsl.compile(spec, dtype="float64", seed=2).predict_on_batch(x)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
