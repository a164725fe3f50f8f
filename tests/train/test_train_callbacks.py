"""Callbacks: the order fit calls them in, and each one's rule against Keras 3.15's numbers
(a script run against Keras 3.15: the same sequences of monitored values fed to Keras's callbacks)."""

import io
import os
import sys

import numpy as np
import pytest

import rnndsl
from rnndsl import CheckpointError, TrainingError
from rnndsl.callbacks import (CSVLogger, Callback, EarlyStopping, LambdaCallback, LearningRateScheduler,
                              ModelCheckpoint, ReduceLROnPlateau, TensorBoard, TerminateOnNaN)
from rnndsl.optimizers import SGD
from rnndsl.schedules import ExponentialDecay
from rnndsl.train.loop import fit           # the loop itself: it takes the output stream

X = np.random.default_rng(0).normal(size=(12, 3))
Y = np.array([0, 1, 2] * 4)
VALUES = [1.0, 0.9, 0.95, 0.96, 0.97, 0.8, 0.85, 0.86, 0.87, 0.88, 0.89, 0.9]


@pytest.fixture(scope="module")
def model():
    return rnndsl.compile("input x: float[3]\noutput x | dense(3)", dtype="float64", seed=1)


def fresh(m, lr=0.1, metrics=()):
    m.set_weights([np.full((3, 3), 0.1), np.zeros(3)])
    return m.configure(loss="sparse_categorical_crossentropy", optimizer=SGD(lr), metrics=list(metrics))


class Fake(Callback):
    """Replaces a logged figure with the next of `values` at each epoch's end (placed first)."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


def feed(model, cb, values, key="val_loss"):
    """Keras's script: the callback alone, on_epoch_end per value, until stop_training."""
    cb.set_model(model)
    model.stop_training = False
    cb.on_train_begin()
    for e, v in enumerate(values):
        cb.on_epoch_end(e, {key: v, "val_accuracy": -v} if key == "val_loss" else {key: v})
        if model.stop_training:
            return e
    return None


@pytest.mark.parametrize("kw, keras", [
    (dict(patience=2), (3, 1, 0.9)),
    (dict(patience=0), (2, 1, 0.9)),
    (dict(patience=3, baseline=0.85), (2, 1, 0.9)),
    (dict(patience=2, start_from_epoch=3), (7, 5, 0.8)),
    (dict(patience=2, monitor="val_accuracy", min_delta=0.06, mode="max"), (3, 1, -0.9)),
])
def test_early_stopping_matches_keras(model, kw, keras):
    fresh(model)
    cb = EarlyStopping(**kw)
    assert (feed(model, cb, VALUES), cb.best_epoch, cb.best) == keras
    cb = EarlyStopping(patience=1)
    assert (feed(model, cb, [1.0, 1.0, 1.0]), cb.best_epoch, cb.best) == (1, 0, 1.0)


def test_early_stopping_direction_from_the_metric(model):
    fresh(model, metrics=["accuracy"])
    cb = EarlyStopping(monitor="val_accuracy", patience=0)
    assert feed(model, cb, [0.5, 0.6, 0.7], key="val_accuracy") is None     # accuracy: higher is better
    fresh(model)
    with pytest.raises(TrainingError, match="pass mode='max'"):
        feed(model, EarlyStopping(monitor="val_f1", patience=0), [0.5, 0.4], key="val_f1")


# Keras's learning rates after each epoch (ReduceLROnPlateau from SGD(0.1), VALUES as val_loss)
PLATEAU = [
    (dict(patience=2, factor=0.5), [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.00625]),
    (dict(patience=1, factor=0.5, cooldown=2, min_lr=0.02),
     [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02]),
    (dict(patience=2, factor=0.5, min_delta=0.1),
     [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125, 0.00625, 0.00625, 0.003125]),
]


