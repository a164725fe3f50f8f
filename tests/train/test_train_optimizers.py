import json

import numpy as np
import pytest

from rnndsl.errors import CheckpointError, RnnError, TrainingError
from rnndsl.train.optimizers import SGD, Adam, RMSprop, get_optimizer

rng = np.random.default_rng(1)
W0 = rng.normal(size=(3, 4))
GRADS = [rng.normal(size=(3, 4)) for _ in range(4)]


def run(opt, steps=4, w0=W0):
    w = w0.copy()
    for g in GRADS[:steps]:
        opt.apply([w], [g.copy()])
    return w


def test_sgd_plain():
    w = W0.copy()
    for g in GRADS:
        w = w - 0.01 * g
    np.testing.assert_allclose(run(get_optimizer("sgd")), w, rtol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum(nesterov):
    lr, mu = 0.1, 0.9
    w, m = W0.copy(), np.zeros_like(W0)
    for g in GRADS:
        m = mu * m - lr * g
        w = w + (mu * m - lr * g if nesterov else m)
    np.testing.assert_allclose(run(SGD(lr, momentum=mu, nesterov=nesterov)), w, rtol=1e-12)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam(amsgrad):
    lr, b1, b2, eps = 0.001, 0.9, 0.999, 1e-7
    w, m, v, vh = W0.copy(), 0 * W0, 0 * W0, 0 * W0
    for t, g in enumerate(GRADS, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vh = np.maximum(vh, v)
        alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        w = w - alpha * m / (np.sqrt(vh if amsgrad else v) + eps)
    opt = get_optimizer("adam", amsgrad=amsgrad)
    np.testing.assert_allclose(run(opt), w, rtol=1e-12)
    assert opt.iterations == 4


@pytest.mark.parametrize("momentum,centered", [(0.0, False), (0.5, False), (0.0, True), (0.5, True)])
def test_rmsprop(momentum, centered):
    lr, rho, eps = 0.001, 0.9, 1e-7
    w, v, a, mom = W0.copy(), 0 * W0, 0 * W0, 0 * W0
    for g in GRADS:
        v = rho * v + (1 - rho) * g * g
        a = rho * a + (1 - rho) * g
        den = v - a * a + eps if centered else v + eps
        inc = lr * g / np.sqrt(den)
        mom = momentum * mom + inc
        w = w - (mom if momentum else inc)
    opt = RMSprop(momentum=momentum, centered=centered)
    np.testing.assert_allclose(run(opt), w, rtol=1e-12)


def test_adagrad():
    lr, eps = 0.001, 1e-7
    w, acc = W0.copy(), np.full_like(W0, 0.1)
    for g in GRADS:
        acc = acc + g * g
        w = w - lr * g / np.sqrt(acc + eps)
    np.testing.assert_allclose(run(get_optimizer("Adagrad")), w, rtol=1e-12)


def test_defaults_match_keras():
    assert get_optimizer("adam").learning_rate == 0.001
    assert get_optimizer("rmsprop").learning_rate == 0.001
    assert get_optimizer("sgd").learning_rate == 0.01
    assert get_optimizer("adagrad").learning_rate == 0.001
    a = get_optimizer("adam")
    assert (a.beta_1, a.beta_2, a.epsilon) == (0.9, 0.999, 1e-7)
    assert get_optimizer("adamw").weight_decay == 0.004


def test_weight_decay_is_decoupled_and_first():
    lr, wd = 0.1, 0.01
    w = W0.copy()
    for g in GRADS:
        w = w - lr * wd * w
        w = w - lr * g
    np.testing.assert_allclose(run(SGD(lr, weight_decay=wd)), w, rtol=1e-12)


def test_clipnorm_per_variable():
    big, small = np.full(4, 10.0), np.full(2, 0.1)  # norms 20 and ~0.14
    p1, p2 = np.zeros(4), np.zeros(2)
    SGD(1.0, clipnorm=1.0).apply([p1, p2], [big, small])
    np.testing.assert_allclose(p1, -big / 20.0)
    np.testing.assert_allclose(p2, -small)
    assert big[0] == 10.0  # caller's gradient untouched


def test_global_clipnorm():
    g1, g2 = np.array([3.0, 0.0]), np.array([0.0, 4.0])  # global norm 5
    p1, p2 = np.zeros(2), np.zeros(2)
    SGD(1.0, global_clipnorm=1.0).apply([p1, p2], [g1, g2])
    np.testing.assert_allclose(p1, [-0.6, 0.0])
    np.testing.assert_allclose(p2, [0.0, -0.8])


def test_clipvalue():
    p = np.zeros(3)
    g = np.array([-5.0, 0.2, 7.0])
    SGD(1.0, clipvalue=0.5).apply([p], [g])
    np.testing.assert_allclose(p, [0.5, -0.2, -0.5])
    np.testing.assert_allclose(g, [-5.0, 0.2, 7.0])


def test_only_one_clipping_option():
    with pytest.raises(RnnError, match="only one of"):
        SGD(clipnorm=1.0, clipvalue=1.0)


def test_none_gradients_are_skipped():
    a, b = np.ones(2), np.ones(2)
    opt = get_optimizer("adam", weight_decay=0.1)
    opt.apply([a, b], [None, np.ones(2)])
    assert np.all(a == 1.0) and np.all(b < 1.0)
    assert set(opt.state_dict()) == {"iterations", "m/1", "v/1"}


def test_float32_params_stay_float32_in_place():
    w = W0.astype(np.float32)
    ref = w
    opt = Adam(0.01)
    opt.apply([w], [GRADS[0].astype(np.float32)])
    assert w is ref and w.dtype == np.float32
    expected = run(Adam(0.01), steps=1)
    np.testing.assert_allclose(w, expected, rtol=1e-5)


@pytest.mark.parametrize("name,kw", [("adam", {}), ("sgd", {"momentum": 0.9, "nesterov": True}),
                                     ("rmsprop", {"momentum": 0.3, "centered": True}), ("adagrad", {}),
                                     ("adamw", {"amsgrad": True})])
def test_state_round_trip_continues_identically(name, kw):
    w_full = W0.copy()
    full = get_optimizer(name, **kw)
    for g in GRADS:
        full.apply([w_full], [g])

    w = W0.copy()
    first = get_optimizer(name, **kw)
    for g in GRADS[:2]:
        first.apply([w], [g])
    state = first.state_dict()
    cfg = json.loads(json.dumps(first.get_config()))  # JSON-able
    second = get_optimizer(cfg)
    second.load_state_dict(state)
    assert second.iterations == 2
    for g in GRADS[2:]:
        second.apply([w], [g])
    np.testing.assert_array_equal(w, w_full)


def test_state_dict_is_a_copy_and_shapes_checked():
    opt = Adam()
    w = W0.copy()
    opt.apply([w], [GRADS[0]])
    st = opt.state_dict()
    st["m/0"][:] = 99
    assert not np.any(opt.state_dict()["m/0"] == 99)
    bad = Adam()
    bad.load_state_dict({"iterations": np.array(1), "m/0": np.zeros(5), "v/0": np.zeros(5)})
    with pytest.raises(CheckpointError, match="shape"):
        bad.apply([w], [GRADS[0]])
    with pytest.raises(CheckpointError, match="does not belong"):
        Adam().load_state_dict({"iterations": np.array(0), "momentum/0": np.zeros(2)})
    with pytest.raises(CheckpointError, match="iterations"):
        Adam().load_state_dict({})


def test_get_optimizer_forms_and_errors():
    opt = get_optimizer({"class_name": "RMSprop", "config": {"learning_rate": 0.01, "name": "x"}})
    assert isinstance(opt, RMSprop) and opt.learning_rate == 0.01
    same = get_optimizer(opt)
    assert same is opt
    other = get_optimizer(opt, learning_rate=0.5)
    assert other is not opt and other.learning_rate == 0.5 and other.rho == opt.rho
    with pytest.raises(RnnError, match="did you mean 'adam'"):
        get_optimizer("adm")
    with pytest.raises(RnnError, match="did you mean 'momentum'"):
        get_optimizer("sgd", momentun=0.9)
    with pytest.raises(RnnError, match="learning_rate"):
        get_optimizer("sgd", learning_rate=-1)
    with pytest.raises(RnnError, match="beta_1"):
        get_optimizer("adam", beta_1=1.0)
    with pytest.raises(TrainingError, match="shape"):
        get_optimizer("sgd").apply([np.zeros(3)], [np.zeros(4)])
    with pytest.raises(TrainingError, match="2 gradients"):
        get_optimizer("sgd").apply([np.zeros(3)], [np.zeros(3), None])
