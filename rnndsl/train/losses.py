"""Loss functions with their exact gradients, following Keras's definitions.

Contract of every loss: ``loss(y_pred, y_true, weights=None, from_logits=False)
-> (value, dy_pred)`` where, with per-sample losses ``l_n`` and weights ``w_n``
(1 when not given; the caller passes a 0/1 mask for padded time steps),

    value   = sum_n w_n * l_n / sum_n w_n          (0.0 when sum_n w_n == 0)
    dy_pred = d value / d y_pred                    (same shape as y_pred)

With ``sample_weight`` s_n as well (Keras's sample weights, over the same rows), the
value is Keras's sum-over-batch-size reduction: ``sum_n s_n * w_n * l_n / sum_n w_n``
(the mask still counts the rows; the weights do not divide).

Sequence outputs are flattened by the caller: (T, B, C) -> (N, C).
Probability inputs are clipped to [1e-7, 1 - 1e-7] as Keras does; the gradient
is that of the clipped expression (zero where the clip is active).
"""

from __future__ import annotations

import numpy as np

from rnndsl.errors import DataError, RnnError, did_you_mean
from rnndsl.kernels.cpu.ops import row_max, shift_rows_pick, softmax_ce_rows

EPSILON = 1e-7  # Keras's backend.epsilon()

__all__ = [
    "EPSILON",
    "Loss",
    "SparseCategoricalCrossentropy",
    "CategoricalCrossentropy",
    "BinaryCrossentropy",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "get_loss",
    "LOSSES",
    "LOSS_ALIASES",
    "loss_names",
    "log_softmax",
    "softmax",
]


def _shifted_exp(z: np.ndarray):
    """(z - max, exp(z - max), sum of the exps) over the last axis, each keeping that axis.
    The reductions over the few classes go through a compiled loop and a matrix-vector
    product: NumPy's reduce over a short last axis dominated a small loss."""
    if z.ndim == 2 and z.shape[1] and z.flags.c_contiguous and z.dtype.kind == "f":
        shifted = z - row_max(z)[:, None]
        e = np.exp(shifted)
        return shifted, e, (e @ np.ones(z.shape[1], z.dtype))[:, None]
    shifted = z - z.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return shifted, e, e.sum(axis=-1, keepdims=True)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log softmax, stable: z - max - log(sum(exp(z - max)))."""
    shifted, _, s = _shifted_exp(z)
    return shifted - np.log(s)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable."""
    _, e, s = _shifted_exp(z)
    return e / s


