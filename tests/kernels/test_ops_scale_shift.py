"""scale_shift (kernels/cpu/ops.py, batchnorm's inference Y = X s + shift in one compiled
pass) against NumPy's two passes, bit for bit: the same roundings, no fused multiply-add;
NaN and inf where NumPy has them."""

import numpy as np
import pytest

from rnndsl.kernels.cpu.ops import scale_shift


@pytest.mark.parametrize("shape", [(64, 64), (1, 1), (0, 5), (37, 13), (3, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scale_shift_is_numpys_product_then_sum(shape, dtype):
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    X = (rng.standard_normal(shape) * 1e3).astype(dtype)
    st = rng.standard_normal((2, shape[1])).astype(dtype)
    if X.size:
        X.flat[0], X.flat[-1] = np.nan, np.inf
        st[0, -1] = 1e30 if dtype == np.float64 else 1e20        # products that overflow a float32
    want = X * st[0]
    want += st[1]
    with np.errstate(over="ignore", invalid="ignore"):
        got = scale_shift(X, st)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_a_strided_input_takes_numpys_passes():
    X = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]
    st = np.array([[2.0, 3.0, 4.0], [1.0, 1.0, 1.0]], np.float32)
    np.testing.assert_array_equal(scale_shift(X, st), X * st[0] + st[1])
