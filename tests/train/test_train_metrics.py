import numpy as np
import pytest

from rnndsl.errors import DataError, RnnError
from rnndsl.train.metrics import (
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    get_metric,
    resolve_accuracy,
)

P = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
Y = np.array([1, 0, 0, 0])  # hits: 1 1 0 1


def test_sparse_accuracy_with_and_without_mask():
    m = SparseCategoricalAccuracy()
    assert m(P, Y) == pytest.approx(0.75)
    assert m(P, Y.reshape(-1, 1)) == pytest.approx(0.75)
    assert m(P, Y, weights=np.array([1, 1, 1, 0])) == pytest.approx(2 / 3)
    assert m(P, Y, weights=np.zeros(4)) == 0.0


def test_categorical_accuracy():
    assert CategoricalAccuracy()(P, np.eye(2)[Y]) == pytest.approx(0.75)
    with pytest.raises(DataError):
        CategoricalAccuracy()(P, Y)


def test_binary_accuracy():
    p = np.array([0.2, 0.7, 0.5, 0.9])
    t = np.array([0, 1, 1, 0])
    assert BinaryAccuracy()(p, t) == pytest.approx(0.5)
    assert BinaryAccuracy()(p.reshape(-1, 1), t) == pytest.approx(0.5)
    assert BinaryAccuracy(threshold=0.0)(np.array([-1.0, 2.0]), np.array([0, 1])) == 1.0
    # multi-label rows: mean over the last axis per sample
    assert BinaryAccuracy()(np.array([[0.9, 0.1], [0.9, 0.9]]), np.array([[1, 1], [1, 1]]),
                            weights=np.array([1.0, 1.0])) == pytest.approx(0.75)


def test_running_state_is_weighted_over_batches():
    m = get_metric("sparse_categorical_accuracy")
    m.update_state(P, Y)  # 3 of 4
    m.update_state(P[:2], np.array([0, 0]), weights=np.array([1.0, 0.0]))  # 0 of 1
    assert m.result() == pytest.approx(3 / 5)
    m.reset_state()
    assert m.result() == 0.0


def test_accuracy_resolves_like_keras():
    assert resolve_accuracy((8, 3), (8,)) == "sparse"
    assert resolve_accuracy((8, 3), (8, 1)) == "sparse"
    assert resolve_accuracy((8, 3), (8, 3)) == "categorical"
    assert resolve_accuracy((8, 1), (8, 1)) == "binary"
    assert resolve_accuracy((8,), (8,)) == "binary"
    m = get_metric("acc")
    assert m.name == "acc"
    assert m(P, Y) == pytest.approx(0.75)
    assert isinstance(m.resolved, SparseCategoricalAccuracy)
    m2 = get_metric("accuracy")
    assert m2(P, np.eye(2)[Y]) == pytest.approx(0.75)
    assert isinstance(m2.resolved, CategoricalAccuracy)
    m3 = get_metric("accuracy")
    assert m3(np.array([[0.9], [0.1]]), np.array([[1], [1]])) == pytest.approx(0.5)
    assert isinstance(m3.resolved, BinaryAccuracy)


def test_regression_metrics_and_unknown():
    assert get_metric("mae")(np.array([1.0, 3.0]), np.array([0.0, 0.0])) == pytest.approx(2.0)
    assert get_metric("mse")(np.array([1.0, 3.0]), np.array([0.0, 0.0])) == pytest.approx(5.0)
    with pytest.raises(RnnError, match="did you mean 'accuracy'"):
        get_metric("acuracy")
