"""Shared machinery for the cell-kernel tests.

Each cell is described by a `Cell`: how to call its wrappers, its NumPy
reference, and which inputs are differentiable.  The checks (forward against
the reference, central-difference gradients, padded batch against one-by-one
runs) are written once here and parametrised in test_<cell>.py.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numba import njit

from rnndsl.kernels.cpu.activations import act_, dact_
from rnndsl.kernels.cpu.gru import gru_backward, gru_forward
from rnndsl.kernels.cpu.lstm import lstm_backward, lstm_forward
from rnndsl.kernels.cpu.simplernn import simplernn_backward, simplernn_forward

from . import reference

ACTIVATIONS = ["tanh", "sigmoid", "relu", "linear", "hard_sigmoid"]


@dataclass(frozen=True)
class Cell:
    gates: int
    states: tuple            # names of the state inputs, e.g. ("h0", "c0")
    params: tuple            # differentiable inputs, besides the states
    run: Callable            # (inputs, opts) -> (out, finals, saved)
    grads: Callable          # (saved, dout, dfinals) -> dict name -> gradient
    ref: Callable            # (inputs, opts) -> (out, finals), float64


def _ref_opts(opts):
    o = dict(opts)
    o["activation_name"] = o.pop("activation", "tanh")
    o["zero_output"] = o.pop("zero_output_for_mask", False)
    return o


def _simplernn_run(p, opts):
    opts = {k: v for k, v in opts.items() if k != "recurrent_activation"}
    out, hT, saved = simplernn_forward(p["xp"], p["U"], p["h0"], **opts)
    return out, (hT,), saved


def _simplernn_grads(saved, dout, dfinals):
    dxp, dU, dh0 = simplernn_backward(saved, dout, *dfinals)
    return {"xp": dxp, "U": dU, "h0": dh0}


def _simplernn_ref(p, opts):
    o = _ref_opts(opts)
    o.pop("recurrent_activation", None)
    out, h = reference.simplernn(p["xp"], p["U"], p["h0"], **o)
    return out, (h,)


def _lstm_run(p, opts):
    out, hT, cT, saved = lstm_forward(p["xp"], p["U"], p["h0"], p["c0"], **opts)
    return out, (hT, cT), saved


def _lstm_grads(saved, dout, dfinals):
    dxp, dU, dh0, dc0 = lstm_backward(saved, dout, *dfinals)
    return {"xp": dxp, "U": dU, "h0": dh0, "c0": dc0}


def _lstm_ref(p, opts):
    out, h, c = reference.lstm(p["xp"], p["U"], p["h0"], p["c0"], **_ref_opts(opts))
    return out, (h, c)


def _gru_run(p, opts):
    out, hT, saved = gru_forward(p["xp"], p["U"], p["h0"], b_rec=p.get("b_rec"), **opts)
    return out, (hT,), saved


def _gru_grads(saved, dout, dfinals):
    dxp, dU, dh0, db_rec = gru_backward(saved, dout, *dfinals)
    g = {"xp": dxp, "U": dU, "h0": dh0}
    if db_rec is not None:
        g["b_rec"] = db_rec
    return g


def _gru_ref(p, opts):
    out, h = reference.gru(p["xp"], p["U"], p["h0"], b_rec=p.get("b_rec"), **_ref_opts(opts))
    return out, (h,)


SIMPLERNN = Cell(1, ("h0",), ("xp", "U"), _simplernn_run, _simplernn_grads, _simplernn_ref)
LSTM = Cell(4, ("h0", "c0"), ("xp", "U"), _lstm_run, _lstm_grads, _lstm_ref)
GRU = Cell(3, ("h0",), ("xp", "U"), _gru_run, _gru_grads, _gru_ref)
# reset_after=True also differentiates the recurrent bias.
GRU_RESET_AFTER = Cell(3, ("h0",), ("xp", "U", "b_rec"), _gru_run, _gru_grads, _gru_ref)


def make_inputs(cell, T=5, B=3, u=4, seed=0, zero_state=False, scale=1.0):
    """Random float64 inputs, scaled so activations are mostly not saturated."""
    rng = np.random.default_rng(seed)
    p = {
        "xp": rng.normal(size=(T, B, cell.gates * u)) * 0.7 * scale,
        "U": rng.normal(size=(u, cell.gates * u)) * 0.5 * scale,
    }
    for name in cell.states:
        p[name] = np.zeros((B, u)) if zero_state else rng.normal(size=(B, u))
    if "b_rec" in cell.params:
        p["b_rec"] = rng.normal(size=cell.gates * u) * 0.5
    return p


def make_mask(T, B, seed=0):
    """Mask with leading, trailing and interior padding and an all-padded row."""
    rng = np.random.default_rng(seed + 100)
    mask = (rng.random((T, B)) > 0.35).astype(np.uint8)
    mask[0, 0] = 0
    mask[-1, 0] = 0
    mask[1:-1, 0] = 1
    if B > 2:
        mask[:, 2] = 0
    return mask


def make_rmask(B, u, p=0.4, seed=0):
    rng = np.random.default_rng(seed + 200)
    return (rng.random((B, u)) >= p) / (1.0 - p)


def cast(p, dtype):
    return {k: np.asarray(v, dtype) for k, v in p.items()}


def loss_weights(out_shape, n_finals, seed=0):
    rng = np.random.default_rng(seed + 300)
    return rng.normal(size=out_shape), [rng.normal(size=out_shape[1:]) for _ in range(n_finals)]


def loss(cell, p, opts, R_out, R_finals):
    out, finals, _ = cell.run(p, opts)
    return float((out * R_out).sum() + sum((f * r).sum() for f, r in zip(finals, R_finals)))


def numeric_grad(cell, p, opts, name, R_out, R_finals, eps=1e-6):
    g = np.zeros_like(p[name])
    for idx in np.ndindex(g.shape):
        q = {k: v.copy() for k, v in p.items()}
        q[name][idx] += eps
        lp = loss(cell, q, opts, R_out, R_finals)
        q[name][idx] -= 2 * eps
        lm = loss(cell, q, opts, R_out, R_finals)
        g[idx] = (lp - lm) / (2 * eps)
    return g


def assert_grad_close(analytic, numeric, name, tol=1e-6):
    scale = max(np.abs(numeric).max(), np.abs(analytic).max(), 1e-3)
    err = np.abs(analytic - numeric).max() / scale
    assert err < tol, f"d{name}: relative error {err:.2e}"


def check_forward(cell, opts, dtype, seed=0, zero_state=False, scale=1.0, **shape):
    p = make_inputs(cell, seed=seed, zero_state=zero_state, scale=scale, **shape)
    T, B, _ = p["xp"].shape
    u = p["U"].shape[0]
    opts = dict(opts)
    if opts.pop("masked", False):
        opts["mask"] = make_mask(T, B, seed)
    if opts.pop("dropout", False):
        opts["rmask"] = make_rmask(B, u, seed=seed)
    p32 = cast(p, dtype)
    # The reference sees exactly the (rounded) values the kernel sees.
    ref_in = cast(p32, np.float64)
    out, finals, _ = cell.run(p32, opts)
    ref_out, ref_finals = cell.ref(ref_in, {k: (np.asarray(v, np.float64) if k == "rmask" else v)
                                            for k, v in opts.items()})
    tol = 1e-10 if dtype == np.float64 else 1e-5
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol)
    for f, r in zip(finals, ref_finals):
        assert f.dtype == dtype
        np.testing.assert_allclose(f, r, rtol=tol, atol=tol)
    return out, finals


def check_gradients(cell, opts, seed=0):
    p = make_inputs(cell, seed=seed)
    T, B, _ = p["xp"].shape
    u = p["U"].shape[0]
    opts = dict(opts)
    if opts.pop("masked", False):
        opts["mask"] = make_mask(T, B, seed)
    if opts.pop("dropout", False):
        opts["rmask"] = make_rmask(B, u, seed=seed)
    R_out, R_finals = loss_weights((T, B, u), len(cell.states), seed)
    out, finals, saved = cell.run(p, opts)
    grads = cell.grads(saved, R_out, R_finals)
    for name in cell.params + cell.states:
        num = numeric_grad(cell, p, opts, name, R_out, R_finals)
        assert_grad_close(grads[name], num, name)
    return grads


def check_padded_matches_single(cell, opts, pre_padding=False, seed=0):
    """A padded, masked batch equals, on its real steps, the unpadded sequences
    run one at a time: outputs, final states and all gradients."""
    lengths = [5, 2, 4]
    T, B, u = max(lengths), len(lengths), 3
    p = make_inputs(cell, T=T, B=B, u=u, seed=seed)
    opts = dict(opts)
    dropout = opts.pop("dropout", False)
    backwards = opts.get("backwards", False)
    mask = np.zeros((T, B), np.uint8)
    real_times = []
    for b, L in enumerate(lengths):
        ts = np.arange(T - L, T) if pre_padding else np.arange(L)
        mask[ts, b] = 1
        real_times.append(ts)
    rmask = make_rmask(B, u, seed=seed) if dropout else None
    popts = {**opts, "mask": mask, "rmask": rmask}
    R_out, R_finals = loss_weights((T, B, u), len(cell.states), seed)

    def out_index(t, T_):
        return T_ - 1 - t if backwards else t

    # Loss weights only on real outputs, so padded outputs carry no gradient.
    R_real = np.zeros_like(R_out)
    for b, ts in enumerate(real_times):
        for t in ts:
            R_real[out_index(t, T), b] = R_out[out_index(t, T), b]
    out, finals, saved = cell.run(p, popts)
    grads = cell.grads(saved, R_real, R_finals)

    dU_sum = np.zeros_like(p["U"])
    db_sum = np.zeros_like(p["b_rec"]) if "b_rec" in p else None
    for b, ts in enumerate(real_times):
        L = len(ts)
        q = {k: v.copy() for k, v in p.items()}
        q["xp"] = p["xp"][ts, b : b + 1]
        for name in cell.states:
            q[name] = p[name][b : b + 1]
        sopts = {**opts, "rmask": None if rmask is None else rmask[b : b + 1]}
        s_out, s_finals, s_saved = cell.run(q, sopts)
        s_R = np.empty((L, 1, u))
        for i, t in enumerate(ts):
            s_R[out_index(i, L), 0] = R_out[out_index(t, T), b]
            np.testing.assert_allclose(out[out_index(t, T), b], s_out[out_index(i, L), 0],
                                       rtol=1e-12, atol=1e-12)
        for f, sf in zip(finals, s_finals):
            np.testing.assert_allclose(f[b], sf[0], rtol=1e-12, atol=1e-12)
        s_grads = cell.grads(s_saved, s_R, [r[b : b + 1] for r in R_finals])
        np.testing.assert_allclose(grads["xp"][ts, b], s_grads["xp"][:, 0], rtol=1e-10, atol=1e-12)
        pad = np.setdiff1d(np.arange(T), ts)
        assert np.all(grads["xp"][pad, b] == 0)
        for name in cell.states:
            np.testing.assert_allclose(grads[name][b], s_grads[name][0], rtol=1e-10, atol=1e-12)
        dU_sum += s_grads["U"]
        if db_sum is not None:
            db_sum += s_grads["b_rec"]
    np.testing.assert_allclose(grads["U"], dU_sum, rtol=1e-10, atol=1e-12)
    if db_sum is not None:
        np.testing.assert_allclose(grads["b_rec"], db_sum, rtol=1e-10, atol=1e-12)


# --- option sets shared by the three test files --------------------------------------

DTYPES = [np.float32, np.float64]

OPTION_CASES = [
    {},
    {"masked": True},
    {"masked": True, "zero_output_for_mask": True},
    {"backwards": True},
    {"masked": True, "backwards": True},
    {"masked": True, "backwards": True, "zero_output_for_mask": True},
    {"dropout": True},
    {"masked": True, "dropout": True, "backwards": True},
]

ACTIVATION_CASES = [{"activation": a} for a in ACTIVATIONS] + [
    {"recurrent_activation": a} for a in ACTIVATIONS
]

GRADIENT_CASES = OPTION_CASES + [
    {"activation": "relu", "recurrent_activation": "hard_sigmoid", "masked": True},
    {"activation": "linear", "recurrent_activation": "tanh", "dropout": True},
    {"activation": "hard_sigmoid", "recurrent_activation": "relu", "backwards": True},
    {"activation": "sigmoid", "recurrent_activation": "linear", "masked": True,
     "zero_output_for_mask": True},
]

PADDING_CASES = [
    {"pre_padding": False},
    {"pre_padding": True},
    {"pre_padding": False, "backwards": True},
    {"pre_padding": True, "backwards": True, "dropout": True},
    {"pre_padding": False, "zero_output_for_mask": True, "dropout": True},
]


def case_id(opts):
    return "-".join(f"{k}={v}" if not isinstance(v, bool) else k for k, v in opts.items()) or "plain"


def without_recurrent_activation(cases):
    """SimpleRNN has no recurrent activation."""
    return [c for c in cases if "recurrent_activation" not in c]


@njit(cache=False, error_model="numpy")
def act_and_derivative(x, code):
    """(act_(x), dact_(act_(x))) element by element, through the kernels' own functions."""
    y = np.empty_like(x)
    d = np.empty_like(x)
    for i in range(x.shape[0]):
        y[i] = act_(x[i], code)
        d[i] = dact_(y[i], code)
    return y, d


