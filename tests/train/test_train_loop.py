"""fit / evaluate / train_on_batch / checkpoints on small real tasks."""

import math

import numpy as np
import pytest

import rnndsl
from rnndsl import CheckpointError, DataError, TrainingError
from rnndsl.data import load_digits, train_test_split
from rnndsl.train.optimizers import SGD, Adam

DIGITS = "input x: float[8, 8]\noutput x | lstm(16) | dense(10)"


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits()
    return train_test_split(x, y, 0.2, 0)


def test_fit_learns_digits_and_history(digits):
    xtr, xte, ytr, yte = digits
    m = rnndsl.compile(DIGITS, seed=0).configure(loss="sparse_categorical_crossentropy",
                                                   optimizer=Adam(0.01), metrics=["accuracy"])
    h = m.fit(xtr[:600], ytr[:600], epochs=4, batch_size=32, validation_split=0.2, verbose=0, seed=1)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(h.history["loss"]) == 4 and h.history["loss"][-1] < h.history["loss"][0]
    loss, acc = m.evaluate(xte, yte)
    assert acc > 0.5, acc   # chance is 0.1
    assert m.evaluate(xte, yte, return_dict=True)["accuracy"] == acc


def test_train_on_batch_matches_manual_step():
    m = rnndsl.compile(DIGITS, dtype="float64", seed=3).configure(loss="sparse_categorical_crossentropy",
                                                                  optimizer=SGD(0.1))
    x, y = load_digits()
    w0 = m.get_weights()
    loss, grads = m.loss_and_gradients(x[:16], y[:16])
    got = m.train_on_batch(x[:16], y[:16])
    assert got == pytest.approx(loss)
    for w, g, new in zip(w0, grads, m.get_weights()):
        np.testing.assert_allclose(new, w - 0.1 * g, atol=1e-12)


def test_configure_defaults_from_train_section():
    m = rnndsl.compile(DIGITS + '\ntrain {\n loss = "sparse_categorical_crossentropy"\n optimizer = sgd\n'
                       ' metrics = ["accuracy"]\n}')
    x, y = load_digits()
    m.train_on_batch(x[:8], y[:8])
    assert m.train_config.optimizer.learning_rate == pytest.approx(0.01)   # Keras's sgd default
    assert m.train_config.from_logits == [True]


def test_loss_must_fit_output():
    with pytest.raises(TrainingError, match="at least 2 classes"):
        rnndsl.compile("input x: float[?, 2]\noutput x | lstm(3) | dense(1)").configure(
            loss="sparse_categorical_crossentropy")
    with pytest.raises(TrainingError, match="already applies softmax"):
        rnndsl.compile('input x: float[?, 2]\noutput x | lstm(3) | dense(3, activation="softmax")').configure(
            loss="sparse_categorical_crossentropy", from_logits=True)
    with pytest.raises(TrainingError, match="not configured"):
        rnndsl.compile(DIGITS).train_on_batch(np.zeros((1, 8, 8)), [0])


def test_bad_labels_and_lengths_before_training():
    m = rnndsl.compile(DIGITS).configure(loss="sparse_categorical_crossentropy")
    x = np.zeros((10, 8, 8))
    with pytest.raises(DataError, match=r"label 12 .* out of range: the output has 10 classes"):
        m.fit(x, np.r_[np.zeros(9), 12], verbose=0)
    with pytest.raises(DataError, match="x has 10 samples but the targets for 'dense' have 9"):
        m.fit(x, np.zeros(9), verbose=0)


def test_nan_loss_stops_with_epoch_and_batch_and_keeps_good_weights():
    m = rnndsl.compile(DIGITS).configure(loss="sparse_categorical_crossentropy", optimizer=SGD(1e38))
    x, y = load_digits()
    with pytest.raises(TrainingError, match=r"at epoch 1, batch \d+") as info:
        m.fit(x[:256], y[:256], epochs=3, batch_size=32, verbose=0, shuffle=False)
    assert all(np.isfinite(w).all() for w in m.get_weights())
    assert info.value.epoch == 1


def test_early_stopping_restores_best():
    m = rnndsl.compile(DIGITS, seed=0).configure(loss="sparse_categorical_crossentropy", optimizer=SGD(5.0))
    x, y = load_digits()
    h = m.fit(x[:300], y[:300], epochs=12, validation_split=0.3, verbose=0, early_stopping=1, seed=0)
    best = int(np.argmin(h.history["val_loss"]))
    if h.stopped_early:
        assert len(h.history["val_loss"]) == best + 2
        assert m.evaluate(x[210:300], y[210:300]) == pytest.approx(h.history["val_loss"][best], rel=1e-5)


def test_resume_from_checkpoint_follows_same_curve(tmp_path):
    text = "input x: float[8, 8]\noutput x | gru(8, dropout=0.2, recurrent_dropout=0.2) | dense(10)"
    x, y = load_digits()
    x, y = x[:200], y[:200]
    a = rnndsl.compile(text, seed=4).configure(loss="sparse_categorical_crossentropy", optimizer="adam")
    full = a.fit(x, y, epochs=4, batch_size=50, verbose=0, seed=9).history["loss"]
    b = rnndsl.compile(text, seed=4).configure(loss="sparse_categorical_crossentropy", optimizer="adam")
    first = b.fit(x, y, epochs=2, batch_size=50, verbose=0, seed=9).history["loss"]
    b.save(tmp_path / "ckpt.npz")
    c = rnndsl.load_model(tmp_path / "ckpt.npz")
    assert c.epoch == 2
    rest = c.fit(x, y, epochs=4, batch_size=50, verbose=0, initial_epoch=c.epoch).history["loss"]
    np.testing.assert_allclose(first + rest, full, rtol=1e-6)


def test_checkpoint_errors(tmp_path):
    m = rnndsl.compile(DIGITS)
    p = tmp_path / "m.npz"
    m.save(p)
    data = p.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        rnndsl.load_model(tmp_path / "trunc.npz")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError):
        rnndsl.load_model(tmp_path / "foreign.npz")
    with pytest.raises(CheckpointError):
        rnndsl.load_model(tmp_path / "missing.npz")


def test_stateful_training_carries_state():
    m = rnndsl.compile("input x: float[?, 1]\noutput x | lstm(4, stateful=true) | dense(1)", dtype="float64")
    m.configure(loss="mse", optimizer=SGD(0.0))
    x = np.random.default_rng(0).normal(size=(2, 6, 1))
    l1 = m.train_on_batch(x[:, :3], np.zeros((2, 1)))
    l2 = m.train_on_batch(x[:, :3], np.zeros((2, 1)))
    assert l1 != l2          # the second call starts from the carried state
    m.reset_states()
    assert m.train_on_batch(x[:, :3], np.zeros((2, 1))) == pytest.approx(l1)


def test_recurrent_dropout_is_seeded_and_training_only():
    text = "input x: float[?, 2]\noutput x | lstm(4, dropout=0.5, recurrent_dropout=0.5) | dense(2)"
    x, y = np.random.default_rng(1).normal(size=(3, 5, 2)), np.array([0, 1, 0])
    a, b = rnndsl.compile(text, seed=1), rnndsl.compile(text, seed=1)
    assert a.loss_and_gradients(x, y)[0] == b.loss_and_gradients(x, y)[0]
    assert a.loss_and_gradients(x, y)[0] != a.loss_and_gradients(x, y)[0]   # a fresh mask per call
    np.testing.assert_array_equal(a.predict(x), a.predict(x))                  # inference: no dropout
    assert math.isfinite(a.evaluate(x, y) if a.configure(loss="sparse_categorical_crossentropy") else 0)
