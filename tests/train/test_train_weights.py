"""fit(sample_weight=..., class_weight=...) and fit on batches (generators, iterables,
steps_per_epoch), with Keras 3.15's numbers (a script run against it, torch backend)."""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import rnndsl
from rnndsl import DataError
from rnndsl.optimizers import SGD
from rnndsl.train.losses import get_loss
from rnndsl.train.targets import output_loss

SCCE = get_loss("sparse_categorical_crossentropy")
LOGITS = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0], [1.0, 1.0, -2.0]])
LABELS = np.array([0, 2, 1, 1])

# The Dense model of the Keras script: 8 samples, 3 features, 3 classes, SGD(0.5), batches of 4.
X = np.array([[0.3455841839313507, 0.8216181397438049, 0.3304370641708374],
              [-1.3031572103500366, 0.9053558707237244, 0.4463745653629303],
              [-0.5369532108306885, 0.581118106842041, 0.3645724058151245],
              [0.2941325008869171, 0.028422242030501366, 0.5467129945755005],
              [-0.7364540696144104, -0.16290995478630066, -0.4821193218231201],
              [0.5988461971282959, 0.03972210735082626, -0.2924567461013794],
              [-0.7819084525108337, -0.2571922540664673, 0.008142180740833282],
              [-0.27560290694236755, 1.2940638065338135, 1.0067243576049805]])
Y = np.array([0, 1, 2, 1, 0, 2, 2, 1])
W0 = [np.full((3, 3), 0.1) * np.arange(9).reshape(3, 3), np.array([0.1, -0.1, 0.0])]
CW = {0: 1.0, 1: 3.0, 2: 0.5}
SW = np.array([1, 2, 0, 1, 0.5, 1, 3, 1.0])
KERAS_CW = ([1.5852833986282349, 1.0663073062896729],
            [[[0.15829581022262573, -0.17435450851917267, 0.3160587251186371],
              [0.12768620252609253, 0.8734951019287109, 0.19881859421730042],
              [0.2916417121887207, 1.2925947904586792, 0.515763521194458]],
             [-0.1324220597743988, 0.46169313788414, -0.3292710483074188]])
KERAS_SW = ([1.4311470985412598, 1.1765825748443604],
            [[[0.30079686641693115, -0.06840356439352036, 0.06760671734809875],
              [0.2893678843975067, 0.8293818235397339, 0.08125033974647522],
              [0.4854033887386322, 1.0478383302688599, 0.5667581558227539]],
             [-0.2245556265115738, -0.052636273205280304, 0.2771919071674347]])
KERAS_EVAL_SW = 0.9758647084236145


@pytest.fixture(scope="module")
def dense():
    return rnndsl.compile("input x: float[3]\noutput x | dense(3)", dtype="float64")


def fresh(m, lr=0.5):
    m.set_weights(W0)
    return m.configure(loss="sparse_categorical_crossentropy", optimizer=SGD(lr))


def test_weighted_loss_matches_keras():
    value, _ = SCCE(LOGITS, LABELS, from_logits=True)
    assert value == pytest.approx(0.5067185163497925, rel=1e-6)
    value, _ = SCCE(LOGITS, LABELS, from_logits=True, sample_weight=np.array([1.0, 0.5, 2.0, 0.0]))
    assert value == pytest.approx(0.2185126394033432, rel=1e-6)     # sum(w l) / N, not / sum(w)
    value, _ = SCCE(LOGITS, LABELS, from_logits=True, sample_weight=np.array([1.0, 0.5, 3.0, 3.0]))
    assert value == pytest.approx(0.7732855677604675, rel=1e-6)     # Keras's class weights of these labels


SEQ_LOGITS = np.array([[[0.1257302165031433, -0.13210485875606537, 0.6404226422309875],
                        [0.10490011423826218, -0.5356693863868713, 0.3615950644016266],
                        [1.3040000200271606, 0.9470809698104858, -0.7037352323532104]],
                       [[-1.2654215097427368, -0.6232744455337524, 0.04132597893476486],
                        [-2.32503080368042, -0.218791663646698, -1.2459110021591187],
                        [-0.7322673797607422, -0.5442590117454529, -0.3163001537322998]]])
