"""What inference derives from the weights and keeps between calls (RunCtx.derived: the
projected embedding tables, packed and joined weights) against the plain route, before and after every way the
weights change: an optimizer step, set_weights, fit (validating between its steps),
batchnorm's moving statistics, Model.step's stacking of the weights."""

from __future__ import annotations

import numpy as np
import pytest

import rnndsl
from rnndsl.kernels.cpu import paths
from rnndsl.runtime.executor import Executor
from rnndsl.train.optimizers import SGD

from cells import cell_texts  # noqa: E402

# a vocabulary of at most a third of the rows (the table from the first call on), and one
# larger (inference takes the table from the second call at the same weights on)
SMALL_VOCAB = "input x: int[6]\noutput x | embed(5, 3) | lstm(16, seq) | batchnorm() | lstm(8) | dense(4)\n"
# GRUs: one through its embedding's table, one over floats (odd units)
GRUS = "input x: int[6]\noutput x | embed(5, 3) | gru(16, seq) | gru(7) | dense(4)\n"
# a custom cell reading an embedding through its projected table, and one over floats
CELL = (cell_texts.MGU + "input x: int[6]\ny = x | embed(5, 3) | rnn(mgu(7), seq)\n"
        "output y | rnn(mgu(5)) | dense(4)\n")
LARGE_VOCAB = ("input src: int[?]\ninput tgt: int[?]\nenc = src | embed(40, 3) | lstm(8, state)\n"
               "dec = tgt | embed(50, 4, mask_zero=true) | lstm(8, seq, initial_state=enc.state)\n"
               "output dec | dense(5)\n")


def _data(text, rng, batch=7):
    if "src" in text:
        x = [rng.integers(0, 40, (batch, 5)), rng.integers(0, 50, (batch, 4))]
        x[1][0, 2:] = 0                                  # a padded tail
        return x, rng.integers(0, 5, (batch, 4))
    return rng.integers(0, 5, (batch, 6)), rng.integers(0, 4, batch)


def _tables(model) -> int:
    return sum(v is not None for _, v in model.executor.derived.values())


def _check(model, text, x, tol):
    want = _predict_plain(text, model, x)
    for _ in range(2):                                   # the first call, then from what it kept
        got = model.predict_on_batch(x)
        for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
            np.testing.assert_allclose(g, w, atol=tol, rtol=tol)


def _predict_plain(text, model, x):
    ref = rnndsl.compile(text, dtype="float64")
    ref.set_weights([w.astype(np.float64) for w in model.get_weights()])
    with paths.plain_paths(True):
        return ref.predict_on_batch(x)


