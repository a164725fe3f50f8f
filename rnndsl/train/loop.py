"""The training loop behind Model.configure / train_on_batch / fit / evaluate.

One train step: forward in training mode, loss, BPTT, a finite check, the
optimizer update, then the deferred updates (batchnorm's moving statistics).
A NaN or inf loss or gradient raises NonFiniteError *before* the update, and an
update that leaves a weight NaN or inf is undone before it is raised, so the
model keeps the weights (and optimizer state) of its last good step.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, NonFiniteError, RnnError, TrainingError, whole_number
from ..kernels.cpu import buffers
from ..kernels.cpu.ops import all_finite
from .losses import check_binary_labels, get_loss
from .metrics import get_metric
from .optimizers import Optimizer, get_optimizer
from .progress import Progbar
from .targets import flat_pred_target, input_list, output_loss, target_list

CROSSENTROPY = ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy")


NonFiniteLoss = NonFiniteError        # the name this module has always raised


@dataclass
class TrainConfig:
    losses: list[str]
    from_logits: list[bool]
    optimizer: Optimizer
    metric_names: list[str]
    metrics: list[list] = field(default_factory=list)   # per output

    def fresh_metrics(self):
        self.metrics = [[get_metric(n) for n in self.metric_names] for _ in self.losses]


@dataclass
class History:
    """Keras's History: `history` maps "loss", "accuracy", "val_loss", ... to per-epoch values."""

    history: dict = field(default_factory=dict)
    epoch: list = field(default_factory=list)
    stopped_early: bool = False

    def append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)


@dataclass
class EarlyStopping:
    """Stop when `monitor` has not improved for `patience` epochs; optionally restore the best weights."""

    monitor: str = "val_loss"
    patience: int = 3
    min_delta: float = 0.0
    restore_best_weights: bool = True
    best: float = math.inf
    best_weights: list | None = None
    wait: int = 0

    def update(self, model, logs: dict) -> bool:
        """True when training should stop."""
        value = logs.get(self.monitor, logs.get("loss"))
        if value is None:
            return False
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = model.get_weights()
            return False
        self.wait += 1
        if self.wait >= self.patience:
            if self.restore_best_weights and self.best_weights is not None:
                model.set_weights(self.best_weights)
            return True
        return False


# --- configuration ----------------------------------------------------------------------

def _output_activation(model, ref) -> str:
    node = model.graph.node(ref)
    return node.opts.get("activation", "linear") if node.kind == "dense" else "linear"


def configure(model, loss=None, optimizer=None, metrics=None, from_logits=None) -> TrainConfig:
    """Losses per output, an optimizer, metrics; defaults come from the spec's train section."""
    spec = model.graph.train
    loss = loss if loss is not None else spec.get("loss")
    if loss is None:
        raise TrainingError("no loss: pass configure(loss=...) or set `loss = ...` in the spec's train section")
    optimizer = optimizer if optimizer is not None else spec.get("optimizer", "adam")
    metrics = metrics if metrics is not None else spec.get("metrics", [])
    from_logits = from_logits if from_logits is not None else spec.get("from_logits")
    outs = model.graph.outputs
    losses = list(loss) if isinstance(loss, (list, tuple)) else [loss] * len(outs)
    if len(losses) != len(outs):
        raise TrainingError(f"{len(losses)} losses for {len(outs)} outputs")
    logits = []
    for name, out in zip(losses, outs):
        fn = get_loss(name)
        t = model.graph.type_of(out.ref)
        act = _output_activation(model, out.ref)
        key = fn.name
        if key in ("sparse_categorical_crossentropy", "categorical_crossentropy") and t.features < 2:
            raise TrainingError(f"loss {key} needs at least 2 classes, but output {out.name!r} has "
                                f"{t.features} feature(s); use binary_crossentropy or widen the dense layer")
        if key == "binary_crossentropy" and act == "softmax":
            raise TrainingError(f"output {out.name!r} ends in softmax; binary_crossentropy wants sigmoid or logits")
        if from_logits is None:
            fl = key in CROSSENTROPY and act not in ("softmax", "sigmoid")
        else:
            fl = bool(from_logits) and fn.takes_logits
            if fl and act in ("softmax", "sigmoid"):
                raise TrainingError(f"output {out.name!r} already applies {act}; set from_logits=false")
        logits.append(fl)
    opt = optimizer if isinstance(optimizer, Optimizer) else get_optimizer(optimizer)
    cfg = TrainConfig([get_loss(n).name for n in losses], logits, opt, list(metrics))
    cfg.fresh_metrics()
    return cfg


def _config(model) -> TrainConfig:
    cfg = getattr(model, "train_config", None)
    if cfg is None:
        if not model.graph.train.get("loss"):
            raise TrainingError("the model is not configured: call model.configure(loss=..., optimizer=...) "
                                "or give the spec a train section with a loss")
        cfg = model.train_config = configure(model)
    return cfg


# --- one step ---------------------------------------------------------------------------

def _finite_grads(grads) -> bool:
    return all(g is None or all_finite(np.ravel(g)) for g in grads)