@pytest.mark.parametrize("kw, keras", PLATEAU)
def test_reduce_lr_on_plateau_matches_keras(model, kw, keras):
    fresh(model)
    cb = ReduceLROnPlateau(**kw)
    cb.set_model(model)
    cb.on_train_begin()
    after, logged = [], []
    for e, v in enumerate(VALUES):
        logs = {"val_loss": v}
        cb.on_epoch_end(e, logs)
        logged.append(logs["learning_rate"])
        after.append(model.optimizer.learning_rate)
    np.testing.assert_allclose(after, keras, rtol=1e-6)
    np.testing.assert_allclose(logged, [0.1] + keras[:-1], rtol=1e-6)     # the rate the epoch ran with


def test_rate_callbacks_refuse_a_scheduled_optimizer(model):
    model.configure(loss="sparse_categorical_crossentropy", optimizer=SGD(ExponentialDecay(0.1, 10, 0.5)))
    for cb in (ReduceLROnPlateau(), LearningRateScheduler(lambda e: 0.1)):
        with pytest.raises(TrainingError, match="follows a schedule"):
            model.fit(X, Y, verbose=0, callbacks=[cb])
    with pytest.raises(TrainingError, match="factor >= 1.0"):
        ReduceLROnPlateau(factor=1.5)


class Counting(Callback):
    """Overrides every hook (so that fit calls all of them) and records the calls."""

    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None): self.events.append("train_begin")
    def on_train_end(self, logs=None): self.events.append("train_end")
    def on_epoch_begin(self, epoch, logs=None): self.events.append(f"epoch_begin {epoch}")
    def on_epoch_end(self, epoch, logs=None): self.events.append(f"epoch_end {epoch} {sorted(logs)}")
    def on_batch_begin(self, batch, logs=None): self.events.append(f"batch_begin {batch}")
    def on_batch_end(self, batch, logs=None): self.events.append(f"batch_end {batch} {sorted(logs)}")
    def on_test_begin(self, logs=None): self.events.append("test_begin")
    def on_test_end(self, logs=None): self.events.append(f"test_end {sorted(logs)}")
    def on_test_batch_begin(self, batch, logs=None): self.events.append(f"test_batch_begin {batch}")
    def on_test_batch_end(self, batch, logs=None): self.events.append(f"test_batch_end {batch}")


def test_fit_calls_the_hooks_in_keras_order(model):
    fresh(model, metrics=["accuracy"])
    cb = Counting()
    h = model.fit(X, Y, batch_size=6, epochs=1, verbose=0, validation_data=(X[:4], Y[:4]), callbacks=[cb])
    assert cb.events == [
        "train_begin", "epoch_begin 0",
        "batch_begin 0", "batch_end 0 ['accuracy', 'loss']", "batch_begin 1", "batch_end 1 ['accuracy', 'loss']",
        "test_begin", "test_batch_begin 0", "test_batch_end 0", "test_end ['accuracy', 'loss']",
        "epoch_end 0 ['accuracy', 'loss', 'val_accuracy', 'val_loss']", "train_end"]
    assert cb.params == {"epochs": 1, "steps": 2, "verbose": 0, "stream": sys.stdout}
    assert cb.model is model and model.history is h


def test_stop_training_from_a_batch_and_the_older_function_form(model):
    fresh(model)
    seen = []
    stop = LambdaCallback(on_batch_end=lambda batch, logs: setattr(model, "stop_training", batch == 0))
    h = model.fit(X, Y, batch_size=4, epochs=5, verbose=0,
                  callbacks=[stop, lambda m, epoch, logs: seen.append((m is model, epoch, sorted(logs)))])
    assert model.optimizer.iterations == 1 and h.epoch == [0] and h.stopped_early
    assert seen == [(True, 1, ["loss"])]              # the older form: epochs counted from 1


