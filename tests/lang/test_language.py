"""The language accepts the documented forms (the checked graph's types and counts: tests/graph)."""

import time
from pathlib import Path

import pytest

import rnndsl
from rnndsl.lang.parser import lark_parser, parse, split_statements

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


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