@pytest.mark.parametrize("text", [SMALL_VOCAB, LARGE_VOCAB, GRUS, CELL], ids=["small-vocab", "large-vocab", "gru", "cell"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kept_tables_follow_every_change_of_the_weights(text, dtype):
    tol = 2e-5 if dtype == "float32" else 1e-11
    rng = np.random.default_rng(3)
    x, y = _data(text, rng)
    model = rnndsl.compile(text, dtype=dtype, seed=1)
    model.configure(loss="sparse_categorical_crossentropy", optimizer=SGD(learning_rate=0.5), from_logits=True)
    _check(model, text, x, tol)
    assert _tables(model) >= 1                           # the second call read a kept table
    model.train_on_batch(x, y)                           # an optimizer step (and batchnorm's statistics)
    assert _tables(model) == 0
    _check(model, text, x, tol)
    model.set_weights([w + rng.standard_normal(w.shape).astype(w.dtype) * 0.3 for w in model.get_weights()])
    _check(model, text, x, tol)
    saved = model.get_weights()
    # fit, its validation (inference between the steps) keeping tables of each step's weights
    model.fit(x, y, epochs=2, batch_size=3, verbose=0, validation_data=(x, y))
    _check(model, text, x, tol)
    model.set_weights(saved)
    _check(model, text, x, tol)


def test_a_stale_table_would_be_seen(monkeypatch):
    """The check above can fail: with the store never emptied, a prediction after
    set_weights is the old weights' (so the kept table is what the second call read)."""
    rng = np.random.default_rng(4)
    x, _ = _data(SMALL_VOCAB, rng)
    model = rnndsl.compile(SMALL_VOCAB, seed=2)
    model.predict_on_batch(x)
    model.predict_on_batch(x)
    monkeypatch.setattr(Executor, "weights_changed", lambda self: None)
    model.set_weights([w * 1.5 for w in model.get_weights()])
    stale = model.predict_on_batch(x)
    fresh = _predict_plain(SMALL_VOCAB, model, x)
    assert np.max(np.abs(stale - fresh)) > 1e-2
    monkeypatch.undo()
    model.executor.weights_changed()
    np.testing.assert_allclose(model.predict_on_batch(x), fresh, atol=2e-5, rtol=2e-5)


def test_model_step_after_a_kept_table():
    """Model.step stacks a stateful layer's weights into one array (the executor's arrays
    become views of it): predict after it still reads the current weights."""
    text = "input x: int[?]\noutput x | embed(4, 3) | lstm(8, stateful=true) | dense(3)\n"
    model = rnndsl.compile(text, seed=5)
    x = np.random.default_rng(6).integers(0, 4, (16, 5))
    model.predict_on_batch(x)
    model.predict_on_batch(x)
    model.reset_states()
    model.step(x[:1, 0])
    model.reset_states()
    model.set_weights([w * 0.7 for w in model.get_weights()])
    model.reset_states()
    got = model.predict_on_batch(x)
    model.reset_states()
    np.testing.assert_allclose(got, _predict_plain(text, model, x), atol=2e-5, rtol=2e-5)


def test_what_is_derived_while_the_weights_are_written_is_not_kept(monkeypatch):
    """Another thread's write landing while a prediction projects its table (simulated: the
    write happens inside the projection): that call may read either weights, but nothing it
    made is kept, so the next call reads the new weights (a kept stale table stayed wrong
    until the next write)."""
    import rnndsl.runtime.cpu.recurrent as rec

    rng = np.random.default_rng(7)
    x, _ = _data(SMALL_VOCAB, rng)
    model = rnndsl.compile(SMALL_VOCAB, seed=3)
    new = [w * 1.5 for w in model.get_weights()]
    orig, calls = rec.matmul, []

    def projecting(a, b, *args):
        out = orig(a, b, *args)
        if not calls:
            calls.append(1)
            model.set_weights(new)                       # the write, between make() and keeping it
        return out

    monkeypatch.setattr(rec, "matmul", projecting)
    model.predict_on_batch(x)
    assert calls
    monkeypatch.undo()
    for _ in range(2):
        np.testing.assert_allclose(model.predict_on_batch(x), _predict_plain(SMALL_VOCAB, model, x),
                                   atol=2e-5, rtol=2e-5)


def test_arrays_past_the_limit_are_made_each_call_not_kept(monkeypatch):
    import rnndsl.runtime.executor as ex

    monkeypatch.setattr(ex, "KEEP_MAX_BYTES", 0)
    rng = np.random.default_rng(8)
    x, _ = _data(SMALL_VOCAB, rng)
    model = rnndsl.compile(SMALL_VOCAB, seed=4)
    for _ in range(3):
        np.testing.assert_allclose(model.predict_on_batch(x), _predict_plain(SMALL_VOCAB, model, x),
                                   atol=2e-5, rtol=2e-5)
    assert _tables(model) == 0


def test_layers_of_one_cell_definition_keep_their_own_weights(monkeypatch):
    """Two layers (and a bidirectional one) of the same custom cell: each keeps its own joined
    weights; from the second call on nothing is joined again."""
    import rnndsl.runtime.cells as cells

    text = (cell_texts.MGU + "input x: float[5, 3]\n"
            "output x | rnn(mgu(8), seq) | bidirectional(rnn(mgu(6), seq)) | rnn(mgu(5)) | dense(2)\n")
    model = rnndsl.compile(text, seed=5)
    x = np.random.default_rng(9).standard_normal((4, 5, 3)).astype(np.float32)
    joins = []
    orig = cells._concat
    monkeypatch.setattr(cells, "_concat", lambda ws: joins.append(1) or orig(ws))
    model.predict_on_batch(x)
    first = len(joins)
    for _ in range(2):
        got = model.predict_on_batch(x)
    assert first > 0 and len(joins) == first
    np.testing.assert_allclose(got, _predict_plain(text, model, x), atol=2e-5, rtol=2e-5)
