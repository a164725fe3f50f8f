"""SimpleRNN kernels against the NumPy reference, finite differences and padding."""

import numpy as np
import pytest

from rnndsl.kernels.cpu.simplernn import simplernn_backward, simplernn_forward

from .harness import (
    ACTIVATION_CASES,
    DTYPES,
    GRADIENT_CASES,
    OPTION_CASES,
    PADDING_CASES,
    SIMPLERNN,
    case_id,
    check_forward,
    check_gradients,
    check_padded_matches_single,
    without_recurrent_activation,
)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("opts", OPTION_CASES + without_recurrent_activation(ACTIVATION_CASES),
                         ids=case_id)
def test_forward_matches_reference(opts, dtype):
    check_forward(SIMPLERNN, opts, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_forward_zero_initial_state_and_odd_shapes(dtype):
    check_forward(SIMPLERNN, {"masked": True}, dtype, zero_state=True, T=1, B=1, u=1)
    check_forward(SIMPLERNN, {"dropout": True}, dtype, T=4, B=2, u=3, seed=5)


@pytest.mark.parametrize(
    "opts",
    [{k: v for k, v in c.items() if k != "recurrent_activation"} for c in GRADIENT_CASES],
    ids=case_id,
)
def test_gradients_match_finite_differences(opts):
    check_gradients(SIMPLERNN, opts)


@pytest.mark.parametrize("opts", PADDING_CASES, ids=case_id)
def test_padded_batch_matches_sequences_one_by_one(opts):
    opts = dict(opts)
    check_padded_matches_single(SIMPLERNN, opts, pre_padding=opts.pop("pre_padding"))


def test_hand_computed_two_steps():
    # u = 1, linear: h1 = x0 + h0 U, h2 = x1 + h1 U; backwards reverses x.
    xp = np.array([[[1.0]], [[2.0]]])
    U = np.array([[0.5]])
    h0 = np.array([[4.0]])
    out, hT, saved = simplernn_forward(xp, U, h0, activation="linear")
    np.testing.assert_allclose(out[:, 0, 0], [3.0, 3.5])
    out_b, hT_b, _ = simplernn_forward(xp, U, h0, activation=3, backwards=True)
    np.testing.assert_allclose(out_b[:, 0, 0], [4.0, 3.0])
    # L = h2: dh2 = 1, dx1 = 1, dh1 = U, dx0 = U, dU = h1 + U h0, dh0 = U^2
    dxp, dU, dh0 = simplernn_backward(saved, np.zeros((2, 1, 1)), np.ones((1, 1)))
    np.testing.assert_allclose(dxp[:, 0, 0], [0.5, 1.0])
    np.testing.assert_allclose(dU, [[3.0 + 0.5 * 4.0]])
    np.testing.assert_allclose(dh0, [[0.25]])


def test_rejects_bad_arguments():
    xp = np.zeros((2, 1, 3))
    with pytest.raises(ValueError, match="U"):
        simplernn_forward(xp, np.zeros((2, 2)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="activation"):
        simplernn_forward(xp, np.zeros((3, 3)), np.zeros((1, 3)), activation="softsign")
    with pytest.raises(ValueError, match="float32 or float64"):
        simplernn_forward(xp.astype(np.int64), np.zeros((3, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="mask"):
        simplernn_forward(xp, np.zeros((3, 3)), np.zeros((1, 3)), mask=np.ones((1, 2)))
