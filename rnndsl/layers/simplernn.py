"""SimpleRNN: h_t = act(x_t W + h_{t-1} U + b); act is tanh by default.

Weights (Keras layout): kernel (features, units), recurrent_kernel (units, units), bias (units,).
"""

from __future__ import annotations

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
