"""States in and out of a model (issue 18, point 1): `output h, c = enc.state` makes a state's
parts model outputs, `initial_state=[h0, c0]` starts a layer from input vectors; gradients
flow through both. Checked against Keras 3 (return_state, initial_state from Inputs), by
finite differences, on the CPU and (tests/cuda_engine) the CUDA engine."""

import numpy as np
import pytest

import rnndsl
from gradcheck import check
from spec_helpers import check_case

# Keras 3.15.1 (torch backend): x (None, 3), h0 (4,), c0 (4,) -> LSTM(4, return_state=True)(x,
# initial_state=[h0, c0]) -> (out, h, c); Dense(2)(out); model outputs [y, h, c]; these weights
# and inputs; predict() rounded to 7 decimals
KERAS_IN = [[[[1.446, 0.102, 0.327], [1.136, 0.824, 0.579], [-0.379, -1.019, 0.376], [-0.512, 0.827, 0.211]], [[-0.745, 0.268, 0.709], [0.178, -0.783, 0.262], [0.357, 0.824, 0.722], [-0.908, -0.498, 0.606]]], [[-1.698, 0.777, -0.839, -0.422], [1.443, -0.064, -0.302, 0.281]], [[-0.094, -0.626, 0.25, 2.137], [0.92, 0.438, 0.257, 0.798]]]
KERAS_W = [[[0.312, -0.4285, 0.2535, 0.026, 0.858, -0.1055, 0.626, -0.578, 0.1565, -0.3555, -0.4385, 0.3925, -0.4915, -0.069, -0.351, 0.198], [0.139, -1.0825, 0.3505, -0.3045, 1.004, 0.442, 0.4785, -1.1765, 0.877, 0.0335, -0.65, 0.166, 0.6495, -0.771, 0.5345, -0.147], [-0.2655, -0.195, -0.393, 0.1095, 0.1335, 0.5205, 0.6955, -0.1465, 0.537, -0.5575, 0.3215, -0.526, -0.265, 0.3045, -0.351, 0.248]], [[-0.7015, -0.338, 0.2675, 0.738, -0.556, 0.773, 0.134, 1.1055, -0.142, -0.2405, 0.163, -0.52, 0.066, -0.0265, 0.648, 0.1705], [-0.6045, -0.6325, -0.4615, -0.9975, -1.04, 1.0325, -0.401, 0.631, -0.3575, -0.1935, -0.829, 0.6215, -0.1875, 0.8195, -0.3385, 0.6335], [0.733, -0.7305, 0.2275, -0.5005, -0.562, 0.0625, 0.4015, 0.6655, -0.165, 0.489, 0.278, -0.004, -0.464, 0.0205, 1.7315, -0.4595], [-0.084, -0.4405, 0.677, 0.889, 0.6595, 0.976, -0.0395, 0.825, -0.4095, 0.765, 0.7325, -0.312, 0.463, -0.5375, -0.698, -0.694]], [-0.552, -0.571, -0.0615, 0.857, -0.134, -0.429, 0.3295, -0.1315, 0.0365, 0.1875, 0.2075, -0.3505, -0.1325, 0.454, -0.197, -0.13], [[0.1425, 0.1995], [-0.168, 0.27], [-0.0135, -0.6635], [0.3135, -0.4435]], [1.5195, 0.1355]]
KERAS_OUT = [[[1.4836719, 0.2311689], [1.4100953, 0.1595697]], [[0.1570285, -0.0211496, 0.0253664, -0.1959023], [-0.0015864, 0.0359697, 0.1922492, -0.3207029]], [[0.265703, -0.0419616, 0.0374524, -0.4537832], [-0.003717, 0.0473211, 0.3881629, -0.7830687]]]

TEXT = """input x: float[?, 3]
input h0: float[4]
input c0: float[4]
enc = x | lstm(4, state, initial_state=[h0, c0])
output y = enc | dense(2)
output h, c = enc.state
"""


