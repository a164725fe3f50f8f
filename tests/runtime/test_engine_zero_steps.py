"""Sequences of zero steps, (B, 0, F) on a `?` input and (B, 0) token ids (issue 15, point 4).

As in Keras: a recurrent layer over zero steps returns its initial state as its last output
(zeros by default) and an empty sequence with return_sequences; dense, batchnorm,
dropout, concat, add and embed pass the empty sequence through; a per-step loss over zero
steps is 0 with zero gradients (Keras's divide-no-nan reduction, as rnndsl's losses do for
a batch whose every step is masked). Every call is deterministic: no leftovers of an
earlier batch.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnndsl

MGU = """cell mgu(units) {
  f  = sigmoid(x @ Wf + h @ Uf + bf)
  hc = tanh(x @ Wh + (f * h) @ Uh + bh)
  h  = (1 - f) * h + f * hc
}
"""
DTYPES = ["float32", "float64"]
B = 3
RNG = np.random.default_rng(4)
X = RNG.normal(size=(B, 5, 2))
EMPTY = np.zeros((B, 0, 2))
IDS = RNG.integers(1, 10, (B, 5))
EMPTY_IDS = np.zeros((B, 0), np.int64)

# body -> units of the last output (float input x: float[?, 2])
LAST = {
    "lstm(4)": 4, "gru(4)": 4, "gru(4, reset_after=false)": 4, "simplernn(4)": 4,
    "lstm(4, go_backwards=true)": 4, "bilstm(4)": 8, 'bigru(3, merge_mode="sum")': 3,
    "rnn(mgu(4))": 4, "lstm(16)": 16, "lstm(4, seq) | lstm(5)": 5,
    "lstm(4, dropout=0.3, recurrent_dropout=0.3)": 4,
}
SEQ = {
    "lstm(4, seq)": 4, "gru(4, seq)": 4, "simplernn(4, seq)": 4, "bilstm(4, seq)": 8,
    "rnn(mgu(4), seq)": 4, "dense(3)": 3, "batchnorm() | dense(3)": 3, "dropout(0.5) | dense(3)": 3,
    "lstm(4, seq) | dense(3, activation=softmax)": 3,
}


def _model(body, dtype, inp="input x: float[?, 2]"):
    cell = MGU if "mgu" in body else ""
    m = rnndsl.compile(f"{cell}{inp}\noutput x | {body}", dtype=dtype, seed=1)
    m.set_weights([w + 0.1 for w in m.get_weights()])        # biases nonzero: zeros must come from no steps
    return m


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("body", sorted(LAST))
def test_a_last_output_over_zero_steps_is_the_initial_state(body, dtype):
    m = _model(body, dtype)
    m.predict_on_batch(X)                                    # leaves something in the kernels' buffers
    got = [m.predict_on_batch(EMPTY), m.predict_on_batch(EMPTY), m.predict(EMPTY, batch_size=2)]
    for g in got:
        assert g.shape == (B, LAST[body]) and g.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(g, np.zeros((B, LAST[body])))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("body", sorted(SEQ))
def test_a_sequence_of_zero_steps_passes_through(body, dtype):
    m = _model(body, dtype)
    m.predict_on_batch(X)
    for g in (m.predict_on_batch(EMPTY), m.predict(EMPTY, batch_size=2)):
        assert g.shape == (B, 0, SEQ[body]) and g.dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_after_zero_steps_reads_the_initial_state(dtype):
    m = _model("lstm(4) | dense(3)", dtype)
    W = m.get_weights()
    got = m.predict_on_batch(EMPTY)
    np.testing.assert_allclose(got, np.tile(W[-1], (B, 1)), rtol=1e-6)      # dense(0) = its bias
    np.testing.assert_array_equal(got, m.predict_on_batch(EMPTY))


@pytest.mark.parametrize("dtype", DTYPES)
def test_token_ids_of_zero_steps(dtype):
    m = _model("embed(10, 4, mask_zero=true) | lstm(8)", dtype, "input x: int[?]")
    m.predict_on_batch(IDS)
    np.testing.assert_array_equal(m.predict_on_batch(EMPTY_IDS), np.zeros((B, 8)))
    m = _model("embed(10, 4) | bilstm(8, seq) | dense(2)", dtype, "input x: int[?]")
    assert m.predict_on_batch(EMPTY_IDS).shape == (B, 0, 2)
    # the projected-table route (an LSTM sole reader of an embedding): zero steps too
    m = _model("embed(2, 4) | lstm(8)", dtype, "input x: int[?]")
    m.predict_on_batch(IDS % 2)
    np.testing.assert_array_equal(m.predict_on_batch(EMPTY_IDS), np.zeros((B, 8)))
    loss, grads = m.loss_and_gradients(EMPTY_IDS, np.array([0, 1, 2]))
    assert np.isfinite(loss) and all(not np.any(g) for g in grads[:-2])    # embed, lstm: no step ran


@pytest.mark.parametrize("dtype", DTYPES)
def test_concat_and_add_of_zero_steps(dtype):
    text = ("input a: float[?, 2]\ninput b: float[?, 2]\nfa = a | lstm(3, seq)\nfb = b | gru(3, seq)\n"
            "output concat(fa, fb) | dense(2)\noutput add(fa, fb) | lstm(4)")
    m = rnndsl.compile(text, dtype=dtype, seed=2)
    cat, added = m.predict_on_batch([EMPTY, EMPTY])
    assert cat.shape == (B, 0, 2)
    np.testing.assert_array_equal(added, np.zeros((B, 4)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_edges_over_zero_steps(dtype):
    text = ("input src: float[?, 2]\ninput tgt: float[?, 2]\nenc = src | lstm(4, state)\n"
            "dec = tgt | lstm(4, initial_state=enc.state)\noutput dec | dense(2)")
    m = rnndsl.compile(text, dtype=dtype, seed=3)
    enc_only = rnndsl.compile("input src: float[?, 2]\noutput src | lstm(4)", dtype=dtype, seed=3)
    enc_only.set_weights(m.get_weights()[:3])
    h = enc_only.predict_on_batch(X)
    W = m.get_weights()
    # the decoder runs no step: its last output is the encoder's final h
    np.testing.assert_allclose(m.predict_on_batch([X, EMPTY]), h @ W[-2] + W[-1], rtol=1e-5, atol=1e-6)
    # the encoder runs no step: the decoder starts from zeros
    zero_start = rnndsl.compile("input tgt: float[?, 2]\noutput tgt | lstm(4) | dense(2)", dtype=dtype, seed=3)
    zero_start.set_weights(W[3:])
    np.testing.assert_allclose(m.predict_on_batch([EMPTY, X]), zero_start.predict_on_batch(X), rtol=1e-5)
    # gradients reach the encoder through the initial state of a decoder that ran no step
    y = np.array([0, 1, 1])
    loss, grads = m.loss_and_gradients([X, EMPTY], y)
    assert np.isfinite(loss) and all(np.any(g) for g in grads[:3]) and not any(np.any(g) for g in grads[3:6])
    loss2, grads2 = m.loss_and_gradients([X, EMPTY], y)
    assert loss == loss2 and all(np.array_equal(a, b) for a, b in zip(grads, grads2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("body", ["lstm(4, stateful=true)", "bilstm(4, stateful=true)",
                                  "rnn(mgu(4), stateful=true)"])
def test_a_stateful_layer_keeps_its_state_over_zero_steps(body, dtype):
    m = _model(body, dtype)
    after = m.predict_on_batch(X)
    np.testing.assert_array_equal(m.predict_on_batch(EMPTY), after)     # the carried h, unchanged
    np.testing.assert_array_equal(m.predict_on_batch(EMPTY), after)
    # and the next real call goes on from it as if the empty call had not been
    ref = _model(body, dtype)
    ref.predict_on_batch(X)
    np.testing.assert_array_equal(m.predict_on_batch(X), ref.predict_on_batch(X))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("body", ["lstm(4) | dense(3)", "bilstm(4) | dense(3)", "rnn(mgu(4)) | dense(3)",
                                  "gru(4, seq) | lstm(4) | dense(3)", "batchnorm() | lstm(4) | dense(3)"])
def test_training_on_a_last_output_over_zero_steps(body, dtype):
    """The loss reads the dense layer over the initial state: defined, finite, and only the
    layers after the recurrent one learn."""
    y = np.array([0, 0, 1])
    m = _model(body, dtype)
    loss, grads = m.loss_and_gradients(EMPTY, y)
    W = m.get_weights()
    logits = np.tile(W[-1], (B, 1)).astype(np.float64)
    want = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(B), y])
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    assert all(g is None or not np.any(g) for g in grads[:-2]) and np.any(grads[-1])
    assert m.loss_and_gradients(EMPTY, y)[0] == loss
    m.configure(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    before = m.get_weights()
    first = m.train_on_batch(EMPTY, y)
    np.testing.assert_allclose(first, want, rtol=1e-5)
    after = m.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before[:-2], after[:-2]))   # no step: no change there
    assert not np.array_equal(before[-1], after[-1])
    assert np.all(np.isfinite(np.concatenate([w.ravel() for w in after])))
    loss_e, acc = m.evaluate(EMPTY, y, batch_size=2)
    assert np.isfinite(loss_e) and 0 <= acc <= 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("body", ["lstm(4, seq) | dense(3)", "bilstm(4, seq) | dense(3)",
                                  "batchnorm() | gru(4, seq) | dense(3)"])
def test_a_per_step_loss_over_zero_steps_is_zero_as_in_keras(body, dtype):
    y = np.zeros((B, 0), np.int64)
    m = _model(body, dtype)
    loss, grads = m.loss_and_gradients(EMPTY, y)
    assert loss == 0.0 and all(g is None or not np.any(g) for g in grads)
    m.configure(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    before = m.get_weights()
    assert m.train_on_batch(EMPTY, y) == 0.0
    after = m.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after))    # zero gradients, fresh Adam
    assert m.evaluate(EMPTY, y) == [0.0, 0.0]
    hist = m.fit(EMPTY, y, epochs=2, batch_size=2, verbose=0)
    assert hist.history["loss"] == [0.0, 0.0]


def test_batchnorm_moving_statistics_ignore_zero_steps():
    m = _model("batchnorm() | lstm(2)", "float32")
    m.configure(loss="mse", optimizer="sgd")
    before = m.get_weights()
    m.train_on_batch(EMPTY, np.zeros((B, 2)))
    after = m.get_weights()
    np.testing.assert_array_equal(after[2], before[2])      # moving mean
    np.testing.assert_array_equal(after[3], before[3])      # moving variance
