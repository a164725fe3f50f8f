"""BPTT of generated cell kernels against central finite differences (float64, tests/gradcheck.py)."""

import numpy as np
import pytest

import rnndsl

from .common import GRU_AFTER, INDRNN, LSTM, MGU, ODD, PEEPHOLE, TWO, check

R = np.random.default_rng(1)
X = R.normal(size=(3, 4, 2))
Y = np.array([0, 2, 1])
YSEQ = R.integers(0, 3, (3, 4))
IDS = np.array([[3, 4, 0, 0], [1, 2, 3, 4], [5, 0, 0, 0]])

CASES = {
    "mgu": (MGU, "rnn(mgu(3))"),
    "mgu seq": (MGU, "rnn(mgu(3), seq)"),
    "mgu go_backwards": (MGU, "rnn(mgu(3), seq, go_backwards=true)"),
    "mgu dropout": (MGU, "rnn(mgu(3), dropout=0.3, recurrent_dropout=0.4)"),
    "indrnn": (INDRNN, "rnn(indrnn(3), seq)"),
    "indrnn backwards dropout": (INDRNN, "rnn(indrnn(3), go_backwards=true, recurrent_dropout=0.3)"),
    "peephole": (PEEPHOLE, "rnn(peephole(3), seq)"),
    "peephole dropout backwards": (PEEPHOLE, "rnn(peephole(3), go_backwards=true, dropout=0.2, recurrent_dropout=0.3)"),
    "every function": (ODD, "rnn(odd(3), seq)"),
    "stacked": (MGU + LSTM, "rnn(mgu(3), seq) | rnn(mylstm(2), seq) | gru(2)"),
    "bidirectional mgu": (MGU, "bidirectional(rnn(mgu(2), seq))"),
    "bidirectional lstm cell": (LSTM, 'bidirectional(rnn(mylstm(2)), merge_mode="sum")'),
}


@pytest.mark.parametrize("cells,body", list(CASES.values()), ids=list(CASES))
def test_cell_gradients(cells, body):
    text = f"{cells}\ninput x: float[?, 2]\noutput x | {body} | dense(3)"
    seq_out = rnndsl.compile(text).graph.layers[-1].out.seq
    check(text, X, YSEQ if seq_out else Y)


def test_two_input_cell():
    a, b = R.normal(size=(3, 4, 3)), R.normal(size=(3, 4, 2))
    check(TWO + "input a: float[?, 3]\ninput b: float[?, 2]\noutput rnn(two(3), a, b) | dense(3)", [a, b], Y)
    check(TWO + "input a: float[?, 3]\ninput b: float[?, 2]\noutput a | rnn(two(2), b, seq, go_backwards=true) "
                "| dense(3)", [a, b], YSEQ)


def test_masked_sequences():
    check(MGU + "embed(8, 2, mask_zero=true) | rnn(mgu(3), seq) | dense(3)", IDS, YSEQ)
    check(PEEPHOLE + "embed(8, 2, mask_zero=true) | rnn(peephole(2), seq, zero_output_for_mask=true, "
                     "go_backwards=true) | dense(3)", IDS, YSEQ)
    check(INDRNN + "embed(8, 2, mask_zero=true) | rnn(indrnn(3)) | dense(3)", IDS, Y)
    check(GRU_AFTER + "embed(8, 2, mask_zero=true) | bidirectional(rnn(gru_after(2), seq)) | dense(3)", IDS, YSEQ)


def test_state_edges():
    src, tgt = R.integers(1, 8, (3, 5)), R.integers(1, 9, (3, 4))
    # a built-in LSTM's (h, c) feeds a cell with states (h, c), and a cell feeds a cell
    check(LSTM + "input src: int[?]\ninput tgt: int[?]\nenc = src | embed(8, 2) | lstm(3, state)\n"
                 "dec = tgt | embed(9, 2) | rnn(mylstm(3), seq, initial_state=enc.state)\noutput dec | dense(3)",
          [src, tgt], YSEQ)
    check(MGU + "input a: float[?, 2]\ninput b: float[?, 2]\nenc = a | rnn(mgu(3), state)\n"
                "output b | rnn(mgu(3), initial_state=enc.state) | dense(3)", [X, X[:, :3]], Y)
    check(MGU + "input a: float[?, 2]\ninput b: float[?, 2]\nenc = a | bidirectional(rnn(mgu(2), state))\n"
                "output b | bidirectional(rnn(mgu(2)), initial_state=enc.state) | dense(3)", [X, X[:, :3]], Y)


EDGE = {
    "no recurrence": "cell c(units) {\n  h = x @ W\n}\n",
    "a constant state": "cell c(units) state(h, m) {\n  h = tanh(x @ W + m * h)\n  m = 0.5\n}\n",
    "first state not read": "cell c(units) state(h, m) {\n  h = tanh(x @ W + m @ U)\n  m = sigmoid(x @ V) * m + h\n}\n",
    "division by a weight": "cell c(units) {\n  h = tanh(x @ W + h @ U) / (1 + exp(d)) + -h * 0.1\n}\n",
    "one matrix in three products": "cell c(units) {\n  a = tanh(h @ U)\n  h = tanh(x @ W + a @ U + (a * h) @ U)\n}\n",
}


@pytest.mark.parametrize("cells", list(EDGE.values()), ids=list(EDGE))
def test_edge_cells(cells):
    check(f"{cells}input x: float[?, 2]\noutput x | rnn(c(3), seq, dropout=0.2, recurrent_dropout=0.3) | dense(3)",
          X, YSEQ)


@pytest.mark.parametrize("cells,body", [(MGU, "rnn(mgu(3), seq, go_backwards=true)"), (LSTM, "rnn(mylstm(2))"),
                                        (PEEPHOLE, "rnn(peephole(2), seq, recurrent_dropout=0.3)")],
                         ids=["mgu", "lstm cell", "peephole"])
def test_embedding_read_through_its_table(monkeypatch, cells, body):
    """A vocabulary of at most a third of the rows: the cell's hoisted products read (E @ W)[ids] and
    backward sums dxp by id (dW = E^T dT, dE = dT W^T). Finite differences, and the path is
    the one taken."""
    from rnndsl.runtime.cpu.rnn import RNN

    taken = []
    orig = RNN.cell_table_input

    def spy(*a):
        r = orig(*a)
        taken.append(r is not None)
        return r

    monkeypatch.setattr(RNN, "cell_table_input", staticmethod(spy))
    ids = R.integers(0, 4, (3, 6))
    check(f"{cells}\ninput x: int[?]\noutput x | embed(4, 2) | {body} | dense(3)", ids,
          YSEQ[:, :1].repeat(6, 1) if "seq" in body else Y)
    assert taken and all(taken)
