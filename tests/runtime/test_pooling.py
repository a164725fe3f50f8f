"""global_avg_pool, global_max_pool and flatten over a sequence's steps (issue 18, point 7):
Keras's GlobalAveragePooling1D (masked mean), GlobalMaxPooling1D and Flatten, checked
against Keras 3 on the same weights, against NumPy and by finite differences."""

import numpy as np
import pytest

import rnndsl
from gradcheck import check
from spec_helpers import check_case

# Keras 3.15.1 (torch backend): Input((4, 2)) -> Masking(0.0) -> LSTM(3, return_sequences=True)
# -> [GlobalAveragePooling1D, GlobalMaxPooling1D, Flatten] -> Concatenate -> Dense(2), these
# weights and inputs (sample 0 post-padded, sample 1 a masked step inside); predict() to 7 decimals
KERAS_X = [[[1.254, 0.777], [0.965, -1.082], [0.0, 0.0], [0.0, 0.0]], [[-0.437, -1.28], [0.0, 0.0], [-1.84, -0.146], [0.398, -2.162]], [[0.014, 0.255], [0.173, -1.27], [-0.311, -0.186], [0.433, -1.287]]]
KERAS_W = [[[0.1915, 0.496, -1.144, 0.112, -0.7635, -0.085, -0.34, 0.637, 0.0285, 0.3975, -0.5235, 0.2305], [0.711, -0.3535, 0.333, 0.2405, -0.0325, -0.6255, 0.1415, -0.135, 0.301, 0.3895, 0.7675, -0.4185]], [[0.4325, 0.3505, 0.0375, 0.306, 0.066, 0.3355, 0.196, -0.2815, 0.0535, 0.332, -0.426, -0.199], [0.6575, 0.1625, -0.3095, -0.2805, 0.7105, 0.236, -0.944, 0.263, -0.438, -0.0515, -0.7925, -0.136], [-0.378, -0.598, 0.461, 1.2415, 0.283, 0.0995, -0.6135, -0.1265, -0.3345, -0.9335, 0.2755, -0.0295]], [-0.363, -0.7485, 0.222, 0.675, 0.0475, -0.255, 0.3065, -0.489, -1.0905, 0.856, 0.8435, -0.151], [[0.034, 0.8335], [-0.5505, 0.06], [0.433, 0.869], [-0.402, -0.4075], [0.0945, -0.29], [0.773, -0.3755], [0.0935, 0.087], [-0.136, -0.842], [0.6615, 0.0985], [0.342, 0.296], [-0.2815, -0.2175], [-0.2195, 0.5775], [-0.262, -1.1245], [-0.159, -0.46], [0.4645, -0.329], [0.1975, -0.0315], [0.0835, -0.4515], [-0.2365, -0.0405]], [0.22, 0.192]]
KERAS_Y = [[-0.0286324, -0.0593098], [-0.1874132, 0.0098226], [-0.0853862, -0.0351417]]

POOLS = """input x: float[4, 2]
h = x | masking(0.0) | lstm(3, seq)
a = h | global_avg_pool()
m = h | global_max_pool()
f = h | flatten()
output concat(a, m, f) | dense(2)
"""


def test_equals_keras_on_the_same_weights():
    m = rnndsl.compile(POOLS, dtype="float64")
    m.set_weights([np.array(w) for w in KERAS_W])
    np.testing.assert_allclose(m.predict(np.array(KERAS_X)), np.array(KERAS_Y), atol=2e-7)
    assert [n.spec.keras_class for n in m.graph.layers[2:5]] == ["GlobalAveragePooling1D", "GlobalMaxPooling1D",
                                                                 "Flatten"]
    assert [n.out.keras_shape() for n in m.graph.layers[2:5]] == [(None, 3), (None, 3), (None, 12)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_values_equal_numpy(dtype):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 6, 3))
    ids = rng.integers(1, 9, (5, 6))
    ids[0, 3:] = 0
    ids[2, :] = 0                                  # every step masked: the average is 0
    ids[3, 1] = 0
    tol = 1e-6 if dtype == "float32" else 1e-14
    for kind, want in [("global_avg_pool", x.mean(axis=1)), ("global_max_pool", x.max(axis=1)),
                       ("flatten", x.reshape(5, 18))]:
        m = rnndsl.compile(f"input x: float[6, 3]\noutput x | {kind}()", dtype=dtype)
        np.testing.assert_allclose(m.predict(x), want, atol=tol)
    m = rnndsl.compile("input t: int[6]\noutput t | embed(9, 3, mask_zero=true) | global_avg_pool()", dtype=dtype)
    E = m.get_weights()[0].astype(np.float64)
    w = (ids != 0)[..., None]
    want = (E[ids] * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1)
    np.testing.assert_allclose(m.predict(ids), want, atol=tol)
    assert np.all(m.predict(ids)[2] == 0.0)


@pytest.mark.parametrize("body", [
    "global_avg_pool() | dense(2)",
    "global_max_pool() | dense(2)",
    "flatten() | dense(2)",
])
def test_gradients_equal_finite_differences(body):
    rng = np.random.default_rng(8)
    check(f"input x: float[4, 3]\noutput x | gru(3, seq) | {body}", rng.normal(size=(3, 4, 3)), np.array([0, 1, 1]))


def test_masked_average_gradients_equal_finite_differences():
    ids = np.array([[1, 2, 0, 0], [3, 0, 4, 5], [0, 0, 0, 0]])
    check("input t: int[4]\noutput t | embed(6, 3, mask_zero=true) | lstm(3, seq) | global_avg_pool() | dense(2)",
          ids, np.array([0, 1, 1]))


def test_zero_steps():
    x = np.zeros((2, 0, 3))
    m = rnndsl.compile("input x: float[?, 3]\noutput x | global_avg_pool()", dtype="float64")
    np.testing.assert_array_equal(m.predict(x), np.zeros((2, 3)))
    m = rnndsl.compile("input x: float[?, 3]\noutput x | global_max_pool()", dtype="float64")
    with pytest.raises(rnndsl.DataError, match="zero steps has no maximum"):
        m.predict(x)


@pytest.mark.parametrize("case", [
    ("input x: float[?, 3]\noutput x | flatten() | dense(2)", 2, "flatten", "flatten needs a fixed number of steps",
     "global_avg_pool"),
    ("input x: int[?]\noutput x | global_avg_pool()", 2, "global_avg_pool", "reads feature vectors", "embed"),
    ("input x: float[?, 3]\noutput x | lstm(4) | global_max_pool()", 2, "global_max_pool", "needs a sequence",
     "seq"),
])
def test_bad_uses_are_spec_errors_at_their_place(case):
    check_case(case)
