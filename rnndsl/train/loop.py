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
import numbers
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, NonFiniteError, RnnError, TrainingError, whole_number
from ..kernels.cpu import buffers
from ..kernels.cpu.ops import abs_sum, all_finite
from .callbacks import CallbackList, EarlyStopping, History, as_callbacks
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
    if isinstance(optimizer, str) and "(" in optimizer:
        from .train_block import optimizer_from_text

        opt = optimizer_from_text(optimizer)          # the spec's form: "adam(learning_rate=0.003)"
    else:
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

def _grad_sums(model, grads) -> list:
    """sum |g| of each weight's gradient (None where it has none), one pass each: the
    optimizer's bound on the update takes them (Optimizer.stays_finite), and they tell a NaN
    or inf too (NonFiniteLoss names the weights). A float64 sum of finite float64 values
    can overflow: only then is each value looked at."""
    sums = [None if g is None else abs_sum(np.ravel(g)) for g in grads]
    if all(s is None or math.isfinite(s) for s in sums):
        return sums
    bad = [n for n, g, s in zip(model.weight_names(), grads, sums)
           if s is not None and not math.isfinite(s) and not all_finite(np.ravel(g))]
    if bad:
        raise NonFiniteLoss(f"gradients became NaN or inf (in {', '.join(bad[:3])})")
    return sums


def train_on_batch(model, x, y, cfg: TrainConfig | None = None, targets_listed: bool = False,
                   weights=None, sample_weight=None, class_weight=None) -> float:
    """One step. fit passes checked data (targets_listed) and its per-output sample weights
    (`weights`); from Model.train_on_batch, sample_weight and class_weight are Keras's."""
    cfg = cfg or _config(model)
    if not targets_listed:      # fit has checked its data already
        xs, y = input_list(x, model.input_names), as_targets(model, y)
        check_data(model, xs, y, cfg)
        weights = sample_weights(model, y, sample_weight, class_weight)
        targets_listed = True
    ex = model.executor
    pool = getattr(ex, "pool", None)
    # the step's large arrays come from (and go back to) the executor's pool: nothing made
    # inside escapes the step, and the next step reuses them (kernels/cpu/buffers.py)
    with buffers.reusing(pool) if pool is not None else contextlib.nullcontext():
        tape = ex.forward(ex.prepare_inputs(x), training=True, input_grads=False)
        ys = y if targets_listed else target_list(y, model.output_names)
        loss, d_outs = output_loss(tape.outputs, ys, cfg.losses, cfg.from_logits, model.output_names, weights)
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"the loss became {loss}")
        grads, _ = ex.backward(tape, d_outs)
        ex.apply_update(cfg.optimizer, grads, _grad_sums(model, grads))
        ex.apply_deferred(tape.ctx.updates)
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


def _shard_loss(model, cfg, tape, ys, weights, n_out):
    """Per output: (the shard's mean loss, its gradient, the shard's denominator D: rows, or
    unmasked steps of a per-step output), as output_loss computes each output's part."""
    parts = []
    for k in range(n_out):
        act = tape.outputs[k]
        value, grads = output_loss([act], [ys[k]], [cfg.losses[k]], [cfg.from_logits[k]], [model.output_names[k]],
                                   None if weights is None else [weights[k]])
        if act.data.ndim == 3:
            count = float(act.mask.sum()) if act.mask is not None else float(act.data.shape[0] * act.data.shape[1])
        else:
            count = float(act.data.shape[0])
        parts.append((value, grads[0], count))
    return parts


def _global_counts(model, dp, counts, rows: int) -> list:
    """The global batch's denominators: its rows for a vector output; summed over ranks (one
    small Allreduce) when a per-step output's masks make them depend on the data."""
    if any(_per_step(model, k) for k in range(len(counts))):
        return list(dp.sum(counts))
    return [float(rows)] * len(counts)


