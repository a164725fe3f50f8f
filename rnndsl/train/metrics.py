"""Metrics as Keras defines them, with sample weights (a 0/1 mask for padding).

A metric is stateful like Keras's: ``update_state(y_pred, y_true, weights=None)``
accumulates ``total += sum(w * v)`` and ``count += sum(w)`` over the per-sample
values ``v``; ``result() = total / count``; ``reset_state()`` starts again.
Calling the metric computes the value of one batch without touching the state.
"""

from __future__ import annotations

import numpy as np

from rnndsl.errors import DataError, RnnError, did_you_mean

__all__ = [
    "METRICS",
    "metric_names",
    "Metric",
    "SparseCategoricalAccuracy",
    "CategoricalAccuracy",
    "BinaryAccuracy",
    "Accuracy",
    "MeanSquaredErrorMetric",
    "MeanAbsoluteErrorMetric",
    "get_metric",
    "resolve_accuracy",
]


class Metric:
    """Weighted running mean of per-sample values ``values(y_pred, y_true) -> (N,)``."""

    default_name = "metric"

    def __init__(self, name: str | None = None):
        self.name = name or self.default_name
        self.reset_state()

    def values(self, y_pred, y_true) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _batch(self, y_pred, y_true, weights):
        y_pred = np.asarray(y_pred)
        v = np.asarray(self.values(y_pred, y_true), dtype=np.float64)
        if weights is None:
            return float(v.sum()), float(v.size)
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim == 2 and w.shape[1] == 1:
            w = w[:, 0]
        if w.shape != v.shape:
            raise DataError(f"metric '{self.name}': weights must have shape {v.shape}, got {w.shape}")
        return float(np.dot(w, v)), float(w.sum())

    def __call__(self, y_pred, y_true, weights=None) -> float:
        total, count = self._batch(y_pred, y_true, weights)
        return total / count if count else 0.0

    def update_state(self, y_pred, y_true, weights=None) -> None:
        total, count = self._batch(y_pred, y_true, weights)
        self.total += total
        self.count += count

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0

    def reset_state(self) -> None:
        self.total = 0.0
        self.count = 0.0

    def get_config(self) -> dict:
        return {"class_name": type(self).__name__, "name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _labels(y_true, n: int, who: str) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (n,):
        raise DataError(f"{who}: y_true must be integer labels of shape ({n},), got {y.shape}")
    return y


class SparseCategoricalAccuracy(Metric):
    """1 where argmax(y_pred[n]) == y_true[n] (labels (N,) or (N, 1))."""

    default_name = "sparse_categorical_accuracy"

    def values(self, y_pred, y_true):
        y_pred = np.asarray(y_pred)
        if y_pred.ndim != 2:
            raise DataError(f"{self.name}: y_pred must be (N, C), got shape {y_pred.shape}")
        y = _labels(y_true, y_pred.shape[0], self.name)
        return (y_pred.argmax(axis=-1) == y).astype(np.float64)


class CategoricalAccuracy(Metric):
    """1 where argmax(y_pred[n]) == argmax(y_true[n]) (one-hot labels (N, C))."""

    default_name = "categorical_accuracy"

    def values(self, y_pred, y_true):
        y_pred = np.asarray(y_pred)
        t = np.asarray(y_true)
        if y_pred.ndim != 2 or t.shape != y_pred.shape:
            raise DataError(
                f"{self.name}: y_true and y_pred must both be (N, C), got {t.shape} and {y_pred.shape}"
            )
        return (y_pred.argmax(axis=-1) == t.argmax(axis=-1)).astype(np.float64)


class BinaryAccuracy(Metric):
    """mean over the last axis of [(y_pred > threshold) == y_true] (Keras)."""

    default_name = "binary_accuracy"

    def __init__(self, name: str | None = None, threshold: float = 0.5):
        self.threshold = float(threshold)
        super().__init__(name)

    def values(self, y_pred, y_true):
        y_pred = np.asarray(y_pred)
        t = np.asarray(y_true)
        if t.shape != y_pred.shape:
            if t.size == y_pred.size and t.shape[:1] == y_pred.shape[:1]:
                t = t.reshape(y_pred.shape)
            else:
                raise DataError(f"{self.name}: y_true shape {t.shape} does not match y_pred {y_pred.shape}")
        hit = ((y_pred > self.threshold).astype(np.float64) == t).astype(np.float64)
        if hit.ndim == 1:
            return hit
        return hit.reshape(hit.shape[0], -1).mean(axis=1)


class MeanSquaredErrorMetric(Metric):
    default_name = "mean_squared_error"

    def values(self, y_pred, y_true):
        from rnndsl.train.losses import MeanSquaredError

        return MeanSquaredError().per_sample(y_pred, y_true)


class MeanAbsoluteErrorMetric(Metric):
    default_name = "mean_absolute_error"

    def values(self, y_pred, y_true):
        from rnndsl.train.losses import MeanAbsoluteError

        return MeanAbsoluteError().per_sample(y_pred, y_true)


def resolve_accuracy(y_pred_shape, y_true_shape) -> str:
    """Keras's choice for "accuracy": binary when y_pred has one output per sample,
    sparse when the labels have one fewer axis (or a last axis of 1), else
    categorical. Returns "binary", "sparse" or "categorical"."""
    p, t = tuple(y_pred_shape), tuple(y_true_shape)
    if len(p) <= 1 or p[-1] == 1:
        return "binary"
    if len(t) < len(p) or (t and t[-1] == 1):
        return "sparse"
    return "categorical"


class Accuracy(Metric):
    """"accuracy" / "acc": becomes sparse, categorical or binary accuracy on the
    first batch it sees (see resolve_accuracy), keeping the user's name."""

    default_name = "accuracy"

    def __init__(self, name: str | None = None):
        self.resolved: Metric | None = None
        super().__init__(name)

    def resolve(self, y_pred_shape, y_true_shape) -> Metric:
        if self.resolved is None:
            kind = resolve_accuracy(y_pred_shape, y_true_shape)
            cls = {"binary": BinaryAccuracy, "sparse": SparseCategoricalAccuracy,
                   "categorical": CategoricalAccuracy}[kind]
            self.resolved = cls(name=self.name)
        return self.resolved

    def values(self, y_pred, y_true):
        y_pred, y_true = np.asarray(y_pred), np.asarray(y_true)
        return self.resolve(y_pred.shape, y_true.shape).values(y_pred, y_true)


# The metric registry: the names compile(metrics=[...]) and a spec's `metrics = [...]`
# take -> classes (a name and its short alias share a class; the log key is the name given).
METRICS = {
    "accuracy": Accuracy,
    "acc": Accuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "mean_squared_error": MeanSquaredErrorMetric,
    "mse": MeanSquaredErrorMetric,
    "mean_absolute_error": MeanAbsoluteErrorMetric,
    "mae": MeanAbsoluteErrorMetric,
}


def metric_names() -> tuple[str, ...]:
    """The names a metric is given by."""
    return tuple(METRICS)


def get_metric(name) -> Metric:
    """A fresh Metric from a Keras name; the log key is the name given
    ("acc" logs as "acc", as in Keras). A Metric instance is returned as is."""
    if isinstance(name, Metric):
        return name
    if not isinstance(name, str):
        raise RnnError(f"metric must be a name or a Metric, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in METRICS:
        hint = did_you_mean(key, METRICS)
        raise RnnError(f"unknown metric '{name}'" + (f"; {hint}" if hint else "")
                       + f" (known: {', '.join(sorted(METRICS))})")
    return METRICS[key](name=name.strip())
