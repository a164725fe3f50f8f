import numpy as np
import pytest

from rnndsl.errors import DataError, RnnError
from rnndsl.train.losses import EPSILON, get_loss, log_softmax

rng = np.random.default_rng(0)


def numgrad(f, x, h=1e-6):
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        fp = f(x)
        x[i] = old - h
        fm = f(x)
        x[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


def probs(n, c):
    p = rng.uniform(0.05, 1.0, size=(n, c))
    return p / p.sum(1, keepdims=True)


def check_grad(loss, y_pred, y_true, weights=None, from_logits=False, tol=1e-6):
    value, grad = loss(y_pred, y_true, weights, from_logits=from_logits)
    num = numgrad(lambda z: loss(z, y_true, weights, from_logits=from_logits)[0], y_pred.copy())
    assert grad.shape == y_pred.shape
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=tol)
    return value


@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_categorical_value_and_grad(from_logits):
    n, c = 6, 4
    y = rng.integers(0, c, n)
    w = np.array([1, 0, 1, 1, 0, 1.0])
    z = rng.normal(size=(n, c)) if from_logits else probs(n, c)
    logp = log_softmax(z) if from_logits else np.log(z)
    per = -logp[np.arange(n), y]
    value = check_grad(get_loss("sparse_categorical_crossentropy"), z, y, w, from_logits)
    assert value == pytest.approx((w * per).sum() / w.sum(), rel=1e-12)
    # unweighted: plain mean
    v2, _ = get_loss("sparse_categorical_crossentropy")(z, y.reshape(-1, 1), from_logits=from_logits)
    assert v2 == pytest.approx(per.mean(), rel=1e-12)


@pytest.mark.parametrize("from_logits", [False, True])
def test_categorical_value_and_grad(from_logits):
    n, c = 5, 3
    t = np.eye(c)[rng.integers(0, c, n)]
    t[0] = [0.2, 0.5, 0.3]  # soft target row
    z = rng.normal(size=(n, c)) if from_logits else probs(n, c)
    logp = log_softmax(z) if from_logits else np.log(z)
    value = check_grad(get_loss("categorical_crossentropy"), z, t, None, from_logits)
    assert value == pytest.approx(-(t * logp).sum(1).mean(), rel=1e-12)


def test_categorical_probabilities_are_renormalised_and_clipped():
    loss = get_loss("categorical_crossentropy")
    p = np.array([[2.0, 2.0], [1.0, 0.0]])  # rows not summing to 1; an exact 0
    t = np.array([[1.0, 0.0], [0.0, 1.0]])
    value, grad = loss(p, t)
    expected = (-np.log(0.5) - np.log(EPSILON)) / 2
    assert value == pytest.approx(expected, rel=1e-9)
    assert np.all(np.isfinite(grad))
    # non-normalised probabilities: gradient still exact (away from the clip)
    p2 = rng.uniform(0.2, 2.0, size=(4, 3))
    check_grad(loss, p2, np.eye(3)[[0, 1, 2, 1]])


def test_sparse_probabilities_non_normalised_grad():
    p = rng.uniform(0.2, 2.0, size=(4, 3))
    check_grad(get_loss("sparse_categorical_crossentropy"), p, np.array([0, 2, 1, 1]))


def test_logits_are_stable_for_huge_values():
    z = np.array([[1000.0, 0.0, -1000.0], [-1e4, 1e4, 0.0]])
    value, grad = get_loss("sparse_categorical_crossentropy")(z, np.array([0, 0]), from_logits=True)
    assert np.isfinite(value) and value == pytest.approx(1e4, rel=1e-12)
    assert np.all(np.isfinite(grad))
    v, g = get_loss("binary_crossentropy")(np.array([800.0, -800.0]), np.array([0.0, 1.0]), from_logits=True)
    assert v == pytest.approx(800.0) and np.all(np.isfinite(g))


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("shape", [(7,), (7, 1), (7, 3)])
def test_binary_crossentropy(from_logits, shape):
    t = rng.integers(0, 2, size=shape).astype(float)
    if from_logits:
        z = rng.normal(size=shape)
        p = 1 / (1 + np.exp(-z))
    else:
        z = rng.uniform(0.05, 0.95, size=shape)
        p = z
    e = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    per = e if e.ndim == 1 else e.mean(axis=1)
    w = rng.integers(0, 2, size=7).astype(float)
    w[0] = 1
    value = check_grad(get_loss("binary_crossentropy"), z, t, w, from_logits)
    assert value == pytest.approx((w * per).sum() / w.sum(), rel=1e-9)


def test_binary_accepts_n_vs_n1_labels():
    v1, g1 = get_loss("binary_crossentropy")(np.array([[0.3], [0.8]]), np.array([0, 1]))
    assert g1.shape == (2, 1)
    assert v1 == pytest.approx(-(np.log(0.7) + np.log(0.8)) / 2)


def test_binary_probability_clip():
    v, g = get_loss("binary_crossentropy")(np.array([0.0, 1.0]), np.array([1.0, 0.0]))
    assert v == pytest.approx(-np.log(EPSILON), rel=1e-6)
    assert np.all(g == 0)  # clipped: flat


@pytest.mark.parametrize("name", ["mse", "mae", "mean_squared_error", "MeanAbsoluteError"])
@pytest.mark.parametrize("shape", [(6,), (6, 1), (6, 4)])
def test_regression_losses(name, shape):
    loss = get_loss(name)
    p, t = rng.normal(size=shape), rng.normal(size=shape)
    d = p - t
    e = d ** 2 if "squared" in loss.name else np.abs(d)
    per = e if e.ndim == 1 else e.mean(axis=1)
    w = np.array([1, 1, 0, 1, 0, 1.0])
    value = check_grad(loss, p, t, w)
    assert value == pytest.approx((w * per).sum() / w.sum(), rel=1e-12)


