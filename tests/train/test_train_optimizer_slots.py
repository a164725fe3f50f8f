"""The optimizers' public slot interface (what a device executor uses): slot values, the
per-step hyper-parameters, fresh slots, and the device-sync registration."""

import math

import numpy as np
import pytest

from rnndsl.train.optimizers import SGD, Adagrad, Adam, AdamW, RMSprop

W0 = np.array([[0.5, -1.0], [2.0, 0.25]])
G1 = np.array([[0.1, -0.2], [0.3, 0.4]])
G2 = np.array([[-0.5, 0.6], [0.05, -0.7]])


def two_steps(opt):
    w = W0.copy()
    opt.apply([w], [G1.copy()])
    opt.apply([w], [G2.copy()])
    return w


def test_adam_slots_after_two_steps_are_the_moments():
    lr, b1, b2, eps = 0.01, 0.8, 0.9, 1e-7
    opt = Adam(lr, beta_1=b1, beta_2=b2, epsilon=eps)
    w = two_steps(opt)
    m1, v1 = (1 - b1) * G1, (1 - b2) * G1 ** 2
    m2, v2 = b1 * m1 + (1 - b1) * G2, b2 * v1 + (1 - b2) * G2 ** 2
    assert sorted(opt.slots) == ["m", "v"] and list(opt.slots["m"]) == [0]
    np.testing.assert_allclose(opt.slots["m"][0], m2, rtol=1e-12)
    np.testing.assert_allclose(opt.slots["v"][0], v2, rtol=1e-12)
    # the weights follow from the same moments and the bias-corrected rates of steps 1 and 2
    a1 = lr * math.sqrt(1 - b2) / (1 - b1)
    a2 = lr * math.sqrt(1 - b2 ** 2) / (1 - b1 ** 2)
    want = W0 - a1 * m1 / (np.sqrt(v1) + eps) - a2 * m2 / (np.sqrt(v2) + eps)
    np.testing.assert_allclose(w, want, rtol=1e-12)
    # the coming step is t = 3
    h = opt.step_hyperparameters()
    assert h["alpha"] == pytest.approx(lr * math.sqrt(1 - b2 ** 3) / (1 - b1 ** 3), rel=1e-14)
    assert (h["beta_1"], h["beta_2"], h["epsilon"]) == (b1, b2, eps)


def test_adam_amsgrad_slot_is_the_running_max_of_v():
    b2 = 0.9
    opt = Adam(0.01, beta_2=b2, amsgrad=True)
    two_steps(opt)
    v1 = (1 - b2) * G1 ** 2
    v2 = b2 * v1 + (1 - b2) * G2 ** 2
    np.testing.assert_allclose(opt.slots["vhat"][0], np.maximum(v1, v2), rtol=1e-12)


def test_sgd_momentum_slot():
    lr, mu = 0.1, 0.5
    opt = SGD(lr, momentum=mu, nesterov=True)
    two_steps(opt)
    m2 = mu * (-lr * G1) - lr * G2
    np.testing.assert_allclose(opt.slots["momentum"][0], m2, rtol=1e-12)
    assert opt.step_hyperparameters() == {"learning_rate": lr, "momentum": mu, "nesterov": True}
    assert SGD(0.1).slots == {}                     # no momentum: no slot


def test_rmsprop_slots():
    lr, rho, mu = 0.01, 0.7, 0.3
    opt = RMSprop(lr, rho=rho, momentum=mu, centered=True)
    two_steps(opt)
    v2 = rho * (1 - rho) * G1 ** 2 + (1 - rho) * G2 ** 2
    a2 = rho * (1 - rho) * G1 + (1 - rho) * G2
    np.testing.assert_allclose(opt.slots["velocity"][0], v2, rtol=1e-12)
    np.testing.assert_allclose(opt.slots["average_gradient"][0], a2, rtol=1e-12)
    h = opt.step_hyperparameters()
    assert (h["rho"], h["momentum"], h["centered"]) == (rho, mu, True)


def test_adagrad_slot_and_its_initial_value():
    opt = Adagrad(0.1, initial_accumulator_value=0.25)
    np.testing.assert_array_equal(opt.init_slot("accumulator", np.empty((2, 3), np.float32)),
                                  np.full((2, 3), 0.25, np.float32))
    two_steps(opt)
    np.testing.assert_allclose(opt.slots["accumulator"][0], 0.25 + G1 ** 2 + G2 ** 2, rtol=1e-12)
    assert np.all(Adam().init_slot("m", W0) == 0)


@pytest.mark.parametrize("opt, rule", [(SGD(), "sgd"), (Adam(), "adam"), (AdamW(), "adam"),
                                       (RMSprop(), "rmsprop"), (Adagrad(), "adagrad")])
def test_update_rule_names_the_device_rule(opt, rule):
    assert opt.update_rule == rule


def test_slots_and_state_dict_bring_device_slots_home_first():
    opt = Adam(0.01)
    two_steps(opt)
    moved = {"m": opt.host_slots["m"][0] + 1.0}

    def sync():                          # a device holder copying its newer slots home
        opt.host_slots["m"][0] = moved["m"].copy()

    opt.attach_device(sync)
    assert opt.device_sync is sync
    np.testing.assert_array_equal(opt.slots["m"][0], moved["m"])
    moved["m"] = moved["m"] + 1.0
    np.testing.assert_array_equal(opt.state_dict()["m/0"], moved["m"])
    opt.detach_device(lambda: None)      # another holder's detach leaves this one registered
    assert opt.device_sync is sync
    moved["m"] = moved["m"] + 1.0
    w = W0.copy()
    opt.apply([w], [G1.copy()])          # a host step syncs, then forgets the device
    assert opt.device_sync is None
    m_before = moved["m"]
    np.testing.assert_allclose(opt.slots["m"][0], opt.beta_1 * m_before + (1 - opt.beta_1) * G1, rtol=1e-12)
    opt.attach_device(sync)
    opt.detach_device(sync)
    assert opt.device_sync is None