def train_on_batch(model, x, y, cfg: TrainConfig | None = None, targets_listed: bool = False) -> float:
    cfg = cfg or _config(model)
    if not targets_listed:      # fit has checked its data already
        xs, y = input_list(x, model.input_names), as_targets(model, y)
        check_data(model, xs, y, cfg)
        targets_listed = True
    ex = model.executor
    pool = getattr(ex, "pool", None)
    # the step's large arrays come from (and go back to) the executor's pool: nothing made
    # inside escapes the step, and the next step reuses them (kernels/cpu/buffers.py)
    with buffers.reusing(pool) if pool is not None else contextlib.nullcontext():
        tape = ex.forward(ex.prepare_inputs(x), training=True, input_grads=False)
        ys = y if targets_listed else target_list(y, model.output_names)
        loss, d_outs = output_loss(tape.outputs, ys, cfg.losses, cfg.from_logits, model.output_names)
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"the loss became {loss}")
        grads, _ = ex.backward(tape, d_outs)
        if not _finite_grads(grads):
            bad = [n for n, g in zip(model.weight_names(), grads) if g is not None and not np.isfinite(g).all()]
            raise NonFiniteLoss(f"gradients became NaN or inf (in {', '.join(bad[:3])})")
        ex.apply_update(cfg.optimizer, grads)
        for arr, new in tape.ctx.updates:
            arr[...] = new
        _update_metrics(model, cfg, tape.outputs, ys)
    return float(loss)


def _update_metrics(model, cfg, outputs, ys) -> None:
    for metrics, act, y, out in zip(cfg.metrics, outputs, ys, model.graph.outputs):
        if metrics:
            pred, target, w = flat_pred_target(act, y, out.name)
            for m in metrics:
                m.update_state(pred, target, w)


def _metric_logs(model, cfg, prefix="") -> dict:
    logs = {}
    multi = len(cfg.metrics) > 1
    for metrics, out in zip(cfg.metrics, model.graph.outputs):
        for m in metrics:
            logs[f"{prefix}{out.name + '_' if multi else ''}{m.name}"] = m.result()
    return logs


# --- data checks ------------------------------------------------------------------------

def as_targets(model, y) -> list[np.ndarray]:
    """The targets per output as arrays of numbers in native byte order."""
    out = []
    for name, t in zip(model.output_names, target_list(y, model.output_names)):
        try:
            t = np.asarray(t)
        except (ValueError, TypeError) as e:     # ragged lists and the like
            raise DataError(f"targets for {name!r}: cannot make an array of them ({e})") from None
        if t.dtype.kind not in "biuf":
            raise DataError(f"targets for {name!r} must be numbers, got dtype {t.dtype}"
                            + (" (labels must be class ids 0..C-1, not strings)" if t.dtype.kind in "USO" else ""))
        if not t.dtype.isnative:
            t = t.astype(t.dtype.newbyteorder("="))
        out.append(t)
    return out


def check_data(model, xs: list, ys: list, cfg: TrainConfig) -> None:
    """Problems that would otherwise surface mid-epoch: lengths, label ranges, target shapes."""
    if not xs or np.ndim(xs[0]) == 0 or len(xs[0]) == 0:
        raise DataError(f"no samples: the input has shape {np.shape(xs[0]) if xs else None}")
    n = len(xs[0])
    for name, a in zip(model.input_names, xs):
        if np.ndim(a) == 0 or len(a) != n:
            raise DataError(f"inputs have different numbers of samples: {model.input_names[0]!r} has {n}, "
                            f"{name!r} has {len(a)}")
    for out, y, loss in zip(model.graph.outputs, ys, cfg.losses):
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != n:
            raise DataError(f"x has {n} samples but the targets for {out.name!r} have "
                            f"{len(y) if y.ndim else 'none (a single number)'}")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise DataError(f"the targets for {out.name!r} hold NaN or inf")
        t = model.graph.type_of(out.ref)
        if loss == "sparse_categorical_crossentropy":
            if y.dtype.kind == "f" and np.any(y != np.round(y)):
                raise DataError(f"targets for {out.name!r} must be class ids for {loss}, got fractional values")
            if y.size and (y.min() < 0 or y.max() >= t.features):
                bad = int(y.min()) if y.min() < 0 else int(y.max())
                raise DataError(f"label {bad} in the targets for {out.name!r} is out of range: the output has "
                                f"{t.features} classes (labels 0..{t.features - 1})")
        elif loss == "binary_crossentropy" and y.dtype.kind in "fiub":
            try:
                check_binary_labels(y, loss)
            except DataError as e:
                raise DataError(f"targets for output {out.name!r}: {e}") from None


# --- fit and evaluate -------------------------------------------------------------------

def _slice(arrays, idx):
    return [a[idx] for a in arrays]


