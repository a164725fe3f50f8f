"""Backprop through time against central finite differences, float64.

Every layer and option: each trainable weight entry and each float input entry
is perturbed by ±1e-6 and the relative error of the whole gradient must stay
below 1e-6. Dropout masks are drawn from a generator reset before each pass,
so every pass sees the same masks.
"""

import numpy as np
import pytest

import rnndsl

from gradcheck import check, numerical_grad, rel_err  # noqa: F401 - the harness, shared with tests/cells

R = np.random.default_rng(1)
X = R.normal(size=(3, 4, 2))
Y = np.array([0, 2, 1])
YSEQ = R.integers(0, 3, (3, 4))

CASES = {
    "simplernn": "simplernn(3)",
    "simplernn relu backwards": "simplernn(3, activation=relu, go_backwards=true)",
    "lstm": "lstm(3)",
    "lstm seq": "lstm(3, seq)",
    "lstm options": 'lstm(3, activation=tanh, recurrent_activation="hard_sigmoid", go_backwards=true)',
    "lstm no bias": "lstm(3, use_bias=false)",
    "gru reset_after": "gru(3)",
    "gru reset_before": "gru(3, reset_after=false)",
    "gru seq backwards": "gru(3, seq, go_backwards=true)",
    "gru linear": "gru(3, activation=linear, reset_after=false)",
    "dropout recurrent_dropout lstm": "lstm(3, dropout=0.3, recurrent_dropout=0.4)",
    "dropout recurrent_dropout gru": "gru(3, seq, dropout=0.3, recurrent_dropout=0.4)",
    "dropout recurrent_dropout simplernn": "simplernn(3, dropout=0.2, recurrent_dropout=0.3)",
    "bilstm concat": "bilstm(3, seq)",
    "bigru sum": 'bigru(2, merge_mode="sum")',
    "birnn mul": "birnn(2, seq, merge_mode=mul)",
    "bilstm ave": "bilstm(2, merge_mode=ave)",
    "stacked": "lstm(3, seq) | gru(3, seq) | simplernn(2)",
    "dense relu per step": "lstm(3, seq) | dense(4, activation=relu)",
    "dense tanh": "gru(3) | dense(4, activation=tanh)",
    "dense sigmoid": "gru(3) | dense(4, activation=sigmoid)",
    "batchnorm": "lstm(3) | batchnorm()",
    "batchnorm per step": "lstm(3, seq) | batchnorm()",
    "dropout layer": "lstm(3, seq) | dropout(0.4) | lstm(3)",
    "repeat": "lstm(3) | repeat(2) | gru(3)",
}


@pytest.mark.parametrize("body", list(CASES.values()), ids=list(CASES))
def test_layer_gradients(body):
    text = f"input x: float[?, 2]\noutput x | {body} | dense(3)"
    seq_out = rnndsl.compile(text).graph.layers[-1].out.seq
    check(text, X, YSEQ if seq_out else Y)


@pytest.mark.parametrize("body", ["lstm(3, dropout=0.3, recurrent_dropout=0.4)", "gru(3, seq, go_backwards=true)",
                                  "gru(3, reset_after=false)", "simplernn(3)", "bilstm(2, seq) | lstm(2)"])
def test_gradients_with_all_steps_projected_at_once(monkeypatch, body):
    """Inputs wider than PER_STEP_MAX_FEATURES are projected for all steps before the time
    loop (the other cases above project step by step inside the kernel)."""
    import rnndsl.runtime.cpu.recurrent as rec
    monkeypatch.setattr(rec, "PER_STEP_MAX_FEATURES", 0)
    text = f"input x: float[?, 2]\noutput x | {body} | dense(3)"
    seq_out = rnndsl.compile(text).graph.layers[-1].out.seq
    check(text, X, YSEQ if seq_out else Y)


def test_softmax_output_with_crossentropy_on_probabilities():
    check('input x: float[?, 2]\noutput x | lstm(3) | dense(3, activation="softmax")', X, Y, from_logits=False)


def test_mse_on_sequences():
    check("input x: float[?, 2]\noutput x | gru(3, seq)", X, R.normal(size=(3, 4, 3)), loss="mse")


def test_masked_embedding_stack():
    ids = np.array([[3, 4, 0, 0], [1, 2, 3, 4], [5, 0, 0, 0]])
    check("embed(8, 2, mask_zero=true) | bilstm(2, seq) | gru(2, seq) | dense(3)", ids, YSEQ)
    check("embed(8, 2, mask_zero=true) | lstm(2, seq, zero_output_for_mask=true) | simplernn(2) | dense(3)", ids, Y)


def test_frozen_embedding_has_no_gradient():
    ids = R.integers(0, 8, (3, 4))
    m = check("embed(8, 2, trainable=false) | lstm(2) | dense(3)", ids, Y)
    assert m.loss_and_gradients(ids, Y)[1][0] is None


