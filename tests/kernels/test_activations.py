"""Activation codes and the float32 fast paths."""

import numpy as np
import pytest

from rnndsl.kernels.cpu.activations import (
    ACTIVATIONS,
    KERNEL_OPTIONS,
    activation_code,
)

from .harness import act_and_derivative
from .reference import activation




@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_and_derivatives(name):
    code = activation_code(name)
    # avoid relu/hard_sigmoid kinks where the one-sided slopes differ
    x = np.linspace(-12, 12, 4001) + 1e-3
    ref = activation(name)(x)
    y64, d64 = act_and_derivative(x, code)
    np.testing.assert_allclose(y64, ref, rtol=1e-15, atol=1e-15)
    h = 1e-6
    slope = (activation(name)(x + h) - activation(name)(x - h)) / (2 * h)
    np.testing.assert_allclose(d64, slope, atol=1e-8)
    x32 = x.astype(np.float32)
    y32, d32 = act_and_derivative(x32, code)
    assert y32.dtype == d32.dtype == np.float32
    # ~3.7e-7 is the rational tanh's worst case; sigmoid halves it
    np.testing.assert_allclose(y32, activation(name)(x32.astype(np.float64)), rtol=1e-7, atol=4e-7)
    np.testing.assert_allclose(d32, d64, rtol=0, atol=2e-6)


def test_float32_tanh_saturates_and_keeps_sign():
    x = np.array([-1e30, -50.0, -9.5, 0.0, 1e-30, 9.5, 50.0, 1e30, np.inf, -np.inf], np.float32)
    y, _ = act_and_derivative(x, 0)
    assert np.all(np.abs(y) <= np.float32(1.0 + 3e-7))
    np.testing.assert_allclose(y, np.tanh(x.astype(np.float64)), atol=4e-7)
    assert y[3] == 0 and y[4] > 0


def test_activation_code():
    assert activation_code("tanh") == 0 and activation_code("HARD_SIGMOID") == 4
    assert activation_code(2) == 2 and activation_code(np.int32(1)) == 1
    for bad in ("swish", 7, True, 1.0):
        with pytest.raises(ValueError):
            activation_code(bad)


def test_kernel_options():
    assert KERNEL_OPTIONS == {"cache": True, "error_model": "numpy", "nogil": True}
