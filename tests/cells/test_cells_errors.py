"""Bad cell definitions and uses: each error names file:line:column, shows the line with a caret, and hints."""

import pytest

from spec_helpers import check_case, errors_of

USE = "input x: float[?, 4]\noutput x | rnn({}(8)) | dense(1)\n"


def cell(body: str, head: str = "c(units)", name: str = "c") -> str:
    return f"cell {head} {{\n{body}\n}}\n" + USE.format(name)


# (spec, line, culprit substring (column = where it starts; nth occurrence), message part, hint part or None)
CASES = [
    # the six of the issue
    (cell("  f = sigmod(x @ W + h @ U)\n  h = f * h"), 2, "sigmod", "unknown function 'sigmod'",
     "did you mean 'sigmoid'"),
    (cell("  h = tanh(x + h @ U)"), 2, "x + h", "the terms of '+' do not match: the left has the features of "
     "input x, the right units", "project the input"),
    (cell("  h = tanh(x @ W + h @ U)", "c(units) init(bz = ones)"), 1, "bz", "weight 'bz' is never used", None),
    (cell("  g = sigmoid(x @ Wg)\n  h = tanh(x @ W + h @ U)"), 2, "g", "'g' is never used", "remove the line"),
    (cell("  h = tanh(x @ W + h @ U)", "c(units) state(h, m)"), 1, "m)", "state 'm' is never updated",
     "`m = ...`"),
    (cell("  h = tanh(x @ W + h @ U)\n  h = h * 2"), 3, "h", "state 'h' is updated twice (first at line 2)",
     "one new value per step"),
    (cell("  h = tanh(x @ W + g)\n  g = sigmoid(h @ U)"), 2, "g", "'g' is used before it is defined (line 3)",
     "state(h, g)"),
    # more
    (cell("  q = tanh(x @ W)", "c(units)"), 1, "c(", "state 'h' is never updated", "state(...)"),
    (cell("  f = tanh(x @ W)\n  f = f * 2\n  h = f"), 3, "f", "'f' is assigned twice", None),
    (cell("  h = tanh(x @ h)"), 2, "h)", "the right side of @ must be a weight", "value @ W"),
    (cell("  h = tanh(b @ W + x @ V)"), 2, "b @", "the left side of @ must depend on an input or a state", None),
    (cell("  h = tanh(x @ W + W)"), 2, "W)", "weight 'W' is a matrix (after @) at line 2", None),
    (cell("  h = tanh(x @ W + h @ W)"), 2, "h @ W", "weight 'W' multiplies units here but the features of input x",
     "different names"),
    (cell("  h = tanh(x @ W) * sigmoid"), 2, "sigmoid", "'sigmoid' is a function", "sigmoid(...)"),
    (cell("  h = tanh(x @ W, h)"), 2, "tanh", "tanh takes one argument, got 2", None),
    (cell("  x = tanh(x @ W)\n  h = x"), 2, "x", "is an input of the cell", None),
    (cell("  h = x * 2"), 2, "h", "state 'h' has units features, but its new value has the features of input x",
     "@ W"),
    (cell("  h = tanh(a @ W + h @ U)", "c(units) inputs(a, b)").replace("rnn(c(8))", "rnn(c(8), x)"), 1, "b)",
     "input 'b' is never used", None),
    (cell("  h = tanh(x @ W)", "c(units) stat(h)"), 1, "stat", "unknown cell clause 'stat'", "did you mean 'state'"),
    (cell("  h = tanh(x @ W)", "c(units) init(W = one)"), 1, "one", "unknown initializer 'one'",
     "did you mean 'ones'"),
    (cell("  h = tanh(x @ W)", "c(units, n)"), 1, "n)", "a cell takes one parameter, its units", None),
    (cell("  h = tanh(x @ W + h @ U +)"), 2, ")", "unexpected ')'", None),
    ("input x: float[?, 4]\ncell c(units) {\n  h = tanh(x @ W)\n", 3, None, "the statement ends", "cell body"),
    (cell("  h = tanh(x @ W)", "lstm(units)", "lstm"), 1, "lstm", "'lstm' is a layer; a cell needs another name",
     "mylstm"),
    # reductions and the output (issue 18, point 4)
    (cell("  a = x @ W\n  h = tanh(a - mean(mean(a)) + h @ U)"), 3, "mean(a)",
     "mean(...) of one value per row: its argument is reduced already", "runs over units"),
    (cell("  h = tanh(x @ W + h @ U) * max(g)"), 2, "g)", "max(...) of weights or numbers alone",
     "reduce a value of the step"),
    (cell("  h = tanh(x @ W + sum(2))"), 2, "2)", "sum(...) of weights or numbers alone", None),
    (cell("  h = tanh(var(x @ W) @ V)"), 2, "var(", "the left side of @ is one value per row",
     "element-wise"),
    (cell("  h = mean(x @ W + h @ U)"), 2, "h", "state 'h' has units features, but its new value has one value "
     "per row (a reduction)", "a - mean(a)"),
    (cell("  h = tanh(x @ W + h @ U)\n  output = mean(h)"), 3, "output", "the output has units features, but its "
     "new value has one value per row", None),
    (cell("  h = tanh(x @ W + h @ U)\n  output = x * 2"), 3, "output", "the output has units features, but its "
     "new value has the features of input x", "@ W"),
    (cell("  h = tanh(x @ W + h @ U)\n  output = h\n  output = h * 2"), 4, "output",
     "'output' is assigned twice (first at line 3)", None),
    (cell("  h = tanh(x @ W + output)\n  output = h"), 2, "output", "'output' is used before it is defined (line 3)",
     "move its equation above"),
    (cell("  h = tanh(x @ W)\n  output = h", "c(units) state(h, output)"), 1, "output)",
     "'output' is the name of the layer's output equation", "`output = ...`"),
    (cell("  h = tanh(x @ W + meen(h))"), 2, "meen", "unknown function 'meen'", "did you mean 'mean'"),
    (cell("  h = tanh(x @ W + mean(h, x))"), 2, "mean(", "mean takes one argument, got 2", None),
    (cell("  h = tanh(x @ W + h @ U) * var"), 2, "var", "'var' is a function", "var(...)"),
    # uses
    (cell("  h = tanh(x @ W)").replace("rnn(c(8))", "rnn(d(8))"), 5, "d(", "unknown cell 'd'", None),
    (cell("  h = tanh(x @ W)").replace("rnn(c(8))", "rnn(lstm(8))"), 5, "lstm", "lstm is a layer, not a cell",
     None),
    (cell("  h = tanh(x @ W)").replace("rnn(c(8))", "c(8)"), 5, "c(8)", "c is a cell, not a layer", "rnn(c(...))"),
    (cell("  h = tanh(x @ W)").replace("rnn(c(8))", "rnn(8)"), 5, "8", "rnn takes a cell such as mgu(32)", None),
    (cell("  h = tanh(x @ W)").replace("rnn(c(8))", "rnn(c(0))"), 5, "0", "units must be at least 1", None),
    (cell("  h = tanh(x @ W)").replace("rnn(c(8))", "rnn(c(8, 2))"), 5, "2", "takes one argument, its units", None),
    (cell("  h = tanh(x @ W)").replace("rnn(c(8))", "rnn(c)"), 5, "c)", "the cell c takes one argument, its units",
     "rnn(c(32))"),
    (cell("  h = tanh(x @ W)").replace("rnn(c(8))", "lstm(8)"), 1, "c(", "cell 'c' is never used", "rnn(c(32))"),
    (cell("  h = tanh(a @ W + b @ V)", "c(units) inputs(a, b)"), 5, "rnn", "the cell c takes 2 input(s) (a, b), got 1",
     "rnn(c(8), a, b)"),
    (cell("  h = tanh(a @ W + b @ V)", "c(units) inputs(a, b)").replace("rnn(c(8))", "bidirectional(rnn(c(8), x))"),
     5, "bidirectional", "bidirectional wraps cells of one input", None),
    (cell("  h = tanh(x @ W)").replace("dense(1)", "rnn(c(4))"), 5, "rnn", "rnn needs a sequence", "add `seq`", 1),
    (cell("  h = tanh(x @ W)") + "cell c(units) {\n  h = x @ W\n}\n", 6, "c(", "cell 'c' is already defined at line 1",
     None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[3][:40] for c in CASES])
