"""Inputs and targets in the layout training needs, and the loss over a model's outputs.

Arrays come in batch-major, as in Keras; the executor's outputs are time-major
(a per-step output is (T, B, C)). These functions take the names and output
list they need (a graph's), never a Model.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .losses import get_loss


def input_list(x, input_names: list[str]) -> list[np.ndarray]:
    """The inputs as a list of arrays in the model's input order: x is one array, a list
    or tuple of arrays, or a dict by input name."""
    if isinstance(x, dict):
        missing = [k for k in input_names if k not in x]
        if missing:
            raise DataError(f"missing input(s) {missing}; the model takes {input_names}")
        return [np.asarray(x[k]) for k in input_names]
    return [np.asarray(a) for a in x] if isinstance(x, (list, tuple)) else [np.asarray(x)]


def target_list(ys, output_names: list[str]) -> list:
    """One target per output, in output order: ys is one target (a single output), a list of
    one per output, or a dict by output name."""
    n = len(output_names)
    if isinstance(ys, dict):
        missing, extra = [k for k in output_names if k not in ys], [k for k in ys if k not in output_names]
        if missing or extra:
            raise DataError(f"targets by name: the model's outputs are {output_names}; missing {missing}, "
                            f"unknown {[str(k)[:40] for k in extra[:5]]}")
        return [ys[k] for k in output_names]
    if n > 1:
        if not isinstance(ys, (list, tuple)) or len(ys) != n:
            raise DataError(f"the model has {n} outputs ({', '.join(output_names)}); give a list of {n} targets")
        return list(ys)
    return [ys]


def check_target(y, lead: tuple, name: str) -> np.ndarray:
    """y as an array whose shape starts with `lead` ((batch,) or (batch, steps))."""
    y = np.asarray(y)
    if y.shape[:len(lead)] != lead:
        raise DataError(f"targets for output {name!r} have shape {y.shape}, expected it to start with "
                        f"{lead} (batch{', steps' if len(lead) == 2 else ''})")
    return y


def flat_pred_target(act, y, name: str):
    """(predictions (N, C), targets (N, ...), mask weights (N,) or None) of one output.

    A per-step output (T, B, C) becomes T*B rows in its own time-major order (a view;
    the targets, (B, T, ...), are reordered to match), so a loss or metric is the mean
    over samples and time steps, with masked steps weighted 0.
    """
    pred = act.data
    if pred.ndim == 3:
        T, B, C = pred.shape
        y = check_target(y, (B, T), name)
        w = None if act.mask is None else act.mask.reshape(-1).astype(pred.dtype)
        y = np.ascontiguousarray(y.swapaxes(0, 1)).reshape((T * B,) + y.shape[2:])
        return pred.reshape(T * B, C), y, w
    return pred, check_target(y, (pred.shape[0],), name), None


def flat_sample_weight(act, sw):
    """One output's sample weights in the rows flat_pred_target makes: (B,) as they are for
    a vector output; for a per-step output (T, B, C), (B,) repeated over the steps or
    (B, T) per step, both in time-major order."""
    if sw is None or act.data.ndim != 3:
        return sw
    T, B = act.data.shape[:2]
    sw = np.asarray(sw)
    if sw.ndim == 1:
        return np.broadcast_to(sw, (T, B)).reshape(-1)
    return np.ascontiguousarray(sw.T).reshape(-1)


def output_loss(outputs, ys, loss, from_logits, output_names: list[str], sample_weights=None):
    """(sum over outputs of each output's mean loss, d loss / d output per output).

    outputs: the executor's output activations (time-major); ys: one target array per
    output (target_list); loss and from_logits: one per output, or one for all;
    sample_weights: None, or one per output (None, (B,), or (B, T) for a per-step
    output), weighing each sample's loss as Keras does. Each gradient has its output's
    (time-major) shape."""
    n = len(outputs)
    losses = list(loss) if isinstance(loss, (list, tuple)) else [loss] * n
    logits = list(from_logits) if isinstance(from_logits, (list, tuple)) else [from_logits] * n
    sws = sample_weights if sample_weights is not None else [None] * n
    total, grads = 0.0, []
    for act, y, name, fl, out, sw in zip(outputs, ys, losses, logits, output_names, sws):
        fn = get_loss(name)
        pred, target, w = flat_pred_target(act, y, out)
        try:
            value, dp = fn(pred, target, weights=w, from_logits=bool(fl) and fn.takes_logits,
                           sample_weight=flat_sample_weight(act, sw))
        except DataError as e:
            raise DataError(f"targets for output {out!r}: {e}") from None
        grads.append(dp.reshape(act.data.shape))            # time-major rows: (T, B, C) as they are
        total += float(value)
    return total, grads


def fit_generator(seed: int) -> np.random.Generator:
    """The generator that shuffles fit's samples, from a model's seed (stream 2; the
    executor's dropout generator is stream 1)."""
    return np.random.default_rng([seed, 2])
