"""The compiled dot-product attention (rnndsl/kernels/cpu/attention.py) against the plain
float64 NumPy math written out here, forward and backward, in both dtypes (drawn sizes: odd
widths and widths of whole 16-float vectors, the register tile's; batches larger than the
steps; 0, 1 and 2 steps; value and query masks, causal, scale, dropout, the scores, a key of
its own), split across workers; the backward also against central differences in float64."""

import numpy as np
import pytest

from conftest import split_everything
from rnndsl.kernels.cpu import attention as kernel

SHIFT = 1e9


def reference(q, k, v, vmask, qmask, causal, s, drop):
    """(C, P, A) time-major, by batched float64 NumPy products."""
    Q, K, V = (np.asarray(a, np.float64).transpose(1, 0, 2) for a in (q, k, v))
    B, Tq, Tv = Q.shape[0], Q.shape[1], K.shape[1]
    S = s * Q @ K.transpose(0, 2, 1)
    keep = np.ones((B, Tq, Tv), bool)
    if vmask is not None:
        keep &= vmask.T[:, None, :] != 0
    if causal:
        keep &= np.arange(Tv)[None, None, :] <= np.arange(Tq)[None, :, None]
    # shifted in the inputs' dtype, as the kernel does (in float32 the shift swallows the scores)
    S = np.where(keep, S, (S.astype(q.dtype) - q.dtype.type(SHIFT)).astype(np.float64))
    if Tv:
        E = np.exp(S - S.max(-1, keepdims=True))
        A = E / E.sum(-1, keepdims=True)
    else:
        A = S
    Ad = A * drop if drop is not None else A
    C = Ad @ V
    if qmask is not None:
        C = C * qmask.T[:, :, None]
    return C.transpose(1, 0, 2), Ad.transpose(1, 0, 2), A


def reference_backward(q, k, v, qmask, s, drop, A, dC, dP):
    """(dQ, dK, dV, ds) time-major of the above, written out by hand in float64."""
    Q, K, V = (np.asarray(a, np.float64).transpose(1, 0, 2) for a in (q, k, v))
    Ad = A * drop if drop is not None else A
    dAd = np.zeros_like(A)
    dV = np.zeros_like(V)
    if dC is not None:
        G = np.asarray(dC, np.float64).transpose(1, 0, 2)
        if qmask is not None:
            G = G * qmask.T[:, :, None]
        dAd = G @ V.transpose(0, 2, 1)
        dV = Ad.transpose(0, 2, 1) @ G
    if dP is not None:
        dAd = dAd + np.asarray(dP, np.float64).transpose(1, 0, 2)
    dA = dAd * drop if drop is not None else dAd
    dS = A * (dA - (dA * A).sum(-1, keepdims=True))
    R = Q @ K.transpose(0, 2, 1)
    tm = lambda a: a.transpose(1, 0, 2)                       # noqa: E731
    return tm(s * dS @ K), tm(s * dS.transpose(0, 2, 1) @ Q), tm(dV), float((dS * R).sum())


def draw(rng, dtype, B, Tq, Tv, d, dv, full_rows=True):
    """A random case: inputs, masks and options, as dot_forward takes them."""
    own_key = bool(rng.random() < 0.5)
    if not own_key:
        d = dv                                             # the value is the key
    q, k, v = (rng.normal(size=sh).astype(dtype) for sh in ((Tq, B, d), (Tv, B, d), (Tv, B, dv)))
    if not own_key:
        k = v
    vmask = (rng.random((Tv, B)) > 0.3).astype(np.uint8) if rng.random() < 0.6 else None
    if vmask is not None and B and full_rows is False:
        vmask[:, 0] = 0                                    # a sample whose every value step is padding
    if vmask is not None and full_rows and Tv:
        vmask[0] = 1                                       # (finite differences: no row wholly masked)
    qmask = (rng.random((Tq, B)) > 0.3).astype(np.uint8) if rng.random() < 0.6 else None
    causal = bool(rng.random() < 0.4)
    s = float(rng.uniform(-0.6, 0.6)) if rng.random() < 0.6 else 1.0
    drop = ((rng.random((B, Tq, Tv)) > 0.3) / 0.7).astype(dtype) if rng.random() < 0.4 else None
    return dict(q=q, k=k, v=v, vmask=vmask, qmask=qmask, causal=causal, s=s, drop=drop, own_key=own_key)


