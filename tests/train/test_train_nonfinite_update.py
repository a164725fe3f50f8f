"""An update that overflows is undone: the weights and the optimizer's state stay those of
the last good step, NonFiniteError says so, and the CLI saves no NaN."""

import numpy as np
import pytest

import rnndsl
from rnndsl.cli import main
from rnndsl.errors import NonFiniteError
from rnndsl.train.optimizers import SGD, Adam

SPEC = "input x: float[?, 3]\noutput x | lstm(4) | dense(2)"


def _data(n=8):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 5, 3)).astype(np.float32), rng.integers(0, 2, n)


@pytest.mark.parametrize("optimizer", [lambda: SGD(1e39), lambda: Adam(1e39)])
def test_an_overflowing_update_is_undone(optimizer):
    m = rnndsl.compile(SPEC, seed=1)
    x, y = _data()
    opt = optimizer()
    m.configure(loss="sparse_categorical_crossentropy", optimizer=opt)
    before = m.get_weights()
    with pytest.raises(NonFiniteError, match="the update made weights NaN or inf"):
        m.train_on_batch(x, y)               # the gradients are finite; lr * g is not, in float32
    for w, b in zip(m.get_weights(), before):
        np.testing.assert_array_equal(w, b)
    assert opt.iterations == 0
    assert all(not per for per in opt._slots.values())          # slots made by the step are gone


def test_adam_state_is_restored_after_good_steps():
    m = rnndsl.compile(SPEC, seed=1, dtype="float64")
    x, y = _data()
    opt = Adam(0.01)
    m.configure(loss="sparse_categorical_crossentropy", optimizer=opt)
    m.train_on_batch(x, y)
    m.train_on_batch(x, y)
    state, weights = opt.state_dict(), m.get_weights()
    opt.learning_rate = 1e309                # inf: the next update is not finite
    with pytest.raises(NonFiniteError):
        m.train_on_batch(x, y)
    for w, b in zip(m.get_weights(), weights):
        np.testing.assert_array_equal(w, b)
    after = opt.state_dict()
    assert after.keys() == state.keys()
    for k in state:
        np.testing.assert_array_equal(after[k], state[k])


def test_fit_names_epoch_and_batch():
    m = rnndsl.compile(SPEC, seed=1)
    x, y = _data(16)
    m.configure(loss="sparse_categorical_crossentropy", optimizer=SGD(1e39))
    with pytest.raises(NonFiniteError) as e:
        m.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert (e.value.epoch, e.value.batch) == (1, 1)
    assert all(np.isfinite(w).all() for w in m.get_weights())


def test_run_saves_no_nan_and_exits_1(tmp_path, capsys):
    x, y = _data(40)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    spec = tmp_path / "s.rnn"
    # finite gradients times a learning rate beyond float32's range: the first update overflows
    spec.write_text(SPEC + '\ntrain {\n  data = npz("d.npz")\n  loss = "sparse_categorical_crossentropy"\n'
                           "  optimizer = sgd(learning_rate=1e39)\n  epochs = 3\n  batch_size = 8\n}\n")
    out = tmp_path / "s.ckpt.npz"
    assert main(["run", str(spec), "--quiet", "--out", str(out)]) == 1
    text = capsys.readouterr()
    assert "NaN or inf" in text.err
    if out.exists():                          # the last good weights, all finite
        m = rnndsl.load_model(out)
        assert all(np.isfinite(w).all() for w in m.get_weights())