def test_bad_cell(case):
    check_case(case)


def test_errors_of_several_cells_reported_together():
    text = ("cell a(units) {\n  h = tanh(x @ W + hh)\n}\n"
            "cell b(units) state(h, c) {\n  h = sigmod(x @ W)\n}\n"
            "input x: float[?, 4]\noutput x | rnn(a(4), seq) | rnn(b(4)) | dense(1)\n")
    diags = errors_of(text)
    messages = [d.message for d in diags]
    assert any("unknown function 'sigmod'" in m for m in messages)
    assert any("state 'c' is never updated" in m for m in messages)
    # a broken cell does not cascade into errors about the layers that use it
    assert not any("rnn" in m for m in messages), messages


def test_an_unindented_output_equation_stays_in_the_cell():
    """`output = ...` at the start of a line inside a cell is its equation, not the start of
    an `output` statement (which needs a name or a pipeline after the keyword)."""
    import rnndsl

    m = rnndsl.compile("cell c(units) {\nh = tanh(x @ W + h @ U)\noutput = h * 2\n}\n"
                       "input x: float[?, 3]\noutput x | rnn(c(4))\n")
    assert m.graph.nodes[1].opts["cell"].output is not None


def test_a_broken_definition_reports_once():
    diags = errors_of(cell("  h = tanh(x + h)"))
    assert len(diags) == 1