def fit(model, x, y, batch_size=32, epochs=1, validation_data=None, validation_split=0.0, shuffle=True,
        seed=None, verbose="auto", callbacks=None, initial_epoch=0, early_stopping=None, stream=None) -> History:
    cfg = _config(model)
    stream = stream or sys.stdout
    verbose = 1 if verbose == "auto" else int(verbose)
    batch_size = whole_number("batch_size", batch_size, 1)
    epochs = whole_number("epochs", epochs, 0)
    initial_epoch = whole_number("initial_epoch", initial_epoch, 0)
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) or \
            not 0 <= validation_split < 1:
        raise DataError(f"validation_split must be a fraction in [0, 1), got {validation_split!r}")
    xs, ys = input_list(x, model.input_names), as_targets(model, y)
    check_data(model, xs, ys, cfg)
    n = len(xs[0])
    if validation_data is None and validation_split:
        # Keras takes the validation samples from the end, before shuffling.
        cut = n - int(round(n * validation_split))
        if cut <= 0 or cut >= n:
            raise DataError(f"validation_split={validation_split} leaves no training or no validation samples of {n}")
        vx, vy = _slice(xs, slice(cut, None)), _slice(ys, slice(cut, None))
        xs, ys, n = _slice(xs, slice(0, cut)), _slice(ys, slice(0, cut)), cut
    elif validation_data is not None:
        try:
            vx, vy = validation_data
        except (TypeError, ValueError):
            raise DataError("validation_data must be a pair (x, y)") from None
        vx, vy = input_list(vx, model.input_names), as_targets(model, vy)
        check_data(model, vx, vy, cfg)
    validating = validation_data is not None or bool(validation_split)
    if seed is not None:
        model.reseed(seed)
    stopper = early_stopping
    if isinstance(stopper, int):
        stopper = EarlyStopping(patience=stopper)
    history = History()
    steps = math.ceil(n / batch_size)
    for epoch in range(initial_epoch, epochs):
        if verbose:
            stream.write(f"Epoch {epoch + 1}/{epochs}\n")
        # the loss and metrics given are the epoch's running figures: shown as they are, so
        # the bar's last line is what the History records
        bar = Progbar(steps, verbose=verbose, stream=stream, stateful_metrics=True)
        order = model.fit_rng.permutation(n) if shuffle else np.arange(n)
        cfg.fresh_metrics()
        total, seen = 0.0, 0
        for step in range(steps):
            idx = order[step * batch_size:(step + 1) * batch_size]
            try:
                loss = train_on_batch(model, _slice(xs, idx), [t[idx] for t in ys], cfg, targets_listed=True)
            except NonFiniteLoss as e:
                raise NonFiniteLoss(f"{e} at epoch {epoch + 1}, batch {step + 1}; training stopped and the "
                                    "weights are those of the last good step (lower the learning rate or "
                                    "clip gradients with clipnorm)", epoch + 1, step + 1) from None
            total += loss * len(idx)
            seen += len(idx)
            if getattr(model, "stop_requested", False):
                # set by a SIGINT handler: stop between batches, never inside compiled code
                model.stop_requested = False
                raise KeyboardInterrupt
            bar.update(step + 1, {"loss": total / seen, **_metric_logs(model, cfg)}, finalize=False)
        logs = {"loss": total / seen, **_metric_logs(model, cfg)}
        if validating:
            logs.update(evaluate(model, vx, vy, batch_size=batch_size, return_dict=True, prefix="val_"))
        bar.update(steps, logs, finalize=True)
        model.epoch = epoch + 1
        history.append(epoch, logs)
        for cb in callbacks or ():
            cb(model, epoch + 1, logs)
        if stopper is not None and stopper.update(model, logs):
            history.stopped_early = True
            if verbose:
                stream.write(f"Early stopping after epoch {epoch + 1}: {stopper.monitor} did not improve "
                             f"for {stopper.patience} epochs\n")
            break
    return history


def evaluate(model, x, y, batch_size=32, return_dict=False, prefix="", verbose=0):
    """Loss (and metrics) over the whole data in inference mode, weighted by batch size."""
    cfg = _config(model)
    batch_size = whole_number("batch_size", batch_size, 1)
    xs, ys = (x, y) if prefix else (input_list(x, model.input_names), as_targets(model, y))
    check_data(model, xs, ys, cfg)
    n = len(xs[0])
    metrics = [[get_metric(name) for name in cfg.metric_names] for _ in ys]
    saved, cfg.metrics = cfg.metrics, metrics
    total = 0.0
    try:
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            ex = model.executor
            tape = ex.forward(ex.prepare_inputs(_slice(xs, sl)), training=False)
            part = [t[sl] for t in ys]
            loss, _ = output_loss(tape.outputs, part, cfg.losses, cfg.from_logits, model.output_names)
            total += loss * len(part[0])
            _update_metrics(model, cfg, tape.outputs, part)
        logs = {f"{prefix}loss": total / n, **_metric_logs(model, cfg, prefix)}
    finally:
        cfg.metrics = saved
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


__all__ = ["configure", "train_on_batch", "fit", "evaluate", "History", "EarlyStopping", "TrainConfig",
           "NonFiniteLoss", "RnnError"]
