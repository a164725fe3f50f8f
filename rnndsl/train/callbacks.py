"""Callbacks as Keras 3 has them: hooks that fit calls around training, epochs and batches.

    m.fit(x, y, epochs=50, validation_split=0.1, callbacks=[
        EarlyStopping(patience=5, restore_best_weights=True),
        ReduceLROnPlateau(factor=0.5, patience=2),
        ModelCheckpoint("best.ckpt.npz", save_best_only=True),
        CSVLogger("history.csv")])

The order of the calls (fit, train/loop.py), as in Keras: on_train_begin; per epoch
on_epoch_begin(epoch), per batch on_train_batch_begin(batch) and
on_train_batch_end(batch, logs) (which call on_batch_begin / on_batch_end), then the
validation (on_test_begin, on_test_batch_begin/end, on_test_end) and
on_epoch_end(epoch, logs); on_train_end(logs) last. Epochs and batches count from 0;
`logs` holds the running loss and metrics (a batch's) or the epoch's figures with the
validation's as val_... A callback may add to the epoch's logs (ReduceLROnPlateau and
LearningRateScheduler add "learning_rate"): History, always the last callback, records
what the others left. Setting ``model.stop_training = True`` ends training after the
current batch (from a batch hook) or epoch.

Each callback has ``model`` and ``params`` ({"epochs", "steps", "verbose"}) set by fit.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, NonFiniteError, TrainingError
from .checkpoint import unwritable
from .metrics import Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy

__all__ = ["Callback", "CallbackList", "as_callbacks", "History", "LambdaCallback", "EarlyStopping", "ModelCheckpoint",
           "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger", "TerminateOnNaN", "TensorBoard"]


class Callback:
    """The base class: every hook does nothing. Subclass it and override the hooks needed."""

    def __init__(self):
        self.params: dict = {}
        self.model = None

    def set_params(self, params: dict) -> None:
        self.params = params

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...

    def _say(self, text: str) -> None:
        """A message for the user, on fit's output stream."""
        stream = self.params.get("stream") or sys.stdout
        stream.write(text + "\n")
        stream.flush()


def _overrides(cb, *names) -> bool:
    return any(getattr(type(cb), n) is not getattr(Callback, n) for n in names)