def test_early_stopping_restores_the_best_weights_in_fit(model):
    fresh(model)
    kept = []
    remember = LambdaCallback(on_epoch_end=lambda e, logs: kept.append(model.get_weights()))
    es = EarlyStopping(monitor="loss", patience=1, restore_best_weights=True, verbose=1)
    out = io.StringIO()
    h = model.fit(X, Y, epochs=6, verbose=0, callbacks=[Fake("loss", [3, 2, 2.5, 2.6, 1, 1]), remember, es])
    assert h.epoch == [0, 1, 2] and h.stopped_early and h.history["loss"] == [3, 2, 2.5]
    for w, best in zip(model.get_weights(), kept[1]):
        np.testing.assert_array_equal(w, best)
    fresh(model)
    fit(model, X, Y, epochs=3, verbose=1, stream=out,
        callbacks=[Fake("loss", [3, 2, 2.5]), EarlyStopping(monitor="loss", patience=1, verbose=1)])
    assert "Epoch 3: early stopping (loss did not improve for 1 epoch)" in out.getvalue()


def test_learning_rate_scheduler(model):
    fresh(model)
    h = model.fit(X, Y, epochs=3, verbose=0, callbacks=[LearningRateScheduler(lambda e, lr: lr if e == 0 else lr / 2)])
    np.testing.assert_allclose(h.history["learning_rate"], [0.1, 0.05, 0.025])
    h = model.fit(X, Y, epochs=2, verbose=0, callbacks=[LearningRateScheduler(lambda e: 0.01 * (e + 1))])
    np.testing.assert_allclose(h.history["learning_rate"], [0.01, 0.02])
    with pytest.raises(TrainingError, match="should be a float"):
        model.fit(X, Y, verbose=0, callbacks=[LearningRateScheduler(lambda e: 1)])


def test_model_checkpoint_saves_the_best_atomically_without_pickle(model, tmp_path):
    fresh(model)
    losses = [1.0, 0.8, 0.9, 0.7]
    model.fit(X, Y, epochs=4, verbose=0, callbacks=[
        Fake("val_loss", losses), ModelCheckpoint(tmp_path / "every" / "ck-{epoch:02d}-{val_loss:.1f}.npz",
                                                  save_best_only=True)])
    assert sorted(os.listdir(tmp_path / "every")) == ["ck-01-1.0.npz", "ck-02-0.8.npz", "ck-04-0.7.npz"]
    fresh(model)
    kept = []
    model.fit(X, Y, epochs=4, verbose=0, callbacks=[
        Fake("val_loss", [1.0, 0.8, 0.9, 0.95]), LambdaCallback(on_epoch_end=lambda e, l: kept.append(model.get_weights())),
        ModelCheckpoint(tmp_path / "best.npz", save_best_only=True)])
    best = rnndsl.load_model(tmp_path / "best.npz")
    assert best.epoch == 2
    for w, k in zip(best.get_weights(), kept[1]):
        np.testing.assert_array_equal(w, k)
    with np.load(tmp_path / "best.npz", allow_pickle=False) as z:       # plain arrays, no pickle
        assert len(z.files) > 2
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".rnndsl-tmp")]
    # every 2 batches: 3 batches an epoch, 2 epochs -> saves after batches 2, 4 and 6
    model.fit(X, Y, batch_size=4, epochs=2, verbose=0, callbacks=[ModelCheckpoint(tmp_path / "n{batch}.npz",
                                                                                  save_freq=2)])
    assert {f for f in os.listdir(tmp_path) if f.startswith("n")} == {"n2.npz", "n1.npz", "n3.npz"}


def test_model_checkpoint_errors_before_training(model, tmp_path):
    fresh(model)
    (tmp_path / "file").write_text("")
    with pytest.raises(CheckpointError, match="cannot make the folder"):
        model.fit(X, Y, verbose=0, callbacks=[ModelCheckpoint(tmp_path / "file" / "ck.npz")])
    assert model.optimizer.iterations == 0
    with pytest.raises(TrainingError, match="save_weights_only is not supported"):
        ModelCheckpoint(tmp_path / "w.npz", save_weights_only=True)
    with pytest.raises(TrainingError, match="cannot fill in its filepath"):
        model.fit(X, Y, verbose=0, callbacks=[ModelCheckpoint(tmp_path / "{val_acc}.npz")])


