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

    def bias_init(self, opts) -> str:
        return "unit_forget_bias" if opts.get("unit_forget_bias", True) else "zeros"