def _float_array(a, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiub":
        raise DataError(f"{what} must be numeric, got dtype {arr.dtype}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    return arr


def _weights(weights, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.shape != (n,):
        raise DataError(f"weights (mask) must have shape ({n},) to match y_pred, got {w.shape}")
    if np.any(w < 0):
        raise DataError("weights (mask) must be >= 0")
    return w


class Loss:
    """A loss: ``__call__(y_pred, y_true, weights=None, from_logits=False)``.

    Subclasses implement ``_per_sample(y_pred, y_true, from_logits)`` returning
    ``(l (N,), dl)`` with ``dl[n] = d l_n / d y_pred[n]``; the weighted mean and
    its gradient are formed here once for all losses.
    """

    name = "loss"
    takes_logits = True  # whether from_logits=True makes sense for this loss

    def __call__(self, y_pred, y_true, weights=None, from_logits: bool = False, sample_weight=None):
        y_pred = _float_array(y_pred, "y_pred")
        if y_pred.ndim == 0:
            raise DataError("y_pred must have a sample axis, got a scalar")
        if from_logits and not self.takes_logits:
            raise RnnError(f"loss '{self.name}' does not take from_logits=True")
        n = y_pred.shape[0]
        w = _weights(weights, n)
        per, grad = self._per_sample(y_pred, y_true, bool(from_logits))
        if sample_weight is not None:
            # Keras's sum_over_batch_size with a mask: sum(s * m * l) / sum(m)
            s = _weights(sample_weight, n)
            total = float(n) if w is None else float(w.sum())
            if total == 0.0:
                return 0.0, np.zeros_like(y_pred)
            ws = s if w is None else s * w
            value = float(np.dot(ws, per.astype(np.float64))) / total
            grad *= (ws / total).astype(grad.dtype, copy=False).reshape((n,) + (1,) * (grad.ndim - 1))
            return value, grad
        if w is None:
            total = float(n)
            value = float(per.sum(dtype=np.float64)) / total if n else 0.0
            scale = 1.0 / total if n else 0.0
            grad *= scale
        else:
            total = float(w.sum())
            if total == 0.0:
                # Nothing unmasked: define the mean as 0 with no gradient, as
                # Keras's divide-no-nan reduction does.
                return 0.0, np.zeros_like(y_pred)
            value = float(np.dot(w, per.astype(np.float64))) / total
            coef = (w / total).astype(grad.dtype, copy=False)
            grad *= coef.reshape((n,) + (1,) * (grad.ndim - 1))
        return value, grad

    def per_sample(self, y_pred, y_true, from_logits: bool = False) -> np.ndarray:
        """Unreduced losses l_n, shape (N,)."""
        return self._per_sample(_float_array(y_pred, "y_pred"), y_true, bool(from_logits))[0]

    def _per_sample(self, y_pred, y_true, from_logits):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _categorical_from_probs(p: np.ndarray, t: np.ndarray):
    """Keras: q = p / sum(p); c = clip(q, eps, 1-eps); l = -sum(t * log c)."""
    s = p.sum(axis=-1, keepdims=True)
    q = p / s
    c = np.clip(q, EPSILON, 1.0 - EPSILON)
    per = -(t * np.log(c)).sum(axis=-1)
    inside = (q > EPSILON) & (q < 1.0 - EPSILON)
    g = np.where(inside, -t / c, 0.0)  # dl/dq
    # dq_j/dp_i = (delta_ij - q_j) / s
    grad = (g - (g * q).sum(axis=-1, keepdims=True)) / s
    return per, grad.astype(p.dtype, copy=False)


def _categorical_from_logits(z: np.ndarray, t: np.ndarray):
    """l = -sum(t * log_softmax(z)); dl/dz = sum(t) * softmax(z) - t."""
    lsm = log_softmax(z)
    per = -(t * lsm).sum(axis=-1)
    grad = np.exp(lsm) * t.sum(axis=-1, keepdims=True) - t
    return per, grad.astype(z.dtype, copy=False)


class CategoricalCrossentropy(Loss):
    """-sum_c y_true[n,c] log p[n,c]; y_true one-hot (or soft) of shape (N, C)."""

    name = "categorical_crossentropy"

    def _per_sample(self, y_pred, y_true, from_logits):
        if y_pred.ndim != 2:
            raise DataError(f"{self.name}: y_pred must be (N, C), got shape {y_pred.shape}")
        t = _float_array(y_true, "y_true")
        if t.shape != y_pred.shape:
            hint = ""
            if t.ndim == 1 or (t.ndim == 2 and t.shape[1] == 1):
                hint = " (integer labels? use sparse_categorical_crossentropy)"
            raise DataError(
                f"{self.name}: y_true must be one-hot with shape (N, C) = {y_pred.shape}, "
                f"got {t.shape}{hint}"
            )
        t = t.astype(y_pred.dtype, copy=False)
        if from_logits:
            return _categorical_from_logits(y_pred, t)
        return _categorical_from_probs(y_pred, t)


def _integer_labels(y_true, n: int) -> bool:
    """y_true is an integer array of n labels, (n,) or (n, 1)."""
    return (isinstance(y_true, np.ndarray) and y_true.dtype.kind in "iu" and y_true.dtype.isnative
            and y_true.size == n and y_true.shape in ((n,), (n, 1)))


def check_sparse_labels(y_true, n: int, num_classes: int, who: str) -> np.ndarray:
    """Validate integer labels (N,) or (N, 1) in [0, C-1]; return them as intp (N,)."""
    y = np.asarray(y_true)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (n,):
        raise DataError(
            f"{who}: y_true must hold one integer label per sample, shape ({n},) "
            f"to match y_pred of {n} rows, got {y.shape}"
        )
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.floor(y)))
        if bad.size:
            i = int(bad[0])
            raise DataError(f"{who}: labels must be integers, got {y[i].item()!r} at sample {i}")
    elif y.dtype.kind not in "iub":
        raise DataError(f"{who}: labels must be integers, got dtype {y.dtype}")
    if n:
        lo, hi = y.min(), y.max()
        if lo < 0 or hi >= num_classes:
            i = int(np.flatnonzero((y < 0) | (y >= num_classes))[0])
            val = y[i].item()
            if isinstance(val, float):
                val = int(val)
            raise DataError(
                f"{who}: label {val} at sample {i} is out of range; labels must be in "
                f"[0, {num_classes - 1}] for {num_classes} classes"
            )
    return y.astype(np.intp, copy=False)


class SparseCategoricalCrossentropy(Loss):
    """-log p[n, y_true[n]]; y_true integer labels (N,) or (N, 1)."""

    name = "sparse_categorical_crossentropy"

    def _per_sample(self, y_pred, y_true, from_logits):
        if y_pred.ndim != 2:
            raise DataError(f"{self.name}: y_pred must be (N, C), got shape {y_pred.shape}")
        n, c = y_pred.shape
        if from_logits and c and y_pred.dtype.kind == "f" and _integer_labels(y_true, n):
            # two compiled passes around NumPy's vector exp: a quarter of the NumPy
            # expression's time below (bench/README.md, "Measurements behind the code")
            labels = np.ascontiguousarray(y_true.reshape(n))           # an integer array: _integer_labels
            g, picked, per = np.empty_like(y_pred), np.empty(n, y_pred.dtype), np.empty(n, y_pred.dtype)
            if shift_rows_pick(y_pred, labels, g, picked) >= 0:
                check_sparse_labels(y_true, n, c, self.name)        # says which label is out of range
            np.exp(g, out=g)
            softmax_ce_rows(g, labels, picked, per)
            return per, g
        labels = check_sparse_labels(y_true, n, c, self.name)
        rows = np.arange(n)
        if from_logits:
            shifted, e, total = _shifted_exp(y_pred)
            per = np.log(total[:, 0]) - shifted[rows, labels]      # -log_softmax at the label
            grad = e / total                                       # softmax
            grad[rows, labels] -= 1.0
            return per, grad.astype(y_pred.dtype, copy=False)
        # Same as the one-hot path (Keras one-hot encodes and reuses it).
        t = np.zeros_like(y_pred)
        t[rows, labels] = 1.0
        return _categorical_from_probs(y_pred, t)


def _pair(y_pred, y_true, who):
    """y_true broadcast-compatible with y_pred: same shape, or (N,) vs (N, 1)."""
    t = _float_array(y_true, "y_true")
    if t.shape != y_pred.shape:
        if t.size == y_pred.size and t.shape[:1] == y_pred.shape[:1] and (
            t.ndim <= 2 and y_pred.ndim <= 2
        ):
            t = t.reshape(y_pred.shape)  # (N,) vs (N, 1)
        else:
            raise DataError(f"{who}: y_true shape {t.shape} does not match y_pred shape {y_pred.shape}")
    return t.astype(y_pred.dtype, copy=False)


def _per_row(e: np.ndarray, g: np.ndarray):
    """Keras takes the mean over the last axis; (N,) means one value per sample."""
    if e.ndim == 1:
        return e, g
    k = int(np.prod(e.shape[1:]))
    axes = tuple(range(1, e.ndim))
    return e.sum(axis=axes) / k, g / k


def check_binary_labels(t, who: str) -> None:
    """Binary targets lie in [0, 1] (0/1 labels, or soft ones between): a label of 5 or -3
    gives a loss that is no crossentropy at all (Keras computes it anyway), so a DataError."""
    t = np.asarray(t)
    if t.size and not (t.min() >= 0 and t.max() <= 1):            # false for NaN too
        bad = t[~((t >= 0) & (t <= 1))]
        more = f" ({bad.size - 1} more)" if bad.size > 1 else ""
        raise DataError(f"{who}: labels must lie in [0, 1], got {bad[0].item():g}{more}")


class BinaryCrossentropy(Loss):
    """-(t log p + (1-t) log(1-p)), averaged over the last axis (Keras)."""

    name = "binary_crossentropy"

    def _per_sample(self, y_pred, y_true, from_logits):
        t = _pair(y_pred, y_true, self.name)
        check_binary_labels(t, self.name)
        if from_logits:
            z = y_pred
            # max(z,0) - z t + log(1 + exp(-|z|)) never overflows.
            e = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
            sig = 0.5 * (1.0 + np.tanh(0.5 * z))  # stable sigmoid
            g = sig - t
        else:
            p = np.clip(y_pred, EPSILON, 1.0 - EPSILON)
            e = -(t * np.log(p) + (1.0 - t) * np.log(1.0 - p))
            inside = (y_pred > EPSILON) & (y_pred < 1.0 - EPSILON)
            g = np.where(inside, (p - t) / (p * (1.0 - p)), 0.0)
        per, grad = _per_row(e, g)
        return per, np.asarray(grad, dtype=y_pred.dtype)


class MeanSquaredError(Loss):
    """mean over the last axis of (p - t)^2."""

    name = "mean_squared_error"
    takes_logits = False

    def _per_sample(self, y_pred, y_true, from_logits):
        d = y_pred - _pair(y_pred, y_true, self.name)
        per, grad = _per_row(d * d, 2.0 * d)
        return per, np.asarray(grad, dtype=y_pred.dtype)


class MeanAbsoluteError(Loss):
    """mean over the last axis of |p - t| (gradient sign(p - t), 0 at a tie)."""

    name = "mean_absolute_error"
    takes_logits = False

    def _per_sample(self, y_pred, y_true, from_logits):
        d = y_pred - _pair(y_pred, y_true, self.name)
        per, grad = _per_row(np.abs(d), np.sign(d))
        return per, np.asarray(grad, dtype=y_pred.dtype)


# The loss registry: Keras's names -> classes, and the short names Keras also takes.
# get_loss and a spec's `loss = "..."` both read these; get_loss also takes the class
# names ("MeanSquaredError", any case).
LOSSES = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
}
LOSS_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error"}


