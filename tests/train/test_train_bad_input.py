"""The Python API on bad arguments and data (issue 15): fit/evaluate/predict/train_on_batch/
loss_and_gradients raise a DataError naming what was wrong, never a plain Python exception."""

import numpy as np
import pytest

import rnndsl
from rnndsl import DataError

X = np.random.default_rng(0).random((10, 4, 3)).astype(np.float32)
Y = np.arange(10) % 2


@pytest.fixture(scope="module")
def model():
    return rnndsl.compile("input x: float[4, 3]\noutput x | lstm(4) | dense(2)").configure(
        loss="sparse_categorical_crossentropy", optimizer="sgd")


@pytest.mark.parametrize("call, message", [
    (lambda m: m.fit(X, Y, batch_size=0, verbose=0), "batch_size must be a whole number >= 1, got 0"),
    (lambda m: m.fit(X, Y, batch_size=2.5, verbose=0), "batch_size must be a whole number >= 1, got 2.5"),
    (lambda m: m.fit(X, Y, epochs=-1, verbose=0), "epochs must be a whole number >= 0, got -1"),
    (lambda m: m.fit(X, Y, validation_split=1.5, verbose=0), r"validation_split must be a fraction in \[0, 1\)"),
    (lambda m: m.fit(X, Y, validation_data=3, verbose=0), r"validation_data must be a pair \(x, y\)"),
    (lambda m: m.fit(X[:0], Y[:0], verbose=0), r"no samples: the input has shape \(0, 4, 3\)"),
    (lambda m: m.fit(X, np.array(["a", "b"] * 5), verbose=0),
     r"targets for 'dense' must be numbers, got dtype <U1 \(labels must be class ids 0..C-1, not strings\)"),
    (lambda m: m.fit(X, np.full(10, np.inf), verbose=0), "the targets for 'dense' hold NaN or inf"),
    (lambda m: m.fit(X, [[1, 2], [3]], verbose=0), "targets for 'dense': cannot make an array of them"),
    (lambda m: m.fit(X, 3, verbose=0), r"x has 10 samples but the targets for 'dense' have none"),
    (lambda m: m.fit(X, {"out": Y}, verbose=0),
     r"targets by name: the model's outputs are \['dense'\]; missing \['dense'\], unknown \['out'\]"),
    (lambda m: m.evaluate(X, Y, batch_size=0), "batch_size must be a whole number >= 1, got 0"),
    (lambda m: m.evaluate(X[:0], Y[:0]), "no samples"),
    (lambda m: m.predict(X, batch_size=-1), "batch_size must be a whole number >= 1, got -1"),
    (lambda m: m.predict(X[:0]), r"no samples: the input has shape \(0, 4, 3\)"),
    (lambda m: m.predict(np.float32(1)), r"no samples: the input has shape \(\)"),
    (lambda m: m.train_on_batch(X, np.array(["a"] * 10)), "targets for 'dense' must be numbers"),
    (lambda m: m.train_on_batch(X, np.full(10, np.nan)), "hold NaN or inf"),
    (lambda m: m.loss_and_gradients(X, np.full(10, np.inf)), "labels must be integers, got inf at sample 0"),
])
def test_bad_arguments_are_data_errors(model, call, message):
    with pytest.raises(DataError, match=message):
        call(model)


def test_big_endian_labels_work_as_native(model):
    w = model.get_weights()
    a = model.loss_and_gradients(X, Y.astype(">i8"))
    b = model.loss_and_gradients(X, Y)
    assert a[0] == pytest.approx(b[0], rel=1e-6)
    model.fit(X, Y.astype(">i8"), epochs=1, verbose=0)
    model.train_on_batch(X, Y.astype(">i4"))
    model.set_weights(w)


@pytest.mark.parametrize("layer", ["concat", "add"])
def test_merging_sequences_of_different_lengths(layer):
    m = rnndsl.compile(f"input a: float[?, 3]\ninput b: float[?, 3]\noutput {layer}(a, b) | lstm(2)")
    with pytest.raises(DataError, match=rf"layer '\w+' \({layer}\) joins sequences of different lengths: "
                                        "4, 5 steps"):
        m.predict([np.zeros((2, 4, 3)), np.zeros((2, 5, 3))])
    assert m.predict([np.zeros((2, 4, 3)), np.zeros((2, 4, 3))]).shape == (2, 2)