def _distributed_step(model, cfg, dp, x, ys, weights, rows: int) -> float:
    """One data-parallel step (train/distributed.py): this rank's shard (x, ys, weights) of a
    global batch of `rows`; gradients, the loss and the metrics' partial sums are summed over
    ranks in one Allreduce, and every rank applies the same update. Returns the global batch's loss."""
    ex = model.executor
    n_out = len(model.output_names)
    metrics = [m for ms in cfg.metrics for m in ms]
    before = [(m.total, m.count) for m in metrics]
    pool = getattr(ex, "pool", None)
    ex.allreduce = dp.sum               # batchnorm's moments over the global batch
    try:
        with buffers.reusing(pool) if pool is not None else contextlib.nullcontext():
            local = len(x[0])
            if local:
                tape = ex.forward(ex.prepare_inputs(x), training=True, input_grads=False)
                parts = _shard_loss(model, cfg, tape, ys, weights, n_out)
            else:                           # a last global batch with fewer rows than ranks
                parts = [(0.0, None, 0.0)] * n_out
            loss, d_outs = 0.0, []
            for (value, g, c), c_all in zip(parts, _global_counts(model, dp, [c for _, _, c in parts], rows)):
                scale = c / c_all if c_all > 0 else 0.0
                loss += float(value) * scale
                d_outs.append(None if g is None else g * g.dtype.type(scale))
            if local:
                grads, _ = ex.backward(tape, d_outs)
                _update_metrics(model, cfg, tape.outputs, ys)
            else:
                grads = [None] * len(ex.params)
            partial = [v for m, (t, c) in zip(metrics, before) for v in (m.total - t, m.count - c)]
            grads, extra = dp.reduce_step(grads, np.array([loss, *partial], np.float64))
            loss = float(extra[0])
            for k, (m, (t, c)) in enumerate(zip(metrics, before)):
                m.total, m.count = t + float(extra[1 + 2 * k]), c + float(extra[2 + 2 * k])
            # checked after the sum, so that every rank raises (or goes on) together
            if not math.isfinite(loss):
                raise NonFiniteLoss(f"the loss became {loss}")
            ex.apply_update(cfg.optimizer, grads, _grad_sums(model, grads))
            if local:   # batchnorm's moving statistics: global moments, alike on every rank
                ex.apply_deferred(tape.ctx.updates)
    finally:
        ex.allreduce = None
    return loss


def _stateful(model) -> bool:
    return any(n.opts.get("stateful") or getattr(n.opts.get("layer"), "opts", {}).get("stateful")
               for n in model.graph.nodes)


def _check_distributable(model, source, n, batch_size, dp) -> None:
    if source is not None:
        raise TrainingError("distributed fit takes arrays (x, y), which every rank splits by batch; with x given "
                            "as batches, run one process (distributed=False)")
    if getattr(model, "device", "cpu") != "cpu":
        raise TrainingError("distributed training runs on the CPU engine; use device='cpu' under mpiexec")
    if _stateful(model):
        raise TrainingError("a stateful model carries each batch row's state to the next batch, which a split of "
                            "the batch across ranks would break: train it in one process (distributed=False)")
    last = n - (math.ceil(n / batch_size) - 1) * batch_size
    if last < dp.size and any(node.kind == "batchnorm" for node in model.graph.nodes):
        raise TrainingError(f"the last batch has {last} sample(s) for {dp.size} ranks, and batch normalisation "
                            "needs rows on every rank: use fewer ranks or a batch_size that leaves a larger last batch")


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


# --- sample and class weights -----------------------------------------------------------

def _per_step(model, k: int) -> bool:
    return model.graph.type_of(model.graph.outputs[k].ref).seq