def loss_names() -> tuple[str, ...]:
    """The names a loss is given by (a spec's `loss = ...`, compile(loss=...)): Keras's
    names and their short aliases, a short name before the long one it stands for."""
    long = tuple(LOSS_ALIASES.values())
    return tuple(k for k in LOSSES if k not in long) + tuple(LOSS_ALIASES) + long


def _key(name: str) -> str:
    """The registry name of `name`: its alias resolved, a class name mapped to its loss."""
    key = name.strip().lower()
    key = LOSS_ALIASES.get(key, key)
    return next((k for k, cls in LOSSES.items() if cls.__name__.lower() == key), key)


def get_loss(name) -> Loss:
    """A Loss from its Keras name ("mse", "sparse_categorical_crossentropy", class
    names like "MeanSquaredError" too), or the Loss itself."""
    if isinstance(name, Loss):
        return name
    if isinstance(name, dict):
        name = name.get("name") or name.get("class_name")
    if not isinstance(name, str):
        raise RnnError(f"loss must be a name or a Loss, got {type(name).__name__}")
    key = _key(name)
    if key in LOSSES:
        return LOSSES[key]()
    hint = did_you_mean(name.lower(), loss_names())
    raise RnnError(f"unknown loss '{name}'" + (f"; {hint}" if hint else "")
                   + f" (known: {', '.join(sorted(loss_names()))})")
