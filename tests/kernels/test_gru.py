"""GRU kernels (reset_after True and False) against the NumPy reference,
finite differences and padding."""

import numpy as np
import pytest

from rnndsl.kernels.cpu.gru import gru_backward, gru_forward

from .harness import (
    ACTIVATION_CASES,
    DTYPES,
    GRADIENT_CASES,
    GRU,
    GRU_RESET_AFTER,
    OPTION_CASES,
    PADDING_CASES,
    case_id,
    check_forward,
    check_gradients,
    check_padded_matches_single,
)

MODES = [
    pytest.param(GRU_RESET_AFTER, {"reset_after": True}, id="reset_after"),
    pytest.param(GRU, {"reset_after": False}, id="reset_before"),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("opts", OPTION_CASES + ACTIVATION_CASES, ids=case_id)
@pytest.mark.parametrize("cell,mode", MODES)
def test_forward_matches_reference(cell, mode, opts, dtype):
    # A linear update gate makes h_t grow like h_{t-1}^2, which amplifies
    # float32 rounding past 1e-5 within 5 steps at the default input scale.
    scale = 0.5 if opts.get("recurrent_activation") == "linear" else 1.0
    check_forward(cell, {**mode, **opts}, dtype, scale=scale)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("cell,mode", MODES)
def test_forward_zero_initial_state_and_odd_shapes(cell, mode, dtype):
    check_forward(cell, {**mode, "masked": True}, dtype, zero_state=True, T=1, B=1, u=1)
    check_forward(cell, {**mode, "dropout": True}, dtype, T=4, B=2, u=3, seed=5)


@pytest.mark.parametrize("opts", GRADIENT_CASES, ids=case_id)
@pytest.mark.parametrize("cell,mode", MODES)
def test_gradients_match_finite_differences(cell, mode, opts):
    check_gradients(cell, {**mode, **opts})


@pytest.mark.parametrize("opts", PADDING_CASES, ids=case_id)
@pytest.mark.parametrize("cell,mode", MODES)
def test_padded_batch_matches_sequences_one_by_one(cell, mode, opts):
    opts = dict(opts)
    pre_padding = opts.pop("pre_padding")
    check_padded_matches_single(cell, {**mode, **opts}, pre_padding=pre_padding)


def test_reset_after_without_bias_equals_zero_bias():
    rng = np.random.default_rng(7)
    xp, U, h0 = rng.normal(size=(3, 2, 6)), rng.normal(size=(2, 6)), rng.normal(size=(2, 2))
    a = gru_forward(xp, U, h0)
    b = gru_forward(xp, U, h0, b_rec=np.zeros(6))
    np.testing.assert_array_equal(a[0], b[0])
    dout = rng.normal(size=a[0].shape)
    ga, gb = gru_backward(a[2], dout), gru_backward(b[2], dout)
    for x, y in zip(ga, gb):
        np.testing.assert_array_equal(x, y)


def test_reset_after_false_has_no_recurrent_bias():
    rng = np.random.default_rng(8)
    xp, U, h0 = rng.normal(size=(3, 2, 6)), rng.normal(size=(2, 6)), rng.normal(size=(2, 2))
    out, hT, saved = gru_forward(xp, U, h0, reset_after=False)
    assert gru_backward(saved, np.ones_like(out))[3] is None
    with pytest.raises(ValueError, match="reset_after"):
        gru_forward(xp, U, h0, b_rec=np.zeros(6), reset_after=False)


def test_dropout_mask_enters_the_state_mix():
    # Keras 3 GRU: h = z * (h_tm1 * rmask) + (1 - z) * hh.  With U = 0 and
    # x_z large, z ~ 1 and h ~ h_tm1 * rmask, which a kernel that applied the
    # mask only inside the matmul would get wrong.
    u = 2
    xp = np.zeros((1, 1, 3 * u))
    xp[..., :u] = 30.0
    h0 = np.array([[1.0, 2.0]])
    rmask = np.array([[0.0, 2.0]])
    for reset_after in (True, False):
        out, hT, _ = gru_forward(xp, np.zeros((u, 3 * u)), h0, rmask=rmask,
                                 reset_after=reset_after)
        np.testing.assert_allclose(hT, [[0.0, 4.0]], atol=1e-12)
