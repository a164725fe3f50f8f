"""The language accepts the documented forms, and shape inference and counts equal Keras's."""

import time
from pathlib import Path

import pytest

import rnndsl
from rnndsl.types import StateType
from rnndsl.lang.parser import lark_parser, parse, split_statements

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

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


def test_language_forms():
    text = """
    # several inputs, fan-out, fan-in, keyword and positional arguments, flags
    input a: float[?, 8]
    input b: float[?, 8]
    fa = a | gru(16, seq, go_backwards=true, dropout=0.1, recurrent_dropout=0.2)
    fb = b | simplernn(16, return_sequences=true, activation=relu)
    both = concat(fa, fb)
         | lstm(8, seq, use_bias=false, recurrent_activation="hard_sigmoid")
    summed = add(fa, fb) | dropout(0.5) | lstm(8)
    output logits = both | dense(3, activation="softmax")
    output summed | repeat(4) | bigru(2, merge_mode=ave, seq) | dense(1)
    train {
      data = sine(n=100, length=8)
      loss = "mse", optimizer = sgd(learning_rate=0.1, momentum=0.9, clipnorm=1.0)
      batch_size = 16; epochs = 2
      metrics = []
      validation_split = 0.1
    }
    """
    m = rnndsl.compile(text)
    assert m.input_names == ["a", "b"]
    assert m.output_names == ["logits", "dense"]
    assert m.graph.train["optimizer"] == {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9, "clipnorm": 1.0}
    assert m.graph.train["epochs"] == 2 and m.graph.train["loss"] == "mse"
    gru = next(n for n in m.graph.nodes if n.name == "fa")
    assert gru.opts["go_backwards"] and gru.opts["return_sequences"] and gru.opts["recurrent_dropout"] == 0.2
    assert m.graph.layers[-1].out.keras_shape() == (None, 4, 1)


def test_mask_travels_through_per_step_layers():
    g = rnndsl.compile("embed(100, 8, mask_zero=true) | dense(4) | lstm(3, seq) | lstm(2)").graph
    assert [n.out.masked for n in g.layers] == [True, True, True, False]


def test_statement_splitting_keeps_continuations():
    text = "a = x\n  | lstm(3)\nb = y |\n  gru(2)\nc = f(1,\n  2)\n"
    spans = split_statements(text)
    assert [text[s:e].split()[0] for s, e in spans] == ["a", "b", "c"]


def test_parser_built_once():
    assert lark_parser() is lark_parser()


def test_200_layer_spec_checks_fast():
    text = "input x: float[?, 16]\noutput x" + " | lstm(16, seq)" * 199 + " | dense(2)\n"
    parse("input x: float[?, 3]\noutput x | lstm(3)")  # parser warm
    t = time.perf_counter()
    m = rnndsl.compile(text)
    elapsed = time.perf_counter() - t
    assert len(m.graph.layers) == 200
    print(f"200-layer spec checked in {elapsed * 1000:.1f} ms")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.rnn")), ids=lambda p: p.name)
def test_examples_check(path):
    text = path.read_text()
    assert text.lstrip().startswith("#"), "each example starts with a comment saying what it is"
    rnndsl.load(path)
