"""The finite-difference gradient check shared by tests/runtime and tests/cells: a model's
weight and input gradients (float64) against central differences of its loss."""

import numpy as np

import rnndsl

EPS = 1e-6


def rel_err(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12)


def numerical_grad(loss, a):
    """Central differences of loss() with respect to every entry of the array a (changed in place)."""
    num = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + EPS
        lp = loss()
        a[idx] = old - EPS
        lm = loss()
        a[idx] = old
        num[idx] = (lp - lm) / (2 * EPS)
    return num


def check(text, x, y, loss="sparse_categorical_crossentropy", from_logits=True, seed=2):
    m = rnndsl.compile(text, dtype="float64", seed=seed)
    rng = np.random.default_rng(11)
    m.set_weights([w + rng.normal(0, 0.3, w.shape) if "variance" not in n else w
                   for n, w in zip(m.weight_names(), m.get_weights())])

    def run(xs, grads=False):
        m.executor.rng = np.random.default_rng(5)
        if grads:
            return m.loss_and_gradients(xs, y, loss=loss, from_logits=from_logits, return_input_grads=True)
        return m.loss_and_gradients(xs, y, loss=loss, from_logits=from_logits)[0]

    xs = [np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a)
          for a in (x if isinstance(x, list) else [x])]
    _, w_grads, in_grads = run(xs, grads=True)
    params = m.executor.params
    checked = 0
    for i, (p, g) in enumerate(zip(params, w_grads)):
        if g is None:
            assert not m.executor.trainable[i]
            continue
        num = numerical_grad(lambda: run(xs), p)
        assert rel_err(num, g) < 1e-6, (m.weight_names()[i], rel_err(num, g))
        checked += 1
    for k, a in enumerate(xs):
        if a.dtype.kind == "f":
            num = numerical_grad(lambda: run(xs), a)
            assert rel_err(num, in_grads[k]) < 1e-6, ("input", k, rel_err(num, in_grads[k]))
    assert checked > 0
    return m