def _weight_array(model, k: int, w, n: int, what: str) -> np.ndarray:
    """One output's sample weights, checked: (n,), or (n, steps) for a per-step output."""
    name = model.output_names[k]
    try:
        a = np.asarray(w)
    except (ValueError, TypeError) as e:
        raise DataError(f"{what} for {name!r}: cannot make an array of them ({e})") from None
    if a.dtype.kind not in "biuf":
        raise DataError(f"{what} for {name!r} must be numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    per_step = _per_step(model, k)
    if a.ndim == 0 or len(a) != n or a.ndim > (2 if per_step else 1):
        raise DataError(f"{what} for {name!r} must have shape ({n},)" + (f" or ({n}, steps)" if per_step else "")
                        + f", one per sample, got {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise DataError(f"{what} for {name!r} must be finite numbers >= 0")
    return a


def _class_labels(model, y: np.ndarray) -> np.ndarray:
    """The class of each sample (each step for a per-step output), as Keras reads it: one-hot
    rows by their largest entry, a trailing axis of 1 dropped, rounded to whole numbers."""
    keep = 2 if _per_step(model, 0) else 1
    if y.ndim > keep:
        y = np.argmax(y, axis=-1) if y.shape[-1] != 1 else y[..., 0]
    return np.round(y).astype(np.int64)


def _class_weights(model, y: np.ndarray, class_weight) -> np.ndarray:
    if not isinstance(class_weight, dict):
        raise DataError(f"class_weight must be a dict {{class: weight}}, got {type(class_weight).__name__}")
    if len(model.output_names) != 1:
        raise DataError("class_weight is only supported for models with a single output; "
                        "give sample_weight per output instead")
    table = {}
    for c, w in class_weight.items():
        if isinstance(c, bool) or not isinstance(c, numbers.Integral):
            raise DataError(f"class_weight keys must be class ids (whole numbers), got {c!r}")
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) or w < 0:
            raise DataError(f"class_weight[{c}] must be a finite number >= 0, got {w!r}")
        table[int(c)] = float(w)
    labels = _class_labels(model, y)
    out = np.ones(labels.shape, np.float64)
    for c, w in table.items():
        out[labels == c] = w
    return out


def sample_weights(model, ys: list, sample_weight=None, class_weight=None) -> list | None:
    """Per output, the weight of each sample's loss (None: all 1), from Keras's
    sample_weight (one array for every output, or a list or dict by output) or class_weight
    ({class id: weight}, single-output models: each sample, or each step of a per-step
    output, weighted by its target class; classes not named weigh 1)."""
    if sample_weight is None and class_weight is None:
        return None
    if sample_weight is not None and class_weight is not None:
        raise DataError("give sample_weight or class_weight, not both")
    n = len(ys[0])
    if class_weight is not None:
        return [_class_weights(model, ys[0], class_weight)]
    names = model.output_names
    if isinstance(sample_weight, dict):
        unknown = [k for k in sample_weight if k not in names]
        if unknown:
            raise DataError(f"sample_weight names {[str(k)[:40] for k in unknown[:5]]}, which are not outputs "
                            f"of the model ({', '.join(names)})")
        per = [sample_weight.get(k) for k in names]
    elif len(names) > 1 and isinstance(sample_weight, (list, tuple)) and len(sample_weight) == len(names) \
            and all(w is None or np.ndim(w) >= 1 for w in sample_weight):
        per = list(sample_weight)
    else:
        per = [sample_weight] * len(names)
    return [None if w is None else _weight_array(model, k, w, n, "sample_weight") for k, w in enumerate(per)]


def _sliced(weights, idx):
    return None if weights is None else [None if w is None else w[idx] for w in weights]


# --- fit and evaluate -------------------------------------------------------------------

def _slice(arrays, idx):
    return [a[idx] for a in arrays]


class _Batches:
    """fit's data given as batches: a generator, or any iterable of (x, y) or
    (x, y, sample_weight). Without steps_per_epoch an epoch is one pass, iter(data) anew
    each epoch (a generator is used up after one); with it, an epoch takes that many
    batches from one iterator that goes on across epochs and starts again (iter(data))
    when it runs out, ending that epoch early."""

    def __init__(self, data, steps_per_epoch):
        self.data = data
        self.steps = steps_per_epoch
        self._it = None
        self.ran_out = False
        try:
            self.length = len(data)
        except TypeError:
            self.length = None

    @property
    def target(self):
        return self.steps if self.steps is not None else self.length

    def epoch(self):
        self.ran_out = False
        if self.steps is None:
            yield from iter(self.data)
            return
        if self._it is None:
            self._it = iter(self.data)
        for _ in range(self.steps):
            try:
                batch = next(self._it)
            except StopIteration:
                self._it, self.ran_out = None, True
                return
            yield batch


def _unpack(batch, k: int):
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise DataError(f"batch {k + 1}: each batch must be a tuple (x, y) or (x, y, sample_weight), got "
                        + (f"a {type(batch).__name__} of {len(batch)}" if isinstance(batch, (tuple, list))
                           else f"a {type(batch).__name__}"))
    return batch[0], batch[1], batch[2] if len(batch) == 3 else None


def _batches_given(x, y) -> bool:
    """fit was given batches (x alone, a generator or an iterable of (x, y) tuples)."""
    if y is not None:
        return False
    if isinstance(x, (np.ndarray, dict, str, bytes)) or np.isscalar(x):
        raise DataError("fit needs targets: fit(x, y), or x as batches (a generator or an iterable of "
                        "(x, y) tuples)")
    try:
        iter(x)
    except TypeError:
        raise DataError(f"fit needs targets y, or x as an iterable of (x, y) batches; got x of type "
                        f"{type(x).__name__} and no y") from None
    return True


def fit(model, x, y=None, batch_size=32, epochs=1, validation_data=None, validation_split=0.0, shuffle=True,
        seed=None, verbose="auto", callbacks=None, initial_epoch=0, early_stopping=None, stream=None,
        sample_weight=None, class_weight=None, steps_per_epoch=None, distributed=None) -> History:
    """Keras's fit: arrays (x, y) in batches of batch_size, or x as batches (a generator or
    an iterable of (x, y[, sample_weight]), steps_per_epoch batches an epoch); callbacks
    (train/callbacks.py, or functions fn(model, epoch, logs)); early_stopping=patience is
    EarlyStopping(patience, restore_best_weights=True) on val_loss (loss without validation).
    Under an MPI launcher with several ranks, training is data-parallel (train/distributed.py)
    unless distributed=False: batch_size is the global batch, rank 0 alone shows progress."""
    cfg = _config(model)
    stream = stream or sys.stdout
    verbose = 1 if verbose == "auto" else int(verbose)
    batch_size = whole_number("batch_size", batch_size, 1)
    epochs = whole_number("epochs", epochs, 0)
    initial_epoch = whole_number("initial_epoch", initial_epoch, 0)
    if steps_per_epoch is not None:
        steps_per_epoch = whole_number("steps_per_epoch", steps_per_epoch, 1)
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) or \
            not 0 <= validation_split < 1:
        raise DataError(f"validation_split must be a fraction in [0, 1), got {validation_split!r}")
    source = None
    if _batches_given(x, y):
        if validation_split:
            raise DataError("validation_split needs arrays (x, y); with batches give validation_data=(x, y)")
        if sample_weight is not None:
            raise DataError("with x as batches, give sample weights in the batches: (x, y, sample_weight)")
        source = _Batches(x, steps_per_epoch)
    else:
        if steps_per_epoch is not None:
            raise DataError("steps_per_epoch goes with x given as batches (a generator or an iterable of (x, y)); "
                            "with arrays an epoch is ceil(samples / batch_size) batches")
        xs, ys = input_list(x, model.input_names), as_targets(model, y)
        check_data(model, xs, ys, cfg)
        sws = sample_weights(model, ys, sample_weight, class_weight)
        n = len(xs[0])
    vsw = None
    if source is None and validation_data is None and validation_split:
        # Keras takes the validation samples from the end, before shuffling.
        cut = n - int(round(n * validation_split))
        if cut <= 0 or cut >= n:
            raise DataError(f"validation_split={validation_split} leaves no training or no validation samples of {n}")
        vx, vy = _slice(xs, slice(cut, None)), _slice(ys, slice(cut, None))
        vsw = _sliced(sws, slice(cut, None)) if sample_weight is not None else None
        xs, ys, sws, n = _slice(xs, slice(0, cut)), _slice(ys, slice(0, cut)), _sliced(sws, slice(0, cut)), cut
    elif validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise DataError("validation_data must be a pair (x, y) or a triple (x, y, sample_weight)")
        vx, vy = input_list(validation_data[0], model.input_names), as_targets(model, validation_data[1])
        check_data(model, vx, vy, cfg)
        if len(validation_data) == 3:
            vsw = sample_weights(model, vy, validation_data[2])
    validating = validation_data is not None or bool(validation_split)
    from .distributed import data_parallel

    dp = data_parallel(model, distributed)
    if dp is not None:
        _check_distributable(model, source, None if source is not None else n, batch_size, dp)
        if dp.rank:
            verbose = 0
    if seed is not None:
        model.reseed(seed)
    if dp is not None and dp.rank:
        # dropout differs per rank, reproducibly: rank r > 0 draws from (seed, 1, r, epoch)
        model.executor.rng = np.random.default_rng([model.seed if seed is None else seed, 1, dp.rank, initial_epoch])
    history = History()
    cbs = as_callbacks(callbacks)
    if early_stopping is not None:
        if isinstance(early_stopping, EarlyStopping):
            cbs.append(early_stopping)
        else:
            patience = whole_number("early_stopping", early_stopping, 0)
            cbs.append(EarlyStopping(monitor="val_loss" if validating else "loss", patience=patience,
                                     restore_best_weights=True, verbose=verbose))
    steps = source.target if source is not None else math.ceil(n / batch_size)
    cbs = CallbackList(cbs + [history], model,
                       {"epochs": epochs, "steps": steps, "verbose": verbose, "stream": stream})
    model.stop_training = False
    model.history = history
    cbs.on_train_begin()
    logs = None
    for epoch in range(initial_epoch, epochs):
        cbs.on_epoch_begin(epoch)
        if verbose:
            stream.write(f"Epoch {epoch + 1}/{epochs}\n")
        # the loss and metrics given are the epoch's running figures: shown as they are, so
        # the bar's last line is what the History records
        bar = Progbar(steps, verbose=verbose, stream=stream, stateful_metrics=True)
        if source is None:
            order = model.fit_rng.permutation(n) if shuffle else np.arange(n)
            batches = ((_slice(xs, part), [t[part] for t in ys], _sliced(sws, part), len(idx))
                       for idx in (order[k * batch_size:(k + 1) * batch_size] for k in range(steps))
                       for part in [idx if dp is None else dp.shard(idx)])
        else:
            batches = ((bx, by, bw, len(bx[0])) for bx, by, bw in _checked_batches(model, cfg, source, class_weight))
        cfg.fresh_metrics()
        total, seen, done = 0.0, 0, 0
        for step, (bx, by, bw, rows) in enumerate(batches):
            if cbs.batch_hooks:
                cbs.on_train_batch_begin(step)
            failed = None
            try:
                if dp is None:
                    loss = train_on_batch(model, bx, by, cfg, targets_listed=True, weights=bw)
                else:
                    loss = _distributed_step(model, cfg, dp, bx, by, bw, rows)
            except NonFiniteLoss as e:
                failed = NonFiniteLoss(f"{e} at epoch {epoch + 1}, batch {step + 1}; training stopped and the "
                                       "weights are those of the last good step (lower the learning rate or "
                                       "clip gradients with clipnorm)", epoch + 1, step + 1)
                if not cbs.stops_on_nonfinite():
                    raise failed from None
                loss = math.nan
            total += loss * rows
            seen += rows
            done = step + 1
            if getattr(model, "stop_requested", False):
                # set by a SIGINT handler: stop between batches, never inside compiled code
                model.stop_requested = False
                raise KeyboardInterrupt
            batch_logs = {"loss": total / seen, **_metric_logs(model, cfg)}
            bar.update(done, batch_logs, finalize=False)
            if cbs.batch_hooks or failed is not None:
                cbs.on_train_batch_end(step, batch_logs)
            if failed is not None and not model.stop_training:
                raise failed from None
            if model.stop_training:
                break
        if source is not None and (seen == 0 or source.ran_out):
            warnings.warn("Your input ran out of data" + ("; interrupting training" if seen == 0 else
                          f" after {done} of {steps} batches in epoch {epoch + 1}") +
                          ". Make sure that your generator can generate at least `steps_per_epoch * epochs` "
                          "batches, or give an iterable that can be iterated again.", stacklevel=3)
            if seen == 0:
                history.stopped_early = True
                break
        logs = {"loss": total / seen, **_metric_logs(model, cfg)}
        if validating:
            logs.update(evaluate(model, vx, vy, batch_size=batch_size, return_dict=True, prefix="val_",
                                 sample_weight=vsw, callbacks=cbs, dp=dp))
        bar.update(done, logs, finalize=True)
        model.epoch = epoch + 1
        cbs.on_epoch_end(epoch, logs)
        if model.stop_training:
            history.stopped_early = epoch + 1 < epochs
            break
    pool = getattr(model.executor, "pool", None)
    if pool is not None:
        pool.clear()            # a finished fit keeps no train step's arrays (the next step makes them again)
    cbs.on_train_end(logs)
    return history


