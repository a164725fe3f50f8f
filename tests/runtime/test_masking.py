"""masking(mask_value): Keras's Masking layer on float sequences (issue 18, point 2).

A step whose features all equal mask_value is padding: recurrent layers skip it and carry
their state, per-step layers pass the mask on, the layer's output is zero there. Checked
against Keras 3 on the same weights, against the same model run on the trimmed sequences,
and by finite differences."""

import numpy as np
import pytest

import rnndsl
from gradcheck import numerical_grad, rel_err
from spec_helpers import check_case

# Keras 3.15.1 (torch backend): Input((None, 2)) -> Masking(0.0) -> LSTM(3, return_sequences=True)
# -> Dense(2), these weights and inputs (sample 0 post-padded, sample 1 a masked step inside,
# sample 2 one feature at the value, not masked); its predict() rounded to 7 decimals
KERAS_X = [[[-0.432, -1.13], [0.674, -1.108], [2.014, 0.924], [0.0, 0.0], [0.0, 0.0]], [[-0.923, 1.065], [0.0, 0.0], [1.092, 0.507], [1.076, -0.526], [-0.002, 0.395]], [[0.02, 0.017], [-0.768, 0.126], [0.0, -0.061], [-0.015, 0.696], [-0.659, 0.697]]]
KERAS_W = [[[-0.0765, 0.028, -0.0955, 0.4495, 0.3805, 0.003, -0.2195, 0.928, 0.2695, -0.573, -0.002, -0.056], [0.361, -0.1135, -0.3695, 0.669, -0.9965, -0.707, -0.2615, -0.257, -0.0635, -0.0055, 0.499, -0.76]], [[1.492, 0.3055, -0.3865, -0.2855, -0.2415, -1.116, 0.2005, -0.5555, -0.271, -0.548, -0.299, 0.012], [-0.643, 0.7585, -0.6375, -0.249, -0.013, 0.3105, 0.1055, 0.0155, 0.2425, 0.181, -0.4905, 0.2835], [-0.333, -0.584, -0.058, -0.264, 0.1075, 0.132, -0.3175, 0.1415, -0.0475, -0.8315, 0.7545, -0.0215]], [-0.096, 0.4065, -0.722, -0.3655, 0.4445, -0.98, -0.4515, 0.8035, 0.275, -0.515, 0.0025, 0.3475], [[-0.419, -0.0135], [0.1525, -0.0005], [0.7435, 0.0365]], [-0.0965, 0.0935]]
KERAS_Y = [[[-0.0158641, 0.0963421], [0.0925347, 0.1004278], [0.0583776, 0.0966519], [0.0583776, 0.0966519], [0.0583776, 0.0966519]], [[-0.0583917, 0.0952754], [-0.0583917, 0.0952754], [0.037995, 0.0973934], [0.1150235, 0.1006734], [0.0810108, 0.0980889]], [[0.0026621, 0.0962964], [-0.0058291, 0.0961533], [0.0403795, 0.0974103], [0.0480097, 0.0970202], [0.026381, 0.0969445]]]


def test_equals_keras_on_the_same_weights():
    m = rnndsl.compile("input x: float[?, 2]\noutput x | masking(0.0) | lstm(3, seq) | dense(2)", dtype="float64")
    m.set_weights([np.array(w) for w in KERAS_W])
    np.testing.assert_allclose(m.predict(np.array(KERAS_X)), np.array(KERAS_Y), atol=2e-7)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layer", ["lstm(5)", "gru(5)", "simplernn(5)", "gru(5, reset_after=false)",
                                   "bilstm(3)", "lstm(5, go_backwards=true)"])
def test_masked_steps_are_skipped(layer, dtype):
    """Padding at the end, and a step inside, change nothing against the sequence without them."""
    rng = np.random.default_rng(7)
    value = -1.5
    m = rnndsl.compile(f"input x: float[?, 3]\noutput x | masking({value}) | {layer} | dense(2)", dtype=dtype, seed=3)
    x = rng.normal(size=(4, 6, 3))
    lengths = [6, 4, 1, 5]
    padded = np.full_like(x, value)
    for b, n in enumerate(lengths):
        padded[b, :n] = x[b, :n]
    padded[0, 2] = value                      # a padding step inside the first sequence
    got = m.predict(padded)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for b, n in enumerate(lengths):
        steps = [t for t in range(n) if not (b == 0 and t == 2)]
        np.testing.assert_allclose(got[b], m.predict(x[b:b + 1, steps])[0], atol=tol)


