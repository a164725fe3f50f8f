"""Inference made ready (RunCtx.prepared: a recurrent layer's kernel call kept from one
predict to the next, kernels/cpu/lstm.py's RowsRun) against the plain float64 route, call
after call on new inputs, and after everything that must send it back to the full forward:
other shapes, a mask, new weights, another thread count."""

from __future__ import annotations

import numpy as np
import pytest

import rnndsl
from rnndsl.kernels.cpu import parallel, paths
from rnndsl.kernels.cpu.lstm import RowsRun
from rnndsl.runtime.executor import Executor
from rnndsl.train.optimizers import SGD

SPECS = {
    "lstm-last": "input x: float[?, 5]\noutput x | lstm(16) | dense(3)\n",
    "odd-units": "input x: float[?, 5]\noutput x | lstm(7, seq) | lstm(9, go_backwards=true) | dense(3)\n",
    "stack-seq": "input x: float[?, 5]\noutput x | lstm(8, seq) | batchnorm() | lstm(16, seq) | dense(3)\n",
    "bilstm": "input x: float[?, 5]\noutput x | bilstm(8, seq) | bilstm(5) | dense(3)\n",
    "merge-modes": "input x: float[?, 5]\ny = x | bidirectional(lstm(6, seq), merge_mode=sum)\n"
                   "output y | bidirectional(lstm(4, seq, go_backwards=true), merge_mode=mul) | dense(3)\n",
    "state-edge": "input src: float[?, 5]\ninput tgt: float[?, 4]\n"
                  "enc = src | lstm(8, state)\n"
                  "dec = tgt | lstm(8, seq, initial_state=enc.state)\n"
                  "output dec | dense(3)\n",
    "return-state": "input x: float[?, 5]\ns = x | lstm(9, state)\noutput s | dense(3)\noutput s.state\n",
    # an embedding's rows through the projected table: at once (a small vocabulary), and from
    # the second call at these weights (a larger one), with a state edge between them
    "tables": "input src: int[?]\ninput tgt: int[?]\n"
              "enc = src | embed(4, 3) | lstm(8, seq, state)\n"
              "dec = tgt | embed(300, 5) | lstm(8, seq, initial_state=enc.state)\n"
              "output dec | dense(3)\noutput enc | lstm(7, go_backwards=true)\n",
}


def _inputs(name, rng, batch, T):
    if name == "tables":
        return [rng.integers(0, 4, (batch, T)), rng.integers(0, 300, (batch, T + 2))]
    if name == "state-edge":
        return [rng.standard_normal((batch, T, 5)), rng.standard_normal((batch, T + 1, 4))]
    return rng.standard_normal((batch, T, 5))


def _plain(model, text, x):
    ref = rnndsl.compile(text, dtype="float64")
    ref.set_weights([w.astype(np.float64) for w in model.get_weights()])
    with paths.plain_paths(True):
        return ref.predict_on_batch(x)


def _same(got, want, tol):
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        np.testing.assert_allclose(g, w, atol=tol, rtol=tol)


def _count_again(monkeypatch) -> list:
    """How many runs took a kept call (RowsRun.again)."""
    calls = []
    real = RowsRun.again

    def again(self, X, h0, c0, ids=None):
        calls.append(h0.shape)
        return real(self, X, h0, c0, ids)

    monkeypatch.setattr(RowsRun, "again", again)
    return calls


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_calls_made_ready_equal_the_plain_route_call_after_call(name, dtype, monkeypatch):
    text = SPECS[name]
    tol = 3e-5 if dtype == "float32" else 1e-11
    rng = np.random.default_rng(len(name))
    model = rnndsl.compile(text, dtype=dtype, seed=2)
    model.set_weights([w + rng.standard_normal(w.shape).astype(w.dtype) * 0.3 for w in model.get_weights()])
    again = _count_again(monkeypatch)
    # batch above the workers' split (and above the features), then T = 1, 2 and back:
    # every call on new numbers, a changed shape sending the layer back to its full forward
    for batch, T in [(37, 6), (37, 6), (37, 6), (37, 1), (37, 1), (5, 2), (5, 2), (37, 6)]:
        x = _inputs(name, rng, batch, T)
        _same(model.predict_on_batch(x), _plain(model, text, x), tol)
    assert len(again) >= 4          # the repeated shapes ran from the kept calls


