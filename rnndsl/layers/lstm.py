"""LSTM, gates in Keras's order i, f, c, o:

    z = x_t W + h_{t-1} U + b           (batch, 4*units)
    i = ra(z_i)   f = ra(z_f)   g = act(z_c)   o = ra(z_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * act(c_t)

act is tanh and ra (recurrent_activation) sigmoid by default. Weights: kernel
(features, 4u), recurrent_kernel (u, 4u), bias (4u,) with the forget-gate
quarter initialised to 1 (unit_forget_bias). State port: (h, c).
"""

from __future__ import annotations

from ..kernels.cpu.lstm import lstm_backward, lstm_forward
from .base import Opt, register
from .recurrent import GATED_OPTIONS, RecurrentSpec


@register
class LSTM(RecurrentSpec):
    name = "lstm"
    keras_class = "LSTM"
    keras_name = "lstm"
    options = {**GATED_OPTIONS, "unit_forget_bias": Opt("bool", True)}
    gates = 4
    state_names = ("h", "c")
    takes_table = True

    def bias_init(self, opts) -> str:
        return "unit_forget_bias" if opts.get("unit_forget_bias", True) else "zeros"

    def kernel_forward(self, inp, U, init, mask, rmask, opts, backwards, zero_out, b_rec, keep=True,
                       last_only=False):
        out, hT, cT, saved = lstm_forward(U=U, h0=init[0], c0=init[1], mask=mask, rmask=rmask,
                                          activation=opts["activation"],
                                          recurrent_activation=opts["recurrent_activation"],
                                          backwards=backwards, zero_output_for_mask=zero_out, keep=keep,
                                          last_only=last_only, **inp)
        return out, (hT, cT), saved

    in_kernel_dx = True

    def kernel_backward(self, saved, dout, dfinal, W=None):
        if saved.X.shape[0] == 0:
            dxp, dU, dh0, dc0 = lstm_backward(saved, dout, dfinal[0], dfinal[1])
            return dxp, dU, (dh0, dc0), None, None, None
        # x @ W (or the table's rows) was taken inside the time loop: so are its kernel's (the
        # table's) and bias gradients, and with W the input's
        dxp, dU, dh0, dc0, dW, db, *dX = lstm_backward(saved, dout, dfinal[0], dfinal[1], weights=True, W=W)
        return (dxp, dU, (dh0, dc0), None, dW, db) + tuple(dX)