def _checked_batches(model, cfg, source: _Batches, class_weight):
    """The batches of one epoch of a batch source, each checked as fit checks arrays."""
    for k, batch in enumerate(source.epoch()):
        bx, by, bsw = _unpack(batch, k)
        xs, ys = input_list(bx, model.input_names), as_targets(model, by)
        check_data(model, xs, ys, cfg)
        yield xs, ys, sample_weights(model, ys, bsw, class_weight)


def _evaluate_shards(model, cfg, dp, xs, ys, sws, batch_size) -> float:
    """The loss of evaluate over the whole data, each batch split across the ranks: the
    shards' numerators and denominators per batch and output, and the metrics' partial
    sums, summed over ranks in one Allreduce at the end."""
    n, n_out = len(xs[0]), len(ys)
    starts = list(range(0, n, batch_size))
    nums, counts = np.zeros((len(starts), n_out)), np.zeros((len(starts), n_out))
    metrics = [m for ms in cfg.metrics for m in ms]
    ex = model.executor
    for b, start in enumerate(starts):
        part = dp.shard(np.arange(start, min(start + batch_size, n)))
        if not len(part):
            continue
        sl = slice(int(part[0]), int(part[-1]) + 1)
        tape = ex.forward(ex.prepare_inputs(_slice(xs, sl)), training=False)
        local = [t[sl] for t in ys]
        for k, (value, _, c) in enumerate(_shard_loss(model, cfg, tape, local, _sliced(sws, sl), n_out)):
            nums[b, k], counts[b, k] = value * c, c
        _update_metrics(model, cfg, tape.outputs, local)
    partial = [v for m in metrics for v in (m.total, m.count)]
    s = dp.sum(np.concatenate([nums.ravel(), counts.ravel(), partial]))
    nums, counts = s[:nums.size].reshape(nums.shape), s[nums.size:2 * nums.size].reshape(nums.shape)
    for k, m in enumerate(metrics):
        m.total, m.count = float(s[2 * nums.size + 2 * k]), float(s[2 * nums.size + 2 * k + 1])
    means = np.divide(nums, counts, out=np.zeros_like(nums), where=counts > 0).sum(axis=1)
    rows = np.array([min(start + batch_size, n) - start for start in starts], np.float64)
    return float(means @ rows)


