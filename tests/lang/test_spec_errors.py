"""Bad specs: each error names file:line:column, shows the line with a caret, and hints."""

import pytest

from spec_helpers import check_case, errors_of
from rnndsl.errors import SpecError


# (spec, line, culprit substring (column = where it starts), message part, hint part or None)
CASES = [
    ("x | lstm(64 dense(10)", 1, "dense", "unexpected 'dense'", "','"),
    ("input x: float[?, 3]\ny = x lstm(3)\noutput y", 2, "lstm", "expected '|'", "join the stages"),
    ("embed(10, 4) | lstm(8) | dens(2)", 1, "dens", "unknown layer 'dens'", "did you mean 'dense'"),
    ("embed(10, 4) | lstm(8, return_sequence=true)", 1, "return_sequence", "no option 'return_sequence'",
     "did you mean 'return_sequences'"),
    ('embed(10, 4) | lstm(units="a")', 1, '"a"', "units takes a whole number", None),
    ("embed(10, 4) | lstm(0)", 1, "0)", "units must be at least 1", None),
    ("embed(10, 4) | lstm(8, dropout=1.5)", 1, "1.5", "dropout is a fraction in [0, 1)", None),
    ("embed(10, 4) | lstm(8, go_backwards=1)", 1, "1)", "go_backwards takes true or false", None),
    ("embed(10, 4) | lstm(8, stateful=True)", 1, "True", "stateful takes true or false", "lower case"),
    ("embed(10, 4) | lstm(8, seqs)", 1, "seqs", "lstm has no flag 'seqs'", "did you mean 'seq'"),
    ("embed(10, 4) | lstm(8) | lstm(4)", 1, "lstm", "lstm needs a sequence", "add `seq`", 1),
    ("input x: int[?]\noutput x | lstm(8)", 2, "lstm", "takes a sequence of feature vectors", "embed"),
    ("input x: float[?, 3]\noutput x | embed(10, 4)", 2, "embed", "embed looks up token ids", "int[steps]"),
    ("input a: int[?]\ninput b: int[?]\nenc = a | embed(10, 4) | lstm(8, state)\n"
     "output b | embed(10, 4) | gru(8, initial_state=enc.state)", 4, "enc.state",
     "takes a state (h[8])", "same kind"),
    ("input a: int[?]\ninput b: int[?]\nenc = a | embed(10, 4) | lstm(64, state)\n"
     "output b | embed(10, 4) | lstm(32, initial_state=enc.state)", 4, "enc.state",
     "lstm(32) takes a state (h[32], c[32]), but enc.state is (h[64], c[64])", "units"),
    ("input a: int[?]\ninput b: int[?]\nenc = a | embed(10, 4) | lstm(8)\n"
     "output b | embed(10, 4) | lstm(8, initial_state=enc.state)", 4, "enc.state", "enc has no state port",
     "add `state`"),
    ("input x: float[?, 3]\noutput y | lstm(4)", 2, "y", "unknown name 'y'", None),
    ("input x: float[?, 3]\ninput z: float[?, 3]\noutput x | lstm(4)", 2, "z", "input 'z' is never used", None),
    ("input x: float[?, 3]\nh = x | lstm(4)\noutput x | gru(4)", 2, "h", "name 'h' is never used", None),
    ("input x: float[?, 3]\nh = x | lstm(4, seq)\nh = x | gru(4, seq)\noutput concat(h, h)", 3, "h",
     "'h' is already defined at line 2", None),
    ("input x: float[?, 3]\noutput h | dense(2)\nh = x | lstm(4)", 2, "h", "used before it is defined (line 3)",
     "move its definition"),
    ("input x: float[?, 3]\nh = h | lstm(4)\noutput h", 2, "h", "refers to itself", "cycle", 1),
    ("input x: float[?, 3]\nh = x | lstm(4)", 2, "h", "name 'h' is never used", None),
    ("input x: float[?, 3]\noutput x | lstm(4, seq) | repeat(3)", 2, "repeat", "already a sequence", None),
    ("input x: float[?, 3]\na = x | lstm(4, seq)\nb = x | lstm(5, seq)\noutput add(a, b)", 4, "add",
     "add needs equal feature sizes, got 4, 5", "concat"),
    ("input x: float[?, 3]\na = x | lstm(4)\noutput concat(a)", 3, "concat", "joins at least two inputs", None),
    ('input x: float[?, 3]\noutput x | bilstm(8, merge_mode="max")', 2, '"max"', "merge_mode does not accept 'max'",
     "one of"),
    ("input x: double[?, 3]\noutput x | lstm(4)", 1, "double", "unknown input type 'double'", None),
    ("input x: float[?, ?]\noutput x | lstm(4)", 1, "float", "feature size of a float input", None),
    ("input x: float[?, 3]\noutput x | lstm(4)\ntrain {\n  los = \"mse\"\n}", 4, "los",
     "unknown train setting 'los'", "did you mean 'loss'"),
    ("input x: float[?, 3]\noutput x | lstm(4)\ntrain {\n  loss = \"mse2\"\n}", 4, '"mse2"', "unknown loss 'mse2'",
     "did you mean 'mse'"),
    ("input x: float[?, 3]\noutput x | lstm(4)\ntrain {\n  optimizer = adam(lr=0.1)\n}", 4, "lr",
     "adam has no option 'lr'", None),
    ("input x: float[?, 3]\noutput x | bidirectional(dense(4))", 2, "dense", "wraps a recurrent layer", None),
    ("input x: float[?, 3]\noutput x | lstm()", 2, "lstm", "lstm needs units", "lstm(64)"),
    ("input x: float[?, 3]\noutput x | lstm(4) | dense(10, 20)", 2, "20", "takes at most 1 positional", None),
    ("input x: float[?, 3]\noutput x | lstm(4, seq, return_sequences=true)", 2, "return_sequences",
     "given twice", None),
    ("input x: float[?, 3]\noutput x | lstm(4", 2, None, "the statement ends", "not closed"),
    ("input x: float[?, 3]\noutput x -> lstm(4)", 2, "-", "unexpected character '-'", "'|'"),
    ("input x: float[?, 3]\noutput x | lstm(4) | dense(2, activation=\"softmx\")", 2, '"softmx"',
     "activation does not accept 'softmx'", "did you mean 'softmax'"),
    ("input x: float[?, 3]\nb = x | bilstm(4, merge_mode=none, seq)\noutput b | dense(2)", 3, "b",
     "two outputs", "b.forward"),
    # (`output h.state` alone makes the state's parts outputs: tests/runtime/test_states_in_out.py)
    ("input x: float[?, 3]\nh = x | lstm(4, state)\noutput h.state | dense(2)", 3, "h.state",
     "is a state; it can only go to initial_state", "output h.state"),
    ("lstm(8) | dense(2)", 1, "lstm", "has no input", "declare an input"),
    ("input x: int[?, 4]\noutput x | embed(10, 4)", 1, "int", "int[...] takes one dimension", None),
    ("input x: float[?, 3]\nh = x | lstm(4, state)\noutput x | lstm(4, initial_state=h.stat) | dense(1)\noutput h",
     3, "h.stat", "h has no port 'stat'", "did you mean 'state'"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[3][:40] for c in CASES])
