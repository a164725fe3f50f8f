"""The checked graph: shape inference, state ports, weight layout and parameter counts equal Keras's."""

import pytest

import rnndsl
from rnndsl.types import StateType

ENC_DEC = """# encoder–decoder of the Keras guide: state passes through an initial_state edge
input src: int[?]
input tgt: int[?]
enc = src | embed(1000, 64) | lstm(64, state)
dec = tgt | embed(2000, 64) | lstm(64, initial_state=enc.state)
output dec | dense(10)
"""
MNIST = """input x: float[?, 28]
output x | lstm(64) | batchnorm() | dense(10)
"""
BIDI = """input x: float[5, 10]
output x | bidirectional(lstm(64, return_sequences=true)) | bilstm(32, merge_mode="sum") | dense(10, activation="softmax")
"""

COUNTS = [
    ("embed(1000,64) | bilstm(64, seq) | lstm(32) | dense(10)", 150_986, 0),
    ("embed(1000,64) | lstm(128) | dense(10)", 164_106, 0),
    ("embed(1000,64) | gru(256, seq) | simplernn(128) | dense(10)", 361_866, 0),
    ("embed(1000,64) | gru(256, reset_after=false)", 310_528, 0),
    (BIDI, 79_946, 0),
    (BIDI.replace(', merge_mode="sum"', ""), 80_266, 0),
    (ENC_DEC, 258_698, 0),
    (MNIST, 24_714, 128),
]


@pytest.mark.parametrize("text,total,non_trainable", COUNTS)
def test_parameter_counts_equal_keras(text, total, non_trainable):
    m = rnndsl.compile(text)
    assert m.count_params() == total
    assert m.graph.count_params(False) == non_trainable
    summary = m.summary_text()
    assert f"Total params: {total:,}" in summary
    assert f"Non-trainable params: {non_trainable:,}" in summary
    assert f"Trainable params: {total - non_trainable:,}" in summary


def test_output_shapes_follow_keras():
    m = rnndsl.compile("embed(1000,64) | bilstm(64, seq) | lstm(32) | dense(10)")
    shapes = [n.out.keras_shape() for n in m.graph.nodes]
    assert shapes == [(None, None), (None, None, 64), (None, None, 128), (None, 32), (None, 10)]
    m = rnndsl.compile(BIDI)
    assert [n.out.keras_shape() for n in m.graph.layers] == [(None, 5, 128), (None, 32), (None, 10)]


def test_state_ports_are_typed():
    m = rnndsl.compile(ENC_DEC)
    enc = next(n for n in m.graph.nodes if n.name == "enc")
    dec = next(n for n in m.graph.nodes if n.name == "dec")
    assert enc.state == StateType("lstm", (("h", 64), ("c", 64)))
    assert dec.initial_state.node == enc.id and dec.initial_state.port == "state"
    g = rnndsl.compile("input x: float[?, 3]\nb = x | bigru(5, state)\n"
                       "output x | bigru(5, initial_state=b.state)\noutput b").graph
    bi = g.nodes[1]
    assert [n for n, _ in bi.state.parts] == ["forward_h", "backward_h"]


def test_weight_layout_names_and_shapes():
    m = rnndsl.compile("input x: float[?, 3]\noutput x | bilstm(4) | dense(2)")
    names = [(w.name, w.shape) for _, w in m.graph.weight_specs()]
    assert names == [
        ("bidirectional/forward_lstm/kernel", (3, 16)), ("bidirectional/forward_lstm/recurrent_kernel", (4, 16)),
        ("bidirectional/forward_lstm/bias", (16,)),
        ("bidirectional/backward_lstm/kernel", (3, 16)), ("bidirectional/backward_lstm/recurrent_kernel", (4, 16)),
        ("bidirectional/backward_lstm/bias", (16,)),
        ("dense/kernel", (8, 2)), ("dense/bias", (2,))]
    gru = rnndsl.compile("input x: float[?, 3]\noutput x | gru(4)").graph.layers[0]
    assert [w.shape for w in gru.weights] == [(3, 12), (4, 12), (2, 12)]


def test_mask_travels_through_per_step_layers():
    g = rnndsl.compile("embed(100, 8, mask_zero=true) | dense(4) | lstm(3, seq) | lstm(2)").graph
    assert [n.out.masked for n in g.layers] == [True, True, True, False]
