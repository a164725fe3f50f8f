"""bidirectional(layer, backward_layer=...): Keras's Bidirectional with a backward layer of
its own (issue 18, point 3), checked against Keras 3 on the same weights and by finite
differences; Keras's rules for the pair are spec errors at the argument."""

import numpy as np
import pytest

import rnndsl
from gradcheck import check
from spec_helpers import check_case

# Keras 3.15.1 (torch backend): Input((None, 2)) -> Masking(0.0) -> Bidirectional(LSTM(3,
# return_sequences=True), backward_layer=GRU(3, return_sequences=True, go_backwards=True))
# -> Dense(2); these weights (Keras's order: the LSTM's, the GRU's, the dense's) and inputs
# (sample 0 post-padded); predict() rounded to 7 decimals. Keras names the weights
# bidirectional/forward_lstm/..., bidirectional/gru/...; 135 parameters in the layer.
KERAS_X = [[[0.398, -0.563], [0.589, 0.042], [-1.571, 1.002], [0.0, 0.0]], [[1.837, 0.268], [-1.074, -0.681], [1.017, -1.457], [0.264, 0.375]], [[-1.15, 0.169], [0.556, -0.773], [-0.48, 0.544], [-1.299, -0.88]]]
KERAS_W = [[[0.477, 0.043, -0.708, 0.0055, 0.9705, -0.7565, 0.408, 0.3795, -0.0885, 0.3025, -0.337, 0.7725], [0.86, -0.44, -0.107, 0.066, -0.3125, 0.1765, -0.519, 0.2885, -0.1505, -0.0245, 0.2355, 0.463]], [[-0.492, 0.3945, 0.4395, -0.0575, 0.769, -0.3825, -0.2725, 0.191, -0.34, 0.6965, 0.099, 0.86], [-0.527, -0.4745, 0.668, -0.524, 0.538, -0.4035, 0.1325, 0.583, -0.0295, -0.5735, -0.2435, 0.5695], [0.0975, 0.3545, 0.044, 0.1445, -0.0935, -0.5065, 0.2735, 0.093, -0.989, 0.005, 0.488, 0.968]], [-0.6755, 0.0585, 0.2805, 0.3805, -0.347, 0.2575, -0.207, -0.021, -0.265, 0.1555, -0.193, 0.153], [[-0.0405, 0.46, 0.843, -0.0375, -0.365, -0.1135, -0.265, -0.828, 0.014], [-0.244, 0.4525, -0.0625, 0.465, 0.3855, -0.2475, -0.163, -0.2615, -0.226]], [[0.411, -0.259, -0.21, -0.403, 0.699, -0.1815, -0.079, -0.435, 0.1115], [-0.3965, -0.3395, -1.025, -0.829, 0.085, 0.37, -0.8415, 0.071, 0.0825], [1.511, -0.507, -0.346, -0.5365, 0.3995, 0.5105, -0.147, 0.746, 1.0395]], [[-0.244, 0.2645, -0.107, -0.327, -0.241, -0.127, -0.651, -0.0505, 0.392], [-0.4775, -0.2675, -0.4605, 0.184, -0.057, 0.46, -0.162, -0.7385, 0.278]], [[-0.1535, 0.567], [0.3545, -1.3175], [-0.9905, 0.011], [-0.3805, -1.1255], [-0.272, 0.64], [0.313, -0.4475]], [0.1385, 0.5025]]
KERAS_Y = [[[0.6676066, 0.8014858], [0.6732537, 0.8413115], [0.3587602, 0.9402246], [0.1385, 0.5025]], [[0.7338805, 0.8061128], [0.3753955, 1.0024284], [0.5897678, 0.8112472], [0.6042519, 0.7708752]], [[0.4720608, 1.0892159], [0.6516514, 0.8081801], [0.5634563, 0.8717419], [0.1695621, 0.9666255]]]

MIXED = "bidirectional(lstm(3, seq), backward_layer=gru(3, seq, go_backwards=true))"