def test_bad_spec(case):
    check_case(case)


def test_independent_errors_reported_together():
    text = ("input x: float[?, 3]\n"
            "a = x | lstm(4, dropout=2)\n"
            "b = x | lstmm(4)\n"
            "c = x | gru(4, seq) | gru(3,)\n"
            "output concat(a, c) | dense(2, activation=\"nope\")\n")
    diags = errors_of(text)
    lines = sorted(d.pos.line for d in diags)
    assert lines[:4] == [2, 3, 5, 5] or {2, 3, 5} <= set(lines)
    assert any("dropout" in d.message for d in diags)
    assert any("unknown layer 'lstmm'" in d.message for d in diags)
    assert any("activation" in d.message for d in diags)
    assert "errors" in str(errors_of(text) and SpecError(diags))


def test_syntax_errors_in_several_statements_all_reported():
    text = "input x: float[?, 3]\na = x | lstm(4\nb = x lstm(2)\noutput a | dense(1\n"
    diags = errors_of(text)
    assert [d.pos.line for d in diags] == [2, 3, 4]


def test_broken_layer_does_not_cascade():
    # One bad layer: no follow-up errors about its consumers.
    diags = errors_of("input x: float[?, 3]\noutput x | lstm(0) | dense(2) | dense(1)")
    assert len(diags) == 1
