"""SimpleRNN: h_t = act(x_t W + h_{t-1} U + b); act is tanh by default.

Weights (Keras layout): kernel (features, units), recurrent_kernel (units, units), bias (units,).
"""

from __future__ import annotations

from ..kernels.cpu.simplernn import simplernn_backward, simplernn_forward
from .base import register
from .recurrent import COMMON_OPTIONS, RecurrentSpec


@register
class SimpleRNN(RecurrentSpec):
    name = "simplernn"
    aliases = ("simple_rnn", "rnn_simple")
    keras_class = "SimpleRNN"
    keras_name = "simple_rnn"
    options = COMMON_OPTIONS
    gates = 1
    state_names = ("h",)

    def kernel_forward(self, inp, U, init, mask, rmask, opts, backwards, zero_out, b_rec, keep=True,
                       last_only=False):
        out, hT, saved = simplernn_forward(U=U, h0=init[0], mask=mask, rmask=rmask, activation=opts["activation"],
                                           backwards=backwards, zero_output_for_mask=zero_out, keep=keep,
                                           last_only=last_only, **inp)
        return out, (hT,), saved

    def kernel_backward(self, saved, dout, dfinal):
        dxp, dU, dh0 = simplernn_backward(saved, dout, dfinal[0])
        return dxp, dU, (dh0,), None, None, None