class CallbackList:
    """The callbacks of one fit, called in order. Plain functions ``fn(model, epoch, logs)``
    (rnndsl's older form, epoch counted from 1) are called at each epoch's end."""

    def __init__(self, callbacks, model, params: dict):
        self.callbacks = as_callbacks(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        # the batch hooks run per batch: only the callbacks that have them are called
        self._train_batch = [cb for cb in self.callbacks if _overrides(
            cb, "on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")]
        self._test_batch = [cb for cb in self.callbacks if _overrides(
            cb, "on_test_batch_begin", "on_test_batch_end")]

    @property
    def batch_hooks(self) -> bool:
        return bool(self._train_batch)

    @property
    def test_batch_hooks(self) -> bool:
        return bool(self._test_batch)

    def stops_on_nonfinite(self) -> bool:
        """A callback asks that a NaN or inf loss stop training rather than raise."""
        return any(isinstance(cb, TerminateOnNaN) and not cb.raise_error for cb in self.callbacks)

    def on_train_begin(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        for cb in self._train_batch:
            cb.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        for cb in self._train_batch:
            cb.on_train_batch_end(batch, logs)

    def on_test_begin(self, logs=None):
        for cb in self.callbacks:
            cb.on_test_begin(logs)

    def on_test_end(self, logs=None):
        for cb in self.callbacks:
            cb.on_test_end(logs)

    def on_test_batch_begin(self, batch, logs=None):
        for cb in self._test_batch:
            cb.on_test_batch_begin(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        for cb in self._test_batch:
            cb.on_test_batch_end(batch, logs)


def as_callbacks(callbacks) -> list[Callback]:
    """fit's `callbacks` as a list of Callback objects (functions wrapped), checked."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or callable(callbacks) or isinstance(callbacks, (str, bytes, dict)):
        raise TrainingError(f"callbacks must be a list, e.g. callbacks=[EarlyStopping(patience=3)], got "
                            f"{type(callbacks).__name__}")
    return [cb if isinstance(cb, Callback) else _EpochFunction(cb) for cb in callbacks]


class _EpochFunction(Callback):
    def __init__(self, fn):
        super().__init__()
        if isinstance(fn, type):
            raise TrainingError(f"callbacks holds the class {fn.__name__}; pass an instance: {fn.__name__}(...)")
        if not callable(fn):
            raise TrainingError(f"a callback must be a Callback or a function fn(model, epoch, logs), "
                                f"got {type(fn).__name__}")
        self.fn = fn

    def on_epoch_end(self, epoch, logs=None):
        self.fn(self.model, epoch + 1, logs)


class LambdaCallback(Callback):
    """A callback from functions: on_epoch_begin(epoch, logs), on_epoch_end(epoch, logs),
    on_batch_begin(batch, logs), on_batch_end(batch, logs), on_train_begin(logs),
    on_train_end(logs); those not given do nothing."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_batch_begin=None, on_batch_end=None,
                 on_train_begin=None, on_train_end=None):
        super().__init__()
        for name, fn in (("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_batch_begin", on_batch_begin), ("on_batch_end", on_batch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end)):
            if fn is not None:
                setattr(self, name, fn)

    # an instance attribute is not seen by CallbackList's look at the class: say so here
    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)


class History(Callback):
    """Keras's History: ``history`` maps "loss", "accuracy", "val_loss", ... to per-epoch
    values, ``epoch`` lists the epochs run; ``stopped_early`` says training ended before
    its last epoch because model.stop_training was set (EarlyStopping, TerminateOnNaN)."""

    def __init__(self):
        super().__init__()
        self.history: dict = {}
        self.epoch: list = []
        self.stopped_early = False

    def append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.append(epoch, logs or {})


# --- callbacks that watch a figure ------------------------------------------------------

_UP = (Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy)


def _logged_metrics(model) -> dict:
    """The model's metrics by the name its logs give them (an output's name first when
    there are several outputs)."""
    cfg = getattr(model, "train_config", None)
    if cfg is None:
        return {}
    multi = len(cfg.metrics) > 1
    out = {}
    for metrics, name in zip(cfg.metrics, model.output_names):
        for m in metrics:
            out[f"{name + '_' if multi else ''}{m.name}"] = m
    return out


class _Monitor(Callback):
    """The comparison of Keras's MonitorCallback: mode "min", "max" or "auto" (min for a
    loss, max for an accuracy; anything else needs a mode); min_delta is the least change
    that counts as an improvement."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0.0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.",
                          stacklevel=3)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(float(min_delta))
        self._sign = None            # +1: lower is better; -1: higher is better

    def _set_direction(self):
        if self.mode != "auto":
            self._sign = 1 if self.mode == "min" else -1
            return
        name = self.monitor.removeprefix("val_")
        if name == "loss":
            self._sign = 1
            return
        m = _logged_metrics(self.model).get(name)
        if m is None:
            raise TrainingError(f"{type(self).__name__} watches {self.monitor!r}, and rnndsl cannot tell whether it "
                                "should go up or down; pass mode='max' (to keep the highest value) or mode='min'")
        self._sign = -1 if isinstance(m, _UP) else 1

    def _is_improvement(self, value, reference) -> bool:
        if self._sign is None:
            self._set_direction()
        if reference is None:
            return True
        if self._sign > 0:
            return value + self.min_delta < reference
        return value - self.min_delta > reference


class EarlyStopping(_Monitor):
    """Stop training when `monitor` has not improved for `patience` epochs (Keras 3).

    An epoch improves when its value beats the best so far by more than min_delta; each
    epoch that does not adds one to the wait, an improvement resets it (with a baseline,
    only an improvement that also beats the baseline resets it). Training stops after an
    epoch (not the first) that leaves the wait at patience or more. With
    restore_best_weights the weights of the best epoch are put back when training ends,
    stopped early or not. start_from_epoch: epochs not watched at the start."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self._sign is None:
            self._set_direction()       # an unknown direction is an error at the first epoch, as in Keras
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            self._say(f"Epoch {self.stopped_epoch + 1}: early stopping ({self.monitor} did not improve for "
                      f"{self.patience} epoch{'s' if self.patience != 1 else ''})")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                self._say(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(logs or {})}", stacklevel=2)
        return value


class ModelCheckpoint(_Monitor):
    """Save the model (Model.save: spec, weights, optimizer state, epoch; atomic, no pickle)
    at each epoch's end, or every `save_freq` batches.

    filepath may name the epoch (from 1) and any log value: "ckpt-{epoch:02d}-{val_loss:.3f}.npz".
    save_best_only: save only when `monitor` improves on the best so far (or on
    initial_value_threshold); a missing monitor saves (with a warning), as in Keras.
    A checkpoint saved mid-epoch (save_freq=N batches) records the epochs completed."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = save_best_only
        if save_weights_only:
            raise TrainingError("rnndsl checkpoints always hold the whole model (spec, weights, optimizer state); "
                                "save_weights_only is not supported: leave it False and read the weights with "
                                "rnndsl.load_model(path).get_weights()")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise TrainingError(f"save_freq must be 'epoch' or a whole number of batches >= 1, got {save_freq!r}")
        self.save_freq = save_freq
        self._batches = 0
        self._epoch = 0

    def on_train_begin(self, logs=None):
        # a folder that cannot be written is found before training, not after its first epoch
        folder = os.path.dirname(self.filepath)
        if folder and "{" not in folder:
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as e:
                raise CheckpointError(f"ModelCheckpoint: cannot make the folder {folder}: {e.strerror or e}") from None
        if "{" not in self.filepath:
            why = unwritable(self.filepath)
            if why:
                raise CheckpointError(f"ModelCheckpoint: cannot write {self.filepath}: {why}")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches += 1
        if self._batches >= self.save_freq:
            self._batches = 0
            self._save(self._epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _path(self, epoch, batch, logs) -> str:
        values = dict(logs or {})
        if batch is not None and "batch" not in values:
            values["batch"] = batch + 1
        try:
            return self.filepath.format(epoch=epoch + 1, **values)
        except (KeyError, IndexError, ValueError) as e:
            raise TrainingError(f"ModelCheckpoint cannot fill in its filepath {self.filepath!r}: "
                                f"{type(e).__name__}: {e} (it may name epoch and the logs: "
                                f"{', '.join(values) or 'none'})") from None

    def _save(self, epoch, batch, logs):
        path = self._path(epoch, batch, logs)
        if self.save_best_only:
            current = (logs or {}).get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=2)
            else:
                best = "None" if self.best is None else f"{self.best:.5f}"
                if not self._is_improvement(current, self.best):
                    if self.verbose > 0:
                        self._say(f"Epoch {epoch + 1}: {self.monitor} did not improve from {best}")
                    return
                if self.verbose > 0:
                    self._say(f"Epoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, "
                              f"saving model to {path}")
                self.best = current
        elif self.verbose > 0:
            self._say(f"Epoch {epoch + 1}: saving model to {path}")
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self.model.save(path)


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by `factor` when `monitor` has not improved for
    `patience` epochs (Keras 3): not below min_lr; after a reduction, `cooldown` epochs
    in which the wait does not grow. Adds "learning_rate" (the rate the epoch ran with)
    to the epoch's logs."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta=min_delta)
        if factor >= 1.0:
            raise TrainingError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor = factor
        self.min_lr = min_lr
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        _settable_rate(self.model, type(self).__name__)
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = self.model.optimizer
        logs["learning_rate"] = float(opt.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs)}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old = float(opt.learning_rate)
                # Keras holds the rate as float32: the same comparison, so that it stops alike
                if np.float32(old) > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    opt.learning_rate = new
                    if self.verbose > 0:
                        self._say(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


def _settable_rate(model, who: str) -> None:
    opt = getattr(model, "optimizer", None)
    if opt is None:
        raise TrainingError(f"{who} needs a configured model (model.configure(...))")
    if opt.schedule is not None:
        raise TrainingError(f"{who} sets the learning rate, but the optimizer's follows a schedule "
                            f"({type(opt.schedule).__name__}); use one or the other")


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch's start to schedule(epoch, lr) (or schedule(epoch)),
    epoch counted from 0; adds "learning_rate" to the epoch's logs (Keras 3)."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        _settable_rate(self.model, type(self).__name__)

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        try:
            lr = self.schedule(epoch, float(opt.learning_rate))
        except TypeError:
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, np.float32, np.float64)):
            raise TrainingError(f"The output of the `schedule` function should be a float. Got: {lr!r}")
        opt.learning_rate = float(lr)
        if self.verbose > 0:
            self._say(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class CSVLogger(Callback):
    """One row per epoch: "epoch" (from 0) and every log value, the columns sorted by name
    as Keras writes them; without validation the val_ columns are there too, holding NA.
    append=True continues an existing file (its header kept). Each row is flushed."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys = None
        self._file = None
        self._writer = None
        self._header = True

    def on_train_begin(self, logs=None):
        why = unwritable(self.filename)
        if why:
            raise TrainingError(f"CSVLogger: cannot write {self.filename}: {why}")
        mode = "w"
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, encoding="utf-8", newline="") as f:
                    self._header = not f.readline()
            mode = "a"
        self.close()
        try:
            self._file = open(self.filename, mode, encoding="utf-8", newline="")
        except OSError as e:
            raise TrainingError(f"CSVLogger: cannot write {self.filename}: {e.strerror or e}") from None
        self._writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._file is None:
            return
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self.keys, delimiter=self.sep,
                                          lineterminator="\n")
            if self._header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, logs.get(k, "NA")) for k in self.keys)
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        self.close()

    def close(self):
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._file = None
        self._writer = None


