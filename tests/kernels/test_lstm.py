"""LSTM kernels against the NumPy reference, finite differences and padding."""

import numpy as np
import pytest

from rnndsl.kernels.cpu.lstm import lstm_backward, lstm_forward

from .harness import (
    ACTIVATION_CASES,
    DTYPES,
    GRADIENT_CASES,
    LSTM,
    OPTION_CASES,
    PADDING_CASES,
    case_id,
    check_forward,
    check_gradients,
    check_padded_matches_single,
)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("opts", OPTION_CASES + ACTIVATION_CASES, ids=case_id)
def test_forward_matches_reference(opts, dtype):
    check_forward(LSTM, opts, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_forward_zero_initial_state_and_odd_shapes(dtype):
    check_forward(LSTM, {"masked": True}, dtype, zero_state=True, T=1, B=1, u=1)
    check_forward(LSTM, {"dropout": True}, dtype, T=4, B=2, u=3, seed=5)


@pytest.mark.parametrize("opts", GRADIENT_CASES, ids=case_id)
def test_gradients_match_finite_differences(opts):
    check_gradients(LSTM, opts)


@pytest.mark.parametrize("opts", PADDING_CASES, ids=case_id)
def test_padded_batch_matches_sequences_one_by_one(opts):
    opts = dict(opts)
    check_padded_matches_single(LSTM, opts, pre_padding=opts.pop("pre_padding"))


def test_masked_steps_carry_both_states():
    # One row padded everywhere: out is h0 throughout (or zeros) and the final
    # states are h0, c0; its gradients flow straight to dh0, dc0.
    rng = np.random.default_rng(3)
    T, B, u = 3, 2, 2
    xp, U = rng.normal(size=(T, B, 4 * u)), rng.normal(size=(u, 4 * u))
    h0, c0 = rng.normal(size=(B, u)), rng.normal(size=(B, u))
    mask = np.array([[1, 0]] * T, np.uint8)
    out, hT, cT, saved = lstm_forward(xp, U, h0, c0, mask=mask)
    assert np.array_equal(out[:, 1], np.broadcast_to(h0[1], (T, u)))
    assert np.array_equal(hT[1], h0[1]) and np.array_equal(cT[1], c0[1])
    out0, *_ = lstm_forward(xp, U, h0, c0, mask=mask, zero_output_for_mask=True)
    assert np.all(out0[:, 1] == 0) and np.array_equal(out0[:, 0], out[:, 0])
    dout = rng.normal(size=(T, B, u))
    dhT, dcT = rng.normal(size=(B, u)), rng.normal(size=(B, u))
    dxp, dU, dh0, dc0 = lstm_backward(saved, dout, dhT, dcT)
    assert np.all(dxp[:, 1] == 0)
    np.testing.assert_allclose(dh0[1], dhT[1] + dout[:, 1].sum(0), rtol=1e-14)
    np.testing.assert_array_equal(dc0[1], dcT[1])


def test_float32_in_float32_out_and_none_final_grads():
    rng = np.random.default_rng(4)
    xp = rng.normal(size=(3, 2, 8)).astype(np.float32)
    U = rng.normal(size=(2, 8))
    out, hT, cT, saved = lstm_forward(xp, U, np.zeros((2, 2)), np.zeros((2, 2)))
    assert out.dtype == hT.dtype == cT.dtype == np.float32
    dxp, dU, dh0, dc0 = lstm_backward(saved, np.ones_like(out))
    saved = lstm_forward(xp, U, np.zeros((2, 2)), np.zeros((2, 2)))[3]   # backward consumed the first
    ref = lstm_backward(saved, np.ones_like(out), np.zeros((2, 2)), np.zeros((2, 2)))
    for a, b in zip((dxp, dU, dh0, dc0), ref):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