def check_table_against_rows(monkeypatch, cls, body: str, plain64: bool = False) -> None:
    """A float32 model `embed(20, 4) | body | dense(3)` whose recurrent layer (runner class
    cls, from rnndsl.runtime.cpu) reads its embedding through the projected table: the same
    predictions, loss and gradients as reading the rows E[ids] (cls.takes_table off), and,
    with plain64, as the float64 plain route."""
    import rnndsl
    from rnndsl.kernels.cpu import paths

    ids = np.random.default_rng(0).integers(0, 20, (8, 12))
    y = np.arange(8) % 3
    text = f"embed(20, 4) | {body} | dense(3)"
    res = []
    for table in (True, False):
        monkeypatch.setattr(cls, "takes_table", table)
        m = rnndsl.compile(text, seed=3)
        loss, grads = m.loss_and_gradients(ids, y)
        res.append((m.predict(ids), loss, grads))
    if plain64:
        m64 = rnndsl.compile(text, seed=3, dtype="float64")
        with paths.plain_paths():
            loss, grads = m64.loss_and_gradients(ids, y)
            res.append((m64.predict(ids), loss, grads))
    p1, l1, g1 = res[0]
    for p2, l2, g2 in res[1:]:
        np.testing.assert_allclose(p1, p2, atol=1e-5)
        np.testing.assert_allclose(l1, l2, rtol=1e-5)
        for a, b in zip(g1, g2):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