class TerminateOnNaN(Callback):
    """Stop training when a batch's loss is NaN or inf, keeping the weights of the last good
    step (rnndsl does not apply a step whose loss or gradients are not finite). Without
    it fit raises NonFiniteError there; raise_error=True raises it anyway."""

    def __init__(self, raise_error: bool = False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            if self.raise_error:
                raise NonFiniteError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                                     "Terminating training immediately.", batch=batch + 1)
            self._say(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class TensorBoard(Callback):
    """Scalars for TensorBoard, written as Keras writes them: per epoch "epoch_loss",
    "epoch_<metric>" and "epoch_learning_rate" in log_dir/train, the validation's (val_
    removed) in log_dir/validation, the step being the epoch (from 0); with update_freq=N
    also "batch_<name>" every N batches, the step counting batches. Needs the tensorboard
    package (pip install 'rnndsl[tensorboard]')."""

    def __init__(self, log_dir="logs", update_freq="epoch"):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        if update_freq != "epoch" and (isinstance(update_freq, bool) or not isinstance(update_freq, int)
                                       or update_freq < 1):
            raise TrainingError(f"update_freq must be 'epoch' or a whole number of batches >= 1, got {update_freq!r}")
        self.update_freq = update_freq
        self._writers: dict = {}
        self._proto = tensorboard_writer()     # the error comes when the callback is made, not mid-run
        self._batch = 0

    def _writer(self, which: str):
        w = self._writers.get(which)
        if w is None:
            path = Path(self.log_dir) / which
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise TrainingError(f"TensorBoard: cannot make {path}: {e.strerror or e}") from None
            w = self._writers[which] = self._proto[0](str(path))
        return w

    def _scalars(self, which: str, values: dict, step: int) -> None:
        _, event_pb2, summary_pb2 = self._proto
        items = [summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()
                 if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)]
        if items:
            self._writer(which).add_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                                          summary=summary_pb2.Summary(value=items)))

    def on_train_begin(self, logs=None):
        self._batch = 0

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch":
            return
        self._batch += 1
        if self._batch % self.update_freq == 0:
            self._scalars("train", {f"batch_{k}": v for k, v in (logs or {}).items()}, self._batch)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {f"epoch_{k}": v for k, v in logs.items() if not k.startswith("val_")}
        opt = getattr(self.model, "optimizer", None)
        if opt is not None:
            train["epoch_learning_rate"] = float(opt.learning_rate)
        self._scalars("train", train, epoch)
        self._scalars("validation", {f"epoch_{k[4:]}": v for k, v in logs.items() if k.startswith("val_")}, epoch)
        for w in self._writers.values():
            w.flush()

    def on_train_end(self, logs=None):
        for w in self._writers.values():
            w.close()
        self._writers = {}


def tensorboard_writer():
    """(EventFileWriter, event_pb2, summary_pb2) from the tensorboard package, or a
    TrainingError saying how to install it."""
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as e:
        raise TrainingError("the TensorBoard callback needs the tensorboard package, which is not installed "
                            f"({e}); install it with: pip install 'rnndsl[tensorboard]' "
                            "(or pip install tensorboard)") from None
    return EventFileWriter, event_pb2, summary_pb2