@pytest.fixture
def table_calls(monkeypatch):
    """Counts the recurrent layers that read an embedding through its projected table."""
    import rnndsl.runtime.cpu.recurrent as rec
    calls = []
    orig = rec.Recurrent.table_input

    def spy(self, *a, **k):
        r = orig(self, *a, **k)
        calls.append(r is not None)
        return r

    monkeypatch.setattr(rec.Recurrent, "table_input", spy)
    return calls


@pytest.mark.parametrize("body", ["lstm(3)", "lstm(3, seq, go_backwards=true)", "lstm(3, use_bias=false)",
                                  "lstm(3, recurrent_dropout=0.3)",
                                  'lstm(3, activation=relu, recurrent_activation="hard_sigmoid")'])
def test_lstm_reading_an_embedding_through_its_table(table_calls, body):
    """A vocabulary of at most a third of the rows: the LSTM projects the table E W + b once and
    reads rows of it; dW = E^T dT and dE = dT W^T from the table's gradient dT."""
    ids = R.integers(0, 4, (3, 6))
    check(f"embed(4, 2) | {body} | dense(3)", ids, YSEQ[:, :1].repeat(6, 1) if "seq" in body else Y)
    assert table_calls and all(table_calls)


def test_masked_lstm_through_the_table_and_a_shared_embedding_without(table_calls):
    ids = np.array([[3, 1, 2, 0, 0, 0], [1, 2, 3, 1, 2, 3], [2, 0, 0, 0, 0, 0]])
    check("embed(4, 2, mask_zero=true) | lstm(3, seq, zero_output_for_mask=true) | dense(3)", ids,
          YSEQ[:, :1].repeat(6, 1))
    assert table_calls == [True] * len(table_calls)
    table_calls.clear()
    # the embedding read by two layers (and a bidirectional one): its rows, no table
    check("input x: int[?]\ne = x | embed(4, 2)\na = e | lstm(2)\nb = e | bilstm(2)\noutput concat(a, b) | dense(3)",
          ids, Y)
    assert table_calls and not any(table_calls)


def test_encoder_decoder_state_edge():
    src, tgt = R.integers(1, 8, (3, 5)), R.integers(1, 9, (3, 4))
    check("input src: int[?]\ninput tgt: int[?]\nenc = src | embed(8, 2) | lstm(3, state)\n"
          "dec = tgt | embed(9, 2) | lstm(3, seq, initial_state=enc.state)\noutput dec | dense(3)",
          [src, tgt], YSEQ)
    check("input a: float[?, 2]\ninput b: float[?, 2]\nenc = a | bigru(2, state)\n"
          "output b | bigru(2, initial_state=enc.state) | dense(3)", [X, X[:, :3]], Y)


def test_concat_add_fan_out():
    check("input x: float[?, 2]\na = x | lstm(2, seq)\nb = x | gru(2, seq, go_backwards=true)\n"
          "c = concat(a, b) | simplernn(2)\nd = add(a, b) | lstm(2)\noutput add(c, d) | dense(3)", X, Y)


def test_two_outputs():
    check("input x: float[?, 2]\nh = x | lstm(3, seq)\noutput h | dense(3)\noutput h | gru(2) | dense(3)",
          X, [YSEQ, Y])


def test_bidirectional_merge_none_gradients():
    check("input x: float[?, 2]\nb = x | bilstm(2, seq, merge_mode=none)\noutput b.forward | dense(3)\n"
          "output b.backward | dense(3)", X, [YSEQ, YSEQ])


def test_padded_batch_gradients_equal_sequences_one_by_one():
    """A padded batch's loss is the mean over its real steps, so its gradient is the
    step-count-weighted mean of each sequence's own gradient."""
    text = "embed(12, 3, mask_zero=true) | bigru(3, seq) | lstm(3, seq) | dense(4)"
    m = rnndsl.compile(text, dtype="float64", seed=1)
    seqs = [[4, 5, 6, 7], [8, 9], [10, 11, 3]]
    targets = [[0, 1, 2, 3], [3, 2], [1, 1, 0]]
    x = np.zeros((3, 4), int)
    y = np.zeros((3, 4), int)
    for i, (s, t) in enumerate(zip(seqs, targets)):
        x[i, :len(s)], y[i, :len(t)] = s, t
    _, batch_grads = m.loss_and_gradients(x, y)
    total = sum(len(s) for s in seqs)
    want = [np.zeros_like(g) for g in batch_grads]
    for s, t in zip(seqs, targets):
        _, g = m.loss_and_gradients(np.array([s]), np.array([t]))
        for acc, gi in zip(want, g):
            acc += gi * len(s) / total
    for a, b in zip(batch_grads, want):
        np.testing.assert_allclose(a, b, atol=1e-12)
