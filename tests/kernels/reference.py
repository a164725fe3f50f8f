"""Plain NumPy references for the CPU cell kernels (float64, Python loop over time).

Written straight from the Keras 3 cell definitions, independently of the
kernels: one step at a time, whole-batch array expressions, no saved state.
Masking follows the rule "a padded row keeps its state; its output is that
state, or zeros with zero_output_for_mask"; go_backwards processes the input
from the end and returns outputs in processing order.
"""

import numpy as np


def activation(name):
    def hard_sigmoid(x):
        return np.clip(x / 6.0 + 0.5, 0.0, 1.0)

    def sigmoid(x):
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-x))

    return {
        "tanh": np.tanh,
        "sigmoid": sigmoid,
        "relu": lambda x: np.maximum(x, 0.0),
        "linear": lambda x: x,
        "hard_sigmoid": hard_sigmoid,
    }[name]


def _run(step, xp, states, mask, backwards, zero_output):
    """Drive `step(x_t, states) -> new_states` (states[0] is the output h)."""
    xp = np.asarray(xp, np.float64)
    T, B = xp.shape[:2]
    order = range(T - 1, -1, -1) if backwards else range(T)
    states = [np.array(s, np.float64) for s in states]
    outs = []
    for t in order:
        new = step(xp[t], states)
        if mask is None:
            states = new
            outs.append(new[0])
        else:
            m = (np.asarray(mask)[t] != 0)[:, None]
            states = [np.where(m, n, o) for n, o in zip(new, states)]
            outs.append(np.where(m, new[0], 0.0 if zero_output else states[0]))
    return np.stack(outs), states


def simplernn(xp, U, h0, mask=None, rmask=None, activation_name="tanh",
              backwards=False, zero_output=False):
    act = activation(activation_name)
    U = np.asarray(U, np.float64)

    def step(x, states):
        prev = states[0] if rmask is None else states[0] * rmask
        return [act(x + prev @ U)]

    out, (h,) = _run(step, xp, [h0], mask, backwards, zero_output)
    return out, h


def lstm(xp, U, h0, c0, mask=None, rmask=None, activation_name="tanh",
         recurrent_activation="sigmoid", backwards=False, zero_output=False):
    act, ract = activation(activation_name), activation(recurrent_activation)
    U = np.asarray(U, np.float64)
    u = U.shape[0]

    def step(x, states):
        h, c = states
        if rmask is not None:
            h = h * rmask
        z = x + h @ U
        i = ract(z[:, :u])
        f = ract(z[:, u:2 * u])
        g = act(z[:, 2 * u:3 * u])
        o = ract(z[:, 3 * u:])
        c = f * c + i * g
        return [o * act(c), c]

    out, (h, c) = _run(step, xp, [h0, c0], mask, backwards, zero_output)
    return out, h, c


def gru(xp, U, h0, b_rec=None, reset_after=True, mask=None, rmask=None,
        activation_name="tanh", recurrent_activation="sigmoid", backwards=False,
        zero_output=False):
    act, ract = activation(activation_name), activation(recurrent_activation)
    U = np.asarray(U, np.float64)
    u = U.shape[0]
    b_rec = np.zeros(3 * u) if b_rec is None else np.asarray(b_rec, np.float64)

    def step(x, states):
        h = states[0]
        if rmask is not None:
            h = h * rmask  # Keras 3 GRUCell overwrites h_tm1 with the dropped one
        xz, xr, xh = x[:, :u], x[:, u:2 * u], x[:, 2 * u:]
        if reset_after:
            inner = h @ U + b_rec
            z = ract(xz + inner[:, :u])
            r = ract(xr + inner[:, u:2 * u])
            hh = act(xh + r * inner[:, 2 * u:])
        else:
            z = ract(xz + h @ U[:, :u])
            r = ract(xr + h @ U[:, u:2 * u])
            hh = act(xh + (r * h) @ U[:, 2 * u:])
        return [z * h + (1.0 - z) * hh]

    out, (h,) = _run(step, xp, [h0], mask, backwards, zero_output)
    return out, h