def test_all_masked_gives_zero():
    v, g = get_loss("mse")(np.ones((3, 2)), np.zeros((3, 2)), weights=np.zeros(3))
    assert v == 0.0 and not g.any()


def test_float32_inputs_keep_dtype():
    v, g = get_loss("sparse_categorical_crossentropy")(
        rng.normal(size=(4, 3)).astype(np.float32), np.array([0, 1, 2, 0]), from_logits=True)
    assert g.dtype == np.float32 and isinstance(v, float)


def test_label_out_of_range_message():
    with pytest.raises(DataError, match=r"label 5 at sample 2 .*\[0, 2\]"):
        get_loss("sparse_categorical_crossentropy")(probs(3, 3), np.array([0, 1, 5]))
    with pytest.raises(DataError, match="label -1"):
        get_loss("sparse_categorical_crossentropy")(probs(3, 3), np.array([0, -1, 1]))
    with pytest.raises(DataError, match="integers"):
        get_loss("sparse_categorical_crossentropy")(probs(2, 3), np.array([0.5, 1.0]))


def test_label_out_of_range_from_logits():
    # the compiled path finds the bad row; the message is the same as the NumPy path's
    z = rng.normal(size=(4, 3)).astype(np.float32)
    with pytest.raises(DataError, match=r"label 3 at sample 1 .*\[0, 2\]"):
        get_loss("sparse_categorical_crossentropy")(z, np.array([0, 3, 1, 7]), from_logits=True)
    with pytest.raises(DataError, match="label -2 at sample 3"):
        get_loss("sparse_categorical_crossentropy")(z, np.array([0, 1, 2, -2], np.int8), from_logits=True)


def test_sparse_from_logits_float32_matches_float64_reference():
    n, c = 50, 10
    z = (rng.normal(size=(n, c)) * 4).astype(np.float32)
    y = rng.integers(0, c, n)
    value, grad = get_loss("sparse_categorical_crossentropy")(z, y, from_logits=True)
    z64 = z.astype(np.float64)
    logp = log_softmax(z64)
    onehot = np.eye(c)[y]
    assert value == pytest.approx(-logp[np.arange(n), y].mean(), rel=1e-6)
    np.testing.assert_allclose(grad, (np.exp(logp) - onehot) / n, rtol=1e-5, atol=1e-8)


def test_shape_errors():
    with pytest.raises(DataError, match=r"got \(3,\)"):
        get_loss("sparse_categorical_crossentropy")(probs(4, 3), np.array([0, 1, 2]))
    with pytest.raises(DataError, match="sparse_categorical_crossentropy"):
        get_loss("categorical_crossentropy")(probs(4, 3), np.array([0, 1, 2, 0]))
    with pytest.raises(DataError, match=r"\(N, C\)"):
        get_loss("categorical_crossentropy")(np.ones(3), np.ones(3))
    with pytest.raises(DataError, match="does not match"):
        get_loss("mse")(np.ones((4, 2)), np.ones((4, 3)))
    with pytest.raises(DataError, match="weights"):
        get_loss("mse")(np.ones((4, 2)), np.ones((4, 2)), weights=np.ones(3))


def test_get_loss_names():
    assert get_loss("MSE").name == "mean_squared_error"
    assert get_loss("SparseCategoricalCrossentropy").name == "sparse_categorical_crossentropy"
    loss = get_loss("mae")
    assert get_loss(loss) is loss
    with pytest.raises(RnnError, match="did you mean 'binary_crossentropy'"):
        get_loss("binary_crossentropi")
    with pytest.raises(RnnError, match="from_logits"):
        get_loss("mse")(np.ones(2), np.ones(2), from_logits=True)


@pytest.mark.parametrize("bad, shown", [(5, "got 5"), (-3, "got -3"), (np.nan, "got nan"), (1.5, "got 1.5")])
def test_binary_crossentropy_refuses_labels_outside_0_1(bad, shown):
    """Keras computes a 'crossentropy' of label 5; rnndsl refuses it, naming the output."""
    loss = get_loss("binary_crossentropy")
    with pytest.raises(DataError, match=rf"binary_crossentropy: labels must lie in \[0, 1\], {shown}"):
        loss(np.array([0.3, 0.8]), np.array([1.0, bad]))
    with pytest.raises(DataError, match=rf"labels must lie in \[0, 1\], {shown} \(1 more\)"):
        loss(np.array([0.3, 0.8, 0.5]), np.array([bad, 1.0, bad]), from_logits=True)
    v, _ = loss(np.array([0.3, 0.8]), np.array([0.0, 0.25]))          # soft labels are fine
    assert np.isfinite(v)

    import rnndsl
    m = rnndsl.compile('input x: float[?, 2]\noutput p = x | lstm(3) | dense(1, activation="sigmoid")')
    m.configure(loss="binary_crossentropy", optimizer="sgd")
    x, y = np.zeros((2, 4, 2)), np.array([[1.0], [bad]])
    want = rf"targets for output 'p': binary_crossentropy: labels must lie in \[0, 1\], {shown}"
    if np.isnan(bad):                       # fit's target check names NaN before the loss sees it
        want = f"({want}|the targets for 'p' hold NaN or inf)"
    for call in (lambda: m.loss_and_gradients(x, y, loss="binary_crossentropy", from_logits=False),
                 lambda: m.train_on_batch(x, y), lambda: m.evaluate(x, y),
                 lambda: m.fit(x, y, epochs=1, verbose=0)):
        with pytest.raises(DataError, match=want):
            call()