SEQ_Y = np.array([[0, 1, 2], [2, 2, 0]])
SEQ_MASK = np.array([[True, True, False], [True, True, True]])


def _seq_loss(logits, sw):
    act = SimpleNamespace(data=np.ascontiguousarray(logits.transpose(1, 0, 2)), mask=SEQ_MASK.T.copy())
    return output_loss([act], [SEQ_Y], "sparse_categorical_crossentropy", True, ["out"], [sw])


def test_masked_per_step_loss_with_sample_weights_matches_keras():
    assert _seq_loss(SEQ_LOGITS, None)[0] == pytest.approx(1.2454584836959839, rel=1e-6)
    sw = np.array([[2.0, 2.0, 2.0], [0.5, 1.0, 0.5]])
    assert _seq_loss(SEQ_LOGITS, sw)[0] == pytest.approx(1.6389318704605103, rel=1e-6)
    # (B,) weights stand for every step of their sample
    assert _seq_loss(SEQ_LOGITS, np.array([2.0, 0.5]))[0] == pytest.approx(
        _seq_loss(SEQ_LOGITS, np.array([[2.0] * 3, [0.5] * 3]))[0])


def test_weighted_loss_gradient_by_finite_differences():
    sw = np.array([[2.0, 0.3, 1.0], [0.5, 1.0, 1.5]])
    _, (grad,) = _seq_loss(SEQ_LOGITS, sw)
    grad = grad.transpose(1, 0, 2)              # back to batch-major
    eps, num = 1e-6, np.zeros_like(SEQ_LOGITS)
    for i in np.ndindex(SEQ_LOGITS.shape):
        a, b = SEQ_LOGITS.copy(), SEQ_LOGITS.copy()
        a[i] += eps
        b[i] -= eps
        num[i] = (_seq_loss(a, sw)[0] - _seq_loss(b, sw)[0]) / (2 * eps)
    np.testing.assert_allclose(grad, num, atol=1e-8)
    assert not grad[0, 2].any()                  # the masked step has no gradient


def test_fit_with_class_weight_matches_keras(dense):
    h = fresh(dense).fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0, class_weight=CW)
    np.testing.assert_allclose(h.history["loss"], KERAS_CW[0], rtol=1e-6)
    for w, k in zip(dense.get_weights(), KERAS_CW[1]):
        np.testing.assert_allclose(w, k, rtol=1e-5, atol=1e-6)


def test_fit_with_sample_weight_matches_keras(dense):
    h = fresh(dense).fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0, sample_weight=SW)
    np.testing.assert_allclose(h.history["loss"], KERAS_SW[0], rtol=1e-6)
    for w, k in zip(dense.get_weights(), KERAS_SW[1]):
        np.testing.assert_allclose(w, k, rtol=1e-5, atol=1e-6)
    assert dense.evaluate(X, Y, batch_size=4, sample_weight=SW) == pytest.approx(KERAS_EVAL_SW, rel=1e-6)


def test_a_generator_with_sample_weights_follows_the_same_steps(dense):
    def batches():
        while True:
            for i in range(0, 8, 4):
                yield X[i:i + 4], Y[i:i + 4], SW[i:i + 4]

    h = fresh(dense).fit(batches(), steps_per_epoch=2, epochs=2, verbose=0)
    np.testing.assert_allclose(h.history["loss"], KERAS_SW[0], rtol=1e-6)
    for w, k in zip(dense.get_weights(), KERAS_SW[1]):
        np.testing.assert_allclose(w, k, rtol=1e-5, atol=1e-6)


def test_validation_uses_sample_weights_not_class_weights(dense):
    h = fresh(dense, 0.0).fit(X, Y, batch_size=4, epochs=1, verbose=0, validation_data=(X, Y, SW))
    assert h.history["val_loss"][0] == pytest.approx(dense.evaluate(X, Y, sample_weight=SW))
    h = fresh(dense, 0.0).fit(X, Y, epochs=1, verbose=0, validation_data=(X, Y), class_weight=CW)
    assert h.history["val_loss"][0] == pytest.approx(dense.evaluate(X, Y))