def test_the_output_is_zero_at_masked_steps_and_x_elsewhere():
    m = rnndsl.compile("input x: float[?, 2]\noutput x | masking(mask_value=0.5)", dtype="float64")
    x = np.array([[[0.5, 0.5], [0.5, 1.0], [2.0, 3.0]], [[1.0, 0.5], [0.5, 0.5], [0.5, 0.5]]])
    want = x.copy()
    want[0, 0] = want[1, 1] = want[1, 2] = 0.0
    np.testing.assert_array_equal(m.predict(x), want)


def test_the_mask_passes_through_dense_dropout_and_batchnorm():
    text = ("input x: float[?, 3]\noutput x | masking() | dense(4) | dropout(0.3) | batchnorm() | lstm(3, seq) "
            "| lstm(2)")
    m = rnndsl.compile(text, dtype="float64", seed=1)
    assert [n.out.masked for n in m.graph.layers] == [True, True, True, True, True, False]
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 5, 3))
    padded = x.copy()
    padded[1, 3:] = 0.0
    np.testing.assert_allclose(m.predict(padded)[1], m.predict(x[1:2, :3])[0], atol=1e-12)


def test_loss_ignores_masked_steps():
    """A sequence output's masked steps weigh nothing in the loss (as with mask_zero)."""
    m = rnndsl.compile("input x: float[?, 2]\noutput x | masking() | lstm(3, seq) | dense(2)", dtype="float64")
    x = np.random.default_rng(4).normal(size=(1, 4, 2))
    x[0, 2:] = 0.0
    y = np.array([[1, 0, 0, 1]])
    y2 = np.array([[1, 0, 1, 0]])                 # differs only where masked
    l1 = m.loss_and_gradients(x, y, loss="sparse_categorical_crossentropy", from_logits=True)[0]
    l2 = m.loss_and_gradients(x, y2, loss="sparse_categorical_crossentropy", from_logits=True)[0]
    assert l1 == l2


def test_gradients_equal_finite_differences():
    """Weights by central differences; the input's gradient too where a step is real (moving a
    padded step's value by eps would make it a real step), and exactly zero where it is not."""
    m = rnndsl.compile("input x: float[?, 3]\noutput x | masking(0.25) | gru(4, seq) | lstm(3) | dense(2)",
                       dtype="float64", seed=5)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 5, 3))
    y = np.array([0, 1, 1])
    x[0, 4] = x[1, 1] = x[2, 2:] = 0.25

    def loss():
        return m.loss_and_gradients(x, y, loss="sparse_categorical_crossentropy", from_logits=True)[0]

    _, grads, (dx,) = m.loss_and_gradients(x, y, loss="sparse_categorical_crossentropy", from_logits=True,
                                            return_input_grads=True)
    for name, p, g in zip(m.weight_names(), m.executor.params, grads):
        assert rel_err(numerical_grad(loss, p), g) < 1e-6, name
    padded = np.all(x == 0.25, axis=-1)
    assert np.all(dx[padded] == 0.0)
    real = np.flatnonzero(~padded.reshape(-1))
    flat = x.reshape(-1, 3)
    num = np.zeros_like(flat)
    for r in real[::2]:
        for f in range(3):
            old = flat[r, f]
            flat[r, f] = old + 1e-6
            lp = loss()
            flat[r, f] = old - 1e-6
            lm = loss()
            flat[r, f] = old
            num[r, f] = (lp - lm) / 2e-6
    got = dx.reshape(-1, 3)
    assert rel_err(num[real[::2]], got[real[::2]]) < 1e-6


@pytest.mark.parametrize("case", [
    ("input x: int[?]\noutput x | masking() | lstm(3)", 2, "masking", "masking reads feature vectors", "mask_zero"),
    ("input x: float[3]\noutput x | masking() | dense(2)", 2, "masking", "masking needs a sequence", None),
    ("input x: float[?, 3]\noutput x | masking(mask_value=true) | lstm(3)", 2, "true", "mask_value takes a number",
     None),
])
def test_bad_uses_are_spec_errors_at_their_place(case):
    check_case(case)