def test_equals_keras_on_the_same_weights():
    m = rnndsl.compile(TEXT, dtype="float64")
    assert m.input_names == ["x", "h0", "c0"] and m.output_names == ["y", "h", "c"]
    m.set_weights([np.array(w) for w in KERAS_W])
    got = m.predict([np.array(a) for a in KERAS_IN])
    for g, want in zip(got, KERAS_OUT):
        np.testing.assert_allclose(g, np.array(want), atol=2e-7)
    assert "enc (LSTM)" in m.summary_text() and "x, [h0, c0]" in m.summary_text()
    assert m.count_params() == 4 * 4 * (3 + 4 + 1) + 4 * 2 + 2


def test_unnamed_state_outputs_take_the_parts_names():
    m = rnndsl.compile("input x: float[?, 3]\nenc = x | bigru(2, state)\noutput enc\noutput enc.state")
    assert m.output_names == ["enc", "enc_forward_h", "enc_backward_h"]      # Keras's return_state order
    out = m.predict(np.ones((2, 5, 3), np.float32))
    assert [o.shape for o in out] == [(2, 4), (2, 2), (2, 2)]
    np.testing.assert_array_equal(out[1], out[0][:, :2])                      # the forward half's last h


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_state_out_and_back_in_equals_the_state_edge(dtype):
    """An encoder's state read out and fed back through input vectors gives what the state
    edge gives within one model: the step-by-step decoding a seq2seq needs."""
    one = rnndsl.compile("input a: float[?, 3]\ninput b: float[?, 2]\nenc = a | lstm(4, state)\n"
                         "output b | lstm(4, initial_state=enc.state) | dense(2)", dtype=dtype, seed=3)
    enc = rnndsl.compile("input a: float[?, 3]\nenc = a | lstm(4, state)\noutput h, c = enc.state", dtype=dtype)
    dec = rnndsl.compile("input b: float[?, 2]\ninput h: float[4]\ninput c: float[4]\n"
                         "output b | lstm(4, initial_state=[h, c]) | dense(2)", dtype=dtype)
    w = one.get_weights()
    enc.set_weights(w[:3])
    dec.set_weights(w[3:])
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 6, 3)), rng.normal(size=(3, 4, 2))
    h, c = enc.predict(a)
    np.testing.assert_allclose(dec.predict([b, h, c]), one.predict([a, b]), atol=1e-6 if dtype == "float32" else 1e-13)


def test_gradients_through_state_outputs_and_inputs_equal_finite_differences():
    rng = np.random.default_rng(2)
    text = ("input x: float[?, 3]\ninput h0: float[3]\nb = x | bidirectional(gru(3, seq, state), "
            "backward_layer=lstm(3, seq, state, go_backwards=true), initial_state=[h0, h0, h0])\n"
            "s = b | simplernn(2)\noutput fh, bh, bc = b.state\noutput s")
    xs = [rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 3))]
    ys = [rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 2))]
    check(text, xs, ys, loss="mse", from_logits=False)


@pytest.mark.parametrize("case", [
    ("input x: float[?, 3]\nenc = x | lstm(4, state)\noutput h = enc.state", 3, "enc.state",
     "enc.state has 2 part(s) (h[4], c[4]), but 1 name(s) are given", "output h, c = enc.state"),
    ("input x: float[?, 3]\nenc = x | lstm(4, state)\noutput a, b = enc", 3, "b",
     "several names go with a state's parts", None),
    ("input x: float[?, 3]\ninput h0: float[4]\noutput x | lstm(4, initial_state=[h0])", 3, "[",
     "lstm(4) takes a state (h[4], c[4]): 2 vector(s) of those widths, but gets (4)", "[h, c]"),
    ("input x: float[?, 3]\ninput h0: float[5]\noutput x | gru(4, initial_state=[h0])", 3, "[",
     "gru(4) takes a state (h[4]): 1 vector(s) of those widths, but gets (5)", None),
    ("input x: float[?, 3]\noutput x | gru(3, initial_state=[x])", 2, "x]",
     "a state's part is a vector (batch, units), but x is a sequence", "float[units]"),
    ("input x: float[?, 3]\nenc = x | lstm(4)\noutput enc.state", 3, "enc.state", "enc has no state port",
     "add `state`"),
])
def test_bad_states_are_spec_errors_at_their_place(case):
    check_case(case)