def test_per_step_class_weight_weighs_each_step():
    m = rnndsl.compile("input x: float[4, 2]\noutput x | lstm(3, seq) | dense(3)")
    m.configure(loss="sparse_categorical_crossentropy", optimizer=SGD(0.0))
    x = np.random.default_rng(0).normal(size=(2, 4, 2))
    y = np.array([[0, 1, 2, 1], [2, 2, 0, 1]])
    cw = {1: 2.0, 2: 0.25}
    by_hand = np.vectorize(lambda c: cw.get(c, 1.0))(y)
    assert m.train_on_batch(x, y, class_weight=cw) == pytest.approx(m.train_on_batch(x, y, sample_weight=by_hand))
    assert m.train_on_batch(x, y, sample_weight=np.array([2.0, 0.5])) == pytest.approx(
        m.train_on_batch(x, y, sample_weight=np.array([[2.0] * 4, [0.5] * 4])))


def test_bad_weights_are_refused(dense):
    fresh(dense)
    cases = [(dict(sample_weight=SW, class_weight=CW), "not both"),
             (dict(sample_weight=SW[:5]), r"must have shape \(8,\)"),
             (dict(sample_weight=-SW), "finite numbers >= 0"),
             (dict(sample_weight=np.full(8, np.nan)), "finite numbers >= 0"),
             (dict(class_weight=[1.0, 2.0]), "must be a dict"),
             (dict(class_weight={"a": 1.0}), "class ids"),
             (dict(class_weight={1: -1.0}), r"class_weight\[1\] must be a finite number >= 0")]
    for kw, msg in cases:
        with pytest.raises(DataError, match=msg):
            dense.fit(X, Y, verbose=0, **kw)


def test_fit_on_batches(dense):
    fresh(dense, 0.1)
    listed = [(X[:4], Y[:4]), (X[4:], Y[4:])]
    h = dense.fit(listed, epochs=3, verbose=0)                       # a list: a fresh pass each epoch
    assert len(h.history["loss"]) == 3 and dense.optimizer.iterations == 6
    seen = []

    def counting():
        k = 0
        while True:
            seen.append(k)
            yield X[k % 2 * 4:k % 2 * 4 + 4], Y[k % 2 * 4:k % 2 * 4 + 4]
            k += 1

    dense.fit(counting(), epochs=2, steps_per_epoch=3, verbose=0)
    assert seen == list(range(6))                                    # one iterator goes on across epochs
    once = (b for b in listed)
    with pytest.warns(UserWarning, match="ran out of data; interrupting"):
        h = dense.fit(once, epochs=3, verbose=0)                     # a generator is used up after one pass
    assert len(h.history["loss"]) == 1 and h.stopped_early
    with pytest.warns(UserWarning, match="after 2 of 5 batches in epoch 1"):
        h = dense.fit(iter(listed), epochs=1, steps_per_epoch=5, verbose=0)
    assert len(h.history["loss"]) == 1


def test_batches_are_checked(dense):
    fresh(dense)
    with pytest.raises(DataError, match=r"batch 2: each batch must be a tuple \(x, y\)"):
        dense.fit([(X, Y), X], verbose=0)
    with pytest.raises(DataError, match="label 7 .* out of range"):
        dense.fit([(X, Y + 5)], verbose=0)
    with pytest.raises(DataError, match="validation_split needs arrays"):
        dense.fit([(X, Y)], validation_split=0.5, verbose=0)
    with pytest.raises(DataError, match="steps_per_epoch goes with x given as batches"):
        dense.fit(X, Y, steps_per_epoch=2, verbose=0)
    with pytest.raises(DataError, match="fit needs targets"):
        dense.fit(X, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dense.fit([(X, Y)], verbose=0, class_weight=CW)             # class weights apply to batches too