def test_equals_keras_on_the_same_weights():
    m = rnndsl.compile(f"input x: float[?, 2]\noutput x | masking(0.0) | {MIXED} | dense(2)", dtype="float64")
    m.set_weights([np.array(w) for w in KERAS_W])
    np.testing.assert_allclose(m.predict(np.array(KERAS_X)), np.array(KERAS_Y), atol=2e-7)
    bi = m.graph.layers[1]
    assert bi.spec.display_name(bi) == "Bidirectional(LSTM, GRU)"
    assert m.graph.count_params() == 135 + 14
    assert m.weight_names()[:6] == ["bidirectional/forward_lstm/kernel", "bidirectional/forward_lstm/recurrent_kernel",
                                    "bidirectional/forward_lstm/bias", "bidirectional/gru/kernel",
                                    "bidirectional/gru/recurrent_kernel", "bidirectional/gru/bias"]


def test_without_backward_layer_nothing_changes():
    """The default backward half is the forward layer's configuration: the same weights and
    outputs as a backward_layer equal to it."""
    x = np.random.default_rng(1).normal(size=(3, 5, 2))
    a = rnndsl.compile("input x: float[?, 2]\noutput x | bidirectional(gru(3, seq))", dtype="float64", seed=4)
    b = rnndsl.compile("input x: float[?, 2]\noutput x | bidirectional(gru(3, seq), "
                       "backward_layer=gru(3, seq, go_backwards=true))", dtype="float64", seed=4)
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


@pytest.mark.parametrize("body", [
    "bidirectional(lstm(3), backward_layer=gru(2, go_backwards=true, reset_after=false)) | dense(2)",
    "bidirectional(simplernn(2, seq), backward_layer=lstm(2, seq, go_backwards=true), merge_mode=ave) | lstm(2)"
    " | dense(2)",
    "bidirectional(gru(2, seq, go_backwards=true), backward_layer=lstm(3, seq), merge_mode=none) | lstm(2)"
    " | dense(2)",
])
def test_gradients_equal_finite_differences(body):
    rng = np.random.default_rng(5)
    text = f"input x: float[?, 3]\noutput x | {body}"
    if "merge_mode=none" in text:
        text = ("input x: float[?, 3]\nb = x | bidirectional(gru(2, seq, go_backwards=true), "
                "backward_layer=lstm(3, seq), merge_mode=none)\nf = b.forward | lstm(2)\ng = b.backward | lstm(2)\n"
                "output concat(f, g) | dense(2)")
    check(text, rng.normal(size=(3, 4, 3)), np.array([0, 1, 1]))


def test_states_of_two_kinds_in_and_out():
    """The state port: the forward layer's parts, then the backward layer's; an initial state
    of that shape goes back through the edge (gradients included)."""
    text = ("input a: float[?, 2]\ninput b: float[?, 2]\n"
            "enc = a | bidirectional(lstm(3, state), backward_layer=gru(3, state, go_backwards=true))\n"
            "output b | bidirectional(lstm(3), backward_layer=gru(3, go_backwards=true), "
            "initial_state=enc.state) | dense(2)")
    m = rnndsl.compile(text, dtype="float64")
    enc = m.graph.layers[0]
    assert [n for n, _ in enc.state.parts] == ["forward_h", "forward_c", "backward_h"]
    rng = np.random.default_rng(2)
    check(text, [rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 4, 2))], np.array([1, 0]))


@pytest.mark.parametrize("case", [
    ("input x: float[?, 2]\noutput x | bidirectional(lstm(3), backward_layer=gru(3))", 2, "gru",
     "the backward layer must read the other way: give it go_backwards=true", "go_backwards differ"),
    ("input x: float[?, 2]\noutput x | bidirectional(lstm(3, seq), backward_layer=gru(3, go_backwards=true))", 2,
     "gru", "the backward layer's return_sequences is false, the forward layer's true", "same return_sequences"),
    ("input x: float[?, 2]\noutput x | bidirectional(lstm(3), backward_layer=gru(2, go_backwards=true), "
     "merge_mode=sum)", 2, "gru", "merge_mode=sum needs both layers' units equal, got 3 and 2", "merge_mode=concat"),
    ("input x: float[?, 2]\noutput x | bidirectional(lstm(3), backward_layer=dense(3))", 2, "dense",
     "bidirectional wraps a recurrent layer, not 'dense'", None),
])
def test_keras_rules_are_spec_errors_at_the_backward_layer(case):
    check_case(case)