def test_csv_logger_rows_as_keras_writes_them(model, tmp_path):
    fresh(model, metrics=["accuracy"])
    path = tmp_path / "h.csv"
    h = model.fit(X, Y, epochs=2, verbose=0, validation_split=0.25, callbacks=[CSVLogger(path)])
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,accuracy,loss,val_accuracy,val_loss"
    row = [float(v) for v in lines[2].split(",")]
    assert row == [1, h.history["accuracy"][1], h.history["loss"][1], h.history["val_accuracy"][1],
                   h.history["val_loss"][1]]
    # without validation the val_ columns are there, NA; append keeps one header
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[CSVLogger(tmp_path / "n.csv", separator=";")])
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[CSVLogger(tmp_path / "n.csv", separator=";", append=True)])
    lines = (tmp_path / "n.csv").read_text().splitlines()
    assert lines[0] == "epoch;accuracy;loss;val_accuracy;val_loss" and len(lines) == 3
    assert lines[1].startswith("0;") and lines[1].endswith(";NA;NA")


def test_terminate_on_nan_stops_and_keeps_good_weights():
    model = rnndsl.compile("input x: float[3]\noutput x | dense(3)", seed=1)
    big = X * 1e10             # float32: the first update overflows
    fresh(model, lr=1e38)
    with pytest.raises(TrainingError, match=r"at epoch 1, batch \d"):
        model.fit(big, Y, batch_size=4, epochs=3, verbose=0, shuffle=False)
    fresh(model, lr=1e38)
    out = io.StringIO()
    h = fit(model, big, Y, batch_size=4, epochs=3, verbose=0, shuffle=False, callbacks=[TerminateOnNaN()], stream=out)
    assert h.stopped_early and len(h.epoch) == 1 and np.isnan(h.history["loss"][0])
    assert "Invalid loss, terminating training" in out.getvalue()
    assert all(np.isfinite(w).all() for w in model.get_weights())
    fresh(model, lr=1e38)
    with pytest.raises(TrainingError, match="at epoch 1"):
        model.fit(big, Y, batch_size=4, verbose=0, callbacks=[TerminateOnNaN(raise_error=True)])


def test_tensorboard_without_the_package_says_how_to_get_it(monkeypatch):
    for name in ("tensorboard", "tensorboard.compat", "tensorboard.compat.proto"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(TrainingError, match=r"needs the tensorboard package.*pip install 'rnndsl\[tensorboard\]'"):
        TensorBoard("logs")


def test_tensorboard_event_files(model, tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard package is not installed (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fresh(model, metrics=["accuracy"])
    h = model.fit(X, Y, epochs=2, verbose=0, validation_split=0.25, callbacks=[TensorBoard(tmp_path)])
    train, val = EventAccumulator(str(tmp_path / "train")), EventAccumulator(str(tmp_path / "validation"))
    train.Reload()
    val.Reload()
    assert sorted(train.Tags()["scalars"]) == ["epoch_accuracy", "epoch_learning_rate", "epoch_loss"]
    assert sorted(val.Tags()["scalars"]) == ["epoch_accuracy", "epoch_loss"]
    got = [(e.step, e.value) for e in val.Scalars("epoch_loss")]
    assert [s for s, _ in got] == [0, 1]
    np.testing.assert_allclose([v for _, v in got], h.history["val_loss"], rtol=1e-6)


def test_callbacks_must_be_a_list_of_instances(model):
    fresh(model)
    with pytest.raises(TrainingError, match="callbacks must be a list"):
        model.fit(X, Y, verbose=0, callbacks=EarlyStopping())
    with pytest.raises(TrainingError, match="pass an instance: EarlyStopping"):
        model.fit(X, Y, verbose=0, callbacks=[EarlyStopping])
    assert model.optimizer.iterations == 0
