"""Plain NumPy references for whole layers, batch-major, float64.

The recurrent cells come from tests/kernels/reference.py (time-major, one
step at a time); this file adds the layer plumbing around them: the input
projection, biases, return_sequences, Bidirectional merges, dense, batchnorm.
"""

import numpy as np

from kernels import reference as cells


def act(name, z):
    if name == "softmax":
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    return cells.activation(name)(z)


def dense(x, K, b=None, activation="linear"):
    z = x @ K
    if b is not None:
        z = z + b
    return act(activation, z)


def batchnorm(x, gamma, beta, mean, var, eps=1e-3, training=False, mask=None):
    if training:
        rows = x.reshape(-1, x.shape[-1])
        w = np.ones(len(rows)) if mask is None else mask.reshape(-1).astype(float)
        mean = (w[:, None] * rows).sum(0) / w.sum()
        var = (w[:, None] * (rows - mean) ** 2).sum(0) / w.sum()
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def recurrent(kind, x, W, units, mask=None, h0=None, c0=None, go_backwards=False, return_sequences=False,
              zero_output_for_mask=False, activation="tanh", recurrent_activation="sigmoid", reset_after=True,
              use_bias=True):
    """A whole SimpleRNN/LSTM/GRU layer on batch-major x (B, T, F); returns (y, final states)."""
    K, U = W[0], W[1]
    b = W[2] if use_bias else None
    B = x.shape[0]
    xt = np.transpose(x, (1, 0, 2))
    b_rec = None
    if kind == "gru" and reset_after and b is not None:
        b, b_rec = b[0], b[1]
    xp = xt @ K + (0 if b is None else b)
    m = None if mask is None else np.asarray(mask).T
    zeros = np.zeros((B, units))
    h0 = zeros if h0 is None else h0
    kw = dict(mask=m, backwards=go_backwards, zero_output=zero_output_for_mask)
    if kind == "lstm":
        out, h, c = cells.lstm(xp, U, h0, zeros if c0 is None else c0, activation_name=activation,
                               recurrent_activation=recurrent_activation, **kw)
        states = (h, c)
    elif kind == "gru":
        out, h = cells.gru(xp, U, h0, b_rec=b_rec, reset_after=reset_after, activation_name=activation,
                           recurrent_activation=recurrent_activation, **kw)
        states = (h,)
    else:
        out, h = cells.simplernn(xp, U, h0, activation_name=activation, **kw)
        states = (h,)
    out = np.transpose(out, (1, 0, 2))
    return (out if return_sequences else out[:, -1]), states


def bidirectional(kind, x, W, units, merge_mode="concat", return_sequences=False, mask=None, **kw):
    half = len(W) // 2
    zero = return_sequences
    yf, sf = recurrent(kind, x, W[:half], units, mask=mask, return_sequences=return_sequences,
                       zero_output_for_mask=zero, **kw)
    yb, sb = recurrent(kind, x, W[half:], units, mask=mask, return_sequences=return_sequences,
                       zero_output_for_mask=zero, go_backwards=True, **kw)
    if return_sequences:
        yb = yb[:, ::-1]
    merged = {"concat": lambda: np.concatenate([yf, yb], -1), "sum": lambda: yf + yb, "mul": lambda: yf * yb,
              "ave": lambda: (yf + yb) / 2}[merge_mode]()
    return merged, sf + sb