def test_sgd_proves_a_small_step_finite_and_keeps_no_copy_then():
    """SGD's bound (sum|w| + lr sum|g| under a quarter of the largest float) says which steps
    cannot overflow; only those skip the copy kept to undo a step, and the rest still undo."""
    w = [np.ones((3, 4), np.float32), np.full(4, -2.0, np.float32)]
    g = [np.full((3, 4), 0.5, np.float32), np.ones(4, np.float32)]
    assert SGD(0.01).stays_finite(w, g)
    assert not SGD(1e39).stays_finite(w, g)                  # lr sum|g| past float32's range
    # 1e39 is inf in float32, the update's dtype: even a zero gradient makes the step NaN (0 inf)
    assert not SGD(1e39).stays_finite([np.ones(3, np.float32)], [np.zeros(3, np.float32)])
    assert SGD(1e39).stays_finite([np.ones(3)], [np.zeros(3)])           # a float64 rate of 1e39 is fine
    assert not SGD(0.01, momentum=0.9).stays_finite(w, g)    # no bound for these (yet)
    assert not Adam(0.01).stays_finite(w, g)
    big = [np.full((3, 4), 3e37, np.float32), w[1]]           # 12 * 3e37 > 3.4e38 / 4
    assert not SGD(0.01).stays_finite(big, g)
    nan = [w[0].copy(), w[1]]
    nan[0][1, 2] = np.nan
    assert not SGD(0.01).stays_finite(nan, g)

    m = rnndsl.compile(SPEC, seed=1)
    x, y = _data()
    m.configure(loss="sparse_categorical_crossentropy", optimizer=SGD(0.1))
    before = m.get_weights()
    m.train_on_batch(x, y)
    assert not m.executor._kept                               # proven finite: no copy taken
    _, grads = rnndsl.compile(SPEC, seed=1).loss_and_gradients(x, y, loss="sparse_categorical_crossentropy")
    for w1, w0, g1 in zip(m.get_weights(), before, grads):
        np.testing.assert_allclose(w1, w0 - np.float32(0.1) * g1, rtol=1e-6, atol=1e-7)


def test_a_rate_past_the_weights_float_range_is_undone_even_with_tiny_gradients():
    """lr = 1e39 overflows float32: with gradients small enough for the float64 bound, the step
    still makes the weights inf or NaN, and is undone (found by attacking the change)."""
    m = rnndsl.compile(SPEC, seed=1)
    x, _ = _data()
    m.configure(loss="mse", optimizer=SGD(1e39))
    y = m.predict(x)                                          # the model's own outputs: tiny gradients
    before = m.get_weights()
    with pytest.raises(NonFiniteError, match="the update made weights NaN or inf"):
        m.train_on_batch(x, y)
    for w, b in zip(m.get_weights(), before):
        np.testing.assert_array_equal(w, b)


def test_a_nan_gradient_is_named_and_nothing_is_updated(monkeypatch):
    """Each gradient's sum |g| is taken once, for SGD's bound and for this check: a NaN or
    inf in a gradient stops the step before the update and names the weight."""
    m = rnndsl.compile(SPEC, seed=1)
    x, y = _data()
    m.configure(loss="sparse_categorical_crossentropy", optimizer=SGD(0.1))
    ex = m.executor
    real = type(ex).backward

    def poisoned(self, tape, d):
        grads, ins = real(self, tape, d)
        grads[1] = grads[1].copy()
        grads[1][0, 3] = np.inf
        return grads, ins

    monkeypatch.setattr(type(ex), "backward", poisoned)
    before = m.get_weights()
    with pytest.raises(NonFiniteError, match=r"gradients became NaN or inf \(in .*recurrent_kernel"):
        m.train_on_batch(x, y)
    for w, b in zip(m.get_weights(), before):
        np.testing.assert_array_equal(w, b)


def test_float64_gradients_whose_sum_overflows_are_still_finite(monkeypatch):
    """A float64 sum |g| can overflow while every value is finite: the step goes on (by the
    checked path, as SGD's bound cannot hold), and its result is the plain update's."""
    m = rnndsl.compile(SPEC, seed=1, dtype="float64")
    x, y = _data()
    m.configure(loss="sparse_categorical_crossentropy", optimizer=SGD(1e-300))
    ex = m.executor
    real = type(ex).backward

    def huge(self, tape, d):
        grads, ins = real(self, tape, d)
        grads[0] = np.full_like(grads[0], 1e308)
        return grads, ins

    monkeypatch.setattr(type(ex), "backward", huge)
    before = m.get_weights()
    m.train_on_batch(x, y)
    np.testing.assert_allclose(m.get_weights()[0], before[0] - 1e-300 * 1e308, rtol=1e-12)