def test_a_mask_or_new_weights_or_threads_go_back_to_the_full_forward(monkeypatch):
    text = "input x: float[?, 3]\nm = x | masking()\noutput m | lstm(8, seq) | lstm(6) | dense(2)\n"
    plain_text = "input x: float[?, 3]\noutput x | lstm(8, seq) | lstm(6) | dense(2)\n"
    rng = np.random.default_rng(5)
    model = rnndsl.compile(plain_text, seed=3)
    model.configure(loss="sparse_categorical_crossentropy", optimizer=SGD(learning_rate=0.5), from_logits=True)
    x = rng.standard_normal((9, 4, 3))
    again = _count_again(monkeypatch)
    for _ in range(2):
        _same(model.predict_on_batch(x), _plain(model, plain_text, x), 3e-5)
    assert again and model.executor.prepared
    model.train_on_batch(x, rng.integers(0, 2, 9))            # new weights: nothing kept
    assert not model.executor.prepared
    _same(model.predict_on_batch(x), _plain(model, plain_text, x), 3e-5)
    model.set_weights([w * 1.5 for w in model.get_weights()])
    n = len(again)
    _same(model.predict_on_batch(x), _plain(model, plain_text, x), 3e-5)
    assert len(again) == n
    monkeypatch.setattr(parallel, "WORKERS", parallel.WORKERS + 1)
    _same(model.predict_on_batch(x), _plain(model, plain_text, x), 3e-5)
    assert len(again) == n                                     # another thread count: not the kept call
    # a masked input: the layers never keep a call (every call runs in full)
    masked = rnndsl.compile(text, seed=3)
    masked.set_weights(model.get_weights())
    x[:4, 2:] = 0.0
    for _ in range(2):
        _same(masked.predict_on_batch(x), _plain(masked, text, x), 3e-5)
    assert not masked.executor.prepared


def test_batch_sizes_that_alternate_each_keep_their_call(monkeypatch):
    """A predict's last, shorter batch, or two batch sizes in turn: each shape's call is
    kept beside the others (a few a layer), and every output is still the plain route's."""
    text = SPECS["bilstm"]
    rng = np.random.default_rng(11)
    model = rnndsl.compile(text, seed=5)
    again = _count_again(monkeypatch)
    x = rng.standard_normal((50, 4, 5))
    for k in range(3):
        _same(model.predict(x, batch_size=16), _plain(model, text, x), 3e-5)   # 16, 16, 16 and 2 rows
    # four runs a batch (both halves of both layers): the first predict's second and third
    # batches, then every batch of the next two, the short one included
    assert len(again) == 4 * (2 + 4 + 4)


def test_a_kept_call_on_stale_weights_would_be_seen(monkeypatch):
    """The check above can fail: with the store not emptied on a write of the weights, the
    kept calls run on the old packed weights and the outputs differ."""
    text = SPECS["bilstm"]
    rng = np.random.default_rng(7)
    model = rnndsl.compile(text, seed=4)
    x = rng.standard_normal((20, 5, 5))
    model.predict_on_batch(x)
    real = Executor.weights_changed

    def keeps_prepared(self):
        kept = dict(self.prepared)
        real(self)
        self.prepared.update(kept)

    monkeypatch.setattr(Executor, "weights_changed", keeps_prepared)
    model.set_weights([w * 2.0 for w in model.get_weights()])
    with pytest.raises(AssertionError):
        _same(model.predict_on_batch(x), _plain(model, text, x), 3e-5)


def test_a_table_too_large_to_keep_is_not_kept_by_a_call(monkeypatch):
    """A projected table past KEEP_MAX_BYTES is made each call (RunCtx.derived): the layer
    reading it keeps no call that would hold it; the layer after it still keeps its own."""
    from rnndsl.runtime import executor
    monkeypatch.setattr(executor, "KEEP_MAX_BYTES", 4096)
    text = "input x: int[?]\noutput x | embed(40, 4) | lstm(16, seq) | lstm(8) | dense(2)\n"
    rng = np.random.default_rng(2)
    model = rnndsl.compile(text, seed=6)
    again = _count_again(monkeypatch)
    for _ in range(3):
        x = rng.integers(0, 40, (30, 6))                 # 3 V <= T B: the table at once (40 x 64 floats)
        _same(model.predict_on_batch(x), _plain(model, text, x), 3e-5)
    assert len(again) == 2                              # the second LSTM's, on the second and third call
    tables = [a.nbytes for kept in model.executor.prepared.values() for again_ in kept[1]
              for a in _arrays_held(again_) if a.size >= 40 * 64]
    assert tables == []


def _arrays_held(again) -> list:
    """The arrays a kept call holds (its RowsRun's arguments)."""
    runs = [c.cell_contents for c in again.__closure__ if isinstance(c.cell_contents, RowsRun)]
    return [a for r in runs for a in r.args if isinstance(a, np.ndarray)]


def test_stateful_layers_and_decoding_keep_no_calls():
    text = "input x: float[?, 3]\noutput x | lstm(8, stateful=true) | dense(2)\n"
    model = rnndsl.compile(text, seed=1)
    x = np.random.default_rng(0).standard_normal((4, 5, 3))
    first = model.predict_on_batch(x)
    second = model.predict_on_batch(x)              # from the state the first call left
    assert not model.executor.prepared
    assert not np.allclose(first, second)