def run(c, dC=True, dP=True, scores=True, rng=None):
    """The kernel's forward (training) and backward on case c: (C, P, A, dQ, dK, dV, ds, dCa, dPa)."""
    C, A, P = kernel.dot_forward(c["q"], c["k"], c["v"], c["vmask"], c["qmask"], c["causal"], c["s"], SHIFT,
                                 c["drop"], True, scores)
    dt = c["q"].dtype
    dCa = rng.normal(size=C.shape).astype(dt) if dC else None
    if dC and rng.random() < 0.5:                      # a view: read in place, strides and all
        dCa = np.concatenate([dCa, np.ones(C.shape[:2] + (3,), dt)], -1)[..., :C.shape[2]]
    dPa = rng.normal(size=(C.shape[0], C.shape[1], c["k"].shape[0])).astype(dt) if dP and scores else None
    dQ, dK, dV, ds = kernel.dot_backward(c["q"], c["k"], c["v"], c["qmask"], c["s"], c["drop"], A, dCa, dPa,
                                         c["own_key"])
    return C, P, A, dQ, dK, dV, ds, dCa, dPa


SIZES = [  # B, Tq, Tv, d, dv
    (5, 3, 4, 3, 2), (9, 1, 1, 1, 1), (7, 2, 2, 5, 7), (3, 0, 4, 3, 3), (4, 3, 0, 3, 2), (0, 3, 3, 2, 2),
    (11, 7, 5, 16, 16), (6, 9, 13, 32, 80), (13, 5, 6, 17, 48), (3, 4, 9, 64, 64),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_equals_float64_numpy(dtype, monkeypatch):
    """Every drawn case, split across workers, against the reference: outputs, scores, the
    weights kept, every gradient."""
    split_everything(monkeypatch)
    rng = np.random.default_rng(22 if dtype == np.float32 else 23)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for n in range(3 * len(SIZES)):
        B, Tq, Tv, d, dv = SIZES[n % len(SIZES)]
        c = draw(rng, dtype, B, Tq, Tv, d, dv, full_rows=n % 2 == 0)
        scores, dC = n % 3 != 1, n % 4 != 3
        C, P, A, dQ, dK, dV, ds, dCa, dPa = run(c, dC=dC, scores=scores, rng=rng)
        what = f"case {n}: {SIZES[n % len(SIZES)]}, key {c['own_key']}, vmask {c['vmask'] is not None}, " \
               f"qmask {c['qmask'] is not None}, causal {c['causal']}, s {c['s']}, drop {c['drop'] is not None}"
        rC, rP, rA = reference(c["q"], c["k"], c["v"], c["vmask"], c["qmask"], c["causal"], c["s"], c["drop"])
        assert C.dtype == dtype and C.shape == rC.shape
        np.testing.assert_allclose(C, rC, **tol, err_msg=what)
        np.testing.assert_allclose(A, rA, **tol, err_msg=what)
        if scores:
            np.testing.assert_allclose(P, rP, **tol, err_msg=what)
        else:
            assert P is None
        rdQ, rdK, rdV, rds = reference_backward(c["q"], c["k"], c["v"], c["qmask"], c["s"], c["drop"], rA, dCa,
                                                dPa)
        if not c["own_key"]:
            rdV, rdK = rdV + rdK, None
            assert dK is None
        for got, want in ((dQ, rdQ), (dK, rdK), (dV, rdV)):
            if want is not None:
                assert got.dtype == dtype
                np.testing.assert_allclose(got, want, **tol, err_msg=what)
        np.testing.assert_allclose(ds, rds, rtol=tol["rtol"], atol=tol["atol"] * max(1, B * Tq * Tv), err_msg=what)


def test_inference_keeps_nothing_and_agrees():
    rng = np.random.default_rng(5)
    c = draw(rng, np.float32, 6, 5, 7, 16, 32)
    C1, A1, P1 = kernel.dot_forward(c["q"], c["k"], c["v"], c["vmask"], c["qmask"], True, 0.5, SHIFT, None, True, True)
    C0, A0, P0 = kernel.dot_forward(c["q"], c["k"], c["v"], c["vmask"], c["qmask"], True, 0.5, SHIFT, None, False,
                                    True)
    assert A0 is None and A1 is not None
    np.testing.assert_array_equal(C0, C1)
    np.testing.assert_array_equal(P0, P1)


def test_empty_value_gives_zero_context():
    q = np.ones((3, 2, 4), np.float32)
    v = np.zeros((0, 2, 5), np.float32)
    C, A, P = kernel.dot_forward(q, v[..., :4], v, None, None, False, 1.0, SHIFT, None, True, True)
    np.testing.assert_array_equal(C, np.zeros((3, 2, 5)))
    assert P.shape == (3, 2, 0)


def test_float32_exp():
    """The softmax's float32 exp, through a one-step softmax: e^x over [-86, 0] to ~1 ulp; 0
    below; NaN in, NaN out."""
    x = np.concatenate([-np.linspace(0, 86, 20001), [-86.5, -1e9, -np.inf, np.nan]]).astype(np.float32)
    # softmax over [x, 0] is e^x / (1 + e^x): its second weight is 1 / (1 + e^x)
    q = np.stack([x, np.zeros_like(x)])[:, :, None].astype(np.float32)         # (Tv, B, 1) keys
    one = np.ones((1, x.size, 1), np.float32)
    C, A, P = kernel.dot_forward(one, q, np.ones_like(q), None, None, False, 1.0, SHIFT, None, True, True)
    e = np.exp(x.astype(np.float64))
    want = np.stack([e / (1 + e), 1 / (1 + e)], -1)
    ok = ~np.isnan(x)
    np.testing.assert_allclose(A[ok, 0], want[ok], rtol=4e-7, atol=1e-37)
    assert np.isnan(A[~ok, 0]).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backward_equals_finite_differences(seed):
    """float64, small: dQ, dK, dV and ds against central differences of the kernel's own
    forward, the loss sum(C * RC) + sum(P * RP)."""
    rng = np.random.default_rng(seed)
    c = draw(rng, np.float64, 3, 3, 4, 3, 2)
    C, P, A, dQ, dK, dV, ds, RC, RP = run(c, rng=rng)

    def loss(q, k, v, s):
        C, _, P = kernel.dot_forward(q, k, v, c["vmask"], c["qmask"], c["causal"], s, SHIFT, c["drop"], False, True)
        return float((C * RC).sum() + (P * RP).sum())

    eps = 1e-6
    names = ["q", "v"] + (["k"] if c["own_key"] else [])
    for name, got in zip(names, (dQ, dV, dK)):
        x = c[name]
        num = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            args = {n: c[n].copy() for n in ("q", "k", "v")}
            if not c["own_key"]:
                args["k"] = args["v"]
            for sign in (1, -1):
                args[name][idx] += sign * eps
                num[idx] += sign * loss(args["q"], args["k"], args["v"], c["s"]) / (2 * eps)
                args[name][idx] -= sign * eps
        np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-7, err_msg=name)
    num_s = (loss(c["q"], c["k"], c["v"], c["s"] + eps) - loss(c["q"], c["k"], c["v"], c["s"] - eps)) / (2 * eps)
    np.testing.assert_allclose(ds, num_s, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_inputs_spread_as_in_numpy(dtype):
    """A NaN or inf in a query, key or value spoils what it spoils in the float64 math, no less
    (a model with a broken weight must not predict plausible numbers) and no more."""
    rng = np.random.default_rng(1)
    q, k, v = (rng.normal(size=sh).astype(dtype) for sh in ((5, 6, 16), (7, 6, 16), (7, 6, 16)))
    q[2, 1, 3] = np.nan
    k[4, 3, 0] = np.inf
    v[1, 4, 2] = -np.inf
    v[3, 5, 5] = np.nan
    C, A, P = kernel.dot_forward(q, k, v, None, None, False, 0.5, SHIFT, None, True, True)
    with np.errstate(invalid="ignore"):
        rC, rP, _ = reference(q, k, v, None, None, False, 0.5, None)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(C, rC, **tol)            # NaN where NaN, inf where inf
    np.testing.assert_allclose(P, rP, **tol)
    assert np.isnan(C).any() and np.isinf(C).any() and np.isfinite(C).any()