def evaluate(model, x, y, batch_size=32, return_dict=False, prefix="", verbose=0, sample_weight=None,
             callbacks=None, dp=None):
    """Loss (and metrics) over the whole data in inference mode, weighted by batch size;
    sample_weight weighs each sample's loss (not the metrics), as in Keras."""
    cfg = _config(model)
    batch_size = whole_number("batch_size", batch_size, 1)
    if prefix:          # fit's validation: checked already, the weights per output
        xs, ys, sws = x, y, sample_weight
    else:
        xs, ys = input_list(x, model.input_names), as_targets(model, y)
        check_data(model, xs, ys, cfg)
        sws = sample_weights(model, ys, sample_weight)
    n = len(xs[0])
    metrics = [[get_metric(name) for name in cfg.metric_names] for _ in ys]
    saved, cfg.metrics = cfg.metrics, metrics
    total = 0.0
    hooks = callbacks is not None and callbacks.test_batch_hooks
    if callbacks is not None:
        callbacks.on_test_begin()
    try:
        for k, start in enumerate(range(0, n, batch_size) if dp is None else ()):
            if hooks:
                callbacks.on_test_batch_begin(k)
            sl = slice(start, start + batch_size)
            ex = model.executor
            tape = ex.forward(ex.prepare_inputs(_slice(xs, sl)), training=False)
            part = [t[sl] for t in ys]
            loss, _ = output_loss(tape.outputs, part, cfg.losses, cfg.from_logits, model.output_names,
                                  _sliced(sws, sl))
            total += loss * len(part[0])
            _update_metrics(model, cfg, tape.outputs, part)
            if hooks:
                callbacks.on_test_batch_end(k, {"loss": total / min(start + batch_size, n),
                                                **_metric_logs(model, cfg)})
        if dp is not None:          # fit's validation, data-parallel (test batch hooks are not called)
            total = _evaluate_shards(model, cfg, dp, xs, ys, sws, batch_size)
        logs = {f"{prefix}loss": total / n, **_metric_logs(model, cfg, prefix)}
    finally:
        cfg.metrics = saved
    if callbacks is not None:
        callbacks.on_test_end({k.removeprefix(prefix): v for k, v in logs.items()})
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


__all__ = ["configure", "train_on_batch", "fit", "evaluate", "History", "EarlyStopping", "TrainConfig",
           "NonFiniteLoss", "RnnError", "sample_weights"]
